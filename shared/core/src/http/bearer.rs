//! Where an API client gets its access token.

use async_trait::async_trait;
use secrecy::SecretString;

/// Where an API client gets its access token: the token keeper for a connection, or a fixed
/// token fresh from a code exchange.
#[async_trait]
pub trait Bearer: Send + Sync {
    async fn token(&self) -> Result<SecretString, BearerError>;
    /// The provider refused `rejected` (401): a token to try instead, refreshed unless someone
    /// already replaced it.
    async fn after_rejection(&self, rejected: &SecretString) -> Result<SecretString, BearerError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No token can be had without a person reconnecting.
    #[error("{0}")]
    ReconnectRequired(String),
    /// A passing failure (the token store, the token endpoint).
    #[error("{0}")]
    Unavailable(String),
}

/// A token used as it is (connecting: it was just issued).
pub struct FixedBearer(pub SecretString);

#[async_trait]
impl Bearer for FixedBearer {
    async fn token(&self) -> Result<SecretString, BearerError> {
        Ok(self.0.clone())
    }

    async fn after_rejection(&self, _: &SecretString) -> Result<SecretString, BearerError> {
        Err(BearerError::Unavailable(
            "the provider refused a token it had just issued".into(),
        ))
    }
}
