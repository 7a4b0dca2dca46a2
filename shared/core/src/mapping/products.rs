//! HubSpot products ↔ QBO items: the default field mappings and the match key (SKU, S7).

use super::{Field, Values};
use crate::settings::{EnumValue, FieldKind, MappingDirection};

/// The HubSpot property where the integration keeps the linked item's id (unique).
pub const QBO_ID_PROPERTY: &str = "qbo_item_id";
pub const SKU: &str = "sku";
/// The HubSpot property where the integration shows the item's QBO income account (by name).
pub const INCOME_ACCOUNT_PROPERTY: &str = "qbo_income_account";
/// Items made from HubSpot products without a type are services.
pub const DEFAULT_ITEM_TYPE: &str = "Service";

/// HubSpot product types and QBO item types. UNCONFIRMED: HubSpot's `hs_product_type` values.
pub fn item_types() -> FieldKind {
    let pair = |hubspot: &str, qbo: &str| EnumValue {
        hubspot: hubspot.into(),
        qbo: qbo.into(),
    };
    FieldKind::Enumeration {
        values: vec![
            pair("service", "Service"),
            pair("non_inventory", "NonInventory"),
            pair("inventory", "Inventory"),
        ],
    }
}

/// The default mappings (S3), each switchable by its key.
pub fn default_fields() -> Vec<Field> {
    use MappingDirection::{Both, QboToHubSpot};
    vec![
        Field::new("name", "name", "Name", FieldKind::Text, Both),
        Field::new(SKU, "hs_sku", "Sku", FieldKind::Text, Both),
        Field::new("price", "price", "UnitPrice", FieldKind::Number, Both),
        Field::new(
            "description",
            "description",
            "Description",
            FieldKind::Text,
            Both,
        ),
        Field::new(
            "cost",
            "hs_cost_of_goods_sold",
            "PurchaseCost",
            FieldKind::Number,
            Both,
        ),
        Field::new("type", "hs_product_type", "Type", item_types(), Both),
        // Shown in HubSpot; items made from HubSpot take the income-account setting.
        Field::new(
            "income_account",
            INCOME_ACCOUNT_PROPERTY,
            "IncomeAccountRef.name",
            FieldKind::Text,
            QboToHubSpot,
        ),
    ]
}

pub fn hubspot_properties(fields: &[Field]) -> Vec<String> {
    let mut properties: Vec<String> = fields
        .iter()
        .filter(|f| !f.hubspot.is_empty())
        .map(|f| f.hubspot.clone())
        .collect();
    for extra in ["hs_sku", "hs_lastmodifieddate", QBO_ID_PROPERTY] {
        if !properties.iter().any(|p| p == extra) {
            properties.push(extra.to_owned());
        }
    }
    properties
}

/// The match key: the SKU, compared without case.
pub fn match_key(values: &Values) -> Option<String> {
    values.get(SKU).map(|sku| sku.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Provider;
    use crate::mapping::normalize;

    #[test]
    fn skus_match_without_case_and_types_translate() {
        let mut values = Values::new();
        values.insert(SKU.into(), "W-1a".into());
        assert_eq!(match_key(&values).as_deref(), Some("w-1a"));
        assert_eq!(match_key(&Values::new()), None);
        let kind = item_types();
        assert_eq!(
            normalize(&kind, "NonInventory", Provider::Qbo).as_deref(),
            Some("non_inventory")
        );
        assert_eq!(
            normalize(&kind, "service", Provider::HubSpot).as_deref(),
            Some("service")
        );
        let properties = hubspot_properties(&default_fields());
        assert!(properties.contains(&QBO_ID_PROPERTY.to_owned()));
    }
}
