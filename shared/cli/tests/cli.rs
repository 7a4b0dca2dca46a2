//! The built binary against a small imitation of the admin API on 127.0.0.1.

use std::collections::HashMap;
use std::process::Output;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::oneshot;

const KEY: &str = "op-key-Zq9x-very-secret";
const CHUNKS: [&str; 3] = [
    "link,status,hubspot_id\n",
    "hs:51,failing,51\n",
    "hs:52,failing,52\n",
];

fn error(status: StatusCode, category: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"status": "error", "category": category, "message": message})),
    )
        .into_response()
}

/// The refusal, unless the request carries `Authorization: Bearer <KEY>`.
fn refused(headers: &HeaderMap) -> Option<Response> {
    let given = headers.get("authorization").and_then(|v| v.to_str().ok());
    (given != Some(format!("Bearer {KEY}").as_str())).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the operator key is not valid",
        )
    })
}

async fn connections(headers: HeaderMap) -> Response {
    if let Some(e) = refused(&headers) {
        return e;
    }
    Json(json!({"connections": [
        {"connection_id": "c1", "portal_id": "4242", "realm_id": "9130", "company_name": "Acme Ltd",
         "status": "active", "reconnect_provider": null, "connected_at": 1_700_000_000},
        {"connection_id": "c2", "portal_id": "77", "realm_id": "1", "company_name": "Bolt Co",
         "status": "reconnect_required", "reconnect_provider": "qbo", "connected_at": 0, "new": 1},
    ]}))
    .into_response()
}

/// Answers one row whose match key is the `q` the server received.
async fn records(
    headers: HeaderMap,
    Path((_, object)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(e) = refused(&headers) {
        return e;
    }
    let mut names: Vec<&String> = query.keys().collect();
    names.sort();
    Json(json!({"records": [
        {"link": "hs:51", "object": object, "status": query.get("status"), "hubspot_id": "51",
         "qbo_id": null, "match_key": query.get("q"), "category": "rate_limited",
         "reason": format!("params {names:?}"), "updated_at": 0},
    ], "next": "50", "total": 120}))
    .into_response()
}

async fn edit_settings(headers: HeaderMap, body: Bytes) -> Response {
    if let Some(e) = refused(&headers) {
        return e;
    }
    let Some(version) = headers.get("if-match").and_then(|v| v.to_str().ok()) else {
        return error(
            StatusCode::PRECONDITION_REQUIRED,
            "version_required",
            "name the version",
        );
    };
    if version != "7" {
        return error(StatusCode::CONFLICT, "changed", "the settings were changed");
    }
    let Ok(settings) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "malformed_settings", "not JSON");
    };
    if settings["direction"] == "sideways" {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"status": "error", "category": "invalid_settings",
                "message": "some settings are not valid",
                "fields": [{"field": "direction", "message": "\"sideways\" is not a direction"},
                           {"field": "match.key", "message": "must be email or name"}]})),
        )
            .into_response();
    }
    Json(json!({ "settings": settings })).into_response()
}

/// CSV in a few chunks, some time apart.
async fn export(headers: HeaderMap, Query(query): Query<HashMap<String, String>>) -> Response {
    if let Some(e) = refused(&headers) {
        return e;
    }
    if query.get("status").map(String::as_str) != Some("failing") {
        return error(StatusCode::BAD_REQUEST, "invalid_filter", "status missing");
    }
    let chunks = futures::stream::unfold(0usize, |i| async move {
        let chunk = CHUNKS.get(i)?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        Some((
            Ok::<_, std::io::Error>(Bytes::from_static(chunk.as_bytes())),
            i + 1,
        ))
    });
    Response::builder()
        .header("content-type", "text/csv")
        .body(Body::from_stream(chunks))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn retry(headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Some(e) = refused(&headers) {
        return e;
    }
    if body == json!({"side": "hubspot", "id": "51"}) {
        Json(json!({"retried": 1})).into_response()
    } else if body == json!({"category": "*"}) {
        Json(json!({"retried": 9})).into_response()
    } else {
        error(StatusCode::BAD_REQUEST, "invalid_retry", "unexpected body")
    }
}

/// A broken deployment that echoes the Authorization header in its error.
async fn leaky(headers: HeaderMap) -> Response {
    let echoed = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        &format!("could not check {echoed}"),
    )
}

