//! The dropdowns of the actions' input fields (HubSpot's external options, `optionsUrl`):
//! the portal's QuickBooks accounts, and that account's customers, items and payment terms,
//! searchable by the text typed and paged. Signed like the calls; the shapes HubSpot sends are
//! unconfirmed, so both plain values and `{type, value}` inputs are read.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::inputs;
use super::service::{ActionError, ActionService, Answer, Call};
use crate::connection::registry::ConnectionStatus;
use crate::connection::tokens::KeeperBearer;
use crate::domain::PortalId;
use crate::qbo::entities::{Customer, Entity, Item, Term};
use crate::qbo::query::Query;

/// How many options one answer lists.
pub const OPTIONS_PAGE: u32 = 100;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionsRequest {
    pub origin: super::request::Origin,
    pub input_field_name: String,
    #[serde(default)]
    pub input_fields: BTreeMap<String, Value>,
    #[serde(default)]
    pub fetch_options: FetchOptions,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct FetchOptions {
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub after: Option<String>,
}

impl OptionsRequest {
    /// An input already chosen: a plain value or `{"type": …, "value": …}`.
    fn input(&self, name: &str) -> Option<String> {
        let value = self.input_fields.get(name)?;
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Object(o) => o.get("value")?.as_str()?.to_owned(),
            _ => return None,
        };
        let text = text.trim().to_owned();
        (!text.is_empty()).then_some(text)
    }
}

/// One option as HubSpot shows it.
fn option(label: &str, value: &str, description: Option<String>) -> Value {
    let mut option = json!({"label": label, "value": value});
    if let Some(description) = description {
        option["description"] = Value::String(description);
    }
    option
}

impl ActionService {
    /// Answers one options request.
    pub async fn options(&self, call: Call<'_>) -> Answer {
        if let Err(answer) = self.authenticate(&call) {
            return answer;
        }
        let request: OptionsRequest = match serde_json::from_slice(call.body) {
            Ok(request) => request,
            Err(error) => {
                return Answer::error(
                    400,
                    "malformed_request",
                    format!("the request body is not an options request: {error}"),
                )
            }
        };
        let portal = match PortalId::parse(request.origin.portal_id.to_string()) {
            Ok(portal) => portal,
            Err(error) => return Answer::error(400, "malformed_request", error.to_string()),
        };
        match self.list_options(&portal, &request).await {
            Ok(body) => Answer {
                status: 200,
                body,
                retry_after: None,
            },
            Err(ActionError::Refused { category, message }) => {
                // An empty list with the reason: the editor stays usable.
                Answer {
                    status: 200,
                    body: json!({"options": [], "searchable": false, "errorCode": category, "message": message}),
                    retry_after: None,
                }
            }
            Err(error) => Answer::error(503, "try_again", error.to_string()),
        }
    }

    async fn list_options(
        &self,
        portal: &PortalId,
        request: &OptionsRequest,
    ) -> Result<Value, ActionError> {
        let now = self.clock.now_seconds();
        if request.input_field_name == inputs::ACCOUNT {
            let options: Vec<Value> = self
                .connections
                .of_portal(portal, now)
                .await?
                .iter()
                .filter(|c| c.status != ConnectionStatus::Disconnected)
                .map(|c| {
                    let note = (c.status == ConnectionStatus::ReconnectRequired)
                        .then(|| "needs a reconnect".to_owned());
                    option(&c.company_name, c.realm_id.as_str(), note)
                })
                .collect();
            return Ok(json!({"options": options, "searchable": false}));
        }
        let connection = self
            .connection_for(portal, request.input(inputs::ACCOUNT).as_deref(), now)
            .await?;
        let bearer =
            KeeperBearer::both(&self.tokens, &connection.realm_id, &connection.portal_id).0;
        let qbo = self.engine.qbo().company(&connection.realm_id, &bearer);
        let start: u32 = request
            .fetch_options
            .after
            .as_deref()
            .and_then(|a| a.parse().ok())
            .unwrap_or(1);
        let typed = request
            .fetch_options
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty());
        let (options, searchable): (Vec<Value>, bool) = match request.input_field_name.as_str() {
            inputs::CUSTOMER => {
                let mut query = Query::select(Customer::NAME);
                if let Some(typed) = typed {
                    query = query.starts_with("DisplayName", typed);
                }
                let found: Vec<Customer> = qbo.query(&query.page(start, OPTIONS_PAGE)).await?;
                let options = found
                    .iter()
                    .filter_map(|c| {
                        let name = c.display_name.as_deref()?;
                        Some(option(name, c.id.as_deref()?, c.email().map(str::to_owned)))
                    })
                    .collect();
                (options, true)
            }
            inputs::ITEM => {
                let mut query = Query::select(Item::NAME).with_projection("*, Sku");
                if let Some(typed) = typed {
                    query = query.starts_with("Name", typed);
                }
                let found: Vec<Item> = qbo.query(&query.page(start, OPTIONS_PAGE)).await?;
                let options = found
                    .iter()
                    .filter_map(|i| {
                        let name = i.name.as_deref()?;
                        Some(option(
                            name,
                            i.id.as_deref()?,
                            i.sku.as_ref().map(|s| format!("SKU {s}")),
                        ))
                    })
                    .collect();
                (options, true)
            }
            inputs::TERM => {
                let found: Vec<Term> = qbo
                    .query(&Query::select(Term::NAME).page(start, OPTIONS_PAGE))
                    .await?;
                let options = found
                    .iter()
                    .filter_map(|t| {
                        Some(option(
                            t.0.get("Name")?.as_str()?,
                            t.0.get("Id")?.as_str()?,
                            None,
                        ))
                    })
                    .collect();
                (options, false)
            }
            other => {
                return Err(ActionError::refused(
                    "unknown_field",
                    format!("the field {other:?} has no options here"),
                ))
            }
        };
        let mut body = json!({"options": options, "searchable": searchable});
        if options_full(&body) {
            body["after"] = Value::String((start + OPTIONS_PAGE).to_string());
        }
        Ok(body)
    }
}

/// A full page: there may be more.
fn options_full(body: &Value) -> bool {
    body["options"]
        .as_array()
        .is_some_and(|o| o.len() as u32 >= OPTIONS_PAGE)
}
