//! Drives an in-process QBO sandbox over real HTTP on 127.0.0.1.
#![allow(dead_code)]

use reqwest::{Client, Method, StatusCode};
use sandbox::qbo::{self, QboConfig, SpawnedQbo};
use serde_json::{json, Value};

pub const US: &str = qbo::seed::DEFAULT_US_REALM;
pub const GB: &str = qbo::seed::DEFAULT_GB_REALM;

pub struct Sbx {
    pub qbo: SpawnedQbo,
    pub http: Client,
    pub realm: String,
    pub token: String,
}

impl Sbx {
    pub async fn start() -> Self {
        Self::start_with(QboConfig::default()).await
    }

    pub async fn start_with(config: QboConfig) -> Self {
        let qbo = qbo::spawn(config).await.expect("sandbox starts");
        let http = Client::builder().build().expect("client");
        let mut sbx = Self {
            qbo,
            http,
            realm: US.to_string(),
            token: String::new(),
        };
        sbx.token = sbx.mint(US).await;
        sbx
    }

    /// Switches to another realm with a fresh token.
    pub async fn use_realm(&mut self, realm: &str) {
        self.realm = realm.to_string();
        self.token = self.mint(realm).await;
    }

    pub async fn mint(&self, realm: &str) -> String {
        let pair = self
            .control(Method::POST, "/_sandbox/tokens", json!({"realm_id": realm}))
            .await;
        pair["access_token"]
            .as_str()
            .expect("access token")
            .to_string()
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/v3/company/{}/{}", self.qbo.base_url, self.realm, path)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, self.api(path))
            .bearer_auth(&self.token)
            .header("Accept", "application/json");
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None).await
    }

    /// POSTs and expects success, returning the entity under `key`.
    pub async fn create(&self, resource: &str, key: &str, body: Value) -> Value {
        let (status, value) = self.post(resource, body).await;
        assert_eq!(status, StatusCode::OK, "{resource}: {value}");
        value[key].clone()
    }

    pub async fn query(&self, statement: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(self.api("query"))
            .query(&[("query", statement), ("minorversion", "75")])
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("query");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn control(&self, method: Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, format!("{}{}", self.qbo.base_url, path))
            .json(&body)
            .send()
            .await
            .expect("control request");
        assert!(
            resp.status().is_success(),
            "control {path}: {}",
            resp.status()
        );
        resp.json().await.unwrap_or(Value::Null)
    }

    pub async fn control_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{}", self.qbo.base_url, path))
            .send()
            .await
            .expect("control get")
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    pub async fn customer(&self, name: &str) -> Value {
        self.create("customer", "Customer", json!({"DisplayName": name}))
            .await
    }

    /// An invoice with one line: qty × price of the base "Hours" item (Id 2).
    pub async fn invoice(&self, customer_id: &str, qty: u32, price: f64) -> Value {
        self.create(
            "invoice",
            "Invoice",
            json!({"CustomerRef": {"value": customer_id}, "Line": [{"DetailType": "SalesItemLineDetail", "Amount": f64::from(qty) * price,
                   "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": qty, "UnitPrice": price}}]}),
        )
        .await
    }
}

/// The first error code of a Fault body.
pub fn code(body: &Value) -> String {
    body["Fault"]["Error"][0]["code"]
        .as_str()
        .unwrap_or("")
        .to_string()
}
