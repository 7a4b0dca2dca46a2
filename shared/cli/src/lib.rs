//! The operator CLI of the HubSpot ↔ QuickBooks Online integration: the admin API of a
//! deployment, from a terminal or a script.

pub mod api;
pub mod args;
pub mod commands;
pub mod render;

pub use api::{AdminClient, CliError, Secret};
