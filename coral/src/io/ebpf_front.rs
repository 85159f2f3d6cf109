//! The eBPF front: the backup's kernel fast path for the service addresses
//! it fronts (the shell around `bpf/front.bpf.c`).
//!
//! A tc ingress program on the LAN interface, attached with a tcx link that
//! this process owns (a node that dies leaves nothing attached: the kernel
//! drops the link with the last descriptor). For a frame to a fronted
//! address the program writes the whole frame into a BPF ring buffer and
//! only then rewrites both MACs and redirects it to the primary out of the
//! same interface; a full ring drops the frame (counted) and never forwards
//! it unrecorded. A frame in the ring counts as recorded: the ring dies with
//! the node, and a dead backup never takes over.
//!
//! This module decides nothing: user space sets the mode, the addresses,
//! the MACs and per-connection verdicts in the program's maps, drains the
//! ring in batches and hands every frame to a callback (the table owner
//! records it into the core's `ConnTable`). The forwarding itself runs in
//! the sender's context (the client's softirq), not in this process.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::links::LinkOrder;
use aya::programs::tc::TcAttachOptions;
use aya::programs::{SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};
use coral_core::FourTuple;

/// The program, built from `bpf/front.bpf.c` by `build.rs`.
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/front.bpf.o"));

/// The program's entry point in the object.
const PROG_NAME: &str = "coral_front";

// Keep in step with bpf/front.bpf.c.
const CFG_WAKEUP_PER_RECORD: u32 = 1;
const CFG_REFUSE_NEW_CONNS: u32 = 2;
const CFG_HAVE_VERDICTS: u32 = 4;
const CFG_PASS_LOCAL: u32 = 8;
const REC_HDR_LEN: usize = 8;

/// Default ring size: 16 MiB (a power of two; the program reserves each
/// record in one of a few sizes, at most 64 KiB + 264 bytes).
pub const DEFAULT_RING_BYTES: u32 = 16 << 20;

/// What the program does with frames to a fronted address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Record, then forward to the primary.
    Forward = 0,
    /// Takeover under way: record and drop (user space keeps the copies).
    Hold = 1,
    /// The address is local now: pass frames to the kernel; only those of
    /// connections with [`ConnVerdict::Watch`] are still recorded.
    Idle = 2,
    /// Takeover with the lease and the address in place: as [`Mode::Hold`],
    /// but a pure ACK (no payload, no SYN, FIN or RST) of a connection
    /// with a socket on this node passes to the kernel unrecorded.
    HoldData = 3,
}

/// A per-connection decision, precomputed by user space from the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnVerdict {
    /// Record the frame but do not forward it (the table cannot hold more
    /// of this connection's bytes yet).
    RecordOnly = 1,
    /// Neither record nor forward.
    Drop = 2,
    /// Idle mode: record and pass to the kernel (a connection caught
    /// mid-handshake at a takeover).
    Watch = 3,
}

/// Why a frame is in the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Recorded, then forwarded to the primary.
    Forwarded,
    /// Recorded in hold mode, not forwarded (keep it for re-injection).
    Held,
    /// Recorded, not forwarded, by [`ConnVerdict::RecordOnly`].
    RecordOnly,
    /// Recorded in idle mode by [`ConnVerdict::Watch`]; the kernel has it too.
    Watched,
}

impl RecordKind {
    fn from_raw(v: u32) -> Option<RecordKind> {
        Some(match v {
            0 => RecordKind::Forwarded,
            1 => RecordKind::Held,
            2 => RecordKind::RecordOnly,
            3 => RecordKind::Watched,
            _ => return None,
        })
    }
}

/// How the program tells the consumer that records are waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// `BPF_RB_NO_WAKEUP`: never; the consumer polls with a short timeout.
    Never,
    /// The ring's default: wake the consumer when it has caught up.
    WhenIdle,
}

