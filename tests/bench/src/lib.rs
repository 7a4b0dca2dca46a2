//! Benchmarks of the sync on the local stack (the real function binaries, both sandboxes with
//! their rate limits on, the local AWS endpoint). Each scenario starts a fresh stack, fills one
//! side with records the other side does not have, runs the initial sync to the end and
//! measures:
//!
//! - **records/s** against the **bound**: the fastest any integration could go under the
//!   providers' limits (QuickBooks: requests and batch requests per minute per company; HubSpot:
//!   requests per 10 s per portal) when it makes only the minimum calls below;
//! - **API calls** against the **minimum** the batch sizes allow: the source read in its largest
//!   pages (QuickBooks 1,000, HubSpot search 200), one lookup per 100 match keys on the other side, writes in full batches (QuickBooks
//!   30, HubSpot 100) and, for records made in QuickBooks, the id written back to HubSpot;
//! - the 429s either sandbox answered (our own pacing should cause none);
//! - object-sync's peak resident memory (`VmHWM`) over the run, whose invocations carry up to ten
//!   messages of 90–100 records.
//!
//! The limits may be scaled (both the sandboxes' and the integration's, by the same factor), so
//! that the providers' limits, not this machine, bind; the bound is computed with the same factor.

use std::time::Instant;

use anyhow::Context;
use hubspot_qbo_core::domain::{Direction, ObjectKind, Provider};
use local_stack::harness::SyncStack;
use serde_json::{json, Value};

/// The providers' published limits, per company and per portal.
pub const QBO_REQUESTS_PER_MINUTE: f64 = 500.0;
pub const QBO_BATCHES_PER_MINUTE: f64 = 40.0;
pub const HUBSPOT_REQUESTS_PER_10_SECONDS: f64 = 110.0;
pub const HUBSPOT_SEARCHES_PER_SECOND: f64 = 5.0;
/// The memory a function should stay under to run at Lambda's 128 MB.
pub const RSS_BOUND_MIB: f64 = 64.0;

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub object: ObjectKind,
    pub from: Provider,
    pub records: usize,
    /// The QuickBooks limits are this times the real ones.
    pub qbo_scale: f64,
    /// The HubSpot limits are this times the real ones.
    pub hubspot_scale: f64,
}

/// The scenarios at a size: `default` (10,000 contacts and 2,000 products each way) or
/// `small` (the smoke run of the test suite).
pub fn scenarios(size: &str) -> anyhow::Result<Vec<Scenario>> {
    let (contacts, products, invoices) = match size {
        "default" => (10_000, 2_000, 5_000),
        "small" => (120, 60, 60),
        other => anyhow::bail!("unknown BENCH_SIZE {other:?} (default or small)"),
    };
    let scenario = |name: &str, object, from, records, qbo_scale, hubspot_scale| Scenario {
        name: name.to_owned(),
        object,
        from,
        records,
        qbo_scale,
        hubspot_scale,
    };
    Ok(vec![
        // HubSpot binds writes from QuickBooks: at 0.2 of its limit (22 requests per 10 s),
        // below what the local endpoint sustains.
        scenario(
            "contacts_qbo_to_hubspot",
            ObjectKind::Contact,
            Provider::Qbo,
            contacts,
            1.0,
            0.2,
        ),
        // QuickBooks' 40 batches a minute bind writes from HubSpot: four times that.
        scenario(
            "contacts_hubspot_to_qbo",
            ObjectKind::Contact,
            Provider::HubSpot,
            contacts,
            4.0,
            1.0,
        ),
        scenario(
            "products_qbo_to_hubspot",
            ObjectKind::Product,
            Provider::Qbo,
            products,
            1.0,
            0.2,
        ),
        scenario(
            "products_hubspot_to_qbo",
            ObjectKind::Product,
            Provider::HubSpot,
            products,
            4.0,
            1.0,
        ),
        // Invoices with their lines, payments and payment notes: HubSpot binds, at half its
        // limit (55 requests per 10 s).
        scenario(
            "invoices_qbo_to_hubspot",
            ObjectKind::Invoice,
            Provider::Qbo,
            invoices,
            1.0,
            0.5,
        ),
    ])
}

/// What an invoice sync from QuickBooks reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvoiceWork {
    pub invoices: usize,
    /// Their lines (one HubSpot line item each).
    pub lines: usize,
    /// QuickBooks payments applied to them (one HubSpot payment and one note each).
    pub payments: usize,
    /// The distinct customers (contacts) they are billed to.
    pub customers: usize,
}

/// The fewest calls an initial sync of `work` from QuickBooks can make: the invoices read in
/// pages of 1,000 and their payments in reads of 1,000; in HubSpot, 100 a call, the invoices
/// upserted, their lines upserted and associated, their contacts associated (and read once, for
/// their primary company), their payments upserted and associated, one note per payment, their
/// status set, and their deals read (1,000 a call). Association writes count 100 a call: HubSpot
/// publishes no larger batch for them.
pub fn minimum_invoice_calls(work: &InvoiceWork) -> Calls {
    let pages = |n: usize, page: usize| (n / page + 1) as f64;
    let full = |n: usize, batch: usize| n.div_ceil(batch) as f64;
    Calls {
        qbo: pages(work.invoices, 1000) + full(work.payments, 1000),
        qbo_batches: 0.0,
        hubspot: 4.0 * full(work.invoices, 100)
            + 2.0 * full(work.lines, 100)
            + 3.0 * full(work.payments, 100)
            + full(work.customers, 100)
            + full(work.invoices, 1000),
        hubspot_searches: 0.0,
    }
}

/// API calls per provider, and QuickBooks batch calls and HubSpot searches among them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Calls {
    pub qbo: f64,
    pub qbo_batches: f64,
    pub hubspot: f64,
    pub hubspot_searches: f64,
}

impl Calls {
    pub fn total(&self) -> f64 {
        self.qbo + self.hubspot
    }
}

