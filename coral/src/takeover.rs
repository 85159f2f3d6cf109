//! The backup takes over a failed primary's connections (docs/DESIGN.md section
//! 5, steps 1 to 7, in that order; each step there records what went wrong
//! on this machine when it was done differently).
//!
//! 1. Stop forwarding (the packet socket stays open, frames are held) and
//!    snapshot the shadow state; stop acknowledging log entries at the same
//!    instant, under the table lock, so the old primary can never write
//!    another byte.
//! 2. Rebuild every restorable connection with `TCP_REPAIR`, before the
//!    address is local (`IP_TRANSPARENT`), so no client segment finds no
//!    socket and draws an RST.
//! 3. Lease the address in the fence and add it to the LAN interface.
//! 4. Re-inject client data held since the snapshot past each socket's
//!    receive point (the kernel dropped it while the address was not local).
//! 5. Write the logged-but-unacknowledged reply bytes as ordinary data, then
//!    hand each socket to the HTTP server, which answers the unanswered
//!    requests.
//! 6. Gratuitous ARP on the still-open packet socket, confirmed by a ping to
//!    the outside host from the service address.
//! 7. A listener on the address serves new connections.
//!
//! Every step is timed; [`TakeoverReport::breakdown`] maps them onto the
//! rows of the paper's Table 1.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coral_core::wire::{parse_frame, FramePayload};
use coral_core::ConnTable;
use coral_core::FourTuple;
use coral_core::{NotRestorable, TakeoverParams, TakeoverState};

use crate::clock::Clock;
use crate::io::announce;
use crate::io::front::Front;
use crate::io::logged_io::{LogFuture, ReplyLogger};
use crate::io::repair::{self, RepairSpec};

/// The logger of a node without a peer: every reply is "logged" at once.
pub struct SimplexLogger;

impl ReplyLogger for SimplexLogger {
    fn log_reply(&self, _t: FourTuple, _r: u64, _o: u64, _b: Vec<u8>) -> LogFuture {
        Box::pin(async { Ok(()) })
    }
}

/// What one takeover did and how long each step took.
#[derive(Debug, Clone, Default)]
pub struct TakeoverReport {
    /// Connections in the snapshot.
    pub snapshot_conns: usize,
    /// Connections rebuilt.
    pub restored: usize,
    /// Connections caught mid-handshake (rebuilt when their ACK arrives).
    pub handshakes: usize,
    /// Connections not restorable (by reason).
    pub skipped: BTreeMap<String, usize>,
    /// Rebuilds the kernel refused.
    pub failed: usize,
    /// Segments re-injected.
    pub reinjected: usize,
    /// Bytes of logged, unacknowledged replies written after repair.
    pub unacked_bytes: usize,
    /// Step durations, in order: (name, duration).
    pub steps: Vec<(&'static str, Duration)>,
    /// Gratuitous-ARP rounds until the outside host answered (0 = never).
    pub announce_rounds: u32,
    /// Live connections asked to elicit an ACK from their client after the
    /// address moved ([`crate::io::live_conns::nudge_all`]).
    pub nudged: usize,
}

impl TakeoverReport {
    /// Record step `name` as lasting from `since` to now; returns now.
    pub fn step(&mut self, name: &'static str, since: Instant) -> Instant {
        let now = Instant::now();
        self.steps.push((name, now - since));
        now
    }

    fn ms(&self, names: &[&str]) -> f64 {
        self.steps
            .iter()
            .filter(|(n, _)| names.contains(n))
            .map(|(_, d)| d.as_secs_f64() * 1e3)
            .sum()
    }

