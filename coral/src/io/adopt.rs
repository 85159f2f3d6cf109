//! Frames the switch floods for a dead front (docs/DESIGN.md 5, "Frames
//! flooded for a dead front"): the shell around `bpf/adopt.bpf.c`.
//!
//! Clients send a service address's frames to the MAC of the node that
//! fronts it. When that node's link or switch port goes down, the switch
//! forgets the MAC and floods those frames to every port; the primary's
//! kernel drops them (not its MAC), and each client would wait for its own
//! retransmission timer. A tc ingress program on the primary's LAN
//! interface (tcx, ahead of the front's program) keeps copies of such
//! frames in a ring until the witness grants this node the address; from
//! the grant on ([`Adopter::adopt`], called when the node goes simplex) it
//! passes them to the local stack as its own, and the copies of the last
//! moments before the grant are injected into the local stack
//! ([`crate::io::inject`]). Before the grant nothing is acknowledged: the
//! peer may be alive and its record is the only one.
//!
//! A thread drains the ring (woken by the ring, at most every 100 ms) and
//! keeps only the copies of the last `keep` (older ones cannot be of use:
//! the client retransmitted them by then), bounded in count and bytes.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::links::LinkOrder;
use aya::programs::tc::TcAttachOptions;
use aya::programs::{SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};
use coral_core::wire::{build_ipv4_tcp_packet, parse_frame, FramePayload};

use super::ebpf_front::LoadError;
use super::inject::{inject, raw_inject_socket};

/// The program, built from `bpf/adopt.bpf.c` by `build.rs`.
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/adopt.bpf.o"));

const PROG_NAME: &str = "coral_adopt";

// Keep in step with bpf/adopt.bpf.c.
const ADOPT_HOLD: u32 = 0;
const ADOPT_TAKE: u32 = 1;
const REC_HDR_LEN: usize = 16;

/// At most this many copies are kept before a grant (the oldest go first).
const MAX_HELD: usize = 4096;
/// At most this many bytes of copies are kept before a grant.
const MAX_HELD_BYTES: usize = 16 << 20;

/// What to adopt, on which interface.
#[derive(Debug, Clone)]
pub struct AdoptConfig {
    /// LAN interface name (in the calling thread's namespace).
    pub lan: String,
    /// The MAC of the node that fronts `vips` (the peer).
    pub peer_mac: [u8; 6],
    /// The service addresses this node serves as primary.
    pub vips: Vec<Ipv4Addr>,
    /// How long a copy taken before the grant is kept.
    pub keep: Duration,
}

/// The program's counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdoptCounters {
    /// Frames to the peer's MAC and one of our addresses.
    pub seen: u64,
    /// Before the grant: copied to the ring.
    pub held: u64,
    /// Before the grant: not copied (ring full or too big).
    pub ring_full: u64,
    /// After the grant: passed to the local stack as ours.
    pub adopted: u64,
    /// Copies injected into the local stack (user space).
    pub injected: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct ProgConfig {
    peer_mac: [u8; 6],
    pad: [u8; 2],
}
// SAFETY: plain old data, `repr(C)`, no padding (6 + 2 bytes), the layout
// of `struct config` in bpf/adopt.bpf.c.
unsafe impl aya::Pod for ProgConfig {}

/// One copy taken before the grant, as the bare IPv4 packet to inject.
struct Held {
    ns: u64,
    vip: Ipv4Addr,
    packet: Vec<u8>,
}

struct Inner {
    ring: RingBuf<MapData>,
    vips: HashMap<MapData, u32, u32>,
    counters: PerCpuArray<MapData, u64>,
    taken: HashSet<Ipv4Addr>,
    held: VecDeque<Held>,
    held_bytes: usize,
    keep_ns: u64,
    raw: OwnedFd,
    injected: u64,
    // Owns the program and its tcx link; last, so maps go first.
    _ebpf: Ebpf,
}

