//! The admin pages for people: server-rendered HTML (minijinja templates in
//! `templates/admin/`, auto-escaped), plain forms, and no script but a confirmation. Every page
//! reads through the same service methods as the JSON API; every change is a POST carrying the
//! session's CSRF token. Pages may be framed by HubSpot (its app settings), nothing else.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::Environment;
use serde_json::{json, Value};

use super::records::RecordFilter;
use super::session::{SessionId, SESSION_COOKIE, SESSION_SECONDS, SIGNIN_CALLBACK_PATH};
use super::{failed, object_of, AdminService, Caller, Failed, RetryRequest};
use crate::connection::install::{CallbackParams, ConnectError};
use crate::connection::oauth_state::BrowserKey;
use crate::connection::pages::{browser_cookie, browser_of};
use crate::domain::{ObjectKind, PortalId};
use crate::http::cookies;
use crate::settings::{default_settings, Filter, FilterOperator, ObjectSettings, TaxMapping};
use crate::status::categories::CATEGORIES;
use crate::sync::settings::default_keys;

type Admin = State<Arc<AdminService>>;

/// What the previous step says on the page it led back to.
#[derive(Debug, Default, serde::Deserialize)]
struct Notice {
    notice: Option<String>,
}

pub(super) fn routes() -> Router<Arc<AdminService>> {
    Router::new()
        .route("/", get(home))
        // Browsers ask for it on every page; there is none.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/signin", get(sign_in))
        .route(SIGNIN_CALLBACK_PATH, get(signed_in))
        .route("/signout", post(sign_out))
        .route("/connections/{id}", get(overview))
        .route("/connections/{id}/records/{object}", get(records))
        .route("/connections/{id}/records/{object}/retry", post(retry))
        .route(
            "/connections/{id}/records/{object}/{side}/{record}",
            get(record),
        )
        .route(
            "/connections/{id}/settings/{object}",
            get(settings).post(save_settings),
        )
        .route(
            "/connections/{id}/settings/{object}/delete",
            post(delete_settings),
        )
        .route(
            "/connections/{id}/settings/{object}/recommended",
            post(add_recommended),
        )
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/admin/base.html")),
    (
        "signin.html",
        include_str!("../../templates/admin/signin.html"),
    ),
    (
        "error.html",
        include_str!("../../templates/admin/error.html"),
    ),
    (
        "connections.html",
        include_str!("../../templates/admin/connections.html"),
    ),
    (
        "overview.html",
        include_str!("../../templates/admin/overview.html"),
    ),
    (
        "records.html",
        include_str!("../../templates/admin/records.html"),
    ),
    (
        "record.html",
        include_str!("../../templates/admin/record.html"),
    ),
    (
        "settings.html",
        include_str!("../../templates/admin/settings.html"),
    ),
];

/// Epoch seconds as people read them (UTC).
fn when(epoch_seconds: Value) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    let seconds = match &epoch_seconds {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    seconds
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(format).ok())
        .unwrap_or_default()
}

fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            if let Err(error) = env.add_template(name, source) {
                // Caught by the tests, which render every template.
                tracing::error!(%error, template = name, "an admin template does not parse");
            }
        }
        env.add_filter("when", |v: minijinja::Value| {
            when(v.as_i64().map_or(Value::Null, Value::from))
        });
        env
    })
}

/// The words the pages use for the domain's names.
fn words() -> Value {
    let titles: BTreeMap<&str, &str> = CATEGORIES.iter().map(|c| (c.code, c.title)).collect();
    json!({
        "names": {"contact": "Contacts and customers", "product": "Products and items", "invoice": "Invoices"},
        "directions": {"two_way": "both ways", "hubspot_to_qbo": "HubSpot to QuickBooks", "qbo_to_hubspot": "QuickBooks to HubSpot"},
        "statuses": {"synced": "Synced", "failing": "Failing", "excluded": "Left out", "pending": "In progress"},
        "decisions": {"create": "Would be made on the other side", "link": "Would be linked to an existing record", "update": "Would update its linked record", "exclude": "Would be left out", "skip": "Nothing to do", "fail": "Would fail"},
        "operators": [["is_any_of", "is one of"], ["is_none_of", "is none of"], ["after", "is after (a date)"], ["has_value", "has a value"]],
        "titles": titles,
        "categories": CATEGORIES,
    })
}

