//! The sync end to end: the real binaries on the local stack, both sandboxes, the local AWS
//! endpoint. A generated company and portal are connected through the install pages; the
//! initial sync runs through the queues (initial-sync request → poll task → pages of changes →
//! object-sync); then edits on either side arrive on the next scheduled round, and the rounds
//! after that write nothing (our own writes are recognised).

use std::time::Duration;

use hubspot_qbo_core::clock::Clock;
use hubspot_qbo_core::domain::{ConnectionId, ObjectKind};
use hubspot_qbo_core::ledger::{Ledger, LinkStatus};
use hubspot_qbo_core::runtime::Services;
use hubspot_qbo_core::sync::settings::SyncSettings;
use integration_tests::test_parameters;
use local_stack::demo::{self, DemoSize};
use local_stack::lambda::Invocation;
use local_stack::stack::{LocalStack, Options};
use serde_json::{json, Value};

struct Stack {
    stack: LocalStack,
    qbo: String,
    hubspot: String,
    http: reqwest::Client,
    services: Services,
    connection: ConnectionId,
}

impl Stack {
    async fn start(name: &str, size: DemoSize) -> anyhow::Result<Self> {
        let stack = LocalStack::start(Options {
            stack_name: name.into(),
            parameters: test_parameters(),
            run_schedules: false,
            run_queues: true,
            log_dir: std::env::var_os("SYNC_TEST_LOGS").map(std::path::PathBuf::from),
            ..Options::default()
        })
        .await?;
        let sandboxes = stack
            .sandboxes
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no sandboxes"))?;
        let (qbo, hubspot) = (sandboxes.qbo.clone(), sandboxes.hubspot.clone());
        demo::seed(&qbo, &hubspot, size).await?;
        let environment = &stack.manifest.function("ObjectSyncFunction")?.environment;
        let config =
            hubspot_qbo_core::config::Config::from_lookup(|k| environment.get(k).cloned())?;
        let services = Services::new(config, &stack.aws.sdk_config().await);
        let connected = demo::connect(
            stack.url("OAuthInstallFunction")?,
            demo::PORTAL,
            demo::REALM,
        )
        .await?;
        let connection =
            ConnectionId::parse(connected["connection_id"].as_str().unwrap_or_default())?;
        Ok(Self {
            stack,
            qbo,
            hubspot,
            http: reqwest::Client::new(),
            services,
            connection,
        })
    }

    async fn hubspot_records(&self, object_type: &str) -> anyhow::Result<Vec<Value>> {
        let dump: Value = self
            .http
            .get(format!(
                "{}/_sandbox/portals/{}/objects/{object_type}",
                self.hubspot,
                demo::PORTAL
            ))
            .send()
            .await?
            .json()
            .await?;
        Ok(dump["results"].as_array().cloned().unwrap_or_default())
    }

    async fn qbo_records(&self, entity: &str) -> anyhow::Result<Vec<Value>> {
        let dump: Value = self
            .http
            .get(format!(
                "{}/_sandbox/realms/{}/entities/{entity}",
                self.qbo,
                demo::REALM
            ))
            .send()
            .await?
            .json()
            .await?;
        Ok(dump["objects"].as_array().cloned().unwrap_or_default())
    }

    async fn counts(&self, object: ObjectKind) -> anyhow::Result<(usize, usize, usize)> {
        let counts = Ledger::new(self.services.store.clone())
            .counts(&self.connection, object, Clock::system().now_seconds())
            .await?;
        Ok((
            counts[&LinkStatus::Synced],
            counts[&LinkStatus::Failing],
            counts[&LinkStatus::Excluded],
        ))
    }

    async fn round(&self) -> anyhow::Result<Value> {
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

    async fn writes(&self, sandbox: &str) -> anyhow::Result<u64> {
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
                    && !key.contains("/query")
                    && !key.contains("/search")
                    && !key.contains("batch/read")
                    && !key.contains("/oauth")
                    && !key.contains("/properties")
            })
            .filter_map(|(_, c)| c["total"].as_u64())
            .sum())
    }

    async fn until(
        &self,
        what: &str,
        mut check: impl AsyncFnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(90) {
            if check().await? {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        anyhow::bail!("timed out waiting for {what}")
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.stack.shutdown().await
    }
}

fn property<'a>(record: &'a Value, name: &str) -> Option<&'a str> {
    record["properties"][name]
        .as_str()
        .filter(|v| !v.is_empty())
}

