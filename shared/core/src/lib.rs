//! Core of the HubSpot <-> QuickBooks Online integration.
//!
//! Every Lambda binary is a thin `main.rs` that wires [`config::Config`], the AWS clients and a
//! handler from this crate. Logic lives here behind small ports (`store`, `queue`, `crypto`) with
//! DynamoDB/SQS/KMS adapters, so it runs the same in AWS and against a local AWS-compatible
//! endpoint. Dependencies point one way: `error_class`, `clock` and `domain` are leaves; adapters
//! sit at the edge; features (`connection`, `sync`, `poll`, `actions`) compose them; `runtime`
//! only builds clients (`tests/architecture.rs` checks this).

pub mod actions;
pub mod admin;
pub mod clock;
pub mod config;
pub mod connection;
pub mod crypto;
pub mod decide;
pub mod domain;
pub mod error;
pub mod error_class;
pub mod filters;
pub mod http;
pub mod hubspot;
pub mod ledger;
pub mod mapping;
pub mod oauth;
pub mod poll;
pub mod qbo;
pub mod queue;
pub mod runtime;
pub mod settings;
pub mod status;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod webhooks;

pub use error::Error;
pub use error_class::ErrorClass;
