//! Failover, carried out: the backup takes over a failed primary's
//! connections ([`Takeover`], docs/DESIGN.md section 5, steps 1 to 7), and a
//! primary whose backup failed claims the address it fronted ([`Claim`]).
//!
//! Nothing here decides when: the address's `VipMachine` hands out one
//! action per step, in the order the docs state, each once, and the node
//! calls the matching method. Each step there records what went wrong on
//! this machine when it was done differently:
//!
//! 1. `SnapshotAndStopAckingLog` ([`Takeover::stop`]): the front holds
//!    frames (with the eBPF front: hold mode, program runs in flight waited
//!    for, ring drained), stops answering ARP, and stops acknowledging log
//!    entries; the front's thread owns the table and does these in order
//!    between log batches, so the old primary can never write another byte.
//! 2. `BuildRepairedSockets` ([`Takeover::rebuild`]): snapshot the shadow
//!    state and rebuild every restorable connection with `TCP_REPAIR`,
//!    before the address is local (`IP_TRANSPARENT`), so no client segment
//!    finds no socket and draws an RST; each is registered (nudge and
//!    fence) as it is built and stays in repair mode, silent.
//! 3. `SetLease` ([`Takeover::lease`]) and `AddVip` ([`Takeover::add_address`]):
//!    lease the address in the fence, add it to the LAN interface.
//! 4. `InjectLateFrames` ([`Takeover::reinject`]): the front passes bare
//!    ACKs of rebuilt connections to the kernel (hold-data); every socket
//!    leaves repair mode now that it is leased and local (before, the
//!    node's own lease dropped the window probe) and writes a filler byte
//!    whose ACK gives the kernel an RTT sample ([`FILLER`]); then inject the client's
//!    out-of-order data and FIN the front recorded, and the client data
//!    held since the snapshot past each socket's receive point (the kernel
//!    dropped it while the address was not local).
//! 5. `FlushLoggedReplies` ([`Takeover::hand_over`]): write the
//!    logged-but-unacknowledged reply bytes as ordinary data, hand each
//!    socket to the HTTP server; then (step 7, before 6: new connections
//!    find a listener as soon as the router learns the address moved) the
//!    listener on the address, and the watch for connections caught
//!    mid-handshake.
//! 6. `SendGratuitousArp` ([`Takeover::announce`]): gratuitous ARP on the
//!    still-open packet socket, confirmed by a ping to the outside host
//!    from the service address; then every live connection is nudged.
//!
//! Every step is timed; [`TakeoverReport::breakdown`] maps them onto the
//! rows of the paper's Table 1.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use coral_core::wire::{parse_frame, FramePayload};
use coral_core::{FourTuple, NotRestorable, TakeoverState};

use crate::clock::Clock;
use crate::events::EventLog;
use crate::io::adopt::Adopter;
use crate::io::afpacket::PacketSocket;
use crate::io::front::{Command, Front, Mode};
use crate::io::heartbeat::{HeartbeatCmd, HeartbeatHandle};
use crate::io::inject::{inject, inject_all, raw_inject_socket};
use crate::io::leases::Leases;
use crate::io::live_conns::{self, LiveConn};
use crate::io::logchan::LogClient;
use crate::io::logged_io::{LogFuture, ReplyLogger};
use crate::io::netcfg::{Iface, NetCfg};
use crate::io::repair::{self, RepairSpec};
use crate::io::{announce, fencing, primary};

/// The logger of a node without a peer: every reply is "logged" at once.
pub struct SimplexLogger;

