//! Drives an in-process HubSpot sandbox over real HTTP on 127.0.0.1, plus a tiny receiver for
//! webhooks and action calls.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use reqwest::{Client, Method};
use sandbox::common::server::{serve, ServerHandle};
use sandbox::hubspot::{self, HubSpotConfig, SpawnedHubSpot};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const PORTAL: u64 = hubspot::seed::DEFAULT_PORTAL;
pub const SECRET: &str = hubspot::app::DEFAULT_CLIENT_SECRET;

pub struct Hub {
    pub hub: SpawnedHubSpot,
    pub http: Client,
    pub token: String,
}

impl Hub {
    pub async fn start() -> Self {
        Self::start_with(HubSpotConfig::default()).await
    }

    pub async fn start_with(config: HubSpotConfig) -> Self {
        let hub = hubspot::spawn(config).await.expect("sandbox starts");
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let mut h = Self {
            hub,
            http,
            token: String::new(),
        };
        h.token = h.mint(json!({})).await["access_token"]
            .as_str()
            .expect("token")
            .to_string();
        h
    }

    pub async fn mint(&self, body: Value) -> Value {
        self.control(Method::POST, "/_sandbox/tokens", body).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.hub.base_url, path)
    }

    pub async fn call_with(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, HeaderMap) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = StatusCode::from_u16(resp.status().as_u16()).expect("status");
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        let mut h = HeaderMap::new();
        for (k, v) in headers.iter() {
            if let (Ok(name), Ok(val)) = (
                axum::http::HeaderName::from_bytes(k.as_str().as_bytes()),
                axum::http::HeaderValue::from_bytes(v.as_bytes()),
            ) {
                h.insert(name, val);
            }
        }
        (status, value, h)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, v, _) = self.call_with(&self.token, method, path, body).await;
        (s, v)
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    /// Creates a record and returns its id.
    pub async fn create(&self, object_type: &str, properties: Value) -> String {
        let (status, body) = self
            .post(
                &format!("/crm/v3/objects/{object_type}"),
                json!({"properties": properties}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_string()
    }

    pub async fn control(&self, method: Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, self.url(path))
            .json(&body)
            .send()
            .await
            .expect("control");
        assert!(
            resp.status().is_success(),
            "control {path}: {}",
            resp.status()
        );
        resp.json().await.unwrap_or(Value::Null)
    }

    pub async fn control_get(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("control get")
            .json()
            .await
            .unwrap_or(Value::Null)
    }
}

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub uri: String,
    pub headers: HeaderMap,
    pub body: String,
}

/// A scripted answer: status, body, extra headers, delay.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub delay_ms: u64,
}

impl Answer {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: body.to_string(),
            headers: Vec::new(),
            delay_ms: 0,
        }
    }
}

#[derive(Default)]
pub struct ReceiverState {
    pub got: Mutex<Vec<Received>>,
    /// Answers used in order; when empty, 200 `{}`.
    pub script: Mutex<VecDeque<Answer>>,
}

pub struct Receiver {
    pub url: String,
    pub state: Arc<ReceiverState>,
    pub handle: ServerHandle,
}

async fn receive(
    State(r): State<Arc<ReceiverState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    r.got.lock().expect("lock").push(Received {
        uri: uri.to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let answer = r
        .script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or_else(|| Answer::json(200, json!({})));
    if answer.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(answer.delay_ms)).await;
    }
    let mut resp = (
        StatusCode::from_u16(answer.status).expect("status"),
        answer.body,
    )
        .into_response();
    for (k, v) in answer.headers {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    resp
}

impl Receiver {
    pub async fn start(path: &str) -> Self {
        let state = Arc::new(ReceiverState::default());
        let app = Router::new()
            .route(path, post(receive))
            .with_state(state.clone());
        let handle = serve("127.0.0.1:0".parse().expect("addr"), app)
            .await
            .expect("receiver");
        Self {
            url: format!("http://{}{}", handle.addr, path),
            state,
            handle,
        }
    }

    pub fn script(&self, answers: Vec<Answer>) {
        self.state.script.lock().expect("lock").extend(answers);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.got.lock().expect("lock").clone()
    }

    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..750 {
            if self.received().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.received()
    }
}

/// Polls the control API until the execution reaches a state other than the running ones.
pub async fn settled(h: &Hub, callback_id: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
        last = h
            .control_get(&format!("/_sandbox/workflows/executions/{callback_id}"))
            .await;
        let state = last["state"].as_str().unwrap_or("");
        if !matches!(state, "PENDING" | "RUNNING" | "RETRYING") {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    last
}
