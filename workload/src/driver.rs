//! The closed-loop load driver (`coral-load`): N clients, each sending one
//! request and waiting for the whole reply before the next (WebStone).
//!
//! Every request is sent EXACTLY ONCE. The client is written on raw tokio
//! `TcpStream`s with its own request writer and an httparse reply-head parser,
//! because HTTP client libraries (hyper's pooled client, reqwest) may resend a
//! request that failed on a reused idle connection; here nothing is ever
//! resent. Each reply is verified (status 200, `Content-Length` == requested
//! size == body bytes, sha256 of the body == `X-Coral-Digest`) and recorded
//! as a [`RequestRecord`]. After an error the connection is closed and the
//! client backs off (10 ms, doubling to 1 s; reset by a success) before
//! opening a new one. A failed connect is recorded too, as the request it was
//! opened for (`local_port` 0).
//!
//! The run ends by itself. With a duration, no request starts after
//! `run_end`; requests still in flight then get `drain` more time, and those
//! unanswered after it are recorded as lost (`lost` = true, no error kind).
//! With a request count (`total_requests`, over all clients together), each
//! request is claimed from a shared counter before it is sent.

use crate::cgi::{DEFAULT_SIZE, DIGEST_HEADER, REQUEST_ID_HEADER, SERVED_BY_HEADER};
use crate::records::{ErrorKind, RequestRecord};
use crate::summary::{self, Summary, SummaryOptions};
use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// Largest reply head accepted by the driver.
const MAX_REPLY_HEAD: usize = 64 * 1024;
/// Most reply header fields accepted.
const MAX_REPLY_HEADERS: usize = 64;

/// How clients use connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectionMode {
    /// HTTP/1.1 keep-alive: one connection per client, reopened after errors.
    #[default]
    KeepAlive,
    /// A new connection per request (`Connection: close`), as WebStone 2.0.
    PerRequest,
    /// HTTP/1.1 pipelining on a keep-alive connection: the client writes
    /// this many requests back to back, then reads their replies in order.
    /// Each is still a request of its own (one row each); a failure ends
    /// the round, and the requests of the round not answered by then are
    /// recorded with the same error kind.
    Pipelined(u32),
}

impl ConnectionMode {
    /// Requests written per round (1 unless pipelined).
    pub fn depth(self) -> u32 {
        match self {
            ConnectionMode::Pipelined(n) => n.max(1),
            _ => 1,
        }
    }
}

/// What a run does.
#[derive(Debug, Clone, PartialEq)]
pub struct DriverConfig {
    /// Service URLs (`http://HOST[:PORT]/PATH[?QUERY]`), assigned to clients
    /// round-robin (client i uses `urls[i % len]`).
    pub urls: Vec<String>,
    /// Number of closed-loop clients.
    pub clients: u32,
    /// Keep-alive or a connection per request.
    pub mode: ConnectionMode,
    /// Stop sending after this long (at least one of this and
    /// `total_requests` must be set; with both, whichever comes first).
    pub duration: Option<Duration>,
    /// Stop after this many requests over all clients together.
    pub total_requests: Option<u64>,
    /// Reply size appended as `?size=N` to URLs that have no query.
    pub size: u64,
    /// Start of the run excluded from throughput and latency statistics.
    pub warmup: Duration,
    /// Per-request timeout (connect plus whole reply).
    pub timeout: Duration,
    /// How long requests in flight at the end of the duration may still
    /// complete before they are recorded as lost.
    pub drain: Duration,
    /// First reconnect back-off after an error.
    pub backoff_min: Duration,
    /// Largest reconnect back-off.
    pub backoff_max: Duration,
    /// Fault instant for the summary (unix ns), if a fault is injected.
    pub fault_at_unix_ns: Option<u64>,
    /// Extra idle keep-alive connections opened (round-robin over the
    /// URLs) before the clients start and held open, unused, to the end.
    pub idle_conns: u32,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            urls: Vec::new(),
            clients: 8,
            mode: ConnectionMode::KeepAlive,
            duration: Some(Duration::from_secs(10)),
            total_requests: None,
            size: DEFAULT_SIZE,
            warmup: Duration::ZERO,
            timeout: Duration::from_secs(60),
            drain: Duration::from_secs(2),
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_secs(1),
            fault_at_unix_ns: None,
            idle_conns: 0,
        }
    }
}

