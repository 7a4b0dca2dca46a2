//! What the engine needs to know of each synced object: its names on both sides, its fields,
//! its match key, and how its records are read.

use serde_json::Value;

use crate::decide::Gone;
use crate::domain::{ObjectKind, Provider};
use crate::hubspot::{CrmObject, PropertyDefinition};
use crate::mapping::{self, contacts, invoices, products, Field, Values};
use crate::qbo::query::Query;
use crate::settings::ObjectSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synced {
    Contacts,
    Products,
    /// Applied by [`super::invoices`]: invoices, their lines and payments.
    Invoices,
}

impl Synced {
    /// The objects the engine syncs.
    pub fn of(object: ObjectKind) -> Option<Self> {
        match object {
            ObjectKind::Contact => Some(Synced::Contacts),
            ObjectKind::Product => Some(Synced::Products),
            ObjectKind::Invoice => Some(Synced::Invoices),
        }
    }

    pub fn object(self) -> ObjectKind {
        match self {
            Synced::Contacts => ObjectKind::Contact,
            Synced::Products => ObjectKind::Product,
            Synced::Invoices => ObjectKind::Invoice,
        }
    }

    pub fn hubspot_type(self) -> &'static str {
        match self {
            Synced::Contacts => "contacts",
            Synced::Products => "products",
            Synced::Invoices => "invoices",
        }
    }

    pub fn qbo_entity(self) -> &'static str {
        match self {
            Synced::Contacts => "Customer",
            Synced::Products => "Item",
            Synced::Invoices => "Invoice",
        }
    }

    /// What a QBO query selects (QBO leaves an item's `Sku` out unless asked).
    pub fn qbo_projection(self) -> &'static str {
        match self {
            Synced::Contacts | Synced::Invoices => "*",
            Synced::Products => "*, Sku",
        }
    }

    /// Whether its QBO entity has `Active` (lists do; transactions do not, and QBO refuses a
    /// query naming it).
    pub fn qbo_has_active(self) -> bool {
        !matches!(self, Synced::Invoices)
    }

    /// A QBO query of the object's records, inactive ones included.
    pub fn qbo_query(self) -> Query {
        let query = Query::select(self.qbo_entity()).with_projection(self.qbo_projection());
        if self.qbo_has_active() {
            query.active_or_not()
        } else {
            query
        }
    }

    /// HubSpot's last-modified property of the object (contacts differ).
    pub fn hubspot_modified(self) -> &'static str {
        match self {
            Synced::Contacts => "lastmodifieddate",
            Synced::Products | Synced::Invoices => "hs_lastmodifieddate",
        }
    }

    pub fn fields(self, settings: &ObjectSettings) -> Vec<Field> {
        let defaults = match self {
            Synced::Contacts => contacts::default_fields(),
            Synced::Products => products::default_fields(),
            // Invoices are mapped as a whole (`mapping::invoices`).
            Synced::Invoices => Vec::new(),
        };
        mapping::fields_in_force(defaults, settings)
    }

    pub fn hubspot_properties(self, fields: &[Field]) -> Vec<String> {
        match self {
            Synced::Contacts => contacts::hubspot_properties(fields),
            Synced::Products => products::hubspot_properties(fields),
            // Its own properties, and those of the custom mappings (S4).
            Synced::Invoices => {
                let mut properties: Vec<String> = invoices::INVOICE_PROPERTIES
                    .iter()
                    .map(|p| (*p).to_owned())
                    .collect();
                for field in fields {
                    if !field.hubspot.is_empty() && !properties.contains(&field.hubspot) {
                        properties.push(field.hubspot.clone());
                    }
                }
                properties
            }
        }
    }

    pub fn match_key(self, values: &Values) -> Option<String> {
        match self {
            Synced::Contacts => contacts::match_key(values),
            Synced::Products => products::match_key(values),
            Synced::Invoices => None,
        }
    }

    /// The QBO field a match key is looked up by.
    pub fn qbo_key_field(self) -> &'static str {
        match self {
            Synced::Contacts => "PrimaryEmailAddr",
            Synced::Products => "Sku",
            Synced::Invoices => "DocNumber",
        }
    }

    /// The HubSpot property a match key is looked up by.
    pub fn hubspot_key_property(self) -> &'static str {
        match self {
            Synced::Contacts => contacts::EMAIL,
            Synced::Products => "hs_sku",
            Synced::Invoices => "hs_number",
        }
    }

    /// The unique HubSpot property holding the linked QBO id: upserts by it never duplicate.
    pub fn qbo_id_property(self) -> PropertyDefinition {
        let (name, label, group) = match self {
            Synced::Contacts => (
                contacts::QBO_ID_PROPERTY,
                "QuickBooks customer id",
                "contactinformation",
            ),
            Synced::Products => (
                products::QBO_ID_PROPERTY,
                "QuickBooks item id",
                "productinformation",
            ),
            Synced::Invoices => (
                invoices::QBO_ID_PROPERTY,
                "QuickBooks invoice id",
                "invoiceinformation",
            ),
        };
        PropertyDefinition {
            name: name.into(),
            label: label.into(),
            property_type: "string".into(),
            field_type: "text".into(),
            group_name: group.into(),
            description: "Set by the QuickBooks integration: the id of the linked record".into(),
            has_unique_value: true,
        }
    }

    /// The HubSpot properties the integration makes for itself on this object.
    pub fn own_properties(self) -> Vec<PropertyDefinition> {
        let mut own = vec![self.qbo_id_property()];
        if self == Synced::Products {
            own.push(PropertyDefinition {
                name: products::INCOME_ACCOUNT_PROPERTY.into(),
                label: "QuickBooks income account".into(),
                property_type: "string".into(),
                field_type: "text".into(),
                group_name: "productinformation".into(),
                description:
                    "Set by the QuickBooks integration: the item's income account in QuickBooks"
                        .into(),
                has_unique_value: false,
            });
        }
        own
    }
}

