//! Connections: one HubSpot portal paired with one QuickBooks company, and the OAuth tokens that
//! keep it working.

pub mod company;
pub mod install;
pub mod oauth_state;
pub mod pages;
pub mod registry;
pub mod sealer;
pub mod tokens;

use serde::{Deserialize, Serialize};

/// The two OAuth providers a connection holds tokens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    HubSpot,
    Qbo,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::HubSpot => "hubspot",
            Provider::Qbo => "qbo",
        }
    }

    /// The provider's name as people know it.
    pub fn label(self) -> &'static str {
        match self {
            Provider::HubSpot => "HubSpot",
            Provider::Qbo => "QuickBooks",
        }
    }
}
