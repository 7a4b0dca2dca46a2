//! Runs a real function binary the way Lambda does: the process talks to a Lambda Runtime API
//! server (`AWS_LAMBDA_RUNTIME_API`) that hands it one invocation at a time and takes back the
//! response or the error. An instance that exits is replaced by a new one, and what it was
//! doing ends in an error, as Lambda reports a runtime that exited.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch, Mutex};

use crate::process::die_with_parent;

/// What an invocation ended with.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    Response(serde_json::Value),
    /// A streamed response (Lambda response streaming): the prelude (`statusCode`, `headers`,
    /// `cookies`) and then the body as the function writes it.
    Streamed {
        prelude: serde_json::Value,
        body: StreamedBody,
    },
    /// The function reported an error (Lambda's `errorType` / `errorMessage`).
    Error {
        error_type: String,
        error_message: String,
    },
}

/// The body of a streamed response, taken once by whoever serves it.
#[derive(Clone)]
pub struct StreamedBody(Arc<std::sync::Mutex<Option<mpsc::Receiver<Bytes>>>>);

impl StreamedBody {
    pub fn take(&self) -> Option<mpsc::Receiver<Bytes>> {
        self.0.lock().ok().and_then(|mut taken| taken.take())
    }
}

impl std::fmt::Debug for StreamedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamedBody")
    }
}

impl PartialEq for StreamedBody {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the function host has stopped")]
    Stopped,
}

struct Pending {
    request_id: String,
    payload: Vec<u8>,
    deadline_ms: i64,
    answer: oneshot::Sender<Invocation>,
}

struct RuntimeApi {
    function_arn: String,
    incoming: Mutex<mpsc::Receiver<Pending>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Invocation>>>,
}

/// One function: its Runtime API server and its running instances.
pub struct FunctionHost {
    pub logical_id: String,
    pub timeout: Duration,
    submit: mpsc::Sender<Pending>,
    /// The process id of each instance slot (0 while it is being replaced).
    pids: Vec<Arc<AtomicU32>>,
    supervisors: Vec<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

/// How to start one instance.
#[derive(Clone)]
struct Launch {
    logical_id: String,
    name: String,
    binary: PathBuf,
    memory_mb: u32,
    environment: Vec<(String, String)>,
    runtime_api: String,
    log_file: Option<PathBuf>,
}

impl Launch {
    fn spawn(&self) -> anyhow::Result<Child> {
        let mut command = Command::new(&self.binary);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.environment.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", &self.runtime_api)
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.memory_mb.to_string(),
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(path) = &self.log_file {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            command.stdout(file.try_clone()?).stderr(file);
        }
        die_with_parent(&mut command);
        command
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))
    }
}

/// Keeps one instance slot running until `stop`: an instance that exits is replaced, and the
/// invocations in flight end in `Runtime.ExitError`.
async fn supervise(
    launch: Launch,
    api: Arc<RuntimeApi>,
    mut child: Child,
    pid: Arc<AtomicU32>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        pid.store(child.id().unwrap_or(0), Ordering::SeqCst);
        tokio::select! {
            status = child.wait() => {
                pid.store(0, Ordering::SeqCst);
                tracing::warn!(function = %launch.logical_id, ?status,
                    "an instance exited; starting a new one");
                api.fail_in_flight().await;
            }
            _ = stop.changed() => {
                let _ = child.kill().await;
                pid.store(0, Ordering::SeqCst);
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        child = match launch.spawn() {
            Ok(child) => child,
            Err(error) => {
                tracing::error!(function = %launch.logical_id, %error, "could not start a new instance");
                return;
            }
        };
    }
}

#[derive(Debug, Clone)]
pub struct FunctionSpec<'a> {
    pub logical_id: &'a str,
    pub name: &'a str,
    pub binary: &'a Path,
    pub timeout: Duration,
    pub memory_mb: u32,
    pub environment: Vec<(String, String)>,
    pub instances: usize,
    /// Append the function's output here instead of the terminal.
    pub log_file: Option<std::path::PathBuf>,
}

