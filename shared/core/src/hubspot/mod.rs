//! HubSpot's CRM API, typed: objects v3 (read, list, batch read/create/update/upsert/archive,
//! search with paging), associations v4, properties, and the app uninstall. Every answer's
//! errors, including the per-item errors of a 207, become [`HubSpotError`]s with their class.
//! Calls are paced on the portal's shared budget (search on its own), refresh the token once on
//! a 401, wait out short throttles and passing failures, and hand longer ones back.
//! HubSpot's formats are parsed here and nowhere else.

pub mod developer;
pub mod signature;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::domain::PortalId;
use crate::error_class::ErrorClass;
use crate::http::bearer::{Bearer, BearerError};
use crate::http::pacing::{Pacer, RateLimit, HUBSPOT_REQUESTS, HUBSPOT_SEARCHES};
use crate::http::retry::{self, StatusClass, MAX_IN_PROCESS_RETRIES, MAX_IN_PROCESS_WAIT};

/// HubSpot's largest object batch.
pub const MAX_BATCH_INPUTS: usize = 100;
/// Search: the largest page, and the most results one query can page through.
pub const MAX_SEARCH_PAGE: u32 = 200;
pub const MAX_SEARCH_RESULTS: u64 = 10_000;
/// Listing: the largest page.
pub const MAX_LIST_PAGE: u32 = 100;
const CALL_TIMEOUT: Duration = Duration::from_secs(25);

/// A CRM record as HubSpot answers it. Property values are strings (or null).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrmObject {
    pub id: String,
    #[serde(default)]
    pub properties: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub archived: bool,
    /// Upsert answers: whether the record was created.
    #[serde(default)]
    pub new: Option<bool>,
    /// Batch write answers: the `objectWriteTraceId` of the input this result is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_write_trace_id: Option<String>,
}

impl CrmObject {
    /// A property's value; an empty string counts as none.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .get(name)
            .and_then(|v| v.as_deref())
            .filter(|v| !v.is_empty())
    }
}

/// One item of a batch write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInput {
    /// The record id (update) or the unique value (upsert); absent on create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_property: Option<String>,
    pub properties: BTreeMap<String, String>,
    /// Required on creates for per-item errors (207) instead of an all-or-nothing batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_write_trace_id: Option<String>,
}

/// A per-item error of a batch (207), with the ids or values it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemError {
    pub category: String,
    pub message: String,
    /// `context.ids` (or other context values) the error names.
    pub ids: Vec<String>,
    /// The `objectWriteTraceId` of the input it belongs to, when one was sent.
    pub trace_id: Option<String>,
}

/// A batch answer: what succeeded and what did not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    pub results: Vec<CrmObject>,
    pub errors: Vec<ItemError>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubSpotError {
    #[error("HubSpot refused the request ({category}): {message}")]
    Api {
        status: u16,
        category: String,
        message: String,
    },
    #[error("HubSpot throttled the request")]
    Throttled { retry_after: Option<Duration> },
    #[error("HubSpot did not accept the portal's token: {0}")]
    Unauthorized(String),
    #[error("HubSpot is unavailable: {0}")]
    Unavailable(String),
    #[error("HubSpot answered something unreadable: {0}")]
    Unreadable(String),
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    ReconnectRequired(String),
    #[error("no HubSpot call slot became free in time: {0}")]
    Paced(String),
}

impl HubSpotError {
    pub fn class(&self) -> ErrorClass {
        match self {
            HubSpotError::ReconnectRequired(_) => ErrorClass::Terminal,
            HubSpotError::Api { status, .. } if *status >= 500 => ErrorClass::Retryable,
            HubSpotError::Api { .. } => ErrorClass::Terminal,
            _ => ErrorClass::Retryable,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HubSpotError::Throttled { retry_after } => *retry_after,
            _ => None,
        }
    }

