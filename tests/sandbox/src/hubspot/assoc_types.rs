//! HubSpot-defined association types (directional type ids, from `hubspot/crm/association_type.py`)
//! and user-defined labels. Every type has an inverse; writing one direction writes both.

use super::objects::ObjectType;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    HubspotDefined,
    UserDefined,
    IntegratorDefined,
}

impl Category {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "HUBSPOT_DEFINED" => Some(Self::HubspotDefined),
            "USER_DEFINED" => Some(Self::UserDefined),
            "INTEGRATOR_DEFINED" => Some(Self::IntegratorDefined),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HubspotDefined => "HUBSPOT_DEFINED",
            Self::UserDefined => "USER_DEFINED",
            Self::IntegratorDefined => "INTEGRATOR_DEFINED",
        }
    }
}

/// One directional association type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssocType {
    pub from: ObjectType,
    pub to: ObjectType,
    pub category: Category,
    pub id: u32,
    pub inverse: u32,
    /// `Some("Primary")` for labelled types; `None` for the unlabeled default.
    pub label: Option<String>,
    /// The unlabeled default type of this (from, to) pair.
    pub default: bool,
    /// The v3 `type` string (`contact_to_company`, `contact_to_company_unlabeled`).
    pub name: String,
}

use ObjectType::{
    CommercePayments as Pay, Companies as Co, Contacts as Ct, Deals as Dl, Invoices as Inv,
    LineItems as Li, Notes as Nt, Quotes as Qt,
};

/// (from, to, id, inverse id, label): unlabeled defaults have no label; a pair with a labelled
/// Primary type also has an unlabeled default.
const PAIRS: &[(ObjectType, ObjectType, u32, u32, Option<&str>)] = &[
    (Ct, Co, 279, 280, None),
    (Ct, Co, 1, 2, Some("Primary")),
    (Dl, Ct, 3, 4, None),
    (Dl, Co, 341, 342, None),
    (Dl, Co, 5, 6, Some("Primary")),
    (Dl, Li, 19, 20, None),
    (Dl, Qt, 63, 64, None),
    (Qt, Li, 67, 68, None),
    (Qt, Ct, 69, 70, None),
    (Qt, Co, 71, 72, None),
    (Inv, Dl, 175, 176, None),
    (Inv, Ct, 177, 178, None),
    (Inv, Co, 179, 180, None),
    (Inv, Qt, 407, 408, None),
    (Inv, Li, 409, 410, None),
    (Inv, Pay, 541, 542, None),
    (Pay, Ct, 387, 388, None),
    (Pay, Co, 389, 390, None),
    (Pay, Dl, 391, 392, None),
    (Pay, Li, 395, 396, None),
    (Pay, Qt, 397, 398, None),
    (Nt, Ct, 202, 201, None),
    (Nt, Co, 190, 189, None),
    (Nt, Dl, 214, 213, None),
    // Note ↔ invoice: HubSpot publishes no id for this pair; clients read it from the labels
    // endpoint, so the sandbox's own pair of numbers stands in.
    (Nt, Inv, 2201, 2202, None),
];

/// Every HubSpot-defined type, both directions.
pub fn builtin_types() -> Vec<AssocType> {
    let mut out = Vec::new();
    for &(from, to, id, inverse, label) in PAIRS {
        let labelled_pair = PAIRS
            .iter()
            .any(|p| p.0 == from && p.1 == to && p.4.is_some());
        for (f, t, i, inv) in [(from, to, id, inverse), (to, from, inverse, id)] {
            let base = format!("{}_to_{}", f.singular(), t.singular());
            let name = if label.is_none() && labelled_pair {
                format!("{base}_unlabeled")
            } else {
                base
            };
            out.push(AssocType {
                from: f,
                to: t,
                category: Category::HubspotDefined,
                id: i,
                inverse: inv,
                label: label.map(str::to_string),
                default: label.is_none(),
                name,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_has_one_default_each_way() {
        let types = builtin_types();
        for t in &types {
            let defaults = types
                .iter()
                .filter(|x| x.from == t.from && x.to == t.to && x.default)
                .count();
            assert_eq!(defaults, 1, "{:?}->{:?}", t.from, t.to);
            let inverse = types.iter().find(|x| x.id == t.inverse);
            assert!(inverse.is_some_and(|x| x.from == t.to && x.inverse == t.id));
        }
        let primary = types.iter().find(|t| t.id == 1).map(|t| t.name.clone());
        assert_eq!(primary.as_deref(), Some("contact_to_company"));
        let unl = types.iter().find(|t| t.id == 279).map(|t| t.name.clone());
        assert_eq!(unl.as_deref(), Some("contact_to_company_unlabeled"));
    }
}
