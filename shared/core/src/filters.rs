//! The S5 "Limit" step: whether a record passes an object's filters for one direction. Pure.
//!
//! Every filter must pass. Filters on `invoice.<property>` are about the record's associated
//! HubSpot invoices: all of them must hold for one same invoice, and the record passes when at
//! least one invoice does (a record without invoices fails them).

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::mapping::{qbo_value, Properties};
use crate::settings::{Filter, FilterOperator, ASSOCIATED_INVOICE};

/// What a filter is evaluated against.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    HubSpot {
        properties: &'a Properties,
        /// The properties of the record's associated invoices (when a filter needs them).
        invoices: &'a [Properties],
    },
    Qbo(&'a Value),
}

/// Why a record was left out: the filter, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excluded {
    pub filter: String,
}

impl Excluded {
    pub fn explanation(&self) -> String {
        format!("left out by the sync filter \"{}\"", self.filter)
    }
}

fn describe(filter: &Filter) -> String {
    let values = filter.values.join(", ");
    match filter.operator {
        FilterOperator::IsAnyOf => format!("{} is any of {values}", filter.property),
        FilterOperator::IsNoneOf => format!("{} is none of {values}", filter.property),
        FilterOperator::After => format!("{} is after {values}", filter.property),
        FilterOperator::HasValue => format!("{} is known", filter.property),
    }
}

/// A timestamp as HubSpot (ISO or epoch milliseconds) or QBO (ISO with offset) writes it.
fn timestamp(raw: &str) -> Option<OffsetDateTime> {
    let raw = raw.trim();
    if let Ok(ms) = raw.parse::<i64>() {
        return OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok();
    }
    OffsetDateTime::parse(raw, &Rfc3339).ok().or_else(|| {
        // A bare date counts as its midnight UTC.
        let day = time::Date::parse(
            raw.get(..10)?,
            &time::macros::format_description!("[year]-[month]-[day]"),
        )
        .ok()?;
        Some(day.midnight().assume_utc())
    })
}

/// Whether one value passes one filter (`None`: the record has no value).
fn passes(filter: &Filter, value: Option<&str>) -> bool {
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    match filter.operator {
        FilterOperator::IsAnyOf => {
            value.is_some_and(|v| filter.values.iter().any(|f| f.eq_ignore_ascii_case(v)))
        }
        FilterOperator::IsNoneOf => {
            value.is_none_or(|v| !filter.values.iter().any(|f| f.eq_ignore_ascii_case(v)))
        }
        FilterOperator::After => match (
            value.and_then(timestamp),
            filter.values.first().and_then(|b| timestamp(b)),
        ) {
            (Some(at), Some(bound)) => at > bound,
            _ => false,
        },
        FilterOperator::HasValue => value.is_some(),
    }
}

fn property<'a>(properties: &'a Properties, name: &str) -> Option<&'a str> {
    properties.get(name).and_then(|v| v.as_deref())
}

/// `Ok` when the record passes every filter; else the first one it fails.
pub fn evaluate(filters: &[Filter], subject: Subject<'_>) -> Result<(), Excluded> {
    let (own, on_invoices): (Vec<&Filter>, Vec<&Filter>) = filters
        .iter()
        .partition(|f| !f.property.starts_with(ASSOCIATED_INVOICE));
    for filter in own {
        let ok = match subject {
            Subject::HubSpot { properties, .. } => {
                passes(filter, property(properties, &filter.property))
            }
            Subject::Qbo(record) => passes(filter, qbo_value(record, &filter.property).as_deref()),
        };
        if !ok {
            return Err(Excluded {
                filter: describe(filter),
            });
        }
    }
    if on_invoices.is_empty() {
        return Ok(());
    }
    let invoices: &[Properties] = match subject {
        Subject::HubSpot { invoices, .. } => invoices,
        Subject::Qbo(_) => &[],
    };
    let matching = invoices.iter().any(|invoice| {
        on_invoices.iter().all(|filter| {
            let name = &filter.property[ASSOCIATED_INVOICE.len()..];
            passes(filter, property(invoice, name))
        })
    });
    if matching {
        Ok(())
    } else {
        Err(Excluded {
            filter: on_invoices
                .iter()
                .map(|f| describe(f))
                .collect::<Vec<_>>()
                .join(" and "),
        })
    }
}

