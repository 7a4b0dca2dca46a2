//! What to do with one changed record: create, update, link, skip (an echo, a replay, nothing
//! that flows), leave out, or fail — decided against the ledger, the settings and what is known
//! of the other side. Pure: every input is a value, the answer is a value.

use crate::domain::{Direction, Provider};
use crate::ledger::{LedgerEntry, LinkStatus};
use crate::settings::ConflictWinner;

/// The changed record, in the terms the decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<'a> {
    pub from: Provider,
    pub id: &'a str,
    /// HubSpot: `updatedAt` in epoch ms; QBO: the SyncToken.
    pub version: Option<i64>,
    /// Of the mapped values that flow from `from`.
    pub fingerprint: &'a str,
    /// The record was deleted, archived or made inactive.
    pub gone: Option<Gone>,
    /// The normalised email or SKU.
    pub match_key: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// Deleted in QBO (transactions), or its CDC stub says so.
    Deleted,
    /// Made inactive in QBO (customers and items cannot be deleted).
    Inactive,
    /// Archived (deleted) in HubSpot.
    Archived,
}

impl Gone {
    pub fn explanation(self, from: Provider) -> String {
        match self {
            Gone::Deleted => format!("deleted in {}", from.label()),
            Gone::Inactive => format!("made inactive in {}", from.label()),
            Gone::Archived => format!("archived in {}", from.label()),
        }
    }
}

/// A record of the other side: found by the match key, or the linked one as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterpart<'a> {
    pub id: &'a str,
    pub version: Option<i64>,
    /// Of the mapped values that flow from the other side.
    pub fingerprint: &'a str,
}

/// Everything else the decision looks at.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    pub direction: Option<Direction>,
    pub conflict: Option<ConflictWinner>,
    pub entry: Option<&'a LedgerEntry>,
    /// Why a filter left the record out, if one did.
    pub excluded: Option<String>,
    /// A rule the record breaks before anything is written (no SKU), with its reason.
    pub unsyncable: Option<String>,
    /// Another link already holds this match key.
    pub key_held_by: Option<&'a str>,
    /// An unlinked record of the other side with the same match key.
    pub matched: Option<Counterpart<'a>>,
    /// The linked record of the other side as it is now (two-way sync reads it to see
    /// whether it changed too).
    pub counterpart: Option<Counterpart<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The object does not flow from this side.
    DirectionOff,
    /// This version was seen already (a replay, or our own write coming back).
    Seen,
    /// Nothing that flows changed (our own echo, or a change of fields not mapped).
    Unchanged,
    /// A deleted or inactive record that was never linked.
    GoneUnlinked,
    /// The linked record of the other side is gone: it is not made again.
    TargetGone,
    /// Both sides changed and the other side wins; its change comes through on its own.
    LostConflict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Skip(Skip),
    /// Keep it out, for this reason (a filter, no SKU, deleted on this side).
    Exclude(String),
    /// Make the record on the other side.
    Create,
    /// Write this record's values to the linked record.
    Update {
        target_id: String,
    },
    /// Link to the matching record of the other side, then write this record's values to it
    /// (`push`), or take the other side's values (`pull`, when the other side wins).
    Link {
        target_id: String,
        push: bool,
    },
    /// Both changed since the last sync and the other side wins: its values come back here.
    UpdateBack {
        target_id: String,
    },
    Fail {
        category: &'static str,
        message: String,
    },
}

fn flows(direction: Direction, from: Provider) -> bool {
    match from {
        Provider::HubSpot => direction.hubspot_to_qbo(),
        Provider::Qbo => direction.qbo_to_hubspot(),
    }
}

fn winner(conflict: ConflictWinner) -> Provider {
    match conflict {
        ConflictWinner::HubSpot => Provider::HubSpot,
        ConflictWinner::QuickBooks => Provider::Qbo,
    }
}

