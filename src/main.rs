//! The `hoop-kube` binary: parse, run, print errors on one line, exit with a code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // kubectl runs `hoop-kube credential` for nearly every command: answer from the cache before
    // anything else is set up when nothing needs doing (see login::fast_path).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(json) = hoop_kube::login::fast_path::cached_credential(&args) {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        return match writeln!(out, "{json}").and_then(|()| out.flush()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("HOOP_KUBE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = hoop_kube::cli::Cli::parse_from(args);
    // Short-lived commands (the exec plugin runs once per kubectl call) need no worker threads.
    let rt = if cli.short_lived() {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Runtime::new()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hoop-kube: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(hoop_kube::cli::run(cli));
    // Do not wait for idle blocking-pool threads (keyring calls) to wind down.
    rt.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hoop-kube: {e:#}");
            ExitCode::FAILURE
        }
    }
}
