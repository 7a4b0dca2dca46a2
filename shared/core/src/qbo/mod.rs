//! The QuickBooks Online Accounting API v3, typed: entities, queries, CDC, batch, idempotent
//! creates, sparse updates, and every fault as a [`QboError`] with its class. Every call is paced
//! on the company's shared budget (`http::pacing`), refreshes its token once on a 401, waits out
//! short throttles and passing failures, and hands longer ones back to the queue.
//! QuickBooks' formats are parsed here and nowhere else.

pub mod company;
pub mod entities;
pub mod fault;
pub mod query;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::domain::{QboRequestId, RealmId};
use crate::http::bearer::{Bearer, BearerError};
use crate::http::pacing::{Pacer, RateLimit, QBO_BATCHES, QBO_REQUESTS};
use crate::http::retry::{self, StatusClass, MAX_IN_PROCESS_RETRIES, MAX_IN_PROCESS_WAIT};
use entities::Entity;
pub use fault::{FaultCode, FaultError, QboError};
use query::Query;

/// The QBO API version every call names (older ones are retired).
pub const QBO_MINOR_VERSION: u32 = 75;
/// QuickBooks' largest batch.
pub const MAX_BATCH_ITEMS: usize = 30;
/// When QuickBooks throttles without saying for how long: Intuit's guidance is a minute.
pub const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(60);
/// How long one call may take (QuickBooks itself gives up on requests after 120 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(25);

/// The limits the client paces itself by (scaled for sandboxes that scale theirs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QboLimits {
    pub requests: RateLimit,
    pub batches: RateLimit,
}

impl Default for QboLimits {
    fn default() -> Self {
        Self {
            requests: QBO_REQUESTS,
            batches: QBO_BATCHES,
        }
    }
}

/// The API for every company of one app.
pub struct QboClient {
    http: reqwest::Client,
    api_base: String,
    pacer: Arc<dyn Pacer>,
    limits: QboLimits,
}

impl QboClient {
    pub fn new(api_base: &str, pacer: Arc<dyn Pacer>, limits: QboLimits) -> Result<Self, QboError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| QboError::Unavailable(e.to_string()))?;
        Ok(Self {
            http,
            api_base: api_base.trim_end_matches('/').to_owned(),
            pacer,
            limits,
        })
    }

    /// One company, with the bearer of its tokens.
    pub fn company<'a>(&'a self, realm: &'a RealmId, bearer: &'a dyn Bearer) -> Company<'a> {
        Company {
            client: self,
            realm,
            bearer,
        }
    }
}

/// One company's API.
pub struct Company<'a> {
    client: &'a QboClient,
    realm: &'a RealmId,
    bearer: &'a dyn Bearer,
}

/// A call's body.
enum Body {
    None,
    Json(Value),
    /// A query statement (`Content-Type: application/text`).
    Text(String),
}

fn bearer_error(error: BearerError) -> QboError {
    match error {
        BearerError::ReconnectRequired(reason) => QboError::ReconnectRequired(reason),
        BearerError::Unavailable(reason) => QboError::Auth(reason),
    }
}

