//! The front: the backup's packet engine for the service addresses it
//! fronts (docs/DESIGN.md section 2).
//!
//! It owns those addresses at layer 2: it answers ARP for them, receives
//! every client frame first, records the frame into the connection's shadow
//! state ([`coral_core::ConnTable`]) and only then forwards it to the
//! primary's MAC, with its own MAC as the source (otherwise the switch learns
//! the client's MAC on the front's port and flaps). The virtio-net header
//! travels with the frame, so offloaded checksums and segmentation survive.
//!
//! The engine runs on a thread of its own with a blocking packet socket;
//! the table is shared with the log channel behind a mutex held only for one
//! frame or one log entry at a time.

use std::collections::HashSet;
use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coral_core::wire::{build_arp_frame, ArpPacket, ArpRepr};
use coral_core::wire::{rewrite_macs, EthernetAddress, EthernetFrame};
use coral_core::{ConnEvent, Verdict};
use coral_core::{ConnTable, FrameOutcome};
use coral_core::{FourTuple, Instant};

use crate::clock::Clock;
use crate::io::afpacket::{PacketSocket, VnetHdr};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;

/// Counters of the engine, readable while it runs.
#[derive(Debug, Default)]
pub struct FrontStats {
    /// Frames received for a fronted address.
    pub frames: AtomicU64,
    /// Frames forwarded to the primary.
    pub forwarded: AtomicU64,
    /// Frames dropped by a verdict (not recorded, so not forwarded).
    pub dropped: AtomicU64,
    /// Frames that could not be parsed (dropped).
    pub malformed: AtomicU64,
    /// ARP requests answered.
    pub arp_replies: AtomicU64,
    /// Nanoseconds spent handling fronted frames (record + forward).
    pub busy_ns: AtomicU64,
}

/// Something the node should know about (written to events.csv).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontEvent {
    /// A connection event from the table.
    Conn(FourTuple, ConnEvent),
    /// The engine stopped because of an I/O error.
    Failed(String),
}

/// Static configuration of one front.
#[derive(Debug, Clone)]
pub struct FrontConfig {
    /// LAN interface name.
    pub lan: String,
    /// Our MAC on it.
    pub own_mac: [u8; 6],
    /// The primary's MAC (where recorded frames go).
    pub primary_mac: [u8; 6],
    /// The service addresses fronted.
    pub vips: Vec<Ipv4Addr>,
}

/// Normal operation: record, then forward.
const MODE_FORWARD: u8 = 0;
/// Takeover under way: record and keep a copy, forward nothing.
const MODE_HOLD: u8 = 1;
/// After takeover: the kernel owns the address; ignore its frames.
const MODE_IDLE: u8 = 2;

/// Most bytes kept while holding (frames beyond are left to the client's
/// retransmission).
pub const MAX_HELD_BYTES: usize = 64 << 20;

/// Called from the engine thread when a connection caught mid-handshake at
/// takeover completes its handshake (docs/DESIGN.md section 5 step 7).
pub type OnEstablished = Box<dyn Fn(FourTuple) + Send + Sync>;

/// Connections still mid-handshake after a takeover, and what to do when
/// one completes.
struct Pending {
    tuples: HashSet<FourTuple>,
    on_established: OnEstablished,
}

