//! Whether a settings edit can be kept: every problem named with the field it is about.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{FieldError, FieldKind, FilterOperator, MappingDirection, ObjectSettings};
use crate::domain::{Direction, ObjectKind};

/// The QBO fields a custom mapping may write, per object (the first part of a path). Read-only
/// ones (`Id`, `SyncToken`, `MetaData`, balances …) are not among them.
fn qbo_fields(object: ObjectKind) -> &'static [&'static str] {
    match object {
        ObjectKind::Contact => &[
            "Title",
            "GivenName",
            "MiddleName",
            "FamilyName",
            "Suffix",
            "DisplayName",
            "CompanyName",
            "PrintOnCheckName",
            "PrimaryPhone",
            "AlternatePhone",
            "Mobile",
            "Fax",
            "PrimaryEmailAddr",
            "WebAddr",
            "BillAddr",
            "ShipAddr",
            "Notes",
            "ResaleNum",
            "PreferredDeliveryMethod",
            "Taxable",
            "Job",
            "BillWithParent",
        ],
        ObjectKind::Product => &[
            "Name",
            "Sku",
            "Description",
            "Type",
            "UnitPrice",
            "Taxable",
            "PurchaseDesc",
            "PurchaseCost",
            "TrackQtyOnHand",
            "SalesTaxIncluded",
            "PurchaseTaxIncluded",
        ],
        ObjectKind::Invoice => &[
            "DocNumber",
            "TxnDate",
            "DueDate",
            "PrivateNote",
            "CustomerMemo",
            "BillEmail",
            "ShipAddr",
            "BillAddr",
            "TrackingNum",
            "ShipDate",
            // S4: the sales-form custom fields, by slot.
            "CustomField1",
            "CustomField2",
            "CustomField3",
        ],
    }
}

/// HubSpot properties the integration keeps itself.
const OWN_PROPERTIES: [&str; 3] = ["qbo_customer_id", "qbo_item_id", "qbo_invoice_id"];

fn is_hubspot_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 100
}

fn is_qbo_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c.is_ascii_uppercase())
                && chars.all(|c| c.is_ascii_alphanumeric())
        })
}

