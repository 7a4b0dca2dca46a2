//! The sync as a user meets it: the local stack (real binaries, both sandboxes, the local AWS
//! endpoint) with fresh QuickBooks companies and HubSpot portals connected through the install
//! pages, edited through the providers' APIs, and rounds of the schedule run on demand.

use std::time::{Duration, Instant};

use anyhow::Context;
use hubspot_qbo_core::domain::{ConnectionId, ObjectKind};
use hubspot_qbo_core::ledger::{Ledger, LedgerEntry, LinkStatus};
use hubspot_qbo_core::runtime::Services;
use hubspot_qbo_core::settings::ObjectSettings;
use hubspot_qbo_core::sync::settings::SyncSettings;
use local_stack::demo;
use local_stack::lambda::Invocation;
use local_stack::stack::{LocalStack, Options};
use serde_json::{json, Value};

use crate::test_parameters;

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

    /// A new empty company and portal, connected; the initial sync has run.
    pub async fn pair(&self) -> anyhow::Result<Pair<'_>> {
        let realm: Value = self
            .http
            .post(format!("{}/_sandbox/realms", self.qbo))
            .json(&json!({}))
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
        let pair: Value = self
            .http
            .post(format!("{sandbox}/_sandbox/tokens"))
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(pair["access_token"]
            .as_str()
            .context("no token")?
            .to_owned())
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
            .invoke(&local_stack::triggers::scheduled_event(
                "arn:aws:events:us-east-1:1:rule/poll",
            ))
            .await?
        {
            Invocation::Response(report) => Ok(report),
            other => anyhow::bail!("the round failed: {other:?}"),
        }
    }

    /// Waits until no message waits, is in flight or is delayed on either queue.
    pub async fn settle(&self) -> anyhow::Result<()> {
        let sqs = aws_sdk_sqs::Client::new(&self.stack.aws.sdk_config().await);
        let started = Instant::now();
        let mut quiet = 0;
        while started.elapsed() < Duration::from_secs(240) {
            let mut waiting = 0;
            for name in ["SyncQueue", "PollQueue"] {
                let attributes = sqs
                    .get_queue_attributes()
                    .queue_url(&self.stack.manifest.queue(name)?.url)
                    .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                    .send()
                    .await?;
                waiting += attributes
                    .attributes()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| k.as_str().starts_with("ApproximateNumberOfMessages"))
                    .filter_map(|(_, v)| v.parse::<u64>().ok())
                    .sum::<u64>();
            }
            quiet = if waiting == 0 { quiet + 1 } else { 0 };
            if quiet >= 3 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        anyhow::bail!("the queues did not drain within four minutes")
    }

    /// Writes (creates and updates) a sandbox answered, across every endpoint.
    pub async fn writes(&self, sandbox: &str) -> anyhow::Result<u64> {
        let counters: Value = self
            .http
            .get(format!("{sandbox}/_sandbox/counters"))
            .send()
            .await?
            .json()
            .await?;
        Ok(counters["endpoints"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(key, _)| {
                (key.starts_with("POST") || key.starts_with("PATCH"))
                    && ![
                        "/query",
                        "/search",
                        "batch/read",
                        "/oauth",
                        "/properties",
                        "/_sandbox",
                    ]
                    .iter()
                    .any(|skip| key.contains(skip))
            })
            .filter_map(|(_, c)| c["total"].as_u64())
            .sum())
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
        let answer: Value = self
            .http()
            .post(format!(
                "{}/v3/company/{}/{}?minorversion=75",
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
            .with_context(|| format!("creating a {entity}: {answer}"))
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

    // HubSpot: writes as a person in HubSpot makes them, reads through the sandbox's view.

    pub async fn hubspot_create(
        &self,
        object_type: &str,
        properties: Value,
    ) -> anyhow::Result<Value> {
        let created: Value = self
            .http()
            .post(format!(
                "{}/_sandbox/portals/{}/objects/{object_type}",
                self.stack.hubspot, self.portal
            ))
            .json(&json!({ "properties": properties }))
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(
            created["id"].is_string(),
            "creating a {object_type}: {created}"
        );
        Ok(created)
    }

    pub async fn hubspot_update(
        &self,
        object_type: &str,
        id: &str,
        properties: Value,
    ) -> anyhow::Result<Value> {
        let updated: Value = self
            .http()
            .patch(format!(
                "{}/_sandbox/portals/{}/objects/{object_type}/{id}",
                self.stack.hubspot, self.portal
            ))
            .json(&json!({ "properties": properties }))
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(
            updated["id"].is_string(),
            "updating {object_type} {id}: {updated}"
        );
        Ok(updated)
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

    // The integration's own state.

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
