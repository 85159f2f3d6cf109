//! The services `coral-exp up` can run on a topology, one module each. A
//! service starts its processes through the backend (so they land in the
//! right namespace and cgroup), waits until they serve, and fills in the
//! roles and service URLs of topology.json. A service is started on a
//! topology that is already built ([`Live`]); the topology never calls back
//! in here.

pub mod coral;
pub mod haproxy;
pub mod join;
pub mod keepalived;
pub mod nginx;
pub mod unreplicated;

use crate::topology::{Live, Role, Topology, TopologyState};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
pub use workload::cgi_gateway::AppMode;

/// Services `up` knows.
pub const SERVICES: [&str; 5] = ["unreplicated", "coral", "haproxy", "nginx", "keepalived"];

/// A service to start, with its options.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceOptions {
    /// Its name, one of [`SERVICES`].
    pub name: String,
    /// Servers running it (1 or 2; only `unreplicated` uses 1).
    pub servers: u8,
    /// CPU quota of each server host it runs on, in cores (cgroup v1;
    /// None: no quota).
    pub server_cpu: Option<f64>,
    /// Options of the CoRAL service (ignored by the others).
    pub coral: CoralOptions,
    /// Options of the haproxy and keepalived baselines (ignored by the others).
    pub lb: LbOptions,
    /// The WebStone application on every server: in process, or a
    /// `webstone-cgi` process per request (the paper's).
    pub app: AppMode,
}

/// Options of the CoRAL service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CoralOptions {
    /// Heartbeat period, ms.
    pub heartbeat_ms: u64,
    /// Missed heartbeats that declare the peer failed.
    pub misses: u32,
    /// Dual role: each server fronts one address and is primary for the other.
    pub dual_role: bool,
    /// The backup's frame source (the node's `front`; config.json's
    /// `coral.front`).
    pub front: Front,
    /// Each node prints a line per executed request (the node's
    /// `log_requests`) into its log, for the campaign's duplicate count.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub log_requests: bool,
}

/// The backup's frame source: the node's `front` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Front {
    /// The tc ingress BPF program and its ring (the node's default).
    #[default]
    Ebpf,
    /// The AF_PACKET socket with its classic BPF filter.
    Packet,
}

impl Front {
    /// As the node's configuration spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Front::Ebpf => "ebpf",
            Front::Packet => "packet",
        }
    }
}

impl CoralOptions {
    /// The options as they run on `topology`. A Docker topology runs the
    /// packet front: loading the eBPF program in a container needs
    /// CAP_SYS_ADMIN, because Docker Engine 20.10 cannot grant CAP_BPF, and
    /// the kit gives its containers no CAP_SYS_ADMIN.
    pub fn on_topology(self, topology: &str) -> CoralOptions {
        CoralOptions {
            front: if topology == "docker" {
                Front::Packet
            } else {
                self.front
            },
            ..self
        }
    }
}

impl Default for CoralOptions {
    fn default() -> Self {
        // The paper's heartbeat period (section 4.2).
        CoralOptions {
            heartbeat_ms: 100,
            misses: 3,
            dual_role: false,
            front: Front::Ebpf,
            log_requests: false,
        }
    }
}

/// Check the service name and its options before anything is built.
pub fn check(opts: &ServiceOptions) -> Result<()> {
    match opts.name.as_str() {
        "unreplicated" => Ok(()),
        "coral" => coral::check(opts),
        "haproxy" | "nginx" => Ok(()),
        "keepalived" => keepalived::check(opts),
        other => bail!(
            "unknown service `{other}` (one of: {})",
            SERVICES.join(", ")
        ),
    }
}

/// Start the service of `opts` on the built topology and wait until it serves.
pub fn start(live: &mut Live, opts: &ServiceOptions, cancel: &AtomicBool) -> Result<()> {
    match opts.name.as_str() {
        "unreplicated" => unreplicated::start(live, opts, cancel),
        "coral" => coral::start(live, opts, cancel),
        "haproxy" => haproxy::start(live, opts, cancel),
        "nginx" => nginx::start(live, opts, cancel),
        "keepalived" => keepalived::start(live, opts, cancel),
        other => bail!("unknown service `{other}`"),
    }
}

