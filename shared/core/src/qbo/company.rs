//! What the integration knows about a QuickBooks company, read once on connect from
//! `CompanyInfo` and `Preferences`, and the pre-flight warnings derived from it (C2, C3, S14).
//!
//! QBO's response shapes vary between sources (envelope or bare object, query responses, custom
//! fields nested once or twice, booleans as strings), so the reader walks JSON values leniently:
//! anything optional that is missing or oddly shaped falls back to a default. Only a response
//! that holds no company info at all is refused.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The number of legacy sales-form custom fields the Accounting API exposes (S4).
pub const CUSTOM_FIELD_SLOTS: u8 = 3;

/// Intuit names sandbox companies "Sandbox Company_US_1", "Sandbox Company_GB_2", …
const SANDBOX_NAME_PREFIX: &str = "sandbox company";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyProfile {
    pub company_name: String,
    /// `CompanyInfo.Country` ("US", "GB", "CA", …); when absent, from `CompanyAddr.Country`
    /// (then `LegalAddr.Country`). Known ISO-3 codes and English names are reduced to the 2-letter
    /// form ("USA" → "US"), since QBO returns address countries as ISO-3 since late 2025. Empty
    /// when QBO says nothing about the country.
    pub country: String,
    /// Whether the company uses QBO's US edition (US sales-tax model). Anything else uses the
    /// global tax model, which requires a tax code on every invoice line (S14).
    pub us_edition: bool,
    /// `Preferences.SalesFormsPrefs.CustomTxnNumbers`.
    pub custom_txn_numbers: bool,
    /// `Preferences.AccountingInfoPrefs.BookCloseDate`; `None` when the books were never closed.
    #[serde(default, with = "ymd::option")]
    pub book_close_date: Option<time::Date>,
    /// Legacy sales-form custom fields, by slot (1..=3); slots neither enabled nor named are left
    /// out.
    pub custom_fields: Vec<CustomFieldDefinition>,
    /// `Preferences.CurrencyPrefs.HomeCurrency.value` ("USD", "GBP", …).
    pub home_currency: Option<String>,
    /// `Preferences.CurrencyPrefs.MultiCurrencyEnabled`.
    pub multi_currency: bool,
    /// `CompanyInfo.NameValue` entry `OfferingSku` ("QuickBooks Online Plus", …).
    pub offering: Option<String>,
}

/// One legacy sales-form custom field (S4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomFieldDefinition {
    /// The slot, as transactions name it in `CustomField.DefinitionId` ("1", "2" or "3").
    pub definition_id: String,
    /// The label shown on sales forms; empty when QBO gives none.
    pub name: String,
    /// Whether the field is switched on for sales forms.
    pub enabled: bool,
    /// Whether values are strings. The legacy API exposes only string ("Text and number")
    /// fields, so every slot read from Preferences is one; the flag keeps room for definitions of
    /// other types from the newer custom-fields API, which S4 cannot map.
    pub string_type: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("QuickBooks sent no company information (expected a CompanyInfo object)")]
    MissingCompanyInfo,
    #[error("QuickBooks sent an unreadable {0}")]
    Malformed(String),
}

