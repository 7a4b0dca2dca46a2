//! Storage-port contract, run against the DynamoDB adapter on the template's tables (through the
//! local AWS endpoint) and against the in-memory adapter used by unit tests, so both keep the
//! same semantics.

use std::sync::Arc;

use hubspot_qbo_core::runtime::Services;
use hubspot_qbo_core::store::memory::MemoryStore;
use hubspot_qbo_core::store::{
    CasOutcome, ClaimOutcome, Item, ItemKey, LeaseOutcome, Query, Store, StoreError, Table,
    TransactOutcome, TransactWrite,
};
use integration_tests::Deployed;
use serde_json::json;

const NOW: i64 = 1_900_000_000;

fn item(pk: &str, sk: &str, value: serde_json::Value) -> Item {
    Item::from_value(ItemKey::new(pk, sk), &value).expect("object document")
}

async fn claims_are_exclusive(store: &dyn Store) {
    let key = ItemKey::new("claim#invoice-42", "run");
    let first = store
        .claim(
            Table::ActionRuns,
            item(&key.pk, &key.sk, json!({"by": "first"})),
            NOW,
        )
        .await
        .unwrap();
    let second = store
        .claim(
            Table::ActionRuns,
            item(&key.pk, &key.sk, json!({"by": "second"})),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(
        (first, second),
        (ClaimOutcome::Claimed, ClaimOutcome::AlreadyClaimed)
    );
    let stored = store
        .get(Table::ActionRuns, &key, NOW)
        .await
        .unwrap()
        .expect("claimed item");
    assert_eq!(stored.doc["by"], "first", "the losing claim wrote nothing");
}

async fn expired_items_read_as_absent_and_can_be_claimed_again(store: &dyn Store) {
    let key = ItemKey::new("state#abc", "oauth");
    let short_lived = item(&key.pk, &key.sk, json!({"n": 1})).expiring_at(NOW + 60);
    assert_eq!(
        store
            .claim(Table::Connections, short_lived, NOW)
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
    assert!(store
        .get(Table::Connections, &key, NOW + 59)
        .await
        .unwrap()
        .is_some());
    assert!(
        store
            .get(Table::Connections, &key, NOW + 60)
            .await
            .unwrap()
            .is_none(),
        "expired at its TTL"
    );
    let again = item(&key.pk, &key.sk, json!({"n": 2})).expiring_at(NOW + 600);
    assert_eq!(
        store
            .claim(Table::Connections, again, NOW + 61)
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
    let stored = store
        .get(Table::Connections, &key, NOW + 61)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.doc["n"].as_i64(), stored.expires_at),
        (Some(2), Some(NOW + 600))
    );
}

async fn leases_are_single_holder_until_they_expire(store: &dyn Store) {
    let key = ItemKey::new("connection#c1", "token#qbo");
    let now_ms = NOW * 1000;
    let a = store
        .acquire_lease(Table::Connections, &key, "lambda-a", now_ms, 10_000)
        .await
        .unwrap();
    assert!(matches!(a, LeaseOutcome::Acquired(ref l) if l.until_ms == now_ms + 10_000));
    let b = store
        .acquire_lease(Table::Connections, &key, "lambda-b", now_ms + 9_999, 10_000)
        .await
        .unwrap();
    assert_eq!(
        b,
        LeaseOutcome::Held(hubspot_qbo_core::store::Lease {
            owner: "lambda-a".into(),
            until_ms: now_ms + 10_000
        }),
        "a live lease cannot be taken"
    );
    assert!(
        !store
            .release_lease(Table::Connections, &key, "lambda-b")
            .await
            .unwrap(),
        "only the holder releases"
    );
    let b = store
        .acquire_lease(
            Table::Connections,
            &key,
            "lambda-b",
            now_ms + 10_000,
            10_000,
        )
        .await
        .unwrap();
    assert!(
        matches!(b, LeaseOutcome::Acquired(_)),
        "an expired lease can be taken over"
    );
    assert!(
        !store
            .release_lease(Table::Connections, &key, "lambda-a")
            .await
            .unwrap(),
        "the old holder lost it"
    );
    assert!(store
        .release_lease(Table::Connections, &key, "lambda-b")
        .await
        .unwrap());
    let c = store
        .acquire_lease(
            Table::Connections,
            &key,
            "lambda-c",
            now_ms + 10_001,
            10_000,
        )
        .await
        .unwrap();
    assert!(
        matches!(c, LeaseOutcome::Acquired(_)),
        "a released lease is free at once"
    );
}

async fn leases_leave_the_document_alone(store: &dyn Store) {
    let key = ItemKey::new("connection#c2", "token#hubspot");
    store
        .acquire_lease(
            Table::Connections,
            &ItemKey::new("connection#c2", "absent"),
            "me",
            NOW * 1000,
            5_000,
        )
        .await
        .unwrap();
    assert!(
        store
            .get(
                Table::Connections,
                &ItemKey::new("connection#c2", "absent"),
                NOW
            )
            .await
            .unwrap()
            .is_none(),
        "a lease creates no item"
    );
    store
        .put_versioned(
            Table::Connections,
            item(&key.pk, &key.sk, json!({"sealed": "abc"})),
            None,
        )
        .await
        .unwrap();
    store
        .acquire_lease(Table::Connections, &key, "me", NOW * 1000, 5_000)
        .await
        .unwrap();
    let stored = store
        .get(Table::Connections, &key, NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.doc.clone(), stored.version),
        (json!({"sealed": "abc"}).as_object().unwrap().clone(), 1)
    );
    let written = store
        .put_versioned(
            Table::Connections,
            item(&key.pk, &key.sk, json!({"sealed": "def"})),
            Some(1),
        )
        .await
        .unwrap();
    assert_eq!(written, CasOutcome::Written { version: 2 });
    let held = store
        .acquire_lease(Table::Connections, &key, "other", NOW * 1000 + 1, 5_000)
        .await
        .unwrap();
    assert!(
        matches!(held, LeaseOutcome::Held(_)),
        "a versioned write does not drop the lease"
    );
}

