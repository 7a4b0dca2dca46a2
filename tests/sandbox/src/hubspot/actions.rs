//! HubSpot's side of custom workflow actions: action definitions (`/automation/v4/actions/{appId}`),
//! the runner that POSTs execution requests to the action URL (v2 + v3 signatures, timeout,
//! retries with backoff on 429/5xx/timeouts), `hs_execution_state` SUCCESS / FAIL_CONTINUE /
//! BLOCK with `hs_expiration_duration`, and the callback-completion endpoints.

use super::app::{App, AppState};
use super::auth::{authenticate, bearer};
use super::crm::Params;
use super::error::{parse_json, ApiError, ApiResult};
use super::format::{epoch_ms, iso};
use super::signature;
use crate::common::sync::lock;
use crate::common::SandboxClock;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RunnerSettings {
    /// Response timeout per attempt (workflow webhooks: 30 s; custom actions: unconfirmed).
    pub timeout_ms: u64,
    /// Waits before each retry after 429/5xx/timeout/connection failure. Default: from one
    /// minute, doubling to an 8-hour cap, about three days in total.
    pub retry_delays_ms: Vec<u64>,
    /// Honour `Retry-After` (seconds) on 429s instead of the schedule.
    pub honour_retry_after: bool,
    /// Also send `X-HubSpot-Signature-v3` + timestamp (docs only promise v2 for actions).
    pub send_v3: bool,
    /// Where requested object properties go: `object` (`object.properties`), `root`
    /// (`properties`) or `both` — unconfirmed in HubSpot's docs.
    pub object_properties_in: String,
    /// Expiry of a BLOCKed execution when `hs_expiration_duration` is absent.
    pub default_expiration: String,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        let mut delays = Vec::new();
        let mut d = 60_000u64;
        let mut total = 0u64;
        while total < 3 * 24 * 3_600_000 {
            delays.push(d);
            total += d;
            d = (d * 2).min(8 * 3_600_000);
        }
        Self {
            timeout_ms: 30_000,
            retry_delays_ms: delays,
            honour_retry_after: true,
            send_v3: true,
            object_properties_in: "object".into(),
            default_expiration: "P7D".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecState {
    Pending,
    Running,
    Retrying,
    Success,
    FailContinue,
    Blocked,
    /// Gave up: non-retryable answer or retries exhausted.
    Failed,
    /// BLOCKed and not completed before its expiration.
    Expired,
}

#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    pub attempt: u32,
    pub at: String,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub body: Option<String>,
    pub headers: Vec<(String, String)>,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Execution {
    #[serde(rename = "callbackId")]
    pub callback_id: String,
    pub portal_id: u64,
    pub definition_id: Option<u64>,
    pub action_url: String,
    pub object_type: String,
    pub object_id: u64,
    pub state: ExecState,
    pub output_fields: Map<String, Value>,
    pub request: Value,
    pub attempts: Vec<Attempt>,
    pub error: Option<String>,
    pub enrolled_at: String,
    pub completed_at: Option<String>,
    #[serde(skip)]
    pub expires: Option<OffsetDateTime>,
    pub expires_at: Option<String>,
    pub completed_by_callback: bool,
    #[serde(skip)]
    early_completion: Option<Map<String, Value>>,
}

#[derive(Debug, Default)]
struct Inner {
    definitions: BTreeMap<u64, Value>,
    executions: BTreeMap<String, Execution>,
}

/// Action definitions and executions; cheap to clone.
#[derive(Clone, Debug)]
pub struct Runner {
    inner: Arc<Mutex<Inner>>,
    settings: Arc<Mutex<RunnerSettings>>,
    secret: String,
    clock: SandboxClock,
    client: reqwest::Client,
    seq: Arc<AtomicU64>,
}

/// A request to run an action for one record (built by the control API).
#[derive(Clone, Debug)]
pub struct Enrollment {
    pub portal_id: u64,
    pub definition_id: Option<u64>,
    pub action_url: String,
    pub object_type: String,
    pub object_id: u64,
    pub body: Value,
    pub callback_id: String,
}

/// ISO-8601 duration (`P1WT1H`, `P7D`, `PT30M`) in seconds; months = 30 days, years = 365.
pub fn parse_duration(text: &str) -> Option<i64> {
    let rest = text.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total: i64 = 0;
    let mut any = false;
    let mut scan = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
            } else {
                let (_, secs) = units.iter().find(|(u, _)| *u == c)?;
                total = total.checked_add(num.parse::<i64>().ok()?.checked_mul(*secs)?)?;
                num.clear();
                any = true;
            }
        }
        num.is_empty().then_some(())
    };
    scan(
        date,
        &[
            ('Y', 365 * 86_400),
            ('M', 30 * 86_400),
            ('W', 7 * 86_400),
            ('D', 86_400),
        ],
    )?;
    if let Some(t) = time {
        scan(t, &[('H', 3_600), ('M', 60), ('S', 1)])?;
    }
    any.then_some(total)
}

