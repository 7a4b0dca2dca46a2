//! The sync as a user meets it: the local stack (real binaries, both sandboxes, the local AWS
//! endpoint) with fresh QuickBooks companies and HubSpot portals connected through the install
//! pages, edited through the providers' APIs, and rounds of the schedule run on demand.

use std::time::{Duration, Instant};

use anyhow::Context;
use hubspot_qbo_core::domain::{ConnectionId, ObjectKind, Provider};
use hubspot_qbo_core::ledger::{Ledger, LedgerEntry, LinkStatus};
use hubspot_qbo_core::runtime::Services;
use hubspot_qbo_core::settings::ObjectSettings;
use hubspot_qbo_core::sync::settings::SyncSettings;
use serde_json::{json, Value};

use crate::demo;
use crate::lambda::Invocation;
use crate::manifest::Parameters;
use crate::stack::{LocalStack, Options};

/// App credentials for a local stack; none of them is real.
/// The admin API's operator key in the test stacks.
pub const TEST_OPERATOR_KEY: &str = "test-operator-key";

/// The HubSpot app's client secret the test stacks run with (it signs workflow calls).
pub const TEST_HUBSPOT_SECRET: &str = "test-hubspot-secret";

/// A workflow-action call as HubSpot sends it: signed (v2 and v3) at `timestamp_ms`.
pub fn signed_call(url: &str, body: &Value, timestamp_ms: i64) -> reqwest::RequestBuilder {
    use hubspot_qbo_core::actions::signature::{v2_signature, v3_signature};
    let text = body.to_string();
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header(
            "X-HubSpot-Signature",
            v2_signature(TEST_HUBSPOT_SECRET, "POST", url, text.as_bytes()),
        )
        .header("X-HubSpot-Signature-Version", "v2")
        .header(
            "X-HubSpot-Signature-v3",
            v3_signature(
                TEST_HUBSPOT_SECRET,
                "POST",
                url,
                text.as_bytes(),
                timestamp_ms,
            ),
        )
        .header("X-HubSpot-Request-Timestamp", timestamp_ms.to_string())
        .body(text)
}

