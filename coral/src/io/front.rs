//! The front: the backup's data path for the service addresses it fronts
//! (docs/DESIGN.md section 2).
//!
//! One thread owns the connection table ([`coral_core::ConnTable`]) and
//! polls three things: its frame source, the primary's log connection, and
//! the node's commands. Nothing else touches the table, so there is no
//! lock: the log server hands the accepted log connection over
//! ([`Command::LogConn`]) and the thread reads it, applies its entries and
//! writes the cumulative ack itself (no thread hop per entry), and a
//! takeover asks the thread for the snapshot.
//!
//! Two frame sources ([`FrontKind`]):
//! - `ebpf`: the kernel fast path ([`crate::io::ebpf_front`]). The program
//!   records every client frame into a ring and only then forwards it; the
//!   thread drains the ring in batches into the table, and always drains it
//!   before applying log entries (an entry never refers to a frame the
//!   table has not seen). ARP is answered through an ARP-only packet socket.
//! - `packet`: an AF_PACKET socket with a classic BPF filter; the thread
//!   records each frame, then forwards it to the primary's MAC with its own
//!   MAC as the source (otherwise the switch learns the client's MAC on the
//!   front's port and flaps). The virtio-net header travels with the frame,
//!   so offloaded checksums and segmentation survive.
//!
//! The thread holds no policy: the mode (forward, hold, idle), whether and
//! until when ARP is answered, and when to stop acknowledging the log are
//! commands from the node.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use coral_core::wire::{build_arp_frame, parse_frame, ArpPacket, ArpRepr, FramePayload};
use coral_core::wire::{rewrite_macs, EthernetAddress, EthernetFrame};
use coral_core::{ConnEvent, ConnTable, DropReason, FrameOutcome, TableConfig, Verdict};
use coral_core::{FourTuple, LogMsg, NotRestorable, TakeoverParams, TakeoverState};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use serde::Deserialize;
use tokio::sync::{mpsc::UnboundedSender, oneshot};

use crate::clock::Clock;
use crate::io::afpacket::{PacketSocket, VnetHdr};
use crate::io::ebpf_front::{ConnVerdict, EbpfFront, EbpfFrontConfig, LoadError, RecordKind};
use crate::io::logchan::{LogApplied, LogServer, LogSession};

pub use crate::io::ebpf_front::Mode;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;

/// Most bytes kept while holding (frames beyond are left to the client's
/// retransmission).
pub const MAX_HELD_BYTES: usize = 64 << 20;

/// How long a mode switch may wait for program runs in flight.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(1);
/// Frames (or ring records) handled before the thread looks at commands.
const BATCH: usize = 256;

/// Which frame source the front uses (the node's `front` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FrontKind {
    /// The tc ingress BPF program and its ring (the default).
    #[default]
    Ebpf,
    /// The AF_PACKET socket (selectable; the Docker topology's).
    Packet,
}

impl FrontKind {
    /// The name used in the configuration and in config.json.
    pub fn as_str(self) -> &'static str {
        match self {
            FrontKind::Ebpf => "ebpf",
            FrontKind::Packet => "packet",
        }
    }
}

/// Counters of the data path, readable while it runs.
#[derive(Debug, Default)]
pub struct FrontStats {
    /// Frames to a fronted address taken into the table.
    pub frames: AtomicU64,
    /// Frames forwarded to the primary.
    pub forwarded: AtomicU64,
    /// Frames not forwarded because of a verdict.
    pub dropped: AtomicU64,
    /// Frames that could not be parsed.
    pub malformed: AtomicU64,
    /// ARP requests answered.
    pub arp_replies: AtomicU64,
    /// Nanoseconds spent handling fronted frames (record, and forward).
    pub busy_ns: AtomicU64,
    /// eBPF: frames dropped because the ring was full (never forwarded).
    pub ring_full: AtomicU64,
    /// Connections in the table.
    pub conns: AtomicU64,
}