/// A JSON value as the templates see it. Numbers are turned into numbers here: the workspace's
/// JSON keeps numbers exact (`arbitrary_precision`), which serde would hand the template engine
/// as maps.
fn template_value(value: &Value) -> minijinja::Value {
    match value {
        Value::Null => minijinja::Value::from(()),
        Value::Bool(b) => minijinja::Value::from(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => minijinja::Value::from(i),
            (None, Some(u)) => minijinja::Value::from(u),
            // Not an integer: shown as written (amounts are decimals, never floats).
            (None, None) => minijinja::Value::from(n.to_string()),
        },
        Value::String(s) => minijinja::Value::from(s.as_str()),
        Value::Array(items) => {
            minijinja::Value::from(items.iter().map(template_value).collect::<Vec<_>>())
        }
        Value::Object(map) => {
            minijinja::Value::from_iter(map.iter().map(|(k, v)| (k.clone(), template_value(v))))
        }
    }
}

/// Renders a page with the common words, the caller's CSRF token and this function's address.
fn render(
    name: &str,
    status: StatusCode,
    page: Value,
    caller: Option<&Caller>,
    base: &str,
) -> Response {
    let mut ctx = words();
    if let (Value::Object(all), Value::Object(page)) = (&mut ctx, page) {
        all.extend(page);
    }
    ctx["base"] = json!(base);
    if let Some(Caller::Person(session)) = caller {
        ctx["csrf"] = json!(session.csrf_token());
        ctx["portals"] = json!(session.portals);
    }
    let rendered = environment()
        .get_template(name)
        .and_then(|t| t.render(template_value(&ctx)));
    let mut response = match rendered {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, template = name, "an admin page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be shown",
            )
                .into_response()
        }
    };
    protect(response.headers_mut());
    response
}

/// Framing by HubSpot only; no sniffing, no caching of private pages.
fn protect(headers: &mut HeaderMap) {
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self' https://app.hubspot.com https://app-eu1.hubspot.com",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

fn error_page(failure: &Failed, caller: Option<&Caller>, base: &str) -> Response {
    let title = match failure.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "Not allowed",
        s if s.is_server_error() => "Please try again",
        _ => "That did not work",
    };
    render(
        "error.html",
        failure.status,
        json!({"title": title, "message": failure.message}),
        caller,
        base,
    )
}

/// The caller of a page; someone not signed in sees the sign-in page.
async fn page_caller(
    admin: &AdminService,
    headers: &HeaderMap,
) -> Result<(Caller, String), Response> {
    let base = AdminService::base_url(headers).map_err(IntoResponse::into_response)?;
    match admin.caller(headers).await {
        Ok(caller) => Ok((caller, base)),
        Err(f) if f.status == StatusCode::UNAUTHORIZED => Err(render(
            "signin.html",
            StatusCode::OK,
            json!({}),
            None,
            &base,
        )),
        Err(f) => Err(error_page(&f, None, &base)),
    }
}

/// Runs one page: its caller, then `body`, whose failure shows as an error page.
macro_rules! page {
    ($admin:expr, $headers:expr, |$caller:ident, $base:ident| $body:expr) => {{
        let ($caller, $base) = match page_caller(&$admin, &$headers).await {
            Ok(found) => found,
            Err(page) => return page,
        };
        let outcome: Result<Response, Failed> = async { $body }.await;
        match outcome {
            Ok(page) => page,
            Err(failure) => error_page(&failure, Some(&$caller), &$base),
        }
    }};
}

