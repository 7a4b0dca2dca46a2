//! People sign in to the admin page with HubSpot: the same OAuth app and the same browser-bound
//! `state` as the install flow. The portal HubSpot's consent was given for joins the browser's
//! session; a person who administers several portals signs in once per portal. The session
//! cookie is random, HttpOnly and `__Host-` pinned; only its SHA-256 is stored, with an expiry.
//! Every change a session makes carries the session's CSRF token, since the cookie is also sent
//! inside HubSpot's settings iframe (SameSite=None).

use std::sync::Arc;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::connection::install::{CallbackParams, ConnectError};
use crate::connection::oauth_state::{BrowserKey, OAuthStates};
use crate::domain::{PortalId, Provider};
use crate::oauth::ProviderApis;
use crate::store::keys::connections::admin_session as key_of;
use crate::store::{CasOutcome, Item, Store, StoreError, Table};

/// The session cookie's name (`__Host-` prefixed on https).
pub const SESSION_COOKIE: &str = "hsqbo-session";
/// How long a sign-in lasts.
pub const SESSION_SECONDS: i64 = 12 * 3600;
/// Where HubSpot sends the person back (register `<admin URL>/signin/callback` in the app).
pub const SIGNIN_CALLBACK_PATH: &str = "/signin/callback";

const RANDOM_BYTES: usize = 32;
const SAVE_ATTEMPTS: usize = 5;

fn random_token() -> String {
    let mut bytes = [0u8; RANDOM_BYTES];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The value of a session cookie.
pub struct SessionId(SecretString);

impl SessionId {
    fn generate() -> Self {
        SessionId(SecretString::from(random_token()))
    }

    /// A value read back from the cookie; anything else than one of ours is `None`.
    pub fn parse(cookie_value: &str) -> Option<Self> {
        let decoded = URL_SAFE_NO_PAD.decode(cookie_value.trim()).ok()?;
        (decoded.len() == RANDOM_BYTES)
            .then(|| SessionId(SecretString::from(cookie_value.trim().to_owned())))
    }

    /// The cookie value (only for the `Set-Cookie` header).
    pub fn cookie_value(&self) -> &str {
        self.0.expose_secret()
    }

    fn hashed(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.expose_secret().as_bytes()))
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId([REDACTED])")
    }
}

