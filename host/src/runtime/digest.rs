//! The sha256 digest of a plugin file: parsed once from a pin (`hex` or
//! `sha256:hex`, any case), computed once per load, shown as lowercase hex.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A sha256 digest, such as the one a plan pins a plugin to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

/// Why a pin is not a sha256 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a sha256 digest (64 hex digits, optionally prefixed with `sha256:`)")]
pub struct InvalidDigest {
    /// The text as given (cut to 100 characters).
    pub text: String,
}

impl Sha256Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, without a prefix.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for Sha256Digest {
    type Err = InvalidDigest;

    fn from_str(text: &str) -> Result<Self, InvalidDigest> {
        let invalid = || InvalidDigest {
            text: text.chars().take(100).collect(),
        };
        let hex_text = text.strip_prefix("sha256:").unwrap_or(text);
        if hex_text.len() != 64 {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_text, &mut bytes).map_err(|_| invalid())?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl serde::Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parses_prefixed_and_uppercase_pins_and_prints_lowercase_hex() {
        let digest = Sha256Digest::of(b"abc");
        let hex = digest.to_hex();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hex.parse::<Sha256Digest>(), Ok(digest));
        assert_eq!(
            format!("sha256:{}", hex.to_uppercase()).parse::<Sha256Digest>(),
            Ok(digest)
        );
        assert_eq!(digest.to_string(), hex);
    }

    #[test]
    fn digest_refuses_short_long_and_non_hex_pins() {
        for bad in [
            "",
            "abc",
            &"a".repeat(63),
            &"a".repeat(65),
            &"g".repeat(64),
            "sha256:",
        ] {
            assert!(bad.parse::<Sha256Digest>().is_err(), "{bad:?}");
        }
        // A multi-byte character cannot make the hex decoder panic.
        assert!(
            format!("{}é", "a".repeat(62))
                .parse::<Sha256Digest>()
                .is_err()
        );
    }
}
