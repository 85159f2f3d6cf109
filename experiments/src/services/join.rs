//! `coral-exp join HOST`: a fresh CoRAL node on HOST joins the simplex node
//! of a live CoRAL topology (paper section 3.2, docs/DESIGN.md 6).
//!
//! The simplex node is found in the topology's `events.csv`: the other
//! server whose last `mode` event went to `Simplex`. HOST must not run a
//! node (a live one is refused: it is already serving) and must reach the
//! simplex node (a cut link is refused, naming it). Whatever a fenced or
//! killed node left on HOST is removed first: its nft tables (`coral_*`)
//! and the service addresses on its interfaces. HOST's configuration is the
//! simplex node's (key, H, K, witness, application, front, events) with
//! HOST's identity, the simplex node as its peer and every service address
//! fronted, except in dual role (the simplex node hands over the address
//! it fronted before the fault): HOST is configured primary for that one
//! and the simplex node becomes its front; `coral join` runs there until
//! the topology goes down. The join's Table 2 rows are the simplex node's
//! `integration` event.

use crate::measure::{integration_breakdown, read_events};
use crate::services::coral::config_path;
use crate::services::wait_for_log;
use crate::topology::{Role, StateHandle, Topology, TopologyState};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// TCP port of the JOIN channel on the simplex node (the node's default).
pub const JOIN_PORT: u16 = 7014;

/// The hosts that may run a CoRAL node, and their node ids.
const NODE_IDS: [(&str, u32); 3] = [("server-a", 1), ("server-b", 2), ("spare", 3)];

/// What a join did.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The simplex node it joined.
    pub simplex: String,
    /// The simplex node's `integration` rows (ms), if recorded yet.
    pub integration: Option<BTreeMap<String, f64>>,
}

/// Join `host` to the simplex node of the CoRAL topology in `h`.
pub fn join(
    backend: &dyn Topology,
    h: &mut StateHandle,
    host: &str,
    cancel: &AtomicBool,
) -> Result<Joined> {
    let st = h.state.clone();
    if st.service != "coral" {
        bail!("join needs a CoRAL topology (this one runs {})", st.service);
    }
    let Some(&(_, id)) = NODE_IDS.iter().find(|(n, _)| *n == host) else {
        bail!("{host} cannot run a CoRAL node (server-a, server-b or spare)");
    };
    let dir = h.dir().to_path_buf();
    let alive: Vec<u32> = st
        .host(host)?
        .pids
        .iter()
        .copied()
        .filter(|p| faultinject::pid_alive(*p))
        .collect();
    if !alive.is_empty() {
        bail!("{host} is already serving (pids {alive:?}): a join needs a host without a running node");
    }
    let simplex = simplex_node(&dir.join("events.csv"), host)?;
    let to = st.host(&simplex)?.addr.clone();
    reachable(backend, &st, host, &simplex, &to)?;
    let vips = clean_host(backend, &st, host, &dir, &simplex)?;
    let cfg = dir.join(format!("{host}.toml"));
    let moved = moved_vips(&std::fs::read_to_string(config_path(&dir, &simplex))?);
    let toml = joiner_config(&dir, &simplex, &st, host, id, &vips, &moved)?;
    std::fs::write(&cfg, toml).with_context(|| format!("write {}", cfg.display()))?;
    let log = dir.join(format!("{host}.join.log"));
    let _ = std::fs::remove_file(&log);
    let spec = crate::topology::ServiceSpec {
        host: host.to_string(),
        argv: vec![
            crate::topology::sibling_binary("coral")?.into(),
            "join".into(),
            "--config".into(),
            cfg.into(),
            "--to".into(),
            format!("{to}:{JOIN_PORT}").into(),
        ],
        log: log.clone(),
    };
    let since = faultinject::now_unix_ns();
    let pid = backend.spawn_service(h, &spec)?;
    wait_for_log(
        pid,
        &log,
        &format!("coral node {host} joining"),
        Duration::from_secs(40),
        cancel,
    )
    .with_context(|| format!("coral join on {host}"))?;
    wait_joined(&dir.join("events.csv"), host, pid, &log, since, cancel)?;
    set_roles(&mut h.state, host, &simplex, &vips, &moved);
    h.save()?;
    let events = read_events(&dir.join("events.csv"))?;
    let after: Vec<_> = events
        .into_iter()
        .filter(|e| e.t_unix_ns >= since && e.host == simplex)
        .collect();
    Ok(Joined {
        simplex,
        integration: integration_breakdown(&after),
    })
}