/// A changed record, read into the terms the engine works in.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub id: String,
    /// HubSpot: `updatedAt` in epoch ms; QBO: the SyncToken.
    pub version: Option<i64>,
    pub values: Values,
    pub gone: Option<Gone>,
    /// HubSpot: the ids merged into this record.
    pub merged_ids: Vec<String>,
    /// The record as its side sent it (filters on QBO fields read it).
    pub raw: Value,
}

fn epoch_ms(iso: &str) -> Option<i64> {
    time::OffsetDateTime::parse(iso, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// A HubSpot record as the engine reads it.
pub fn from_hubspot(synced: Synced, fields: &[Field], record: &CrmObject) -> Incoming {
    let version = record.updated_at.as_deref().and_then(epoch_ms).or_else(|| {
        record
            .property(synced.hubspot_modified())
            .and_then(epoch_ms)
    });
    let merged_ids = record
        .property(contacts::MERGED_IDS)
        .map(|ids| {
            ids.split(';')
                .map(str::trim)
                .filter(|id| !id.is_empty() && *id != record.id)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Incoming {
        id: record.id.clone(),
        version,
        values: mapping::read_hubspot(fields, &record.properties),
        gone: record.archived.then_some(Gone::Archived),
        merged_ids,
        raw: serde_json::to_value(record).unwrap_or(Value::Null),
    }
}

/// A QBO record as the engine reads it.
pub fn from_qbo(fields: &[Field], record: &Value) -> Option<Incoming> {
    let id = record.get("Id")?.as_str()?.to_owned();
    let version = record
        .get("SyncToken")
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok());
    let gone = if record.get("status").and_then(Value::as_str) == Some("Deleted") {
        Some(Gone::Deleted)
    } else if record.get("Active").and_then(Value::as_bool) == Some(false) {
        Some(Gone::Inactive)
    } else {
        None
    };
    Some(Incoming {
        id,
        version,
        values: mapping::read_qbo(fields, record),
        gone,
        merged_ids: Vec::new(),
        raw: record.clone(),
    })
}

/// The side a record came from, read.
pub fn incoming(
    synced: Synced,
    fields: &[Field],
    from: Provider,
    record: &Value,
) -> Option<Incoming> {
    match from {
        Provider::HubSpot => {
            let record: CrmObject = serde_json::from_value(record.clone()).ok()?;
            Some(from_hubspot(synced, fields, &record))
        }
        Provider::Qbo => from_qbo(fields, record),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::default_settings;
    use serde_json::json;
    use time::macros::date;

    #[test]
    fn records_of_both_sides_are_read() {
        let settings = default_settings(date!(2026 - 01 - 01));
        let fields = Synced::Contacts.fields(&settings[0]);
        let hubspot = json!({"id": "51", "properties": {"email": "Ann@X.com", "firstname": "Ann",
            "lastmodifieddate": "2026-03-14T00:00:01.000Z"}, "createdAt": "2026-03-14T00:00:00.000Z",
            "updatedAt": "2026-03-14T00:00:01.500Z", "archived": false});
        let contact = incoming(Synced::Contacts, &fields, Provider::HubSpot, &hubspot).unwrap();
        assert_eq!(contact.version, Some(1_773_446_401_500));
        assert_eq!(contact.values["email"], "ann@x.com");
        assert_eq!(
            Synced::Contacts.match_key(&contact.values).as_deref(),
            Some("ann@x.com")
        );
        assert_eq!(contact.gone, None);
        let merged = json!({"id": "60", "properties": {"hs_merged_object_ids": "51;52;60"},
            "archived": false});
        assert_eq!(
            incoming(Synced::Contacts, &fields, Provider::HubSpot, &merged)
                .unwrap()
                .merged_ids,
            ["51", "52"]
        );
        let archived = json!({"id": "52", "properties": {}, "archived": true});
        assert_eq!(
            incoming(Synced::Contacts, &fields, Provider::HubSpot, &archived)
                .unwrap()
                .gone,
            Some(Gone::Archived)
        );
        let customer = json!({"Id": "7", "SyncToken": "3", "DisplayName": "Acme", "Active": false,
            "PrimaryEmailAddr": {"Address": "ann@x.com"}});
        let customer = incoming(Synced::Contacts, &fields, Provider::Qbo, &customer).unwrap();
        assert_eq!(
            (customer.version, customer.gone),
            (Some(3), Some(Gone::Inactive))
        );
        assert_eq!(customer.values["display_name"], "Acme");
        let stub = json!({"Id": "9", "status": "Deleted", "domain": "QBO"});
        assert_eq!(from_qbo(&fields, &stub).unwrap().gone, Some(Gone::Deleted));
        assert!(from_qbo(&fields, &json!({"Name": "no id"})).is_none());
    }
}
