//! `nginx`: nginx on the lb host as a reverse proxy in front of two
//! unreplicated webstone-servers, with passive health checks (`max_fails`,
//! `fail_timeout`), `proxy_next_upstream` (a failed or timed-out request is
//! passed to the other server) and upstream keep-alive connections. The
//! configuration is rendered from `experiments/templates/nginx.conf` into the
//! state directory (`nginx.conf`); pid file, error log and temp paths all
//! live there too.

use crate::services::{self, ServiceOptions};
use crate::topology::{Live, ServiceSpec};
use anyhow::{Context, Result};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// The configuration template (placeholders `{{NAME}}`).
pub const TEMPLATE: &str = include_str!("../../templates/nginx.conf");

/// Renders the configuration with the state directory `state`.
pub fn render(state: &str) -> Result<String> {
    services::render(
        TEMPLATE,
        &[
            ("STATE", state),
            ("LB_ADDR", services::LB_ADDR),
            ("SERVER_A", services::SERVER_A_ADDR),
            ("SERVER_B", services::SERVER_B_ADDR),
            ("MAX_FAILS", "1"),
            ("FAIL_TIMEOUT", "5s"),
            ("CONNECT_TIMEOUT", "100ms"),
            ("READ_TIMEOUT", "1s"),
        ],
    )
}

/// Starts the two servers and nginx, and waits until nginx answers through
/// the lb address.
pub fn start(live: &mut Live, opts: &ServiceOptions, cancel: &AtomicBool) -> Result<()> {
    let bin = services::find_program("nginx")?;
    services::start_backends(live, opts, cancel)?;
    let dir = services::abs_dir(&live.handle.dir())?;
    let tmp = dir.join("nginx-tmp");
    std::fs::create_dir_all(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let cfg = dir.join("nginx.conf");
    std::fs::write(&cfg, render(&dir.to_string_lossy())?)
        .with_context(|| format!("write {}", cfg.display()))?;
    let log = dir.join("lb.log");
    let _ = std::fs::remove_file(&log);
    // -p: prefix (relative paths), -e: the error log used before the
    // configuration is read (else /var/log/nginx), -c: our configuration.
    let spec = ServiceSpec {
        host: "lb".into(),
        argv: vec![
            bin.into(),
            "-p".into(),
            dir.clone().into(),
            "-e".into(),
            dir.join("nginx-error.log").into(),
            "-c".into(),
            cfg.into(),
        ],
        log: log.clone(),
    };
    let pid = live.backend.spawn_service(&mut live.handle, &spec)?;
    services::wait_serving(live, pid, &log, "nginx", Duration::from_secs(10), cancel)?;
    services::set_proxy_url(live);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_completely() {
        let s = render("/tmp/x").unwrap();
        assert!(s.contains("max_fails=1 fail_timeout=5s"));
        assert!(s.contains("proxy_next_upstream error timeout"));
        assert!(s.contains("pid /tmp/x/nginx.pid;"));
        assert!(!s.contains("{{"));
    }
}
