//! Wire formats shared by the QBO modules: timestamps in the company's local offset and money as
//! exact decimals (never f64 arithmetic).

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Number, Value};
use std::str::FromStr;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// Envelope `time`: local time with milliseconds, e.g. `2020-09-29T05:58:16.187-07:00`.
pub fn envelope_time(now: OffsetDateTime, offset: UtcOffset) -> String {
    now.to_offset(offset)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3][offset_hour sign:mandatory]:[offset_minute]"
        ))
        .unwrap_or_default()
}

/// Entity timestamps (`MetaData.*Time`): second precision with offset.
pub fn meta_time(at: OffsetDateTime, offset: UtcOffset) -> String {
    at.to_offset(offset)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
        ))
        .unwrap_or_default()
}

/// `YYYY-MM-DD` in the company's offset.
pub fn local_date(at: OffsetDateTime, offset: UtcOffset) -> Date {
    at.to_offset(offset).date()
}

pub fn format_date(date: Date) -> String {
    date.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

pub fn parse_date(text: &str) -> Option<Date> {
    Date::parse(text.trim(), format_description!("[year]-[month]-[day]")).ok()
}

/// Parses a date-time as QBO accepts it: RFC 3339 with offset, a naive date-time (taken in the
/// company's offset), or a bare date (midnight in the company's offset).
pub fn parse_datetime(text: &str, offset: UtcOffset) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    // RFC 3339 without seconds fraction but offset like -0700 or missing colon variants.
    let with_offset = [
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond][offset_hour sign:mandatory]:[offset_minute]"),
    ];
    for f in with_offset {
        if let Ok(t) = OffsetDateTime::parse(text, f) {
            return Some(t);
        }
    }
    let naive = [
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"),
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
    ];
    for f in naive {
        if let Ok(t) = PrimitiveDateTime::parse(text, f) {
            return Some(t.assume_offset(offset));
        }
    }
    parse_date(text).map(|d| d.midnight().assume_offset(offset))
}

/// Reads a JSON number (or numeric string) as an exact decimal. serde_json keeps non-integers as
/// f64; its shortest round-trip text is the decimal the client wrote for any realistic amount.
pub fn decimal(value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
}

/// Writes a decimal as a JSON number.
pub fn money(amount: Decimal) -> Value {
    let text = amount.normalize().to_string();
    Number::from_str(&text)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Rounds to cents, half away from zero.
pub fn cents(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(decimal(&json!(337.5)), Decimal::from_str("337.5").ok());
        assert_eq!(decimal(&json!(0.1)), Decimal::from_str("0.1").ok());
        assert_eq!(decimal(&json!("19.99")), Decimal::from_str("19.99").ok());
        assert_eq!(decimal(&json!(100)), Some(Decimal::from(100)));
        assert_eq!(
            money(Decimal::from_str("362.070").unwrap_or_default()),
            json!(362.07)
        );
    }

    #[test]
    fn datetimes_accept_the_usual_forms() {
        let pdt = UtcOffset::from_hms(-7, 0, 0).unwrap_or(UtcOffset::UTC);
        let a = parse_datetime("2025-01-02T03:04:05-07:00", pdt);
        let b = parse_datetime("2025-01-02T03:04:05", pdt);
        let c = parse_datetime("2025-01-02T10:04:05Z", pdt);
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert!(parse_datetime("2025-01-02", pdt).is_some());
        assert!(parse_datetime("yesterday", pdt).is_none());
    }
}
