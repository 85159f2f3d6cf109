//! One shadowed connection: shadow TCP state + reassembly of the client
//! stream + HTTP request framing + request/reply log, and the takeover
//! query that turns it into what `TCP_REPAIR` needs (docs/DESIGN.md §5 step 2).
//!
//! Feed it the client's segments in capture order ([`Conn::on_segment`]),
//! the primary's `ConnOpen` report ([`Conn::on_conn_open`]) and logged
//! replies ([`Conn::log_reply`]); ask [`Conn::takeover`] at failover.
//!
//! **Bound policy.** The reassembly buffer holds at most
//! [`ConnConfig::max_stream_bytes`]. A segment that does not fit is not
//! recorded. If some complete request is waiting for its reply, room will
//! come when it is answered, so the segment is dropped (not forwarded: the
//! client retransmits it). Otherwise waiting cannot help (one request larger
//! than the bound), so the connection becomes *unprotected*: the front stops
//! recording it and forwards its frames untouched, and the takeover query
//! reports it as not restorable. A framing error (not HTTP/1.1) or a broken
//! reply log does the same.

use crate::http::{HttpError, HttpLimits, RequestFramer};
use crate::reassembly::{Insert, Reassembler};
use crate::replylog::{LogOutcome, ReplyLog, ReplyLogError, RequestRecord};
use crate::seq::SeqNum;
use crate::shadow::{LocalTcpDefaults, ShadowTcp};
use crate::types::{FourTuple, Instant, NegotiatedOptions};
use crate::wire::{build_ipv4_tcp_packet, TcpFlags, TcpOptions, TcpRepr, TcpSegment};

/// Limits and fallbacks for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnConfig {
    /// Bound on client stream bytes held (unanswered plus out-of-order).
    pub max_stream_bytes: usize,
    /// Bound on reply bytes held (logged, not yet acknowledged).
    pub max_log_bytes: usize,
    /// HTTP head limits.
    pub http: HttpLimits,
    /// Options to assume for the server side without a `ConnOpen` report.
    pub local: LocalTcpDefaults,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            max_stream_bytes: 4 << 20,
            max_log_bytes: 64 << 20,
            http: HttpLimits::default(),
            local: LocalTcpDefaults::default(),
        }
    }
}

/// Why a connection is no longer recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unprotected {
    /// A single request outgrew the reassembly bound.
    #[error("request larger than the reassembly bound")]
    StreamOverflow,
    /// The client stream is not HTTP/1.1.
    #[error("client stream: {0}")]
    RequestFraming(HttpError),
    /// The reply log was refused.
    #[error("reply log: {0}")]
    ReplyLog(ReplyLogError),
}

/// What to do with the frame just recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it to the primary.
    Forward,
    /// Drop it (do not forward); the reason says why.
    Drop(DropReason),
}

/// Why a frame must not be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its data could not be recorded (reassembly bound); the client will
    /// retransmit.
    BufferFull,
    /// A SYN for a new connection while the table is full.
    TableFull,
}

/// A notable change caused by a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnEvent {
    /// A new connection was created from a SYN.
    Opened,
    /// The handshake completed (server ISN learned): now restorable.
    Established,
    /// The connection stopped being recorded.
    Unprotected(Unprotected),
    /// The connection ended (RST, or both FINs acknowledged).
    Closed,
    /// The segment belongs to no tracked connection (forwarded untouched).
    Untracked,
}

/// Result of feeding one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentOutcome {
    /// Forward or drop.
    pub verdict: Verdict,
    /// What changed, if anything notable.
    pub event: Option<ConnEvent>,
}

impl SegmentOutcome {
    fn forward(event: Option<ConnEvent>) -> Self {
        SegmentOutcome {
            verdict: Verdict::Forward,
            event,
        }
    }
}

/// Options for `TCP_REPAIR_OPTIONS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairOptions {
    /// `TCPOPT_MAXSEG`: the client's MSS.
    pub mss: u16,
    /// Client window scale (`snd_wscale`), `None` if scaling is off.
    pub snd_wscale: Option<u8>,
    /// Server window scale (`rcv_wscale`), `None` if scaling is off.
    pub rcv_wscale: Option<u8>,
    /// `TCPOPT_SACK_PERM`.
    pub sack: bool,
    /// `TCPOPT_TIMESTAMP`.
    pub timestamps: bool,
}

