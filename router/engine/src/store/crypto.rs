//! Secrets at rest: AES-256-GCM for provider credentials, SHA-256 for API keys.
//!
//! Credentials are sealed with a random 96-bit nonce under the key from
//! `SWITCHBOARD_ENCRYPTION_KEY`, with the tenant, account and channel bound in as associated
//! data, so a ciphertext copied to another row does not decrypt. API keys carry 256 random
//! bits, so a plain SHA-256 is the right hash (a slow password hash buys nothing there).

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

const SEALED_PREFIX: &str = "v1";

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit as _, Mac as _};
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <hmac::Hmac<Sha256>>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Why a key or a ciphertext was refused. Never carries secret material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the encryption key must be 32 bytes, base64-encoded (got {0} bytes)")]
    BadKeyLength(usize),
    #[error("the encryption key is not valid base64")]
    BadKeyEncoding,
    #[error(
        "stored credentials could not be decrypted (wrong SWITCHBOARD_ENCRYPTION_KEY, or the row was tampered with)"
    )]
    Decrypt,
    #[error(
        "the encryption key does not open the credentials already stored (account {account_id}): \
         it is not the key they were sealed with. Start with that key (SWITCHBOARD_ENCRYPTION_KEY, \
         or on SQLite without it the key file beside the database)"
    )]
    WrongKey { account_id: String },
    #[error("could not read or write the key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
}

/// Seals and opens credentials.
#[derive(Clone)]
pub struct CredentialCipher {
    cipher: Aes256Gcm,
    /// HMAC-SHA256(key, "switchboard/derive/v1"): the root of keys for other purposes
    /// (see [`Self::derive_key`]), so the encryption key itself is used for nothing else.
    derive_root: [u8; 32],
}

impl fmt::Debug for CredentialCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialCipher([REDACTED])")
    }
}

impl CredentialCipher {
    /// A cipher from a base64 32-byte key.
    ///
    /// # Errors
    /// [`CryptoError`] when the key is not base64 or not 32 bytes.
    pub fn from_base64(key: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(key.trim())
            .map_err(|_| CryptoError::BadKeyEncoding)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKeyLength(bytes.len()));
        }
        let cipher = Aes256Gcm::new_from_slice(&bytes)
            .map_err(|_| CryptoError::BadKeyLength(bytes.len()))?;
        Ok(Self {
            cipher,
            derive_root: hmac_sha256(&bytes, b"switchboard/derive/v1"),
        })
    }

    /// A 32-byte key for `purpose` (e.g. signing media URLs), derived from the encryption
    /// key with HMAC-SHA256; it reveals nothing about the encryption key.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        hmac_sha256(&self.derive_root, purpose.as_bytes())
    }

    /// A fresh random key, base64-encoded.
    pub fn generate_key() -> String {
        STANDARD.encode(Key::<Aes256Gcm>::generate())
    }

    /// Reads the key file at `path`, creating it (mode 0600) with a fresh key if missing.
    /// Returns the cipher and whether the file was created.
    ///
    /// # Errors
    /// [`CryptoError`] when the file cannot be read or written, or holds a bad key.
    pub fn from_key_file(path: &Path) -> Result<(Self, bool), CryptoError> {
        let io = |source| CryptoError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(key) => Ok((Self::from_base64(&key)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate_key();
                write_private(path, &key).map_err(io)?;
                Ok((Self::from_base64(&key)?, true))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Encrypts `plaintext` bound to `aad`; the result is `v1.<nonce>.<ciphertext>`.
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> String {
        let nonce = Nonce::generate();
        let ct = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            // AES-GCM encryption fails only for inputs over 64 GiB.
            .unwrap_or_default();
        format!(
            "{SEALED_PREFIX}.{}.{}",
            STANDARD.encode(nonce),
            STANDARD.encode(ct)
        )
    }

    /// Decrypts what [`Self::seal`] produced with the same `aad`.
    ///
    /// # Errors
    /// [`CryptoError::Decrypt`] for a wrong key, a wrong `aad` or a tampered value.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<Vec<u8>, CryptoError> {
        let mut parts = sealed.split('.');
        let (Some(SEALED_PREFIX), Some(nonce), Some(ct), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Decrypt);
        };
        let nonce = STANDARD.decode(nonce).map_err(|_| CryptoError::Decrypt)?;
        let ct = STANDARD.decode(ct).map_err(|_| CryptoError::Decrypt)?;
        let nonce = Nonce::try_from(nonce.as_slice()).map_err(|_| CryptoError::Decrypt)?;
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Decrypt)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// A new API key: `sbk_` and 43 characters of base64url (256 random bits).
pub fn generate_api_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("sbk_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of an API key.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let c = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
        let sealed = c.seal(b"{\"auth_token\":\"t\"}", "ten_1|acc_1|twilio-whatsapp");
        assert!(!sealed.contains("auth_token"));
        assert_eq!(
            c.open(&sealed, "ten_1|acc_1|twilio-whatsapp").unwrap(),
            b"{\"auth_token\":\"t\"}"
        );
        // Another row's associated data, another key, or a flipped byte: refused.
        assert!(c.open(&sealed, "ten_2|acc_1|twilio-whatsapp").is_err());
        let other = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
        assert!(other.open(&sealed, "ten_1|acc_1|twilio-whatsapp").is_err());
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(
            c.open(
                &String::from_utf8(tampered).unwrap(),
                "ten_1|acc_1|twilio-whatsapp"
            )
            .is_err()
        );
        // Two seals of the same plaintext differ (random nonce).
        assert_ne!(
            sealed,
            c.seal(b"{\"auth_token\":\"t\"}", "ten_1|acc_1|twilio-whatsapp")
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(matches!(
            CredentialCipher::from_base64("c2hvcnQ="),
            Err(CryptoError::BadKeyLength(5))
        ));
        assert!(matches!(
            CredentialCipher::from_base64("!!!"),
            Err(CryptoError::BadKeyEncoding)
        ));
    }

    #[test]
    fn key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let (_, created) = CredentialCipher::from_key_file(&path).unwrap();
        assert!(created);
        let (_, created_again) = CredentialCipher::from_key_file(&path).unwrap();
        assert!(!created_again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn api_keys_are_random_and_hashed() {
        let a = generate_api_key();
        assert!(a.starts_with("sbk_") && a.len() == 47);
        assert_ne!(a, generate_api_key());
        assert_eq!(hash_api_key(&a).len(), 64);
        assert_ne!(hash_api_key(&a), a);
    }
}
