//! The API's answers as text a person reads. Pure; every field may be missing.

use std::fmt::Write as _;

use serde_json::Value;

use crate::api::CliError;

/// The most preview samples listed per decision (the rest are in `--json`).
pub const PREVIEW_SAMPLES: usize = 3;

/// `v` pretty, for `--json`.
pub fn render_json(v: &Value) -> String {
    let mut text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    text.push('\n');
    text
}

/// `error: <category>: <message>`, then each refused field.
pub fn render_error(error: &CliError) -> String {
    let mut out = format!("error: {}\n", clean(&error.to_string()));
    if let CliError::Api { fields, .. } = error {
        for f in fields {
            let _ = writeln!(out, "  {}: {}", clean(&f.field), clean(&f.message));
        }
    }
    out
}

pub fn render_connections(answer: &Value) -> String {
    let rows: Vec<Vec<String>> = items(answer, "connections")
        .iter()
        .map(|c| {
            vec![
                text(c, "connection_id"),
                text(c, "portal_id"),
                text(c, "company_name"),
                connection_status(c),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no connections\n".into();
    }
    table(&["ID", "PORTAL", "COMPANY", "STATUS"], &rows)
}

fn connection_status(c: &Value) -> String {
    let status = text(c, "status");
    match c.get("reconnect_provider").and_then(Value::as_str) {
        Some(p) => format!("{status} ({})", clean(p)),
        None => status,
    }
}

pub fn render_overview(answer: &Value) -> String {
    let mut out = String::new();
    if let Some(c) = answer.get("connection").filter(|c| c.is_object()) {
        let _ = writeln!(
            out,
            "connection {}: {} (portal {}, realm {}), {}, connected {}",
            text(c, "connection_id"),
            text(c, "company_name"),
            text(c, "portal_id"),
            text(c, "realm_id"),
            connection_status(c),
            time(c, "connected_at"),
        );
    }
    let rows: Vec<Vec<String>> = items(answer, "objects")
        .iter()
        .map(|o| {
            let counts = o.get("counts").unwrap_or(&Value::Null);
            vec![
                text(o, "object"),
                sync(o),
                text(counts, "synced"),
                text(counts, "failing"),
                text(counts, "excluded"),
                text(counts, "pending"),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("no objects\n");
    } else {
        out.push_str(&table(
            &["OBJECT", "SYNC", "SYNCED", "FAILING", "EXCLUDED", "PENDING"],
            &rows,
        ));
    }
    out
}

fn sync(o: &Value) -> String {
    if !o.get("enabled").and_then(Value::as_bool).unwrap_or(false) {
        return "off".into();
    }
    match o.get("direction").and_then(Value::as_str) {
        Some(d) => format!("on, {}", clean(d)),
        None => "on".into(),
    }
}

pub fn render_records(answer: &Value) -> String {
    let rows: Vec<Vec<String>> = items(answer, "records")
        .iter()
        .map(|r| {
            vec![
                text(r, "hubspot_id"),
                text(r, "qbo_id"),
                text(r, "status"),
                text(r, "match_key"),
                time(r, "updated_at"),
                text(r, "category"),
                text(r, "reason"),
            ]
        })
        .collect();
    let headers = [
        "HUBSPOT",
        "QBO",
        "STATUS",
        "MATCH KEY",
        "UPDATED",
        "CATEGORY",
        "REASON",
    ];
    page_of(answer, &headers, rows, "records")
}

pub fn render_failing(answer: &Value) -> String {
    let rows: Vec<Vec<String>> = items(answer, "records")
        .iter()
        .map(|r| {
            vec![
                text(r, "hubspot_id"),
                text(r, "qbo_id"),
                text(r, "category"),
                time(r, "updated_at"),
                text(r, "reason"),
            ]
        })
        .collect();
    let headers = ["HUBSPOT", "QBO", "CATEGORY", "UPDATED", "REASON"];
    page_of(answer, &headers, rows, "failing records")
}

/// A table of one page, how many there are, and how to ask for the next.
fn page_of(answer: &Value, headers: &[&str], rows: Vec<Vec<String>>, what: &str) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        let _ = writeln!(out, "no {what}");
    } else {
        out.push_str(&table(headers, &rows));
        let _ = writeln!(out, "{} of {} {what}", rows.len(), text(answer, "total"));
    }
    if let Some(next) = answer.get("next").filter(|n| !n.is_null()) {
        let _ = writeln!(out, "next page: --after {}", scalar(next));
    }
    out
}

pub fn render_record(answer: &Value) -> String {
    let mut out = String::new();
    let r = answer.get("record").unwrap_or(&Value::Null);
    let _ = writeln!(out, "record {} ({})", text(r, "link"), text(r, "object"));
    let lines = [
        ("status", text(r, "status")),
        ("hubspot", text(r, "hubspot_id")),
        ("quickbooks", text(r, "qbo_id")),
        ("match key", text(r, "match_key")),
        ("updated", time(r, "updated_at")),
    ];
    for (name, value) in lines {
        let _ = writeln!(out, "  {:<11} {value}", format!("{name}:"));
    }
    out.push('\n');
    match answer.get("failure").filter(|f| f.is_object()) {
        None => {
            let reason = r.get("reason").filter(|v| !v.is_null());
            match reason {
                Some(reason) => {
                    let _ = writeln!(out, "not failing: {}", scalar(reason));
                }
                None => out.push_str("not failing\n"),
            }
        }
        Some(f) => {
            let explanation = answer.get("explanation").filter(|e| e.is_object());
            let title = explanation.map(|e| text(e, "title"));
            let _ = writeln!(
                out,
                "failure: {}{}",
                text(f, "category"),
                title.map(|t| format!(" ({t})")).unwrap_or_default()
            );
            let _ = writeln!(out, "  message:   {}", text(f, "message"));
            let retry = match f.get("next_retry_at").filter(|n| !n.is_null()) {
                Some(_) => format!("next retry {}", time(f, "next_retry_at")),
                None => "not retried by itself".into(),
            };
            let _ = writeln!(
                out,
                "  attempts:  {}, first failed {}, {retry}",
                text(f, "attempts"),
                time(f, "first_failed_at")
            );
            match explanation {
                Some(e) => {
                    let _ = writeln!(out, "  what:      {}", text(e, "explanation"));
                    let _ = writeln!(out, "  fix:       {}", text(e, "fix"));
                    let auto = e.get("retried_automatically").and_then(Value::as_bool);
                    let auto = match auto {
                        Some(true) => "yes",
                        Some(false) => "no",
                        None => "-",
                    };
                    let _ = writeln!(out, "  retried automatically: {auto}");
                }
                None => out.push_str("  (no explanation for this category)\n"),
            }
        }
    }
    out.push('\n');
    let activity = items(answer, "activity");
    if activity.is_empty() {
        out.push_str("no activity\n");
    } else {
        out.push_str("activity:\n");
        let rows: Vec<Vec<String>> = activity
            .iter()
            .map(|a| {
                vec![
                    time(a, "at"),
                    text(a, "from"),
                    text(a, "action"),
                    text(a, "detail"),
                ]
            })
            .collect();
        for line in table_lines(None, &rows) {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

pub fn render_retry(answer: &Value) -> String {
    match answer.get("retried").and_then(Value::as_u64) {
        Some(1) => "retried 1 record\n".into(),
        Some(n) => format!("retried {n} records\n"),
        None => render_json(answer),
    }
}

/// The settings document as JSON, then its version.
pub fn render_settings(answer: &Value) -> String {
    let mut out = render_json(answer.get("settings").unwrap_or(&Value::Null));
    if let Some(version) = answer.get("version").filter(|v| !v.is_null()) {
        let _ = writeln!(out, "version: {}", scalar(version));
    }
    out
}

/// `done` (what happened), then the settings the answer carries, if any.
pub fn render_settings_done(done: &str, answer: &Value) -> String {
    let mut out = format!("{}\n", clean(done));
    if answer.get("settings").is_some_and(|s| !s.is_null()) {
        out.push_str(&render_settings(answer));
    }
    out
}

const DECISIONS: [&str; 6] = ["create", "link", "update", "exclude", "skip", "fail"];

pub fn render_preview(answer: &Value) -> String {
    let mut out = String::new();
    let read = answer.get("read").unwrap_or(&Value::Null);
    let _ = writeln!(
        out,
        "preview of {} settings: read {} HubSpot and {} QuickBooks records",
        text(answer, "object"),
        text(read, "hubspot"),
        text(read, "qbo"),
    );
    let counts = answer.get("counts").unwrap_or(&Value::Null);
    let mut rows: Vec<Vec<String>> = DECISIONS
        .iter()
        .map(|d| vec![d.to_string(), text(counts, d)])
        .collect();
    if let Some(all) = counts.as_object() {
        for (d, n) in all.iter().filter(|(d, _)| !DECISIONS.contains(&d.as_str())) {
            rows.push(vec![clean(d), scalar(n)]);
        }
    }
    out.push_str(&table(&["DECISION", "COUNT"], &rows));
    if let Some(failures) = answer
        .get("failures")
        .and_then(Value::as_object)
        .filter(|f| !f.is_empty())
    {
        out.push_str("\nfailures:\n");
        let rows: Vec<Vec<String>> = failures
            .iter()
            .map(|(c, n)| vec![clean(c), scalar(n)])
            .collect();
        for line in table_lines(Some(&["CATEGORY", "COUNT"]), &rows) {
            let _ = writeln!(out, "  {line}");
        }
    }
    let samples = items(answer, "samples");
    if !samples.is_empty() {
        out.push_str("\nsamples:\n");
        let mut shown: std::collections::HashMap<String, usize> = Default::default();
        let rows: Vec<Vec<String>> = samples
            .iter()
            .filter(|s| {
                let seen = shown.entry(text(s, "decision")).or_default();
                *seen += 1;
                *seen <= PREVIEW_SAMPLES
            })
            .map(|s| {
                vec![
                    text(s, "decision"),
                    text(s, "side"),
                    text(s, "id"),
                    text(s, "name"),
                    text(s, "detail"),
                ]
            })
            .collect();
        let headers = ["DECISION", "SIDE", "ID", "NAME", "DETAIL"];
        for line in table_lines(Some(&headers), &rows) {
            let _ = writeln!(out, "  {line}");
        }
        if samples.len() > rows.len() {
            let _ = writeln!(
                out,
                "  … {} more (--json lists them all)",
                samples.len() - rows.len()
            );
        }
    }
    out
}

pub fn render_runs(answer: &Value) -> String {
    let runs = items(answer, "runs");
    if runs.is_empty() {
        return "no action runs\n".into();
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let at = ["created_at", "started_at", "finished_at"]
                .into_iter()
                .find(|k| r.get(*k).is_some_and(|v| !v.is_null()))
                .map(|k| time(r, k))
                .unwrap_or_else(|| "-".into());
            vec![
                at,
                text(r, "callback_id"),
                first_text(r, &["action", "kind"]),
                run_outcome(r),
            ]
        })
        .collect();
    table(&["TIME", "CALLBACK", "ACTION", "OUTCOME"], &rows)
}

/// The outcome as told (a word, or HubSpot's `hs_execution_state`), else the status or state.
fn run_outcome(run: &Value) -> String {
    if let Some(outcome) = run.get("outcome").filter(|o| !o.is_null()) {
        if let Some(word) = outcome.as_str() {
            return clean(word);
        }
        for fields in ["outputFields", "output_fields"] {
            if let Some(state) = outcome
                .get(fields)
                .and_then(|f| f.get("hs_execution_state"))
                .and_then(Value::as_str)
            {
                return clean(state);
            }
        }
    }
    first_text(run, &["status", "state"])
}

pub fn render_categories(answer: &Value) -> String {
    let all = items(answer, "categories");
    if all.is_empty() {
        return "no categories\n".into();
    }
    let mut out = String::new();
    for c in all {
        let auto = if c.get("retried_automatically").and_then(Value::as_bool) == Some(true) {
            " (retried automatically)"
        } else {
            ""
        };
        let _ = writeln!(out, "{}: {}{auto}", text(c, "code"), text(c, "title"));
        let _ = writeln!(out, "  what: {}", text(c, "explanation"));
        let _ = writeln!(out, "  fix:  {}", text(c, "fix"));
    }
    out
}

/// Epoch seconds as RFC 3339 UTC (`2023-11-14T22:13:20Z`).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 as a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Left-aligned columns, two spaces apart, without trailing blanks.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for line in table_lines(Some(headers), rows) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn table_lines(headers: Option<&[&str]>, rows: &[Vec<String>]) -> Vec<String> {
    let head: Option<Vec<String>> = headers.map(|h| h.iter().map(|s| s.to_string()).collect());
    let all: Vec<&Vec<String>> = head.iter().chain(rows.iter()).collect();
    let columns = all.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            all.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    all.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
            line.trim_end().to_string()
        })
        .collect()
}

/// The array at `key`, or none.
fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A field as one line of text; `-` when missing or null.
fn text(v: &Value, key: &str) -> String {
    v.get(key).map(scalar).unwrap_or_else(|| "-".into())
}

fn first_text(v: &Value, keys: &[&str]) -> String {
    keys.iter()
        .find(|k| v.get(**k).is_some_and(|x| !x.is_null()))
        .map(|k| text(v, k))
        .unwrap_or_else(|| "-".into())
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => clean(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => clean(&other.to_string()),
    }
}

/// An epoch-seconds field as RFC 3339 (a string is shown as it is).
fn time(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::Number(n)) => n.as_i64().map(rfc3339).unwrap_or_else(|| n.to_string()),
        Some(other) => scalar(other),
        None => "-".into(),
    }
}

