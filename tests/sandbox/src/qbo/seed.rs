//! Seed files: the companies (realms) a sandbox starts with and their entities.
//!
//! ```json
//! {"realms": [{"realm_id": "9130350000000001",
//!              "company": {"company_name": "Acme", "country": "US", "custom_txn_numbers": false},
//!              "entities": {"Customer": [{"DisplayName": "Bob"}], "Invoice": [ … ]}}]}
//! ```
//! Unless `base_data` is false, every realm also gets a small chart of accounts, payment terms,
//! tax codes and two service items with the fixed Ids below, so seeds can reference them.

use super::entity::EntityKind;
use super::fault::Fault;
use super::ops;
use super::rules::WriteCtx;
use super::store::{QboState, Realm};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use time::{OffsetDateTime, UtcOffset};

pub const DEFAULT_US_REALM: &str = "9130350000000001";
pub const DEFAULT_GB_REALM: &str = "9130350000000002";

/// Base-data Ids (per entity type) that seeds may reference.
pub mod ids {
    pub const ACCOUNT_CHECKING: u64 = 1;
    pub const ACCOUNT_SAVINGS: u64 = 2;
    pub const ACCOUNT_UNDEPOSITED_FUNDS: u64 = 3;
    pub const ACCOUNT_RECEIVABLE: u64 = 4;
    pub const ACCOUNT_SALES_INCOME: u64 = 5;
    pub const ACCOUNT_SERVICES_INCOME: u64 = 6;
    pub const ACCOUNT_OFFICE_EXPENSES: u64 = 7;
    pub const ACCOUNT_MEALS: u64 = 8;
    pub const ACCOUNT_CREDIT_CARD: u64 = 9;
    pub const ACCOUNT_PAYABLE: u64 = 10;
    pub const ACCOUNT_COST_OF_GOODS: u64 = 11;
    pub const ACCOUNT_INVENTORY_ASSET: u64 = 12;
    pub const TERM_DUE_ON_RECEIPT: u64 = 1;
    pub const TERM_NET_15: u64 = 2;
    pub const TERM_NET_30: u64 = 3;
    pub const TERM_NET_60: u64 = 4;
    /// Non-US standard-rate tax code; US companies also have it (as a state sales tax code).
    pub const TAX_CODE_STANDARD: u64 = 2;
    pub const TAX_CODE_EXEMPT: u64 = 3;
    pub const TAX_CODE_ZERO: u64 = 4;
    pub const PAYMENT_METHOD_CASH: u64 = 1;
    pub const PAYMENT_METHOD_CHECK: u64 = 2;
    pub const PAYMENT_METHOD_CREDIT_CARD: u64 = 3;
    pub const ITEM_SERVICES: u64 = 1;
    pub const ITEM_HOURS: u64 = 2;
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Seed {
    #[serde(default)]
    pub realms: Vec<RealmSeed>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct RealmSeed {
    pub realm_id: String,
    #[serde(default)]
    pub company: CompanySettings,
    #[serde(default = "yes")]
    pub base_data: bool,
    /// Entity name → objects as QBO would accept them on create (`Id`/`MetaData` may be given).
    #[serde(default)]
    pub entities: BTreeMap<String, Vec<Value>>,
}

fn yes() -> bool {
    true
}

/// CompanyInfo/Preferences knobs that change the simulator's behaviour.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct CompanySettings {
    #[serde(default = "default_company_name")]
    pub company_name: String,
    /// `US` for a US company; anything else (`GB`, `CA`, `AU` …) uses the non-US tax model.
    #[serde(default = "default_country")]
    pub country: String,
    #[serde(default)]
    pub custom_txn_numbers: bool,
    /// `YYYY-MM-DD`; transactions on or before it are refused (6210).
    #[serde(default)]
    pub book_close_date: Option<String>,
    /// Labels of the sales-form custom string fields (the API exposes the first three).
    #[serde(default)]
    pub custom_fields: Vec<String>,
    /// ISO currency code; default from the country.
    #[serde(default)]
    pub home_currency: Option<String>,
}

fn default_company_name() -> String {
    "Sandbox Company".into()
}

fn default_country() -> String {
    "US".into()
}

impl Default for CompanySettings {
    fn default() -> Self {
        Self {
            company_name: default_company_name(),
            country: default_country(),
            custom_txn_numbers: false,
            book_close_date: None,
            custom_fields: Vec::new(),
            home_currency: None,
        }
    }
}

impl RealmSeed {
    pub fn new(realm_id: impl Into<String>, company: CompanySettings) -> Self {
        Self {
            realm_id: realm_id.into(),
            company,
            base_data: true,
            entities: BTreeMap::new(),
        }
    }
}

/// Two companies: a US one (first, so OAuth picks it by default) and a UK one.
pub fn default_seed() -> Seed {
    Seed {
        realms: vec![
            RealmSeed::new(
                DEFAULT_US_REALM,
                CompanySettings {
                    company_name: "Sandbox Company US".into(),
                    custom_fields: vec!["Crew #".into()],
                    ..CompanySettings::default()
                },
            ),
            RealmSeed::new(
                DEFAULT_GB_REALM,
                CompanySettings {
                    company_name: "Sandbox Company UK".into(),
                    country: "GB".into(),
                    ..CompanySettings::default()
                },
            ),
        ],
    }
}

/// Replaces all realms in `state` with those of `seed` (tokens are kept).
pub fn load(
    state: &mut QboState,
    seed: &Seed,
    now: OffsetDateTime,
    offset: UtcOffset,
) -> Result<Vec<String>, String> {
    let mut realms = Vec::new();
    for realm_seed in &seed.realms {
        realms.push(build_realm(realm_seed, now, offset)?);
    }
    let oauth = std::mem::take(&mut state.oauth);
    state.clear();
    state.oauth = oauth;
    let ids = realms.iter().map(|r| r.id.clone()).collect();
    for realm in realms {
        state.insert_realm(realm);
    }
    Ok(ids)
}

/// Builds one realm from its seed.
pub fn build_realm(
    seed: &RealmSeed,
    now: OffsetDateTime,
    offset: UtcOffset,
) -> Result<Realm, String> {
    if seed.realm_id.is_empty() || !seed.realm_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("realm_id must be digits, got {:?}", seed.realm_id));
    }
    let ctx = WriteCtx {
        now,
        offset,
        allow_duplicate_doc_number: false,
        seeding: true,
    };
    let mut realm = Realm::new(seed.realm_id.clone());
    let meta = json!({"CreateTime": super::format::meta_time(now, offset), "LastUpdatedTime": super::format::meta_time(now, offset)});
    let mut company = company_info(&seed.realm_id, &seed.company);
    let mut prefs = preferences(&seed.company);
    for (value, kind) in [
        (&mut company, EntityKind::CompanyInfo),
        (&mut prefs, EntityKind::Preferences),
    ] {
        if let Some(map) = value.as_object_mut() {
            map.insert("Id".into(), Value::String("1".into()));
            map.insert("SyncToken".into(), Value::String("0".into()));
            map.insert("MetaData".into(), meta.clone());
            map.insert("domain".into(), Value::String("QBO".into()));
            map.insert("sparse".into(), Value::Bool(false));
        }
        realm.put(kind, 1, value.clone(), now);
    }
    let mut entities: Vec<(EntityKind, Value)> = Vec::new();
    if seed.base_data {
        entities.extend(base_data(&seed.company));
    }
    for (name, objects) in &seed.entities {
        let kind = EntityKind::from_name(name)
            .ok_or_else(|| format!("unknown entity {name:?} in seed"))?;
        if kind.is_singleton() {
            return Err(format!("{name} comes from `company`, not `entities`"));
        }
        entities.extend(objects.iter().map(|o| (kind, o.clone())));
    }
    // Referenced entities first.
    entities.sort_by_key(|(kind, _)| EntityKind::ALL.iter().position(|k| k == kind));
    for (kind, object) in entities {
        import(&mut realm, &ctx, kind, object).map_err(|f| {
            let e = f.errors.first();
            format!(
                "realm {}: cannot load {}: {} {}",
                seed.realm_id,
                kind.name(),
                e.map(|e| e.code.as_str()).unwrap_or(""),
                e.map(|e| e.detail.as_str()).unwrap_or("")
            )
        })?;
    }
    ops::settle_balances(&mut realm);
    realm.changes.clear();
    Ok(realm)
}

