//! The template and the code agree: the tables, indexes, TTL attribute, queues and environment
//! variables the code expects are the ones the template creates.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::KeyType;
use hubspot_qbo_core::store::schema;
use integration_tests::Deployed;

#[tokio::test]
async fn every_function_reads_a_complete_configuration_from_the_template() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let tables: BTreeSet<String> = deployed
        .manifest
        .tables
        .values()
        .map(|t| t.name.clone())
        .collect();
    let queue_urls: BTreeSet<String> = deployed
        .manifest
        .queues
        .values()
        .map(|q| q.url.clone())
        .collect();
    for logical_id in deployed.manifest.functions.keys() {
        let config = deployed.config_of(logical_id)?;
        for table in [
            &config.tables.connections,
            &config.tables.ledger,
            &config.tables.action_runs,
        ] {
            assert!(
                tables.contains(table),
                "{logical_id}: {table} is not a table of the stack"
            );
        }
        for queue in [
            &config.queues.sync,
            &config.queues.poll,
            &config.queues.actions,
        ] {
            assert!(
                queue_urls.contains(queue),
                "{logical_id}: {queue} is not a queue of the stack"
            );
        }
        assert_eq!(config.hubspot.app_id, "1000001");
        assert_eq!(
            (
                config.limits.qbo_requests_per_minute,
                config.limits.qbo_batches_per_minute,
                config.limits.hubspot_requests_per_10s,
                config.limits.hubspot_searches_per_second
            ),
            (500, 40, 110, 5),
            "{logical_id}: the providers' limits come from the template"
        );
        assert_eq!(
            config.aws_timeouts,
            hubspot_qbo_core::config::AwsTimeouts::default(),
            "{logical_id}: the AWS call bounds come from the template"
        );
        let key = deployed
            .manifest
            .resources
            .get("TokenKey")
            .cloned()
            .flatten();
        assert_eq!(
            Some(&config.token_key_id),
            key.as_ref(),
            "{logical_id} seals tokens with the stack's key"
        );
    }
    deployed.stop().await
}

#[tokio::test]
async fn tables_have_the_keys_index_and_ttl_the_store_uses() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let dynamodb = deployed.dynamodb();
    assert_eq!(deployed.manifest.tables.len(), 3);
    for (logical_id, table) in &deployed.manifest.tables {
        let description = dynamodb
            .describe_table()
            .table_name(&table.name)
            .send()
            .await?;
        let description = description.table.expect("table description");
        let keys: Vec<(String, KeyType)> = description
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name().to_owned(), k.key_type().clone()))
            .collect();
        assert_eq!(
            keys,
            [
                (schema::PK.to_owned(), KeyType::Hash),
                (schema::SK.to_owned(), KeyType::Range)
            ],
            "{logical_id}"
        );
        let index = description
            .global_secondary_indexes()
            .iter()
            .find(|i| i.index_name() == Some(schema::GSI1))
            .unwrap_or_else(|| panic!("{logical_id} has no index {}", schema::GSI1));
        let index_keys: Vec<&str> = index
            .key_schema()
            .iter()
            .map(|k| k.attribute_name())
            .collect();
        assert_eq!(
            index_keys,
            [schema::GSI1_PK, schema::GSI1_SK],
            "{logical_id}"
        );
        assert_eq!(
            table.ttl_attribute.as_deref(),
            Some(schema::EXPIRES_AT),
            "{logical_id} TTL attribute"
        );
    }
    deployed.stop().await
}

