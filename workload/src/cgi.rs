//! The WebStone-like CGI application: `GET /cgi-bin/webstone?size=N` answers
//! N fresh random bytes with `Content-Length`, `X-Coral-Digest` (lowercase hex
//! sha256 of the body) and `X-Coral-Served-By` (the host that generated it).
//!
//! Three layers, so the CoRAL primary can host the same application:
//! - [`handle`]: the pure request -> response function (no I/O; the caller
//!   hands in the random number generator).
//! - [`serve_connection`]: HTTP/1.1 (keep-alive, pipelining) on any hyper IO,
//!   for example a wrapper that logs every complete response before writing it.
//! - [`run_listener`]: accept loop spawning one task per connection.
//!
//! Bad input always gets a 4xx with a one-line reason, never a panic:
//! 400 (bad `size`), 404 (unknown path), 405 (not GET), 413 (size above
//! [`CgiConfig::max_size`]), 431 (request head above [`CgiConfig::max_head`];
//! answered by hyper, followed by a lingering close so the client sees it).

use crate::cgi_gateway::{self, AppMode, CgiProgram, CgiRequest};
pub use crate::webstone::{
    check_target, digest_hex, generate_body, new_rng, parse_size, rejection_response,
    system_hostname, Rejection, CGI_PATH, DEFAULT_MAX_SIZE, DEFAULT_SIZE, DIGEST_HEADER,
    REQUEST_ID_HEADER, SERVED_BY_HEADER,
};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;
use rand::RngCore;
use std::cell::RefCell;
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

/// Default cap on the request head (request line plus headers), in bytes.
pub const DEFAULT_MAX_HEAD: usize = 8192;
/// How long a closing connection keeps draining unread client bytes after
/// its last reply, so the kernel sends FIN rather than RST (which could
/// destroy a final 4xx reply before the client reads it).
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes drained during the lingering close.
const LINGER_MAX_BYTES: usize = 1 << 20;

/// Configuration of the CGI application and its HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiConfig {
    /// Value of `X-Coral-Served-By`.
    pub served_by: String,
    /// Largest `size` answered; larger ones get 413.
    pub max_size: u64,
    /// Largest request head accepted; larger ones get 431.
    pub max_head: usize,
    /// Print one line per request on stdout (`request id=... peer=...`).
    pub log_requests: bool,
    /// Where replies come from: generated in this process, or by a CGI
    /// program started per request.
    pub app: App,
}

/// How the WebStone application makes a reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum App {
    /// [`handle`], inside the server process: no process start per request.
    #[default]
    InProcess,
    /// A CGI program (`webstone-cgi`) started for every request
    /// ([`crate::cgi_gateway`]), as the paper's Apache 1.3 ran WebStone's CGI.
    Cgi(CgiProgram),
}

impl App {
    /// The mode's name.
    pub fn mode(&self) -> AppMode {
        match self {
            App::InProcess => AppMode::Inproc,
            App::Cgi(_) => AppMode::Cgi,
        }
    }

    /// The application for `mode`: for [`AppMode::Cgi`], the program at
    /// `program` (default: `webstone-cgi` beside the running executable),
    /// checked to be executable, run with at most `timeout` per request.
    pub fn from_mode(
        mode: AppMode,
        program: Option<&std::path::Path>,
        timeout: Duration,
    ) -> Result<App, String> {
        Ok(match mode {
            AppMode::Inproc => App::InProcess,
            AppMode::Cgi => App::Cgi(CgiProgram::resolve(program, timeout)?),
        })
    }
}

impl Default for CgiConfig {
    fn default() -> Self {
        CgiConfig {
            served_by: system_hostname(),
            max_size: DEFAULT_MAX_SIZE,
            max_head: DEFAULT_MAX_HEAD,
            log_requests: false,
            app: App::InProcess,
        }
    }
}