pub fn decide(change: &Change<'_>, context: &Context<'_>) -> Decision {
    let direction = context.direction.unwrap_or(Direction::TwoWay);
    if !flows(direction, change.from) {
        return Decision::Skip(Skip::DirectionOff);
    }
    let other = match change.from {
        Provider::HubSpot => Provider::Qbo,
        Provider::Qbo => Provider::HubSpot,
    };
    let two_way = direction == Direction::TwoWay;
    let conflict_winner = winner(context.conflict.unwrap_or(ConflictWinner::QuickBooks));

    let Some(entry) = context.entry else {
        if change.gone.is_some() {
            return Decision::Skip(Skip::GoneUnlinked);
        }
        if let Some(reason) = &context.excluded {
            return Decision::Exclude(reason.clone());
        }
        if let Some(reason) = &context.unsyncable {
            return Decision::Exclude(reason.clone());
        }
        if let Some(holder) = context.key_held_by {
            return Decision::Fail {
                category: "match_key_already_linked",
                message: format!(
                    "another record with the same {} is already linked ({holder}); the two \
                     cannot both be linked to one record — make the {} unique",
                    key_name(change),
                    key_name(change)
                ),
            };
        }
        return match &context.matched {
            Some(found) => Decision::Link {
                target_id: found.id.to_owned(),
                push: !two_way || conflict_winner == change.from,
            },
            None => Decision::Create,
        };
    };

    let seen = entry.side(change.from);
    if change.version.is_some() && seen.version.is_some() && change.version <= seen.version {
        return Decision::Skip(Skip::Seen);
    }
    if let Some(gone) = change.gone {
        return Decision::Exclude(gone.explanation(change.from));
    }
    // Never recreate what a person deleted on the other side.
    if entry.side(other).gone {
        return Decision::Skip(Skip::TargetGone);
    }
    if let Some(reason) = &context.excluded {
        return Decision::Exclude(reason.clone());
    }
    let unchanged = seen.fingerprint.as_deref() == Some(change.fingerprint);
    // A record that is failing or excluded is retried even when it did not change.
    if unchanged && entry.status == LinkStatus::Synced {
        return Decision::Skip(Skip::Unchanged);
    }
    let Some(target_id) = entry.side(other).id.clone() else {
        return Decision::Create;
    };
    if two_way {
        if let Some(now) = &context.counterpart {
            let known = entry.side(other);
            let other_changed = known.fingerprint.as_deref() != Some(now.fingerprint)
                && (now.version.is_none()
                    || known.version.is_none()
                    || now.version > known.version);
            if other_changed && !unchanged {
                return if conflict_winner == change.from {
                    Decision::Update { target_id }
                } else {
                    Decision::UpdateBack {
                        target_id: change.id.to_owned(),
                    }
                };
            }
        }
    }
    Decision::Update { target_id }
}

