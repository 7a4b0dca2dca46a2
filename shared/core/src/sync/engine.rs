//! Applying one message of changes: read the records, settle writes whose answer was lost,
//! filter, match, decide, write with the batch APIs, and record every outcome in the ledger.
//!
//! Writes never duplicate:
//! - QBO creates go out in batches whose items are first recorded, with the batch, in an
//!   outbox (the entries `pending`); the batch carries a `requestid` made from its contents.
//!   When its answer is lost the next attempt replays the outbox word for word, so QBO answers
//!   the first result instead of creating again.
//! - HubSpot creates are upserts by a unique property (the email, or the integration's own
//!   `qbo_*_id` property), so a repeat finds what the first call made.
//! - Updates carry QBO's SyncToken (a stale one is read again once) or are HubSpot updates by id.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::objects::{self, Incoming, Synced};
use crate::clock::Clock;
use crate::connection::registry::{Connection, ConnectionStatus, Connections};
use crate::connection::tokens::{KeeperBearer, TokenKeeper};
use crate::decide::{self, Change, Context, Counterpart, Decision, Gone, Skip};
use crate::domain::{ConnectionId, Direction, ObjectKind, Provider};
use crate::error_class::ErrorClass;
use crate::filters::{self, Subject};
use crate::hubspot::{
    BatchInput, CrmObject, Filter as HsFilter, FilterGroup, HubSpotClient, HubSpotError, Portal,
    SearchRequest,
};
use crate::ledger::{Ledger, LedgerEntry, LedgerError, LinkStatus, Outbox, Stored};
use crate::mapping::{self, contacts, products, Field, Properties, Values};
use crate::qbo::entities::Account;
use crate::qbo::query::Query;
use crate::qbo::{
    BatchItem, BatchOperation, BatchResult, Company, FaultCode, QboClient, QboError,
    MAX_BATCH_ITEMS,
};
use crate::queue::batch::MessageError;
use crate::settings::{ObjectSettings, SettingsStore};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Qbo(#[from] QboError),
    #[error(transparent)]
    HubSpot(#[from] HubSpotError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("queue: {0}")]
    Queue(#[from] crate::queue::QueueError),
    /// The connection waits for a reconnect: its changes wait too.
    #[error("the connection waits for a reconnect; its changes are kept until then")]
    Paused,
    /// Asked of an object this operation does not cover.
    #[error("{0}")]
    Unsupported(String),
}

/// How long changes of a connection that waits for a reconnect wait before being tried again.
const PAUSED_RETRY: Duration = Duration::from_secs(15 * 60);

impl MessageError for SyncError {
    fn class(&self) -> ErrorClass {
        match self {
            SyncError::Qbo(e) => e.class(),
            SyncError::HubSpot(e) => e.class(),
            SyncError::Store(e) => e.class(),
            SyncError::Queue(e) => e.class(),
            SyncError::Ledger(LedgerError::Store(e)) => e.class(),
            SyncError::Ledger(LedgerError::Conflict) | SyncError::Paused => ErrorClass::Retryable,
            SyncError::Unsupported(_) => ErrorClass::Terminal,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            SyncError::Qbo(e) => e.retry_after(),
            SyncError::HubSpot(e) => e.retry_after(),
            SyncError::Paused => Some(PAUSED_RETRY),
            _ => None,
        }
    }
}

/// What one message did, by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    pub created: usize,
    pub updated: usize,
    pub linked: usize,
    pub unchanged: usize,
    pub excluded: usize,
    pub failed: usize,
}

/// The sync's parts, built once per cold start.
pub struct Engine {
    pub(super) ledger: Ledger,
    pub(super) settings: SettingsStore,
    pub(super) connections: Connections,
    tokens: Arc<TokenKeeper>,
    qbo: QboClient,
    hubspot: HubSpotClient,
    clock: Clock,
    pub(super) store: Arc<dyn Store>,
    /// Portals and objects whose `qbo_*_id` property is known to exist.
    ensured: Mutex<HashSet<(String, &'static str)>>,
    /// HubSpot's default association type ids by (from, to) object, read once.
    pub(super) association_types: Mutex<HashMap<(&'static str, &'static str), u32>>,
}

/// What a write to one side is to do for one record.
#[derive(Debug, Clone)]
struct Planned {
    /// The record that changed (its id on the side it came from).
    source_id: String,
    /// Where to write, and the id there (`None`: create).
    target: Provider,
    target_id: Option<String>,
    /// The target's version to write over (QBO SyncToken).
    target_version: Option<i64>,
    /// The neutral values to write (of the fields flowing to the target).
    values: Values,
    /// Display names to try, in order (contacts to QBO).
    display_names: Vec<String>,
    /// The linked QBO record's id, kept in HubSpot's `qbo_*_id` property on writes there.
    qbo_id: Option<String>,
    action: &'static str,
}

/// The result of one planned write.
struct Written {
    source_id: String,
    target: Provider,
    outcome: Result<Landed, Refused>,
    action: &'static str,
}

/// A write that was made: the record's id, version and values on its side.
type Landed = (String, Option<i64>, Values);

/// A write that was refused.
struct Refused {
    category: String,
    /// A sentence a bookkeeper understands.
    message: String,
    /// Trying again may help.
    retryable: bool,
    /// The record written to is no longer there (archived in HubSpot).
    target_gone: bool,
}

/// How a record was decided, kept until its entry is written.
struct Work {
    incoming: Incoming,
    fingerprint: String,
    match_key: Option<String>,
    /// Why this direction's filters leave the record out, if they do.
    excluded: Option<String>,
    entry: Option<Stored>,
    decision: Decision,
    /// The other side's record, when it was read (matched or linked).
    other: Option<OtherRecord>,
}

#[derive(Debug, Clone)]
struct OtherRecord {
    id: String,
    version: Option<i64>,
    values: Values,
    fingerprint: String,
    gone: Option<Gone>,
}

impl OtherRecord {
    /// A record its side no longer answers for.
    fn missing(id: &str, side: Provider) -> Self {
        Self {
            id: id.to_owned(),
            version: None,
            values: Values::new(),
            fingerprint: String::new(),
            gone: Some(match side {
                Provider::HubSpot => Gone::Archived,
                Provider::Qbo => Gone::Deleted,
            }),
        }
    }
}

/// Of a record and its counterpart, the one in QBO.
fn qbo_side<'a>(from: Provider, record: &'a str, counterpart: &'a str) -> &'a str {
    match from {
        Provider::Qbo => record,
        Provider::HubSpot => counterpart,
    }
}

pub(crate) fn sha(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Engine {
    /// The engine of a deployment, over HTTP to both providers, with the token keeper it
    /// shares with its caller.
    pub fn from_services(
        services: &crate::runtime::Services,
    ) -> Result<(Self, Arc<TokenKeeper>), crate::Error> {
        let providers = Arc::new(crate::oauth::HttpProviders::new(&services.config)?);
        Self::with_providers(services, providers)
    }

    /// As [`Self::from_services`], over providers the caller shares.
    pub fn with_providers(
        services: &crate::runtime::Services,
        providers: Arc<crate::oauth::HttpProviders>,
    ) -> Result<(Self, Arc<TokenKeeper>), crate::Error> {
        let setup = |e: &dyn std::fmt::Display| crate::Error::Setup(e.to_string());
        let tokens = Arc::new(TokenKeeper::from_services(services, providers));
        let pacer = services.pacer();
        let engine = Self::new(
            services.store.clone(),
            tokens.clone(),
            services.qbo_client(pacer.clone()).map_err(|e| setup(&e))?,
            services.hubspot_client(pacer).map_err(|e| setup(&e))?,
            services.clock.clone(),
        );
        Ok((engine, tokens))
    }
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        tokens: Arc<TokenKeeper>,
        qbo: QboClient,
        hubspot: HubSpotClient,
        clock: Clock,
    ) -> Self {
        Self {
            ledger: Ledger::new(store.clone()),
            settings: SettingsStore::new(store.clone()),
            connections: Connections::new(store.clone()),
            store,
            tokens,
            qbo,
            hubspot,
            clock,
            ensured: Mutex::new(HashSet::new()),
            association_types: Mutex::new(HashMap::new()),
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The QBO API the sync calls (other features that work beside it share it).
    pub fn qbo(&self) -> &QboClient {
        &self.qbo
    }

    /// The HubSpot API the sync calls.
    pub fn hubspot(&self) -> &HubSpotClient {
        &self.hubspot
    }

    /// Whether the integration's own HubSpot properties of `what` are known to exist in the
    /// portal (made once per process and portal).
    pub(super) fn is_ensured(&self, portal: &str, what: &'static str) -> bool {
        self.ensured
            .lock()
            .map(|e| e.contains(&(portal.to_owned(), what)))
            .unwrap_or(false)
    }

    pub(super) fn mark_ensured(&self, portal: &str, what: &'static str) {
        if let Ok(mut ensured) = self.ensured.lock() {
            ensured.insert((portal.to_owned(), what));
        }
    }

    /// Applies one message of changes of `object` that came `from` one side.
    pub async fn apply(
        &self,
        connection_id: &ConnectionId,
        object: ObjectKind,
        from: Provider,
        records: &[Value],
    ) -> Result<Applied, SyncError> {
        let now = self.clock.now_seconds();
        let Some(connection) = self.connections.get(connection_id, now).await? else {
            tracing::warn!(connection = %connection_id, "changes of an unknown connection dropped");
            return Ok(Applied::default());
        };
        match connection.status {
            ConnectionStatus::Active => {}
            ConnectionStatus::ReconnectRequired => return Err(SyncError::Paused),
            ConnectionStatus::Disconnected => {
                tracing::info!(connection = %connection_id, "changes of a disconnected connection dropped");
                return Ok(Applied::default());
            }
        }
        let (Some(synced), Some(settings)) = (
            Synced::of(object),
            self.settings.get(connection_id, object, now).await?,
        ) else {
            return Ok(Applied::default());
        };
        if !settings.enabled {
            return Ok(Applied::default());
        }
        let (qbo_bearer, hubspot_bearer) =
            KeeperBearer::both(&self.tokens, &connection.realm_id, &connection.portal_id);
        if synced == Synced::Invoices {
            let run = super::invoices::InvoiceRun {
                engine: self,
                connection: &connection,
                settings: &settings,
                qbo: self.qbo.company(&connection.realm_id, &qbo_bearer),
                hubspot: self.hubspot.portal(&connection.portal_id, &hubspot_bearer),
                now,
            };
            return run.apply(from, records).await;
        }
        let run = Run {
            engine: self,
            connection: &connection,
            synced,
            settings: &settings,
            fields: synced.fields(&settings),
            qbo: self.qbo.company(&connection.realm_id, &qbo_bearer),
            hubspot: self.hubspot.portal(&connection.portal_id, &hubspot_bearer),
            now,
            default_income_account: tokio::sync::OnceCell::new(),
            preview: false,
        };
        run.apply(from, records).await
    }
}

impl Engine {
    /// Runs the sync on these HubSpot records now, as their next change would: reads them with
    /// the properties the object's settings map, then applies them.
    pub async fn sync_from_hubspot(
        &self,
        connection_id: &ConnectionId,
        object: ObjectKind,
        ids: &[String],
    ) -> Result<Applied, SyncError> {
        let now = self.clock.now_seconds();
        let (Some(connection), Some(synced), Some(settings)) = (
            self.connections.get(connection_id, now).await?,
            Synced::of(object),
            self.settings.get(connection_id, object, now).await?,
        ) else {
            return Ok(Applied::default());
        };
        let fields = synced.fields(&settings);
        let properties = synced.hubspot_properties(&fields);
        let wanted: Vec<&str> = properties.iter().map(String::as_str).collect();
        let (_, hubspot_bearer) =
            KeeperBearer::both(&self.tokens, &connection.realm_id, &connection.portal_id);
        let hubspot = self.hubspot.portal(&connection.portal_id, &hubspot_bearer);
        let mut records = Vec::new();
        for chunk in ids.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
            let read = hubspot
                .batch_read(synced.hubspot_type(), chunk, &wanted, None)
                .await?;
            records.extend(
                read.results
                    .iter()
                    .filter_map(|r| serde_json::to_value(r).ok()),
            );
        }
        self.apply(connection_id, object, Provider::HubSpot, &records)
            .await
    }
}

/// One record of a preview: where it was read and what the first run would do with it.
#[derive(Debug, Clone)]
pub struct Previewed {
    pub from: Provider,
    pub id: String,
    /// Its name, email or SKU, for people.
    pub label: String,
    pub decision: Decision,
}

/// How many records of each side a preview reads.
pub const PREVIEW_RECORDS: u32 = 200;

impl Engine {
    /// What syncing `object` with `settings` would do to the first records of each side it
    /// reads from, decided as a run would and written nowhere: HubSpot's side first, then
    /// QuickBooks' records not already matched by one of HubSpot's. Contacts and products.
    pub async fn preview(
        &self,
        connection: &Connection,
        settings: &ObjectSettings,
    ) -> Result<Vec<Previewed>, SyncError> {
        let now = self.clock.now_seconds();
        let Some(synced) = Synced::of(settings.object).filter(|s| *s != Synced::Invoices) else {
            return Err(SyncError::Unsupported(
                "a preview covers contacts and products; invoices sync as they are made".into(),
            ));
        };
        let (qbo_bearer, hubspot_bearer) =
            KeeperBearer::both(&self.tokens, &connection.realm_id, &connection.portal_id);
        let run = Run {
            engine: self,
            connection,
            synced,
            settings,
            fields: synced.fields(settings),
            qbo: self.qbo.company(&connection.realm_id, &qbo_bearer),
            hubspot: self.hubspot.portal(&connection.portal_id, &hubspot_bearer),
            now,
            default_income_account: tokio::sync::OnceCell::new(),
            preview: true,
        };
        let mut previewed: Vec<Previewed> = Vec::new();
        if settings.direction.hubspot_to_qbo() {
            let properties = synced.hubspot_properties(&run.fields);
            let wanted: Vec<&str> = properties.iter().map(String::as_str).collect();
            let mut records = Vec::new();
            let mut after: Option<String> = None;
            while (records.len() as u32) < PREVIEW_RECORDS {
                let (page, next) = run
                    .hubspot
                    .list(synced.hubspot_type(), &wanted, after.as_deref(), 100)
                    .await?;
                records.extend(page.iter().filter_map(|r| serde_json::to_value(r).ok()));
                match next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            previewed.extend(run.previewed(Provider::HubSpot, &records).await?);
        }
        if settings.direction.qbo_to_hubspot() {
            let query = synced
                .qbo_query()
                .order_by("Id", crate::qbo::query::Order::Asc)
                .page(1, PREVIEW_RECORDS);
            let rows = run.qbo.query_values(&query).await?;
            let taken: HashSet<String> = previewed
                .iter()
                .filter_map(|p| match &p.decision {
                    Decision::Link { target_id, .. } => Some(target_id.clone()),
                    _ => None,
                })
                .collect();
            previewed.extend(
                run.previewed(Provider::Qbo, &rows)
                    .await?
                    .into_iter()
                    .filter(|p| !taken.contains(&p.id)),
            );
        }
        Ok(previewed)
    }
}

impl Run<'_> {
    async fn previewed(
        &self,
        from: Provider,
        records: &[Value],
    ) -> Result<Vec<Previewed>, SyncError> {
        let Some((mut work, context)) = self.plan(from, records).await? else {
            return Ok(Vec::new());
        };
        if from == Provider::HubSpot && self.synced == Synced::Contacts {
            self.preview_display_names(&mut work, &context).await?;
        }
        Ok(work
            .into_iter()
            .map(|w| {
                let name = [contacts::DISPLAY_NAME, "name", "email"]
                    .iter()
                    .find_map(|k| w.incoming.values.get(*k).filter(|v| !v.is_empty()).cloned());
                Previewed {
                    from,
                    label: name
                        .or(w.match_key)
                        .unwrap_or_else(|| w.incoming.id.clone()),
                    id: w.incoming.id,
                    decision: w.decision,
                }
            })
            .collect())
    }
}

impl Run<'_> {
    /// A preview's customers to be made: QuickBooks refuses a display name any customer,
    /// vendor or employee has (the write finds out; a preview asks first). Each takes the
    /// first of its names that is free, as the write would, or fails as the write would.
    async fn preview_display_names(
        &self,
        work: &mut [Work],
        context: &HashMap<String, HubSpotExtra>,
    ) -> Result<(), SyncError> {
        let wanted: Vec<(usize, Vec<String>)> = work
            .iter()
            .enumerate()
            .filter(|(_, w)| w.decision == Decision::Create)
            .filter_map(|(i, w)| {
                let names = context.get(&w.incoming.id)?.display_names.clone();
                (!names.is_empty()).then_some((i, names))
            })
            .collect();
        let mut all: Vec<String> = wanted.iter().flat_map(|(_, n)| n.clone()).collect();
        all.sort();
        all.dedup();
        let mut taken: HashSet<String> = HashSet::new();
        for entity in ["Customer", "Vendor", "Employee"] {
            for chunk in all.chunks(100) {
                let query = Query::select(entity)
                    .with_projection("DisplayName")
                    .any_of("DisplayName", chunk.iter().map(String::as_str))
                    .active_or_not();
                for row in self.qbo.query_values(&query).await? {
                    if let Some(name) = row["DisplayName"].as_str() {
                        taken.insert(name.to_lowercase());
                    }
                }
            }
        }
        for (i, names) in wanted {
            let Some(w) = work.get_mut(i) else { continue };
            match names.iter().find(|n| !taken.contains(&n.to_lowercase())) {
                Some(name) => {
                    taken.insert(name.to_lowercase());
                    w.incoming
                        .values
                        .insert(contacts::DISPLAY_NAME.to_owned(), name.clone());
                }
                None => {
                    w.decision = Decision::Fail {
                        category: "duplicate_display_name",
                        message: format!(
                            "QuickBooks already has a customer, vendor or employee named \"{}\"",
                            names.last().map(String::as_str).unwrap_or_default()
                        ),
                    };
                }
            }
        }
        Ok(())
    }
}

/// One message being applied.
struct Run<'a> {
    engine: &'a Engine,
    connection: &'a Connection,
    synced: Synced,
    settings: &'a ObjectSettings,
    fields: Vec<Field>,
    qbo: Company<'a>,
    hubspot: Portal<'a>,
    now: i64,
    /// The company's income account for new items, read once per message.
    default_income_account: tokio::sync::OnceCell<String>,
    /// Decide only: nothing is written on either side or in the ledger.
    preview: bool,
}

impl Run<'_> {
    fn object(&self) -> ObjectKind {
        self.synced.object()
    }

    fn direction(&self) -> Direction {
        self.settings.direction
    }

    fn flowing(&self, from: Provider) -> Vec<&Field> {
        mapping::flowing(&self.fields, from, self.direction())
    }

    fn fingerprint(&self, from: Provider, values: &Values) -> String {
        mapping::fingerprint(self.flowing(from), values)
    }

    async fn apply(&self, from: Provider, records: &[Value]) -> Result<Applied, SyncError> {
        match self.plan(from, records).await? {
            Some((work, hubspot_context)) => self.execute(from, work, &hubspot_context).await,
            None => Ok(Applied::default()),
        }
    }

    /// Reads what deciding needs and decides each record (`None`: nothing to decide). Outside
    /// a preview it also absorbs merges, settles pending writes and frees matches.
    async fn plan(
        &self,
        from: Provider,
        records: &[Value],
    ) -> Result<Option<(Vec<Work>, HashMap<String, HubSpotExtra>)>, SyncError> {
        let mut incoming: Vec<Incoming> = records
            .iter()
            .filter_map(|r| objects::incoming(self.synced, &self.fields, from, r))
            .collect();
        // The newest version of each record only.
        incoming.sort_by(|a, b| a.id.cmp(&b.id).then(b.version.cmp(&a.version)));
        incoming.dedup_by(|a, b| a.id == b.id);
        if incoming.is_empty() {
            return Ok(None);
        }
        let hubspot_context = if from == Provider::HubSpot {
            self.hubspot_context(&mut incoming).await?
        } else {
            HashMap::new()
        };

        if !self.preview && incoming.iter().any(|r| !r.merged_ids.is_empty()) {
            self.absorb_merges(&incoming).await?;
        }
        let ids: Vec<String> = incoming.iter().map(|r| r.id.clone()).collect();
        let mut entries = self
            .engine
            .ledger
            .find(&self.connection.id, self.object(), from, &ids, self.now)
            .await?;
        if !self.preview
            && entries
                .values()
                .any(|s| s.entry.status == LinkStatus::Pending && s.entry.pending.is_some())
        {
            self.settle_pending(&entries).await?;
            entries = self
                .engine
                .ledger
                .find(&self.connection.id, self.object(), from, &ids, self.now)
                .await?;
        }

        // A preview says what each record would do if tried now: failures that wait for a
        // person count as asked to be tried again (a settings change may be their fix).
        if self.preview {
            for stored in entries.values_mut() {
                if let Some(failure) = stored.entry.failure.as_mut() {
                    failure.next_retry_at.get_or_insert(self.now);
                }
            }
        }
        let filters = match from {
            Provider::HubSpot => &self.settings.filters.hubspot_to_qbo,
            Provider::Qbo => &self.settings.filters.qbo_to_hubspot,
        };
        let mut work: Vec<Work> = incoming
            .into_iter()
            .map(|record| {
                let fingerprint = self.fingerprint(from, &record.values);
                let match_key = self.synced.match_key(&record.values);
                let entry = entries.get(&record.id).cloned();
                let invoices = hubspot_context
                    .get(&record.id)
                    .map(|c: &HubSpotExtra| c.invoices.as_slice())
                    .unwrap_or(&[]);
                let properties = properties_of(&record.raw);
                let subject = match from {
                    Provider::HubSpot => Subject::HubSpot {
                        properties: &properties,
                        invoices,
                    },
                    Provider::Qbo => Subject::Qbo(&record.raw),
                };
                let excluded = filters::evaluate(filters, subject)
                    .err()
                    .map(|e| e.explanation());
                Work {
                    incoming: record,
                    fingerprint,
                    match_key,
                    excluded,
                    entry,
                    decision: Decision::Skip(Skip::Unchanged),
                    other: None,
                }
            })
            .collect();

        // Keys held by other links, and unlinked records of the other side with the same key
        // (not looked up for records that are left out anyway).
        // Records never linked: new ones, and those whose create failed (matched again).
        let unlinked = |w: &Work| {
            w.entry
                .as_ref()
                .is_none_or(|s| s.entry.side(from.other()).id.is_none())
                && w.excluded.is_none()
                && w.incoming.gone.is_none()
        };
        let wanted: Vec<String> = work
            .iter()
            .filter(|w| unlinked(w))
            .filter_map(|w| w.match_key.clone())
            .collect();
        let holders = self
            .engine
            .ledger
            .key_holders(&self.connection.id, self.object(), &wanted, self.now)
            .await?;
        // A key is free when no link holds it, or only the record's own entry does.
        let free: Vec<String> = work
            .iter()
            .filter(|w| unlinked(w))
            .filter_map(|w| {
                let key = w.match_key.as_ref()?;
                let own = w.entry.as_ref().map(|s| s.entry.link.as_str());
                match holders.get(key) {
                    None => Some(key.clone()),
                    Some(holder) if Some(holder.as_str()) == own => Some(key.clone()),
                    Some(_) => None,
                }
            })
            .collect();
        let matched = self.find_by_key(from.other(), &free).await?;
        let matched = self.free_matches(from, matched).await?;

        let decide_one = |w: &Work, counterpart: Option<Counterpart<'_>>| {
            let excluded = w.excluded.clone();
            let unsyncable = (self.synced == Synced::Products
                && self.settings.require_sku
                && w.match_key.is_none())
            .then(|| "it has no SKU (products are matched and synced by SKU)".to_owned());
            let key_held_by = w
                .match_key
                .as_ref()
                .and_then(|k| holders.get(k))
                .map(String::as_str);
            let found = w.match_key.as_ref().and_then(|k| matched.get(k));
            let context = Context {
                direction: Some(self.direction()),
                conflict: Some(self.settings.conflict),
                entry: w.entry.as_ref().map(|s| &s.entry),
                excluded,
                unsyncable,
                key_held_by,
                matched: found.map(|m| Counterpart {
                    id: &m.id,
                    version: m.version,
                    fingerprint: &m.fingerprint,
                    gone: None,
                }),
                counterpart,
            };
            let change = Change {
                from,
                id: &w.incoming.id,
                version: w.incoming.version,
                fingerprint: &w.fingerprint,
                gone: w.incoming.gone,
                match_key: w.match_key.as_deref(),
            };
            (decide::decide(&change, &context), found.cloned())
        };
        for w in work.iter_mut() {
            let (decision, found) = decide_one(w, None);
            w.decision = decision;
            w.other = found;
        }

        // Two-way: read the linked records that would be updated, to see whether they changed
        // too (a conflict), and decide again with what they are now.
        if self.direction() == Direction::TwoWay {
            let linked: Vec<String> = work
                .iter()
                .filter_map(|w| match &w.decision {
                    Decision::Update { target_id } => Some(target_id.clone()),
                    _ => None,
                })
                .collect();
            let now_there = self.read_by_id(from.other(), &linked).await?;
            for w in work.iter_mut() {
                let Decision::Update { target_id } = &w.decision else {
                    continue;
                };
                let Some(there) = now_there.get(target_id).cloned() else {
                    continue;
                };
                let (decision, _) = decide_one(
                    w,
                    Some(Counterpart {
                        id: &there.id,
                        version: there.version,
                        fingerprint: &there.fingerprint,
                        gone: there.gone,
                    }),
                );
                w.decision = decision;
                w.other = Some(there);
            }
        }
        Ok(Some((work, hubspot_context)))
    }

    /// HubSpot merged records: the merged record keeps one link (its own, else the one it
    /// takes over, moved to its id) and the other links are released, left out with the
    /// reason; their QBO records are not changed and never linked again by themselves.
    async fn absorb_merges(&self, incoming: &[Incoming]) -> Result<(), SyncError> {
        let (connection, object) = (&self.connection.id, self.object());
        for record in incoming.iter().filter(|r| !r.merged_ids.is_empty()) {
            let mut ids = record.merged_ids.clone();
            ids.push(record.id.clone());
            let found = self
                .engine
                .ledger
                .find(connection, object, Provider::HubSpot, &ids, self.now)
                .await?;
            let own = found.get(&record.id);
            let mut merged: Vec<&Stored> = record
                .merged_ids
                .iter()
                .filter_map(|id| found.get(id))
                .collect();
            merged.sort_by(|a, b| a.entry.link.cmp(&b.entry.link));
            merged.dedup_by(|a, b| a.entry.link == b.entry.link);
            let key = self.synced.match_key(&record.values);
            let entries: Vec<&LedgerEntry> = merged.iter().map(|s| &s.entry).collect();
            let plan = decide::plan_merge(key.as_deref(), own.map(|s| &s.entry), &entries);
            let by_link = |link: &str| merged.iter().find(|s| s.entry.link == link).copied();
            let qbo_of = |entry: &LedgerEntry| {
                entry
                    .qbo
                    .id
                    .clone()
                    .unwrap_or_else(|| "(none yet)".to_owned())
            };
            let mut groups = Vec::new();
            if let Some(stored) = plan.moves.as_deref().and_then(by_link) {
                let mut entry = stored.entry.clone();
                let old = entry.hubspot.id.clone().unwrap_or_default();
                entry.hubspot.id = Some(record.id.clone());
                entry.hubspot.gone = false;
                entry.record(
                    self.now,
                    Provider::HubSpot,
                    "merged",
                    format!(
                        "HubSpot merged record {old} into {}; it keeps the link to QuickBooks record {}",
                        record.id,
                        qbo_of(&entry)
                    ),
                );
                groups.push(self.engine.ledger.writes(&entry, Some(stored))?);
            }
            for stored in plan.released.iter().filter_map(|l| by_link(l)) {
                let mut entry = stored.entry.clone();
                let reason = format!(
                    "merged into HubSpot record {}; QuickBooks record {} is left as it is and no longer linked",
                    record.id,
                    qbo_of(&entry)
                );
                entry.hubspot.gone = true;
                // The merged record's email no longer names this link.
                entry.match_key = None;
                entry.mark_excluded(reason.clone());
                entry.record(self.now, Provider::HubSpot, "excluded", reason);
                groups.push(self.engine.ledger.writes(&entry, Some(stored))?);
            }
            if !groups.is_empty() {
                self.engine.ledger.commit(groups).await?;
            }
        }
        Ok(())
    }

    /// HubSpot contacts: the primary company's name (for display names) and, when a filter
    /// needs them, the associated invoices.
    async fn hubspot_context(
        &self,
        incoming: &mut [Incoming],
    ) -> Result<HashMap<String, HubSpotExtra>, SyncError> {
        let mut extra: HashMap<String, HubSpotExtra> = HashMap::new();
        if self.synced != Synced::Contacts {
            return Ok(extra);
        }
        let company_of: HashMap<String, String> = incoming
            .iter()
            .filter_map(|r| {
                let company = r.raw["properties"]["associatedcompanyid"].as_str()?;
                (!company.is_empty()).then(|| (r.id.clone(), company.to_owned()))
            })
            .collect();
        let mut company_names: HashMap<String, String> = HashMap::new();
        let company_ids: Vec<String> = {
            let mut ids: Vec<String> = company_of.values().cloned().collect();
            ids.sort();
            ids.dedup();
            ids
        };
        for chunk in company_ids.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
            let read = self
                .hubspot
                .batch_read("companies", chunk, &["name"], None)
                .await?;
            for company in read.results {
                if let Some(name) = company.property("name") {
                    company_names.insert(company.id.clone(), name.to_owned());
                }
            }
        }
        if filters::needs_invoices(&self.settings.filters.hubspot_to_qbo) {
            let ids: Vec<String> = incoming.iter().map(|r| r.id.clone()).collect();
            let invoice_ids = self
                .hubspot
                .associations("contacts", "invoices", &ids)
                .await?;
            let properties: Vec<String> = self
                .settings
                .filters
                .hubspot_to_qbo
                .iter()
                .filter_map(|f| f.property.strip_prefix(crate::settings::ASSOCIATED_INVOICE))
                .map(str::to_owned)
                .collect();
            let wanted: Vec<&str> = properties.iter().map(String::as_str).collect();
            let mut all: Vec<String> = invoice_ids.values().flatten().cloned().collect();
            all.sort();
            all.dedup();
            let mut invoices: HashMap<String, Properties> = HashMap::new();
            for chunk in all.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
                let read = self
                    .hubspot
                    .batch_read("invoices", chunk, &wanted, None)
                    .await?;
                for invoice in read.results {
                    invoices.insert(invoice.id.clone(), invoice.properties);
                }
            }
            for (contact, ids) in invoice_ids {
                extra.entry(contact).or_default().invoices = ids
                    .iter()
                    .filter_map(|id| invoices.get(id).cloned())
                    .collect();
            }
        }
        let display_name_in_force = self.fields.iter().any(|f| f.key == contacts::DISPLAY_NAME);
        for record in incoming.iter_mut() {
            let company = company_of
                .get(&record.id)
                .and_then(|c| company_names.get(c));
            let names = contacts::display_names(
                &record.values,
                company.map(String::as_str),
                self.settings,
                &record.id,
            );
            if display_name_in_force {
                if let Some(first) = names.first() {
                    record
                        .values
                        .insert(contacts::DISPLAY_NAME.to_owned(), first.clone());
                }
            }
            extra.entry(record.id.clone()).or_default().display_names = names;
        }
        Ok(extra)
    }

    /// Records of `side` by match key (unlinked ones are linked rather than made twice).
    async fn find_by_key(
        &self,
        side: Provider,
        match_keys: &[String],
    ) -> Result<HashMap<String, OtherRecord>, SyncError> {
        let mut found = HashMap::new();
        if match_keys.is_empty() {
            return Ok(found);
        }
        let records = match side {
            Provider::Qbo => {
                let mut records = Vec::new();
                for chunk in match_keys.chunks(100) {
                    let query = Query::select(self.synced.qbo_entity())
                        .with_projection(self.synced.qbo_projection())
                        .any_of(
                            self.synced.qbo_key_field(),
                            chunk.iter().map(String::as_str),
                        );
                    let rows: Vec<Value> = self.qbo.query_all_values(&query).await?;
                    records.extend(
                        rows.iter()
                            .filter_map(|r| objects::from_qbo(&self.fields, r)),
                    );
                }
                records
            }
            Provider::HubSpot => self.hubspot_by_key(match_keys).await?,
        };
        for record in records {
            if record.gone.is_some() {
                continue;
            }
            let Some(key) = self.synced.match_key(&record.values) else {
                continue;
            };
            let fingerprint = self.fingerprint(side, &record.values);
            found.entry(key).or_insert(OtherRecord {
                id: record.id,
                version: record.version,
                values: record.values,
                fingerprint,
                gone: None,
            });
        }
        Ok(found)
    }

    /// Records of the other side found by key may be held already by an entry of their own: one
    /// that never linked anything (left out by the other direction's filter, or whose create
    /// failed) gives the record up, so that this change links it; a match held by a link is
    /// not taken. (Removed first, in its own transaction: if the link then fails, the record is
    /// simply unlinked, and its next change or this message's retry decides again.)
    async fn free_matches(
        &self,
        from: Provider,
        matched: HashMap<String, OtherRecord>,
    ) -> Result<HashMap<String, OtherRecord>, SyncError> {
        if matched.is_empty() {
            return Ok(matched);
        }
        let ids: Vec<String> = matched.values().map(|m| m.id.clone()).collect();
        let held = self
            .engine
            .ledger
            .find(
                &self.connection.id,
                self.object(),
                from.other(),
                &ids,
                self.now,
            )
            .await?;
        let mut free = HashMap::with_capacity(matched.len());
        for (key, record) in matched {
            match held.get(&record.id) {
                None => {}
                // A preview only says the record would be taken.
                Some(holder) if holder.entry.side(from).id.is_none() && self.preview => {}
                Some(holder) if holder.entry.side(from).id.is_none() => {
                    match self.engine.ledger.remove(holder).await {
                        Ok(()) => {}
                        // Written meanwhile: not taken now; the message's retry decides again.
                        Err(LedgerError::Conflict) => continue,
                        Err(error) => return Err(error.into()),
                    }
                }
                Some(_) => continue,
            }
            free.insert(key, record);
        }
        Ok(free)
    }

    async fn hubspot_by_key(&self, match_keys: &[String]) -> Result<Vec<Incoming>, SyncError> {
        let properties = self.synced.hubspot_properties(&self.fields);
        let wanted: Vec<&str> = properties.iter().map(String::as_str).collect();
        let mut records = Vec::new();
        for chunk in match_keys.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
            let results: Vec<CrmObject> = match self.synced {
                Synced::Contacts => {
                    self.hubspot
                        .batch_read("contacts", chunk, &wanted, Some(contacts::EMAIL))
                        .await?
                        .results
                }
                Synced::Products => {
                    let request = SearchRequest {
                        filter_groups: vec![FilterGroup {
                            filters: vec![HsFilter::any_of(
                                self.synced.hubspot_key_property(),
                                chunk.to_vec(),
                            )],
                        }],
                        properties: properties.clone(),
                        limit: crate::hubspot::MAX_SEARCH_PAGE,
                        ..SearchRequest::default()
                    };
                    self.hubspot
                        .search(self.synced.hubspot_type(), &request)
                        .await?
                        .results
                }
                Synced::Invoices => Vec::new(),
            };
            records.extend(
                results
                    .iter()
                    .map(|r| objects::from_hubspot(self.synced, &self.fields, r)),
            );
        }
        Ok(records)
    }

    /// Linked records of `side` by id, as they are now.
    async fn read_by_id(
        &self,
        side: Provider,
        ids: &[String],
    ) -> Result<HashMap<String, OtherRecord>, SyncError> {
        let mut found = HashMap::new();
        if ids.is_empty() {
            return Ok(found);
        }
        let records: Vec<Incoming> = match side {
            Provider::Qbo => {
                let mut records = Vec::new();
                for chunk in ids.chunks(100) {
                    let query = self
                        .synced
                        .qbo_query()
                        .any_of("Id", chunk.iter().map(String::as_str));
                    let rows = self.qbo.query_all_values(&query).await?;
                    records.extend(
                        rows.iter()
                            .filter_map(|r| objects::from_qbo(&self.fields, r)),
                    );
                }
                records
            }
            Provider::HubSpot => {
                let properties = self.synced.hubspot_properties(&self.fields);
                let wanted: Vec<&str> = properties.iter().map(String::as_str).collect();
                let mut records = Vec::new();
                for chunk in ids.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
                    let read = self
                        .hubspot
                        .batch_read(self.synced.hubspot_type(), chunk, &wanted, None)
                        .await?;
                    records.extend(
                        read.results
                            .iter()
                            .map(|r| objects::from_hubspot(self.synced, &self.fields, r)),
                    );
                }
                records
            }
        };
        for record in records {
            let fingerprint = self.fingerprint(side, &record.values);
            let other = OtherRecord {
                id: record.id.clone(),
                version: record.version,
                values: record.values,
                fingerprint,
                gone: record.gone,
            };
            // HubSpot answers a merged id with the record it was merged into.
            for asked in record.merged_ids.iter().filter(|m| ids.contains(m)) {
                found.insert(asked.clone(), other.clone());
            }
            found.insert(record.id, other);
        }
        // What a read that succeeded left out is no longer there.
        for id in ids {
            if !found.contains_key(id) {
                found.insert(id.clone(), OtherRecord::missing(id, side));
            }
        }
        Ok(found)
    }

    /// Carries out the decisions and records each outcome.
    async fn execute(
        &self,
        from: Provider,
        work: Vec<Work>,
        hubspot_context: &HashMap<String, HubSpotExtra>,
    ) -> Result<Applied, SyncError> {
        let to = from.other();
        let mut applied = Applied::default();
        let mut planned: Vec<Planned> = Vec::new();
        // Entries as they will be written, by source id, with what they were read as.
        let mut next: HashMap<String, (LedgerEntry, Option<Stored>)> = HashMap::new();
        for w in &work {
            let mut entry = w
                .entry
                .as_ref()
                .map(|s| s.entry.clone())
                .unwrap_or_else(|| {
                    LedgerEntry::new(
                        self.connection.id.clone(),
                        self.object(),
                        from,
                        &w.incoming.id,
                        self.now,
                    )
                });
            let source_side = entry.side_mut(from);
            source_side.id = Some(w.incoming.id.clone());
            if w.incoming.gone.is_none() {
                // Restored, or made active again.
                source_side.gone = false;
            }
            let names = hubspot_context
                .get(&w.incoming.id)
                .map(|c| c.display_names.clone())
                .unwrap_or_default();
            let outgoing = |values: &Values| -> Values {
                self.flowing(from)
                    .into_iter()
                    .filter_map(|f| values.get(&f.key).map(|v| (f.key.clone(), v.clone())))
                    .collect()
            };
            let mut record = true;
            match &w.decision {
                Decision::Skip(Skip::Unchanged) if w.entry.is_some() => {
                    // Our own echo or an unmapped change: only its version moves on.
                    let side = entry.side_mut(from);
                    side.version = w.incoming.version.or(side.version);
                    applied.unchanged += 1;
                }
                Decision::Skip(_) => {
                    applied.unchanged += 1;
                    // A failing entry whose retry came due and is not tried waits longer, so
                    // the retry sweep does not bring it back on every tick.
                    let due = w.entry.as_ref().is_some_and(|s| {
                        s.entry.status == LinkStatus::Failing
                            && s.entry.retry_at().is_some_and(|(at, _)| at <= self.now)
                    });
                    if due {
                        entry.postpone_retry(self.now);
                    } else {
                        record = false;
                    }
                }
                Decision::Exclude(reason) => {
                    let side = entry.side_mut(from);
                    side.version = w.incoming.version;
                    side.fingerprint = Some(w.fingerprint.clone());
                    if w.incoming.gone.is_some() {
                        side.gone = true;
                    }
                    entry.mark_excluded(reason.clone());
                    entry.record(self.now, from, "excluded", reason.clone());
                    applied.excluded += 1;
                }
                Decision::TargetGone { reason } => {
                    let side = entry.side_mut(from);
                    side.version = w.incoming.version;
                    side.fingerprint = Some(w.fingerprint.clone());
                    entry.side_mut(to).gone = true;
                    entry.mark_excluded(reason.clone());
                    entry.record(self.now, from, "excluded", reason.clone());
                    applied.excluded += 1;
                }
                Decision::Fail { category, message } => {
                    entry.fail(from, category, message.clone(), false, self.now);
                    entry.failed_at(w.incoming.version);
                    applied.failed += 1;
                }
                Decision::Create => {
                    entry.match_key = w.match_key.clone();
                    planned.push(Planned {
                        source_id: w.incoming.id.clone(),
                        target: to,
                        target_id: None,
                        target_version: None,
                        values: outgoing(&w.incoming.values),
                        display_names: names,
                        qbo_id: (from == Provider::Qbo).then(|| w.incoming.id.clone()),
                        action: "created",
                    });
                }
                Decision::Update { target_id } | Decision::Overwrite { target_id } => {
                    if matches!(w.decision, Decision::Overwrite { .. }) {
                        entry.record(
                            self.now,
                            from,
                            "conflict",
                            format!(
                                "both sides changed; {} wins (the conflict setting)",
                                from.label()
                            ),
                        );
                    }
                    // A record keeps the display name it has, if that is still a candidate.
                    let current = w
                        .other
                        .as_ref()
                        .and_then(|o| o.values.get(contacts::DISPLAY_NAME));
                    let names = contacts::keep_current_name(names, current.map(String::as_str));
                    planned.push(Planned {
                        source_id: w.incoming.id.clone(),
                        target: to,
                        target_id: Some(target_id.clone()),
                        target_version: w
                            .other
                            .as_ref()
                            .and_then(|o| o.version)
                            .or(entry.side(to).version),
                        values: outgoing(&w.incoming.values),
                        display_names: names,
                        qbo_id: (from == Provider::Qbo).then(|| w.incoming.id.clone()),
                        action: "updated",
                    });
                }
                Decision::Link { target_id, push } => {
                    entry.match_key = w.match_key.clone();
                    let found = w.other.clone();
                    let side = entry.side_mut(to);
                    side.id = Some(target_id.clone());
                    side.version = found.as_ref().and_then(|o| o.version);
                    side.fingerprint = found.as_ref().map(|o| o.fingerprint.clone());
                    if *push {
                        planned.push(Planned {
                            source_id: w.incoming.id.clone(),
                            target: to,
                            target_id: Some(target_id.clone()),
                            target_version: found.as_ref().and_then(|o| o.version),
                            values: outgoing(&w.incoming.values),
                            display_names: names,
                            qbo_id: Some(qbo_side(from, &w.incoming.id, target_id).to_owned()),
                            action: "linked",
                        });
                    } else if let Some(found) = found {
                        // The other side wins: its values come here.
                        planned.push(Planned {
                            source_id: w.incoming.id.clone(),
                            target: from,
                            target_id: Some(w.incoming.id.clone()),
                            target_version: w.incoming.version,
                            values: self.incoming_values(to, &found.values),
                            display_names: Vec::new(),
                            qbo_id: Some(qbo_side(from, &w.incoming.id, &found.id).to_owned()),
                            action: "linked",
                        });
                    }
                }
                Decision::UpdateBack { target_id } => {
                    if let Some(found) = &w.other {
                        entry.record(
                            self.now,
                            from,
                            "conflict",
                            format!(
                                "both sides changed; {} wins (the conflict setting)",
                                to.label()
                            ),
                        );
                        planned.push(Planned {
                            source_id: w.incoming.id.clone(),
                            target: from,
                            target_id: Some(target_id.clone()),
                            target_version: w.incoming.version,
                            values: self.incoming_values(to, &found.values),
                            display_names: Vec::new(),
                            qbo_id: Some(qbo_side(from, &w.incoming.id, &found.id).to_owned()),
                            action: "updated",
                        });
                        let side = entry.side_mut(to);
                        side.version = found.version;
                        side.fingerprint = Some(found.fingerprint.clone());
                    }
                }
            }
            if record {
                next.insert(w.incoming.id.clone(), (entry, w.entry.clone()));
            }
        }

        // Creates on QBO are recorded first (pending, with their batch), so a lost answer is
        // replayed instead of creating again.
        let written = self.write(planned, &mut next).await?;
        for result in written {
            let Some((entry, _)) = next.get_mut(&result.source_id) else {
                continue;
            };
            let source = if result.target == to { from } else { to };
            match result.outcome {
                Ok((target_id, version, values)) => {
                    let fingerprint = self.fingerprint(result.target, &values);
                    let target_side = entry.side_mut(result.target);
                    target_side.id = Some(target_id.clone());
                    target_side.version = version;
                    target_side.fingerprint = Some(fingerprint);
                    target_side.gone = false;
                    if let Some(w) = work.iter().find(|w| w.incoming.id == result.source_id) {
                        if result.target == to {
                            let side = entry.side_mut(from);
                            side.version = w.incoming.version;
                            side.fingerprint = Some(w.fingerprint.clone());
                        }
                    }
                    entry.mark_synced();
                    entry.record(
                        self.now,
                        source,
                        result.action,
                        format!(
                            "{} in {} ({})",
                            result.action,
                            result.target.label(),
                            target_id
                        ),
                    );
                    match result.action {
                        "created" => applied.created += 1,
                        "linked" => applied.linked += 1,
                        _ => applied.updated += 1,
                    }
                }
                Err(refused) if refused.target_gone => {
                    // Never made again: the link stays, left out, with the reason.
                    let reason = Gone::Archived.explanation(result.target);
                    if let Some(w) = work.iter().find(|w| w.incoming.id == result.source_id) {
                        if result.target == to {
                            let side = entry.side_mut(from);
                            side.version = w.incoming.version;
                            side.fingerprint = Some(w.fingerprint.clone());
                        }
                    }
                    entry.side_mut(result.target).gone = true;
                    entry.mark_excluded(reason.clone());
                    entry.record(self.now, source, "excluded", reason);
                    applied.excluded += 1;
                }
                Err(refused) => {
                    entry.fail(
                        source,
                        &refused.category,
                        refused.message,
                        refused.retryable,
                        self.now,
                    );
                    if source == from {
                        let failed = work.iter().find(|w| w.incoming.id == result.source_id);
                        entry.failed_at(failed.and_then(|w| w.incoming.version));
                    }
                    applied.failed += 1;
                }
            }
        }
        if from == Provider::HubSpot {
            self.write_back_ids(&work, &mut next, &mut applied).await?;
        }
        let groups = next
            .values()
            .map(|(entry, previous)| self.engine.ledger.writes(entry, previous.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        self.engine.ledger.commit(groups).await?;
        Ok(applied)
    }

    /// A HubSpot record linked to a QBO record holds its id in `qbo_*_id` (the key HubSpot
    /// upserts by, and what people and later objects look up): written after a create in QBO,
    /// and again whenever a record arrives without it. Only that property is written; its echo
    /// changes no mapped value. A refused write leaves the entry failing, so the retry sweep
    /// reads the record again and writes what is still missing.
    async fn write_back_ids(
        &self,
        work: &[Work],
        next: &mut HashMap<String, (LedgerEntry, Option<Stored>)>,
        applied: &mut Applied,
    ) -> Result<(), SyncError> {
        let id_property = self.synced.qbo_id_property().name;
        let mut missing: Vec<(Planned, BatchInput)> = Vec::new();
        for w in work {
            let entry = match next.get(&w.incoming.id) {
                Some((entry, _)) => entry,
                None => match &w.entry {
                    Some(stored) => &stored.entry,
                    None => continue,
                },
            };
            if entry.status != LinkStatus::Synced || w.incoming.gone.is_some() {
                continue;
            }
            let Some(qbo_id) = entry.qbo.id.clone().filter(|_| !entry.qbo.gone) else {
                continue;
            };
            let held = w.incoming.raw["properties"][id_property.as_str()].as_str();
            if held == Some(qbo_id.as_str()) {
                continue;
            }
            let planned = Planned {
                source_id: w.incoming.id.clone(),
                target: Provider::HubSpot,
                target_id: Some(w.incoming.id.clone()),
                target_version: None,
                values: Values::new(),
                display_names: Vec::new(),
                qbo_id: Some(qbo_id.clone()),
                action: "linked",
            };
            let input = BatchInput {
                id: Some(w.incoming.id.clone()),
                id_property: None,
                properties: BTreeMap::from([(id_property.clone(), qbo_id)]),
                object_write_trace_id: None,
            };
            missing.push((planned, input));
        }
        if missing.is_empty() {
            return Ok(());
        }
        self.ensure_own_properties().await?;
        for chunk in missing.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
            // What was written in QBO is recorded whatever HubSpot answers here.
            let written = match self.hubspot_batch(chunk, false).await {
                Ok(written) => written,
                Err(error) => chunk.iter().map(|(p, _)| failed(p, &error)).collect(),
            };
            for result in written {
                let Err(refused) = result.outcome else {
                    continue;
                };
                let Some(w) = work.iter().find(|w| w.incoming.id == result.source_id) else {
                    continue;
                };
                let (entry, _) = next.entry(result.source_id.clone()).or_insert_with(|| {
                    let stored = w.entry.clone();
                    (
                        stored.as_ref().map(|s| s.entry.clone()).unwrap_or_else(|| {
                            LedgerEntry::new(
                                self.connection.id.clone(),
                                self.object(),
                                Provider::HubSpot,
                                &w.incoming.id,
                                self.now,
                            )
                        }),
                        stored,
                    )
                });
                entry.fail(
                    Provider::HubSpot,
                    &refused.category,
                    format!(
                        "linked, but the QuickBooks id could not be written to the HubSpot record: {}",
                        refused.message
                    ),
                    refused.retryable || refused.target_gone,
                    self.now,
                );
                applied.failed += 1;
            }
        }
        Ok(())
    }

    /// Values of `from`'s record as they would be written to the other side.
    fn incoming_values(&self, from: Provider, values: &Values) -> Values {
        self.flowing(from)
            .into_iter()
            .filter_map(|f| values.get(&f.key).map(|v| (f.key.clone(), v.clone())))
            .collect()
    }

    async fn write(
        &self,
        planned: Vec<Planned>,
        next: &mut HashMap<String, (LedgerEntry, Option<Stored>)>,
    ) -> Result<Vec<Written>, SyncError> {
        let (to_qbo, to_hubspot): (Vec<Planned>, Vec<Planned>) =
            planned.into_iter().partition(|p| p.target == Provider::Qbo);
        let mut written = Vec::new();
        let (creates, updates): (Vec<Planned>, Vec<Planned>) =
            to_qbo.into_iter().partition(|p| p.target_id.is_none());
        written.extend(self.create_in_qbo(creates, next).await?);
        written.extend(self.update_in_qbo(updates).await?);
        written.extend(self.write_to_hubspot(to_hubspot).await?);
        Ok(written)
    }

    /// The QBO body of a record to create or update.
    async fn qbo_body(
        &self,
        planned: &Planned,
        display_name: Option<&str>,
    ) -> Result<Map<String, Value>, SyncError> {
        let fields: Vec<&Field> = self
            .fields
            .iter()
            .filter(|f| planned.values.contains_key(&f.key))
            .collect();
        let mut body = mapping::to_qbo(fields, &planned.values);
        if let Some(name) = display_name {
            body.insert("DisplayName".into(), Value::String(name.to_owned()));
        }
        if self.synced == Synced::Products && planned.target_id.is_none() {
            body.entry("Type")
                .or_insert_with(|| Value::String(products::DEFAULT_ITEM_TYPE.into()));
            if !body.contains_key("IncomeAccountRef") {
                let account = self.income_account().await?;
                body.insert(
                    "IncomeAccountRef".into(),
                    serde_json::json!({"value": account}),
                );
            }
        }
        Ok(body)
    }

    /// The income account of items made from HubSpot: the setting, else the company's first
    /// income account (read once per message, not per item).
    async fn income_account(&self) -> Result<String, SyncError> {
        if let Some(account) = &self.settings.income_account {
            return Ok(account.clone());
        }
        self.default_income_account
            .get_or_try_init(|| self.first_income_account())
            .await
            .cloned()
    }

    async fn first_income_account(&self) -> Result<String, SyncError> {
        let accounts: Vec<Account> = self
            .qbo
            .query(
                &Query::select("Account")
                    .eq("AccountType", "Income")
                    .page(1, 1),
            )
            .await?;
        accounts
            .into_iter()
            .find_map(|a| a.id)
            .ok_or_else(|| {
                SyncError::Qbo(QboError::Fault {
                    status: 400,
                    errors: vec![crate::qbo::FaultError {
                        code: "2020".into(),
                        message: "Required parameter missing".into(),
                        detail: "the company has no income account for new items; choose one in the product settings".into(),
                        element: Some("IncomeAccountRef".into()),
                    }],
                })
            })
    }

    /// QBO creates, in batches recorded in an outbox first. A display name QBO refuses as taken
    /// is tried with the next candidate when there is one.
    async fn create_in_qbo(
        &self,
        creates: Vec<Planned>,
        next: &mut HashMap<String, (LedgerEntry, Option<Stored>)>,
    ) -> Result<Vec<Written>, SyncError> {
        let mut written = Vec::new();
        // (planned, which display name to try)
        let mut round: Vec<(Planned, usize)> = creates.into_iter().map(|p| (p, 0)).collect();
        while !round.is_empty() {
            let mut again = Vec::new();
            for chunk in round.chunks(MAX_BATCH_ITEMS) {
                let mut items = Vec::with_capacity(chunk.len());
                for (index, (planned, name)) in chunk.iter().enumerate() {
                    let display_name = planned.display_names.get(*name).map(String::as_str);
                    let body = self.qbo_body(planned, display_name).await?;
                    items.push(BatchItem {
                        bid: format!("c{index}"),
                        operation: BatchOperation::Create,
                        entity: self.synced.qbo_entity(),
                        body: Value::Object(body),
                    });
                }
                let requestid = {
                    let parts: Vec<String> = items
                        .iter()
                        .map(|i| format!("{}:{}", i.bid, i.body))
                        .chain([self.connection.id.to_string(), self.object().to_string()])
                        .collect();
                    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                    sha(&refs)
                };
                // Recorded before sending: the entries pending, the batch in the outbox.
                let mut groups = vec![self.engine.ledger.outbox_write(
                    &self.connection.id,
                    self.object(),
                    &Outbox {
                        requestid: requestid.clone(),
                        items: items.iter().map(batch_request).collect(),
                        sent_at: self.now,
                    },
                )?];
                for (index, (planned, _)) in chunk.iter().enumerate() {
                    if let Some((entry, previous)) = next.get_mut(&planned.source_id) {
                        entry.status = LinkStatus::Pending;
                        entry.pending = Some(crate::ledger::entry::PendingWrite {
                            requestid: requestid.clone(),
                            bid: format!("c{index}"),
                            sent_at: self.now,
                        });
                        groups.push(self.engine.ledger.writes(entry, previous.as_ref())?);
                    }
                }
                self.engine.ledger.commit(groups).await?;
                // What was just written is what the final write must name (a versioned write
                // makes the next version).
                for (planned, _) in chunk {
                    if let Some((entry, previous)) = next.get_mut(&planned.source_id) {
                        *previous = Some(Stored {
                            entry: entry.clone(),
                            version: previous.as_ref().map_or(1, |p| p.version + 1),
                        });
                    }
                }
                let results = self.qbo.batch(&items, Some(&requestid)).await?;
                for (index, (planned, name)) in chunk.iter().enumerate() {
                    let bid = format!("c{index}");
                    match results.get(&bid).cloned() {
                        Some(BatchResult::Entity(entity)) => {
                            written.push(self.qbo_written(planned, &entity));
                        }
                        Some(BatchResult::Fault(errors)) => {
                            let error = QboError::Fault {
                                status: 400,
                                errors,
                            };
                            let taken = error.fault_code() == Some(FaultCode::DuplicateName);
                            if taken && name + 1 < planned.display_names.len() {
                                again.push((planned.clone(), name + 1));
                            } else {
                                written.push(failed(planned, &SyncError::Qbo(error)));
                            }
                        }
                        None => written.push(failed(
                            planned,
                            &SyncError::Qbo(QboError::Unreadable(format!(
                                "no answer for batch item {bid}"
                            ))),
                        )),
                    }
                }
            }
            round = again;
        }
        Ok(written)
    }

    fn qbo_written(&self, planned: &Planned, entity: &Value) -> Written {
        match objects::from_qbo(&self.fields, entity) {
            Some(record) => Written {
                source_id: planned.source_id.clone(),
                target: Provider::Qbo,
                outcome: Ok((record.id, record.version, record.values)),
                action: planned.action,
            },
            None => failed(
                planned,
                &SyncError::Qbo(QboError::Unreadable(
                    "QuickBooks answered an entity without an Id".into(),
                )),
            ),
        }
    }

    /// QBO updates in batches (sparse, with the SyncToken); a stale SyncToken is read again
    /// once, and a display name QBO refuses as taken is tried with the next candidate.
    async fn update_in_qbo(&self, updates: Vec<Planned>) -> Result<Vec<Written>, SyncError> {
        let mut written = Vec::new();
        // (planned, which display name to try, whether its SyncToken was read again)
        let mut round: Vec<(Planned, usize, bool)> =
            updates.into_iter().map(|p| (p, 0, false)).collect();
        while !round.is_empty() {
            let mut again = Vec::new();
            let mut stale = Vec::new();
            for chunk in round.chunks(MAX_BATCH_ITEMS) {
                let mut items = Vec::with_capacity(chunk.len());
                for (index, (planned, name, _)) in chunk.iter().enumerate() {
                    let display_name = planned.display_names.get(*name).map(String::as_str);
                    let mut body = self.qbo_body(planned, display_name).await?;
                    body.insert(
                        "Id".into(),
                        Value::String(planned.target_id.clone().unwrap_or_default()),
                    );
                    body.insert(
                        "SyncToken".into(),
                        Value::String(planned.target_version.unwrap_or(0).to_string()),
                    );
                    body.insert("sparse".into(), Value::Bool(true));
                    items.push(BatchItem {
                        bid: format!("u{index}"),
                        operation: BatchOperation::Update,
                        entity: self.synced.qbo_entity(),
                        body: Value::Object(body),
                    });
                }
                let results = self.qbo.batch(&items, None).await?;
                for (index, (planned, name, reread)) in chunk.iter().enumerate() {
                    match results.get(&format!("u{index}")).cloned() {
                        Some(BatchResult::Entity(entity)) => {
                            written.push(self.qbo_written(planned, &entity))
                        }
                        Some(BatchResult::Fault(errors)) => {
                            let error = QboError::Fault {
                                status: 400,
                                errors,
                            };
                            match error.fault_code() {
                                Some(FaultCode::StaleObject) if !reread => {
                                    stale.push((planned.clone(), *name, true));
                                }
                                Some(FaultCode::DuplicateName)
                                    if name + 1 < planned.display_names.len() =>
                                {
                                    again.push((planned.clone(), name + 1, *reread));
                                }
                                _ => written.push(failed(planned, &SyncError::Qbo(error))),
                            }
                        }
                        None => written.push(failed(
                            planned,
                            &SyncError::Qbo(QboError::Unreadable(
                                "no answer for a batch item".into(),
                            )),
                        )),
                    }
                }
            }
            if !stale.is_empty() {
                let ids: Vec<String> = stale
                    .iter()
                    .filter_map(|(p, _, _)| p.target_id.clone())
                    .collect();
                let now_there = self.read_by_id(Provider::Qbo, &ids).await?;
                again.extend(stale.into_iter().map(|(mut p, name, reread)| {
                    p.target_version = p
                        .target_id
                        .as_ref()
                        .and_then(|id| now_there.get(id))
                        .and_then(|r| r.version);
                    (p, name, reread)
                }));
            }
            round = again;
        }
        Ok(written)
    }

    /// HubSpot writes: creates as upserts by a unique property (the email, else the QBO id),
    /// updates by id.
    async fn write_to_hubspot(&self, planned: Vec<Planned>) -> Result<Vec<Written>, SyncError> {
        if planned.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_own_properties().await?;
        let id_property = self.synced.qbo_id_property().name;
        let mut written = Vec::new();
        let mut by_qbo_id = Vec::new();
        let mut updates = Vec::new();
        for p in planned {
            let mut properties = self.hubspot_properties(&p);
            if let Some(qbo) = &p.qbo_id {
                properties.insert(id_property.clone(), qbo.clone());
            }
            if let Some(target) = p.target_id.clone() {
                let input = BatchInput {
                    id: Some(target),
                    id_property: None,
                    properties,
                    object_write_trace_id: None,
                };
                updates.push((p, input));
                continue;
            }
            let Some(qbo) = p.qbo_id.clone() else {
                written.push(failed(
                    &p,
                    &SyncError::HubSpot(HubSpotError::Unreadable(
                        "a HubSpot record can only be made from a QuickBooks record".into(),
                    )),
                ));
                continue;
            };
            // Upserted by the QBO id (a unique property): a retried create finds what it made.
            // One id property for every create keeps them in one batch; a record with the same
            // email was looked up before and linked, so HubSpot's email uniqueness is not hit
            // (if a person makes one meanwhile, the batch is refused and tried again).
            let input = BatchInput {
                id: Some(qbo),
                id_property: Some(id_property.clone()),
                properties,
                object_write_trace_id: None,
            };
            by_qbo_id.push((p, input));
        }
        for (group, upsert) in [(by_qbo_id, true), (updates, false)] {
            for chunk in group.chunks(crate::hubspot::MAX_BATCH_INPUTS) {
                written.extend(self.hubspot_batch(chunk, upsert).await?);
            }
        }
        Ok(written)
    }

    /// One batch upsert or update; every input carries its position as `objectWriteTraceId`,
    /// so each answer and error is matched to its input (also when HubSpot answers a merged
    /// id with the record it was merged into).
    async fn hubspot_batch(
        &self,
        chunk: &[(Planned, BatchInput)],
        upsert: bool,
    ) -> Result<Vec<Written>, SyncError> {
        let inputs: Vec<BatchInput> = chunk
            .iter()
            .enumerate()
            .map(|(index, (_, input))| BatchInput {
                object_write_trace_id: Some(index.to_string()),
                ..input.clone()
            })
            .collect();
        let object_type = self.synced.hubspot_type();
        let outcome = if upsert {
            self.hubspot.batch_upsert(object_type, &inputs).await
        } else {
            self.hubspot.batch_update(object_type, &inputs).await
        };
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) if error.class() == ErrorClass::Terminal && chunk.len() > 1 => {
                // HubSpot refuses a whole batch for one record it refuses (an email another
                // contact holds): each is sent alone, so that only that one fails.
                let mut written = Vec::with_capacity(chunk.len());
                for one in chunk.chunks(1) {
                    written.extend(Box::pin(self.hubspot_batch(one, upsert)).await?);
                }
                return Ok(written);
            }
            Err(error) if error.class() == ErrorClass::Terminal => {
                let error = SyncError::HubSpot(error);
                return Ok(chunk.iter().map(|(p, _)| failed(p, &error)).collect());
            }
            Err(error) => return Err(error.into()),
        };
        let same = |input: &BatchInput, result: &CrmObject| -> bool {
            match (&input.id_property, &input.id) {
                (Some(property), Some(value)) => result
                    .property(property)
                    .is_some_and(|v| v.eq_ignore_ascii_case(value)),
                (None, Some(id)) => &result.id == id,
                _ => false,
            }
        };
        let mut answers: Vec<Option<CrmObject>> = vec![None; chunk.len()];
        for result in outcome.results {
            let index = result
                .object_write_trace_id
                .as_deref()
                .and_then(|t| t.parse::<usize>().ok())
                .filter(|i| *i < chunk.len())
                .or_else(|| inputs.iter().position(|input| same(input, &result)));
            if let Some(index) = index {
                answers[index] = Some(result);
            }
        }
        Ok(chunk
            .iter()
            .zip(answers)
            .enumerate()
            .map(|(index, ((p, input), answer))| match answer {
                Some(result) => self.hubspot_written(p, &result),
                None => {
                    let trace = index.to_string();
                    let error = outcome.errors.iter().find(|e| {
                        e.trace_id.as_deref() == Some(trace.as_str())
                            || e.ids.iter().any(|id| Some(id) == input.id.as_ref())
                    });
                    hubspot_item_failed(p, error)
                }
            })
            .collect())
    }

    fn hubspot_properties(&self, planned: &Planned) -> BTreeMap<String, String> {
        let fields: Vec<&Field> = self.flowing(Provider::Qbo);
        let mut properties = mapping::to_hubspot(fields, &planned.values);
        // A new contact or product gets nothing to clear.
        if planned.target_id.is_none() {
            properties.retain(|_, v| !v.is_empty());
        }
        properties
    }

    fn hubspot_written(&self, planned: &Planned, result: &CrmObject) -> Written {
        let record = objects::from_hubspot(self.synced, &self.fields, result);
        // What HubSpot answered, over what was written (an answer may leave properties out).
        let mut values = planned.values.clone();
        values.extend(record.values);
        Written {
            source_id: planned.source_id.clone(),
            target: Provider::HubSpot,
            outcome: Ok((record.id, record.version, values)),
            action: planned.action,
        }
    }

    /// Makes the integration's own properties (the unique `qbo_*_id`, …) exist, once per
    /// portal and process.
    async fn ensure_own_properties(&self) -> Result<(), SyncError> {
        let portal = self.connection.portal_id.to_string();
        if self.engine.is_ensured(&portal, self.synced.hubspot_type()) {
            return Ok(());
        }
        for property in self.synced.own_properties() {
            self.hubspot
                .ensure_property(self.synced.hubspot_type(), &property)
                .await?;
        }
        self.engine
            .mark_ensured(&portal, self.synced.hubspot_type());
        Ok(())
    }

    /// Replays the outboxes of pending entries (same items, same requestid): QBO answers what
    /// it did the first time, and the entries are settled with it.
    async fn settle_pending(&self, entries: &HashMap<String, Stored>) -> Result<(), SyncError> {
        let mut by_request: HashMap<String, Vec<&Stored>> = HashMap::new();
        for stored in entries.values() {
            if let (LinkStatus::Pending, Some(pending)) =
                (stored.entry.status, &stored.entry.pending)
            {
                by_request
                    .entry(pending.requestid.clone())
                    .or_default()
                    .push(stored);
            }
        }
        for (requestid, pending) in by_request {
            let Some(outbox) = self
                .engine
                .ledger
                .outbox(&self.connection.id, self.object(), &requestid, self.now)
                .await?
            else {
                // Kept for days; without it the write cannot be replayed safely, and sending
                // it again could make a second record. A person looks first.
                let mut groups = Vec::new();
                for stored in pending {
                    let mut entry = stored.entry.clone();
                    entry.fail(
                        Provider::HubSpot,
                        "write_outcome_unknown",
                        "a write to QuickBooks was sent but its answer was lost and can no longer be checked; look for this record in QuickBooks before syncing it again",
                        false,
                        self.now,
                    );
                    groups.push(self.engine.ledger.writes(&entry, Some(stored))?);
                }
                self.engine.ledger.commit(groups).await?;
                continue;
            };
            let items: Vec<BatchItem> = outbox
                .items
                .iter()
                .filter_map(|item| {
                    let bid = item.get("bId")?.as_str()?.to_owned();
                    let body = item.get(self.synced.qbo_entity())?.clone();
                    Some(BatchItem {
                        bid,
                        operation: BatchOperation::Create,
                        entity: self.synced.qbo_entity(),
                        body,
                    })
                })
                .collect();
            let results = self.qbo.batch(&items, Some(&requestid)).await?;
            let mut groups = Vec::new();
            for stored in pending {
                let mut entry = stored.entry.clone();
                let Some(bid) = entry.pending.as_ref().map(|p| p.bid.clone()) else {
                    continue;
                };
                match results.get(&bid) {
                    Some(BatchResult::Entity(entity)) => {
                        if let Some(record) = objects::from_qbo(&self.fields, entity) {
                            let fingerprint = self.fingerprint(Provider::Qbo, &record.values);
                            entry.qbo.id = Some(record.id.clone());
                            entry.qbo.version = record.version;
                            entry.qbo.fingerprint = Some(fingerprint);
                            entry.mark_synced();
                            entry.record(
                                self.now,
                                Provider::HubSpot,
                                "created",
                                format!(
                                    "created in QuickBooks ({}) — settled after a lost answer",
                                    record.id
                                ),
                            );
                        }
                    }
                    Some(BatchResult::Fault(errors)) => {
                        let error = QboError::Fault {
                            status: 400,
                            errors: errors.clone(),
                        };
                        entry.fail(
                            Provider::HubSpot,
                            error.category(),
                            error.to_string(),
                            error.class() == ErrorClass::Retryable,
                            self.now,
                        );
                    }
                    None => continue,
                }
                groups.push(self.engine.ledger.writes(&entry, Some(stored))?);
            }
            self.engine.ledger.commit(groups).await?;
        }
        Ok(())
    }
}

