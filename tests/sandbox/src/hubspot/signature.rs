//! HubSpot request signatures: v1 = hex(SHA-256(secret + body)); v2 = hex(SHA-256(secret + method
//! + uri + body)); v3 = base64(HMAC-SHA256(secret, method + uri + body + timestamp)).

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn v1(client_secret: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(client_secret.as_bytes());
    h.update(body.as_bytes());
    hex(&h.finalize())
}

pub fn v2(client_secret: &str, method: &str, uri: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(client_secret.as_bytes());
    h.update(method.as_bytes());
    h.update(uri.as_bytes());
    h.update(body.as_bytes());
    hex(&h.finalize())
}

pub fn v3(client_secret: &str, method: &str, uri: &str, body: &str, timestamp_ms: i64) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()) else {
        return String::new();
    };
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body.as_bytes());
    mac.update(timestamp_ms.to_string().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The headers HubSpot puts on a signed POST: the legacy signature (`v1` or `v2`) with its
/// version, and optionally the v3 signature with its millisecond timestamp.
pub fn headers(
    client_secret: &str,
    legacy: &str,
    with_v3: bool,
    uri: &str,
    body: &str,
    timestamp_ms: i64,
) -> Vec<(String, String)> {
    let legacy_sig = if legacy == "v2" {
        v2(client_secret, "POST", uri, body)
    } else {
        v1(client_secret, body)
    };
    let mut out = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("X-HubSpot-Signature".to_string(), legacy_sig),
        (
            "X-HubSpot-Signature-Version".to_string(),
            if legacy == "v2" {
                "v2".into()
            } else {
                "v1".into()
            },
        ),
    ];
    if with_v3 {
        out.push((
            "X-HubSpot-Signature-v3".into(),
            v3(client_secret, "POST", uri, body, timestamp_ms),
        ));
        out.push((
            "X-HubSpot-Request-Timestamp".into(),
            timestamp_ms.to_string(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";

    #[test]
    fn reference_vectors() {
        let body = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
        assert_eq!(
            v1(SECRET, body),
            "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
        );
        assert_eq!(
            v2(SECRET, "GET", "https://www.example.com/webhook_uri", ""),
            "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
        );
        assert_eq!(
            v3(
                SECRET,
                "POST",
                "https://www.example.com/webhook_uri",
                "{'example_field':'example_value'}",
                1_693_657_560_000
            ),
            "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="
        );
    }
}
