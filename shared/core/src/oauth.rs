//! The providers' OAuth endpoints (through the `oauth2` crate) and the few API calls connecting
//! needs: HubSpot token metadata (which portal), QuickBooks CompanyInfo and Preferences, revocation.
//!
//! Intuit authenticates the app with HTTP Basic; HubSpot wants the credentials in the form body.
//! Intuit answers RFC 6749 errors (`invalid_grant`); HubSpot's legacy body is
//! `{"status":"BAD_REFRESH_TOKEN",…}`, newer ones add the RFC fields. Both are read.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::{Config, OAuthApp, QBO_ACCOUNTING_SCOPE};
use crate::domain::{PortalId, Provider, RealmId};
use crate::error_class::ErrorClass;
use crate::http::bearer::FixedBearer;
use crate::http::pacing::Unpaced;
use crate::hubspot::{HubSpotClient, HubSpotLimits};
use crate::qbo::{QboClient, QboLimits};

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Used when a token response leaves out `expires_in` (HubSpot's documented lifetime is the
/// shorter of the two).
const DEFAULT_ACCESS_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// The longest any call to a provider's OAuth or connect endpoints may take (connect, send,
/// answer); the token keeper's lease is sized on it.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a token endpoint answers to a code exchange or a refresh.
pub struct TokenGrant {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    /// Seconds the access token lives.
    pub expires_in: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// The refresh token is no longer accepted: a person must reconnect.
    #[error("the provider refused the refresh token (invalid_grant)")]
    InvalidGrant,
    #[error("the token endpoint failed: {0}")]
    Transient(String),
}

/// The providers' token endpoints, as the token keeper uses them.
#[async_trait]
pub trait TokenEndpoint: Send + Sync {
    async fn refresh(
        &self,
        provider: Provider,
        refresh_token: &SecretString,
    ) -> Result<TokenGrant, RefreshError>;
}

#[derive(Debug, thiserror::Error)]
#[error("invalid OAuth configuration: {0}")]
pub struct OAuthConfigError(String);

/// What a provider answered when the install flow called it. Messages never carry a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider said no (a used or expired code, a refused token): retrying will not help.
    #[error("{} refused the request: {reason}", .provider.label())]
    Refused { provider: Provider, reason: String },
    /// The provider could not be reached or failed: try again later.
    #[error("{} is unavailable: {reason}", .provider.label())]
    Unavailable { provider: Provider, reason: String },
}

impl ProviderError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ProviderError::Refused { .. } => ErrorClass::Terminal,
            ProviderError::Unavailable { .. } => ErrorClass::Retryable,
        }
    }
}

/// What connecting and disconnecting need from the providers, beyond refreshing tokens.
#[async_trait]
pub trait ProviderApis: Send + Sync {
    /// The consent page to send a person to.
    fn authorize_url(
        &self,
        provider: Provider,
        redirect_uri: &str,
        state: &str,
    ) -> Result<String, ProviderError>;
    /// Exchanges an authorization code from a callback.
    async fn exchange_code(
        &self,
        provider: Provider,
        code: &str,
        redirect_uri: &str,
    ) -> Result<TokenGrant, ProviderError>;
    /// The HubSpot portal an access token belongs to (token metadata).
    async fn hubspot_portal(&self, access_token: &SecretString) -> Result<PortalId, ProviderError>;
    /// The company's `CompanyInfo` and `Preferences` documents.
    async fn qbo_company(
        &self,
        realm: &RealmId,
        access_token: &SecretString,
    ) -> Result<(Value, Value), ProviderError>;
    /// Uninstalls the app from the portal the access token belongs to (every token of the
    /// portal dies; HubSpot tells the portal's admins).
    async fn uninstall_hubspot_app(&self, access_token: &SecretString)
        -> Result<(), ProviderError>;
    /// Revokes a refresh token; one that is already dead counts as revoked.
    async fn revoke(
        &self,
        provider: Provider,
        refresh_token: &SecretString,
    ) -> Result<(), ProviderError>;
}

/// Both providers over HTTP: token endpoints through the `oauth2` crate, the few API calls the
/// connection needs through `reqwest`.
pub struct HttpProviders {
    http: reqwest::Client,
    hubspot: Client,
    qbo_oauth: Client,
    /// Connecting reads the company's documents once, outside any sync: no pacing.
    qbo: QboClient,
    hubspot_api_client: HubSpotClient,
    hubspot_api: String,
    hubspot_scopes: Vec<String>,
    hubspot_optional_scopes: Vec<String>,
    qbo_revoke_url: String,
    qbo_app: OAuthApp,
}

