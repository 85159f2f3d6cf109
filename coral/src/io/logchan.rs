//! The log channel (docs/DESIGN.md section 2): one authenticated TCP stream from
//! the primary to the backup carrying `ConnOpen`, `Reply` and `ConnClose`,
//! and cumulative `LogAck`s back.
//!
//! - [`LogClient`] (primary): a [`ReplyLogger`]; each reply resolves when the
//!   backup's cumulative ack covers it. In simplex mode replies resolve at
//!   once, and [`LogClient::go_simplex`] releases every waiting writer
//!   (paper section 3.1: waiting processes must stop waiting).
//! - [`LogSession`] (backup, accepted by `crate::io::front::serve_log`):
//!   hands each read's entries to the front's data
//!   path, which applies them to the connection table, and acknowledges
//!   them, one cumulative ack per batch read.
//!
//! Garbage on the port never reaches the table: frames are checked by the
//! core's [`StreamDecoder`] (size, magic, version, HMAC tag, replay window)
//! and every rejection is counted; a stream that cannot be resynchronised
//! is closed.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use coral_core::{
    Channel, CloseKind, DecoderConfig, DelayHistogram, Encoder, Key, LogMsg, Message, NodeConfig,
    RejectCounters, StreamDecoder,
};
use coral_core::{Epoch, FourTuple, NegotiatedOptions, NodeId};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{oneshot, Notify};

use crate::io::logged_io::{LogFuture, ReplyLogger};

/// Largest reply payload put in one `Reply` message.
pub const MAX_REPLY_PART: usize = 15 << 20;

/// The wire side of the primary's channel: entries are encoded straight
/// into `out` as they are logged, numbered in that order (cumulative acks
/// rely on it), and written by whoever finds the socket idle: the runtime
/// worker that logged them when it runs out of work ([`flush_deferred`]),
/// the logging connection's own task where no worker does, or the flusher
/// task when a write would block. Everything pending at a write goes in
/// that one write.
struct Wire {
    enc: Encoder,
    /// The next entry's id.
    next_id: u64,
    /// Encoded frames not yet taken by the socket.
    out: Vec<u8>,
    /// `out` holds entries left for a runtime worker to write when it runs
    /// out of work ([`flush_deferred`]), not bytes a blocked write left.
    deferred: bool,
    sink: Sink,
}

enum Sink {
    /// Not connected yet: entries wait in `out`.
    Connecting,
    /// Connected and the hello written.
    Open(Arc<OwnedWriteHalf>),
    /// A write failed: entries are dropped from now on, and their writers,
    /// registered when they were logged, wait until the detector declares
    /// the backup failed and the node goes simplex
    /// ([`LogClient::go_simplex`]), or the node fences itself. Failing
    /// them instead would close their clients' connections with requests
    /// unanswered at a takeover the clients must not notice.
    Dead,
}

impl Wire {
    /// Write as much of `out` as the socket takes now; true if the rest
    /// must wait for the socket to be writable.
    fn try_flush(&mut self) -> bool {
        let Sink::Open(half) = &self.sink else {
            return false;
        };
        self.deferred = false;
        let mut done = 0;
        let blocked = loop {
            if done == self.out.len() {
                break false;
            }
            match half.try_write(&self.out[done..]) {
                Ok(0) => {
                    self.sink = Sink::Dead;
                    break false;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.sink = Sink::Dead;
                    break false;
                }
            }
        };
        if matches!(self.sink, Sink::Dead) {
            self.out = Vec::new();
        } else {
            self.out.drain(..done);
        }
        blocked
    }
}

