//! Paper-faithful run conditions (docs/DESIGN.md sections 7 and 8): a 100 Mb/s
//! switched LAN (`htb` on switch ports, with a priority band for DSCP EF) and a server capacity set by a
//! cgroup v1 CPU quota that covers every process of a server host, and a
//! receive path each host pays for itself (a NAPI kernel thread per LAN
//! host, in the host's group).
//!
//! `tc` and `ethtool` are called as commands (no well-kept crate covers
//! qdiscs or device features); cgroups and `threaded` are plain files.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Where cgroup v1's cpu controller is mounted on these machines.
pub const CPU_CGROUP_ROOT: &str = "/sys/fs/cgroup/cpu";

/// Where cgroup v1's cpuacct controller is mounted (CPU time accounting).
pub const CPUACCT_CGROUP_ROOT: &str = "/sys/fs/cgroup/cpuacct";

/// The CFS period used for quotas, in microseconds: 10 ms, not the kernel's
/// default 100 ms. A quota is a budget per period; once a host has spent it,
/// every process on the host waits for the next period. At 0.1 core and a
/// 100 ms period that is up to 90 ms of standstill (one unreplicated server
/// showed 85 ms p99 latencies from it alone): a stop-and-go CPU, not a slow
/// one. With 10 ms the longest standstill is 9 ms, closer to a machine that
/// is simply slower, as the paper's were.
pub const CFS_PERIOD_US: u64 = 10_000;

/// The smallest quota the kernel accepts, in microseconds (1 ms).
pub const CFS_MIN_QUOTA_US: u64 = 1_000;

/// Real-time period of a server host's CPU group, in microseconds: 10 ms,
/// like [`CFS_PERIOD_US`], so a throttled real-time thread waits at most
/// one period minus its runtime.
pub const RT_PERIOD_US: u64 = 10_000;

/// Real-time runtime of a server host's CPU group per [`RT_PERIOD_US`], in
/// microseconds: what lets the node's heartbeat thread run `SCHED_FIFO`
/// inside a quota'd group (cgroup v1 RT group scheduling gives a new group
/// none, and the kernel then refuses `SCHED_FIFO` to its threads). 2 ms per
/// 10 ms: the heartbeat thread used 5-7 % of a core at 5 ms heartbeats, in
/// bursts (softirq work on the way out of its sends is charged to it), and
/// at 1 ms per 10 ms it was throttled: a pair at 5 ms x 3 and 0.1 core
/// raced 18-24 times a minute at load 4-5, none with 2 or 4 ms
/// (docs/DESIGN.md 4). Real-time time is not charged to the CFS quota. The
/// groups' runtimes must fit in the root's (95 % of each period): four
/// server hosts at a time; a group created when less is left gets the
/// largest halving of this that fits, down to [`RT_MIN_RUNTIME_US`].
pub const RT_RUNTIME_US: u64 = 2_000;

/// The least real-time runtime a group is given before it is given none
/// (its heartbeat thread then runs at nice -10, as without RT budget).
pub const RT_MIN_RUNTIME_US: u64 = 125;

/// The (period, quota) in microseconds for a quota of `cores` CPUs: the
/// period is [`CFS_PERIOD_US`], stretched only where the quota would fall
/// below [`CFS_MIN_QUOTA_US`] (under 0.1 core), so the ratio is always
/// `cores` and never silently rounded up.
pub fn cfs_period_quota(cores: f64) -> (u64, u64) {
    let quota = (cores * CFS_PERIOD_US as f64).round() as u64;
    if quota >= CFS_MIN_QUOTA_US {
        return (CFS_PERIOD_US, quota);
    }
    let period = (CFS_MIN_QUOTA_US as f64 / cores).round() as u64;
    (period, CFS_MIN_QUOTA_US)
}

/// The bridge netfilter hooks of the LAN switch (`bridge-nf-call-*`) as the
/// netns topology sets them: 0, like a real switch (recorded in
/// `config.json`; a Docker bridge runs them: 1).
pub const BRIDGE_NF_CALL: u8 = 0;

/// How a LAN host of the netns topology receives (`host_rx` in
/// `config.json`): `"napi_thread"`, each host's interface receives in a NAPI
/// kernel thread of its own, which joins the host's CPU group. Without it a
/// veth receive runs in the sender's context (the sender's `send()` runs the
/// receiver's whole stack), so a host pays for its peers' receive paths and
/// an unreplicated server's receive is paid by its unquota'd client
/// (docs/DESIGN.md section 7). A Docker topology receives in the sender
/// (`"sender"`).
pub const HOST_RX: &str = "napi_thread";

