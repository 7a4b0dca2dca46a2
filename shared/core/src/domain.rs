//! Domain newtypes used everywhere: identifiers are validated once at the edge, money is a
//! decimal (never `f64`).

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct InvalidValue {
    pub kind: &'static str,
    pub reason: String,
}

fn invalid(kind: &'static str, reason: impl Into<String>) -> InvalidValue {
    InvalidValue {
        kind,
        reason: reason.into(),
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidValue> {
                let raw = raw.into();
                let check: fn(&str) -> Result<(), String> = $check;
                check(&raw).map_err(|reason| invalid($kind, reason))?;
                Ok(Self(raw))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn digits(max_len: usize) -> impl Fn(&str) -> Result<(), String> {
    move |s: &str| {
        if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
            Err(format!("expected 1 to {max_len} digits, got {s:?}"))
        } else {
            Ok(())
        }
    }
}

fn key_safe(max_len: usize) -> impl Fn(&str) -> Result<(), String> {
    move |s: &str| {
        let ok = !s.is_empty()
            && s.len() <= max_len
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(())
        } else {
            Err(format!(
                "expected 1 to {max_len} of [A-Za-z0-9_-], got {s:?}"
            ))
        }
    }
}

id_type!(
    /// A HubSpot account ("portal", "hub id").
    PortalId, "HubSpot portal id", |s| digits(20)(s)
);
id_type!(
    /// A QuickBooks Online company ("realm").
    RealmId, "QuickBooks realm id", |s| digits(32)(s)
);
id_type!(
    /// One HubSpot portal paired with one QuickBooks company.
    ConnectionId, "connection id", |s| key_safe(64)(s)
);
id_type!(
    /// QBO's idempotency key (`requestid`): at most 50 characters. Derived deterministically from
    /// a ledger or action key so that a retried create can never make a second document.
    QboRequestId, "QuickBooks request id", |s| key_safe(50)(s)
);

impl ConnectionId {
    /// One connection per pair: the id is made from the pair, so connecting the same pair again
    /// (a reconnect, a repeated install) finds the same record and the same ledger. Both parts are
    /// validated digits, so the id is always valid (at most 20 + 1 + 32 characters).
    pub fn for_pair(portal: &PortalId, realm: &RealmId) -> Self {
        Self(format!("{portal}-{realm}"))
    }
}

/// The two services a connection joins (OAuth providers, API hosts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Written `hubspot`, as everywhere else; `hub_spot`, how earlier versions wrote it, is
    /// still read.
    #[serde(rename = "hubspot", alias = "hub_spot")]
    HubSpot,
    Qbo,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::HubSpot => "hubspot",
            Provider::Qbo => "qbo",
        }
    }

    /// The other side.
    pub fn other(self) -> Provider {
        match self {
            Provider::HubSpot => Provider::Qbo,
            Provider::Qbo => Provider::HubSpot,
        }
    }

    /// The provider's name as people know it.
    pub fn label(self) -> &'static str {
        match self {
            Provider::HubSpot => "HubSpot",
            Provider::Qbo => "QuickBooks",
        }
    }
}

/// Which way records of one object flow. (Brand names are written as one word on the wire:
/// `hubspot_to_qbo`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[serde(rename = "hubspot_to_qbo")]
    HubSpotToQbo,
    #[serde(rename = "qbo_to_hubspot")]
    QboToHubSpot,
    TwoWay,
}

impl Direction {
    pub fn hubspot_to_qbo(self) -> bool {
        matches!(self, Direction::HubSpotToQbo | Direction::TwoWay)
    }

    pub fn qbo_to_hubspot(self) -> bool {
        matches!(self, Direction::QboToHubSpot | Direction::TwoWay)
    }
}

// Calendar dates as `2025-03-14` (serde `with` helpers: `ymd`, `ymd::option`).
time::serde::format_description!(pub ymd, Date, "[year]-[month]-[day]");

/// The kinds of record the integration keeps in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// HubSpot contact <-> QBO customer.
    Contact,
    /// HubSpot product <-> QBO item.
    Product,
    /// HubSpot invoice <-> QBO invoice.
    Invoice,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 3] = [
        ObjectKind::Contact,
        ObjectKind::Product,
        ObjectKind::Invoice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Contact => "contact",
            ObjectKind::Product => "product",
            ObjectKind::Invoice => "invoice",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ObjectKind {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                invalid(
                    "object kind",
                    format!("{s:?} is not contact, product or invoice"),
                )
            })
    }
}

/// An amount of money. Exact decimal arithmetic; JSON numbers are read from their text, so no
/// binary floating point ever touches an amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);

    pub fn new(amount: Decimal) -> Self {
        Money(amount)
    }

    /// Parses a decimal written as text ("12.30", "-4", "1e2").
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let text = text.trim();
        Decimal::from_str_exact(text)
            .or_else(|_| Decimal::from_scientific(text))
            .map(Money)
            .map_err(|e| invalid("amount", format!("{text:?}: {e}")))
    }

    /// From integer minor units (cents): `Money::from_minor(1234, 2)` is 12.34.
    pub fn from_minor(units: i64, scale: u32) -> Self {
        Money(Decimal::new(units, scale))
    }

    pub fn amount(self) -> Decimal {
        self.0
    }

    /// Rounded to cents, half away from zero (how QBO rounds line amounts).
    pub fn round_cents(self) -> Self {
        Money(
            self.0
                .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
        )
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    pub fn checked_mul(self, quantity: Decimal) -> Option<Money> {
        self.0.checked_mul(quantity).map(Money)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.normalize().fmt(f)
    }
}