/// The server other than `host` whose last `mode` event went to `Simplex`.
fn simplex_node(events: &Path, host: &str) -> Result<String> {
    let rows = read_events(events).unwrap_or_default();
    let mut last: BTreeMap<&str, &str> = BTreeMap::new();
    for e in rows.iter().filter(|e| e.event == "mode") {
        last.insert(&e.host, &e.detail);
    }
    let simplex: Vec<&str> = last
        .iter()
        .filter(|(h, d)| **h != host && d.contains("to=Simplex"))
        .map(|(h, _)| *h)
        .collect();
    match simplex.as_slice() {
        [one] => Ok(one.to_string()),
        [] => bail!(
            "no node serves alone (no `mode ... to=Simplex` in {}): a join needs a simplex node, fault one server first",
            events.display()
        ),
        many => bail!("more than one node serves alone: {many:?}"),
    }
}

/// Refuse a `host` that cannot reach the simplex node (its link cut): no
/// ping answered within 2 s (a link just restored may take a moment).
fn reachable(
    backend: &dyn Topology,
    st: &TopologyState,
    host: &str,
    simplex: &str,
    to: &str,
) -> Result<()> {
    let argv: Vec<OsString> = ["ping", "-c", "1", "-w", "2", to]
        .iter()
        .map(OsString::from)
        .collect();
    let out = backend.command(st, host, &argv)?.output()?;
    if !out.status.success() {
        bail!(
            "{host} cannot reach the simplex node {simplex} ({to}): is its link cut? (`coral-exp fault link-restore {host}`)"
        );
    }
    Ok(())
}

/// Remove what a node that ran on `host` left: nft tables `coral_*` and
/// the service addresses (from the simplex node's configuration) on its
/// interfaces. Returns those addresses.
fn clean_host(
    backend: &dyn Topology,
    st: &TopologyState,
    host: &str,
    dir: &Path,
    simplex: &str,
) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(config_path(dir, simplex))
        .with_context(|| format!("the configuration of {simplex}"))?;
    let vips: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("vip = "))
        .map(|v| v.trim_matches('"').to_string())
        .collect();
    let run = |args: &[&str]| -> Result<std::process::Output> {
        let argv: Vec<OsString> = args.iter().map(OsString::from).collect();
        Ok(backend.command(st, host, &argv)?.output()?)
    };
    let tables = run(&["nft", "list", "tables"])?;
    for line in String::from_utf8_lossy(&tables.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let ["table", family, name] = f.as_slice() {
            if name.starts_with("coral_") {
                run(&["nft", "delete", "table", family, name])?;
            }
        }
    }
    let dev = st.host(host)?.dev.clone();
    let dev = if dev.is_empty() { "eth0".into() } else { dev };
    for v in &vips {
        for (d, len) in [(dev.as_str(), "32"), (dev.as_str(), "24"), ("lo", "32")] {
            let _ = run(&["ip", "addr", "del", &format!("{v}/{len}"), "dev", d]);
        }
    }
    Ok(vips)
}

/// HOST's configuration: the simplex node's settings, HOST's identity, the
/// simplex node as its peer, every address fronted.
fn joiner_config(
    dir: &Path,
    simplex: &str,
    st: &TopologyState,
    host: &str,
    id: u32,
    vips: &[String],
    moved: &[String],
) -> Result<String> {
    let text = std::fs::read_to_string(config_path(dir, simplex))?;
    let h = st.host(host)?;
    let p = st.host(simplex)?;
    let peer_id = NODE_IDS
        .iter()
        .find(|(n, _)| *n == simplex)
        .map_or(0, |(_, i)| *i);
    let mut toml = String::new();
    let _ = writeln!(
        toml,
        "name = \"{host}\"\nnode_id = {id}\nlan = \"{}\"",
        if h.dev.is_empty() { "eth0" } else { &h.dev }
    );
    // Everything before [peer] but the identity.
    for l in text.lines().take_while(|l| !l.starts_with("[peer]")) {
        if !(l.starts_with("name =") || l.starts_with("node_id =") || l.starts_with("lan =")) {
            toml.push_str(l);
            toml.push('\n');
        }
    }
    let _ = writeln!(
        toml,
        "[peer]\nnode_id = {peer_id}\naddr = \"{}\"\nmac = \"{}\"",
        p.addr, p.mac
    );
    for v in vips {
        let role = if moved.contains(v) {
            "primary"
        } else {
            "backup"
        };
        let _ = writeln!(
            toml,
            "\n[[service]]\nvip = \"{v}\"\nport = 80\nrole = \"{role}\""
        );
    }
    Ok(toml)
}

