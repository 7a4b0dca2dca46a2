//! Core of the HubSpot <-> QuickBooks Online integration.
//!
//! Every Lambda binary is a thin `main.rs` that wires [`config::Config`], the AWS clients and a
//! handler from this crate. Logic lives here behind small ports (`store`, `queue`) with
//! DynamoDB/SQS adapters, so it runs the same in AWS and against a local AWS-compatible endpoint.

pub mod actions;
pub mod config;
pub mod connection;
pub mod domain;
pub mod error;
pub mod http;
pub mod oauth;
pub mod poll;
pub mod queue;
pub mod runtime;
pub mod settings;
pub mod store;
pub mod sync;
pub mod telemetry;

pub use error::{Error, ErrorClass};