impl RepairOptions {
    /// `TCPOPT_MAXSEG`.
    pub const OPT_MAXSEG: u32 = 2;
    /// `TCPOPT_WINDOW`.
    pub const OPT_WINDOW: u32 = 3;
    /// `TCPOPT_SACK_PERM`.
    pub const OPT_SACK_PERM: u32 = 4;
    /// `TCPOPT_TIMESTAMP`.
    pub const OPT_TIMESTAMP: u32 = 8;

    /// The `TCPOPT_WINDOW` value, `snd_wscale | rcv_wscale << 16`, when
    /// both sides scale.
    pub fn window_value(&self) -> Option<u32> {
        match (self.snd_wscale, self.rcv_wscale) {
            (Some(s), Some(r)) => Some(u32::from(s) | u32::from(r) << 16),
            _ => None,
        }
    }

    /// The `(opt_code, opt_val)` pairs of `struct tcp_repair_opt` to pass
    /// to `TCP_REPAIR_OPTIONS`, in order.
    pub fn repair_opts(&self) -> Vec<(u32, u32)> {
        let mut v = vec![(Self::OPT_MAXSEG, u32::from(self.mss))];
        if let Some(w) = self.window_value() {
            v.push((Self::OPT_WINDOW, w));
        }
        if self.sack {
            v.push((Self::OPT_SACK_PERM, 0));
        }
        if self.timestamps {
            v.push((Self::OPT_TIMESTAMP, 0));
        }
        v
    }
}

/// Values for `TCP_REPAIR_WINDOW` (`struct tcp_repair_window`). They satisfy
/// the kernel's checks: `max_window >= snd_wnd`, `snd_wl1` not after
/// `rcv_nxt + rcv_wnd`, `rcv_wup` not after `rcv_nxt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairWindow {
    /// Sequence number of the client segment that last updated the window
    /// (clamped to at most `rcv_nxt`).
    pub snd_wl1: u32,
    /// Client window << client window scale.
    pub snd_wnd: u32,
    /// Largest such window seen (>= `snd_wnd`).
    pub max_window: u32,
    /// Receive window: at least the span of client data seen beyond
    /// `rcv_nxt`, at least 65535 << server window scale.
    pub rcv_wnd: u32,
    /// Receive point: `rcv_nxt` (end of the receive queue).
    pub rcv_wup: u32,
}

/// Knobs of the takeover query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TakeoverParams {
    /// Added to the TCP timestamp estimate (milliseconds) so it is surely
    /// not behind the last TSval the client saw.
    pub ts_margin_ms: u32,
}

impl Default for TakeoverParams {
    fn default() -> Self {
        TakeoverParams { ts_margin_ms: 100 }
    }
}

