//! Log before write: the primary's connection wrapper (docs/DESIGN.md section 2,
//! invariant 2).
//!
//! The HTTP server writes its responses into a [`LoggedStream`] as if it were
//! the socket. The wrapper frames the bytes into complete responses
//! ([`coral_core::ResponseFramer`]), hands each complete response to a
//! [`ReplyLogger`] (in duplex: sent on the log channel to the backup) and only
//! when that resolves (the backup acknowledged it) writes it to the socket.
//! No byte of a response reaches the kernel before the whole response is
//! logged. Bytes that do not yet form a complete response wait.
//!
//! It also reads the client's requests through a
//! [`coral_core::RequestFramer`], so every logged reply carries where
//! the request it answers ends in the client byte stream (the backup drops
//! requests once their reply is logged), and so responses to HEAD requests
//! are framed without a body.
//!
//! Deliberate closes are marked: before the wrapper shuts the write side down
//! or is dropped, the socket gets the node's intentional-close `SO_MARK`, so
//! the crash fence lets that FIN out (docs/DESIGN.md section 4). A crash never
//! runs this code, and its FIN/RST stay fenced.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use coral_core::FourTuple;
use coral_core::{RequestFramer, ResponseFramer};

use crate::io::live_conns::Nudge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A future resolving when a reply is logged (or failing if it cannot be).
pub type LogFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// Where complete responses go before they may be written.
pub trait ReplyLogger: Send + Sync + 'static {
    /// Log one complete response of connection `tuple`: `bytes` start at
    /// `offset` in the server byte stream and answer the request ending at
    /// `request_end` in the client byte stream. The future resolves once the
    /// response is safely logged (duplex: the backup acknowledged it;
    /// simplex: at once).
    /// The bytes are borrowed: a logger that keeps them copies them once.
    fn log_reply(&self, tuple: FourTuple, request_end: u64, offset: u64, bytes: &[u8])
        -> LogFuture;
}

/// The most response bytes held back while waiting to be logged; a larger
/// response fails the connection rather than growing without bound.
pub const MAX_PENDING: usize = 64 << 20;

/// A socket whose responses are logged before they are written.
pub struct LoggedStream<S> {
    inner: S,
    /// `inner`'s descriptor, kept for marking in `Drop` (it is still open there).
    fd: RawFd,
    tuple: FourTuple,
    logger: Arc<dyn ReplyLogger>,
    close_mark: u32,
    requests: RequestFramer,
    /// Ends of requests not yet matched to a final response.
    request_ends: VecDeque<u64>,
    responses: ResponseFramer,
    /// Response bytes not yet written; `pending[0]` is at stream offset `base`.
    pending: Vec<u8>,
    base: u64,
    /// Complete responses not yet handed to the logger: (start, end, request_end).
    to_log: VecDeque<(u64, u64, u64)>,
    /// Logging in flight, in stream order: (end offset, future).
    inflight: VecDeque<(u64, LogFuture)>,
    /// Everything before this offset is logged and may be written.
    logged_end: u64,
    /// Everything before this offset has been written to the socket.
    written: u64,
    failed: Option<io::ErrorKind>,
    /// Set from outside to make this stream elicit an ACK on its next poll.
    nudge: Option<Arc<Nudge>>,
}

impl<S: AsRawFd> LoggedStream<S> {
    /// Wrap `inner`, the accepted socket of connection `tuple`.
    /// `close_mark` is the node's intentional-close mark (0 = do not mark).
    pub fn new(inner: S, tuple: FourTuple, logger: Arc<dyn ReplyLogger>, close_mark: u32) -> Self {
        LoggedStream {
            fd: inner.as_raw_fd(),
            inner,
            tuple,
            logger,
            close_mark,
            requests: RequestFramer::new(),
            request_ends: VecDeque::new(),
            responses: ResponseFramer::new(),
            pending: Vec::new(),
            base: 0,
            to_log: VecDeque::new(),
            inflight: VecDeque::new(),
            logged_end: 0,
            written: 0,
            failed: None,
            nudge: None,
        }
    }

    /// Check `nudge` on every poll and, when it was requested, elicit an
    /// ACK from the client ([`crate::io::live_conns`]). Done here, in the
    /// connection's own task, so no write can meet the socket in repair mode.
    pub fn with_nudge(mut self, nudge: Arc<Nudge>) -> Self {
        self.nudge = Some(nudge);
        self
    }

    fn check_nudge(&self, cx: &Context<'_>) {
        if let Some(n) = &self.nudge {
            if n.take(cx) {
                if let Err(e) = crate::io::live_conns::elicit_ack(self.fd) {
                    tracing::warn!(tuple = %self.tuple, "eliciting an ACK: {e}");
                }
            }
        }
    }

