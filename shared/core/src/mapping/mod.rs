//! Field mappings (S3): which HubSpot property and which QBO field hold the same value, how to
//! read it from either side into one neutral, normalised form, how to compare (fingerprint) and
//! how to write it to the other side. Pure: records in, values out.
//!
//! The neutral form of a record is its mapped values by field key, each normalised for its kind
//! (blanks trimmed, emails in lower case, numbers as their exact decimal, dates as
//! `YYYY-MM-DD`, enumerations in HubSpot's spelling), so that the same data read from either
//! side is equal and a fingerprint of it tells a real change from an echo.

pub mod contacts;
pub mod invoices;
pub mod products;

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::domain::{Direction, Provider};
use crate::settings::{CustomMapping, FieldKind, MappingDirection, ObjectSettings};

/// One field both sides hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Stable name in settings and fingerprints (`email`, `custom:my_property`).
    pub key: String,
    /// The HubSpot property; empty for a value HubSpot does not hold (it is derived).
    pub hubspot: String,
    /// The QBO field path (`BillAddr.City`).
    pub qbo: String,
    pub kind: FieldKind,
    pub direction: MappingDirection,
}

impl Field {
    pub fn new(
        key: &str,
        hubspot: &str,
        qbo: &str,
        kind: FieldKind,
        direction: MappingDirection,
    ) -> Self {
        Self {
            key: key.to_owned(),
            hubspot: hubspot.to_owned(),
            qbo: qbo.to_owned(),
            kind,
            direction,
        }
    }

    fn custom(mapping: &CustomMapping) -> Self {
        Self {
            key: format!("custom:{}", mapping.hubspot_property),
            hubspot: mapping.hubspot_property.clone(),
            qbo: mapping.qbo_field.clone(),
            kind: mapping.kind.clone(),
            direction: mapping.direction,
        }
    }
}

/// The fields in force: the object's defaults not switched off, then the custom ones.
pub fn fields_in_force(defaults: Vec<Field>, settings: &ObjectSettings) -> Vec<Field> {
    defaults
        .into_iter()
        .filter(|f| !settings.disabled_fields.contains(&f.key))
        .chain(settings.custom_mappings.iter().map(Field::custom))
        .collect()
}

/// A record's mapped values, normalised, by field key.
pub type Values = BTreeMap<String, String>;

/// Midnight UTC of a date, in epoch milliseconds (how HubSpot writes date properties).
fn date_to_epoch_ms(date: time::Date) -> i64 {
    date.midnight().assume_utc().unix_timestamp() * 1000
}

fn parse_date(raw: &str) -> Option<time::Date> {
    let raw = raw.trim();
    if let Ok(ms) = raw.parse::<i64>() {
        return time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
            .ok()
            .map(|t| t.date());
    }
    let day = raw.get(..10)?;
    time::Date::parse(
        day,
        &time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

/// A raw value read from `from`, in the neutral form; `None` when empty or unreadable.
pub fn normalize(kind: &FieldKind, raw: &str, from: Provider) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    match kind {
        FieldKind::Text | FieldKind::Phone => Some(raw.to_owned()),
        FieldKind::Email => Some(raw.to_lowercase()),
        FieldKind::Number => Decimal::from_str_exact(raw)
            .or_else(|_| Decimal::from_scientific(raw))
            .ok()
            .map(|d| d.normalize().to_string()),
        FieldKind::Date => parse_date(raw).map(|d| d.to_string()),
        FieldKind::Enumeration { values } => {
            let found = values.iter().find(|v| match from {
                Provider::HubSpot => v.hubspot.eq_ignore_ascii_case(raw),
                Provider::Qbo => v.qbo.eq_ignore_ascii_case(raw),
            });
            // An unknown value is kept as read, so that a change to it is still seen.
            Some(found.map_or_else(|| raw.to_owned(), |v| v.hubspot.clone()))
        }
    }
}

/// A value at a dotted path of a QBO record (`BillAddr.City`), as text.
pub fn qbo_value<'a>(record: &'a Value, path: &str) -> Option<std::borrow::Cow<'a, str>> {
    let mut at = record;
    for part in path.split('.') {
        at = at.get(part)?;
    }
    match at {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(std::borrow::Cow::Owned(b.to_string())),
        // A reference reads as its id.
        Value::Object(o) => o
            .get("value")
            .and_then(Value::as_str)
            .map(std::borrow::Cow::Borrowed),
        _ => None,
    }
}

/// Sets a dotted path in a QBO body, creating the objects on the way.
pub fn set_qbo_value(body: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut at = body;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            at.insert(part.to_owned(), value);
            return;
        }
        let next = at
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        let Value::Object(inner) = next else { return };
        at = inner;
    }
}

/// A HubSpot record's properties (values are text, or null).
pub type Properties = BTreeMap<String, Option<String>>;

/// The neutral values of a HubSpot record (fields HubSpot holds).
pub fn read_hubspot(fields: &[Field], properties: &Properties) -> Values {
    fields
        .iter()
        .filter(|f| !f.hubspot.is_empty())
        .filter_map(|f| {
            let raw = properties.get(&f.hubspot)?.as_deref()?;
            Some((f.key.clone(), normalize(&f.kind, raw, Provider::HubSpot)?))
        })
        .collect()
}