/// One service URL, parsed and resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as recorded (with query).
    pub url: String,
    /// `Host` header value.
    pub host: String,
    /// Request target (path and query).
    pub path_and_query: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// Body size the reply must have.
    pub expected_size: u64,
}

/// Parse `url` (only `http://`), append `?size=N` if it has no query, and
/// resolve its host (first address).
pub async fn parse_target(url: &str, size: u64) -> anyhow::Result<Target> {
    let uri: hyper::Uri = url
        .parse()
        .with_context(|| format!("bad URL {url:?}: expected http://HOST[:PORT]/PATH"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(s) => bail!("bad URL {url:?}: scheme {s:?} not supported, only http"),
        None => bail!("bad URL {url:?}: expected http://HOST[:PORT]/PATH"),
    }
    let authority = uri
        .authority()
        .with_context(|| format!("bad URL {url:?}: no host"))?;
    let port = authority.port_u16().unwrap_or(80);
    let path = if uri.path().is_empty() {
        "/"
    } else {
        uri.path()
    };
    let (path_and_query, expected_size) = match uri.query() {
        None => (format!("{path}?size={size}"), size),
        Some(q) => {
            let mut expected = DEFAULT_SIZE;
            for pair in q.split('&') {
                if let Some(v) = pair.strip_prefix("size=") {
                    expected = v
                        .parse()
                        .with_context(|| format!("bad URL {url:?}: size {v:?} not a number"))?;
                }
            }
            (format!("{path}?{q}"), expected)
        }
    };
    let host = authority.host();
    let lookup = format!("{host}:{port}");
    let addr = tokio::net::lookup_host(&lookup)
        .await
        .with_context(|| format!("cannot resolve {lookup:?}"))?
        .next()
        .with_context(|| format!("{lookup:?} resolves to no address"))?;
    Ok(Target {
        url: format!("http://{authority}{path_and_query}"),
        host: authority.as_str().to_string(),
        path_and_query,
        addr,
        expected_size,
    })
}

/// A finished run: every request, the time marks, and the summary.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// Every request, ordered by start time (then client, seq).
    pub records: Vec<RequestRecord>,
    /// Time marks used for the summary.
    pub options: SummaryOptions,
    /// [`summary::compute`] of `records` with `options`.
    pub summary: Summary,
    /// The extra idle connections (`DriverConfig::idle_conns`).
    pub idle: IdleStats,
}

/// Clock shared by the clients: monotonic, mapped to unix time once.
#[derive(Debug, Clone, Copy)]
struct Clock {
    base: Instant,
    base_unix_ns: u64,
}

impl Clock {
    fn new() -> Self {
        let base_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Clock {
            base: Instant::now(),
            base_unix_ns,
        }
    }
    fn unix_ns(&self, t: Instant) -> u64 {
        self.base_unix_ns + t.saturating_duration_since(self.base).as_nanos() as u64
    }
}

/// Settings every client shares.
struct Shared {
    cfg: DriverConfig,
    clock: Clock,
    /// No request starts at or after this instant.
    send_end: Option<Instant>,
    /// Requests in flight are abandoned (lost) at this instant.
    hard_end: Option<Instant>,
    /// Requests not yet claimed, when counting.
    remaining: Option<AtomicU64>,
    /// Set when the run is stopped early: requests in flight are abandoned
    /// (lost) at the instant it holds.
    stop: watch::Receiver<Option<Instant>>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.borrow().is_some()
    }
}

