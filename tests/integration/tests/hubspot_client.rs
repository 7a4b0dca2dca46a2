//! The typed HubSpot client against the HubSpot sandbox over HTTP: idempotent upserts by email
//! and by a unique property the integration creates, per-item errors of 207 answers, search
//! windows with paging and totals, associations, a refused token replaced once, and throttling.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use hubspot_qbo_core::domain::PortalId;
use hubspot_qbo_core::error_class::ErrorClass;
use hubspot_qbo_core::http::bearer::{Bearer, BearerError, FixedBearer};
use hubspot_qbo_core::http::pacing::Unpaced;
use hubspot_qbo_core::hubspot::{
    BatchInput, Filter, FilterGroup, HubSpotClient, HubSpotError, HubSpotLimits,
    PropertyDefinition, SearchRequest, Sort,
};
use sandbox::hubspot::{self, HubSpotConfig, SpawnedHubSpot};
use secrecy::SecretString;
use serde_json::{json, Value};

const PORTAL: &str = "62515";

struct Sandbox {
    hubspot: SpawnedHubSpot,
    http: reqwest::Client,
}

impl Sandbox {
    async fn start() -> anyhow::Result<Self> {
        Ok(Self {
            hubspot: hubspot::spawn(HubSpotConfig::default()).await?,
            http: reqwest::Client::new(),
        })
    }

    async fn control(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        Ok(self
            .http
            .post(format!("{}/_sandbox/{path}", self.hubspot.base_url))
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
            .unwrap_or(Value::Null))
    }

    async fn token(&self) -> anyhow::Result<SecretString> {
        let pair = self.control("tokens", json!({})).await?;
        Ok(SecretString::from(
            pair["access_token"].as_str().unwrap_or_default().to_owned(),
        ))
    }

    fn client(&self) -> anyhow::Result<HubSpotClient> {
        Ok(HubSpotClient::new(
            &self.hubspot.base_url,
            Arc::new(Unpaced),
            HubSpotLimits::default(),
        )?)
    }
}

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn upserts_never_duplicate_and_batches_report_per_item() -> anyhow::Result<()> {
    let sandbox = Sandbox::start().await?;
    let client = sandbox.client()?;
    let bearer = FixedBearer(sandbox.token().await?);
    let portal_id = PortalId::parse(PORTAL)?;
    let portal = client.portal(&portal_id, &bearer);

    let by_email = |first: &str| BatchInput {
        id: Some("ann@example.com".into()),
        id_property: Some("email".into()),
        properties: props(&[("firstname", first), ("email", "ann@example.com")]),
        object_write_trace_id: None,
    };
    let first = portal.batch_upsert("contacts", &[by_email("Ann")]).await?;
    let second = portal.batch_upsert("contacts", &[by_email("Anne")]).await?;
    assert_eq!(
        first.results[0].id, second.results[0].id,
        "one contact per email"
    );
    assert_eq!(first.results[0].new, Some(true));
    assert_eq!(second.results[0].new, Some(false));
    assert_eq!(second.results[0].property("firstname"), Some("Anne"));

    // A unique property the integration creates makes product upserts idempotent too.
    let qbo_id = PropertyDefinition {
        name: "qbo_item_id".into(),
        label: "QuickBooks item id".into(),
        property_type: "string".into(),
        field_type: "text".into(),
        group_name: "productinformation".into(),
        description: "The id of the linked QuickBooks item".into(),
        has_unique_value: true,
    };
    portal.ensure_property("products", &qbo_id).await?;
    portal.ensure_property("products", &qbo_id).await?;
    let product = |price: &str| BatchInput {
        id: Some("17".into()),
        id_property: Some("qbo_item_id".into()),
        properties: props(&[("name", "Widget"), ("price", price), ("hs_sku", "W-1")]),
        object_write_trace_id: None,
    };
    let made = portal.batch_upsert("products", &[product("10.50")]).await?;
    let again = portal.batch_upsert("products", &[product("12.00")]).await?;
    assert_eq!(made.results[0].id, again.results[0].id);
    assert_eq!(
        again.results[0].property("price"),
        Some("12.00"),
        "money kept as written"
    );

    // Reading ids that do not exist: a 207 naming them, the others answered.
    let contact = first.results[0].id.clone();
    let read = portal
        .batch_read(
            "contacts",
            &[contact.clone(), "999999".into()],
            &["email", "lastmodifieddate"],
            None,
        )
        .await?;
    assert_eq!(read.results.len(), 1);
    assert_eq!(read.errors.len(), 1);
    assert_eq!(read.errors[0].category, "OBJECT_NOT_FOUND");
    assert_eq!(read.errors[0].ids, ["999999"]);
    assert!(read.results[0].property("lastmodifieddate").is_some());

    // An update of a property that does not exist fails terminally, naming the problem.
    let bad = portal
        .batch_update(
            "contacts",
            &[BatchInput {
                id: Some(contact.clone()),
                id_property: None,
                properties: props(&[("no_such_property", "x")]),
                object_write_trace_id: None,
            }],
        )
        .await
        .unwrap_err();
    assert_eq!(
        (bad.class(), bad.category()),
        (ErrorClass::Terminal, "hubspot_validation"),
        "{bad}"
    );
    assert!(portal
        .read("contacts", "424242", &["email"], false)
        .await?
        .is_none());
    Ok(())
}

