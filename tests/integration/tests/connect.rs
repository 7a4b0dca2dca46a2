//! Connecting end to end: a browser-like client follows the redirects of the real `oauth-install`
//! binary through both sandboxes' consent pages; the state lands in the template's DynamoDB table
//! and SQS queue on the local AWS endpoint. Needs the workspace binaries built (`make test`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use hubspot_qbo_core::config::Config;
use hubspot_qbo_core::connection::registry::{ConnectionStatus, Connections};
use hubspot_qbo_core::connection::tokens::{TokenKeeper, TokenOwner};
use hubspot_qbo_core::domain::{ConnectionId, ObjectKind, PortalId, RealmId};
use hubspot_qbo_core::runtime::Services;
use hubspot_qbo_core::settings::SettingsStore;
use integration_tests::test_parameters;
use local_stack::lambda::Invocation;
use local_stack::stack::{LocalStack, Options};
use reqwest::Url;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

const PORTAL: &str = "62515";
const OTHER_PORTAL: &str = "62516";
const US_REALM: &str = "9130350000000001";
const GB_REALM: &str = "9130350000000002";

/// One browser's cookies for the install function's host (the only host that sets any here).
#[derive(Default)]
struct Browser {
    jar: std::sync::Mutex<BTreeMap<String, String>>,
}