/// Validate a request: the reply size it asks for, or why it is refused.
pub fn parse_request(method: &Method, uri: &Uri, cfg: &CgiConfig) -> Result<u64, Rejection> {
    check_target(method, uri)?;
    parse_size(uri.query().unwrap_or(""), cfg.max_size)
}

/// The application: the response to one request. Pure apart from drawing the
/// body from `rng`; the whole body is generated (and digested) before return.
pub fn handle(
    method: &Method,
    uri: &Uri,
    cfg: &CgiConfig,
    rng: &mut impl RngCore,
) -> Response<Full<Bytes>> {
    match parse_request(method, uri, cfg) {
        Ok(size) => match usize::try_from(size) {
            Ok(size) => {
                let (body, digest) = generate_body(size, rng);
                let mut resp = Response::new(Full::new(body));
                let h = resp.headers_mut();
                h.insert(CONTENT_LENGTH, HeaderValue::from(size));
                h.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                if let Ok(v) = HeaderValue::from_str(&digest) {
                    h.insert(DIGEST_HEADER, v);
                }
                let served = HeaderValue::from_str(&cfg.served_by)
                    .unwrap_or_else(|_| HeaderValue::from_static("invalid-host-name"));
                h.insert(SERVED_BY_HEADER, served);
                resp
            }
            Err(_) => rejection_response(&Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("size {size} does not fit in memory"),
            )),
        },
        Err(r) => rejection_response(&r),
    }
}

/// Request header carrying the per-connection token of a synthetic request
/// that [`HeadGuard`] forwards in place of a head it refused.
const INTERNAL_REJECT_HEADER: &str = "x-coral-internal-reject";
/// Most header fields accepted in one request head (hyper's default).
const MAX_HEADERS: usize = 100;

/// The refusal a [`HeadGuard`] hands to its connection's service.
type RejectSlot = Arc<std::sync::Mutex<Option<Rejection>>>;

