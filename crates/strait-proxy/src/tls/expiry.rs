//! When the certificates in a PEM file expire: the expiry gauge set at each snapshot compile and the `validate` warning read this.

use std::path::Path;

use rustls::pki_types::{pem::PemObject, CertificateDer};
use x509_parser::{certificate::X509Certificate, prelude::FromDer};

use super::{file_err, read_pem, TlsError};

/// The earliest `notAfter` among a file's certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// Unix seconds.
    pub not_after: i64,
    /// The same instant as `YYYY-MM-DD HH:MM:SS UTC`, for messages.
    pub date: String,
}

/// The earliest expiry of the certificates in the PEM file at `path` (a chain or a CA bundle
/// stops working when its first certificate does).
pub fn earliest_expiry(path: &Path) -> Result<Expiry, TlsError> {
    let bytes = read_pem(path)?;
    let mut earliest: Option<Expiry> = None;
    for der in CertificateDer::pem_slice_iter(&bytes) {
        let der = der.map_err(|e| file_err(path, e))?;
        let (_, cert) = X509Certificate::from_der(&der).map_err(|e| file_err(path, e))?;
        let t = cert.validity().not_after;
        if earliest
            .as_ref()
            .is_none_or(|e| t.timestamp() < e.not_after)
        {
            let dt = t.to_datetime();
            earliest = Some(Expiry {
                not_after: t.timestamp(),
                date: format!(
                    "{} {:02}:{:02}:{:02} UTC",
                    dt.date(),
                    dt.hour(),
                    dt.minute(),
                    dt.second()
                ),
            });
        }
    }
    earliest.ok_or_else(|| file_err(path, "no certificate found"))
}
