//! Topologies behind one trait ([`Topology`]), and their state file
//! (`topology.json`, docs/DESIGN.md section 10).
//!
//! The state file is written before the first resource is created and saved
//! after each one ([`StateHandle`]), so `coral-exp down` can remove a
//! half-built topology. A small registry under [`REGISTRY_DIR`] maps each
//! live prefix to its state file and owner, for `coral-exp down --stale`.

pub mod docker;
pub mod netns;

use anyhow::{bail, Context, Result};
use faultinject::Fault;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// Version of the topology.json schema.
pub const TOPOLOGY_SCHEMA_VERSION: u32 = 1;

/// Where the kit registers live topologies (prefix -> state file, owner).
pub const REGISTRY_DIR: &str = "/run/coral-exp";

/// One role a host plays for one service address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// The service address.
    pub vip: String,
    /// `primary` or `backup` (see docs/CLI.md).
    pub role: String,
}

/// Where a host's link can be cut: the far (switch-side) end of its veth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkEnd {
    /// Namespace holding that end.
    pub netns: String,
    /// Interface name of that end.
    pub dev: String,
}

/// One host of a topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HostInfo {
    /// Its namespace (name under /run/netns).
    pub netns: String,
    /// Its main address (LAN address for servers; empty for the switch).
    pub addr: String,
    /// MAC of its main interface (empty for the switch).
    pub mac: String,
    /// Roles per service address.
    pub roles: Vec<Role>,
    /// Service processes the kit started on it.
    pub pids: Vec<u32>,
    /// Its cgroup, if capacity is emulated (not yet).
    pub cgroup: Option<String>,
    /// Its main interface's name inside its namespace.
    #[serde(default)]
    pub dev: String,
    /// The end of its link a `link-cut` sets down (None: no cuttable link).
    #[serde(default)]
    pub link: Option<LinkEnd>,
    /// Whether it sits on the LAN switch (can be partitioned there).
    #[serde(default)]
    pub on_switch: bool,
    /// The kernel thread that runs its interface's receive path, where the
    /// topology gives it one (netns LAN hosts); it joins the host's CPU
    /// group with the host's processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_thread: Option<u32>,
    /// The pid of the kernel thread that receives the host's heartbeats
    /// (frames marked DSCP EF, its LAN interface's queue 1): `SCHED_FIFO`,
    /// in the host's CPU group, on the group's real-time budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_rx_thread: Option<u32>,
}

/// A resource the topology created (bookkeeping for `down`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    /// A network namespace under /run/netns (its veths go with it).
    Netns {
        /// Namespace name.
        name: String,
    },
    /// A cgroup v1 cpu group (CPU quota of a server host).
    Cgroup {
        /// Its directory under /sys/fs/cgroup/cpu.
        path: PathBuf,
    },
    /// A Docker container (Docker topology), by name.
    DockerContainer {
        /// Container name.
        name: String,
    },
    /// A Docker network (Docker topology), by name (also its bridge's).
    DockerNetwork {
        /// Network name.
        name: String,
    },
    /// An ACCEPT rule for one bridge in iptables' DOCKER-USER chain.
    DockerUserRule {
        /// The bridge.
        bridge: String,
    },
    /// A name under /run/netns attached to a container's namespace
    /// (`ip netns attach`; removing it only unmounts the name).
    NetnsAttach {
        /// Namespace name.
        name: String,
    },
    /// A process started by the kit.
    Process {
        /// Host it runs on.
        host: String,
        /// Its pid.
        pid: u32,
        /// Program name.
        program: String,
    },
}

/// Lifecycle status recorded in topology.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// `up` (or a runner) is building it.
    Building,
    /// Built and serving.
    Up,
    /// Torn down.
    Down,
}

