//! HubSpot contacts ↔ QBO customers: the default field mappings, the match key (email, S10) and
//! the customer's display name (S9).

use super::{Field, Values};
use crate::settings::{FieldKind, MappingDirection, ObjectSettings};

/// The key of the derived display name (HubSpot → QBO only).
pub const DISPLAY_NAME: &str = "display_name";
/// The HubSpot property where the integration keeps the linked customer's id (unique), so a
/// customer without an email still upserts one contact only.
pub const QBO_ID_PROPERTY: &str = "qbo_customer_id";
/// HubSpot's contact email property (unique per portal).
pub const EMAIL: &str = "email";
/// The ids HubSpot merged into a contact (`;`-separated).
pub const MERGED_IDS: &str = "hs_merged_object_ids";
/// QBO allows at most this many characters in a display name.
const DISPLAY_NAME_MAX: usize = 500;
/// How many numbered display names are tried after the plain ones.
const NUMBERED_CANDIDATES: usize = 8;

/// The default mappings (S3), each switchable by its key.
pub fn default_fields() -> Vec<Field> {
    use MappingDirection::{Both, HubSpotToQbo};
    vec![
        Field::new(
            "email",
            EMAIL,
            "PrimaryEmailAddr.Address",
            FieldKind::Email,
            Both,
        ),
        Field::new(
            "first_name",
            "firstname",
            "GivenName",
            FieldKind::Text,
            Both,
        ),
        Field::new("last_name", "lastname", "FamilyName", FieldKind::Text, Both),
        Field::new(
            "phone",
            "phone",
            "PrimaryPhone.FreeFormNumber",
            FieldKind::Phone,
            Both,
        ),
        Field::new(
            "mobile",
            "mobilephone",
            "Mobile.FreeFormNumber",
            FieldKind::Phone,
            Both,
        ),
        Field::new("company", "company", "CompanyName", FieldKind::Text, Both),
        Field::new(
            "address",
            "address",
            "BillAddr.Line1",
            FieldKind::Text,
            Both,
        ),
        Field::new("city", "city", "BillAddr.City", FieldKind::Text, Both),
        Field::new(
            "state",
            "state",
            "BillAddr.CountrySubDivisionCode",
            FieldKind::Text,
            Both,
        ),
        Field::new("zip", "zip", "BillAddr.PostalCode", FieldKind::Text, Both),
        Field::new(
            "country",
            "country",
            "BillAddr.Country",
            FieldKind::Text,
            Both,
        ),
        Field::new(
            DISPLAY_NAME,
            "",
            "DisplayName",
            FieldKind::Text,
            HubSpotToQbo,
        ),
    ]
}

/// The properties to read of a contact: the mapped ones and what syncing needs besides.
pub fn hubspot_properties(fields: &[Field]) -> Vec<String> {
    let mut properties: Vec<String> = fields
        .iter()
        .filter(|f| !f.hubspot.is_empty())
        .map(|f| f.hubspot.clone())
        .collect();
    for extra in [
        EMAIL,
        "lastmodifieddate",
        "associatedcompanyid",
        QBO_ID_PROPERTY,
        MERGED_IDS,
    ] {
        if !properties.iter().any(|p| p == extra) {
            properties.push(extra.to_owned());
        }
    }
    properties
}

/// The match key: the email, trimmed and in lower case (already so in the neutral values).
pub fn match_key(values: &Values) -> Option<String> {
    values.get("email").cloned()
}

/// QBO refuses a colon, tab or newline in a display name.
fn sanitize(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if matches!(c, ':' | '\t' | '\n' | '\r') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let mut name = words.join(" ");
    if name.chars().count() > DISPLAY_NAME_MAX {
        name = name.chars().take(DISPLAY_NAME_MAX).collect();
    }
    name
}

/// The display names to try, in order (S9): from the contact's primary company (unless
/// switched off), else first and last name, else the email; with disambiguation on, then
/// `Company (First Last)` and numbered forms. Deterministic: the same contact always gets the
/// same list, so a rerun picks the same name.
pub fn display_names(
    values: &Values,
    primary_company: Option<&str>,
    settings: &ObjectSettings,
    hubspot_id: &str,
) -> Vec<String> {
    let person = [values.get("first_name"), values.get("last_name")]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    let company = primary_company
        .map(sanitize)
        .filter(|c| !c.is_empty() && settings.display_name_from_company);
    let base = company
        .clone()
        .or_else(|| (!person.is_empty()).then(|| person.clone()))
        .or_else(|| values.get("email").cloned())
        .unwrap_or_else(|| format!("HubSpot contact {hubspot_id}"));
    let base = sanitize(&base);
    let mut names = vec![base.clone()];
    if settings.disambiguate_display_names {
        if company.is_some() && !person.is_empty() {
            names.push(sanitize(&format!("{base} ({person})")));
        }
        let last = names.last().cloned().unwrap_or(base);
        names.extend((2..2 + NUMBERED_CANDIDATES).map(|n| sanitize(&format!("{last} {n}"))));
    }
    names.dedup();
    names
}

