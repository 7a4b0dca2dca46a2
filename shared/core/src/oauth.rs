//! The providers' OAuth token endpoints, through the `oauth2` crate.
//!
//! Intuit authenticates the app with HTTP Basic; HubSpot wants the credentials in the form body.
//! Intuit answers RFC 6749 errors (`invalid_grant`); HubSpot's legacy body is
//! `{"status":"BAD_REFRESH_TOKEN",…}`, newer ones add the RFC fields. Both are read.

use std::time::Duration;

use async_trait::async_trait;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RefreshToken,
    RequestTokenError, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};

use crate::config::OAuthApp;
use crate::connection::tokens::{RefreshError, TokenEndpoint, TokenGrant};
use crate::connection::Provider;

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Used when a token response leaves out `expires_in` (HubSpot's documented lifetime is the
/// shorter of the two).
const DEFAULT_ACCESS_LIFETIME: Duration = Duration::from_secs(30 * 60);

pub struct HttpTokenEndpoint {
    http: reqwest::Client,
    hubspot: Client,
    qbo: Client,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid OAuth configuration: {0}")]
pub struct OAuthConfigError(String);

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

impl HttpTokenEndpoint {
    pub fn new(hubspot: &OAuthApp, qbo: &OAuthApp) -> Result<Self, OAuthConfigError> {
        let http = reqwest::Client::builder()
            // The token endpoint must never redirect us elsewhere with our credentials.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OAuthConfigError(e.to_string()))?;
        Ok(Self {
            http,
            hubspot: client(hubspot, AuthType::RequestBody)?,
            qbo: client(qbo, AuthType::BasicAuth)?,
        })
    }
}

/// Whether a token-endpoint error body says the refresh token is dead.
fn refused_refresh_token(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    value.get("error").and_then(|e| e.as_str()) == Some("invalid_grant")
        || value.get("status").and_then(|s| s.as_str()) == Some("BAD_REFRESH_TOKEN")
}

#[async_trait]
impl TokenEndpoint for HttpTokenEndpoint {
    async fn refresh(
        &self,
        provider: Provider,
        refresh_token: &SecretString,
    ) -> Result<TokenGrant, RefreshError> {
        let client = match provider {
            Provider::HubSpot => &self.hubspot,
            Provider::Qbo => &self.qbo,
        };
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