/// Static configuration of one eBPF front.
#[derive(Debug, Clone)]
pub struct EbpfFrontConfig {
    /// LAN interface name (in the calling thread's namespace).
    pub lan: String,
    /// Our MAC on it (the forwarded frames' source).
    pub own_mac: [u8; 6],
    /// The primary's MAC (the forwarded frames' destination).
    pub primary_mac: [u8; 6],
    /// The service addresses fronted.
    pub vips: Vec<Ipv4Addr>,
    /// Ring size in bytes (a power of two, at least one page).
    pub ring_bytes: u32,
    /// Wake-up policy of the ring.
    pub wakeup: Wakeup,
}

/// The program's counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EbpfCounters {
    /// IPv4 frames to a fronted address.
    pub seen: u64,
    /// Frames written to the ring.
    pub recorded: u64,
    /// Frames recorded, then redirected to the primary.
    pub forwarded: u64,
    /// Frames dropped because the ring was full (never forwarded).
    pub ring_full: u64,
    /// Frames recorded and dropped in hold mode.
    pub held: u64,
    /// Frames dropped by [`ConnVerdict::Drop`].
    pub verdict_drop: u64,
    /// Frames recorded, not forwarded, by [`ConnVerdict::RecordOnly`].
    pub record_only: u64,
    /// Frames too large for any record size (dropped).
    pub too_big: u64,
    /// Frames recorded whose MAC rewrite failed (dropped).
    pub rewrite_fail: u64,
    /// Idle mode: frames recorded by [`ConnVerdict::Watch`].
    pub watched: u64,
    /// SYNs of new connections refused while the table is full.
    pub syn_refused: u64,
    /// Idle mode: frames passed to the kernel unrecorded.
    pub idle_pass: u64,
    /// Forward mode: frames of a flow with a local socket (kept at a
    /// hand-over), passed to the local stack unrecorded.
    pub local_pass: u64,
    /// [`Mode::HoldData`]: pure ACKs of a flow with a local socket, passed
    /// to the local stack unrecorded.
    pub hold_ack_pass: u64,
}

/// The program's own CPU time, from the kernel's BPF statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgramRunStats {
    /// Total run time (counted only while statistics are enabled).
    pub run_time: Duration,
    /// Number of runs (same condition).
    pub run_count: u64,
}

/// Loading or attaching failed; the message names what is missing.
#[derive(Debug, thiserror::Error)]
#[error("eBPF front: {0}")]
pub struct LoadError(String);

impl LoadError {
    /// A load error with this message.
    pub fn new(msg: impl Into<String>) -> LoadError {
        LoadError(msg.into())
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct ProgConfig {
    own_mac: [u8; 6],
    primary_mac: [u8; 6],
    flags: u32,
}
// SAFETY: plain old data, `repr(C)`, no padding (6 + 6 + 4 bytes), the
// layout of `struct config` in bpf/front.bpf.c.
unsafe impl aya::Pod for ProgConfig {}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ConnKey {
    client_ip: u32,
    vip: u32,
    client_port: u16,
    vip_port: u16,
}
// SAFETY: plain old data, `repr(C)`, no padding (4 + 4 + 2 + 2 bytes), the
// layout of `struct conn_key` in bpf/front.bpf.c (network byte order).
unsafe impl aya::Pod for ConnKey {}

impl ConnKey {
    fn of(t: &FourTuple) -> ConnKey {
        ConnKey {
            client_ip: u32::from_ne_bytes(t.client_ip.octets()),
            vip: u32::from_ne_bytes(t.server_ip.octets()),
            client_port: t.client_port.to_be(),
            vip_port: t.server_port.to_be(),
        }
    }
}

/// A loaded and attached eBPF front. Dropping it detaches the program.
pub struct EbpfFront {
    ring: RingBuf<MapData>,
    mode: Array<MapData, u32>,
    cfg: Array<MapData, ProgConfig>,
    vips: HashMap<MapData, u32, u32>,
    verdicts: HashMap<MapData, ConnKey, u32>,
    counters: PerCpuArray<MapData, u64>,
    inflight: PerCpuArray<MapData, u64>,
    prog_cfg: ProgConfig,
    n_verdicts: usize,
    stats_fd: Option<OwnedFd>,
    // Owns the program and its tcx link; last, so maps go first.
    ebpf: Ebpf,
}

impl std::fmt::Debug for EbpfFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EbpfFront")
            .field("cfg", &self.prog_cfg)
            .finish_non_exhaustive()
    }
}

