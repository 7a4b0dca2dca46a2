//! The DynamoDB adapter of the storage port. It reaches DynamoDB only through the AWS SDK, so the
//! same code runs in AWS and against a local AWS-compatible endpoint (`AWS_ENDPOINT_URL`).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, KeysAndAttributes, Put, PutRequest, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;

use super::schema::*;
use super::*;

/// Largest batch `BatchGetItem` accepts.
const BATCH_GET_LIMIT: usize = 100;
/// Largest batch `BatchWriteItem` accepts.
const BATCH_WRITE_LIMIT: usize = 25;
const BATCH_WRITE_ATTEMPTS: u32 = 8;

pub struct DynamoStore {
    client: Client,
    tables: Tables,
}

impl DynamoStore {
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables }
    }

    fn table(&self, table: Table) -> &str {
        table.name(&self.tables)
    }
}

type Attributes = HashMap<String, AttributeValue>;

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key_attributes(key: &ItemKey) -> Attributes {
    HashMap::from([(PK.to_owned(), s(&key.pk)), (SK.to_owned(), s(&key.sk))])
}

/// A JSON value as a DynamoDB attribute. Numbers keep their exact text (DynamoDB numbers have
/// 38 digits; nothing passes through `f64`).
fn to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(number) => AttributeValue::N(number.to_string()),
        Value::String(text) => AttributeValue::S(text.clone()),
        Value::Array(values) => AttributeValue::L(values.iter().map(to_attribute).collect()),
        Value::Object(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| (k.clone(), to_attribute(v)))
                .collect(),
        ),
    }
}

/// A DynamoDB attribute as JSON; sets become arrays, binaries base64 text.
fn from_attribute(attribute: AttributeValue) -> Result<Value, StoreError> {
    use base64::Engine;
    let number = |text: &str| {
        serde_json::from_str::<serde_json::Number>(text)
            .map(Value::Number)
            .map_err(|e| StoreError::Encoding(format!("number {text:?}: {e}")))
    };
    Ok(match attribute {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(b),
        AttributeValue::N(text) => number(&text)?,
        AttributeValue::S(text) => Value::String(text),
        AttributeValue::L(values) => Value::Array(
            values
                .into_iter()
                .map(from_attribute)
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::M(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| Ok((k, from_attribute(v)?)))
                .collect::<Result<_, StoreError>>()?,
        ),
        AttributeValue::Ss(values) => Value::Array(values.into_iter().map(Value::String).collect()),
        AttributeValue::Ns(values) => {
            Value::Array(values.iter().map(|v| number(v)).collect::<Result<_, _>>()?)
        }
        AttributeValue::B(blob) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(blob.as_ref()))
        }
        AttributeValue::Bs(blobs) => Value::Array(
            blobs
                .iter()
                .map(|b| {
                    Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
                })
                .collect(),
        ),
        other => {
            return Err(StoreError::Encoding(format!(
                "unsupported attribute {other:?}"
            )))
        }
    })
}

fn encode(item: &Item) -> Result<Attributes, StoreError> {
    check_document(&item.doc)?;
    let mut attributes: Attributes = item
        .doc
        .iter()
        .map(|(k, v)| (k.clone(), to_attribute(v)))
        .collect();
    attributes.extend(key_attributes(&item.key));
    if let Some(index) = &item.index {
        attributes.insert(GSI1_PK.to_owned(), s(&index.pk));
        attributes.insert(GSI1_SK.to_owned(), s(&index.sk));
    }
    if let Some(at) = item.expires_at {
        attributes.insert(EXPIRES_AT.to_owned(), n(at));
    }
    attributes.insert(VERSION.to_owned(), n(item.version));
    Ok(attributes)
}

fn take_string(attributes: &mut Attributes, name: &str) -> Option<String> {
    match attributes.remove(name) {
        Some(AttributeValue::S(value)) => Some(value),
        _ => None,
    }
}

fn take_number<T: std::str::FromStr>(attributes: &mut Attributes, name: &str) -> Option<T> {
    match attributes.remove(name) {
        Some(AttributeValue::N(value)) => value.parse().ok(),
        _ => None,
    }
}

