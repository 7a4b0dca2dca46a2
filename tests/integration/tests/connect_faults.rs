//! The QuickBooks callback under faults: the store or the queue fails at each of the callback's
//! writes, before the write is made or after it (the answer lost). Every run ends either with
//! nothing written or with a complete connection, whose initial sync the schedule queues; no
//! run leaves a company claimed without its connection.
//!
//! The flow runs in this process (so its store and queue can be wrapped with faults) against
//! the template's tables, queue and KMS key on the local AWS endpoint and both sandboxes over
//! HTTP, exactly as the `oauth-install` function wires it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use hubspot_qbo_core::clock::{Clock, ManualClock};
use hubspot_qbo_core::connection::initial_sync::requeue_pending;
use hubspot_qbo_core::connection::install::{
    CallbackParams, InitialSyncState, InstallFlow, Intent, Outcome,
};
use hubspot_qbo_core::connection::oauth_state::{self, BrowserKey, OAuthStates};
use hubspot_qbo_core::connection::registry::{ConnectionStatus, Connections};
use hubspot_qbo_core::connection::tokens::{TokenKeeper, TokenOwner, TokenStatus};
use hubspot_qbo_core::domain::{ConnectionId, PortalId, RealmId};
use hubspot_qbo_core::error_class::ErrorClass;
use hubspot_qbo_core::oauth::HttpProviders;
use hubspot_qbo_core::queue::{OutgoingMessage, Queue, QueueError, QueueName, SendReport};
use hubspot_qbo_core::runtime::Services;
use hubspot_qbo_core::settings::SettingsStore;
use hubspot_qbo_core::store::{
    CasOutcome, ClaimOutcome, Item, ItemKey, LeaseOutcome, Page, Query, Store, StoreError, Table,
    TransactOutcome, TransactWrite,
};
use integration_tests::test_parameters;
use local_stack::stack::{LocalStack, Options};
use reqwest::Url;

const PORTAL: &str = "62515";
const REALM: &str = "9130350000000001";
/// Where the flow believes it is served; only the sandboxes see it, as the redirect URI.
const BASE: &str = "http://127.0.0.1:9";

/// When an injected failure strikes: before the operation (nothing happens), or after it (it
/// happened, but its answer is lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Before,
    After,
}

/// Counts write operations and fails the one numbered `fail_at` (1-based; 0 = none).
#[derive(Default)]
struct Fault {
    count: AtomicUsize,
    fail_at: AtomicUsize,
    after: std::sync::atomic::AtomicBool,
    struck: std::sync::atomic::AtomicBool,
}

impl Fault {
    fn arm(&self, at: usize, when: When) {
        self.count.store(0, Ordering::SeqCst);
        self.struck.store(false, Ordering::SeqCst);
        self.after.store(when == When::After, Ordering::SeqCst);
        self.fail_at.store(at, Ordering::SeqCst);
    }

    fn disarm(&self) {
        self.fail_at.store(0, Ordering::SeqCst);
    }

    /// Which operation number this is, and whether it fails and when.
    fn next(&self) -> Option<When> {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        (n == self.fail_at.load(Ordering::SeqCst)).then(|| {
            self.struck.store(true, Ordering::SeqCst);
            if self.after.load(Ordering::SeqCst) {
                When::After
            } else {
                When::Before
            }
        })
    }
}

fn injected() -> StoreError {
    StoreError::Unavailable("injected fault".into())
}

struct FaultyStore {
    inner: Arc<dyn Store>,
    fault: Arc<Fault>,
}