/// Shared state of the primary's side of the channel.
struct ClientShared {
    simplex: AtomicBool,
    /// Waiters by entry id, released by cumulative acks or by simplex.
    /// A waiter is here from the moment its entry is logged, so
    /// [`LogClient::go_simplex`] releases it even when the entry is still
    /// queued behind a write the backup will never take (a partition).
    /// Each with the time its entry was logged (for [`round_trips`]).
    waiters: Mutex<BTreeMap<u64, (oneshot::Sender<()>, std::time::Instant)>>,
    wire: Mutex<Wire>,
    /// Wakes the flusher: a write would have blocked, or the channel
    /// connected with entries waiting.
    flush: Notify,
    acked: AtomicU64,
    connected: AtomicBool,
    /// The channel's socket while it is open (-1 otherwise), for
    /// [`LogClient::progress`]'s send-queue reading. Set and cleared under
    /// the wire's lock, with the sink: the socket closes only after.
    fd: AtomicI32,
}

/// The primary's end of the log channel.
#[derive(Clone)]
pub struct LogClient {
    shared: Arc<ClientShared>,
}

/// Everything needed to open the channel.
#[derive(Clone, Debug)]
pub struct LogClientConfig {
    /// Our LAN address (source of the connection).
    pub local: Ipv4Addr,
    /// The backup's log endpoint.
    pub backup: SocketAddrV4,
    /// Our node id.
    pub node: NodeId,
    /// Epoch stamped on frames.
    pub epoch: Epoch,
    /// Our identity and configuration (sent in `Hello`).
    pub hello: NodeConfig,
}

impl LogClient {
    /// Start the channel: connects (retrying every 50 ms until it succeeds)
    /// and runs until the process ends. Must be called inside a tokio runtime.
    pub fn start(key: Key, cfg: LogClientConfig) -> LogClient {
        let mut enc = Encoder::new(key.clone(), cfg.node, cfg.epoch, crate::clock::unix_ns());
        // The hello is the first frame on the wire, and the lowest
        // numbered (the backup's replay window wants increasing numbers).
        let mut out = Vec::with_capacity(64 * 1024);
        let hello = Message::Log(LogMsg::Hello(cfg.hello.clone()));
        enc.encode(&hello, &mut out).expect("hello encodes");
        let shared = Arc::new(ClientShared {
            simplex: AtomicBool::new(false),
            waiters: Mutex::new(BTreeMap::new()),
            wire: Mutex::new(Wire {
                enc,
                next_id: 1,
                out,
                deferred: false,
                sink: Sink::Connecting,
            }),
            flush: Notify::new(),
            acked: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            fd: AtomicI32::new(-1),
        });
        tokio::spawn(client_task(key, cfg, shared.clone()));
        LogClient { shared }
    }

    /// Whether the channel is connected and the backup said hello.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// Wait until connected, or `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_connected() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Report a newly accepted connection and its negotiated options.
    pub fn conn_open(&self, tuple: FourTuple, options: NegotiatedOptions) {
        if !self.shared.simplex.load(Ordering::Acquire) {
            self.log(None, |enc, id, out| {
                let msg = LogMsg::ConnOpen {
                    id,
                    tuple,
                    server_isn: 0,
                    client_isn: 0,
                    options,
                };
                enc.encode(&Message::Log(msg), out).is_ok()
            });
        }
    }

    /// Report a connection's end.
    pub fn conn_close(&self, tuple: FourTuple, kind: CloseKind) {
        if !self.shared.simplex.load(Ordering::Acquire) {
            self.log(None, |enc, id, out| {
                let msg = LogMsg::ConnClose { id, tuple, kind };
                enc.encode(&Message::Log(msg), out).is_ok()
            });
        }
    }

    /// Numbers one entry, registers its waiter (or releases it at once in
    /// simplex mode), has `encode` append it to the wire's output, and
    /// writes that output if the socket is idle.
    fn log(
        &self,
        waiter: Option<oneshot::Sender<()>>,
        encode: impl FnOnce(&mut Encoder, u64, &mut Vec<u8>) -> bool,
    ) {
        let mut wire = self.shared.wire.lock().expect("wire");
        let id = wire.next_id;
        wire.next_id += 1;
        if let Some(w) = waiter {
            park(&self.shared, id, w);
        }
        if matches!(wire.sink, Sink::Dead) {
            return;
        }
        // Bytes already waiting, unless deferred, mean a write is blocked
        // (the flusher writes them) or the channel is not connected yet.
        let idle = wire.out.is_empty() || wire.deferred;
        let Wire { enc, out, .. } = &mut *wire;
        if !encode(enc, id, out) || !idle {
            return;
        }
        // On a worker that writes what is deferred when it runs out of
        // work, the entries the other connections log meanwhile go in the
        // same write (one send, one ack, one wake-up of the ack reader).
        if wire.out.len() < DEFER_BELOW && defer(&self.shared) {
            wire.deferred = true;
            return;
        }
        write_now(&self.shared, &mut wire);
    }

