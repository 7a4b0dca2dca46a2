//! HubSpot's developer endpoints (action definitions, webhook settings and subscriptions),
//! called with the developer API key. The key travels in the query string, so no error here
//! ever carries a URL.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("HubSpot could not be reached: {0}")]
    Unreachable(String),
    #[error("HubSpot answered {status} to {what}: {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
    #[error("HubSpot answered something unreadable to {0}")]
    Unreadable(String),
}

pub struct DeveloperApi {
    http: reqwest::Client,
    api_base: String,
    app_id: String,
    developer_key: SecretString,
}

impl DeveloperApi {
    pub fn new(api_base: &str, app_id: &str, developer_key: SecretString) -> Self {
        Self {
            http: reqwest::Client::new(),
            api_base: api_base.trim_end_matches('/').to_owned(),
            app_id: app_id.to_owned(),
            developer_key,
        }
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// One call; the answer's JSON (`Null` when empty).
    pub async fn send(
        &self,
        what: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, RegistrationError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api_base))
            .query(&[("hapikey", self.developer_key.expose_secret())]);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| RegistrationError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| RegistrationError::Unreachable(e.without_url().to_string()))?;
        if !status.is_success() {
            return Err(RegistrationError::Refused {
                what: what.to_owned(),
                status: status.as_u16(),
                body: text,
            });
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|_| RegistrationError::Unreadable(what.to_owned()))
    }
}
