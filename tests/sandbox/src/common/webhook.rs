//! Outbound webhook delivery: one ordered queue per target URL, retried on failure on a
//! configurable schedule, every attempt recorded for tests to inspect.

use super::clock::SandboxClock;
use super::sync::lock;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Re-renders a delivery for one attempt (1-based): APIs that put the attempt number in the body
/// or sign with a timestamp produce a fresh body and headers per try.
pub type Render = Arc<dyn Fn(u32) -> (String, Vec<(String, String)>) + Send + Sync>;

/// One notification to POST.
#[derive(Clone)]
pub struct Delivery {
    pub url: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
    /// When set, replaces `body` and `headers` on every attempt.
    pub render: Option<Render>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("url", &self.url)
            .field("body", &self.body)
            .field("rendered", &self.render.is_some())
            .finish()
    }
}

impl Delivery {
    /// A delivery whose body and headers are the same on every attempt.
    pub fn fixed(url: String, body: String, headers: Vec<(String, String)>) -> Self {
        Self {
            url,
            body,
            headers,
            render: None,
        }
    }

    fn for_attempt(&self, attempt: u32) -> (String, Vec<(String, String)>) {
        match &self.render {
            Some(render) => render(attempt),
            None => (self.body.clone(), self.headers.clone()),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DeliveryAttempt {
    pub seq: u64,
    pub url: String,
    /// 1 for the first try.
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub delivered: bool,
    pub at: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Waits before the 2nd, 3rd, … attempt; the delivery is abandoned after the last.
    pub delays: Vec<Duration>,
    pub attempt_timeout: Duration,
    /// Answers with these statuses end the delivery without retrying.
    pub final_statuses: Vec<u16>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // Intuit's documented schedule starts 10 s, 20 s, 30 s, 5 min …; tests shorten it.
        Self {
            delays: [10, 20, 30, 300, 1200]
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            attempt_timeout: Duration::from_secs(3),
            final_statuses: Vec::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Log {
    attempts: Vec<DeliveryAttempt>,
    seq: u64,
}

/// Delivers webhooks in the background; cheap to clone.
#[derive(Clone, Debug)]
pub struct WebhookSender {
    queues: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Delivery>>>>,
    log: Arc<Mutex<Log>>,
    policy: Arc<Mutex<RetryPolicy>>,
    client: reqwest::Client,
    clock: SandboxClock,
}

impl WebhookSender {
    pub fn new(clock: SandboxClock, policy: RetryPolicy) -> Self {
        Self {
            queues: Arc::default(),
            log: Arc::default(),
            policy: Arc::new(Mutex::new(policy)),
            client: reqwest::Client::new(),
            clock,
        }
    }

    pub fn set_policy(&self, policy: RetryPolicy) {
        *lock(&self.policy) = policy;
    }

    pub fn policy(&self) -> RetryPolicy {
        lock(&self.policy).clone()
    }

    /// Every attempt so far (oldest first) with `seq > since`.
    pub fn attempts(&self, since: u64) -> Vec<DeliveryAttempt> {
        lock(&self.log)
            .attempts
            .iter()
            .filter(|a| a.seq > since)
            .cloned()
            .collect()
    }

    pub fn clear_log(&self) {
        lock(&self.log).attempts.clear();
    }

    /// Queues a delivery behind earlier ones to the same URL. Must run inside a Tokio runtime.
    pub fn send(&self, delivery: Delivery) {
        let mut queues = lock(&self.queues);
        let sender = queues.entry(delivery.url.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(self.clone().run_queue(rx));
            tx
        });
        if let Err(mpsc::error::SendError(delivery)) = sender.send(delivery) {
            // The worker ended (runtime shutting down); start a fresh one.
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = tx.send(delivery);
            tokio::spawn(self.clone().run_queue(rx));
            *sender = tx;
        }
    }

    async fn run_queue(self, mut rx: mpsc::UnboundedReceiver<Delivery>) {
        while let Some(delivery) = rx.recv().await {
            self.deliver(&delivery).await;
        }
    }

    async fn deliver(&self, delivery: &Delivery) {
        let policy = self.policy();
        let mut attempt = 1u32;
        loop {
            let (body, headers) = delivery.for_attempt(attempt);
            let mut request = self
                .client
                .post(&delivery.url)
                .timeout(policy.attempt_timeout)
                .body(body.clone());
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            let outcome = request.send().await;
            let (status, error) = match &outcome {
                Ok(resp) => (Some(resp.status().as_u16()), None),
                Err(err) => (None, Some(err.to_string())),
            };
            let delivered = status.is_some_and(|s| (200..300).contains(&s));
            self.record(
                &delivery.url,
                body,
                headers,
                attempt,
                status,
                error,
                delivered,
            );
            if delivered || status.is_some_and(|s| policy.final_statuses.contains(&s)) {
                return;
            }
            let Some(wait) = policy.delays.get(attempt as usize - 1) else {
                tracing::warn!(url = %delivery.url, attempt, "webhook delivery abandoned");
                return;
            };
            tokio::time::sleep(*wait).await;
            attempt += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        url: &str,
        body: String,
        headers: Vec<(String, String)>,
        attempt: u32,
        status: Option<u16>,
        error: Option<String>,
        delivered: bool,
    ) {
        let mut log = lock(&self.log);
        log.seq += 1;
        let seq = log.seq;
        log.attempts.push(DeliveryAttempt {
            seq,
            url: url.to_string(),
            attempt,
            status,
            error,
            delivered,
            at: self
                .clock
                .now()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            body,
            headers,
        });
    }
}
