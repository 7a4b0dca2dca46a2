//! OAuth `state` values: signed, expiring and single-use.
//!
//! A state is `<nonce>.<tag>`: 24 random bytes and an HMAC-SHA256 tag over them (both base64url).
//! What the flow must remember (which step, which portal, why) is stored under the nonce with an
//! expiry; a callback consumes it with an atomic take, so a replayed callback finds nothing. A
//! forged or altered state fails the tag check before anything is read.
//!
//! Every state is bound to the browser that started the flow (RFC 6749 §10.12): the browser holds
//! a random [`BrowserKey`] in a cookie, the state stores only an HMAC of it, and a callback that
//! arrives without that cookie is refused — without using the state up, so a link sent to
//! someone else neither works for them nor spoils the flow of the person who started it.

use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::Sha256;

use crate::config::Config;
use crate::store::keys::connections::oauth_state as key_of;
use crate::store::{Item, Store, StoreError, Table};

type HmacSha256 = Hmac<Sha256>;

const NONCE_BYTES: usize = 24;
/// How long a person has to finish a provider's consent screen.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);

const BROWSER_KEY_BYTES: usize = 32;

/// The secret a browser keeps in a cookie for the flows it starts.
pub struct BrowserKey(SecretString);

impl BrowserKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; BROWSER_KEY_BYTES];
        OsRng.fill_bytes(&mut bytes);
        BrowserKey(SecretString::from(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A key read back from its cookie; anything else than one of ours is `None`.
    pub fn parse(cookie_value: &str) -> Option<Self> {
        let decoded = URL_SAFE_NO_PAD.decode(cookie_value.trim()).ok()?;
        (decoded.len() == BROWSER_KEY_BYTES)
            .then(|| BrowserKey(SecretString::from(cookie_value.trim().to_owned())))
    }

    /// The cookie value (only for the `Set-Cookie` header).
    pub fn cookie_value(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for BrowserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrowserKey([REDACTED])")
    }
}

/// What is stored under a nonce: the flow's data and the HMAC of the browser's key.
#[derive(Serialize, Deserialize)]
struct Stored<T> {
    browser: String,
    data: T,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the state parameter is missing or malformed")]
    Malformed,
    #[error("the state parameter was not issued by this installation")]
    Tampered,
    #[error("the state parameter is unknown, already used or expired; start again")]
    UnknownOrUsed,
    #[error(
        "this step belongs to a sign-in started in another browser (or this browser's cookie is \
         gone); start again from the install page in the browser you want to use"
    )]
    BrowserMismatch,
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

    fn browser_binding(&self, browser: &BrowserKey) -> Result<HmacSha256, StateError> {
        let mut mac = HmacSha256::new_from_slice(self.key.expose_secret())
            .map_err(|_| StateError::Tampered)?;
        mac.update(b"browser\0");
        mac.update(browser.cookie_value().as_bytes());
        Ok(mac)
    }

    /// Remembers `data` for the flow `browser` started and returns the state to send to the
    /// provider.
    pub async fn issue<T: Serialize>(
        &self,
        data: &T,
        browser: &BrowserKey,
        now_epoch_seconds: i64,
    ) -> Result<String, StateError> {
        let mut nonce = [0u8; NONCE_BYTES];
        OsRng.fill_bytes(&mut nonce);
        let tag = self.tag(&nonce)?.finalize().into_bytes();
        let encoded = URL_SAFE_NO_PAD.encode(nonce);
        let stored = Stored {
            browser: URL_SAFE_NO_PAD.encode(self.browser_binding(browser)?.finalize().into_bytes()),
            data,
        };
        let item = Item::from_value(key_of(&encoded), &stored)?
            .expiring_at(now_epoch_seconds + self.ttl.as_secs() as i64);
        self.store.put(Table::Connections, item).await?;
        Ok(format!("{encoded}.{}", URL_SAFE_NO_PAD.encode(tag)))
    }

    /// Checks and consumes a state from a callback in `browser`, returning what was remembered.
    /// A state of another browser is refused and left as it is.
    pub async fn consume<T: DeserializeOwned>(
        &self,
        state: &str,
        browser: Option<&BrowserKey>,
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
        let key = key_of(encoded);
        let peeked = self
            .store
            .get(Table::Connections, &key, now_epoch_seconds)
            .await?
            .ok_or(StateError::UnknownOrUsed)?;
        let stored: Stored<serde_json::Value> = peeked.to_value()?;
        let binding = URL_SAFE_NO_PAD
            .decode(&stored.browser)
            .map_err(|_| StateError::BrowserMismatch)?;
        self.browser_binding(browser.ok_or(StateError::BrowserMismatch)?)?
            .verify_slice(&binding)
            .map_err(|_| StateError::BrowserMismatch)?;
        let taken = self
            .store
            .take(Table::Connections, &key, now_epoch_seconds)
            .await?
            .ok_or(StateError::UnknownOrUsed)?;
        Ok(taken.to_value::<Stored<T>>()?.data)
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
        let browser = BrowserKey::generate();
        let step = Step {
            provider: "qbo".into(),
            portal: Some("62515".into()),
        };
        let state = states.issue(&step, &browser, NOW).await.unwrap();
        assert!(
            state.len() < 100
                && state
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "{state}"
        );
        assert_eq!(
            states
                .consume::<Step>(&state, Some(&browser), NOW + 60)
                .await
                .unwrap(),
            step
        );
        assert!(
            matches!(
                states
                    .consume::<Step>(&state, Some(&browser), NOW + 61)
                    .await,
                Err(StateError::UnknownOrUsed)
            ),
            "replay"
        );
    }

    #[tokio::test]
    async fn bad_states_are_refused_with_their_reason() {
        let store = Arc::new(MemoryStore::new());
        let states_a = states(store.clone(), b"installation secret");
        let browser = BrowserKey::generate();
        let step = Step {
            provider: "hubspot".into(),
            portal: None,
        };
        let state = states_a.issue(&step, &browser, NOW).await.unwrap();
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
            let error = states_a
                .consume::<Step>(&candidate, Some(&browser), NOW)
                .await
                .unwrap_err();
            assert!(expected(&error), "{candidate:?} gave {error:?}");
        }
        let foreign = other_key
            .consume::<Step>(&state, Some(&browser), NOW)
            .await
            .unwrap_err();
        assert!(
            matches!(foreign, StateError::Tampered),
            "a state of another installation"
        );
        // None of the refusals used the state up.
        assert_eq!(
            states_a
                .consume::<Step>(&state, Some(&browser), NOW)
                .await
                .unwrap(),
            step
        );
    }

    #[tokio::test]
    async fn an_expired_state_is_refused() {
        let store = Arc::new(MemoryStore::new());
        let states = states(store, b"installation secret");
        let browser = BrowserKey::generate();
        let state = states
            .issue(
                &Step {
                    provider: "qbo".into(),
                    portal: None,
                },
                &browser,
                NOW,
            )
            .await
            .unwrap();
        let late = NOW + DEFAULT_TTL.as_secs() as i64;
        assert!(matches!(
            states.consume::<Step>(&state, Some(&browser), late).await,
            Err(StateError::UnknownOrUsed)
        ));
    }

    #[tokio::test]
    async fn a_state_works_only_in_the_browser_that_started_the_flow() {
        let store = Arc::new(MemoryStore::new());
        let states = states(store, b"installation secret");
        let mine = BrowserKey::generate();
        let step = Step {
            provider: "hubspot".into(),
            portal: None,
        };
        let state = states.issue(&step, &mine, NOW).await.unwrap();
        let theirs = BrowserKey::generate();
        for browser in [None, Some(&theirs)] {
            assert!(
                matches!(
                    states.consume::<Step>(&state, browser, NOW).await,
                    Err(StateError::BrowserMismatch)
                ),
                "{browser:?}"
            );
        }
        assert_eq!(
            states
                .consume::<Step>(&state, Some(&mine), NOW)
                .await
                .unwrap(),
            step,
            "the refusals did not use the state up"
        );
    }

    #[test]
    fn browser_keys_are_parsed_strictly_and_never_printed() {
        let key = BrowserKey::generate();
        assert_eq!(key.cookie_value().len(), 43);
        let parsed = BrowserKey::parse(key.cookie_value()).unwrap();
        assert_eq!(parsed.cookie_value(), key.cookie_value());
        for bad in ["", "short", "!!!!", &"A".repeat(44)] {
            assert!(BrowserKey::parse(bad).is_none(), "{bad:?}");
        }
        assert!(!format!("{key:?}").contains(key.cookie_value()));
    }
}