/// Reads the profile from a `CompanyInfo` response and a `Preferences` response. Each may be the
/// read envelope (`{"CompanyInfo":{…},"time":…}`), a query response
/// (`{"QueryResponse":{"CompanyInfo":[{…}]}}`) or the bare object. Preferences may be absent
/// (`null`): every preference then takes its default.
pub fn read_profile(
    company_info: &Value,
    preferences: &Value,
) -> Result<CompanyProfile, ProfileError> {
    let info = company_object(company_info)?;
    let prefs = preferences_object(preferences)?;

    let company_name = [str_at(info, &["CompanyName"]), str_at(info, &["LegalName"])]
        .into_iter()
        .flatten()
        .next()
        .unwrap_or_default()
        .to_string();
    let country = [
        str_at(info, &["Country"]),
        str_at(info, &["CompanyAddr", "Country"]),
        str_at(info, &["LegalAddr", "Country"]),
    ]
    .into_iter()
    .flatten()
    .next()
    .map(normalize_country)
    .unwrap_or_default();
    let us_edition = country == "US";
    let offering = info
        .get("NameValue")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|pair| pair.get("Name").and_then(Value::as_str) == Some("OfferingSku"))
        .and_then(|pair| pair.get("Value"))
        .and_then(non_empty_str)
        .map(str::to_string);

    let empty = Map::new();
    let prefs = prefs.unwrap_or(&empty);
    let custom_txn_numbers = bool_at(prefs, &["SalesFormsPrefs", "CustomTxnNumbers"]);
    let book_close_date =
        str_at(prefs, &["AccountingInfoPrefs", "BookCloseDate"]).and_then(parse_close_date);
    let custom_fields = custom_fields(prefs);
    let home_currency = match value_at(prefs, &["CurrencyPrefs", "HomeCurrency"]) {
        // A reference type ({"value":"USD"}) in every known sample; a bare string is accepted too.
        Some(Value::Object(reference)) => reference.get("value").and_then(non_empty_str),
        Some(other) => non_empty_str(other),
        None => None,
    }
    .map(str::to_string);
    let multi_currency = bool_at(prefs, &["CurrencyPrefs", "MultiCurrencyEnabled"]);

    Ok(CompanyProfile {
        company_name,
        country,
        us_edition,
        custom_txn_numbers,
        book_close_date,
        custom_fields,
        home_currency,
        multi_currency,
        offering,
    })
}

/// Fields of `CompanyInfo` that tell a bare object from an unrelated one (such as an envelope
/// whose entity is missing).
const COMPANY_INFO_FIELDS: [&str; 5] = ["CompanyName", "LegalName", "Country", "CompanyAddr", "Id"];

fn company_object(value: &Value) -> Result<&Map<String, Value>, ProfileError> {
    match entity(value, "CompanyInfo", "company info")? {
        Some(info) => Ok(info),
        None => match value {
            Value::Object(bare) if COMPANY_INFO_FIELDS.iter().any(|f| bare.contains_key(*f)) => {
                Ok(bare)
            }
            _ => Err(ProfileError::MissingCompanyInfo),
        },
    }
}

fn preferences_object(value: &Value) -> Result<Option<&Map<String, Value>>, ProfileError> {
    match entity(value, "Preferences", "preferences")? {
        Some(prefs) => Ok(Some(prefs)),
        None => match value {
            Value::Object(bare) => Ok(Some(bare)),
            _ => Ok(None),
        },
    }
}

/// The entity object inside a read envelope or query response; `None` when `value` holds
/// neither (it may then be the bare entity).
fn entity<'a>(
    value: &'a Value,
    name: &str,
    what: &str,
) -> Result<Option<&'a Map<String, Value>>, ProfileError> {
    let object = match value {
        Value::Object(object) => object,
        Value::Null => return Ok(None),
        other => {
            return Err(ProfileError::Malformed(format!(
                "{what} response: expected a JSON object, got {}",
                kind_of(other)
            )))
        }
    };
    if let Some(fault) = object.get("Fault").or_else(|| object.get("fault")) {
        return Err(ProfileError::Malformed(format!(
            "{what} response: it is an error ({})",
            fault_text(fault)
        )));
    }
    let inner = object.get(name).or_else(|| {
        object
            .get("QueryResponse")
            .and_then(|response| response.get(name))
    });
    match inner {
        None => Ok(None),
        Some(Value::Object(entity)) => Ok(Some(entity)),
        // Query responses (and some clients) give a one-element list.
        Some(Value::Array(list)) => match list.first() {
            Some(Value::Object(entity)) => Ok(Some(entity)),
            Some(other) => Err(ProfileError::Malformed(format!(
                "{what} response: {name} list holds {}",
                kind_of(other)
            ))),
            None => Ok(None),
        },
        Some(Value::Null) => Ok(None),
        Some(other) => Err(ProfileError::Malformed(format!(
            "{what} response: {name} is {}",
            kind_of(other)
        ))),
    }
}

