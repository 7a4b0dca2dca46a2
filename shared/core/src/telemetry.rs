//! Structured JSON logs to stdout (CloudWatch in AWS, the terminal locally).

use tracing_subscriber::{fmt, EnvFilter};

/// HTTP client internals log request URLs at debug level, and a few provider URLs carry a token
/// (HubSpot's token metadata and revocation paths): they never log below `info`, whatever
/// `RUST_LOG` says.
const QUIET: [&str; 3] = ["reqwest=info", "hyper=info", "hyper_util=info"];

/// Installs the JSON subscriber once; the filter comes from `RUST_LOG` (default `info`).
/// A second call (several handlers in one test binary) is a no-op.
pub fn init() {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    for directive in QUIET {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let _ = fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .try_init();
}