impl Serialize for Money {
    /// Written as a JSON number with the decimal's exact digits.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let number = serde_json::Number::from_str(&self.0.normalize().to_string())
            .map_err(serde::ser::Error::custom)?;
        number.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Money {
    /// Accepts a JSON number or a numeric string. A number is taken from its shortest
    /// round-trip text ("0.1" stays 0.1), never through float arithmetic.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(serde_json::Number),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Number(n) => n.to_string(),
            Raw::Text(s) => s,
        };
        Money::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_validated() {
        let cases: &[(&str, bool, bool)] = &[
            // raw, valid portal id, valid connection id
            ("12345", true, true),
            ("", false, false),
            ("12a", false, true),
            ("abc_DEF-9", false, true),
            ("has space", false, false),
            ("123456789012345678901", false, true),
        ];
        for (raw, portal_ok, connection_ok) in cases {
            assert_eq!(PortalId::parse(*raw).is_ok(), *portal_ok, "portal {raw:?}");
            assert_eq!(
                ConnectionId::parse(*raw).is_ok(),
                *connection_ok,
                "connection {raw:?}"
            );
        }
    }

    #[test]
    fn a_pair_makes_a_valid_connection_id() {
        let longest = ConnectionId::for_pair(
            &PortalId::parse("9".repeat(20)).unwrap(),
            &RealmId::parse("1".repeat(32)).unwrap(),
        );
        assert_eq!(ConnectionId::parse(longest.as_str()), Ok(longest.clone()));
        let pair = ConnectionId::for_pair(
            &PortalId::parse("62515").unwrap(),
            &RealmId::parse("9130350000000001").unwrap(),
        );
        assert_eq!(pair.as_str(), "62515-9130350000000001");
    }

    #[test]
    fn request_ids_respect_the_qbo_limit() {
        assert!(QboRequestId::parse("a".repeat(50)).is_ok());
        assert!(QboRequestId::parse("a".repeat(51)).is_err());
    }

    #[test]
    fn ids_deserialize_through_validation() {
        assert!(serde_json::from_str::<RealmId>("\"9130\"").is_ok());
        let err = serde_json::from_str::<RealmId>("\"x9\"").unwrap_err();
        assert!(err.to_string().contains("QuickBooks realm id"), "{err}");
    }

    #[test]
    fn object_kinds_round_trip() {
        for kind in ObjectKind::ALL {
            assert_eq!(kind.as_str().parse::<ObjectKind>().unwrap(), kind);
        }
        assert!("deal".parse::<ObjectKind>().is_err());
    }

    #[test]
    fn money_reads_json_numbers_exactly() {
        let cases = [
            ("0.1", "0.1"),
            ("19.99", "19.99"),
            ("100", "100"),
            ("\"7.25\"", "7.25"),
            ("1e2", "100"),
        ];
        for (json, expected) in cases {
            let money: Money = serde_json::from_str(json).unwrap();
            assert_eq!(money.to_string(), expected, "{json}");
        }
        let sum = ["0.1", "0.2"]
            .iter()
            .map(|t| serde_json::from_str::<Money>(t).unwrap())
            .fold(Money::ZERO, |acc, m| acc.checked_add(m).unwrap());
        assert_eq!(sum, Money::parse("0.3").unwrap(), "no binary float drift");
        assert!(serde_json::from_str::<Money>("\"ten\"").is_err());
    }

    #[test]
    fn twenty_digit_amounts_keep_every_digit() {
        // 20 significant digits: far beyond f64's 15–17.
        let text = "123456789012345678.91";
        #[derive(Deserialize, Serialize)]
        struct Line {
            amount: Money,
        }
        let json = format!(r#"{{"amount": {text}}}"#);
        let line: Line = serde_json::from_str(&json).unwrap();
        assert_eq!(line.amount.to_string(), text);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let through_value: Line = serde_json::from_value(value).unwrap();
        assert_eq!(
            through_value.amount.to_string(),
            text,
            "through a Value too"
        );
        assert_eq!(
            serde_json::to_string(&line).unwrap(),
            format!(r#"{{"amount":{text}}}"#),
            "and back out as the same number"
        );
    }

    #[test]
    fn money_serializes_as_a_json_number() {
        let money = Money::from_minor(1230, 2);
        assert_eq!(serde_json::to_string(&money).unwrap(), "12.3");
        assert_eq!(
            money.checked_mul(Decimal::new(3, 0)).unwrap().to_string(),
            "36.9"
        );
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(
            Money::parse("2.345").unwrap().round_cents().to_string(),
            "2.35"
        );
        assert_eq!(
            Money::parse("-2.345").unwrap().round_cents().to_string(),
            "-2.35"
        );
    }
}
