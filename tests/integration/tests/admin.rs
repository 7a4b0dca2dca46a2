//! The admin API end to end: an operator sees the connections, each object's counts, the
//! records with their reasons and history, retries what fails, edits the settings (checked
//! field by field) and reads the workflow-action runs; nobody else sees anything.

use hubspot_qbo_core::connection::registry::Connections;
use hubspot_qbo_core::domain::{ObjectKind, Provider};
use hubspot_qbo_core::ledger::LinkStatus;
use integration_tests::harness::{
    action_call, answered_call, now_ms, record_id as id, SyncStack, TEST_OPERATOR_KEY,
};
use reqwest::Method;
use serde_json::{json, Value};

const CONTACT: ObjectKind = ObjectKind::Contact;

/// Calls the admin API with `key` (none: unauthenticated); answers status and body.
async fn call(
    s: &SyncStack,
    method: Method,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let url = format!(
        "{}{}",
        s.stack.url("AdminFunction")?.trim_end_matches('/'),
        path
    );
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// Calls the admin API with the operator key.
async fn operator(
    s: &SyncStack,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    call(s, method, path, body, Some(TEST_OPERATOR_KEY)).await
}

/// One object's part of an overview.
fn object_in(overview: &Value, object: &str) -> Value {
    overview["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["object"] == object)
        .cloned()
        .unwrap_or_default()
}

async fn get(s: &SyncStack, path: &str) -> anyhow::Result<Value> {
    let (status, body) = call(s, Method::GET, path, None, Some(TEST_OPERATOR_KEY)).await?;
    anyhow::ensure!(status == 200, "{path}: {status} {body}");
    Ok(body)
}

#[tokio::test]
async fn an_operator_sees_counts_records_and_history_retries_and_edits_settings(
) -> anyhow::Result<()> {
    let s = SyncStack::start("admin").await?;
    let p = s.pair().await?;
    p.settings(CONTACT, |c| c.filters.hubspot_to_qbo.clear())
        .await?;
    // A HubSpot contact whose name a QuickBooks customer already has fails; another syncs.
    p.qbo_create(
        "Customer",
        json!({"DisplayName": "Zoe Hart", "PrimaryEmailAddr": {"Address": "zoe@books.example"}}),
    )
    .await?;
    let zoe = id(&p
        .hubspot_create(
            "contacts",
            json!({"firstname": "Zoe", "lastname": "Hart", "email": "zoe@crm.example"}),
        )
        .await?);
    let ann = id(&p
        .hubspot_create(
            "contacts",
            json!({"firstname": "Ann", "lastname": "Lee", "email": "ann@crm.example"}),
        )
        .await?);
    s.sync().await?;
    // A failure that waits for a person is not tried again when the next round reads the same
    // version again (HubSpot's poll re-reads its overlap).
    let failed = p
        .entry(CONTACT, Provider::HubSpot, &zoe)
        .await?
        .expect("zoe's entry");
    s.sync().await?;
    let again = p
        .entry(CONTACT, Provider::HubSpot, &zoe)
        .await?
        .expect("zoe's entry");
    assert_eq!(
        again.failure.as_ref().map(|f| f.attempts),
        Some(1),
        "{again:?}"
    );
    assert_eq!(again.activity.len(), failed.activity.len(), "{again:?}");
    let conn = p.connection.as_str().to_owned();
    let base = format!("/api/connections/{conn}");

    // Nobody without the operator key sees anything.
    for key in [None, Some("not-the-key")] {
        let (status, body) = call(&s, Method::GET, "/api/connections", None, key).await?;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["category"], "unauthenticated");
        let (status, _) = call(&s, Method::GET, &format!("{base}/overview"), None, key).await?;
        assert_eq!(status, 401);
    }

    let listed = get(&s, "/api/connections").await?;
    let mine = listed["connections"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["connection_id"] == conn.as_str())
        .cloned()
        .expect("the connection is listed");
    assert_eq!(mine["status"], "active");
    assert_eq!(mine["portal_id"], p.portal.to_string());

    // V1: the counts are the ledger's.
    let overview = get(&s, &format!("{base}/overview")).await?;
    let contacts = object_in(&overview, "contact");
    let (synced, failing, excluded, _) = p.counts(CONTACT).await?;
    assert_eq!(contacts["counts"]["synced"], json!(synced), "{overview}");
    assert_eq!(contacts["counts"]["failing"], json!(failing));
    assert_eq!(contacts["counts"]["excluded"], json!(excluded));
    assert_eq!(failing, 1);
    assert_eq!(contacts["enabled"], true);

    // V3: filtered records, and a record's history with its failure explained (V2).
    let failing_rows = get(&s, &format!("{base}/records/contact?status=failing")).await?;
    assert_eq!(failing_rows["total"], 1, "{failing_rows}");
    let row = &failing_rows["records"][0];
    assert_eq!(row["hubspot_id"], zoe.as_str());
    assert_eq!(row["category"], "duplicate_display_name");
    assert!(
        row["reason"].as_str().unwrap_or("").contains("Zoe Hart"),
        "{row}"
    );
    let found = get(&s, &format!("{base}/records/contact?q=ann%40crm")).await?;
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["records"][0]["hubspot_id"], ann.as_str());
    let paged = get(&s, &format!("{base}/records/contact?limit=1")).await?;
    assert_eq!(paged["records"].as_array().map(Vec::len), Some(1));
    assert_eq!(paged["next"], "1");
    let (status, bad) = operator(
        &s,
        Method::GET,
        &format!("{base}/records/contact?status=broken"),
        None,
    )
    .await?;
    assert_eq!(
        (status, bad["category"].as_str()),
        (400, Some("invalid_filter")),
        "{bad}"
    );
    let record = get(&s, &format!("{base}/records/contact/hubspot/{zoe}")).await?;
    assert_eq!(record["explanation"]["code"], "duplicate_display_name");
    assert!(record["explanation"]["fix"]
        .as_str()
        .unwrap_or("")
        .contains("disambiguation"));
    assert!(
        record["activity"].as_array().is_some_and(|a| !a.is_empty()),
        "{record}"
    );
    for path in [
        format!("{base}/records/contact/hubspot/999999"),
        format!("{base}/records/widget"),
        "/api/connections/nobody/overview".to_owned(),
    ] {
        let (status, body) = operator(&s, Method::GET, &path, None).await?;
        assert_eq!(status, 404, "{path}: {body}");
    }

    // V5: a record that is not failing is not retried; a failing one is, now.
    let (status, body) = operator(
        &s,
        Method::POST,
        &format!("{base}/retry/contact"),
        Some(json!({"side": "hubspot", "id": ann})),
    )
    .await?;
    assert_eq!(
        (status, body["category"].as_str()),
        (409, Some("not_failing")),
        "{body}"
    );
    let (status, body) = operator(
        &s,
        Method::POST,
        &format!("{base}/retry/contact"),
        Some(json!({"side": "hubspot", "id": zoe})),
    )
    .await?;
    assert_eq!((status, body["retried"].clone()), (200, json!(1)), "{body}");
    let entry = p
        .entry(CONTACT, Provider::HubSpot, &zoe)
        .await?
        .expect("zoe's entry");
    assert!(
        entry
            .failure
            .as_ref()
            .and_then(|f| f.next_retry_at)
            .is_some(),
        "due for retry: {entry:?}"
    );
    let (status, body) = operator(
        &s,
        Method::POST,
        &format!("{base}/retry/contact"),
        Some(json!({"category": "*"})),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let (status, _) = operator(
        &s,
        Method::POST,
        &format!("{base}/retry/contact"),
        Some(json!({})),
    )
    .await?;
    assert_eq!(status, 400);

    // S1: settings read with their version; an invalid edit names its fields; a valid one takes
    // effect — the retry with disambiguation on makes Zoe's customer.
    let read = get(&s, &format!("{base}/settings/contact")).await?;
    assert!(read["version"].as_u64().is_some(), "{read}");
    let mut settings = read["settings"].clone();
    settings["filters"]["hubspot_to_qbo"] =
        json!([{"property": "createdate", "operator": "after", "values": ["yesterday"]}]);
    let (status, body) = operator(
        &s,
        Method::PUT,
        &format!("{base}/settings/contact"),
        Some(settings.clone()),
    )
    .await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["fields"][0]["field"], "filters.hubspot_to_qbo[0].values",
        "{body}"
    );
    let (status, _) = operator(
        &s,
        Method::PUT,
        &format!("{base}/settings/contact"),
        Some(json!("not settings")),
    )
    .await?;
    assert_eq!(status, 400);
    let mut settings = read["settings"].clone();
    settings["disambiguate_display_names"] = json!(true);
    let (status, body) = operator(
        &s,
        Method::PUT,
        &format!("{base}/settings/contact"),
        Some(settings),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let read = get(&s, &format!("{base}/settings/contact")).await?;
    assert_eq!(read["settings"]["disambiguate_display_names"], true);
    s.sync().await?;
    assert_eq!(p.entries(CONTACT, LinkStatus::Failing).await?.len(), 0);

    // The portal's workflow-action runs, with their outcome; the categories table.
    let deal = p
        .hubspot_sale(
            "deals",
            json!({"dealname": "Runs"}),
            Some(&ann),
            &[json!({"name": "Work", "price": "10", "quantity": "1"})],
        )
        .await?;
    let (_, answer) = answered_call(
        s.stack.url("ActionCreateInvoiceFunction")?,
        &action_call("ap-admin-1", p.portal, ("DEAL", &deal), json!({})),
    )
    .await?;
    assert_eq!(
        answer["outputFields"]["errorCode"], "unmatched_items",
        "{answer}"
    );
    let runs = get(&s, &format!("{base}/action-runs")).await?;
    let run = runs["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["callback_id"] == "ap-admin-1")
        .cloned()
        .expect("the run is listed");
    assert_eq!(run["state"], "done");
    assert_eq!(
        run["outcome"]["outputFields"]["errorCode"],
        "unmatched_items"
    );
    // The workflow-action settings: defaults until saved, checked field by field.
    let actions = get(&s, &format!("{base}/action-settings")).await?;
    assert_eq!(actions["settings"]["customer_mode"], "new", "{actions}");
    let mut edited = actions["settings"].clone();
    edited["fee_expense_account"] = json!("Office expenses");
    let (status, body) = operator(
        &s,
        Method::PUT,
        &format!("{base}/action-settings"),
        Some(edited.clone()),
    )
    .await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["fields"][0]["field"], "fee_expense_account");
    edited["fee_expense_account"] = json!("7");
    edited["customer_mode"] = json!("legacy");
    let (status, body) = operator(
        &s,
        Method::PUT,
        &format!("{base}/action-settings"),
        Some(edited),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let actions = get(&s, &format!("{base}/action-settings")).await?;
    assert_eq!(actions["settings"]["customer_mode"], "legacy");
    assert_eq!(actions["settings"]["fee_expense_account"], "7");
    let categories = get(&s, "/api/categories").await?;
    assert!(categories["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["code"] == "unmatched_items"));
    s.stop().await
}

/// A record of the export's CSV: the HubSpot id and status columns.
fn csv_ids(text: &str) -> Vec<(String, String)> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap_or(usize::MAX);
    let (status, hubspot) = (at("status"), at("hubspot_id"));
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (
                cells.get(hubspot).copied().unwrap_or_default().to_owned(),
                cells.get(status).copied().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn people_sign_in_with_hubspot_and_see_and_change_only_their_portals() -> anyhow::Result<()> {
    let s = SyncStack::start("admin-people").await?;
    let mine = s.pair().await?;
    let theirs = s.pair().await?;
    let (my_conn, their_conn) = (mine.connection.as_str(), theirs.connection.as_str());
    let person = s.sign_in(mine.portal).await?;

    // Signed in: the connections of the portal consented for, and nothing else.
    let listed: Value = person
        .call(Method::GET, "api/connections")
        .send()
        .await?
        .json()
        .await?;
    let ids: Vec<&str> = listed["connections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["connection_id"].as_str())
        .collect();
    assert_eq!(ids, [my_conn], "{listed}");
    let overview = person
        .call(Method::GET, &format!("api/connections/{my_conn}/overview"))
        .send()
        .await?;
    assert_eq!(overview.status(), 200);
    // Another portal's connection answers as if it did not exist, to reads and changes.
    for (method, path) in [
        (
            Method::GET,
            format!("api/connections/{their_conn}/overview"),
        ),
        (
            Method::GET,
            format!("api/connections/{their_conn}/settings/contact"),
        ),
        (
            Method::GET,
            format!("api/connections/{their_conn}/export/contact"),
        ),
        (
            Method::DELETE,
            format!("api/connections/{their_conn}/settings/contact"),
        ),
        (Method::GET, format!("connections/{their_conn}")),
    ] {
        let response = person.call(method.clone(), &path).send().await?;
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    let still = get(
        &s,
        &format!("/api/connections/{their_conn}/settings/contact"),
    )
    .await?;
    assert!(
        still["settings"].is_object(),
        "their settings are untouched"
    );

    // A change needs the session's CSRF token: without it (or with another) it is refused.
    let read: Value = person
        .call(
            Method::GET,
            &format!("api/connections/{my_conn}/settings/contact"),
        )
        .send()
        .await?
        .json()
        .await?;
    let mut edited = read["settings"].clone();
    edited["conflict"] = json!("quickbooks");
    let path = format!("{}api/connections/{my_conn}/settings/contact", person.admin);
    for token in [None, Some("forged-token")] {
        let mut request = reqwest::Client::new()
            .put(&path)
            .header("cookie", &person.cookies)
            .json(&edited);
        if let Some(token) = token {
            request = request.header("x-csrf-token", token);
        }
        let response = request.send().await?;
        assert_eq!(response.status(), 403, "{token:?}");
        let body: Value = response.json().await?;
        assert_eq!(body["category"], "csrf_failed");
    }
    let saved = person
        .call(
            Method::PUT,
            &format!("api/connections/{my_conn}/settings/contact"),
        )
        .json(&edited)
        .send()
        .await?;
    assert_eq!(saved.status(), 200, "{}", saved.text().await?);
    let read = get(&s, &format!("/api/connections/{my_conn}/settings/contact")).await?;
    assert_eq!(read["settings"]["conflict"], "quickbooks");

    // No session, a forged one, or a session cookie alone with no sign-in: nothing is shown.
    let admin = s.stack.url("AdminFunction")?.to_owned();
    for cookie in [
        None,
        Some("hsqbo-session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        Some("hsqbo-session=not-a-session"),
    ] {
        let mut request = reqwest::Client::new().get(format!("{admin}api/connections"));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await?;
        assert_eq!(response.status(), 401, "{cookie:?}");
    }
    // A connection that needs reconnecting links to the install function's reconnect page.
    let connections = Connections::new(s.services.store.clone());
    connections
        .require_reconnect(&mine.connection, Provider::Qbo, None, now_ms() / 1000)
        .await?;
    let listed: Value = person
        .call(Method::GET, "api/connections")
        .send()
        .await?
        .json()
        .await?;
    let paused = &listed["connections"][0];
    assert_eq!(paused["status"], "reconnect_required", "{listed}");
    assert_eq!(paused["reconnect_provider"], "qbo");
    let install = s
        .stack
        .url("OAuthInstallFunction")?
        .trim_end_matches('/')
        .to_owned();
    assert_eq!(
        paused["reconnect_url"],
        format!("{install}/reconnect?connection={my_conn}"),
        "{listed}"
    );
    let page = person.call(Method::GET, "").send().await?.text().await?;
    assert!(page.contains("Needs reconnecting to QuickBooks"), "{page}");

    // The page of someone not signed in is the sign-in page.
    let page = reqwest::Client::new()
        .get(&admin)
        .send()
        .await?
        .text()
        .await?;
    assert!(page.contains("Sign in with HubSpot"), "{page}");

    // The sign-in is bound to the browser that started it: HubSpot's redirect opened in
    // another browser (without the first one's cookie) is refused.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let start = no_redirects
        .get(format!("{admin}signin?portal={}", theirs.portal))
        .send()
        .await?;
    let consent = no_redirects
        .get(start.headers()["location"].to_str()?)
        .send()
        .await?;
    let elsewhere = no_redirects
        .get(consent.headers()["location"].to_str()?)
        .send()
        .await?;
    assert_eq!(elsewhere.status(), 403);
    assert!(elsewhere.headers().get("set-cookie").is_none());
    let bad_portal = no_redirects
        .get(format!("{admin}signin?portal=abc"))
        .send()
        .await?;
    assert_eq!(bad_portal.status(), 400);

    // Signing in to the other portal in the same browser adds it to the session.
    let both = s.sign_in_again(Some(&person), theirs.portal).await?;
    let listed: Value = both
        .call(Method::GET, "api/connections")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        listed["connections"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );

    // Signing out ends the session (a POST with the token).
    let out = both
        .call(Method::POST, "signout")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}", both.csrf))
        .send()
        .await?;
    assert!(out.status().is_redirection(), "{}", out.status());
    let after = both.call(Method::GET, "api/connections").send().await?;
    assert_eq!(after.status(), 401);
    s.stop().await
}

#[tokio::test]
async fn an_export_streams_the_filtered_records_and_a_preview_writes_nothing() -> anyhow::Result<()>
{
    let s = SyncStack::start("admin-export").await?;
    let p = s.pair().await?;
    p.settings(CONTACT, |c| c.filters.hubspot_to_qbo.clear())
        .await?;
    let people: Vec<Value> = (0..30)
        .map(|n| json!({"firstname": "Person", "lastname": format!("N{n}"), "email": format!("p{n}@crm.example")}))
        .collect();
    p.hubspot_create_many("contacts", people).await?;
    p.qbo_create(
        "Customer",
        json!({"DisplayName": "Person N3", "PrimaryEmailAddr": {"Address": "other@books.example"}}),
    )
    .await?;
    s.sync().await?;
    let conn = p.connection.as_str().to_owned();
    let base = format!("/api/connections/{conn}");
    let admin = s.stack.url("AdminFunction")?.to_owned();

    // V4: the export holds exactly the records the view lists, for the same filter.
    for filter in ["", "status=failing", "status=synced&q=p1"] {
        let listed = get(&s, &format!("{base}/records/contact?{filter}&limit=500")).await?;
        let response = reqwest::Client::new()
            .get(format!(
                "{admin}api/connections/{conn}/export/contact?{filter}"
            ))
            .bearer_auth(TEST_OPERATOR_KEY)
            .send()
            .await?;
        assert_eq!(response.status(), 200, "{filter}");
        assert!(response.headers()["content-type"]
            .to_str()?
            .starts_with("text/csv"));
        assert!(response.headers()["content-disposition"]
            .to_str()?
            .contains("attachment"));
        let text = response.text().await?;
        let mut exported = csv_ids(&text);
        let mut expected: Vec<(String, String)> = listed["records"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["hubspot_id"].as_str().unwrap_or_default().to_owned(),
                    r["status"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        exported.sort();
        expected.sort();
        assert_eq!(exported, expected, "{filter}: {text}");
        assert_eq!(exported.len() as u64, listed["total"].as_u64().unwrap_or(0));
    }
    // The operators' CLI against the same API: its table, its JSON, its export.
    // Run without blocking: the stack's function URLs are served on this test's runtime.
    let cli = |args: &[&str]| {
        tokio::process::Command::new(local_stack::paths::workspace_binary("hubspot-qbo"))
            .args(args)
            .env("HUBSPOT_QBO_ADMIN_URL", &admin)
            .env("HUBSPOT_QBO_OPERATOR_KEY", TEST_OPERATOR_KEY)
            .output()
    };
    let listed = cli(&["--json", "connections"]).await?;
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed: Value = serde_json::from_slice(&listed.stdout)?;
    assert_eq!(listed["connections"][0]["connection_id"], conn.as_str());
    let overview = cli(&["overview", &conn]).await?;
    let table = String::from_utf8_lossy(&overview.stdout);
    assert!(table.contains("contact"), "{table}");
    let file = std::env::temp_dir().join(format!("admin-export-{conn}.csv"));
    let exported = cli(&[
        "export",
        &conn,
        "contact",
        "--status",
        "failing",
        "-o",
        &file.to_string_lossy(),
    ])
    .await?;
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let text = std::fs::read_to_string(&file)?;
    let _ = std::fs::remove_file(&file);
    assert_eq!(csv_ids(&text).len(), 1, "{text}");
    let refused = cli(&["retry", &conn, "contact", "--record", "hubspot:999999"]).await?;
    assert_eq!(refused.status.code(), Some(1));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("unknown_record") && !said.contains(TEST_OPERATOR_KEY),
        "{said}"
    );

    let (status, body) = operator(
        &s,
        Method::GET,
        &format!("{base}/export/contact?status=broken"),
        None,
    )
    .await?;
    assert_eq!(
        (status, body["category"].as_str()),
        (400, Some("invalid_filter"))
    );

    // An edit names the version it was made from: a stale one is refused, nothing lost.
    let read = get(&s, &format!("{base}/settings/contact")).await?;
    let version = read["version"].as_u64().unwrap_or_default();
    let mut edited = read["settings"].clone();
    edited["conflict"] = json!("quickbooks");
    let put = |version: u64, body: Value| {
        reqwest::Client::new()
            .put(format!("{admin}api/connections/{conn}/settings/contact"))
            .bearer_auth(TEST_OPERATOR_KEY)
            .header("if-match", version.to_string())
            .json(&body)
            .send()
    };
    assert_eq!(put(version, edited.clone()).await?.status(), 200);
    let stale = put(version, read["settings"].clone()).await?;
    assert_eq!(stale.status(), 409);
    let read = get(&s, &format!("{base}/settings/contact")).await?;
    assert_eq!(read["settings"]["conflict"], "quickbooks");
    assert_eq!(read["version"].as_u64(), Some(version + 1));

    // The preview: what the first run with these settings would do, and no write anywhere.
    let ledger_before = p.counts(CONTACT).await?;
    let writes_before = (s.writes(&s.qbo).await?, s.writes(&s.hubspot).await?);
    let mut candidate = read["settings"].clone();
    candidate["disambiguate_display_names"] = json!(true);
    let (status, preview) = operator(
        &s,
        Method::POST,
        &format!("{base}/preview/contact"),
        Some(candidate),
    )
    .await?;
    assert_eq!(status, 200, "{preview}");
    // 30 contacts, and the one the QuickBooks customer made; 29 customers made from them and
    // that customer.
    assert_eq!(
        preview["read"],
        json!({"hubspot": 31, "qbo": 30}),
        "{preview}"
    );
    let counts = &preview["counts"];
    let total: u64 = ["create", "link", "update", "exclude", "skip", "fail"]
        .iter()
        .map(|d| counts[*d].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        total,
        preview["read"]["hubspot"].as_u64().unwrap_or(0)
            + preview["read"]["qbo"].as_u64().unwrap_or(0),
        "{preview}"
    );
    // Everything else synced already; Person N3, failing on a taken name, would be made under
    // the candidate's disambiguation, which the saved settings do not have.
    assert_eq!(counts["create"], json!(1), "{preview}");
    assert_eq!(counts["fail"], json!(0), "{preview}");
    assert_eq!(counts["skip"], json!(60), "{preview}");
    let made = preview["samples"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["decision"] == "create")
        .cloned()
        .unwrap_or_default();
    assert_ne!(
        made["name"], "Person N3",
        "made under a free name: {preview}"
    );
    // With the saved settings (no disambiguation) the preview says it fails, and why, as the
    // run does.
    let (status, saved) = operator(
        &s,
        Method::POST,
        &format!("{base}/preview/contact"),
        Some(json!({})),
    )
    .await?;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["counts"]["fail"], json!(1), "{saved}");
    assert_eq!(
        saved["failures"]["duplicate_display_name"],
        json!(1),
        "{saved}"
    );
    assert_eq!(
        (s.writes(&s.qbo).await?, s.writes(&s.hubspot).await?),
        writes_before,
        "a preview writes nothing"
    );
    assert_eq!(p.counts(CONTACT).await?, ledger_before);
    let (status, body) = operator(
        &s,
        Method::POST,
        &format!("{base}/preview/contact"),
        Some(json!({"object": "contact", "direction": "sideways"})),
    )
    .await?;
    assert_eq!(status, 400, "{body}");
    let (status, body) = operator(
        &s,
        Method::POST,
        &format!("{base}/preview/invoice"),
        Some(json!({})),
    )
    .await?;
    assert_eq!(
        (status, body["category"].as_str()),
        (422, Some("preview_unavailable")),
        "{body}"
    );

    // S1: settings deleted are gone (the object stops); the recommended ones bring it back.
    let (status, _) = operator(
        &s,
        Method::DELETE,
        &format!("{base}/settings/product"),
        None,
    )
    .await?;
    assert_eq!(status, 200);
    let (status, body) =
        operator(&s, Method::GET, &format!("{base}/settings/product"), None).await?;
    assert_eq!(
        (status, body["category"].as_str()),
        (404, Some("no_settings"))
    );
    let overview = get(&s, &format!("{base}/overview")).await?;
    let product = object_in(&overview, "product");
    assert_eq!(product["configured"], false, "{overview}");
    // Without settings, a preview uses the recommended ones.
    let (status, preview) =
        operator(&s, Method::POST, &format!("{base}/preview/product"), None).await?;
    assert_eq!(status, 200, "{preview}");
    let (status, body) = operator(
        &s,
        Method::POST,
        &format!("{base}/settings/product/recommended"),
        None,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["enabled"], true);
    let (status, body) = operator(
        &s,
        Method::POST,
        &format!("{base}/settings/product/recommended"),
        None,
    )
    .await?;
    assert_eq!(
        (status, body["category"].as_str()),
        (409, Some("has_settings"))
    );
    // The 24-hour chart counts what changed: today's synced contacts are in the last hour.
    let overview = get(&s, &format!("{base}/overview")).await?;
    let contact = object_in(&overview, "contact");
    let hours = contact["last_24h"].as_array().cloned().unwrap_or_default();
    assert_eq!(hours.len(), 24);
    let synced_today: u64 = hours
        .iter()
        .map(|h| h["synced"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        synced_today,
        contact["counts"]["synced"].as_u64().unwrap_or(0),
        "{contact}"
    );
    s.stop().await
}
