//! V4: the record view's filtered list as CSV, streamed: the ledger (the object's partition, or
//! one status's index) is read one page at a time and each page is written out before the next
//! is read, so an export of any size holds one page in memory.

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::records::RecordFilter;
use super::{failed, invalid_filter, object_of, AdminService, Caller, Failed};
use crate::ledger::{Ledger, LedgerEntry};

/// Entries asked for per page (DynamoDB answers at most 1 MB a page, about 1,500 entries).
pub const PAGE: u32 = 1_000;
/// Pages written ahead of a slow reader.
const AHEAD: usize = 2;

pub const COLUMNS: [&str; 9] = [
    "object",
    "status",
    "hubspot_id",
    "qbo_id",
    "match_key",
    "category",
    "reason",
    "updated_at",
    "link",
];

/// A spreadsheet runs a cell that starts like a formula; such text gets a leading `'`.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

fn when(epoch_seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(epoch_seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// One entry's CSV cells, in [`COLUMNS`] order.
pub fn row(entry: &LedgerEntry) -> [String; 9] {
    let reason = entry
        .failure
        .as_ref()
        .map(|f| f.message.as_str())
        .or(entry.exclusion.as_deref())
        .unwrap_or_default();
    [
        entry.object.to_string(),
        entry.status.as_str().to_owned(),
        cell(entry.hubspot.id.as_deref().unwrap_or_default()),
        cell(entry.qbo.id.as_deref().unwrap_or_default()),
        cell(entry.match_key.as_deref().unwrap_or_default()),
        cell(
            entry
                .failure
                .as_ref()
                .map(|f| f.category.as_str())
                .unwrap_or_default(),
        ),
        cell(reason),
        when(entry.updated_at),
        cell(&entry.link),
    ]
}

/// CSV text of some rows (with the header row first when `header`).
pub fn lines<'a>(
    entries: impl Iterator<Item = &'a LedgerEntry>,
    header: bool,
) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    if header {
        writer.write_record(COLUMNS)?;
    }
    for entry in entries {
        writer.write_record(row(entry))?;
    }
    writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
}

type Chunk = Result<Bytes, std::io::Error>;

impl AdminService {
    /// The filtered records of one object as a streamed CSV download.
    pub async fn export(
        &self,
        caller: &Caller,
        id: &str,
        object: &str,
        filter: RecordFilter,
    ) -> Result<Response, Failed> {
        let connection = self.connection(caller, id).await?;
        let object = object_of(object)?;
        // Every status: the object's ledger partition, read once; one status: its index.
        let statuses = match filter.status.as_deref().map(str::trim) {
            None | Some("") => vec![None],
            Some(_) => filter
                .statuses()
                .map_err(invalid_filter)?
                .into_iter()
                .map(Some)
                .collect(),
        };
        let header_row = lines(std::iter::empty(), true).map_err(|e| {
            failed(
                StatusCode::INTERNAL_SERVER_ERROR,
                "export_failed",
                e.to_string(),
            )
        })?;
        let ledger = Ledger::new(self.store.clone());
        let now = self.now();
        let (sender, receiver) = tokio::sync::mpsc::channel::<Chunk>(AHEAD);
        let _ = sender.send(Ok(Bytes::from(header_row))).await;
        let connection_id = connection.id.clone();
        tokio::spawn(async move {
            for status in statuses {
                let mut after = None;
                loop {
                    let page = match status {
                        Some(status) => {
                            ledger
                                .status_page(&connection_id, object, status, after, PAGE, now)
                                .await
                        }
                        None => {
                            ledger
                                .entries_page(&connection_id, object, after, PAGE, now)
                                .await
                        }
                    };
                    let (entries, next) = match page {
                        Ok(page) => page,
                        Err(error) => {
                            // The download ends unfinished rather than looking complete.
                            tracing::warn!(%error, "export stopped: the ledger could not be read");
                            let _ = sender
                                .send(Err(std::io::Error::other(error.to_string())))
                                .await;
                            return;
                        }
                    };
                    let kept = entries.iter().filter(|e| filter.keeps(e));
                    match lines(kept, false) {
                        Ok(text) if text.is_empty() => {}
                        Ok(text) => {
                            if sender.send(Ok(Bytes::from(text))).await.is_err() {
                                return; // the reader went away
                            }
                        }
                        Err(error) => {
                            let _ = sender
                                .send(Err(std::io::Error::other(error.to_string())))
                                .await;
                            return;
                        }
                    }
                    match next {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
            }
        });
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|chunk| (chunk, receiver))
        });
        let filename = format!("{}-{}-records.csv", connection.id, object);
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{filename}\""),
                ),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
            Body::from_stream(stream),
        )
            .into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ConnectionId, ObjectKind, Provider};
    use crate::ledger::entry::Failure;
    use crate::ledger::LinkStatus;

    #[test]
    fn rows_are_quoted_and_formulas_are_defused() {
        let mut entry = LedgerEntry::new(
            ConnectionId::parse("c1").unwrap(),
            ObjectKind::Contact,
            Provider::HubSpot,
            "51",
            0,
        );
        entry.status = LinkStatus::Failing;
        entry.match_key = Some("=HYPERLINK(\"x\")".into());
        entry.failure = Some(Failure {
            category: "duplicate_display_name".into(),
            message: "name \"Zoe\", taken\nin QBO".into(),
            attempts: 1,
            first_failed_at: 0,
            next_retry_at: None,
            source: None,
            version: None,
        });
        let text = String::from_utf8(lines([&entry].into_iter(), true).unwrap()).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            COLUMNS
        );
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 1);
        let row = &records[0];
        assert_eq!(&row[1], "failing");
        assert_eq!(&row[2], "51");
        assert_eq!(&row[4], "'=HYPERLINK(\"x\")");
        assert_eq!(&row[5], "duplicate_display_name");
        assert_eq!(&row[6], "name \"Zoe\", taken\nin QBO");
        assert_eq!(&row[7], "1970-01-01T00:00:00Z");
        assert_eq!(&row[8], "hs:51");
    }
}