/// Whether any filter needs the record's associated invoices.
pub fn needs_invoices(filters: &[Filter]) -> bool {
    filters
        .iter()
        .any(|f| f.property.starts_with(ASSOCIATED_INVOICE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::default_settings;
    use serde_json::json;
    use time::macros::date;

    fn props(pairs: &[(&str, &str)]) -> Properties {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect()
    }

    fn filter(property: &str, operator: FilterOperator, values: &[&str]) -> Filter {
        Filter {
            property: property.into(),
            operator,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn each_operator_passes_and_fails() {
        use FilterOperator::*;
        let cases: Vec<(Filter, Option<&str>, bool)> = vec![
            (filter("s", IsAnyOf, &["open", "paid"]), Some("OPEN"), true),
            (filter("s", IsAnyOf, &["open"]), Some("draft"), false),
            (filter("s", IsAnyOf, &["open"]), None, false),
            (filter("s", IsNoneOf, &["draft"]), Some("open"), true),
            (filter("s", IsNoneOf, &["draft"]), Some("Draft"), false),
            (filter("s", IsNoneOf, &["draft"]), None, true),
            (
                filter("d", After, &["2026-03-14T00:00:00Z"]),
                Some("2026-03-14T00:00:01.000Z"),
                true,
            ),
            (
                filter("d", After, &["2026-03-14T00:00:00Z"]),
                Some("2026-03-14T00:00:00Z"),
                false,
            ),
            (
                filter("d", After, &["2026-03-14T00:00:00Z"]),
                Some("1773446401000"),
                true,
            ),
            (
                filter("d", After, &["2026-03-14T00:00:00Z"]),
                Some("2026-03-13T17:00:01-07:00"),
                true,
            ),
            (
                filter("d", After, &["2026-03-14T00:00:00Z"]),
                Some("not a date"),
                false,
            ),
            (filter("d", After, &["2026-03-14T00:00:00Z"]), None, false),
            (filter("x", HasValue, &[]), Some(" "), false),
            (filter("x", HasValue, &[]), Some("y"), true),
        ];
        for (filter, value, expected) in cases {
            assert_eq!(passes(&filter, value), expected, "{filter:?} {value:?}");
        }
    }

    #[test]
    fn the_default_contact_filter_needs_one_invoice_meeting_all_its_conditions() {
        let settings = default_settings(date!(2026 - 03 - 14));
        let filters = &settings[0].filters.hubspot_to_qbo;
        assert!(needs_invoices(filters));
        let contact = props(&[("email", "ann@x.com")]);
        let good = props(&[
            ("hs_invoice_status", "open"),
            ("createdate", "2026-03-20T10:00:00.000Z"),
            ("hs_invoice_source", "HUBSPOT"),
        ]);
        let draft = props(&[
            ("hs_invoice_status", "draft"),
            ("createdate", "2026-03-20T10:00:00.000Z"),
            ("hs_invoice_source", "HUBSPOT"),
        ]);
        let old = props(&[
            ("hs_invoice_status", "paid"),
            ("createdate", "2026-01-02T10:00:00.000Z"),
            ("hs_invoice_source", "HUBSPOT"),
        ]);
        let check = |invoices: &[Properties]| {
            evaluate(
                filters,
                Subject::HubSpot {
                    properties: &contact,
                    invoices,
                },
            )
        };
        assert!(check(std::slice::from_ref(&good)).is_ok());
        assert!(
            check(&[draft.clone(), good]).is_ok(),
            "one matching invoice is enough"
        );
        let excluded = check(&[draft, old]).unwrap_err();
        assert!(
            excluded
                .explanation()
                .contains("invoice.hs_invoice_status is none of draft"),
            "{excluded:?}"
        );
        assert!(check(&[]).is_err(), "no invoice, no sync to QuickBooks");
        // QBO → HubSpot has no filter by default: every customer passes.
        assert!(evaluate(
            &settings[0].filters.qbo_to_hubspot,
            Subject::Qbo(&json!({}))
        )
        .is_ok());
    }

    #[test]
    fn qbo_filters_read_field_paths() {
        let settings = default_settings(date!(2026 - 03 - 14));
        let invoice_filter = &settings[2].filters.qbo_to_hubspot;
        let new = json!({"MetaData": {"CreateTime": "2026-03-14T09:00:00-07:00"}});
        let old = json!({"MetaData": {"CreateTime": "2026-03-13T09:00:00-07:00"}});
        assert!(evaluate(invoice_filter, Subject::Qbo(&new)).is_ok());
        assert!(evaluate(invoice_filter, Subject::Qbo(&old)).is_err());
    }
}