fn client(app: &OAuthApp, auth_type: AuthType) -> Result<Client, OAuthConfigError> {
    Ok(BasicClient::new(ClientId::new(app.client_id.clone()))
        .set_client_secret(ClientSecret::new(
            app.client_secret.expose_secret().to_owned(),
        ))
        .set_auth_uri(
            AuthUrl::new(app.authorize_url.clone()).map_err(|e| OAuthConfigError(e.to_string()))?,
        )
        .set_token_uri(
            TokenUrl::new(app.token_url.clone()).map_err(|e| OAuthConfigError(e.to_string()))?,
        )
        .set_auth_type(auth_type))
}

impl HttpProviders {
    pub fn new(config: &Config) -> Result<Self, OAuthConfigError> {
        let http = reqwest::Client::builder()
            // Token endpoints must never redirect us elsewhere with our credentials.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|e| OAuthConfigError(e.to_string()))?;
        Ok(Self {
            http,
            hubspot: client(&config.hubspot.oauth, AuthType::RequestBody)?,
            qbo_oauth: client(&config.qbo.oauth, AuthType::BasicAuth)?,
            qbo: QboClient::new(
                &config.qbo.api_base_url,
                Arc::new(Unpaced),
                QboLimits::default(),
            )
            .map_err(|e| OAuthConfigError(e.to_string()))?,
            hubspot_api_client: HubSpotClient::new(
                &config.hubspot.api_base_url,
                Arc::new(Unpaced),
                HubSpotLimits::default(),
            )
            .map_err(|e| OAuthConfigError(e.to_string()))?,
            hubspot_api: config.hubspot.api_base_url.clone(),
            hubspot_scopes: config.hubspot.scopes.clone(),
            hubspot_optional_scopes: config.hubspot.optional_scopes.clone(),
            qbo_revoke_url: config.qbo.revoke_url.clone(),
            qbo_app: config.qbo.oauth.clone(),
        })
    }

    fn client(&self, provider: Provider) -> &Client {
        match provider {
            Provider::HubSpot => &self.hubspot,
            Provider::Qbo => &self.qbo_oauth,
        }
    }
}

/// Classifies an HTTP answer of a provider API: 2xx passes, 429 and 5xx are retryable, the rest
/// is a refusal.
fn check_status(provider: Provider, what: &str, status: StatusCode) -> Result<(), ProviderError> {
    if status.is_success() {
        Ok(())
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(ProviderError::Unavailable {
            provider,
            reason: format!("{what} answered {status}"),
        })
    } else {
        Err(ProviderError::Refused {
            provider,
            reason: format!("{what} answered {status}"),
        })
    }
}

/// A transport failure, described without its URL (token metadata URLs carry a token).
fn unreachable(provider: Provider, what: &str, error: reqwest::Error) -> ProviderError {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_decode() {
        "answered an unreadable body"
    } else {
        "could not be reached"
    };
    ProviderError::Unavailable {
        provider,
        reason: format!("{what} {kind}"),
    }
}

#[async_trait]
impl ProviderApis for HttpProviders {
    fn authorize_url(
        &self,
        provider: Provider,
        redirect_uri: &str,
        state: &str,
    ) -> Result<String, ProviderError> {
        let redirect = redirect_url(provider, redirect_uri)?;
        let state = state.to_owned();
        let mut request = self
            .client(provider)
            .authorize_url(move || CsrfToken::new(state))
            .set_redirect_uri(Cow::Owned(redirect));
        match provider {
            Provider::HubSpot => {
                request = request.add_scopes(self.hubspot_scopes.iter().cloned().map(Scope::new));
                if !self.hubspot_optional_scopes.is_empty() {
                    request = request
                        .add_extra_param("optional_scope", self.hubspot_optional_scopes.join(" "));
                }
            }
            Provider::Qbo => request = request.add_scope(Scope::new(QBO_ACCOUNTING_SCOPE.into())),
        }
        Ok(request.url().0.to_string())
    }