/// The contents of topology.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyState {
    /// [`TOPOLOGY_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Backend: `netns` (or `docker`).
    pub topology: String,
    /// Service: `unreplicated`, ...
    pub service: String,
    /// Unique name prefix of every resource.
    pub prefix: String,
    /// Namespace of the client host.
    pub client_ns: String,
    /// One WebStone CGI URL per service address (no query).
    pub service_urls: Vec<String>,
    /// The first of `service_urls` (empty while building).
    pub service_url: String,
    /// Hosts by name.
    pub hosts: BTreeMap<String, HostInfo>,
    /// Lifecycle status.
    pub status: Status,
    /// Pid of the process that owns it (the runner, or `up` while building);
    /// None once `up` has returned and left it to the user.
    pub owner_pid: Option<u32>,
    /// Resources created, in creation order.
    pub created: Vec<Resource>,
    /// Unix ns when `up` started and when it finished (0 = not yet).
    pub up_started_unix_ns: u64,
    /// See `up_started_unix_ns`.
    pub up_done_unix_ns: u64,
}

impl TopologyState {
    /// Parses topology.json's text (the one reader of the file: `load`,
    /// and the `topology_json` fuzz target); a schema this coral-exp does
    /// not read is an error.
    pub fn parse(text: &str) -> Result<TopologyState> {
        let state: TopologyState = serde_json::from_str(text)?;
        if state.schema_version != TOPOLOGY_SCHEMA_VERSION {
            bail!(
                "schema_version {} (this coral-exp reads {})",
                state.schema_version,
                TOPOLOGY_SCHEMA_VERSION
            );
        }
        Ok(state)
    }

    /// A fresh state for `prefix` with no resources.
    pub fn new(topology: &str, service: &str, prefix: &str) -> Self {
        TopologyState {
            schema_version: TOPOLOGY_SCHEMA_VERSION,
            topology: topology.to_string(),
            service: service.to_string(),
            prefix: prefix.to_string(),
            client_ns: String::new(),
            service_urls: Vec::new(),
            service_url: String::new(),
            hosts: BTreeMap::new(),
            status: Status::Building,
            owner_pid: Some(std::process::id()),
            created: Vec::new(),
            up_started_unix_ns: faultinject::now_unix_ns(),
            up_done_unix_ns: 0,
        }
    }

