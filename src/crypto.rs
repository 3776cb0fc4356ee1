//! Sealing secrets at rest (AES-256-GCM with a key id and AAD), random tokens from the OS
//! CSPRNG, and hashing of our own bearer tokens.

use std::collections::HashMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("invalid encryption key list: {0}")]
    InvalidKeys(String),
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value uses unknown key id {0:?}")]
    UnknownKey(String),
    #[error("sealed value failed authentication (wrong row, column or key, or tampered)")]
    Authentication,
    #[error("the operating system's random number generator failed")]
    Random,
}

/// Where a sealed value lives. Bound into the AAD so a value copied to another row or
/// column fails to open.
#[derive(Debug, Clone, Copy)]
pub struct SealedAt<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub row: &'a [u8],
}

impl SealedAt<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(32 + self.row.len());
        aad.extend_from_slice(b"keyhaven/v1/");
        aad.extend_from_slice(self.table.as_bytes());
        aad.push(b'/');
        aad.extend_from_slice(self.column.as_bytes());
        aad.push(b'/');
        aad.extend_from_slice(self.row);
        aad
    }
}

/// The configured keys; the first one seals, all of them open.
#[derive(Clone)]
pub struct KeyRing {
    primary: String,
    keys: HashMap<String, Aes256Gcm>,
    /// Keys derived from the primary key for other purposes (HKDF-SHA256, see [`derive`]).
    ///
    /// [`derive`]: KeyRing::derive
    derivation: DerivationKey,
}

/// The primary key's bytes, kept only to derive purpose-bound keys; never printed.
#[derive(Clone)]
struct DerivationKey([u8; 32]);

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("KeyRing")
            .field("primary", &self.primary)
            .field("key_ids", &ids)
            .finish()
    }
}

impl KeyRing {
    /// Parses `kid:base64[,kid:base64…]`; each key is 32 bytes.
    pub fn parse(list: &str) -> Result<Self, CryptoError> {
        let mut primary = None;
        let mut derivation = None;
        let mut keys = HashMap::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (kid, b64) = entry
                .split_once(':')
                .ok_or_else(|| CryptoError::InvalidKeys("each entry must be kid:base64".into()))?;
            if kid.is_empty() || kid.len() > 64 || !kid.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(CryptoError::InvalidKeys(
                    "key ids must be 1-64 printable characters".into(),
                ));
            }
            let bytes = STANDARD
                .decode(b64.trim())
                .map_err(|_| CryptoError::InvalidKeys(format!("key {kid:?} is not base64")))?;
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| CryptoError::InvalidKeys(format!("key {kid:?} must be 32 bytes")))?;
            if keys.insert(kid.to_string(), cipher).is_some() {
                return Err(CryptoError::InvalidKeys(format!(
                    "key id {kid:?} appears twice"
                )));
            }
            if primary.is_none() {
                primary = Some(kid.to_string());
                let mut raw = [0u8; 32];
                raw.copy_from_slice(&bytes);
                derivation = Some(DerivationKey(raw));
            }
        }
        let (Some(primary), Some(derivation)) = (primary, derivation) else {
            return Err(CryptoError::InvalidKeys("no key given".into()));
        };
        Ok(Self {
            primary,
            keys,
            derivation,
        })
    }

    /// A new `kid:base64` entry with a fresh 256-bit key.
    pub fn generate_entry(kid: &str) -> Result<String, CryptoError> {
        Ok(format!("{kid}:{}", STANDARD.encode(random_bytes::<32>()?)))
    }

    /// This ring with `entry` (`kid:base64`) added as the new primary key.
    pub fn with_new_primary(&self, entry: &str) -> Result<Self, CryptoError> {
        let added = Self::parse(entry)?;
        let mut keys = self.keys.clone();
        for (kid, cipher) in added.keys {
            if keys.insert(kid.clone(), cipher).is_some() {
                return Err(CryptoError::InvalidKeys(format!(
                    "key id {kid:?} appears twice"
                )));
            }
        }
        Ok(Self {
            primary: added.primary,
            keys,
            derivation: added.derivation,
        })
    }

    /// HMAC-SHA256 of `input` under a key derived from the primary key for `purpose`.
    pub fn mac(&self, purpose: &str, input: &[u8]) -> Vec<u8> {
        hmac_sha256(&self.derive(purpose), &[input]).to_vec()
    }

    pub fn primary_id(&self) -> &str {
        &self.primary
    }

    /// A 256-bit key for one purpose (`info`), derived from the primary key with
    /// HKDF-SHA256: keys for different purposes are independent, and none reveals the
    /// sealing key. A new primary key derives new keys.
    pub fn derive(&self, info: &str) -> [u8; 32] {
        let hkdf = hkdf::Hkdf::<Sha256>::new(Some(b"keyhaven/derive/v1"), &self.derivation.0);
        let mut out = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 255 × 32.
        let _ = hkdf.expand(info.as_bytes(), &mut out);
        out
    }

    pub fn seal(&self, plaintext: &[u8], at: SealedAt<'_>) -> Result<Vec<u8>, CryptoError> {
        let cipher = self
            .keys
            .get(&self.primary)
            .ok_or_else(|| CryptoError::UnknownKey(self.primary.clone()))?;
        let nonce = random_bytes::<NONCE_LEN>()?;
        let aad = at.aad();
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Authentication)?;
        let kid = self.primary.as_bytes();
        let mut out = Vec::with_capacity(2 + kid.len() + NONCE_LEN + ciphertext.len());
        out.push(FORMAT_VERSION);
        out.push(kid.len() as u8); // kid length is checked ≤ 64 at parse time
        out.extend_from_slice(kid);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], at: SealedAt<'_>) -> Result<Vec<u8>, CryptoError> {
        let kid = sealed_key_id(sealed)?;
        let rest = &sealed[2 + kid.len()..];
        if rest.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Malformed);
        }
        let cipher = self
            .keys
            .get(kid)
            .ok_or_else(|| CryptoError::UnknownKey(kid.to_string()))?;
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let aad = at.aad();
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Authentication)
    }

    pub fn open_string(&self, sealed: &[u8], at: SealedAt<'_>) -> Result<String, CryptoError> {
        String::from_utf8(self.open(sealed, at)?).map_err(|_| CryptoError::Malformed)
    }

    /// True when the value was sealed with a key other than the primary one.
    pub fn needs_reseal(&self, sealed: &[u8]) -> bool {
        sealed_key_id(sealed)
            .map(|kid| kid != self.primary)
            .unwrap_or(false)
    }
}