/// The body of a workflow-action call on one record.
pub fn action_call(callback: &str, portal: u64, object: (&str, &str), inputs: Value) -> Value {
    json!({
        "callbackId": callback,
        "origin": {"portalId": portal, "actionDefinitionId": 1, "actionDefinitionVersion": 1},
        "context": {"source": "WORKFLOWS", "workflowId": 1},
        "object": {"objectId": object.1.parse::<u64>().unwrap_or(0), "objectType": object.0},
        "inputFields": inputs,
    })
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Sends a call until it is answered for good (not 429 or 503, as HubSpot retries those);
/// answers the status and body.
pub async fn answered_call(url: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    for _ in 0..150 {
        let response = signed_call(url, body, now_ms()).send().await?;
        let status = response.status().as_u16();
        let answer: Value = response.json().await?;
        if status != 429 && status != 503 {
            return Ok((status, answer));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("the call was never answered for good")
}

pub fn test_parameters() -> Parameters {
    [
        ("HubSpotAppId", "1000001"),
        ("HubSpotClientId", "test-hubspot-client"),
        ("HubSpotClientSecret", TEST_HUBSPOT_SECRET),
        ("AdminOperatorKey", TEST_OPERATOR_KEY),
        ("QboClientId", "test-qbo-client"),
        ("QboClientSecret", "test-qbo-secret"),
        ("QboWebhookVerifierToken", "test-verifier-token"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A running local stack whose queues are consumed and whose schedule runs when asked.
pub struct SyncStack {
    pub stack: LocalStack,
    pub qbo: String,
    pub hubspot: String,
    pub services: Services,
    http: reqwest::Client,
}

impl SyncStack {
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        Self::start_with(name, |_| {}).await
    }

    pub async fn start_with(name: &str, adjust: impl FnOnce(&mut Options)) -> anyhow::Result<Self> {
        let mut options = Options {
            stack_name: name.into(),
            parameters: test_parameters(),
            run_schedules: false,
            run_queues: true,
            // Tests sync by rounds they start; those about notifications switch them on.
            webhooks: false,
            retry_after: Some(Duration::from_secs(1)),
            log_dir: std::env::var_os("SYNC_TEST_LOGS")
                .map(|d| std::path::PathBuf::from(d).join(name)),
            ..Options::default()
        };
        adjust(&mut options);
        if let Some(dir) = &options.log_dir {
            std::fs::create_dir_all(dir)?;
        }
        let stack = LocalStack::start(options).await?;
        let sandboxes = stack.sandboxes.as_ref().context("no sandboxes")?;
        let (qbo, hubspot) = (sandboxes.qbo.clone(), sandboxes.hubspot.clone());
        let environment = &stack.manifest.function("ObjectSyncFunction")?.environment;
        let config =
            hubspot_qbo_core::config::Config::from_lookup(|k| environment.get(k).cloned())?;
        let services = Services::new(config, &stack.aws.sdk_config().await);
        Ok(Self {
            stack,
            qbo,
            hubspot,
            services,
            http: reqwest::Client::new(),
        })
    }

    /// The demo company and portal, filled (see [`demo::seed`]) and connected; the initial
    /// sync has run.
    pub async fn demo_pair(&self, size: demo::DemoSize) -> anyhow::Result<Pair<'_>> {
        demo::seed(&self.qbo, &self.hubspot, size).await?;
        let portal = demo::PORTAL.parse::<u64>()?;
        self.connect(demo::REALM.to_owned(), portal).await
    }

    /// A new empty company and portal, connected; the initial sync has run.
    pub async fn pair(&self) -> anyhow::Result<Pair<'_>> {
        self.pair_with(json!({})).await
    }

    /// As [`Self::pair`], with a company made as `realm` says (e.g.
    /// `{"company": {"country": "GB", "custom_txn_numbers": true}}`).
    pub async fn pair_with(&self, realm: Value) -> anyhow::Result<Pair<'_>> {
        let realm: Value = self
            .http
            .post(format!("{}/_sandbox/realms", self.qbo))
            .json(&realm)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let realm = realm["realm_id"]
            .as_str()
            .context("no realm id")?
            .to_owned();
        let portal: Value = self
            .http
            .post(format!("{}/_sandbox/portals", self.hubspot))
            .json(&json!({}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let portal = portal["portal_id"].as_u64().context("no portal id")?;
        self.connect(realm, portal).await
    }

    async fn connect(&self, realm: String, portal: u64) -> anyhow::Result<Pair<'_>> {
        let qbo_token = self.token(&self.qbo, json!({"realm_id": realm})).await?;
        let hubspot_token = self
            .token(&self.hubspot, json!({"portal_id": portal}))
            .await?;
        let connected = demo::connect(
            self.stack.url("OAuthInstallFunction")?,
            &portal.to_string(),
            &realm,
        )
        .await?;
        let connection =
            ConnectionId::parse(connected["connection_id"].as_str().unwrap_or_default())?;
        let pair = Pair {
            stack: self,
            connection,
            realm,
            portal,
            qbo_token,
            hubspot_token,
        };
        self.settle().await?;
        Ok(pair)
    }

    async fn token(&self, sandbox: &str, body: Value) -> anyhow::Result<String> {
        crate::sandboxes::issued_token(&self.http, sandbox, body).await
    }

    /// One tick of the schedule, then everything it started, to the end.
    pub async fn sync(&self) -> anyhow::Result<Value> {
        let report = self.round().await?;
        self.settle().await?;
        Ok(report)
    }

    pub async fn round(&self) -> anyhow::Result<Value> {
        let poller = self.stack.function("ScheduledPollFunction")?;
        match poller
            .invoke(&crate::triggers::scheduled_event(
                "arn:aws:events:us-east-1:1:rule/poll",
            ))
            .await?
        {
            Invocation::Response(report) => Ok(report),
            other => anyhow::bail!("the round failed: {other:?}"),
        }
    }

    /// Waits until no message waits, is in flight or is delayed on either queue. Gives up when
    /// the count stops moving for two minutes (work that cannot finish), not at a fixed time,
    /// so that large syncs may take what they need.
    pub async fn settle(&self) -> anyhow::Result<()> {
        let sqs = aws_sdk_sqs::Client::new(&self.stack.aws.sdk_config().await);
        let started = Instant::now();
        let mut last = (u64::MAX, Instant::now());
        let mut quiet = 0;
        loop {
            let waiting = self.stack.messages_waiting(&sqs).await?;
            quiet = if waiting == 0 { quiet + 1 } else { 0 };
            if quiet >= 3 {
                return Ok(());
            }
            if waiting != last.0 {
                last = (waiting, Instant::now());
            }
            anyhow::ensure!(
                last.1.elapsed() < Duration::from_secs(120),
                "the queues stopped draining: {waiting} messages for two minutes"
            );
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(900),
                "the queues did not drain within fifteen minutes"
            );
            // Counting a long queue costs the local endpoint time: look less often then.
            let pause = if waiting > 10 { 1000 } else { 250 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// Posts to a sandbox's control API and answers its JSON.
    pub async fn control(&self, sandbox: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{sandbox}{path}"))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(status.is_success(), "{path} answered {status}: {text}");
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn control_get(&self, sandbox: &str, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{sandbox}{path}"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// A workflow-action execution as the HubSpot sandbox holds it.
    pub async fn execution(&self, callback_id: &str) -> anyhow::Result<Value> {
        self.control_get(
            &self.hubspot,
            &format!("/_sandbox/workflows/executions/{callback_id}"),
        )
        .await
    }

    /// Waits (up to a minute) for an execution to end: answered, failed, or BLOCKed.
    pub async fn finished_execution(&self, callback_id: &str) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let execution = self.execution(callback_id).await?;
            let state = execution["state"].as_str().unwrap_or_default();
            if !["PENDING", "RUNNING", "RETRYING"].contains(&state) {
                return Ok(execution);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "execution {callback_id} still {state} after a minute: {execution}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Adds a fault rule to a sandbox; answers its id.
    pub async fn add_fault(&self, sandbox: &str, rule: Value) -> anyhow::Result<u64> {
        let added = self.control(sandbox, "/_sandbox/faults", rule).await?;
        let id = added["id"]
            .as_u64()
            .or_else(|| added[0]["id"].as_u64())
            .or_else(|| added["rules"][0]["id"].as_u64());
        id.with_context(|| format!("no rule id in {added}"))
    }

    /// The fault rules of a sandbox with their hits.
    pub async fn faults(&self, sandbox: &str) -> anyhow::Result<Vec<Value>> {
        let listed = self.control_get(sandbox, "/_sandbox/faults").await?;
        Ok(listed
            .as_array()
            .or_else(|| listed["rules"].as_array())
            .cloned()
            .unwrap_or_default())
    }

    pub async fn clear_faults(&self, sandbox: &str) -> anyhow::Result<()> {
        self.http
            .delete(format!("{sandbox}/_sandbox/faults"))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Every endpoint's counters (`"POST /path"` → `{total, by_status}`).
    pub async fn counters(&self, sandbox: &str) -> anyhow::Result<serde_json::Map<String, Value>> {
        let counters = self.control_get(sandbox, "/_sandbox/counters").await?;
        Ok(counters["endpoints"]
            .as_object()
            .cloned()
            .unwrap_or_default())
    }

    /// How many answers of a status a sandbox gave, across endpoints.
    pub async fn answered(&self, sandbox: &str, status: u16) -> anyhow::Result<u64> {
        Ok(self
            .counters(sandbox)
            .await?
            .values()
            .filter_map(|c| c["by_status"][status.to_string()].as_u64())
            .sum())
    }

    /// Writes (creates and updates) a sandbox answered, across every endpoint.
    pub async fn writes(&self, sandbox: &str) -> anyhow::Result<u64> {
        let reads = [
            "/query",
            "/search",
            "batch/read",
            "/oauth",
            "/properties",
            "/_sandbox",
        ];
        self.counters(sandbox)
            .await?
            .iter()
            .filter(|(key, _)| {
                (key.starts_with("POST") || key.starts_with("PATCH"))
                    && !reads.iter().any(|read| key.contains(read))
            })
            .map(|(key, c)| {
                c["count"]
                    .as_u64()
                    .with_context(|| format!("no count for {key}"))
            })
            .sum()
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.stack.shutdown().await
    }
}

/// One connected company and portal.
pub struct Pair<'a> {
    pub stack: &'a SyncStack,
    pub connection: ConnectionId,
    pub realm: String,
    pub portal: u64,
    qbo_token: String,
    hubspot_token: String,
}

/// Waits until `check` answers something, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    loop {
        if let Some(found) = check().await? {
            return Ok(found);
        }
        anyhow::ensure!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A contact on both sides: its HubSpot id, its QuickBooks customer id and its email.
#[derive(Debug, Clone)]
pub struct LinkedContact {
    pub contact: String,
    pub customer: String,
    pub email: String,
}

/// A browser signed in to the admin page: its cookies and its session's CSRF token.
pub struct SignedIn {
    pub admin: String,
    pub cookies: String,
    pub csrf: String,
}

impl SignedIn {
    /// A call to the admin function as this browser (its cookies; changes carry the token).
    pub fn call(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let changes = method != reqwest::Method::GET;
        let request = no_redirects()
            .request(
                method,
                format!("{}{}", self.admin, path.trim_start_matches('/')),
            )
            .header("cookie", &self.cookies);
        if changes {
            request.header("x-csrf-token", &self.csrf)
        } else {
            request
        }
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// The `name=value` of each `Set-Cookie` of a response.
pub fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::to_owned)
        .collect()
}

fn location(response: &reqwest::Response) -> anyhow::Result<String> {
    Ok(response
        .headers()
        .get("location")
        .context("no redirect")?
        .to_str()?
        .to_owned())
}

impl SyncStack {
    /// Signs a new browser in to the admin page with HubSpot, for `portal` (the sandbox
    /// consents at once), following each redirect by hand as a browser would.
    pub async fn sign_in(&self, portal: u64) -> anyhow::Result<SignedIn> {
        self.sign_in_again(None, portal).await
    }

    /// As [`Self::sign_in`], in a browser that may already hold cookies.
    pub async fn sign_in_again(
        &self,
        browser: Option<&SignedIn>,
        portal: u64,
    ) -> anyhow::Result<SignedIn> {
        let admin = self.stack.url("AdminFunction")?.to_owned();
        let http = no_redirects();
        let mut cookies: Vec<String> = browser
            .map(|b| b.cookies.split("; ").map(str::to_owned).collect())
            .unwrap_or_default();
        let start = http
            .get(format!("{admin}signin?portal={portal}"))
            .header("cookie", cookies.join("; "))
            .send()
            .await?;
        anyhow::ensure!(
            start.status() == 303 || start.status() == 302,
            "signin: {}",
            start.status()
        );
        for cookie in set_cookies(&start) {
            let name = cookie.split('=').next().unwrap_or_default().to_owned();
            cookies.retain(|c| !c.starts_with(&format!("{name}=")));
            cookies.push(cookie);
        }
        let consent = http.get(location(&start)?).send().await?;
        let callback = http
            .get(location(&consent)?)
            .header("cookie", cookies.join("; "))
            .send()
            .await?;
        anyhow::ensure!(
            callback.status().is_redirection(),
            "sign-in callback: {} {}",
            callback.status(),
            callback.text().await.unwrap_or_default()
        );
        for cookie in set_cookies(&callback) {
            let name = cookie.split('=').next().unwrap_or_default().to_owned();
            cookies.retain(|c| !c.starts_with(&format!("{name}=")));
            cookies.push(cookie);
        }
        let cookies = cookies.join("; ");
        let session: Value = http
            .get(format!("{admin}api/session"))
            .header("cookie", &cookies)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let csrf = session["csrf_token"]
            .as_str()
            .context("no csrf token")?
            .to_owned();
        Ok(SignedIn {
            admin,
            cookies,
            csrf,
        })
    }
}

/// The values that occur more than once.
pub fn duplicates<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for value in values {
        *seen.entry(value).or_default() += 1;
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(v, _)| v.to_owned())
        .collect()
}

/// A record's id: HubSpot's `id` or QuickBooks' `Id`.
pub fn record_id(record: &Value) -> String {
    record["id"]
        .as_str()
        .or(record["Id"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A property's value; empty counts as none.
pub fn property<'r>(record: &'r Value, name: &str) -> Option<&'r str> {
    record["properties"][name]
        .as_str()
        .filter(|v| !v.is_empty())
}

impl Pair<'_> {
    fn http(&self) -> &reqwest::Client {
        &self.stack.http
    }

    fn now(&self) -> i64 {
        self.stack.services.clock.now_seconds()
    }

    // QuickBooks, through its API as an app would.

    /// Creates an entity (`Customer`, `Item` …) and answers it.
    pub async fn qbo_create(&self, entity: &str, body: Value) -> anyhow::Result<Value> {
        self.qbo_write(entity, "", body)
            .await
            .with_context(|| format!("creating a {entity}"))
    }

    /// Posts `body` to an entity's endpoint (with `operation`, when not empty); answers the
    /// entity written.
    async fn qbo_write(&self, entity: &str, operation: &str, body: Value) -> anyhow::Result<Value> {
        let operation = if operation.is_empty() {
            String::new()
        } else {
            format!("operation={operation}&")
        };
        let answer: Value = self
            .http()
            .post(format!(
                "{}/v3/company/{}/{}?{operation}minorversion=75",
                self.stack.qbo,
                self.realm,
                entity.to_lowercase()
            ))
            .bearer_auth(&self.qbo_token)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        answer
            .get(entity)
            .cloned()
            .with_context(|| format!("QuickBooks answered {answer}"))
    }

    /// A batch request (`{"BatchItemRequest": [...]}`); answers the batch response.
    pub async fn qbo_batch(&self, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http()
            .post(format!(
                "{}/v3/company/{}/batch?minorversion=75",
                self.stack.qbo, self.realm
            ))
            .bearer_auth(&self.qbo_token)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await?;
        anyhow::ensure!(status.is_success(), "batch answered {status}: {answer}");
        Ok(answer)
    }

    /// Reads an entity by id.
    pub async fn qbo_read(&self, entity: &str, id: &str) -> anyhow::Result<Value> {
        let answer: Value = self
            .http()
            .get(format!(
                "{}/v3/company/{}/{}/{id}?minorversion=75",
                self.stack.qbo,
                self.realm,
                entity.to_lowercase()
            ))
            .bearer_auth(&self.qbo_token)
            .send()
            .await?
            .json()
            .await?;
        answer
            .get(entity)
            .cloned()
            .with_context(|| format!("reading {entity} {id}: {answer}"))
    }

    /// A sparse update of `fields` on the entity as it is now.
    pub async fn qbo_update(&self, entity: &str, id: &str, fields: Value) -> anyhow::Result<Value> {
        let current = self.qbo_read(entity, id).await?;
        let mut body = json!({"Id": id, "SyncToken": current["SyncToken"], "sparse": true});
        if let (Some(body), Some(fields)) = (body.as_object_mut(), fields.as_object()) {
            body.extend(fields.clone());
        }
        self.qbo_create(entity, body).await
    }

    /// Deletes or voids a transaction (`operation`: `delete`, `void`) as it is now.
    pub async fn qbo_operation(
        &self,
        entity: &str,
        id: &str,
        operation: &str,
    ) -> anyhow::Result<Value> {
        let current = self.qbo_read(entity, id).await?;
        let body = json!({"Id": id, "SyncToken": current["SyncToken"]});
        self.qbo_write(entity, operation, body)
            .await
            .with_context(|| format!("{operation} of {entity} {id}"))
    }

    /// Every entity of a kind, active or not.
    pub async fn qbo_all(&self, entity: &str) -> anyhow::Result<Vec<Value>> {
        let dump: Value = self
            .http()
            .get(format!(
                "{}/_sandbox/realms/{}/entities/{entity}",
                self.stack.qbo, self.realm
            ))
            .send()
            .await?
            .json()
            .await?;
        Ok(dump["objects"].as_array().cloned().unwrap_or_default())
    }

    /// Fills the company with generated customers and items (made now, so they are changes
    /// since the last read).
    pub async fn qbo_generate(&self, customers: usize, items: usize) -> anyhow::Result<()> {
        self.stack
            .control(
                &self.stack.qbo,
                "/_sandbox/seed/generate",
                json!({"seed": 11, "realm_id": self.realm, "company_name": "Generated",
                    "customers": customers, "items": items, "invoices": 0, "estimates": 0,
                    "sales_receipts": 0}),
            )
            .await?;
        Ok(())
    }

    /// Fills the company with generated customers, items and invoices (half of them paid,
    /// some in part).
    pub async fn qbo_generate_invoices(
        &self,
        customers: usize,
        items: usize,
        invoices: usize,
    ) -> anyhow::Result<()> {
        self.stack
            .control(
                &self.stack.qbo,
                "/_sandbox/seed/generate",
                json!({"seed": 13, "realm_id": self.realm, "company_name": "Generated",
                    "customers": customers, "items": items, "invoices": invoices, "estimates": 0,
                    "sales_receipts": 0, "paid_fraction": 0.5}),
            )
            .await?;
        Ok(())
    }

    /// Creates records through the batch API, 100 a call (throttling off meanwhile).
    pub async fn hubspot_create_many(
        &self,
        object_type: &str,
        records: Vec<Value>,
    ) -> anyhow::Result<()> {
        let limits = self
            .stack
            .control_get(&self.stack.hubspot, "/_sandbox/throttle")
            .await?;
        let mut off = limits.clone();
        off["enabled"] = Value::Bool(false);
        self.stack
            .control(&self.stack.hubspot, "/_sandbox/throttle", off)
            .await?;
        let result = async {
            for chunk in records.chunks(100) {
                let inputs: Vec<Value> = chunk.iter().map(|p| json!({ "properties": p })).collect();
                self.hubspot_api(
                    reqwest::Method::POST,
                    &format!("/crm/v3/objects/{object_type}/batch/create"),
                    Some(json!({ "inputs": inputs })),
                )
                .await?;
            }
            anyhow::Ok(())
        }
        .await;
        self.stack
            .control(&self.stack.hubspot, "/_sandbox/throttle", limits)
            .await?;
        result
    }

    // HubSpot: writes as a person in HubSpot makes them, reads through the sandbox's view.

    pub async fn hubspot_create(
        &self,
        object_type: &str,
        properties: Value,
    ) -> anyhow::Result<Value> {
        let path = format!("objects/{object_type}");
        self.hubspot_write(reqwest::Method::POST, &path, properties)
            .await
            .with_context(|| format!("creating a {object_type}"))
    }

    pub async fn hubspot_update(
        &self,
        object_type: &str,
        id: &str,
        properties: Value,
    ) -> anyhow::Result<Value> {
        let path = format!("objects/{object_type}/{id}");
        self.hubspot_write(reqwest::Method::PATCH, &path, properties)
            .await
            .with_context(|| format!("updating {object_type} {id}"))
    }

    /// Writes properties through the sandbox's view of the portal; answers the record.
    async fn hubspot_write(
        &self,
        method: reqwest::Method,
        path: &str,
        properties: Value,
    ) -> anyhow::Result<Value> {
        let written: Value = self
            .http()
            .request(
                method,
                format!(
                    "{}/_sandbox/portals/{}/{path}",
                    self.stack.hubspot, self.portal
                ),
            )
            .json(&json!({ "properties": properties }))
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(written["id"].is_string(), "the sandbox answered {written}");
        Ok(written)
    }

    /// An invoice made in HubSpot as a person makes one: a draft with `properties`, the
    /// contact and a line item per element of `lines` (its properties) associated, then moved
    /// to `status`. Answers the invoice's id.
    pub async fn hubspot_invoice(
        &self,
        contact: &str,
        lines: &[Value],
        mut properties: Value,
        status: &str,
    ) -> anyhow::Result<String> {
        properties["hs_currency"] = json!("USD");
        let invoice = self.hubspot_create("invoices", properties).await?;
        let invoice = invoice["id"].as_str().unwrap_or_default().to_owned();
        self.hubspot_associate("invoices", &invoice, "contacts", contact)
            .await?;
        for line in lines {
            let line = self.hubspot_create("line_items", line.clone()).await?;
            let line = line["id"].as_str().unwrap_or_default();
            self.hubspot_associate("invoices", &invoice, "line_items", line)
                .await?;
        }
        if status != "draft" {
            self.hubspot_update("invoices", &invoice, json!({"hs_invoice_status": status}))
                .await?;
        }
        Ok(invoice)
    }

    /// The ids of `to_type` records associated with a record, through the API.
    pub async fn hubspot_associated(
        &self,
        from_type: &str,
        id: &str,
        to_type: &str,
    ) -> anyhow::Result<Vec<String>> {
        let page = self
            .hubspot_api(
                reqwest::Method::GET,
                &format!("/crm/v4/objects/{from_type}/{id}/associations/{to_type}"),
                None,
            )
            .await?;
        let mut ids: Vec<String> = page["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| match &r["toObjectId"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Associates two records with their default association type, through the API.
    pub async fn hubspot_associate(
        &self,
        from_type: &str,
        from: &str,
        to_type: &str,
        to: &str,
    ) -> anyhow::Result<()> {
        self.hubspot_api(
            reqwest::Method::PUT,
            &format!("/crm/v4/objects/{from_type}/{from}/associations/default/{to_type}/{to}"),
            None,
        )
        .await
        .map(drop)
    }

    pub async fn hubspot_archive(&self, object_type: &str, id: &str) -> anyhow::Result<()> {
        self.http()
            .delete(format!(
                "{}/_sandbox/portals/{}/objects/{object_type}/{id}",
                self.stack.hubspot, self.portal
            ))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Merges two contacts through the API; answers the merged contact.
    pub async fn hubspot_merge(&self, primary: &str, secondary: &str) -> anyhow::Result<Value> {
        let merged: Value = self
            .http()
            .post(format!(
                "{}/crm/v3/objects/contacts/merge",
                self.stack.hubspot
            ))
            .bearer_auth(&self.hubspot_token)
            .json(&json!({"primaryObjectId": primary, "objectIdToMerge": secondary}))
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(merged["id"].is_string(), "merging: {merged}");
        Ok(merged)
    }

    /// A contact made in HubSpot, waited for in QuickBooks (the contact filters must let it
    /// through); answers it and how long it took.
    pub async fn contact_made_in_hubspot(
        &self,
        name: &str,
        limit: Duration,
    ) -> anyhow::Result<(LinkedContact, Duration)> {
        let email = format!("{}@example.com", name.to_lowercase());
        let started = Instant::now();
        let contact = record_id(
            &self
                .hubspot_create(
                    "contacts",
                    json!({"email": email, "firstname": name, "lastname": "Edits"}),
                )
                .await?,
        );
        let customer = eventually(limit, "the HubSpot contact in QuickBooks", || async {
            Ok(self.qbo_all("Customer").await?.into_iter().find(|c| {
                c["PrimaryEmailAddr"]["Address"]
                    .as_str()
                    .is_some_and(|e| e.trim().eq_ignore_ascii_case(&email))
            }))
        })
        .await?;
        let linked = LinkedContact {
            contact,
            customer: customer["Id"].as_str().unwrap_or_default().to_owned(),
            email,
        };
        Ok((linked, started.elapsed()))
    }

    /// Sets the phone on one side and waits until the other side has it: how long it took.
    pub async fn phone_edited(
        &self,
        linked: &LinkedContact,
        on: Provider,
        phone: &str,
        limit: Duration,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        match on {
            Provider::Qbo => {
                self.qbo_update(
                    "Customer",
                    &linked.customer,
                    json!({"PrimaryPhone": {"FreeFormNumber": phone}}),
                )
                .await?;
                eventually(limit, "the QuickBooks phone in HubSpot", || async {
                    let found = self
                        .hubspot_with("contacts", "email", &linked.email)
                        .await?;
                    Ok(found
                        .iter()
                        .any(|c| {
                            record_id(c) == linked.contact && property(c, "phone") == Some(phone)
                        })
                        .then_some(()))
                })
                .await?;
            }
            Provider::HubSpot => {
                self.hubspot_update("contacts", &linked.contact, json!({"phone": phone}))
                    .await?;
                eventually(limit, "the HubSpot phone in QuickBooks", || async {
                    let customer = self.qbo_read("Customer", &linked.customer).await?;
                    Ok(
                        (customer["PrimaryPhone"]["FreeFormNumber"].as_str() == Some(phone))
                            .then_some(()),
                    )
                })
                .await?;
            }
        }
        Ok(started.elapsed())
    }

    /// Calls the HubSpot API with the portal's token.
    pub async fn hubspot_api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http()
            .request(method, format!("{}{path}", self.stack.hubspot))
            .bearer_auth(&self.hubspot_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(status.is_success(), "{path} answered {status}: {text}");
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Every live record of a type, with all its properties.
    pub async fn hubspot_all(&self, object_type: &str) -> anyhow::Result<Vec<Value>> {
        let dump: Value = self
            .http()
            .get(format!(
                "{}/_sandbox/portals/{}/objects/{object_type}",
                self.stack.hubspot, self.portal
            ))
            .send()
            .await?
            .json()
            .await?;
        Ok(dump["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["archived"] != true)
            .cloned()
            .collect())
    }

    /// The live HubSpot records whose `name` property is `value`.
    pub async fn hubspot_with(
        &self,
        object_type: &str,
        name: &str,
        value: &str,
    ) -> anyhow::Result<Vec<Value>> {
        Ok(self
            .hubspot_all(object_type)
            .await?
            .into_iter()
            .filter(|r| property(r, name).is_some_and(|v| v.eq_ignore_ascii_case(value)))
            .collect())
    }

    /// A deal or quote (`object_type`) as a salesperson makes one: `properties`, the contact
    /// (if any) and a line item per element of `lines` associated. Answers its id.
    pub async fn hubspot_sale(
        &self,
        object_type: &str,
        properties: Value,
        contact: Option<&str>,
        lines: &[Value],
    ) -> anyhow::Result<String> {
        let sale = record_id(&self.hubspot_create(object_type, properties).await?);
        if let Some(contact) = contact {
            self.hubspot_associate(object_type, &sale, "contacts", contact)
                .await?;
        }
        for line in lines {
            let line = record_id(&self.hubspot_create("line_items", line.clone()).await?);
            self.hubspot_associate(object_type, &sale, "line_items", &line)
                .await?;
        }
        Ok(sale)
    }

    // Workflows, as HubSpot's workflow engine runs custom actions.

    /// Enrolls a record in a workflow whose custom action is the function `function` (its
    /// URL): the sandbox signs the call and sends it, retrying as HubSpot does. Answers the
    /// execution as it started (its `callbackId`).
    pub async fn enroll(
        &self,
        function: &str,
        object_type: &str,
        object_id: &str,
        inputs: Value,
    ) -> anyhow::Result<Value> {
        let url = self.stack.stack.url(function)?;
        self.stack
            .control(
                &self.stack.hubspot,
                "/_sandbox/workflows/enroll",
                json!({
                    "portal_id": self.portal,
                    "action_url": url,
                    "object_type": object_type,
                    "object_id": object_id.parse::<u64>()?,
                    "input_fields": inputs,
                }),
            )
            .await
    }

    /// Runs the action on a record and answers the execution once it ended.
    pub async fn run_action(
        &self,
        function: &str,
        object_type: &str,
        object_id: &str,
        inputs: Value,
    ) -> anyhow::Result<Value> {
        let started = self
            .enroll(function, object_type, object_id, inputs)
            .await?;
        let callback = started["callbackId"].as_str().context("no callbackId")?;
        self.stack.finished_execution(callback).await
    }

    // The integration's own state.

    /// Edits the connection's workflow-action settings.
    pub async fn action_settings(
        &self,
        edit: impl FnOnce(&mut hubspot_qbo_core::actions::settings::ActionSettings),
    ) -> anyhow::Result<()> {
        let store = hubspot_qbo_core::actions::settings::ActionSettingsStore::new(
            self.stack.services.store.clone(),
        );
        let mut settings = store.get(&self.connection, self.now()).await?;
        edit(&mut settings);
        store.put(&self.connection, &settings).await?;
        Ok(())
    }

    /// Edits an object's settings through the core's settings port.
    pub async fn settings(
        &self,
        object: ObjectKind,
        edit: impl FnMut(&mut ObjectSettings),
    ) -> anyhow::Result<ObjectSettings> {
        SyncSettings::new(self.stack.services.store.clone())
            .edit(&self.connection, object, self.now(), edit)
            .await?
            .context("no settings for the object")
    }

    fn ledger(&self) -> Ledger {
        Ledger::new(self.stack.services.store.clone())
    }

    /// (synced, failing, excluded, pending) entries of an object.
    pub async fn counts(&self, object: ObjectKind) -> anyhow::Result<(usize, usize, usize, usize)> {
        let counts = self
            .ledger()
            .counts(&self.connection, object, self.now())
            .await?;
        Ok((
            counts[&LinkStatus::Synced],
            counts[&LinkStatus::Failing],
            counts[&LinkStatus::Excluded],
            counts[&LinkStatus::Pending],
        ))
    }

    /// Records the deal a QuickBooks invoice was made from, as the workflow actions do.
    pub async fn record_invoice_deal(&self, qbo_invoice: &str, deal: &str) -> anyhow::Result<()> {
        use hubspot_qbo_core::store::{keys, Item, Table};
        let item = Item::from_value(
            keys::ledger::invoice_deal(&self.connection, qbo_invoice),
            &json!({ "deal_id": deal }),
        )?;
        self.stack.services.store.put(Table::Ledger, item).await?;
        Ok(())
    }

    /// Makes the failing entries of a category due for retry now (as their time coming would).
    pub async fn retry_now(&self, object: ObjectKind, category: &str) -> anyhow::Result<usize> {
        Ok(self
            .ledger()
            .retry_failures(&self.connection, object, Some(category), self.now())
            .await?)
    }

    pub async fn entries(
        &self,
        object: ObjectKind,
        status: LinkStatus,
    ) -> anyhow::Result<Vec<LedgerEntry>> {
        Ok(self
            .ledger()
            .with_status(&self.connection, object, status, self.now())
            .await?)
    }

    /// The entry holding a record of one side, whatever its status.
    pub async fn entry(
        &self,
        object: ObjectKind,
        side: hubspot_qbo_core::domain::Provider,
        id: &str,
    ) -> anyhow::Result<Option<LedgerEntry>> {
        Ok(self
            .ledger()
            .find(&self.connection, object, side, &[id.to_owned()], self.now())
            .await?
            .remove(id)
            .map(|s| s.entry))
    }
}