impl FaultyStore {
    async fn write<T>(
        &self,
        run: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match self.fault.next() {
            Some(When::Before) => Err(injected()),
            Some(When::After) => {
                run.await?;
                Err(injected())
            }
            None => run.await,
        }
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn get(&self, t: Table, k: &ItemKey, now: i64) -> Result<Option<Item>, StoreError> {
        self.inner.get(t, k, now).await
    }
    async fn get_many(
        &self,
        t: Table,
        keys: &[ItemKey],
        now: i64,
    ) -> Result<Vec<Item>, StoreError> {
        self.inner.get_many(t, keys, now).await
    }
    async fn put(&self, t: Table, item: Item) -> Result<(), StoreError> {
        self.write(self.inner.put(t, item)).await
    }
    async fn claim(&self, t: Table, item: Item, now: i64) -> Result<ClaimOutcome, StoreError> {
        self.write(self.inner.claim(t, item, now)).await
    }
    async fn put_versioned(
        &self,
        t: Table,
        item: Item,
        expected: Option<u64>,
    ) -> Result<CasOutcome, StoreError> {
        self.write(self.inner.put_versioned(t, item, expected))
            .await
    }
    async fn acquire_lease(
        &self,
        t: Table,
        k: &ItemKey,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<LeaseOutcome, StoreError> {
        self.inner.acquire_lease(t, k, owner, now_ms, ttl_ms).await
    }
    async fn release_lease(&self, t: Table, k: &ItemKey, owner: &str) -> Result<bool, StoreError> {
        self.inner.release_lease(t, k, owner).await
    }
    async fn delete(&self, t: Table, k: &ItemKey) -> Result<(), StoreError> {
        self.write(self.inner.delete(t, k)).await
    }
    async fn delete_versioned(
        &self,
        t: Table,
        k: &ItemKey,
        expected: u64,
    ) -> Result<CasOutcome, StoreError> {
        self.write(self.inner.delete_versioned(t, k, expected))
            .await
    }
    async fn transact(&self, writes: Vec<TransactWrite>) -> Result<TransactOutcome, StoreError> {
        self.write(self.inner.transact(writes)).await
    }
    async fn increment(
        &self,
        t: Table,
        k: &ItemKey,
        attribute: &str,
        by: i64,
        expires_at: Option<i64>,
    ) -> Result<i64, StoreError> {
        self.write(self.inner.increment(t, k, attribute, by, expires_at))
            .await
    }
    async fn take(&self, t: Table, k: &ItemKey, now: i64) -> Result<Option<Item>, StoreError> {
        self.write(self.inner.take(t, k, now)).await
    }
    async fn query(&self, t: Table, q: Query, now: i64) -> Result<Page, StoreError> {
        self.inner.query(t, q, now).await
    }
    async fn batch_put(&self, t: Table, items: Vec<Item>) -> Result<(), StoreError> {
        self.write(self.inner.batch_put(t, items)).await
    }
}

struct FaultyQueue {
    inner: Arc<dyn Queue>,
    fault: Arc<Fault>,
}

#[async_trait]
impl Queue for FaultyQueue {
    async fn send(
        &self,
        queue: QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<SendReport, QueueError> {
        match self.fault.next() {
            Some(When::Before) => Err(QueueError::Unavailable("injected fault".into())),
            Some(When::After) => {
                self.inner.send(queue, messages).await?;
                Err(QueueError::Unavailable("injected fault".into()))
            }
            None => self.inner.send(queue, messages).await,
        }
    }

    async fn delay_redelivery(
        &self,
        queue: QueueName,
        receipt_handles: Vec<String>,
        delay: std::time::Duration,
    ) -> Result<(), QueueError> {
        self.inner
            .delay_redelivery(queue, receipt_handles, delay)
            .await
    }
}

struct Harness {
    stack: LocalStack,
    services: Services,
    store_fault: Arc<Fault>,
    queue_fault: Arc<Fault>,
    flow: InstallFlow,
    /// The unwrapped store and queue, for checking and cleaning up.
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    clock: ManualClock,
    http: reqwest::Client,
}

impl Harness {
    async fn start() -> anyhow::Result<Self> {
        let stack = LocalStack::start(Options {
            stack_name: "faults".into(),
            parameters: test_parameters(),
            run_schedules: false,
            run_queues: false,
            ..Options::default()
        })
        .await?;
        let environment = &stack.manifest.function("OAuthInstallFunction")?.environment;
        let config =
            hubspot_qbo_core::config::Config::from_lookup(|k| environment.get(k).cloned())?;
        let services = Services::new(config, &stack.aws.sdk_config().await);
        let (store_fault, queue_fault) = (Arc::new(Fault::default()), Arc::new(Fault::default()));
        let store: Arc<dyn Store> = Arc::new(FaultyStore {
            inner: services.store.clone(),
            fault: store_fault.clone(),
        });
        let queue: Arc<dyn Queue> = Arc::new(FaultyQueue {
            inner: services.queue.clone(),
            fault: queue_fault.clone(),
        });
        // Each run is ten seconds after the last, so its initial sync has its own dedup ids.
        let clock = ManualClock::at_ms(Clock::system().now_ms());
        let providers = Arc::new(HttpProviders::new(&services.config)?);
        let tokens = Arc::new(TokenKeeper::new(
            store.clone(),
            services.sealer.clone(),
            providers.clone(),
            clock.clock(),
            Default::default(),
        ));
        let flow = InstallFlow::new(
            services.config.clone(),
            store.clone(),
            queue.clone(),
            services.sealer.clone(),
            OAuthStates::new(
                store.clone(),
                oauth_state::installation_key(&services.config),
                oauth_state::DEFAULT_TTL,
            ),
            tokens,
            providers,
            clock.clock(),
        );
        Ok(Self {
            store: services.store.clone(),
            queue: services.queue.clone(),
            stack,
            services,
            store_fault,
            queue_fault,
            flow,
            clock,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        })
    }

    /// Opens a provider's consent page (the sandboxes consent at once) and returns the query of
    /// the redirect back to us.
    async fn consent(&self, authorize: &str) -> anyhow::Result<CallbackParams> {
        let response = self.http.get(authorize).send().await?;
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| anyhow::anyhow!("{authorize} did not redirect"))?;
        let url = Url::parse(location)?;
        let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        Ok(CallbackParams {
            code: query.get("code").cloned(),
            state: query.get("state").cloned(),
            realm_id: query.get("realmId").cloned(),
            error: query.get("error").cloned(),
            error_description: None,
        })
    }

    /// Walks an install up to the QuickBooks callback, without faults.
    async fn up_to_qbo_callback(&self, browser: &BrowserKey) -> anyhow::Result<CallbackParams> {
        self.store_fault.disarm();
        self.queue_fault.disarm();
        let Outcome::Redirect(hubspot) = self
            .flow
            .start(Intent::Install { portal: None }, BASE, browser)
            .await?
        else {
            anyhow::bail!("install did not redirect to HubSpot");
        };
        let params = self.consent(&hubspot).await?;
        let Outcome::Redirect(qbo) = self.flow.hubspot_callback(&params, Some(browser)).await?
        else {
            anyhow::bail!("the HubSpot callback did not redirect to QuickBooks");
        };
        self.consent(&qbo).await
    }

    /// Every item of the connections table except pending OAuth states.
    async fn items(&self) -> anyhow::Result<Vec<String>> {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.stack.aws.sdk_config().await);
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let page = dynamodb
                .scan()
                .table_name(&self.services.config.tables.connections)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for item in page.items() {
                let text = |name: &str| {
                    item.get(name)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default()
                };
                if !text("pk").starts_with("oauth-state#") {
                    keys.push(format!("{} {}", text("pk"), text("sk")));
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Empties the connections table and the sync queue between runs.
    async fn clean(&self) -> anyhow::Result<()> {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.stack.aws.sdk_config().await);
        for key in self.items().await? {
            let (pk, sk) = key.split_once(' ').unwrap_or((&key, ""));
            dynamodb
                .delete_item()
                .table_name(&self.services.config.tables.connections)
                .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
                .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk.into()))
                .send()
                .await?;
        }
        self.drain_sync_queue().await?;
        Ok(())
    }

    /// Receives and deletes everything on the sync queue; returns the bodies.
    async fn drain_sync_queue(&self) -> anyhow::Result<Vec<String>> {
        let sqs = aws_sdk_sqs::Client::new(&self.stack.aws.sdk_config().await);
        let mut bodies = Vec::new();
        loop {
            let received = sqs
                .receive_message()
                .queue_url(&self.services.config.queues.sync)
                .max_number_of_messages(10)
                .send()
                .await?;
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(bodies);
            }
            for message in messages {
                bodies.extend(message.body().map(str::to_owned));
                sqs.delete_message()
                    .queue_url(&self.services.config.queues.sync)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await?;
            }
        }
    }
}