impl Company<'_> {
    pub fn realm(&self) -> &RealmId {
        self.realm
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v3/company/{}/{path}", self.client.api_base, self.realm)
    }

    /// One call: paced, with a token, retried when that is safe and short.
    async fn call(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        body: Body,
        batch: bool,
    ) -> Result<Value, QboError> {
        let owner = self.realm.as_str();
        let mut token = self.bearer.token().await.map_err(bearer_error)?;
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            let pace = |limit: RateLimit| async move {
                self.client
                    .pacer
                    .acquire(&limit, owner)
                    .await
                    .map_err(|e| QboError::Paced(e.to_string()))
            };
            if batch {
                pace(self.client.limits.batches).await?;
            }
            pace(self.client.limits.requests).await?;
            let mut request = self
                .client
                .http
                .request(method.clone(), self.url(path))
                .query(&[("minorversion", QBO_MINOR_VERSION.to_string())])
                .query(params)
                .bearer_auth(token.expose_secret())
                .header(reqwest::header::ACCEPT, "application/json");
            request = match &body {
                Body::None => request,
                Body::Json(value) => request.json(value),
                Body::Text(text) => request
                    .header(reqwest::header::CONTENT_TYPE, "application/text")
                    .body(text.clone()),
            };
            let answer = request.send().await;
            attempt += 1;
            let response = match answer {
                Ok(response) => response,
                Err(error) => {
                    // Reads are safe to repeat; writes carry a requestid or a SyncToken.
                    if attempt <= MAX_IN_PROCESS_RETRIES {
                        tokio::time::sleep(retry::backoff(
                            attempt,
                            Duration::from_millis(100),
                            Duration::from_secs(1),
                        ))
                        .await;
                        continue;
                    }
                    return Err(QboError::Unavailable(transport(&error)));
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| QboError::Unavailable(transport(&e)))?;
            match retry::classify(status) {
                StatusClass::Success => {
                    let value: Value = serde_json::from_slice(&bytes)
                        .map_err(|e| QboError::Unreadable(e.to_string()))?;
                    if let Some(errors) =
                        value.get("Fault").and_then(|_| fault::parse_fault(&bytes))
                    {
                        return Err(QboError::Fault {
                            status: status.as_u16(),
                            errors,
                        });
                    }
                    return Ok(value);
                }
                StatusClass::Unauthorized if !refreshed => {
                    refreshed = true;
                    token = self
                        .bearer
                        .after_rejection(&token)
                        .await
                        .map_err(bearer_error)?;
                }
                StatusClass::Unauthorized => {
                    return Err(QboError::Unauthorized(
                        "the refreshed access token was refused too".into(),
                    ))
                }
                StatusClass::Throttled => {
                    let wait = retry::retry_after(&headers, time::OffsetDateTime::now_utc());
                    match wait {
                        Some(wait)
                            if wait <= MAX_IN_PROCESS_WAIT && attempt <= MAX_IN_PROCESS_RETRIES =>
                        {
                            tokio::time::sleep(wait).await;
                        }
                        _ => {
                            return Err(QboError::Throttled {
                                retry_after: Some(wait.unwrap_or(DEFAULT_THROTTLE_WAIT)),
                            })
                        }
                    }
                }
                StatusClass::Transient if attempt <= MAX_IN_PROCESS_RETRIES => {
                    tokio::time::sleep(retry::backoff(
                        attempt,
                        Duration::from_millis(200),
                        Duration::from_secs(2),
                    ))
                    .await;
                }
                StatusClass::Transient | StatusClass::Refused => {
                    return Err(match fault::parse_fault(&bytes) {
                        Some(errors) if errors.iter().any(|e| e.code == "3001") => {
                            QboError::Throttled {
                                retry_after: Some(DEFAULT_THROTTLE_WAIT),
                            }
                        }
                        Some(errors) => QboError::Fault {
                            status: status.as_u16(),
                            errors,
                        },
                        None if status.is_server_error() => {
                            QboError::Unavailable(format!("QuickBooks answered {status}"))
                        }
                        None => QboError::Unreadable(format!(
                            "QuickBooks answered {status} without a fault"
                        )),
                    })
                }
            }
        }
    }

    /// Reads one entity by id.
    pub async fn read<E: Entity>(&self, id: &str) -> Result<E, QboError> {
        let value = self
            .call(
                Method::GET,
                &format!("{}/{id}", E::RESOURCE),
                &[],
                Body::None,
                false,
            )
            .await?;
        entity_of::<E>(value)
    }

    /// One page of a query, as QuickBooks answered its rows.
    pub async fn query_values(&self, query: &Query) -> Result<Vec<Value>, QboError> {
        let value = self
            .call(
                Method::POST,
                "query",
                &[],
                Body::Text(query.statement()),
                false,
            )
            .await?;
        Ok(
            match value
                .get("QueryResponse")
                .and_then(|r| r.get(query.entity()))
            {
                Some(Value::Array(rows)) => rows.clone(),
                _ => Vec::new(),
            },
        )
    }

    /// Every page of a query, as QuickBooks answered its rows.
    pub async fn query_all_values(&self, query: &Query) -> Result<Vec<Value>, QboError> {
        let mut all = Vec::new();
        let mut page = query.clone();
        loop {
            let rows = self.query_values(&page).await?;
            let full = rows.len() as u32 == page.max();
            all.extend(rows);
            if !full {
                return Ok(all);
            }
            page = page.next_page();
        }
    }

    /// One page of a query.
    pub async fn query<E: Entity>(&self, query: &Query) -> Result<Vec<E>, QboError> {
        let rows = self.query_values(query).await?;
        serde_json::from_value(Value::Array(rows)).map_err(|e| QboError::Unreadable(e.to_string()))
    }

    /// Every page of a query.
    pub async fn query_all<E: Entity>(&self, query: &Query) -> Result<Vec<E>, QboError> {
        let rows = self.query_all_values(query).await?;
        serde_json::from_value(Value::Array(rows)).map_err(|e| QboError::Unreadable(e.to_string()))
    }

    /// The ids of the items with these SKUs, by lower-cased SKU (SKUs match whatever their
    /// case, as people type them).
    pub async fn items_by_sku(
        &self,
        skus: &[String],
    ) -> Result<std::collections::HashMap<String, String>, QboError> {
        let mut by_sku = std::collections::HashMap::new();
        for chunk in skus.chunks(100) {
            let query = Query::select(entities::Item::NAME)
                .with_projection("*, Sku")
                .any_of("Sku", chunk.iter().map(String::as_str));
            for item in self.query_all::<entities::Item>(&query).await? {
                if let (Some(sku), Some(id)) = (item.sku, item.id) {
                    by_sku.insert(sku.to_lowercase(), id);
                }
            }
        }
        Ok(by_sku)
    }

    /// Creates an entity; `requestid` makes a repeat return the first answer instead of a second
    /// entity.
    pub async fn create<E: Entity>(
        &self,
        entity: &E,
        requestid: &QboRequestId,
    ) -> Result<E, QboError> {
        let body = serde_json::to_value(entity).map_err(|e| QboError::Unreadable(e.to_string()))?;
        let value = self
            .call(
                Method::POST,
                E::RESOURCE,
                &[("requestid", requestid.to_string())],
                Body::Json(body),
                false,
            )
            .await?;
        entity_of::<E>(value)
    }

    /// Updates an entity (a sparse update when it says `sparse: true`); its `SyncToken` must be
    /// the current one, else the answer is a 5010 fault.
    pub async fn update<E: Entity>(&self, entity: &E) -> Result<E, QboError> {
        let body = serde_json::to_value(entity).map_err(|e| QboError::Unreadable(e.to_string()))?;
        let value = self
            .call(
                Method::POST,
                E::RESOURCE,
                &[("operation", "update".to_owned())],
                Body::Json(body),
                false,
            )
            .await?;
        entity_of::<E>(value)
    }

    /// Runs up to [`MAX_BATCH_ITEMS`] operations in one request. The answer has one result per
    /// item, matched by `bId`; a batch `requestid` (≤ 36 characters) makes a repeat of the same
    /// batch return the first answer.
    pub async fn batch(
        &self,
        items: &[BatchItem],
        requestid: Option<&str>,
    ) -> Result<HashMap<String, BatchResult>, QboError> {
        if items.is_empty() {
            return Ok(HashMap::new());
        }
        if items.len() > MAX_BATCH_ITEMS {
            return Err(QboError::Unreadable(format!(
                "a batch takes at most {MAX_BATCH_ITEMS} items, not {}",
                items.len()
            )));
        }
        let requests: Vec<Value> = items.iter().map(BatchItem::request).collect();
        let params: Vec<(&str, String)> = requestid
            .map(|id| vec![("requestid", id.to_owned())])
            .unwrap_or_default();
        let value = self
            .call(
                Method::POST,
                "batch",
                &params,
                Body::Json(json!({ "BatchItemRequest": requests })),
                true,
            )
            .await?;
        let answers: Vec<Map<String, Value>> = value
            .get("BatchItemResponse")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| QboError::Unreadable(e.to_string()))?
            .unwrap_or_default();
        let mut results = HashMap::new();
        for mut answer in answers {
            let Some(Value::String(bid)) = answer.remove("bId") else {
                continue;
            };
            let result = if answer.contains_key("Fault") {
                let bytes = serde_json::to_vec(&answer).unwrap_or_default();
                BatchResult::Fault(fault::parse_fault(&bytes).unwrap_or_default())
            } else {
                match answer.into_iter().next() {
                    Some((_, entity)) => BatchResult::Entity(entity),
                    None => BatchResult::Fault(Vec::new()),
                }
            };
            results.insert(bid, result);
        }
        Ok(results)
    }

    /// What changed since `changed_since` (within QuickBooks' 30 days), by entity name, with
    /// the answer's own time (the next `changedSince`). At most 1,000 objects in all: a caller
    /// that gets as many must read the window another way.
    pub async fn cdc(
        &self,
        entities: &[&str],
        changed_since: &str,
    ) -> Result<CdcChanges, QboError> {
        let value = self
            .call(
                Method::GET,
                "cdc",
                &[
                    ("entities", entities.join(",")),
                    ("changedSince", changed_since.to_owned()),
                ],
                Body::None,
                false,
            )
            .await?;
        let answer: CdcAnswer =
            serde_json::from_value(value).map_err(|e| QboError::Unreadable(e.to_string()))?;
        let mut changes = CdcChanges {
            time: answer.time,
            entities: HashMap::new(),
        };
        for response in answer.cdc_response {
            for group in response.query_response {
                for (name, rows) in group {
                    if let Value::Array(rows) = rows {
                        changes.entities.entry(name).or_default().extend(rows);
                    }
                }
            }
        }
        Ok(changes)
    }

    /// `CompanyInfo` and `Preferences`, as QuickBooks sends them.
    pub async fn company_documents(&self) -> Result<(Value, Value), QboError> {
        let info = self
            .call(
                Method::GET,
                &format!("companyinfo/{}", self.realm),
                &[],
                Body::None,
                false,
            )
            .await?;
        let preferences = self
            .call(Method::GET, "preferences", &[], Body::None, false)
            .await?;
        Ok((info, preferences))
    }
}