async fn home(State(admin): Admin, headers: HeaderMap) -> Response {
    page!(admin, headers, |caller, base| {
        let listed = admin.list_connections(&caller).await?;
        Ok(render(
            "connections.html",
            StatusCode::OK,
            listed,
            Some(&caller),
            &base,
        ))
    })
}

#[derive(Debug, Default, serde::Deserialize)]
struct SignInParams {
    portal: Option<String>,
}

/// Starts a sign-in in this browser (its key kept in a cookie, as the install flow does).
async fn sign_in(
    State(admin): Admin,
    headers: HeaderMap,
    Query(params): Query<SignInParams>,
) -> Response {
    let base = match AdminService::base_url(&headers) {
        Ok(base) => base,
        Err(f) => return f.into_response(),
    };
    let portal = match params
        .portal
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(PortalId::parse)
    {
        None => None,
        Some(Ok(portal)) => Some(portal),
        Some(Err(e)) => {
            return error_page(
                &failed(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    format!("portal: {e}"),
                ),
                None,
                &base,
            )
        }
    };
    let browser = browser_of(&headers, &base).unwrap_or_else(BrowserKey::generate);
    match admin
        .sign_in
        .start(&base, &browser, portal.as_ref(), admin.now())
        .await
    {
        Ok(location) => {
            let mut response = Redirect::to(&location).into_response();
            if let Ok(cookie) = HeaderValue::from_str(&browser_cookie(&browser, &base)) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(error) => sign_in_failed(&error, &base),
    }
}

/// A sign-in step that failed, in words, with the status the install pages give it.
fn sign_in_failed(error: &ConnectError, base: &str) -> Response {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
    error_page(
        &failed(status, error.category(), error.to_string()),
        None,
        base,
    )
}

/// HubSpot sent the person back: their session now covers the portal they chose.
async fn signed_in(
    State(admin): Admin,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    let base = match AdminService::base_url(&headers) {
        Ok(base) => base,
        Err(f) => return f.into_response(),
    };
    let browser = browser_of(&headers, &base);
    let current = AdminService::session_id(&headers);
    match admin
        .sign_in
        .callback(&params, browser.as_ref(), current, admin.now())
        .await
    {
        Ok((session, _portal)) => {
            let mut response = Redirect::to(&format!("{base}/")).into_response();
            set_session_cookie(&mut response, Some(&session), &base);
            response
        }
        Err(error) => sign_in_failed(&error, &base),
    }
}

/// Sets the session cookie (`None`: clears it).
fn set_session_cookie(response: &mut Response, session: Option<&SessionId>, base: &str) {
    let cookie = cookies::set(
        SESSION_COOKIE,
        session.map(SessionId::cookie_value).unwrap_or(""),
        base,
        if session.is_some() {
            SESSION_SECONDS as u32
        } else {
            0
        },
        cookies::SameSite::None,
    );
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
}

/// The pairs of a form body (names may repeat).
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn form_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn sign_out(State(admin): Admin, headers: HeaderMap, body: Bytes) -> Response {
    let pairs = form_pairs(&body);
    page!(admin, headers, |caller, base| {
        admin.changer(&headers, form_value(&pairs, "csrf")).await?;
        if let (Caller::Person(_), Some(id)) = (&caller, AdminService::session_id(&headers)) {
            admin
                .sign_in
                .sessions
                .close(&id)
                .await
                .map_err(super::store_error)?;
        }
        let mut response = Redirect::to(&format!("{base}/")).into_response();
        set_session_cookie(&mut response, None, &base);
        Ok(response)
    })
}

/// Bar heights (pixels of 40) of each hour, scaled to the busiest hour of the object.
fn with_bar_heights(overview: &mut Value) {
    const HEIGHT: f64 = 38.0;
    let Some(objects) = overview["objects"].as_array_mut() else {
        return;
    };
    for object in objects {
        let Some(hours) = object["last_24h"].as_array_mut() else {
            continue;
        };
        let count = |h: &Value, k: &str| h[k].as_u64().unwrap_or(0);
        let busiest = hours
            .iter()
            .map(|h| count(h, "synced") + count(h, "failing"))
            .max()
            .unwrap_or(0)
            .max(1);
        for hour in hours.iter_mut() {
            let px = |n: u64| ((n as f64) * HEIGHT / busiest as f64).round() as u64;
            let (synced, failing) = (count(hour, "synced"), count(hour, "failing"));
            hour["synced_px"] = json!(px(synced));
            hour["failing_px"] = json!(px(failing));
        }
    }
}

async fn overview(
    State(admin): Admin,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
    headers: HeaderMap,
) -> Response {
    page!(admin, headers, |caller, base| {
        let mut overview = admin.overview(&caller, &id).await?;
        overview["notice"] = json!(notice.notice);
        with_bar_heights(&mut overview);
        let runs = admin.action_runs(&caller, &id).await?;
        overview["runs"] =
            json!(runs["runs"]
                .as_array()
                .map(|r| r.iter().take(10).cloned().collect::<Vec<_>>()));
        Ok(render(
            "overview.html",
            StatusCode::OK,
            overview,
            Some(&caller),
            &base,
        ))
    })
}

/// A query string of the filter (without paging), for the export link and the next page.
fn filter_query(filter: &RecordFilter, after: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("status", filter.status.as_deref()),
        ("category", filter.category.as_deref()),
        ("q", filter.q.as_deref()),
        ("after", after),
    ] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            query.append_pair(name, value);
        }
    }
    query.finish()
}