/// The fewest calls an initial sync of `read` records (of which `written` are written to the
/// other side, `keyless` of them without a match key) can make, with the other side empty.
/// Products are looked up in HubSpot by SKU with search (100 values a call), contacts by email
/// with a batch read; records without a key are not looked up. HubSpot records are upserted by
/// the QuickBooks id, 100 a call.
pub fn minimum_calls(
    object: ObjectKind,
    from: Provider,
    two_way: bool,
    read: usize,
    written: usize,
    keyless: usize,
) -> Calls {
    let pages = |n: usize, page: usize| (n / page + 1) as f64;
    let full = |n: usize, batch: usize| n.div_ceil(batch) as f64;
    let keyed = written.saturating_sub(keyless);
    match from {
        Provider::Qbo => Calls {
            // Pages of 1,000 until one comes back short; the empty portal's one list page.
            qbo: pages(read, 1000),
            qbo_batches: 0.0,
            hubspot: if two_way { 1.0 } else { 0.0 } + 2.0 * full(keyed, 100) + full(keyless, 100),
            hubspot_searches: if object == ObjectKind::Product {
                full(keyed, 100)
            } else {
                0.0
            },
        },
        Provider::HubSpot => {
            let batches = full(written, 30);
            Calls {
                // The empty company's one query, lookups of 100 keys, full batches.
                qbo: if two_way { 1.0 } else { 0.0 } + full(written, 100) + batches,
                qbo_batches: batches,
                // Search pages of 200 (HubSpot's largest), then the QuickBooks ids written
                // back, 100 a call.
                hubspot: pages(read, 200) + full(written, 100),
                hubspot_searches: 0.0,
            }
        }
    }
}

/// The fastest records/s under the limits (times `qbo_scale`, `hubspot_scale`) for `calls`
/// made for `records` records. Each limit is `L` calls per rolling window `W`: `C` calls take at
/// least `(ceil(C / L) - 1) × W` (the first `L` at once, each further `L` a window later); the
/// slowest limit decides. `None` when every limit's calls fit in one window (no bound applies).
pub fn bound_records_per_second(
    calls: &Calls,
    records: usize,
    qbo_scale: f64,
    hubspot_scale: f64,
) -> Option<f64> {
    let limits = [
        (calls.qbo, QBO_REQUESTS_PER_MINUTE * qbo_scale, 60.0),
        (calls.qbo_batches, QBO_BATCHES_PER_MINUTE * qbo_scale, 60.0),
        (
            calls.hubspot,
            HUBSPOT_REQUESTS_PER_10_SECONDS * hubspot_scale,
            10.0,
        ),
        (
            calls.hubspot_searches,
            searches_per_second(hubspot_scale),
            1.0,
        ),
    ];
    let seconds = limits
        .iter()
        .map(|(needed, limit, window)| {
            ((needed / limit.floor().max(1.0)).ceil() - 1.0).max(0.0) * window
        })
        .fold(0.0, f64::max);
    (seconds > 0.0).then(|| records as f64 / seconds)
}

/// HubSpot's search limit at a scale (at least 2 a second: pacing cannot keep fewer).
fn searches_per_second(hubspot_scale: f64) -> f64 {
    (HUBSPOT_SEARCHES_PER_SECOND * hubspot_scale)
        .round()
        .max(2.0)
}

fn round(value: f64, places: i32) -> f64 {
    let factor = 10f64.powi(places);
    (value * factor).round() / factor
}

/// What a sandbox answered: API calls (its control API and OAuth left out), batch calls
/// (QuickBooks) or searches (HubSpot) among them, and 429s.
async fn api_calls(s: &SyncStack, sandbox: &str) -> anyhow::Result<(u64, u64, u64)> {
    let counters = s.counters(sandbox).await?;
    let mut calls = 0;
    let mut batches = 0;
    let mut throttled = 0;
    for (endpoint, counter) in &counters {
        if endpoint.contains("/_sandbox") || endpoint.contains("/oauth") {
            continue;
        }
        let count = counter["count"]
            .as_u64()
            .with_context(|| format!("no count for {endpoint}"))?;
        calls += count;
        if endpoint.ends_with("/batch") || endpoint.ends_with("/search") {
            batches += count;
        }
        throttled += counter["by_status"]["429"].as_u64().unwrap_or(0);
    }
    Ok((calls, batches, throttled))
}