/// Serialises the creation of NAPI threads across the kit's runs: a new
/// thread is told from the others by appearing while its device is switched
/// over (every LAN host's device is called `eth0`, so its name alone does
/// not tell).
const NAPI_LOCK: &str = "/run/lock/coral-exp-napi.lock";

/// The pids of the NAPI kernel threads (`napi/<dev>-<id>`) that exist now.
fn napi_threads() -> Vec<u32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.starts_with("napi/"))
                .unwrap_or(false)
        })
        .collect()
}

fn run_in(netns: &str, program: &str, args: &[&str]) -> Result<()> {
    let out = faultinject::netns::command_in(netns, program, args)?
        .output()
        .with_context(|| format!("running {program} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "{program} {} (netns {netns}) failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// GRO and threaded NAPI on `dev` in namespace `netns`.
fn threaded_napi(netns: &str, dev: &str) -> Result<()> {
    run_in(netns, "ethtool", &["-K", dev, "gro", "on"])?;
    // /sys/class/net follows the namespace sysfs was mounted in, not the
    // writer's: `ip netns exec` mounts the namespace's own.
    let write = format!("echo 1 > /sys/class/net/{dev}/threaded");
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", netns, "sh", "-c", &write])
        .output()
        .context("running ip netns exec")?;
    if !out.status.success() {
        bail!(
            "threaded NAPI on {dev} (netns {netns}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Queues of each end of a LAN link in the netns topology, each way: queue
/// 0 carries data, queue 1 the frames marked DSCP EF (the nodes'
/// heartbeats), chosen on every switch port by `bpf/lan_queue.bpf.c`. A
/// veth hands a frame to its peer's receive queue of the same number, and
/// each receive queue has a NAPI thread of its own, so a host receives its
/// heartbeats in a thread that never waits behind its data (docs/DESIGN.md
/// 7).
pub const LAN_QUEUES: u32 = 2;

/// The object built from `bpf/lan_queue.bpf.c` by `build.rs`.
static LAN_QUEUE_PROGRAM: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lan_queue.bpf.o"));

/// The receive threads of one host's LAN interface (see [`LAN_QUEUES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxThreads {
    /// Queue 0's thread: everything but heartbeats.
    pub data: u32,
    /// Queue 1's thread: frames marked DSCP EF only.
    pub heartbeat: u32,
}

/// Makes `dev` in namespace `host_ns` receive in NAPI kernel threads of
/// its own, one per queue ([`LAN_QUEUES`]), and returns them; `port` in
/// `switch_ns` is the switch's end of the same link (created with
/// [`LAN_QUEUES`] queues at both ends).
///
/// A veth hands a frame to its peer's NAPI (instead of running the
/// receive in the sender) only when the peer has GRO on and the sending
/// device does no TCP segmentation offload, so both ends of the link send
/// without TSO (a large send is segmented in software by its sender and
/// joined again by the receiver's GRO). `threaded` moves the poll from
/// softirq to kernel threads, which can join a CPU group. The switch's
/// port gets threads of its own too, left in no host's group, so the
/// bridge and the port's qdisc run there, not in the sending host; its
/// egress program sorts heartbeats into queue 1.
pub fn receive_in_own_thread(
    host_ns: &str,
    dev: &str,
    switch_ns: &str,
    port: &str,
) -> Result<RxThreads> {
    run_in(switch_ns, "ethtool", &["-K", port, "tso", "off"])?;
    steer_heartbeats(switch_ns, port)?;
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(NAPI_LOCK)
        .with_context(|| format!("open {NAPI_LOCK}"))?;
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("lock {NAPI_LOCK}"))?;
    // The switch's port first: its threads stay out of every host's group
    // (a switch costs its hosts nothing) and run at the receive threads'
    // priority, so frames do not wait in the switch behind processes.
    run_in(host_ns, "ethtool", &["-K", dev, "tso", "off"])?;
    let before = napi_threads();
    threaded_napi(switch_ns, port)?;
    let port_threads = new_threads(&before);
    if port_threads.len() != LAN_QUEUES as usize {
        bail!("threaded NAPI on {port} (netns {switch_ns}): expected {LAN_QUEUES} new napi threads, found {port_threads:?}");
    }
    for (_, pid) in port_threads {
        set_rx_thread_fifo(pid, true)?;
    }
    let before = napi_threads();
    threaded_napi(host_ns, dev)?;
    let [data, heartbeat] = queue_threads(&before, host_ns, dev)?;
    set_rx_thread_fifo(data, true)?;
    set_rx_thread_fifo(heartbeat, true)?;
    Ok(RxThreads { data, heartbeat })
}

/// Attach `bpf/lan_queue.bpf.c` to the egress of `port` in `switch_ns`
/// (a tc filter through netlink, which stays with the port when coral-exp
/// exits and goes with it when the topology is torn down).
fn steer_heartbeats(switch_ns: &str, port: &str) -> Result<()> {
    let dev = port.to_string();
    faultinject::nl::in_netns(switch_ns, move |_| async move {
        attach_lan_queue(&dev).map_err(|e| format!("heartbeat queue program on {dev}: {e:#}"))
    })?;
    Ok(())
}

/// Load the queue program and attach it to `dev`'s egress here.
fn attach_lan_queue(dev: &str) -> Result<()> {
    use aya::programs::{tc, SchedClassifier, TcAttachType};
    let mut bpf = aya::Ebpf::load(LAN_QUEUE_PROGRAM).context("loading the program")?;
    if let Err(e) = tc::qdisc_add_clsact(dev) {
        // The port's clsact from an earlier attach is fine; anything else is not.
        let exists = matches!(&e, tc::TcError::NetlinkError(n)
            if n.raw_os_error() == Some(libc::EEXIST));
        if !exists {
            return Err(e).context("adding clsact");
        }
    }
    let prog: &mut SchedClassifier = bpf
        .program_mut("coral_lan_queue")
        .context("no coral_lan_queue in the object")?
        .try_into()?;
    prog.load().context("loading into the kernel")?;
    let id = prog
        .attach_with_options(
            dev,
            TcAttachType::Egress,
            tc::TcAttachOptions::Netlink(tc::NlOptions::default()),
        )
        .context("attaching to egress")?;
    // Kept attached after this process: the filter holds the program.
    std::mem::forget(prog.take_link(id)?);
    Ok(())
}

/// The NAPI threads that are not in `before`, each with the NAPI id that
/// ends its name (`napi/<dev>-<id>`; none where the kernel's 15-character
/// thread name cut it off, as for the switch's ports).
fn new_threads(before: &[u32]) -> Vec<(Option<u64>, u32)> {
    napi_threads()
        .into_iter()
        .filter(|p| !before.contains(p))
        .map(|p| {
            let comm = fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            (
                comm.trim().rsplit('-').next().and_then(|i| i.parse().ok()),
                p,
            )
        })
        .collect()
}

/// The new NAPI threads of `dev` in `netns` (made since `before`), one per
/// queue ([`LAN_QUEUES`]), in queue order: a device's NAPI ids follow its
/// queues (checked on this kernel by sending EF and other frames through
/// the switch's program and counting each thread's runs).
fn queue_threads(before: &[u32], netns: &str, dev: &str) -> Result<[u32; LAN_QUEUES as usize]> {
    let mut new = new_threads(before);
    new.sort_unstable();
    match new.as_slice() {
        [(Some(_), q0), (Some(_), q1)] => Ok([*q0, *q1]),
        _ => bail!(
            "threaded NAPI on {dev} (netns {netns}): expected {LAN_QUEUES} new napi threads \
             named by id, found {new:?}"
        ),
    }
}

/// `SCHED_FIFO` priority of a host's NAPI receive thread: below the node's
/// heartbeat thread (10), above every ordinary process.
pub const RX_THREAD_FIFO: i32 = 5;

/// Put a host's NAPI receive thread `pid` under `SCHED_FIFO`
/// ([`RX_THREAD_FIFO`]) or back under `SCHED_OTHER`.
///
/// A veth receive used to run in the sender's softirq, at once; in a kernel
/// thread of ordinary priority it waits for a CPU like any process, and on
/// a loaded host a heartbeat then waited with it: an idle pair at 5 ms x 3
/// heartbeats declared each other failed 8 and 12 times in 30 s (load 5-7),
/// 0 and 4 times with the thread at `SCHED_FIFO` (docs/DESIGN.md 4). A
/// quota'd host's thread goes back to `SCHED_OTHER` when it joins the host's
/// group, so its receive stays under the host's quota.
pub fn set_rx_thread_fifo(pid: u32, fifo: bool) -> Result<()> {
    let (policy, prio) = if fifo {
        (libc::SCHED_FIFO, RX_THREAD_FIFO)
    } else {
        (libc::SCHED_OTHER, 0)
    };
    let param = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: `param` is live for the call; a bad pid is an error return.
    if unsafe { libc::sched_setscheduler(pid as libc::pid_t, policy, &param) } != 0 {
        bail!(
            "scheduling policy of receive thread {pid}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// The conditions of one run, recorded in its `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conditions {
    /// Rate limit of every switch port in Mbit/s ([`LanQdisc`]); `None` = unlimited.
    pub lan_mbit: Option<u32>,
    /// CPU quota of each server host as a fraction of one core
    /// (0.5 = half a core); `None` = no quota.
    pub server_cpu: Option<f64>,
}

impl Conditions {
    /// Check the values are usable; a clear error otherwise.
    pub fn validate(&self) -> Result<()> {
        if let Some(m) = self.lan_mbit {
            if m == 0 || m > 100_000 {
                bail!("--lan-mbit must be between 1 and 100000, got {m}");
            }
        }
        if let Some(c) = self.server_cpu {
            if !(c.is_finite() && (0.01..=64.0).contains(&c)) {
                bail!("--server-cpu must be a fraction of a core between 0.01 and 64, got {c}");
            }
        }
        Ok(())
    }

    /// The conditions as `config.json` records them: the two options, plus
    /// the fixed testbed settings that shape every number (`bridge_nf_call`,
    /// the switch's bridge netfilter hooks: off on netns, on for a Docker
    /// bridge, whose isolation chain needs them; `cfs_period_us`, the CFS
    /// period of the quota, null without one; `lan_qdisc`, the switch ports'
    /// queueing discipline, null without a rate limit; `rt_period_us` and
    /// `rt_runtime_us`, the real-time budget asked for each quota'd group,
    /// null without a quota; `rx_thread_fifo`, the `SCHED_FIFO` priority of
    /// a host's receive thread outside a quota group (ordinary inside one),
    /// null on Docker).
    pub fn recorded(&self, topology: &str) -> serde_json::Value {
        let nf = if topology == "docker" {
            1
        } else {
            BRIDGE_NF_CALL
        };
        serde_json::json!({
            "lan_mbit": self.lan_mbit,
            "server_cpu": self.server_cpu,
            "bridge_nf_call": nf,
            "cfs_period_us": self.server_cpu.map(|c| cfs_period_quota(c).0),
            "lan_qdisc": self.lan_mbit.map(|m| LanQdisc::new(m).describe()),
            "host_rx": if topology == "docker" { "sender" } else { HOST_RX },
            "rx_thread_fifo": if topology == "docker" { None } else { Some(RX_THREAD_FIFO) },
            "rt_period_us": self.server_cpu.map(|_| RT_PERIOD_US),
            "rt_runtime_us": self.server_cpu.map(|_| RT_RUNTIME_US),
        })
    }
}

/// How long the data band of a switch port may queue at the port's rate:
/// 20 ms, the bound the port's FIFO had before it had a priority band.
pub const LAN_QUEUE_MS: u64 = 20;

/// The DSCP that gets the priority band of a switch port: EF (46), which the
/// node's heartbeat socket sets. The switch trusts DSCP, as a managed switch
/// with a strict-priority queue for EF does.
pub const LAN_PRIORITY_DSCP: u8 = 46;

/// The queueing discipline of a rate-limited switch port, as the `tc`
/// commands that build it and as `config.json` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanQdisc {
    /// Port rate in Mbit/s.
    pub mbit: u32,
    /// Bucket depth of the port (bytes): at least one 64 KB offloaded frame
    /// plus a little, so TSO/GSO frames pass.
    pub burst: u64,
    /// Byte limit of the data band's FIFO: [`LAN_QUEUE_MS`] at the port
    /// rate, never less than the burst.
    pub data_limit: u64,
}

impl LanQdisc {
    /// The qdisc for a port of `mbit` Mbit/s.
    pub fn new(mbit: u32) -> LanQdisc {
        let bytes_per_s = u64::from(mbit) * 1_000_000 / 8;
        let burst = (bytes_per_s / 250).max(96 * 1024);
        let data_limit = (bytes_per_s * LAN_QUEUE_MS / 1000).max(burst);
        LanQdisc {
            mbit,
            burst,
            data_limit,
        }
    }

    /// The `tc` argument lists that build the qdisc on `dev` (after any old
    /// root qdisc is deleted): an `htb` root shaped to the port rate with two
    /// classes, 1:10 (priority 0, DSCP EF, classified by a `u32` filter on
    /// the TOS byte) and 1:20 (priority 1, everything else, the default).
    /// HTB serves the lower priority first whenever both have packets, so a
    /// heartbeat waits for at most the frame on the wire, never for the
    /// data band's queue. 1:10 is guaranteed a tenth of the rate (heartbeats
    /// need well under 1 %) and both may borrow up to the full rate.
    pub fn tc_commands(&self, dev: &str) -> Vec<Vec<String>> {
        let kbit = u64::from(self.mbit) * 1000;
        let prio_kbit = (kbit / 10).max(8);
        let data_kbit = kbit.saturating_sub(prio_kbit).max(8);
        let (burst, limit) = (self.burst, self.data_limit);
        let tos = u32::from(LAN_PRIORITY_DSCP) << 2;
        [
            format!("qdisc add dev {dev} root handle 1: htb default 20"),
            format!(
                "class add dev {dev} parent 1: classid 1:1 htb rate {kbit}kbit \
                 burst {burst} cburst {burst} quantum 1514"
            ),
            format!(
                "class add dev {dev} parent 1:1 classid 1:10 htb rate {prio_kbit}kbit \
                 ceil {kbit}kbit quantum 1514 prio 0"
            ),
            format!(
                "class add dev {dev} parent 1:1 classid 1:20 htb rate {data_kbit}kbit \
                 ceil {kbit}kbit burst {burst} cburst {burst} quantum 1514 prio 1"
            ),
            format!("qdisc add dev {dev} parent 1:10 handle 10: pfifo limit 100"),
            format!("qdisc add dev {dev} parent 1:20 handle 20: bfifo limit {limit}"),
            format!(
                "filter add dev {dev} parent 1: protocol ip prio 1 u32 \
                 match ip tos {tos:#04x} 0xfc flowid 1:10"
            ),
        ]
        .iter()
        .map(|c| c.split_whitespace().map(str::to_string).collect())
        .collect()
    }

    /// The one-line description `config.json` records as
    /// `conditions.lan_qdisc`.
    pub fn describe(&self) -> String {
        format!(
            "htb {}mbit: DSCP EF band first, data band bfifo {} B",
            self.mbit, self.data_limit
        )
    }
}

/// Limit egress of `dev` inside namespace `netns` to `mbit` Mbit/s, with a
/// strict-priority band for DSCP EF ahead of a data band that queues at
/// most [`LAN_QUEUE_MS`] ([`LanQdisc`]).
pub fn apply_lan_rate(netns: &str, dev: &str, mbit: u32) -> Result<()> {
    let q = LanQdisc::new(mbit);
    // Replacing the root with another kind would keep nothing of the old
    // tree; deleting first makes the call repeatable (no qdisc yet: ignored).
    let _ = faultinject::netns::command_in(netns, "tc", &[])?
        .args(["qdisc", "del", "dev", dev, "root"])
        .output();
    for args in q.tc_commands(dev) {
        let out = faultinject::netns::command_in(netns, "tc", &[])?
            .args(&args)
            .output()
            .context("running tc")?;
        if !out.status.success() {
            bail!(
                "tc {} (netns {netns}) failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

/// A cgroup v1 CPU group for one server host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuGroup {
    /// Its directory under [`CPU_CGROUP_ROOT`].
    pub path: PathBuf,
}

impl CpuGroup {
    /// Create (or reuse) group `name` with a quota of `cores` CPUs.
    pub fn create(name: &str, cores: f64) -> Result<CpuGroup> {
        Self::create_under(Path::new(CPU_CGROUP_ROOT), name, cores)
    }

    /// Like [`CpuGroup::create`] under another cpu-controller directory.
    pub fn create_under(root: &Path, name: &str, cores: f64) -> Result<CpuGroup> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            bail!("bad cgroup name {name:?}");
        }
        if !root.join("cpu.cfs_quota_us").exists() {
            bail!(
                "{} is not a cgroup v1 cpu controller (no cpu.cfs_quota_us); CPU quotas need it",
                root.display()
            );
        }
        let path = root.join(name);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        let g = CpuGroup { path };
        let (period, quota) = cfs_period_quota(cores);
        g.write("cpu.cfs_period_us", &period.to_string())?;
        g.write("cpu.cfs_quota_us", &quota.to_string())?;
        g.grant_rt()?;
        Ok(g)
    }

    /// Give the group its real-time budget ([`RT_RUNTIME_US`] per
    /// [`RT_PERIOD_US`]), or the largest halving of it that the parent still
    /// has room for (a warning says so), or none (a warning too). Without
    /// RT group scheduling in the kernel there is nothing to give.
    fn grant_rt(&self) -> Result<()> {
        if !self.path.join("cpu.rt_runtime_us").exists() {
            return Ok(());
        }
        // A reused group may hold a runtime the new period cannot; zero first.
        self.write("cpu.rt_runtime_us", "0")?;
        self.write("cpu.rt_period_us", &RT_PERIOD_US.to_string())?;
        let mut runtime = RT_RUNTIME_US;
        while runtime >= RT_MIN_RUNTIME_US {
            match self.write("cpu.rt_runtime_us", &runtime.to_string()) {
                Ok(()) => {
                    if runtime < RT_RUNTIME_US {
                        tracing::warn!(
                            "{}: real-time runtime {runtime} us per {RT_PERIOD_US} us, not \
                             {RT_RUNTIME_US}: the other cpu groups hold the rest",
                            self.path.display()
                        );
                    }
                    return Ok(());
                }
                Err(_) => runtime /= 2,
            }
        }
        tracing::warn!(
            "{}: no real-time runtime left under {} (the other cpu groups hold it all); \
             heartbeat threads in this group will run at nice -10",
            self.path.display(),
            self.path
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        Ok(())
    }

    /// The group's real-time runtime per [`CpuGroup::rt_period_us`], in
    /// microseconds (0: none; `SCHED_FIFO` is refused inside the group).
    pub fn rt_runtime_us(&self) -> Result<i64> {
        self.read_num("cpu.rt_runtime_us")
    }

    /// The group's real-time period, in microseconds.
    pub fn rt_period_us(&self) -> Result<i64> {
        self.read_num("cpu.rt_period_us")
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        let p = self.path.join(file);
        fs::write(&p, value).with_context(|| format!("writing {value} to {}", p.display()))
    }

    /// The group's `cgroup.procs` (and the matching cpuacct group's), open
    /// for writing: a child writes `0` to each before it execs, so it starts
    /// inside the group. Moving a running process in later fails (EINVAL)
    /// once one of its threads runs a real-time policy, as the node's
    /// heartbeat thread does, unless the group has real-time runtime for it
    /// (cgroup v1 with RT group scheduling); joining before exec keeps the
    /// order simple: the thread asks for `SCHED_FIFO` already inside the
    /// group, and gets it from the group's budget ([`RT_RUNTIME_US`]).
    pub fn procs_files(&self) -> Result<Vec<fs::File>> {
        let mut paths = vec![self.path.join("cgroup.procs")];
        paths.extend(self.acct_path().map(|a| a.join("cgroup.procs")));
        paths
            .into_iter()
            .map(|p| {
                fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .with_context(|| format!("open {}", p.display()))
            })
            .collect()
    }

    /// Move process `pid` (all its threads) into the group, and into the
    /// cpuacct group of the same name when one exists (see [`CpuGroup::usage_ns`]).
    pub fn add_pid(&self, pid: u32) -> Result<()> {
        self.write("cgroup.procs", &pid.to_string())?;
        if let Some(acct) = self.acct_path() {
            fs::write(acct.join("cgroup.procs"), pid.to_string())
                .with_context(|| format!("adding {pid} to {}", acct.display()))?;
        }
        Ok(())
    }

    /// The matching cpuacct group, created on first use (only for groups
    /// under [`CPU_CGROUP_ROOT`], and only where cpuacct is mounted apart).
    fn acct_path(&self) -> Option<PathBuf> {
        let name = self.path.strip_prefix(CPU_CGROUP_ROOT).ok()?;
        let root = Path::new(CPUACCT_CGROUP_ROOT);
        if !root.join("cpuacct.usage").exists() || root == Path::new(CPU_CGROUP_ROOT) {
            return None;
        }
        let p = root.join(name);
        fs::create_dir_all(&p).ok()?;
        Some(p)
    }

    /// CPU time used by the group's processes so far, in nanoseconds
    /// (cpuacct), or `None` where cpuacct is not available.
    pub fn usage_ns(&self) -> Option<u64> {
        let p = self.acct_path()?.join("cpuacct.usage");
        fs::read_to_string(p).ok()?.trim().parse().ok()
    }

    /// The processes now in the group.
    pub fn pids(&self) -> Result<Vec<u32>> {
        let p = self.path.join("cgroup.procs");
        let s = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// The quota written, in microseconds per [`CpuGroup::period_us`].
    pub fn quota_us(&self) -> Result<i64> {
        self.read_num("cpu.cfs_quota_us")
    }

    /// The CFS period written, in microseconds.
    pub fn period_us(&self) -> Result<i64> {
        self.read_num("cpu.cfs_period_us")
    }

    fn read_num(&self, file: &str) -> Result<i64> {
        let p = self.path.join(file);
        let s = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        s.trim()
            .parse()
            .with_context(|| format!("parsing {}", p.display()))
    }

    /// Remove the group; processes still in it are moved to the root group
    /// first (the caller kills them beforehand in normal operation).
    pub fn remove(&self) -> Result<()> {
        if !self.path.exists() {
            return Ok(());
        }
        let root_procs = self.path.parent().map(|p| p.join("cgroup.procs"));
        if let (Ok(pids), Some(root_procs)) = (self.pids(), root_procs) {
            for pid in pids {
                let _ = fs::write(&root_procs, pid.to_string());
            }
        }
        if let Some(acct) = self.acct_path() {
            if let Ok(pids) = fs::read_to_string(acct.join("cgroup.procs")) {
                for pid in pids.lines() {
                    let _ = fs::write(Path::new(CPUACCT_CGROUP_ROOT).join("cgroup.procs"), pid);
                }
            }
        }
        // A killed process leaves a group only once the kernel has finished
        // its exit (rmdir says EBUSY until then): both groups are retried.
        // The cpuacct group's removal used to be tried once, and groups of
        // nodes killed a moment before stayed behind, empty.
        let acct = self.acct_path().map(|a| remove_dir_retrying(&a));
        remove_dir_retrying(&self.path)?;
        acct.transpose().map(|_| ())
    }
}

/// Removes cgroup directory `path`, retrying for up to 3 s while the
/// kernel says it is busy.
fn remove_dir_retrying(path: &Path) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match fs::remove_dir(path) {
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r.with_context(|| format!("removing {}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_nonsense() {
        assert!(Conditions {
            lan_mbit: Some(0),
            server_cpu: None
        }
        .validate()
        .is_err());
        assert!(Conditions {
            lan_mbit: None,
            server_cpu: Some(f64::NAN)
        }
        .validate()
        .is_err());
        assert!(Conditions {
            lan_mbit: None,
            server_cpu: Some(0.0)
        }
        .validate()
        .is_err());
        assert!(Conditions {
            lan_mbit: Some(100),
            server_cpu: Some(0.5)
        }
        .validate()
        .is_ok());
        assert!(Conditions::default().validate().is_ok());
    }

    #[test]
    fn period_is_10ms_and_quota_keeps_the_ratio() {
        assert_eq!(cfs_period_quota(0.1), (10_000, 1_000));
        assert_eq!(cfs_period_quota(0.5), (10_000, 5_000));
        assert_eq!(cfs_period_quota(2.0), (10_000, 20_000));
        // Below 0.1 core the 1 ms minimum quota stretches the period.
        assert_eq!(cfs_period_quota(0.05), (20_000, 1_000));
        assert_eq!(cfs_period_quota(0.01), (100_000, 1_000));
        let r = Conditions {
            lan_mbit: Some(100),
            server_cpu: Some(0.1),
        }
        .recorded("netns");
        assert_eq!(r["cfs_period_us"], 10_000);
        assert_eq!(r["rt_period_us"], RT_PERIOD_US);
        assert_eq!(r["rt_runtime_us"], RT_RUNTIME_US);
        assert_eq!(r["bridge_nf_call"], 0);
        assert_eq!(r["server_cpu"], 0.1);
        assert!(Conditions::default().recorded("netns")["cfs_period_us"].is_null());
        assert!(Conditions::default().recorded("netns")["rt_runtime_us"].is_null());
        assert_eq!(
            Conditions::default().recorded("docker")["bridge_nf_call"],
            1
        );
        assert_eq!(r["host_rx"], "napi_thread");
        assert_eq!(
            Conditions::default().recorded("docker")["host_rx"],
            "sender"
        );
    }

    #[test]
    fn lan_qdisc_puts_ef_first_and_bounds_the_data_band_at_20ms() {
        let q = LanQdisc::new(100);
        assert_eq!(q.burst, 96 * 1024);
        // 20 ms at 12.5 MB/s.
        assert_eq!(q.data_limit, 250_000);
        // A slow port still queues one offloaded frame.
        assert_eq!(LanQdisc::new(10).data_limit, 96 * 1024);
        let cmds: Vec<String> = q.tc_commands("p-x").iter().map(|c| c.join(" ")).collect();
        assert_eq!(cmds[0], "qdisc add dev p-x root handle 1: htb default 20");
        assert!(cmds.iter().any(
            |c| c.contains("classid 1:10 htb rate 10000kbit ceil 100000kbit")
                && c.ends_with("prio 0")
        ));
        assert!(cmds
            .iter()
            .any(|c| c.contains("classid 1:20 htb rate 90000kbit") && c.ends_with("prio 1")));
        assert!(cmds
            .iter()
            .any(|c| c == "qdisc add dev p-x parent 1:20 handle 20: bfifo limit 250000"));
        assert!(cmds
            .iter()
            .any(|c| c.ends_with("u32 match ip tos 0xb8 0xfc flowid 1:10")));
        let r = Conditions {
            lan_mbit: Some(100),
            server_cpu: None,
        }
        .recorded("netns");
        assert_eq!(r["lan_qdisc"], q.describe());
        assert!(Conditions::default().recorded("netns")["lan_qdisc"].is_null());
    }

    /// A process that joins the group between fork and exec (as every
    /// process of a server host does) may still switch to `SCHED_FIFO`:
    /// the group's real-time runtime is what the kernel checks.
    #[test]
    fn a_process_started_inside_the_group_gets_sched_fifo() {
        use std::os::unix::process::CommandExt;
        let name = format!("coral-test-rt-{}", std::process::id());
        let g = CpuGroup::create(&name, 0.1).expect("cgroup v1 cpu controller (run as root)");
        assert!(g.rt_runtime_us().unwrap() > 0);
        let procs = g.procs_files().unwrap();
        let mut cmd = std::process::Command::new("sh");
        // `chrt -f 10 CMD` calls sched_setscheduler(SCHED_FIFO, 10) on itself
        // and then execs CMD, which prints its own policy and group.
        cmd.args([
            "-c",
            "chrt -f 10 sh -c 'chrt -p $$; grep :cpu: /proc/$$/cgroup'",
        ]);
        // SAFETY: write(2) is async-signal-safe; the files were opened
        // before the fork.
        unsafe {
            cmd.pre_exec(move || {
                for f in &procs {
                    nix::unistd::write(f, b"0").map_err(std::io::Error::from)?;
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let _ = g.remove();
        assert!(out.status.success(), "{text}");
        assert!(text.contains("SCHED_FIFO"), "{text}");
        assert!(text.contains(&format!("/{name}")), "{text}");
    }

    #[test]
    fn bad_cgroup_names_are_refused() {
        let root = Path::new(CPU_CGROUP_ROOT);
        assert!(CpuGroup::create_under(root, "../x", 0.5).is_err());
        assert!(CpuGroup::create_under(root, "", 0.5).is_err());
        assert!(CpuGroup::create_under(Path::new("/nonexistent"), "x", 0.5).is_err());
    }

    #[test]
    fn quota_is_written_and_processes_join() {
        let name = format!("coral-test-{}", std::process::id());
        let g = CpuGroup::create(&name, 0.25).expect("cgroup v1 cpu controller (run as root)");
        assert_eq!(g.period_us().unwrap(), 10_000);
        assert_eq!(g.quota_us().unwrap(), 2_500);
        assert_eq!(g.rt_period_us().unwrap(), RT_PERIOD_US as i64);
        // The full budget, or a halving of it if other groups hold the rest.
        let rt = g.rt_runtime_us().unwrap();
        assert!(
            (RT_MIN_RUNTIME_US as i64..=RT_RUNTIME_US as i64).contains(&rt),
            "{rt}"
        );
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        g.add_pid(child.id()).unwrap();
        assert_eq!(g.pids().unwrap(), vec![child.id()]);
        assert!(
            g.usage_ns().is_some(),
            "cpuacct group follows the cpu group"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        g.remove().unwrap();
        assert!(!g.path.exists());
    }
}