/// The candidates with `current` (the name the QBO record has) first, when it is one of
/// them: an update never renames a customer to a name another candidate rule would give.
pub fn keep_current_name(mut names: Vec<String>, current: Option<&str>) -> Vec<String> {
    if let Some(at) = current.and_then(|c| names.iter().position(|n| n == c)) {
        let name = names.remove(at);
        names.insert(0, name);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::default_settings;
    use time::macros::date;

    fn values(pairs: &[(&str, &str)]) -> Values {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn settings(from_company: bool, disambiguate: bool) -> ObjectSettings {
        let mut s = default_settings(date!(2026 - 01 - 01)).remove(0);
        s.display_name_from_company = from_company;
        s.disambiguate_display_names = disambiguate;
        s
    }

    #[test]
    fn display_names_follow_s9() {
        let ann = values(&[
            ("first_name", "Ann"),
            ("last_name", "Lee"),
            ("email", "ann@x.com"),
        ]);
        let cases: Vec<(Values, Option<&str>, ObjectSettings, Vec<&str>)> = vec![
            (
                ann.clone(),
                Some("Acme: West"),
                settings(true, false),
                vec!["Acme West"],
            ),
            (ann.clone(), None, settings(true, false), vec!["Ann Lee"]),
            (
                ann.clone(),
                Some("Acme"),
                settings(false, false),
                vec!["Ann Lee"],
            ),
            (
                values(&[("email", "bo@x.com")]),
                None,
                settings(true, false),
                vec!["bo@x.com"],
            ),
            (
                Values::new(),
                None,
                settings(true, false),
                vec!["HubSpot contact 51"],
            ),
            (
                ann.clone(),
                Some("Acme"),
                settings(true, true),
                vec![
                    "Acme",
                    "Acme (Ann Lee)",
                    "Acme (Ann Lee) 2",
                    "Acme (Ann Lee) 3",
                    "Acme (Ann Lee) 4",
                    "Acme (Ann Lee) 5",
                    "Acme (Ann Lee) 6",
                    "Acme (Ann Lee) 7",
                    "Acme (Ann Lee) 8",
                    "Acme (Ann Lee) 9",
                ],
            ),
        ];
        for (values, company, settings, expected) in cases {
            let names = display_names(&values, company, &settings, "51");
            assert_eq!(names, expected, "{values:?} {company:?}");
            assert_eq!(
                names,
                display_names(&values, company, &settings, "51"),
                "deterministic"
            );
        }
        let long = "x".repeat(600);
        assert_eq!(
            display_names(&Values::new(), Some(&long), &settings(true, false), "1")[0].len(),
            500
        );
    }

    #[test]
    fn contacts_read_what_matching_needs() {
        let properties = hubspot_properties(&default_fields());
        for needed in [
            "email",
            "firstname",
            "lastmodifieddate",
            "associatedcompanyid",
            QBO_ID_PROPERTY,
        ] {
            assert!(properties.iter().any(|p| p == needed), "{needed}");
        }
        assert_eq!(properties.iter().filter(|p| *p == "email").count(), 1);
        assert_eq!(
            match_key(&values(&[("email", "ann@x.com")])).as_deref(),
            Some("ann@x.com")
        );
    }

    #[test]
    fn an_update_keeps_the_name_the_customer_has() {
        let names = || vec!["Acme".to_owned(), "Acme (Ann Lee)".to_owned()];
        let cases: Vec<(Option<&str>, Vec<&str>)> = vec![
            (Some("Acme (Ann Lee)"), vec!["Acme (Ann Lee)", "Acme"]),
            (Some("Acme"), vec!["Acme", "Acme (Ann Lee)"]),
            (
                Some("Renamed in QuickBooks"),
                vec!["Acme", "Acme (Ann Lee)"],
            ),
            (None, vec!["Acme", "Acme (Ann Lee)"]),
        ];
        for (current, expected) in cases {
            assert_eq!(keep_current_name(names(), current), expected, "{current:?}");
        }
    }
}