/// Something the node should know about.
#[derive(Debug)]
pub enum FrontEvent {
    /// A connection event from the table (written to events.csv).
    Conn(FourTuple, ConnEvent),
    /// The frame source failed; the front records nothing any more.
    Failed(String),
    /// A connection caught mid-handshake at a takeover completed its
    /// handshake: its state, for a rebuild (docs/DESIGN.md 5 step 7).
    Restorable(FourTuple, Result<TakeoverState, String>),
}

/// The snapshot of one address's connections (takeover step 2).
pub type Snapshot = Vec<(FourTuple, Result<TakeoverState, NotRestorable>)>;

/// A command from the node (or the log server) to the data path.
pub enum Command {
    /// The primary's log connection: the thread reads it, applies its
    /// entries after draining the ring, and acknowledges them.
    LogConn(Box<LogSession>),
    /// Switch mode; with the eBPF source, wait for runs in flight and drain.
    Mode(Mode),
    /// Acknowledge no log entry from now on.
    StopAcking,
    /// The shadow state of every connection to one address.
    Snapshot(Ipv4Addr, oneshot::Sender<Snapshot>),
    /// The frames held since `Mode(Hold)`, in arrival order.
    TakeHeld(oneshot::Sender<Vec<Vec<u8>>>),
    /// Keep recording these connections (caught mid-handshake) in idle
    /// mode; report each that completes its handshake.
    Watch(HashSet<FourTuple>),
    /// Whether connections are still watched.
    Watching(oneshot::Sender<bool>),
    /// Answered once every earlier command is done.
    Barrier(oneshot::Sender<()>),
    /// A new primary's log comes (the hand-over of a dual-role join):
    /// acknowledge log entries again, with a fresh table.
    ResumeLog,
    /// Forward to this primary MAC from now on.
    PrimaryMac([u8; 6]),
    /// In forward mode, pass frames of flows with a local socket to the
    /// local stack unrecorded (eBPF front only; the connections kept at a
    /// hand-over).
    PassLocalFlows(bool),
    /// Stop the thread (the eBPF program is detached, the socket closed).
    Retire,
}

/// Where client frames come from.
pub enum Source {
    /// AF_PACKET: every frame for a fronted address (and ARP).
    Packet(PacketSocket),
    /// The eBPF program's ring, and an ARP-only packet socket.
    Ebpf {
        /// The loaded, attached program.
        prog: Box<EbpfFront>,
        /// ARP requests (and our replies).
        arp: PacketSocket,
        /// Ring drain interval while frames are held or connections
        /// watched (a takeover, a late restore): the program does not
        /// wake us per record.
        poll: Duration,
        /// Ring drain interval while forwarding (or idle after a
        /// takeover) with nothing watched: each batch of log entries
        /// drains the ring first anyway, and a ring a quarter full wakes
        /// us at once.
        forward_poll: Duration,
    },
}

impl Source {
    /// The packet source on `lan`: a packet socket whose classic BPF
    /// filter passes ARP and frames to `vips` only.
    pub fn packet(lan: &str, vips: &[Ipv4Addr]) -> io::Result<Source> {
        let sock = PacketSocket::open(lan)?;
        sock.set_recv_buffer(16 << 20)?;
        sock.set_front_filter(vips)?;
        Ok(Source::Packet(sock))
    }

    /// The eBPF source: load and attach the program (the error names the
    /// missing capability or kernel feature), and the ARP socket.
    pub fn ebpf(
        cfg: &EbpfFrontConfig,
        poll: Duration,
        forward_poll: Duration,
    ) -> Result<Source, LoadError> {
        let prog = EbpfFront::load(cfg)?;
        let arp = PacketSocket::open_arp(&cfg.lan)
            .map_err(|e| LoadError::new(format!("ARP socket on {}: {e}", cfg.lan)))?;
        Ok(Source::Ebpf {
            prog: Box::new(prog),
            arp,
            poll,
            forward_poll,
        })
    }