/// Everything needed to rebuild one connection with `TCP_REPAIR`
/// (docs/DESIGN.md §5 step 2). All sequence numbers are client/server sequence
/// numbers as on the wire; pass them to the kernel as unsigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakeoverState {
    /// The connection.
    pub tuple: FourTuple,
    /// `TCP_QUEUE_SEQ` of `TCP_SEND_QUEUE`: the client's cumulative ACK
    /// (server `snd_una`). The send queue starts empty.
    pub send_queue_seq: SeqNum,
    /// `TCP_QUEUE_SEQ` of `TCP_RECV_QUEUE`: start (client sequence) of the
    /// first request without a complete logged reply.
    pub recv_queue_seq: SeqNum,
    /// Bytes to put in the receive queue (in repair mode): the unanswered
    /// requests, from `recv_queue_seq` to the end of contiguous client data.
    pub recv_queue: Vec<u8>,
    /// `recv_queue_seq + recv_queue.len()`: the rebuilt socket's `rcv_nxt`.
    pub rcv_nxt: SeqNum,
    /// Logged reply bytes from `send_queue_seq` to the end of the log: write
    /// them as ordinary data after `TCP_REPAIR` is switched off.
    pub unacked_replies: Vec<u8>,
    /// For `TCP_REPAIR_OPTIONS`.
    pub options: RepairOptions,
    /// True if the server options came from the primary's `ConnOpen`,
    /// false if from the local fallback.
    pub options_from_primary: bool,
    /// For `TCP_TIMESTAMP` (when timestamps are on and the client echoed a
    /// TSval): last TSecr + time since it was seen + margin, bit 0 clear
    /// for millisecond timestamps, set for microsecond ones.
    pub timestamp: Option<u32>,
    /// For `TCP_REPAIR_WINDOW`.
    pub window: RepairWindow,
    /// The client's FIN sits right at `rcv_nxt`: the shell must re-inject
    /// it (the repair queue cannot carry a FIN).
    pub client_fin: bool,
    /// Complete requests in `recv_queue`.
    pub pending_requests: usize,
    /// Client data received beyond a hole (after `rcv_nxt`), as
    /// (sequence number, bytes) runs. The repair queue cannot hold it; the
    /// shell may re-inject it like late segments (step 4), or leave it to
    /// the client's retransmission.
    pub out_of_order: Vec<(SeqNum, Vec<u8>)>,
    /// What the rebuilt socket must still receive from the client beyond
    /// its receive queue, as bare IPv4 packets from the client (fresh
    /// checksums, the client's last window and timestamps, acknowledging
    /// `send_queue_seq`): one per `out_of_order` run, and the client's FIN
    /// at its sequence number if it is at or after `rcv_nxt`. The shell
    /// injects them once the socket is out of repair mode; the socket then
    /// holds the data beyond the hole (and SACKs it, so the client
    /// retransmits the hole at once) and sees the FIN.
    pub carry_over: Vec<Vec<u8>>,
}

/// Why a connection cannot be rebuilt now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotRestorable {
    /// The server ISN is not known yet (no client ACK after the SYN): it
    /// becomes restorable when the client's ACK arrives.
    #[error("handshake not complete (server ISN unknown)")]
    HandshakeIncomplete,
    /// The connection ended.
    #[error("connection closed")]
    Closed,
    /// The connection stopped being recorded.
    #[error("not recorded: {0}")]
    Unprotected(Unprotected),
    /// The client acknowledged the server's FIN: the server closed it.
    #[error("server already closed the connection")]
    ServerClosed,
    /// The client acknowledged bytes that were never logged (a violation of
    /// log-before-write).
    #[error("client acked server offset {acked} beyond logged {logged}")]
    AckBeyondLog {
        /// Acked server stream offset.
        acked: u64,
        /// Logged server stream offset.
        logged: u64,
    },
    /// A final reply was logged for a request not yet completely received:
    /// the receive point is unknown until the rest of it arrives.
    #[error("reply logged before its request was complete")]
    ReplyAheadOfRequest,
    /// Internal bookkeeping disagrees with itself (a bug; never expected).
    #[error("inconsistent shadow state: {0}")]
    Inconsistent(&'static str),
}

/// One shadowed connection (see the module docs).
#[derive(Debug, Clone)]
pub struct Conn {
    tuple: FourTuple,
    cfg: ConnConfig,
    shadow: ShadowTcp,
    reasm: Reassembler,
    framer: RequestFramer,
    log: ReplyLog,
    unprotected: Option<Unprotected>,
    closed: bool,
}

impl Conn {
    /// Start a connection from the client's SYN (`seg.flags.syn()`; data in
    /// the SYN is recorded too).
    pub fn from_syn(seg: &TcpSegment<'_>, now: Instant, cfg: ConnConfig) -> Conn {
        let mut c = Conn {
            tuple: seg.client_tuple(),
            cfg,
            shadow: ShadowTcp::from_syn(seg, now),
            reasm: Reassembler::new(seg.seq, cfg.max_stream_bytes),
            framer: RequestFramer::with_limits(cfg.http),
            log: ReplyLog::new(cfg.max_log_bytes),
            unprotected: None,
            closed: false,
        };
        if !seg.payload.is_empty() {
            let _ = c.record(seg.seq.plus(1), seg.payload);
        }
        c
    }