/// hyper service for one connection: owns that connection's generator.
struct CgiService {
    cfg: Arc<CgiConfig>,
    rng: RefCell<SmallRng>,
    peer: Option<SocketAddr>,
    reject_token: String,
    reject_slot: RejectSlot,
    /// Once set, every response carries `Connection: close` (and hyper
    /// ends the connection after it).
    ending: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl CgiService {
    /// The refusal [`HeadGuard`] stored, if `req` is its synthetic request.
    fn guard_rejection(&self, req: &Request<Incoming>) -> Option<Rejection> {
        let v = req.headers().get(INTERNAL_REJECT_HEADER)?;
        if v.as_bytes() != self.reject_token.as_bytes() {
            return None;
        }
        self.reject_slot.lock().ok()?.take()
    }
}

/// One request log line (`--log-requests`).
fn log_request(peer: Option<SocketAddr>, id: &str, method: &Method, uri: &Uri, status: StatusCode) {
    let peer = peer.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
    println!(
        "request id={id} peer={peer} method={method} uri={uri} status={}",
        status.as_u16()
    );
}

/// The reply being made: ready at once (in process, refusals), or a CGI
/// program's run. The ready case allocates nothing, so the in-process path
/// costs what it did before the CGI mode existed.
enum ReplyFuture {
    Ready(Option<Response<Full<Bytes>>>),
    Cgi(Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>),
}

impl Future for ReplyFuture {
    type Output = Result<Response<Full<Bytes>>, Infallible>;
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            ReplyFuture::Ready(r) => match r.take() {
                Some(r) => Poll::Ready(Ok(r)),
                None => Poll::Pending,
            },
            ReplyFuture::Cgi(f) => f.as_mut().poll(cx).map(Ok),
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for CgiService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ReplyFuture;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let ending = self
            .ending
            .as_ref()
            .is_some_and(|e| e.load(std::sync::atomic::Ordering::SeqCst));
        let mut resp = match (self.guard_rejection(&req), &self.cfg.app) {
            (Some(r), _) => {
                let mut resp = rejection_response(&r);
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
                resp
            }
            (None, App::InProcess) => {
                let mut rng = self.rng.borrow_mut();
                handle(req.method(), req.uri(), &self.cfg, &mut *rng)
            }
            (None, App::Cgi(prog)) => match check_target(req.method(), req.uri()) {
                Err(r) => rejection_response(&r),
                Ok(()) => {
                    return match self.call_cgi(prog, &req) {
                        ReplyFuture::Cgi(f) if ending => ReplyFuture::Cgi(Box::pin(async move {
                            let mut resp = f.await;
                            resp.headers_mut()
                                .insert(CONNECTION, HeaderValue::from_static("close"));
                            resp
                        })),
                        other => other,
                    }
                }
            },
        };
        if ending {
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if !resp.status().is_success() && req.method() != Method::GET {
            // A request we refuse may carry a body we will not read: close.
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if self.cfg.log_requests {
            log_request(
                self.peer,
                request_id(&req),
                req.method(),
                req.uri(),
                resp.status(),
            );
        }
        ReplyFuture::Ready(Some(resp))
    }
}

/// The request's [`REQUEST_ID_HEADER`], or `-`.
fn request_id(req: &Request<Incoming>) -> &str {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
}

impl CgiService {
    /// Run the CGI program for a GET of [`CGI_PATH`].
    fn call_cgi(&self, prog: &CgiProgram, req: &Request<Incoming>) -> ReplyFuture {
        let env = cgi_gateway::meta_variables(&CgiRequest {
            method: req.method(),
            uri: req.uri(),
            version: req.version(),
            headers: req.headers(),
            peer: self.peer,
            served_by: &self.cfg.served_by,
            max_size: self.cfg.max_size,
        });
        let prog = prog.clone();
        let max_size = self.cfg.max_size;
        let log = self
            .cfg
            .log_requests
            .then(|| (self.peer, request_id(req).to_string(), req.uri().clone()));
        ReplyFuture::Cgi(Box::pin(async move {
            let resp = cgi_gateway::execute(&prog, env, max_size).await;
            if let Some((peer, id, uri)) = log {
                log_request(peer, &id, &Method::GET, &uri, resp.status());
            }
            resp
        }))
    }
}

/// Where [`HeadGuard`] is in the client's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GuardState {
    /// Collecting a request head.
    Head,
    /// Passing this many body bytes through.
    Body(u64),
    /// A chunked body: framing is left to hyper from here on.
    Passthrough,
    /// A head was refused; everything after it is dropped.
    Rejected,
}

/// Reads request heads itself (httparse) before hyper sees them, so that an
/// oversized or malformed head gets a real 431/400 reply. hyper 1.12, given a
/// head above its limit or a malformed one, closes the connection without a
/// reply (checked with strace); here hyper only ever sees complete heads of
/// at most `max_head` bytes. A refused head is replaced by a synthetic
/// request carrying a per-connection token, which the service answers from
/// the shared slot (in order, after the replies to earlier pipelined
/// requests), with `Connection: close`.
struct HeadGuard<IO> {
    inner: IO,
    max_head: usize,
    state: GuardState,
    /// The head being collected (at most `max_head + 1` bytes).
    head: Vec<u8>,
    /// Bytes ready for hyper, from `out_pos` on.
    out: Vec<u8>,
    out_pos: usize,
    scratch: Vec<u8>,
    eof: bool,
    reject_token: String,
    reject_slot: RejectSlot,
}

impl<IO> HeadGuard<IO> {
    fn new(inner: IO, max_head: usize, reject_token: String, reject_slot: RejectSlot) -> Self {
        HeadGuard {
            inner,
            max_head,
            state: GuardState::Head,
            head: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            scratch: vec![0u8; 16 * 1024],
            eof: false,
            reject_token,
            reject_slot,
        }
    }