/// Resets the peak memory figure of each process (`clear_refs` 5).
fn reset_peak_rss(pids: &[u32]) {
    for pid in pids {
        // A process that is gone has no figure to reset.
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
}

/// The largest `VmHWM` among the processes, in MiB.
fn peak_rss_mib(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .fold(0.0, f64::max)
        / 1024.0
}

/// One sync round to its end, measured.
struct Timed {
    seconds: f64,
    /// object-sync's peak resident memory, MiB.
    peak_rss: f64,
    measured: Calls,
    /// 429s answered by QuickBooks and HubSpot.
    throttled: (u64, u64),
}

async fn timed_sync(s: &SyncStack) -> anyhow::Result<Timed> {
    let before = (api_calls(s, &s.qbo).await?, api_calls(s, &s.hubspot).await?);
    let worker = s.stack.function("ObjectSyncFunction")?.clone();
    reset_peak_rss(&worker.pids());
    let started = Instant::now();
    s.sync().await?;
    let seconds = started.elapsed().as_secs_f64();
    let peak_rss = peak_rss_mib(&worker.pids());
    let after = (api_calls(s, &s.qbo).await?, api_calls(s, &s.hubspot).await?);
    Ok(Timed {
        seconds,
        peak_rss,
        measured: Calls {
            qbo: (after.0 .0 - before.0 .0) as f64,
            qbo_batches: (after.0 .1 - before.0 .1) as f64,
            hubspot: (after.1 .0 - before.1 .0) as f64,
            hubspot_searches: (after.1 .1 - before.1 .1) as f64,
        },
        throttled: (after.0 .2 - before.0 .2, after.1 .2 - before.1 .2),
    })
}

/// Runs one scenario on a fresh local stack and answers its figures.
pub async fn run(scenario: &Scenario) -> anyhow::Result<Value> {
    let qbo_scale = scenario.qbo_scale;
    let hubspot_scale = scenario.hubspot_scale;
    let hubspot_per_10s = (HUBSPOT_REQUESTS_PER_10_SECONDS * hubspot_scale).round() as u64;
    let searches = searches_per_second(hubspot_scale) as u64;
    let s = SyncStack::start_with(&format!("bench-{}", scenario.name), |o| {
        for (name, value) in [
            (
                "QboRequestsPerMinute",
                (QBO_REQUESTS_PER_MINUTE * qbo_scale).round() as u64,
            ),
            (
                "QboBatchesPerMinute",
                (QBO_BATCHES_PER_MINUTE * qbo_scale).round() as u64,
            ),
            ("HubSpotRequestsPer10Seconds", hubspot_per_10s),
            ("HubSpotSearchesPerSecond", searches),
        ] {
            o.parameters.insert(name.into(), value.to_string());
        }
    })
    .await?;
    let outcome = measure(&s, scenario, hubspot_per_10s, searches).await;
    s.stop().await?;
    outcome
}

async fn measure(
    s: &SyncStack,
    scenario: &Scenario,
    hubspot_per_10s: u64,
    searches: u64,
) -> anyhow::Result<Value> {
    let mut limits = s.control_get(&s.qbo, "/_sandbox/throttle").await?;
    limits["enabled"] = json!(true);
    limits["scale"] = json!(scenario.qbo_scale);
    s.control(&s.qbo, "/_sandbox/throttle", limits).await?;
    let mut limits = s.control_get(&s.hubspot, "/_sandbox/throttle").await?;
    limits["enabled"] = json!(true);
    limits["burst_max"] = json!(hubspot_per_10s);
    limits["search_per_second"] = json!(searches);
    s.control(&s.hubspot, "/_sandbox/throttle", limits).await?;

    let p = s.pair().await?;
    let n = scenario.records;
    if scenario.object == ObjectKind::Invoice {
        return measure_invoices(s, &p, scenario).await;
    }
    let settings = p
        .settings(scenario.object, |c| {
            if scenario.from == Provider::HubSpot {
                c.filters.hubspot_to_qbo.clear();
                if c.direction == Direction::QboToHubSpot {
                    c.direction = Direction::TwoWay;
                }
            }
        })
        .await?;
    let two_way = settings.direction == Direction::TwoWay;
    // Only this object is polled, so every call counted is its own.
    for other in ObjectKind::ALL
        .into_iter()
        .filter(|o| *o != scenario.object)
    {
        p.settings(other, |c| c.enabled = false).await?;
    }
    match (scenario.from, scenario.object) {
        (Provider::Qbo, ObjectKind::Contact) => p.qbo_generate(n, 0).await?,
        (Provider::Qbo, _) => p.qbo_generate(0, n).await?,
        (Provider::HubSpot, ObjectKind::Contact) => {
            let contacts = (0..n)
                .map(|i| json!({"email": format!("bench{i}@contacts.example"), "firstname": "Bench", "lastname": format!("Person {i}")}))
                .collect();
            p.hubspot_create_many("contacts", contacts).await?;
        }
        (Provider::HubSpot, _) => {
            let products = (0..n)
                .map(|i| json!({"name": format!("Bench product {i}"), "hs_sku": format!("BENCH-{i:05}"), "price": format!("{}.{:02}", 10 + i % 90, i % 100)}))
                .collect();
            p.hubspot_create_many("products", products).await?;
        }
    }
    // Records read, and (QuickBooks customers) those without an email.
    let (read, keyless) = match (scenario.from, scenario.object) {
        (Provider::Qbo, ObjectKind::Contact) => {
            let customers = p.qbo_all("Customer").await?;
            let keyless = customers
                .iter()
                .filter(|c| {
                    c["PrimaryEmailAddr"]["Address"]
                        .as_str()
                        .is_none_or(|e| e.trim().is_empty())
                })
                .count();
            (customers.len(), keyless)
        }
        (Provider::Qbo, _) => (p.qbo_all("Item").await?.len(), 0),
        (Provider::HubSpot, _) => (n, 0),
    };

    let Timed {
        seconds,
        peak_rss,
        measured,
        throttled,
    } = timed_sync(s).await?;

    let (synced, failing, excluded, pending) = p.counts(scenario.object).await?;
    anyhow::ensure!(
        // Every record made here syncs; of QuickBooks' own, those the sync leaves out (no SKU,
        // the sandbox's built-in items) are excluded with a reason.
        synced > 0
            && failing == 0
            && pending == 0
            && synced + excluded >= read
            && (scenario.from == Provider::Qbo || synced == read),
        "{}: {synced} synced, {failing} failing, {excluded} excluded, {pending} pending of {read}",
        scenario.name
    );
    let minimum = minimum_calls(
        scenario.object,
        scenario.from,
        two_way,
        read,
        synced,
        keyless,
    );
    figures(
        scenario,
        Figures {
            read,
            synced,
            excluded,
            keyless,
            seconds,
            measured,
            minimum,
            throttled,
            peak_rss,
        },
    )
}

/// Invoices from QuickBooks: the company's customers are synced first (the invoices' contacts),
/// then only invoices are polled and measured.
async fn measure_invoices(
    s: &SyncStack,
    p: &local_stack::harness::Pair<'_>,
    scenario: &Scenario,
) -> anyhow::Result<Value> {
    p.settings(ObjectKind::Product, |c| c.enabled = false)
        .await?;
    p.settings(ObjectKind::Invoice, |c| {
        c.enabled = false;
        c.filters.qbo_to_hubspot.clear();
    })
    .await?;
    p.qbo_generate_invoices(40, 20, scenario.records).await?;
    s.sync().await?;
    p.settings(ObjectKind::Contact, |c| c.enabled = false)
        .await?;
    p.settings(ObjectKind::Invoice, |c| c.enabled = true)
        .await?;
    let invoices = p.qbo_all("Invoice").await?;
    let payments = p.qbo_all("Payment").await?;
    let work = InvoiceWork {
        invoices: invoices.len(),
        lines: invoices
            .iter()
            .map(|i| {
                i["Line"].as_array().map_or(0, |l| {
                    l.iter()
                        .filter(|l| l["DetailType"] == "SalesItemLineDetail")
                        .count()
                })
            })
            .sum(),
        payments: payments.len(),
        customers: invoices
            .iter()
            .filter_map(|i| i["CustomerRef"]["value"].as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
    };

    let Timed {
        seconds,
        peak_rss,
        measured,
        throttled,
    } = timed_sync(s).await?;
    let (synced, failing, excluded, pending) = p.counts(ObjectKind::Invoice).await?;
    anyhow::ensure!(
        synced == work.invoices && failing == 0 && pending == 0,
        "{}: {synced} synced, {failing} failing, {excluded} excluded, {pending} pending of {}",
        scenario.name,
        work.invoices
    );
    let notes = p.hubspot_all("notes").await?.len();
    anyhow::ensure!(
        notes == work.payments,
        "{notes} notes for {} payments",
        work.payments
    );
    let minimum = minimum_invoice_calls(&work);
    figures(
        scenario,
        Figures {
            read: work.invoices,
            synced,
            excluded,
            keyless: 0,
            seconds,
            measured,
            minimum,
            throttled,
            peak_rss,
        },
    )
    .map(|mut value| {
        value["invoice_lines"] = json!(work.lines);
        value["invoice_payments"] = json!(work.payments);
        value
    })
}

/// What one scenario measured.
struct Figures {
    read: usize,
    synced: usize,
    excluded: usize,
    keyless: usize,
    seconds: f64,
    measured: Calls,
    minimum: Calls,
    throttled: (u64, u64),
    peak_rss: f64,
}

/// The workflow-action benchmark: how many executions are timed one after another, and how
/// many are each sent as ten concurrent copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionBench {
    pub timed: usize,
    pub repeated: usize,
    pub copies: usize,
}

/// HubSpot's patience is about 30 s; ours: an answer within this at the 95th percentile.
pub const ACTION_P95_BOUND_MS: f64 = 2000.0;

pub fn action_bench(size: &str) -> anyhow::Result<ActionBench> {
    let (timed, repeated) = match size {
        "default" => (60, 20),
        "small" => (4, 2),
        other => anyhow::bail!("unknown BENCH_SIZE {other:?} (default or small)"),
    };
    Ok(ActionBench {
        timed,
        repeated,
        copies: 10,
    })
}

/// The value at quantile `q` (0–1) of sorted `values`.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// "Create QuickBooks invoice" on deals of two lines, with the sandboxes' latency profile on
/// (50–300 ms a request): request → SUCCESS time of executions one after another, then
/// executions each sent as concurrent copies, counting the invoices made against the
/// executions.
pub async fn run_actions(bench: ActionBench) -> anyhow::Result<Value> {
    use local_stack::harness::{action_call, answered_call, record_id};
    let s = SyncStack::start("bench-actions").await?;
    let outcome = async {
        let p = s.pair().await?;
        // The records are made with the limits off (they are set up, not measured); the
        // measured calls run under them.
        let mut limits = Vec::new();
        for sandbox in [&s.qbo, &s.hubspot] {
            let mut throttle = s.control_get(sandbox, "/_sandbox/throttle").await?;
            limits.push((sandbox, throttle.clone()));
            throttle["enabled"] = json!(false);
            s.control(sandbox, "/_sandbox/throttle", throttle).await?;
        }
        p.settings(ObjectKind::Contact, |c| c.filters.hubspot_to_qbo.clear())
            .await?;
        for (name, sku, price) in [("Design", "DES-1", "150"), ("Hosting", "HOST-1", "19.99")] {
            p.qbo_create(
                "Item",
                json!({"Name": name, "Sku": sku, "Type": "Service", "UnitPrice": price,
                       "IncomeAccountRef": {"value": "6"}}),
            )
            .await?;
        }
        let contact = record_id(
            &p.hubspot_create(
                "contacts",
                json!({"firstname": "Ada", "lastname": "Lovelace", "email": "ada@bench.example"}),
            )
            .await?,
        );
        let lines = [
            json!({"name": "Design", "price": "150", "quantity": "2", "hs_sku": "DES-1"}),
            json!({"name": "Hosting", "price": "19.99", "quantity": "1", "hs_sku": "HOST-1"}),
        ];
        let total = bench.timed + bench.repeated;
        let mut deals = Vec::with_capacity(total);
        for n in 0..total {
            deals.push(
                p.hubspot_sale(
                    "deals",
                    json!({"dealname": format!("Bench {n}")}),
                    Some(&contact),
                    &lines,
                )
                .await?,
            );
        }
        for (sandbox, throttle) in limits {
            s.control(sandbox, "/_sandbox/throttle", throttle).await?;
            s.control(
                sandbox,
                "/_sandbox/latency",
                json!({"enabled": true, "min_ms": 50, "max_ms": 300}),
            )
            .await?;
        }
        let url = s.stack.url("ActionCreateInvoiceFunction")?.to_owned();
        let mut latencies = Vec::with_capacity(bench.timed);
        let mut failed = 0;
        for (n, deal) in deals[..bench.timed].iter().enumerate() {
            let body = action_call(&format!("bench-{n}"), p.portal, ("DEAL", deal), json!({}));
            let started = Instant::now();
            let (status, answer) = answered_call(&url, &body).await?;
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            if status != 200 || answer["outputFields"]["hs_execution_state"] != "SUCCESS" {
                failed += 1;
            }
        }
        latencies.sort_by(f64::total_cmp);
        let before = p.qbo_all("Invoice").await?.len();
        let mut differing = 0;
        for (n, deal) in deals[bench.timed..].iter().enumerate() {
            let body = action_call(
                &format!("bench-copies-{n}"),
                p.portal,
                ("DEAL", deal),
                json!({}),
            );
            let copies = (0..bench.copies).map(|_| answered_call(&url, &body));
            let answers = futures::future::try_join_all(copies).await?;
            differing += answers.iter().filter(|a| **a != answers[0]).count();
        }
        let made = p.qbo_all("Invoice").await?.len() - before;
        let p95 = quantile(&latencies, 0.95);
        Ok::<Value, anyhow::Error>(json!({
            "name": "action_create_invoice",
            "latency_profile_ms": [50, 300],
            "executions_timed": bench.timed,
            "executions_failed": failed,
            "latency_ms": {
                "p50": round(quantile(&latencies, 0.5), 0),
                "p95": round(p95, 0),
                "max": round(latencies.last().copied().unwrap_or(f64::NAN), 0),
                "bound_p95_ms": ACTION_P95_BOUND_MS,
                "ratio_to_bound": round(p95 / ACTION_P95_BOUND_MS, 3),
            },
            "repeated": {
                "executions": bench.repeated,
                "concurrent_copies_each": bench.copies,
                "documents_made": made,
                "duplicates": made as i64 - bench.repeated as i64,
                "bound_duplicates": 0,
                "answers_differing_from_the_first": differing,
            },
        }))
    }
    .await;
    s.stop().await?;
    outcome
}

/// Targets of change latency (edit on one side -> visible on the other), p95: with change
/// notifications, and as a multiple of the poll interval without them.
pub const WEBHOOK_LATENCY_P95_BOUND_S: f64 = 10.0;
pub const POLLING_LATENCY_P95_BOUND_INTERVALS: f64 = 1.5;

/// The change-latency benchmark's size: edits each way, and the poll interval of the
/// polling-only run.
#[derive(Debug, Clone, Copy)]
pub struct LatencyBench {
    pub edits: usize,
    pub poll_interval: std::time::Duration,
}

pub fn latency_bench(size: &str) -> anyhow::Result<LatencyBench> {
    let (edits, seconds) = match size {
        "default" => (12, 20),
        "small" => (2, 6),
        other => anyhow::bail!("unknown BENCH_SIZE {other:?} (default or small)"),
    };
    Ok(LatencyBench {
        edits,
        poll_interval: std::time::Duration::from_secs(seconds),
    })
}

fn latency_figures(mut seconds: Vec<f64>, bound: f64) -> Value {
    seconds.sort_by(f64::total_cmp);
    let p95 = quantile(&seconds, 0.95);
    json!({
        "edits": seconds.len(),
        "p50_s": round(quantile(&seconds, 0.5), 2),
        "p95_s": round(p95, 2),
        "max_s": round(seconds.last().copied().unwrap_or(f64::NAN), 2),
        "bound_p95_s": round(bound, 2),
        "ratio_to_bound": round(p95 / bound, 3),
    })
}

/// One linked contact, its phone edited `edits` times on each side in turn; each edit timed
/// until the other side shows it.
async fn edit_latencies(
    s: &SyncStack,
    edits: usize,
    spread: std::time::Duration,
    limit: std::time::Duration,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let p = s.pair().await?;
    p.settings(ObjectKind::Contact, |c| c.filters.hubspot_to_qbo.clear())
        .await?;
    let (linked, _) = p.contact_made_in_hubspot("Lat", limit).await?;
    let (mut to_qbo, mut to_hubspot) = (Vec::new(), Vec::new());
    // Each edit waits a different share of `spread` first (spread evenly, in a scrambled
    // order), so that edits land all over the poll's cycle instead of right after a tick.
    let pause = |n: usize, salt: usize| {
        let share = ((n * 2 + salt) * 7919 % 1000) as f64 / 1000.0;
        spread.mul_f64(share) + std::time::Duration::from_millis(500)
    };
    for n in 0..edits {
        tokio::time::sleep(pause(n, 0)).await;
        let phone = format!("555-1{n:03}");
        let took = p
            .phone_edited(&linked, Provider::HubSpot, &phone, limit)
            .await?;
        to_qbo.push(took.as_secs_f64());
        tokio::time::sleep(pause(n, 1)).await;
        let phone = format!("555-2{n:03}");
        let took = p
            .phone_edited(&linked, Provider::Qbo, &phone, limit)
            .await?;
        to_hubspot.push(took.as_secs_f64());
    }
    Ok((to_qbo, to_hubspot))
}

/// Change latency both ways, with the sandboxes' webhooks pointed at the function and no
/// schedule, then with no notifications and the schedule at `poll_interval`.
pub async fn run_latency(bench: LatencyBench) -> anyhow::Result<Value> {
    let limit = bench.poll_interval * 3 + std::time::Duration::from_secs(30);
    let s = SyncStack::start_with("bench-latency-webhooks", |o| o.webhooks = true).await?;
    let with = edit_latencies(&s, bench.edits, std::time::Duration::from_secs(2), limit).await;
    s.stop().await?;
    let (with_to_qbo, with_to_hubspot) = with?;
    let s = SyncStack::start_with("bench-latency-polling", |o| {
        o.run_schedules = true;
        o.schedule_period = Some(bench.poll_interval);
    })
    .await?;
    let without = edit_latencies(&s, bench.edits, bench.poll_interval, limit).await;
    s.stop().await?;
    let (poll_to_qbo, poll_to_hubspot) = without?;
    let polling_bound = bench.poll_interval.as_secs_f64() * POLLING_LATENCY_P95_BOUND_INTERVALS;
    Ok(json!({
        "name": "change_latency",
        "poll_interval_s": bench.poll_interval.as_secs(),
        "webhooks": {
            "hubspot_to_qbo": latency_figures(with_to_qbo, WEBHOOK_LATENCY_P95_BOUND_S),
            "qbo_to_hubspot": latency_figures(with_to_hubspot, WEBHOOK_LATENCY_P95_BOUND_S),
        },
        "polling_only": {
            "hubspot_to_qbo": latency_figures(poll_to_qbo, polling_bound),
            "qbo_to_hubspot": latency_figures(poll_to_hubspot, polling_bound),
        },
    }))
}

/// How many ledger records the export benchmark fills and downloads.
pub fn export_records(size: &str) -> anyhow::Result<usize> {
    match size {
        "default" => Ok(100_000),
        "small" => Ok(2_000),
        other => anyhow::bail!("unknown BENCH_SIZE {other:?} (default or small)"),
    }
}

/// The admin function's CSV export of `records` ledger entries of one connection (written to
/// the ledger table directly: the export's memory, not the sync, is measured): the download's
/// time and size, and the admin function's peak resident memory before and during it.
pub async fn run_export(records: usize) -> anyhow::Result<Value> {
    use hubspot_qbo_core::ledger::entry::Failure;
    use hubspot_qbo_core::ledger::{Ledger, LedgerEntry, LinkStatus};
    use hubspot_qbo_core::store::Table;
    use local_stack::harness::TEST_OPERATOR_KEY;

    // The local endpoint answers a query by reading its whole table, seconds at 100,000 items:
    // its AWS calls get the template's longest timeouts (DynamoDB itself answers in ms).
    let s = SyncStack::start_with("bench-export", |o| {
        for name in ["AwsAttemptTimeoutSeconds", "AwsOperationTimeoutSeconds"] {
            o.parameters.insert(name.into(), "9".into());
        }
    })
    .await?;
    let outcome = async {
        let p = s.pair().await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let entry = |n: usize| {
            let mut entry = LedgerEntry::new(
                p.connection.clone(),
                ObjectKind::Contact,
                Provider::HubSpot,
                &(100_000_000 + n).to_string(),
                now - n as i64,
            );
            entry.qbo.id = Some((500_000 + n).to_string());
            entry.match_key = Some(format!("person{n}@bench.example"));
            entry.record(now, Provider::HubSpot, "created", "made in QuickBooks");
            if n.is_multiple_of(10) {
                entry.status = LinkStatus::Failing;
                entry.failure = Some(Failure {
                    category: "duplicate_display_name".into(),
                    message: format!("the name \"Person {n}\" is taken in QuickBooks"),
                    attempts: 1,
                    first_failed_at: now,
                    next_retry_at: None,
                    source: Some(Provider::HubSpot),
                    version: None,
                });
            } else {
                entry.status = LinkStatus::Synced;
            }
            Ledger::entry_item(&entry)
        };
        let filled = Instant::now();
        let chunks: Vec<Vec<usize>> = (0..records)
            .collect::<Vec<_>>()
            .chunks(2_000)
            .map(<[usize]>::to_vec)
            .collect();
        for group in chunks.chunks(4) {
            let writes = group.iter().map(|chunk| {
                let items: Result<Vec<_>, _> = chunk.iter().map(|n| entry(*n)).collect();
                let store = s.services.store.clone();
                async move { store.batch_put(Table::Ledger, items?).await }
            });
            futures::future::try_join_all(writes).await?;
        }
        let fill_seconds = filled.elapsed().as_secs_f64();

        let admin = s.stack.function("AdminFunction")?.clone();
        let url = format!(
            "{}api/connections/{}/export/contact",
            s.stack.url("AdminFunction")?,
            p.connection
        );
        let http = reqwest::Client::new();
        // The function's memory after a small answer: its floor before any export.
        http.get(format!("{}api/categories", s.stack.url("AdminFunction")?))
            .bearer_auth(TEST_OPERATOR_KEY)
            .send()
            .await?
            .error_for_status()?;
        let floor = peak_rss_mib(&admin.pids());
        reset_peak_rss(&admin.pids());
        let started = Instant::now();
        let mut response = http
            .get(&url)
            .bearer_auth(TEST_OPERATOR_KEY)
            .send()
            .await?
            .error_for_status()?;
        let (mut bytes, mut lines) = (0usize, 0usize);
        while let Some(chunk) = response.chunk().await? {
            bytes += chunk.len();
            lines += chunk.iter().filter(|b| **b == b'\n').count();
        }
        let seconds = started.elapsed().as_secs_f64();
        let peak = peak_rss_mib(&admin.pids());
        let rows = lines.saturating_sub(1);
        anyhow::ensure!(rows == records, "the export has {rows} rows of {records}");
        // A tenth of it (the failing ones, through the status index): the same peak means
        // the memory does not grow with the size of the export.
        reset_peak_rss(&admin.pids());
        let mut response = http
            .get(format!("{url}?status=failing"))
            .bearer_auth(TEST_OPERATOR_KEY)
            .send()
            .await?
            .error_for_status()?;
        let mut tenth_lines = 0usize;
        while let Some(chunk) = response.chunk().await? {
            tenth_lines += chunk.iter().filter(|b| **b == b'\n').count();
        }
        let tenth_peak = peak_rss_mib(&admin.pids());
        let tenth_rows = tenth_lines.saturating_sub(1);
        anyhow::ensure!(
            tenth_rows == records.div_ceil(10),
            "the failing export has {tenth_rows} rows"
        );
        Ok::<Value, anyhow::Error>(json!({
            "name": "admin_export_csv",
            "records": records,
            "rows_exported": rows,
            "megabytes": round(bytes as f64 / 1_048_576.0, 1),
            "seconds": round(seconds, 2),
            "rows_per_second": round(rows as f64 / seconds, 0),
            "ledger_fill_seconds": round(fill_seconds, 1),
            "admin_peak_rss": {
                "before_mib": round(floor, 1),
                "during_mib": round(peak, 1),
                "during_tenth_mib": round(tenth_peak, 1),
                "tenth_rows": tenth_rows,
                "bound_mib": RSS_BOUND_MIB,
                "ratio_to_bound": round(peak / RSS_BOUND_MIB, 3),
            },
        }))
    }
    .await;
    s.stop().await?;
    outcome
}

/// A scenario's figures as the results file has them.
fn figures(scenario: &Scenario, f: Figures) -> anyhow::Result<Value> {
    let rate = f.synced as f64 / f.seconds;
    let bound = bound_records_per_second(
        &f.minimum,
        f.synced,
        scenario.qbo_scale,
        scenario.hubspot_scale,
    );
    let ratio = bound.map(|b| round(rate / b, 3));
    let bound = bound.map(|b| round(b, 1));
    let calls_json = |c: &Calls| {
        json!({"qbo": c.qbo, "qbo_batches": c.qbo_batches, "hubspot": c.hubspot,
            "hubspot_searches": c.hubspot_searches, "total": c.total()})
    };
    Ok(json!({
        "name": scenario.name,
        "object": scenario.object.to_string(),
        "from": scenario.from.as_str(),
        "records_read": f.read,
        "records_synced": f.synced,
        "records_excluded": f.excluded,
        "records_without_match_key": f.keyless,
        "seconds": round(f.seconds, 2),
        "records_per_second": round(rate, 1),
        "throughput": {
            "bound_records_per_second": bound,
            "ratio_to_bound": ratio,
        },
        "limits_scale": {"qbo": scenario.qbo_scale, "hubspot": scenario.hubspot_scale},
        "api_calls": calls_json(&f.measured),
        "minimum_api_calls": calls_json(&f.minimum),
        "calls_per_record": round(f.measured.total() / f.synced as f64, 4),
        "minimum_calls_per_record": round(f.minimum.total() / f.synced as f64, 4),
        "calls_ratio_to_minimum": round(f.measured.total() / f.minimum.total(), 3),
        "answered_429": {"qbo": f.throttled.0, "hubspot": f.throttled.1},
        "object_sync_peak_rss": {
            "mib": round(f.peak_rss, 1),
            "bound_mib": RSS_BOUND_MIB,
            "ratio_to_bound": round(f.peak_rss / RSS_BOUND_MIB, 3),
        },
    }))
}

/// The results file: the machine, the size, and every scenario's figures.
pub fn results(
    size: &str,
    scenarios: Vec<Value>,
    actions: Value,
    export: Value,
    latency: Value,
) -> Value {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| round(kb / 1024.0 / 1024.0, 1));
    let at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({
        "generated_at": at,
        "size": size,
        "machine": {"cores": cores, "memory_gib": memory_gib, "build": "debug binaries, local AWS endpoint (moto)"},
        "how": "make bench (BENCH_SIZE=small for the smoke run); each scenario is a fresh local stack, its initial sync measured from the poll to the last queue message",
        "scenarios": scenarios,
        "actions": actions,
        "export": export,
        "latency": latency,
    })
}

