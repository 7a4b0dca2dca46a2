//! The triggers the template declares, played locally: function URLs, schedules and SQS event
//! sources (with partial batch responses), as Lambda would drive them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::lambda::{FunctionHost, Invocation};
use crate::manifest::{QueueInfo, QueueTrigger};

/// Parses `rate(N unit)`; `cron(...)` schedules are not played locally.
pub fn schedule_period(expression: &str) -> anyhow::Result<Duration> {
    let inner = expression
        .strip_prefix("rate(")
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(|| {
            anyhow::anyhow!("only rate(...) schedules run locally, not {expression:?}")
        })?;
    let (count, unit) = inner
        .trim()
        .split_once(' ')
        .ok_or_else(|| anyhow::anyhow!("bad rate {expression:?}"))?;
    let count: u64 = count.parse()?;
    let seconds = match unit.trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        other => anyhow::bail!("unknown rate unit {other:?}"),
    };
    Ok(Duration::from_secs(count * seconds))
}

/// The EventBridge event a schedule delivers.
pub fn scheduled_event(rule_arn: &str) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": now_rfc3339(),
        "region": "us-east-1",
        "resources": [rule_arn],
        "detail": {}
    })
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Invokes `host` every `period` until `stop` fires.
pub async fn run_schedule(
    host: Arc<FunctionHost>,
    rule: String,
    period: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                match host.invoke(&scheduled_event(&rule)).await {
                    Ok(Invocation::Response(_) | Invocation::Streamed { .. }) => tracing::info!(function = %host.logical_id, "scheduled run finished"),
                    Ok(Invocation::Error { error_type, error_message }) => {
                        tracing::warn!(function = %host.logical_id, %error_type, %error_message, "scheduled run failed")
                    }
                    Err(e) => tracing::warn!(function = %host.logical_id, error = %e, "scheduled run did not finish"),
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// Polls a queue and hands its messages to `host` in batches, deleting what the function
/// processed: everything on success, all but the reported `batchItemFailures` with
/// `ReportBatchItemFailures`, nothing when the invocation fails.
pub struct SqsPoller {
    pub host: Arc<FunctionHost>,
    pub sqs: aws_sdk_sqs::Client,
    pub queue: QueueInfo,
    pub trigger: QueueTrigger,
    /// Locally, a failed message may come back sooner than the queue's visibility timeout.
    pub retry_after: Option<Duration>,
    /// This share of processed messages is delivered again instead of deleted.
    pub duplicate_deliveries: f64,
}

/// Whether a processed message is delivered again: decided by its receipt, so each delivery
/// draws anew.
fn deliver_again(message: &Message, share: f64) -> bool {
    use std::hash::{Hash, Hasher};
    if share <= 0.0 {
        return false;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    message
        .receipt_handle()
        .unwrap_or_default()
        .hash(&mut hasher);
    (hasher.finish() % 10_000) as f64 / 10_000.0 < share
}

impl SqsPoller {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                polled = self.poll_once() => {
                    if let Err(e) = polled {
                        tracing::warn!(function = %self.host.logical_id, error = %e, "SQS poll failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }

    /// One receive-invoke-delete round; returns how many messages it received.
    pub async fn poll_once(&self) -> anyhow::Result<usize> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue.url)
            .max_number_of_messages(self.trigger.batch_size.clamp(1, 10))
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(0);
        }
        let event =
            json!({ "Records": messages.iter().map(|m| self.record(m)).collect::<Vec<_>>() });
        let done: Vec<&Message> = match self.host.invoke(&event).await {
            Ok(Invocation::Response(response)) if self.trigger.report_batch_item_failures => {
                match serde_json::from_value::<SqsBatchResponse>(response) {
                    Ok(response) => {
                        let failed: Vec<&str> = response
                            .batch_item_failures
                            .iter()
                            .map(|f| f.item_identifier.as_str())
                            .collect();
                        messages
                            .iter()
                            .filter(|m| !failed.contains(&m.message_id().unwrap_or_default()))
                            .collect()
                    }
                    // Lambda treats an unreadable batch response as a failure of the whole batch.
                    Err(_) => Vec::new(),
                }
            }
            Ok(Invocation::Response(_) | Invocation::Streamed { .. }) => messages.iter().collect(),
            Ok(Invocation::Error {
                error_type,
                error_message,
            }) => {
                tracing::warn!(function = %self.host.logical_id, %error_type, %error_message, "batch failed");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(function = %self.host.logical_id, error = %e, "batch did not finish");
                Vec::new()
            }
        };
        let (again, done): (Vec<&Message>, Vec<&Message>) = done
            .into_iter()
            .partition(|m| deliver_again(m, self.duplicate_deliveries));
        self.delete(&done).await?;
        let failed: Vec<&Message> = messages
            .iter()
            .filter(|m| !done.iter().any(|d| d.message_id == m.message_id))
            .filter(|m| !again.iter().any(|d| d.message_id == m.message_id))
            .collect();
        self.expedite_retry(&failed).await?;
        self.redeliver(&again).await?;
        Ok(messages.len())
    }

    fn record(&self, message: &Message) -> Value {
        let attributes: HashMap<String, String> = message
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let message_attributes: HashMap<String, Value> = message
            .message_attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| {
                        (k.clone(), json!({"stringValue": v.string_value(), "dataType": v.data_type(), "stringListValues": [], "binaryListValues": []}))
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "messageId": message.message_id(),
            "receiptHandle": message.receipt_handle(),
            "body": message.body(),
            "attributes": attributes,
            "messageAttributes": message_attributes,
            "md5OfBody": message.md5_of_body(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue.arn,
            "awsRegion": "us-east-1",
        })
    }

    async fn delete(&self, messages: &[&Message]) -> anyhow::Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.sqs
            .delete_message_batch()
            .queue_url(&self.queue.url)
            .set_entries(Some(entries))
            .send()
            .await?;
        Ok(())
    }

    /// A processed message made visible again at once: a duplicate delivery.
    async fn redeliver(&self, messages: &[&Message]) -> anyhow::Result<()> {
        for message in messages {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.queue.url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .visibility_timeout(0)
                .send()
                .await?;
        }
        Ok(())
    }

    async fn expedite_retry(&self, messages: &[&Message]) -> anyhow::Result<()> {
        let Some(after) = self.retry_after else {
            return Ok(());
        };
        for message in messages {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.queue.url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .visibility_timeout(after.as_secs() as i32)
                .send()
                .await?;
        }
        Ok(())
    }
}

/// Serves a function URL: each HTTP request becomes a Lambda function URL event (payload format
/// 2.0) and the function's answer becomes the HTTP response.
pub fn function_url_router(host: Arc<FunctionHost>) -> axum::Router {
    axum::Router::new().fallback(forward).with_state(host)
}

async fn forward(
    State(host): State<Arc<FunctionHost>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let event = function_url_event(&method, &uri, &headers, &body);
    match host.invoke(&event).await {
        Ok(Invocation::Response(response)) => http_response(response),
        Ok(Invocation::Streamed { prelude, body }) => {
            let Some(receiver) = body.take() else {
                return StatusCode::BAD_GATEWAY.into_response();
            };
            let stream = futures::stream::unfold(receiver, |mut receiver| async move {
                receiver
                    .recv()
                    .await
                    .map(|chunk| (Ok::<_, std::io::Error>(chunk), receiver))
            });
            with_body(&prelude, Body::from_stream(stream))
        }
        Ok(Invocation::Error {
            error_type,
            error_message,
        }) => {
            tracing::warn!(function = %host.logical_id, %error_type, %error_message, "function URL invocation failed");
            (StatusCode::BAD_GATEWAY, "Internal Server Error").into_response()
        }
        Err(e) => (StatusCode::GATEWAY_TIMEOUT, e.to_string()).into_response(),
    }
}

fn function_url_event(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Value {
    let mut joined: HashMap<String, String> = HashMap::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        joined
            .entry(name.as_str().to_owned())
            .and_modify(|v| *v = format!("{v},{value}"))
            .or_insert(value);
    }
    // Function URLs are HTTPS and say so; this local one is plain HTTP.
    joined
        .entry("x-forwarded-proto".to_owned())
        .or_insert_with(|| "http".to_owned());
    let query = uri.query().unwrap_or_default();
    let mut parameters: HashMap<String, String> = HashMap::new();
    for (key, value) in form_pairs(query) {
        parameters
            .entry(key)
            .and_modify(|v| *v = format!("{v},{value}"))
            .or_insert(value);
    }
    let (body, is_base64) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let now = time::OffsetDateTime::now_utc();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": uri.path(),
        "rawQueryString": query,
        "cookies": cookies,
        "headers": joined,
        "queryStringParameters": parameters,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": joined.get("host").cloned().unwrap_or_default(),
            "domainPrefix": "local",
            "http": {
                "method": method.as_str(),
                "path": uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": joined.get("user-agent").cloned().unwrap_or_default()
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now_rfc3339(),
            "timeEpoch": now.unix_timestamp() * 1000
        },
        "body": body,
        "isBase64Encoded": is_base64
    })
}