/// What a run left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Nothing,
    Complete,
}

async fn check(h: &Harness, id: &ConnectionId) -> anyhow::Result<End> {
    let now = h.clock.clock().now_seconds();
    let connections = Connections::new(h.store.clone());
    let record = connections.get(id, now).await?;
    let owner = connections.owner_of(&RealmId::parse(REALM)?, now).await?;
    let keeper = TokenKeeper::new(
        h.store.clone(),
        h.services.sealer.clone(),
        Arc::new(HttpProviders::new(&h.services.config)?),
        h.clock.clock(),
        Default::default(),
    );
    let realm_tokens = keeper
        .status(&TokenOwner::Realm(RealmId::parse(REALM)?))
        .await?;
    let portal_tokens = keeper
        .status(&TokenOwner::Portal(PortalId::parse(PORTAL)?))
        .await?;
    let settings = SettingsStore::new(h.store.clone()).list(id, now).await?;
    let preflight = connections.preflight(id, now).await?;
    let items = h.items().await?;
    match record {
        None => {
            assert_eq!(owner, None, "an orphan company claim");
            assert!(items.is_empty(), "written without a connection: {items:?}");
            Ok(End::Nothing)
        }
        Some(record) => {
            assert_eq!(record.status, ConnectionStatus::Active);
            assert_eq!(owner.as_ref(), Some(id), "a connection without its claim");
            assert_eq!(realm_tokens, Some(TokenStatus::Active));
            assert_eq!(portal_tokens, Some(TokenStatus::Active));
            assert_eq!(settings.len(), 3);
            assert!(preflight.is_some());
            assert!(record.initial_sync_requested_at.is_some());
            assert!(
                items.iter().any(|k| k.ends_with(" initial-sync")),
                "no initial-sync request: {items:?}"
            );
            Ok(End::Complete)
        }
    }
}

