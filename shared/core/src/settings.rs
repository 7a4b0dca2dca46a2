//! Per-connection, per-object sync settings (S1, S2, S5, S7, S8) and where they are kept.
//!
//! A connection gets the recommended defaults when it is first connected; after that the settings
//! belong to the user, so a reconnect never overwrites them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::Date;

pub use crate::domain::Direction;
use crate::domain::{ymd, ConnectionId, ObjectKind};
use crate::store::keys::connections as keys;
use crate::store::{Item, ItemKey, Query, Store, StoreError, Table, TransactWrite};

/// S2: whose data wins when both sides changed the same record since the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictWinner {
    #[serde(rename = "hubspot")]
    HubSpot,
    #[serde(rename = "quickbooks")]
    QuickBooks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOperator {
    /// The property's value is one of `values`. Enumeration values are compared ignoring ASCII
    /// case: the case HubSpot uses for some of them is not confirmed.
    IsAnyOf,
    /// The property's value is none of `values` (an empty property passes).
    IsNoneOf,
    /// The property, a timestamp, is later than `values[0]` (RFC 3339, UTC).
    After,
    /// The property has a non-empty value; `values` is empty.
    HasValue,
}

/// One condition of the S5 "Limit" step.
///
/// `property` is a HubSpot property internal name on the HubSpot side and a QBO field path
/// (`MetaData.CreateTime`) on the QBO side. A property of the record's associated HubSpot
/// invoices is written [`ASSOCIATED_INVOICE`]`<name>`: all such conditions of one direction must
/// hold for the same associated invoice, and the record passes when at least one does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub property: String,
    pub operator: FilterOperator,
    #[serde(default)]
    pub values: Vec<String>,
}

/// Prefix of filter properties that are read from a record's associated HubSpot invoices.
pub const ASSOCIATED_INVOICE: &str = "invoice.";

/// The filters of each direction; every filter of a direction must pass (AND). No filters: every
/// record passes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filters {
    #[serde(default)]
    pub hubspot_to_qbo: Vec<Filter>,
    #[serde(default)]
    pub qbo_to_hubspot: Vec<Filter>,
}

/// The sync settings of one object of one connection (S1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectSettings {
    pub object: ObjectKind,
    /// Off: nothing syncs, but the settings are kept for turning it back on.
    pub enabled: bool,
    pub direction: Direction,
    /// Only consulted for two-way sync.
    pub conflict: ConflictWinner,
    #[serde(default)]
    pub filters: Filters,
    /// The day the connection was configured; the date filters of the defaults derive from it.
    #[serde(with = "ymd")]
    pub setup_date: Date,
    /// S7 products: only products with a SKU sync (default true). Ignored for other objects.
    #[serde(default = "yes")]
    pub require_sku: bool,
    /// S8 invoices: QBO income account id for the "Custom Line Item" item; None until chosen.
    #[serde(default)]
    pub custom_line_item_income_account: Option<String>,
}

fn yes() -> bool {
    true
}

/// HubSpot invoice status property (values lower-case: `draft`, `open`, `paid`, `voided`).
const HS_INVOICE_STATUS: &str = "hs_invoice_status";
/// Create date of HubSpot contacts and invoices.
const HS_CREATE_DATE: &str = "createdate";
/// UNCONFIRMED: no public source names the property that tells a HubSpot-made invoice from one
/// synced in, nor its values; this name and `HUBSPOT` are placeholders to verify on a portal.
const HS_INVOICE_SOURCE: &str = "hs_invoice_source";
const HS_INVOICE_SOURCE_HUBSPOT: &str = "HUBSPOT";
/// QBO's creation timestamp of any entity.
const QBO_CREATE_TIME: &str = "MetaData.CreateTime";

