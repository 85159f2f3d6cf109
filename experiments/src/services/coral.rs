//! `coral`: a CoRAL pair. Single role: server-a is primary for 192.0.2.100
//! and server-b fronts it (its backup). Dual role (`--dual-role`, the paper's
//! evaluated configuration): additionally server-b is primary for
//! 192.0.2.101 and server-a fronts that one.
//!
//! Each node runs `coral node` from a configuration written into the state
//! directory, with a fresh pre-shared key (`coral.key`), the client host as
//! the outside host it pings after an address takeover, and its events
//! appended to the topology's `events.csv`. The witness (`coral witness`,
//! docs/DESIGN.md section 4) runs on the client host too (the "outside host"; a
//! third machine in a real deployment): no node takes over or goes simplex
//! without its grant, so a partition or a paused node never gives two voices.
//! Both nodes run the service's application mode (`app` in their
//! configuration).

use crate::services::{wait_for_log, AppMode, CoralOptions, ServiceOptions};
use crate::topology::{self, HostInfo, Live, Role, ServiceSpec, TopologyState};
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// The service address server-a is primary for.
pub const VIP_A: &str = "192.0.2.100";
/// The service address server-b is primary for (dual role only).
pub const VIP_B: &str = "192.0.2.101";
/// UDP port of the witness on the client host.
pub const WITNESS_PORT: u16 = 7012;

/// Check the CoRAL options.
pub fn check(opts: &ServiceOptions) -> Result<()> {
    let c = &opts.coral;
    if !(1..=10_000).contains(&c.heartbeat_ms) {
        bail!(
            "--heartbeat-ms must be between 1 and 10000, got {}",
            c.heartbeat_ms
        );
    }
    if !(2..=100).contains(&c.misses) {
        bail!("--misses must be between 2 and 100, got {}", c.misses);
    }
    Ok(())
}

/// One node of the pair: its host, node id, peer host, the addresses it is
/// primary for and those it fronts.
struct NodePlan {
    host: &'static str,
    id: u32,
    peer: &'static str,
    primary_for: Vec<&'static str>,
    fronts: Vec<&'static str>,
}

fn plan(dual: bool) -> Vec<NodePlan> {
    let n = |host, id, peer, primary_for, fronts| NodePlan {
        host,
        id,
        peer,
        primary_for,
        fronts,
    };
    if dual {
        vec![
            n("server-a", 1, "server-b", vec![VIP_A], vec![VIP_B]),
            n("server-b", 2, "server-a", vec![VIP_B], vec![VIP_A]),
        ]
    } else {
        vec![
            n("server-a", 1, "server-b", vec![VIP_A], vec![]),
            n("server-b", 2, "server-a", vec![], vec![VIP_A]),
        ]
    }
}

fn write_key(path: &Path) -> Result<()> {
    let mut k = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut k)?;
    let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(path, hex + "\n").with_context(|| format!("write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Start both nodes and wait until each says it is ready.
pub fn start(live: &mut Live, opts: &ServiceOptions, cancel: &AtomicBool) -> Result<()> {
    let coral_bin = topology::sibling_binary("coral")?;
    let dir = live.handle.dir().to_path_buf();
    let key = dir.join("coral.key");
    write_key(&key)?;
    let outside = live.handle.state.host("client")?.addr.clone();
    let c = opts.coral;
    let shared = Shared {
        coral_bin: &coral_bin,
        dir: &dir,
        key: &key,
        events: dir.join("events.csv"),
        // The witness first: a node asks it as soon as it declares its
        // peer failed.
        witness: format!("{outside}:{WITNESS_PORT}"),
        app_lines: app_lines(opts.app)?,
        outside,
        coral: c,
    };
    start_witness(live, &shared, cancel)?;
    let mut started = Vec::new();
    for node in plan(c.dual_role) {
        topology::check_cancel(cancel)?;
        if let Some(cores) = opts.server_cpu {
            live.backend
                .set_cpu_quota(&mut live.handle, node.host, cores)?;
        }
        let h = live.handle.state.host(node.host)?.clone();
        let p = live.handle.state.host(node.peer)?.clone();
        let cfg = dir.join(format!("{}.toml", node.host));
        let toml = node_toml(&shared, &node, &h, &p);
        std::fs::write(&cfg, toml).with_context(|| format!("write {}", cfg.display()))?;
        let log = dir.join(format!("{}.log", node.host));
        let _ = std::fs::remove_file(&log);
        let spec = ServiceSpec {
            host: node.host.to_string(),
            argv: vec![
                OsString::from(&coral_bin),
                "node".into(),
                "--config".into(),
                cfg.into(),
            ],
            log: log.clone(),
        };
        let pid = live.backend.spawn_service(&mut live.handle, &spec)?;
        started.push((node, pid, log));
    }
    for (node, pid, log) in &started {
        wait_ready(live, node, *pid, log, cancel)?;
    }
    let st = &mut live.handle.state;
    for v in vips(c.dual_role) {
        st.service_urls.push(format!("http://{v}/cgi-bin/webstone"));
    }
    Ok(())
}

/// What the witness and every node's configuration share.
struct Shared<'a> {
    coral_bin: &'a Path,
    dir: &'a Path,
    key: &'a Path,
    events: PathBuf,
    /// The client host's address (the outside host).
    outside: String,
    /// The witness's address and port.
    witness: String,
    /// The application lines of the configuration.
    app_lines: String,
    coral: CoralOptions,
}

/// The service addresses of the pair.
fn vips(dual: bool) -> Vec<&'static str> {
    if dual {
        vec![VIP_A, VIP_B]
    } else {
        vec![VIP_A]
    }
}

