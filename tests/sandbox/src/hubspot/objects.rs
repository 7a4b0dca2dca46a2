//! The CRM object types the simulator serves, their names and type ids, last-modified and
//! create-date property names, default property lists, scopes and built-in property definitions.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectType {
    Contacts,
    Companies,
    Deals,
    Products,
    LineItems,
    Quotes,
    Invoices,
    CommercePayments,
    Notes,
}

impl ObjectType {
    pub const ALL: [ObjectType; 9] = [
        Self::Contacts,
        Self::Companies,
        Self::Deals,
        Self::Products,
        Self::LineItems,
        Self::Quotes,
        Self::Invoices,
        Self::CommercePayments,
        Self::Notes,
    ];

    /// The plural path name (`line_items`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Contacts => "contacts",
            Self::Companies => "companies",
            Self::Deals => "deals",
            Self::Products => "products",
            Self::LineItems => "line_items",
            Self::Quotes => "quotes",
            Self::Invoices => "invoices",
            Self::CommercePayments => "commerce_payments",
            Self::Notes => "notes",
        }
    }

    /// The singular name used in association type names (`deal_to_contact`).
    pub fn singular(self) -> &'static str {
        match self {
            Self::Contacts => "contact",
            Self::Companies => "company",
            Self::Deals => "deal",
            Self::Products => "product",
            Self::LineItems => "line_item",
            Self::Quotes => "quote",
            Self::Invoices => "invoice",
            Self::CommercePayments => "commerce_payment",
            Self::Notes => "note",
        }
    }

    pub fn type_id(self) -> &'static str {
        match self {
            Self::Contacts => "0-1",
            Self::Companies => "0-2",
            Self::Deals => "0-3",
            Self::Products => "0-7",
            Self::LineItems => "0-8",
            Self::Quotes => "0-14",
            Self::Invoices => "0-53",
            Self::CommercePayments => "0-101",
            Self::Notes => "0-46",
        }
    }

    /// The upper-case name used in workflow-action payloads (`"objectType": "DEAL"`).
    pub fn upper(self) -> String {
        self.singular().to_ascii_uppercase()
    }

    /// Accepts the plural or singular name (any case) or the type id.
    pub fn parse(segment: &str) -> Option<Self> {
        let s = segment.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|t| {
            s == t.name()
                || s == t.singular()
                || s == t.type_id()
                || (*t == Self::LineItems && (s == "lineitems" || s == "lineitem"))
                || (*t == Self::CommercePayments
                    && (s == "commercepayments" || s == "commerce_payment" || s == "payment"))
        })
    }

    pub fn last_modified_property(self) -> &'static str {
        match self {
            Self::Contacts => "lastmodifieddate",
            _ => "hs_lastmodifieddate",
        }
    }

    pub fn create_date_property(self) -> &'static str {
        match self {
            Self::CommercePayments | Self::Notes => "hs_createdate",
            _ => "createdate",
        }
    }

    /// Properties returned by GET/list when `properties` is not given.
    pub fn default_properties(self) -> Vec<&'static str> {
        let mut props: Vec<&'static str> = match self {
            Self::Contacts => vec!["firstname", "lastname", "email"],
            Self::Companies => vec!["name", "domain"],
            Self::Deals => vec!["dealname", "amount", "closedate", "pipeline", "dealstage"],
            Self::Products => vec!["name", "description", "price"],
            Self::LineItems => vec!["quantity", "amount", "price"],
            Self::Quotes => vec!["hs_title", "hs_expiration_date"],
            Self::Notes => vec!["hs_timestamp", "hs_note_body"],
            Self::Invoices | Self::CommercePayments => vec![],
        };
        props.extend([
            self.create_date_property(),
            self.last_modified_property(),
            "hs_object_id",
        ]);
        props
    }

    /// Properties a free-text search (`query`) looks at.
    pub fn text_search_properties(self) -> &'static [&'static str] {
        match self {
            Self::Contacts => &["firstname", "lastname", "email", "phone", "company"],
            Self::Companies => &["name", "domain", "website", "phone"],
            Self::Deals => &["dealname"],
            Self::Products => &["name", "hs_sku", "description"],
            Self::LineItems => &["name", "hs_sku"],
            Self::Quotes => &["hs_title"],
            Self::Invoices => &["hs_number"],
            Self::CommercePayments => &["hs_customer_email", "hs_reference_number"],
            Self::Notes => &["hs_note_body"],
        }
    }

    /// The subscription prefix of HubSpot's dedicated webhook event types, if any
    /// (other objects use generic `object.*` subscriptions).
    pub fn webhook_prefix(self) -> Option<&'static str> {
        match self {
            Self::Contacts => Some("contact"),
            Self::Companies => Some("company"),
            Self::Deals => Some("deal"),
            Self::LineItems => Some("line_item"),
            Self::Products => Some("product"),
            _ => None,
        }
    }

    /// Scopes that allow reading (any one) or writing (any one) records of this type.
    pub fn scopes(self, write: bool) -> Vec<String> {
        let verb = if write { "write" } else { "read" };
        let own = match self {
            Self::Notes => "contacts",
            Self::CommercePayments => "commercepayments",
            other => other.name(),
        };
        let mut scopes = vec![format!("crm.objects.{own}.{verb}")];
        if matches!(self, Self::Products | Self::LineItems | Self::Quotes) {
            scopes.push("e-commerce".into());
        }
        scopes
    }

    /// Scopes that allow creating property definitions for this type.
    pub fn schema_write_scopes(self) -> Vec<String> {
        let own = match self {
            Self::CommercePayments => "commercepayments",
            Self::LineItems => "line_items",
            other => other.name(),
        };
        vec![format!("crm.schemas.{own}.write"), "e-commerce".into()]
    }

    /// Properties that must be present on create.
    pub fn required_on_create(self) -> &'static [&'static str] {
        match self {
            Self::Quotes => &["hs_title", "hs_expiration_date"],
            Self::Invoices => &["hs_currency"],
            Self::CommercePayments => &["hs_initial_amount", "hs_initiated_date"],
            Self::Notes => &["hs_timestamp"],
            _ => &[],
        }
    }
}