/// A signed-in person: the portals they signed in to.
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    pub portals: Vec<PortalId>,
    /// Sent back with every change (form field `csrf` or header `X-CSRF-Token`).
    csrf: String,
    pub ends_at: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("portals", &self.portals)
            .field("ends_at", &self.ends_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn may_see(&self, portal: &PortalId) -> bool {
        self.portals.contains(portal)
    }

    /// The token a page puts in its forms.
    pub fn csrf_token(&self) -> &str {
        &self.csrf
    }

    /// Whether `given` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        !given.is_empty() && bool::from(given.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

pub struct Sessions {
    store: Arc<dyn Store>,
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn get(&self, id: &SessionId, now: i64) -> Result<Option<Session>, StoreError> {
        Ok(self.read(id, now).await?.map(|(session, _)| session))
    }

    async fn read(&self, id: &SessionId, now: i64) -> Result<Option<(Session, u64)>, StoreError> {
        match self
            .store
            .get(Table::Connections, &key_of(&id.hashed()), now)
            .await?
        {
            Some(item) => Ok(Some((item.to_value()?, item.version))),
            None => Ok(None),
        }
    }

    /// Adds `portal` to the browser's live session, or opens a new one. The session's expiry
    /// is not extended: a sign-in lasts [`SESSION_SECONDS`] from its first portal.
    pub async fn join(
        &self,
        current: Option<SessionId>,
        portal: PortalId,
        now: i64,
    ) -> Result<SessionId, StoreError> {
        if let Some(id) = current {
            for _ in 0..SAVE_ATTEMPTS {
                let Some((mut session, version)) = self.read(&id, now).await? else {
                    break;
                };
                if session.may_see(&portal) {
                    return Ok(id);
                }
                session.portals.push(portal.clone());
                let item =
                    Item::from_value(key_of(&id.hashed()), &session)?.expiring_at(session.ends_at);
                match self
                    .store
                    .put_versioned(Table::Connections, item, Some(version))
                    .await?
                {
                    CasOutcome::Written { .. } => return Ok(id),
                    CasOutcome::VersionConflict => continue,
                }
            }
        }
        let id = SessionId::generate();
        let session = Session {
            portals: vec![portal],
            csrf: random_token(),
            ends_at: now + SESSION_SECONDS,
        };
        let item = Item::from_value(key_of(&id.hashed()), &session)?.expiring_at(session.ends_at);
        match self
            .store
            .put_versioned(Table::Connections, item, None)
            .await?
        {
            CasOutcome::Written { .. } => Ok(id),
            // 256 random bits never collide; a conflict means something is badly wrong.
            CasOutcome::VersionConflict => Err(StoreError::Rejected(
                "a new session's key was already taken".into(),
            )),
        }
    }

    /// Signs the browser out.
    pub async fn close(&self, id: &SessionId) -> Result<(), StoreError> {
        self.store
            .delete(Table::Connections, &key_of(&id.hashed()))
            .await
    }
}

/// What the sign-in's state remembers.
#[derive(Serialize, Deserialize)]
struct SignInStep {
    sign_in: bool,
    base_url: String,
}

/// Signing in with HubSpot.
pub struct SignIn {
    pub states: OAuthStates,
    pub providers: Arc<dyn ProviderApis>,
    pub sessions: Sessions,
    pub allowed_portals: Vec<PortalId>,
}

impl SignIn {
    /// HubSpot's consent page for this browser; `base_url` is the admin function's address.
    /// With `portal`, the page is HubSpot's for that account (`/oauth/<portal>/authorize`), so
    /// a person in several portals need not pick.
    pub async fn start(
        &self,
        base_url: &str,
        browser: &BrowserKey,
        portal: Option<&PortalId>,
        now: i64,
    ) -> Result<String, ConnectError> {
        let step = SignInStep {
            sign_in: true,
            base_url: base_url.to_owned(),
        };
        let state = self.states.issue(&step, browser, now).await?;
        let url = self.providers.authorize_url(
            Provider::HubSpot,
            &format!("{base_url}{SIGNIN_CALLBACK_PATH}"),
            &state,
        )?;
        Ok(match portal {
            Some(portal) => pinned_to(&url, portal),
            None => url,
        })
    }

    /// HubSpot sent the person back: the portal they consented for joins their session.
    pub async fn callback(
        &self,
        params: &CallbackParams,
        browser: Option<&BrowserKey>,
        current: Option<SessionId>,
        now: i64,
    ) -> Result<(SessionId, PortalId), ConnectError> {
        let state = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or(ConnectError::MissingParameter("state"))?;
        let step: SignInStep = self.states.consume(state, browser, now).await?;
        if !step.sign_in {
            return Err(ConnectError::WrongStep);
        }
        if let Some(error) = &params.error {
            return Err(ConnectError::Denied {
                provider: Provider::HubSpot,
                error: error.clone(),
                description: params.error_description.clone(),
            });
        }
        let code = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or(ConnectError::MissingParameter("code"))?;
        let redirect = format!("{}{SIGNIN_CALLBACK_PATH}", step.base_url);
        let grant = self
            .providers
            .exchange_code(Provider::HubSpot, code, &redirect)
            .await?;
        let portal = self.providers.hubspot_portal(&grant.access_token).await?;
        if !self.allowed_portals.is_empty() && !self.allowed_portals.contains(&portal) {
            return Err(ConnectError::PortalNotAllowed(portal));
        }
        let id = self.sessions.join(current, portal.clone(), now).await?;
        Ok((id, portal))
    }
}

/// HubSpot's authorize URL for one account: `…/oauth/authorize?…` → `…/oauth/<portal>/authorize?…`.
fn pinned_to(url: &str, portal: &PortalId) -> String {
    url.replacen("/oauth/authorize", &format!("/oauth/{portal}/authorize"), 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[test]
    fn a_sign_in_can_name_its_portal() {
        assert_eq!(
            pinned_to(
                "https://app.hubspot.com/oauth/authorize?client_id=1",
                &portal("62515")
            ),
            "https://app.hubspot.com/oauth/62515/authorize?client_id=1"
        );
    }

    const NOW: i64 = 1_900_000_000;

    fn portal(id: &str) -> PortalId {
        PortalId::parse(id).unwrap()
    }

    #[tokio::test]
    async fn a_session_gathers_the_portals_signed_in_to_and_expires() {
        let sessions = Sessions::new(Arc::new(MemoryStore::new()));
        let id = sessions.join(None, portal("101"), NOW).await.unwrap();
        let same = sessions
            .join(SessionId::parse(id.cookie_value()), portal("202"), NOW + 5)
            .await
            .unwrap();
        assert_eq!(same.cookie_value(), id.cookie_value());
        let session = sessions.get(&id, NOW + 10).await.unwrap().unwrap();
        assert!(session.may_see(&portal("101")) && session.may_see(&portal("202")));
        assert!(!session.may_see(&portal("303")));
        assert!(session.csrf_matches(session.csrf_token()));
        assert!(!session.csrf_matches("") && !session.csrf_matches("forged"));
        assert!(sessions
            .get(&id, NOW + SESSION_SECONDS + 1)
            .await
            .unwrap()
            .is_none());
        // A stale or foreign cookie starts a session of its own.
        let other = sessions
            .join(Some(SessionId::generate()), portal("303"), NOW)
            .await
            .unwrap();
        assert_ne!(other.cookie_value(), id.cookie_value());
        let theirs = sessions.get(&other, NOW).await.unwrap().unwrap();
        assert!(!theirs.may_see(&portal("101")));
        sessions.close(&id).await.unwrap();
        assert!(sessions.get(&id, NOW).await.unwrap().is_none());
    }

    #[test]
    fn secrets_stay_out_of_debug_output_and_bad_cookies_are_refused() {
        let id = SessionId::generate();
        assert!(!format!("{id:?}").contains(id.cookie_value()));
        let session = Session {
            portals: vec![portal("101")],
            csrf: "csrf-secret".into(),
            ends_at: NOW,
        };
        assert!(!format!("{session:?}").contains("csrf-secret"));
        assert!(SessionId::parse("short").is_none());
        assert!(SessionId::parse(id.cookie_value()).is_some());
    }
}
