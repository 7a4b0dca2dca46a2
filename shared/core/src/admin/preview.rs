//! The preview: before a sync is turned on or its settings change, what its first run would do
//! (create, link to an existing record, update, leave out, skip, fail and why), counted, with
//! samples. The sync engine decides each record exactly as a run would, and writes nothing.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::{
    failed, invalid_fields, no_settings, object_of, store_error, AdminService, Caller, Outcome,
};
use crate::decide::{Decision, Skip};
use crate::domain::Provider;
use crate::error_class::ErrorClass;
use crate::queue::batch::MessageError;
use crate::settings::{default_settings, validate, ObjectSettings};
use crate::sync::engine::{Previewed, SyncError};
use crate::sync::settings::default_keys;

/// Samples shown of each decision.
pub const SAMPLES_PER_DECISION: usize = 5;

/// The decisions as a preview counts them, in the order it shows them.
pub const DECISIONS: [&str; 6] = ["create", "link", "update", "exclude", "skip", "fail"];

fn skip_reason(skip: &Skip) -> &'static str {
    match skip {
        Skip::DirectionOff => "this side does not sync in the chosen direction",
        Skip::Seen => "this version was handled already (synced or left out)",
        Skip::Unchanged => "nothing that syncs differs",
        Skip::GoneUnlinked => "deleted or inactive, and never synced",
        Skip::TargetGone => "its linked record on the other side is gone",
        Skip::LostConflict => "both sides changed and the other side wins",
        Skip::Filtered => "its changes are kept back by the filters",
    }
}

/// A decision's name in the preview, its error category (failures) and a sentence.
pub fn describe(
    decision: &Decision,
    from: Provider,
) -> (&'static str, Option<&'static str>, String) {
    let other = from.other().label();
    match decision {
        Decision::Create => ("create", None, format!("would be made in {other}")),
        Decision::Link { target_id, .. } => (
            "link",
            None,
            format!("would be linked to the existing {other} record {target_id}"),
        ),
        Decision::Update { target_id }
        | Decision::Overwrite { target_id }
        | Decision::UpdateBack { target_id } => (
            "update",
            None,
            format!("its linked {other} record {target_id} would be updated"),
        ),
        Decision::Exclude(reason) => ("exclude", None, format!("left out: {reason}")),
        Decision::TargetGone { reason } => ("skip", None, reason.clone()),
        Decision::Skip(skip) => ("skip", None, skip_reason(skip).to_owned()),
        Decision::Fail { category, message } => ("fail", Some(category), message.clone()),
    }
}

/// The counts by decision, failures by category, and a few samples of each decision.
pub fn summarize(previewed: &[Previewed]) -> Value {
    let mut counts: BTreeMap<&str, usize> = DECISIONS.iter().map(|d| (*d, 0)).collect();
    let mut failures: BTreeMap<&str, usize> = BTreeMap::new();
    let mut samples: Vec<Value> = Vec::new();
    let mut read: BTreeMap<&str, usize> = BTreeMap::new();
    for p in previewed {
        let (decision, category, detail) = describe(&p.decision, p.from);
        *read.entry(p.from.as_str()).or_default() += 1;
        let count = counts.entry(decision).or_default();
        *count += 1;
        if let Some(category) = category {
            *failures.entry(category).or_default() += 1;
        }
        if *count <= SAMPLES_PER_DECISION {
            samples.push(json!({
                "decision": decision,
                "side": p.from.as_str(),
                "id": p.id,
                "name": p.label,
                "category": category,
                "detail": detail,
            }));
        }
    }
    json!({
        "counts": counts,
        "failures": failures,
        "samples": samples,
        "read": {
            "hubspot": read.get("hubspot").copied().unwrap_or(0),
            "qbo": read.get("qbo").copied().unwrap_or(0),
        },
    })
}

impl AdminService {
    /// What the first run with `candidate` (else the saved settings, else the recommended
    /// ones) would do. Nothing is written anywhere.
    pub async fn preview(
        &self,
        caller: &Caller,
        id: &str,
        object: &str,
        candidate: Option<ObjectSettings>,
    ) -> Outcome {
        let connection = self.connection(caller, id).await?;
        let object = object_of(object)?;
        let settings = match candidate {
            Some(mut wanted) => {
                wanted.object = object;
                validate(&wanted, &default_keys(object)).map_err(|fields| {
                    invalid_fields(
                        fields
                            .iter()
                            .map(|f| (f.field.as_str(), f.message.as_str())),
                    )
                })?;
                wanted
            }
            None => match self
                .settings
                .get(&connection.id, object, self.now())
                .await
                .map_err(store_error)?
            {
                Some(saved) => saved,
                None => default_settings(self.clock.today())
                    .into_iter()
                    .find(|s| s.object == object)
                    .ok_or_else(|| no_settings(object))?,
            },
        };
        let Some(engine) = &self.engine else {
            return Err(failed(
                StatusCode::SERVICE_UNAVAILABLE,
                "preview_unavailable",
                "this deployment's admin function cannot reach the sync engine",
            ));
        };
        let previewed = engine
            .preview(&connection, &settings)
            .await
            .map_err(|e| match &e {
                SyncError::Unsupported(message) => failed(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "preview_unavailable",
                    message.clone(),
                ),
                _ if e.class() == ErrorClass::Retryable => failed(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "provider_unavailable",
                    format!("the preview could not read the records: {e}; try again"),
                ),
                _ => failed(
                    StatusCode::BAD_GATEWAY,
                    "provider_refused",
                    format!("the preview could not read the records: {e}"),
                ),
            })?;
        let mut summary = summarize(&previewed);
        summary["object"] = json!(object.as_str());
        summary["direction"] = json!(settings.direction);
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(from: Provider, id: &str, decision: Decision) -> Previewed {
        Previewed {
            from,
            id: id.into(),
            label: format!("record {id}"),
            decision,
        }
    }

    #[test]
    fn decisions_are_counted_failures_by_category_and_samples_capped() {
        let mut previewed = vec![
            one(
                Provider::HubSpot,
                "1",
                Decision::Link {
                    target_id: "7".into(),
                    push: true,
                },
            ),
            one(Provider::HubSpot, "2", Decision::Exclude("no email".into())),
            one(
                Provider::Qbo,
                "8",
                Decision::Fail {
                    category: "duplicate_email",
                    message: "two contacts share it".into(),
                },
            ),
            one(Provider::Qbo, "9", Decision::Skip(Skip::Unchanged)),
            one(
                Provider::HubSpot,
                "3",
                Decision::Update {
                    target_id: "5".into(),
                },
            ),
        ];
        previewed
            .extend((10..20).map(|n| one(Provider::HubSpot, &n.to_string(), Decision::Create)));
        let summary = summarize(&previewed);
        let table = [
            ("create", 10),
            ("link", 1),
            ("update", 1),
            ("exclude", 1),
            ("skip", 1),
            ("fail", 1),
        ];
        for (decision, n) in table {
            assert_eq!(summary["counts"][decision], json!(n), "{decision}");
        }
        assert_eq!(summary["failures"]["duplicate_email"], json!(1));
        assert_eq!(summary["read"], json!({"hubspot": 13, "qbo": 2}));
        let samples = summary["samples"].as_array().unwrap();
        let creates = samples.iter().filter(|s| s["decision"] == "create").count();
        assert_eq!(creates, SAMPLES_PER_DECISION);
        let link = samples.iter().find(|s| s["decision"] == "link").unwrap();
        assert_eq!(
            link["detail"],
            "would be linked to the existing QuickBooks record 7"
        );
    }
}