    /// Which kind this is.
    pub fn kind(&self) -> FrontKind {
        match self {
            Source::Packet(_) => FrontKind::Packet,
            Source::Ebpf { .. } => FrontKind::Ebpf,
        }
    }
}

/// Static configuration of one front.
#[derive(Debug, Clone)]
pub struct FrontConfig {
    /// Our MAC on the LAN.
    pub own_mac: [u8; 6],
    /// The primary's MAC (where recorded frames go).
    pub primary_mac: [u8; 6],
    /// The service addresses fronted.
    pub vips: Vec<Ipv4Addr>,
    /// The mode it starts in: `Forward` for a backup started beside its
    /// primary; `Idle` for a new server pre-starting its front before a
    /// join (no ARP answered, nothing forwarded until `Mode(Forward)`).
    pub mode: Mode,
}

/// The node's handle on the running data path (cheap to clone).
#[derive(Clone)]
pub struct Front {
    /// Counters.
    pub stats: Arc<FrontStats>,
    /// The primary whose log connections [`serve_log`] accepts (changed
    /// when a dual-role join hands an address over to a new primary).
    pub log_peer: Arc<std::sync::Mutex<std::net::Ipv4Addr>>,
    tx: Sender<Command>,
    waker: Arc<Waker>,
    kind: FrontKind,
    /// Answer ARP for the fronted addresses while the node clock is below
    /// this (ns); 0 = never. Shared, not a command: the heartbeat thread
    /// extends it on every fresh heartbeat, and the data-path thread reads
    /// it only when an ARP request comes, so an extension wakes nobody.
    arp_until: Arc<AtomicU64>,
}

impl Front {
    /// Start the data-path thread on `source`; connection events go to
    /// `events`.
    pub fn start(
        cfg: FrontConfig,
        source: Source,
        clock: Clock,
        events: UnboundedSender<FrontEvent>,
    ) -> io::Result<Front> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (tx, rx) = std::sync::mpsc::channel();
        let stats = Arc::new(FrontStats::default());
        let arp_until = Arc::new(AtomicU64::new(u64::MAX));
        let kind = source.kind();
        let engine = Engine {
            source,
            rec: Recorder {
                own: EthernetAddress(cfg.own_mac),
                primary: EthernetAddress(cfg.primary_mac),
                vips: cfg.vips.iter().copied().collect(),
                table: ConnTable::new(TableConfig::default()),
                max_conns: TableConfig::default().max_conns,
                clock,
                events,
                stats: stats.clone(),
                mode: cfg.mode,
                arp_until: arp_until.clone(),
                acking: true,
                held: (Vec::new(), 0),
                watched: HashSet::new(),
                verdicts: HashSet::new(),
                changes: Vec::new(),
                table_full: false,
            },
            rx,
            refusing: false,
            logs: HashMap::new(),
            next_log: LOG0,
        };
        std::thread::Builder::new()
            .name("coral-front".into())
            .spawn(move || engine.run(poll))?;
        Ok(Front {
            stats,
            log_peer: Arc::new(std::sync::Mutex::new(std::net::Ipv4Addr::UNSPECIFIED)),
            tx,
            waker,
            kind,
            arp_until,
        })
    }

    /// Answer ARP for the fronted addresses while the node clock (ns) is
    /// below `until`; 0 stops at once. Takes effect at the next ARP
    /// request, with no wake-up of the data path.
    pub fn answer_arp_until(&self, until: u64) {
        self.arp_until.store(until, Ordering::Release);
    }

    /// Which frame source runs.
    pub fn kind(&self) -> FrontKind {
        self.kind
    }

    /// Hand `cmd` to the thread; false if it has stopped.
    pub fn send(&self, cmd: Command) -> bool {
        self.tx.send(cmd).is_ok() && self.waker.wake().is_ok()
    }

    /// Send the command `make` builds around a reply channel, and wait
    /// for the reply.
    pub async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> io::Result<T> {
        let (tx, rx) = oneshot::channel();
        if !self.send(make(tx)) {
            return Err(io::Error::other("the front has stopped"));
        }
        rx.await
            .map_err(|_| io::Error::other("the front stopped before answering"))
    }

    /// Stop the thread without waiting for it.
    pub fn retire(&self) {
        self.send(Command::Retire);
    }
}