/// The neutral values of a QBO record.
pub fn read_qbo(fields: &[Field], record: &Value) -> Values {
    fields
        .iter()
        .filter(|f| !f.qbo.is_empty())
        .filter_map(|f| {
            let raw = qbo_value(record, &f.qbo)?;
            Some((f.key.clone(), normalize(&f.kind, &raw, Provider::Qbo)?))
        })
        .collect()
}

/// The fields that flow from `from` under the object's direction.
pub fn flowing(fields: &[Field], from: Provider, direction: Direction) -> Vec<&Field> {
    fields
        .iter()
        .filter(|f| f.direction.flows(direction, from))
        .collect()
}

/// A fingerprint of the values of `fields` in `values`: equal values, equal fingerprints.
pub fn fingerprint<'a>(fields: impl IntoIterator<Item = &'a Field>, values: &Values) -> String {
    let mut keys: Vec<&str> = fields.into_iter().map(|f| f.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut hash = Sha256::new();
    for key in keys {
        hash.update(key.as_bytes());
        hash.update([0]);
        if let Some(value) = values.get(key) {
            hash.update(value.as_bytes());
        }
        hash.update([1]);
    }
    hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// HubSpot properties for `values` over `fields`: a field without a value is cleared (`""`),
/// so the target follows the source.
pub fn to_hubspot<'a>(
    fields: impl IntoIterator<Item = &'a Field>,
    values: &Values,
) -> BTreeMap<String, String> {
    fields
        .into_iter()
        .filter(|f| !f.hubspot.is_empty())
        .map(|f| {
            let value = values
                .get(&f.key)
                .map_or_else(String::new, |v| match &f.kind {
                    FieldKind::Date => parse_date(v)
                        .map(|d| date_to_epoch_ms(d).to_string())
                        .unwrap_or_else(|| v.clone()),
                    _ => v.clone(),
                });
            (f.hubspot.clone(), value)
        })
        .collect()
}

/// A QBO body for `values` over `fields`. Fields without a value are left out: QBO's sparse
/// updates cannot clear a value (an empty one counts as absent), so clearing in HubSpot does
/// not clear in QBO.
pub fn to_qbo<'a>(
    fields: impl IntoIterator<Item = &'a Field>,
    values: &Values,
) -> Map<String, Value> {
    let mut body = Map::new();
    for field in fields {
        let Some(value) = values.get(&field.key) else {
            continue;
        };
        if field.qbo.is_empty() {
            continue;
        }
        let written = match &field.kind {
            FieldKind::Number => serde_json::Number::from_str(value)
                .map(Value::Number)
                .unwrap_or_else(|_| Value::String(value.clone())),
            FieldKind::Enumeration { values: known } => {
                match known.iter().find(|v| v.hubspot == *value) {
                    Some(v) => Value::String(v.qbo.clone()),
                    // QBO would refuse an unknown value: it is not written.
                    None => continue,
                }
            }
            _ => Value::String(value.clone()),
        };
        set_qbo_value(&mut body, &field.qbo, written);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::EnumValue;

    fn kinds() -> Vec<(FieldKind, Provider, &'static str, Option<&'static str>)> {
        let colours = FieldKind::Enumeration {
            values: vec![
                EnumValue {
                    hubspot: "non_inventory".into(),
                    qbo: "NonInventory".into(),
                },
                EnumValue {
                    hubspot: "service".into(),
                    qbo: "Service".into(),
                },
            ],
        };
        vec![
            (FieldKind::Text, Provider::HubSpot, "  Ann  ", Some("Ann")),
            (FieldKind::Text, Provider::Qbo, "   ", None),
            (
                FieldKind::Email,
                Provider::HubSpot,
                " Ann@Example.COM ",
                Some("ann@example.com"),
            ),
            (FieldKind::Number, Provider::HubSpot, "10.50", Some("10.5")),
            (FieldKind::Number, Provider::Qbo, "10.5", Some("10.5")),
            (
                FieldKind::Number,
                Provider::Qbo,
                "123456789012345678.90",
                Some("123456789012345678.9"),
            ),
            (FieldKind::Number, Provider::HubSpot, "1e2", Some("100")),
            (FieldKind::Number, Provider::HubSpot, "ten", None),
            (
                FieldKind::Date,
                Provider::Qbo,
                "2026-03-14",
                Some("2026-03-14"),
            ),
            (
                FieldKind::Date,
                Provider::HubSpot,
                "1773446400000",
                Some("2026-03-14"),
            ),
            (
                FieldKind::Date,
                Provider::HubSpot,
                "2026-03-14T00:00:00.000Z",
                Some("2026-03-14"),
            ),
            (
                colours.clone(),
                Provider::Qbo,
                "NonInventory",
                Some("non_inventory"),
            ),
            (
                colours.clone(),
                Provider::HubSpot,
                "SERVICE",
                Some("service"),
            ),
            (colours, Provider::Qbo, "Bundle", Some("Bundle")),
        ]
    }

    #[test]
    fn values_are_normalised_the_same_from_both_sides() {
        for (kind, from, raw, expected) in kinds() {
            assert_eq!(
                normalize(&kind, raw, from).as_deref(),
                expected,
                "{kind:?} {from:?} {raw:?}"
            );
        }
    }

    #[test]
    fn paths_are_read_and_written() {
        let record = serde_json::json!({"BillAddr": {"City": "Paris", "Id": "3"}, "Balance": 10.5,
            "Active": true, "IncomeAccountRef": {"value": "48", "name": "Sales"}});
        assert_eq!(
            qbo_value(&record, "BillAddr.City").as_deref(),
            Some("Paris")
        );
        assert_eq!(qbo_value(&record, "Balance").as_deref(), Some("10.5"));
        assert_eq!(qbo_value(&record, "Active").as_deref(), Some("true"));
        assert_eq!(
            qbo_value(&record, "IncomeAccountRef").as_deref(),
            Some("48")
        );
        assert_eq!(qbo_value(&record, "ShipAddr.City"), None);
        let mut body = Map::new();
        set_qbo_value(&mut body, "BillAddr.City", Value::from("Lyon"));
        set_qbo_value(&mut body, "BillAddr.PostalCode", Value::from("69001"));
        set_qbo_value(&mut body, "Notes", Value::from("n"));
        assert_eq!(
            Value::Object(body),
            serde_json::json!({"BillAddr": {"City": "Lyon", "PostalCode": "69001"}, "Notes": "n"})
        );
    }

    #[test]
    fn fingerprints_change_with_values_and_only_with_them() {
        let fields = vec![
            Field::new("a", "a", "A", FieldKind::Text, MappingDirection::Both),
            Field::new("b", "b", "B", FieldKind::Text, MappingDirection::Both),
        ];
        let values = |a: &str, b: Option<&str>| {
            let mut v = Values::new();
            v.insert("a".into(), a.into());
            if let Some(b) = b {
                v.insert("b".into(), b.into());
            }
            v
        };
        let base = fingerprint(&fields, &values("x", Some("y")));
        assert_eq!(
            base,
            fingerprint(fields.iter().rev(), &values("x", Some("y"))),
            "order-free"
        );
        assert_ne!(base, fingerprint(&fields, &values("x", Some("z"))));
        assert_ne!(base, fingerprint(&fields, &values("x", None)));
        assert_ne!(
            fingerprint(&fields, &values("xy", None)),
            fingerprint(&fields, &values("x", Some("y"))),
            "values cannot run into each other"
        );
        assert_eq!(base.len(), 32);
    }

    #[test]
    fn writes_follow_each_sides_format() {
        let fields = vec![
            Field::new(
                "price",
                "price",
                "UnitPrice",
                FieldKind::Number,
                MappingDirection::Both,
            ),
            Field::new(
                "start",
                "start_date",
                "ServiceDate",
                FieldKind::Date,
                MappingDirection::Both,
            ),
            Field::new(
                "phone",
                "phone",
                "PrimaryPhone.FreeFormNumber",
                FieldKind::Phone,
                MappingDirection::Both,
            ),
            Field::new(
                "derived",
                "",
                "DisplayName",
                FieldKind::Text,
                MappingDirection::HubSpotToQbo,
            ),
        ];
        let mut values = Values::new();
        values.insert("price".into(), "123456789012345678.91".into());
        values.insert("start".into(), "2026-03-14".into());
        values.insert("derived".into(), "Acme".into());
        let hubspot = to_hubspot(&fields, &values);
        assert_eq!(hubspot["price"], "123456789012345678.91");
        assert_eq!(hubspot["start_date"], "1773446400000");
        assert_eq!(hubspot["phone"], "", "a missing value clears in HubSpot");
        assert!(
            !hubspot.contains_key(""),
            "derived fields have no HubSpot property"
        );
        let qbo = Value::Object(to_qbo(&fields, &values));
        assert_eq!(qbo["UnitPrice"].to_string(), "123456789012345678.91");
        assert_eq!(qbo["ServiceDate"], "2026-03-14");
        assert_eq!(qbo["DisplayName"], "Acme");
        assert!(
            qbo.get("PrimaryPhone").is_none(),
            "QBO cannot clear: left out"
        );
    }

    #[test]
    fn fields_flow_by_their_own_and_the_objects_direction() {
        use MappingDirection as M;
        let cases = [
            (M::Both, Direction::TwoWay, Provider::HubSpot, true),
            (M::Both, Direction::QboToHubSpot, Provider::HubSpot, false),
            (M::Both, Direction::QboToHubSpot, Provider::Qbo, true),
            (M::HubSpotToQbo, Direction::TwoWay, Provider::Qbo, false),
            (M::HubSpotToQbo, Direction::TwoWay, Provider::HubSpot, true),
            (
                M::QboToHubSpot,
                Direction::HubSpotToQbo,
                Provider::Qbo,
                false,
            ),
        ];
        for (field, object, from, flows) in cases {
            assert_eq!(
                field.flows(object, from),
                flows,
                "{field:?} {object:?} {from:?}"
            );
        }
    }
}