/// The application lines of both configurations (cgi: the webstone-cgi
/// beside coral-exp, like the unreplicated servers').
fn app_lines(app: AppMode) -> Result<String> {
    Ok(match app {
        AppMode::Inproc => "app = \"inproc\"\n".to_string(),
        AppMode::Cgi => format!(
            "app = \"cgi\"\ncgi_program = \"{}\"\n",
            topology::sibling_binary("webstone-cgi")?.display()
        ),
    })
}

/// `coral witness` on the client host, allowing both nodes, the spare and
/// the pair's addresses; waits for its ready line.
fn start_witness(live: &mut Live, sh: &Shared<'_>, cancel: &AtomicBool) -> Result<()> {
    let wlog = sh.dir.join("witness.log");
    let _ = std::fs::remove_file(&wlog);
    let mut wargv: Vec<OsString> = vec![
        OsString::from(sh.coral_bin),
        "witness".into(),
        "--listen".into(),
        sh.witness.clone().into(),
        "--key-file".into(),
        sh.key.into(),
        "--state".into(),
        sh.dir.join("witness.state").into(),
        "--events".into(),
        sh.events.clone().into(),
        "--allow-node".into(),
        "1".into(),
        "--allow-node".into(),
        "2".into(),
        // The spare, once it joined (`coral-exp join spare`), takes over
        // like any backup.
        "--allow-node".into(),
        "3".into(),
    ];
    for v in vips(sh.coral.dual_role) {
        wargv.push("--allow-vip".into());
        wargv.push(v.into());
    }
    let _ = std::fs::remove_file(sh.dir.join("witness.state"));
    let wpid = live.backend.spawn_service(
        &mut live.handle,
        &ServiceSpec {
            host: "client".into(),
            argv: wargv,
            log: wlog.clone(),
        },
    )?;
    wait_for_log(
        wpid,
        &wlog,
        "coral witness listening",
        Duration::from_secs(20),
        cancel,
    )
    .context("coral witness on the client host")
}

/// The TOML configuration of `node` (`h` its host, `p` its peer's).
fn node_toml(sh: &Shared<'_>, node: &NodePlan, h: &HostInfo, p: &HostInfo) -> String {
    let (host, id, c) = (node.host, node.id, &sh.coral);
    let mut toml = String::new();
    let _ = writeln!(
        toml,
        "name = \"{host}\"\nnode_id = {id}\nlan = \"{}\"",
        if h.dev.is_empty() { "eth0" } else { &h.dev }
    );
    let _ = writeln!(
        toml,
        "key_file = \"{}\"\nheartbeat_ms = {}\nmisses = {}",
        sh.key.display(),
        c.heartbeat_ms,
        c.misses
    );
    let _ = writeln!(
        toml,
        "events = \"{}\"\noutside = \"{}\"\nwitness = \"{}\"",
        sh.events.display(),
        sh.outside,
        sh.witness
    );
    toml.push_str(&sh.app_lines);
    let _ = writeln!(toml, "front = \"{}\"", c.front.as_str());
    // A node that loses a race for an address rejoins its peer.
    toml.push_str("rejoin = true\n");
    // Dual role: once alone, hand the address it fronted to a new server
    // that joins as its primary (coral-exp join does).
    // (eBPF front only: it keeps the survivor's open connections.)
    if !node.fronts.is_empty()
        && !node.primary_for.is_empty()
        && c.front == crate::services::Front::Ebpf
    {
        toml.push_str("hand_over_at_join = true\n");
    }
    if c.log_requests {
        toml.push_str("log_requests = true\n");
    }
    let _ = writeln!(
        toml,
        "\n[peer]\nnode_id = {}\naddr = \"{}\"\nmac = \"{}\"",
        3 - id,
        p.addr,
        p.mac
    );
    for (vips, role) in [(&node.primary_for, "primary"), (&node.fronts, "backup")] {
        for v in vips.iter() {
            let _ = writeln!(
                toml,
                "\n[[service]]\nvip = \"{v}\"\nport = 80\nrole = \"{role}\""
            );
        }
    }
    toml
}

/// Wait for `node`'s ready line, then record its roles in the topology's
/// state.
fn wait_ready(
    live: &mut Live,
    node: &NodePlan,
    pid: u32,
    log: &Path,
    cancel: &AtomicBool,
) -> Result<()> {
    let host = node.host;
    wait_for_log(
        pid,
        log,
        &format!("coral node {host} ready"),
        Duration::from_secs(40),
        cancel,
    )
    .with_context(|| format!("coral node on {host}"))?;
    let st = &mut live.handle.state;
    if let Some(h) = st.hosts.get_mut(host) {
        h.roles = node
            .primary_for
            .iter()
            .map(|v| Role {
                vip: v.to_string(),
                role: "primary".into(),
            })
            .chain(node.fronts.iter().map(|v| Role {
                vip: v.to_string(),
                role: "backup".into(),
            }))
            .collect();
    }
    Ok(())
}

/// The fault that cuts `host` off from the witness (its UDP port on the
/// client host blocked in `host`'s namespace, both ways): `coral-exp fault
/// isolate-witness HOST`.
pub fn isolate_witness_fault(s: &TopologyState, host: &str) -> Result<faultinject::Fault> {
    if s.service != "coral" {
        bail!(
            "isolate-witness needs a CoRAL topology (this one runs {})",
            s.service
        );
    }
    let netns = s.host(host)?.netns.clone();
    if netns.is_empty() {
        bail!("host {host} has no namespace of its own");
    }
    Ok(faultinject::Fault::IsolateWitness {
        netns,
        addr: s.host("client")?.addr.clone(),
        port: WITNESS_PORT,
    })
}

/// The configuration file `start` wrote for `host`.
pub fn config_path(state_dir: &Path, host: &str) -> PathBuf {
    state_dir.join(format!("{host}.toml"))
}
