//! The latency profile: when on, every API request waits a realistic random 50–300 ms, for
//! benchmarks that should feel a real network.

use super::prng::Prng;
use super::sync::lock;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct LatencySettings {
    pub enabled: bool,
    #[serde(default = "default_min")]
    pub min_ms: u64,
    #[serde(default = "default_max")]
    pub max_ms: u64,
}

fn default_min() -> u64 {
    50
}
fn default_max() -> u64 {
    300
}

impl Default for LatencySettings {
    fn default() -> Self {
        Self {
            enabled: false,
            min_ms: default_min(),
            max_ms: default_max(),
        }
    }
}

#[derive(Debug)]
pub struct LatencyProfile {
    inner: Mutex<(LatencySettings, Prng)>,
}

impl LatencyProfile {
    pub fn new(settings: LatencySettings) -> Self {
        Self {
            inner: Mutex::new((settings, Prng::new(0x1a7e))),
        }
    }

    pub fn settings(&self) -> LatencySettings {
        lock(&self.inner).0
    }

    pub fn set(&self, settings: LatencySettings) {
        lock(&self.inner).0 = settings;
    }

    /// The delay for the next request, if the profile is on.
    pub fn next_delay(&self) -> Option<Duration> {
        let mut inner = lock(&self.inner);
        let (settings, prng) = &mut *inner;
        settings
            .enabled
            .then(|| Duration::from_millis(prng.between(settings.min_ms, settings.max_ms)))
    }
}

pub async fn latency_layer(
    State(profile): State<Arc<LatencyProfile>>,
    request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with("/_sandbox") {
        if let Some(delay) = profile.next_delay() {
            tokio::time::sleep(delay).await;
        }
    }
    next.run(request).await
}
