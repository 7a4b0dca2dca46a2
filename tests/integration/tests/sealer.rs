//! Tokens sealed at rest with the template's KMS key (envelope encryption), on the local endpoint.

use hubspot_qbo_core::runtime::Services;
use integration_tests::Deployed;

#[tokio::test]
async fn sealed_tokens_open_only_unaltered_and_never_show_the_plain_text() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let services = Services::new(deployed.config_of("OAuthInstallFunction")?, &deployed.sdk);
    let secret = br#"{"access_token":"eyJ-very-secret","refresh_token":"RT1-very-secret"}"#;

    let sealed = services.sealer.seal(secret).await?;
    assert!(!sealed.contains("very-secret"), "plain text in {sealed}");
    assert_eq!(services.sealer.open(&sealed).await?, secret);
    assert_ne!(
        services.sealer.seal(secret).await?,
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
        .open(&envelope.to_string())
        .await
        .unwrap_err();
    assert!(altered.to_string().contains("altered"), "{altered}");
    assert!(services.sealer.open("not an envelope").await.is_err());
    deployed.stop().await
}