fn transport(error: &reqwest::Error) -> String {
    // Never the URL: it may carry a query with customer data.
    if error.is_timeout() {
        "the call timed out".into()
    } else if error.is_connect() {
        "QuickBooks could not be reached".into()
    } else {
        "the connection failed".into()
    }
}

/// The entity in a read or write answer (`{"Customer": {…}, "time": …}`).
fn entity_of<E: Entity>(mut value: Value) -> Result<E, QboError> {
    let entity = value
        .get_mut(E::NAME)
        .map(Value::take)
        .ok_or_else(|| QboError::Unreadable(format!("the answer has no {}", E::NAME)))?;
    serde_json::from_value(entity).map_err(|e| QboError::Unreadable(e.to_string()))
}

/// One operation of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItem {
    /// The caller's id for the item (≤ 10 characters with a batch `requestid`).
    pub bid: String,
    pub operation: BatchOperation,
    /// The entity's JSON key (`Customer`).
    pub entity: &'static str,
    pub body: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOperation {
    Create,
    Update,
    Delete,
}

impl BatchItem {
    pub fn of<E: Entity>(
        bid: impl Into<String>,
        operation: BatchOperation,
        entity: &E,
    ) -> Result<Self, QboError> {
        Ok(Self {
            bid: bid.into(),
            operation,
            entity: E::NAME,
            body: serde_json::to_value(entity).map_err(|e| QboError::Unreadable(e.to_string()))?,
        })
    }