impl Browser {
    fn cookie_header(&self) -> Option<String> {
        let jar = self.jar.lock().ok()?;
        (!jar.is_empty()).then(|| {
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn remember(&self, response: &reqwest::Response) {
        let Ok(mut jar) = self.jar.lock() else { return };
        for value in response.headers().get_all("set-cookie") {
            let Some((pair, _attributes)) = value
                .to_str()
                .ok()
                .map(|v| v.split_once(';').unwrap_or((v, "")))
            else {
                continue;
            };
            if let Some((name, value)) = pair.split_once('=') {
                jar.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    fn cookies(&self) -> BTreeMap<String, String> {
        self.jar.lock().map(|j| j.clone()).unwrap_or_default()
    }
}

struct Harness {
    stack: LocalStack,
    /// The browser of the person connecting; tests make others where they need them.
    browser: Browser,
    /// The install function's URL, without the trailing slash.
    base: String,
    qbo: String,
    hubspot: String,
    http: reqwest::Client,
    config: Config,
    services: Services,
    tokens: Arc<TokenKeeper>,
    log_dir: PathBuf,
}

/// Where a browser walk ended.
struct Visit {
    status: u16,
    body: String,
    /// Every URL requested, in order.
    trail: Vec<String>,
}

/// The person's choices on the consent pages (which portal, which company).
#[derive(Default, Clone, Copy)]
struct Choice<'a> {
    portal: Option<&'a str>,
    realm: Option<&'a str>,
    json: bool,
}

impl Harness {
    async fn start(name: &str, parameters: &[(&str, &str)]) -> anyhow::Result<Self> {
        let log_dir = std::env::temp_dir().join(format!(
            "connect-{name}-{}",
            unique_suffix(std::process::id())
        ));
        std::fs::create_dir_all(&log_dir)?;
        let mut all = test_parameters();
        for (key, value) in parameters {
            all.insert((*key).to_owned(), (*value).to_owned());
        }
        let stack = LocalStack::start(Options {
            stack_name: name.into(),
            parameters: all,
            run_schedules: false,
            run_queues: false,
            log_dir: Some(log_dir.clone()),
            rust_log: "debug".into(),
            ..Options::default()
        })
        .await?;
        let base = stack
            .url("OAuthInstallFunction")?
            .trim_end_matches('/')
            .to_owned();
        let sandboxes = stack
            .sandboxes
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("sandboxes not started"))?;
        let (qbo, hubspot) = (sandboxes.qbo.clone(), sandboxes.hubspot.clone());
        let environment = &stack.manifest.function("OAuthInstallFunction")?.environment;
        let config = Config::from_lookup(|k| environment.get(k).cloned())?;
        let services = Services::new(config.clone(), &stack.aws.sdk_config().await);
        let tokens = Arc::new(TokenKeeper::from_services(
            &services,
            Arc::new(hubspot_qbo_core::oauth::HttpProviders::new(&config)?),
        ));
        Ok(Self {
            stack,
            browser: Browser::default(),
            base,
            qbo,
            hubspot,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            config,
            services,
            tokens,
            log_dir,
        })
    }

    /// Follows redirects as a browser would; on the consent pages the person picks `choice`.
    /// Stops before requesting a URL whose path starts with `stop_before`, returning it.
    async fn browse_until(
        &self,
        start: &str,
        choice: Choice<'_>,
        stop_before: Option<&str>,
    ) -> anyhow::Result<Result<Visit, String>> {
        self.browse_in(&self.browser, start, choice, stop_before)
            .await
    }

    /// Like [`Harness::browse_until`], in `browser`: its cookies go to the install function and
    /// what that sets is kept.
    async fn browse_in(
        &self,
        browser: &Browser,
        start: &str,
        choice: Choice<'_>,
        stop_before: Option<&str>,
    ) -> anyhow::Result<Result<Visit, String>> {
        let mut url = Url::parse(start)?;
        let mut trail = Vec::new();
        for _ in 0..10 {
            if url
                .as_str()
                .starts_with(&format!("{}/oauth/authorize", self.hubspot))
            {
                if let Some(portal) = choice.portal {
                    url.query_pairs_mut().append_pair("portal_id", portal);
                }
            }
            if url
                .as_str()
                .starts_with(&format!("{}/connect/oauth2", self.qbo))
            {
                if let Some(realm) = choice.realm {
                    url.query_pairs_mut().append_pair("realm_id", realm);
                }
            }
            if stop_before.is_some_and(|path| url.path().starts_with(path)) {
                return Ok(Err(url.to_string()));
            }
            trail.push(url.to_string());
            let mut request = self.http.get(url.clone());
            request = request.header(
                "accept",
                if choice.json {
                    "application/json"
                } else {
                    "text/html,application/xhtml+xml,*/*;q=0.8"
                },
            );
            let ours = url.as_str().starts_with(&self.base);
            if ours {
                if let Some(cookies) = browser.cookie_header() {
                    request = request.header("cookie", cookies);
                }
            }
            let response = request.send().await?;
            if ours {
                browser.remember(&response);
            }
            let status = response.status().as_u16();
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| anyhow::anyhow!("redirect without Location from {url}"))?;
                url = url.join(location)?;
                continue;
            }
            let body = response.text().await?;
            return Ok(Ok(Visit {
                status,
                body,
                trail,
            }));
        }
        anyhow::bail!("too many redirects from {start}")
    }

    /// Follows `url` to its end in `browser`, asking for JSON.
    async fn visit_json_in(&self, browser: &Browser, url: &str) -> anyhow::Result<Visit> {
        self.browse_in(
            browser,
            url,
            Choice {
                json: true,
                ..Choice::default()
            },
            None,
        )
        .await?
        .map_err(|u| anyhow::anyhow!("stopped at {u}"))
    }

    async fn browse(&self, path: &str, choice: Choice<'_>) -> anyhow::Result<Visit> {
        self.browse_until(&format!("{}{path}", self.base), choice, None)
            .await?
            .map_err(|stopped| anyhow::anyhow!("stopped at {stopped}"))
    }

    /// Walks the install flow up to (not into) the callback at `callback`, returning its URL.
    async fn reach(&self, callback: &str) -> anyhow::Result<String> {
        self.browse_until(
            &format!("{}/install", self.base),
            Choice::default(),
            Some(callback),
        )
        .await?
        .err()
        .ok_or_else(|| anyhow::anyhow!("the flow did not reach {callback}"))
    }

    /// Walks a flow as JSON and expects it refused with `status` and `category`; returns the body.
    async fn refused(
        &self,
        path: &str,
        choice: Choice<'_>,
        status: u16,
        category: &str,
    ) -> anyhow::Result<Value> {
        let visit = self
            .browse(
                path,
                Choice {
                    json: true,
                    ..choice
                },
            )
            .await?;
        let body: Value = serde_json::from_str(&visit.body)?;
        assert_eq!(
            (visit.status, body["category"].as_str()),
            (status, Some(category)),
            "{path}: {body}"
        );
        Ok(body)
    }

    /// A GET answered as JSON, without following redirects, in the person's browser.
    async fn get_json(&self, url: &str) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.get(url).header("accept", "application/json");
        if let Some(cookies) = self.browser.cookie_header() {
            request = request.header("cookie", cookies);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// Posts a confirmation token from `browser`, as the confirmation page's form does.
    async fn post_confirm(&self, browser: &Browser, token: &str) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .post(format!("{}/confirm", self.base))
            .header("accept", "application/json")
            .form(&[("token", token)]);
        if let Some(cookies) = browser.cookie_header() {
            request = request.header("cookie", cookies);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// Follows a disconnect or uninstall link to its confirmation page (JSON) and returns the
    /// page's token, checking it asks before acting.
    async fn confirmation(&self, path: &str, action: &str) -> anyhow::Result<String> {
        let visit = self
            .browse(
                path,
                Choice {
                    json: true,
                    ..Choice::default()
                },
            )
            .await?;
        let body: Value = serde_json::from_str(&visit.body)?;
        assert_eq!(
            (
                visit.status,
                body["status"].as_str(),
                body["action"].as_str()
            ),
            (200, Some("confirm"), Some(action)),
            "{path}: {body}"
        );
        assert_eq!(body["confirm_url"], format!("{}/confirm", self.base));
        body["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no token in {body}"))
    }

    /// Disconnects or uninstalls through the confirmation step, in the person's browser.
    async fn confirmed(&self, path: &str, action: &str) -> anyhow::Result<Value> {
        let token = self.confirmation(path, action).await?;
        let (status, body) = self.post_confirm(&self.browser, &token).await?;
        assert_eq!(status, 200, "{path}: {body}");
        Ok(body)
    }

    fn connections(&self) -> Connections {
        Connections::new(self.services.store.clone())
    }

    async fn active(&self) -> anyhow::Result<Vec<ConnectionId>> {
        Ok(self
            .connections()
            .with_status(ConnectionStatus::Active, now())
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect())
    }

    /// Every item of the connections table except pending OAuth states, for before/after
    /// comparisons.
    async fn snapshot(&self) -> anyhow::Result<Vec<String>> {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.stack.aws.sdk_config().await);
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = dynamodb
                .scan()
                .table_name(&self.config.tables.connections)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for item in page.items() {
                let pk = item
                    .get("pk")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                if !pk.starts_with("oauth-state#") {
                    let sorted: BTreeMap<_, _> =
                        item.iter().map(|(k, v)| (k, canonical(v))).collect();
                    items.push(format!("{sorted:?}"));
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        items.sort();
        Ok(items)
    }

    async fn queued_sync_messages(&self) -> anyhow::Result<u64> {
        let sqs = aws_sdk_sqs::Client::new(&self.stack.aws.sdk_config().await);
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&self.config.queues.sync)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await?;
        Ok(attributes
            .attributes
            .unwrap_or_default()
            .values()
            .filter_map(|v| v.parse::<u64>().ok())
            .sum())
    }

    async fn counter(&self, sandbox: &str, prefix: &str) -> anyhow::Result<u64> {
        let counters: Value = self
            .http
            .get(format!("{sandbox}/_sandbox/counters"))
            .send()
            .await?
            .json()
            .await?;
        Ok(counters["endpoints"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(key, _)| key.starts_with(prefix))
            .filter_map(|(_, c)| {
                c["by_status"]["200"]
                    .as_u64()
                    .or(c["by_status"]["204"].as_u64())
            })
            .sum())
    }

    async fn poll(&self) -> anyhow::Result<Value> {
        let poller = self.stack.function("ScheduledPollFunction")?;
        match poller
            .invoke(&local_stack::triggers::scheduled_event(
                "arn:aws:events:us-east-1:1:rule/poll",
            ))
            .await?
        {
            Invocation::Response(report) => Ok(report),
            other => anyhow::bail!("the poll failed: {other:?}"),
        }
    }

    /// Everything the functions logged so far.
    fn logs(&self) -> anyhow::Result<String> {
        let mut all = String::new();
        for entry in std::fs::read_dir(&self.log_dir)? {
            all.push_str(&std::fs::read_to_string(entry?.path())?);
        }
        Ok(all)
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = std::fs::remove_dir_all(&self.log_dir);
        self.stack.shutdown().await
    }
}

/// An attribute as text with map keys in order (DynamoDB maps come back in any order).
fn canonical(value: &aws_sdk_dynamodb::types::AttributeValue) -> String {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match value {
        A::M(map) => {
            let sorted: BTreeMap<_, _> = map.iter().map(|(k, v)| (k, canonical(v))).collect();
            format!("{sorted:?}")
        }
        A::L(list) => format!("{:?}", list.iter().map(canonical).collect::<Vec<_>>()),
        other => format!("{other:?}"),
    }
}

fn unique_suffix(seed: u32) -> String {
    format!("{seed}-{}", now_ms())
}

fn now_ms() -> i64 {
    hubspot_qbo_core::clock::Clock::system().now_ms()
}

fn now() -> i64 {
    hubspot_qbo_core::clock::Clock::system().now_seconds()
}

fn query_param(url: &str, name: &str) -> anyhow::Result<String> {
    Url::parse(url)?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| anyhow::anyhow!("{url} has no {name}"))
}

fn connection_id(portal: &str, realm: &str) -> anyhow::Result<ConnectionId> {
    Ok(ConnectionId::parse(format!("{portal}-{realm}"))?)
}

#[tokio::test]
async fn install_add_a_company_reconnect_and_disconnect() -> anyhow::Result<()> {
    let h = Harness::start("connect", &[]).await?;

    // A person opens the install page and consents twice.
    let visit = h.browse("/install", Choice::default()).await?;
    assert_eq!(visit.status, 200, "{}", visit.body);
    assert!(
        visit.body.contains("is connected with QuickBooks company"),
        "{}",
        visit.body
    );
    let hops: Vec<String> = visit
        .trail
        .iter()
        .map(|u| Url::parse(u).map(|u| u.path().to_owned()))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        hops,
        [
            "/install",
            "/oauth/authorize",
            "/oauth/hubspot/callback",
            "/connect/oauth2",
            "/oauth/qbo/callback"
        ]
    );
    let scopes = query_param(&visit.trail[1], "scope")?;
    assert!(
        scopes.split(' ').any(|s| s == "crm.objects.invoices.write"),
        "{scopes}"
    );
    assert_eq!(
        query_param(&visit.trail[1], "redirect_uri")?,
        format!("{}/oauth/hubspot/callback", h.base)
    );

    let first = connection_id(PORTAL, US_REALM)?;
    assert_eq!(h.active().await?, vec![first.clone()]);

    // Tokens: stored sealed, and they work.
    let company = TokenOwner::Realm(RealmId::parse(US_REALM)?);
    let portal = TokenOwner::Portal(PortalId::parse(PORTAL)?);
    let qbo_access = h.tokens.access_token(&company).await?;
    let hubspot_access = h.tokens.access_token(&portal).await?;
    let qbo_refresh = h.tokens.refresh_token(&company).await?.expect("stored");
    let hubspot_refresh = h.tokens.refresh_token(&portal).await?.expect("stored");
    let secrets = [&qbo_access, &hubspot_access, &qbo_refresh, &hubspot_refresh]
        .map(|s| s.expose_secret().to_owned());
    let snapshot = h.snapshot().await?.join("\n");
    for secret in &secrets {
        assert!(
            !snapshot.contains(secret.as_str()),
            "a token is stored in plain text"
        );
    }
    assert!(snapshot.contains("sealed"), "{snapshot}");
    let company_info = h
        .http
        .get(format!(
            "{}/v3/company/{US_REALM}/companyinfo/{US_REALM}",
            h.qbo
        ))
        .bearer_auth(qbo_access.expose_secret())
        .header("accept", "application/json")
        .send()
        .await?;
    assert_eq!(
        company_info.status(),
        200,
        "the stored QuickBooks token works"
    );

    // The pre-flight record, default settings and the initial sync.
    let preflight = h
        .connections()
        .preflight(&first, now())
        .await?
        .expect("pre-flight record");
    assert!(preflight.company.us_edition);
    let settings = SettingsStore::new(h.services.store.clone())
        .list(&first, now())
        .await?;
    assert_eq!(
        settings.iter().map(|s| s.object).collect::<Vec<_>>(),
        ObjectKind::ALL.to_vec()
    );
    let queued = h.queued_sync_messages().await?;
    let enabled = settings.iter().filter(|s| s.enabled).count() as u64;
    assert!(enabled > 0);
    assert_eq!(
        queued, enabled,
        "one initial sync request per enabled object"
    );

    // The same pair again (JSON this time): still one connection, nothing queued twice.
    let again = h
        .browse(
            "/install",
            Choice {
                json: true,
                ..Choice::default()
            },
        )
        .await?;
    assert_eq!(again.status, 200, "{}", again.body);
    let again: Value = serde_json::from_str(&again.body)?;
    assert_eq!(again["created"], false);
    assert_eq!(again["connection_id"], first.as_str());
    assert_eq!(h.active().await?, vec![first.clone()]);
    assert_eq!(h.queued_sync_messages().await?, queued);

    // Another company for the same portal: a second connection, with the non-US warning.
    let added = h
        .browse(
            &format!("/install?portal={PORTAL}"),
            Choice {
                realm: Some(GB_REALM),
                json: true,
                ..Choice::default()
            },
        )
        .await?;
    assert_eq!(added.status, 200, "{}", added.body);
    let added: Value = serde_json::from_str(&added.body)?;
    assert_eq!(added["created"], true);
    let warnings: Vec<&str> = added["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["code"].as_str())
        .collect();
    assert!(warnings.contains(&"outside_us"), "{added}");
    let second = connection_id(PORTAL, GB_REALM)?;
    let mut active = h.active().await?;
    active.sort();
    assert_eq!(active, vec![first.clone(), second.clone()]);

    // Reconnect renews the tokens of the same connection and brings a blocked one back.
    h.connections()
        .require_reconnect(&first, hubspot_qbo_core::domain::Provider::Qbo, None, now())
        .await?;
    assert_eq!(
        h.active().await?,
        vec![second.clone()],
        "a blocked connection is not polled"
    );
    let reconnected = h
        .browse(
            &format!("/reconnect?connection={first}"),
            Choice {
                json: true,
                ..Choice::default()
            },
        )
        .await?;
    assert_eq!(reconnected.status, 200, "{}", reconnected.body);
    let renewed = h.tokens.refresh_token(&company).await?.expect("stored");
    assert_ne!(renewed.expose_secret(), qbo_refresh.expose_secret());
    let record = h.connections().get(&first, now()).await?.expect("kept");
    assert_eq!(
        (record.status, record.reconnect_provider),
        (ConnectionStatus::Active, None)
    );

    // A refused HubSpot refresh token blocks every connection of the portal (they share it);
    // reconnecting one of them renews it for all, so all come back.
    for id in [&first, &second] {
        h.connections()
            .require_reconnect(id, hubspot_qbo_core::domain::Provider::HubSpot, None, now())
            .await?;
    }
    assert!(h.active().await?.is_empty());
    let reconnected = h
        .browse(
            &format!("/reconnect?connection={second}"),
            Choice {
                realm: Some(GB_REALM),
                json: true,
                ..Choice::default()
            },
        )
        .await?;
    assert_eq!(reconnected.status, 200, "{}", reconnected.body);
    let mut active = h.active().await?;
    active.sort();
    assert_eq!(
        active,
        vec![first.clone(), second.clone()],
        "both of the portal's connections are active again"
    );

    // The schedule keeps both connections' tokens alive.
    let report = h.poll().await?;
    assert_eq!(report["connections"], 2, "{report}");

    // Disconnect the second: revoked at QuickBooks; HubSpot stays (the portal's first
    // connection still uses it).
    let qbo_revocations = h.counter(&h.qbo, "POST /v2/oauth2/tokens/revoke").await?;
    let hubspot_revocations = h
        .counter(&h.hubspot, "DELETE /oauth/v1/refresh-tokens/")
        .await?;
    let gb_refresh = h
        .tokens
        .refresh_token(&TokenOwner::Realm(RealmId::parse(GB_REALM)?))
        .await?
        .expect("stored");
    let gone = h
        .confirmed(&format!("/disconnect?connection={second}"), "disconnect")
        .await?;
    assert_eq!(gone["status"], "disconnected", "{gone}");
    assert_eq!(
        h.counter(&h.qbo, "POST /v2/oauth2/tokens/revoke").await?,
        qbo_revocations + 1
    );
    assert_eq!(
        h.counter(&h.hubspot, "DELETE /oauth/v1/refresh-tokens/")
            .await?,
        hubspot_revocations
    );
    let refused = h
        .http
        .post(format!("{}/oauth2/v1/tokens/bearer", h.qbo))
        .basic_auth(
            &h.config.qbo.oauth.client_id,
            Some(h.config.qbo.oauth.client_secret.expose_secret()),
        )
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", gb_refresh.expose_secret()),
        ])
        .send()
        .await?;
    assert_eq!(refused.status(), 400, "the revoked refresh token is dead");
    assert_eq!(h.active().await?, vec![first.clone()]);
    let report = h.poll().await?;
    assert_eq!(
        report["connections"], 1,
        "the disconnected one is not polled: {report}"
    );