fn sealed_key_id(sealed: &[u8]) -> Result<&str, CryptoError> {
    match sealed {
        [FORMAT_VERSION, len, rest @ ..] if rest.len() >= *len as usize => {
            std::str::from_utf8(&rest[..*len as usize]).map_err(|_| CryptoError::Malformed)
        }
        _ => Err(CryptoError::Malformed),
    }
}

/// HMAC-SHA256 with a 32-byte key (zero-padded to the block size, as HMAC does).
fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut buf = [0u8; N];
    OsRng
        .try_fill_bytes(&mut buf)
        .map_err(|_| CryptoError::Random)?;
    Ok(buf)
}

/// A URL-safe random token with 256 bits from the OS CSPRNG (states, links, API keys).
pub fn random_token() -> Result<String, CryptoError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// Our own tokens are high-entropy, so a plain SHA-256 is the right stored form.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// HMAC-SHA256 of `parts`, each prefixed with its length so that no two different
/// lists of parts give the same input.
pub fn keyed_hash(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(list: &str) -> KeyRing {
        KeyRing::parse(list).expect("valid key list")
    }

    const AT: SealedAt<'static> = SealedAt {
        table: "connections",
        column: "access_token",
        row: b"row-1",
    };

    #[test]
    fn seal_round_trip_and_binding() {
        let entry = KeyRing::generate_entry("k1").expect("random");
        let keys = ring(&entry);
        let sealed = keys.seal(b"secret", AT).expect("seal");
        assert_eq!(keys.open(&sealed, AT).expect("open"), b"secret");
        let other_row = SealedAt {
            row: b"row-2",
            ..AT
        };
        assert!(matches!(
            keys.open(&sealed, other_row),
            Err(CryptoError::Authentication)
        ));
        let other_column = SealedAt {
            column: "refresh_token",
            ..AT
        };
        assert!(keys.open(&sealed, other_column).is_err());
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(keys.open(&flipped, AT).is_err());
        assert!(keys.open(&[], AT).is_err());
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = KeyRing::generate_entry("old").expect("random");
        let new = KeyRing::generate_entry("new").expect("random");
        let sealed = ring(&old).seal(b"v", AT).expect("seal");
        let rotated = ring(&format!("{new},{old}"));
        assert!(rotated.needs_reseal(&sealed));
        assert_eq!(rotated.open(&sealed, AT).expect("open"), b"v");
        assert!(matches!(
            ring(&new).open(&sealed, AT),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn derived_keys_follow_the_primary_key_and_the_purpose() {
        let old = KeyRing::generate_entry("old").expect("random");
        let new = KeyRing::generate_entry("new").expect("random");
        let a = ring(&old);
        assert_eq!(a.derive("x"), ring(&format!("{old},{new}")).derive("x"));
        assert_ne!(a.derive("x"), a.derive("y"));
        assert_ne!(a.derive("x"), ring(&format!("{new},{old}")).derive("x"));
        assert_ne!(
            keyed_hash(&a.derive("x"), &[b"ab", b"c"]),
            keyed_hash(&a.derive("x"), &[b"a", b"bc"])
        );
    }

    #[test]
    fn rejects_bad_key_lists() {
        assert!(KeyRing::parse("").is_err());
        assert!(KeyRing::parse("k1:notbase64!").is_err());
        assert!(KeyRing::parse("k1:AAAA").is_err());
    }
}