    fn reject(&mut self, r: Rejection) {
        if let Ok(mut slot) = self.reject_slot.lock() {
            *slot = Some(r);
        }
        self.head.clear();
        self.state = GuardState::Rejected;
        let synthetic = format!(
            "GET /.coral-rejected HTTP/1.1\r\nConnection: close\r\n{INTERNAL_REJECT_HEADER}: {}\r\n\r\n",
            self.reject_token
        );
        self.out.extend_from_slice(synthetic.as_bytes());
    }

    /// Feed bytes read from the client through the head checker.
    fn process(&mut self, data: &[u8]) {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                GuardState::Passthrough => {
                    self.out.extend_from_slice(&data[i..]);
                    i = data.len();
                }
                GuardState::Rejected => i = data.len(),
                GuardState::Body(rem) => {
                    let k = (data.len() - i).min(usize::try_from(rem).unwrap_or(usize::MAX));
                    self.out.extend_from_slice(&data[i..i + k]);
                    i += k;
                    let rem = rem - k as u64;
                    self.state = if rem == 0 {
                        GuardState::Head
                    } else {
                        GuardState::Body(rem)
                    };
                }
                GuardState::Head => {
                    let room = self.max_head.saturating_add(1) - self.head.len();
                    let take = (data.len() - i).min(room);
                    let before = self.head.len();
                    self.head.extend_from_slice(&data[i..i + take]);
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut req = httparse::Request::new(&mut headers);
                    match req.parse(&self.head) {
                        Ok(httparse::Status::Complete(n)) if n <= self.max_head => {
                            let body = request_body_framing(req.headers);
                            i += n.saturating_sub(before);
                            match body {
                                Ok(next) => {
                                    self.out.extend_from_slice(&self.head[..n]);
                                    self.head.clear();
                                    self.state = next;
                                }
                                Err(r) => self.reject(r),
                            }
                        }
                        Ok(httparse::Status::Complete(_)) => self.reject(too_large(self.max_head)),
                        Ok(httparse::Status::Partial) => {
                            i += take;
                            if self.head.len() > self.max_head {
                                self.reject(too_large(self.max_head));
                            }
                        }
                        Err(httparse::Error::TooManyHeaders) => self.reject(Rejection::new(
                            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                            format!("request head has more than {MAX_HEADERS} header fields"),
                        )),
                        Err(e) => self.reject(Rejection::new(
                            StatusCode::BAD_REQUEST,
                            format!("malformed request head: {e}"),
                        )),
                    }
                }
            }
        }
    }
}

fn too_large(max_head: usize) -> Rejection {
    Rejection::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        format!("request head exceeds {max_head} bytes"),
    )
}

/// What follows a request head: a Content-Length body, a chunked body, or none.
fn request_body_framing(headers: &[httparse::Header<'_>]) -> Result<GuardState, Rejection> {
    let mut len: Option<u64> = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Ok(GuardState::Passthrough);
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    Rejection::new(StatusCode::BAD_REQUEST, "invalid Content-Length header")
                })?;
            if len.is_some_and(|l| l != v) {
                return Err(Rejection::new(
                    StatusCode::BAD_REQUEST,
                    "conflicting Content-Length headers",
                ));
            }
            len = Some(v);
        }
    }
    Ok(match len {
        Some(n) if n > 0 => GuardState::Body(n),
        _ => GuardState::Head,
    })
}

impl<IO: hyper::rt::Read + Unpin> hyper::rt::Read for HeadGuard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_pos);
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof || this.state == GuardState::Rejected {
                // hyper never needs bytes past the refused head's synthetic
                // request (it asks to close); report EOF if it reads on.
                return Poll::Ready(Ok(()));
            }
            let mut scratch = std::mem::take(&mut this.scratch);
            let mut rb = hyper::rt::ReadBuf::new(&mut scratch);
            let res = Pin::new(&mut this.inner).poll_read(cx, rb.unfilled());
            let n = rb.filled().len();
            match res {
                Poll::Pending => {
                    this.scratch = scratch;
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => {
                    this.scratch = scratch;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(())) if n == 0 => {
                    this.scratch = scratch;
                    this.eof = true;
                    // Hand hyper any partial head so it sees an incomplete
                    // message before EOF, as it would without the guard.
                    let partial = std::mem::take(&mut this.head);
                    this.out.extend_from_slice(&partial);
                }
                Poll::Ready(Ok(())) => {
                    this.process(&scratch[..n]);
                    this.scratch = scratch;
                }
            }
        }
    }
}

