//! Tokens sealed at rest with the template's KMS key (envelope encryption), on the local endpoint.

use hubspot_qbo_core::runtime::Services;
use integration_tests::Deployed;

/// The item the secret belongs to.
const OWNER: &str = "tokens#qbo#9130350000000001/tokens";

#[tokio::test]
async fn sealed_tokens_open_only_unaltered_and_never_show_the_plain_text() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let services = Services::new(deployed.config_of("OAuthInstallFunction")?, &deployed.sdk);
    let secret = br#"{"access_token":"eyJ-very-secret","refresh_token":"RT1-very-secret"}"#;

    let sealed = services.sealer.seal(secret, OWNER).await?;
    assert!(!sealed.contains("very-secret"), "plain text in {sealed}");
    assert_eq!(services.sealer.open(&sealed, OWNER).await?, secret);
    assert_ne!(
        services.sealer.seal(secret, OWNER).await?,
        sealed,
        "a fresh data key and nonce per seal"
    );

    // Any change to the ciphertext is detected.
    let mut envelope: serde_json::Value = serde_json::from_str(&sealed)?;
    let ciphertext = envelope["ciphertext"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let flipped = if ciphertext.starts_with('A') {
        ciphertext.replacen('A', "B", 1)
    } else {
        format!("A{}", &ciphertext[1..])
    };
    envelope["ciphertext"] = flipped.into();
    let altered = services
        .sealer
        .open(&envelope.to_string(), OWNER)
        .await
        .unwrap_err();
    assert!(altered.to_string().contains("altered"), "{altered}");
    assert!(services
        .sealer
        .open("not an envelope", OWNER)
        .await
        .is_err());

    // A blob moved into another owner's item does not open there.
    let moved = services
        .sealer
        .open(&sealed, "tokens#qbo#9130350000000002/tokens")
        .await
        .unwrap_err();
    assert!(!moved.to_string().contains("very-secret"), "{moved}");
    // Not even with the other owner's data key: the AES-GCM tag binds the owner too.
    let other = services
        .sealer
        .seal(b"x", "tokens#qbo#9130350000000002/tokens")
        .await?;
    let mut spliced: serde_json::Value = serde_json::from_str(&sealed)?;
    let other: serde_json::Value = serde_json::from_str(&other)?;
    spliced["key"] = other["key"].clone();
    assert!(services
        .sealer
        .open(&spliced.to_string(), "tokens#qbo#9130350000000002/tokens")
        .await
        .is_err());
    deployed.stop().await
}
