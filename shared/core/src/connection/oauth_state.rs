//! OAuth `state` values: signed, expiring and single-use.
//!
//! A state is `<nonce>.<tag>`: 24 random bytes and an HMAC-SHA256 tag over them (both base64url).
//! What the flow must remember (which step, which portal, why) is stored under the nonce with an
//! expiry; a callback consumes it with an atomic take, so a replayed callback finds nothing. A
//! forged or altered state fails the tag check before anything is read.

use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{de::DeserializeOwned, Serialize};
use sha2::Sha256;

use crate::config::Config;
use crate::store::keys::connections::oauth_state as key_of;
use crate::store::{Item, Store, StoreError, Table};

type HmacSha256 = Hmac<Sha256>;

const NONCE_BYTES: usize = 24;
/// How long a person has to finish a provider's consent screen.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the state parameter is missing or malformed")]
    Malformed,
    #[error("the state parameter was not issued by this installation")]
    Tampered,
    #[error("the state parameter is unknown, already used or expired; start again")]
    UnknownOrUsed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct OAuthStates {
    store: Arc<dyn Store>,
    key: SecretSlice<u8>,
    ttl: Duration,
}

impl OAuthStates {
    /// `key` signs the states; it should be a secret of this installation.
    pub fn new(store: Arc<dyn Store>, key: SecretSlice<u8>, ttl: Duration) -> Self {
        Self { store, key, ttl }
    }

    fn tag(&self, nonce: &[u8]) -> Result<HmacSha256, StateError> {
        let mut mac = HmacSha256::new_from_slice(self.key.expose_secret())
            .map_err(|_| StateError::Tampered)?;
        mac.update(nonce);
        Ok(mac)
    }

    /// Remembers `data` and returns the state to send to the provider.
    pub async fn issue<T: Serialize>(
        &self,
        data: &T,
        now_epoch_seconds: i64,
    ) -> Result<String, StateError> {
        let mut nonce = [0u8; NONCE_BYTES];
        OsRng.fill_bytes(&mut nonce);
        let tag = self.tag(&nonce)?.finalize().into_bytes();
        let encoded = URL_SAFE_NO_PAD.encode(nonce);
        let item = Item::from_value(key_of(&encoded), data)?
            .expiring_at(now_epoch_seconds + self.ttl.as_secs() as i64);
        self.store.put(Table::Connections, item).await?;
        Ok(format!("{encoded}.{}", URL_SAFE_NO_PAD.encode(tag)))
    }

    /// Checks and consumes a state from a callback, returning what was remembered.
    pub async fn consume<T: DeserializeOwned>(
        &self,
        state: &str,
        now_epoch_seconds: i64,
    ) -> Result<T, StateError> {
        let (encoded, tag) = state.split_once('.').ok_or(StateError::Malformed)?;
        let nonce = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| StateError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| StateError::Malformed)?;
        if nonce.len() != NONCE_BYTES {
            return Err(StateError::Malformed);
        }
        // Constant-time comparison.
        self.tag(&nonce)?
            .verify_slice(&tag)
            .map_err(|_| StateError::Tampered)?;
        let item = self
            .store
            .take(Table::Connections, &key_of(encoded), now_epoch_seconds)
            .await?
            .ok_or(StateError::UnknownOrUsed)?;
        item.to_value().map_err(StateError::Store)
    }
}

/// The key that signs states, derived from the app secrets this installation already keeps (so
/// no extra secret needs managing; rotating either app secret invalidates pending states only).
pub fn installation_key(config: &Config) -> SecretSlice<u8> {
    use sha2::Digest;
    let digest = Sha256::new()
        .chain_update(b"hubspot-qbo oauth state key v1\0")
        .chain_update(
            config
                .hubspot
                .oauth
                .client_secret
                .expose_secret()
                .as_bytes(),
        )
        .chain_update([0])
        .chain_update(config.qbo.oauth.client_secret.expose_secret().as_bytes())
        .finalize();
    SecretSlice::from(digest.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Step {
        provider: String,
        portal: Option<String>,
    }

    const NOW: i64 = 1_900_000_000;

    fn states(store: Arc<MemoryStore>, key: &[u8]) -> OAuthStates {
        OAuthStates::new(store, SecretSlice::from(key.to_vec()), DEFAULT_TTL)
    }

    #[tokio::test]
    async fn a_state_round_trips_once() {
        let store = Arc::new(MemoryStore::new());
        let states = states(store, b"installation secret");
        let step = Step {
            provider: "qbo".into(),
            portal: Some("62515".into()),
        };
        let state = states.issue(&step, NOW).await.unwrap();
        assert!(
            state.len() < 100
                && state
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "{state}"
        );
        assert_eq!(
            states.consume::<Step>(&state, NOW + 60).await.unwrap(),
            step
        );
        assert!(
            matches!(
                states.consume::<Step>(&state, NOW + 61).await,
                Err(StateError::UnknownOrUsed)
            ),
            "replay"
        );
    }

    #[tokio::test]
    async fn bad_states_are_refused_with_their_reason() {
        let store = Arc::new(MemoryStore::new());
        let states_a = states(store.clone(), b"installation secret");
        let step = Step {
            provider: "hubspot".into(),
            portal: None,
        };
        let state = states_a.issue(&step, NOW).await.unwrap();
        let (nonce, tag) = state.split_once('.').unwrap();

        let forged_tag = format!("{nonce}.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        let other_key = states(store.clone(), b"another installation");
        let other_nonce = format!("{}.{tag}", URL_SAFE_NO_PAD.encode([7u8; NONCE_BYTES]));
        type Expected = fn(&StateError) -> bool;
        let cases: Vec<(String, Expected)> = vec![
            (String::new(), |e| matches!(e, StateError::Malformed)),
            ("no-dot".into(), |e| matches!(e, StateError::Malformed)),
            ("%%%.%%%".into(), |e| matches!(e, StateError::Malformed)),
            (forged_tag, |e| matches!(e, StateError::Tampered)),
            (other_nonce, |e| matches!(e, StateError::Tampered)),
        ];
        for (candidate, expected) in cases {
            let error = states_a.consume::<Step>(&candidate, NOW).await.unwrap_err();
            assert!(expected(&error), "{candidate:?} gave {error:?}");
        }
        let foreign = other_key.consume::<Step>(&state, NOW).await.unwrap_err();
        assert!(
            matches!(foreign, StateError::Tampered),
            "a state of another installation"
        );
        // None of the refusals used the state up.
        assert_eq!(states_a.consume::<Step>(&state, NOW).await.unwrap(), step);
    }

    #[tokio::test]
    async fn an_expired_state_is_refused() {
        let store = Arc::new(MemoryStore::new());
        let states = states(store, b"installation secret");
        let state = states
            .issue(
                &Step {
                    provider: "qbo".into(),
                    portal: None,
                },
                NOW,
            )
            .await
            .unwrap();
        let late = NOW + DEFAULT_TTL.as_secs() as i64;
        assert!(matches!(
            states.consume::<Step>(&state, late).await,
            Err(StateError::UnknownOrUsed)
        ));
    }
}