async fn compare_and_swap_rejects_stale_versions(store: &dyn Store) {
    let key = ItemKey::new("connection#c3", "settings");
    let create = store
        .put_versioned(
            Table::Connections,
            item(&key.pk, &key.sk, json!({"v": "one"})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(create, CasOutcome::Written { version: 1 });
    let recreate = store
        .put_versioned(
            Table::Connections,
            item(&key.pk, &key.sk, json!({"v": "dup"})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        recreate,
        CasOutcome::VersionConflict,
        "create-if-absent fails when present"
    );
    let update = store
        .put_versioned(
            Table::Connections,
            item(&key.pk, &key.sk, json!({"v": "two"})),
            Some(1),
        )
        .await
        .unwrap();
    assert_eq!(update, CasOutcome::Written { version: 2 });
    let stale = store
        .put_versioned(
            Table::Connections,
            item(&key.pk, &key.sk, json!({"v": "stale"})),
            Some(1),
        )
        .await
        .unwrap();
    assert_eq!(stale, CasOutcome::VersionConflict);
    let stored = store
        .get(Table::Connections, &key, NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.doc["v"].as_str(), stored.version), (Some("two"), 2));
    let missing = store
        .put_versioned(
            Table::Connections,
            item("connection#none", "settings", json!({})),
            Some(3),
        )
        .await
        .unwrap();
    assert_eq!(
        missing,
        CasOutcome::VersionConflict,
        "an expected version of an absent item conflicts"
    );
}

async fn queries_page_through_partitions_and_the_index(store: &dyn Store) {
    let items: Vec<Item> = (0..60)
        .map(|i| {
            item(
                "connection#c4",
                &format!("record#{i:03}"),
                json!({"i": i, "status": if i % 3 == 0 { "failing" } else { "synced" }}),
            )
            .with_index(
                if i % 3 == 0 {
                    "status#c4#failing"
                } else {
                    "status#c4#synced"
                },
                format!("2026-11-21T00:00:{i:02}"),
            )
        })
        .chain([item(
            "connection#c4",
            "cursor#contact",
            json!({"cursor": "x"}),
        )])
        .collect();
    store.batch_put(Table::Ledger, items).await.unwrap();

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .query(
                Table::Ledger,
                Query::partition("connection#c4")
                    .sort_prefix("record#")
                    .limit(25)
                    .after(cursor),
                NOW,
            )
            .await
            .unwrap();
        assert!(page.items.len() <= 25);
        seen.extend(page.items.iter().map(|i| i.doc["i"].as_i64().unwrap()));
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(
        seen,
        (0..60).collect::<Vec<_>>(),
        "all records, in sort-key order, once each"
    );

    let range = store
        .query(
            Table::Ledger,
            Query::partition("connection#c4")
                .sort_prefix("record#")
                .sort_between("record#010", "record#014"),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(
        range
            .items
            .iter()
            .map(|i| i.doc["i"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        (10..=14).collect::<Vec<_>>(),
        "a sort-key range includes both ends"
    );

    let failing = store
        .query(Table::Ledger, Query::index("status#c4#failing"), NOW)
        .await
        .unwrap();
    let ids: Vec<i64> = failing
        .items
        .iter()
        .map(|i| i.doc["i"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (0..60).filter(|i| i % 3 == 0).collect::<Vec<_>>());
    assert_eq!(
        failing.items[0].index.as_ref().unwrap().sk,
        "2026-11-21T00:00:00"
    );
}

async fn reserved_attribute_names_are_refused(store: &dyn Store) {
    let bad = item("connection#c5", "x", json!({"version": 7}));
    assert!(matches!(
        store.put(Table::Connections, bad).await,
        Err(StoreError::Encoding(_))
    ));
}

async fn takes_are_single_use(store: &dyn Store) {
    let key = ItemKey::new("oauth-state#n1", "state");
    store
        .put(
            Table::Connections,
            item(&key.pk, &key.sk, json!({"flow": "qbo"})).expiring_at(NOW + 600),
        )
        .await
        .unwrap();
    let first = store.take(Table::Connections, &key, NOW).await.unwrap();
    assert_eq!(first.map(|i| i.doc["flow"].clone()), Some(json!("qbo")));
    assert!(
        store
            .take(Table::Connections, &key, NOW)
            .await
            .unwrap()
            .is_none(),
        "a second take finds nothing"
    );
    assert!(store
        .get(Table::Connections, &key, NOW)
        .await
        .unwrap()
        .is_none());
    let stale = ItemKey::new("oauth-state#n2", "state");
    store
        .put(
            Table::Connections,
            item(&stale.pk, &stale.sk, json!({})).expiring_at(NOW - 1),
        )
        .await
        .unwrap();
    assert!(
        store
            .take(Table::Connections, &stale, NOW)
            .await
            .unwrap()
            .is_none(),
        "an expired item is not handed out"
    );
}

async fn transactions_write_everything_or_nothing(store: &dyn Store) {
    let owner = ItemKey::new("tx#realm-1", "owner");
    let record = ItemKey::new("tx#connection-1", "connection");
    let entry = ItemKey::new("tx#portal-1", "connection#1");
    let writes = |record_expected: Option<u64>, marker: &str| {
        vec![
            TransactWrite::PutVersioned {
                table: Table::Connections,
                item: item(&owner.pk, &owner.sk, json!({"by": marker})),
                expected: None,
            },
            TransactWrite::PutVersioned {
                table: Table::Connections,
                item: item(&record.pk, &record.sk, json!({"by": marker})),
                expected: record_expected,
            },
            TransactWrite::Put {
                table: Table::Connections,
                item: item(&entry.pk, &entry.sk, json!({"by": marker})),
            },
        ]
    };
    assert_eq!(
        store.transact(writes(None, "first")).await.unwrap(),
        TransactOutcome::Written
    );
    for key in [&owner, &record, &entry] {
        let stored = store.get(Table::Connections, key, NOW).await.unwrap();
        assert_eq!(
            stored.as_ref().map(|i| i.doc["by"].clone()),
            Some(json!("first"))
        );
    }
    let record_version = store
        .get(Table::Connections, &record, NOW)
        .await
        .unwrap()
        .map(|i| i.version);
    assert_eq!(record_version, Some(1));

    // The first write's condition fails (the owner exists): none of the three is made.
    assert_eq!(
        store.transact(writes(Some(1), "second")).await.unwrap(),
        TransactOutcome::Conflict { index: 0 }
    );
    for key in [&owner, &record, &entry] {
        let stored = store.get(Table::Connections, key, NOW).await.unwrap();
        assert_eq!(
            stored.map(|i| i.doc["by"].clone()),
            Some(json!("first")),
            "{key:?} was written by a cancelled transaction"
        );
    }

    // A versioned delete beside a versioned put, across tables.
    let run = ItemKey::new("tx#run-1", "run");
    store
        .put(Table::ActionRuns, item(&run.pk, &run.sk, json!({"n": 1})))
        .await
        .unwrap();
    let both = vec![
        TransactWrite::DeleteVersioned {
            table: Table::Connections,
            key: owner.clone(),
            expected: 1,
        },
        TransactWrite::PutVersioned {
            table: Table::ActionRuns,
            item: item(&run.pk, &run.sk, json!({"n": 2})),
            expected: Some(0),
        },
    ];
    assert_eq!(
        store.transact(both).await.unwrap(),
        TransactOutcome::Written
    );
    assert!(store
        .get(Table::Connections, &owner, NOW)
        .await
        .unwrap()
        .is_none());
    let run_item = store
        .get(Table::ActionRuns, &run, NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((run_item.doc["n"].clone(), run_item.version), (json!(2), 1));

    // A check on another item holds the write back until that item is as expected.
    let guard = ItemKey::new("tx#guard", "tokens");
    let guarded = |expected: Option<u64>| {
        vec![
            TransactWrite::Put {
                table: Table::Connections,
                item: item(&record.pk, &record.sk, json!({"by": "guarded"})),
            },
            TransactWrite::Check {
                table: Table::Connections,
                key: guard.clone(),
                expected,
            },
        ]
    };
    assert_eq!(
        store.transact(guarded(Some(1))).await.unwrap(),
        TransactOutcome::Conflict { index: 1 },
        "the guard is absent"
    );
    // The put before the failed check was undone with the transaction.
    let stored = store.get(Table::Connections, &record, NOW).await.unwrap();
    assert_eq!(stored.map(|i| i.doc["by"].clone()), Some(json!("first")));
    // Counters move with the transaction they are in, and only when it goes through.
    let counts = ItemKey::new("tx#counts", "counts");
    let counted = |expected: Option<u64>| {
        vec![
            TransactWrite::Add {
                table: Table::Connections,
                key: counts.clone(),
                deltas: vec![("synced".into(), 2), ("failing".into(), -1)],
            },
            TransactWrite::Check {
                table: Table::Connections,
                key: guard.clone(),
                expected,
            },
        ]
    };
    assert_eq!(
        store.transact(counted(Some(1))).await.unwrap(),
        TransactOutcome::Conflict { index: 1 }
    );
    assert!(store
        .get(Table::Connections, &counts, NOW)
        .await
        .unwrap()
        .is_none());
    for _ in 0..2 {
        assert_eq!(
            store.transact(counted(None)).await.unwrap(),
            TransactOutcome::Written
        );
    }
    let stored = store
        .get(Table::Connections, &counts, NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.doc["synced"].clone(), stored.doc["failing"].clone()),
        (json!(4), json!(-2))
    );
    assert_eq!(
        store.transact(guarded(None)).await.unwrap(),
        TransactOutcome::Written
    );
    let stored = store.get(Table::Connections, &record, NOW).await.unwrap();
    assert_eq!(stored.map(|i| i.doc["by"].clone()), Some(json!("guarded")));

    // The same key twice is refused before anything is sent.
    let twice = vec![
        TransactWrite::Put {
            table: Table::Connections,
            item: item("tx#dup", "a", json!({})),
        },
        TransactWrite::Put {
            table: Table::Connections,
            item: item("tx#dup", "a", json!({})),
        },
    ];
    assert!(matches!(
        store.transact(twice).await,
        Err(StoreError::Rejected(_))
    ));
}

async fn versioned_deletes_need_the_version(store: &dyn Store) {
    let key = ItemKey::new("vdel#1", "item");
    let written = store
        .put_versioned(Table::Connections, item(&key.pk, &key.sk, json!({})), None)
        .await
        .unwrap();
    assert_eq!(written, CasOutcome::Written { version: 1 });
    assert_eq!(
        store
            .delete_versioned(Table::Connections, &key, 7)
            .await
            .unwrap(),
        CasOutcome::VersionConflict
    );
    assert!(store
        .get(Table::Connections, &key, NOW)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store
            .delete_versioned(Table::Connections, &key, 1)
            .await
            .unwrap(),
        CasOutcome::Written { version: 1 }
    );
    assert!(store
        .get(Table::Connections, &key, NOW)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .delete_versioned(Table::Connections, &key, 1)
            .await
            .unwrap(),
        CasOutcome::VersionConflict,
        "an absent item has no version to match"
    );
}

async fn counters_count_and_expire(store: &dyn Store) {
    let key = ItemKey::new("attempts#m1", "attempts");
    let first = store
        .increment(Table::Ledger, &key, "attempts", 1, Some(NOW + 60))
        .await
        .unwrap();
    let second = store
        .increment(Table::Ledger, &key, "attempts", 2, Some(NOW + 60))
        .await
        .unwrap();
    assert_eq!((first, second), (1, 3));
    let stored = store.get(Table::Ledger, &key, NOW).await.unwrap().unwrap();
    assert_eq!(stored.doc["attempts"], json!(3));
    assert!(
        store
            .get(Table::Ledger, &key, NOW + 60)
            .await
            .unwrap()
            .is_none(),
        "the counter expires"
    );
}

async fn numbers_keep_every_digit(store: &dyn Store) {
    let key = ItemKey::new("money#1", "amounts");
    let doc: serde_json::Value = serde_json::from_str(
        r#"{"total": 123456789012345678.91, "lines": [{"amount": 0.1}, {"amount": 1e2}], "n": 7}"#,
    )
    .unwrap();
    store
        .put(Table::Ledger, item(&key.pk, &key.sk, doc))
        .await
        .unwrap();
    let stored = store.get(Table::Ledger, &key, NOW).await.unwrap().unwrap();
    assert_eq!(
        serde_json::to_string(&stored.doc["total"]).unwrap(),
        "123456789012345678.91",
        "20 digits, exactly"
    );
    let amounts: Vec<String> = stored.doc["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            serde_json::from_value::<hubspot_qbo_core::domain::Money>(line["amount"].clone())
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(amounts, ["0.1", "100"]);
    assert_eq!(stored.doc["n"].as_i64(), Some(7));
    let money: hubspot_qbo_core::domain::Money =
        serde_json::from_value(stored.doc["total"].clone()).unwrap();
    assert_eq!(money.to_string(), "123456789012345678.91");
}

async fn many_items_are_read_at_once(store: &dyn Store) {
    let keys: Vec<ItemKey> = (0..150)
        .map(|i| ItemKey::new("many#1", format!("item#{i:03}")))
        .collect();
    let items: Vec<Item> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(i, k)| item(&k.pk, &k.sk, json!({"n": i})))
        .collect();
    store.batch_put(Table::Ledger, items).await.unwrap();
    let expired = item("many#1", "item#000", json!({"n": 0})).expiring_at(NOW - 1);
    store.put(Table::Ledger, expired).await.unwrap();
    let found = store.get_many(Table::Ledger, &keys, NOW).await.unwrap();
    assert_eq!(found.len(), 100, "every third is absent, and one expired");
    assert!(found.iter().all(|i| i.doc["n"].as_u64().unwrap() % 3 != 0));
    assert!(store
        .get_many(Table::Ledger, &[], NOW)
        .await
        .unwrap()
        .is_empty());
    // An unconditional delete in a transaction.
    let doomed = keys[1].clone();
    assert_eq!(
        store
            .transact(vec![TransactWrite::Delete {
                table: Table::Ledger,
                key: doomed.clone(),
            }])
            .await
            .unwrap(),
        TransactOutcome::Written
    );
    assert!(store
        .get(Table::Ledger, &doomed, NOW)
        .await
        .unwrap()
        .is_none());
}

async fn contract(store: &dyn Store) {
    many_items_are_read_at_once(store).await;
    numbers_keep_every_digit(store).await;
    transactions_write_everything_or_nothing(store).await;
    versioned_deletes_need_the_version(store).await;
    counters_count_and_expire(store).await;
    claims_are_exclusive(store).await;
    expired_items_read_as_absent_and_can_be_claimed_again(store).await;
    leases_are_single_holder_until_they_expire(store).await;
    leases_leave_the_document_alone(store).await;
    compare_and_swap_rejects_stale_versions(store).await;
    queries_page_through_partitions_and_the_index(store).await;
    reserved_attribute_names_are_refused(store).await;
    takes_are_single_use(store).await;
}

#[tokio::test]
async fn dynamodb_adapter_keeps_the_store_contract() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let services = Services::new(deployed.config_of("ObjectSyncFunction")?, &deployed.sdk);
    contract(services.store.as_ref()).await;
    deployed.stop().await
}

#[tokio::test]
async fn memory_adapter_keeps_the_store_contract() {
    contract(&MemoryStore::new()).await;
}

#[tokio::test]
async fn concurrent_claims_have_exactly_one_winner() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let services = Services::new(
        deployed.config_of("ActionCreateInvoiceFunction")?,
        &deployed.sdk,
    );
    let store: Arc<dyn Store> = services.store.clone();
    let attempts = (0..20).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .claim(
                    Table::ActionRuns,
                    item("callback#777", "run", json!({ "attempt": n })),
                    NOW,
                )
                .await
        })
    });
    let mut winners = 0;
    for attempt in attempts {
        if attempt.await?? == ClaimOutcome::Claimed {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    deployed.stop().await
}

#[tokio::test]
async fn concurrent_increments_are_all_counted() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let services = Services::new(deployed.config_of("ObjectSyncFunction")?, &deployed.sdk);
    let key = ItemKey::new("attempts#concurrent", "attempts");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = services.store.clone();
            let key = key.clone();
            tokio::spawn(async move {
                store
                    .increment(Table::Ledger, &key, "attempts", 1, None)
                    .await
            })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await??);
    }
    seen.sort();
    assert_eq!(
        seen,
        (1..=20).collect::<Vec<i64>>(),
        "every increment saw its own value"
    );
    deployed.stop().await
}