/// Resolves once the run is stopped early.
async fn stop_requested(mut rx: watch::Receiver<Option<Instant>>) -> Instant {
    loop {
        if let Some(h) = *rx.borrow_and_update() {
            return h;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Resolves when requests in flight must be abandoned after an early stop.
async fn stop_abandon(rx: watch::Receiver<Option<Instant>>) {
    let h = stop_requested(rx).await;
    tokio::time::sleep_until(h).await;
}

/// Run the clients to the end and compute the summary.
pub async fn run(cfg: &DriverConfig) -> anyhow::Result<RunResult> {
    run_until(cfg, std::future::pending()).await
}

/// [`run`], stopped early when `stop` resolves (e.g. on SIGTERM): no request
/// starts after that, requests in flight get `drain` more time, then are
/// recorded as lost; the measured window ends at the stop.
pub async fn run_until(
    cfg: &DriverConfig,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<RunResult> {
    if cfg.urls.is_empty() {
        bail!("no URL given");
    }
    if cfg.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if cfg.duration.is_none() && cfg.total_requests.is_none() {
        bail!("give a duration or a request count");
    }
    if cfg.timeout.is_zero() {
        bail!("the per-request timeout must be positive");
    }
    let mut targets = Vec::new();
    for u in &cfg.urls {
        targets.push(Arc::new(parse_target(u, cfg.size).await?));
    }
    let idle_conns = open_idle(&targets, cfg.idle_conns).await?;
    let clock = Clock::new();
    let send_end = cfg.duration.map(|d| clock.base + d);
    let (stop_tx, stop_rx) = watch::channel(None);
    let shared = Arc::new(Shared {
        stop: stop_rx,
        cfg: cfg.clone(),
        clock,
        send_end,
        hard_end: send_end.map(|e| e + cfg.drain),
        remaining: cfg.total_requests.map(AtomicU64::new),
    });
    let mut tasks = Vec::new();
    for c in 0..cfg.clients {
        let target = targets[c as usize % targets.len()].clone();
        let shared = shared.clone();
        tasks.push(tokio::spawn(client_loop(c, target, shared)));
    }
    let join = async {
        let mut records = Vec::new();
        for t in tasks {
            records.extend(t.await.context("a client task failed")?);
        }
        anyhow::Ok(records)
    };
    tokio::pin!(join);
    tokio::pin!(stop);
    let mut stopped_at = None;
    let mut records = tokio::select! {
        r = &mut join => r?,
        _ = &mut stop => {
            let now = Instant::now();
            stopped_at = Some(now);
            let _ = stop_tx.send(Some(now + cfg.drain));
            join.await?
        }
    };
    let finished = Instant::now();
    let run_end = [send_end, stopped_at]
        .into_iter()
        .flatten()
        .fold(finished, Instant::min);
    records.sort_by_key(|r| (r.start_unix_ns, r.client, r.seq));
    let options = SummaryOptions {
        run_start_unix_ns: clock.base_unix_ns,
        warmup_end_unix_ns: clock.unix_ns(clock.base + cfg.warmup),
        run_end_unix_ns: clock.unix_ns(run_end),
        fault_at_unix_ns: cfg.fault_at_unix_ns,
    };
    let summary = summary::compute(&records, &options);
    let idle = IdleStats {
        opened: idle_conns.len() as u64,
        open_at_end: idle_conns.iter().filter(|c| still_open(c)).count() as u64,
    };
    Ok(RunResult {
        records,
        options,
        summary,
        idle,
    })
}

/// What became of the extra idle connections of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct IdleStats {
    /// Connections opened before the clients started.
    pub opened: u64,
    /// Of those, still open (no FIN, no reset, nothing unexpected to read)
    /// when the run ended.
    pub open_at_end: u64,
}

/// How many idle connections are connecting at once.
const IDLE_CONNECT_BATCH: usize = 256;

/// Opens `n` TCP connections round-robin over `targets`, a batch at a time;
/// any failure fails the run (the experiment asked for exactly `n`).
async fn open_idle(targets: &[Arc<Target>], n: u32) -> anyhow::Result<Vec<TcpStream>> {
    let mut out = Vec::with_capacity(n as usize);
    let mut next = 0usize;
    while out.len() < n as usize {
        let batch = (n as usize - out.len()).min(IDLE_CONNECT_BATCH);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..batch {
            let addr = targets[next % targets.len()].addr;
            next += 1;
            set.spawn(async move {
                tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
                    .await
                    .map_err(|_| anyhow::anyhow!("connecting to {addr} timed out"))?
                    .with_context(|| format!("connecting to {addr}"))
            });
        }
        while let Some(r) = set.join_next().await {
            let s = r
                .context("an idle-connection task failed")?
                .with_context(|| format!("opening idle connection {} of {n}", out.len() + 1))?;
            out.push(s);
        }
    }
    Ok(out)
}

/// An idle connection is still open when reading it would block.
fn still_open(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// Write `dir/requests.csv` and `dir/summary.json` (creating `dir`).
pub fn write_outputs(dir: &Path, res: &RunResult) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if res.idle.opened > 0 {
        let p = dir.join("idle.json");
        std::fs::write(&p, serde_json::to_string_pretty(&res.idle)? + "\n")
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    summary::write_requests_csv(dir.join("requests.csv"), &res.records)?;
    summary::write_summary_json(dir.join("summary.json"), &res.summary)
}

/// The one-line summary `coral-load` prints at the end.
pub fn one_line(s: &Summary) -> String {
    let mut line = format!(
        "coral-load: {} requests, {} ok, {} errors, {} lost, {} reconnects, {} digest mismatches; \
         {:.1} req/s; p50 {:.3} ms, p99 {:.3} ms; max stall {:.1} ms",
        s.requests,
        s.ok,
        s.errors,
        s.requests_lost,
        s.reconnects,
        s.digest_mismatches,
        s.throughput_rps,
        s.p50_ms,
        s.p99_ms,
        s.max_stall_ms
    );
    if !s.errors_by_kind.is_empty() {
        let kinds: Vec<String> = s
            .errors_by_kind
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        line.push_str(&format!(" (errors: {})", kinds.join(" ")));
    }
    line
}

/// An open connection and the reply bytes read past the last reply.
struct Conn {
    stream: TcpStream,
    local_port: u16,
    buf: Vec<u8>,
}

/// A verified reply.
struct Reply {
    status: u16,
    bytes: u64,
    served_by: String,
    close: bool,
}

/// A failed exchange: what was seen before it failed.
struct Failure {
    kind: ErrorKind,
    status: u16,
    bytes: u64,
    served_by: String,
}

impl Failure {
    fn new(kind: ErrorKind) -> Self {
        Failure {
            kind,
            status: 0,
            bytes: 0,
            served_by: String::new(),
        }
    }
}

/// Map a socket error to its [`ErrorKind`].
fn classify(e: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as K;
    // Linux errno values of EHOSTUNREACH and ENETUNREACH (their io::ErrorKind
    // names are newer than the workspace's minimum Rust).
    const EHOSTUNREACH: i32 = 113;
    const ENETUNREACH: i32 = 101;
    match e.kind() {
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => ErrorKind::Reset,
        K::UnexpectedEof => ErrorKind::Eof,
        K::TimedOut => ErrorKind::Timeout,
        K::ConnectionRefused => ErrorKind::Refused,
        _ => match e.raw_os_error() {
            Some(EHOSTUNREACH) | Some(ENETUNREACH) => ErrorKind::Refused,
            _ => ErrorKind::Other,
        },
    }
}

/// Open a connection to `addr`.
async fn connect(addr: SocketAddr) -> Result<Conn, ErrorKind> {
    let stream = TcpStream::connect(addr).await.map_err(|e| classify(&e))?;
    let _ = stream.set_nodelay(true);
    let local_port = stream.local_addr().map(|a| a.port()).unwrap_or(0);
    Ok(Conn {
        stream,
        local_port,
        buf: Vec::with_capacity(8192),
    })
}

fn request_bytes(target: &Target, client: u32, seq: u64, close: bool) -> Vec<u8> {
    let mut r = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: coral-load\r\n{}: {client}-{seq}\r\n",
        target.path_and_query, target.host, REQUEST_ID_HEADER
    );
    if close {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// Write `req` (one request, or a round of pipelined ones) on `conn`.
async fn send(conn: &mut Conn, req: &[u8]) -> Result<(), Failure> {
    conn.stream
        .write_all(req)
        .await
        .map_err(|e| Failure::new(classify(&e)))
}

/// Read and verify one whole reply from `conn`.
async fn read_reply(conn: &mut Conn, expected_size: u64) -> Result<Reply, Failure> {
    // Reply head.
    let (head_len, status, content_length, digest, served_by, close) = loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_REPLY_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&conn.buf) {
            Ok(httparse::Status::Complete(n)) => {
                let status = resp.code.unwrap_or(0);
                let mut content_length: Option<Option<u64>> = None;
                let mut digest = None;
                let mut served_by = String::new();
                let mut close = resp.version == Some(0);
                for h in resp.headers.iter() {
                    let value = String::from_utf8_lossy(h.value);
                    let value = value.trim();
                    if h.name.eq_ignore_ascii_case("content-length") {
                        content_length = Some(value.parse().ok());
                    } else if h.name.eq_ignore_ascii_case(DIGEST_HEADER) {
                        digest = Some(value.to_ascii_lowercase());
                    } else if h.name.eq_ignore_ascii_case(SERVED_BY_HEADER) {
                        served_by = value.to_string();
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close = value
                            .split(',')
                            .any(|t| t.trim().eq_ignore_ascii_case("close"));
                    }
                }
                break (n, status, content_length, digest, served_by, close);
            }
            Ok(httparse::Status::Partial) if conn.buf.len() <= MAX_REPLY_HEAD => {
                let n = conn
                    .stream
                    .read_buf(&mut conn.buf)
                    .await
                    .map_err(|e| Failure::new(classify(&e)))?;
                if n == 0 {
                    return Err(Failure::new(ErrorKind::Eof));
                }
            }
            _ => return Err(Failure::new(ErrorKind::Other)),
        }
    };
    let fail = |kind, bytes| Failure {
        kind,
        status,
        bytes,
        served_by: served_by.clone(),
    };
    if status != 200 {
        return Err(fail(ErrorKind::BadStatus, 0));
    }
    let length = match content_length {
        Some(Some(l)) => l,
        Some(None) => return Err(fail(ErrorKind::BadLength, 0)),
        None => return Err(fail(ErrorKind::Other, 0)),
    };
    if length != expected_size {
        return Err(fail(ErrorKind::BadLength, 0));
    }

    // Body: hashed as it arrives, never stored.
    let mut hasher = Sha256::new();
    let have = (conn.buf.len() - head_len).min(usize::try_from(length).unwrap_or(usize::MAX));
    hasher.update(&conn.buf[head_len..head_len + have]);
    conn.buf.drain(..head_len + have);
    let mut got = have as u64;
    if got < length {
        let mut scratch = vec![0u8; 64 * 1024];
        while got < length {
            let want = (length - got).min(scratch.len() as u64) as usize;
            let n = match conn.stream.read(&mut scratch[..want]).await {
                Ok(0) => return Err(fail(ErrorKind::Eof, got)),
                Ok(n) => n,
                Err(e) => return Err(fail(classify(&e), got)),
            };
            hasher.update(&scratch[..n]);
            got += n as u64;
        }
    }
    let actual = hex::encode(hasher.finalize());
    if digest.as_deref() != Some(actual.as_str()) {
        return Err(fail(ErrorKind::DigestMismatch, got));
    }
    Ok(Reply {
        status,
        bytes: got,
        served_by,
        close,
    })
}

/// Claims up to `want` requests from the shared count (all of them when
/// the run is not counted); returns how many.
fn claim(shared: &Shared, want: u32) -> u64 {
    match &shared.remaining {
        Some(rem) => claim_from(rem, u64::from(want)),
        None => u64::from(want),
    }
}

/// Takes `min(want, remaining)` from `remaining` in one atomic step, so a
/// pipelined round is claimed whole: two clients claiming at once cannot
/// split one round between them (one request each at a time did).
fn claim_from(remaining: &AtomicU64, want: u64) -> u64 {
    remaining
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| {
            (r > 0 && want > 0).then(|| r - r.min(want))
        })
        .map_or(0, |before| before.min(want))
}

/// How a round of requests ended, besides the replies read.
enum RoundEnd {
    /// Every reply read, or a reply failed (the last one read).
    Read,
    /// Connecting or writing failed.
    Failed(Failure),
    /// The request's own timeout passed.
    Timeout,
    /// The run ended first (its drain passed): the rest are lost.
    Abandoned,
}

/// One round: the requests of `seqs` written back to back on `conn`
/// (opened first if needed), then their replies read in order until one
/// fails. Returns each reply read with the instant it completed.
async fn round(
    conn: &mut Option<Conn>,
    target: &Target,
    req: &[u8],
    n: u64,
    done: &mut Vec<(Instant, Result<Reply, Failure>)>,
) -> Result<(), Failure> {
    if conn.is_none() {
        *conn = Some(connect(target.addr).await.map_err(Failure::new)?);
    }
    let c = conn
        .as_mut()
        .ok_or_else(|| Failure::new(ErrorKind::Other))?;
    send(c, req).await?;
    for _ in 0..n {
        let r = read_reply(c, target.expected_size).await;
        let failed = r.is_err();
        done.push((Instant::now(), r));
        if failed {
            break;
        }
    }
    Ok(())
}

/// Fills `rec` from a reply read (or its failure).
fn fill(rec: &mut RequestRecord, r: Result<Reply, Failure>) {
    match r {
        Ok(reply) => {
            rec.status = reply.status;
            rec.bytes = reply.bytes;
            rec.digest_ok = true;
            rec.served_by = reply.served_by;
        }
        Err(f) => {
            rec.status = f.status;
            rec.bytes = f.bytes;
            rec.served_by = f.served_by;
            rec.error_kind = Some(f.kind);
        }
    }
}

/// One round's requests, for recording.
struct Round<'a> {
    client: u32,
    url: &'a str,
    seqs: std::ops::Range<u64>,
    start_unix_ns: u64,
    local_port: u16,
    /// The round opened its connection (the first request's row says so).
    opened: bool,
}

impl Round<'_> {
    /// Appends one row per request of the round to `out`: the replies read
    /// (`done`), then the rest as `end` says. Returns whether a reply asked
    /// to close the connection.
    fn record(
        &self,
        clock: &Clock,
        start: Instant,
        now: Instant,
        done: Vec<(Instant, Result<Reply, Failure>)>,
        end: &RoundEnd,
        out: &mut Vec<RequestRecord>,
    ) -> bool {
        let mut close = false;
        let mut failed: Option<(ErrorKind, Instant)> = None;
        let mut replies = done.into_iter();
        for q in self.seqs.clone() {
            let mut rec = RequestRecord {
                client: self.client,
                seq: q,
                url: self.url.to_string(),
                local_port: self.local_port,
                new_connection: q == self.seqs.start && self.opened,
                start_unix_ns: self.start_unix_ns,
                end_unix_ns: 0,
                latency_us: 0,
                status: 0,
                bytes: 0,
                digest_ok: false,
                served_by: String::new(),
                error_kind: None,
                lost: false,
            };
            let at = match (replies.next(), end, failed) {
                (Some((at, r)), _, _) => {
                    close |= r.as_ref().is_ok_and(|reply| reply.close);
                    fill(&mut rec, r);
                    if let Some(k) = rec.error_kind {
                        failed = Some((k, at));
                    }
                    at
                }
                // Unanswered in a round whose reply failed: that kind.
                (None, _, Some((k, at))) => {
                    rec.error_kind = Some(k);
                    at
                }
                (None, RoundEnd::Failed(f), None) => {
                    rec.status = f.status;
                    rec.bytes = f.bytes;
                    rec.served_by = f.served_by.clone();
                    rec.error_kind = Some(f.kind);
                    now
                }
                (None, RoundEnd::Timeout, None) => {
                    rec.error_kind = Some(ErrorKind::Timeout);
                    now
                }
                (None, _, None) => {
                    rec.lost = true;
                    now
                }
            };
            rec.end_unix_ns = clock.unix_ns(at);
            rec.latency_us = at.saturating_duration_since(start).as_micros() as u64;
            out.push(rec);
        }
        close
    }
}