    /// Stop waiting for the backup: every waiting writer is released now and
    /// later replies resolve at once (the primary is the only server).
    pub fn go_simplex(&self) {
        self.shared.simplex.store(true, Ordering::Release);
        let waiters = std::mem::take(&mut *self.shared.waiters.lock().expect("waiters"));
        for (_, (w, _)) in waiters {
            let _ = w.send(());
        }
    }

    /// Whether the channel is in simplex mode.
    pub fn is_simplex(&self) -> bool {
        self.shared.simplex.load(Ordering::Acquire)
    }

    /// Highest entry id the backup acknowledged.
    pub fn acked(&self) -> u64 {
        self.shared.acked.load(Ordering::Acquire)
    }

    /// Whether writers wait for the backup's acknowledgement, the highest
    /// entry acknowledged, and the bytes the channel's socket holds that
    /// the backup's kernel has not acknowledged (`SIOCOUTQ`; 0 without a
    /// socket): a large entry on a shared link takes seconds, and its
    /// bytes moving is progress too. `None` when the waiters are locked at
    /// this moment (the heartbeat thread asks each round and never blocks
    /// on the data path).
    pub fn progress(&self) -> Option<(bool, u64, u64)> {
        let waiting = !self.shared.waiters.try_lock().ok()?.is_empty();
        let fd = self.shared.fd.load(Ordering::Acquire);
        let unacked = if fd < 0 {
            0
        } else {
            crate::io::repair::out_queue(fd).map_or(0, |n| n.max(0) as u64)
        };
        Some((waiting, self.acked(), unacked))
    }
}

impl ReplyLogger for LogClient {
    fn log_reply(
        &self,
        tuple: FourTuple,
        request_end: u64,
        offset: u64,
        bytes: &[u8],
    ) -> LogFuture {
        if self.shared.simplex.load(Ordering::Acquire) {
            return Box::pin(async { Ok(()) });
        }
        // Split only replies larger than one message may carry; only the last
        // part is waited for (acks are cumulative and in order). Each part
        // is copied once, from the caller's buffer into the wire's.
        let (wtx, wrx) = oneshot::channel();
        let mut wtx = Some(wtx);
        let mut start = 0usize;
        loop {
            let end = (start + MAX_REPLY_PART).min(bytes.len());
            let last = end == bytes.len();
            let part = &bytes[start..end];
            let at = offset + start as u64;
            let waiter = if last { wtx.take() } else { None };
            self.log(waiter, |enc, id, out| {
                enc.encode_reply(id, &tuple, request_end, at, last, part, out)
                    .is_ok()
            });
            if last {
                break;
            }
            start = end;
        }
        Box::pin(async move {
            // Released by the backup's ack or by simplex; a dropped sender
            // means the channel's state is gone: the reply stays unlogged.
            wrx.await
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "log channel closed"))
        })
    }
}

async fn connect(cfg: &LogClientConfig) -> io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::V4(SocketAddrV4::new(cfg.local, 0)))?;
    let stream = s.connect(SocketAddr::V4(cfg.backup)).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Connects, then writes what logging left waiting (the hello first)
