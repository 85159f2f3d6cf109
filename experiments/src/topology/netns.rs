//! The network-namespace backend.
//!
//! Every host is a namespace `<prefix>-<host>` under /run/netns, created with
//! `ip netns add` (it makes the /run/netns bind mount shared and is what
//! `ip netns exec` expects; a hand-written unshare + bind mount would only
//! duplicate it). Links, addresses, routes and sysctls are set with the
//! rtnetlink crate and /proc/sys from a dedicated thread that entered the
//! namespace ([`faultinject::nl::in_netns`]), so the caller's own threads
//! never change namespace.
//!
//! ```text
//!  client 198.51.100.10 --- router 198.51.100.1 | 192.0.2.1
//!                                   |
//!              switch (bridge br0, ports p-<host>)
//!          |          |          |         |
//!        lb .10  server-a .11 server-b .12 spare .13     (192.0.2.0/24)
//! ```

use super::{
    check_cancel, HostInfo, LinkEnd, Resource, ServiceSpec, StateHandle, Status, Topology,
    TopologyState,
};
use crate::conditions::LAN_QUEUES;
use anyhow::{bail, Context, Result};
use faultinject::Fault;
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// The netns backend (stateless: everything is in topology.json).
#[derive(Debug, Clone, Copy, Default)]
pub struct Netns;

/// Host names of the kit's topology, in creation order.
pub const HOSTS: [&str; 7] = [
    "client", "router", "switch", "server-a", "server-b", "spare", "lb",
];

/// Client-side subnet address of the router.
pub const ROUTER_CLIENT_ADDR: &str = "198.51.100.1";
/// LAN address of the router (servers' default gateway).
pub const ROUTER_LAN_ADDR: &str = "192.0.2.1";
/// The client's address.
pub const CLIENT_ADDR: &str = "198.51.100.10";

/// LAN hosts: (name, address, host-side interface). Addresses 192.0.2.100+
/// are left free for service addresses (VIPs).
pub const LAN_HOSTS: [(&str, &str, &str); 5] = [
    ("router", ROUTER_LAN_ADDR, "eth1"),
    ("lb", "192.0.2.10", "eth0"),
    ("server-a", "192.0.2.11", "eth0"),
    ("server-b", "192.0.2.12", "eth0"),
    ("spare", "192.0.2.13", "eth0"),
];

/// Name of the bridge in the switch namespace.
pub const BRIDGE: &str = "br0";

/// Switch-side port name of a LAN host (a link cut sets it down).
pub fn switch_port(host: &str) -> String {
    format!("p-{host}")
}