    fn request(&self) -> Value {
        let operation = match self.operation {
            BatchOperation::Create => "create",
            BatchOperation::Update => "update",
            BatchOperation::Delete => "delete",
        };
        json!({ "bId": self.bid, "operation": operation, self.entity: self.body })
    }
}

/// What became of one batch item.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchResult {
    Entity(Value),
    Fault(Vec<FaultError>),
}

impl BatchResult {
    /// The entity, typed; a fault as the error it is.
    pub fn into_entity<E: DeserializeOwned>(self) -> Result<E, QboError> {
        match self {
            BatchResult::Entity(value) => {
                serde_json::from_value(value).map_err(|e| QboError::Unreadable(e.to_string()))
            }
            BatchResult::Fault(errors) => Err(QboError::Fault {
                status: StatusCode::BAD_REQUEST.as_u16(),
                errors,
            }),
        }
    }
}

#[derive(Deserialize)]
struct CdcAnswer {
    #[serde(rename = "CDCResponse", default)]
    cdc_response: Vec<CdcResponse>,
    #[serde(default)]
    time: String,
}

#[derive(Deserialize)]
struct CdcResponse {
    #[serde(rename = "QueryResponse", default)]
    query_response: Vec<Map<String, Value>>,
}

/// The changes a CDC call returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CdcChanges {
    /// QuickBooks' time of the answer.
    pub time: String,
    /// By entity name: the objects (a deleted one is a stub with `status: "Deleted"`).
    pub entities: HashMap<String, Vec<Value>>,
}

impl CdcChanges {
    pub fn count(&self) -> usize {
        self.entities.values().map(Vec::len).sum()
    }

    /// The changed objects of one entity, typed; `startPosition`-style keys are left out.
    pub fn of<E: Entity>(&self) -> Result<Vec<E>, QboError> {
        self.entities
            .get(E::NAME)
            .map(|rows| {
                rows.iter()
                    .map(|row| serde_json::from_value(row.clone()))
                    .collect::<Result<Vec<E>, _>>()
                    .map_err(|e| QboError::Unreadable(e.to_string()))
            })
            .unwrap_or_else(|| Ok(Vec::new()))
    }
}