/// The README's performance table for `results`.
pub fn table(results: &Value) -> String {
    let mut out = String::new();
    let machine = &results["machine"];
    out.push_str(&format!(
        "Measured {} on {} cores, {} GiB ({}), size `{}`. Limits: the providers' own, times the scale shown (the sandboxes' and the integration's alike; the bound uses the same factor).\n\n",
        results["generated_at"].as_str().unwrap_or(""),
        machine["cores"],
        machine["memory_gib"],
        machine["build"].as_str().unwrap_or(""),
        results["size"].as_str().unwrap_or(""),
    ));
    out.push_str("| scenario | records | seconds | records/s | bound records/s | ratio_to_bound | calls/record | minimum | calls ratio | 429s | limits scale (QBO, HubSpot) | object-sync peak RSS |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for s in results["scenarios"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}, {} | {} MiB |\n",
            s["name"].as_str().unwrap_or(""),
            s["records_synced"],
            s["seconds"],
            s["records_per_second"],
            or_dash(&s["throughput"]["bound_records_per_second"]),
            or_dash(&s["throughput"]["ratio_to_bound"]),
            s["calls_per_record"],
            s["minimum_calls_per_record"],
            s["calls_ratio_to_minimum"],
            s["answered_429"]["qbo"].as_u64().unwrap_or(0)
                + s["answered_429"]["hubspot"].as_u64().unwrap_or(0),
            s["limits_scale"]["qbo"],
            s["limits_scale"]["hubspot"],
            s["object_sync_peak_rss"]["mib"],
        ));
    }
    let a = &results["actions"];
    if !a.is_null() {
        out.push_str(&format!(
            "\nWorkflow action `{}` (sandboxes' latency profile {}–{} ms a request): request → SUCCESS over {} executions, and {} executions sent as {} concurrent copies each.\n\n",
            a["name"].as_str().unwrap_or(""),
            a["latency_profile_ms"][0],
            a["latency_profile_ms"][1],
            a["executions_timed"],
            a["repeated"]["executions"],
            a["repeated"]["concurrent_copies_each"],
        ));
        out.push_str("| action | p50 ms | p95 ms | max ms | bound p95 ms | ratio_to_bound | documents for repeated executions | duplicates | differing answers |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|\n");
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} of {} | {} | {} |\n",
            a["name"].as_str().unwrap_or(""),
            a["latency_ms"]["p50"],
            a["latency_ms"]["p95"],
            a["latency_ms"]["max"],
            a["latency_ms"]["bound_p95_ms"],
            a["latency_ms"]["ratio_to_bound"],
            a["repeated"]["documents_made"],
            a["repeated"]["executions"],
            a["repeated"]["duplicates"],
            a["repeated"]["answers_differing_from_the_first"],
        ));
    }
    let l = &results["latency"];
    if !l.is_null() {
        out.push_str(&format!(
            "\nChange latency: an edit on one side until the other side shows it, {} edits each way; with the sandboxes' change notifications (no schedule), and with none and the poll every {} s.\n\n",
            l["webhooks"]["hubspot_to_qbo"]["edits"], l["poll_interval_s"],
        ));
        out.push_str("| change latency | direction | p50 s | p95 s | max s | bound p95 s | ratio_to_bound |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for (mode, label) in [
            ("webhooks", "with webhooks"),
            ("polling_only", "polling only"),
        ] {
            for (direction, arrow) in [
                ("hubspot_to_qbo", "HubSpot → QuickBooks"),
                ("qbo_to_hubspot", "QuickBooks → HubSpot"),
            ] {
                let f = &l[mode][direction];
                out.push_str(&format!(
                    "| {label} | {arrow} | {} | {} | {} | {} | {} |\n",
                    f["p50_s"], f["p95_s"], f["max_s"], f["bound_p95_s"], f["ratio_to_bound"],
                ));
            }
        }
    }
    let e = &results["export"];
    if !e.is_null() {
        out.push_str(&format!(
            "\nThe admin function's CSV export, streamed page by page from the ledger (the object's partition; a tenth of it, the failing records, through their status index): {} records.\n\n",
            e["records"],
        ));
        out.push_str("| export | rows | MB | seconds | rows/s | admin peak RSS before | during | during a tenth of it | bound | ratio_to_bound |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} MiB | {} MiB | {} MiB ({} rows) | {} MiB | {} |\n",
            e["name"].as_str().unwrap_or(""),
            e["rows_exported"],
            e["megabytes"],
            e["seconds"],
            e["rows_per_second"],
            e["admin_peak_rss"]["before_mib"],
            e["admin_peak_rss"]["during_mib"],
            e["admin_peak_rss"]["during_tenth_mib"],
            e["admin_peak_rss"]["tenth_rows"],
            e["admin_peak_rss"]["bound_mib"],
            e["admin_peak_rss"]["ratio_to_bound"],
        ));
    }
    out
}