    /// Feed one client segment of this connection (in capture order).
    pub fn on_segment(&mut self, seg: &TcpSegment<'_>, now: Instant) -> SegmentOutcome {
        if self.closed || self.unprotected.is_some() {
            return SegmentOutcome::forward(None);
        }
        if seg.flags.rst() {
            if self.rst_acceptable(seg.seq) {
                self.shadow.note_rst();
                self.closed = true;
                return SegmentOutcome::forward(Some(ConnEvent::Closed));
            }
            return SegmentOutcome::forward(None);
        }
        if seg.flags.syn() {
            // Retransmitted SYN (same ISN) or a SYN the table let through.
            return SegmentOutcome::forward(None);
        }
        let was = self.shadow.established();
        let up = self.shadow.on_segment(seg, now);
        let mut event = (!was && up.established).then_some(ConnEvent::Established);
        if up.ack_advanced || up.established {
            self.log.ack(self.shadow.acked_offset());
        }
        if !seg.payload.is_empty() {
            match self.record(seg.seq, seg.payload) {
                Ok(true) => {}
                Ok(false) => {
                    return SegmentOutcome {
                        verdict: Verdict::Drop(DropReason::BufferFull),
                        event,
                    }
                }
                Err(u) => return SegmentOutcome::forward(Some(ConnEvent::Unprotected(u))),
            }
        }
        if self.both_fins_done() {
            self.closed = true;
            event = Some(ConnEvent::Closed);
        }
        SegmentOutcome::forward(event)
    }

    /// Record client data. Ok(true): recorded (or duplicate); Ok(false):
    /// refused, drop the frame; Err: the connection became unprotected.
    fn record(&mut self, seq: SeqNum, data: &[u8]) -> Result<bool, Unprotected> {
        match self.reasm.insert(seq, data) {
            Insert::Duplicate => Ok(true),
            Insert::Full => {
                if !self.log.pending_requests().is_empty() {
                    Ok(false)
                } else {
                    Err(self.give_up(Unprotected::StreamOverflow))
                }
            }
            Insert::Recorded { newly_contiguous } => {
                if newly_contiguous > 0 {
                    let end = self.reasm.end();
                    let fresh = self
                        .reasm
                        .range(end - newly_contiguous, end)
                        .expect("new bytes are held");
                    match self.framer.push(&fresh) {
                        Ok(reqs) => {
                            for r in reqs {
                                self.log.push_request(RequestRecord {
                                    start: r.start,
                                    end: r.end,
                                    is_head: r.is_head,
                                });
                            }
                        }
                        Err(e) => return Err(self.give_up(Unprotected::RequestFraming(e))),
                    }
                    self.release_answered();
                }
                Ok(true)
            }
        }
    }

    fn give_up(&mut self, why: Unprotected) -> Unprotected {
        self.unprotected = Some(why.clone());
        // Free the memory: nothing of this connection is restorable now.
        self.reasm = Reassembler::new(self.reasm.isn(), 0);
        self.log = ReplyLog::new(0);
        why
    }

    fn release_answered(&mut self) {
        self.reasm.release(self.log.answered_upto());
    }

    fn rst_acceptable(&self, seq: SeqNum) -> bool {
        // Accept a RST at or after rcv_nxt - 1 and within 2^30 of it (the
        // front does not know the server's exact window).
        let nxt = self.reasm.seq_at(self.reasm.end());
        let d = seq.distance_from(nxt);
        (-1..(1 << 30)).contains(&d)
    }

    fn both_fins_done(&self) -> bool {
        let client_fin_in = self
            .shadow
            .client_fin()
            .is_some_and(|f| self.reasm.offset_of(f) == Some(self.reasm.end()));
        client_fin_in && self.shadow.acked_offset() == self.log.log_end() + 1
    }

    /// The primary reported the server side's negotiated options.
    pub fn on_conn_open(&mut self, opts: NegotiatedOptions) {
        self.shadow.set_server_options(opts);
    }