/// A running front.
pub struct Front {
    /// Counters.
    pub stats: Arc<FrontStats>,
    mode: Arc<AtomicU8>,
    held: Arc<Mutex<(Vec<Vec<u8>>, usize)>>,
    pending: Arc<Mutex<Option<Pending>>>,
    stop: Arc<AtomicBool>,
    arp_off: Arc<AtomicBool>,
    arp_until: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Front {
    /// Start the engine on `sock` (opened on the LAN interface, in the
    /// node's namespace). `events` receives connection events.
    pub fn start(
        cfg: FrontConfig,
        sock: PacketSocket,
        table: Arc<Mutex<ConnTable>>,
        clock: Clock,
        events: std::sync::mpsc::Sender<FrontEvent>,
    ) -> io::Result<Front> {
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        sock.set_recv_buffer(16 << 20)?;
        // Only ARP and frames to the fronted addresses wake the engine.
        sock.set_front_filter(&cfg.vips)?;
        let stats = Arc::new(FrontStats::default());
        let mode = Arc::new(AtomicU8::new(MODE_FORWARD));
        let held = Arc::new(Mutex::new((Vec::new(), 0)));
        let pending = Arc::new(Mutex::new(None));
        let sock = Arc::new(sock);
        let stop = Arc::new(AtomicBool::new(false));
        let arp_off = Arc::new(AtomicBool::new(false));
        let arp_until = Arc::new(AtomicU64::new(u64::MAX));
        let engine = Engine {
            own: EthernetAddress(cfg.own_mac),
            primary: EthernetAddress(cfg.primary_mac),
            vips: cfg.vips.iter().copied().collect(),
            sock: sock.clone(),
            table,
            clock,
            events,
            stats: stats.clone(),
            mode: mode.clone(),
            held: held.clone(),
            pending: pending.clone(),
            stop: stop.clone(),
            arp_off: arp_off.clone(),
            arp_until: arp_until.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("coral-front".into())
            .spawn(move || engine.run())?;
        Ok(Front {
            stats,
            mode,
            held,
            pending,
            stop,
            arp_off,
            arp_until,
            thread: Some(thread),
        })
    }

    /// Takeover step 1: stop forwarding; from now on frames are recorded and
    /// a copy kept for re-injection. The packet socket stays open (closing
    /// it waits in the kernel for about 10 ms, and frames arriving meanwhile
    /// were lost).
    pub fn hold(&self) {
        self.mode.store(MODE_HOLD, Ordering::SeqCst);
    }

    /// Stop answering ARP for the fronted addresses (witness mode, from the
    /// snapshot on): while the grant is pending this node must not claim
    /// an address the peer may be granted.
    pub fn stop_answering_arp(&self) {
        self.arp_off.store(true, Ordering::SeqCst);
    }

    /// The front's own lease on answering ARP (witness mode): ARP for the
    /// fronted addresses is answered only while the node clock (ns) is
    /// below this value; the node extends it on every fresh heartbeat, like
    /// the kernel lease of a primary. Initially unlimited.
    pub fn arp_lease(&self) -> Arc<AtomicU64> {
        self.arp_until.clone()
    }

    /// Takeover step 4: the address is local now; stop handling its frames
    /// and return those held since [`Front::hold`], in arrival order.
    pub fn idle_and_take_held(&self) -> Vec<Vec<u8>> {
        self.mode.store(MODE_IDLE, Ordering::SeqCst);
        std::mem::take(&mut self.held.lock().expect("held").0)
    }

    /// After takeover: keep recording the frames of `tuples` (connections
    /// caught mid-handshake) and call `on_established` from the engine
    /// thread when one completes its handshake, once per connection.
    pub fn watch_handshakes(&self, tuples: HashSet<FourTuple>, on_established: OnEstablished) {
        *self.pending.lock().expect("pending") = (!tuples.is_empty()).then_some(Pending {
            tuples,
            on_established,
        });
    }

    /// Stop watching handshakes (those not completed by now are left to
    /// the client's retransmissions, which the kernel will refuse).
    pub fn forget_handshakes(&self) -> usize {
        self.pending
            .lock()
            .expect("pending")
            .take()
            .map_or(0, |p| p.tuples.len())
    }

    /// Whether connections caught mid-handshake are still watched.
    pub fn watching_handshakes(&self) -> bool {
        self.pending.lock().expect("pending").is_some()
    }

    /// After a takeover: stop the engine thread without waiting for it. The
    /// packet socket closes when the thread has let go of it (closing takes
    /// the kernel about 10 ms: off the failover path here).
    pub fn retire(&self) {
        self.forget_handshakes();
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Stop the engine thread (waits up to one read timeout, 50 ms).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Engine {
    own: EthernetAddress,
    primary: EthernetAddress,
    vips: HashSet<Ipv4Addr>,
    sock: Arc<PacketSocket>,
    table: Arc<Mutex<ConnTable>>,
    clock: Clock,
    events: std::sync::mpsc::Sender<FrontEvent>,
    stats: Arc<FrontStats>,
    mode: Arc<AtomicU8>,
    held: Arc<Mutex<(Vec<Vec<u8>>, usize)>>,
    pending: Arc<Mutex<Option<Pending>>>,
    stop: Arc<AtomicBool>,
    arp_off: Arc<AtomicBool>,
    arp_until: Arc<AtomicU64>,
}

impl Engine {
    fn run(self) {
        // 64 KiB GSO frames plus the virtio-net header.
        let mut buf = vec![0u8; VnetHdr::LEN + 65_600];
        while !self.stop.load(Ordering::Relaxed) {
            let (hdr, len) = match self.sock.recv(&mut buf) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    let _ = self
                        .events
                        .send(FrontEvent::Failed(format!("packet socket: {e}")));
                    break;
                }
            };
            let _ = hdr;
            let frame_end = VnetHdr::LEN + len;
            self.handle(&mut buf[..frame_end]);
        }
    }

    /// One received buffer: virtio-net header followed by the frame.
    fn handle(&self, buf: &mut [u8]) {
        let frame = &buf[VnetHdr::LEN..];
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        match eth.ethertype() {
            ETHERTYPE_ARP
                if self.mode.load(Ordering::Acquire) != MODE_IDLE
                    && !self.arp_off.load(Ordering::Acquire) =>
            {
                self.on_arp(eth.payload())
            }
            ETHERTYPE_IPV4 => {
                let ip = eth.payload();
                if ip.len() < 20 {
                    return;
                }
                let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
                if self.vips.contains(&dst) {
                    match self.mode.load(Ordering::Acquire) {
                        MODE_FORWARD => self.on_vip_frame(buf, true),
                        MODE_HOLD => {
                            self.on_vip_frame(buf, false);
                            let mut h = self.held.lock().expect("held");
                            let frame = &buf[VnetHdr::LEN..];
                            if h.1 + frame.len() <= MAX_HELD_BYTES {
                                h.1 += frame.len();
                                h.0.push(frame.to_vec());
                            }
                        }
                        _ => self.on_pending_frame(buf),
                    }
                }
            }
            _ => {}
        }
    }

    /// After takeover: frames of connections caught mid-handshake are still
    /// recorded; the one that completes a handshake triggers its rebuild.
    fn on_pending_frame(&self, buf: &mut [u8]) {
        let mut guard = self.pending.lock().expect("pending");
        let Some(p) = guard.as_mut() else { return };
        let Ok(parsed) = coral_core::wire::parse_frame(&buf[VnetHdr::LEN..]) else {
            return;
        };
        let coral_core::wire::FramePayload::Tcp(seg) = parsed.payload else {
            return;
        };
        let tuple = seg.client_tuple();
        if !p.tuples.contains(&tuple) {
            return;
        }
        let outcome = self
            .table
            .lock()
            .expect("table lock")
            .on_segment(&seg, self.clock.now());
        if outcome.event == Some(ConnEvent::Established) {
            p.tuples.remove(&tuple);
            (p.on_established)(tuple);
            let _ = self
                .events
                .send(FrontEvent::Conn(tuple, ConnEvent::Established));
        }
        if p.tuples.is_empty() {
            *guard = None;
        }
    }

    fn on_arp(&self, payload: &[u8]) {
        let Ok(p) = ArpPacket::new_checked(payload) else {
            return;
        };
        let req = ArpRepr::parse(&p);
        if !self.vips.contains(&req.target_ip) {
            return;
        }
        if self.clock.now().0 >= self.arp_until.load(Ordering::Acquire) {
            return;
        }
        if let Some(reply) = req.reply_for(req.target_ip, self.own) {
            let frame = build_arp_frame(self.own, req.sender_hw, &reply);
            if self.sock.send(&VnetHdr::default(), &frame).is_ok() {
                self.stats.arp_replies.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Record, then forward. The order is the invariant: a frame is
    /// forwarded only after the table has taken it in.
    fn on_vip_frame(&self, buf: &mut [u8], forward_ok: bool) {
        let t0 = std::time::Instant::now();
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        let now: Instant = self.clock.now();
        let outcome = {
            let mut table = self.table.lock().expect("table lock");
            table.on_frame(&buf[VnetHdr::LEN..], now)
        };
        let forward = match outcome {
            Ok(FrameOutcome::Tcp { tuple, outcome }) => {
                if let Some(ev) = outcome.event {
                    if !matches!(ev, ConnEvent::Untracked) {
                        let _ = self.events.send(FrontEvent::Conn(tuple, ev));
                    }
                }
                outcome.verdict == Verdict::Forward
            }
            // ICMP and friends to the service address: the primary answers.
            Ok(FrameOutcome::NotTcp) => true,
            Err(_) => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                false
            }
        };
        if !forward {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        } else if forward_ok
            && rewrite_macs(&mut buf[VnetHdr::LEN..], self.own, self.primary).is_ok()
            && self.sock.send_raw(buf).is_ok()
        {
            self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        }
        self.stats
            .busy_ns
            .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}