/// What a batch item is on the wire (kept in the outbox).
fn batch_request(item: &BatchItem) -> Value {
    serde_json::json!({"bId": item.bid, "operation": "create", item.entity: item.body})
}

/// A HubSpot contact's extra context.
#[derive(Debug, Default, Clone)]
struct HubSpotExtra {
    display_names: Vec<String>,
    invoices: Vec<Properties>,
}

fn properties_of(raw: &Value) -> Properties {
    raw.get("properties")
        .cloned()
        .and_then(|p| serde_json::from_value(p).ok())
        .unwrap_or_default()
}

fn failed(planned: &Planned, error: &SyncError) -> Written {
    let (category, message) = match error {
        SyncError::Qbo(e) => (
            e.category().to_owned(),
            explain(planned, e.category(), &e.to_string()),
        ),
        SyncError::HubSpot(e) => (
            e.category().to_owned(),
            explain(planned, e.category(), &e.to_string()),
        ),
        other => ("sync_failed".to_owned(), other.to_string()),
    };
    // A HubSpot record written over that is not found was archived (or merged away).
    let target_gone = planned.target == Provider::HubSpot
        && planned.target_id.is_some()
        && category == "object_not_found";
    // A create HubSpot refuses as a duplicate (someone made the record since it was looked up)
    // is tried again: that lookup finds the record and links it.
    let duplicate_create = planned.target == Provider::HubSpot
        && planned.target_id.is_none()
        && category == "duplicate_record";
    Written {
        source_id: planned.source_id.clone(),
        target: planned.target,
        outcome: Err(Refused {
            category,
            message,
            retryable: error.class() == ErrorClass::Retryable || duplicate_create,
            target_gone,
        }),
        action: planned.action,
    }
}

fn hubspot_item_failed(planned: &Planned, error: Option<&crate::hubspot::ItemError>) -> Written {
    let error = HubSpotError::Api {
        status: 400,
        category: error
            .map(|e| e.category.clone())
            .unwrap_or_else(|| "VALIDATION_ERROR".into()),
        message: error
            .map(|e| e.message.clone())
            .unwrap_or_else(|| "HubSpot did not answer for this record".into()),
    };
    failed(planned, &SyncError::HubSpot(error))
}

/// A sentence a bookkeeper understands, for the categories that need one.
fn explain(planned: &Planned, category: &str, detail: &str) -> String {
    match category {
        "duplicate_display_name" => format!(
            "QuickBooks already has a customer, vendor or employee named \"{}\" (display names must be unique). Rename one of them, or turn on display-name disambiguation in the contact settings. ({detail})",
            planned.display_names.last().map(String::as_str).unwrap_or("")
        ),
        _ => detail.to_owned(),
    }
}
