//! In-memory state of the QBO simulator: realms (companies) with their entities, tombstones of
//! deleted transactions (for CDC), replayable responses keyed by `requestid`, and the changes not
//! yet announced by webhook.

use super::entity::EntityKind;
use super::format::{decimal, parse_date};
use super::oauth::OAuthState;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use time::{Date, OffsetDateTime};

/// One stored entity and the exact time it last changed (CDC compares against this).
#[derive(Clone, Debug)]
pub struct Record {
    pub value: Value,
    pub changed_at: OffsetDateTime,
}

#[derive(Clone, Debug)]
pub struct Tombstone {
    pub kind: EntityKind,
    pub id: u64,
    pub at: OffsetDateTime,
}

/// A response kept for `requestid` replay.
#[derive(Clone, Debug)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ChangeOp {
    Create,
    Update,
    Delete,
    Void,
}

impl ChangeOp {
    /// Legacy webhook operation name.
    pub fn legacy_name(self) -> &'static str {
        match self {
            ChangeOp::Create => "Create",
            ChangeOp::Update => "Update",
            ChangeOp::Delete => "Delete",
            ChangeOp::Void => "Void",
        }
    }

    /// CloudEvents `type` verb.
    pub fn event_verb(self) -> &'static str {
        match self {
            ChangeOp::Create => "created",
            ChangeOp::Update => "updated",
            ChangeOp::Delete => "deleted",
            ChangeOp::Void => "voided",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Change {
    pub realm_id: String,
    pub kind: EntityKind,
    pub id: String,
    pub op: ChangeOp,
    pub at: OffsetDateTime,
}

#[derive(Debug)]
pub struct Realm {
    pub id: String,
    records: BTreeMap<EntityKind, BTreeMap<u64, Record>>,
    pub tombstones: Vec<Tombstone>,
    next_ids: BTreeMap<EntityKind, u64>,
    next_doc_numbers: BTreeMap<EntityKind, u64>,
    pub idempotency: HashMap<String, StoredResponse>,
    pub changes: Vec<Change>,
    /// (kind, DocNumber) → transactions using it; keeps duplicate checks O(1) on big companies.
    doc_index: HashMap<(EntityKind, String), BTreeSet<u64>>,
    /// (namespace, lower-cased name) → entities using it (persons share one namespace).
    name_index: HashMap<(EntityKind, String), BTreeSet<(EntityKind, u64)>>,
}

/// The kind whose namespace a name belongs to, and the field that holds it.
fn name_key(kind: EntityKind) -> Option<(EntityKind, &'static str)> {
    match kind {
        EntityKind::Customer | EntityKind::Vendor | EntityKind::Employee => {
            Some((EntityKind::Customer, "DisplayName"))
        }
        EntityKind::Item | EntityKind::Account | EntityKind::Term | EntityKind::PaymentMethod => {
            Some((kind, "Name"))
        }
        _ => None,
    }
}

/// Names compare case-insensitively, ignoring surrounding spaces.
pub fn name_fold(name: &str) -> String {
    name.trim().to_lowercase()
}

impl Realm {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            records: BTreeMap::new(),
            tombstones: Vec::new(),
            next_ids: BTreeMap::new(),
            next_doc_numbers: BTreeMap::new(),
            idempotency: HashMap::new(),
            changes: Vec::new(),
            doc_index: HashMap::new(),
            name_index: HashMap::new(),
        }
    }

    fn index(&mut self, kind: EntityKind, id: u64, value: &Value, add: bool) {
        if let Some(doc) = value.get("DocNumber").and_then(Value::as_str) {
            let key = (kind, doc.to_string());
            let set = self.doc_index.entry(key.clone()).or_default();
            if add {
                set.insert(id);
            } else {
                set.remove(&id);
                if set.is_empty() {
                    self.doc_index.remove(&key);
                }
            }
        }
        if let Some((space, field)) = name_key(kind) {
            if let Some(name) = value.get(field).and_then(Value::as_str) {
                let key = (space, name_fold(name));
                let set = self.name_index.entry(key.clone()).or_default();
                if add {
                    set.insert((kind, id));
                } else {
                    set.remove(&(kind, id));
                    if set.is_empty() {
                        self.name_index.remove(&key);
                    }
                }
            }
        }
    }

    /// Another entity in `kind`'s name namespace already using `name` (inactive ones included).
    pub fn name_owner(
        &self,
        kind: EntityKind,
        name: &str,
        except: Option<u64>,
    ) -> Option<(EntityKind, u64)> {
        let (space, _) = name_key(kind)?;
        self.name_index
            .get(&(space, name_fold(name)))?
            .iter()
            .find(|(k, id)| !(*k == kind && Some(*id) == except))
            .copied()
    }

    pub fn get(&self, kind: EntityKind, id: u64) -> Option<&Record> {
        self.records.get(&kind).and_then(|m| m.get(&id))
    }

    pub fn get_mut(&mut self, kind: EntityKind, id: u64) -> Option<&mut Record> {
        self.records.get_mut(&kind).and_then(|m| m.get_mut(&id))
    }

    pub fn value(&self, kind: EntityKind, id: u64) -> Option<&Value> {
        self.get(kind, id).map(|r| &r.value)
    }

    pub fn is_deleted(&self, kind: EntityKind, id: u64) -> bool {
        self.tombstones.iter().any(|t| t.kind == kind && t.id == id)
    }

    /// All live records of a kind, by ascending Id.
    pub fn records(&self, kind: EntityKind) -> impl Iterator<Item = (&u64, &Record)> {
        self.records.get(&kind).into_iter().flat_map(|m| m.iter())
    }

    pub fn values(&self, kind: EntityKind) -> impl Iterator<Item = &Value> {
        self.records(kind).map(|(_, r)| &r.value)
    }

    pub fn count(&self, kind: EntityKind) -> usize {
        self.records.get(&kind).map_or(0, |m| m.len())
    }

    pub fn allocate_id(&mut self, kind: EntityKind) -> u64 {
        let next = self.next_ids.entry(kind).or_insert(1);
        let id = *next;
        *next += 1;
        id
    }

    /// Makes sure later allocations do not reuse an explicitly chosen Id (seeds).
    pub fn reserve_id(&mut self, kind: EntityKind, id: u64) {
        let next = self.next_ids.entry(kind).or_insert(1);
        if *next <= id {
            *next = id + 1;
        }
    }

    pub fn put(&mut self, kind: EntityKind, id: u64, value: Value, at: OffsetDateTime) {
        self.reserve_id(kind, id);
        if let Some(old) = self.get(kind, id).map(|r| r.value.clone()) {
            self.index(kind, id, &old, false);
        }
        self.index(kind, id, &value, true);
        self.records.entry(kind).or_default().insert(
            id,
            Record {
                value,
                changed_at: at,
            },
        );
    }

    /// Removes a transaction, leaving a tombstone for CDC.
    pub fn delete(&mut self, kind: EntityKind, id: u64, at: OffsetDateTime) -> Option<Record> {
        let removed = self.records.get_mut(&kind).and_then(|m| m.remove(&id));
        if let Some(record) = &removed {
            self.index(kind, id, &record.value.clone(), false);
            self.tombstones.push(Tombstone { kind, id, at });
        }
        removed
    }

    pub fn record_change(&mut self, kind: EntityKind, id: u64, op: ChangeOp, at: OffsetDateTime) {
        self.changes.push(Change {
            realm_id: self.id.clone(),
            kind,
            id: id.to_string(),
            op,
            at,
        });
    }

    /// The next free sales-form number (QBO's sequence starts at 1001 in a new company).
    pub fn next_doc_number(&mut self, kind: EntityKind) -> String {
        let start = *self.next_doc_numbers.get(&kind).unwrap_or(&1001);
        let mut n = start;
        while self.doc_number_owner(kind, &n.to_string(), None).is_some() {
            n += 1;
        }
        self.next_doc_numbers.insert(kind, n + 1);
        n.to_string()
    }

    /// The Id of another transaction of `kind` using `doc_number`.
    pub fn doc_number_owner(
        &self,
        kind: EntityKind,
        doc_number: &str,
        except: Option<u64>,
    ) -> Option<u64> {
        self.doc_index
            .get(&(kind, doc_number.to_string()))?
            .iter()
            .find(|id| Some(**id) != except)
            .copied()
    }

    pub fn company_info(&self) -> Option<&Value> {
        self.values(EntityKind::CompanyInfo).next()
    }

    pub fn preferences(&self) -> Option<&Value> {
        self.values(EntityKind::Preferences).next()
    }

    /// `CompanyInfo.Country`, `US` when unset.
    pub fn country(&self) -> String {
        self.company_info()
            .and_then(|c| c.get("Country"))
            .and_then(Value::as_str)
            .unwrap_or("US")
            .to_string()
    }

    pub fn is_us(&self) -> bool {
        matches!(self.country().as_str(), "US" | "USA")
    }

    fn pref(&self, section: &str, field: &str) -> Option<&Value> {
        self.preferences()
            .and_then(|p| p.get(section))
            .and_then(|s| s.get(field))
    }

    pub fn custom_txn_numbers(&self) -> bool {
        self.pref("SalesFormsPrefs", "CustomTxnNumbers")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn book_close_date(&self) -> Option<Date> {
        self.pref("AccountingInfoPrefs", "BookCloseDate")
            .and_then(Value::as_str)
            .and_then(parse_date)
    }

    pub fn home_currency(&self) -> String {
        self.pref("CurrencyPrefs", "HomeCurrency")
            .and_then(|v| v.get("value"))
            .and_then(Value::as_str)
            .unwrap_or("USD")
            .to_string()
    }

    pub fn default_terms_id(&self) -> Option<u64> {
        self.pref("SalesFormsPrefs", "DefaultTerms")
            .and_then(|v| v.get("value"))
            .and_then(ref_id_of)
    }

    /// Names of the enabled legacy custom fields on sales forms (slots 1..=3).
    pub fn custom_field_definitions(&self) -> Vec<(String, String)> {
        let mut enabled = BTreeMap::new();
        let mut names = BTreeMap::new();
        let groups = self
            .pref("SalesFormsPrefs", "CustomField")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for group in groups {
            for field in group
                .get("CustomField")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = field.get("Name").and_then(Value::as_str).unwrap_or("");
                if let Some(slot) = name.strip_prefix("SalesFormsPrefs.UseSalesCustom") {
                    enabled.insert(
                        slot.to_string(),
                        field
                            .get("BooleanValue")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    );
                } else if let Some(slot) = name.strip_prefix("SalesFormsPrefs.SalesCustomName") {
                    if let Some(label) = field.get("StringValue").and_then(Value::as_str) {
                        names.insert(slot.to_string(), label.to_string());
                    }
                }
            }
        }
        names
            .into_iter()
            .filter(|(slot, _)| enabled.get(slot).copied().unwrap_or(false))
            .take(3)
            .collect()
    }
}