    /// The wrapped socket.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Bytes of the server stream written to the socket so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Frame newly written bytes (already appended to `pending`).
    fn frame(&mut self, data: &[u8]) -> io::Result<()> {
        let frames = self.responses.push(data).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("response framing: {e}"))
        })?;
        for f in frames {
            if !f.is_final {
                // A 1xx interim response is logged on its own but answers no request.
                let at = self
                    .request_ends
                    .front()
                    .copied()
                    .unwrap_or_else(|| self.requests.offset());
                self.to_log.push_back((f.start, f.end, at));
                continue;
            }
            let request_end = self
                .request_ends
                .pop_front()
                .unwrap_or_else(|| self.requests.offset());
            self.to_log.push_back((f.start, f.end, request_end));
        }
        Ok(())
    }
}

fn set_mark(fd: RawFd, mark: u32) {
    // Best effort: a socket that cannot be marked loses only its FIN.
    let _ = crate::io::sockopt::set(fd, libc::SOL_SOCKET, libc::SO_MARK, &mark, "SO_MARK");
}

impl<S: AsyncWrite + AsRawFd + Unpin> LoggedStream<S> {
    /// Make progress: start logging complete responses, collect finished
    /// logs, write logged bytes. Ready(Ok) once nothing that can be written
    /// is left unwritten; Pending while waiting for a log ack or the socket.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(kind) = self.failed {
            return Poll::Ready(Err(io::Error::new(kind, "reply could not be logged")));
        }
        while let Some((start, end, request_end)) = self.to_log.pop_front() {
            let a = (start - self.base) as usize;
            let b = (end - self.base) as usize;
            let fut = self
                .logger
                .log_reply(self.tuple, request_end, start, &self.pending[a..b]);
            self.inflight.push_back((end, fut));
        }
        while let Some((end, fut)) = self.inflight.front_mut() {
            match fut.as_mut().poll(cx) {
                Poll::Ready(Ok(())) => {
                    self.logged_end = *end;
                    self.inflight.pop_front();
                }
                Poll::Ready(Err(e)) => {
                    self.failed = Some(e.kind());
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => break,
            }
        }
        while self.written < self.logged_end {
            let a = (self.written - self.base) as usize;
            let b = (self.logged_end - self.base) as usize;
            match Pin::new(&mut self.inner).poll_write(cx, &self.pending[a..b]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.written += n as u64,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Forget what is written.
        let done = (self.written - self.base) as usize;
        if done > 0 {
            self.pending.drain(..done);
            self.base = self.written;
        }
        if self.inflight.is_empty() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}

impl<S: AsyncRead + AsRawFd + Unpin> AsyncRead for LoggedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        this.check_nudge(cx);
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if !new.is_empty() && this.requests.error().is_none() {
                    // A malformed request is the HTTP server's to answer; the
                    // framer just stops mapping request ends after it.
                    if let Ok(frames) = this.requests.push(new) {
                        for f in frames {
                            this.request_ends.push_back(f.end);
                            this.responses.expect_request(f.is_head);
                        }
                    }
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + AsRawFd + Unpin> AsyncWrite for LoggedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.check_nudge(cx);
        if this.pending.len() + data.len() > MAX_PENDING {
            // Let logged bytes drain first; fail only if nothing can.
            match this.drive(cx) {
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) if this.pending.len() + data.len() > MAX_PENDING => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        format!("a response larger than {MAX_PENDING} bytes cannot be logged"),
                    )))
                }
                Poll::Ready(Ok(())) => {}
            }
        }
        this.pending.extend_from_slice(data);
        this.frame(data)?;
        // Start logging at once; the result is collected on flush.
        if let Poll::Ready(Err(e)) = this.drive(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.check_nudge(cx);
        match this.drive(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // A response delimited by the close itself is complete now.
        if let Some(f) = this.responses.end_of_stream() {
            let request_end = this
                .request_ends
                .pop_front()
                .unwrap_or_else(|| this.requests.offset());
            this.to_log.push_back((f.start, f.end, request_end));
        }
        match this.drive(cx) {
            Poll::Ready(Ok(())) => {
                this.mark_for_close();
                Pin::new(&mut this.inner).poll_shutdown(cx)
            }
            other => other,
        }
    }
}

impl<S> LoggedStream<S> {
    fn mark_for_close(&self) {
        if self.close_mark != 0 {
            set_mark(self.fd, self.close_mark);
        }
    }
}

impl<S> Drop for LoggedStream<S> {
    fn drop(&mut self) {
        // The close that follows is deliberate: let its FIN through the
        // fence. (A process that crashes never gets here.) `inner` is
        // dropped after this body, so `fd` is still open.
        self.mark_for_close();
    }
}