    pub fn category(&self) -> &'static str {
        match self {
            HubSpotError::Throttled { .. } | HubSpotError::Paced(_) => "rate_limited",
            HubSpotError::Unavailable(_) | HubSpotError::Unreadable(_) => "hubspot_unavailable",
            HubSpotError::Unauthorized(_) | HubSpotError::Auth(_) => "token_expired",
            HubSpotError::ReconnectRequired(_) => "reconnect_required",
            HubSpotError::Api {
                status, category, ..
            } => match category.as_str() {
                "OBJECT_NOT_FOUND" => "object_not_found",
                "CONFLICT" => "duplicate_record",
                "MISSING_SCOPES" => "missing_scopes",
                _ if *status >= 500 => "hubspot_unavailable",
                _ => "hubspot_validation",
            },
        }
    }
}

/// The limits the client paces itself by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HubSpotLimits {
    pub requests: RateLimit,
    pub searches: RateLimit,
}

impl Default for HubSpotLimits {
    fn default() -> Self {
        Self {
            requests: HUBSPOT_REQUESTS,
            searches: HUBSPOT_SEARCHES,
        }
    }
}

pub struct HubSpotClient {
    http: reqwest::Client,
    api_base: String,
    pacer: Arc<dyn Pacer>,
    limits: HubSpotLimits,
}

impl HubSpotClient {
    pub fn new(
        api_base: &str,
        pacer: Arc<dyn Pacer>,
        limits: HubSpotLimits,
    ) -> Result<Self, HubSpotError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| HubSpotError::Unavailable(e.to_string()))?;
        Ok(Self {
            http,
            api_base: api_base.trim_end_matches('/').to_owned(),
            pacer,
            limits,
        })
    }

    pub fn portal<'a>(&'a self, portal: &'a PortalId, bearer: &'a dyn Bearer) -> Portal<'a> {
        Portal {
            client: self,
            portal,
            bearer,
        }
    }
}

/// One portal's API.
pub struct Portal<'a> {
    client: &'a HubSpotClient,
    portal: &'a PortalId,
    bearer: &'a dyn Bearer,
}

fn bearer_error(error: BearerError) -> HubSpotError {
    match error {
        BearerError::ReconnectRequired(reason) => HubSpotError::ReconnectRequired(reason),
        BearerError::Unavailable(reason) => HubSpotError::Auth(reason),
    }
}

/// HubSpot's error body (every field optional).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    policy_name: Option<String>,
    #[serde(default)]
    context: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    id: Option<String>,
}

/// How long a 429 asks us to wait: its `Retry-After`, else by its policy (HubSpot's own
/// clients wait a second for search and ten for the rolling limit).
fn throttle_wait(headers: &reqwest::header::HeaderMap, body: &ErrorBody) -> Duration {
    if let Some(wait) = retry::retry_after(headers, time::OffsetDateTime::now_utc()) {
        return wait;
    }
    match body.policy_name.as_deref() {
        Some("SECONDLY") => Duration::from_secs(1),
        Some("DAILY") => Duration::from_secs(3600),
        _ if body
            .message
            .as_deref()
            .is_some_and(|m| m.contains("secondly limit")) =>
        {
            Duration::from_secs(1)
        }
        _ => Duration::from_secs(10),
    }
}

fn transport(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the call timed out".into()
    } else if error.is_connect() {
        "HubSpot could not be reached".into()
    } else {
        "the connection failed".into()
    }
}