/// Text from the API on one line, without control characters (no terminal escapes).
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::FieldProblem;
    use serde_json::json;

    #[test]
    fn times() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (951_868_799, "2000-02-29T23:59:59Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (4_102_444_800, "2100-01-01T00:00:00Z"),
        ];
        for (secs, want) in cases {
            assert_eq!(rfc3339(secs), want, "{secs}");
        }
    }

    #[test]
    fn connections() {
        let answer = json!({"connections": [
            {"connection_id": "c1", "portal_id": "123", "realm_id": "9", "company_name": "Acme Ltd",
             "status": "active", "reconnect_provider": null, "connected_at": 1_700_000_000},
            {"connection_id": "c22", "portal_id": 4567, "company_name": "Bolt\u{1b}[31m Co",
             "status": "reconnect_required", "reconnect_provider": "qbo"},
        ]});
        assert_eq!(
            render_connections(&answer),
            "ID   PORTAL  COMPANY       STATUS\n\
             c1   123     Acme Ltd      active\n\
             c22  4567    Bolt [31m Co  reconnect_required (qbo)\n"
        );
        assert_eq!(
            render_connections(&json!({"connections": []})),
            "no connections\n"
        );
        assert_eq!(render_connections(&json!({})), "no connections\n");
    }

    #[test]
    fn overview() {
        let answer = json!({
        "connection": {"connection_id": "c1", "portal_id": "123", "realm_id": "9",
            "company_name": "Acme", "status": "active", "connected_at": 0},
        "objects": [
            {"object": "contact", "enabled": true, "direction": "two_way",
             "counts": {"synced": 10, "failing": 2, "excluded": 1, "pending": 0}},
            {"object": "product", "enabled": true, "direction": null, "counts": {"synced": 3}},
            {"object": "invoice", "enabled": false, "direction": null, "counts": {}},
        ]});
        assert_eq!(
            render_overview(&answer),
            "connection c1: Acme (portal 123, realm 9), active, connected 1970-01-01T00:00:00Z\n\
             OBJECT   SYNC         SYNCED  FAILING  EXCLUDED  PENDING\n\
             contact  on, two_way  10      2        1         0\n\
             product  on           3       -        -         -\n\
             invoice  off          -       -        -         -\n"
        );
    }

    #[test]
    fn records_and_next_page() {
        let answer = json!({"records": [
            {"link": "hs:51", "hubspot_id": "51", "qbo_id": "7", "status": "synced",
             "category": null, "reason": null, "updated_at": 1_700_000_000, "match_key": "a@b.c"},
            {"link": "hs:52", "hubspot_id": "52", "qbo_id": null, "status": "failing",
             "category": "duplicate_display_name", "reason": "name taken\nin QBO",
             "updated_at": 0, "match_key": null},
        ], "next": "2", "total": 5});
        assert_eq!(
            render_records(&answer),
            "HUBSPOT  QBO  STATUS   MATCH KEY  UPDATED               CATEGORY                REASON\n\
             51       7    synced   a@b.c      2023-11-14T22:13:20Z  -                       -\n\
             52       -    failing  -          1970-01-01T00:00:00Z  duplicate_display_name  name taken in QBO\n\
             2 of 5 records\n\
             next page: --after 2\n"
        );
        let last = json!({"records": [], "next": null, "total": 0});
        assert_eq!(render_records(&last), "no records\n");
    }

    #[test]
    fn failing() {
        let answer = json!({"records": [
            {"hubspot_id": "52", "status": "failing", "category": "rate_limited",
             "reason": "QuickBooks asked to slow down", "updated_at": 0},
        ], "next": null, "total": 1});
        assert_eq!(
            render_failing(&answer),
            "HUBSPOT  QBO  CATEGORY      UPDATED               REASON\n\
             52       -    rate_limited  1970-01-01T00:00:00Z  QuickBooks asked to slow down\n\
             1 of 1 failing records\n"
        );
    }

    #[test]
    fn record_with_failure() {
        let answer = json!({
            "record": {"link": "hs:52", "object": "contact", "status": "failing", "hubspot_id": "52",
                "qbo_id": null, "match_key": "x@y.z", "category": "duplicate_display_name",
                "reason": "taken", "updated_at": 60},
            "activity": [
                {"at": 0, "from": "hubspot", "action": "created", "detail": "seen first"},
                {"at": 60, "from": "qbo", "action": "failed", "detail": "name taken"},
            ],
            "failure": {"category": "duplicate_display_name", "message": "name taken", "attempts": 3,
                "first_failed_at": 60, "next_retry_at": null, "source": "hubspot"},
            "explanation": {"code": "duplicate_display_name", "title": "Name already used",
                "explanation": "QuickBooks names must be unique.", "fix": "Rename one of them.",
                "retried_automatically": false},
        });
        assert_eq!(
            render_record(&answer),
            "record hs:52 (contact)\n  \
               status:     failing\n  \
               hubspot:    52\n  \
               quickbooks: -\n  \
               match key:  x@y.z\n  \
               updated:    1970-01-01T00:01:00Z\n\
             \n\
             failure: duplicate_display_name (Name already used)\n  \
               message:   name taken\n  \
               attempts:  3, first failed 1970-01-01T00:01:00Z, not retried by itself\n  \
               what:      QuickBooks names must be unique.\n  \
               fix:       Rename one of them.\n  \
               retried automatically: no\n\
             \n\
             activity:\n  \
               1970-01-01T00:00:00Z  hubspot  created  seen first\n  \
               1970-01-01T00:01:00Z  qbo      failed   name taken\n"
        );
    }

    #[test]
    fn record_without_failure() {
        let answer = json!({"record": {"link": "qbo:7", "object": "product", "status": "excluded",
            "reason": "inactive in QuickBooks"}, "activity": [], "failure": null, "explanation": null});
        let text = render_record(&answer);
        assert!(
            text.contains("not failing: inactive in QuickBooks\n"),
            "{text}"
        );
        assert!(text.ends_with("no activity\n"), "{text}");
        assert!(text.contains("  hubspot:    -\n"), "{text}");
    }

    #[test]
    fn retry() {
        assert_eq!(render_retry(&json!({"retried": 1})), "retried 1 record\n");
        assert_eq!(
            render_retry(&json!({"retried": 12})),
            "retried 12 records\n"
        );
    }

    #[test]
    fn settings() {
        let answer = json!({"settings": {"enabled": true}, "version": 4});
        assert_eq!(
            render_settings(&answer),
            "{\n  \"enabled\": true\n}\nversion: 4\n"
        );
        assert_eq!(render_settings_done("deleted", &Value::Null), "deleted\n");
        assert_eq!(
            render_settings_done("saved", &json!({"settings": {"enabled": false}})),
            "saved\n{\n  \"enabled\": false\n}\n"
        );
    }

    #[test]
    fn preview() {
        let mut samples: Vec<Value> = (0..5)
            .map(|i| {
                json!({"decision": "create", "side": "hubspot", "id": i.to_string(),
                "name": format!("Person {i}"), "detail": "new in QuickBooks"})
            })
            .collect();
        samples.push(
            json!({"decision": "fail", "side": "qbo", "id": "77", "name": "Z",
            "category": "missing_email", "detail": "no email"}),
        );
        let answer = json!({"object": "contact",
            "counts": {"create": 12, "link": 3, "update": 0, "exclude": 1, "skip": 0, "fail": 2},
            "failures": {"missing_email": 2}, "samples": samples, "read": {"hubspot": 18, "qbo": 5}});
        let text = render_preview(&answer);
        assert!(
            text.starts_with(
                "preview of contact settings: read 18 HubSpot and 5 QuickBooks records\n\
                 DECISION  COUNT\n\
                 create    12\n\
                 link      3\n\
                 update    0\n\
                 exclude   1\n\
                 skip      0\n\
                 fail      2\n\
                 \n\
                 failures:\n  \
                   CATEGORY       COUNT\n  \
                   missing_email  2\n\
                 \n\
                 samples:\n  \
                   DECISION  SIDE     ID  NAME      DETAIL\n  \
                   create    hubspot  0   Person 0  new in QuickBooks\n"
            ),
            "{text}"
        );
        assert!(text.contains("Person 2"));
        assert!(!text.contains("Person 3"));
        assert!(
            text.ends_with(
                "  fail      qbo      77  Z         no email\n  … 2 more (--json lists them all)\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn runs_tolerate_missing_fields() {
        let answer = json!({"runs": [
            {"callback_id": "cb-1", "kind": "create_invoice", "state": "done", "started_at": 60,
             "outcome": {"outputFields": {"hs_execution_state": "SUCCESS"}}},
            {"callback_id": "cb-2", "action": "create_estimate", "status": "failed",
             "created_at": "2024-01-01T00:00:00Z"},
            {},
        ]});
        assert_eq!(
            render_runs(&answer),
            "TIME                  CALLBACK  ACTION           OUTCOME\n\
             1970-01-01T00:01:00Z  cb-1      create_invoice   SUCCESS\n\
             2024-01-01T00:00:00Z  cb-2      create_estimate  failed\n\
             -                     -         -                -\n"
        );
        assert_eq!(render_runs(&json!({"runs": []})), "no action runs\n");
    }

    #[test]
    fn categories() {
        let answer = json!({"categories": [
            {"code": "rate_limited", "title": "Too many requests", "explanation": "Slow down.",
             "fix": "Nothing.", "retried_automatically": true},
            {"code": "duplicate_display_name", "title": "Name already used",
             "explanation": "Unique.", "fix": "Rename.", "retried_automatically": false},
        ]});
        assert_eq!(
            render_categories(&answer),
            "rate_limited: Too many requests (retried automatically)\n  \
               what: Slow down.\n  \
               fix:  Nothing.\n\
             duplicate_display_name: Name already used\n  \
               what: Unique.\n  \
               fix:  Rename.\n"
        );
    }

    #[test]
    fn errors() {
        let error = CliError::Api {
            status: 422,
            category: "invalid_settings".into(),
            message: "some settings are not valid".into(),
            fields: vec![FieldProblem {
                field: "direction".into(),
                message: "not a direction".into(),
            }],
        };
        assert_eq!(
            render_error(&error),
            "error: invalid_settings: some settings are not valid\n  direction: not a direction\n"
        );
        let error = CliError::Network {
            host: "x.lambda-url.aws".into(),
            detail: "dns error".into(),
        };
        assert_eq!(
            render_error(&error),
            "error: cannot reach x.lambda-url.aws: dns error\n"
        );
    }

    #[test]
    fn json_is_pretty() {
        assert_eq!(
            render_json(&json!({"a": [1]})),
            "{\n  \"a\": [\n    1\n  ]\n}\n"
        );
    }
}