impl Runner {
    pub fn new(settings: RunnerSettings, secret: String, clock: SandboxClock) -> Self {
        Self {
            inner: Arc::default(),
            settings: Arc::new(Mutex::new(settings)),
            secret,
            clock,
            client: reqwest::Client::new(),
            seq: Arc::new(AtomicU64::new(1)),
        }
    }

    pub fn settings(&self) -> RunnerSettings {
        lock(&self.settings).clone()
    }

    pub fn set_settings(&self, s: RunnerSettings) {
        *lock(&self.settings) = s;
    }

    pub fn clear(&self) {
        let mut inner = lock(&self.inner);
        inner.executions.clear();
        inner.definitions.clear();
    }

    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }

    pub fn definition(&self, id: u64) -> Option<Value> {
        lock(&self.inner).definitions.get(&id).cloned()
    }

    fn expire(&self, e: &mut Execution) {
        if e.state == ExecState::Blocked && e.expires.is_some_and(|x| self.clock.now() >= x) {
            e.state = ExecState::Expired;
        }
    }

    pub fn executions(&self) -> Vec<Execution> {
        let mut inner = lock(&self.inner);
        let mut out = Vec::new();
        for e in inner.executions.values_mut() {
            self.expire(e);
            out.push(e.clone());
        }
        out
    }

    pub fn execution(&self, callback_id: &str) -> Option<Execution> {
        let mut inner = lock(&self.inner);
        let e = inner.executions.get_mut(callback_id)?;
        self.expire(e);
        Some(e.clone())
    }

    /// Registers the execution and starts running it in the background.
    pub fn enroll(&self, enrollment: Enrollment) -> Execution {
        let execution = Execution {
            callback_id: enrollment.callback_id.clone(),
            portal_id: enrollment.portal_id,
            definition_id: enrollment.definition_id,
            action_url: enrollment.action_url.clone(),
            object_type: enrollment.object_type.clone(),
            object_id: enrollment.object_id,
            state: ExecState::Pending,
            output_fields: Map::new(),
            request: enrollment.body.clone(),
            attempts: Vec::new(),
            error: None,
            enrolled_at: iso(self.clock.now()),
            completed_at: None,
            expires: None,
            expires_at: None,
            completed_by_callback: false,
            early_completion: None,
        };
        lock(&self.inner)
            .executions
            .insert(execution.callback_id.clone(), execution.clone());
        tokio::spawn(self.clone().run(enrollment));
        execution
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Execution)) {
        if let Some(e) = lock(&self.inner).executions.get_mut(id) {
            f(e);
        }
    }

    async fn run(self, enrollment: Enrollment) {
        let settings = self.settings();
        let body = enrollment.body.to_string();
        let url = enrollment.action_url.clone();
        let id = enrollment.callback_id.clone();
        let mut attempt: u32 = 1;
        loop {
            self.update(&id, |e| e.state = ExecState::Running);
            let ts = epoch_ms(self.clock.now());
            let mut headers = vec![
                ("content-type".to_string(), "application/json".to_string()),
                (
                    "X-HubSpot-Signature".to_string(),
                    signature::v2(&self.secret, "POST", &url, &body),
                ),
                ("X-HubSpot-Signature-Version".to_string(), "v2".to_string()),
            ];
            if settings.send_v3 {
                headers.push((
                    "X-HubSpot-Signature-v3".into(),
                    signature::v3(&self.secret, "POST", &url, &body, ts),
                ));
                headers.push(("X-HubSpot-Request-Timestamp".into(), ts.to_string()));
            }
            let mut request = self
                .client
                .post(&url)
                .timeout(Duration::from_millis(settings.timeout_ms))
                .body(body.clone());
            for (k, v) in &headers {
                request = request.header(k, v);
            }
            let started = std::time::Instant::now();
            let outcome = request.send().await;
            let (status, retry_after, text, error) = match outcome {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|h| h.to_str().ok())
                        .and_then(|s| s.trim().parse::<u64>().ok());
                    match resp.text().await {
                        Ok(t) => (Some(status), retry_after, Some(t), None),
                        Err(e) => (Some(status), retry_after, None, Some(e.to_string())),
                    }
                }
                Err(e) => {
                    let kind = if e.is_timeout() {
                        "timeout"
                    } else {
                        "connection failed"
                    };
                    (None, None, None, Some(format!("{kind}: {e}")))
                }
            };
            let record = Attempt {
                attempt,
                at: iso(self.clock.now()),
                status,
                error: error.clone(),
                body: text.clone(),
                headers: headers.clone(),
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            };
            self.update(&id, |e| e.attempts.push(record));
            let retryable = match status {
                Some(s) if (200..300).contains(&s) => {
                    self.finish(&id, text.as_deref().unwrap_or(""), &settings);
                    return;
                }
                Some(429) => true,
                Some(s) if s >= 500 => true,
                Some(s) => {
                    self.update(&id, |e| {
                        e.state = ExecState::Failed;
                        e.error = Some(format!("action URL answered {s}; not retried"));
                        e.completed_at = Some(iso(self.clock.now()));
                    });
                    return;
                }
                None => true,
            };
            let wait = match (status, retry_after) {
                (Some(429), Some(secs)) if settings.honour_retry_after => {
                    Some(Duration::from_secs(secs))
                }
                _ => settings
                    .retry_delays_ms
                    .get(attempt as usize - 1)
                    .map(|ms| Duration::from_millis(*ms)),
            };
            let Some(wait) = wait.filter(|_| retryable) else {
                self.update(&id, |e| {
                    e.state = ExecState::Failed;
                    e.error = Some(format!("gave up after {attempt} attempts"));
                    e.completed_at = Some(iso(self.clock.now()));
                });
                return;
            };
            self.update(&id, |e| e.state = ExecState::Retrying);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Applies a 2xx answer.
    fn finish(&self, id: &str, text: &str, settings: &RunnerSettings) {
        let parsed: Result<Value, _> = if text.trim().is_empty() {
            Ok(json!({}))
        } else {
            serde_json::from_str(text)
        };
        let now = self.clock.now();
        self.update(id, |e| {
            let Ok(body) = parsed else {
                e.state = ExecState::Failed;
                e.error = Some("action response is not JSON".into());
                e.completed_at = Some(iso(now));
                return;
            };
            let outputs = body
                .get("outputFields")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let state = outputs
                .get("hs_execution_state")
                .and_then(Value::as_str)
                .unwrap_or("SUCCESS")
                .to_string();
            e.output_fields = outputs.clone();
            match state.as_str() {
                "SUCCESS" => e.state = ExecState::Success,
                "FAIL_CONTINUE" => e.state = ExecState::FailContinue,
                "BLOCK" => {
                    let duration = outputs
                        .get("hs_expiration_duration")
                        .and_then(Value::as_str)
                        .unwrap_or(&settings.default_expiration)
                        .to_string();
                    match parse_duration(&duration) {
                        Some(secs) => {
                            let at = now + time::Duration::seconds(secs);
                            e.state = ExecState::Blocked;
                            e.expires = Some(at);
                            e.expires_at = Some(iso(at));
                            if let Some(done) = e.early_completion.take() {
                                complete_execution(e, done, now);
                            }
                            return;
                        }
                        None => {
                            e.state = ExecState::Failed;
                            e.error = Some(format!("invalid hs_expiration_duration {duration}"));
                        }
                    }
                }
                other => {
                    e.state = ExecState::Failed;
                    e.error = Some(format!("invalid hs_execution_state {other}"));
                }
            }
            e.completed_at = Some(iso(now));
        });
    }

    /// Completes a BLOCKed execution (the callback endpoint).
    pub fn complete(
        &self,
        portal_id: u64,
        callback_id: &str,
        outputs: Map<String, Value>,
    ) -> Result<(), ApiError> {
        let now = self.clock.now();
        let mut inner = lock(&self.inner);
        let e = inner
            .executions
            .get_mut(callback_id)
            .filter(|e| e.portal_id == portal_id)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "No pending action execution with callbackId {callback_id}"
                ))
            })?;
        self.expire(e);
        match e.state {
            ExecState::Blocked => {
                complete_execution(e, outputs, now);
                Ok(())
            }
            ExecState::Pending | ExecState::Running => {
                // The action answered BLOCK and completed before we saw the answer.
                e.early_completion = Some(outputs);
                Ok(())
            }
            ExecState::Expired => Err(ApiError::validation(format!(
                "Callback {callback_id} has expired"
            ))),
            _ => Err(ApiError::validation(format!(
                "Callback {callback_id} is not awaiting completion"
            ))),
        }
    }
}