#[tokio::test]
async fn functions_triggers_and_queues_are_wired_as_the_code_expects() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let manifest = &deployed.manifest;

    // One function per crate under functions/, and the other way round.
    let crates: BTreeSet<String> =
        std::fs::read_dir(local_stack::paths::repo_root().join("functions"))?
            .filter_map(|entry| {
                entry
                    .ok()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
            })
            .collect();
    let binaries: BTreeSet<String> = manifest
        .functions
        .values()
        .map(|f| f.binary.clone())
        .collect();
    assert_eq!(crates, binaries);
    assert_eq!(binaries.len(), 12);

    let sync = manifest.queue("SyncQueue")?;
    assert!(
        sync.fifo,
        "the sync queue keeps each connection's changes in order"
    );
    let redrive = sync
        .redrive
        .as_ref()
        .expect("the sync queue has a dead-letter queue");
    let (dlq, dlq_info) = manifest
        .queue_by_arn(&redrive.dead_letter_arn)
        .expect("DLQ in the stack");
    assert_eq!(dlq, "SyncDeadLetterQueue");
    assert!(dlq_info.fifo);

    // Only messages that used up their own attempts are parked; skips behind a failing message
    // of the same group must never reach the redrive limit.
    assert!(
        redrive.max_receive_count > hubspot_qbo_core::queue::batch::SAFE_MAX_RECEIVE_COUNT,
        "sync maxReceiveCount {}",
        redrive.max_receive_count
    );
    let nudge_redrive = manifest
        .queue("PollQueue")?
        .redrive
        .clone()
        .expect("the nudge queue has a dead-letter queue");
    assert!(
        nudge_redrive.max_receive_count > hubspot_qbo_core::queue::batch::DEFAULT_MAX_ATTEMPTS,
        "nudge maxReceiveCount {}",
        nudge_redrive.max_receive_count
    );

    let object_sync = manifest.function("ObjectSyncFunction")?;
    assert_eq!(object_sync.queues.len(), 1);
    assert_eq!(object_sync.queues[0].queue, "SyncQueue");
    assert!(object_sync.queues[0].report_batch_item_failures);
    assert!(
        sync.visibility_timeout as u64 >= 6 * object_sync.timeout,
        "visibility timeout >= 6x the function timeout"
    );

    let poll = manifest.function("ScheduledPollFunction")?;
    assert_eq!(poll.schedules, ["rate(1 minute)"]);
    assert_eq!(poll.queues[0].queue, "PollQueue");
    assert!(poll.queues[0].report_batch_item_failures);
    let nudges = manifest.queue("PollQueue")?;
    assert!(nudges.visibility_timeout as u64 >= 6 * poll.timeout);

    // Deferred workflow actions: a standard queue with a dead-letter queue above the
    // worker's own attempts, and actions that answer before they time out.
    let actions = manifest.queue("ActionQueue")?;
    assert!(!actions.fifo);
    let action_redrive = actions
        .redrive
        .clone()
        .expect("the action queue has a dead-letter queue");
    assert!(
        action_redrive.max_receive_count > hubspot_qbo_core::actions::service::DEFERRED_ATTEMPTS,
        "action maxReceiveCount {}",
        action_redrive.max_receive_count
    );
    let worker = manifest.function("ActionWorkerFunction")?;
    assert_eq!(worker.queues.len(), 1);
    assert_eq!(worker.queues[0].queue, "ActionQueue");
    assert!(worker.queues[0].report_batch_item_failures);
    assert!(actions.visibility_timeout as u64 >= 6 * worker.timeout);

    for (logical_id, function) in &manifest.functions {
        let is_action = function.binary.starts_with("action-create-");
        let is_http =
            ["oauth-install", "admin", "webhooks"].contains(&function.binary.as_str()) || is_action;
        assert_eq!(function.url.is_some(), is_http, "{logical_id} function URL");
        // The admin function streams (its CSV export outgrows a buffered answer's 6 MB).
        if let Some(url) = &function.url {
            let streamed = function.binary == "admin";
            let mode = if streamed {
                "RESPONSE_STREAM"
            } else {
                "BUFFERED"
            };
            assert_eq!(url.invoke_mode, mode, "{logical_id} invoke mode");
        }
        if function.binary == "webhooks" {
            let config = deployed.config_of(logical_id)?;
            // QuickBooks waits 3 seconds; the function answers within 2.5, and must not be cut
            // off before that.
            assert!(function.timeout >= 3, "{logical_id} timeout");
            assert_eq!(config.webhook_nudge_window, Duration::from_secs(3));
            assert_eq!(config.webhook_public_url, None);
            assert!(function.queues.is_empty() && function.schedules.is_empty());
        }
        if is_action {
            let config = deployed.config_of(logical_id)?;
            assert!(
                config.action_answer_within.as_secs() + 5 <= function.timeout,
                "{logical_id} answers BLOCK before it times out"
            );
        }
    }
    deployed.stop().await
}

#[tokio::test]
async fn with_webhooks_on_the_schedule_relaxes_to_its_own_setting() -> anyhow::Result<()> {
    let deployed = Deployed::start_with(&[
        ("WebhooksEnabled", "true"),
        ("PollScheduleWithWebhooks", "rate(20 minutes)"),
        ("WebhookNudgeSeconds", "5"),
    ])
    .await?;
    let poll = deployed.manifest.function("ScheduledPollFunction")?;
    assert_eq!(poll.schedules, ["rate(20 minutes)"]);
    let config = deployed.config_of("WebhooksFunction")?;
    assert_eq!(config.webhook_nudge_window, Duration::from_secs(5));
    deployed.stop().await
}

#[tokio::test]
async fn the_tables_and_the_token_key_outlive_the_stack() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let manifest = &deployed.manifest;
    assert_eq!(manifest.tables.len(), 3);
    for (logical_id, table) in &manifest.tables {
        assert!(
            manifest.retained.contains(logical_id),
            "{logical_id} is kept on stack deletion"
        );
        assert!(
            table.deletion_protection,
            "{logical_id} deletion protection"
        );
        assert!(
            table.point_in_time_recovery,
            "{logical_id} point-in-time recovery"
        );
    }
    assert!(
        manifest.retained.iter().any(|r| r == "TokenKey"),
        "the key that opens the tokens is kept: {:?}",
        manifest.retained
    );
    deployed.stop().await
}