/// Loads one seed object through the normal rules (TaxCodes, which the API cannot create, are
/// stored as given).
fn import(realm: &mut Realm, ctx: &WriteCtx, kind: EntityKind, object: Value) -> Result<(), Fault> {
    if kind == EntityKind::TaxCode {
        let id = match object.get("Id").and_then(super::store::ref_id_of) {
            Some(id) => id,
            None => realm.allocate_id(kind),
        };
        let mut value = object;
        if let Some(map) = value.as_object_mut() {
            map.insert("Id".into(), Value::String(id.to_string()));
            map.entry("SyncToken").or_insert(Value::String("0".into()));
            map.entry("Active").or_insert(Value::Bool(true));
            map.entry("domain").or_insert(Value::String("QBO".into()));
            map.entry("sparse").or_insert(Value::Bool(false));
            let t = super::format::meta_time(ctx.now, ctx.offset);
            map.entry("MetaData")
                .or_insert(json!({"CreateTime": t, "LastUpdatedTime": t}));
        }
        realm.put(kind, id, value, ctx.now);
        return Ok(());
    }
    ops::create(realm, ctx, kind, object).map(|_| ())
}

fn country_currency(country: &str) -> &'static str {
    match country {
        "GB" | "UK" => "GBP",
        "CA" => "CAD",
        "AU" => "AUD",
        "FR" | "DE" | "IE" => "EUR",
        "IN" => "INR",
        _ => "USD",
    }
}