/// Every problem with `settings`, given the default field keys of its object.
pub fn validate(settings: &ObjectSettings, default_keys: &[&str]) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut error = |field: String, message: String| errors.push(FieldError { field, message });
    for (i, key) in settings.disabled_fields.iter().enumerate() {
        if !default_keys.contains(&key.as_str()) {
            error(
                format!("disabled_fields[{i}]"),
                format!(
                    "there is no default mapping \"{key}\" (known: {})",
                    default_keys.join(", ")
                ),
            );
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, mapping) in settings.custom_mappings.iter().enumerate() {
        let at = |name: &str| format!("custom_mappings[{i}].{name}");
        let property = mapping.hubspot_property.as_str();
        if !is_hubspot_name(property) {
            error(
                at("hubspot_property"),
                format!("\"{property}\" is not a HubSpot property name (lower case letters, digits and _)"),
            );
        } else if OWN_PROPERTIES.contains(&property) {
            error(
                at("hubspot_property"),
                format!("\"{property}\" is kept by the integration itself"),
            );
        } else if seen.contains(&property) {
            error(
                at("hubspot_property"),
                format!("\"{property}\" is mapped twice"),
            );
        }
        seen.push(property);
        let path = mapping.qbo_field.as_str();
        let root = path.split('.').next().unwrap_or_default();
        if !is_qbo_path(path) {
            error(
                at("qbo_field"),
                format!("\"{path}\" is not a QuickBooks field path (e.g. Notes, BillAddr.Line2)"),
            );
        } else if !qbo_fields(settings.object).contains(&root) {
            error(
                at("qbo_field"),
                format!("QuickBooks has no writable field \"{root}\" on this object"),
            );
        }
        if let FieldKind::Enumeration { values } = &mapping.kind {
            if values.is_empty() {
                error(
                    at("values"),
                    "an enumeration needs at least one value pair".into(),
                );
            }
            for (j, value) in values.iter().enumerate() {
                if value.hubspot.trim().is_empty() || value.qbo.trim().is_empty() {
                    error(
                        format!("custom_mappings[{i}].values[{j}]"),
                        "both spellings are needed".into(),
                    );
                }
            }
        }
        let never = match (settings.direction, mapping.direction) {
            (Direction::HubSpotToQbo, MappingDirection::QboToHubSpot) => {
                Some("QuickBooks → HubSpot")
            }
            (Direction::QboToHubSpot, MappingDirection::HubSpotToQbo) => {
                Some("HubSpot → QuickBooks")
            }
            _ => None,
        };
        if let Some(way) = never {
            error(
                at("direction"),
                format!("this field would never sync: the object does not sync {way}"),
            );
        }
    }
    for (side, filters) in [
        ("hubspot_to_qbo", &settings.filters.hubspot_to_qbo),
        ("qbo_to_hubspot", &settings.filters.qbo_to_hubspot),
    ] {
        for (i, filter) in filters.iter().enumerate() {
            let at = format!("filters.{side}[{i}]");
            if filter.property.trim().is_empty() {
                error(format!("{at}.property"), "a filter needs a property".into());
            }
            match filter.operator {
                FilterOperator::After => {
                    let ok = filter.values.len() == 1
                        && OffsetDateTime::parse(&filter.values[0], &Rfc3339).is_ok();
                    if !ok {
                        error(
                            format!("{at}.values"),
                            "\"after\" takes one date-time (RFC 3339)".into(),
                        );
                    }
                }
                FilterOperator::IsAnyOf | FilterOperator::IsNoneOf if filter.values.is_empty() => {
                    error(
                        format!("{at}.values"),
                        "this filter needs at least one value".into(),
                    );
                }
                FilterOperator::HasValue if !filter.values.is_empty() => {
                    error(format!("{at}.values"), "\"is known\" takes no value".into());
                }
                _ => {}
            }
        }
    }
    if let Some(tax) = &settings.tax_mapping {
        if tax.default_tax_code.trim().is_empty() {
            error(
                "tax_mapping.default_tax_code".into(),
                "choose the QuickBooks tax code of lines without a mapped tax rate".into(),
            );
        }
        let mut rates: Vec<&str> = Vec::new();
        for (i, rate) in tax.rates.iter().enumerate() {
            if rate.hubspot.trim().is_empty() || rate.qbo.trim().is_empty() {
                error(
                    format!("tax_mapping.rates[{i}]"),
                    "a HubSpot tax rate and a QuickBooks tax code are both needed".into(),
                );
            } else if rates.contains(&rate.hubspot.as_str()) {
                error(
                    format!("tax_mapping.rates[{i}].hubspot"),
                    format!("the tax rate \"{}\" is mapped twice", rate.hubspot),
                );
            }
            rates.push(&rate.hubspot);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{default_settings, CustomMapping, EnumValue, Filter};
    use time::macros::date;

    fn contacts() -> ObjectSettings {
        default_settings(date!(2026 - 01 - 01)).remove(0)
    }

    fn custom(
        property: &str,
        field: &str,
        direction: MappingDirection,
        kind: FieldKind,
    ) -> CustomMapping {
        CustomMapping {
            hubspot_property: property.into(),
            qbo_field: field.into(),
            direction,
            kind,
        }
    }

    #[test]
    fn the_defaults_are_valid() {
        for settings in default_settings(date!(2026 - 01 - 01)) {
            assert_eq!(
                validate(&settings, &["email"]),
                Ok(()),
                "{:?}",
                settings.object
            );
        }
    }

    #[test]
    fn a_tax_mapping_needs_a_default_and_whole_unique_rates() {
        use crate::settings::{TaxMapping, TaxRateMapping};
        let rate = |hubspot: &str, qbo: &str| TaxRateMapping {
            hubspot: hubspot.into(),
            qbo: qbo.into(),
        };
        let mut settings = default_settings(date!(2026 - 01 - 01))[2].clone();
        let cases = [
            (
                TaxMapping {
                    default_tax_code: "2".into(),
                    rates: vec![rate("vat20", "2"), rate("zero", "4")],
                },
                vec![],
            ),
            (
                TaxMapping {
                    default_tax_code: " ".into(),
                    rates: vec![],
                },
                vec!["tax_mapping.default_tax_code"],
            ),
            (
                TaxMapping {
                    default_tax_code: "2".into(),
                    rates: vec![rate("vat20", ""), rate("zero", "4"), rate("zero", "3")],
                },
                vec!["tax_mapping.rates[0]", "tax_mapping.rates[2].hubspot"],
            ),
        ];
        for (mapping, fields) in cases {
            settings.tax_mapping = Some(mapping.clone());
            let found: Vec<String> = validate(&settings, &[])
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.field)
                .collect();
            assert_eq!(found, fields, "{mapping:?}");
        }
        let mapping = TaxMapping {
            default_tax_code: "2".into(),
            rates: vec![rate("zero", "4")],
        };
        assert_eq!(mapping.code_for(Some("zero")), "4");
        assert_eq!(mapping.code_for(Some("other")), "2");
        assert_eq!(mapping.code_for(None), "2");
    }

    #[test]
    fn each_problem_names_its_field() {
        let mut settings = contacts();
        settings.disabled_fields = vec!["email".into(), "fax".into()];
        settings.custom_mappings = vec![
            custom(
                "notes_field",
                "Notes",
                MappingDirection::Both,
                FieldKind::Text,
            ),
            custom("Bad Name", "Notes", MappingDirection::Both, FieldKind::Text),
            custom(
                "notes_field",
                "BillAddr.Line2",
                MappingDirection::Both,
                FieldKind::Text,
            ),
            custom(
                "balance",
                "Balance",
                MappingDirection::Both,
                FieldKind::Number,
            ),
            custom("x", "billaddr", MappingDirection::Both, FieldKind::Text),
            custom(
                "qbo_customer_id",
                "Notes",
                MappingDirection::Both,
                FieldKind::Text,
            ),
            custom(
                "tier",
                "Notes",
                MappingDirection::Both,
                FieldKind::Enumeration {
                    values: vec![EnumValue {
                        hubspot: "gold".into(),
                        qbo: " ".into(),
                    }],
                },
            ),
            custom(
                "empty_enum",
                "Notes",
                MappingDirection::Both,
                FieldKind::Enumeration { values: vec![] },
            ),
        ];
        settings.filters.qbo_to_hubspot = vec![
            Filter {
                property: "MetaData.CreateTime".into(),
                operator: FilterOperator::After,
                values: vec!["yesterday".into()],
            },
            Filter {
                property: "Active".into(),
                operator: FilterOperator::IsAnyOf,
                values: vec![],
            },
        ];
        let errors = validate(&settings, &["email", "first_name"]).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "disabled_fields[1]",
                "custom_mappings[1].hubspot_property",
                "custom_mappings[2].hubspot_property",
                "custom_mappings[3].qbo_field",
                "custom_mappings[4].qbo_field",
                "custom_mappings[5].hubspot_property",
                "custom_mappings[6].values[0]",
                "custom_mappings[7].values",
                "filters.qbo_to_hubspot[0].values",
                "filters.qbo_to_hubspot[1].values",
            ],
            "{errors:#?}"
        );
        assert!(errors[3].message.contains("no writable field \"Balance\""));
    }

    #[test]
    fn a_field_that_could_never_flow_is_refused() {
        let mut settings = contacts();
        settings.direction = Direction::QboToHubSpot;
        settings.custom_mappings = vec![custom(
            "x_y",
            "Notes",
            MappingDirection::HubSpotToQbo,
            FieldKind::Text,
        )];
        let errors = validate(&settings, &[]).unwrap_err();
        assert_eq!(errors[0].field, "custom_mappings[0].direction");
    }
}