async fn company_of(admin: &AdminService, caller: &Caller, id: &str) -> Result<String, Failed> {
    let connection = admin.connection(caller, id).await?;
    Ok(if connection.company_name.is_empty() {
        connection.realm_id.to_string()
    } else {
        connection.company_name
    })
}

async fn records(
    State(admin): Admin,
    Path((id, object)): Path<(String, String)>,
    Query(filter): Query<RecordFilter>,
    Query(notice): Query<Notice>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    page!(admin, headers, |caller, base| {
        let company = company_of(&admin, &caller, &id).await?;
        let mut page = admin.records(&caller, &id, &object, &filter).await?;
        page["notice"] = json!(notice.notice);
        page["connection_id"] = json!(id);
        page["object"] = json!(object);
        page["company"] = json!(company);
        page["filter"] =
            json!({"status": filter.status, "category": filter.category, "q": filter.q});
        page["query"] = json!(filter_query(&filter, None));
        page["next_query"] = json!(filter_query(&filter, page["next"].as_str()));
        page["here"] = json!(format!(
            "/connections/{id}/records/{object}?{}",
            raw.unwrap_or_default()
        ));
        Ok(render(
            "records.html",
            StatusCode::OK,
            page,
            Some(&caller),
            &base,
        ))
    })
}

async fn record(
    State(admin): Admin,
    Path((id, object, side, record_id)): Path<(String, String, String, String)>,
    Query(notice): Query<Notice>,
    headers: HeaderMap,
) -> Response {
    page!(admin, headers, |caller, base| {
        let company = company_of(&admin, &caller, &id).await?;
        let mut page = admin
            .record(&caller, &id, &object, &side, &record_id)
            .await?;
        page["notice"] = json!(notice.notice);
        page["connection_id"] = json!(id);
        page["object"] = json!(object);
        page["company"] = json!(company);
        page["side"] = json!(side);
        page["record_id"] = json!(record_id);
        page["here"] = json!(format!(
            "/connections/{id}/records/{object}/{side}/{record_id}"
        ));
        Ok(render(
            "record.html",
            StatusCode::OK,
            page,
            Some(&caller),
            &base,
        ))
    })
}

