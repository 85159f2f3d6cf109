//! `coral-load`: the closed-loop WebStone-like load driver (see `workload::driver`).

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tracing::{error, info_span, warn};
use workload::driver::{self, ConnectionMode, DriverConfig};

/// N closed-loop clients, each sending one request and waiting for the whole
/// reply before the next. Every request is sent exactly once (no retries),
/// verified (status 200, Content-Length == size == body bytes, sha256 ==
/// X-Coral-Digest) and recorded. After an error the client closes the
/// connection and reconnects after a back-off of 10 ms doubling to 1 s.
/// The run stops by itself; requests in flight at the end of --duration-s get
/// --drain-s more, then are recorded as lost. SIGTERM/SIGINT end the run
/// early the same way (outputs are still written). Prints a one-line summary.
#[derive(Parser, Debug)]
#[command(name = "coral-load", version)]
struct Args {
    /// Service URL, http://HOST:PORT/PATH?QUERY (port and query optional); repeat for several,
    /// assigned to clients round-robin.
    #[arg(long = "url", required = true, value_name = "URL")]
    urls: Vec<String>,
    /// Number of closed-loop clients.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// Run length in seconds [default: 10 unless --requests is given].
    #[arg(long, value_name = "SECONDS")]
    duration_s: Option<f64>,
    /// Total number of requests over all clients together (each request is
    /// claimed from a shared counter). With --duration-s too, whichever
    /// comes first ends the run.
    #[arg(long, value_name = "N")]
    requests: Option<u64>,
    /// Reply size in bytes, appended as ?size=N to URLs without a query.
    #[arg(long, default_value_t = 1024, value_name = "BYTES")]
    size: u64,
    /// Seconds at the start excluded from throughput and latency statistics
    /// (every request is still recorded).
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    warmup_s: f64,
    /// Per-request timeout in seconds (connect plus whole reply).
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    timeout_s: f64,
    /// After --duration-s, how long requests in flight may still complete
    /// before they are recorded as lost.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    drain_s: f64,
    /// Open a new connection per request (Connection: close), as WebStone
    /// 2.0; the default is HTTP/1.1 keep-alive.
    #[arg(long)]
    connection_per_request: bool,
    /// HTTP/1.1 pipelining: each client writes N requests back to back on
    /// its keep-alive connection, then reads the N replies in order (each
    /// still recorded as its own request; a failure ends the round and the
    /// round's unanswered requests get its error kind). 1: no pipelining.
    #[arg(
        long,
        default_value_t = 1,
        value_name = "N",
        conflicts_with = "connection_per_request"
    )]
    pipeline: u32,
    /// Open N extra keep-alive connections (round-robin over the URLs)
    /// before the clients start and hold them open, idle, to the end; their
    /// fate is written to DIR/idle.json. Raises the open-file limit to the
    /// hard limit first.
    #[arg(long, default_value_t = 0, value_name = "N")]
    idle_conns: u32,
    /// Fault instant (unix ns) for throughput before/after in summary.json.
    #[arg(long, value_name = "UNIX_NS")]
    fault_at_unix_ns: Option<u64>,
    /// Write DIR/requests.csv (every request) and DIR/summary.json.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

fn seconds(name: &str, v: f64, allow_zero: bool) -> Result<Duration, String> {
    if !v.is_finite() || v < 0.0 || (!allow_zero && v == 0.0) || v > 1e9 {
        return Err(format!(
            "--{name} must be a {} number of seconds, got {v}",
            if allow_zero {
                "non-negative"
            } else {
                "positive"
            }
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

fn config(a: &Args) -> Result<DriverConfig, String> {
    if a.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    if a.requests == Some(0) {
        return Err("--requests must be at least 1".into());
    }
    let duration = match (a.duration_s, a.requests) {
        (Some(d), _) => Some(seconds("duration-s", d, false)?),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    Ok(DriverConfig {
        urls: a.urls.clone(),
        clients: a.clients,
        mode: match (a.connection_per_request, a.pipeline) {
            (_, 0) => return Err("--pipeline must be at least 1".into()),
            (true, _) => ConnectionMode::PerRequest,
            (false, 1) => ConnectionMode::KeepAlive,
            (false, n) => ConnectionMode::Pipelined(n),
        },
        duration,
        total_requests: a.requests,
        size: a.size,
        warmup: seconds("warmup-s", a.warmup_s, true)?,
        timeout: seconds("timeout-s", a.timeout_s, false)?,
        drain: seconds("drain-s", a.drain_s, true)?,
        fault_at_unix_ns: a.fault_at_unix_ns,
        idle_conns: a.idle_conns,
        ..DriverConfig::default()
    })
}

/// Raises the soft open-file limit to the hard limit; fails when even that
/// is below `need`.
fn raise_nofile(need: u64) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(format!(
                "getrlimit(NOFILE): {}",
                std::io::Error::last_os_error()
            ));
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(format!(
                    "setrlimit(NOFILE): {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
    }
    if lim.rlim_cur < need {
        return Err(format!(
            "need {need} open files (--idle-conns plus clients) but the limit is {}; raise `ulimit -Hn`",
            lim.rlim_cur
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    workload::logging::init();
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = raise_nofile(u64::from(cfg.idle_conns) + u64::from(cfg.clients) + 256) {
        error!("{e}");
        return ExitCode::FAILURE;
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // SIGTERM/SIGINT end the run early; the outputs are still written.
    let stop = async {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                warn!("stopping early on a signal");
            }
            _ => std::future::pending::<()>().await,
        }
    };
    let span = info_span!("load", clients = cfg.clients, urls = args.urls.len());
    let _run = span.enter();
    let res = match rt.block_on(driver::run_until(&cfg, stop)) {
        Ok(r) => r,
        Err(e) => {
            error!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(dir) = &args.out {
        if let Err(e) = driver::write_outputs(dir, &res) {
            error!("{e:#}");
            return ExitCode::FAILURE;
        }
    }
    println!("{}", driver::one_line(&res.summary));
    ExitCode::SUCCESS
}
