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
    // `BENCH_ONLY=export`: only the export's figures, printed, nothing written.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("export") {
        let export = bench::run_export(bench::export_records(&size)?).await?;
        println!("{}", serde_json::to_string_pretty(&export)?);
        return Ok(());
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
    let results = bench::results(&size, figures, actions, export);
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
