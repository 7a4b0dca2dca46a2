//! The admin API as the CLI calls it: one base URL, the operator key, JSON answers.

use std::convert::Infallible;
use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, IF_MATCH, LOCATION};
use reqwest::{Method, RequestBuilder, Response, Url};
use serde_json::Value;

/// The operator key. It has no `Display`, its `Debug` is `[REDACTED]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key replaced (an answer could echo it).
    pub fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.0, "[REDACTED]")
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl From<String> for Secret {
    fn from(key: String) -> Self {
        Self(key)
    }
}

/// Never fails: a parse error would echo the key (it is checked by [`AdminClient::new`]).
impl FromStr for Secret {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(Self(s.to_string()))
    }
}

/// One setting the API refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The API answered an error (`{"status":"error","category","message","fields"?}`).
    #[error("{category}: {message}")]
    Api {
        status: u16,
        category: String,
        message: String,
        fields: Vec<FieldProblem>,
    },
    /// The deployment could not be reached, or the answer broke off.
    #[error("cannot reach {host}: {detail}")]
    Network { host: String, detail: String },
    /// An answer the API does not give (not JSON, say).
    #[error("unexpected answer from {host}: {detail}")]
    Answer { host: String, detail: String },
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    /// 2 for usage errors (as clap's), 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }

    /// The reader of stdout went away (`… | head`): not worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }
}

/// The URL of one API path under `base`: each segment percent-encoded (an id cannot add a
/// path level), then the given query parameters form-encoded.
pub fn endpoint(base: &Url, segments: &[&str], query: &[(&str, String)]) -> Result<Url, CliError> {
    if let Some(bad) = segments
        .iter()
        .find(|s| s.trim().is_empty() || **s == "." || **s == "..")
    {
        // URLs resolve `.` and `..` away, whatever their encoding.
        return Err(CliError::Usage(format!("{bad:?} is not an id")));
    }
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| CliError::Usage("--url cannot carry a path".into()))?
        .pop_if_empty()
        .extend(segments);
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// `host` or `host:port` of a URL, for messages.
fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// A client of one deployment's admin API.
#[derive(Debug)]
pub struct AdminClient {
    base: Url,
    key: Secret,
    http: reqwest::Client,
}

