//! The local stack: everything the integration needs, on one machine, with no AWS account.
//!
//! - [`aws::LocalAws`]: a local AWS-compatible endpoint (the `moto` server) on 127.0.0.1;
//! - [`manifest::deploy`]: creates the template's resources there and reports how its functions
//!   are wired (resolved environment, schedules, SQS event sources, function URLs);
//! - [`lambda::FunctionHost`]: runs a real function binary behind a Lambda Runtime API server;
//! - [`triggers`]: function URLs on 127.0.0.1, schedules and SQS event sources, as Lambda would;
//! - [`sandboxes::Sandboxes`]: the local QuickBooks Online (and HubSpot) APIs;
//! - [`webhooks`]: the HubSpot app's webhook subscriptions, and both sandboxes pointed at the
//!   webhooks function;
//! - [`stack::LocalStack`]: all of the above together (used by `make run` and end-to-end tests).

pub mod actions;
pub mod aws;
pub mod demo;
pub mod harness;
pub mod lambda;
pub mod manifest;
pub mod paths;
pub mod process;
pub mod sandboxes;
pub mod stack;
pub mod triggers;
pub mod webhooks;