impl Portal<'_> {
    pub fn id(&self) -> &PortalId {
        self.portal
    }

    /// One call: paced, with a token, retried when that is safe and short. Returns the status
    /// (200, 201, 204 or 207) and the body (`Null` when empty).
    async fn call(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        body: Option<Value>,
        search: bool,
    ) -> Result<(StatusCode, Value), HubSpotError> {
        let owner = self.portal.as_str();
        let limit = if search {
            self.client.limits.searches
        } else {
            self.client.limits.requests
        };
        let mut token = self.bearer.token().await.map_err(bearer_error)?;
        let mut refreshed = false;
        let mut attempt = 0;
        let repeatable = repeatable(&method, path);
        loop {
            self.client
                .pacer
                .acquire(&limit, owner)
                .await
                .map_err(|e| HubSpotError::Paced(e.to_string()))?;
            let mut request = self
                .client
                .http
                .request(method.clone(), format!("{}{path}", self.client.api_base))
                .query(params)
                .bearer_auth(token.expose_secret());
            if let Some(body) = &body {
                request = request.json(body);
            }
            attempt += 1;
            let response = match request.send().await {
                Ok(response) => response,
                // Upserts, updates, archives and reads are repeatable; a create is not: whether
                // it happened is settled by the caller (a claim and a look on the record).
                Err(error) if repeatable && attempt <= MAX_IN_PROCESS_RETRIES => {
                    tracing::debug!(error = %transport(&error), "HubSpot call failed; retrying");
                    tokio::time::sleep(retry::backoff(
                        attempt,
                        Duration::from_millis(100),
                        Duration::from_secs(1),
                    ))
                    .await;
                    continue;
                }
                Err(error) => return Err(HubSpotError::Unavailable(transport(&error))),
            };
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| HubSpotError::Unavailable(transport(&e)))?;
            let parsed = || -> Result<Value, HubSpotError> {
                if bytes.is_empty() {
                    return Ok(Value::Null);
                }
                serde_json::from_slice(&bytes).map_err(|e| HubSpotError::Unreadable(e.to_string()))
            };
            match retry::classify(status) {
                StatusClass::Success => return Ok((status, parsed()?)),
                StatusClass::Unauthorized if !refreshed => {
                    refreshed = true;
                    token = self
                        .bearer
                        .after_rejection(&token)
                        .await
                        .map_err(bearer_error)?;
                }
                StatusClass::Unauthorized => {
                    return Err(HubSpotError::Unauthorized(
                        "the refreshed access token was refused too".into(),
                    ))
                }
                StatusClass::Throttled => {
                    let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
                    let wait = throttle_wait(&headers, &body);
                    if wait <= MAX_IN_PROCESS_WAIT && attempt <= MAX_IN_PROCESS_RETRIES {
                        tokio::time::sleep(wait).await;
                    } else {
                        return Err(HubSpotError::Throttled {
                            retry_after: Some(wait),
                        });
                    }
                }
                StatusClass::Transient if repeatable && attempt <= MAX_IN_PROCESS_RETRIES => {
                    tokio::time::sleep(retry::backoff(
                        attempt,
                        Duration::from_millis(200),
                        Duration::from_secs(2),
                    ))
                    .await;
                }
                StatusClass::Transient | StatusClass::Refused => {
                    let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
                    return Err(HubSpotError::Api {
                        status: status.as_u16(),
                        category: body.category.unwrap_or_else(|| status.as_str().to_owned()),
                        message: body
                            .message
                            .unwrap_or_else(|| format!("HubSpot answered {status}")),
                    });
                }
            }
        }
    }

    /// One record by id (or by a unique property's value with `id_property`); `None` when it
    /// does not exist.
    pub async fn read(
        &self,
        object_type: &str,
        id: &str,
        properties: &[&str],
        archived: bool,
    ) -> Result<Option<CrmObject>, HubSpotError> {
        let params = vec![
            ("properties", properties.join(",")),
            ("archived", archived.to_string()),
        ];
        match self
            .call(
                Method::GET,
                &format!("/crm/v3/objects/{object_type}/{id}"),
                &params,
                None,
                false,
            )
            .await
        {
            Ok((_, body)) => Ok(Some(object(body)?)),
            Err(HubSpotError::Api { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// One page of records (ordered by id), `limit` ≤ 100; the next page's cursor.
    pub async fn list(
        &self,
        object_type: &str,
        properties: &[&str],
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<CrmObject>, Option<String>), HubSpotError> {
        let mut params = vec![
            ("limit", limit.clamp(1, MAX_LIST_PAGE).to_string()),
            ("properties", properties.join(",")),
        ];
        if let Some(after) = after {
            params.push(("after", after.to_owned()));
        }
        let (_, body) = self
            .call(
                Method::GET,
                &format!("/crm/v3/objects/{object_type}"),
                &params,
                None,
                false,
            )
            .await?;
        let page: Paged =
            serde_json::from_value(body).map_err(|e| HubSpotError::Unreadable(e.to_string()))?;
        Ok((
            page.results,
            page.paging.and_then(|p| p.next).map(|n| n.after),
        ))
    }

    /// Records by id, or by a unique property's values.
    pub async fn batch_read(
        &self,
        object_type: &str,
        ids: &[String],
        properties: &[&str],
        id_property: Option<&str>,
    ) -> Result<BatchOutcome, HubSpotError> {
        let mut body = json!({
            "inputs": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
            "properties": properties,
        });
        if let Some(id_property) = id_property {
            body["idProperty"] = json!(id_property);
        }
        self.batch(object_type, "read", body).await
    }

    /// Creates records; each input should carry its own `objectWriteTraceId`, so one bad input
    /// fails alone (207) instead of failing the batch.
    pub async fn batch_create(
        &self,
        object_type: &str,
        inputs: &[BatchInput],
    ) -> Result<BatchOutcome, HubSpotError> {
        self.batch(object_type, "create", json!({ "inputs": inputs }))
            .await
    }

    pub async fn batch_update(
        &self,
        object_type: &str,
        inputs: &[BatchInput],
    ) -> Result<BatchOutcome, HubSpotError> {
        self.batch(object_type, "update", json!({ "inputs": inputs }))
            .await
    }

    /// Creates or updates by a unique property (`email`, or one made with `hasUniqueValue`): a
    /// repeat finds the record the first call made, so it never duplicates.
    pub async fn batch_upsert(
        &self,
        object_type: &str,
        inputs: &[BatchInput],
    ) -> Result<BatchOutcome, HubSpotError> {
        self.batch(object_type, "upsert", json!({ "inputs": inputs }))
            .await
    }

    async fn batch(
        &self,
        object_type: &str,
        operation: &str,
        body: Value,
    ) -> Result<BatchOutcome, HubSpotError> {
        let inputs = body["inputs"].as_array().map(Vec::len).unwrap_or(0);
        if inputs == 0 {
            return Ok(BatchOutcome::default());
        }
        if inputs > MAX_BATCH_INPUTS {
            return Err(HubSpotError::Unreadable(format!(
                "a batch takes at most {MAX_BATCH_INPUTS} inputs, not {inputs}"
            )));
        }
        let (_, answer) = self
            .call(
                Method::POST,
                &format!("/crm/v3/objects/{object_type}/batch/{operation}"),
                &[],
                Some(body),
                false,
            )
            .await?;
        batch_outcome(answer)
    }

    /// One page of a search; `total` is every match of the query.
    pub async fn search(
        &self,
        object_type: &str,
        request: &SearchRequest,
    ) -> Result<SearchPage, HubSpotError> {
        let body =
            serde_json::to_value(request).map_err(|e| HubSpotError::Unreadable(e.to_string()))?;
        let (_, answer) = self
            .call(
                Method::POST,
                &format!("/crm/v3/objects/{object_type}/search"),
                &[],
                Some(body),
                true,
            )
            .await?;
        let page: SearchAnswer =
            serde_json::from_value(answer).map_err(|e| HubSpotError::Unreadable(e.to_string()))?;
        Ok(SearchPage {
            total: page.total,
            results: page.results,
            after: page.paging.and_then(|p| p.next).map(|n| n.after),
        })
    }

    /// The ids of `to_type` records associated with each of `ids` (of `from_type`).
    pub async fn associations(
        &self,
        from_type: &str,
        to_type: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<String>>, HubSpotError> {
        let mut found: HashMap<String, Vec<String>> = HashMap::new();
        for chunk in ids.chunks(1000) {
            let body =
                json!({"inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()});
            let (_, answer) = self
                .call(
                    Method::POST,
                    &format!("/crm/v4/associations/{from_type}/{to_type}/batch/read"),
                    &[],
                    Some(body),
                    false,
                )
                .await?;
            let answer: AssociationAnswer = serde_json::from_value(answer)
                .map_err(|e| HubSpotError::Unreadable(e.to_string()))?;
            for result in answer.results {
                let targets = found.entry(result.from.id).or_default();
                for to in result.to {
                    targets.push(match to.to_object_id {
                        Value::String(s) => s,
                        other => other.to_string(),
                    });
                }
            }
        }
        Ok(found)
    }

    /// Creates records given as whole inputs (properties with inline `associations`).
    pub async fn batch_create_with(
        &self,
        object_type: &str,
        inputs: Vec<Value>,
    ) -> Result<BatchOutcome, HubSpotError> {
        self.batch(object_type, "create", json!({ "inputs": inputs }))
            .await
    }

    /// Archives records by id (archiving one already archived is no error).
    pub async fn batch_archive(
        &self,
        object_type: &str,
        ids: &[String],
    ) -> Result<(), HubSpotError> {
        for chunk in ids.chunks(MAX_BATCH_INPUTS) {
            let body =
                json!({"inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()});
            self.call(
                Method::POST,
                &format!("/crm/v3/objects/{object_type}/batch/archive"),
                &[],
                Some(body),
                false,
            )
            .await?;
        }
        Ok(())
    }

    /// Associates pairs `(from id, to id)` with the default association type of the two
    /// objects (associating twice is no error). Per-pair refusals come back as item errors.
    pub async fn associate_default(
        &self,
        from_type: &str,
        to_type: &str,
        pairs: &[(String, String)],
    ) -> Result<Vec<ItemError>, HubSpotError> {
        let mut errors = Vec::new();
        for chunk in pairs.chunks(MAX_BATCH_INPUTS) {
            let inputs: Vec<Value> = chunk
                .iter()
                .map(|(from, to)| json!({"from": {"id": from}, "to": {"id": to}}))
                .collect();
            let (_, answer) = self
                .call(
                    Method::POST,
                    &format!("/crm/v4/associations/{from_type}/{to_type}/batch/associate/default"),
                    &[],
                    Some(json!({ "inputs": inputs })),
                    false,
                )
                .await?;
            errors.extend(batch_outcome(strip_results(answer))?.errors);
        }
        Ok(errors)
    }

    /// The id of HubSpot's own unlabeled association type from one object to another, read
    /// from the labels HubSpot lists for the pair (`None` when it lists none).
    pub async fn default_association_type(
        &self,
        from_type: &str,
        to_type: &str,
    ) -> Result<Option<u32>, HubSpotError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Label {
            category: String,
            type_id: u32,
            #[serde(default)]
            label: Option<String>,
        }
        #[derive(Deserialize)]
        struct Labels {
            #[serde(default)]
            results: Vec<Label>,
        }
        let (_, answer) = self
            .call(
                Method::GET,
                &format!("/crm/v4/associations/{from_type}/{to_type}/labels"),
                &[],
                None,
                false,
            )
            .await?;
        let labels: Labels =
            serde_json::from_value(answer).map_err(|e| HubSpotError::Unreadable(e.to_string()))?;
        Ok(labels
            .results
            .into_iter()
            .find(|l| l.category == "HUBSPOT_DEFINED" && l.label.is_none())
            .map(|l| l.type_id))
    }

    /// Completes a workflow-action execution that answered BLOCK, with its output fields
    /// (`hs_execution_state` among them). `false`: HubSpot no longer waits for it (completed
    /// already, or expired).
    pub async fn complete_action(
        &self,
        callback_id: &str,
        output_fields: &std::collections::BTreeMap<String, String>,
    ) -> Result<bool, HubSpotError> {
        let body = json!({ "outputFields": output_fields });
        match self
            .call(
                Method::POST,
                &format!("/automation/v4/actions/callbacks/{callback_id}/complete"),
                &[],
                Some(body),
                false,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(HubSpotError::Api {
                status: 400 | 404, ..
            }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Creates a property unless it exists (a `409` means it does).
    pub async fn ensure_property(
        &self,
        object_type: &str,
        property: &PropertyDefinition,
    ) -> Result<(), HubSpotError> {
        let body =
            serde_json::to_value(property).map_err(|e| HubSpotError::Unreadable(e.to_string()))?;
        match self
            .call(
                Method::POST,
                &format!("/crm/v3/properties/{object_type}"),
                &[],
                Some(body),
                false,
            )
            .await
        {
            Ok(_) | Err(HubSpotError::Api { status: 409, .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Uninstalls the app from the portal (every token of it dies).
    pub async fn uninstall(&self) -> Result<(), HubSpotError> {
        self.call(
            Method::DELETE,
            "/appinstalls/v3/external-install",
            &[],
            None,
            false,
        )
        .await
        .map(drop)
    }
}

/// Whether a call may be sent again after an answer that was lost or a gateway error: every
/// call but a create, which could make a second record.
fn repeatable(method: &Method, path: &str) -> bool {
    !(*method == Method::POST && path.ends_with("/batch/create") && path.starts_with("/crm/v3/"))
}

fn object(value: Value) -> Result<CrmObject, HubSpotError> {
    serde_json::from_value(value).map_err(|e| HubSpotError::Unreadable(e.to_string()))
}

/// The results and per-item errors of a batch answer (200, 201 or 207).
fn batch_outcome(answer: Value) -> Result<BatchOutcome, HubSpotError> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        results: Vec<CrmObject>,
        #[serde(default)]
        errors: Vec<ErrorBody>,
    }
    if answer.is_null() {
        return Ok(BatchOutcome::default());
    }
    let answer: Answer =
        serde_json::from_value(answer).map_err(|e| HubSpotError::Unreadable(e.to_string()))?;
    let errors = answer
        .errors
        .into_iter()
        .map(|error| {
            let mut ids = Vec::new();
            let mut trace_id = None;
            for (key, value) in error.context.unwrap_or_default() {
                let values: Vec<String> = match value {
                    Value::Array(values) => values
                        .into_iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .collect(),
                    Value::String(s) => vec![s],
                    other => vec![other.to_string()],
                };
                if key == "objectWriteTraceId" {
                    trace_id = values.into_iter().next();
                } else {
                    ids.extend(values);
                }
            }
            ItemError {
                category: error.category.unwrap_or_default(),
                message: error.message.unwrap_or_default(),
                ids,
                trace_id: trace_id.or(error.id),
            }
        })
        .collect();
    Ok(BatchOutcome {
        results: answer.results,
        errors,
    })
}

/// Association answers list pairs, not records: only their errors are read.
fn strip_results(mut answer: Value) -> Value {
    if let Some(map) = answer.as_object_mut() {
        map.remove("results");
    }
    answer
}

#[derive(Deserialize)]
struct Paged {
    #[serde(default)]
    results: Vec<CrmObject>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    next: Option<Next>,
}

#[derive(Deserialize)]
struct Next {
    after: String,
}

#[derive(Deserialize)]
struct SearchAnswer {
    #[serde(default)]
    total: u64,
    #[serde(default)]
    results: Vec<CrmObject>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct AssociationAnswer {
    #[serde(default)]
    results: Vec<AssociationResult>,
}

#[derive(Deserialize)]
struct AssociationResult {
    from: Id,
    #[serde(default)]
    to: Vec<AssociatedTo>,
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssociatedTo {
    to_object_id: Value,
}

/// A search request: filter groups (OR) of filters (AND), one sort, a page.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    pub filter_groups: Vec<FilterGroup>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sorts: Vec<Sort>,
    pub properties: Vec<String>,
    pub limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FilterGroup {
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    pub property_name: String,
    pub operator: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_value: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl Filter {
    pub fn between(property: &str, low: i64, high: i64) -> Self {
        Self {
            property_name: property.to_owned(),
            operator: "BETWEEN",
            value: Some(low.to_string()),
            high_value: Some(high.to_string()),
            values: Vec::new(),
        }
    }

    pub fn any_of(property: &str, values: Vec<String>) -> Self {
        Self {
            property_name: property.to_owned(),
            operator: "IN",
            value: None,
            high_value: None,
            values,
        }
    }

    pub fn eq(property: &str, value: &str) -> Self {
        Self {
            property_name: property.to_owned(),
            operator: "EQ",
            value: Some(value.to_owned()),
            high_value: None,
            values: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sort {
    pub property_name: String,
    pub direction: &'static str,
}

impl Sort {
    pub fn ascending(property: &str) -> Self {
        Self {
            property_name: property.to_owned(),
            direction: "ASCENDING",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchPage {
    pub total: u64,
    pub results: Vec<CrmObject>,
    pub after: Option<String>,
}

/// A property the integration creates (its own ids on records, for idempotent upserts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyDefinition {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub property_type: String,
    pub field_type: String,
    pub group_name: String,
    pub description: String,
    pub has_unique_value: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_207_lists_each_failure_with_the_ids_it_names() {
        let answer = json!({
            "status": "COMPLETE",
            "results": [{"id": "1", "properties": {"email": "a@b.com", "firstname": null},
                         "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z",
                         "archived": false, "new": true}],
            "numErrors": 2,
            "errors": [
                {"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Could not get some CONTACT objects",
                 "context": {"ids": ["999", "1000"]}},
                {"status": "error", "category": "VALIDATION_ERROR", "message": "bad email",
                 "context": {"objectWriteTraceId": ["t7"]}}
            ]
        });
        let outcome = batch_outcome(answer).unwrap();
        assert_eq!(outcome.results.len(), 1);
        assert_eq!(outcome.results[0].property("email"), Some("a@b.com"));
        assert_eq!(outcome.results[0].property("firstname"), None);
        assert_eq!(outcome.results[0].new, Some(true));
        assert_eq!(outcome.errors[0].ids, ["999", "1000"]);
        assert_eq!(outcome.errors[0].category, "OBJECT_NOT_FOUND");
        assert_eq!(outcome.errors[1].trace_id.as_deref(), Some("t7"));
        assert_eq!(batch_outcome(Value::Null).unwrap(), BatchOutcome::default());
    }

    #[test]
    fn only_creates_are_never_sent_twice() {
        let cases = [
            (Method::POST, "/crm/v3/objects/notes/batch/create", false),
            (Method::POST, "/crm/v3/objects/invoices/batch/upsert", true),
            (Method::POST, "/crm/v3/objects/deals/batch/update", true),
            (
                Method::POST,
                "/crm/v4/associations/invoices/deals/batch/create",
                true,
            ),
            (Method::GET, "/crm/v3/objects/contacts", true),
        ];
        for (method, path, expected) in cases {
            assert_eq!(repeatable(&method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn errors_have_a_class_and_a_category() {
        let api = |status: u16, category: &str| HubSpotError::Api {
            status,
            category: category.into(),
            message: String::new(),
        };
        let cases = [
            (
                api(400, "VALIDATION_ERROR"),
                ErrorClass::Terminal,
                "hubspot_validation",
            ),
            (
                api(404, "OBJECT_NOT_FOUND"),
                ErrorClass::Terminal,
                "object_not_found",
            ),
            (
                api(409, "CONFLICT"),
                ErrorClass::Terminal,
                "duplicate_record",
            ),
            (
                api(403, "MISSING_SCOPES"),
                ErrorClass::Terminal,
                "missing_scopes",
            ),
            (
                api(502, "502"),
                ErrorClass::Retryable,
                "hubspot_unavailable",
            ),
            (
                HubSpotError::Throttled { retry_after: None },
                ErrorClass::Retryable,
                "rate_limited",
            ),
            (
                HubSpotError::ReconnectRequired("x".into()),
                ErrorClass::Terminal,
                "reconnect_required",
            ),
        ];
        for (error, class, category) in cases {
            assert_eq!(
                (error.class(), error.category()),
                (class, category),
                "{error}"
            );
        }
    }

    #[test]
    fn throttles_wait_by_header_else_by_policy() {
        let headers = reqwest::header::HeaderMap::new();
        let body = |policy: Option<&str>, message: Option<&str>| ErrorBody {
            policy_name: policy.map(str::to_owned),
            message: message.map(str::to_owned),
            ..ErrorBody::default()
        };
        assert_eq!(
            throttle_wait(&headers, &body(Some("SECONDLY"), None)),
            Duration::from_secs(1)
        );
        assert_eq!(
            throttle_wait(
                &headers,
                &body(None, Some("You have reached your secondly limit."))
            ),
            Duration::from_secs(1)
        );
        assert_eq!(
            throttle_wait(&headers, &body(Some("TEN_SECONDLY_ROLLING"), None)),
            Duration::from_secs(10)
        );
        assert_eq!(
            throttle_wait(&headers, &body(Some("DAILY"), None)),
            Duration::from_secs(3600)
        );
        let mut with_header = reqwest::header::HeaderMap::new();
        with_header.insert(reqwest::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(
            throttle_wait(&with_header, &body(Some("DAILY"), None)),
            Duration::from_secs(2)
        );
    }
}