struct Server {
    url: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Base URLs are given with a path prefix, as a deployment behind a stage would be.
    async fn start() -> Server {
        let app = Router::new()
            .route("/prod/api/connections", get(connections))
            .route("/prod/api/connections/{id}/records/{object}", get(records))
            .route(
                "/prod/api/connections/{id}/settings/{object}",
                put(edit_settings),
            )
            .route("/prod/api/connections/{id}/export/{object}", get(export))
            .route("/prod/api/connections/{id}/retry/{object}", post(retry))
            .route("/prod/api/connections/leaky/overview", get(leaky));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Server {
            url: format!("http://{address}/prod"),
            stop,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the CLI with the key in its environment (as an operator would).
async fn cli(url: &str, key: &str, args: &[&str]) -> Run {
    let output: Output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubspot-qbo"))
        .env_remove("HUBSPOT_QBO_ADMIN_URL")
        .env("HUBSPOT_QBO_OPERATOR_KEY", key)
        .arg("--url")
        .arg(url)
        .args(args)
        .output()
        .await
        .unwrap();
    let run = Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(KEY), "the key leaked: {text}");
        assert!(!text.contains(key), "the key leaked: {text}");
    }
    run
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("hubspot-qbo-cli");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{}-{name}", std::process::id()))
}

#[tokio::test]
async fn connections_table_and_json() {
    let server = Server::start().await;
    let run = cli(&server.url, KEY, &["connections"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "ID  PORTAL  COMPANY   STATUS\n\
         c1  4242    Acme Ltd  active\n\
         c2  77      Bolt Co   reconnect_required (qbo)\n"
    );

    // A trailing slash on the base URL, --json after the subcommand.
    let url = format!("{}/", server.url);
    let run = cli(&url, KEY, &["connections", "--json"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let answer: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(answer["connections"][1]["new"], 1);
    assert!(
        run.stdout.starts_with("{\n  \"connections\""),
        "{}",
        run.stdout
    );
    server.stop().await;
}

#[tokio::test]
async fn records_send_only_given_params_encoded() {
    let server = Server::start().await;
    let run = cli(
        &server.url,
        KEY,
        &[
            "records", "c1", "contact", "--search", "a&b c", "--limit", "2",
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("  a&b c  "), "{}", run.stdout);
    assert!(
        run.stdout.contains("params [\"limit\", \"q\"]"),
        "{}",
        run.stdout
    );
    assert!(run
        .stdout
        .ends_with("1 of 120 records\nnext page: --after 50\n"));

    let run = cli(&server.url, KEY, &["failing", "c1", "invoice"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run
        .stdout
        .starts_with("HUBSPOT  QBO  CATEGORY      UPDATED"));
    assert!(run.stdout.contains("rate_limited"), "{}", run.stdout);
    assert!(run.stdout.contains("params [\"status\"]"), "{}", run.stdout);
    server.stop().await;
}

#[tokio::test]
async fn wrong_key_is_an_api_error_without_the_key() {
    let server = Server::start().await;
    let wrong = "wrong-key-8812-secret";
    let run = cli(&server.url, wrong, &["connections"]).await;
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "error: unauthorized: the operator key is not valid\n"
    );

    // --key on the command line works too.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubspot-qbo"))
        .env_remove("HUBSPOT_QBO_OPERATOR_KEY")
        .env_remove("HUBSPOT_QBO_ADMIN_URL")
        .args(["--url", &server.url, "--key", KEY, "connections"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stdout).contains(KEY));
    server.stop().await;
}

#[tokio::test]
async fn an_echoed_key_is_redacted() {
    let server = Server::start().await;
    let run = cli(&server.url, KEY, &["overview", "leaky"]).await;
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        "error: internal: could not check Bearer [REDACTED]\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn settings_edit_sends_if_match_and_reports_fields() {
    let server = Server::start().await;
    let file = scratch("settings.json");
    std::fs::write(&file, r#"{"enabled": true, "direction": "sideways"}"#).unwrap();
    let path = file.to_str().unwrap();

    let args = ["settings", "edit", "c1", "contact", "--file", path];
    let run = cli(&server.url, KEY, &[&args[..], &["--version", "7"]].concat()).await;
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "error: invalid_settings: some settings are not valid\n  \
           direction: \"sideways\" is not a direction\n  \
           match.key: must be email or name\n"
    );

    // Without --version no If-Match goes: this server wants one.
    let run = cli(&server.url, KEY, &args).await;
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr, "error: version_required: name the version\n");

    std::fs::write(&file, r#"{"enabled": true, "direction": "two_way"}"#).unwrap();
    let run = cli(&server.url, KEY, &[&args[..], &["--version", "7"]].concat()).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run
        .stdout
        .starts_with("saved the contact settings of c1\n{\n"));
    assert!(run.stdout.contains("\"direction\": \"two_way\""));

    std::fs::write(&file, "{not json").unwrap();
    let run = cli(&server.url, KEY, &args).await;
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("is not JSON"), "{}", run.stderr);
    let _ = std::fs::remove_file(&file);
    server.stop().await;
}

#[tokio::test]
async fn export_streams_to_a_file_and_to_stdout() {
    let server = Server::start().await;
    let whole: String = CHUNKS.concat();
    let file = scratch("export.csv");
    let path = file.to_str().unwrap();
    let run = cli(
        &server.url,
        KEY,
        &[
            "export", "c1", "contact", "--status", "failing", "--output", path,
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), whole);
    assert_eq!(
        run.stderr,
        format!("wrote {} bytes to {path}\n", whole.len())
    );
    assert_eq!(run.stdout, "");
    let _ = std::fs::remove_file(&file);

    let run = cli(
        &server.url,
        KEY,
        &["export", "c1", "contact", "--status", "failing"],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, whole);
    assert_eq!(
        run.stderr,
        format!("wrote {} bytes to stdout\n", whole.len())
    );

    // An error answer leaves no file behind.
    let file = scratch("refused.csv");
    let run = cli(
        &server.url,
        KEY,
        &[
            "export",
            "c1",
            "contact",
            "--output",
            file.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr, "error: invalid_filter: status missing\n");
    assert!(!file.exists());
    let mut partial = file.into_os_string();
    partial.push(".partial");
    assert!(!std::path::Path::new(&partial).exists());
    server.stop().await;
}

#[tokio::test]
async fn retry_bodies_and_usage_errors() {
    let server = Server::start().await;
    let run = cli(
        &server.url,
        KEY,
        &["retry", "c1", "contact", "--record", "hubspot:51"],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "retried 1 record\n");

    let run = cli(
        &server.url,
        KEY,
        &["retry", "c1", "contact", "--all", "--json"],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "{\n  \"retried\": 9\n}\n");

    let run = cli(
        &server.url,
        KEY,
        &["retry", "c1", "contact", "--record", "51"],
    )
    .await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("is not <hubspot|qbo>:<id>"),
        "{}",
        run.stderr
    );

    let run = cli(&server.url, KEY, &["retry", "c1", "contact"]).await;
    assert_eq!(run.code, Some(2));
    server.stop().await;
}

#[tokio::test]
async fn unreachable_or_unsafe_urls() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let run = cli(&format!("http://{address}"), KEY, &["connections"]).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .starts_with(&format!("error: cannot reach {address}: ")),
        "{}",
        run.stderr
    );

    let run = cli("http://admin.example.com/", KEY, &["connections"]).await;
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("plain http"), "{}", run.stderr);

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubspot-qbo"))
        .env_remove("HUBSPOT_QBO_ADMIN_URL")
        .env_remove("HUBSPOT_QBO_OPERATOR_KEY")
        .arg("connections")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--url"));
}

#[tokio::test]
async fn help_never_shows_the_key() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubspot-qbo"))
        .env("HUBSPOT_QBO_OPERATOR_KEY", KEY)
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("HUBSPOT_QBO_OPERATOR_KEY"), "{help}");
    assert!(!help.contains(KEY), "{help}");
}