const SOURCE: Token = Token(0);
const ARP: Token = Token(1);
const WAKE: Token = Token(2);
/// Log connections take tokens from here on.
const LOG0: usize = 16;

/// The data-path thread: the frame source and the table's side.
struct Engine {
    source: Source,
    rec: Recorder,
    rx: Receiver<Command>,
    /// The program refuses new connections (the table was full).
    refusing: bool,
    /// The primary's log connections, by token.
    logs: HashMap<Token, Box<LogSession>>,
    next_log: usize,
}

/// Everything on the table's side of the thread (borrowed apart from the
/// source, so ring records go straight from the ring into the table).
struct Recorder {
    own: EthernetAddress,
    primary: EthernetAddress,
    vips: HashSet<Ipv4Addr>,
    table: ConnTable,
    max_conns: usize,
    clock: Clock,
    events: UnboundedSender<FrontEvent>,
    stats: Arc<FrontStats>,
    mode: Mode,
    arp_until: Arc<AtomicU64>,
    acking: bool,
    /// Frames held since `Mode(Hold)`, and their bytes.
    held: (Vec<Vec<u8>>, usize),
    /// Connections caught mid-handshake, still recorded in idle mode.
    watched: HashSet<FourTuple>,
    /// Connections with a verdict in the program's map.
    verdicts: HashSet<FourTuple>,
    /// Changes to the program's verdicts, made after a drain.
    changes: Vec<(FourTuple, Option<ConnVerdict>)>,
    /// The table refused a SYN because it was full.
    table_full: bool,
}

/// What one frame did to the table.
enum Recorded {
    /// A TCP segment of `tuple`, and the table's verdict.
    Tcp(FourTuple, Verdict),
    /// Not TCP (ICMP and friends): the primary answers.
    NotTcp,
    /// Could not be parsed.
    Malformed,
}

impl Engine {
    fn register(&self, poll: &Poll) -> io::Result<()> {
        let r = poll.registry();
        match &self.source {
            Source::Packet(s) => {
                r.register(&mut SourceFd(&s.as_raw_fd()), SOURCE, Interest::READABLE)
            }
            Source::Ebpf { prog, arp, .. } => {
                r.register(&mut SourceFd(&prog.as_raw_fd()), SOURCE, Interest::READABLE)?;
                r.register(&mut SourceFd(&arp.as_raw_fd()), ARP, Interest::READABLE)
            }
        }
    }