/// Back to the page a form came from (only pages of this connection).
fn back_to(base: &str, id: &str, back: Option<&str>, notice: &str) -> Response {
    let fallback = format!("/connections/{id}");
    let back = back
        .filter(|b| b.starts_with(&format!("/connections/{id}/")) && !b.contains("//"))
        .unwrap_or(&fallback);
    let separator = if back.contains('?') { '&' } else { '?' };
    let notice: String = form_urlencoded::byte_serialize(notice.as_bytes()).collect();
    Redirect::to(&format!("{base}{back}{separator}notice={notice}")).into_response()
}

async fn retry(
    State(admin): Admin,
    Path((id, object)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs = form_pairs(&body);
    page!(admin, headers, |caller, base| {
        admin.changer(&headers, form_value(&pairs, "csrf")).await?;
        let value = |name: &str| form_value(&pairs, name).map(str::to_owned);
        let request = RetryRequest {
            side: value("side"),
            id: value("record"),
            category: value("category"),
        };
        let done = admin.retry(&caller, &id, &object, request).await?;
        let n = done["retried"].as_u64().unwrap_or(0);
        let notice = match n {
            1 => "1 record will be tried again within a minute.".to_owned(),
            n => format!("{n} records will be tried again within a minute."),
        };
        Ok(back_to(&base, &id, form_value(&pairs, "back"), &notice))
    })
}

/// The settings page: the form (from `shown`, else the saved settings), field problems, and
/// the preview when one was asked for.
#[allow(clippy::too_many_arguments)]
async fn settings_page(
    admin: &AdminService,
    caller: &Caller,
    base: &str,
    id: &str,
    object: &str,
    shown: Option<(ObjectSettings, u64)>,
    problems: Option<&Failed>,
    preview: Option<Value>,
) -> Result<Response, Failed> {
    let kind = object_of(object)?;
    let company = company_of(admin, caller, id).await?;
    let (settings, version) = match shown {
        Some((settings, version)) => (Some(settings), Some(version)),
        None => match admin.read_settings(caller, id, object).await {
            Ok(read) => (
                serde_json::from_value::<ObjectSettings>(read["settings"].clone()).ok(),
                read["version"].as_u64(),
            ),
            Err(f) if f.category == "no_settings" => (None, None),
            Err(f) => return Err(f),
        },
    };
    let fields: Vec<Value> = settings
        .as_ref()
        .map(|s| {
            default_keys(kind)
                .into_iter()
                .map(|key| json!({"key": key, "on": !s.disabled_fields.iter().any(|d| d == key)}))
                .collect()
        })
        .unwrap_or_default();
    let status = problems.map_or(StatusCode::OK, |p| p.status);
    Ok(render(
        "settings.html",
        status,
        json!({
            "connection_id": id,
            "object": object,
            "company": company,
            "configured": settings.is_some(),
            "settings": settings,
            "version": version,
            "fields": fields,
            "problems": problems.map(|p| {
                if p.fields.is_empty() {
                    vec![json!({"field": p.category, "message": p.message})]
                } else {
                    p.fields.iter().map(|(f, m)| json!({"field": f, "message": m})).collect()
                }
            }),
            "problem_message": problems.map(|p| if p.fields.is_empty() { "That did not work:" } else { "Nothing was saved: some settings need fixing." }),
            "preview": preview,
        }),
        Some(caller),
        base,
    ))
}

async fn settings(
    State(admin): Admin,
    Path((id, object)): Path<(String, String)>,
    Query(notice): Query<Notice>,
    headers: HeaderMap,
) -> Response {
    page!(admin, headers, |caller, base| {
        let mut page =
            settings_page(&admin, &caller, &base, &id, &object, None, None, None).await?;
        if let Some(notice) = notice.notice {
            page = with_notice(page, &notice).await;
        }
        Ok(page)
    })
}

/// A rendered page with a notice put in at its marker (the settings page is rendered by a
/// helper shared with the form's answers, which carry no notice).
async fn with_notice(page: Response, notice: &str) -> Response {
    let (parts, body) = page.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_PAGE_BYTES).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the page could not be shown",
        )
            .into_response();
    };
    let html = String::from_utf8_lossy(&bytes);
    let escaped = minijinja::HtmlEscape(notice).to_string();
    let html = html.replacen(
        NOTICE_MARKER,
        &format!("<div class=\"notice\" role=\"status\" id=\"notice\">{escaped}</div>"),
        1,
    );
    Response::from_parts(parts, axum::body::Body::from(html))
}