/// One closed-loop client: returns its records. Each round writes
/// `cfg.mode.depth()` requests (one unless pipelined) and reads their replies.
async fn client_loop(client: u32, target: Arc<Target>, shared: Arc<Shared>) -> Vec<RequestRecord> {
    let cfg = &shared.cfg;
    let clock = shared.clock;
    let per_request = cfg.mode == ConnectionMode::PerRequest;
    let mut records = Vec::new();
    let mut conn: Option<Conn> = None;
    let mut backoff: Option<Duration> = None;
    let mut pending_backoff = false;
    let mut seq: u64 = 0;
    loop {
        if pending_backoff {
            pending_backoff = false;
            let wait = backoff.unwrap_or(cfg.backoff_min);
            let until = Instant::now() + wait;
            let until = match shared.send_end {
                Some(e) => until.min(e),
                None => until,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = stop_requested(shared.stop.clone()) => {}
            }
        }
        if shared.stopped() || shared.send_end.is_some_and(|e| Instant::now() >= e) {
            break;
        }
        let n = claim(&shared, cfg.mode.depth());
        if n == 0 {
            break;
        }
        let start = Instant::now();
        let timeout_at = start + cfg.timeout;
        let deadline = match shared.hard_end {
            Some(h) => timeout_at.min(h),
            None => timeout_at,
        };
        let first = seq;
        seq += n;
        let had_conn = conn.is_some();
        let req: Vec<u8> = (first..seq)
            .flat_map(|q| request_bytes(&target, client, q, per_request))
            .collect();
        let mut done = Vec::new();
        let result = tokio::select! {
            r = tokio::time::timeout_at(deadline, round(&mut conn, &target, &req, n, &mut done)) => Some(r),
            _ = stop_abandon(shared.stop.clone()) => None,
        };
        let end = match result {
            Some(Ok(Ok(()))) => RoundEnd::Read,
            Some(Ok(Err(f))) => RoundEnd::Failed(f),
            // The run's end came before the round's own timeout: lost.
            Some(Err(_)) if !matches!(shared.hard_end, Some(h) if h < timeout_at) => {
                RoundEnd::Timeout
            }
            _ => RoundEnd::Abandoned,
        };
        let now = Instant::now();
        let round = Round {
            client,
            url: &target.url,
            seqs: first..seq,
            start_unix_ns: clock.unix_ns(start),
            local_port: conn.as_ref().map_or(0, |c| c.local_port),
            opened: !had_conn && conn.is_some(),
        };
        let close = round.record(&clock, start, now, done, &end, &mut records) || per_request;
        if records.last().is_some_and(|r| r.lost) {
            break;
        }
        if records.last().is_some_and(|r| r.error_kind.is_some()) {
            conn = None;
            backoff = Some(match backoff {
                None => cfg.backoff_min,
                Some(b) => (b * 2).min(cfg.backoff_max),
            });
            pending_backoff = true;
        } else {
            backoff = None;
            if close {
                conn = None;
            }
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_is_claimed_whole() {
        let rem = AtomicU64::new(10);
        let got: Vec<u64> = (0..4).map(|_| claim_from(&rem, 4)).collect();
        assert_eq!(got, vec![4, 4, 2, 0]);
        assert_eq!(claim_from(&AtomicU64::new(3), 0), 0);
        // Clients claiming at once: 4 rounds of 4, none split.
        let rem = std::sync::Arc::new(AtomicU64::new(16));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let rem = rem.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        match claim_from(&rem, 4) {
                            0 => return mine,
                            n => mine.push(n),
                        }
                    }
                })
            })
            .collect();
        let all: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(all, vec![4; 4]);
    }

    #[tokio::test]
    async fn urls_get_size_and_port() {
        let t = parse_target("http://127.0.0.1:8080/cgi-bin/webstone", 77)
            .await
            .unwrap();
        assert_eq!(t.path_and_query, "/cgi-bin/webstone?size=77");
        assert_eq!(t.url, "http://127.0.0.1:8080/cgi-bin/webstone?size=77");
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.expected_size, 77);
        let t = parse_target("http://127.0.0.1/cgi-bin/webstone?size=5&x=1", 77)
            .await
            .unwrap();
        assert_eq!(t.addr.port(), 80);
        assert_eq!(t.expected_size, 5);
        let t = parse_target("http://127.0.0.1/cgi-bin/webstone?x=1", 77)
            .await
            .unwrap();
        assert_eq!(t.expected_size, DEFAULT_SIZE);
        for bad in [
            "https://127.0.0.1/",
            "127.0.0.1/x",
            "http://127.0.0.1/?size=z",
            "::",
        ] {
            assert!(parse_target(bad, 1).await.is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_are_classified() {
        use std::io::{Error, ErrorKind as K};
        assert_eq!(classify(&Error::from(K::ConnectionReset)), ErrorKind::Reset);
        assert_eq!(classify(&Error::from(K::BrokenPipe)), ErrorKind::Reset);
        assert_eq!(
            classify(&Error::from(K::ConnectionRefused)),
            ErrorKind::Refused
        );
        assert_eq!(classify(&Error::from_raw_os_error(113)), ErrorKind::Refused);
        assert_eq!(classify(&Error::from(K::UnexpectedEof)), ErrorKind::Eof);
        assert_eq!(classify(&Error::from(K::TimedOut)), ErrorKind::Timeout);
        assert_eq!(
            classify(&Error::from(K::PermissionDenied)),
            ErrorKind::Other
        );
    }

    #[tokio::test]
    async fn bad_configs_are_refused() {
        let mut c = DriverConfig::default();
        assert!(run(&c).await.is_err()); // no URL
        c.urls = vec!["http://127.0.0.1:1/".into()];
        c.clients = 0;
        assert!(run(&c).await.is_err());
        c.clients = 1;
        c.duration = None;
        assert!(run(&c).await.is_err());
    }
}