    async fn exchange_code(
        &self,
        provider: Provider,
        code: &str,
        redirect_uri: &str,
    ) -> Result<TokenGrant, ProviderError> {
        let redirect = redirect_url(provider, redirect_uri)?;
        let answer = self
            .client(provider)
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_redirect_uri(Cow::Owned(redirect))
            .request_async(&self.http)
            .await;
        match answer {
            Ok(response) => Ok(TokenGrant {
                access_token: SecretString::from(response.access_token().secret().to_owned()),
                refresh_token: SecretString::from(
                    response
                        .refresh_token()
                        .map(|t| t.secret().to_owned())
                        .ok_or_else(|| ProviderError::Refused {
                            provider,
                            reason: "the token answer has no refresh token".into(),
                        })?,
                ),
                expires_in: response
                    .expires_in()
                    .unwrap_or(DEFAULT_ACCESS_LIFETIME)
                    .as_secs() as i64,
            }),
            Err(RequestTokenError::ServerResponse(error)) => Err(ProviderError::Refused {
                provider,
                reason: format!(
                    "the authorization code was not accepted ({})",
                    error.error()
                ),
            }),
            Err(RequestTokenError::Parse(_, body)) => Err(match error_status(&body) {
                Some(status) => ProviderError::Refused {
                    provider,
                    reason: format!("the authorization code was not accepted ({status})"),
                },
                None => ProviderError::Unavailable {
                    provider,
                    reason: "the token endpoint answered an unreadable body".into(),
                },
            }),
            Err(RequestTokenError::Request(_)) => Err(ProviderError::Unavailable {
                provider,
                reason: "the token endpoint could not be reached".into(),
            }),
            Err(RequestTokenError::Other(kind)) => Err(ProviderError::Unavailable {
                provider,
                reason: kind,
            }),
        }
    }

    async fn hubspot_portal(&self, access_token: &SecretString) -> Result<PortalId, ProviderError> {
        let provider = Provider::HubSpot;
        let what = "token metadata";
        let response = self
            .http
            .get(format!(
                "{}/oauth/v1/access-tokens/{}",
                self.hubspot_api,
                access_token.expose_secret()
            ))
            .send()
            .await
            .map_err(|e| unreachable(provider, what, e))?;
        check_status(provider, what, response.status())?;
        let body: Value = response
            .json()
            .await
            .map_err(|e| unreachable(provider, what, e))?;
        let hub_id = match &body["hub_id"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => String::new(),
        };
        PortalId::parse(hub_id).map_err(|_| ProviderError::Refused {
            provider,
            reason: "the token metadata names no portal (hub_id)".into(),
        })
    }

    async fn qbo_company(
        &self,
        realm: &RealmId,
        access_token: &SecretString,
    ) -> Result<(Value, Value), ProviderError> {
        let bearer = FixedBearer(access_token.clone());
        self.qbo
            .company(realm, &bearer)
            .company_documents()
            .await
            .map_err(|error| {
                let reason = format!("reading CompanyInfo and Preferences: {error}");
                match error.class() {
                    ErrorClass::Retryable => ProviderError::Unavailable {
                        provider: Provider::Qbo,
                        reason,
                    },
                    ErrorClass::Terminal => ProviderError::Refused {
                        provider: Provider::Qbo,
                        reason,
                    },
                }
            })
    }

    async fn uninstall_hubspot_app(
        &self,
        access_token: &SecretString,
    ) -> Result<(), ProviderError> {
        // The portal is whichever the token belongs to; the id only names the pacing budget.
        let portal = PortalId::parse("0").map_err(|e| ProviderError::Refused {
            provider: Provider::HubSpot,
            reason: e.to_string(),
        })?;
        let bearer = FixedBearer(access_token.clone());
        self.hubspot_api_client
            .portal(&portal, &bearer)
            .uninstall()
            .await
            .map_err(|error| {
                let reason = format!("app uninstall: {error}");
                match error.class() {
                    ErrorClass::Retryable => ProviderError::Unavailable {
                        provider: Provider::HubSpot,
                        reason,
                    },
                    ErrorClass::Terminal => ProviderError::Refused {
                        provider: Provider::HubSpot,
                        reason,
                    },
                }
            })
    }

    async fn revoke(
        &self,
        provider: Provider,
        refresh_token: &SecretString,
    ) -> Result<(), ProviderError> {
        let what = "token revocation";
        let request = match provider {
            Provider::Qbo => self
                .http
                .post(&self.qbo_revoke_url)
                .basic_auth(
                    &self.qbo_app.client_id,
                    Some(self.qbo_app.client_secret.expose_secret()),
                )
                .header(reqwest::header::ACCEPT, "application/json")
                .json(&serde_json::json!({ "token": refresh_token.expose_secret() })),
            Provider::HubSpot => self.http.delete(format!(
                "{}/oauth/v1/refresh-tokens/{}",
                self.hubspot_api,
                refresh_token.expose_secret()
            )),
        };
        let status = request
            .send()
            .await
            .map_err(|e| unreachable(provider, what, e))?
            .status();
        match status {
            // Already dead (revoked, uninstalled, unknown): nothing left to revoke.
            StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND => Ok(()),
            status => check_status(provider, what, status),
        }
    }
}

