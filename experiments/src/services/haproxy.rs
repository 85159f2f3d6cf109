//! `haproxy`: HAProxy on the lb host in front of two unreplicated
//! webstone-servers (server-a, server-b), with active HTTP health checks.
//! Two profiles ([`LbProfile`]): `stock` (the timeouts of a stock-like
//! configuration: checks every 2 s, `timeout server 30s`) and `tuned` for
//! fast failover (checks every 100 ms, `observe layer4`, retries with
//! `option redispatch` and `retry-on`, `timeout server 300ms`). The
//! configuration is rendered from `experiments/templates/haproxy.cfg` into the
//! state directory (`haproxy.cfg`), where the report shows it.

use crate::services::{self, LbProfile, ServiceOptions};
use crate::topology::{Live, ServiceSpec};
use anyhow::{Context, Result};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// The configuration template (placeholders `{{NAME}}`).
pub const TEMPLATE: &str = include_str!("../../templates/haproxy.cfg");

/// The placeholder values of a profile that are not addresses or paths:
/// (timeout connect, timeout server, retries, extra `defaults` lines,
/// `default-server` options).
fn profile_values(p: LbProfile) -> [(&'static str, &'static str); 5] {
    match p {
        LbProfile::Stock => [
            ("TIMEOUT_CONNECT", "5s"),
            ("TIMEOUT_SERVER", "30s"),
            ("RETRIES", "3"),
            ("DEFAULTS_EXTRA", ""),
            ("SERVER_OPTS", "inter 2s fall 3 rise 2"),
        ],
        LbProfile::Tuned => [
            ("TIMEOUT_CONNECT", "100ms"),
            ("TIMEOUT_SERVER", "300ms"),
            ("RETRIES", "3"),
            (
                "DEFAULTS_EXTRA",
                "    timeout check 100ms\n    option redispatch 1\n    retry-on conn-failure empty-response response-timeout\n",
            ),
            (
                "SERVER_OPTS",
                "inter 100ms fastinter 100ms downinter 500ms fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down",
            ),
        ],
    }
}

/// Renders the configuration for `profile` with the state directory `state`.
pub fn render(profile: LbProfile, state: &str) -> Result<String> {
    let mut vars: Vec<(&str, &str)> = vec![
        ("PROFILE", profile.name()),
        ("STATE", state),
        ("LB_ADDR", services::LB_ADDR),
        ("SERVER_A", services::SERVER_A_ADDR),
        ("SERVER_B", services::SERVER_B_ADDR),
    ];
    vars.extend(profile_values(profile));
    services::render(TEMPLATE, &vars)
}

/// Starts the two servers and HAProxy, and waits until HAProxy answers
/// through the lb address.
pub fn start(live: &mut Live, opts: &ServiceOptions, cancel: &AtomicBool) -> Result<()> {
    let bin = services::find_program("haproxy")?;
    services::start_backends(live, opts, cancel)?;
    let dir = services::abs_dir(&live.handle.dir())?;
    let cfg = dir.join("haproxy.cfg");
    let text = render(opts.lb.profile, &dir.to_string_lossy())?;
    std::fs::write(&cfg, text).with_context(|| format!("write {}", cfg.display()))?;
    let log = dir.join("lb.log");
    let _ = std::fs::remove_file(&log);
    // -db: stay in the foreground (the kit tracks and kills this pid).
    let spec = ServiceSpec {
        host: "lb".into(),
        argv: vec![bin.into(), "-db".into(), "-f".into(), cfg.into()],
        log: log.clone(),
    };
    let pid = live.backend.spawn_service(&mut live.handle, &spec)?;
    services::wait_serving(live, pid, &log, "haproxy", Duration::from_secs(10), cancel)?;
    services::set_proxy_url(live);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_profiles_render_completely() {
        let s = render(LbProfile::Stock, "/tmp/x").unwrap();
        assert!(s.contains("timeout server 30s"));
        assert!(!s.contains("redispatch"));
        let t = render(LbProfile::Tuned, "/tmp/x").unwrap();
        assert!(t.contains("timeout server 300ms"));
        assert!(t.contains("observe layer4"));
        assert!(t.contains("option redispatch"));
        assert!(t.contains("server server-b 192.0.2.12:80 check"));
        assert!(!t.contains("{{"));
    }
}
