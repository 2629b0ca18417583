//! natter's entry point: configuration, logging, then `natter::serve`.

use std::process::ExitCode;

use natter::config::{Config, ConfigError, LogFormat};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env_and_args() {
        Ok(config) => config,
        // --help and --version are answers, not errors.
        Err(ConfigError::Shown(shown)) => {
            let _ = shown.print();
            return ExitCode::SUCCESS;
        }
        Err(ConfigError::Invalid(message)) => {
            eprintln!("natter: {message}");
            return ExitCode::from(2);
        }
    };
    // Config has already refused a filter that does not parse.
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => logs.init(),
    }
    tracing::info!(bind = %config.bind, public_url = %config.public_url, database = %config.database_url, "starting natter");
    match natter::serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("natter: {message}");
            ExitCode::FAILURE
        }
    }
}
