//! Publishes the action definitions to a HubSpot app (`/automation/v4/actions/{appId}`, with
//! the developer API key): each is created, or updated when the app has one of the same name.

use secrecy::SecretString;
use serde_json::Value;

use crate::hubspot::developer::DeveloperApi;
pub use crate::hubspot::developer::RegistrationError;

pub struct Registrar {
    api: DeveloperApi,
}

fn name_of(definition: &Value) -> Option<&str> {
    definition["labels"]["en"]["actionName"].as_str()
}

impl Registrar {
    pub fn new(api_base: &str, app_id: &str, developer_key: SecretString) -> Self {
        Self {
            api: DeveloperApi::new(api_base, app_id, developer_key),
        }
    }

    /// The app's live (not archived) definitions.
    pub async fn list(&self) -> Result<Vec<Value>, RegistrationError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(after) => {
                    format!("/automation/v4/actions/{}?after={after}", self.api.app_id())
                }
                None => format!("/automation/v4/actions/{}", self.api.app_id()),
            };
            let page = self
                .api
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
                    let path = format!("/automation/v4/actions/{}/{id}", self.api.app_id());
                    self.api
                        .send(name, reqwest::Method::PATCH, &path, Some(definition))
                        .await?
                }
                None => {
                    let path = format!("/automation/v4/actions/{}", self.api.app_id());
                    self.api
                        .send(name, reqwest::Method::POST, &path, Some(definition))
                        .await?
                }
            };
            published.push(saved);
        }
        Ok(published)
    }
}