#[tokio::test]
async fn search_pages_a_window_and_reports_its_total() -> anyhow::Result<()> {
    let sandbox = Sandbox::start().await?;
    let client = sandbox.client()?;
    let bearer = FixedBearer(sandbox.token().await?);
    let portal_id = PortalId::parse(PORTAL)?;
    let portal = client.portal(&portal_id, &bearer);
    let inputs: Vec<BatchInput> = (0..7)
        .map(|i| BatchInput {
            id: Some(format!("p{i}@example.com")),
            id_property: Some("email".into()),
            properties: props(&[("email", &format!("p{i}@example.com"))]),
            object_write_trace_id: None,
        })
        .collect();
    portal.batch_upsert("contacts", &inputs).await?;
    let window = |after: Option<String>| SearchRequest {
        filter_groups: vec![FilterGroup {
            filters: vec![Filter::between("lastmodifieddate", 0, 4_102_444_800_000)],
        }],
        sorts: vec![Sort::ascending("lastmodifieddate")],
        properties: vec!["email".into(), "lastmodifieddate".into()],
        limit: 3,
        after,
    };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = portal.search("contacts", &window(after)).await?;
        assert_eq!(page.total, 7);
        seen.extend(page.results.into_iter().map(|r| r.id));
        match page.after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let ids: Vec<String> = seen[..2].to_vec();
    let found = portal
        .search(
            "contacts",
            &SearchRequest {
                filter_groups: vec![FilterGroup {
                    filters: vec![Filter::any_of("hs_object_id", ids.clone())],
                }],
                properties: vec!["email".into()],
                limit: 10,
                ..SearchRequest::default()
            },
        )
        .await?;
    assert_eq!(found.total, 2);

    // An empty batch sends nothing; associations are read in one batch.
    let nothing = portal.batch_upsert("companies", &[]).await?;
    assert!(nothing.results.is_empty());
    let assoc = portal.associations("contacts", "companies", &ids).await?;
    assert!(assoc.values().all(Vec::is_empty));
    Ok(())
}

struct Revoked {
    good: SecretString,
    rejections: AtomicUsize,
}

#[async_trait]
impl Bearer for Revoked {
    async fn token(&self) -> Result<SecretString, BearerError> {
        Ok(SecretString::from("revoked".to_owned()))
    }
    async fn after_rejection(&self, _: &SecretString) -> Result<SecretString, BearerError> {
        self.rejections.fetch_add(1, Ordering::SeqCst);
        Ok(self.good.clone())
    }
}

#[tokio::test]
async fn a_refused_token_is_replaced_once_and_throttles_are_handed_back() -> anyhow::Result<()> {
    let sandbox = Sandbox::start().await?;
    let client = sandbox.client()?;
    let portal_id = PortalId::parse(PORTAL)?;
    let revoked = Revoked {
        good: sandbox.token().await?,
        rejections: AtomicUsize::new(0),
    };
    let (page, _) = client
        .portal(&portal_id, &revoked)
        .list("contacts", &["email"], None, 10)
        .await?;
    assert!(page.is_empty());
    assert_eq!(revoked.rejections.load(Ordering::SeqCst), 1);

    let bearer = FixedBearer(sandbox.token().await?);
    let portal = client.portal(&portal_id, &bearer);
    sandbox
        .control(
            "faults",
            json!({"method": "GET", "path": "/crm/v3/objects/contacts", "action": "respond",
                   "status": 429, "body": {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                   "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}, "times": 1}),
        )
        .await?;
    let throttled = portal.list("contacts", &[], None, 10).await.unwrap_err();
    assert_eq!(
        throttled,
        HubSpotError::Throttled {
            retry_after: Some(std::time::Duration::from_secs(10))
        }
    );
    sandbox
        .control(
            "faults",
            json!({"method": "GET", "path": "/crm/v3/objects/contacts", "action": "respond",
                   "status": 502, "body": "Bad Gateway", "times": 2}),
        )
        .await?;
    portal.list("contacts", &[], None, 10).await?;
    Ok(())
}