/// The addresses a simplex node configured with `hand_over_at_join` hands
/// to a joiner (those it is configured `backup` for), from its
/// configuration's text; none without the setting.
fn moved_vips(text: &str) -> Vec<String> {
    if !text.lines().any(|l| l.trim() == "hand_over_at_join = true") {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut vip = None;
    for l in text.lines().map(str::trim) {
        if let Some(v) = l.strip_prefix("vip = ") {
            vip = Some(v.trim_matches('"').to_string());
        } else if l == "role = \"backup\"" {
            out.extend(vip.take());
        }
    }
    out
}

/// Wait for HOST's `joined` event (after `since`); a node that stops first
/// failed its join (its log says why).
fn wait_joined(
    events: &Path,
    host: &str,
    pid: u32,
    log: &Path,
    since: u64,
    cancel: &AtomicBool,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows = read_events(events).unwrap_or_default();
        if rows
            .iter()
            .any(|e| e.t_unix_ns >= since && e.host == host && e.event == "joined")
        {
            return Ok(());
        }
        if !faultinject::pid_alive(pid) {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            bail!("the join of {host} failed: {}", text.trim());
        }
        if cancel.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        if Instant::now() > deadline {
            bail!("{host} did not join within 15 s (log {})", log.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// After the join: HOST fronts every address, the simplex node is primary.
fn set_roles(st: &mut TopologyState, host: &str, simplex: &str, vips: &[String], moved: &[String]) {
    for (h, joiner) in [(host, true), (simplex, false)] {
        if let Some(info) = st.hosts.get_mut(h) {
            info.roles = vips
                .iter()
                .map(|v| Role {
                    vip: v.clone(),
                    role: if moved.contains(v) == joiner {
                        "primary"
                    } else {
                        "backup"
                    }
                    .into(),
                })
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUAL_B: &str = "name = \"server-b\"\nhand_over_at_join = true\n[peer]\nnode_id = 1\n\n\
        [[service]]\nvip = \"192.0.2.100\"\nport = 80\nrole = \"backup\"\n\n\
        [[service]]\nvip = \"192.0.2.101\"\nport = 80\nrole = \"primary\"\n";

    #[test]
    fn the_moved_address_is_the_one_the_simplex_node_fronted_in_dual_role() {
        assert_eq!(moved_vips(DUAL_B), ["192.0.2.100"]);
        // Single role, or dual role without the setting: nothing moves.
        assert!(moved_vips(&DUAL_B.replace("hand_over_at_join = true\n", "")).is_empty());
        let single = "[[service]]\nvip = \"192.0.2.100\"\nrole = \"primary\"\n";
        assert!(moved_vips(single).is_empty());
    }

    #[test]
    fn roles_after_a_dual_role_join() {
        let mut st = TopologyState::new("netns", "coral", "t");
        for h in ["spare", "server-b"] {
            st.hosts.insert(h.into(), Default::default());
        }
        let vips = ["192.0.2.100".to_string(), "192.0.2.101".to_string()];
        fn roles(st: &TopologyState, h: &str) -> Vec<String> {
            st.hosts[h].roles.iter().map(|r| r.role.clone()).collect()
        }
        set_roles(&mut st, "spare", "server-b", &vips, &vips[..1]);
        assert_eq!(roles(&st, "spare"), ["primary", "backup"]);
        assert_eq!(roles(&st, "server-b"), ["backup", "primary"]);
        set_roles(&mut st, "spare", "server-b", &vips, &[]);
        assert_eq!(roles(&st, "spare"), ["backup", "backup"]);
        assert_eq!(roles(&st, "server-b"), ["primary", "primary"]);
    }
}
