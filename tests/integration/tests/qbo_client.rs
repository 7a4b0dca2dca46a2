//! The typed QuickBooks client against the QBO sandbox over HTTP: idempotent creates, escaped
//! queries, batch with per-item faults, stale SyncTokens, CDC, a refused token replaced once,
//! throttling (waited out when short, handed back when long) and passing failures retried.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hubspot_qbo_core::domain::{QboRequestId, RealmId};
use hubspot_qbo_core::error_class::ErrorClass;
use hubspot_qbo_core::http::bearer::{Bearer, BearerError, FixedBearer};
use hubspot_qbo_core::http::pacing::Unpaced;
use hubspot_qbo_core::qbo::entities::{Customer, EmailAddress, Item};
use hubspot_qbo_core::qbo::query::Query;
use hubspot_qbo_core::qbo::{
    BatchItem, BatchOperation, BatchResult, QboClient, QboError, QboLimits,
};
use sandbox::qbo::{self, QboConfig, SpawnedQbo};
use secrecy::SecretString;
use serde_json::{json, Value};

const REALM: &str = qbo::seed::DEFAULT_US_REALM;

struct Sandbox {
    qbo: SpawnedQbo,
    http: reqwest::Client,
}

impl Sandbox {
    async fn start() -> anyhow::Result<Self> {
        Ok(Self {
            qbo: qbo::spawn(QboConfig::default()).await?,
            http: reqwest::Client::new(),
        })
    }

    async fn control(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        Ok(self
            .http
            .post(format!("{}/_sandbox/{path}", self.qbo.base_url))
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
            .unwrap_or(Value::Null))
    }

    async fn token(&self) -> anyhow::Result<SecretString> {
        let pair = self.control("tokens", json!({"realm_id": REALM})).await?;
        Ok(SecretString::from(
            pair["access_token"].as_str().unwrap_or_default().to_owned(),
        ))
    }

    fn client(&self) -> anyhow::Result<QboClient> {
        Ok(QboClient::new(
            &self.qbo.base_url,
            Arc::new(Unpaced),
            QboLimits::default(),
        )?)
    }

    async fn customers_named(&self, name: &str) -> anyhow::Result<usize> {
        let all: Value = self
            .http
            .get(format!(
                "{}/_sandbox/realms/{REALM}/entities/Customer",
                self.qbo.base_url
            ))
            .send()
            .await?
            .json()
            .await?;
        Ok(all["objects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["DisplayName"] == name)
            .count())
    }
}

fn customer(name: &str) -> Customer {
    Customer {
        display_name: Some(name.to_owned()),
        ..Customer::default()
    }
}

#[tokio::test]
async fn creates_are_idempotent_and_queries_escape_their_values() -> anyhow::Result<()> {
    let sandbox = Sandbox::start().await?;
    let client = sandbox.client()?;
    let bearer = FixedBearer(sandbox.token().await?);
    let realm = RealmId::parse(REALM)?;
    let company = client.company(&realm, &bearer);

    let mut shop = customer("O'Brien's \\ Shop");
    shop.primary_email_addr = Some(EmailAddress {
        address: Some("o'brien@example.com".into()),
    });
    let requestid = QboRequestId::parse("ledger-contact-123")?;
    let first = company.create(&shop, &requestid).await?;
    let again = company.create(&shop, &requestid).await?;
    assert_eq!(
        first.id, again.id,
        "the same requestid answers the same customer"
    );
    assert_eq!(sandbox.customers_named("O'Brien's \\ Shop").await?, 1);

    let found: Vec<Customer> = company
        .query(&Query::select("Customer").eq("DisplayName", "O'Brien's \\ Shop"))
        .await?;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].email(), Some("o'brien@example.com"));
    let by_email: Vec<Customer> = company
        .query(&Query::select("Customer").eq("PrimaryEmailAddr", "o'brien@example.com"))
        .await?;
    assert_eq!(by_email.len(), 1);
    // An injection attempt stays a value.
    let none: Vec<Customer> = company
        .query(&Query::select("Customer").eq("DisplayName", "x' OR DisplayName LIKE '%"))
        .await?;
    assert!(none.is_empty());

    // Items: Sku asked for, every page read.
    let items: Vec<Item> = company
        .query_all(&Query::select("Item").with_projection("*, Sku").page(1, 1))
        .await?;
    assert!(items.len() >= 2, "{items:?}");
    Ok(())
}