/// Locally administered MAC derived from an IPv4 address: 02:00:a:b:c:d.
pub fn mac_for(addr: &str) -> String {
    let o: Vec<u8> = addr.split('.').filter_map(|x| x.parse().ok()).collect();
    if o.len() != 4 {
        return "02:00:00:00:00:00".into();
    }
    format!("02:00:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// cgroup (cpu controller) name of `host` under `prefix`.
pub fn cgroup_name(prefix: &str, host: &str) -> String {
    format!("coral-{prefix}-{host}")
}

/// Namespace name of `host` under `prefix`.
pub fn ns_name(prefix: &str, host: &str) -> String {
    format!("{prefix}-{host}")
}

/// Environment variable: milliseconds to sleep before creating each
/// namespace (lets tests interrupt `up` half-way; unset in normal use).
pub const STEP_DELAY_ENV: &str = "CORAL_EXP_STEP_DELAY_MS";

fn step_delay() {
    if let Some(ms) = std::env::var(STEP_DELAY_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(Duration::from_millis(ms.min(10_000)));
    }
}

pub(super) fn netns_exists(name: &str) -> bool {
    faultinject::netns::path(name).exists()
}

/// Pids of every process in namespace `ns` (`ip netns pids`).
fn pids_in(ns: &str) -> Vec<u32> {
    if !netns_exists(ns) {
        return Vec::new();
    }
    Command::new("ip")
        .args(["netns", "pids", ns])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILLs `pids`, reaps our own children among them, and waits up to 3 s
/// for them to be gone. Returns the ones still alive.
pub(super) fn kill_and_wait(pids: &[u32]) -> Vec<u32> {
    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::{waitpid, WaitPidFlag};
    use nix::unistd::Pid;
    let me = std::process::id();
    let pids: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&p| p != 0 && p != me && p <= i32::MAX as u32)
        .collect();
    for &p in &pids {
        // A stopped process dies of SIGKILL too; no need to SIGCONT it.
        let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        for &p in &pids {
            let _ = waitpid(Pid::from_raw(p as i32), Some(WaitPidFlag::WNOHANG));
        }
        let alive: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|&p| faultinject::pid_alive(p))
            .collect();
        if alive.is_empty() || Instant::now() > deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn delete_netns(name: &str) -> Result<()> {
    if !netns_exists(name) {
        return Ok(());
    }
    let left = kill_and_wait(&pids_in(name));
    if !left.is_empty() {
        bail!("processes {left:?} in namespace {name} survived SIGKILL");
    }
    faultinject::run_command(Command::new("ip").args(["netns", "del", name]), None)?;
    Ok(())
}

impl Netns {
    fn add_host(
        &self,
        h: &mut StateHandle,
        host: &str,
        info: HostInfo,
        cancel: &AtomicBool,
    ) -> Result<()> {
        check_cancel(cancel)?;
        step_delay();
        let ns = info.netns.clone();
        // Record first: a crash between the two leaves a name `down` skips
        // if absent, never a namespace nobody knows about.
        h.state.hosts.insert(host.to_string(), info);
        h.record(Resource::Netns { name: ns.clone() })?;
        faultinject::run_command(Command::new("ip").args(["netns", "add", &ns]), None)?;
        let fwd = if host == "router" { "1" } else { "0" };
        let is_switch = host == "switch";
        // New namespaces copy IPv4 settings from the root namespace, so set
        // every one that matters explicitly (docs/DESIGN.md section 7). The
        // writes happen on a thread inside the namespace: /proc/sys/net
        // follows the writer's namespace.
        nl(&ns, move |h| async move {
            faultinject::nl::write_sysctls(&host_sysctls(fwd))?;
            if is_switch {
                bridge_hooks_off()?;
            }
            faultinject::nl::link_set_up(&h, "lo", true).await
        })
        .with_context(|| format!("sysctls and lo in {ns}"))?;
        Ok(())
    }
}

/// The IPv4 settings every host namespace gets (`fwd`: "1" on the router,
/// "0" elsewhere). New namespaces copy IPv4 settings from the root
/// namespace, so each one that matters is set explicitly (docs/DESIGN.md
/// section 7); the Docker topology sets the same in its containers.
pub(super) fn host_sysctls(fwd: &'static str) -> [(&'static str, &'static str); 11] {
    [
        ("net.ipv4.ip_forward", fwd),
        ("net.ipv4.conf.all.forwarding", fwd),
        ("net.ipv4.conf.default.forwarding", fwd),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
        ("net.ipv4.conf.all.send_redirects", "0"),
        ("net.ipv4.conf.default.send_redirects", "0"),
        ("net.ipv4.conf.all.arp_ignore", "0"),
        ("net.ipv4.conf.all.arp_announce", "0"),
        ("net.ipv6.conf.all.disable_ipv6", "1"),
        ("net.ipv6.conf.default.disable_ipv6", "1"),
    ]
}

/// The br_netfilter switches of a namespace: while one is 1, every frame
/// crossing a bridge of that namespace goes through the IPv4/IPv6/ARP
/// netfilter hooks as if it were routed (docs/DESIGN.md section 11: about 28 % of a
/// log round trip here). A real switch runs no such hooks.
pub const BRIDGE_NF_SYSCTLS: [&str; 3] = [
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.bridge.bridge-nf-call-arptables",
];

/// Turns the bridge netfilter hooks off in the calling thread's namespace.
/// On kernels since 5.3 these sysctls are per namespace (a new namespace
/// starts at 1 whatever the root namespace says; writing 0 here leaves the
/// root namespace, where Docker relies on them, alone). Without
/// br_netfilter (module not loaded) the files are absent and no hook runs:
/// nothing to do. Each bridge's own `nf_call_*` options default to 0 and
/// are left so; the hooks run when either is 1.
fn bridge_hooks_off() -> faultinject::nl::NlResult<()> {
    if !std::path::Path::new("/proc/sys/net/bridge").exists() {
        return Ok(());
    }
    let kv: Vec<(&str, &str)> = BRIDGE_NF_SYSCTLS.iter().map(|k| (*k, "0")).collect();
    faultinject::nl::write_sysctls(&kv)
}

/// Runs rtnetlink work inside namespace `ns` ([`faultinject::nl::in_netns`]).
pub(super) fn nl<T, F, Fut>(ns: &str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(faultinject::nl::rtnetlink::Handle) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = faultinject::nl::NlResult<T>>,
{
    Ok(faultinject::nl::in_netns(ns, f)?)
}

fn ipv4(s: &str) -> Result<Ipv4Addr> {
    s.parse().with_context(|| format!("bad IPv4 address {s}"))
}

fn mac(s: &str) -> Result<[u8; 6]> {
    Ok(faultinject::nl::parse_mac(s)?)
}

impl Topology for Netns {
    fn kind(&self) -> &'static str {
        "netns"
    }

    fn build(&self, h: &mut StateHandle, cancel: &AtomicBool) -> Result<()> {
        let prefix = h.state.prefix.clone();
        h.state.client_ns = ns_name(&prefix, "client");
        h.save()?;
        // 1. Namespaces, with sysctls and lo.
        for host in HOSTS {
            self.add_host(h, host, host_info(&prefix, host)?, cancel)?;
        }
        // 2. The switch.
        check_cancel(cancel)?;
        build_switch(&prefix)?;
        // 3. client <-> router, a direct veth pair.
        check_cancel(cancel)?;
        link_client(&prefix)?;
        // 4. Addresses and routes of the LAN hosts.
        address_lan(&prefix, cancel)?;
        // 5. Each LAN host receives in a kernel thread of its own.
        for (host, _, dev) in LAN_HOSTS {
            check_cancel(cancel)?;
            let rx = crate::conditions::receive_in_own_thread(
                &ns_name(&prefix, host),
                dev,
                &ns_name(&prefix, "switch"),
                &switch_port(host),
            )?;
            if let Some(hi) = h.state.hosts.get_mut(host) {
                hi.rx_thread = Some(rx.data);
                hi.heartbeat_rx_thread = Some(rx.heartbeat);
            }
        }
        h.save()?;
        Ok(())
    }

    fn set_lan_rate(&self, h: &mut StateHandle, mbit: u32) -> Result<()> {
        let sw = ns_name(&h.state.prefix, "switch");
        for (host, _, _) in LAN_HOSTS {
            crate::conditions::apply_lan_rate(&sw, &switch_port(host), mbit)?;
        }
        Ok(())
    }

    fn set_cpu_quota(&self, h: &mut StateHandle, host: &str, cores: f64) -> Result<()> {
        h.state.host(host)?;
        let name = cgroup_name(&h.state.prefix, host);
        let path = std::path::Path::new(crate::conditions::CPU_CGROUP_ROOT).join(&name);
        h.record(Resource::Cgroup { path: path.clone() })?;
        let g = crate::conditions::CpuGroup::create(&name, cores)?;
        if let Some(hi) = h.state.hosts.get_mut(host) {
            hi.cgroup = Some(g.path.to_string_lossy().into_owned());
            if let Some(pid) = hi.rx_thread {
                // Under the quota as an ordinary thread, not on the group's
                // real-time budget.
                crate::conditions::set_rx_thread_fifo(pid, false)?;
                g.add_pid(pid)
                    .with_context(|| format!("move {host}'s receive thread into its CPU group"))?;
            }
            if let Some(pid) = hi.heartbeat_rx_thread {
                // Heartbeats only: in the group, then on the group's
                // real-time budget beside the node's heartbeat thread (the
                // kernel moves a real-time thread only into a group that
                // has a budget; without one it stays ordinary).
                crate::conditions::set_rx_thread_fifo(pid, false)?;
                g.add_pid(pid).with_context(|| {
                    format!("move {host}'s heartbeat receive thread into its CPU group")
                })?;
                if g.rt_runtime_us()? > 0 {
                    crate::conditions::set_rx_thread_fifo(pid, true)?;
                } else {
                    tracing::warn!(
                        "{host}'s CPU group has no real-time budget: its heartbeats are \
                         received by an ordinary thread under the quota"
                    );
                }
            }
        }
        h.save()
    }

    fn spawn_service(&self, h: &mut StateHandle, spec: &ServiceSpec) -> Result<u32> {
        let info = h.state.host(&spec.host)?.clone();
        let prog = spec.argv.first().context("empty argv")?;
        let nsfile = std::fs::File::open(faultinject::netns::path(&info.netns))
            .with_context(|| format!("open namespace {}", info.netns))?;
        if let Some(d) = spec.log.parent() {
            std::fs::create_dir_all(d)?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .with_context(|| format!("open {}", spec.log.display()))?;
        // The host's CPU group, joined by the child itself before it execs.
        let procs = match &info.cgroup {
            Some(cg) => crate::conditions::CpuGroup { path: cg.into() }
                .procs_files()
                .with_context(|| format!("put {} into {cg}", spec.host))?,
            None => Vec::new(),
        };
        let mut cmd = Command::new(prog);
        cmd.args(&spec.argv[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: setns(2), write(2) and setsid(2) are async-signal-safe; the
        // namespace and cgroup files were opened before the fork.
        unsafe {
            cmd.pre_exec(move || {
                nix::sched::setns(&nsfile, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)?;
                for f in &procs {
                    // "0" is the writing process (cgroup v1).
                    nix::unistd::write(f, b"0").map_err(std::io::Error::from)?;
                }
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("start {} on {}", prog.to_string_lossy(), spec.host))?;
        let pid = child.id();
        // The child is reaped in destroy (waitpid) or by init once we exit.
        drop(child);
        if let Some(hi) = h.state.hosts.get_mut(&spec.host) {
            hi.pids.push(pid);
        }
        h.record(Resource::Process {
            host: spec.host.clone(),
            pid,
            program: std::path::Path::new(prog)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        })?;
        Ok(pid)
    }

    fn command(&self, s: &TopologyState, host: &str, argv: &[OsString]) -> Result<Command> {
        let info = s.host(host)?;
        if !netns_exists(&info.netns) {
            bail!("namespace {} of host {host} does not exist", info.netns);
        }
        if argv.is_empty() {
            bail!("no command given");
        }
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &info.netns]).args(argv);
        Ok(cmd)
    }

    fn link_fault(&self, s: &TopologyState, host: &str, up: bool) -> Result<Fault> {
        let info = s.host(host)?;
        let Some(l) = &info.link else {
            bail!("host {host} has no link to cut");
        };
        Ok(if up {
            Fault::LinkRestore {
                netns: l.netns.clone(),
                dev: l.dev.clone(),
            }
        } else {
            Fault::LinkCut {
                netns: l.netns.clone(),
                dev: l.dev.clone(),
            }
        })
    }

    fn partition_fault(&self, s: &TopologyState, a: &str, b: &str, heal: bool) -> Result<Fault> {
        if a == b {
            bail!("cannot partition {a} from itself");
        }
        let (ia, ib) = (s.host(a)?, s.host(b)?);
        for (n, i) in [(a, ia), (b, ib)] {
            if !i.on_switch {
                bail!("{n} is not on the LAN switch (partition works between LAN hosts: router, lb, server-a, server-b, spare)");
            }
        }
        let (x, y) = if a < b { (a, b) } else { (b, a) };
        let label = format!("part_{x}_{y}");
        let netns = ns_name(&s.prefix, "switch");
        Ok(if heal {
            Fault::Heal { netns, label }
        } else {
            Fault::Partition {
                netns,
                mac_a: ia.mac.clone(),
                mac_b: ib.mac.clone(),
                label,
            }
        })
    }

    fn destroy(&self, h: &mut StateHandle) -> Result<()> {
        let prefix = h.state.prefix.clone();
        let mut problems = Vec::new();
        let left = kill_and_wait(&h.state.processes());
        if !left.is_empty() {
            problems.push(format!("processes {left:?} survived SIGKILL"));
        }
        for path in h.state.cgroups() {
            if let Err(e) = (crate::conditions::CpuGroup { path }).remove() {
                problems.push(format!("{e:#}"));
            }
        }
        let mut names = h.state.namespaces();
        for n in existing_namespaces(&prefix) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        for n in names.iter().rev() {
            if let Err(e) = delete_netns(n) {
                problems.push(format!("{e:#}"));
            }
        }
        h.state.status = Status::Down;
        h.state.owner_pid = None;
        h.save()?;
        if !problems.is_empty() {
            bail!("teardown of {prefix} incomplete: {}", problems.join("; "));
        }
        super::unregister(&prefix);
        Ok(())
    }

    fn existing_prefixes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Ok(rd) = std::fs::read_dir("/run/netns") {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                for host in HOSTS {
                    if let Some(p) = name.strip_suffix(&format!("-{host}")) {
                        if super::is_kit_prefix(p) && !out.iter().any(|x| x == p) {
                            out.push(p.to_string());
                        }
                    }
                }
            }
        }
        out
    }

    fn destroy_prefix(&self, prefix: &str) -> Result<()> {
        let mut problems = Vec::new();
        for n in existing_namespaces(prefix) {
            if let Err(e) = delete_netns(&n) {
                problems.push(format!("{e:#}"));
            }
        }
        for host in HOSTS {
            let path = std::path::Path::new(crate::conditions::CPU_CGROUP_ROOT)
                .join(cgroup_name(prefix, host));
            if path.exists() {
                if let Err(e) = (crate::conditions::CpuGroup { path }).remove() {
                    problems.push(format!("{e:#}"));
                }
            }
        }
        if !problems.is_empty() {
            bail!("teardown of {prefix} incomplete: {}", problems.join("; "));
        }
        super::unregister(prefix);
        Ok(())
    }
}

/// The kit's namespaces of `prefix` that exist now.
pub fn existing_namespaces(prefix: &str) -> Vec<String> {
    HOSTS
        .iter()
        .map(|h| ns_name(prefix, h))
        .filter(|n| netns_exists(n))
        .collect()
}

/// What `host` of the topology named `prefix` is: its namespace, address,
/// MAC, LAN device and the other end of its link.
fn host_info(prefix: &str, host: &str) -> Result<HostInfo> {
    let ns = |host: &str| ns_name(prefix, host);
    Ok(match host {
        "client" => HostInfo {
            netns: ns(host),
            addr: CLIENT_ADDR.into(),
            mac: mac_for(CLIENT_ADDR),
            dev: "eth0".into(),
            link: Some(LinkEnd {
                netns: ns("router"),
                dev: "eth0".into(),
            }),
            ..Default::default()
        },
        "switch" => HostInfo {
            netns: ns(host),
            dev: BRIDGE.into(),
            ..Default::default()
        },
        _ => {
            let (_, addr, dev) = LAN_HOSTS
                .iter()
                .find(|(n, _, _)| *n == host)
                .copied()
                .context("host plan")?;
            HostInfo {
                netns: ns(host),
                addr: addr.into(),
                mac: mac_for(addr),
                dev: dev.into(),
                link: Some(LinkEnd {
                    netns: ns("switch"),
                    dev: switch_port(host),
                }),
                on_switch: true,
                ..Default::default()
            }
        }
    })
}

/// The switch: a bridge that forwards at once (no STP, no delay), and one
/// veth per LAN host, created with its host end directly in the host's
/// namespace.
fn build_switch(prefix: &str) -> Result<()> {
    let ports: Vec<(String, String, [u8; 6], String)> = LAN_HOSTS
        .iter()
        .map(|(host, addr, dev)| {
            Ok((
                switch_port(host),
                dev.to_string(),
                mac(&mac_for(addr))?,
                ns_name(prefix, host),
            ))
        })
        .collect::<Result<_>>()?;
    nl(&ns_name(prefix, "switch"), move |h| async move {
        use faultinject::nl::{add_bridge, add_veth_to, enslave_up};
        add_bridge(&h, BRIDGE).await?;
        for (port, dev, m, host_ns) in &ports {
            add_veth_to(&h, port, None, dev, *m, host_ns, LAN_QUEUES).await?;
            enslave_up(&h, port, BRIDGE).await?;
        }
        Ok(())
    })
}

/// client <-> router: a direct veth pair, the client's address and its
/// default route through the router.
fn link_client(prefix: &str) -> Result<()> {
    let (cmac, rmac) = (
        mac(&mac_for(CLIENT_ADDR))?,
        mac(&mac_for(ROUTER_CLIENT_ADDR))?,
    );
    let (caddr, raddr) = (ipv4(CLIENT_ADDR)?, ipv4(ROUTER_CLIENT_ADDR)?);
    let router_ns = ns_name(prefix, "router");
    nl(&ns_name(prefix, "client"), move |h| async move {
        use faultinject::nl::{add_veth_to, addr_up, default_route};
        add_veth_to(&h, "eth0", Some(cmac), "eth0", rmac, &router_ns, 1).await?;
        addr_up(&h, "eth0", caddr, 24).await?;
        default_route(&h, raddr).await
    })
}

/// Addresses and routes of the LAN hosts (the router also gets its client
/// side address).
fn address_lan(prefix: &str, cancel: &AtomicBool) -> Result<()> {
    let raddr = ipv4(ROUTER_CLIENT_ADDR)?;
    let gw = ipv4(ROUTER_LAN_ADDR)?;
    for (host, addr, dev) in LAN_HOSTS {
        check_cancel(cancel)?;
        let a = ipv4(addr)?;
        let is_router = host == "router";
        nl(&ns_name(prefix, host), move |h| async move {
            use faultinject::nl::{addr_up, default_route};
            addr_up(&h, dev, a, 24).await?;
            if is_router {
                addr_up(&h, "eth0", raddr, 24).await
            } else {
                default_route(&h, gw).await
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_and_names() {
        assert_eq!(mac_for("192.0.2.11"), "02:00:c0:00:02:0b");
        assert_eq!(mac_for("bad"), "02:00:00:00:00:00");
        assert_eq!(ns_name("cx12ab", "server-a"), "cx12ab-server-a");
        assert!(switch_port("server-a").len() <= 15);
    }
}