    /// Log one complete reply that starts at server stream offset `start`
    /// (0 = server ISN + 1). See `replylog` for the contract. An error
    /// other than [`ReplyLogError::Full`] makes the connection unprotected.
    pub fn log_reply(&mut self, start: u64, bytes: &[u8]) -> Result<LogOutcome, ReplyLogError> {
        if let Some(u) = &self.unprotected {
            return Err(match u {
                Unprotected::ReplyLog(e) => e.clone(),
                _ => ReplyLogError::NotRecorded,
            });
        }
        match self.log.log_reply(start, bytes) {
            Ok(o) => {
                self.release_answered();
                Ok(o)
            }
            Err(e @ ReplyLogError::Full { .. }) => Err(e),
            Err(e) => {
                self.give_up(Unprotected::ReplyLog(e.clone()));
                Err(e)
            }
        }
    }

    /// **The takeover query**: everything needed to rebuild this connection
    /// with `TCP_REPAIR` at `now`, or why it cannot be rebuilt now.
    pub fn takeover(
        &self,
        now: Instant,
        params: &TakeoverParams,
    ) -> Result<TakeoverState, NotRestorable> {
        if self.closed {
            return Err(NotRestorable::Closed);
        }
        if let Some(u) = &self.unprotected {
            return Err(NotRestorable::Unprotected(u.clone()));
        }
        let snd_una = self
            .shadow
            .snd_una()
            .ok_or(NotRestorable::HandshakeIncomplete)?;
        let acked = self.shadow.acked_offset();
        let logged = self.log.log_end();
        if acked == logged + 1 {
            return Err(NotRestorable::ServerClosed);
        }
        if acked > logged {
            return Err(NotRestorable::AckBeyondLog { acked, logged });
        }
        if self.log.answers_ahead() > 0 {
            return Err(NotRestorable::ReplyAheadOfRequest);
        }
        let unacked_replies = self
            .log
            .bytes_from(acked)
            .ok_or(NotRestorable::Inconsistent(
                "acknowledged reply bytes missing",
            ))?;
        let recv_off = self.log.answered_upto();
        let recv_queue =
            self.reasm
                .contiguous_from(recv_off)
                .ok_or(NotRestorable::Inconsistent(
                    "unanswered request bytes missing",
                ))?;
        let recv_queue_seq = self.reasm.seq_at(recv_off);
        let rcv_nxt = self.reasm.seq_at(self.reasm.end());

        let (srv, from_primary) = self.shadow.server_options(&self.cfg.local);
        let scaling = srv.snd_wscale.is_some() && srv.rcv_wscale.is_some();
        let options = RepairOptions {
            mss: srv.mss,
            snd_wscale: if scaling { srv.snd_wscale } else { None },
            rcv_wscale: if scaling { srv.rcv_wscale } else { None },
            sack: srv.sack,
            timestamps: srv.timestamps,
        };
        let timestamp = self.repair_timestamp(now, params, &srv);
        let window = self.repair_window(&options, rcv_nxt);
        let client_fin = self.shadow.client_fin() == Some(rcv_nxt);
        let out_of_order: Vec<(SeqNum, Vec<u8>)> = self
            .reasm
            .out_of_order_runs()
            .map(|(off, b)| (self.reasm.seq_at(off), b.to_vec()))
            .collect();
        let carry_over = self.carry_over(&out_of_order, rcv_nxt, snd_una, srv.timestamps);
        Ok(TakeoverState {
            tuple: self.tuple,
            send_queue_seq: snd_una,
            recv_queue_seq,
            recv_queue,
            rcv_nxt,
            unacked_replies,
            options,
            options_from_primary: from_primary,
            timestamp,
            window,
            client_fin,
            pending_requests: self.log.pending_requests().len(),
            out_of_order,
            carry_over,
        })
    }

    /// [`TakeoverState::timestamp`]: the timestamp clock a rebuilt socket
    /// starts from (the client's last echo of the primary's clock, advanced
    /// by the time since it was seen plus the margin), if timestamps are on.
    fn repair_timestamp(
        &self,
        now: Instant,
        params: &TakeoverParams,
        srv: &NegotiatedOptions,
    ) -> Option<u32> {
        if !srv.timestamps {
            return None;
        }
        self.shadow.last_tsecr().map(|(ecr, seen)| {
            if srv.usec_ts {
                let us = now.since_ns(seen) / 1000 + u64::from(params.ts_margin_ms) * 1000;
                ecr.wrapping_add(us as u32) | 1
            } else {
                let ms = now.since_ms(seen) + u64::from(params.ts_margin_ms);
                ecr.wrapping_add(ms as u32) & !1
            }
        })
    }

