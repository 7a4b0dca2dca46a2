//! Publishes the action definitions to a HubSpot app (`/automation/v4/actions/{appId}`, with
//! the developer API key): each is created, or updated when the app has one of the same name.
//! The key travels in the query string, so no error here ever carries a URL.

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

pub struct Registrar {
    http: reqwest::Client,
    api_base: String,
    app_id: String,
    developer_key: SecretString,
}

fn name_of(definition: &Value) -> Option<&str> {
    definition["labels"]["en"]["actionName"].as_str()
}

impl Registrar {
    pub fn new(api_base: &str, app_id: &str, developer_key: SecretString) -> Self {
        Self {
            http: reqwest::Client::new(),
            api_base: api_base.trim_end_matches('/').to_owned(),
            app_id: app_id.to_owned(),
            developer_key,
        }
    }

    async fn send(
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

    /// The app's live (not archived) definitions.
    pub async fn list(&self) -> Result<Vec<Value>, RegistrationError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(after) => format!("/automation/v4/actions/{}?after={after}", self.app_id),
                None => format!("/automation/v4/actions/{}", self.app_id),
            };
            let page = self
                .send("the definitions list", reqwest::Method::GET, &path, None)
                .await?;
            all.extend(page["results"].as_array().cloned().unwrap_or_default());
            after = page["paging"]["next"]["after"].as_str().map(str::to_owned);
            if after.is_none() {
                return Ok(all);
            }
        }
    }

    /// Creates or updates each definition; answers them as HubSpot holds them.
    pub async fn publish(&self, definitions: &[Value]) -> Result<Vec<Value>, RegistrationError> {
        let existing = self.list().await?;
        let mut published = Vec::new();
        for definition in definitions {
            let name = name_of(definition).unwrap_or("an action");
            let id = existing
                .iter()
                .find(|d| name_of(d) == Some(name))
                .and_then(|d| d["id"].as_str());
            let saved = match id {
                Some(id) => {
                    let path = format!("/automation/v4/actions/{}/{id}", self.app_id);
                    self.send(name, reqwest::Method::PATCH, &path, Some(definition))
                        .await?
                }
                None => {
                    let path = format!("/automation/v4/actions/{}", self.app_id);
                    self.send(name, reqwest::Method::POST, &path, Some(definition))
                        .await?
                }
            };
            published.push(saved);
        }
        Ok(published)
    }
}