impl FunctionHost {
    pub async fn start(spec: FunctionSpec<'_>) -> anyhow::Result<Self> {
        let (submit, incoming) = mpsc::channel(64);
        let api = Arc::new(RuntimeApi {
            function_arn: format!(
                "arn:aws:lambda:us-east-1:123456789012:function:{}",
                spec.name
            ),
            incoming: Mutex::new(incoming),
            in_flight: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let runtime_api = listener.local_addr()?.to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        if !spec.binary.exists() {
            anyhow::bail!(
                "{} is not built (run `make build-local`)",
                spec.binary.display()
            );
        }
        let launch = Launch {
            logical_id: spec.logical_id.to_owned(),
            name: spec.name.to_owned(),
            binary: spec.binary.to_owned(),
            memory_mb: spec.memory_mb,
            environment: spec.environment.clone(),
            runtime_api,
            log_file: spec.log_file.clone(),
        };
        let (stop, stopped) = watch::channel(false);
        let mut pids = Vec::new();
        let mut supervisors = Vec::new();
        for _ in 0..spec.instances.max(1) {
            // The first start of each instance is checked here; later ones by its supervisor.
            let child = launch.spawn()?;
            let pid = Arc::new(AtomicU32::new(child.id().unwrap_or(0)));
            pids.push(pid.clone());
            supervisors.push(tokio::spawn(supervise(
                launch.clone(),
                api.clone(),
                child,
                pid,
                stopped.clone(),
            )));
        }
        Ok(Self {
            logical_id: spec.logical_id.to_owned(),
            timeout: spec.timeout,
            submit,
            pids,
            supervisors,
            stop,
            server,
        })
    }

    /// Invokes the function with `payload` and waits for its answer (up to its timeout).
    pub async fn invoke(&self, payload: &serde_json::Value) -> Result<Invocation, InvokeError> {
        let (answer, answered) = oneshot::channel();
        let deadline_ms = now_ms() + self.timeout.as_millis() as i64;
        let pending = Pending {
            request_id: uuid::Uuid::new_v4().to_string(),
            payload: serde_json::to_vec(payload).unwrap_or_default(),
            deadline_ms,
            answer,
        };
        self.submit
            .send(pending)
            .await
            .map_err(|_| InvokeError::Stopped)?;
        // Queueing for a free instance counts against the caller's patience too.
        match tokio::time::timeout(self.timeout + Duration::from_secs(5), answered).await {
            Ok(Ok(invocation)) => Ok(invocation),
            Ok(Err(_)) => Err(InvokeError::Stopped),
            Err(_) => Err(InvokeError::Timeout(self.timeout)),
        }
    }

    /// Process ids of the running instances.
    pub fn pids(&self) -> Vec<u32> {
        self.pids
            .iter()
            .map(|pid| pid.load(Ordering::SeqCst))
            .filter(|pid| *pid != 0)
            .collect()
    }

    /// Kills every instance at once, as a crash would (each is replaced by a new one).
    pub fn kill_instances(&self) {
        for pid in self.pids() {
            // SAFETY: sending a signal to a child process of ours; no memory is shared.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }

    /// Stops every instance and the Runtime API server.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for supervisor in self.supervisors {
            let _ = supervisor.await;
        }
        self.server.abort();
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

async fn next_invocation(State(api): State<Arc<RuntimeApi>>) -> Response {
    let pending = { api.incoming.lock().await.recv().await };
    let Some(pending) = pending else {
        return StatusCode::GONE.into_response();
    };
    api.in_flight
        .lock()
        .await
        .insert(pending.request_id.clone(), pending.answer);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", &pending.request_id);
    set(
        "lambda-runtime-deadline-ms",
        &pending.deadline_ms.to_string(),
    );
    set("lambda-runtime-invoked-function-arn", &api.function_arn);
    set(
        "lambda-runtime-trace-id",
        &format!("Root=1-{}", uuid::Uuid::new_v4().simple()),
    );
    set("content-type", "application/json");
    (headers, pending.payload).into_response()
}

/// Chunks of a streamed body held ahead of a slow reader.
const STREAM_AHEAD: usize = 4;
/// The most a streamed response's prelude may take.
const MAX_PRELUDE: usize = 64 * 1024;

async fn invocation_response(
    State(api): State<Arc<RuntimeApi>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> StatusCode {
    let streaming = headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"streaming"));
    if !streaming {
        let Ok(body) = axum::body::to_bytes(body, 6 * 1024 * 1024 + 1024).await else {
            return StatusCode::PAYLOAD_TOO_LARGE;
        };
        let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        return answer(&api, &id, Invocation::Response(value)).await;
    }
    stream_response(&api, &id, body).await
}

/// A streamed response: the JSON prelude up to eight NUL bytes, then the body, passed on
/// chunk by chunk as the function sends it (Lambda's HTTP integration response format).
async fn stream_response(api: &RuntimeApi, id: &str, body: axum::body::Body) -> StatusCode {
    use futures::StreamExt;
    const DELIMITER: [u8; 8] = [0; 8];
    let mut chunks = body.into_data_stream();
    let mut head: Vec<u8> = Vec::new();
    let rest = loop {
        match chunks.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            _ => return StatusCode::BAD_REQUEST,
        }
        if let Some(at) = head.windows(DELIMITER.len()).position(|w| w == DELIMITER) {
            break head.split_off(at + DELIMITER.len());
        }
        if head.len() > MAX_PRELUDE {
            return StatusCode::BAD_REQUEST;
        }
    };
    head.truncate(head.len() - DELIMITER.len());
    let prelude = serde_json::from_slice(&head).unwrap_or(serde_json::Value::Null);
    let (sender, receiver) = mpsc::channel(STREAM_AHEAD);
    let body = StreamedBody(Arc::new(std::sync::Mutex::new(Some(receiver))));
    let answered = answer(api, id, Invocation::Streamed { prelude, body }).await;
    if answered != StatusCode::ACCEPTED {
        return answered;
    }
    // A client that goes away ends its stream, not the function's response: the rest is read
    // and dropped, as Lambda does, so the runtime's request completes.
    let mut reading = rest.is_empty() || sender.send(Bytes::from(rest)).await.is_ok();
    while let Some(Ok(chunk)) = chunks.next().await {
        if reading && sender.send(chunk).await.is_err() {
            reading = false;
        }
    }
    StatusCode::ACCEPTED
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    #[serde(default)]
    error_type: String,
    #[serde(default)]
    error_message: String,
}

async fn invocation_error(
    State(api): State<Arc<RuntimeApi>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let error: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
    answer(
        &api,
        &id,
        Invocation::Error {
            error_type: error.error_type,
            error_message: error.error_message,
        },
    )
    .await
}

async fn init_error(body: Bytes) -> StatusCode {
    tracing::error!(error = %String::from_utf8_lossy(&body), "a function failed to start");
    StatusCode::ACCEPTED
}

impl RuntimeApi {
    /// Ends every invocation in flight as Lambda ends those of a runtime that exited.
    async fn fail_in_flight(&self) {
        for (_, sender) in self.in_flight.lock().await.drain() {
            let _ = sender.send(Invocation::Error {
                error_type: "Runtime.ExitError".into(),
                error_message: "the function's process exited".into(),
            });
        }
    }
}

async fn answer(api: &RuntimeApi, id: &str, invocation: Invocation) -> StatusCode {
    match api.in_flight.lock().await.remove(id) {
        Some(sender) => {
            let _ = sender.send(invocation);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}
