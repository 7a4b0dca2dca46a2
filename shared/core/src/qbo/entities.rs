//! The QuickBooks entities the sync reads and writes, as QuickBooks spells them. Fields the
//! integration does not name are kept in `extra`, so nothing read is lost and custom mappings
//! can reach any field. Amounts are [`Money`]; ids and SyncTokens stay strings.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::Money;

/// A reference to another entity: `{"value": "<id>", "name": "<display>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ref {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Ref {
    pub fn to(id: impl Into<String>) -> Self {
        Self {
            value: id.into(),
            name: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetaData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EmailAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TelephoneNumber {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_form_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PhysicalAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_sub_division_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Customer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_email_addr: Option<EmailAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_phone: Option<TelephoneNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<TelephoneNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_addr: Option<PhysicalAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<MetaData>,
    /// `"Deleted"` on a CDC stub (lower-case key, like `sparse` and `domain`).
    #[serde(rename = "status", default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `true` on a sparse update.
    #[serde(rename = "sparse", default, skip_serializing_if = "Option::is_none")]
    pub sparse: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Item {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// `Service`, `NonInventory`, `Inventory`, …
    #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
    pub item_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_cost: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub income_account_ref: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expense_account_ref: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taxable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<MetaData>,
    #[serde(rename = "status", default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(rename = "sparse", default, skip_serializing_if = "Option::is_none")]
    pub sparse: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An entity type the client reads and writes.
pub trait Entity: Serialize + serde::de::DeserializeOwned + Send + Sync {
    /// The JSON key and query name (`Customer`).
    const NAME: &'static str;
    /// The URL segment (`customer`).
    const RESOURCE: &'static str;
}

/// Entities written and read whole, as JSON objects: their shapes are the mappings' and the
/// workflow actions'.
macro_rules! whole_entity {
    ($($(#[$doc:meta])* $name:ident = $json:literal, $resource:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Map<String, Value>);

        impl Entity for $name {
            const NAME: &'static str = $json;
            const RESOURCE: &'static str = $resource;
        }
    )*};
}

whole_entity! {
    /// An invoice.
    Invoice = "Invoice", "invoice";
    /// An estimate (a quote to the customer).
    Estimate = "Estimate", "estimate";
    /// A sales receipt: a sale paid on the spot.
    SalesReceipt = "SalesReceipt", "salesreceipt";
    /// A payment received, applied to invoices.
    Payment = "Payment", "payment";
    /// An expense (cash, check or credit card purchase).
    Purchase = "Purchase", "purchase";
    /// A refund receipt: money paid back to a customer.
    RefundReceipt = "RefundReceipt", "refundreceipt";
    /// Payment terms (Net 30, …).
    Term = "Term", "term";
    /// A payment method (Cash, Credit Card, …).
    PaymentMethod = "PaymentMethod", "paymentmethod";
    /// A vendor (the payee of an expense).
    Vendor = "Vendor", "vendor";
}

impl Entity for Customer {
    const NAME: &'static str = "Customer";
    const RESOURCE: &'static str = "customer";
}

impl Entity for Item {
    const NAME: &'static str = "Item";
    const RESOURCE: &'static str = "item";
}

impl Entity for Account {
    const NAME: &'static str = "Account";
    const RESOURCE: &'static str = "account";
}

impl Customer {
    pub fn is_deleted(&self) -> bool {
        self.status.as_deref() == Some("Deleted")
    }

    pub fn email(&self) -> Option<&str> {
        self.primary_email_addr
            .as_ref()
            .and_then(|e| e.address.as_deref())
            .filter(|e| !e.trim().is_empty())
    }
}

impl Item {
    pub fn is_deleted(&self) -> bool {
        self.status.as_deref() == Some("Deleted")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_read_qbo_json_and_keep_what_they_do_not_name() {
        let json = r#"{"Id":"3","SyncToken":"1","domain":"QBO","sparse":false,
            "MetaData":{"CreateTime":"2014-09-16T10:36:03-07:00","LastUpdatedTime":"2014-09-19T12:47:47-07:00"},
            "Name":"Concrete","Sku":"C-1","Active":true,"Type":"Service","Taxable":true,
            "UnitPrice":123456789012345678.91,"PurchaseCost":0,"TrackQtyOnHand":false,
            "IncomeAccountRef":{"value":"48","name":"Landscaping Services"}}"#;
        let item: Item = serde_json::from_str(json).unwrap();
        assert_eq!(
            item.unit_price.unwrap().to_string(),
            "123456789012345678.91"
        );
        assert_eq!(item.item_type.as_deref(), Some("Service"));
        assert_eq!(item.income_account_ref.as_ref().unwrap().value, "48");
        assert_eq!(item.extra["TrackQtyOnHand"], Value::Bool(false));
        assert_eq!(item.extra["domain"], "QBO");
        assert_eq!(item.sparse, Some(false));
        let back = serde_json::to_value(&item).unwrap();
        assert_eq!(back["UnitPrice"].to_string(), "123456789012345678.91");
        assert_eq!(back["TrackQtyOnHand"], false);

        let deleted: Customer =
            serde_json::from_str(r#"{"domain":"QBO","status":"Deleted","Id":"7"}"#).unwrap();
        assert!(deleted.is_deleted());
        let customer: Customer = serde_json::from_str(
            r#"{"Id":"1","DisplayName":"Bob's Shop","PrimaryEmailAddr":{"Address":" "}}"#,
        )
        .unwrap();
        assert_eq!(customer.email(), None, "a blank email is none");
    }

    #[test]
    fn a_sparse_update_sends_only_what_it_names() {
        let update = Customer {
            id: Some("1".into()),
            sync_token: Some("4".into()),
            sparse: Some(true),
            given_name: Some("Ann".into()),
            ..Customer::default()
        };
        assert_eq!(
            serde_json::to_value(&update).unwrap(),
            serde_json::json!({"Id": "1", "SyncToken": "4", "sparse": true, "GivenName": "Ann"})
        );
    }
}