#[tokio::test]
async fn a_fault_at_any_write_of_the_qbo_callback_leaves_nothing_half_made() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let id = ConnectionId::for_pair(&PortalId::parse(PORTAL)?, &RealmId::parse(REALM)?);
    let browser = BrowserKey::generate();

    // Without faults first: how many store writes the callback makes, and what it queues.
    let params = h.up_to_qbo_callback(&browser).await?;
    h.store_fault.arm(usize::MAX, When::Before);
    h.queue_fault.arm(usize::MAX, When::Before);
    let Outcome::Connected(connected) = h.flow.qbo_callback(&params, Some(&browser)).await? else {
        anyhow::bail!("no connection without faults");
    };
    assert_eq!(connected.initial_sync, InitialSyncState::Queued);
    let store_writes = h.store_fault.count.load(Ordering::SeqCst);
    let queue_sends = h.queue_fault.count.load(Ordering::SeqCst);
    assert_eq!(
        store_writes, 3,
        "the state taken, the transaction, the request marked queued"
    );
    assert_eq!(queue_sends, 1);
    let enabled = h.drain_sync_queue().await?.len();
    assert_eq!(enabled, 3, "one initial sync message per enabled object");
    h.clean().await?;

    let mut seen = Vec::new();
    for (target, count) in [("store", store_writes), ("queue", queue_sends)] {
        for at in 1..=count {
            for when in [When::Before, When::After] {
                h.clock.advance_seconds(10);
                let params = h.up_to_qbo_callback(&browser).await?;
                let fault = if target == "store" {
                    &h.store_fault
                } else {
                    &h.queue_fault
                };
                fault.arm(at, when);
                let answer = h.flow.qbo_callback(&params, Some(&browser)).await;
                h.store_fault.disarm();
                h.queue_fault.disarm();
                assert!(
                    fault.struck.load(Ordering::SeqCst),
                    "{target} #{at} {when:?}"
                );
                let case = format!("{target} write #{at} failing {when:?}");
                match &answer {
                    Ok(Outcome::Connected(_)) => {}
                    Err(error) => assert_eq!(
                        error.class(),
                        ErrorClass::Retryable,
                        "{case}: a passing failure is reported as one ({error})"
                    ),
                    Ok(other) => panic!("{case}: {other:?}"),
                }
                let end = check(&h, &id).await?;
                // The schedule queues whatever initial sync is still pending.
                let requeued =
                    requeue_pending(&*h.store, &*h.queue, h.clock.clock().now_seconds(), 0).await?;
                let queued = h.drain_sync_queue().await?;
                match end {
                    End::Nothing => assert!(queued.is_empty(), "{case}: {queued:?}"),
                    End::Complete => assert_eq!(
                        queued.len(),
                        enabled,
                        "{case}: the initial sync is queued exactly once per object ({requeued:?})"
                    ),
                }
                if end == End::Complete && answer.is_err() {
                    assert!(
                        !requeued.queued.is_empty() || queued.len() == enabled,
                        "{case}"
                    );
                }
                // After a requeue nothing is pending any more.
                assert!(
                    requeue_pending(&*h.store, &*h.queue, h.clock.clock().now_seconds(), 0)
                        .await?
                        .queued
                        .is_empty(),
                    "{case}: still pending after the requeue"
                );
                assert!(h.drain_sync_queue().await?.is_empty(), "{case}");
                seen.push((case, end));
                h.clean().await?;
            }
        }
    }
    // A fault up to the transaction leaves nothing; from the transaction's commit on, a complete
    // connection whose initial sync gets queued.
    let ends: Vec<(&str, End)> = seen
        .iter()
        .map(|(case, end)| (case.as_str(), *end))
        .collect();
    assert_eq!(
        ends,
        [
            ("store write #1 failing Before", End::Nothing),
            ("store write #1 failing After", End::Nothing),
            ("store write #2 failing Before", End::Nothing),
            ("store write #2 failing After", End::Complete),
            ("store write #3 failing Before", End::Complete),
            ("store write #3 failing After", End::Complete),
            ("queue write #1 failing Before", End::Complete),
            ("queue write #1 failing After", End::Complete),
        ]
    );
    h.stack.shutdown().await
}

