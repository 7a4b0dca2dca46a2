//! Local stand-ins for QuickBooks Online and HubSpot, faithful to their wire formats.
//!
//! `common` holds the protocol-independent pieces (clock, faults, request log, throttling windows,
//! latency, webhook delivery, deterministic randomness, the HTTP server loop); `qbo` and `hubspot`
//! are the simulators built on them. Rust tests start a simulator in-process:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let qbo = sandbox::qbo::spawn(sandbox::qbo::QboConfig::default()).await?;
//! println!("QBO API at {}", qbo.base_url);
//! qbo.shutdown().await;
//! let hub = sandbox::hubspot::spawn(sandbox::hubspot::HubSpotConfig::default()).await?;
//! println!("HubSpot API at {}", hub.base_url);
//! hub.shutdown().await;
//! # Ok(()) }
//! ```

pub mod common;
pub mod hubspot;
pub mod qbo;
