//! HubSpot wire formats: ISO-8601 UTC timestamps with milliseconds, epoch milliseconds in filters
//! and webhook events, and property values normalised to strings (money stays exact decimal text).

use rust_decimal::Decimal;
use std::str::FromStr;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, UtcOffset};

/// `2019-10-30T03:30:17.883Z`.
pub fn iso(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

pub fn epoch_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

pub fn from_epoch_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

pub fn parse_date(text: &str) -> Option<Date> {
    Date::parse(text.trim(), format_description!("[year]-[month]-[day]")).ok()
}

pub fn format_date(date: Date) -> String {
    date.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

/// A date-time as HubSpot accepts it: epoch milliseconds, RFC 3339, or a bare date (midnight UTC).
pub fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        && !text.contains("--")
    {
        if let Ok(ms) = text.parse::<i64>() {
            return from_epoch_ms(ms);
        }
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    parse_date(text).map(|d| d.midnight().assume_utc())
}

/// Exact decimal parse of a number property value (never via f64).
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    let t = text.trim();
    Decimal::from_str(t)
        .or_else(|_| Decimal::from_scientific(t))
        .ok()
}

/// A JSON value sent as a property value, as the string HubSpot stores (`1` → `"1"`,
/// `true` → `"true"`, `null` → `""`). Numbers keep their literal text.
pub fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_parse_from_ms_iso_and_date() {
        let a = parse_instant("1700000000000").map(epoch_ms);
        assert_eq!(a, Some(1_700_000_000_000));
        let b = parse_instant("2023-11-14T22:13:20.000Z").map(epoch_ms);
        assert_eq!(b, Some(1_700_000_000_000));
        let c = parse_instant("2024-01-02").map(iso);
        assert_eq!(c.as_deref(), Some("2024-01-02T00:00:00.000Z"));
    }
}