#[tokio::test]
async fn a_connected_company_syncs_initially_then_incrementally_and_then_rests(
) -> anyhow::Result<()> {
    let s = Stack::start("sync", DemoSize::default()).await?;
    let customers: Vec<Value> = s
        .qbo_records("Customer")
        .await?
        .into_iter()
        .filter(|c| c["Active"] != false)
        .collect();
    let items = s.qbo_records("Item").await?;
    let with_sku = items
        .iter()
        .filter(|i| i["Sku"].as_str().is_some_and(|s| !s.is_empty()) && i["Active"] != false)
        .count();
    assert!(
        with_sku > 0 && with_sku < items.len(),
        "the demo has items with and without a SKU"
    );

    // The initial sync: every customer becomes a contact, every item with a SKU a product.
    s.until("the initial sync of customers and items", async || {
        let contacts = s.hubspot_records("contacts").await?;
        let linked = contacts
            .iter()
            .filter(|c| property(c, "qbo_customer_id").is_some())
            .count();
        let products = s.hubspot_records("products").await?;
        let from_qbo = products
            .iter()
            .filter(|p| property(p, "qbo_item_id").is_some())
            .count();
        Ok(linked == customers.len() && from_qbo == with_sku)
    })
    .await?;
    let (synced, failing, _) = s.counts(ObjectKind::Contact).await?;
    assert_eq!((synced, failing), (customers.len(), 0));
    let (synced, _, excluded) = s.counts(ObjectKind::Product).await?;
    assert_eq!(synced, with_sku);
    assert!(
        excluded >= items.len() - with_sku - items.iter().filter(|i| i["Active"] == false).count()
    );
    let obrien = s
        .hubspot_records("contacts")
        .await?
        .into_iter()
        .find(|c| property(c, "email") == Some("siobhan@obriens.example"))
        .ok_or_else(|| anyhow::anyhow!("no contact for the apostrophe customer"))?;
    assert_eq!(property(&obrien, "lastname"), Some("O'Brien"));

    // A change in QuickBooks reaches HubSpot on the next round.
    let token: Value = s
        .http
        .post(format!("{}/_sandbox/tokens", s.qbo))
        .json(&json!({"realm_id": demo::REALM}))
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let target = customers
        .iter()
        .find(|c| c["PrimaryEmailAddr"]["Address"].is_string())
        .ok_or_else(|| anyhow::anyhow!("no customer with an email"))?;
    let answer: Value = s
        .http
        .post(format!(
            "{}/v3/company/{}/customer?minorversion=75",
            s.qbo,
            demo::REALM
        ))
        .bearer_auth(&token)
        .json(
            &json!({"Id": target["Id"], "SyncToken": target["SyncToken"], "sparse": true,
            "GivenName": "Renamed"}),
        )
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(answer["Customer"]["GivenName"], "Renamed", "{answer}");
    let report = s.round().await?;
    assert_eq!(report["poll_tasks"], 2, "contacts and products: {report}");
    let email = target["PrimaryEmailAddr"]["Address"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    s.until("the renamed customer in HubSpot", async || {
        Ok(s.hubspot_records("contacts").await?.iter().any(|c| {
            property(c, "email") == Some(email.as_str())
                && property(c, "firstname") == Some("Renamed")
        }))
    })
    .await?;

    // HubSpot → QuickBooks, once the contacts' filter lets contacts through.
    SyncSettings::new(s.services.store.clone())
        .edit(
            &s.connection,
            ObjectKind::Contact,
            Clock::system().now_seconds(),
            |c| c.filters.hubspot_to_qbo.clear(),
        )
        .await?
        .ok_or_else(|| anyhow::anyhow!("no contact settings"))?;
    let created: Value = s
        .http
        .post(format!("{}/_sandbox/portals/{}/objects/contacts", s.hubspot, demo::PORTAL))
        .json(&json!({"properties": {"email": "new.person@example.com", "firstname": "New", "lastname": "Person"}}))
        .send()
        .await?
        .json()
        .await?;
    assert!(created["id"].is_string(), "{created}");
    s.round().await?;
    s.until("the new HubSpot contact in QuickBooks", async || {
        Ok(s.qbo_records("Customer").await?.iter().any(|c| {
            c["PrimaryEmailAddr"]["Address"] == "new.person@example.com"
                && c["DisplayName"] == "New Person"
        }))
    })
    .await?;

    // Once everything has arrived, further rounds write nothing on either side.
    let settled = async || -> anyhow::Result<(u64, u64)> {
        let mut last = (s.writes(&s.qbo).await?, s.writes(&s.hubspot).await?);
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let now = (s.writes(&s.qbo).await?, s.writes(&s.hubspot).await?);
            if now == last {
                return Ok(now);
            }
            last = now;
        }
        Ok(last)
    };
    let before = settled().await?;
    for _ in 0..2 {
        s.round().await?;
    }
    let after = settled().await?;
    assert_eq!(
        after, before,
        "quiet rounds wrote to a sandbox (an echo was not recognised)"
    );
    s.stop().await
}