/// The first OS error in an error's chain, if any.
fn os_error(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if let Some(code) = io.raw_os_error() {
                return Some(code);
            }
        }
        cur = err.source();
    }
    None
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// A clear message for a failure at `stage`, naming what is missing.
fn explain(stage: &str, e: &(dyn std::error::Error + 'static)) -> LoadError {
    let mut detail = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        src = s.source();
    }
    let hint = match os_error(e) {
        Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "permission denied: loading and attaching the front needs CAP_BPF and \
             CAP_NET_ADMIN (or root){}",
            if stage == "load" {
                "; or the verifier refused the program (log below)"
            } else {
                ""
            }
        ),
        Some(libc::ENOSYS) => "the bpf() system call is not available in this kernel".into(),
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(libc::ENOTSUP) if stage == "attach" => {
            format!(
                "the kernel refused a tcx ingress link (tcx needs Linux 6.6 or later; \
                 running {})",
                kernel_release()
            )
        }
        Some(libc::EINVAL) if stage == "maps" => format!(
            "the kernel refused a map (BPF ring buffers need Linux 5.8 or later, running {}; \
             the ring size must be a power of two and a multiple of the page size)",
            kernel_release()
        ),
        Some(libc::ENODEV) => "no such interface".into(),
        _ => "unexpected failure".into(),
    };
    LoadError(format!("{stage}: {hint}: {detail}"))
}