/// The loaded and attached program and its ring's drainer. Dropping it
/// stops the thread and detaches the program.
pub struct Adopter {
    inner: Arc<Mutex<Inner>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Adopter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adopter").finish_non_exhaustive()
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: one valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The bare IPv4 packet to inject for a captured frame (fresh checksums:
/// a frame from a veth may carry a partial one), with its destination.
fn packet_of(frame: &[u8]) -> Option<(Ipv4Addr, Vec<u8>)> {
    let p = parse_frame(frame).ok()?;
    let FramePayload::Tcp(seg) = p.payload else {
        return None;
    };
    let pkt =
        build_ipv4_tcp_packet(seg.src_ip, seg.dst_ip, seg.ttl, 0, &seg.repr(), seg.payload).ok()?;
    Some((seg.dst_ip, pkt))
}

impl Inner {
    /// Move every record out of the ring: injected at once if its address
    /// is adopted, kept otherwise; then drop copies older than `keep`.
    fn drain(&mut self) {
        while let Some(item) = self.ring.next() {
            if item.len() < REC_HDR_LEN {
                continue;
            }
            let len = u32::from_ne_bytes([item[0], item[1], item[2], item[3]]) as usize;
            let mut ns = [0u8; 8];
            ns.copy_from_slice(&item[8..16]);
            let ns = u64::from_ne_bytes(ns);
            let Some((vip, packet)) = item.get(REC_HDR_LEN..REC_HDR_LEN + len).and_then(packet_of)
            else {
                continue;
            };
            if self.taken.contains(&vip) {
                if inject(&self.raw, &packet, vip).is_ok() {
                    self.injected += 1;
                }
                continue;
            }
            self.held_bytes += packet.len();
            self.held.push_back(Held { ns, vip, packet });
        }
        let oldest = monotonic_ns().saturating_sub(self.keep_ns);
        while let Some(h) = self.held.front() {
            if h.ns >= oldest && self.held.len() <= MAX_HELD && self.held_bytes <= MAX_HELD_BYTES {
                break;
            }
            self.held_bytes -= h.packet.len();
            self.held.pop_front();
        }
    }

    fn set(&mut self, vip: Ipv4Addr, v: u32) -> io::Result<()> {
        self.vips
            .insert(u32::from_ne_bytes(vip.octets()), v, 0)
            .map_err(io::Error::other)
    }
}

impl Adopter {
    /// Load the program, fill its maps (every address held), attach it to
    /// `cfg.lan`'s tc ingress ahead of any other program, and start the
    /// thread that drains its ring.
    pub fn start(cfg: &AdoptConfig) -> Result<Adopter, LoadError> {
        let err = |stage: &str, e: &dyn std::fmt::Display| {
            LoadError::new(format!("adopting flooded frames: {stage}: {e}"))
        };
        let mut ebpf = EbpfLoader::new()
            .load(PROGRAM)
            .map_err(|e| err("load", &e))?;
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| LoadError::new(format!("the adopt object has no map {name}")))
        };
        let ring = RingBuf::try_from(take("ADOPT_RING")?).map_err(|e| err("maps", &e))?;
        let mut cfg_map: Array<MapData, ProgConfig> =
            Array::try_from(take("ADOPT_CFG")?).map_err(|e| err("maps", &e))?;
        let vips = HashMap::try_from(take("ADOPT_VIPS")?).map_err(|e| err("maps", &e))?;
        let counters =
            PerCpuArray::try_from(take("ADOPT_COUNTERS")?).map_err(|e| err("maps", &e))?;
        cfg_map
            .set(
                0,
                ProgConfig {
                    peer_mac: cfg.peer_mac,
                    pad: [0; 2],
                },
                0,
            )
            .map_err(|e| err("maps", &e))?;
        let prog: &mut SchedClassifier = ebpf
            .program_mut(PROG_NAME)
            .ok_or_else(|| LoadError::new(format!("the adopt object has no program {PROG_NAME}")))?
            .try_into()
            .map_err(|e| err("load", &e))?;
        prog.load().map_err(|e| err("load", &e))?;
        prog.attach_with_options(
            &cfg.lan,
            TcAttachType::Ingress,
            TcAttachOptions::TcxOrder(LinkOrder::first()),
        )
        .map_err(|e| err("attach", &e))?;
        let raw = raw_inject_socket().map_err(|e| err("raw socket", &e))?;
        let mut inner = Inner {
            ring,
            vips,
            counters,
            taken: HashSet::new(),
            held: VecDeque::new(),
            held_bytes: 0,
            keep_ns: cfg.keep.as_nanos() as u64,
            raw,
            injected: 0,
            _ebpf: ebpf,
        };
        for v in &cfg.vips {
            inner.set(*v, ADOPT_HOLD).map_err(|e| err("maps", &e))?;
        }
        let ring_fd = inner.ring.as_fd().as_raw_fd();
        let inner = Arc::new(Mutex::new(inner));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (inner, stop) = (inner.clone(), stop.clone());
            std::thread::Builder::new()
                .name("coral-adopt".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let mut pfd = libc::pollfd {
                            fd: ring_fd,
                            events: libc::POLLIN,
                            revents: 0,
                        };
                        // SAFETY: one valid pollfd; the ring outlives the
                        // thread (Drop joins it first).
                        unsafe { libc::poll(&mut pfd, 1, 100) };
                        inner.lock().unwrap_or_else(|e| e.into_inner()).drain();
                    }
                })
                .map_err(|e| err("thread", &e))?
        };
        Ok(Adopter {
            inner,
            stop,
            thread: Some(thread),
        })
    }

    /// The witness granted us `vip`: from now on its flooded frames are
    /// ours, and the copies kept since `keep` ago are injected (in arrival
    /// order). Returns how many were injected.
    pub fn adopt(&self, vip: Ipv4Addr) -> io::Result<u64> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // The map update is a system call: a program run that reads the
        // old value copied its frame to the ring, which the drains below
        // and the thread's next one see.
        g.set(vip, ADOPT_TAKE)?;
        g.taken.insert(vip);
        g.drain();
        let before = g.injected;
        let held = std::mem::take(&mut g.held);
        g.held_bytes = 0;
        for h in held {
            if h.vip != vip {
                g.held_bytes += h.packet.len();
                g.held.push_back(h);
            } else if inject(&g.raw, &h.packet, vip).is_ok() {
                g.injected += 1;
            }
        }
        Ok(g.injected - before)
    }

    /// A new front took `vip` (a join): its frames are no longer ours.
    pub fn hold(&self, vip: Ipv4Addr) -> io::Result<()> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.taken.remove(&vip);
        g.set(vip, ADOPT_HOLD)
    }

    /// The program's counters, summed over CPUs, and the copies injected.
    pub fn counters(&self) -> io::Result<AdoptCounters> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = [0u64; 4];
        for (i, slot) in v.iter_mut().enumerate() {
            let per_cpu = g.counters.get(&(i as u32), 0).map_err(io::Error::other)?;
            *slot = per_cpu.iter().sum();
        }
        Ok(AdoptCounters {
            seen: v[0],
            held: v[1],
            ring_full: v[2],
            adopted: v[3],
            injected: g.injected,
        })
    }
}

