//! Each command: its API call, then its answer printed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::api::{AdminClient, CliError};
use crate::args::{Cli, Command, Filter, Object, Page, RetryTarget, SettingsCommand, Status};
use crate::render;

/// Runs one command line; answers go to `out`, progress notes to `err`.
pub async fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), CliError> {
    let url = cli.url.ok_or_else(|| {
        CliError::Usage("no admin URL: give --url or set HUBSPOT_QBO_ADMIN_URL".into())
    })?;
    let key = cli.key.ok_or_else(|| {
        CliError::Usage("no operator key: set HUBSPOT_QBO_OPERATOR_KEY (or give --key)".into())
    })?;
    let client = AdminClient::new(&url, key)?;
    let json = cli.json;
    let print = |out: &mut dyn Write, answer: &Value, human: &dyn Fn(&Value) -> String| {
        let text = if json {
            render::render_json(answer)
        } else {
            human(answer)
        };
        out.write_all(text.as_bytes())
            .map_err(CliError::io("cannot write the answer"))
    };

    match cli.command {
        Command::Connections => {
            let answer = client.get(&["api", "connections"], &[]).await?;
            print(out, &answer, &render::render_connections)
        }
        Command::Overview { connection } => {
            let answer = client
                .get(&["api", "connections", &connection, "overview"], &[])
                .await?;
            print(out, &answer, &render::render_overview)
        }
        Command::Records {
            connection,
            object,
            filter,
            page,
        } => {
            let query = record_query(&filter, &page);
            let answer = client
                .get(&records_path(&connection, object), &query)
                .await?;
            print(out, &answer, &render::render_records)
        }
        Command::Failing {
            connection,
            object,
            category,
            search,
            page,
        } => {
            let filter = Filter {
                status: Some(Status::Failing),
                category,
                search,
            };
            let query = record_query(&filter, &page);
            let answer = client
                .get(&records_path(&connection, object), &query)
                .await?;
            print(out, &answer, &render::render_failing)
        }
        Command::Record {
            connection,
            object,
            side,
            record,
        } => {
            let path = [
                "api",
                "connections",
                &connection,
                "records",
                object.as_str(),
                side.as_str(),
                &record,
            ];
            let answer = client.get(&path, &[]).await?;
            print(out, &answer, &render::render_record)
        }
        Command::Export {
            connection,
            object,
            filter,
            output,
        } => {
            let query = record_query(&filter, &Page::default());
            let path = ["api", "connections", &connection, "export", object.as_str()];
            let (written, target) = match output {
                None => (client.download(&path, &query, out).await?, "stdout".into()),
                Some(file) => {
                    let written = download_to_file(&client, &path, &query, &file).await?;
                    (written, file.display().to_string())
                }
            };
            writeln!(err, "wrote {written} bytes to {target}")
                .map_err(CliError::io("cannot write to stderr"))
        }
        Command::Retry {
            connection,
            object,
            target,
        } => {
            let path = ["api", "connections", &connection, "retry", object.as_str()];
            let answer = client.post(&path, &retry_body(&target)).await?;
            print(out, &answer, &render::render_retry)
        }
        Command::Settings { action } => settings(&client, action, out, &print).await,
        Command::Preview {
            connection,
            object,
            file,
        } => {
            let body = match file {
                Some(file) => read_json(&file)?,
                None => json!({}),
            };
            let path = [
                "api",
                "connections",
                &connection,
                "preview",
                object.as_str(),
            ];
            let answer = client.post(&path, &body).await?;
            print(out, &answer, &render::render_preview)
        }
        Command::Runs { connection } => {
            let answer = client
                .get(&["api", "connections", &connection, "action-runs"], &[])
                .await?;
            print(out, &answer, &render::render_runs)
        }
        Command::Categories => {
            let answer = client.get(&["api", "categories"], &[]).await?;
            print(out, &answer, &render::render_categories)
        }
    }
}

type Print<'a> =
    dyn Fn(&mut dyn Write, &Value, &dyn Fn(&Value) -> String) -> Result<(), CliError> + 'a;

async fn settings(
    client: &AdminClient,
    action: SettingsCommand,
    out: &mut dyn Write,
    print: &Print<'_>,
) -> Result<(), CliError> {
    match action {
        SettingsCommand::Show { connection, object } => {
            let answer = client.get(&settings_path(&connection, object), &[]).await?;
            print(out, &answer, &render::render_settings)
        }
        SettingsCommand::Edit {
            connection,
            object,
            file,
            version,
        } => {
            let body = read_json(&file)?;
            let answer = client
                .put(&settings_path(&connection, object), &body, version)
                .await?;
            let done = format!("saved the {} settings of {connection}", object.as_str());
            print(out, &answer, &|a| render::render_settings_done(&done, a))
        }
        SettingsCommand::Delete { connection, object } => {
            let answer = client.delete(&settings_path(&connection, object)).await?;
            let done = format!("deleted the {} settings of {connection}", object.as_str());
            print(out, &answer, &|a| render::render_settings_done(&done, a))
        }
        SettingsCommand::Restore { connection, object } => {
            let mut path = settings_path(&connection, object);
            path.push("recommended");
            let answer = client.post(&path, &json!({})).await?;
            let done = format!(
                "restored the recommended {} settings of {connection}",
                object.as_str()
            );
            print(out, &answer, &|a| render::render_settings_done(&done, a))
        }
    }
}