    fn run(mut self, mut poll: Poll) {
        if let Err(e) = self.register(&poll) {
            self.rec.fail(format!("polling the frame source: {e}"));
            return;
        }
        if self.rec.mode != Mode::Forward {
            // The program starts forwarding: tell it the mode first.
            self.set_mode(self.rec.mode);
        }
        let mut events = Events::with_capacity(8);
        // 64 KiB GSO frames plus the virtio-net header.
        let mut buf = vec![0u8; VnetHdr::LEN + 65_600];
        let mut more = false;
        let mut last_sync = std::time::Instant::now();
        loop {
            let timeout = match &self.source {
                _ if more => Duration::ZERO,
                Source::Ebpf {
                    forward_poll, poll, ..
                } => {
                    let settled = matches!(self.rec.mode, Mode::Forward | Mode::Idle);
                    if settled && self.rec.watched.is_empty() {
                        *forward_poll
                    } else {
                        *poll
                    }
                }
                Source::Packet(_) => Duration::from_secs(1),
            };
            if let Err(e) = poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.rec.fail(format!("poll: {e}"));
                    return;
                }
            }
            more = match self.frames(&mut buf) {
                Ok(m) => m,
                Err(e) => {
                    self.rec.fail(format!("frame source: {e}"));
                    return;
                }
            };
            for t in events.iter().map(|e| e.token()) {
                if t.0 >= LOG0 {
                    self.serve_log(&poll, t);
                }
            }
            loop {
                match self.rx.try_recv() {
                    Ok(Command::Retire) | Err(TryRecvError::Disconnected) => return,
                    Ok(Command::LogConn(s)) => self.add_log(&poll, s),
                    Ok(cmd) => self.command(cmd),
                    Err(TryRecvError::Empty) => break,
                }
            }
            if last_sync.elapsed() >= Duration::from_millis(500) {
                last_sync = std::time::Instant::now();
                self.sync_counters();
            }
        }
    }

    /// Handle what the source has, up to a batch; true if more may wait.
    fn frames(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let rec = &mut self.rec;
        match &mut self.source {
            Source::Packet(sock) => {
                for _ in 0..BATCH {
                    match sock.try_recv(buf) {
                        Ok((_, len)) => rec.on_packet(sock, &mut buf[..VnetHdr::LEN + len]),
                        Err(e) if would_block(&e) => return Ok(false),
                        Err(e) => return Err(e),
                    }
                }
                return Ok(true);
            }
            Source::Ebpf { arp, .. } => loop {
                match arp.try_recv(buf) {
                    Ok((_, len)) => rec.on_arp(arp, &buf[VnetHdr::LEN..VnetHdr::LEN + len]),
                    Err(e) if would_block(&e) => break,
                    Err(e) => return Err(e),
                }
            },
        }
        Ok(self.drain_ring(BATCH * 16) == BATCH * 16)
    }

    /// Hand up to `max` ring records to the table; returns how many.
    fn drain_ring(&mut self, max: usize) -> usize {
        let Source::Ebpf { prog, .. } = &mut self.source else {
            return 0;
        };
        let rec = &mut self.rec;
        let t0 = std::time::Instant::now();
        let n = prog.drain(max, |kind, frame| rec.on_record(kind, frame));
        if n > 0 {
            rec.stats
                .busy_ns
                .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        self.apply_verdicts();
        n
    }

    /// Keep the program's per-connection verdicts in step with the table.
    fn apply_verdicts(&mut self) {
        let Source::Ebpf { prog, .. } = &mut self.source else {
            return;
        };
        for (tuple, v) in self.rec.changes.drain(..) {
            if let Err(e) = prog.set_verdict(&tuple, v) {
                tracing::warn!(%tuple, "front: updating a verdict: {e}");
            }
        }
        if self.rec.table_full && !self.refusing {
            self.refusing = prog.refuse_new_conns(true).is_ok();
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::LogConn(_) | Command::Retire => {}
            Command::Mode(m) => self.set_mode(m),
            Command::StopAcking => {
                self.rec.acking = false;
                // The primary may have sent nothing since (it was cut
                // off): an ack written just before may still be
                // unacknowledged, so go silently now, not at the next
                // entry, which never comes.
                for (_, mut s) in self.logs.drain() {
                    s.go_silent();
                }
            }
            Command::Snapshot(vip, reply) => {
                let _ = reply.send(self.rec.snapshot(vip));
            }
            Command::TakeHeld(reply) => {
                let _ = reply.send(std::mem::take(&mut self.rec.held).0);
            }
            Command::Watch(tuples) => {
                for t in &tuples {
                    self.rec.changes.push((*t, Some(ConnVerdict::Watch)));
                }
                self.apply_verdicts();
                self.rec.watched = tuples;
            }
            Command::Watching(reply) => {
                let _ = reply.send(!self.rec.watched.is_empty());
            }
            Command::Barrier(reply) => {
                let _ = reply.send(());
            }
            Command::ResumeLog => {
                self.rec.acking = true;
                self.rec.table = ConnTable::new(TableConfig::default());
            }
            Command::PrimaryMac(mac) => {
                self.rec.primary = EthernetAddress(mac);
                if let Source::Ebpf { prog, .. } = &mut self.source {
                    if let Err(e) = prog.set_primary_mac(mac) {
                        tracing::warn!("front: setting the primary's MAC: {e}");
                    }
                }
            }
            Command::PassLocalFlows(pass) => match &mut self.source {
                Source::Ebpf { prog, .. } => {
                    if let Err(e) = prog.pass_local_flows(pass) {
                        tracing::warn!("front: passing local flows: {e}");
                    }
                }
                Source::Packet(_) => {
                    tracing::warn!("front: the packet front cannot pass local flows")
                }
            },
        }
    }

    /// Take the primary's log connection into the poll set and read what
    /// it already holds.
    fn add_log(&mut self, poll: &Poll, mut s: Box<LogSession>) {
        if !self.rec.acking {
            s.go_silent();
            return;
        }
        let token = Token(self.next_log);
        self.next_log += 1;
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = poll
            .registry()
            .register(&mut SourceFd(&s.fd()), token, interest)
        {
            tracing::warn!("front: polling a log connection: {e}");
            return;
        }
        self.logs.insert(token, s);
        self.serve_log(poll, token);
    }

    /// A log connection is ready: its entries are applied here, on the
    /// table's thread, after the ring is drained (causality: every frame
    /// the primary may have seen is in the table before an entry that
    /// refers to it).
    fn serve_log(&mut self, poll: &Poll, token: Token) {
        let Some(mut s) = self.logs.remove(&token) else {
            return;
        };
        let keep = s.on_ready(&mut |entries| {
            while self.drain_ring(usize::MAX) > 0 {}
            self.rec.apply_log(entries)
        });
        if keep {
            self.logs.insert(token, s);
        } else {
            let _ = poll.registry().deregister(&mut SourceFd(&s.fd()));
        }
    }

    /// The node's mode switch. With the eBPF source: the program's mode is
    /// set, runs that may have read the old one are waited for, and the
    /// ring is drained, so every frame handled under the old mode is in
    /// the table when this returns.
    fn set_mode(&mut self, m: Mode) {
        self.rec.mode = m;
        let Source::Ebpf { prog, .. } = &mut self.source else {
            return;
        };
        let rec = &mut self.rec;
        let r = prog.switch_mode(m, SWITCH_TIMEOUT, |kind, frame| rec.on_record(kind, frame));
        self.apply_verdicts();
        if let Err(e) = r {
            self.rec
                .fail(format!("switching the eBPF front to {m:?}: {e}"));
        }
    }

    /// Copy the program's counters into the stats; let new connections in
    /// again once the table has room.
    fn sync_counters(&mut self) {
        let rec = &mut self.rec;
        let Source::Ebpf { prog, .. } = &mut self.source else {
            return;
        };
        if let Ok(c) = prog.counters() {
            rec.stats.forwarded.store(c.forwarded, Ordering::Relaxed);
            rec.stats.ring_full.store(c.ring_full, Ordering::Relaxed);
        }
        if self.refusing && rec.table.len() < rec.max_conns {
            rec.table_full = false;
            self.refusing = prog.refuse_new_conns(false).is_err();
        }
    }
}

