//! The benchmark's smoke run (`BENCH_SIZE=small`), part of the test suite: every scenario runs
//! to the end, and its figures are possible ones — no faster than the providers' limits allow,
//! no fewer calls than the batch sizes allow, no 429 from our own pacing, a memory figure read.

use serde_json::Value;

#[tokio::test]
async fn the_small_benchmark_runs_and_its_figures_hold_together() -> anyhow::Result<()> {
    let mut figures = Vec::new();
    for scenario in bench::scenarios("small")? {
        let measured = bench::run(&scenario).await?;
        let number = |path: &[&str]| -> f64 {
            path.iter()
                .fold(&measured, |v: &Value, k| &v[*k])
                .as_f64()
                .unwrap_or(f64::NAN)
        };
        let name = &scenario.name;
        assert!(number(&["records_synced"]) > 0.0, "{name}: {measured}");
        // A small run may fit in one window of every limit: then no bound applies.
        if !measured["throughput"]["ratio_to_bound"].is_null() {
            let ratio = number(&["throughput", "ratio_to_bound"]);
            assert!(
                ratio > 0.0 && ratio <= 1.05,
                "{name}: faster than the limits allow? {measured}"
            );
        }
        assert!(
            number(&["calls_ratio_to_minimum"]) >= 1.0,
            "{name}: fewer calls than the minimum? {measured}"
        );
        assert_eq!(
            number(&["answered_429", "qbo"]) + number(&["answered_429", "hubspot"]),
            0.0,
            "{name}: our pacing hit a limit: {measured}"
        );
        assert!(
            number(&["object_sync_peak_rss", "mib"]) > 1.0,
            "{name}: {measured}"
        );
        figures.push(measured);
    }
    let actions = bench::run_actions(bench::action_bench("small")?).await?;
    let number = |path: &[&str]| -> f64 {
        path.iter()
            .fold(&actions, |v: &Value, k| &v[*k])
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    assert_eq!(number(&["executions_failed"]), 0.0, "{actions}");
    assert!(
        number(&["latency_ms", "p50"]) >= 50.0,
        "an execution makes at least one call of the latency profile: {actions}"
    );
    assert!(number(&["latency_ms", "p95"]) >= number(&["latency_ms", "p50"]));
    assert_eq!(number(&["repeated", "duplicates"]), 0.0, "{actions}");
    assert_eq!(
        number(&["repeated", "answers_differing_from_the_first"]),
        0.0
    );
    let export = bench::run_export(bench::export_records("small")?).await?;
    let number = |path: &[&str]| -> f64 {
        path.iter()
            .fold(&export, |v: &Value, k| &v[*k])
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    assert_eq!(number(&["rows_exported"]), 2_000.0, "{export}");
    assert!(
        number(&["admin_peak_rss", "during_mib"]) > 1.0,
        "a memory figure is read: {export}"
    );
    let latency = bench::run_latency(bench::latency_bench("small")?).await?;
    for mode in ["webhooks", "polling_only"] {
        for direction in ["hubspot_to_qbo", "qbo_to_hubspot"] {
            let f = &latency[mode][direction];
            let (p50, p95) = (
                f["p50_s"].as_f64().unwrap_or(f64::NAN),
                f["p95_s"].as_f64().unwrap_or(f64::NAN),
            );
            assert!(p50 > 0.0 && p95 >= p50, "{mode} {direction}: {latency}");
            assert!(f["ratio_to_bound"].as_f64().is_some(), "{latency}");
        }
    }
    let results = bench::results("small", figures, actions, export, latency);
    let table = bench::table(&results);
    assert!(table.contains("| action_create_invoice |"), "{table}");
    assert!(table.contains("| admin_export_csv |"), "{table}");
    assert!(
        table.contains("| with webhooks | HubSpot → QuickBooks |"),
        "{table}"
    );
    for scenario in bench::scenarios("small")? {
        assert!(table.contains(&format!("| {} |", scenario.name)), "{table}");
    }
    Ok(())
}
