//! Logging with tracing, to stderr (stdout is for command output such as `gridcase token`):
//! human-readable by default, JSON lines with `--log-json` or
//! `log_format = "json"`. `RUST_LOG` filters as usual (default `info`, with the libraries'
//! start-up chatter, such as the scheduler's, below it).
//!
//! No log line carries a reporter's phone, a name or a description: the access log names the
//! method, the subject and role, the code and the time; errors name what failed, never the
//! request's content (`tests/serving.rs` checks a whole run's log).

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Our lines from INFO; the libraries' from WARN (tokio-cron-scheduler says "Uninited" and
/// "Job creator created" at INFO on every start).
pub const DEFAULT_FILTER: &str =
    "info,tokio_cron_scheduler=warn,sqlx=warn,sea_orm=warn,h2=warn,hyper=warn,tower=warn";

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_target(false)
                    // Colours only for a terminal: a log file or a collector gets plain text.
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // Already installed (a test harness, or a second call): keep the first.
    drop(result);
}
