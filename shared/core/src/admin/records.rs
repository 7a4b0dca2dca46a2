//! The record view's filters and paging (V1, V3), as plain functions over ledger entries.

use serde::{Deserialize, Serialize};

use crate::ledger::{LedgerEntry, LinkStatus};

/// The most records one page lists.
pub const MAX_PAGE: usize = 500;
/// The page size when none is asked for.
pub const DEFAULT_PAGE: usize = 50;

/// What a person filters records by (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RecordFilter {
    pub status: Option<String>,
    pub category: Option<String>,
    /// Text looked for in the record's ids, match key, failure and exclusion.
    pub q: Option<String>,
    pub limit: Option<usize>,
    /// Where the previous page ended (from its `next`).
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FilterError {
    pub field: &'static str,
    pub message: String,
}

impl RecordFilter {
    /// The statuses to read: the one asked for, else every status.
    pub fn statuses(&self) -> Result<Vec<LinkStatus>, FilterError> {
        match self
            .status
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => Ok(LinkStatus::ALL.to_vec()),
            Some(text) => LinkStatus::ALL
                .into_iter()
                .find(|s| s.as_str() == text)
                .map(|s| vec![s])
                .ok_or_else(|| FilterError {
                    field: "status",
                    message: format!("{text:?} is not one of synced, failing, excluded, pending"),
                }),
        }
    }

    pub fn page_size(&self) -> Result<usize, FilterError> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(n) => Err(FilterError {
                field: "limit",
                message: format!("{n} is not between 1 and {MAX_PAGE}"),
            }),
        }
    }

    /// Whether an entry passes the category and text filters.
    pub fn keeps(&self, entry: &LedgerEntry) -> bool {
        if let Some(category) = self.category.as_deref().filter(|c| !c.is_empty()) {
            if entry.failure.as_ref().map(|f| f.category.as_str()) != Some(category) {
                return false;
            }
        }
        let Some(q) = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) else {
            return true;
        };
        let q = q.to_lowercase();
        let texts = [
            entry.hubspot.id.as_deref(),
            entry.qbo.id.as_deref(),
            entry.match_key.as_deref(),
            entry.failure.as_ref().map(|f| f.message.as_str()),
            entry.exclusion.as_deref(),
            Some(entry.link.as_str()),
        ];
        texts
            .into_iter()
            .flatten()
            .any(|t| t.to_lowercase().contains(&q))
    }
}

/// One record as the record view lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordRow {
    pub link: String,
    pub object: String,
    pub status: &'static str,
    pub hubspot_id: Option<String>,
    pub qbo_id: Option<String>,
    pub match_key: Option<String>,
    pub category: Option<String>,
    /// The failure's message, or why the record is left out.
    pub reason: Option<String>,
    pub updated_at: i64,
}

impl RecordRow {
    pub fn of(entry: &LedgerEntry) -> Self {
        Self {
            link: entry.link.clone(),
            object: entry.object.to_string(),
            status: entry.status.as_str(),
            hubspot_id: entry.hubspot.id.clone(),
            qbo_id: entry.qbo.id.clone(),
            match_key: entry.match_key.clone(),
            category: entry.failure.as_ref().map(|f| f.category.clone()),
            reason: entry
                .failure
                .as_ref()
                .map(|f| f.message.clone())
                .or_else(|| entry.exclusion.clone()),
            updated_at: entry.updated_at,
        }
    }
}