#[tokio::test]
async fn a_slow_quickbooks_consent_does_not_make_the_hubspot_token_look_fresh() -> anyhow::Result<()>
{
    let h = Harness::start().await?;
    let browser = BrowserKey::generate();
    let issued_at = h.clock.clock().now_seconds();
    let params = h.up_to_qbo_callback(&browser).await?;
    // The person takes ten minutes over QuickBooks' consent page.
    h.clock.advance_seconds(600);
    let Outcome::Connected(_) = h.flow.qbo_callback(&params, Some(&browser)).await? else {
        anyhow::bail!("not connected");
    };
    let key = hubspot_qbo_core::store::keys::connections::tokens(
        hubspot_qbo_core::domain::Provider::HubSpot,
        PORTAL,
    );
    let stored = h
        .store
        .get(Table::Connections, &key, h.clock.clock().now_seconds())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no HubSpot tokens"))?;
    let expires_at = stored.doc["access_expires_at"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("{:?}", stored.doc))?;
    // HubSpot's sandbox issues 30-minute access tokens; the clock ran 10 of them at QuickBooks.
    let lifetime = expires_at - issued_at;
    assert!(
        (1795..=1805).contains(&lifetime),
        "the HubSpot token expires {lifetime} s after it was issued"
    );
    h.stack.shutdown().await
}