fn decode(mut attributes: Attributes) -> Result<Item, StoreError> {
    let pk = take_string(&mut attributes, PK)
        .ok_or_else(|| StoreError::Encoding("item without pk".into()))?;
    let sk = take_string(&mut attributes, SK)
        .ok_or_else(|| StoreError::Encoding("item without sk".into()))?;
    let index = match (
        take_string(&mut attributes, GSI1_PK),
        take_string(&mut attributes, GSI1_SK),
    ) {
        (Some(pk), Some(sk)) => Some(IndexKey { pk, sk }),
        _ => None,
    };
    let expires_at = take_number(&mut attributes, EXPIRES_AT);
    let version = take_number(&mut attributes, VERSION).unwrap_or(0);
    attributes.remove(LEASE_OWNER);
    attributes.remove(LEASE_UNTIL_MS);
    let doc: Document = attributes
        .into_iter()
        .map(|(k, v)| Ok((k, from_attribute(v)?)))
        .collect::<Result<_, StoreError>>()?;
    Ok(Item {
        key: ItemKey { pk, sk },
        index,
        expires_at,
        version,
        doc,
    })
}

/// Classifies an SDK failure: throttling and service/transport trouble are retryable; requests
/// the service rejects (validation, missing table) are not.
fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    error: SdkError<E>,
) -> StoreError {
    let code = error.code().unwrap_or_default().to_owned();
    let message = format!(
        "{}: {}",
        if code.is_empty() { "error" } else { &code },
        error.message().unwrap_or("")
    );
    match &error {
        SdkError::ServiceError(_) => match code.as_str() {
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded" => StoreError::Throttled(message),
            "InternalServerError" | "ServiceUnavailable" | "TransactionConflictException" => {
                StoreError::Unavailable(message)
            }
            _ => StoreError::Rejected(message),
        },
        _ => StoreError::Unavailable(aws_smithy_error_chain(&error)),
    }
}

/// Transport errors keep the useful part in their sources.
fn aws_smithy_error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

fn is_put_condition_failure(error: &SdkError<PutItemError>) -> bool {
    matches!(error, SdkError::ServiceError(e) if e.err().is_conditional_check_failed_exception())
}

fn is_update_condition_failure(error: &SdkError<UpdateItemError>) -> bool {
    matches!(error, SdkError::ServiceError(e) if e.err().is_conditional_check_failed_exception())
}

fn is_delete_condition_failure(error: &SdkError<DeleteItemError>) -> bool {
    matches!(error, SdkError::ServiceError(e) if e.err().is_conditional_check_failed_exception())
}

/// The condition of a versioned write: absent, or stored at `expected`.
fn version_condition(expected: Option<u64>) -> (&'static str, Attributes, HashMap<String, String>) {
    match expected {
        None => (
            "attribute_not_exists(#pk)",
            HashMap::new(),
            HashMap::from([("#pk".to_owned(), PK.to_owned())]),
        ),
        Some(v) => (
            "#v = :expected",
            HashMap::from([(":expected".to_owned(), n(v))]),
            HashMap::from([("#v".to_owned(), VERSION.to_owned())]),
        ),
    }
}

fn built<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<T, StoreError> {
    result.map_err(|e| StoreError::Encoding(e.to_string()))
}