    // Disconnect the last: HubSpot's tokens go too; polling stops; settings are kept.
    let gone = h
        .confirmed(&format!("/disconnect?connection={first}"), "disconnect")
        .await?;
    assert_eq!(gone["status"], "disconnected", "{gone}");
    assert!(
        h.counter(&h.hubspot, "DELETE /oauth/v1/refresh-tokens/")
            .await?
            > hubspot_revocations
    );
    assert!(h.tokens.refresh_token(&portal).await?.is_none());
    assert!(h.tokens.refresh_token(&company).await?.is_none());
    assert!(h.active().await?.is_empty());
    let report = h.poll().await?;
    assert_eq!(report["connections"], 0, "{report}");
    let record = h.connections().get(&first, now()).await?.expect("kept");
    assert_eq!(record.status, ConnectionStatus::Disconnected);
    assert_eq!(
        SettingsStore::new(h.services.store.clone())
            .list(&first, now())
            .await?
            .len(),
        3,
        "settings are kept until the connection is deleted"
    );

    // Uninstalling the app from the portal disconnects all of its connections.
    for (path, realm) in [
        ("/install".to_owned(), US_REALM),
        (format!("/install?portal={PORTAL}"), GB_REALM),
    ] {
        let visit = h
            .browse(
                &path,
                Choice {
                    realm: Some(realm),
                    ..Choice::default()
                },
            )
            .await?;
        assert_eq!(visit.status, 200, "{}", visit.body);
    }
    assert_eq!(h.active().await?.len(), 2, "both connected again");
    let qbo_revocations = h.counter(&h.qbo, "POST /v2/oauth2/tokens/revoke").await?;
    let uninstalled = h.confirmed("/uninstall", "uninstall").await?;
    assert_eq!(uninstalled["status"], "uninstalled");
    assert_eq!(uninstalled["connections"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        h.counter(&h.hubspot, "DELETE /appinstalls/v3/external-install")
            .await?,
        1
    );
    assert_eq!(
        h.counter(&h.qbo, "POST /v2/oauth2/tokens/revoke").await?,
        qbo_revocations + 2
    );
    assert!(h.active().await?.is_empty());
    assert_eq!(h.poll().await?["connections"], 0);

    // No log line of any function carries a token.
    let logs = h.logs()?;
    assert!(logs.contains("connection active"), "the logs were captured");
    for secret in secrets
        .iter()
        .chain([renewed.expose_secret().to_owned()].iter())
    {
        assert!(
            !logs.contains(secret.as_str()),
            "a token leaked into the logs"
        );
    }
    h.stop().await
}

#[tokio::test]
async fn bad_callbacks_are_refused_and_change_nothing() -> anyhow::Result<()> {
    let h = Harness::start("badinput", &[]).await?;
    // One working connection first, so that "nothing changed" has something to compare.
    let visit = h.browse("/install", Choice::default()).await?;
    assert_eq!(visit.status, 200, "{}", visit.body);
    let before = h.snapshot().await?;
    let queued = h.queued_sync_messages().await?;
    let hubspot_callback = format!("{}/oauth/hubspot/callback", h.base);
    let qbo_callback = format!("{}/oauth/qbo/callback", h.base);

    // A started flow's state (signed, stored), and a callback URL with a real code.
    let pending = h.reach("/oauth/hubspot/callback").await?;
    let state = query_param(&pending, "state")?;
    let (nonce, tag) = state
        .split_once('.')
        .ok_or_else(|| anyhow::anyhow!("state {state}"))?;
    let mut flipped = tag.to_owned();
    let last = flipped.pop().unwrap_or('A');
    flipped.push(if last == 'A' { 'B' } else { 'A' });

    let cases: Vec<(String, String, u16, &str)> = vec![
        (
            "no state".into(),
            format!("{hubspot_callback}?code=abc"),
            400,
            "missing_parameter",
        ),
        (
            "malformed state".into(),
            format!("{hubspot_callback}?code=abc&state=not-a-state"),
            400,
            "invalid_state",
        ),
        (
            "tampered state".into(),
            format!("{hubspot_callback}?code=abc&state={nonce}.{flipped}"),
            400,
            "invalid_state",
        ),
        (
            "HubSpot state sent to the QuickBooks callback".into(),
            format!("{qbo_callback}?code=abc&realmId={US_REALM}&state={state}"),
            400,
            "invalid_state",
        ),
        (
            "replayed state".into(),
            pending.clone(),
            410,
            "state_expired_or_used",
        ),
    ];
    for (name, url, status, category) in cases {
        let (got, body) = h.get_json(&url).await?;
        assert_eq!(
            (got, body["category"].as_str()),
            (status, Some(category)),
            "{name}: {body}"
        );
        assert!(
            !body["message"].as_str().unwrap_or_default().is_empty(),
            "{name}"
        );
    }

    // An expired state: issued with this installation's key, fifteen minutes ago.
    let states = hubspot_qbo_core::connection::oauth_state::OAuthStates::new(
        h.services.store.clone(),
        hubspot_qbo_core::connection::oauth_state::installation_key(&h.config),
        hubspot_qbo_core::connection::oauth_state::DEFAULT_TTL,
    );
    let key = h
        .browser
        .cookies()
        .get("hsqbo-browser")
        .and_then(|v| hubspot_qbo_core::connection::oauth_state::BrowserKey::parse(v))
        .ok_or_else(|| anyhow::anyhow!("the browser holds no flow cookie"))?;
    let expired = states
        .issue(
            &json!({"step": "hub_spot", "intent": {"kind": "install", "portal": null}, "base_url": h.base}),
            &key,
            now() - 16 * 60,
        )
        .await?;
    let (got, body) = h
        .get_json(&format!("{hubspot_callback}?code=abc&state={expired}"))
        .await?;
    assert_eq!(
        (got, body["category"].as_str()),
        (410, Some("state_expired_or_used")),
        "{body}"
    );

    // The person says no at HubSpot; at QuickBooks (an unknown company is refused there).
    let denied_at_hubspot = h.reach("/oauth/hubspot/callback").await?;
    let state = query_param(&denied_at_hubspot, "state")?;
    let (got, body) = h
        .get_json(&format!(
            "{hubspot_callback}?error=access_denied&error_description=%3Cb%3Ecancelled%3C%2Fb%3E&state={state}"
        ))
        .await?;
    assert_eq!(
        (got, body["category"].as_str()),
        (400, Some("authorization_denied")),
        "{body}"
    );
    let html = h
        .http
        .get(format!(
            "{hubspot_callback}?error=access_denied&error_description=%3Cb%3E&state={state}"
        ))
        .send()
        .await?
        .text()
        .await?;
    assert!(!html.contains("<b>"), "outside text is escaped: {html}");
    h.refused(
        "/install",
        Choice {
            realm: Some("1"),
            ..Choice::default()
        },
        400,
        "authorization_denied",
    )
    .await?;

    // The token endpoint fails (HubSpot) or refuses the code (QuickBooks).
    let fault = json!({"method": "POST", "path": "/oauth/v1/token", "action": "respond",
        "status": 502, "body": "Bad Gateway", "times": 1});
    h.http
        .post(format!("{}/_sandbox/faults", h.hubspot))
        .json(&fault)
        .send()
        .await?
        .error_for_status()?;
    h.refused("/install", Choice::default(), 502, "provider_unavailable")
        .await?;
    let at_qbo = h.reach("/oauth/qbo/callback").await?;
    let mut forged = Url::parse(&at_qbo)?;
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "code" {
                "not-a-code".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let (got, body) = h.get_json(forged.as_str()).await?;
    assert_eq!(
        (got, body["category"].as_str()),
        (400, Some("provider_refused")),
        "{body}"
    );

    // A company that belongs to another portal's connection.
    let taken = h
        .refused(
            "/install",
            Choice {
                portal: Some(OTHER_PORTAL),
                ..Choice::default()
            },
            409,
            "company_already_connected",
        )
        .await?;
    assert!(
        taken["message"]
            .as_str()
            .unwrap_or_default()
            .contains(PORTAL),
        "{taken}"
    );

    // "Add a company" for one portal, signed in to another.
    h.refused(
        &format!("/install?portal={PORTAL}"),
        Choice {
            portal: Some(OTHER_PORTAL),
            ..Choice::default()
        },
        409,
        "portal_mismatch",
    )
    .await?;

    // Reconnect into a different company.
    let first = connection_id(PORTAL, US_REALM)?;
    h.refused(
        &format!("/reconnect?connection={first}"),
        Choice {
            realm: Some(GB_REALM),
            ..Choice::default()
        },
        409,
        "company_mismatch",
    )
    .await?;

    // Unknown connections and bad ids.
    for (path, status, category) in [
        ("/disconnect?connection=nope-1", 404, "unknown_connection"),
        ("/disconnect", 400, "missing_parameter"),
        ("/install?portal=abc", 400, "invalid_parameter"),
    ] {
        let (got, body) = h.get_json(&format!("{}{path}", h.base)).await?;
        assert_eq!(
            (got, body["category"].as_str()),
            (status, Some(category)),
            "{path}: {body}"
        );
    }

    assert_eq!(
        h.snapshot().await?,
        before,
        "a refused request changed stored state"
    );
    assert_eq!(h.queued_sync_messages().await?, queued);

    // The refusals were logged, without the tokens of the connection they left alone.
    let company = TokenOwner::Realm(RealmId::parse(US_REALM)?);
    let portal = TokenOwner::Portal(PortalId::parse(PORTAL)?);
    let logs = h.logs()?;
    assert!(
        logs.contains("connect request refused"),
        "the logs were captured"
    );
    for secret in [
        h.tokens.access_token(&company).await?,
        h.tokens.access_token(&portal).await?,
        h.tokens.refresh_token(&company).await?.expect("stored"),
        h.tokens.refresh_token(&portal).await?.expect("stored"),
    ] {
        assert!(
            !logs.contains(secret.expose_secret()),
            "a token leaked into the logs"
        );
    }
    h.stop().await
}

#[tokio::test]
async fn sandbox_companies_are_refused_unless_sandbox_mode_is_on() -> anyhow::Result<()> {
    let h = Harness::start("nosandbox", &[("QboAllowSandboxCompanies", "false")]).await?;
    let before = h.snapshot().await?;
    h.refused(
        "/install",
        Choice::default(),
        403,
        "sandbox_company_refused",
    )
    .await?;
    assert_eq!(h.snapshot().await?, before);
    assert_eq!(h.queued_sync_messages().await?, 0);
    h.stop().await
}

#[tokio::test]
async fn a_flow_is_bound_to_the_browser_that_started_it() -> anyhow::Result<()> {
    let h = Harness::start("browsers", &[]).await?;
    // Browser A starts an install and stops at QuickBooks' consent page: the link a login-CSRF
    // attacker would send to a QuickBooks admin.
    let consent = h
        .browse_in(
            &h.browser,
            &format!("{}/install", h.base),
            Choice::default(),
            Some("/connect/oauth2"),
        )
        .await?
        .err()
        .ok_or_else(|| anyhow::anyhow!("the flow did not reach QuickBooks' consent page"))?;
    let cookie = h.browser.cookies();
    assert!(cookie.contains_key("hsqbo-browser"), "{cookie:?}");
    let before = h.snapshot().await?;
    let queued = h.queued_sync_messages().await?;

    // Browser B consents: refused, whether B has never been here or has a flow cookie of its own.
    let strangers = [Browser::default(), Browser::default()];
    h.browse_in(
        &strangers[1],
        &format!("{}/install", h.base),
        Choice::default(),
        Some("/oauth/authorize"),
    )
    .await?
    .err()
    .ok_or_else(|| anyhow::anyhow!("B's own flow did not start"))?;
    assert!(strangers[1].cookies().contains_key("hsqbo-browser"));
    for stranger in &strangers {
        let visit = h.visit_json_in(stranger, &consent).await?;
        let body: Value = serde_json::from_str(&visit.body)?;
        assert_eq!(
            (visit.status, body["category"].as_str()),
            (403, Some("browser_mismatch")),
            "{body}"
        );
    }
    assert_eq!(
        h.snapshot().await?,
        before,
        "a foreign browser changed stored state"
    );
    assert_eq!(h.queued_sync_messages().await?, queued);
    assert!(h.active().await?.is_empty());

    // The same consent link, completed in browser A, connects.
    let visit = h.visit_json_in(&h.browser, &consent).await?;
    assert_eq!(visit.status, 200, "{}", visit.body);
    let body: Value = serde_json::from_str(&visit.body)?;
    assert_eq!(body["status"], "connected");
    assert_eq!(body["initial_sync"], "queued");
    assert_eq!(h.active().await?, vec![connection_id(PORTAL, US_REALM)?]);

    // The HubSpot step is bound the same way.
    let hubspot_step = h.reach("/oauth/hubspot/callback").await?;
    let visit = h.visit_json_in(&strangers[0], &hubspot_step).await?;
    assert_eq!(visit.status, 403, "{}", visit.body);
    let visit = h.visit_json_in(&h.browser, &hubspot_step).await?;
    assert_eq!(visit.status, 200, "{}", visit.body);

    // The cookie is HttpOnly and SameSite=Lax (and not Secure on this plain-http stack).
    let response = h.http.get(format!("{}/install", h.base)).send().await?;
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    h.stop().await
}

#[tokio::test]
async fn disconnect_and_uninstall_act_only_on_a_confirmed_post() -> anyhow::Result<()> {
    let h = Harness::start("confirm", &[]).await?;
    let visit = h.browse("/install", Choice::default()).await?;
    assert_eq!(visit.status, 200, "{}", visit.body);
    let id = connection_id(PORTAL, US_REALM)?;
    let disconnect = format!("/disconnect?connection={id}");

    // Following the link with GETs alone, as a page or as JSON, only asks.
    let page = h.browse(&disconnect, Choice::default()).await?;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<form method=\"post\""), "{}", page.body);
    let token = h.confirmation(&disconnect, "disconnect").await?;
    assert_eq!(h.active().await?, vec![id.clone()], "a GET disconnected");
    let (status, _) = h
        .get_json(&format!("{}/confirm?token={token}", h.base))
        .await?;
    assert_eq!(status, 405, "the confirmation takes a POST only");
    assert_eq!(h.active().await?, vec![id.clone()]);