/// Reads an Id that may be a string ("42") or a number (42).
pub fn ref_id_of(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// `Ref.value` of a reference object.
pub fn ref_value(reference: Option<&Value>) -> Option<String> {
    match reference?.get("value")? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads a money field of an entity.
pub fn amount(value: &Value, field: &str) -> Decimal {
    value.get(field).and_then(decimal).unwrap_or_default()
}

/// All simulator state behind one lock.
#[derive(Debug, Default)]
pub struct QboState {
    realms: BTreeMap<String, Realm>,
    /// Creation order: the OAuth consent picks the first realm by default.
    realm_order: Vec<String>,
    pub oauth: OAuthState,
}

impl QboState {
    pub fn realm(&self, id: &str) -> Option<&Realm> {
        self.realms.get(id)
    }

    pub fn realm_mut(&mut self, id: &str) -> Option<&mut Realm> {
        self.realms.get_mut(id)
    }

    pub fn realm_ids(&self) -> Vec<String> {
        self.realm_order.clone()
    }

    pub fn insert_realm(&mut self, realm: Realm) {
        if !self.realms.contains_key(&realm.id) {
            self.realm_order.push(realm.id.clone());
        }
        self.realms.insert(realm.id.clone(), realm);
    }

    /// Drops every realm and token.
    pub fn clear(&mut self) {
        self.realms.clear();
        self.realm_order.clear();
        self.oauth = OAuthState::default();
    }

    /// Drains the changes of every realm (for webhook delivery).
    pub fn take_changes(&mut self) -> Vec<Change> {
        self.realms
            .values_mut()
            .flat_map(|r| std::mem::take(&mut r.changes))
            .collect()
    }
}