    /// The host called `name`, or an error listing the hosts.
    pub fn host(&self, name: &str) -> Result<&HostInfo> {
        self.hosts.get(name).with_context(|| {
            format!(
                "no host `{name}` in topology {} (hosts: {})",
                self.prefix,
                self.hosts.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// Resolves a host name or a role (`primary`, `backup`, `primary:VIP`,
    /// `backup:VIP`) to a host name. A bare role held for several addresses
    /// is ambiguous and fails (name the VIP).
    pub fn resolve_host(&self, spec: &str) -> Result<String> {
        if self.hosts.contains_key(spec) {
            return Ok(spec.to_string());
        }
        let (role, vip) = match spec.split_once(':') {
            Some((r, v)) => (r, Some(v)),
            None => (spec, None),
        };
        if role != "primary" && role != "backup" {
            bail!(
                "`{spec}` is neither a host ({}) nor a role (primary, backup, primary:VIP, backup:VIP)",
                self.hosts.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        let matches: Vec<(&String, &Role)> = self
            .hosts
            .iter()
            .flat_map(|(h, info)| info.roles.iter().map(move |r| (h, r)))
            .filter(|(_, r)| r.role == role && vip.is_none_or(|v| r.vip == v))
            .collect();
        let hosts: std::collections::BTreeSet<&String> = matches.iter().map(|(h, _)| *h).collect();
        match hosts.len() {
            0 => bail!("no host holds role `{spec}` in topology {}", self.prefix),
            1 => Ok(hosts.into_iter().next().cloned().unwrap_or_default()),
            _ => bail!(
                "role `{spec}` is ambiguous ({}): name the address, e.g. `{role}:{}`",
                matches
                    .iter()
                    .map(|(h, r)| format!("{h} for {}", r.vip))
                    .collect::<Vec<_>>()
                    .join(", "),
                matches[0].1.vip
            ),
        }
    }

    /// Every namespace recorded as created.
    pub fn namespaces(&self) -> Vec<String> {
        self.created
            .iter()
            .filter_map(|r| match r {
                Resource::Netns { name } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every cgroup recorded as created.
    pub fn cgroups(&self) -> Vec<PathBuf> {
        self.created
            .iter()
            .filter_map(|r| match r {
                Resource::Cgroup { path } => Some(path.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every process recorded as started.
    pub fn processes(&self) -> Vec<u32> {
        self.created
            .iter()
            .filter_map(|r| match r {
                Resource::Process { pid, .. } => Some(*pid),
                _ => None,
            })
            .collect()
    }
}

/// topology.json on disk plus its in-memory copy; [`StateHandle::save`]
/// writes it atomically (temp file + rename).
#[derive(Debug)]
pub struct StateHandle {
    /// Path of topology.json.
    pub path: PathBuf,
    /// The state.
    pub state: TopologyState,
}

impl StateHandle {
    /// topology.json inside `dir`.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join("topology.json")
    }

    /// Loads `dir/topology.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = Self::path_in(dir);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("read {} (is a topology up there?)", path.display()))?;
        let state =
            TopologyState::parse(&text).with_context(|| format!("parse {}", path.display()))?;
        Ok(StateHandle { path, state })
    }

    /// Creates `dir` and writes `state` there.
    pub fn create(dir: &Path, state: TopologyState) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let h = StateHandle {
            path: Self::path_in(dir),
            state,
        };
        h.save()?;
        Ok(h)
    }

    /// The state directory.
    pub fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// Writes the state atomically.
    pub fn save(&self) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&self.state)?;
        std::fs::write(&tmp, text + "\n").with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("rename to {}", self.path.display()))?;
        Ok(())
    }

    /// Records `r` and saves.
    pub fn record(&mut self, r: Resource) -> Result<()> {
        if !self.state.created.contains(&r) {
            self.state.created.push(r);
        }
        self.save()
    }
}

/// A registry entry: which state file a live prefix belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryEntry {
    /// The topology's prefix.
    pub prefix: String,
    /// Absolute path of its topology.json.
    pub state_path: PathBuf,
    /// Owner pid (see [`TopologyState::owner_pid`]).
    pub owner_pid: Option<u32>,
}

/// Writes (or rewrites) the registry entry of a topology.
pub fn register(h: &StateHandle) -> Result<()> {
    std::fs::create_dir_all(REGISTRY_DIR).with_context(|| format!("create {REGISTRY_DIR}"))?;
    let abs = std::path::absolute(&h.path).unwrap_or_else(|_| h.path.clone());
    let e = RegistryEntry {
        prefix: h.state.prefix.clone(),
        state_path: abs,
        owner_pid: h.state.owner_pid,
    };
    let p = Path::new(REGISTRY_DIR).join(format!("{}.json", e.prefix));
    std::fs::write(&p, serde_json::to_string_pretty(&e)?)
        .with_context(|| format!("write {}", p.display()))?;
    Ok(())
}

/// Removes the registry entry of `prefix` (missing is fine).
pub fn unregister(prefix: &str) {
    let _ = std::fs::remove_file(Path::new(REGISTRY_DIR).join(format!("{prefix}.json")));
}

/// Every registry entry.
pub fn registry() -> Vec<RegistryEntry> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(REGISTRY_DIR) {
        for e in rd.flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                if let Ok(r) = serde_json::from_str::<RegistryEntry>(&t) {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// What a service process to start looks like.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Host to run it on.
    pub host: String,
    /// argv\[0\] (a path) and its arguments.
    pub argv: Vec<OsString>,
    /// File its stdout and stderr go to.
    pub log: PathBuf,
}

/// A topology backend. Commands only talk to this trait, so a Docker backend
/// fits in without changing them.
pub trait Topology {
    /// Backend name as written in topology.json (`netns`).
    fn kind(&self) -> &'static str;

    /// Builds every host and link of the kit's topology into `h`, recording
    /// each resource in topology.json before creating it. Returns early with
    /// an error if `cancel` becomes true.
    fn build(&self, h: &mut StateHandle, cancel: &AtomicBool) -> Result<()>;

    /// Limits every LAN switch port to `mbit` Mbit/s (the paper's 100 Mb/s
    /// switched LAN; [`crate::conditions::LanQdisc`]: DSCP EF first).
    fn set_lan_rate(&self, h: &mut StateHandle, mbit: u32) -> Result<()>;

    /// Puts `host`'s service processes (started after this) under a CPU
    /// quota of `cores` CPUs (cgroup v1), recorded as the host's `cgroup`.
    fn set_cpu_quota(&self, h: &mut StateHandle, host: &str, cores: f64) -> Result<()>;

    /// Starts a detached service process (own session, output to
    /// `spec.log`, in the host's cgroup if it has one), records its pid on
    /// the host and in `created`, and returns the pid.
    fn spawn_service(&self, h: &mut StateHandle, spec: &ServiceSpec) -> Result<u32>;

    /// A foreground [`Command`] running `argv` on `host`.
    fn command(&self, s: &TopologyState, host: &str, argv: &[OsString]) -> Result<Command>;

    /// The fault that cuts (`up == false`) or restores `host`'s link.
    fn link_fault(&self, s: &TopologyState, host: &str, up: bool) -> Result<Fault>;

    /// The fault that partitions (or heals) hosts `a` and `b`.
    fn partition_fault(&self, s: &TopologyState, a: &str, b: &str, heal: bool) -> Result<Fault>;

    /// Removes every resource recorded in `h` (processes first), marks it
    /// down. Idempotent.
    fn destroy(&self, h: &mut StateHandle) -> Result<()>;

    /// Prefixes of this backend's resources that exist on the machine (for
    /// `down --stale`).
    fn existing_prefixes(&self) -> Vec<String>;

    /// Removes every resource of `prefix` found on the machine, with no state
    /// file to go by.
    fn destroy_prefix(&self, prefix: &str) -> Result<()>;
}

/// A topology that is (being) built, with its backend: torn down on drop
/// (error, panic, Ctrl-C) unless detached. A service is started on a built
/// one; the topology itself knows no service.
pub struct Live {
    /// Its backend.
    pub backend: Box<dyn Topology>,
    /// Its state (topology.json).
    pub handle: StateHandle,
    armed: bool,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("prefix", &self.handle.state.prefix)
            .field("armed", &self.armed)
            .finish()
    }
}

impl Live {
    /// Takes charge of the topology in `handle`: armed, so it is torn down
    /// when dropped.
    pub fn new(backend: Box<dyn Topology>, handle: StateHandle) -> Self {
        Live {
            backend,
            handle,
            armed: true,
        }
    }

    /// The state.
    pub fn state(&self) -> &TopologyState {
        &self.handle.state
    }

    /// Leaves the topology up after this value is gone: status `up`, no
    /// owner (it belongs to the user now; `down --stale` leaves it alone).
    pub fn detach(mut self) -> Result<()> {
        self.handle.state.owner_pid = None;
        self.handle.save()?;
        register(&self.handle)?;
        self.armed = false;
        Ok(())
    }

    /// Tears the topology down now.
    pub fn down(mut self) -> Result<()> {
        self.armed = false;
        self.backend.destroy(&mut self.handle)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            if let Err(e) = self.backend.destroy(&mut self.handle) {
                tracing::error!(prefix = %self.handle.state.prefix, "teardown after failure: {e:#}");
            }
        }
    }
}

/// The backend called `name`.
pub fn backend(name: &str) -> Result<Box<dyn Topology>> {
    match name {
        "netns" => Ok(Box::new(netns::Netns)),
        "docker" => Ok(Box::new(docker::Docker::default())),
        other => bail!("unknown topology `{other}` (netns, docker)"),
    }
}

/// A fresh random prefix `cx` + 4 hex digits not used under /run/netns.
pub fn new_prefix() -> Result<String> {
    for _ in 0..64 {
        let mut b = [0u8; 2];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut b))
            .context("read /dev/urandom")?;
        let p = format!("cx{:02x}{:02x}", b[0], b[1]);
        if !prefix_in_use(&p) {
            return Ok(p);
        }
    }
    bail!("could not find a free prefix")
}

/// True if any namespace or registry entry uses `prefix`.
pub fn prefix_in_use(prefix: &str) -> bool {
    let dash = format!("{prefix}-");
    let ns_used = std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&dash))
        })
        .unwrap_or(false);
    ns_used
        || Path::new(REGISTRY_DIR)
            .join(format!("{prefix}.json"))
            .exists()
}