/// The arguments that make `webstone-server` run `app` (for `cgi`: the
/// `webstone-cgi` beside coral-exp, named explicitly so a missing one is an
/// error before anything starts).
pub fn app_args(app: AppMode) -> Result<Vec<std::ffi::OsString>> {
    let mut v: Vec<std::ffi::OsString> = vec!["--app".into(), app.as_str().into()];
    if app == AppMode::Cgi {
        v.push("--cgi-program".into());
        v.push(crate::topology::sibling_binary("webstone-cgi")?.into());
    }
    Ok(v)
}

/// Waits until the process's log says "listening on" (webstone-server's
/// ready line), or fails if it exits first, 10 s pass, or `cancel` is set.
pub fn wait_ready(pid: u32, log: &Path, cancel: &AtomicBool) -> Result<()> {
    wait_for_log(pid, log, "listening on", Duration::from_secs(10), cancel)
}

/// Waits until `log` contains `marker`; fails if the process exits first,
/// `within` passes, or `cancel` is set.
pub fn wait_for_log(
    pid: u32,
    log: &Path,
    marker: &str,
    within: Duration,
    cancel: &AtomicBool,
) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(marker) {
            return Ok(());
        }
        if !faultinject::pid_alive(pid) {
            bail!(
                "exited before it was ready; its log ({}) says: {}",
                log.display(),
                text.trim()
            );
        }
        if cancel.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        if Instant::now() > deadline {
            bail!(
                "not ready after {} s (log {})",
                within.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The lb host's address: the service address of the proxies.
pub const LB_ADDR: &str = "192.0.2.10";
/// server-a's LAN address.
pub const SERVER_A_ADDR: &str = "192.0.2.11";
/// server-b's LAN address.
pub const SERVER_B_ADDR: &str = "192.0.2.12";

/// HAProxy configuration profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LbProfile {
    /// Stock-like timeouts: checks every 2 s, `timeout server 30s`.
    #[default]
    Stock,
    /// Tuned for fast failover: 100 ms checks, `observe layer4`, retries
    /// with redispatch, `timeout server 300ms`.
    Tuned,
}

impl LbProfile {
    /// `stock` or `tuned`.
    pub fn name(self) -> &'static str {
        match self {
            LbProfile::Stock => "stock",
            LbProfile::Tuned => "tuned",
        }
    }
}

/// Options of the load-balancer baselines (haproxy, keepalived).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LbOptions {
    /// HAProxy profile.
    pub profile: LbProfile,
    /// VRRP advert interval of keepalived, ms (multiple of 10).
    pub advert_ms: u64,
}

impl Default for LbOptions {
    fn default() -> Self {
        // 100 ms adverts: a master-down interval of about 3 adverts, the
        // same detection budget as CoRAL's default 3 x 100 ms heartbeats.
        LbOptions {
            profile: LbProfile::Stock,
            advert_ms: 100,
        }
    }
}

/// Fills `{{NAME}}` placeholders of `template` from `vars`; fails if one is
/// left unfilled.
pub fn render(template: &str, vars: &[(&str, &str)]) -> Result<String> {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{{{k}}}}}"), v);
    }
    if let Some(i) = s.find("{{") {
        let name: String = s[i..].chars().take_while(|c| *c != '}').collect();
        bail!("template placeholder {name}}}}} has no value");
    }
    Ok(s)
}

/// Finds a system program on PATH or in /usr/sbin, /sbin; a clear error
/// naming the Debian package otherwise.
pub fn find_program(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs =
        std::env::split_paths(&path).chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from));
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("`{name}` is not installed (Debian package `{name}`; run scripts/install-deps.sh)")
}

/// `dir` as an absolute path (configuration files name their paths fully).
pub fn abs_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    std::path::absolute(dir).with_context(|| format!("absolute path of {}", dir.display()))
}

