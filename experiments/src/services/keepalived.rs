//! `keepalived`: VRRP v3 between server-a and server-b for the service
//! address 192.0.2.100 (unicast adverts on the LAN, a sub-second advert
//! interval, `nopreempt`), each server running webstone-server bound to
//! 0.0.0.0:80. server-a has the higher priority and becomes master first.
//! The configuration is rendered from `experiments/templates/keepalived.conf`
//! into the state directory (`keepalived-<host>.conf`), with the pid files.
//!
//! Roles: `primary` is the current VRRP master (the server holding the
//! address), resolved again whenever a fault names a role.

use crate::services::{self, ServiceOptions};
use crate::topology::{Live, Role, ServiceSpec, Topology, TopologyState};
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// The configuration template (placeholders `{{NAME}}`).
pub const TEMPLATE: &str = include_str!("../../templates/keepalived.conf");

/// The service address the two servers share.
pub const VIP: &str = "192.0.2.100";

/// Renders the configuration of `host` (priority, peer) for an advert
/// interval of `advert_ms`.
pub fn render(host: &str, dev: &str, advert_ms: u64) -> Result<String> {
    let (addr, peer, prio) = match host {
        "server-a" => (services::SERVER_A_ADDR, services::SERVER_B_ADDR, "150"),
        "server-b" => (services::SERVER_B_ADDR, services::SERVER_A_ADDR, "100"),
        other => bail!("keepalived runs on server-a and server-b, not {other}"),
    };
    let advert = format!("{:.2}", advert_ms as f64 / 1000.0);
    services::render(
        TEMPLATE,
        &[
            ("HOST", host),
            ("DEV", dev),
            ("ADDR", addr),
            ("PEER", peer),
            ("PRIORITY", prio),
            ("ADVERT_S", &advert),
            ("VIP", VIP),
        ],
    )
}

/// Checks the advert interval: VRRP v3 counts it in centiseconds.
pub fn check(opts: &ServiceOptions) -> Result<()> {
    let a = opts.lb.advert_ms;
    if !(10..=10_000).contains(&a) || !a.is_multiple_of(10) {
        bail!("--advert-ms must be a multiple of 10 between 10 and 10000, got {a}");
    }
    Ok(())
}

/// True if `host` holds the service address now.
pub fn holds_vip(backend: &dyn Topology, s: &TopologyState, host: &str) -> Result<bool> {
    let argv: Vec<OsString> = ["ip", "-o", "-4", "addr", "show"]
        .iter()
        .map(OsString::from)
        .collect();
    let out = backend
        .command(s, host, &argv)?
        .output()
        .with_context(|| format!("list addresses on {host}"))?;
    if !out.status.success() {
        bail!(
            "ip addr show on {host} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let needle = format!(" {VIP}/");
    Ok(String::from_utf8_lossy(&out.stdout).contains(&needle))
}

/// Sets `primary` on the current master and `backup` on the other server.
pub fn refresh_roles(backend: &dyn Topology, s: &mut TopologyState) -> Result<()> {
    let mut holders = Vec::new();
    for h in ["server-a", "server-b"] {
        if holds_vip(backend, s, h)? {
            holders.push(h);
        }
    }
    for h in ["server-a", "server-b"] {
        if let Some(info) = s.hosts.get_mut(h) {
            info.roles = vec![Role {
                vip: VIP.into(),
                role: if holders.contains(&h) {
                    "primary"
                } else {
                    "backup"
                }
                .into(),
            }];
        }
    }
    Ok(())
}

/// Starts webstone-server and keepalived on both servers and waits until
/// server-a is master and the address answers.
pub fn start(live: &mut Live, opts: &ServiceOptions, cancel: &AtomicBool) -> Result<()> {
    check(opts)?;
    let bin = services::find_program("keepalived")?;
    services::start_backends(live, opts, cancel)?;
    let dir = services::abs_dir(&live.handle.dir())?;
    let mut pids = Vec::new();
    for host in ["server-a", "server-b"] {
        let dev = {
            let h = live.handle.state.host(host)?;
            if h.dev.is_empty() {
                "eth0".to_string()
            } else {
                h.dev.clone()
            }
        };
        let cfg = dir.join(format!("keepalived-{host}.conf"));
        std::fs::write(&cfg, render(host, &dev, opts.lb.advert_ms)?)
            .with_context(|| format!("write {}", cfg.display()))?;
        let log = dir.join(format!("keepalived-{host}.log"));
        let _ = std::fs::remove_file(&log);
        let pidf = |k: &str| dir.join(format!("keepalived-{host}.{k}.pid"));
        let spec = ServiceSpec {
            host: host.into(),
            argv: vec![
                bin.clone().into(),
                "--dont-fork".into(),
                "--log-console".into(),
                "--log-detail".into(),
                "--no-syslog".into(),
                "--vrrp".into(),
                "--use-file".into(),
                cfg.into(),
                "--pid".into(),
                pidf("main").into(),
                "--vrrp_pid".into(),
                pidf("vrrp").into(),
                "--checkers_pid".into(),
                pidf("checkers").into(),
                "--bfd_pid".into(),
                pidf("bfd").into(),
            ],
            log: log.clone(),
        };
        let pid = live.backend.spawn_service(&mut live.handle, &spec)?;
        pids.push((host, pid, log));
    }
    // server-a (higher priority) takes the address after its master-down
    // interval (3 adverts plus skew).
    let deadline =
        Instant::now() + Duration::from_millis(opts.lb.advert_ms * 5) + Duration::from_secs(10);
    loop {
        crate::topology::check_cancel(cancel)?;
        for (host, pid, log) in &pids {
            if !faultinject::pid_alive(*pid) {
                bail!(
                    "keepalived on {host} exited; its log ({}) says: {}",
                    log.display(),
                    std::fs::read_to_string(log).unwrap_or_default().trim()
                );
            }
        }
        if holds_vip(live.backend.as_ref(), &live.handle.state, "server-a")? {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "server-a did not become VRRP master for {VIP} (logs in {})",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    refresh_roles(live.backend.as_ref(), &mut live.handle.state)?;
    let url = format!("http://{VIP}/cgi-bin/webstone");
    live.handle.state.service_urls = vec![url.clone()];
    services::wait_url(
        live,
        &url,
        pids[0].1,
        &pids[0].2,
        Duration::from_secs(10),
        cancel,
    )
    .context("keepalived service address")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_both_hosts() {
        let a = render("server-a", "eth0", 100).unwrap();
        assert!(a.contains("advert_int 0.10"));
        assert!(a.contains("priority 150"));
        assert!(a.contains("nopreempt"));
        assert!(a.contains("192.0.2.100/24 dev eth0"));
        let b = render("server-b", "eth0", 50).unwrap();
        assert!(b.contains("priority 100") && b.contains("advert_int 0.05"));
        assert!(render("lb", "eth0", 100).is_err());
    }
}