#[tokio::test]
async fn concurrent_takes_hand_the_item_to_exactly_one_taker() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let services = Services::new(deployed.config_of("OAuthInstallFunction")?, &deployed.sdk);
    let store: Arc<dyn Store> = services.store.clone();
    let key = ItemKey::new("oauth-state#race", "state");
    store
        .put(Table::Connections, item(&key.pk, &key.sk, json!({"n": 1})))
        .await?;
    let takers = (0..10).map(|_| {
        let (store, key) = (store.clone(), key.clone());
        tokio::spawn(async move { store.take(Table::Connections, &key, NOW).await })
    });
    let mut winners = 0;
    for taker in takers {
        if taker.await??.is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    deployed.stop().await
}

#[tokio::test]
async fn a_missing_table_is_a_terminal_error() -> anyhow::Result<()> {
    let deployed = Deployed::start().await?;
    let mut config = deployed.config_of("ObjectSyncFunction")?;
    config.tables.ledger = "no-such-table".into();
    let services = Services::new(config, &deployed.sdk);
    let error = services
        .store
        .get(Table::Ledger, &ItemKey::new("a", "b"), NOW)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Rejected(_)), "{error:?}");
    assert!(!hubspot_qbo_core::Error::from(error).is_retryable());
    deployed.stop().await
}