impl Recorder {
    fn fail(&self, why: String) {
        tracing::error!("front: {why}");
        let _ = self.events.send(FrontEvent::Failed(why));
    }

    /// One ring record (the program forwarded it, held it, or kept it).
    fn on_record(&mut self, kind: RecordKind, frame: &[u8]) {
        match kind {
            RecordKind::Watched => self.on_watched(frame),
            RecordKind::Held => {
                self.record(frame);
                self.hold(frame);
            }
            RecordKind::Forwarded | RecordKind::RecordOnly => {
                if let Recorded::Tcp(tuple, verdict) = self.record(frame) {
                    self.follow_verdict(kind, tuple, verdict);
                }
            }
        }
    }

    /// The program forwarded the frame before the table saw it: a
    /// connection whose bytes the table could not take is recorded but not
    /// forwarded from now on (the client retransmits) until the table takes
    /// them again; a full table makes the program refuse new connections.
    fn follow_verdict(&mut self, kind: RecordKind, tuple: FourTuple, verdict: Verdict) {
        match (kind, verdict) {
            (RecordKind::Forwarded, Verdict::Drop(DropReason::BufferFull))
                if self.verdicts.insert(tuple) =>
            {
                self.changes.push((tuple, Some(ConnVerdict::RecordOnly)));
            }
            (_, Verdict::Drop(DropReason::TableFull)) => self.table_full = true,
            (RecordKind::RecordOnly, Verdict::Forward) if self.verdicts.remove(&tuple) => {
                self.changes.push((tuple, None));
            }
            _ => {}
        }
    }

