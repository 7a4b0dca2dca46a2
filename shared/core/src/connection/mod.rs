//! Connections: one HubSpot portal paired with one QuickBooks company, and the OAuth tokens that
//! keep it working.

pub mod initial_sync;
pub mod install;
pub mod lifecycle;
pub mod oauth_state;
pub mod pages;
pub mod registry;
pub mod tokens;
