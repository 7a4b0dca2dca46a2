//! Name-list rules: Customer/Vendor/Employee (shared DisplayName namespace), Item, Account, Term.

use super::{currency_ref, default_field, resolve_optional, text, Object};
use crate::qbo::entity::EntityKind;
use crate::qbo::fault::Fault;
use crate::qbo::format::money;
use crate::qbo::store::{amount, Realm};
use rust_decimal::Decimal;
use serde_json::Value;

const NAME_PARTS: [&str; 5] = ["Title", "GivenName", "MiddleName", "FamilyName", "Suffix"];

pub fn prepare_person(
    realm: &Realm,
    kind: EntityKind,
    obj: &mut Object,
    self_id: Option<u64>,
) -> Result<(), Fault> {
    let display_name = match text(obj, "DisplayName") {
        Some(name) => name,
        None => {
            let parts: Vec<String> = NAME_PARTS.iter().filter_map(|f| text(obj, f)).collect();
            if !parts.is_empty() {
                parts.join(" ")
            } else if let Some(company) = text(obj, "CompanyName") {
                company
            } else {
                return Err(Fault::no_name());
            }
        }
    };
    // Inactive records keep their names: the namespace includes them.
    if let Some((other, _)) = realm.name_owner(kind, &display_name, self_id) {
        return Err(Fault::duplicate_name(&format!(
            "Another {} is already using this name. Please use a different name.",
            other.name().to_lowercase()
        )));
    }
    obj.insert("DisplayName".into(), Value::String(display_name.clone()));
    obj.insert(
        "FullyQualifiedName".into(),
        Value::String(display_name.clone()),
    );
    default_field(obj, "PrintOnCheckName", Value::String(display_name));
    default_field(obj, "Active", Value::Bool(true));
    match kind {
        EntityKind::Customer => {
            resolve_optional(realm, EntityKind::Term, obj, "SalesTermRef")?;
            default_field(obj, "Taxable", Value::Bool(true));
            default_field(obj, "Job", Value::Bool(false));
            default_field(obj, "BillWithParent", Value::Bool(false));
            default_field(
                obj,
                "PreferredDeliveryMethod",
                Value::String("Print".into()),
            );
            default_field(obj, "IsProject", Value::Bool(false));
            default_field(obj, "CurrencyRef", currency_ref(realm));
            let balance = self_id
                .map(|id| customer_balance(realm, id))
                .unwrap_or_default();
            obj.insert("Balance".into(), money(balance));
            obj.insert("BalanceWithJobs".into(), money(balance));
        }
        EntityKind::Vendor => {
            default_field(obj, "Vendor1099", Value::Bool(false));
            default_field(obj, "CurrencyRef", currency_ref(realm));
            obj.insert("Balance".into(), money(Decimal::ZERO));
        }
        _ => {}
    }
    Ok(())
}

/// A customer's open balance: the sum of its invoices' balances.
pub fn customer_balance(realm: &Realm, customer_id: u64) -> Decimal {
    let id = customer_id.to_string();
    realm
        .values(EntityKind::Invoice)
        .filter(|inv| {
            inv.get("CustomerRef")
                .and_then(|r| r.get("value"))
                .and_then(Value::as_str)
                == Some(id.as_str())
        })
        .map(|inv| amount(inv, "Balance"))
        .sum()
}

const ITEM_TYPES: [&str; 14] = [
    "Service",
    "NonInventory",
    "Inventory",
    "Category",
    "Group",
    "Bundle",
    "Assembly",
    "Fixed Asset",
    "Other Charge",
    "Payment",
    "Subtotal",
    "Discount",
    "Tax",
    "Tax Group",
];

pub fn prepare_item(realm: &Realm, obj: &mut Object, self_id: Option<u64>) -> Result<(), Fault> {
    let name = text(obj, "Name").ok_or_else(|| Fault::required("Name"))?;
    let clash = realm.name_owner(EntityKind::Item, &name, self_id).is_some();
    if clash {
        return Err(Fault::duplicate_name(
            "Another product or service is already using this name. Please use a different name.",
        ));
    }
    let item_type = text(obj, "Type").unwrap_or_else(|| "Service".into());
    if !ITEM_TYPES.contains(&item_type.as_str()) {
        return Err(Fault::invalid_enum("Type", &item_type));
    }
    obj.insert("Type".into(), Value::String(item_type.clone()));
    let income = resolve_optional(realm, EntityKind::Account, obj, "IncomeAccountRef")?;
    resolve_optional(realm, EntityKind::Account, obj, "ExpenseAccountRef")?;
    let asset = resolve_optional(realm, EntityKind::Account, obj, "AssetAccountRef")?;
    if matches!(item_type.as_str(), "Service" | "NonInventory" | "Inventory") && income.is_none() {
        return Err(Fault::required("IncomeAccountRef"));
    }
    if item_type == "Inventory" {
        if asset.is_none() {
            return Err(Fault::required("AssetAccountRef"));
        }
        if !obj.contains_key("QtyOnHand") {
            return Err(Fault::required("QtyOnHand"));
        }
        if text(obj, "InvStartDate").is_none() {
            return Err(Fault::required("InvStartDate"));
        }
        obj.insert("TrackQtyOnHand".into(), Value::Bool(true));
    }
    obj.insert("Name".into(), Value::String(name.clone()));
    obj.insert("FullyQualifiedName".into(), Value::String(name));
    default_field(obj, "Active", Value::Bool(true));
    default_field(obj, "Taxable", Value::Bool(false));
    default_field(obj, "UnitPrice", Value::from(0));
    default_field(obj, "PurchaseCost", Value::from(0));
    default_field(obj, "TrackQtyOnHand", Value::Bool(false));
    default_field(obj, "SubItem", Value::Bool(false));
    Ok(())
}