impl<IO: hyper::rt::Write + Unpin> hyper::rt::Write for HeadGuard<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
}

/// Serve HTTP/1.1 on one connection until the client closes it or an error
/// ends it, then close with a lingering drain (write side shut, unread client
/// bytes drained for up to 2 s) so a final 4xx is not destroyed by an RST.
///
/// Keep-alive and pipelining are on; replies are flushed in request order.
/// Request heads are checked before hyper parses them (see the module doc):
/// oversized heads get 431, malformed ones 400.
pub async fn serve_connection<IO>(io: IO, cfg: Arc<CgiConfig>) -> Result<(), hyper::Error>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    serve_connection_from(io, cfg, None).await
}

/// [`serve_connection`], naming the peer in request log lines.
pub async fn serve_connection_from<IO>(
    io: IO,
    cfg: Arc<CgiConfig>,
    peer: Option<SocketAddr>,
) -> Result<(), hyper::Error>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    serve_connection_ending(io, cfg, peer, None).await
}

/// [`serve_connection_from`]; once `ending` is set, the next response
/// carries `Connection: close` and the connection ends after it (HTTP/1.1
/// lets the client send the rest on a new connection). A CoRAL node sets it
/// on the connections it served alone when a new server joins.
pub async fn serve_connection_ending<IO>(
    io: IO,
    cfg: Arc<CgiConfig>,
    peer: Option<SocketAddr>,
    ending: Option<Arc<std::sync::atomic::AtomicBool>>,
) -> Result<(), hyper::Error>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    let mut rng = new_rng();
    let reject_token = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
    let reject_slot: RejectSlot = Arc::new(std::sync::Mutex::new(None));
    let svc = CgiService {
        cfg: cfg.clone(),
        rng: RefCell::new(rng),
        peer,
        reject_token: reject_token.clone(),
        reject_slot: reject_slot.clone(),
        ending,
    };
    let guard = HeadGuard::new(io, cfg.max_head, reject_token, reject_slot);
    let mut conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .half_close(true)
        .pipeline_flush(true)
        .max_buf_size(cfg.max_head.max(8192) + 64 * 1024)
        .serve_connection(guard, svc);
    let result = poll_fn(|cx| conn.poll_without_shutdown(cx)).await;
    let mut io = conn.into_parts().io.inner;
    lingering_close(&mut io).await;
    result
}

