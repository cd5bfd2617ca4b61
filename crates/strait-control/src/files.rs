//! Fingerprints of the files a configuration reads (certificates, keys, CAs), so a forced reload of an unchanged document (SIGHUP, a certificate watch) makes a new version only when one of them changed.

use std::{
    hash::{Hash, Hasher},
    io::Read,
    path::PathBuf,
};

use strait_config::{Config, MAX_MODULE_BYTES};

/// What each file held when read: a hash of its contents, or `None` when it could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileStamps(Vec<(PathBuf, Option<u64>)>);

impl FileStamps {
    /// Reads every certificate, key and CA file of `config` (bounded like the TLS loader).
    pub fn read(config: &Config) -> Self {
        FileStamps(
            crate::compile::certificate_files(config)
                .into_iter()
                .map(|p| {
                    let stamp = stamp(&p);
                    (p, stamp)
                })
                .collect(),
        )
    }
}

fn stamp(path: &std::path::Path) -> Option<u64> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_MODULE_BYTES + 1).read_to_end(&mut bytes))
        .ok()?;
    // Not a security boundary: it only tells "changed" from "the same bytes".
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_change_with_contents_only() {
        let dir = std::env::temp_dir().join(format!("strait-stamps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("c.pem");
        std::fs::write(&cert, "one").unwrap();
        let a = stamp(&cert);
        std::fs::write(&cert, "one").unwrap();
        assert_eq!(stamp(&cert), a, "rewriting the same bytes is no change");
        std::fs::write(&cert, "two").unwrap();
        assert_ne!(stamp(&cert), a);
        std::fs::remove_file(&cert).unwrap();
        assert_eq!(stamp(&cert), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