impl AdminClient {
    /// `base` must be https (plain http only to this machine: the key would travel in clear).
    pub fn new(base: &str, key: Secret) -> Result<Self, CliError> {
        let mut base = Url::parse(base.trim())
            .map_err(|e| CliError::Usage(format!("--url {base:?} is not a URL: {e}")))?;
        match base.scheme() {
            "https" => {}
            "http" if is_loopback(&base) => {}
            "http" => {
                return Err(CliError::Usage(format!(
                    "--url: refusing to send the operator key over plain http to {}; use https",
                    host_of(&base)
                )))
            }
            other => {
                return Err(CliError::Usage(format!(
                    "--url: {other:?} is not http or https"
                )))
            }
        }
        if base.cannot_be_a_base() || base.host_str().is_none() {
            return Err(CliError::Usage("--url has no host".into()));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(CliError::Usage(
                "--url must not carry a user or password (the key goes in --key)".into(),
            ));
        }
        base.set_query(None);
        base.set_fragment(None);
        if key.expose().trim().is_empty() {
            return Err(CliError::Usage(
                "the operator key is empty (--key or HUBSPOT_QBO_OPERATOR_KEY)".into(),
            ));
        }
        if HeaderValue::from_str(&format!("Bearer {}", key.expose())).is_err() {
            return Err(CliError::Usage(
                "the operator key has characters an HTTP header cannot carry".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("hubspot-qbo-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(120))
            // A redirect is a wrong --url; never follow it with the key.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CliError::Usage(format!("cannot set up HTTPS: {e}")))?;
        Ok(Self { base, key, http })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, CliError> {
        let url = endpoint(&self.base, segments, query)?;
        let request = self.request(Method::GET, url.clone());
        self.json_answer(&url, request).await
    }

    pub async fn post(&self, segments: &[&str], body: &Value) -> Result<Value, CliError> {
        let url = endpoint(&self.base, segments, &[])?;
        let request = self.request(Method::POST, url.clone()).json(body);
        self.json_answer(&url, request).await
    }

    /// `if_match`: the settings version the edit is made over.
    pub async fn put(
        &self,
        segments: &[&str],
        body: &Value,
        if_match: Option<u64>,
    ) -> Result<Value, CliError> {
        let url = endpoint(&self.base, segments, &[])?;
        let mut request = self.request(Method::PUT, url.clone()).json(body);
        if let Some(version) = if_match {
            request = request.header(IF_MATCH, version.to_string());
        }
        self.json_answer(&url, request).await
    }

    pub async fn delete(&self, segments: &[&str]) -> Result<Value, CliError> {
        let url = endpoint(&self.base, segments, &[])?;
        let request = self.request(Method::DELETE, url.clone());
        self.json_answer(&url, request).await
    }

    /// Copies a streamed answer into `sink` chunk by chunk; the number of bytes copied.
    pub async fn download(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        sink: &mut dyn Write,
    ) -> Result<u64, CliError> {
        let url = endpoint(&self.base, segments, query)?;
        let mut response = self
            .answer(&url, self.request(Method::GET, url.clone()))
            .await?;
        let mut written = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|e| self.network(&url, &e))? {
            sink.write_all(&chunk)
                .map_err(CliError::io("cannot write the export"))?;
            written += chunk.len() as u64;
        }
        sink.flush()
            .map_err(CliError::io("cannot write the export"))?;
        Ok(written)
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", self.key.expose()))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        auth.set_sensitive(true);
        self.http.request(method, url).header(AUTHORIZATION, auth)
    }

    /// Sends `request`; a successful answer, or the error it carries.
    async fn answer(&self, url: &Url, request: RequestBuilder) -> Result<Response, CliError> {
        let response = request.send().await.map_err(|e| self.network(url, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status.is_redirection() {
            let to = response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or("?");
            return Err(CliError::Api {
                status: status.as_u16(),
                category: format!("http_{}", status.as_u16()),
                message: self.key.scrub(&format!(
                    "the API answered a redirect to {to} (check --url)"
                )),
                fields: Vec::new(),
            });
        }
        let body = response.bytes().await.map_err(|e| self.network(url, &e))?;
        Err(self.api_error(status.as_u16(), &body))
    }

    async fn json_answer(&self, url: &Url, request: RequestBuilder) -> Result<Value, CliError> {
        let response = self.answer(url, request).await?;
        let body = response.bytes().await.map_err(|e| self.network(url, &e))?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| CliError::Answer {
            host: host_of(url),
            detail: format!("the answer is not JSON ({e})"),
        })
    }

    /// The error an error answer carries; anything not in the API's shape is told by status.
    fn api_error(&self, status: u16, body: &[u8]) -> CliError {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        let category = parsed
            .as_ref()
            .and_then(|v| text(v, "category"))
            .unwrap_or_else(|| format!("http_{status}"));
        let message = parsed
            .as_ref()
            .and_then(|v| text(v, "message").or_else(|| text(v, "Message")))
            .unwrap_or_else(|| {
                let raw = String::from_utf8_lossy(body);
                let raw = raw.trim();
                if raw.is_empty() {
                    format!("the API answered HTTP {status}")
                } else {
                    raw.chars().take(300).collect()
                }
            });
        let fields = parsed
            .as_ref()
            .and_then(|v| v.get("fields"))
            .and_then(Value::as_array)
            .map(|all| {
                all.iter()
                    .map(|f| FieldProblem {
                        field: self.key.scrub(&text(f, "field").unwrap_or_default()),
                        message: self.key.scrub(&text(f, "message").unwrap_or_default()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        CliError::Api {
            status,
            category: self.key.scrub(&category),
            message: self.key.scrub(&message),
            fields,
        }
    }

    /// A transport error, told by its causes (without the URL's path: the host names it).
    fn network(&self, url: &Url, error: &reqwest::Error) -> CliError {
        let mut causes: Vec<String> = Vec::new();
        if error.is_timeout() {
            causes.push("timed out".into());
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> =
            std::error::Error::source(error);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !causes
                .iter()
                .any(|c| c.contains(&text) || text.contains(c.as_str()))
            {
                causes.push(text);
            }
            source = cause.source();
        }
        if causes.is_empty() {
            causes.push(error.to_string());
        }
        CliError::Network {
            host: host_of(url),
            detail: self.key.scrub(&causes.join(": ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn key_debug_is_redacted() {
        let key = Secret::new("op-key-123456");
        assert_eq!(format!("{key:?}"), "[REDACTED]");
        let client = AdminClient::new("https://admin.example", key).unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("op-key-123456"), "{debug}");
        assert!(debug.contains("[REDACTED]"));
    }

    #[test]
    fn scrub_removes_the_key() {
        let key = Secret::new("op-key-123456");
        assert_eq!(
            key.scrub("bad token Bearer op-key-123456!"),
            "bad token Bearer [REDACTED]!"
        );
    }

    #[test]
    fn endpoint_with_or_without_trailing_slash() {
        for b in ["https://x.lambda-url.aws/", "https://x.lambda-url.aws"] {
            let url = endpoint(&base(b), &["api", "connections"], &[]).unwrap();
            assert_eq!(url.as_str(), "https://x.lambda-url.aws/api/connections");
        }
        for b in ["https://h/prod/", "https://h/prod"] {
            let url = endpoint(&base(b), &["api", "categories"], &[]).unwrap();
            assert_eq!(url.as_str(), "https://h/prod/api/categories");
        }
    }

    #[test]
    fn endpoint_encodes_segments_and_query() {
        let url = endpoint(
            &base("https://h/"),
            &["api", "connections", "c/1", "records", "50%?#x y"],
            &[("q", "a&b c".into()), ("status", "failing".into())],
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://h/api/connections/c%2F1/records/50%25%3F%23x%20y?q=a%26b+c&status=failing"
        );
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs[0], ("q".into(), "a&b c".into()));
    }

    #[test]
    fn endpoint_refuses_ids_a_url_would_resolve_away() {
        for bad in ["..", ".", "", " "] {
            let err = endpoint(&base("https://h/"), &["api", "connections", bad], &[]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
            assert!(err.to_string().contains("is not an id"), "{err}");
        }
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        let key = || Secret::new("k-123");
        assert!(AdminClient::new("http://127.0.0.1:9000", key()).is_ok());
        assert!(AdminClient::new("http://localhost:9000/", key()).is_ok());
        assert!(AdminClient::new("http://[::1]:9000/", key()).is_ok());
        let err = AdminClient::new("http://admin.example/", key()).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("plain http"), "{err}");
        assert!(AdminClient::new("ftp://admin.example/", key()).is_err());
        assert!(AdminClient::new("not a url", key()).is_err());
    }

    #[test]
    fn bad_keys_are_refused_without_echo() {
        let err = AdminClient::new("https://h", Secret::new("  ")).unwrap_err();
        assert!(err.to_string().contains("empty"));
        let err = AdminClient::new("https://h", Secret::new("sec\nret-999")).unwrap_err();
        assert!(!err.to_string().contains("ret-999"), "{err}");
    }

    #[test]
    fn api_error_reads_the_shape_and_scrubs() {
        let client = AdminClient::new("https://h", Secret::new("op-key-123456")).unwrap();
        let body =
            br#"{"status":"error","category":"invalid_settings","message":"bad op-key-123456",
            "fields":[{"field":"direction","message":"unknown"}]}"#;
        match client.api_error(422, body) {
            CliError::Api {
                status,
                category,
                message,
                fields,
            } => {
                assert_eq!(status, 422);
                assert_eq!(category, "invalid_settings");
                assert_eq!(message, "bad [REDACTED]");
                assert_eq!(
                    fields,
                    vec![FieldProblem {
                        field: "direction".into(),
                        message: "unknown".into()
                    }]
                );
            }
            other => panic!("{other:?}"),
        }
        // Not the API's shape: told by status.
        let err = client.api_error(502, b"Bad Gateway");
        assert_eq!(err.to_string(), "http_502: Bad Gateway");
        let err = client.api_error(403, br#"{"Message":"Forbidden"}"#);
        assert_eq!(err.to_string(), "http_403: Forbidden");
        let err = client.api_error(500, b"");
        assert_eq!(err.to_string(), "http_500: the API answered HTTP 500");
    }
}