fn records_path(connection: &str, object: Object) -> [&str; 5] {
    ["api", "connections", connection, "records", object.as_str()]
}

fn settings_path(connection: &str, object: Object) -> Vec<&str> {
    vec![
        "api",
        "connections",
        connection,
        "settings",
        object.as_str(),
    ]
}

/// The record view's query: only the parameters given.
pub fn record_query(filter: &Filter, page: &Page) -> Vec<(&'static str, String)> {
    let given = [
        ("status", filter.status.map(|s| s.as_str().to_string())),
        ("category", filter.category.clone()),
        ("q", filter.search.clone()),
        ("limit", page.limit.map(|n| n.to_string())),
        ("after", page.after.clone()),
    ];
    given
        .into_iter()
        .filter_map(|(name, value)| value.filter(|v| !v.is_empty()).map(|v| (name, v)))
        .collect()
}

pub fn retry_body(target: &RetryTarget) -> Value {
    match (&target.record, &target.category) {
        (Some(record), _) => json!({"side": record.side.as_str(), "id": record.id}),
        (None, Some(category)) => json!({ "category": category }),
        (None, None) => json!({"category": "*"}),
    }
}

fn read_json(file: &Path) -> Result<Value, CliError> {
    let text =
        std::fs::read(file).map_err(CliError::io(format!("cannot read {}", file.display())))?;
    serde_json::from_slice(&text)
        .map_err(|e| CliError::Usage(format!("{} is not JSON: {e}", file.display())))
}

/// Writes the export beside `file` and renames it into place once whole, so a broken download
/// never looks like a finished one.
async fn download_to_file(
    client: &AdminClient,
    path: &[&str],
    query: &[(&str, String)],
    file: &Path,
) -> Result<u64, CliError> {
    let mut partial: PathBuf = file.to_path_buf();
    partial.as_mut_os_string().push(".partial");
    let created = File::create(&partial)
        .map_err(CliError::io(format!("cannot create {}", partial.display())))?;
    let mut sink = BufWriter::new(created);
    let written = client.download(path, query, &mut sink).await;
    let finished = written.and_then(|n| {
        sink.into_inner()
            .map_err(|e| CliError::Io {
                context: format!("cannot write {}", partial.display()),
                source: e.into_error(),
            })?
            .sync_all()
            .map_err(CliError::io(format!("cannot write {}", partial.display())))?;
        std::fs::rename(&partial, file).map_err(CliError::io(format!(
            "cannot move the export to {}",
            file.display()
        )))?;
        Ok(n)
    });
    if finished.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    finished
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{RecordRef, Side};

    #[test]
    fn record_query_has_only_given_params() {
        assert!(record_query(&Filter::default(), &Page::default()).is_empty());
        let filter = Filter {
            status: Some(Status::Failing),
            category: Some(String::new()),
            search: Some("a&b c".into()),
        };
        let page = Page {
            limit: Some(20),
            after: Some("40".into()),
        };
        assert_eq!(
            record_query(&filter, &page),
            vec![
                ("status", "failing".to_string()),
                ("q", "a&b c".to_string()),
                ("limit", "20".to_string()),
                ("after", "40".to_string()),
            ]
        );
        let base = reqwest::Url::parse("https://h/").unwrap();
        let url = crate::api::endpoint(
            &base,
            &records_path("c1", Object::Contact),
            &record_query(&filter, &page),
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://h/api/connections/c1/records/contact?status=failing&q=a%26b+c&limit=20&after=40"
        );
    }

    #[test]
    fn retry_bodies() {
        let target = |record: Option<RecordRef>, category: Option<&str>, all: bool| RetryTarget {
            record,
            category: category.map(str::to_string),
            all,
        };
        let one = RecordRef {
            side: Side::Qbo,
            id: "7".into(),
        };
        assert_eq!(
            retry_body(&target(Some(one), None, false)),
            json!({"side": "qbo", "id": "7"})
        );
        assert_eq!(
            retry_body(&target(None, Some("rate_limited"), false)),
            json!({"category": "rate_limited"})
        );
        assert_eq!(
            retry_body(&target(None, None, true)),
            json!({"category": "*"})
        );
    }
}
