//! The entity types the simulator serves, with what QBO allows for each.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntityKind {
    Account,
    Term,
    PaymentMethod,
    TaxCode,
    Item,
    Customer,
    Vendor,
    Employee,
    Invoice,
    Estimate,
    SalesReceipt,
    Payment,
    Purchase,
    RefundReceipt,
    CompanyInfo,
    Preferences,
}

impl EntityKind {
    /// In dependency order (referenced kinds first) — the order seeds are loaded in.
    pub const ALL: [EntityKind; 16] = [
        EntityKind::CompanyInfo,
        EntityKind::Preferences,
        EntityKind::Account,
        EntityKind::Term,
        EntityKind::PaymentMethod,
        EntityKind::TaxCode,
        EntityKind::Item,
        EntityKind::Customer,
        EntityKind::Vendor,
        EntityKind::Employee,
        EntityKind::Estimate,
        EntityKind::Invoice,
        EntityKind::SalesReceipt,
        EntityKind::Payment,
        EntityKind::Purchase,
        EntityKind::RefundReceipt,
    ];

    /// The JSON name (`"Customer"`), also the query/CDC entity name.
    pub fn name(self) -> &'static str {
        match self {
            EntityKind::Account => "Account",
            EntityKind::Term => "Term",
            EntityKind::PaymentMethod => "PaymentMethod",
            EntityKind::TaxCode => "TaxCode",
            EntityKind::Item => "Item",
            EntityKind::Customer => "Customer",
            EntityKind::Vendor => "Vendor",
            EntityKind::Employee => "Employee",
            EntityKind::Invoice => "Invoice",
            EntityKind::Estimate => "Estimate",
            EntityKind::SalesReceipt => "SalesReceipt",
            EntityKind::Payment => "Payment",
            EntityKind::Purchase => "Purchase",
            EntityKind::RefundReceipt => "RefundReceipt",
            EntityKind::CompanyInfo => "CompanyInfo",
            EntityKind::Preferences => "Preferences",
        }
    }

    /// The URL resource (`customer`): the lower-cased name.
    pub fn resource(self) -> String {
        self.name().to_ascii_lowercase()
    }

    /// Exact lower-case resource segment, as QBO URIs are case-sensitive.
    pub fn from_resource(segment: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.resource() == segment)
    }

    /// Entity name in queries, CDC and batch items (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The properties a query may name (the first part of a dotted path), after the entity's
    /// XSD. QuickBooks refuses a query on a property the entity does not have; accepting it
    /// silently would let a misspelt field pass every test.
    pub fn queryable(self, property: &str) -> bool {
        const COMMON: &[&str] = &["Id", "SyncToken", "MetaData", "domain", "sparse"];
        const PARTY: &[&str] = &[
            "Title",
            "GivenName",
            "MiddleName",
            "FamilyName",
            "Suffix",
            "DisplayName",
            "CompanyName",
            "FullyQualifiedName",
            "PrintOnCheckName",
            "Active",
            "PrimaryPhone",
            "AlternatePhone",
            "Mobile",
            "Fax",
            "PrimaryEmailAddr",
            "WebAddr",
            "BillAddr",
            "ShipAddr",
            "Notes",
            "Taxable",
            "DefaultTaxCodeRef",
            "Job",
            "BillWithParent",
            "ParentRef",
            "Level",
            "CustomerTypeRef",
            "SalesTermRef",
            "PaymentMethodRef",
            "CurrencyRef",
            "Balance",
            "BalanceWithJobs",
            "OpenBalanceDate",
            "PreferredDeliveryMethod",
            "ResaleNum",
            "AcctNum",
            "TermRef",
            "Vendor1099",
            "PrimaryAddr",
            "SSN",
            "EmployeeNumber",
            "BillableTime",
            "HiredDate",
            "ReleasedDate",
            "TaxIdentifier",
            "APAccountRef",
        ];
        const TRANSACTION: &[&str] = &[
            "DocNumber",
            "TxnDate",
            "DueDate",
            "CustomerRef",
            "Balance",
            "TotalAmt",
            "SalesTermRef",
            "ProjectRef",
            "PrivateNote",
            "CustomerMemo",
            "CurrencyRef",
            "EmailStatus",
            "PrintStatus",
            "Line",
            "LinkedTxn",
            "TxnTaxDetail",
            "BillAddr",
            "ShipAddr",
            "BillEmail",
            "CustomField",
            "ClassRef",
            "DepartmentRef",
            "DepositToAccountRef",
            "PaymentMethodRef",
            "PaymentRefNum",
            "TxnStatus",
            "ExpirationDate",
            "AcceptedDate",
            "AcceptedBy",
            "UnappliedAmt",
            "ARAccountRef",
            "PaymentType",
            "AccountRef",
            "EntityRef",
            "Credit",
            "GlobalTaxCalculation",
            "ApplyTaxAfterDiscount",
            "AllowOnlinePayment",
            "Deposit",
            "HomeBalance",
            "ExchangeRate",
            "ShipDate",
            "TrackingNum",
            "ServiceDate",
        ];
        let own: &[&str] = match self {
            EntityKind::Customer | EntityKind::Vendor | EntityKind::Employee => PARTY,
            EntityKind::Item => &[
                "Name",
                "Sku",
                "Description",
                "Active",
                "Type",
                "UnitPrice",
                "Taxable",
                "IncomeAccountRef",
                "ExpenseAccountRef",
                "AssetAccountRef",
                "PurchaseDesc",
                "PurchaseCost",
                "TrackQtyOnHand",
                "QtyOnHand",
                "InvStartDate",
                "FullyQualifiedName",
                "SubItem",
                "ParentRef",
                "Level",
                "SalesTaxCodeRef",
                "PurchaseTaxCodeRef",
                "ClassRef",
                "SalesTaxIncluded",
                "PurchaseTaxIncluded",
            ],
            EntityKind::Account => &[
                "Name",
                "AccountType",
                "AccountSubType",
                "Classification",
                "Active",
                "FullyQualifiedName",
                "CurrentBalance",
                "CurrentBalanceWithSubAccounts",
                "ParentRef",
                "SubAccount",
                "AcctNum",
                "Description",
                "CurrencyRef",
            ],
            EntityKind::Term => &[
                "Name",
                "Active",
                "Type",
                "DueDays",
                "DiscountDays",
                "DiscountPercent",
            ],
            EntityKind::PaymentMethod => &["Name", "Active", "Type"],
            EntityKind::TaxCode => &["Name", "Description", "Active", "Taxable", "TaxGroup"],
            EntityKind::CompanyInfo | EntityKind::Preferences => return true,
            _ => TRANSACTION,
        };
        let property = property.split('.').next().unwrap_or(property);
        COMMON
            .iter()
            .chain(own)
            .any(|known| known.eq_ignore_ascii_case(property))
    }

    /// Name lists: deactivated, never deleted; queries return active rows by default.
    pub fn is_name_list(self) -> bool {
        matches!(
            self,
            EntityKind::Account
                | EntityKind::Term
                | EntityKind::PaymentMethod
                | EntityKind::TaxCode
                | EntityKind::Item
                | EntityKind::Customer
                | EntityKind::Vendor
                | EntityKind::Employee
        )
    }

    pub fn is_transaction(self) -> bool {
        matches!(
            self,
            EntityKind::Invoice
                | EntityKind::Estimate
                | EntityKind::SalesReceipt
                | EntityKind::Payment
                | EntityKind::Purchase
                | EntityKind::RefundReceipt
        )
    }

    pub fn is_singleton(self) -> bool {
        matches!(self, EntityKind::CompanyInfo | EntityKind::Preferences)
    }

    /// Sales forms numbered by the company's sales-form DocNumber sequence.
    pub fn is_sales_form(self) -> bool {
        matches!(
            self,
            EntityKind::Invoice
                | EntityKind::Estimate
                | EntityKind::SalesReceipt
                | EntityKind::RefundReceipt
        )
    }

    /// Customer, Vendor and Employee share one DisplayName namespace.
    pub fn is_person(self) -> bool {
        matches!(
            self,
            EntityKind::Customer | EntityKind::Vendor | EntityKind::Employee
        )
    }

    /// CDC does not serve TaxCode (Intuit's documented exclusion).
    pub fn supports_cdc(self) -> bool {
        self != EntityKind::TaxCode
    }

    /// Which void call QBO accepts: `operation=void` (invoice) or `operation=update&include=void`.
    pub fn voidable(self) -> bool {
        matches!(
            self,
            EntityKind::Invoice
                | EntityKind::Payment
                | EntityKind::SalesReceipt
                | EntityKind::RefundReceipt
        )
    }

    pub fn creatable(self) -> bool {
        !self.is_singleton() && self != EntityKind::TaxCode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in EntityKind::ALL {
            assert_eq!(EntityKind::from_name(kind.name()), Some(kind));
            assert_eq!(EntityKind::from_resource(&kind.resource()), Some(kind));
        }
        assert_eq!(
            EntityKind::from_name("salesreceipt"),
            Some(EntityKind::SalesReceipt)
        );
        assert_eq!(EntityKind::from_resource("Customer"), None);
    }
}
