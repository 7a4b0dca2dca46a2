//! Secrets at rest: the sealer port and its KMS adapter (envelope encryption).

pub mod kms;

use async_trait::async_trait;

pub use kms::KmsSealer;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sealing tokens failed: {0}")]
pub struct SealError(pub String);

/// Encrypts secrets at rest (envelope encryption with a KMS key in AWS). `owner` names what
/// the secret belongs to (the item it is stored in): a sealed blob opens only for the owner it
/// was sealed for, so one copied into another owner's item is useless.
#[async_trait]
pub trait Sealer: Send + Sync {
    async fn seal(&self, plaintext: &[u8], owner: &str) -> Result<String, SealError>;
    async fn open(&self, sealed: &str, owner: &str) -> Result<Vec<u8>, SealError>;
}

/// Stand-ins for tests of code that seals.
#[cfg(any(test, feature = "test-util"))]
pub mod fakes {
    use super::*;

    /// Reversible stand-in for KMS: enough to prove nothing is stored in plain text, and that
    /// a blob opens only for its owner.
    pub struct ReversingSealer;

    #[async_trait]
    impl Sealer for ReversingSealer {
        async fn seal(&self, plaintext: &[u8], owner: &str) -> Result<String, SealError> {
            let mut bytes = owner.as_bytes().to_vec();
            bytes.push(0);
            bytes.extend_from_slice(plaintext);
            Ok(bytes.iter().rev().map(|b| format!("{b:02x}")).collect())
        }
        async fn open(&self, sealed: &str, owner: &str) -> Result<Vec<u8>, SealError> {
            let bytes: Result<Vec<u8>, _> = (0..sealed.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(sealed.get(i..i + 2).unwrap_or("zz"), 16))
                .collect();
            let mut bytes = bytes.map_err(|e| SealError(e.to_string()))?;
            bytes.reverse();
            let prefix = owner.len() + 1;
            if bytes.len() < prefix
                || &bytes[..owner.len()] != owner.as_bytes()
                || bytes[owner.len()] != 0
            {
                return Err(SealError("sealed for another owner".into()));
            }
            Ok(bytes.split_off(prefix))
        }
    }
}