/// Shut the write side, then read and discard what the client still sends,
/// until EOF, an error, [`LINGER`] or [`LINGER_MAX_BYTES`].
///
/// The shutdown itself is not under [`LINGER`]: a stream that holds the
/// last reply until something else allows it (a CoRAL primary waits for
/// the backup's log acknowledgement) finishes writing it first. Bounding
/// that wait dropped the socket with the reply unwritten and unread client
/// bytes queued, and the kernel reset the connection: a client whose
/// backup was stopped for two seconds lost its request.
async fn lingering_close<IO>(io: &mut IO)
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    if poll_fn(|cx| Pin::new(&mut *io).poll_shutdown(cx))
        .await
        .is_err()
    {
        return;
    }
    let drain = async {
        let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 16 * 1024];
        let mut total = 0usize;
        while total < LINGER_MAX_BYTES {
            let n = poll_fn(|cx| {
                let mut rb = hyper::rt::ReadBuf::uninit(&mut buf);
                match Pin::new(&mut *io).poll_read(cx, rb.unfilled()) {
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            match n {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Accept connections forever, serving each on its own task. Accept errors
/// (e.g. out of file descriptors) are reported on stderr and retried.
pub async fn run_listener(listener: tokio::net::TcpListener, cfg: Arc<CgiConfig>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let cfg = cfg.clone();
                tokio::spawn(async move {
                    let _ = serve_connection_from(TokioIo::new(stream), cfg, Some(peer)).await;
                });
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Run [`run_listener`] until `shutdown` resolves (e.g. SIGTERM).
pub async fn run_until<F: Future<Output = ()>>(
    listener: tokio::net::TcpListener,
    cfg: Arc<CgiConfig>,
    shutdown: F,
) {
    tokio::select! {
        _ = run_listener(listener, cfg) => {}
        _ = shutdown => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use hyper::header::ALLOW;

    fn cfg() -> CgiConfig {
        CgiConfig {
            served_by: "test-host".into(),
            max_size: 4096,
            max_head: DEFAULT_MAX_HEAD,
            log_requests: false,
            app: App::InProcess,
        }
    }

    fn get(uri: &str) -> Response<Full<Bytes>> {
        let uri: Uri = uri.parse().unwrap();
        handle(&Method::GET, &uri, &cfg(), &mut new_rng())
    }

    async fn body(r: Response<Full<Bytes>>) -> Bytes {
        r.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn ok_reply_has_digest_length_and_host() {
        let r = get("/cgi-bin/webstone?size=100");
        assert_eq!(r.status(), 200);
        let d = r.headers()[DIGEST_HEADER].to_str().unwrap().to_string();
        assert_eq!(r.headers()[SERVED_BY_HEADER], "test-host");
        assert_eq!(r.headers()[CONTENT_LENGTH], "100");
        let b = body(r).await;
        assert_eq!(b.len(), 100);
        assert_eq!(d, digest_hex(&b));
        assert_eq!(d.len(), 64);
        assert!(d
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
    }

    #[tokio::test]
    async fn replies_are_fresh_and_default_size_is_1024() {
        let a = body(get("/cgi-bin/webstone")).await;
        let b = body(get("/cgi-bin/webstone?foo=1")).await;
        assert_eq!(a.len(), 1024);
        assert_eq!(b.len(), 1024);
        assert_ne!(a, b);
        assert_eq!(body(get("/cgi-bin/webstone?size=0")).await.len(), 0);
    }

    /// Drive [`serve_connection`] over an in-memory pipe, as the CoRAL
    /// primary would over its own IO: write `chunks` one by one, read to EOF.
    async fn over_pipe(chunks: Vec<Vec<u8>>, cfg: CgiConfig) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let task = tokio::spawn(serve_connection(TokioIo::new(server), Arc::new(cfg)));
        for c in chunks {
            client.write_all(&c).await.unwrap();
            client.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
        client.shutdown().await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut out))
            .await
            .expect("server closes")
            .unwrap();
        let _ = task.await;
        out
    }

    fn statuses(out: &[u8]) -> Vec<u16> {
        let text = String::from_utf8_lossy(out);
        text.match_indices("HTTP/1.1 ")
            .map(|(i, _)| text[i + 9..i + 12].parse().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn head_guard_handles_split_heads_bodies_and_oversize() {
        // A head split byte by byte, then a GET with a body, then another GET.
        let mut chunks: Vec<Vec<u8>> = b"GET /cgi-bin/webstone?size=2 HTTP/1.1\r\nHost: x\r\n\r\n"
            .iter()
            .map(|b| vec![*b])
            .collect();
        chunks.push(
            b"GET /cgi-bin/webstone?size=3 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /cgi-bin/webstone?size=4 HTTP/1.1\r\n\r\n".to_vec(),
        );
        let out = over_pipe(chunks, cfg()).await;
        assert_eq!(statuses(&out), vec![200, 200, 200]);
        // An oversized head after a good request, split across writes.
        let c = CgiConfig {
            max_head: 100,
            ..cfg()
        };
        let big = format!(
            "GET /cgi-bin/webstone HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(200)
        );
        let out = over_pipe(
            vec![
                b"GET /cgi-bin/webstone?size=1 HTTP/1.1\r\n\r\n".to_vec(),
                big.as_bytes()[..60].to_vec(),
                big.as_bytes()[60..].to_vec(),
                b"GET /cgi-bin/webstone HTTP/1.1\r\n\r\n".to_vec(),
            ],
            c,
        )
        .await;
        assert_eq!(statuses(&out), vec![200, 431]);
        assert!(String::from_utf8_lossy(&out).ends_with("request head exceeds 100 bytes\n"));
        // A token-less copy of the internal request is just an unknown path.
        let out = over_pipe(
            vec![b"GET /.coral-rejected HTTP/1.1\r\nx-coral-internal-reject: 00\r\n\r\n".to_vec()],
            cfg(),
        )
        .await;
        assert_eq!(statuses(&out), vec![404]);
    }

    #[test]
    fn bad_inputs_get_their_4xx() {
        let c = cfg();
        let p = |m: Method, u: &str| parse_request(&m, &u.parse().unwrap(), &c);
        assert_eq!(p(Method::GET, "/x").unwrap_err().status, 404);
        assert_eq!(p(Method::POST, CGI_PATH).unwrap_err().status, 405);
        for q in [
            "size=",
            "size",
            "size=abc",
            "size=-1",
            "size=1&size=2",
            "size=1e3",
        ] {
            let e = p(Method::GET, &format!("{CGI_PATH}?{q}")).unwrap_err();
            assert_eq!(e.status, 400, "{q}");
            assert!(!e.reason.contains('\n'));
        }
        assert_eq!(
            p(Method::GET, &format!("{CGI_PATH}?size=4097"))
                .unwrap_err()
                .status,
            413
        );
        assert_eq!(
            p(
                Method::GET,
                &format!("{CGI_PATH}?size=99999999999999999999999")
            )
            .unwrap_err()
            .status,
            413
        );
        assert_eq!(p(Method::GET, &format!("{CGI_PATH}?size=4096")), Ok(4096));
        let r = rejection_response(&p(Method::PUT, CGI_PATH).unwrap_err());
        assert_eq!(r.headers()[ALLOW], "GET");
    }

    /// A stream whose shutdown is held until the gate opens, as a CoRAL
    /// primary's is until the backup acknowledges the last reply.
    struct HeldShutdown {
        inner: TokioIo<tokio::io::DuplexStream>,
        gate: Arc<std::sync::Mutex<(bool, Option<std::task::Waker>)>>,
    }

    impl hyper::rt::Read for HeldShutdown {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: hyper::rt::ReadBufCursor<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl hyper::rt::Write for HeldShutdown {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_flush(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            {
                let mut g = self.gate.lock().unwrap();
                if !g.0 {
                    g.1 = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn lingering_close_finishes_a_held_shutdown_however_long_it_takes() {
        use tokio::io::AsyncReadExt;
        let (server, mut client) = tokio::io::duplex(1024);
        let gate = Arc::new(std::sync::Mutex::new((false, None)));
        let mut io = HeldShutdown {
            inner: TokioIo::new(server),
            gate: gate.clone(),
        };
        let task = tokio::spawn(async move { lingering_close(&mut io).await });
        tokio::time::sleep(LINGER * 5).await;
        assert!(
            !task.is_finished(),
            "the close gave up on a shutdown still held (the socket would be dropped with the \
             last reply unwritten)"
        );
        let waker = {
            let mut g = gate.lock().unwrap();
            g.0 = true;
            g.1.take()
        };
        waker.expect("the shutdown waits on the gate").wake();
        // The write side is shut: the client reads EOF, then closes too.
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        drop(client);
        task.await.unwrap();
    }
}