fn complete_execution(e: &mut Execution, outputs: Map<String, Value>, now: OffsetDateTime) {
    let state = outputs
        .get("hs_execution_state")
        .and_then(Value::as_str)
        .unwrap_or("SUCCESS");
    e.state = if state == "FAIL_CONTINUE" {
        ExecState::FailContinue
    } else {
        ExecState::Success
    };
    for (k, v) in outputs {
        e.output_fields.insert(k, v);
    }
    e.completed_by_callback = true;
    e.completed_at = Some(iso(now));
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/automation/v4/actions/callbacks/complete",
            post(complete_batch),
        )
        .route(
            "/automation/v4/actions/callbacks/{callback_id}/complete",
            post(complete_one),
        )
        .route(
            "/automation/v4/actions/{app_id}",
            get(list_definitions).post(create_definition),
        )
        .route(
            "/automation/v4/actions/{app_id}/{definition_id}",
            get(read_definition)
                .patch(update_definition)
                .delete(archive_definition),
        )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Completion {
    #[serde(default)]
    callback_id: Option<String>,
    #[serde(default)]
    output_fields: Map<String, Value>,
}

async fn complete_one(
    State(app): State<AppState>,
    Path(callback_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let caller = authenticate(&app, &headers)?;
    caller.require(&["automation".to_string()])?;
    let input: Completion = parse_json(&body)?;
    app.runner
        .complete(caller.portal_id, &callback_id, input.output_fields)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn complete_batch(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let caller = authenticate(&app, &headers)?;
    caller.require(&["automation".to_string()])?;
    #[derive(Deserialize)]
    struct In {
        inputs: Vec<Completion>,
    }
    let input: In = parse_json(&body)?;
    for c in input.inputs {
        let id = c.callback_id.unwrap_or_default();
        app.runner
            .complete(caller.portal_id, &id, c.output_fields)?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Developer endpoints (action definitions, the webhooks management API): `?hapikey=<developer
/// key>` or any valid token of the app; another app's id → 404.
pub(crate) fn developer(
    app: &App,
    uri: &Uri,
    headers: &HeaderMap,
    app_id: &str,
) -> Result<(), ApiError> {
    let key_ok =
        Params::from_uri(uri).one("hapikey") == Some(app.config.developer_api_key.as_str());
    if !key_ok {
        if bearer(headers).is_none() {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "INVALID_AUTHENTICATION",
                "The developer API key or OAuth token is missing or invalid.",
            ));
        }
        authenticate(app, headers)?;
    }
    if app_id != app.config.app_id.to_string() {
        return Err(ApiError::not_found(format!("App {app_id} not found")));
    }
    Ok(())
}

fn validate_definition(def: &Value) -> Result<(), ApiError> {
    let mut missing = Vec::new();
    if def
        .get("actionUrl")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        missing.push("actionUrl");
    }
    if !def.get("objectTypes").is_some_and(Value::is_array) {
        missing.push("objectTypes");
    }
    if !def.get("inputFields").is_none_or(Value::is_array) {
        missing.push("inputFields");
    }
    let has_name = def
        .get("labels")
        .and_then(Value::as_object)
        .is_some_and(|l| {
            l.values()
                .any(|v| v.get("actionName").and_then(Value::as_str).is_some())
        });
    if !has_name {
        missing.push("labels.<locale>.actionName");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "Invalid action definition; missing or invalid: {}",
            missing.join(", ")
        ))
        .with_context(json!({"fields": missing})))
    }
}