/// Value types of property definitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyType {
    String,
    Number,
    Date,
    Datetime,
    Enumeration,
    Bool,
    PhoneNumber,
}

impl PropertyType {
    pub fn default_field_type(self) -> &'static str {
        match self {
            Self::String => "text",
            Self::Number => "number",
            Self::Date | Self::Datetime => "date",
            Self::Enumeration => "select",
            Self::Bool => "booleancheckbox",
            Self::PhoneNumber => "phonenumber",
        }
    }
}

/// A built-in property: (name, type, read-only value, unique).
type Builtin = (&'static str, PropertyType, bool, bool);

/// The HubSpot-defined properties of each object type, with their group.
pub fn builtin_properties(t: ObjectType) -> (&'static str, Vec<Builtin>) {
    use PropertyType::{Bool, Date, Datetime, Enumeration, Number, PhoneNumber, String as S};
    let w = |n, ty| (n, ty, false, false);
    let r = |n, ty| (n, ty, true, false);
    let mut common = vec![
        r("hs_object_id", Number),
        r(t.last_modified_property(), Datetime),
        w(t.create_date_property(), Datetime),
        w("hubspot_owner_id", Enumeration),
        // The ids merged into this record, `;`-separated.
        r("hs_merged_object_ids", Enumeration),
    ];
    let (group, mut own): (&str, Vec<Builtin>) = match t {
        ObjectType::Contacts => (
            "contactinformation",
            vec![
                w("email", S),
                w("firstname", S),
                w("lastname", S),
                w("phone", PhoneNumber),
                w("mobilephone", PhoneNumber),
                w("company", S),
                w("address", S),
                w("city", S),
                w("state", S),
                w("zip", S),
                w("country", S),
                w("jobtitle", S),
                w("website", S),
                w("lifecyclestage", Enumeration),
                w("hs_additional_emails", Enumeration),
                r("associatedcompanyid", Number),
            ],
        ),
        ObjectType::Companies => (
            "companyinformation",
            vec![
                w("name", S),
                w("domain", S),
                w("phone", PhoneNumber),
                w("address", S),
                w("address2", S),
                w("city", S),
                w("state", S),
                w("zip", S),
                w("country", S),
                w("website", S),
                w("industry", Enumeration),
                w("description", S),
                w("numberofemployees", Number),
            ],
        ),
        ObjectType::Deals => (
            "dealinformation",
            vec![
                w("dealname", S),
                w("amount", Number),
                w("closedate", Datetime),
                w("pipeline", Enumeration),
                w("dealstage", Enumeration),
                w("dealtype", Enumeration),
                w("deal_currency_code", Enumeration),
                w("description", S),
                r("amount_in_home_currency", Number),
            ],
        ),
        ObjectType::Products => (
            "productinformation",
            vec![
                w("name", S),
                w("description", S),
                w("price", Number),
                w("hs_sku", S),
                w("hs_cost_of_goods_sold", Number),
                w("hs_recurring_billing_period", S),
                w("hs_product_type", Enumeration),
                w("hs_url", S),
            ],
        ),
        ObjectType::LineItems => (
            "lineiteminformation",
            vec![
                w("name", S),
                w("description", S),
                w("quantity", Number),
                w("price", Number),
                r("amount", Number),
                w("hs_product_id", Number),
                w("hs_sku", S),
                w("discount", Number),
                w("hs_discount_percentage", Number),
                r("hs_total_discount", Number),
                w("hs_tax_rate_group_id", S),
                w("tax", Number),
                w("hs_recurring_billing_period", S),
                w("hs_line_item_currency_code", Enumeration),
                w("hs_cost_of_goods_sold", Number),
                w("hs_position_on_quote", Number),
            ],
        ),
        ObjectType::Quotes => (
            "quoteinformation",
            vec![
                w("hs_title", S),
                w("hs_expiration_date", Datetime),
                w("hs_status", Enumeration),
                w("hs_quote_amount", Number),
                w("hs_currency", Enumeration),
                w("hs_esign_enabled", Bool),
                w("hs_esign_num_signers_required", Number),
                w("hs_esign_num_signers_completed", Number),
                w("hs_payment_enabled", Bool),
                w("hs_quote_number", S),
                w("hs_language", Enumeration),
                r("hs_public_url_key", S),
            ],
        ),
        ObjectType::Invoices => (
            "invoiceinformation",
            vec![
                w("hs_currency", Enumeration),
                w("hs_invoice_date", Datetime),
                w("hs_due_date", Datetime),
                w("hs_tax_id", S),
                w("hs_invoice_status", Enumeration),
                // Derived from line items and payments (`invoices.rs`).
                r("hs_amount_billed", Number),
                r("hs_balance_due", Number),
                w("hs_number", S),
                w("hs_invoice_link", S),
                w("hs_payment_date", Datetime),
                w("hs_purchase_order_number", S),
                w("hs_comments", S),
            ],
        ),
        ObjectType::CommercePayments => (
            "commercepaymentinformation",
            vec![
                w("hs_initial_amount", Number),
                w("hs_initiated_date", Datetime),
                w("hs_customer_email", S),
                w("hs_latest_status", Enumeration),
                w("hs_currency_code", Enumeration),
                w("hs_processing_fee", Number),
                w("hs_platform_fee", Number),
                w("hs_fees_amount", Number),
                w("hs_refunds_amount", Number),
                w("hs_net_amount", Number),
                w("hs_payment_method_type", Enumeration),
                w("hs_payment_source", Enumeration),
                w("hs_reference_number", S),
            ],
        ),
        ObjectType::Notes => (
            "engagement",
            vec![
                w("hs_timestamp", Datetime),
                w("hs_note_body", S),
                w("hs_attachment_ids", S),
            ],
        ),
    };
    own.append(&mut common);
    let _ = Date;
    (group, own)
}