/// Starts unreplicated webstone-servers on server-a and server-b for a
/// baseline that fronts them; clears their own URLs and roles (the
/// baseline's service address replaces them).
pub fn start_backends(live: &mut Live, opts: &ServiceOptions, cancel: &AtomicBool) -> Result<()> {
    let mut o = opts.clone();
    o.servers = 2;
    unreplicated::start(live, &o, cancel)?;
    let st = &mut live.handle.state;
    st.service_urls.clear();
    for h in ["server-a", "server-b"] {
        if let Some(i) = st.hosts.get_mut(h) {
            i.roles.clear();
        }
    }
    Ok(())
}

/// Waits until a GET of `url` from the client host returns 200 (curl),
/// failing if process `pid` exits (its `log` is quoted), `within` passes or
/// `cancel` is set.
pub fn wait_url(
    live: &Live,
    url: &str,
    pid: u32,
    log: &Path,
    within: Duration,
    cancel: &AtomicBool,
) -> Result<()> {
    let deadline = Instant::now() + within;
    let argv: Vec<std::ffi::OsString> = [
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-m",
        "1",
        &format!("{url}?size=16"),
    ]
    .iter()
    .map(Into::into)
    .collect();
    loop {
        let out = live
            .backend
            .command(live.state(), "client", &argv)?
            .output()
            .context("run curl in the client namespace (is curl installed?)")?;
        if String::from_utf8_lossy(&out.stdout).trim() == "200" {
            return Ok(());
        }
        if !faultinject::pid_alive(pid) {
            bail!(
                "exited before it served; its log ({}) says: {}",
                log.display(),
                std::fs::read_to_string(log).unwrap_or_default().trim()
            );
        }
        if cancel.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer 200 within {} s", within.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`wait_url`] on the lb address, naming the proxy in the error.
pub fn wait_serving(
    live: &Live,
    pid: u32,
    log: &Path,
    name: &str,
    within: Duration,
    cancel: &AtomicBool,
) -> Result<()> {
    let url = format!("http://{LB_ADDR}/cgi-bin/webstone");
    wait_url(live, &url, pid, log, within, cancel).with_context(|| format!("{name} on lb"))
}

/// Sets the proxies' service URL (the lb address) and their initial roles.
pub fn set_proxy_url(live: &mut Live) {
    let st = &mut live.handle.state;
    st.service_urls = vec![format!("http://{LB_ADDR}/cgi-bin/webstone")];
    let _ = refresh_roles(live.backend.as_ref(), &mut live.handle.state);
}

/// Established TCP connections on port 80 of `host` now (`ss`).
pub fn established_on_80(backend: &dyn Topology, s: &TopologyState, host: &str) -> Result<usize> {
    let argv: Vec<std::ffi::OsString> = ["ss", "-Htn", "state", "established", "( sport = :80 )"]
        .iter()
        .map(Into::into)
        .collect();
    let out = backend
        .command(s, host, &argv)?
        .output()
        .with_context(|| format!("run ss on {host}"))?;
    if !out.status.success() {
        bail!(
            "ss on {host} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count())
}

/// Re-resolves the roles that change while a baseline runs (docs/DESIGN.md 10):
/// for a proxy, `primary` is the server holding the most established
/// connections now (server-a on a tie) and the other server is `backup`; for
/// keepalived, `primary` is the current VRRP master. Other services keep
/// their roles.
pub fn refresh_roles(backend: &dyn Topology, s: &mut TopologyState) -> Result<()> {
    match s.service.as_str() {
        "haproxy" | "nginx" => {
            let a = established_on_80(backend, s, "server-a")?;
            let b = established_on_80(backend, s, "server-b")?;
            let primary = if b > a { "server-b" } else { "server-a" };
            for h in ["server-a", "server-b"] {
                if let Some(i) = s.hosts.get_mut(h) {
                    i.roles = vec![Role {
                        vip: LB_ADDR.into(),
                        role: if h == primary { "primary" } else { "backup" }.into(),
                    }];
                }
            }
            Ok(())
        }
        "keepalived" => keepalived::refresh_roles(backend, s),
        _ => Ok(()),
    }
}
