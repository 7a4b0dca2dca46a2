//! Seed files: portals with custom properties, records (explicit ids allowed, for associations)
//! and associations. Loaded at start, by `/_sandbox/seed` and by the generator.

use super::app::HubState;
use super::assoc_types::Category;
use super::format::{iso, parse_instant, value_text};
use super::objects::ObjectType;
use super::properties::{create_property, PropertyCreate};
use super::store::{GroupDef, Input, Portal, Source};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

pub const DEFAULT_PORTAL: u64 = 62_515;
pub const SECOND_PORTAL: u64 = 62_516;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct HubSeed {
    pub portals: Vec<PortalSeed>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct PortalSeed {
    pub portal_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Custom property definitions by object type (Properties API create bodies).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, Vec<serde_json::Value>>,
    /// Records by object type (`contacts`, `deals`, `0-53` …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub records: BTreeMap<String, Vec<RecordSeed>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub associations: Vec<AssocSeed>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct RecordSeed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub properties: Input,
    /// Last-modified time (ISO or epoch ms); default: the create date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct AssocSeed {
    pub from_type: String,
    pub from_id: u64,
    pub to_type: String,
    pub to_id: u64,
    /// HubSpot-defined type id in the from → to direction; default: the unlabeled default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_id: Option<u32>,
}

/// Two empty portals: 62515 (first, so consent picks it) and 62516.
pub fn default_seed() -> HubSeed {
    HubSeed {
        portals: vec![
            PortalSeed {
                portal_id: DEFAULT_PORTAL,
                ..PortalSeed::default()
            },
            PortalSeed {
                portal_id: SECOND_PORTAL,
                ..PortalSeed::default()
            },
        ],
    }
}

fn object_type(name: &str) -> Result<ObjectType, String> {
    ObjectType::parse(name).ok_or_else(|| format!("unknown object type {name}"))
}

/// Builds one portal from its seed.
pub fn build_portal(seed: &PortalSeed, now: OffsetDateTime) -> Result<Portal, String> {
    let mut portal = Portal::new(seed.portal_id, now);
    portal.seeding = true;
    if let Some(d) = &seed.domain {
        portal.domain = d.clone();
    }
    let source = Source {
        change_source: "IMPORT".into(),
        source_id: None,
    };
    for (type_name, props) in &seed.properties {
        let t = object_type(type_name)?;
        for raw in props {
            let input: PropertyCreate = serde_json::from_value(raw.clone())
                .map_err(|e| format!("property in {type_name}: {e}"))?;
            let schema = portal.schema_mut(t);
            schema
                .groups
                .entry(input.group_name.clone())
                .or_insert_with(|| GroupDef {
                    name: input.group_name.clone(),
                    label: input.group_name.replace('_', " "),
                    display_order: -1,
                    archived: false,
                });
            create_property(&mut portal, t, &input, now)
                .map_err(|e| format!("property {}: {}", input.name, e.message))?;
        }
    }
    // Records load in a fixed type order so that ids given implicitly are deterministic.
    for t in ObjectType::ALL {
        let Some(list) = seed
            .records
            .iter()
            .filter(|(k, _)| ObjectType::parse(k) == Some(t))
            .map(|(_, v)| v)
            .next()
        else {
            continue;
        };
        for rec in list {
            let schema = portal.schema(t);
            let (read_only, writable): (Input, Input) = rec
                .properties
                .clone()
                .into_iter()
                .partition(|(k, _)| schema.live(k).is_some_and(|p| p.read_only_value));
            let mut values = portal
                .validate(t, &writable, false, None)
                .map_err(|e| format!("{} record {:?}: {}", t.name(), rec.id, e.message))?;
            for (k, v) in read_only {
                values.insert(k, value_text(&v));
            }
            let id = portal.insert(t, values, now, &source, rec.id);
            if let Some(r) = portal.records.get_mut(&t).and_then(|m| m.get_mut(&id)) {
                let updated = rec
                    .updated_at
                    .as_deref()
                    .and_then(parse_instant)
                    .unwrap_or(r.created_at);
                r.updated_at = updated;
                r.properties
                    .insert(t.last_modified_property().into(), iso(updated));
            }
        }
    }
    for a in &seed.associations {
        let (from, to) = (object_type(&a.from_type)?, object_type(&a.to_type)?);
        let spec = match a.type_id {
            Some(id) => portal.assoc_type(from, to, id).cloned(),
            None => portal.default_type(from, to).cloned(),
        }
        .ok_or_else(|| {
            format!(
                "no association type {:?} from {} to {}",
                a.type_id,
                from.name(),
                to.name()
            )
        })?;
        let category = if spec.category == Category::HubspotDefined {
            Category::HubspotDefined
        } else {
            spec.category
        };
        portal
            .associate(
                from, a.from_id, to, a.to_id, category, spec.id, now, &source,
            )
            .map_err(|e| {
                format!(
                    "association {}:{} -> {}:{}: {}",
                    from.name(),
                    a.from_id,
                    to.name(),
                    a.to_id,
                    e.message
                )
            })?;
    }
    // Associating bumps nothing visible; seeds create no webhook traffic.
    portal.seeding = false;
    portal.settle_all_invoices();
    portal.take_changes();
    Ok(portal)
}

/// Replaces every portal with the seed's (tokens stay valid for portals that remain).
pub fn load(state: &mut HubState, seed: &HubSeed, now: OffsetDateTime) -> Result<Vec<u64>, String> {
    let mut portals = BTreeMap::new();
    for p in &seed.portals {
        if portals.contains_key(&p.portal_id) {
            return Err(format!("portal {} appears twice", p.portal_id));
        }
        portals.insert(p.portal_id, build_portal(p, now)?);
    }
    let ids = portals.keys().copied().collect();
    state.portals = portals;
    Ok(ids)
}