impl ReplyLogger for SimplexLogger {
    fn log_reply(&self, _t: FourTuple, _r: u64, _o: u64, _b: &[u8]) -> LogFuture {
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
    /// Client segments the front had recorded beyond a rebuilt socket's
    /// receive queue (out-of-order data, a FIN) injected after repair.
    pub carried_over: usize,
    /// Bytes of logged, unacknowledged replies written after repair.
    pub unacked_bytes: usize,
    /// Rebuilt connections whose logged reply tail could not be written at
    /// hand-over (each also a `tail-unwritable` event).
    pub tails_unwritable: usize,
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

    /// Every step's own time, `step_NAME=ms` pairs for events.csv (a step
    /// run twice, e.g. at two addresses, is summed): what the paper's rows
    /// add up, for profiling the transition at scale.
    pub fn fmt_steps(&self) -> String {
        let mut m: BTreeMap<String, f64> = BTreeMap::new();
        for (name, d) in &self.steps {
            *m.entry(format!("step_{name}")).or_default() += d.as_secs_f64() * 1e3;
        }
        fmt_breakdown(&m)
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

/// The shells a failover works with (built once by the node).
pub struct TakeoverCtx {
    /// The front's data path, owner of the table (nodes that front an
    /// address).
    pub front: Option<Front>,
    /// Frames flooded for a dead front, adopted after a grant (nodes that
    /// are primary, eBPF front; empty until loaded).
    pub adopt: Arc<OnceLock<Adopter>>,
    /// The primary's end of the log channel (nodes that are primary).
    pub log_client: Option<LogClient>,
    /// The log channel's port (the backup's end).
    pub log_port: u16,
    /// The kernel-enforced leases.
    pub leases: Arc<Leases>,
    /// Addresses on interfaces.
    pub nc: NetCfg,
    /// The LAN interface.
    pub lan: Iface,
    /// Loopback.
    pub lo: Iface,
    /// Send-only packet socket for gratuitous ARP.
    pub arp_sock: PacketSocket,
    /// The application served on rebuilt sockets and new listeners.
    pub app: Arc<workload::cgi::CgiConfig>,
    /// The clock the table was fed with.
    pub clock: Clock,
    /// The node's intentional-close mark (for rebuilt sockets too).
    pub close_mark: u32,
    /// Outside host to ping from the service address (paper 3.1).
    pub outside: Option<Ipv4Addr>,
    /// The node's events.csv.
    pub events: EventLog,
    /// How the node rejoins its peer after fencing itself, if configured.
    pub rejoin: Option<crate::rejoin::Rejoin>,
    /// Keep the front (idle) after a takeover: a dual-role join will hand
    /// the address to a new primary and this node fronts it again
    /// (`hand_over_at_join`).
    pub keep_front: bool,
}

impl TakeoverCtx {
    fn front(&self) -> Result<&Front> {
        self.front
            .as_ref()
            .ok_or_else(|| anyhow!("this node fronts no address"))
    }

    /// Gratuitous ARP and the confirming ping for `vip` (blocking), timed
    /// into `report`.
    fn announce(&self, vip: Ipv4Addr, report: &mut TakeoverReport) {
        let r = tokio::task::block_in_place(|| {
            announce::announce(
                &self.arp_sock,
                vip,
                self.lan.mac,
                self.outside,
                Duration::from_millis(100),
                10,
            )
        });
        match r {
            Ok(t) => {
                report.steps.push(("garp", t.garp));
                report.steps.push(("ping", t.ping));
                report.announce_rounds = report.announce_rounds.max(t.rounds);
            }
            Err(e) => tracing::warn!(%vip, "announcing: {e}"),
        }
    }
}

/// Whether `s`'s rebuilt socket gets the [`FILLER`]: only if the client's
/// window lets it leave at once. Unsent, it would leave the socket's next
/// sequence number below the client's acknowledgement, and the kernel
/// drops every client segment then, window updates included (a client
/// with a full receive buffer hung so).
fn wants_filler(s: &TakeoverState) -> bool {
    s.window.snd_wnd > 0
}

/// The rebuild of `s` (its receive queue moves into the spec: no copy).
fn spec_of(s: &mut TakeoverState, close_mark: u32) -> RepairSpec {
    RepairSpec {
        local: SocketAddrV4::new(s.tuple.server_ip, s.tuple.server_port),
        remote: SocketAddrV4::new(s.tuple.client_ip, s.tuple.client_port),
        // One byte early: the filler ([`FILLER`]) goes there.
        send_seq: s.send_queue_seq.0.wrapping_sub(u32::from(wants_filler(s))),
        recv_seq: s.recv_queue_seq.0,
        recv_queue: std::mem::take(&mut s.recv_queue),
        options: s.options,
        timestamp: s.timestamp,
        window: s.window,
        transparent: true,
        mark: close_mark,
    }
}

/// A rebuilt connection, ready to be handed to the HTTP server.
pub struct Restored {
    /// The connection.
    pub tuple: FourTuple,
    /// Its socket (in repair mode until [`Restored::leave_repair`]).
    pub stream: TcpStream,
    /// Its registration (nudge and fence), made as the socket was built,
    /// before any byte is written to it.
    pub live: LiveConn,
    /// Logged reply bytes the client has not acknowledged: write them first.
    pub unacked: Vec<u8>,
    /// How many of `unacked` are written.
    pub written: usize,
    /// The socket's send queue starts one byte early for the [`FILLER`].
    pub filler: bool,
    /// Client segments the socket must still see: out-of-order data and
    /// the client's FIN (`TakeoverState::carry_over`), injected at step 4.
    pub carry_over: Vec<Vec<u8>>,
}

impl Restored {
    /// Rebuild `state`'s connection (in repair mode) and register it: the
    /// one way a socket on a service address is created at a takeover
    /// (accepted sockets register in [`primary::serve`]).
    fn new(mut state: TakeoverState, close_mark: u32) -> io::Result<Restored> {
        let filler = wants_filler(&state);
        let stream = repair::build_in_repair_for_takeover(&spec_of(&mut state, close_mark))?;
        let live = live_conns::register(stream.as_raw_fd());
        Ok(Restored {
            tuple: state.tuple,
            stream,
            live,
            unacked: state.unacked_replies,
            written: 0,
            filler,
            carry_over: state.carry_over,
        })
    }

    /// Leave repair mode and write the [`FILLER`]: the filler draws an ACK
    /// from the client (without it, the kernel's window probe on leaving
    /// repair mode does; with it the probe is left out, one segment and
    /// one client ACK less per socket), so call it once the lease and the
    /// address are in place (before, the node's own lease drops them).
    /// Until the filler is written the socket's next sequence number is
    /// one below the client's acknowledgement, so the kernel drops client
    /// segments as acknowledging unsent data: write it before any client
    /// segment is re-injected. The socket is non-blocking from its
    /// creation.
    pub fn leave_repair(&mut self) -> io::Result<()> {
        use std::io::Write;
        let fd = self.stream.as_raw_fd();
        if !self.filler {
            return repair::leave_repair(fd);
        }
        repair::leave_repair_quietly(fd)?;
        match self.stream.write(&FILLER)? {
            1 => Ok(()),
            // A fresh socket's empty send buffer always takes one byte.
            _ => Err(io::Error::other("the filler byte was not taken")),
        }
    }

    /// Logged reply bytes not written yet.
    pub fn tail(&self) -> &[u8] {
        &self.unacked[self.written..]
    }
}

/// Where each rebuilt socket's receive queue ends (for step 4).
pub type ReceivePoints = HashMap<FourTuple, coral_core::SeqNum>;

/// Step 7, late half: a connection whose handshake completed after the
/// takeover (the front reports its state) is rebuilt, registered, out of
/// repair mode at once (the lease and the address are in place), given
/// its carry-over as at step 4, its logged reply bytes written, and
/// handed to the HTTP server.
pub fn restore_late(
    ctx: &TakeoverCtx,
    tuple: FourTuple,
    state: std::result::Result<TakeoverState, String>,
) {
    let r = state.map_err(io::Error::other).and_then(|state| {
        let mut r = Restored::new(state, ctx.close_mark)?;
        r.leave_repair()?;
        let carry = std::mem::take(&mut r.carry_over);
        if !carry.is_empty() {
            // Not injected, the client retransmits them on its timer.
            let sent = raw_inject_socket().and_then(|fd| {
                carry
                    .iter()
                    .try_for_each(|p| inject(&fd, p, tuple.server_ip))
            });
            if let Err(e) = sent {
                tracing::warn!(%tuple, "injecting the carry-over: {e}");
            }
        }
        Ok(r)
    });
    let mut r = match r {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%tuple, "rebuilding after its handshake: {e}");
            return;
        }
    };
    ctx.events
        .record("handshake-restored", &r.tuple.to_string());
    let serving = Serving::of(ctx);
    match write_unacked(&mut r) {
        Ok(_) => serve_when_readable(hand_off(r, &serving).into_iter().collect(), &serving),
        Err(e) => tail_unwritable(&ctx.events, r.tuple, r.tail().len(), &e),
    }
}

/// The byte a rebuilt socket writes first, at the client's last
/// acknowledged sequence number (its send queue starts one byte early).
/// The client already has that byte: it discards the copy unread and
/// acknowledges at once, and that ACK covers data the rebuilt socket sent,
/// so the kernel takes a true RTT sample from it. Without one the socket
/// would keep the 3 s fallback RTO of a connection without an RTT estimate
/// until its first data was acknowledged (docs/DESIGN.md 5, step 4).
const FILLER: [u8; 1] = [0];

/// Step 5, first half: write what can be written at once of each socket's
/// logged-but-unacknowledged reply bytes (they leave immediately; bytes put
/// in the repair send queue would wait for a retransmission timeout).
/// Returns how many bytes were written now; the rest is [`Restored::tail`].
pub fn write_unacked(r: &mut Restored) -> io::Result<usize> {
    use std::io::Write;
    let start = r.written;
    while r.written < r.unacked.len() {
        match r.stream.write(&r.unacked[r.written..]) {
            Ok(0) => break,
            Ok(n) => r.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(r.written - start)
}

/// Write `tail` to `stream`, eliciting an ACK from the client whenever the
/// connection is nudged meanwhile (the connection's task does the nudge,
/// as [`crate::io::logged_io::LoggedStream`] does once it serves).
async fn write_tail(
    stream: &mut tokio::net::TcpStream,
    tail: &[u8],
    nudge: &live_conns::Nudge,
) -> io::Result<()> {
    use tokio::io::AsyncWrite;
    let fd = stream.as_raw_fd();
    let mut off = 0;
    std::future::poll_fn(|cx| loop {
        if nudge.take(cx) {
            if let Err(e) = live_conns::elicit_ack(fd) {
                tracing::warn!("eliciting an ACK while writing a logged tail: {e}");
            }
        }
        if off == tail.len() {
            return Poll::Ready(Ok(()));
        }
        match std::pin::Pin::new(&mut *stream).poll_write(cx, &tail[off..]) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => off += n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await
}

/// A logged tail that could not be written: the client will not get those
/// bytes from this node. Counted (`tail-unwritable` in events.csv).
fn tail_unwritable(events: &EventLog, tuple: FourTuple, left: usize, e: &io::Error) {
    tracing::warn!(%tuple, "{left} logged reply bytes could not be written after the takeover: {e}");
    events.record(
        "tail-unwritable",
        &format!("conn={tuple} left={left} error={}", e.kind()),
    );
}

/// What a rebuilt connection is handed to the HTTP server with.
struct Serving {
    logger: Arc<dyn ReplyLogger>,
    app: Arc<workload::cgi::CgiConfig>,
    mark: u32,
    events: EventLog,
}

impl Serving {
    /// A node without a peer serves rebuilt connections: replies are not
    /// logged.
    fn of(ctx: &TakeoverCtx) -> Serving {
        Serving {
            logger: Arc::new(SimplexLogger),
            app: ctx.app.clone(),
            mark: ctx.close_mark,
            events: ctx.events.clone(),
        }
    }
}

/// A rebuilt connection with every logged reply byte written, waiting for
/// its client ([`serve_when_readable`]).
type Waiting = (tokio::net::TcpStream, LiveConn, FourTuple);

/// Step 5, second half: give a rebuilt connection to the HTTP server once
/// the rest of its unacknowledged reply bytes are written (nudged and
/// fenced meanwhile like any served connection: it is registered). One
/// with nothing left to write is returned, for [`serve_when_readable`].
fn hand_off(r: Restored, to: &Serving) -> Option<Waiting> {
    let Restored {
        tuple,
        stream,
        live,
        unacked,
        written,
        ..
    } = r;
    // Non-blocking since it was built.
    let mut stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%tuple, "handing over: {e}");
            return None;
        }
    };
    if written == unacked.len() {
        return Some((stream, live, tuple));
    }
    let _ = stream.set_nodelay(true);
    let (logger, app, mark) = (to.logger.clone(), to.app.clone(), to.mark);
    let events = to.events.clone();
    tokio::spawn(async move {
        let tail = &unacked[written..];
        match write_tail(&mut stream, tail, &live.nudge()).await {
            Ok(()) => primary::spawn_connection(stream, live, tuple, logger, None, app, mark),
            Err(e) => tail_unwritable(&events, tuple, tail.len(), &e),
        }
    });
    None
}

/// Rebuilt connections with nothing left to write wait in one task until
/// their client sends something (a request, a FIN, a reset: anything that
/// makes the socket readable; bytes already in the receive queue make it
/// readable at once), and only then become a connection task of the HTTP
/// server. A task per connection at once cost the takeover a spawn and an
/// HTTP server's set-up for each of thousands of idle keep-alive
/// connections, on the same two cores as the rest of the transition.
/// While waiting each is registered (fence) and answers its nudge here, as
/// its own task does once it serves.
fn serve_when_readable(waiting: Vec<Waiting>, to: &Serving) {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    if waiting.is_empty() {
        return;
    }
    let (logger, app, mark) = (to.logger.clone(), to.app.clone(), to.mark);
    tokio::spawn(async move {
        let mut set: FuturesUnordered<_> = waiting
            .into_iter()
            .map(|(stream, live, tuple)| async move {
                let nudge = live.nudge();
                let fd = stream.as_raw_fd();
                // Readable or failed: either way the server's task sees it.
                let _ = std::future::poll_fn(|cx| {
                    if nudge.take(cx) {
                        if let Err(e) = live_conns::elicit_ack(fd) {
                            tracing::warn!(%tuple, "eliciting an ACK while waiting: {e}");
                        }
                    }
                    stream.poll_read_ready(cx)
                })
                .await;
                (stream, live, tuple)
            })
            .collect();
        while let Some((stream, live, tuple)) = set.next().await {
            let _ = stream.set_nodelay(true);
            primary::spawn_connection(stream, live, tuple, logger.clone(), None, app.clone(), mark);
        }
    });
}

/// `k=v` pairs of a breakdown, for events.csv.
pub fn fmt_breakdown(m: &BTreeMap<String, f64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v:.3}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The backup's takeover of one fronted address, step by step (module
/// docs). Created at step 1, consumed at step 6.
pub struct Takeover {
    vip: SocketAddrV4,
    span: tracing::Span,
    report: TakeoverReport,
    restored: Vec<Restored>,
    points: ReceivePoints,
    handshakes: HashSet<FourTuple>,
}

impl Takeover {
    /// Step 1: stop answering ARP (at once: the lease is a shared word),
    /// then hold frames and stop acknowledging the log, which the front
    /// does in order, between two log batches.
    pub async fn stop(ctx: &TakeoverCtx, vip: SocketAddrV4) -> Result<Takeover> {
        let span = tracing::info_span!("takeover", vip = %vip.ip());
        let front = ctx.front()?;
        front.send(Command::Mode(Mode::Hold));
        front.answer_arp_until(0);
        front.send(Command::StopAcking);
        front.call(Command::Barrier).await?;
        ctx.events.record("log-acks-stopped", "");
        span.in_scope(|| tracing::info!("frames held, log acks stopped"));
        Ok(Takeover {
            vip,
            span,
            report: TakeoverReport::default(),
            restored: Vec::new(),
            points: HashMap::new(),
            handshakes: HashSet::new(),
        })
    }

    /// Step 2: snapshot the shadow state of this address's connections and
    /// rebuild every restorable one (silent: no lease, address not local).
    pub async fn rebuild(&mut self, ctx: &TakeoverCtx) -> Result<()> {
        let t = Instant::now();
        let vip = *self.vip.ip();
        let states = ctx.front()?.call(|r| Command::Snapshot(vip, r)).await?;
        let _g = self.span.enter();
        let report = &mut self.report;
        report.snapshot_conns = states.len();
        let t = report.step("snapshot", t);
        for (tuple, r) in states {
            match r {
                Ok(s) => match (s.rcv_nxt, Restored::new(s, ctx.close_mark)) {
                    (rcv_nxt, Ok(r)) => {
                        self.points.insert(tuple, rcv_nxt);
                        self.restored.push(r);
                    }
                    (_, Err(e)) => {
                        report.failed += 1;
                        tracing::warn!(%tuple, "rebuilding: {e}");
                    }
                },
                Err(NotRestorable::HandshakeIncomplete) => {
                    self.handshakes.insert(tuple);
                }
                Err(why) => {
                    let k = format!("{why:?}");
                    let k = k.split(['(', ' ', '{']).next().unwrap_or("?").to_string();
                    *report.skipped.entry(k).or_default() += 1;
                }
            }
        }
        report.restored = self.restored.len();
        report.handshakes = self.handshakes.len();
        report.step("repair", t);
        tracing::info!(restored = report.restored, "sockets rebuilt");
        Ok(())
    }

    /// Step 3, first half: the address's lease becomes permanent.
    pub fn lease(&mut self, ctx: &TakeoverCtx) -> Result<()> {
        let t = Instant::now();
        ctx.leases
            .make_permanent(*self.vip.ip())
            .context("leasing the taken-over address")?;
        self.report.step("lease", t);
        Ok(())
    }

    /// Step 3, second half: the address on the LAN interface.
    pub async fn add_address(&mut self, ctx: &TakeoverCtx) -> Result<()> {
        let t = Instant::now();
        ctx.nc.add_addr(ctx.lan.index, *self.vip.ip(), 32).await?;
        self.report.step("address", t);
        Ok(())
    }

    /// Step 4 (the lease and the address are in place now): the front
    /// lets bare ACKs of rebuilt connections through ([`Mode::HoldData`]),
    /// every rebuilt socket leaves repair mode and writes its filler, so
    /// the client's ACK reaches the socket at once; then the front holds no
    /// more, and the client segments each socket must still see (its
    /// carry-over, then data held since the snapshot past its receive
    /// point) are injected.
    pub async fn reinject(&mut self, ctx: &TakeoverCtx) -> Result<()> {
        let t = Instant::now();
        let front = ctx.front()?;
        // Each filler draws one ACK from its client: let bare ACKs of
        // rebuilt connections reach their sockets directly rather than
        // holding each for re-injection (eBPF front; the packet front holds
        // on). Data, FIN, SYN and RST are still held. A bare ACK that
        // reaches a socket before its filler is dropped by the kernel
        // (until then it acknowledges unsent data): a window update lost,
        // which the nudge after the gratuitous ARP asks again of every
        // socket with bytes to send (docs/DESIGN.md 5, step 4).
        front.send(Command::Mode(Mode::HoldData));
        front.call(Command::Barrier).await?;
        let report = &mut self.report;
        self.restored.retain_mut(|r| match r.leave_repair() {
            Ok(()) => true,
            Err(e) => {
                report.failed += 1;
                tracing::warn!(tuple = %r.tuple, "leaving repair mode: {e}");
                false
            }
        });
        front.send(Command::Mode(Mode::Idle));
        let held = front.call(Command::TakeHeld).await?;
        let carry: Vec<Vec<u8>> = self
            .restored
            .iter_mut()
            .flat_map(|r| std::mem::take(&mut r.carry_over))
            .collect();
        if !held.is_empty() || !carry.is_empty() {
            let fd = raw_inject_socket()?;
            let vip = *self.vip.ip();
            let carry: Vec<_> = carry.into_iter().map(|p| (p, vip)).collect();
            self.report.carried_over += inject_all(&fd, &carry);
            let late: Vec<_> = held
                .iter()
                .filter_map(|frame| {
                    let FramePayload::Tcp(seg) = parse_frame(frame).ok()?.payload else {
                        return None;
                    };
                    let from = self.points.get(&seg.client_tuple())?;
                    Some((seg.ipv4_packet_from(*from)?, seg.dst_ip))
                })
                .collect();
            self.report.reinjected += inject_all(&fd, &late);
        }
        self.report.step("reinject", t);
        Ok(())
    }

    /// Step 5, then step 7: logged-but-unacknowledged replies out, sockets
    /// to the HTTP server, connections caught mid-handshake watched, and a
    /// listener on the address for new connections.
    pub fn hand_over(&mut self, ctx: &TakeoverCtx) -> Result<()> {
        let t = Instant::now();
        let serving = Serving::of(ctx);
        let mut waiting = Vec::with_capacity(self.restored.len());
        for mut r in std::mem::take(&mut self.restored) {
            self.report.unacked_bytes += r.unacked.len();
            match write_unacked(&mut r) {
                Ok(_) => waiting.extend(hand_off(r, &serving)),
                Err(e) => {
                    self.report.tails_unwritable += 1;
                    tail_unwritable(&ctx.events, r.tuple, r.tail().len(), &e);
                }
            }
        }
        serve_when_readable(waiting, &serving);
        self.watch_handshakes(ctx)?;
        let t = self.report.step("handoff", t);
        let listener = primary::listen_beside(self.vip)
            .with_context(|| format!("listening on {}", self.vip))?;
        tokio::spawn(primary::serve(
            listener,
            serving.logger,
            None,
            ctx.app.clone(),
            ctx.close_mark,
        ));
        self.report.step("listen", t);
        Ok(())
    }

    /// Step 7, late half: the front keeps recording connections caught
    /// mid-handshake and reports each that completes its handshake (the
    /// node then calls [`restore_late`]).
    fn watch_handshakes(&mut self, ctx: &TakeoverCtx) -> Result<()> {
        let handshakes = std::mem::take(&mut self.handshakes);
        if !handshakes.is_empty() {
            ctx.front()?.send(Command::Watch(handshakes));
        }
        Ok(())
    }

    /// Step 6: gratuitous ARP confirmed by the outside host's reply; client
    /// ACKs sent while the address moved were lost, so every live
    /// connection is asked for one again; the front retires once no
    /// handshake is pending; the takeover is recorded.
    pub fn announce(mut self, ctx: &TakeoverCtx) {
        let _g = self.span.enter();
        ctx.announce(*self.vip.ip(), &mut self.report);
        self.report.nudged = live_conns::nudge_all();
        if let Some(f) = ctx.front.clone().filter(|_| !ctx.keep_front) {
            tokio::spawn(async move {
                for _ in 0..100 {
                    if !f.call(Command::Watching).await.unwrap_or(false) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                f.retire();
            });
        }
        let r = &self.report;
        ctx.events.record(
            "takeover",
            &format!(
                "{} {} restored={} handshakes={} snapshot={} failed={} reinjected={} carried_over={} unacked_bytes={} tails_unwritable={} rounds={} nudged={} skipped={:?}",
                fmt_breakdown(&r.breakdown()),
                r.fmt_steps(),
                r.restored,
                r.handshakes,
                r.snapshot_conns,
                r.failed,
                r.reinjected,
                r.carried_over,
                r.unacked_bytes,
                r.tails_unwritable,
                r.announce_rounds,
                r.nudged,
                r.skipped
            ),
        );
        tracing::info!(total_ms = r.breakdown()["total"], "takeover done");
    }

    /// Fenced before the voice: close every rebuilt socket silently.
    /// Returns how many were closed.
    pub fn abandon(self) -> usize {
        let n = self.restored.len();
        for r in self.restored {
            let _ = repair::close_silently(r.stream);
        }
        n
    }
}

/// A primary whose backup failed claims the address the backup fronted
/// (docs/DESIGN.md section 5, last paragraph), step by step as its machine
/// hands the steps out: writers released (`GoSimplex`), the address added
/// on the LAN (`AddVip`) and then removed from `lo` (`RemoveVip`), so it
/// is never non-local, and gratuitous ARP (`SendGratuitousArp`).
pub struct Claim {
    vip: Ipv4Addr,
    report: TakeoverReport,
    address_since: Option<Instant>,
}

impl Claim {
    /// `GoSimplex`: release every writer waiting for a log ack (paper 3.1);
    /// `wait_ns` is how long until the machine claims the address.
    pub fn go_simplex(ctx: &TakeoverCtx, vip: Ipv4Addr, wait_ns: u64) -> Claim {
        if let Some(client) = &ctx.log_client {
            let t = Instant::now();
            client.go_simplex();
            // The backup is dead or deposed: entries it never acknowledged
            // must not be retransmitted on our timer.
            let silenced = fencing::silence_connections_to_port(ctx.log_port);
            ctx.events.record(
                "simplex",
                &format!(
                    "released_ms={:.3} log_conns_silenced={silenced}",
                    t.elapsed().as_secs_f64() * 1e3
                ),
            );
        }
        ctx.events
            .record("simplex-wait", &format!("ms={:.3}", wait_ns as f64 / 1e6));
        tracing::info!(%vip, wait_ms = wait_ns as f64 / 1e6, "simplex");
        // Granted (the lease is permanent already): frames the switch
        // floods for the dead front's MAC are ours from now on, and those
        // flooded before the grant are injected (docs/DESIGN.md 5).
        if let Some(a) = ctx.adopt.get() {
            match a.adopt(vip) {
                Ok(n) => ctx
                    .events
                    .record("adopt", &format!("vip={vip} injected={n}")),
                Err(e) => tracing::warn!(%vip, "adopting flooded frames: {e}"),
            }
        }
        Claim {
            vip,
            report: TakeoverReport::default(),
            address_since: None,
        }
    }

    /// `AddVip` on the LAN interface.
    pub async fn add_address(&mut self, ctx: &TakeoverCtx) -> Result<()> {
        self.address_since = Some(Instant::now());
        ctx.nc.add_addr(ctx.lan.index, self.vip, 32).await
    }

    /// `RemoveVip` from loopback.
    pub async fn remove_loopback(&mut self, ctx: &TakeoverCtx) -> Result<()> {
        ctx.nc.del_addr(ctx.lo.index, self.vip, 32).await?;
        let since = self.address_since.unwrap_or_else(Instant::now);
        self.report.step("address", since);
        Ok(())
    }

    /// `SendGratuitousArp`: tell the router, nudge every live connection
    /// (client ACKs sent to the old front while the address moved were
    /// lost), record the claim.
    pub fn announce(mut self, ctx: &TakeoverCtx) {
        ctx.announce(self.vip, &mut self.report);
        self.report.nudged = live_conns::nudge_all();
        let adopted = ctx
            .adopt
            .get()
            .and_then(|a| a.counters().ok())
            .map(|c| {
                format!(
                    " flooded_held={} flooded_adopted={} flooded_injected={}",
                    c.held, c.adopted, c.injected
                )
            })
            .unwrap_or_default();
        ctx.events.record(
            "simplex-address",
            &format!(
                "{} rounds={} nudged={}{adopted}",
                fmt_breakdown(&self.report.breakdown()),
                self.report.announce_rounds,
                self.report.nudged
            ),
        );
    }
}

/// Exit status of a node that fenced itself.
pub const FENCED_EXIT: i32 = 3;

/// The loser's side (docs/DESIGN.md 4): lease revoked, every live
/// connection silenced (`TCP_REPAIR`), rebuilt sockets of `pending`
/// takeovers closed silently, every address removed, front, log acks and
/// heartbeats stopped, `fenced` recorded, exit with [`FENCED_EXIT`]. The
/// nft table stays: without a lease the kernel sends nothing from the
/// service addresses. With `rejoin = true` the process becomes
/// `coral join` toward the peer instead of exiting ([`crate::rejoin`]).
pub async fn fence_and_exit(
    ctx: &TakeoverCtx,
    hb: &HeartbeatHandle,
    vips: &[Ipv4Addr],
    pending: Vec<Takeover>,
    vip: Ipv4Addr,
    reason: &str,
) -> ! {
    let t = Instant::now();
    let revoked = ctx.leases.revoke_all(vips);
    let (silenced, failed) = fencing::silence_all();
    let pending: usize = pending.into_iter().map(Takeover::abandon).sum();
    for v in vips {
        for (idx, len) in [(ctx.lan.index, 32), (ctx.lan.index, 24), (ctx.lo.index, 32)] {
            let _ = ctx.nc.del_addr(idx, *v, len).await;
        }
    }
    if let Some(f) = &ctx.front {
        f.send(Command::StopAcking);
        f.retire();
    }
    hb.command(HeartbeatCmd::Stop);
    ctx.events.record(
        "fenced",
        &format!(
            "vip={vip} {reason} silenced={silenced} silence_failed={failed} pending_closed={pending} lease_revoked={} took_ms={:.3}",
            revoked.is_ok(),
            t.elapsed().as_secs_f64() * 1e3
        ),
    );
    if let Some(r) = &ctx.rejoin {
        tracing::warn!(%vip, "fenced ({reason}); rejoining the peer");
        let e = r.exec(&ctx.events);
        tracing::error!("rejoin: cannot run coral join: {e}");
    }
    tracing::warn!(%vip, "fenced ({reason}); exiting");
    std::process::exit(FENCED_EXIT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_listed_by_name_and_a_repeated_step_is_summed() {
        let r = TakeoverReport {
            steps: vec![
                ("snapshot", Duration::from_millis(1)),
                ("repair", Duration::from_micros(2_500)),
                ("snapshot", Duration::from_millis(3)),
            ],
            ..TakeoverReport::default()
        };
        assert_eq!(r.fmt_steps(), "step_repair=2.500 step_snapshot=4.000");
        assert_eq!(r.breakdown()["kernel_ops"], 6.5);
    }
}