impl EbpfFront {
    /// Load the program, fill its maps and attach it to `cfg.lan`'s tc
    /// ingress with a tcx link owned by this process. Runs in the calling
    /// thread's network namespace.
    pub fn load(cfg: &EbpfFrontConfig) -> Result<EbpfFront, LoadError> {
        if !cfg.ring_bytes.is_power_of_two() || cfg.ring_bytes < 4096 {
            return Err(LoadError(format!(
                "ring size {} is not a power of two of at least 4096 bytes",
                cfg.ring_bytes
            )));
        }
        if cfg.vips.is_empty() {
            return Err(LoadError("no service address to front".into()));
        }
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("CORAL_RING", cfg.ring_bytes)
            .load(PROGRAM)
            .map_err(|e| match &e {
                aya::EbpfError::ProgramError(_) => explain("load", &e),
                _ => explain("maps", &e),
            })?;
        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| LoadError(format!("the program object has no map {name}")))
        };
        let ring =
            RingBuf::try_from(take(&mut ebpf, "CORAL_RING")?).map_err(|e| explain("maps", &e))?;
        let mut mode: Array<MapData, u32> =
            Array::try_from(take(&mut ebpf, "CORAL_MODE")?).map_err(|e| explain("maps", &e))?;
        let mut cfg_map: Array<MapData, ProgConfig> =
            Array::try_from(take(&mut ebpf, "CORAL_CFG")?).map_err(|e| explain("maps", &e))?;
        let mut vips: HashMap<MapData, u32, u32> =
            HashMap::try_from(take(&mut ebpf, "CORAL_VIPS")?).map_err(|e| explain("maps", &e))?;
        let verdicts = HashMap::try_from(take(&mut ebpf, "CORAL_VERDICTS")?)
            .map_err(|e| explain("maps", &e))?;
        let counters = PerCpuArray::try_from(take(&mut ebpf, "CORAL_COUNTERS")?)
            .map_err(|e| explain("maps", &e))?;
        let inflight = PerCpuArray::try_from(take(&mut ebpf, "CORAL_INFLIGHT")?)
            .map_err(|e| explain("maps", &e))?;

        let prog_cfg = ProgConfig {
            own_mac: cfg.own_mac,
            primary_mac: cfg.primary_mac,
            flags: if cfg.wakeup == Wakeup::WhenIdle {
                CFG_WAKEUP_PER_RECORD
            } else {
                0
            },
        };
        cfg_map
            .set(0, prog_cfg, 0)
            .map_err(|e| explain("maps", &e))?;
        mode.set(0, Mode::Forward as u32, 0)
            .map_err(|e| explain("maps", &e))?;
        for v in &cfg.vips {
            vips.insert(u32::from_ne_bytes(v.octets()), 1, 0)
                .map_err(|e| explain("maps", &e))?;
        }

        let prog: &mut SchedClassifier = ebpf
            .program_mut(PROG_NAME)
            .ok_or_else(|| LoadError(format!("the program object has no program {PROG_NAME}")))?
            .try_into()
            .map_err(|e| explain("load", &e))?;
        prog.load().map_err(|e| explain("load", &e))?;
        prog.attach_with_options(
            &cfg.lan,
            TcAttachType::Ingress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .map_err(|e| {
            if matches!(
                e,
                aya::programs::ProgramError::TcError(aya::programs::tc::TcError::IoError(_))
            ) {
                LoadError(format!(
                    "attach: no interface {:?} in this namespace",
                    cfg.lan
                ))
            } else {
                explain("attach", &e)
            }
        })?;
        Ok(EbpfFront {
            ring,
            mode,
            cfg: cfg_map,
            vips,
            verdicts,
            counters,
            inflight,
            prog_cfg,
            n_verdicts: 0,
            stats_fd: None,
            ebpf,
        })
    }

    fn write_cfg(&mut self) -> io::Result<()> {
        let mut c = self.prog_cfg;
        if self.n_verdicts > 0 {
            c.flags |= CFG_HAVE_VERDICTS;
        }
        self.cfg.set(0, c, 0).map_err(io::Error::other)
    }

    /// Set the mode (one 4-byte map write; runs under way may still see
    /// the old mode: see [`EbpfFront::quiesce`]).
    pub fn set_mode(&mut self, mode: Mode) -> io::Result<()> {
        self.mode.set(0, mode as u32, 0).map_err(io::Error::other)
    }

    /// The mode currently set.
    pub fn mode(&self) -> io::Result<Mode> {
        Ok(match self.mode.get(&0, 0).map_err(io::Error::other)? {
            0 => Mode::Forward,
            1 => Mode::Hold,
            3 => Mode::HoldData,
            _ => Mode::Idle,
        })
    }

    /// Start fronting `vip`.
    pub fn add_vip(&mut self, vip: Ipv4Addr) -> io::Result<()> {
        self.vips
            .insert(u32::from_ne_bytes(vip.octets()), 1, 0)
            .map_err(io::Error::other)
    }

    /// Stop fronting `vip` (its frames pass to the kernel untouched).
    pub fn remove_vip(&mut self, vip: Ipv4Addr) -> io::Result<()> {
        self.vips
            .remove(&u32::from_ne_bytes(vip.octets()))
            .map_err(io::Error::other)
    }

    /// Forward to a different primary MAC.
    pub fn set_primary_mac(&mut self, mac: [u8; 6]) -> io::Result<()> {
        self.prog_cfg.primary_mac = mac;
        self.write_cfg()
    }

    /// In forward mode, pass every frame of a TCP flow that has a socket on
    /// this node (not a listener; never a pure SYN) to the local stack,
    /// unrecorded: the connections this node kept when it handed the
    /// address's primary role over.
    pub fn pass_local_flows(&mut self, pass: bool) -> io::Result<()> {
        if pass {
            self.prog_cfg.flags |= CFG_PASS_LOCAL;
        } else {
            self.prog_cfg.flags &= !CFG_PASS_LOCAL;
        }
        self.write_cfg()
    }

    /// Refuse (drop unrecorded) SYNs of connections without a verdict,
    /// while the table is full.
    pub fn refuse_new_conns(&mut self, refuse: bool) -> io::Result<()> {
        if refuse {
            self.prog_cfg.flags |= CFG_REFUSE_NEW_CONNS;
        } else {
            self.prog_cfg.flags &= !CFG_REFUSE_NEW_CONNS;
        }
        self.write_cfg()
    }

    /// Set (`Some`) or clear (`None`) the verdict for one connection.
    pub fn set_verdict(&mut self, tuple: &FourTuple, v: Option<ConnVerdict>) -> io::Result<()> {
        let key = ConnKey::of(tuple);
        let had = self.verdicts.get(&key, 0).is_ok();
        let any_before = self.n_verdicts > 0;
        match v {
            Some(v) => {
                self.verdicts
                    .insert(key, v as u32, 0)
                    .map_err(io::Error::other)?;
                if !had {
                    self.n_verdicts += 1;
                }
            }
            None if had => {
                self.verdicts.remove(&key).map_err(io::Error::other)?;
                self.n_verdicts -= 1;
            }
            None => return Ok(()),
        }
        // The program looks verdicts up only while there are any.
        if (self.n_verdicts > 0) != any_before {
            self.write_cfg()?;
        }
        Ok(())
    }

    /// Hand up to `max` records to `f`, in ring order; returns how many.
    /// No system call: the ring is memory-mapped.
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(RecordKind, &[u8])) -> usize {
        let mut n = 0;
        while n < max {
            let Some(item) = self.ring.next() else { break };
            if item.len() >= REC_HDR_LEN {
                let len = u32::from_ne_bytes([item[0], item[1], item[2], item[3]]) as usize;
                let kind = u32::from_ne_bytes([item[4], item[5], item[6], item[7]]);
                if let (Some(kind), Some(frame)) = (
                    RecordKind::from_raw(kind),
                    item.get(REC_HDR_LEN..REC_HDR_LEN + len),
                ) {
                    f(kind, frame);
                }
            }
            n += 1;
        }
        n
    }

    /// Wait up to `timeout` for the ring's descriptor to become readable
    /// (only [`Wakeup::WhenIdle`] wakes it; with [`Wakeup::Never`] this is
    /// the poll interval). True if readable.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e);
        }
        Ok(rc > 0)
    }

    /// The program runs under way on all CPUs right now.
    pub fn runs_in_flight(&self) -> io::Result<u64> {
        let v = self.inflight.get(&0, 0).map_err(io::Error::other)?;
        Ok(v.iter().fold(0u64, |a, x| a.wrapping_add(*x)))
    }

    /// Takeover: switch to hold, wait until no run that may have seen the
    /// old mode is under way (at most `timeout`), then drain the whole ring
    /// into `f`. After this every frame ever forwarded has been handed to
    /// `f`, and new frames are only recorded (as [`RecordKind::Held`]).
    pub fn quiesce(
        &mut self,
        timeout: Duration,
        f: impl FnMut(RecordKind, &[u8]),
    ) -> io::Result<usize> {
        self.switch_mode(Mode::Hold, timeout, f)
    }

    /// Set `mode`, wait until no run that may have seen the old mode is
    /// under way (at most `timeout`), then drain the whole ring into `f`:
    /// every record written under the old mode has been handed over.
    pub fn switch_mode(
        &mut self,
        mode: Mode,
        timeout: Duration,
        mut f: impl FnMut(RecordKind, &[u8]),
    ) -> io::Result<usize> {
        self.set_mode(mode)?;
        let deadline = Instant::now() + timeout;
        // The map update above is a system call (a full barrier); the
        // program bumps its in-flight count with an atomic add before it
        // reads the mode. A run not counted here reads the new mode.
        while self.runs_in_flight()? != 0 {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "eBPF front: program runs still in flight after the mode switch",
                ));
            }
            std::thread::yield_now();
        }
        let mut n = 0;
        loop {
            let k = self.drain(usize::MAX, &mut f);
            if k == 0 {
                break;
            }
            n += k;
        }
        Ok(n)
    }

    /// The program's counters, summed over CPUs.
    pub fn counters(&self) -> io::Result<EbpfCounters> {
        let mut v = [0u64; 14];
        for (i, slot) in v.iter_mut().enumerate() {
            let per_cpu = self
                .counters
                .get(&(i as u32), 0)
                .map_err(io::Error::other)?;
            *slot = per_cpu.iter().sum();
        }
        Ok(EbpfCounters {
            seen: v[0],
            recorded: v[1],
            forwarded: v[2],
            ring_full: v[3],
            held: v[4],
            verdict_drop: v[5],
            record_only: v[6],
            too_big: v[7],
            rewrite_fail: v[8],
            watched: v[9],
            syn_refused: v[10],
            idle_pass: v[11],
            local_pass: v[12],
            hold_ack_pass: v[13],
        })
    }

    /// Turn on the kernel's run-time statistics for BPF programs
    /// (`BPF_ENABLE_STATS`) for as long as this front lives, so
    /// [`EbpfFront::run_stats`] counts. Costs two clock reads per run.
    pub fn enable_run_stats(&mut self) -> io::Result<()> {
        if self.stats_fd.is_none() {
            let fd = aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| {
                io::Error::other(format!("BPF_ENABLE_STATS (needs CAP_SYS_ADMIN): {e}"))
            })?;
            self.stats_fd = Some(fd);
        }
        Ok(())
    }

    /// The program's own run time and run count (the kernel's BPF
    /// statistics: zero unless enabled, by [`EbpfFront::enable_run_stats`]
    /// or `kernel.bpf_stats_enabled`). The program runs in the sender's
    /// context, outside this process's CPU time.
    pub fn run_stats(&self) -> io::Result<ProgramRunStats> {
        let info = self.program_info()?;
        Ok(ProgramRunStats {
            run_time: info.run_time(),
            run_count: info.run_count(),
        })
    }

    /// The kernel's id of the loaded program (as `bpftool prog show id`
    /// lists it): it lives exactly as long as this front or its link.
    pub fn program_id(&self) -> io::Result<u32> {
        Ok(self.program_info()?.id())
    }

    /// The kernel's view of the loaded program (id, run time, run count).
    fn program_info(&self) -> io::Result<aya::programs::ProgramInfo> {
        let prog: &SchedClassifier = self
            .ebpf
            .program(PROG_NAME)
            .ok_or_else(|| io::Error::other("program gone"))?
            .try_into()
            .map_err(io::Error::other)?;
        prog.info().map_err(io::Error::other)
    }

    /// Detach the program and free its maps.
    pub fn detach(self) {
        drop(self);
    }
}

