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
    /// It was deleted, archived or made inactive there.
    pub gone: Option<Gone>,
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
    /// A linked record's change that this direction's filters keep from flowing.
    Filtered,
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
    /// Both changed since the last sync and this side wins: its values go over the other's.
    Overwrite {
        target_id: String,
    },
    /// Both changed since the last sync and the other side wins: its values come back here.
    UpdateBack {
        target_id: String,
    },
    /// The linked record of the other side turned out to be gone: the link is kept, left
    /// out, and nothing is made again.
    TargetGone {
        reason: String,
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
    let other = change.from.other();
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
    // A failure that waits for a person is not tried again on the same version read again;
    // a retry (due, or asked for) or a new version is.
    if let Some(failure) = entry.failure.as_ref().filter(|f| {
        entry.status == LinkStatus::Failing
            && f.next_retry_at.is_none()
            && f.source == Some(change.from)
    }) {
        if change.version.is_some()
            && failure.version.is_some()
            && change.version <= failure.version
        {
            return Decision::Skip(Skip::Seen);
        }
    }
    if let Some(gone) = change.gone {
        return Decision::Exclude(gone.explanation(change.from));
    }
    // Never recreate what a person deleted on the other side.
    if entry.side(other).gone {
        return Decision::Skip(Skip::TargetGone);
    }
    if let Some(gone) = context.counterpart.as_ref().and_then(|c| c.gone) {
        return Decision::TargetGone {
            reason: gone.explanation(other),
        };
    }
    if let Some(reason) = &context.excluded {
        // Filters choose which records enter the sync and, per direction, whose changes flow:
        // a linked record keeps its link (and its other direction); only this change stays.
        if entry.side(other).id.is_some() {
            return Decision::Skip(Skip::Filtered);
        }
        return Decision::Exclude(reason.clone());
    }
    let unchanged = seen.fingerprint.as_deref() == Some(change.fingerprint);
    // A record that is failing or excluded is retried even when it did not change.
    if unchanged && entry.status == LinkStatus::Synced {
        return Decision::Skip(Skip::Unchanged);
    }
    let Some(target_id) = entry.side(other).id.clone() else {
        // Never linked (its create failed): matched again, as a new record would be.
        return match &context.matched {
            Some(found) => Decision::Link {
                target_id: found.id.to_owned(),
                push: !two_way || conflict_winner == change.from,
            },
            None => Decision::Create,
        };
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
                    Decision::Overwrite { target_id }
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

/// What becomes of the links of HubSpot records merged into one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MergePlan {
    /// The link the merged record takes over (moved to its id), if it has none of its own.
    pub moves: Option<String>,
    /// Links left without a HubSpot record: kept and left out, never made again.
    pub released: Vec<String>,
}

/// The merged record keeps its own link; without one, it takes over the link whose match key
/// it kept (HubSpot keeps the primary's email), else the first one linked to QBO. Every other
/// merged record's link is released.
pub fn plan_merge(
    survivor_key: Option<&str>,
    survivor_entry: Option<&LedgerEntry>,
    merged: &[&LedgerEntry],
) -> MergePlan {
    let own = survivor_entry.map(|e| e.link.as_str());
    let others: Vec<&LedgerEntry> = merged
        .iter()
        .copied()
        .filter(|e| Some(e.link.as_str()) != own && !e.hubspot.gone)
        .collect();
    let moves = if own.is_some() {
        None
    } else {
        others
            .iter()
            .find(|e| survivor_key.is_some() && e.match_key.as_deref() == survivor_key)
            .or_else(|| others.iter().find(|e| e.qbo.id.is_some() && !e.qbo.gone))
            .or_else(|| others.first())
            .map(|e| e.link.clone())
    };
    MergePlan {
        released: others
            .iter()
            .filter(|e| Some(&e.link) != moves.as_ref())
            .map(|e| e.link.clone())
            .collect(),
        moves,
    }
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
        let mut unlinked = entry.clone();
        unlinked.qbo = SideState::default();
        unlinked.mark_excluded("left out");
        let mut failing = entry.clone();
        failing.fail(Provider::HubSpot, "rate_limited", "busy", true, 5);
        let mut never_linked = entry.clone();
        never_linked.qbo = SideState::default();
        never_linked.fail(Provider::HubSpot, "duplicate_record", "exists", true, 5);
        // Failed on version 101, waiting for a person (not retried by itself).
        let mut for_a_person = never_linked.clone();
        for_a_person.fail(
            Provider::HubSpot,
            "duplicate_display_name",
            "taken",
            false,
            6,
        );
        for_a_person.failed_at(Some(101));
        let mut asked_again = for_a_person.clone();
        if let Some(f) = asked_again.failure.as_mut() {
            f.next_retry_at = Some(7);
        }
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
            gone: None,
        };
        let qbo_same = Counterpart {
            id: "7",
            version: Some(3),
            fingerprint: "qbo-a",
            gone: None,
        };
        let matched = Counterpart {
            id: "9",
            version: Some(1),
            fingerprint: "qbo-x",
            gone: None,
        };
        let qbo_inactive = Counterpart {
            gone: Some(Gone::Inactive),
            ..qbo_changed.clone()
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
            (
                "the version that failed, read again while it waits for a person",
                from_hubspot(101, "hs-b"),
                Context { entry: Some(&for_a_person), ..two_way(ConflictWinner::QuickBooks) },
                Decision::Skip(Skip::Seen),
            ),
            (
                "a newer version of a record that waits for a person",
                from_hubspot(102, "hs-c"),
                Context { entry: Some(&for_a_person), ..two_way(ConflictWinner::QuickBooks) },
                Decision::Create,
            ),
            (
                "the version that failed, once a retry is asked for",
                from_hubspot(101, "hs-b"),
                Context { entry: Some(&asked_again), ..two_way(ConflictWinner::QuickBooks) },
                Decision::Create,
            ),
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
                Decision::Overwrite { target_id: "7".into() },
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
                "the linked customer turns out inactive when read",
                from_hubspot(101, "hs-b"),
                Context {
                    counterpart: Some(qbo_inactive),
                    ..two_way(ConflictWinner::HubSpot)
                },
                Decision::TargetGone { reason: "made inactive in QuickBooks".into() },
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
                "a filter keeps a linked record's change from flowing, not its link",
                from_hubspot(101, "hs-b"),
                Context {
                    excluded: Some("left out".into()),
                    ..two_way(ConflictWinner::QuickBooks)
                },
                Decision::Skip(Skip::Filtered),
            ),
            (
                "a filter leaves a record out that was never linked",
                from_hubspot(101, "hs-b"),
                Context {
                    excluded: Some("left out".into()),
                    entry: Some(&unlinked),
                    ..two_way(ConflictWinner::QuickBooks)
                },
                Decision::Exclude("left out".into()),
            ),
            ("new", from_hubspot(1, "hs-a"), Context::default(), Decision::Create),
            (
                "a record whose create failed is created again when nothing matches",
                from_hubspot(101, "hs-b"),
                Context {
                    entry: Some(&never_linked),
                    ..two_way(ConflictWinner::QuickBooks)
                },
                Decision::Create,
            ),
            (
                "a record whose create failed links what it matches now",
                from_hubspot(101, "hs-b"),
                Context {
                    entry: Some(&never_linked),
                    matched: Some(matched.clone()),
                    ..two_way(ConflictWinner::QuickBooks)
                },
                Decision::Link { target_id: "9".into(), push: false },
            ),
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
        entry.fail(
            Provider::HubSpot,
            "duplicate_display_name",
            "taken",
            false,
            1,
        );
        let context = Context {
            entry: Some(&entry),
            ..Context::default()
        };
        assert_eq!(
            decide(&from_hubspot(100 + 1, "hs-a"), &context),
            Decision::Create
        );
    }

    #[test]
    fn a_merged_record_keeps_one_link_and_releases_the_others() {
        let entry = |hs: &str, qbo: Option<&str>, key: &str| {
            let mut e = LedgerEntry::new(
                ConnectionId::parse("c1").unwrap(),
                ObjectKind::Contact,
                Provider::HubSpot,
                hs,
                0,
            );
            e.qbo.id = qbo.map(str::to_owned);
            e.match_key = Some(key.into());
            e
        };
        let primary = entry("1", Some("7"), "kim@x.com");
        let secondary = entry("2", Some("8"), "kim.old@x.com");
        let unlinked = entry("3", None, "k@x.com");
        let survivor = entry("9", Some("5"), "kim@x.com");
        #[allow(clippy::type_complexity)]
        let cases: Vec<(
            &str,
            Option<&str>,
            Option<&LedgerEntry>,
            Vec<&LedgerEntry>,
            MergePlan,
        )> = vec![
            (
                "a new record takes the link of the email it kept",
                Some("kim@x.com"),
                None,
                vec![&secondary, &primary],
                MergePlan {
                    moves: Some("hs:1".into()),
                    released: vec!["hs:2".into()],
                },
            ),
            (
                "without that email, the first link to QuickBooks",
                Some("other@x.com"),
                None,
                vec![&unlinked, &secondary],
                MergePlan {
                    moves: Some("hs:2".into()),
                    released: vec!["hs:3".into()],
                },
            ),
            (
                "a survivor with its own link keeps it",
                Some("kim@x.com"),
                Some(&survivor),
                vec![&primary, &secondary],
                MergePlan {
                    moves: None,
                    released: vec!["hs:1".into(), "hs:2".into()],
                },
            ),
            ("nothing linked", None, None, vec![], MergePlan::default()),
        ];
        for (name, key, own, merged, expected) in cases {
            assert_eq!(plan_merge(key, own, &merged), expected, "{name}");
        }
    }
}