/// The S5 recommended defaults for a connection configured on `setup_day`, one per
/// [`ObjectKind::ALL`] in that order, all enabled:
/// - contacts two-way: every QBO customer goes to HubSpot; a HubSpot contact goes to QBO only
///   once it is billed from HubSpot (an associated non-draft invoice made in HubSpot after setup);
/// - products one-way QBO→HubSpot, all products and services (with a SKU, S7);
/// - invoices one-way QBO→HubSpot, created after the setup day's 00:00 UTC.
///
/// Conflicts default to QuickBooks: it is the book of record, and a customer's billing details
/// there are what invoices and tax are based on, so the accounting side should not be silently
/// overwritten. Only contacts sync two-way by default, so only they can conflict.
pub fn default_settings(setup_day: Date) -> Vec<ObjectSettings> {
    let since = start_of_day_utc(setup_day);
    let after_setup = |property: &str| Filter {
        property: property.to_string(),
        operator: FilterOperator::After,
        values: vec![since.clone()],
    };
    ObjectKind::ALL
        .into_iter()
        .map(|object| {
            let (direction, filters) = match object {
                ObjectKind::Contact => (
                    Direction::TwoWay,
                    Filters {
                        hubspot_to_qbo: vec![
                            Filter {
                                property: format!("{ASSOCIATED_INVOICE}{HS_INVOICE_STATUS}"),
                                operator: FilterOperator::IsNoneOf,
                                values: vec!["draft".to_string()],
                            },
                            after_setup(&format!("{ASSOCIATED_INVOICE}{HS_CREATE_DATE}")),
                            Filter {
                                property: format!("{ASSOCIATED_INVOICE}{HS_INVOICE_SOURCE}"),
                                operator: FilterOperator::IsAnyOf,
                                values: vec![HS_INVOICE_SOURCE_HUBSPOT.to_string()],
                            },
                        ],
                        qbo_to_hubspot: Vec::new(),
                    },
                ),
                ObjectKind::Product => (Direction::QboToHubSpot, Filters::default()),
                ObjectKind::Invoice => (
                    Direction::QboToHubSpot,
                    Filters {
                        hubspot_to_qbo: Vec::new(),
                        qbo_to_hubspot: vec![after_setup(QBO_CREATE_TIME)],
                    },
                ),
            };
            ObjectSettings {
                object,
                enabled: true,
                direction,
                conflict: ConflictWinner::QuickBooks,
                filters,
                setup_date: setup_day,
                require_sku: true,
                custom_line_item_income_account: None,
            }
        })
        .collect()
}

/// `2025-03-14T00:00:00Z`.
fn start_of_day_utc(day: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}T00:00:00Z",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// Where one object's settings are kept: beside the connection, in its partition.
pub fn settings_key(connection: &ConnectionId, object: ObjectKind) -> ItemKey {
    keys::settings(connection, object)
}

/// Settings in [`Table::Connections`] at pk `connection#{id}`, sk `settings#{object}`.
#[derive(Clone)]
pub struct SettingsStore {
    store: Arc<dyn Store>,
}

impl SettingsStore {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn get(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        now_epoch_seconds: i64,
    ) -> Result<Option<ObjectSettings>, StoreError> {
        let key = settings_key(connection, object);
        match self
            .store
            .get(Table::Connections, &key, now_epoch_seconds)
            .await?
        {
            Some(item) => decode(&item, Some(object)).map(Some),
            None => Ok(None),
        }
    }

    /// Every object's settings the connection has, in [`ObjectKind::ALL`] order.
    pub async fn list(
        &self,
        connection: &ConnectionId,
        now_epoch_seconds: i64,
    ) -> Result<Vec<ObjectSettings>, StoreError> {
        let query =
            Query::partition(keys::partition(connection)).sort_prefix(keys::SETTINGS_PREFIX);
        let mut settings = self
            .store
            .query_all(Table::Connections, query, now_epoch_seconds)
            .await?
            .iter()
            .map(|item| decode(item, None))
            .collect::<Result<Vec<_>, _>>()?;
        sort_by_object(&mut settings);
        Ok(settings)
    }

    /// The writes that store `defaults` for each object the connection has no settings for yet
    /// (a reconnect keeps the user's edits), for the connect transaction. Each is a create that
    /// fails if the item appeared since it was read, so nothing the user wrote is overwritten.
    /// Returns the writes and the settings in force once they are made.
    pub async fn default_writes(
        &self,
        connection: &ConnectionId,
        defaults: &[ObjectSettings],
        now_epoch_seconds: i64,
    ) -> Result<(Vec<TransactWrite>, Vec<ObjectSettings>), StoreError> {
        let existing = self.list(connection, now_epoch_seconds).await?;
        let mut writes = Vec::new();
        let mut in_force = existing.clone();
        for settings in defaults {
            if existing.iter().any(|s| s.object == settings.object) {
                continue;
            }
            writes.push(TransactWrite::PutVersioned {
                table: Table::Connections,
                item: Item::from_value(settings_key(connection, settings.object), settings)?,
                expected: None,
            });
            in_force.push(settings.clone());
        }
        sort_by_object(&mut in_force);
        Ok((writes, in_force))
    }

