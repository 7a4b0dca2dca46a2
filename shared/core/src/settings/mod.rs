//! Per-connection, per-object sync settings (S1, S2, S5, S7, S8) and where they are kept.
//!
//! A connection gets the recommended defaults when it is first connected; after that the settings
//! belong to the user, so a reconnect never overwrites them.

use serde::{Deserialize, Serialize};
use time::Date;

pub mod store;
pub mod validate;

pub use crate::domain::Direction;
use crate::domain::{ymd, ObjectKind};
pub use store::{settings_key, SettingsError, SettingsStore};
pub use validate::validate;

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
    /// S3: default field mappings switched off, by key (see `mapping`); all are on by default.
    #[serde(default)]
    pub disabled_fields: Vec<String>,
    /// S3: mappings the user added.
    #[serde(default)]
    pub custom_mappings: Vec<CustomMapping>,
    /// S9 contacts: the QBO display name comes from the contact's primary company, else first
    /// and last name (default). Off: always from first and last name.
    #[serde(default = "yes")]
    pub display_name_from_company: bool,
    /// S9 contacts, opt-in: when a display name is taken in QBO, try `Company (First Last)`,
    /// then a number after it, instead of failing the record.
    #[serde(default)]
    pub disambiguate_display_names: bool,
    /// Products: the QBO income account of items made from HubSpot products; `None`: the
    /// company's first income account.
    #[serde(default)]
    pub income_account: Option<String>,
    /// S14/S21 invoices, opt-in: the QBO tax codes HubSpot invoices take, under which they
    /// also sync to a company outside the US (refused there without it).
    #[serde(default)]
    pub tax_mapping: Option<TaxMapping>,
    /// S15 invoices, opt-in: QBO revenue recognition needs a service date on each line, which
    /// HubSpot invoices lack; this names the HubSpot deal date property (`closedate`, …) whose
    /// date the lines of an invoice made from HubSpot take from the invoice's deal.
    #[serde(default)]
    pub service_date_property: Option<String>,
}

/// Which QBO tax code each line of a HubSpot invoice takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxMapping {
    /// The QBO tax code (its id) of lines whose HubSpot tax rate is not mapped.
    pub default_tax_code: String,
    /// HubSpot tax rates (a line item's `hs_tax_rate_group_id`) to QBO tax codes.
    #[serde(default)]
    pub rates: Vec<TaxRateMapping>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxRateMapping {
    pub hubspot: String,
    pub qbo: String,
}

impl TaxMapping {
    /// The tax code of a line with this HubSpot tax rate.
    pub fn code_for(&self, hubspot_rate: Option<&str>) -> &str {
        hubspot_rate
            .and_then(|rate| self.rates.iter().find(|m| m.hubspot == rate))
            .map_or(self.default_tax_code.as_str(), |m| m.qbo.as_str())
    }
}

/// Which way one field flows (within the object's direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingDirection {
    Both,
    #[serde(rename = "hubspot_to_qbo")]
    HubSpotToQbo,
    #[serde(rename = "qbo_to_hubspot")]
    QboToHubSpot,
}

impl MappingDirection {
    /// Whether the field flows from `from` given the object's `direction`.
    pub fn flows(self, object: Direction, from: crate::domain::Provider) -> bool {
        use crate::domain::Provider;
        let field = match from {
            Provider::HubSpot => matches!(
                self,
                MappingDirection::Both | MappingDirection::HubSpotToQbo
            ),
            Provider::Qbo => matches!(
                self,
                MappingDirection::Both | MappingDirection::QboToHubSpot
            ),
        };
        let object = match from {
            Provider::HubSpot => object.hubspot_to_qbo(),
            Provider::Qbo => object.qbo_to_hubspot(),
        };
        field && object
    }
}

/// How a field's values are read, compared and converted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum FieldKind {
    Text,
    /// Compared without case or surrounding blanks.
    Email,
    Phone,
    /// A decimal (amounts are written as numbers in QBO, as text in HubSpot).
    Number,
    /// A calendar date (`YYYY-MM-DD` in QBO; HubSpot dates are midnight-UTC timestamps).
    Date,
    /// A fixed set of values, HubSpot's and QBO's spelling of each.
    Enumeration {
        values: Vec<EnumValue>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnumValue {
    pub hubspot: String,
    pub qbo: String,
}

/// S3: a field mapping the user added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomMapping {
    /// A HubSpot property's internal name (`my_property`).
    pub hubspot_property: String,
    /// A QBO field path (`Notes`, `BillAddr.Line2`).
    pub qbo_field: String,
    pub direction: MappingDirection,
    #[serde(flatten)]
    pub kind: FieldKind,
}

/// One problem with a settings edit, naming the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The setting, e.g. `custom_mappings[2].qbo_field`.
    pub field: String,
    pub message: String,
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
                disabled_fields: Vec::new(),
                custom_mappings: Vec::new(),
                display_name_from_company: true,
                disambiguate_display_names: false,
                income_account: None,
                tax_mapping: None,
                service_date_property: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

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
}