impl AsRawFd for EbpfFront {
    /// The ring's descriptor (readable when records wait and the program
    /// woke it), for the owner's poll loop.
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_fd().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_key_is_in_network_byte_order() {
        let t = FourTuple {
            client_ip: Ipv4Addr::new(198, 51, 100, 7),
            client_port: 0x1234,
            server_ip: Ipv4Addr::new(192, 0, 2, 100),
            server_port: 80,
        };
        let k = ConnKey::of(&t);
        // SAFETY: ConnKey is 12 bytes of plain data.
        let bytes: [u8; 12] = unsafe { std::mem::transmute(k) };
        assert_eq!(bytes, [198, 51, 100, 7, 192, 0, 2, 100, 0x12, 0x34, 0, 80]);
        assert_eq!(std::mem::size_of::<ProgConfig>(), 16);
    }

    #[test]
    fn the_object_has_the_program_and_its_maps() {
        let obj = aya_obj_names(PROGRAM);
        for name in [
            PROG_NAME,
            "CORAL_RING",
            "CORAL_MODE",
            "CORAL_CFG",
            "CORAL_VIPS",
            "CORAL_VERDICTS",
            "CORAL_COUNTERS",
            "CORAL_INFLIGHT",
        ] {
            assert!(obj.contains(name), "{name} missing from the object");
        }
    }

    fn aya_obj_names(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[test]
    fn a_bad_ring_size_is_refused_before_loading() {
        let e = EbpfFront::load(&EbpfFrontConfig {
            lan: "lo".into(),
            own_mac: [0; 6],
            primary_mac: [0; 6],
            vips: vec![Ipv4Addr::new(192, 0, 2, 100)],
            ring_bytes: 5000,
            wakeup: Wakeup::Never,
        })
        .unwrap_err();
        assert!(e.to_string().contains("power of two"), "{e}");
    }
}