fn form_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// Turns a function URL response (payload format 2.0) into an HTTP response.
fn http_response(response: Value) -> Response {
    let body = response
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let body = if response
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_default()
    } else {
        body.as_bytes().to_vec()
    };
    with_body(&response, Body::from(body))
}

/// An HTTP response of a function URL answer's status, headers and cookies, and `body`.
fn with_body(response: &Value, body: Body) -> Response {
    let status = response
        .get("statusCode")
        .and_then(Value::as_u64)
        .unwrap_or(200) as u16;
    let mut builder = Response::builder().status(status);
    if let Some(headers) = builder.headers_mut() {
        if let Some(map) = response.get("headers").and_then(Value::as_object) {
            for (name, value) in map {
                if let (Ok(name), Some(Ok(value))) = (
                    HeaderName::try_from(name.as_str()),
                    value.as_str().map(HeaderValue::from_str),
                ) {
                    headers.append(name, value);
                }
            }
        }
        if let Some(map) = response.get("multiValueHeaders").and_then(Value::as_object) {
            for (name, values) in map {
                for value in values
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if let (Ok(name), Ok(value)) = (
                        HeaderName::try_from(name.as_str()),
                        HeaderValue::from_str(value),
                    ) {
                        if !headers.get_all(&name).iter().any(|v| v == value) {
                            headers.append(name, value);
                        }
                    }
                }
            }
        }
        for cookie in response
            .get("cookies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if let Ok(value) = HeaderValue::from_str(cookie) {
                headers.append("set-cookie", value);
            }
        }
    }
    builder
        .body(body)
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}