pub fn company_info(realm_id: &str, c: &CompanySettings) -> Value {
    let country = c.country.clone();
    json!({
        "CompanyName": c.company_name,
        "LegalName": c.company_name,
        "Country": country,
        "CompanyAddr": {"Id": "1", "Line1": "1 Sandbox Way", "City": "Mountain View", "Country": if country == "US" { "USA".to_string() } else { country.clone() }},
        "Email": {"Address": "owner@example.com"},
        "FiscalYearStartMonth": "January",
        "CompanyStartDate": "2020-01-01",
        "SupportedLanguages": "en",
        "DefaultTimeZone": "America/Los_Angeles",
        "NameValue": [
            {"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
            {"Name": "SubscriptionStatus", "Value": "PAID"},
            {"Name": "RealmId", "Value": realm_id}
        ]
    })
}

pub fn preferences(c: &CompanySettings) -> Value {
    let currency = c
        .home_currency
        .clone()
        .unwrap_or_else(|| country_currency(&c.country).to_string());
    let mut use_flags = Vec::new();
    let mut names = Vec::new();
    for slot in 1..=3 {
        let label = c.custom_fields.get(slot - 1);
        use_flags.push(json!({"Name": format!("SalesFormsPrefs.UseSalesCustom{slot}"), "Type": "BooleanType", "BooleanValue": label.is_some()}));
        if let Some(label) = label {
            names.push(json!({"Name": format!("SalesFormsPrefs.SalesCustomName{slot}"), "Type": "StringType", "StringValue": label}));
        }
    }
    let mut accounting = json!({"TrackDepartments": false, "ClassTrackingPerTxn": false, "CustomerTerminology": "Customers"});
    if let (Some(date), Some(map)) = (&c.book_close_date, accounting.as_object_mut()) {
        map.insert("BookCloseDate".into(), Value::String(date.clone()));
    }
    json!({
        "AccountingInfoPrefs": accounting,
        "ProductAndServicesPrefs": {"ForSales": true, "ForPurchase": true, "QuantityWithPriceAndRate": true, "QuantityOnHand": true},
        "SalesFormsPrefs": {
            "CustomField": [{"CustomField": use_flags}, {"CustomField": names}],
            "CustomTxnNumbers": c.custom_txn_numbers,
            "AllowDeposit": false, "AllowDiscount": true, "AllowEstimates": true, "AllowShipping": false,
            "AllowServiceDate": false, "AutoApplyCredit": true, "AutoApplyPayments": true,
            "DefaultTerms": {"value": super::seed::ids::TERM_NET_30.to_string()},
            "UsingPriceLevels": false
        },
        "VendorAndPurchasesPrefs": {"TrackingByCustomer": true, "BillableExpenseTracking": true},
        "TaxPrefs": {"UsingSalesTax": true, "PartnerTaxEnabled": c.country == "US"},
        "CurrencyPrefs": {"HomeCurrency": {"value": currency}, "MultiCurrencyEnabled": false},
        "OtherPrefs": {"NameValue": [{"Name": "SalesFormsPrefs.DefaultCustomerMessage", "Value": "Thank you for your business."}]}
    })
}

/// Accounts, terms, tax codes and two service items with the fixed Ids in [`ids`].
pub fn base_data(c: &CompanySettings) -> Vec<(EntityKind, Value)> {
    use ids::*;
    let account = |id: u64, name: &str, account_type: &str, sub: &str| {
        (
            EntityKind::Account,
            json!({"Id": id.to_string(), "Name": name, "AccountType": account_type, "AccountSubType": sub}),
        )
    };
    let term = |id: u64, name: &str, days: i64| {
        (
            EntityKind::Term,
            json!({"Id": id.to_string(), "Name": name, "DueDays": days}),
        )
    };
    let payment_method = |id: u64, name: &str, kind: &str| {
        (
            EntityKind::PaymentMethod,
            json!({"Id": id.to_string(), "Name": name, "Type": kind, "Active": true}),
        )
    };
    let us = c.country == "US";
    let (standard, exempt, zero) = if us {
        ("California", "Out of state", "Zero-rated")
    } else {
        ("20.0% S", "Exempt", "0.0% Z")
    };
    let tax_code = |id: u64, name: &str, taxable: bool| {
        (
            EntityKind::TaxCode,
            json!({"Id": id.to_string(), "Name": name, "Description": name, "Taxable": taxable, "TaxGroup": false,
                   "SalesTaxRateList": {"TaxRateDetail": []}, "PurchaseTaxRateList": {"TaxRateDetail": []}}),
        )
    };
    let mut items = vec![
        (
            EntityKind::Item,
            json!({"Id": ITEM_SERVICES.to_string(), "Name": "Services", "Type": "Service", "UnitPrice": 0,
                   "IncomeAccountRef": {"value": ACCOUNT_SERVICES_INCOME.to_string()}}),
        ),
        (
            EntityKind::Item,
            json!({"Id": ITEM_HOURS.to_string(), "Name": "Hours", "Type": "Service", "UnitPrice": 100,
                   "IncomeAccountRef": {"value": ACCOUNT_SERVICES_INCOME.to_string()}}),
        ),
    ];
    if !us {
        for (_, item) in items.iter_mut() {
            if let Some(map) = item.as_object_mut() {
                map.insert(
                    "SalesTaxCodeRef".into(),
                    json!({"value": TAX_CODE_STANDARD.to_string()}),
                );
            }
        }
    }
    let mut all = vec![
        account(ACCOUNT_CHECKING, "Checking", "Bank", "Checking"),
        account(ACCOUNT_SAVINGS, "Savings", "Bank", "Savings"),
        account(
            ACCOUNT_UNDEPOSITED_FUNDS,
            "Undeposited Funds",
            "Other Current Asset",
            "UndepositedFunds",
        ),
        account(
            ACCOUNT_RECEIVABLE,
            "Accounts Receivable (A/R)",
            "Accounts Receivable",
            "AccountsReceivable",
        ),
        account(
            ACCOUNT_SALES_INCOME,
            "Sales of Product Income",
            "Income",
            "SalesOfProductIncome",
        ),
        account(
            ACCOUNT_SERVICES_INCOME,
            "Services",
            "Income",
            "ServiceFeeIncome",
        ),
        account(
            ACCOUNT_OFFICE_EXPENSES,
            "Office Expenses",
            "Expense",
            "OfficeGeneralAdministrativeExpenses",
        ),
        account(
            ACCOUNT_MEALS,
            "Meals and Entertainment",
            "Expense",
            "EntertainmentMeals",
        ),
        account(ACCOUNT_CREDIT_CARD, "Visa", "Credit Card", "CreditCard"),
        account(
            ACCOUNT_PAYABLE,
            "Accounts Payable (A/P)",
            "Accounts Payable",
            "AccountsPayable",
        ),
        account(
            ACCOUNT_COST_OF_GOODS,
            "Cost of Goods Sold",
            "Cost of Goods Sold",
            "SuppliesMaterialsCogs",
        ),
        account(
            ACCOUNT_INVENTORY_ASSET,
            "Inventory Asset",
            "Other Current Asset",
            "Inventory",
        ),
        term(TERM_DUE_ON_RECEIPT, "Due on receipt", 0),
        term(TERM_NET_15, "Net 15", 15),
        term(TERM_NET_30, "Net 30", 30),
        term(TERM_NET_60, "Net 60", 60),
        payment_method(PAYMENT_METHOD_CASH, "Cash", "NON_CREDIT_CARD"),
        payment_method(PAYMENT_METHOD_CHECK, "Check", "NON_CREDIT_CARD"),
        payment_method(PAYMENT_METHOD_CREDIT_CARD, "Credit Card", "CREDIT_CARD"),
        tax_code(TAX_CODE_STANDARD, standard, true),
        tax_code(TAX_CODE_EXEMPT, exempt, false),
        tax_code(TAX_CODE_ZERO, zero, true),
    ];
    all.append(&mut items);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_seed_loads() {
        let mut state = QboState::default();
        let ids = load(
            &mut state,
            &default_seed(),
            OffsetDateTime::now_utc(),
            UtcOffset::UTC,
        );
        assert_eq!(
            ids.ok(),
            Some(vec![
                DEFAULT_US_REALM.to_string(),
                DEFAULT_GB_REALM.to_string()
            ])
        );
        let us = state.realm(DEFAULT_US_REALM);
        assert!(us.is_some_and(|r| r.is_us() && r.count(EntityKind::Account) == 12));
        let gb = state.realm(DEFAULT_GB_REALM);
        assert!(gb.is_some_and(|r| !r.is_us() && r.home_currency() == "GBP"));
    }
}