/// A figure, or a dash where none applies.
fn or_dash(value: &Value) -> String {
    if value.is_null() {
        "—".to_owned()
    } else {
        value.to_string()
    }
}

pub const TABLE_BEGIN: &str = "<!-- bench:begin -->";
pub const TABLE_END: &str = "<!-- bench:end -->";

/// `readme` with the text between the table markers replaced by `table`.
pub fn with_table(readme: &str, table: &str) -> anyhow::Result<String> {
    let begin = readme
        .find(TABLE_BEGIN)
        .context("the README has no bench table marker")?
        + TABLE_BEGIN.len();
    let end = readme[begin..]
        .find(TABLE_END)
        .context("the README has no end-of-table marker")?
        + begin;
    Ok(format!("{}\n{}{}", &readme[..begin], table, &readme[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_counts_full_pages_and_batches() {
        type Case = (ObjectKind, Provider, bool, usize, usize, usize, Calls);
        let cases: &[Case] = &[
            (
                ObjectKind::Contact,
                Provider::Qbo,
                true,
                10_000,
                10_000,
                1_000,
                Calls {
                    qbo: 11.0,
                    qbo_batches: 0.0,
                    hubspot: 1.0 + 90.0 + 100.0,
                    hubspot_searches: 0.0,
                },
            ),
            (
                ObjectKind::Product,
                Provider::Qbo,
                false,
                2_000,
                1_200,
                0,
                Calls {
                    qbo: 3.0,
                    qbo_batches: 0.0,
                    hubspot: 24.0,
                    hubspot_searches: 12.0,
                },
            ),
            (
                ObjectKind::Contact,
                Provider::HubSpot,
                true,
                90,
                90,
                0,
                Calls {
                    qbo: 1.0 + 1.0 + 3.0,
                    qbo_batches: 3.0,
                    hubspot: 1.0 + 1.0,
                    hubspot_searches: 0.0,
                },
            ),
        ];
        for (object, from, two_way, read, written, keyless, expected) in cases {
            assert_eq!(
                &minimum_calls(*object, *from, *two_way, *read, *written, *keyless),
                expected,
                "{from:?} {read}"
            );
        }
    }

    #[test]
    fn the_invoice_minimum_counts_each_write_in_full_batches() {
        let work = InvoiceWork {
            invoices: 5_000,
            lines: 12_500,
            payments: 2_500,
            customers: 40,
        };
        let minimum = minimum_invoice_calls(&work);
        assert_eq!(minimum.qbo, 6.0 + 3.0);
        assert_eq!(minimum.hubspot, 200.0 + 250.0 + 75.0 + 1.0 + 5.0);
        // Half of HubSpot's limit: 531 calls at 55 per 10 s take 9 windows after the first.
        let bound = bound_records_per_second(&minimum, 5_000, 1.0, 0.5);
        assert!(
            bound.is_some_and(|b| (b - 5_000.0 / 90.0).abs() < 0.1),
            "{bound:?}"
        );
    }

    #[test]
    fn the_tightest_limit_sets_the_bound() {
        let close =
            |bound: Option<f64>, expected: f64| bound.is_some_and(|b| (b - expected).abs() < 0.1);
        // From HubSpot: 1,000 batches at 40 a minute take 24 minutes after the first 40.
        let from_hubspot = minimum_calls(
            ObjectKind::Contact,
            Provider::HubSpot,
            true,
            30_000,
            30_000,
            0,
        );
        let bound = bound_records_per_second(&from_hubspot, 30_000, 1.0, 1.0);
        assert!(close(bound, 30_000.0 / 1440.0), "{bound:?}");
        // Four times the limits: 160 a minute, 7 windows.
        let bound = bound_records_per_second(&from_hubspot, 30_000, 4.0, 1.0);
        assert!(close(bound, 30_000.0 / 360.0), "{bound:?}");
        // From QuickBooks: 2,000 HubSpot calls at 110 per 10 s.
        let from_qbo = minimum_calls(
            ObjectKind::Contact,
            Provider::Qbo,
            false,
            100_000,
            100_000,
            0,
        );
        let bound = bound_records_per_second(&from_qbo, 100_000, 1.0, 1.0);
        assert!(close(bound, 100_000.0 / 180.0), "{bound:?}");
        // Products also search, 5 a second: 1,000 searches take 199 s, longer than the rest.
        let products = minimum_calls(
            ObjectKind::Product,
            Provider::Qbo,
            false,
            100_000,
            100_000,
            0,
        );
        let bound = bound_records_per_second(&products, 100_000, 1.0, 1.0);
        assert!(close(bound, 100_000.0 / 199.0), "{bound:?}");
        // Calls that fit in one window: nothing bounds them.
        let few = minimum_calls(ObjectKind::Contact, Provider::Qbo, false, 500, 500, 0);
        assert_eq!(bound_records_per_second(&few, 500, 1.0, 1.0), None);
    }

    #[test]
    fn quantiles_are_of_the_sorted_values() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), 10.0);
        assert_eq!(quantile(&values, 0.95), 19.0);
        assert_eq!(quantile(&values, 1.0), 20.0);
        assert_eq!(quantile(&[7.0], 0.95), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn the_table_replaces_only_what_is_between_the_markers() {
        let readme = format!("intro\n{TABLE_BEGIN}\nold\n{TABLE_END}\nafter\n");
        let updated = with_table(&readme, "| new |\n").unwrap();
        assert_eq!(
            updated,
            format!("intro\n{TABLE_BEGIN}\n| new |\n{TABLE_END}\nafter\n")
        );
        assert!(with_table("no markers", "x").is_err());
    }
}