/// AccountType → (Classification, default AccountSubType).
fn account_type_info(account_type: &str) -> Option<(&'static str, &'static str)> {
    Some(match account_type {
        "Bank" => ("Asset", "Checking"),
        "Accounts Receivable" => ("Asset", "AccountsReceivable"),
        "Other Current Asset" => ("Asset", "OtherCurrentAssets"),
        "Fixed Asset" => ("Asset", "OtherFixedAssets"),
        "Other Asset" => ("Asset", "OtherLongTermAssets"),
        "Accounts Payable" => ("Liability", "AccountsPayable"),
        "Credit Card" => ("Liability", "CreditCard"),
        "Other Current Liability" => ("Liability", "OtherCurrentLiabilities"),
        "Long Term Liability" => ("Liability", "OtherLongTermLiabilities"),
        "Equity" => ("Equity", "OpeningBalanceEquity"),
        "Income" => ("Revenue", "SalesOfProductIncome"),
        "Cost of Goods Sold" => ("Expense", "SuppliesMaterialsCogs"),
        "Expense" => ("Expense", "OtherMiscellaneousServiceCost"),
        "Other Income" => ("Revenue", "OtherMiscellaneousIncome"),
        "Other Expense" => ("Expense", "OtherMiscellaneousExpense"),
        "Non-Posting" => ("Asset", "OtherNonPosting"),
        _ => return None,
    })
}

pub fn prepare_account(realm: &Realm, obj: &mut Object, self_id: Option<u64>) -> Result<(), Fault> {
    let name = text(obj, "Name").ok_or_else(|| Fault::required("Name"))?;
    let clash = realm
        .name_owner(EntityKind::Account, &name, self_id)
        .is_some();
    if clash {
        return Err(Fault::duplicate_name(
            "Another account is already using this name. Please use a different name.",
        ));
    }
    let Some(account_type) = text(obj, "AccountType") else {
        return Err(Fault::validation(
            "6010",
            "Account type/subtype missing",
            "You must select an account type (AccountType or AccountSubType).",
            Some("AccountType"),
        ));
    };
    let (classification, sub_type) = account_type_info(&account_type)
        .ok_or_else(|| Fault::invalid_enum("AccountType", &account_type))?;
    obj.insert("Name".into(), Value::String(name.clone()));
    obj.insert("FullyQualifiedName".into(), Value::String(name));
    obj.insert(
        "Classification".into(),
        Value::String(classification.into()),
    );
    default_field(obj, "AccountSubType", Value::String(sub_type.into()));
    default_field(obj, "Active", Value::Bool(true));
    default_field(obj, "SubAccount", Value::Bool(false));
    default_field(obj, "CurrentBalance", Value::from(0));
    default_field(obj, "CurrentBalanceWithSubAccounts", Value::from(0));
    default_field(obj, "CurrencyRef", currency_ref(realm));
    Ok(())
}

/// A payment method: a unique name, `CREDIT_CARD` or `NON_CREDIT_CARD`.
pub fn prepare_payment_method(
    realm: &Realm,
    obj: &mut Object,
    self_id: Option<u64>,
) -> Result<(), Fault> {
    let name = text(obj, "Name").ok_or_else(|| Fault::required("Name"))?;
    if realm
        .name_owner(EntityKind::PaymentMethod, &name, self_id)
        .is_some()
    {
        return Err(Fault::duplicate_name(
            "Another payment method is already using this name.",
        ));
    }
    obj.insert("Name".into(), Value::String(name));
    match obj.get("Type").and_then(Value::as_str) {
        None => {
            obj.insert("Type".into(), Value::String("NON_CREDIT_CARD".into()));
        }
        Some("CREDIT_CARD" | "NON_CREDIT_CARD") => {}
        Some(other) => return Err(Fault::invalid_enum("Type", other)),
    }
    default_field(obj, "Active", Value::Bool(true));
    Ok(())
}

pub fn prepare_term(realm: &Realm, obj: &mut Object, self_id: Option<u64>) -> Result<(), Fault> {
    let name = text(obj, "Name").ok_or_else(|| Fault::required("Name"))?;
    let clash = realm.name_owner(EntityKind::Term, &name, self_id).is_some();
    if clash {
        return Err(Fault::duplicate_name(
            "Another term is already using this name.",
        ));
    }
    obj.insert("Name".into(), Value::String(name));
    let date_driven = obj.contains_key("DayOfMonthDue");
    obj.insert(
        "Type".into(),
        Value::String(
            if date_driven {
                "DATE_DRIVEN"
            } else {
                "STANDARD"
            }
            .into(),
        ),
    );
    if !date_driven {
        default_field(obj, "DueDays", Value::from(0));
    }
    default_field(obj, "Active", Value::Bool(true));
    Ok(())
}