#[tokio::test]
async fn batches_answer_per_item_and_faults_carry_their_class() -> anyhow::Result<()> {
    let sandbox = Sandbox::start().await?;
    let client = sandbox.client()?;
    let bearer = FixedBearer(sandbox.token().await?);
    let realm = RealmId::parse(REALM)?;
    let company = client.company(&realm, &bearer);

    let existing = company
        .create(&customer("Taken Name"), &QboRequestId::parse("r1")?)
        .await?;
    let items = vec![
        BatchItem::of("b1", BatchOperation::Create, &customer("Fresh Name"))?,
        BatchItem::of("b2", BatchOperation::Create, &customer("Taken Name"))?,
    ];
    let results = company.batch(&items, Some("batch-req-1")).await?;
    let fresh: Customer = results["b1"].clone().into_entity()?;
    assert_eq!(fresh.display_name.as_deref(), Some("Fresh Name"));
    let taken = results["b2"].clone().into_entity::<Customer>().unwrap_err();
    assert_eq!(
        (taken.category(), taken.class()),
        ("duplicate_display_name", ErrorClass::Terminal),
        "{taken}"
    );
    assert!(matches!(results["b2"], BatchResult::Fault(_)));
    // The same batch requestid answers the first answer again; nothing is created twice.
    let again = company.batch(&items, Some("batch-req-1")).await?;
    let fresh_again: Customer = again["b1"].clone().into_entity()?;
    assert_eq!(fresh_again.id, fresh.id);
    assert_eq!(sandbox.customers_named("Fresh Name").await?, 1);

    // A stale SyncToken is a retryable 5010.
    let mut update = Customer {
        id: existing.id.clone(),
        sync_token: Some("7".into()),
        sparse: Some(true),
        given_name: Some("Ann".into()),
        ..Customer::default()
    };
    let stale = company.update(&update).await.unwrap_err();
    assert_eq!(
        (stale.category(), stale.class()),
        ("stale_object", ErrorClass::Retryable)
    );
    update.sync_token = existing.sync_token.clone();
    let updated = company.update(&update).await?;
    assert_eq!(updated.given_name.as_deref(), Some("Ann"));
    assert_eq!(
        updated.display_name.as_deref(),
        Some("Taken Name"),
        "sparse"
    );

    // CDC sees what changed.
    let changes = company.cdc(&["Customer"], "2020-01-01").await;
    assert!(changes.is_err(), "older than 30 days is refused");
    let since = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let since = since.format(&time::format_description::well_known::Rfc3339)?;
    let changes = company.cdc(&["Customer", "Item"], &since).await?;
    let changed: Vec<Customer> = changes.of()?;
    assert!(changed.iter().any(|c| c.id == fresh.id), "{changes:?}");
    assert!(!changes.time.is_empty());

    // A query of a field the entity does not have is an invalid query, terminal.
    let misspelt = company
        .query::<Customer>(&Query::select("Customer").eq("EmailAddress", "x"))
        .await
        .unwrap_err();
    assert_eq!(
        (misspelt.category(), misspelt.class()),
        ("invalid_query", ErrorClass::Terminal)
    );
    Ok(())
}

/// A bearer whose first token was revoked behind its back.
struct Revoked {
    good: SecretString,
    rejections: AtomicUsize,
}

#[async_trait]
impl Bearer for Revoked {
    async fn token(&self) -> Result<SecretString, BearerError> {
        Ok(SecretString::from("revoked-token".to_owned()))
    }
    async fn after_rejection(&self, _: &SecretString) -> Result<SecretString, BearerError> {
        self.rejections.fetch_add(1, Ordering::SeqCst);
        Ok(self.good.clone())
    }
}

#[tokio::test]
async fn a_refused_token_is_replaced_once_and_failures_are_retried_or_handed_back(
) -> anyhow::Result<()> {
    let sandbox = Sandbox::start().await?;
    let client = sandbox.client()?;
    let realm = RealmId::parse(REALM)?;
    let revoked = Revoked {
        good: sandbox.token().await?,
        rejections: AtomicUsize::new(0),
    };
    let company = client.company(&realm, &revoked);
    let read: Customer = company
        .create(&customer("After Refresh"), &QboRequestId::parse("r2")?)
        .await?;
    assert!(read.id.is_some());
    assert_eq!(revoked.rejections.load(Ordering::SeqCst), 1);

    let bearer = FixedBearer(sandbox.token().await?);
    let company = client.company(&realm, &bearer);
    // Two passing 503s are retried inside the call.
    sandbox
        .control(
            "faults",
            json!({"method": "POST", "path": "/v3/company/*/query", "action": "respond",
                   "status": 503, "body": "busy", "times": 2}),
        )
        .await?;
    let items: Vec<Item> = company.query(&Query::select("Item")).await?;
    assert!(!items.is_empty());

    // A short throttle is waited out; a long one is handed back with its delay.
    sandbox
        .control(
            "faults",
            json!({"method": "POST", "path": "/v3/company/*/query", "action": "respond",
                   "status": 429, "headers": {"Retry-After": "1"},
                   "body": {"Fault":{"Error":[{"Message":"message=ThrottleExceeded; errorCode=003001; statusCode=429","code":"3001"}],"type":"SERVICE"}},
                   "times": 1}),
        )
        .await?;
    let started = std::time::Instant::now();
    let items: Vec<Item> = company.query(&Query::select("Item")).await?;
    assert!(!items.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));
    sandbox
        .control(
            "faults",
            json!({"method": "POST", "path": "/v3/company/*/query", "action": "respond",
                   "status": 429, "body": "<IntuitResponse><Fault type=\"SERVICE\"><Error code=\"3001\"><Message>ThrottleExceeded</Message></Error></Fault></IntuitResponse>",
                   "times": 1}),
        )
        .await?;
    let throttled = company
        .query::<Item>(&Query::select("Item"))
        .await
        .unwrap_err();
    assert_eq!(
        throttled,
        QboError::Throttled {
            retry_after: Some(Duration::from_secs(60))
        },
        "no Retry-After: Intuit's one minute"
    );
    assert_eq!(throttled.class(), ErrorClass::Retryable);
    Ok(())
}