/// whenever a write would have blocked.
async fn client_task(key: Key, cfg: LogClientConfig, shared: Arc<ClientShared>) {
    let stream = loop {
        match connect(&cfg).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let fd = stream.as_raw_fd();
    let (rd, wr) = stream.into_split();
    let wr = Arc::new(wr);
    tokio::spawn(read_acks(rd, key, shared.clone()));
    {
        let mut wire = shared.wire.lock().expect("wire");
        shared.fd.store(fd, Ordering::Release);
        wire.sink = Sink::Open(wr.clone());
    }
    loop {
        let (blocked, dead) = {
            let mut wire = shared.wire.lock().expect("wire");
            let blocked = wire.try_flush();
            (blocked, matches!(wire.sink, Sink::Dead))
        };
        if dead {
            shared.connected.store(false, Ordering::Release);
            shared.fd.store(-1, Ordering::Release);
            return;
        }
        if blocked {
            // Blocks for as long as a partitioned backup takes nothing;
            // the waiters are released by go_simplex all the same.
            let _ = wr.writable().await;
        } else {
            shared.flush.notified().await;
        }
    }
}

/// Writes what `wire` holds now; wakes the flusher if the socket did not
/// take it all, or to close it if the write failed.
fn write_now(shared: &ClientShared, wire: &mut Wire) {
    if wire.try_flush() {
        shared.flush.notify_one();
    }
    if matches!(wire.sink, Sink::Dead) {
        shared.connected.store(false, Ordering::Release);
        shared.fd.store(-1, Ordering::Release);
        // The flusher holds the socket: it ends, and the socket closes.
        shared.flush.notify_one();
    }
}

/// Entries are deferred only while the pending bytes stay below this; a
/// larger batch (or a large reply) is written at once.
const DEFER_BELOW: usize = 32 * 1024;

thread_local! {
    /// Whether this thread is a runtime worker that calls
    /// [`flush_deferred`] before it parks (set by its first park).
    static PARKS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Channels with entries deferred by this thread.
    static DEFERRED: std::cell::RefCell<Vec<Arc<ClientShared>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Leaves `shared`'s pending entries for this thread's next
/// [`flush_deferred`], if this thread calls it; false: write them now.
fn defer(shared: &Arc<ClientShared>) -> bool {
    if !PARKS.with(|p| p.get()) {
        return false;
    }
    DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        if !d.iter().any(|x| Arc::ptr_eq(x, shared)) {
            d.push(shared.clone());
        }
    });
    true
}

/// Writes the log entries this thread deferred, every channel's pending
/// entries in one write each. Install it as the runtime's
/// `on_thread_park` hook: a worker then writes the entries of every reply
/// it produced in one burst of work just before it waits for more, instead
/// of one write (and one ack, and one wake-up of the ack reader) per
/// reply. A runtime without the hook writes each entry at once.
pub fn flush_deferred() {
    PARKS.with(|p| p.set(true));
    let pending = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    for shared in pending {
        let mut wire = shared.wire.lock().expect("wire");
        if wire.deferred {
            write_now(&shared, &mut wire);
        }
    }
}

/// Keeps `w` (the writer of entry `id`) waiting for the backup's ack, or
/// releases it at once in simplex mode. Decided under the waiters' lock, as
/// [`LogClient::go_simplex`] takes them, so no waiter is parked after the
/// last release.
fn park(shared: &ClientShared, id: u64, w: oneshot::Sender<()>) {
    let mut waiters = shared.waiters.lock().expect("waiters");
    if shared.simplex.load(Ordering::Acquire) {
        let _ = w.send(());
    } else {
        waiters.insert(id, (w, std::time::Instant::now()));
    }
}

/// Log round trips of this process's replies (logged until acknowledged),
/// every log channel together.
static ROUND_TRIPS: LazyLock<Mutex<DelayHistogram>> = LazyLock::new(Mutex::default);

/// The log round trip of every reply so far: from the moment the reply
/// was handed to the log to the backup's ack releasing it (time its
/// write waited behind a blocked channel included).
pub fn round_trips() -> DelayHistogram {
    ROUND_TRIPS.lock().expect("round trips").clone()
}