async fn list_definitions(
    State(app): State<AppState>,
    Path(app_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult {
    developer(&app, &uri, &headers, &app_id)?;
    let archived = Params::from_uri(&uri).flag("archived");
    let results: Vec<Value> = lock(&app.runner.inner)
        .definitions
        .values()
        .filter(|d| d.get("archivedAt").is_some() == archived)
        .cloned()
        .collect();
    Ok(Json(json!({"results": results})).into_response())
}

async fn create_definition(
    State(app): State<AppState>,
    Path(app_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    developer(&app, &uri, &headers, &app_id)?;
    let mut def: Value = parse_json(&body)?;
    validate_definition(&def)?;
    let id = 10_000_000 + app.runner.next_seq();
    if let Some(map) = def.as_object_mut() {
        map.insert("id".into(), json!(id.to_string()));
        map.insert("revisionId".into(), json!("1"));
        map.entry("published").or_insert(json!(false));
        map.entry("inputFields").or_insert(json!([]));
        map.entry("functions").or_insert(json!([]));
    }
    lock(&app.runner.inner).definitions.insert(id, def.clone());
    Ok((StatusCode::CREATED, Json(def)).into_response())
}

fn def_id(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .map_err(|_| ApiError::not_found(format!("Action definition {text} not found")))
}

async fn read_definition(
    State(app): State<AppState>,
    Path((app_id, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult {
    developer(&app, &uri, &headers, &app_id)?;
    let id = def_id(&id)?;
    app.runner
        .definition(id)
        .map(|d| Json(d).into_response())
        .ok_or_else(|| ApiError::not_found(format!("Action definition {id} not found")))
}

async fn update_definition(
    State(app): State<AppState>,
    Path((app_id, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    developer(&app, &uri, &headers, &app_id)?;
    let id = def_id(&id)?;
    let patch: Map<String, Value> = parse_json(&body)?;
    let mut inner = lock(&app.runner.inner);
    let def = inner
        .definitions
        .get_mut(&id)
        .ok_or_else(|| ApiError::not_found(format!("Action definition {id} not found")))?;
    let mut candidate = def.clone();
    if let Some(map) = candidate.as_object_mut() {
        for (k, v) in patch {
            if k != "id" {
                map.insert(k, v);
            }
        }
        let rev = map
            .get("revisionId")
            .and_then(Value::as_str)
            .and_then(|r| r.parse::<u64>().ok())
            .unwrap_or(1);
        map.insert("revisionId".into(), json!((rev + 1).to_string()));
    }
    validate_definition(&candidate)?;
    *def = candidate.clone();
    Ok(Json(candidate).into_response())
}

async fn archive_definition(
    State(app): State<AppState>,
    Path((app_id, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult {
    developer(&app, &uri, &headers, &app_id)?;
    let id = def_id(&id)?;
    let now = iso(app.services.clock.now());
    let mut inner = lock(&app.runner.inner);
    let def = inner
        .definitions
        .get_mut(&id)
        .ok_or_else(|| ApiError::not_found(format!("Action definition {id} not found")))?;
    if let Some(map) = def.as_object_mut() {
        map.insert("archivedAt".into(), json!(now));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("P7D"), Some(7 * 86_400));
        assert_eq!(parse_duration("P1WT1H"), Some(7 * 86_400 + 3_600));
        assert_eq!(parse_duration("PT30M"), Some(1_800));
        assert_eq!(parse_duration("PT5S"), Some(5));
        assert_eq!(parse_duration("nonsense"), None);
        assert_eq!(parse_duration("P"), None);
    }

    #[test]
    fn default_schedule_spans_about_three_days() {
        let s = RunnerSettings::default();
        let total: u64 = s.retry_delays_ms.iter().sum();
        assert!((3 * 24 * 3_600_000..4 * 24 * 3_600_000).contains(&total));
        assert_eq!(s.retry_delays_ms.first(), Some(&60_000));
    }
}
