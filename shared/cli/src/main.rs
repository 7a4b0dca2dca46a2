use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use hubspot_qbo_cli::{args::Cli, commands, render};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    match commands::run(cli, &mut out, &mut err).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            let _ = err.write_all(render::render_error(&e).as_bytes());
            ExitCode::from(e.exit_code())
        }
    }
}