/// The primary's reader: the backup's hello, then cumulative acks, each
/// releasing every writer waiting for an entry it covers.
async fn read_acks(mut rd: tokio::net::tcp::OwnedReadHalf, key: Key, shared: Arc<ClientShared>) {
    let mut dec = StreamDecoder::new(key, DecoderConfig::for_channel(Channel::Log));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if dec.push(&buf[..n]).is_err() {
            break;
        }
        while let Some(r) = dec.next_frame() {
            match r {
                Ok(f) => match f.msg {
                    Message::Log(LogMsg::Hello(_)) => {
                        shared.connected.store(true, Ordering::Release)
                    }
                    Message::Log(LogMsg::LogAck { id }) => {
                        shared.acked.fetch_max(id, Ordering::AcqRel);
                        let released = {
                            let mut w = shared.waiters.lock().expect("waiters");
                            let rest = w.split_off(&(id + 1));
                            std::mem::replace(&mut *w, rest)
                        };
                        let now = std::time::Instant::now();
                        let mut rtt = ROUND_TRIPS.lock().expect("round trips");
                        for (_, (tx, t)) in released {
                            let _ = tx.send(());
                            rtt.record(now.duration_since(t).as_nanos() as u64);
                        }
                    }
                    _ => {}
                },
                Err(_) if dec.poisoned().is_some() => return,
                Err(_) => {}
            }
        }
    }
    shared.connected.store(false, Ordering::Release);
}

/// Counters of the backup's side.
#[derive(Debug, Default)]
pub struct LogServerStats {
    /// Entries applied.
    pub entries: AtomicU64,
    /// Replies logged.
    pub replies: AtomicU64,
    /// Entries for connections the table does not know (acknowledged anyway,
    /// counted: those connections are not protected).
    pub unknown_conn: AtomicU64,
    /// Frames rejected by the decoder (all reasons).
    pub rejected: AtomicU64,
    /// Connections refused because they did not come from the peer.
    pub foreign: AtomicU64,
    /// Acks written: one per read that held entries, so `entries / acks`
    /// is how many entries the primary put in one write.
    pub acks: AtomicU64,
}

/// The backup's side of the log channel: what each [`LogSession`] needs
/// (`crate::io::front::serve_log` accepts the connection and hands it to
/// the front's data path, which owns the table and applies entries).
#[derive(Clone)]
pub struct LogServer {
    /// The pre-shared key.
    pub key: Key,
    /// Our node id.
    pub me: NodeId,
    /// Epoch stamped on our frames.
    pub epoch: Epoch,
    /// Our `Hello`.
    pub hello: NodeConfig,
    /// Counters.
    pub stats: Arc<LogServerStats>,
    /// Decoder rejections by reason (of the latest connection).
    pub rejects: Arc<Mutex<RejectCounters>>,
}

/// Once the snapshot stopped acknowledgements the primary is taken for
/// failed, so its log connection goes silently (repair mode, then the
/// caller drops it): a FIN, or the last ack, to a cut-off peer would be
/// retransmitted on the survivor's timer for minutes.
fn close_silently(fd: RawFd) {
    let _ = crate::io::repair::set_repair(fd, true);
}

/// What applying one batch of log entries did.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogApplied {
    /// False once the node stopped acknowledging: nothing was applied, and
    /// the channel must close.
    pub acking: bool,
    /// The highest entry id applied (to acknowledge), if any.
    pub ack: Option<u64>,
    /// The batch had a `Hello` (to answer).
    pub hello: bool,
    /// Messages applied.
    pub applied: u64,
    /// Replies logged.
    pub replies: u64,
    /// Entries for connections the table does not know.
    pub unknown: u64,
}

/// The backup's end of one log connection, driven by the front's
/// data-path thread (which owns the table): each time the socket is
/// ready, everything it holds is read and decoded, applied in one batch
/// (after the ring is drained), and acknowledged with one cumulative
/// `LogAck`.
pub struct LogSession {
    stream: std::net::TcpStream,
    enc: Encoder,
    dec: StreamDecoder,
    hello: NodeConfig,
    said_hello: bool,
    stats: Arc<LogServerStats>,
    rejects: Arc<Mutex<RejectCounters>>,
    buf: Vec<u8>,
    /// Acknowledgement bytes the socket did not take yet.
    out: Vec<u8>,
}