    /// Saves the user's settings for one object, replacing what was there.
    pub async fn put(
        &self,
        connection: &ConnectionId,
        settings: &ObjectSettings,
    ) -> Result<(), StoreError> {
        let item = Item::from_value(settings_key(connection, settings.object), settings)?;
        self.store.put(Table::Connections, item).await
    }
}

fn sort_by_object(settings: &mut [ObjectSettings]) {
    settings.sort_by_key(|s| {
        ObjectKind::ALL
            .iter()
            .position(|kind| *kind == s.object)
            .unwrap_or(usize::MAX)
    });
}

fn decode(item: &Item, expected: Option<ObjectKind>) -> Result<ObjectSettings, StoreError> {
    let settings: ObjectSettings = item.to_value()?;
    let expected_sk = keys::settings_sort_key(settings.object);
    // The key names the object too; a disagreement means the item was written by hand or by a
    // bug, and acting on the wrong object's settings would be worse than failing.
    if item.key.sk != expected_sk || expected.is_some_and(|kind| kind != settings.object) {
        return Err(StoreError::Encoding(format!(
            "item {:?} holds settings of {}",
            item.key, settings.object
        )));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use time::macros::date;

    const NOW: i64 = 1_760_000_000;

    fn filter(property: &str, operator: FilterOperator, values: &[&str]) -> Filter {
        Filter {
            property: property.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn defaults_follow_s5_for_the_setup_day() {
        let day = date!(2025 - 03 - 14);
        let settings = default_settings(day);
        let expected = [
            (
                ObjectKind::Contact,
                Direction::TwoWay,
                vec![
                    filter(
                        "invoice.hs_invoice_status",
                        FilterOperator::IsNoneOf,
                        &["draft"],
                    ),
                    filter(
                        "invoice.createdate",
                        FilterOperator::After,
                        &["2025-03-14T00:00:00Z"],
                    ),
                    filter(
                        "invoice.hs_invoice_source",
                        FilterOperator::IsAnyOf,
                        &["HUBSPOT"],
                    ),
                ],
                vec![],
            ),
            (ObjectKind::Product, Direction::QboToHubSpot, vec![], vec![]),
            (
                ObjectKind::Invoice,
                Direction::QboToHubSpot,
                vec![],
                vec![filter(
                    "MetaData.CreateTime",
                    FilterOperator::After,
                    &["2025-03-14T00:00:00Z"],
                )],
            ),
        ];
        assert_eq!(settings.len(), expected.len());
        for (actual, (object, direction, to_qbo, to_hubspot)) in settings.iter().zip(expected) {
            assert_eq!(actual.object, object);
            assert_eq!(actual.direction, direction, "{object}");
            assert_eq!(actual.filters.hubspot_to_qbo, to_qbo, "{object}");
            assert_eq!(actual.filters.qbo_to_hubspot, to_hubspot, "{object}");
            assert!(actual.enabled, "{object}");
            assert_eq!(actual.conflict, ConflictWinner::QuickBooks);
            assert_eq!(actual.setup_date, day);
            assert!(actual.require_sku);
            assert_eq!(actual.custom_line_item_income_account, None);
        }
    }

    #[test]
    fn start_of_day_is_written_in_rfc3339_utc() {
        let cases = [
            (date!(2025 - 01 - 01), "2025-01-01T00:00:00Z"),
            (date!(2024 - 02 - 29), "2024-02-29T00:00:00Z"),
            (date!(0999 - 12 - 31), "0999-12-31T00:00:00Z"),
        ];
        for (day, expected) in cases {
            assert_eq!(start_of_day_utc(day), expected);
        }
    }

    #[test]
    fn directions_say_which_ways_they_flow() {
        let cases = [
            (Direction::HubSpotToQbo, true, false),
            (Direction::QboToHubSpot, false, true),
            (Direction::TwoWay, true, true),
        ];
        for (direction, to_qbo, to_hubspot) in cases {
            assert_eq!(direction.hubspot_to_qbo(), to_qbo, "{direction:?}");
            assert_eq!(direction.qbo_to_hubspot(), to_hubspot, "{direction:?}");
        }
    }

    #[test]
    fn settings_serialize_with_snake_case_names_and_text_dates() {
        let settings = default_settings(date!(2025 - 03 - 14)).remove(2);
        let json = serde_json::to_value(&settings).unwrap();
        assert_eq!(json["object"], "invoice");
        assert_eq!(json["direction"], "qbo_to_hubspot");
        assert_eq!(json["conflict"], "quickbooks");
        assert_eq!(json["setup_date"], "2025-03-14");
        assert_eq!(json["filters"]["qbo_to_hubspot"][0]["operator"], "after");
        assert_eq!(
            serde_json::from_value::<ObjectSettings>(json).unwrap(),
            settings
        );
        // Settings written before a field existed read with its default.
        let old = serde_json::json!({"object": "product", "enabled": false, "direction": "two_way",
            "conflict": "hubspot", "setup_date": "2025-01-02"});
        let read: ObjectSettings = serde_json::from_value(old).unwrap();
        assert!(read.require_sku);
        assert_eq!(read.filters, Filters::default());
    }

    fn connection(id: &str) -> ConnectionId {
        ConnectionId::parse(id).unwrap()
    }

    /// Makes the default writes as the connect transaction would; returns how many there were.
    async fn write_defaults(
        settings: &SettingsStore,
        store: &MemoryStore,
        id: &ConnectionId,
        defaults: &[ObjectSettings],
    ) -> usize {
        let (writes, in_force) = settings.default_writes(id, defaults, NOW).await.unwrap();
        let count = writes.len();
        if count > 0 {
            store.transact(writes).await.unwrap();
        }
        assert_eq!(in_force, settings.list(id, NOW).await.unwrap());
        count
    }

    #[tokio::test]
    async fn defaults_are_written_once_and_edits_survive_a_reconnect() {
        let store = Arc::new(MemoryStore::new());
        let settings = SettingsStore::new(store.clone());
        let acme = connection("acme");
        let defaults = default_settings(date!(2025 - 03 - 14));

        assert_eq!(settings.list(&acme, NOW).await.unwrap(), vec![]);
        assert_eq!(write_defaults(&settings, &store, &acme, &defaults).await, 3);
        assert_eq!(settings.list(&acme, NOW).await.unwrap(), defaults);

        let mut edited = defaults[1].clone();
        edited.direction = Direction::TwoWay;
        edited.require_sku = false;
        settings.put(&acme, &edited).await.unwrap();

        // A reconnect (a later setup day) writes nothing over the user's settings.
        let later = default_settings(date!(2025 - 06 - 01));
        assert_eq!(write_defaults(&settings, &store, &acme, &later).await, 0);
        assert_eq!(
            settings.get(&acme, ObjectKind::Product, NOW).await.unwrap(),
            Some(edited.clone())
        );
        assert_eq!(
            settings.list(&acme, NOW).await.unwrap(),
            vec![defaults[0].clone(), edited, defaults[2].clone()]
        );

        // A missing object is filled in; the others stay.
        store
            .delete(
                Table::Connections,
                &settings_key(&acme, ObjectKind::Invoice),
            )
            .await
            .unwrap();
        assert_eq!(write_defaults(&settings, &store, &acme, &later).await, 1);
        assert_eq!(
            settings.get(&acme, ObjectKind::Invoice, NOW).await.unwrap(),
            Some(later[2].clone())
        );
    }

    #[tokio::test]
    async fn connections_do_not_see_each_others_settings() {
        let store = Arc::new(MemoryStore::new());
        let settings = SettingsStore::new(store.clone());
        let defaults = default_settings(date!(2025 - 03 - 14));
        write_defaults(&settings, &store, &connection("one"), &defaults[..1]).await;
        // Other items of the connection's partition are not settings.
        store
            .put(
                Table::Connections,
                Item::from_value(
                    ItemKey::new("connection#two", "connection"),
                    &serde_json::json!({"status": "active"}),
                )
                .unwrap(),
            )
            .await
            .unwrap();

        assert_eq!(
            settings
                .get(&connection("two"), ObjectKind::Contact, NOW)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            settings.list(&connection("two"), NOW).await.unwrap(),
            vec![]
        );
        assert_eq!(
            settings.list(&connection("one"), NOW).await.unwrap(),
            defaults[..1].to_vec()
        );
    }

    #[tokio::test]
    async fn an_item_under_the_wrong_key_is_refused() {
        let store = Arc::new(MemoryStore::new());
        let settings = SettingsStore::new(store.clone());
        let acme = connection("acme");
        let contact = default_settings(date!(2025 - 03 - 14)).remove(0);
        store
            .put(
                Table::Connections,
                Item::from_value(settings_key(&acme, ObjectKind::Product), &contact).unwrap(),
            )
            .await
            .unwrap();
        let err = settings
            .get(&acme, ObjectKind::Product, NOW)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Encoding(_)), "{err}");
        assert!(settings.list(&acme, NOW).await.is_err());
    }
}