fn redirect_url(provider: Provider, redirect_uri: &str) -> Result<RedirectUrl, ProviderError> {
    RedirectUrl::new(redirect_uri.to_owned()).map_err(|_| ProviderError::Refused {
        provider,
        reason: "the callback address is not a URL".into(),
    })
}

/// The codes of a token-endpoint error body: HubSpot's legacy `status`, RFC 6749's `error`.
#[derive(Debug, Default, serde::Deserialize)]
struct ErrorCodes {
    status: Option<String>,
    error: Option<String>,
}

fn error_codes(body: &[u8]) -> ErrorCodes {
    serde_json::from_slice(body).unwrap_or_default()
}

/// The error code of a provider's token-endpoint error body (`status` first, else `error`).
fn error_status(body: &[u8]) -> Option<String> {
    let codes = error_codes(body);
    codes.status.or(codes.error)
}

/// Whether a token-endpoint error body says the refresh token is dead.
fn refused_refresh_token(body: &[u8]) -> bool {
    let codes = error_codes(body);
    codes.error.as_deref() == Some("invalid_grant")
        || codes.status.as_deref() == Some("BAD_REFRESH_TOKEN")
}

#[async_trait]
impl TokenEndpoint for HttpProviders {
    async fn refresh(
        &self,
        provider: Provider,
        refresh_token: &SecretString,
    ) -> Result<TokenGrant, RefreshError> {
        let client = self.client(provider);
        let presented = RefreshToken::new(refresh_token.expose_secret().to_owned());
        match client
            .exchange_refresh_token(&presented)
            .request_async(&self.http)
            .await
        {
            Ok(response) => {
                let expires_in = response.expires_in().unwrap_or(DEFAULT_ACCESS_LIFETIME);
                Ok(TokenGrant {
                    access_token: SecretString::from(response.access_token().secret().to_owned()),
                    // A provider that does not rotate answers without one (or with the same one).
                    refresh_token: match response.refresh_token() {
                        Some(rotated) => SecretString::from(rotated.secret().to_owned()),
                        None => refresh_token.clone(),
                    },
                    expires_in: expires_in.as_secs() as i64,
                })
            }
            Err(RequestTokenError::ServerResponse(error))
                if *error.error() == BasicErrorResponseType::InvalidGrant =>
            {
                Err(RefreshError::InvalidGrant)
            }
            Err(RequestTokenError::Parse(_, body)) if refused_refresh_token(&body) => {
                Err(RefreshError::InvalidGrant)
            }
            // Never the error's Debug: it may echo the request. Only its kind.
            Err(RequestTokenError::ServerResponse(error)) => Err(RefreshError::Transient(format!(
                "{} answered {}",
                provider.as_str(),
                error.error()
            ))),
            Err(RequestTokenError::Parse(_, _)) => Err(RefreshError::Transient(format!(
                "{} answered an unreadable token response",
                provider.as_str()
            ))),
            Err(RequestTokenError::Request(_)) => Err(RefreshError::Transient(format!(
                "{} token endpoint unreachable",
                provider.as_str()
            ))),
            Err(RequestTokenError::Other(kind)) => Err(RefreshError::Transient(kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_providers_refusal_bodies_are_recognised() {
        let cases: &[(&str, bool)] = &[
            (
                r#"{"error":"invalid_grant","error_description":"Token invalid"}"#,
                true,
            ),
            (
                r#"{"status":"BAD_REFRESH_TOKEN","message":"missing or invalid refresh token"}"#,
                true,
            ),
            (
                r#"{"status":"BAD_REFRESH_TOKEN","error":"invalid_grant"}"#,
                true,
            ),
            (r#"{"error":"invalid_client"}"#, false),
            (r#"{"status":"BAD_CLIENT_ID"}"#, false),
            ("<html>busy</html>", false),
        ];
        for (body, refused) in cases {
            assert_eq!(refused_refresh_token(body.as_bytes()), *refused, "{body}");
        }
    }
}
