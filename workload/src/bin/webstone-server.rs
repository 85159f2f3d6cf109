//! `webstone-server`: the WebStone-like CGI over HTTP/1.1 (see `workload::cgi`).

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tracing::error;
use workload::cgi::{self, App, CgiConfig};
use workload::cgi_gateway::AppMode;

/// Serve `GET /cgi-bin/webstone?size=N` (default N=1024): N fresh random
/// bytes per request with Content-Length, X-Coral-Digest (hex sha256 of the
/// body) and X-Coral-Served-By. HTTP/1.1 keep-alive and pipelining.
/// With `--app cgi` every reply comes from a `webstone-cgi` process started
/// for that request (CGI/1.1), as WebStone 2.0's CGI ran under Apache.
/// Prints "listening on ADDR" on stdout when ready; exits cleanly on
/// SIGTERM/SIGINT.
#[derive(Parser, Debug)]
#[command(name = "webstone-server", version)]
struct Args {
    /// Address and port to listen on (port 0 picks a free one; the line
    /// "listening on ADDR" shows the real one).
    #[arg(long, default_value = "0.0.0.0:80", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// Value of X-Coral-Served-By [default: the system host name].
    #[arg(long, value_name = "NAME")]
    served_by: Option<String>,
    /// Largest reply size answered; larger sizes get 413.
    #[arg(long, default_value_t = cgi::DEFAULT_MAX_SIZE, value_name = "BYTES")]
    max_size: u64,
    /// Largest request head (request line + headers); larger heads get 431.
    #[arg(long, default_value_t = cgi::DEFAULT_MAX_HEAD as u64, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(64..=(1 << 24)))]
    max_head: u64,
    /// Print one line per request on stdout (for tests and debugging).
    #[arg(long)]
    log_requests: bool,
    /// Where replies come from: `inproc` (generated inside this process) or
    /// `cgi` (a CGI program started for every request).
    #[arg(long, default_value = "inproc", value_name = "inproc|cgi")]
    app: AppMode,
    /// The CGI program for `--app cgi` [default: webstone-cgi beside this
    /// executable].
    #[arg(long, value_name = "PATH")]
    cgi_program: Option<PathBuf>,
    /// Longest one CGI run may take before it is killed (the reply: 502).
    #[arg(long, default_value_t = workload::cgi_gateway::DEFAULT_CGI_TIMEOUT.as_millis() as u64,
          value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    cgi_timeout_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    workload::logging::init();
    if args.cgi_program.is_some() && args.app != AppMode::Cgi {
        error!("--cgi-program needs --app cgi");
        return ExitCode::from(2);
    }
    let app = match App::from_mode(
        args.app,
        args.cgi_program.as_deref(),
        Duration::from_millis(args.cgi_timeout_ms),
    ) {
        Ok(app) => app,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = Arc::new(CgiConfig {
        served_by: args.served_by.unwrap_or_else(cgi::system_hostname),
        max_size: args.max_size,
        max_head: args.max_head as usize,
        log_requests: args.log_requests,
        app,
    });
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                error!("cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().unwrap_or(args.listen);
        println!("listening on {addr}");
        let shutdown = async {
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
                }
                _ => {
                    error!("cannot install signal handlers");
                    std::future::pending::<()>().await
                }
            }
        };
        cgi::run_until(listener, cfg, shutdown).await;
        ExitCode::SUCCESS
    })
}