    /// One received buffer of the packet source: virtio-net header
    /// followed by the frame.
    fn on_packet(&mut self, sock: &PacketSocket, buf: &mut [u8]) {
        let frame = &buf[VnetHdr::LEN..];
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        match eth.ethertype() {
            ETHERTYPE_ARP => self.on_arp(sock, frame),
            ETHERTYPE_IPV4 => {
                let ip = eth.payload();
                if ip.len() < 20 {
                    return;
                }
                let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
                if !self.vips.contains(&dst) {
                    return;
                }
                match self.mode {
                    Mode::Forward => self.record_and_forward(sock, buf),
                    Mode::Hold | Mode::HoldData => {
                        self.record(frame);
                        self.hold(&buf[VnetHdr::LEN..]);
                    }
                    Mode::Idle => self.on_watched(&buf[VnetHdr::LEN..]),
                }
            }
            _ => {}
        }
    }

    /// Record, then forward. The order is the invariant: a frame is
    /// forwarded only after the table has taken it in.
    fn record_and_forward(&mut self, sock: &PacketSocket, buf: &mut [u8]) {
        let t0 = std::time::Instant::now();
        let forward = match self.record(&buf[VnetHdr::LEN..]) {
            Recorded::Tcp(_, v) => v == Verdict::Forward,
            Recorded::NotTcp => true,
            Recorded::Malformed => false,
        };
        if forward
            && rewrite_macs(&mut buf[VnetHdr::LEN..], self.own, self.primary).is_ok()
            && sock.send_raw(buf).is_ok()
        {
            self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        }
        self.stats
            .busy_ns
            .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Take one frame into the table.
    fn record(&mut self, frame: &[u8]) -> Recorded {
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        let r = self.table.on_frame(frame, self.clock.now());
        self.stats
            .conns
            .store(self.table.len() as u64, Ordering::Relaxed);
        match r {
            Ok(FrameOutcome::Tcp { tuple, outcome }) => {
                if let Some(ev) = outcome.event {
                    if !matches!(ev, ConnEvent::Untracked) {
                        let _ = self.events.send(FrontEvent::Conn(tuple, ev));
                    }
                }
                if outcome.verdict != Verdict::Forward {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Recorded::Tcp(tuple, outcome.verdict)
            }
            Ok(FrameOutcome::NotTcp) => Recorded::NotTcp,
            Err(_) => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                Recorded::Malformed
            }
        }
    }

    fn hold(&mut self, frame: &[u8]) {
        if self.held.1 + frame.len() <= MAX_HELD_BYTES {
            self.held.1 += frame.len();
            self.held.0.push(frame.to_vec());
        }
    }

    /// Idle mode: frames of connections caught mid-handshake are still
    /// recorded; the one that completes a handshake is reported with its
    /// state, for the node to rebuild it.
    fn on_watched(&mut self, frame: &[u8]) {
        let Ok(parsed) = parse_frame(frame) else {
            return;
        };
        let FramePayload::Tcp(seg) = parsed.payload else {
            return;
        };
        let tuple = seg.client_tuple();
        if !self.watched.contains(&tuple) {
            return;
        }
        let now = self.clock.now();
        let outcome = self.table.on_segment(&seg, now);
        if outcome.event != Some(ConnEvent::Established) {
            return;
        }
        self.watched.remove(&tuple);
        self.changes.push((tuple, None));
        let state = self
            .table
            .takeover(&tuple, now, &TakeoverParams::default())
            .map_err(|e| e.to_string());
        let _ = self.events.send(FrontEvent::Restorable(tuple, state));
        let _ = self
            .events
            .send(FrontEvent::Conn(tuple, ConnEvent::Established));
    }

    /// An ARP frame: answered for a fronted address while the node's ARP
    /// lease lasts and the front is not idle.
    fn on_arp(&mut self, sock: &PacketSocket, frame: &[u8]) {
        let until = self.arp_until.load(Ordering::Acquire);
        if self.mode == Mode::Idle || self.clock.now().0 >= until {
            return;
        }
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        if eth.ethertype() != ETHERTYPE_ARP {
            return;
        }
        let Ok(p) = ArpPacket::new_checked(eth.payload()) else {
            return;
        };
        let req = ArpRepr::parse(&p);
        if !self.vips.contains(&req.target_ip) {
            return;
        }
        if let Some(reply) = req.reply_for(req.target_ip, self.own) {
            let out = build_arp_frame(self.own, req.sender_hw, &reply);
            if sock.send(&VnetHdr::default(), &out).is_ok() {
                self.stats.arp_replies.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn snapshot(&mut self, vip: Ipv4Addr) -> Snapshot {
        self.table
            .takeover_all(self.clock.now(), &TakeoverParams::default())
            .into_iter()
            .filter(|(t, _)| t.server_ip == vip)
            .collect()
    }

    fn apply_log(&mut self, entries: Vec<LogMsg>) -> LogApplied {
        let mut r = LogApplied {
            acking: self.acking,
            ..LogApplied::default()
        };
        if !self.acking {
            return r;
        }
        for msg in entries {
            match msg {
                LogMsg::Hello(_) => r.hello = true,
                LogMsg::ConnOpen {
                    id, tuple, options, ..
                } => {
                    if self.table.on_conn_open(&tuple, options).is_err() {
                        r.unknown += 1;
                    }
                    r.ack = Some(id);
                }
                LogMsg::Reply {
                    id,
                    tuple,
                    offset,
                    bytes,
                    ..
                } => {
                    match self.table.log_reply(&tuple, offset, &bytes) {
                        Ok(_) => r.replies += 1,
                        Err(_) => r.unknown += 1,
                    }
                    r.ack = Some(id);
                }
                LogMsg::ConnClose { id, .. } => r.ack = Some(id),
                LogMsg::LogAck { .. } => {}
            }
            r.applied += 1;
        }
        r
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Accept the primary's log connection on `listener` (only from
/// `front.log_peer`) and hand it to `front`'s data-path thread, which reads the
/// entries, applies them to the table it owns and acknowledges them
/// ([`LogSession`]): no thread hop between the log and the table. Runs
/// until the front has stopped.
pub async fn serve_log(listener: tokio::net::TcpListener, ctx: LogServer, front: Front) {
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let peer = *front.log_peer.lock().unwrap_or_else(|e| e.into_inner());
        if from.ip() != std::net::IpAddr::V4(peer) {
            ctx.stats.foreign.fetch_add(1, Ordering::Relaxed);
            drop(stream); // not our primary
            continue;
        }
        let _ = stream.set_nodelay(true);
        // Still non-blocking: the thread polls it.
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let session = LogSession::new(stream, &ctx);
        if !front.send(Command::LogConn(Box::new(session))) {
            return; // the front has stopped: nothing can be applied
        }
    }
}
