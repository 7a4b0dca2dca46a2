//! The object view's chart: of the records whose last change fell in each of the last 24 hours,
//! how many ended synced and how many failing.

use serde::Serialize;

use crate::ledger::{LedgerEntry, LinkStatus};

pub const HOURS: i64 = 24;
pub const WINDOW_SECONDS: i64 = HOURS * 3600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hour {
    /// The hour's start, epoch seconds (UTC).
    pub start: i64,
    pub synced: usize,
    pub failing: usize,
}

/// The 24 hours ending with the current one, oldest first.
pub fn hourly(entries: &[LedgerEntry], now: i64) -> Vec<Hour> {
    let current = now.div_euclid(3600) * 3600;
    let first = current - (HOURS - 1) * 3600;
    let mut hours: Vec<Hour> = (0..HOURS)
        .map(|k| Hour {
            start: first + k * 3600,
            synced: 0,
            failing: 0,
        })
        .collect();
    for entry in entries {
        if entry.updated_at < first || entry.updated_at > now {
            continue;
        }
        let Some(hour) = hours.get_mut(((entry.updated_at - first) / 3600) as usize) else {
            continue;
        };
        match entry.status {
            LinkStatus::Synced => hour.synced += 1,
            LinkStatus::Failing => hour.failing += 1,
            LinkStatus::Excluded | LinkStatus::Pending => {}
        }
    }
    hours
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ConnectionId, ObjectKind, Provider};

    fn entry(at: i64, status: LinkStatus) -> LedgerEntry {
        let mut e = LedgerEntry::new(
            ConnectionId::parse("c1").unwrap(),
            ObjectKind::Contact,
            Provider::HubSpot,
            &at.to_string(),
            at,
        );
        e.status = status;
        e.updated_at = at;
        e
    }

    #[test]
    fn changes_fall_in_their_hour_and_old_ones_are_left_out() {
        let now = 1_900_000_000 + 1_800; // half past an hour
        let current = now / 3600 * 3600;
        let entries = [
            entry(now, LinkStatus::Synced),
            entry(current, LinkStatus::Failing),
            entry(current - 1, LinkStatus::Synced),
            entry(current - 23 * 3600, LinkStatus::Synced),
            entry(current - 23 * 3600 - 1, LinkStatus::Synced),
            entry(now - 60, LinkStatus::Excluded),
            entry(now + 10, LinkStatus::Synced),
        ];
        let hours = hourly(&entries, now);
        assert_eq!(hours.len(), 24);
        assert_eq!(hours[0].start, current - 23 * 3600);
        let table = [(23, 1, 1), (22, 1, 0), (0, 1, 0), (5, 0, 0)];
        for (k, synced, failing) in table {
            assert_eq!(
                (hours[k].synced, hours[k].failing),
                (synced, failing),
                "hour {k}"
            );
        }
        let total: usize = hours.iter().map(|h| h.synced + h.failing).sum();
        assert_eq!(total, 4);
    }
}