fn key_name(change: &Change<'_>) -> &'static str {
    // The key of contacts is an email, of products a SKU; the change does not say which, but a
    // key containing '@' is an email.
    match change.match_key {
        Some(key) if key.contains('@') => "email",
        _ => "SKU",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ConnectionId, ObjectKind};
    use crate::ledger::SideState;

    fn linked(hs: (&str, i64, &str), qbo: (&str, i64, &str)) -> LedgerEntry {
        let mut entry = LedgerEntry::new(
            ConnectionId::parse("c1").unwrap(),
            ObjectKind::Contact,
            Provider::HubSpot,
            hs.0,
            0,
        );
        entry.hubspot = SideState {
            id: Some(hs.0.into()),
            version: Some(hs.1),
            fingerprint: Some(hs.2.into()),
            gone: false,
        };
        entry.qbo = SideState {
            id: Some(qbo.0.into()),
            version: Some(qbo.1),
            fingerprint: Some(qbo.2.into()),
            gone: false,
        };
        entry.mark_synced();
        entry
    }

    fn from_hubspot<'a>(version: i64, fingerprint: &'a str) -> Change<'a> {
        Change {
            from: Provider::HubSpot,
            id: "51",
            version: Some(version),
            fingerprint,
            gone: None,
            match_key: Some("ann@x.com"),
        }
    }

    #[test]
    fn decisions_follow_the_rules() {
        let entry = linked(("51", 100, "hs-a"), ("7", 3, "qbo-a"));
        let mut archived = entry.clone();
        archived.qbo.gone = true;
        let mut failing = entry.clone();
        failing.mark_failing("rate_limited", "busy", true, 5);
        let two_way = |conflict| Context {
            direction: Some(Direction::TwoWay),
            conflict: Some(conflict),
            entry: Some(&entry),
            ..Context::default()
        };
        let qbo_changed = Counterpart {
            id: "7",
            version: Some(4),
            fingerprint: "qbo-b",
        };
        let qbo_same = Counterpart {
            id: "7",
            version: Some(3),
            fingerprint: "qbo-a",
        };
        let matched = Counterpart {
            id: "9",
            version: Some(1),
            fingerprint: "qbo-x",
        };
        let cases: Vec<(&str, Change, Context, Decision)> = vec![
            (
                "a one-way object from the other side",
                from_hubspot(101, "hs-b"),
                Context {
                    direction: Some(Direction::QboToHubSpot),
                    entry: Some(&entry),
                    ..Context::default()
                },
                Decision::Skip(Skip::DirectionOff),
            ),
            ("a replay", from_hubspot(100, "hs-b"), two_way(ConflictWinner::QuickBooks), Decision::Skip(Skip::Seen)),
            ("an echo", from_hubspot(101, "hs-a"), two_way(ConflictWinner::QuickBooks), Decision::Skip(Skip::Unchanged)),
            (
                "a change",
                from_hubspot(101, "hs-b"),
                two_way(ConflictWinner::QuickBooks),
                Decision::Update { target_id: "7".into() },
            ),
            (
                "a change; the other side unchanged",
                from_hubspot(101, "hs-b"),
                Context {
                    counterpart: Some(qbo_same.clone()),
                    ..two_way(ConflictWinner::QuickBooks)
                },
                Decision::Update { target_id: "7".into() },
            ),
            (
                "both changed, QuickBooks wins",
                from_hubspot(101, "hs-b"),
                Context {
                    counterpart: Some(qbo_changed.clone()),
                    ..two_way(ConflictWinner::QuickBooks)
                },
                Decision::UpdateBack { target_id: "51".into() },
            ),
            (
                "both changed, HubSpot wins",
                from_hubspot(101, "hs-b"),
                Context {
                    counterpart: Some(qbo_changed),
                    ..two_way(ConflictWinner::HubSpot)
                },
                Decision::Update { target_id: "7".into() },
            ),
            (
                "unchanged but failing: tried again",
                from_hubspot(101, "hs-a"),
                Context {
                    entry: Some(&failing),
                    ..two_way(ConflictWinner::QuickBooks)
                },
                Decision::Update { target_id: "7".into() },
            ),
            (
                "the linked customer was made inactive: not made again",
                from_hubspot(101, "hs-b"),
                Context {
                    entry: Some(&archived),
                    ..two_way(ConflictWinner::QuickBooks)
                },
                Decision::Skip(Skip::TargetGone),
            ),
            (
                "archived in HubSpot",
                Change {
                    gone: Some(Gone::Archived),
                    ..from_hubspot(101, "hs-b")
                },
                two_way(ConflictWinner::QuickBooks),
                Decision::Exclude("archived in HubSpot".into()),
            ),
            (
                "a filter leaves a linked record out",
                from_hubspot(101, "hs-b"),
                Context {
                    excluded: Some("left out".into()),
                    ..two_way(ConflictWinner::QuickBooks)
                },
                Decision::Exclude("left out".into()),
            ),
            ("new", from_hubspot(1, "hs-a"), Context::default(), Decision::Create),
            (
                "new, matched by email, two-way, QuickBooks wins",
                from_hubspot(1, "hs-a"),
                Context {
                    matched: Some(matched.clone()),
                    conflict: Some(ConflictWinner::QuickBooks),
                    ..Context::default()
                },
                Decision::Link { target_id: "9".into(), push: false },
            ),
            (
                "new, matched by email, one way",
                from_hubspot(1, "hs-a"),
                Context {
                    direction: Some(Direction::HubSpotToQbo),
                    matched: Some(matched),
                    ..Context::default()
                },
                Decision::Link { target_id: "9".into(), push: true },
            ),
            (
                "new, but its email belongs to another link",
                from_hubspot(1, "hs-a"),
                Context {
                    key_held_by: Some("hs:60"),
                    ..Context::default()
                },
                Decision::Fail {
                    category: "match_key_already_linked",
                    message: "another record with the same email is already linked (hs:60); the two cannot both be linked to one record — make the email unique".into(),
                },
            ),
            (
                "new and filtered out",
                from_hubspot(1, "hs-a"),
                Context {
                    excluded: Some("left out".into()),
                    ..Context::default()
                },
                Decision::Exclude("left out".into()),
            ),
            (
                "new without a SKU",
                from_hubspot(1, "hs-a"),
                Context {
                    unsyncable: Some("no SKU".into()),
                    ..Context::default()
                },
                Decision::Exclude("no SKU".into()),
            ),
            (
                "deleted and never linked",
                Change {
                    gone: Some(Gone::Inactive),
                    ..from_hubspot(1, "hs-a")
                },
                Context::default(),
                Decision::Skip(Skip::GoneUnlinked),
            ),
        ];
        for (name, change, context, expected) in cases {
            assert_eq!(decide(&change, &context), expected, "{name}");
        }
    }

    #[test]
    fn a_link_whose_other_side_was_never_made_is_created() {
        let mut entry = linked(("51", 100, "hs-a"), ("7", 3, "qbo-a"));
        entry.qbo = SideState::default();
        entry.mark_failing("duplicate_display_name", "taken", false, 1);
        let context = Context {
            entry: Some(&entry),
            ..Context::default()
        };
        assert_eq!(
            decide(&from_hubspot(100 + 1, "hs-a"), &context),
            Decision::Create
        );
    }
}