    // Refused: another browser, no token, a forged token.
    let stranger = Browser::default();
    let (status, body) = h.post_confirm(&stranger, &token).await?;
    assert_eq!(
        (status, body["category"].as_str()),
        (403, Some("browser_mismatch")),
        "{body}"
    );
    let (status, body) = h.post_confirm(&h.browser, "").await?;
    assert_eq!(
        (status, body["category"].as_str()),
        (400, Some("missing_parameter")),
        "{body}"
    );
    let (nonce, _) = token
        .split_once('.')
        .ok_or_else(|| anyhow::anyhow!("token {token}"))?;
    let (status, body) = h.post_confirm(&h.browser, &format!("{nonce}.AAAA")).await?;
    assert_eq!(
        (status, body["category"].as_str()),
        (400, Some("invalid_state")),
        "{body}"
    );
    assert_eq!(h.active().await?, vec![id.clone()]);

    // The confirmed POST disconnects; replaying it is refused.
    let (status, body) = h.post_confirm(&h.browser, &token).await?;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("disconnected")),
        "{body}"
    );
    assert!(h.active().await?.is_empty());
    let (status, body) = h.post_confirm(&h.browser, &token).await?;
    assert_eq!(
        (status, body["category"].as_str()),
        (410, Some("state_expired_or_used")),
        "{body}"
    );

    // Uninstall asks too, names what it stops, and acts on the confirmed POST only.
    let visit = h.browse("/install", Choice::default()).await?;
    assert_eq!(visit.status, 200, "{}", visit.body);
    let token = h.confirmation("/uninstall", "uninstall").await?;
    assert_eq!(h.active().await?, vec![id.clone()], "a GET uninstalled");
    assert_eq!(
        h.counter(&h.hubspot, "DELETE /appinstalls/v3/external-install")
            .await?,
        0
    );
    let (status, _) = h.post_confirm(&stranger, &token).await?;
    assert_eq!(status, 403);
    let (status, body) = h.post_confirm(&h.browser, &token).await?;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("uninstalled")),
        "{body}"
    );
    assert!(h.active().await?.is_empty());
    assert_eq!(
        h.counter(&h.hubspot, "DELETE /appinstalls/v3/external-install")
            .await?,
        1
    );
    h.stop().await
}

#[tokio::test]
async fn only_allowed_portals_connect() -> anyhow::Result<()> {
    let h = Harness::start("allowlist", &[("AllowedHubSpotPortals", OTHER_PORTAL)]).await?;
    let before = h.snapshot().await?;
    let body = h
        .refused("/install", Choice::default(), 403, "portal_not_allowed")
        .await?;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains(PORTAL),
        "{body}"
    );
    assert_eq!(
        h.snapshot().await?,
        before,
        "a refused portal wrote something"
    );
    assert_eq!(h.queued_sync_messages().await?, 0);
    let visit = h
        .browse(
            "/install",
            Choice {
                portal: Some(OTHER_PORTAL),
                json: true,
                ..Choice::default()
            },
        )
        .await?;
    assert_eq!(visit.status, 200, "{}", visit.body);
    assert_eq!(
        h.active().await?,
        vec![connection_id(OTHER_PORTAL, US_REALM)?]
    );
    h.stop().await
}