/// Checks a user-given prefix: 2 to 8 characters, lowercase letters and
/// digits, starting with a letter.
pub fn check_prefix(p: &str) -> Result<()> {
    let ok = (2..=8).contains(&p.len())
        && p.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok {
        bail!("invalid prefix `{p}`: 2-8 lowercase letters/digits, starting with a letter");
    }
    Ok(())
}

/// True for the prefixes the kit generates (`cx` + 4 hex digits) or its
/// tests use (`cxt` + 4 hex digits): the only unregistered namespaces
/// `down --stale` will touch, so other projects' namespaces are safe.
pub fn is_kit_prefix(p: &str) -> bool {
    let rest = match p.strip_prefix("cxt").filter(|r| r.len() == 4) {
        Some(r) => r,
        None => match p.strip_prefix("cx") {
            Some(r) => r,
            None => return false,
        },
    };
    rest.len() == 4 && rest.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}

/// Returns an error if `cancel` is set (Ctrl-C, SIGTERM).
pub fn check_cancel(cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Locates a sibling binary of the running executable (target/debug or
/// target/release), or `$CORAL_BIN_DIR/NAME` if that variable is set.
pub fn sibling_binary(name: &str) -> Result<PathBuf> {
    let dir = match std::env::var_os("CORAL_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().context("locate the running executable")?;
            let mut d = exe
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            // Integration tests and examples run from target/<profile>/deps.
            if d.ends_with("deps") && !d.join(name).exists() {
                d.pop();
            }
            d
        }
    };
    let p = dir.join(name);
    if !p.is_file() {
        bail!(
            "`{name}` not found at {} (build it next to coral-exp: `cargo build --workspace --bins`, or set CORAL_BIN_DIR)",
            p.display()
        );
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> TopologyState {
        let mut s = TopologyState::new("netns", "unreplicated", "cx0000");
        for (h, vip) in [("server-a", "192.0.2.11"), ("server-b", "192.0.2.12")] {
            s.hosts.insert(
                h.into(),
                HostInfo {
                    roles: vec![Role {
                        vip: vip.into(),
                        role: "primary".into(),
                    }],
                    ..Default::default()
                },
            );
        }
        s.hosts.insert("client".into(), HostInfo::default());
        s
    }

    #[test]
    fn resolves_names_and_roles() {
        let mut s = state();
        assert_eq!(s.resolve_host("client").unwrap(), "client");
        assert_eq!(s.resolve_host("primary:192.0.2.12").unwrap(), "server-b");
        let e = s.resolve_host("primary").unwrap_err().to_string();
        assert!(e.contains("ambiguous"), "{e}");
        assert!(s.resolve_host("backup").is_err());
        assert!(s.resolve_host("nosuch").is_err());
        s.hosts.remove("server-b");
        assert_eq!(s.resolve_host("primary").unwrap(), "server-a");
    }

    #[test]
    fn state_round_trips_and_records_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = StateHandle::create(dir.path(), state()).unwrap();
        h.record(Resource::Netns { name: "x".into() }).unwrap();
        h.record(Resource::Netns { name: "x".into() }).unwrap();
        let back = StateHandle::load(dir.path()).unwrap();
        assert_eq!(back.state, h.state);
        assert_eq!(back.state.namespaces(), vec!["x".to_string()]);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&h.path).unwrap()).unwrap();
        for k in [
            "schema_version",
            "topology",
            "service",
            "prefix",
            "client_ns",
            "service_urls",
            "service_url",
            "hosts",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert!(v["hosts"]["server-a"]["cgroup"].is_null());
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("cxt1").is_ok());
        assert!(check_prefix("1abc").is_err());
        assert!(check_prefix("a").is_err());
        assert!(check_prefix("ab-c").is_err());
        assert!(check_prefix("abcdefghi").is_err());
        let p = new_prefix().unwrap();
        assert!(p.starts_with("cx") && p.len() == 6);
        assert!(is_kit_prefix(&p));
        assert!(is_kit_prefix("cxt0a9f"));
        assert!(is_kit_prefix("cx12ab"));
        assert!(!is_kit_prefix("cx12abc"));
        assert!(!is_kit_prefix("cxt12"));
        assert!(!is_kit_prefix("ct12ab"));
        assert!(!is_kit_prefix("cxg123"));
    }

    #[test]
    fn missing_binary_is_a_clear_error() {
        let e = sibling_binary("no-such-binary-zz").unwrap_err().to_string();
        assert!(e.contains("not found"), "{e}");
    }
}