/// One page of the filtered entries, newest change first (ties by link, so pages are stable);
/// `next` continues after it.
pub fn page(
    mut entries: Vec<LedgerEntry>,
    filter: &RecordFilter,
) -> Result<(Vec<RecordRow>, Option<String>, usize), FilterError> {
    let size = filter.page_size()?;
    entries.retain(|e| filter.keeps(e));
    entries.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.link.cmp(&b.link)));
    let total = entries.len();
    let start = match filter.after.as_deref().filter(|a| !a.is_empty()) {
        None => 0,
        Some(after) => after.parse::<usize>().map_err(|_| FilterError {
            field: "after",
            message: format!("{after:?} is not a page position this view gave"),
        })?,
    };
    let rows: Vec<RecordRow> = entries
        .iter()
        .skip(start)
        .take(size)
        .map(RecordRow::of)
        .collect();
    let end = start + rows.len();
    let next = (end < total).then(|| end.to_string());
    Ok((rows, next, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ConnectionId, ObjectKind, Provider};
    use crate::ledger::entry::Failure;

    fn entry(link: &str, status: LinkStatus, category: Option<&str>, at: i64) -> LedgerEntry {
        let mut entry = LedgerEntry::new(
            ConnectionId::parse("c1").unwrap(),
            ObjectKind::Contact,
            Provider::HubSpot,
            link,
            at,
        );
        entry.status = status;
        entry.updated_at = at;
        entry.match_key = Some(format!("{link}@example.com"));
        entry.failure = category.map(|c| Failure {
            category: c.into(),
            message: format!("{c} happened"),
            attempts: 1,
            first_failed_at: at,
            next_retry_at: None,
            source: None,
            version: None,
        });
        entry
    }

    #[test]
    fn filters_keep_what_they_name() {
        let entries = vec![
            entry("1", LinkStatus::Failing, Some("duplicate_display_name"), 10),
            entry("2", LinkStatus::Failing, Some("rate_limited"), 20),
            entry("3", LinkStatus::Synced, None, 30),
        ];
        let filter = |category: Option<&str>, q: Option<&str>| RecordFilter {
            category: category.map(str::to_owned),
            q: q.map(str::to_owned),
            ..RecordFilter::default()
        };
        let table = [
            (filter(None, None), vec!["hs:3", "hs:2", "hs:1"]),
            (filter(Some("rate_limited"), None), vec!["hs:2"]),
            (filter(None, Some("1@EXAMPLE")), vec!["hs:1"]),
            (filter(None, Some("display_name happened")), vec!["hs:1"]),
            (filter(Some("rate_limited"), Some("1@")), vec![]),
        ];
        for (f, expected) in table {
            let (rows, _, _) = page(entries.clone(), &f).unwrap();
            let links: Vec<&str> = rows.iter().map(|r| r.link.as_str()).collect();
            assert_eq!(links, expected, "{f:?}");
        }
    }

    #[test]
    fn pages_continue_where_they_ended() {
        let entries: Vec<LedgerEntry> = (0..7)
            .map(|n| entry(&n.to_string(), LinkStatus::Synced, None, n))
            .collect();
        let mut filter = RecordFilter {
            limit: Some(3),
            ..RecordFilter::default()
        };
        let mut seen = Vec::new();
        loop {
            let (rows, next, total) = page(entries.clone(), &filter).unwrap();
            assert_eq!(total, 7);
            seen.extend(rows.into_iter().map(|r| r.link));
            match next {
                Some(next) => filter.after = Some(next),
                None => break,
            }
        }
        assert_eq!(
            seen,
            ["hs:6", "hs:5", "hs:4", "hs:3", "hs:2", "hs:1", "hs:0"]
        );
    }

    #[test]
    fn bad_filters_name_their_field() {
        let bad = [
            (
                RecordFilter {
                    status: Some("broken".into()),
                    ..Default::default()
                },
                "status",
            ),
            (
                RecordFilter {
                    limit: Some(0),
                    ..Default::default()
                },
                "limit",
            ),
            (
                RecordFilter {
                    limit: Some(501),
                    ..Default::default()
                },
                "limit",
            ),
            (
                RecordFilter {
                    after: Some("x".into()),
                    ..Default::default()
                },
                "after",
            ),
        ];
        for (filter, field) in bad {
            let error = filter
                .statuses()
                .and_then(|_| page(Vec::new(), &filter).map(|_| Vec::<LinkStatus>::new()))
                .unwrap_err();
            assert_eq!(error.field, field);
        }
    }
}
