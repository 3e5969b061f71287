//! Signed, expiring public media URLs, for channels that fetch media by link.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// Signs public media URLs: HMAC-SHA256 over the id and expiry, with a key derived from the
/// encryption key (never the key itself).
#[derive(Clone)]
pub(crate) struct UrlSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner([REDACTED])")
    }
}

impl UrlSigner {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, media_id: &str, expires: i64) -> hmac::Hmac<Sha256> {
        let mut mac = <hmac::Hmac<Sha256>>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(format!("media\n{media_id}\n{expires}").as_bytes());
        mac
    }

    pub(crate) fn sign(&self, media_id: &str, expires: i64) -> String {
        hex::encode(self.mac(media_id, expires).finalize().into_bytes())
    }

    /// Whether `sig` is valid for the id and expiry (constant time) and not expired.
    pub(crate) fn verify(&self, media_id: &str, expires: i64, sig: &str, now_s: i64) -> bool {
        let Ok(given) = hex::decode(sig) else {
            return false;
        };
        expires >= now_s && self.mac(media_id, expires).verify_slice(&given).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_id_and_expiry_and_expire() {
        let s = UrlSigner::new([7; 32]);
        let sig = s.sign("med_1", 1000);
        assert!(s.verify("med_1", 1000, &sig, 999));
        assert!(!s.verify("med_1", 1000, &sig, 1001), "expired");
        assert!(!s.verify("med_2", 1000, &sig, 0), "other id");
        assert!(!s.verify("med_1", 1001, &sig, 0), "other expiry");
        assert!(!s.verify("med_1", 1000, "zz", 0));
        assert!(!UrlSigner::new([8; 32]).verify("med_1", 1000, &sig, 0));
    }
}
