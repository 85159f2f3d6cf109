//! How the kit's programs log: `tracing` events on standard error, filtered
//! by `RUST_LOG` (`EnvFilter` syntax; `info` when unset or invalid), with
//! colour codes only when standard error is a terminal (service logs are
//! files). Lines other programs wait for or parse (`listening on ADDR`,
//! command results, `--log-requests` lines) are not log lines: they stay
//! plain prints on standard output.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the process's subscriber. Call once, first thing in `main`
/// (a second call, or one after another subscriber was set, does nothing).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
