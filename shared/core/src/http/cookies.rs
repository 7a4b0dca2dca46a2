//! The cookies our pages set: named `__Host-<name>` on https (Secure, Path=/, no Domain: pinned
//! to this host), plain `<name>` on a local http address; always HttpOnly.

use axum::http::{header, HeaderMap};

/// How the cookie travels on requests from other sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent on top-level navigations back to us (an OAuth redirect), not on cross-site posts.
    Lax,
    /// Sent inside another site's frame too (HubSpot's app settings iframe); https only, and
    /// every change it authorizes needs a CSRF token.
    None,
}

/// The cookie's name for a function at `base_url`.
pub fn name(base: &'static str, base_url: &str) -> String {
    if is_https(base_url) {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

fn is_https(base_url: &str) -> bool {
    base_url.starts_with("https://")
}

/// The value of our cookie `base` in a request, if sent.
pub fn read<'h>(headers: &'h HeaderMap, base: &'static str, base_url: &str) -> Option<&'h str> {
    let wanted = name(base, base_url);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == wanted)
        .map(|(_, value)| value.trim())
}

/// A `Set-Cookie` value. `SameSite=None` falls back to `Lax` on plain http, where browsers
/// refuse it.
pub fn set(
    base: &'static str,
    value: &str,
    base_url: &str,
    max_age_seconds: u32,
    same_site: SameSite,
) -> String {
    let https = is_https(base_url);
    let same_site = match same_site {
        SameSite::None if https => "None",
        _ => "Lax",
    };
    let secure = if https { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/; Max-Age={max_age_seconds}; HttpOnly; SameSite={same_site}{secure}",
        name(base, base_url)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_pinned_to_the_host_on_https_and_read_back_by_name() {
        let https = set(
            "hsqbo-x",
            "v1",
            "https://a.lambda-url.on.aws",
            60,
            SameSite::None,
        );
        assert_eq!(
            https,
            "__Host-hsqbo-x=v1; Path=/; Max-Age=60; HttpOnly; SameSite=None; Secure"
        );
        let http = set("hsqbo-x", "v1", "http://127.0.0.1:4000", 60, SameSite::None);
        assert_eq!(
            http,
            "hsqbo-x=v1; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "other=1; __Host-hsqbo-x=abc".parse().unwrap(),
        );
        assert_eq!(read(&headers, "hsqbo-x", "https://a.example"), Some("abc"));
        assert_eq!(read(&headers, "hsqbo-x", "http://a.example"), None);
    }
}