#[async_trait]
impl Store for DynamoStore {
    async fn get(
        &self,
        table: Table,
        key: &ItemKey,
        now_epoch_seconds: i64,
    ) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(self.table(table))
            .set_key(Some(key_attributes(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        match output.item {
            Some(attributes) => {
                let item = decode(attributes)?;
                Ok((!item.is_expired(now_epoch_seconds)).then_some(item))
            }
            None => Ok(None),
        }
    }

    async fn get_many(
        &self,
        table: Table,
        keys: &[ItemKey],
        now_epoch_seconds: i64,
    ) -> Result<Vec<Item>, StoreError> {
        let table_name = self.table(table).to_owned();
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_LIMIT) {
            let mut pending: Vec<Attributes> = chunk.iter().map(key_attributes).collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt == BATCH_WRITE_ATTEMPTS {
                    return Err(StoreError::Unprocessed(pending.len()));
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(25u64 << attempt.min(6))).await;
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Encoding(e.to_string()))?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&table_name, request)
                    .send()
                    .await
                    .map_err(classify)?;
                for attributes in output
                    .responses
                    .and_then(|mut r| r.remove(&table_name))
                    .unwrap_or_default()
                {
                    let item = decode(attributes)?;
                    if !item.is_expired(now_epoch_seconds) {
                        found.push(item);
                    }
                }
                pending = output
                    .unprocessed_keys
                    .and_then(|mut m| m.remove(&table_name))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                attempt += 1;
            }
        }
        Ok(found)
    }

    async fn put(&self, table: Table, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(self.table(table))
            .set_item(Some(encode(&item)?))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn claim(
        &self,
        table: Table,
        item: Item,
        now_epoch_seconds: i64,
    ) -> Result<ClaimOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(self.table(table))
            .set_item(Some(encode(&item)?))
            // An expired claim (TTL not yet swept) may be taken over.
            .condition_expression(
                "attribute_not_exists(#pk) OR (attribute_exists(#exp) AND #exp <= :now)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_values(":now", n(now_epoch_seconds))
            .send()
            .await;
        match result {
            Ok(_) => Ok(ClaimOutcome::Claimed),
            Err(e) if is_put_condition_failure(&e) => Ok(ClaimOutcome::AlreadyClaimed),
            Err(e) => Err(classify(e)),
        }
    }

    async fn put_versioned(
        &self,
        table: Table,
        mut item: Item,
        expected: Option<u64>,
    ) -> Result<CasOutcome, StoreError> {
        let version = expected.map_or(1, |v| v + 1);
        item.version = version;
        let (condition, values, names) = version_condition(expected);
        let request = self
            .client
            .put_item()
            .table_name(self.table(table))
            .set_item(Some(encode(&item)?))
            .condition_expression(condition)
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .set_expression_attribute_names(Some(names));
        match request.send().await {
            Ok(_) => Ok(CasOutcome::Written { version }),
            Err(e) if is_put_condition_failure(&e) => Ok(CasOutcome::VersionConflict),
            Err(e) => Err(classify(e)),
        }
    }

    async fn acquire_lease(
        &self,
        table: Table,
        key: &ItemKey,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<LeaseOutcome, StoreError> {
        let until_ms = now_ms.saturating_add(ttl_ms);
        let result = self
            .client
            .update_item()
            .table_name(self.table(table))
            .set_key(Some(key_attributes(&key.lease_key())))
            .update_expression("SET #owner = :owner, #until = :until")
            .condition_expression(
                "attribute_not_exists(#until) OR #until <= :now OR #owner = :owner",
            )
            .expression_attribute_names("#owner", LEASE_OWNER)
            .expression_attribute_names("#until", LEASE_UNTIL_MS)
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":until", n(until_ms))
            .expression_attribute_values(":now", n(now_ms))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(LeaseOutcome::Acquired(Lease {
                owner: owner.to_owned(),
                until_ms,
            })),
            Err(SdkError::ServiceError(failure))
                if failure.err().is_conditional_check_failed_exception() =>
            {
                let mut current = match failure.into_err() {
                    UpdateItemError::ConditionalCheckFailedException(e) => {
                        e.item.unwrap_or_default()
                    }
                    _ => HashMap::new(),
                };
                Ok(LeaseOutcome::Held(Lease {
                    owner: take_string(&mut current, LEASE_OWNER).unwrap_or_default(),
                    until_ms: take_number(&mut current, LEASE_UNTIL_MS).unwrap_or(until_ms),
                }))
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn release_lease(
        &self,
        table: Table,
        key: &ItemKey,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table(table))
            .set_key(Some(key_attributes(&key.lease_key())))
            .update_expression("REMOVE #owner, #until")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", LEASE_OWNER)
            .expression_attribute_names("#until", LEASE_UNTIL_MS)
            .expression_attribute_values(":owner", s(owner))
            .return_values(ReturnValue::None)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_update_condition_failure(&e) => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }

    async fn delete(&self, table: Table, key: &ItemKey) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(self.table(table))
            .set_key(Some(key_attributes(key)))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn delete_versioned(
        &self,
        table: Table,
        key: &ItemKey,
        expected: u64,
    ) -> Result<CasOutcome, StoreError> {
        let (condition, values, names) = version_condition(Some(expected));
        let result = self
            .client
            .delete_item()
            .table_name(self.table(table))
            .set_key(Some(key_attributes(key)))
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .set_expression_attribute_names(Some(names))
            .send()
            .await;
        match result {
            Ok(_) => Ok(CasOutcome::Written { version: expected }),
            Err(e) if is_delete_condition_failure(&e) => Ok(CasOutcome::VersionConflict),
            Err(e) => Err(classify(e)),
        }
    }

    async fn transact(&self, writes: Vec<TransactWrite>) -> Result<TransactOutcome, StoreError> {
        check_transaction(&writes)?;
        let mut items = Vec::with_capacity(writes.len());
        for write in writes {
            let item = match write {
                TransactWrite::PutVersioned {
                    table,
                    mut item,
                    expected,
                } => {
                    item.version = expected.map_or(1, |v| v + 1);
                    let (condition, values, names) = version_condition(expected);
                    let put = built(
                        Put::builder()
                            .table_name(self.table(table))
                            .set_item(Some(encode(&item)?))
                            .condition_expression(condition)
                            .set_expression_attribute_values((!values.is_empty()).then_some(values))
                            .set_expression_attribute_names(Some(names))
                            .build(),
                    )?;
                    TransactWriteItem::builder().put(put).build()
                }
                TransactWrite::Put { table, item } => {
                    let put = built(
                        Put::builder()
                            .table_name(self.table(table))
                            .set_item(Some(encode(&item)?))
                            .build(),
                    )?;
                    TransactWriteItem::builder().put(put).build()
                }
                TransactWrite::Delete { table, key } => {
                    let delete = built(
                        Delete::builder()
                            .table_name(self.table(table))
                            .set_key(Some(key_attributes(&key)))
                            .build(),
                    )?;
                    TransactWriteItem::builder().delete(delete).build()
                }
                TransactWrite::DeleteVersioned {
                    table,
                    key,
                    expected,
                } => {
                    let (condition, values, names) = version_condition(Some(expected));
                    let delete = built(
                        Delete::builder()
                            .table_name(self.table(table))
                            .set_key(Some(key_attributes(&key)))
                            .condition_expression(condition)
                            .set_expression_attribute_values(Some(values))
                            .set_expression_attribute_names(Some(names))
                            .build(),
                    )?;
                    TransactWriteItem::builder().delete(delete).build()
                }
                TransactWrite::Check {
                    table,
                    key,
                    expected,
                } => {
                    let (condition, values, names) = version_condition(expected);
                    let check = built(
                        ConditionCheck::builder()
                            .table_name(self.table(table))
                            .set_key(Some(key_attributes(&key)))
                            .condition_expression(condition)
                            .set_expression_attribute_values((!values.is_empty()).then_some(values))
                            .set_expression_attribute_names(Some(names))
                            .build(),
                    )?;
                    TransactWriteItem::builder().condition_check(check).build()
                }
                TransactWrite::Add { table, key, deltas } => {
                    let mut expression = Vec::new();
                    let mut names = HashMap::new();
                    let mut values = HashMap::new();
                    for (index, (attribute, by)) in deltas.iter().enumerate() {
                        expression.push(format!("#a{index} :v{index}"));
                        names.insert(format!("#a{index}"), attribute.clone());
                        values.insert(format!(":v{index}"), n(*by));
                    }
                    let update = built(
                        Update::builder()
                            .table_name(self.table(table))
                            .set_key(Some(key_attributes(&key)))
                            .update_expression(format!("ADD {}", expression.join(", ")))
                            .set_expression_attribute_names(Some(names))
                            .set_expression_attribute_values(Some(values))
                            .build(),
                    )?;
                    TransactWriteItem::builder().update(update).build()
                }
            };
            items.push(item);
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(TransactOutcome::Written),
            Err(SdkError::ServiceError(failure))
                if failure.err().is_transaction_canceled_exception() =>
            {
                let reasons = match failure.into_err() {
                    TransactWriteItemsError::TransactionCanceledException(e) => {
                        e.cancellation_reasons.unwrap_or_default()
                    }
                    _ => Vec::new(),
                };
                let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("")).collect();
                if let Some(index) = codes.iter().position(|c| *c == "ConditionalCheckFailed") {
                    return Ok(TransactOutcome::Conflict { index });
                }
                let message = format!("transaction cancelled: {codes:?}");
                Err(
                    if codes
                        .iter()
                        .any(|c| c.contains("Throughput") || *c == "ThrottlingError")
                    {
                        StoreError::Throttled(message)
                    } else if codes.contains(&"TransactionConflict") {
                        // Another transaction touched one of the items at the same moment.
                        StoreError::Unavailable(message)
                    } else {
                        StoreError::Rejected(message)
                    },
                )
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn increment(
        &self,
        table: Table,
        key: &ItemKey,
        attribute: &str,
        by: i64,
        expires_at: Option<i64>,
    ) -> Result<i64, StoreError> {
        let mut update = "ADD #a :by".to_owned();
        let mut request = self
            .client
            .update_item()
            .table_name(self.table(table))
            .set_key(Some(key_attributes(key)))
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":by", n(by))
            .return_values(ReturnValue::UpdatedNew);
        if let Some(at) = expires_at {
            update.push_str(" SET #exp = :exp");
            request = request
                .expression_attribute_names("#exp", EXPIRES_AT)
                .expression_attribute_values(":exp", n(at));
        }
        let output = request
            .update_expression(update)
            .send()
            .await
            .map_err(classify)?;
        let mut attributes = output.attributes.unwrap_or_default();
        take_number(&mut attributes, attribute)
            .ok_or_else(|| StoreError::Encoding(format!("{attribute} came back without a number")))
    }

    async fn take(
        &self,
        table: Table,
        key: &ItemKey,
        now_epoch_seconds: i64,
    ) -> Result<Option<Item>, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(self.table(table))
            .set_key(Some(key_attributes(key)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => match output.attributes {
                Some(attributes) => {
                    let item = decode(attributes)?;
                    Ok((!item.is_expired(now_epoch_seconds)).then_some(item))
                }
                None => Ok(None),
            },
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(None)
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn query(
        &self,
        table: Table,
        query: Query,
        now_epoch_seconds: i64,
    ) -> Result<Page, StoreError> {
        let (pk_name, sk_name) = if query.on_index {
            (GSI1_PK, GSI1_SK)
        } else {
            (PK, SK)
        };
        let mut condition = "#p = :p".to_owned();
        let mut request = self
            .client
            .query()
            .table_name(self.table(table))
            .expression_attribute_names("#p", pk_name)
            .expression_attribute_values(":p", s(&query.partition))
            .set_limit(query.limit.map(|l| l.min(i32::MAX as u32) as i32))
            .set_exclusive_start_key(
                query
                    .after
                    .map(|cursor| cursor.0.into_iter().map(|(k, v)| (k, s(v))).collect()),
            );
        // DynamoDB takes one condition on the sort key: a range (within the prefix) wins.
        if let Some((low, high)) = query.sort_between {
            condition.push_str(" AND #s BETWEEN :lo AND :hi");
            request = request
                .expression_attribute_names("#s", sk_name)
                .expression_attribute_values(":lo", s(low))
                .expression_attribute_values(":hi", s(high));
        } else if let Some(prefix) = query.sort_prefix {
            condition.push_str(" AND begins_with(#s, :s)");
            request = request
                .expression_attribute_names("#s", sk_name)
                .expression_attribute_values(":s", s(prefix));
        }
        if query.on_index {
            request = request.index_name(GSI1);
        } else {
            request = request.consistent_read(true);
        }
        let output = request
            .key_condition_expression(condition)
            .send()
            .await
            .map_err(classify)?;
        let items = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(decode)
            .filter(|item| !matches!(item, Ok(i) if i.is_expired(now_epoch_seconds)))
            .collect::<Result<Vec<_>, _>>()?;
        let next = output.last_evaluated_key.map(|key| {
            let mut pairs: Vec<(String, String)> = key
                .into_iter()
                .filter_map(|(name, value)| match value {
                    AttributeValue::S(text) => Some((name, text)),
                    _ => None,
                })
                .collect();
            pairs.sort();
            ItemKeyCursor(pairs)
        });
        Ok(Page { items, next })
    }

    async fn batch_put(&self, table: Table, items: Vec<Item>) -> Result<(), StoreError> {
        let table_name = self.table(table).to_owned();
        let mut requests = items
            .iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(encode(item)?))
                    .build()
                    .map_err(|e| StoreError::Encoding(e.to_string()))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        while !requests.is_empty() {
            let rest = requests.split_off(requests.len().min(BATCH_WRITE_LIMIT));
            let mut pending = std::mem::replace(&mut requests, rest);
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt == BATCH_WRITE_ATTEMPTS {
                    return Err(StoreError::Unprocessed(pending.len() + requests.len()));
                }
                if attempt > 0 {
                    // Unprocessed items mean the table is busy: back off before retrying them.
                    tokio::time::sleep(Duration::from_millis(25u64 << attempt.min(6))).await;
                }
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&table_name, pending)
                    .send()
                    .await
                    .map_err(classify)?;
                pending = output
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&table_name))
                    .unwrap_or_default();
                attempt += 1;
            }
        }
        Ok(())
    }
}