const NOTICE_MARKER: &str = "<!-- notice -->";
const MAX_PAGE_BYTES: usize = 4 << 20;

fn bad_form(field: &str, message: String) -> Failed {
    super::invalid_fields([(field, message.as_str())].into_iter())
}

/// The settings a form describes, over the saved ones (what the form does not show is kept).
pub fn settings_from_form(
    saved: &ObjectSettings,
    pairs: &[(String, String)],
) -> Result<ObjectSettings, Failed> {
    let mut s = saved.clone();
    let checked = |name: &str| form_value(pairs, name).is_some();
    let text = |name: &str| {
        form_value(pairs, name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    s.enabled = checked("enabled");
    if let Some(direction) = form_value(pairs, "direction") {
        s.direction = serde_json::from_value(json!(direction))
            .map_err(|_| bad_form("direction", format!("{direction:?} is not a direction")))?;
    }
    if let Some(conflict) = form_value(pairs, "conflict") {
        s.conflict = serde_json::from_value(json!(conflict)).map_err(|_| {
            bad_form(
                "conflict",
                format!("{conflict:?} is not hubspot or quickbooks"),
            )
        })?;
    }
    let on: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "field")
        .map(|(_, v)| v.as_str())
        .collect();
    let keys = default_keys(saved.object);
    if !keys.is_empty() {
        s.disabled_fields = keys
            .iter()
            .filter(|k| !on.contains(k))
            .map(|k| (*k).to_owned())
            .collect();
    }
    match saved.object {
        ObjectKind::Contact => {
            s.display_name_from_company = checked("display_name_from_company");
            s.disambiguate_display_names = checked("disambiguate_display_names");
        }
        ObjectKind::Product => {
            s.require_sku = checked("require_sku");
            s.income_account = text("income_account");
        }
        ObjectKind::Invoice => {
            s.custom_line_item_income_account = text("custom_line_item_income_account");
            s.service_date_property = text("service_date_property");
            s.tax_mapping = match (text("default_tax_code"), saved.tax_mapping.clone()) {
                (None, _) => None,
                (Some(code), Some(mut mapping)) => {
                    mapping.default_tax_code = code;
                    Some(mapping)
                }
                (Some(code), None) => Some(TaxMapping {
                    default_tax_code: code,
                    rates: Vec::new(),
                }),
            };
        }
    }
    // Filter rows: one of each name per row, in order; a row without a property is dropped.
    let column = |name: &str| -> Vec<&str> {
        pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let (directions, properties, operators, values) = (
        column("filter_direction"),
        column("filter_property"),
        column("filter_operator"),
        column("filter_values"),
    );
    if !directions.is_empty() {
        s.filters.hubspot_to_qbo.clear();
        s.filters.qbo_to_hubspot.clear();
        for (i, direction) in directions.iter().enumerate() {
            let property = properties.get(i).map(|p| p.trim()).unwrap_or_default();
            if property.is_empty() {
                continue;
            }
            let operator_text = operators.get(i).copied().unwrap_or_default();
            let operator: FilterOperator =
                serde_json::from_value(json!(operator_text)).map_err(|_| {
                    bad_form(
                        &format!("filters[{i}].operator"),
                        format!("{operator_text:?} is not a condition"),
                    )
                })?;
            let values: Vec<String> = values
                .get(i)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let filter = Filter {
                property: property.to_owned(),
                operator,
                values,
            };
            match *direction {
                "hubspot_to_qbo" => s.filters.hubspot_to_qbo.push(filter),
                "qbo_to_hubspot" => s.filters.qbo_to_hubspot.push(filter),
                other => {
                    return Err(bad_form(
                        &format!("filters[{i}].direction"),
                        format!("{other:?} is not a direction"),
                    ))
                }
            }
        }
    }
    Ok(s)
}

async fn save_settings(
    State(admin): Admin,
    Path((id, object)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs = form_pairs(&body);
    page!(admin, headers, |caller, base| {
        let action = form_value(&pairs, "action").unwrap_or("save");
        if action == "save" {
            admin.changer(&headers, form_value(&pairs, "csrf")).await?;
        }
        let kind = object_of(&object)?;
        let read = admin.read_settings(&caller, &id, &object).await?;
        let saved: ObjectSettings =
            serde_json::from_value(read["settings"].clone()).map_err(|e| {
                failed(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "unreadable_settings",
                    e.to_string(),
                )
            })?;
        let version = form_value(&pairs, "version")
            .and_then(|v| v.parse::<u64>().ok())
            .or(read["version"].as_u64())
            .unwrap_or_default();
        // The form shown again with what was asked: its problems, or its preview.
        let again = |shown: ObjectSettings, problem: Option<Failed>, preview: Option<Value>| {
            let (admin, caller, base, id, object) = (&admin, &caller, &base, &id, &object);
            async move {
                let shown = Some((shown, version));
                settings_page(
                    admin,
                    caller,
                    base,
                    id,
                    object,
                    shown,
                    problem.as_ref(),
                    preview,
                )
                .await
            }
        };
        let mut wanted = match settings_from_form(&saved, &pairs) {
            Ok(wanted) => wanted,
            Err(problem) => return again(saved, Some(problem), None).await,
        };
        match action {
            "recommended_filters" => {
                if let Some(defaults) = default_settings(wanted.setup_date)
                    .into_iter()
                    .find(|s| s.object == kind)
                {
                    wanted.filters = defaults.filters;
                }
                again(wanted, None, None).await
            }
            "preview" => match admin
                .preview(&caller, &id, &object, Some(wanted.clone()))
                .await
            {
                Ok(preview) => again(wanted, None, Some(preview)).await,
                Err(problem) => again(wanted, Some(problem), None).await,
            },
            _ => match admin
                .write_settings(&caller, &id, &object, wanted.clone(), Some(version))
                .await
            {
                Ok(_) => {
                    let back = format!("/connections/{id}/settings/{object}");
                    Ok(back_to(&base, &id, Some(&back), "Saved."))
                }
                Err(problem) => again(wanted, Some(problem), None).await,
            },
        }
    })
}

/// A settings change a form posts (remove them, add the recommended ones), then back to the
/// settings page with what was done.
async fn settings_change(
    admin: Arc<AdminService>,
    id: String,
    object: String,
    headers: HeaderMap,
    body: Bytes,
    add: bool,
) -> Response {
    let pairs = form_pairs(&body);
    page!(admin, headers, |caller, base| {
        admin.changer(&headers, form_value(&pairs, "csrf")).await?;
        let done = if add {
            admin.add_recommended(&caller, &id, &object).await?;
            "The recommended settings were added; the sync is on."
        } else {
            admin.delete_settings(&caller, &id, &object).await?;
            "The settings were removed; nothing of this kind syncs now."
        };
        let back = format!("/connections/{id}/settings/{object}");
        Ok(back_to(&base, &id, Some(&back), done))
    })
}

async fn delete_settings(
    State(admin): Admin,
    Path((id, object)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    settings_change(admin, id, object, headers, body, false).await
}

async fn add_recommended(
    State(admin): Admin,
    Path((id, object)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    settings_change(admin, id, object, headers, body, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            assert!(environment().get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn pages_show_numbers_and_times_as_numbers_and_times() {
        let page = json!({
            "connection": {"connection_id": "c1", "portal_id": "101", "realm_id": "9", "company_name": "Acme", "status": "active"},
            "objects": [{
                "object": "contact", "configured": true, "enabled": true, "direction": "two_way",
                "counts": {"synced": 27, "failing": 1, "excluded": 12, "pending": 0},
                "last_24h": [{"start": 1_900_000_000, "synced": 3, "failing": 1, "synced_px": 29, "failing_px": 9}],
            }],
            "runs": [],
        });
        let numbers = serde_json::from_str::<Value>(&page.to_string()).unwrap();
        let response = render("overview.html", StatusCode::OK, numbers, None, "http://a");
        assert_eq!(response.status(), StatusCode::OK);
        let html = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .unwrap();
        let html = String::from_utf8(html.to_vec()).unwrap();
        assert!(
            html.contains(">27</a>") && html.contains(">12</a>"),
            "{html}"
        );
        assert!(
            html.contains("y=\"2\"") && html.contains("2030-03-17 17:46 UTC"),
            "{html}"
        );
        assert!(!html.contains("serde_json"), "{html}");
    }

    #[test]
    fn a_form_changes_what_it_shows_and_keeps_the_rest() {
        let saved = default_settings(time::macros::date!(2026 - 01 - 01))
            .into_iter()
            .find(|s| s.object == ObjectKind::Contact)
            .unwrap();
        let pairs: Vec<(String, String)> = [
            ("enabled", "on"),
            ("direction", "hubspot_to_qbo"),
            ("conflict", "quickbooks"),
            ("field", "email"),
            ("disambiguate_display_names", "on"),
            ("filter_direction", "hubspot_to_qbo"),
            ("filter_property", "lifecyclestage"),
            ("filter_operator", "is_any_of"),
            ("filter_values", "customer, opportunity"),
            ("filter_direction", "hubspot_to_qbo"),
            ("filter_property", ""),
            ("filter_operator", "is_any_of"),
            ("filter_values", ""),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let s = settings_from_form(&saved, &pairs).unwrap();
        assert!(s.enabled && s.disambiguate_display_names && !s.display_name_from_company);
        assert_eq!(
            serde_json::to_value(s.direction).unwrap(),
            json!("hubspot_to_qbo")
        );
        assert!(!s.disabled_fields.contains(&"email".to_owned()));
        assert!(s.disabled_fields.contains(&"phone".to_owned()));
        assert_eq!(s.filters.hubspot_to_qbo.len(), 1);
        assert_eq!(
            s.filters.hubspot_to_qbo[0].values,
            ["customer", "opportunity"]
        );
        assert!(s.filters.qbo_to_hubspot.is_empty());
        assert_eq!(s.setup_date, saved.setup_date);

        let mut bad = pairs.clone();
        bad[1].1 = "sideways".into();
        let problem = settings_from_form(&saved, &bad).unwrap_err();
        assert_eq!(problem.fields[0].0, "direction");
    }

    #[test]
    fn back_links_stay_on_the_connection() {
        let location = |r: Response| r.headers()[header::LOCATION].to_str().unwrap().to_owned();
        assert_eq!(
            location(back_to(
                "http://a",
                "c1",
                Some("/connections/c1/records/contact?status=failing"),
                "done"
            )),
            "http://a/connections/c1/records/contact?status=failing&notice=done"
        );
        assert_eq!(
            location(back_to(
                "http://a",
                "c1",
                Some("//evil.example/connections/c1/"),
                "x"
            )),
            "http://a/connections/c1?notice=x"
        );
        assert_eq!(
            location(back_to(
                "http://a",
                "c1",
                Some("/connections/c2/records/contact"),
                "x"
            )),
            "http://a/connections/c1?notice=x"
        );
    }
}