    /// The paper's Table 1 rows (ms): `kernel_ops` (snapshot, socket rebuild,
    /// lease, address, re-injection), `user_ops` (unacknowledged replies
    /// written, sockets handed to the server, listener), `gratuitous_arp`,
    /// `outside_ping`, `total` (detection excluded).
    pub fn breakdown(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        m.insert(
            "kernel_ops".into(),
            self.ms(&["snapshot", "repair", "lease", "address", "reinject"]),
        );
        m.insert("user_ops".into(), self.ms(&["handoff", "listen"]));
        m.insert("gratuitous_arp".into(), self.ms(&["garp"]));
        m.insert("outside_ping".into(), self.ms(&["ping"]));
        m.insert(
            "total".into(),
            self.steps.iter().map(|(_, d)| d.as_secs_f64() * 1e3).sum(),
        );
        m
    }
}

/// What a takeover needs.
pub struct TakeoverCtx {
    /// Service addresses (with port) to take over.
    pub vips: Vec<SocketAddrV4>,
    /// The front's table.
    pub table: Arc<Mutex<ConnTable>>,
    /// The log server's acknowledgement switch.
    pub acking: Arc<AtomicBool>,
    /// The clock the table was fed with.
    pub clock: Clock,
    /// The node's intentional-close mark (for rebuilt sockets too).
    pub close_mark: u32,
    /// Our LAN MAC.
    pub own_mac: [u8; 6],
    /// Outside host to ping from the service address (paper 3.1).
    pub outside: Option<Ipv4Addr>,
}

fn spec_of(s: &TakeoverState, close_mark: u32) -> RepairSpec {
    RepairSpec {
        local: SocketAddrV4::new(s.tuple.server_ip, s.tuple.server_port),
        remote: SocketAddrV4::new(s.tuple.client_ip, s.tuple.client_port),
        send_seq: s.send_queue_seq.0,
        recv_seq: s.recv_queue_seq.0,
        recv_queue: s.recv_queue.clone(),
        options: s.options,
        timestamp: s.timestamp,
        window: s.window,
        transparent: true,
        mark: close_mark,
    }
}

/// A raw IPv4 socket for re-injecting client segments into the local stack.
fn raw_inject_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); IPPROTO_RAW implies IP_HDRINCL.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn inject(fd: &OwnedFd, packet: &[u8], dst: Ipv4Addr) -> io::Result<()> {
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `packet` and `sa` are live for the call.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            packet.as_ptr() as *const libc::c_void,
            packet.len(),
            0,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A rebuilt connection, ready to be handed to the HTTP server.
pub struct Restored {
    /// The connection.
    pub tuple: FourTuple,
    /// Its socket (out of repair mode).
    pub stream: TcpStream,
    /// Logged reply bytes the client has not acknowledged: write them first.
    pub unacked: Vec<u8>,
}

/// Where each rebuilt socket's receive queue ends (for step 4).
pub type ReceivePoints = HashMap<FourTuple, coral_core::SeqNum>;

/// Steps 1 and 2: hold frames, snapshot and stop acknowledging atomically,
/// rebuild every restorable connection (the address is not local yet).
/// Also returns the connections caught mid-handshake (step 7).
pub fn snapshot_and_rebuild(
    ctx: &TakeoverCtx,
    front: &Front,
    report: &mut TakeoverReport,
) -> (Vec<Restored>, ReceivePoints, HashSet<FourTuple>) {
    let t = Instant::now();
    front.hold();
    let states = {
        let table = ctx.table.lock().expect("table");
        ctx.acking.store(false, Ordering::SeqCst);
        table.takeover_all(ctx.clock.now(), &TakeoverParams::default())
    };
    report.snapshot_conns = states.len();
    let t = report.step("snapshot", t);

    let mut restored = Vec::new();
    let mut points = HashMap::new();
    let mut handshakes = HashSet::new();
    for (tuple, r) in states {
        match r {
            Ok(s) => match repair::build_repaired_socket(&spec_of(&s, ctx.close_mark)) {
                Ok(stream) => {
                    points.insert(tuple, s.rcv_nxt);
                    restored.push(Restored {
                        tuple,
                        stream,
                        unacked: s.unacked_replies,
                    });
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(%tuple, "rebuilding: {e}");
                }
            },
            Err(NotRestorable::HandshakeIncomplete) => {
                handshakes.insert(tuple);
            }
            Err(why) => {
                let k = format!("{why:?}");
                let k = k.split(['(', ' ', '{']).next().unwrap_or("?").to_string();
                *report.skipped.entry(k).or_default() += 1;
            }
        }
    }
    report.restored = restored.len();
    report.handshakes = handshakes.len();
    report.step("repair", t);
    (restored, points, handshakes)
}

/// Step 7, late half: rebuild one connection whose handshake completed
/// after the takeover (called from the front's engine thread).
pub fn rebuild_one(
    table: &Mutex<ConnTable>,
    clock: Clock,
    close_mark: u32,
    tuple: FourTuple,
) -> io::Result<Restored> {
    let state = table
        .lock()
        .expect("table")
        .takeover(&tuple, clock.now(), &TakeoverParams::default())
        .map_err(|e| io::Error::other(e.to_string()))?;
    let stream = repair::build_repaired_socket(&spec_of(&state, close_mark))?;
    Ok(Restored {
        tuple,
        stream,
        unacked: state.unacked_replies,
    })
}

/// Step 4 (after the address is local): re-inject client data held since
/// the snapshot past each rebuilt socket's receive point.
pub fn reinject(
    front: &Front,
    points: &ReceivePoints,
    report: &mut TakeoverReport,
) -> io::Result<()> {
    let t = Instant::now();
    let held = front.idle_and_take_held();
    if !held.is_empty() {
        let fd = raw_inject_socket()?;
        for frame in &held {
            let Ok(p) = parse_frame(frame) else { continue };
            let FramePayload::Tcp(seg) = p.payload else {
                continue;
            };
            let Some(from) = points.get(&seg.client_tuple()) else {
                continue;
            };
            if let Some(pkt) = seg.ipv4_packet_from(*from) {
                if inject(&fd, &pkt, seg.dst_ip).is_ok() {
                    report.reinjected += 1;
                }
            }
        }
    }
    report.step("reinject", t);
    Ok(())
}

/// Step 5, first half: write what can be written at once of each socket's
/// logged-but-unacknowledged reply bytes (they leave immediately; bytes put
/// in the repair send queue would wait for a retransmission timeout).
/// Returns how many bytes were written now; the rest stays in `r.unacked`.
pub fn write_unacked(r: &mut Restored) -> io::Result<usize> {
    use std::io::Write;
    r.stream.set_nonblocking(true)?;
    let mut off = 0;
    while off < r.unacked.len() {
        match r.stream.write(&r.unacked[off..]) {
            Ok(0) => break,
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    r.unacked.drain(..off);
    Ok(off)
}

/// Step 6: gratuitous ARP and the confirming ping, per address (blocking).
pub fn announce_all(
    ctx: &TakeoverCtx,
    sock: &crate::io::afpacket::PacketSocket,
    report: &mut TakeoverReport,
) {
    let mut rounds = 0;
    for v in &ctx.vips {
        match announce::announce(
            sock,
            *v.ip(),
            ctx.own_mac,
            ctx.outside,
            Duration::from_millis(100),
            10,
        ) {
            Ok(t) => {
                report.steps.push(("garp", t.garp));
                report.steps.push(("ping", t.ping));
                rounds = rounds.max(t.rounds);
            }
            Err(e) => tracing::warn!(vip = %v.ip(), "announcing: {e}"),
        }
    }
    report.announce_rounds = rounds;
}
