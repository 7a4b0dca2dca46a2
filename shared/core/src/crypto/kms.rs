//! Encryption of tokens at rest: envelope encryption with a KMS key. Each seal asks KMS for a
//! fresh AES-256 data key, encrypts with AES-256-GCM, and stores the KMS-encrypted data key
//! beside the ciphertext; opening asks KMS to decrypt the data key. The plaintext key never
//! leaves memory and the KMS key never leaves KMS.
//!
//! The owner a secret is sealed for is bound twice: in KMS's encryption context (KMS refuses to
//! decrypt the data key for another owner, and CloudTrail names the owner) and as AES-GCM
//! associated data (the ciphertext fails its tag for another owner).

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{SealError, Sealer};

/// Binds ciphertexts to their purpose and owner: KMS refuses to decrypt them under another
/// context.
const CONTEXT_KEY: &str = "purpose";
const CONTEXT_VALUE: &str = "oauth-tokens";
const OWNER_KEY: &str = "owner";
/// Version 2 binds the owner (version 1 did not).
const ENVELOPE_VERSION: u8 = 2;

pub struct KmsSealer {
    client: aws_sdk_kms::Client,
    key_id: String,
}

/// What is stored (as JSON, inside the item).
#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u8,
    /// The data key, encrypted by KMS.
    key: String,
    nonce: String,
    ciphertext: String,
}

impl KmsSealer {
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }
}

/// The AES-256-GCM cipher of a data key KMS handed out.
fn cipher(key: &[u8]) -> Result<Aes256Gcm, SealError> {
    if key.len() != 32 {
        return Err(SealError(
            "KMS returned a data key of the wrong size".into(),
        ));
    }
    Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)))
}

/// A KMS call's failure, with the SDK's whole explanation (it never holds key material).
fn kms_failed<E: std::error::Error>(operation: &'static str) -> impl Fn(E) -> SealError {
    move |e| {
        SealError(format!(
            "KMS {operation} failed: {}",
            aws_sdk_kms::error::DisplayErrorContext(e)
        ))
    }
}

fn failed(what: &str) -> impl Fn(String) -> SealError + '_ {
    move |reason| SealError(format!("{what}: {reason}"))
}

#[async_trait]
impl Sealer for KmsSealer {
    async fn seal(&self, plaintext: &[u8], owner: &str) -> Result<String, SealError> {
        let data_key = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(CONTEXT_KEY, CONTEXT_VALUE)
            .encryption_context(OWNER_KEY, owner)
            .send()
            .await
            .map_err(kms_failed("GenerateDataKey"))?;
        let (Some(key), Some(encrypted_key)) = (data_key.plaintext(), data_key.ciphertext_blob())
        else {
            return Err(SealError("KMS returned no data key".into()));
        };
        let cipher = cipher(key.as_ref())?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|e| SealError(format!("encryption failed: {e}")))?;
        let envelope = Envelope {
            v: ENVELOPE_VERSION,
            key: STANDARD.encode(encrypted_key.as_ref()),
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ciphertext),
        };
        serde_json::to_string(&envelope).map_err(|e| failed("encoding")(e.to_string()))
    }

    async fn open(&self, sealed: &str, owner: &str) -> Result<Vec<u8>, SealError> {
        let envelope: Envelope = serde_json::from_str(sealed)
            .map_err(|e| failed("unreadable envelope")(e.to_string()))?;
        if envelope.v != ENVELOPE_VERSION {
            return Err(SealError(format!(
                "unknown envelope version {}",
                envelope.v
            )));
        }
        let decode = |field: &str| {
            STANDARD
                .decode(field)
                .map_err(|e| failed("unreadable envelope")(e.to_string()))
        };
        let (encrypted_key, nonce, ciphertext) = (
            decode(&envelope.key)?,
            decode(&envelope.nonce)?,
            decode(&envelope.ciphertext)?,
        );
        if nonce.len() != 12 {
            return Err(SealError("unreadable envelope: bad nonce".into()));
        }
        let data_key = self
            .client
            .decrypt()
            .ciphertext_blob(Blob::new(encrypted_key))
            .encryption_context(CONTEXT_KEY, CONTEXT_VALUE)
            .encryption_context(OWNER_KEY, owner)
            .send()
            .await
            .map_err(kms_failed("Decrypt"))?;
        let key = data_key
            .plaintext()
            .ok_or_else(|| SealError("KMS returned no plaintext key".into()))?;
        let cipher = cipher(key.as_ref())?;
        cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: ciphertext.as_ref(),
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| {
                SealError(
                    "the sealed tokens were altered, or belong to another key or owner".into(),
                )
            })
    }
}
