//! `make bench`: runs the scenarios (`BENCH_SIZE`: `default` or `small`), writes
//! `bench/results.json` and the README's performance table.

use std::path::PathBuf;

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let size = std::env::var("BENCH_SIZE").unwrap_or_else(|_| "default".into());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::var_os("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bench/results.json"));
    let readme = std::env::var_os("BENCH_README")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("README.md"));
    // `BENCH_ONLY=export` or `latency`: only those figures, printed, nothing written.
    match std::env::var("BENCH_ONLY").as_deref() {
        Ok("export") => {
            let export = bench::run_export(bench::export_records(&size)?).await?;
            println!("{}", serde_json::to_string_pretty(&export)?);
            return Ok(());
        }
        // Measured alone and put into the results and table of the last full run (marked
        // with its own time).
        Ok("latency") => {
            let mut latency = bench::run_latency(bench::latency_bench(&size)?).await?;
            latency["generated_at"] = serde_json::json!(time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)?);
            println!("{}", serde_json::to_string_pretty(&latency)?);
            let text = std::fs::read_to_string(&out)
                .with_context(|| format!("reading {}", out.display()))?;
            let mut results: serde_json::Value = serde_json::from_str(&text)?;
            results["latency"] = latency;
            std::fs::write(&out, serde_json::to_string_pretty(&results)? + "\n")?;
            let readme_text = std::fs::read_to_string(&readme)?;
            std::fs::write(
                &readme,
                bench::with_table(&readme_text, &bench::table(&results))?,
            )?;
            return Ok(());
        }
        _ => {}
    }
    let mut figures = Vec::new();
    for scenario in bench::scenarios(&size)? {
        eprintln!("bench: {} ({} records)…", scenario.name, scenario.records);
        let measured = bench::run(&scenario)
            .await
            .with_context(|| format!("scenario {}", scenario.name))?;
        eprintln!("bench: {measured}");
        figures.push(measured);
    }
    eprintln!("bench: workflow actions…");
    let actions = bench::run_actions(bench::action_bench(&size)?)
        .await
        .context("the workflow-action benchmark")?;
    eprintln!("bench: {actions}");
    eprintln!("bench: the admin CSV export…");
    let export = bench::run_export(bench::export_records(&size)?)
        .await
        .context("the export benchmark")?;
    eprintln!("bench: {export}");
    eprintln!("bench: change latency with webhooks and polling only…");
    let latency = bench::run_latency(bench::latency_bench(&size)?)
        .await
        .context("the change-latency benchmark")?;
    eprintln!("bench: {latency}");
    let results = bench::results(&size, figures, actions, export, latency);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&results)? + "\n")?;
    let table = bench::table(&results);
    let text = std::fs::read_to_string(&readme)
        .with_context(|| format!("reading {}", readme.display()))?;
    std::fs::write(&readme, bench::with_table(&text, &table)?)?;
    println!("{table}");
    println!(
        "wrote {} and the table in {}",
        out.display(),
        readme.display()
    );
    Ok(())
}