impl LogSession {
    /// The session of `stream`, an accepted connection from the primary.
    pub(crate) fn new(stream: std::net::TcpStream, ctx: &LogServer) -> LogSession {
        LogSession {
            stream,
            enc: Encoder::new(ctx.key.clone(), ctx.me, ctx.epoch, crate::clock::unix_ns()),
            dec: StreamDecoder::new(ctx.key.clone(), DecoderConfig::for_channel(Channel::Log)),
            hello: ctx.hello.clone(),
            said_hello: false,
            stats: ctx.stats.clone(),
            rejects: ctx.rejects.clone(),
            buf: vec![0u8; 256 * 1024],
            out: Vec::new(),
        }
    }

    /// The socket, for polling (readable and writable, edge-triggered).
    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// The socket is ready: read what it holds and, after every read,
    /// hand its entries to `apply` (which drains the ring first and
    /// applies them) and write the cumulative ack. Acked per read, not
    /// once the socket is empty: a primary streaming large replies keeps
    /// it from ever being empty, and its writers wait for the ack. False
    /// when the connection is over (the caller drops the session; a
    /// session that stopped acknowledging has already gone silently).
    pub fn on_ready(&mut self, apply: &mut dyn FnMut(Vec<LogMsg>) -> LogApplied) -> bool {
        if !self.flush() {
            return false;
        }
        loop {
            let n = match (&self.stream).read(&mut self.buf) {
                Ok(0) => return false,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            };
            let mut entries = Vec::new();
            let decoded = self.decode(n, &mut entries);
            *self.rejects.lock().expect("rejects") = *self.dec.counters();
            if !decoded || (!entries.is_empty() && !self.acknowledge(apply(entries))) {
                return false;
            }
            if n < self.buf.len() {
                // A short read emptied the receive queue: new data makes a
                // new edge.
                return true;
            }
        }
    }

    /// Count what `applied` did and write its ack; false if the
    /// connection is over.
    fn acknowledge(&mut self, applied: LogApplied) -> bool {
        if !applied.acking {
            self.go_silent();
            return false; // snapshot taken: never acknowledge again
        }
        self.stats
            .entries
            .fetch_add(applied.applied, Ordering::Relaxed);
        self.stats
            .replies
            .fetch_add(applied.replies, Ordering::Relaxed);
        self.stats
            .unknown_conn
            .fetch_add(applied.unknown, Ordering::Relaxed);
        if applied.hello && !self.said_hello {
            self.said_hello = true;
            let hello = Message::Log(LogMsg::Hello(self.hello.clone()));
            let _ = self.enc.encode(&hello, &mut self.out);
        }
        if let Some(id) = applied.ack {
            self.stats.acks.fetch_add(1, Ordering::Relaxed);
            let _ = self
                .enc
                .encode(&Message::Log(LogMsg::LogAck { id }), &mut self.out);
        }
        self.flush()
    }

    /// Decode the `n` bytes just read into `entries`; false if the stream
    /// cannot be trusted any more.
    fn decode(&mut self, n: usize, entries: &mut Vec<LogMsg>) -> bool {
        if self.dec.push(&self.buf[..n]).is_err() {
            return false;
        }
        while let Some(r) = self.dec.next_frame() {
            match r {
                Ok(f) => {
                    if let Message::Log(msg) = f.msg {
                        entries.push(msg);
                    }
                }
                Err(_) => {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    if self.dec.poisoned().is_some() {
                        *self.rejects.lock().expect("rejects") = *self.dec.counters();
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Write what is pending; false if the socket failed.
    fn flush(&mut self) -> bool {
        let mut done = 0;
        while done < self.out.len() {
            match (&self.stream).write(&self.out[done..]) {
                Ok(0) => return false,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        self.out.drain(..done);
        true
    }

    /// Acknowledgements stopped (a takeover's snapshot): the connection
    /// goes without a FIN, and an ack written just before is never
    /// retransmitted.
    pub fn go_silent(&mut self) {
        close_silently(self.stream.as_raw_fd());
    }
}