impl Drop for Adopter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coral_core::wire::{TcpFlags, TcpOptions, TcpRepr};

    #[test]
    fn the_object_has_the_program_and_its_maps() {
        let obj = String::from_utf8_lossy(PROGRAM);
        for name in [
            PROG_NAME,
            "ADOPT_RING",
            "ADOPT_CFG",
            "ADOPT_VIPS",
            "ADOPT_COUNTERS",
        ] {
            assert!(obj.contains(name), "{name} missing from the object");
        }
        assert_eq!(std::mem::size_of::<ProgConfig>(), 8);
    }

    #[test]
    fn a_frame_with_a_partial_checksum_is_injected_with_a_correct_one() {
        let (src, dst) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 100));
        let repr = TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq: coral_core::SeqNum(1000),
            ack: coral_core::SeqNum(2000),
            flags: TcpFlags(TcpFlags::ACK | TcpFlags::PSH),
            window: 500,
            options: TcpOptions::default(),
        };
        let mut pkt =
            build_ipv4_tcp_packet(src, dst, 64, 7, &repr, b"GET / HTTP/1.1\r\n\r\n").unwrap();
        // A veth sender's offloaded checksum: garbage until the NIC (here:
        // nobody) finishes it.
        pkt[20 + 16] ^= 0x5a;
        let mut frame = vec![0u8; 14];
        frame[12] = 0x08;
        frame.extend_from_slice(&pkt);
        let (vip, out) = packet_of(&frame).expect("a TCP frame");
        assert_eq!(vip, dst);
        let seg = coral_core::wire::TcpSegment::parse_ipv4(&out).unwrap();
        assert_eq!(seg.payload, b"GET / HTTP/1.1\r\n\r\n");
        let t = coral_core::wire::TcpPacket::new_checked(&out[20..]).unwrap();
        assert!(t.verify_checksum(src, dst));
        // Not TCP: nothing to inject.
        frame[14 + 9] = 17;
        assert!(packet_of(&frame).is_none());
    }
}