fn fault_text(fault: &Value) -> String {
    let first = fault
        .get("Error")
        .or_else(|| fault.get("error"))
        .and_then(Value::as_array)
        .and_then(|errors| errors.first());
    let field = |name: &str| {
        first
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let text = [field("Message"), field("Detail")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    if text.is_empty() {
        "no details".to_string()
    } else {
        text
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn value_at<'a>(object: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(object.get(*first)?, |value, key| value.get(*key))
}

fn non_empty_str(value: &Value) -> Option<&str> {
    value.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn str_at<'a>(object: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    value_at(object, path).and_then(non_empty_str)
}

/// A boolean that some clients and samples write as the string "true"/"false".
fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn bool_at(object: &Map<String, Value>, path: &[&str]) -> bool {
    value_at(object, path).and_then(as_bool).unwrap_or(false)
}

/// `YYYY-MM-DD`, or a timestamp starting with one. Anything else is logged and read as "no
/// close date": a wrong warning is better than refusing the connection.
fn parse_close_date(text: &str) -> Option<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let parsed = text
        .get(..10)
        .and_then(|day| time::Date::parse(day, format).ok());
    if parsed.is_none() {
        tracing::warn!(
            book_close_date = text,
            "unreadable BookCloseDate; treated as unset"
        );
    }
    parsed
}

/// ISO-3 codes and English names of the countries QBO editions exist for, reduced to ISO-2.
const COUNTRY_ALIASES: [(&str, &str); 16] = [
    ("USA", "US"),
    ("UNITED STATES", "US"),
    ("UNITED STATES OF AMERICA", "US"),
    ("GBR", "GB"),
    ("UK", "GB"),
    ("UNITED KINGDOM", "GB"),
    ("CAN", "CA"),
    ("CANADA", "CA"),
    ("AUS", "AU"),
    ("AUSTRALIA", "AU"),
    ("IND", "IN"),
    ("INDIA", "IN"),
    ("FRA", "FR"),
    ("FRANCE", "FR"),
    ("IRL", "IE"),
    ("NZL", "NZ"),
];

fn normalize_country(raw: &str) -> String {
    let trimmed = raw.trim();
    let upper = trimmed.to_ascii_uppercase();
    COUNTRY_ALIASES
        .iter()
        .find(|(alias, _)| *alias == upper)
        .map(|(_, code)| (*code).to_string())
        .unwrap_or_else(|| trimmed.to_string())
}

/// Reads `SalesFormsPrefs.CustomField`. QBO nests it twice (a list of groups, each with its own
/// `CustomField` list: one group of `UseSalesCustomN` flags, one of `SalesCustomNameN` labels);
/// some samples have a single flat list. Both are read, matching entries by name, not position.
fn custom_fields(prefs: &Map<String, Value>) -> Vec<CustomFieldDefinition> {
    let mut entries = Vec::new();
    for item in value_at(prefs, &["SalesFormsPrefs", "CustomField"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match item.get("CustomField").and_then(Value::as_array) {
            Some(group) => entries.extend(group.iter()),
            None => entries.push(item),
        }
    }
    let mut enabled = [false; CUSTOM_FIELD_SLOTS as usize];
    let mut names: [Option<String>; CUSTOM_FIELD_SLOTS as usize] = Default::default();
    for entry in entries {
        let Some(name) = entry.get("Name").and_then(Value::as_str) else {
            continue;
        };
        let name = name.strip_prefix("SalesFormsPrefs.").unwrap_or(name);
        if let Some(index) = slot_index(name, "UseSalesCustom") {
            enabled[index] = entry.get("BooleanValue").and_then(as_bool).unwrap_or(false);
        } else if let Some(index) = slot_index(name, "SalesCustomName") {
            names[index] = entry
                .get("StringValue")
                .and_then(non_empty_str)
                .map(str::to_string);
        }
    }
    (1..=CUSTOM_FIELD_SLOTS)
        .zip(enabled.into_iter().zip(names))
        .filter(|(_, (enabled, name))| *enabled || name.is_some())
        .map(|(slot, (enabled, name))| CustomFieldDefinition {
            definition_id: slot.to_string(),
            name: name.unwrap_or_default(),
            enabled,
            string_type: true,
        })
        .collect()
}

/// `UseSalesCustom2` → index 1; slots outside 1..=3 are ignored.
fn slot_index(name: &str, prefix: &str) -> Option<usize> {
    let slot: u8 = name.strip_prefix(prefix)?.parse().ok()?;
    (1..=CUSTOM_FIELD_SLOTS)
        .contains(&slot)
        .then(|| usize::from(slot - 1))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningCode {
    CustomTransactionNumbers,
    BooksNotClosed,
    OutsideUs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightWarning {
    pub code: WarningCode,
    /// What is wrong, what it means for the sync and what to do about it.
    pub message: String,
}

/// The C3 warnings shown after connecting, in a fixed order. None of them blocks the connection.
pub fn preflight_warnings(profile: &CompanyProfile) -> Vec<PreflightWarning> {
    let mut warnings = Vec::new();
    if profile.custom_txn_numbers {
        warnings.push(PreflightWarning {
            code: WarningCode::CustomTransactionNumbers,
            message: "Custom transaction numbers are turned on in QuickBooks, so QuickBooks will \
                      not number invoices synced from HubSpot: each must bring its own number, and \
                      one that is already used in QuickBooks is refused as a duplicate. Turn custom \
                      transaction numbers off (Settings > Account and settings > Sales) or keep \
                      HubSpot invoice numbers from overlapping QuickBooks ones."
                .to_string(),
        });
    }
    if profile.book_close_date.is_none() {
        warnings.push(PreflightWarning {
            code: WarningCode::BooksNotClosed,
            message: "The books are not closed in QuickBooks (no closing date is set), so changes \
                      synced from HubSpot can create or alter transactions in periods you have \
                      already reported on. Set a closing date (Settings > Account and settings > \
                      Advanced > Close the books) to protect past periods."
                .to_string(),
        });
    }
    if !profile.us_edition {
        let place = if profile.country.is_empty() {
            "in a country QuickBooks did not report, so it is treated as outside the US".to_string()
        } else {
            format!("in {}, outside the US", profile.country)
        };
        warnings.push(PreflightWarning {
            code: WarningCode::OutsideUs,
            message: format!(
                "This QuickBooks company is {place}. QuickBooks requires a sales tax (VAT/GST) \
                 rate on every invoice there and HubSpot invoices carry no tax, so invoices cannot \
                 sync from HubSpot to QuickBooks; invoices from QuickBooks to HubSpot, contacts \
                 and products sync normally."
            ),
        });
    }
    warnings
}

/// C2: whether the company is a QBO sandbox company, which production refuses unless sandbox
/// mode is on.
///
/// The authoritative signal is that the deployment talks to Intuit's sandbox API
/// (`environment_is_sandbox`): only sandbox companies live there. The company name is a
/// heuristic on top: Intuit names sandbox companies "Sandbox Company_US_1" and the like, so a
/// name starting with "Sandbox Company" (any case) counts too. A real company may be renamed to
/// look like one, and a sandbox company renamed away from it; the heuristic errs towards refusing.
pub fn is_sandbox_company(profile: &CompanyProfile, environment_is_sandbox: bool) -> bool {
    environment_is_sandbox
        || profile
            .company_name
            .trim_start()
            .get(..SANDBOX_NAME_PREFIX.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(SANDBOX_NAME_PREFIX))
}

// Dates stored as `YYYY-MM-DD` text (the `time` crate's own serde form is a tuple).
time::serde::format_description!(pub(crate) ymd, Date, "[year]-[month]-[day]");

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::date;

    /// The simulator's CompanyInfo (as built by the sandbox seed, stored fields added).
    fn simulator_company(country: &str, addr_country: &str) -> Value {
        json!({
            "CompanyName": "Sandbox Company",
            "LegalName": "Sandbox Company",
            "Country": country,
            "CompanyAddr": {"Id": "1", "Line1": "1 Sandbox Way", "City": "Mountain View", "Country": addr_country},
            "Email": {"Address": "owner@example.com"},
            "FiscalYearStartMonth": "January",
            "CompanyStartDate": "2020-01-01",
            "SupportedLanguages": "en",
            "DefaultTimeZone": "America/Los_Angeles",
            "NameValue": [
                {"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
                {"Name": "SubscriptionStatus", "Value": "PAID"},
                {"Name": "RealmId", "Value": "9130350000000001"}
            ],
            "Id": "1", "SyncToken": "0", "domain": "QBO", "sparse": false
        })
    }

    /// The simulator's Preferences: flags for all three slots, labels for the named ones.
    fn simulator_preferences(labels: &[&str], custom_txn: bool, close: Option<&str>) -> Value {
        let flags: Vec<Value> = (1..=3)
            .map(|slot| json!({"Name": format!("SalesFormsPrefs.UseSalesCustom{slot}"), "Type": "BooleanType", "BooleanValue": slot <= labels.len()}))
            .collect();
        let names: Vec<Value> = labels
            .iter()
            .enumerate()
            .map(|(i, label)| json!({"Name": format!("SalesFormsPrefs.SalesCustomName{}", i + 1), "Type": "StringType", "StringValue": label}))
            .collect();
        let mut accounting = json!({"TrackDepartments": false, "CustomerTerminology": "Customers"});
        if let Some(close) = close {
            accounting["BookCloseDate"] = json!(close);
        }
        json!({
            "AccountingInfoPrefs": accounting,
            "SalesFormsPrefs": {
                "CustomField": [{"CustomField": flags}, {"CustomField": names}],
                "CustomTxnNumbers": custom_txn,
                "DefaultTerms": {"value": "3"}
            },
            "TaxPrefs": {"UsingSalesTax": true, "PartnerTaxEnabled": true},
            "CurrencyPrefs": {"HomeCurrency": {"value": "USD"}, "MultiCurrencyEnabled": false},
            "Id": "1", "SyncToken": "0"
        })
    }

    /// Intuit's API-reference sample (real shape): envelope, 2-letter Country, address without
    /// ISO-3, booleans, nested custom fields with flags listed out of order.
    fn reference_company() -> Value {
        json!({"CompanyInfo": {
            "CompanyName": "Larry's Bakery", "LegalName": "Larry's Bakery",
            "CompanyAddr": {"Id": "1", "Line1": "123 Sierra Way", "City": "San Pablo", "Country": "US", "CountrySubDivisionCode": "CA", "PostalCode": "87999"},
            "SupportedLanguages": "en", "Country": "US",
            "NameValue": [
                {"Name": "NeoEnabled", "Value": "true"},
                {"Name": "IndustryType", "Value": "Bread and Bakery Product Manufacturing"},
                {"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
                {"Name": "SubscriptionStatus", "Value": "PAID"}
            ],
            "domain": "QBO", "sparse": false, "Id": "1", "SyncToken": "4",
            "MetaData": {"CreateTime": "2017-05-07T12:00:00-07:00", "LastUpdatedTime": "2017-05-08T12:00:00-07:00"}
        }, "time": "2017-05-09T10:31:02.227-07:00"})
    }

    fn reference_preferences() -> Value {
        json!({"Preferences": {
            "AccountingInfoPrefs": {"TrackDepartments": true, "DepartmentTerminology": "Department", "ClassTrackingPerTxn": false, "ClassTrackingPerTxnLine": true, "CustomerTerminology": "Customers", "BookCloseDate": "2016-12-31"},
            "SalesFormsPrefs": {
                "CustomField": [
                    {"CustomField": [
                        {"Name": "SalesFormsPrefs.UseSalesCustom3", "Type": "BooleanType", "BooleanValue": false},
                        {"Name": "SalesFormsPrefs.UseSalesCustom2", "Type": "BooleanType", "BooleanValue": false},
                        {"Name": "SalesFormsPrefs.UseSalesCustom1", "Type": "BooleanType", "BooleanValue": true}
                    ]},
                    {"CustomField": [
                        {"Name": "SalesFormsPrefs.SalesCustomName1", "Type": "StringType", "StringValue": "Crew #"}
                    ]}
                ],
                "CustomTxnNumbers": true, "AllowDeposit": false, "AllowDiscount": true
            },
            "CurrencyPrefs": {"HomeCurrency": {"value": "USD"}, "MultiCurrencyEnabled": true},
            "domain": "QBO", "sparse": false, "Id": "1", "SyncToken": "6"
        }, "time": "2017-05-09T10:31:03.000-07:00"})
    }

    fn field(id: &str, name: &str, enabled: bool) -> CustomFieldDefinition {
        CustomFieldDefinition {
            definition_id: id.into(),
            name: name.into(),
            enabled,
            string_type: true,
        }
    }

    #[test]
    fn reads_the_shapes_qbo_and_the_simulator_serve() {
        let bare_info = reference_company()["CompanyInfo"].clone();
        let bare_prefs = reference_preferences()["Preferences"].clone();
        let query_info =
            json!({"QueryResponse": {"CompanyInfo": [bare_info.clone()], "maxResults": 1}});
        let query_prefs = json!({"QueryResponse": {"Preferences": [bare_prefs.clone()]}});
        let reference = CompanyProfile {
            company_name: "Larry's Bakery".into(),
            country: "US".into(),
            us_edition: true,
            custom_txn_numbers: true,
            book_close_date: Some(date!(2016 - 12 - 31)),
            custom_fields: vec![field("1", "Crew #", true)],
            home_currency: Some("USD".into()),
            multi_currency: true,
            offering: Some("QuickBooks Online Plus".into()),
        };
        let simulator_us = CompanyProfile {
            company_name: "Sandbox Company".into(),
            country: "US".into(),
            us_edition: true,
            custom_txn_numbers: false,
            book_close_date: None,
            custom_fields: vec![field("1", "Crew #", true), field("2", "PO", true)],
            home_currency: Some("USD".into()),
            multi_currency: false,
            offering: Some("QuickBooks Online Plus".into()),
        };
        let cases: Vec<(&str, Value, Value, CompanyProfile)> = vec![
            (
                "reference envelopes",
                reference_company(),
                reference_preferences(),
                reference.clone(),
            ),
            (
                "reference bare objects",
                bare_info.clone(),
                bare_prefs.clone(),
                reference.clone(),
            ),
            (
                "reference query responses",
                query_info,
                query_prefs,
                reference.clone(),
            ),
            (
                "preferences as a one-element list",
                reference_company(),
                json!({"Preferences": [bare_prefs]}),
                reference,
            ),
            (
                "simulator, US",
                json!({"CompanyInfo": simulator_company("US", "USA"), "time": "2026-01-01T00:00:00-08:00"}),
                json!({"Preferences": simulator_preferences(&["Crew #", "PO"], false, None)}),
                simulator_us.clone(),
            ),
            (
                "simulator, bare",
                simulator_company("US", "USA"),
                simulator_preferences(&["Crew #", "PO"], false, None),
                simulator_us,
            ),
            (
                "simulator, GB with a close date and no custom fields",
                simulator_company("GB", "GB"),
                simulator_preferences(&[], true, Some("2025-12-31")),
                CompanyProfile {
                    company_name: "Sandbox Company".into(),
                    country: "GB".into(),
                    us_edition: false,
                    custom_txn_numbers: true,
                    book_close_date: Some(date!(2025 - 12 - 31)),
                    custom_fields: vec![],
                    home_currency: Some("USD".into()),
                    multi_currency: false,
                    offering: Some("QuickBooks Online Plus".into()),
                },
            ),
        ];
        for (name, info, prefs, expected) in cases {
            assert_eq!(read_profile(&info, &prefs), Ok(expected), "{name}");
        }
    }

    #[test]
    fn country_falls_back_to_addresses_and_reduces_iso3() {
        let cases = [
            // (CompanyInfo, expected country, expected US edition)
            (
                json!({"CompanyName": "A", "CompanyAddr": {"Country": "USA"}}),
                "US",
                true,
            ),
            (
                json!({"CompanyName": "A", "Country": "", "CompanyAddr": {"Country": "GBR"}}),
                "GB",
                false,
            ),
            (
                json!({"CompanyName": "A", "LegalAddr": {"Country": "United States"}}),
                "US",
                true,
            ),
            (
                json!({"CompanyName": "A", "Country": "CA", "CompanyAddr": {"Country": "USA"}}),
                "CA",
                false,
            ),
            (json!({"CompanyName": "A", "Country": "ZA"}), "ZA", false),
            (json!({"CompanyName": "A"}), "", false),
        ];
        for (info, country, us) in cases {
            let profile = read_profile(&info, &Value::Null).unwrap();
            assert_eq!(profile.country, country, "{info}");
            assert_eq!(profile.us_edition, us, "{info}");
        }
    }

    #[test]
    fn missing_optional_parts_take_defaults() {
        let cases = [
            ("no preferences", json!(null)),
            ("empty preferences", json!({})),
            ("empty envelope", json!({"Preferences": {}, "time": "x"})),
            (
                "empty query response",
                json!({"QueryResponse": {}, "time": "x"}),
            ),
            (
                "odd types",
                json!({"SalesFormsPrefs": {"CustomField": "none", "CustomTxnNumbers": 1},
                       "AccountingInfoPrefs": {"BookCloseDate": "soon"},
                       "CurrencyPrefs": {"HomeCurrency": {}}}),
            ),
        ];
        for (name, prefs) in cases {
            let profile = read_profile(&json!({"CompanyName": "Solo"}), &prefs).unwrap();
            assert_eq!(
                profile,
                CompanyProfile {
                    company_name: "Solo".into(),
                    country: String::new(),
                    us_edition: false,
                    custom_txn_numbers: false,
                    book_close_date: None,
                    custom_fields: vec![],
                    home_currency: None,
                    multi_currency: false,
                    offering: None,
                },
                "{name}"
            );
        }
    }

    #[test]
    fn custom_fields_are_matched_by_slot_name() {
        let cases = [
            (
                "nested, out of order, slot 3 named while 2 is disabled",
                json!([
                    {"CustomField": [
                        {"Name": "SalesFormsPrefs.UseSalesCustom3", "BooleanValue": true},
                        {"Name": "SalesFormsPrefs.UseSalesCustom1", "BooleanValue": true},
                        {"Name": "SalesFormsPrefs.UseSalesCustom2", "BooleanValue": false}
                    ]},
                    {"CustomField": [
                        {"Name": "SalesFormsPrefs.SalesCustomName3", "StringValue": "Customer PO #"},
                        {"Name": "SalesFormsPrefs.SalesCustomName1", "StringValue": "Sales Rep"}
                    ]}
                ]),
                vec![
                    field("1", "Sales Rep", true),
                    field("3", "Customer PO #", true),
                ],
            ),
            (
                "named but switched off",
                json!([{"CustomField": [
                    {"Name": "SalesFormsPrefs.UseSalesCustom2", "BooleanValue": false},
                    {"Name": "SalesFormsPrefs.SalesCustomName2", "StringValue": "Old label"}
                ]}]),
                vec![field("2", "Old label", false)],
            ),
            (
                "flat list, booleans as strings",
                json!([
                    {"Name": "SalesFormsPrefs.UseSalesCustom1", "BooleanValue": "true"},
                    {"Name": "SalesFormsPrefs.SalesCustomName1", "StringValue": "Unit"},
                    {"Name": "SalesFormsPrefs.UseSalesCustom2", "BooleanValue": "true"}
                ]),
                vec![field("1", "Unit", true), field("2", "", true)],
            ),
            (
                "slots beyond three are ignored",
                json!([{"CustomField": [
                    {"Name": "SalesFormsPrefs.UseSalesCustom4", "BooleanValue": true},
                    {"Name": "SalesFormsPrefs.SalesCustomName4", "StringValue": "Four"}
                ]}]),
                vec![],
            ),
        ];
        for (name, list, expected) in cases {
            let prefs = json!({"SalesFormsPrefs": {"CustomField": list}});
            let profile = read_profile(&json!({"CompanyName": "A"}), &prefs).unwrap();
            assert_eq!(profile.custom_fields, expected, "{name}");
        }
    }

    #[test]
    fn refuses_responses_without_company_info() {
        let fault = json!({"Fault": {"Error": [{"Message": "message=AuthenticationFailed", "Detail": "Token expired", "code": "3200"}], "type": "AuthenticationFault"}});
        let cases = [
            (json!(null), ProfileError::MissingCompanyInfo),
            (json!({"time": "x"}), ProfileError::MissingCompanyInfo),
            (
                json!({"QueryResponse": {"CompanyInfo": []}}),
                ProfileError::MissingCompanyInfo,
            ),
            (
                json!("CompanyInfo"),
                ProfileError::Malformed(
                    "company info response: expected a JSON object, got a string".into(),
                ),
            ),
            (
                json!({"CompanyInfo": 7}),
                ProfileError::Malformed("company info response: CompanyInfo is a number".into()),
            ),
            (
                fault.clone(),
                ProfileError::Malformed(
                    "company info response: it is an error (message=AuthenticationFailed: Token expired)"
                        .into(),
                ),
            ),
        ];
        for (info, expected) in cases {
            assert_eq!(read_profile(&info, &Value::Null), Err(expected), "{info}");
        }
        let err = read_profile(&reference_company(), &fault).unwrap_err();
        assert!(err.to_string().contains("preferences"), "{err}");
    }

    fn profile(custom_txn: bool, closed: bool, country: &str) -> CompanyProfile {
        CompanyProfile {
            company_name: "Acme".into(),
            country: country.into(),
            us_edition: country == "US",
            custom_txn_numbers: custom_txn,
            book_close_date: closed.then_some(date!(2025 - 12 - 31)),
            custom_fields: vec![],
            home_currency: None,
            multi_currency: false,
            offering: None,
        }
    }

    #[test]
    fn warnings_follow_the_profile() {
        use WarningCode::*;
        let cases = [
            (profile(false, true, "US"), vec![]),
            (profile(true, true, "US"), vec![CustomTransactionNumbers]),
            (profile(false, false, "US"), vec![BooksNotClosed]),
            (profile(false, true, "GB"), vec![OutsideUs]),
            (profile(false, true, ""), vec![OutsideUs]),
            (
                profile(true, false, "CA"),
                vec![CustomTransactionNumbers, BooksNotClosed, OutsideUs],
            ),
        ];
        for (profile, expected) in cases {
            let warnings = preflight_warnings(&profile);
            let codes: Vec<_> = warnings.iter().map(|w| w.code).collect();
            assert_eq!(codes, expected, "{profile:?}");
            for warning in warnings {
                assert!(warning.message.ends_with('.'), "{}", warning.message);
            }
        }
        let outside = preflight_warnings(&profile(false, true, "GB"));
        assert!(outside[0].message.contains("in GB"));
        assert!(outside[0].message.contains("from HubSpot to QuickBooks"));
        let unknown = preflight_warnings(&profile(false, true, ""));
        assert!(unknown[0].message.contains("did not report"));
    }

    #[test]
    fn warning_codes_serialize_in_snake_case() {
        let json = serde_json::to_value(WarningCode::OutsideUs).unwrap();
        assert_eq!(json, json!("outside_us"));
    }

    #[test]
    fn sandbox_companies_are_recognised() {
        let named = |name: &str| CompanyProfile {
            company_name: name.into(),
            ..profile(false, true, "US")
        };
        let cases = [
            ("Sandbox Company_US_1", false, true),
            ("sandbox company_GB_2", false, true),
            ("  Sandbox Company", false, true),
            ("Acme Ltd", false, false),
            ("My Sandbox Company", false, false),
            ("Acme Ltd", true, true),
            ("", false, false),
        ];
        for (name, environment, expected) in cases {
            assert_eq!(
                is_sandbox_company(&named(name), environment),
                expected,
                "{name:?} in sandbox environment: {environment}"
            );
        }
    }

    #[test]
    fn profiles_round_trip_with_text_dates() {
        let profile = profile(true, true, "US");
        let json = serde_json::to_value(&profile).unwrap();
        assert_eq!(json["book_close_date"], json!("2025-12-31"));
        assert_eq!(
            serde_json::from_value::<CompanyProfile>(json).unwrap(),
            profile
        );
    }
}
