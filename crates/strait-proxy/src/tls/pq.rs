//! X25519MLKEM768, the post-quantum hybrid key exchange (draft-ietf-tls-ecdhe-mlkem): ML-KEM-768 from RustCrypto and ring's X25519, because rustls offers the group only with its aws-lc-rs provider.

use ml_kem::{
    kem::{Decapsulate, Encapsulate, Generate, KeyExport},
    ml_kem_768::{Ciphertext, DecapsulationKey, EncapsulationKey},
};
use rustls::{
    crypto::{
        ring::kx_group::X25519, ActiveKeyExchange, CompletedKeyExchange, SharedSecret,
        SupportedKxGroup,
    },
    Error, NamedGroup, PeerMisbehaved, ProtocolVersion,
};

/// The hybrid group: ML-KEM-768 first, then X25519, in every share and in the secret.
pub static X25519MLKEM768: &dyn SupportedKxGroup = &Hybrid;

/// An ML-KEM-768 encapsulation key's encoded length.
const EK_LEN: usize = 1184;
/// An ML-KEM-768 ciphertext's encoded length.
const CT_LEN: usize = 1088;
/// An X25519 public key's length.
const X25519_LEN: usize = 32;

fn invalid_share() -> Error {
    PeerMisbehaved::InvalidKeyShare.into()
}

#[derive(Debug)]
struct Hybrid;

impl SupportedKxGroup for Hybrid {
    /// The client's side: a fresh ML-KEM key pair and X25519 key; the share is both public keys.
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let dk = DecapsulationKey::generate();
        let classical = X25519.start()?;
        let mut pub_key = Vec::with_capacity(EK_LEN + X25519_LEN);
        pub_key.extend_from_slice(&dk.encapsulation_key().to_bytes());
        pub_key.extend_from_slice(classical.pub_key());
        Ok(Box::new(Active {
            dk,
            classical,
            pub_key,
        }))
    }

    /// The server's side: encapsulate to the client's ML-KEM key and complete X25519 at once.
    fn start_and_complete(&self, client_share: &[u8]) -> Result<CompletedKeyExchange, Error> {
        if client_share.len() != EK_LEN + X25519_LEN {
            return Err(invalid_share());
        }
        let (ek, x) = client_share.split_at(EK_LEN);
        let ek = ek.try_into().map_err(|_| invalid_share())?;
        // FIPS 203 §7.2: an encapsulation key whose coefficients are not reduced is refused.
        let ek = EncapsulationKey::new(ek).map_err(|_| invalid_share())?;
        let (ct, pq_secret) = ek.encapsulate();
        let cl = X25519.start_and_complete(x)?;
        let mut pub_key = Vec::with_capacity(CT_LEN + X25519_LEN);
        pub_key.extend_from_slice(&ct);
        pub_key.extend_from_slice(&cl.pub_key);
        let mut secret = Vec::with_capacity(64);
        secret.extend_from_slice(&pq_secret);
        secret.extend_from_slice(cl.secret.secret_bytes());
        Ok(CompletedKeyExchange {
            group: NamedGroup::X25519MLKEM768,
            pub_key,
            secret: SharedSecret::from(secret),
        })
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }

    fn usable_for_version(&self, version: ProtocolVersion) -> bool {
        version == ProtocolVersion::TLSv1_3
    }
}

/// A client's half-done exchange: its ML-KEM decapsulation key and X25519 key.
struct Active {
    dk: DecapsulationKey,
    classical: Box<dyn ActiveKeyExchange>,
    pub_key: Vec<u8>,
}

impl ActiveKeyExchange for Active {
    fn complete(self: Box<Self>, server_share: &[u8]) -> Result<SharedSecret, Error> {
        if server_share.len() != CT_LEN + X25519_LEN {
            return Err(invalid_share());
        }
        let (ct, x) = server_share.split_at(CT_LEN);
        let ct: &Ciphertext = ct.try_into().map_err(|_| invalid_share())?;
        let pq_secret = self.dk.decapsulate(ct);
        let cl = self.classical.complete(x)?;
        let mut secret = Vec::with_capacity(64);
        secret.extend_from_slice(&pq_secret);
        secret.extend_from_slice(cl.secret_bytes());
        Ok(SharedSecret::from(secret))
    }

    fn pub_key(&self) -> &[u8] {
        &self.pub_key
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_agree_on_a_64_byte_secret() {
        let client = X25519MLKEM768.start().unwrap();
        assert_eq!(client.pub_key().len(), EK_LEN + X25519_LEN);
        let server = X25519MLKEM768.start_and_complete(client.pub_key()).unwrap();
        assert_eq!(server.group, NamedGroup::X25519MLKEM768);
        assert_eq!(server.pub_key.len(), CT_LEN + X25519_LEN);
        let client_secret = client.complete(&server.pub_key).unwrap();
        assert_eq!(client_secret.secret_bytes(), server.secret.secret_bytes());
        assert_eq!(client_secret.secret_bytes().len(), 64);
    }

    #[test]
    fn malformed_shares_are_refused() {
        let client = X25519MLKEM768.start().unwrap();
        let share = client.pub_key().to_vec();
        for bad in [&share[..share.len() - 1], &[][..], &share[..X25519_LEN]] {
            assert!(X25519MLKEM768.start_and_complete(bad).is_err());
        }
        let mut longer = share.clone();
        longer.push(0);
        assert!(X25519MLKEM768.start_and_complete(&longer).is_err());
        // Coefficients of 0xFFF are not reduced mod q = 3329: not a valid encapsulation key.
        let mut unreduced = share.clone();
        unreduced[..EK_LEN - 32].fill(0xFF);
        assert!(X25519MLKEM768.start_and_complete(&unreduced).is_err());
        // An all-zero X25519 point gives an all-zero secret, which ring refuses.
        let mut zero_point = share;
        zero_point[EK_LEN..].fill(0);
        assert!(X25519MLKEM768.start_and_complete(&zero_point).is_err());
        let server = X25519MLKEM768.start_and_complete(client.pub_key()).unwrap();
        assert!(client.complete(&server.pub_key[1..]).is_err());
    }
}