    /// [`TakeoverState::window`]: both windows as the shadow saw them,
    /// capped to what `TCP_REPAIR_WINDOW` takes; the receive window covers
    /// whatever the client already sent beyond `rcv_nxt`.
    fn repair_window(&self, options: &RepairOptions, rcv_nxt: SeqNum) -> RepairWindow {
        let cap = u64::from(u32::MAX >> 1);
        let snd_wnd = self.shadow.window_scaled().min(cap) as u32;
        let max_window = (self.shadow.max_window_scaled().min(cap) as u32).max(snd_wnd);
        let ahead = self.reasm.highest_received() - self.reasm.end();
        let base = 65535u64 << options.rcv_wscale.unwrap_or(0);
        let rcv_wnd = ahead.min(65535 << 14).max(base).min(cap) as u32;
        RepairWindow {
            snd_wl1: self.shadow.snd_wl1().min_seq(rcv_nxt).0,
            snd_wnd,
            max_window,
            rcv_wnd,
            rcv_wup: rcv_nxt.0,
        }
    }

    /// [`TakeoverState::carry_over`]: the client's out-of-order runs and
    /// its FIN (if at or after `rcv_nxt`) as IPv4 packets from the client.
    fn carry_over(
        &self,
        runs: &[(SeqNum, Vec<u8>)],
        rcv_nxt: SeqNum,
        ack: SeqNum,
        timestamps: bool,
    ) -> Vec<Vec<u8>> {
        let t = self.tuple;
        let mut options = TcpOptions::default();
        if timestamps {
            let val = self.shadow.last_tsval().map_or(0, |(v, _)| v);
            let ecr = self.shadow.last_tsecr().map_or(0, |(e, _)| e);
            options.timestamps = Some((val, ecr));
        }
        let segment = |seq: SeqNum, flags: u8, data: &[u8]| {
            let repr = TcpRepr {
                src_port: t.client_port,
                dst_port: t.server_port,
                seq,
                ack,
                flags: TcpFlags(flags),
                window: self.shadow.window_raw(),
                options,
            };
            build_ipv4_tcp_packet(t.client_ip, t.server_ip, 64, 0, &repr, data).ok()
        };
        let mut out: Vec<Vec<u8>> = runs
            .iter()
            .filter_map(|(seq, data)| segment(*seq, TcpFlags::ACK | TcpFlags::PSH, data))
            .collect();
        if let Some(fin) = self.shadow.client_fin() {
            if !fin.before(rcv_nxt) {
                out.extend(segment(fin, TcpFlags::ACK | TcpFlags::FIN, &[]));
            }
        }
        out
    }

    /// The connection's 4-tuple.
    pub fn tuple(&self) -> FourTuple {
        self.tuple
    }
    /// The shadow TCP state.
    pub fn shadow(&self) -> &ShadowTcp {
        &self.shadow
    }
    /// The client stream reassembler.
    pub fn reassembler(&self) -> &Reassembler {
        &self.reasm
    }
    /// The request/reply log.
    pub fn reply_log(&self) -> &ReplyLog {
        &self.log
    }
    /// Handshake complete (server ISN known).
    pub fn is_established(&self) -> bool {
        self.shadow.established()
    }
    /// Ended by RST or by both FINs.
    pub fn is_closed(&self) -> bool {
        self.closed
    }
    /// Why the connection is no longer recorded, if it is not.
    pub fn unprotected(&self) -> Option<&Unprotected> {
        self.unprotected.as_ref()
    }
    /// Client's `rcv_nxt` as the front sees it (end of contiguous data).
    pub fn rcv_nxt(&self) -> SeqNum {
        self.reasm.seq_at(self.reasm.end())
    }
}
