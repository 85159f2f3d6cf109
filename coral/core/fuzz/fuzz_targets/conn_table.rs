//! Shadow-state updates from arbitrary segment sequences: crafted client
//! segments (any order, overlap, retransmission, ACK, window, options, FIN,
//! RST, SYN of a new incarnation), reply-log entries and `ConnOpen` reports
//! into a small `ConnTable`, with invariants checked after every step:
//!
//! - no panic, and the takeover query never reports `Inconsistent`;
//! - memory stays within the configured bounds (client stream bytes per
//!   connection, reply log bytes, number of connections);
//! - the reassembled client stream is exactly what was fed: every byte held
//!   (contiguous or out of order) equals the true stream at its offset, and
//!   a restorable connection's receive queue is the true stream from the
//!   first unanswered request to `rcv_nxt`.
//!
//! Input format (so seeds can be written by hand): 9 header bytes, then
//! 8-byte operations.
//!
//! - header: client ISN (u32 BE), server ISN (u32 BE), stream shape byte;
//! - operation: `kind conn a b c d e f` (see [`Op`]); `conn % 3` picks the
//!   connection (three client ports, but the table holds only two).
//!
//! Segments carrying the true stream are consistent retransmissions, as a
//! real client sends; an operation may also send arbitrary bytes ("junk"),
//! after which that connection's content is no longer compared (first
//! received bytes win, so the model would have to replay that rule) but all
//! other invariants still hold.
#![no_main]
use coral_core::wire::{
    build_tcp_frame, EthernetAddress, SackBlock, TcpFlags, TcpOptions, TcpSegment,
};
use coral_core::{
    ConnConfig, ConnEvent, ConnTable, FourTuple, FrameOutcome, Instant, NegotiatedOptions,
    NotRestorable, SeqNum, TableConfig, TakeoverParams,
};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const PORTS: [u16; 3] = [40000, 40001, 40002];
const MAX_STREAM: usize = 3000;
const MAX_LOG: usize = 6000;
const MAX_CONNS: usize = 2;

/// The client's true byte stream: HTTP/1.1 requests (GET, HEAD, POST with a
/// body, some larger than the reassembly bound) chosen by `shape`.
fn true_stream(shape: u8) -> Vec<u8> {
    let mut s = Vec::new();
    let mut x = u32::from(shape) | 0x100;
    for i in 0..24 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        match (x >> 16) % 5 {
            0 | 1 => {
                s.extend_from_slice(format!("GET /{i} HTTP/1.1\r\nHost: f\r\n\r\n").as_bytes())
            }
            2 => s.extend_from_slice(format!("HEAD /{i} HTTP/1.1\r\nHost: f\r\n\r\n").as_bytes()),
            3 => {
                let n = (x >> 20) % 300;
                s.extend_from_slice(
                    format!("POST /{i} HTTP/1.1\r\nHost: f\r\nContent-Length: {n}\r\n\r\n")
                        .as_bytes(),
                );
                s.extend((0..n).map(|j| b'a' + (j % 26) as u8));
            }
            _ => {
                // Only when the shape byte asks: one request over the bound.
                let n = if shape & 0x80 != 0 {
                    MAX_STREAM as u32 + 100
                } else {
                    10
                };
                s.extend_from_slice(
                    format!("PUT /{i} HTTP/1.1\r\nHost: f\r\nContent-Length: {n}\r\n\r\n")
                        .as_bytes(),
                );
                s.extend((0..n).map(|j| b'A' + (j % 26) as u8));
            }
        }
    }
    s
}

/// A complete response with a body of `n` bytes (HEAD answers look alike:
/// the log frames by the request it answers).
fn reply(n: usize) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").into_bytes();
    r.extend((0..n).map(|j| b'0' + (j % 10) as u8));
    r
}

fn tuple(i: usize) -> FourTuple {
    FourTuple {
        client_ip: CLIENT,
        client_port: PORTS[i],
        server_ip: VIP,
        server_port: 80,
    }
}

fn options(sel: u8, ts: u32) -> TcpOptions {
    TcpOptions {
        mss: (sel & 1 != 0).then_some(1460),
        wscale: (sel & 2 != 0).then_some(sel >> 4),
        sack_permitted: sel & 4 != 0,
        timestamps: (sel & 8 != 0).then_some((ts, ts.wrapping_sub(7))),
        ..Default::default()
    }
}

/// Per-connection model: only whether its content can still be compared.
#[derive(Clone, Copy, Default)]
struct Model {
    junk: bool,
}

struct Run {
    table: ConnTable,
    stream: std::rc::Rc<[u8]>,
    isn: SeqNum,
    server_isn: SeqNum,
    models: [Model; 3],
    now: Instant,
}

impl Run {
    fn client_isn(&self, c: usize) -> SeqNum {
        self.table
            .get(&tuple(c))
            .map(|k| k.shadow().client_isn())
            .unwrap_or(self.isn)
    }

    fn server_isn(&self, c: usize) -> SeqNum {
        self.table
            .get(&tuple(c))
            .and_then(|k| k.shadow().server_isn())
            .unwrap_or(self.server_isn)
    }

    /// The ACK field: `sel` picks the current log end, a point inside the
    /// log, or an arbitrary number (a confused or hostile client).
    fn ack_for(&self, c: usize, sel: u8, raw: u16) -> SeqNum {
        let log_end = self
            .table
            .get(&tuple(c))
            .map_or(0, |k| k.reply_log().log_end());
        let base = self.server_isn(c).plus(1);
        match sel % 4 {
            0 | 1 => base.plus(log_end),
            2 => base.plus(log_end.saturating_sub(u64::from(raw))),
            _ => SeqNum(u32::from(raw) << 16 | u32::from(raw)),
        }
    }

    /// One client segment into the table, as a segment or (`via_frame`)
    /// as a captured Ethernet frame; a new incarnation resets the model.
    fn feed(&mut self, c: usize, seg: &TcpSegment<'_>, via_frame: bool) {
        let frame = via_frame
            .then(|| {
                build_tcp_frame(
                    EthernetAddress([2, 0, 0, 0, 0, 1]),
                    EthernetAddress([2, 0, 0, 0, 0, 2]),
                    seg.src_ip,
                    seg.dst_ip,
                    seg.ttl,
                    0,
                    &seg.repr(),
                    seg.payload,
                )
                .ok()
            })
            .flatten();
        let outcome = match frame {
            Some(f) => match self
                .table
                .on_frame(&f, self.now)
                .expect("built frame parses")
            {
                FrameOutcome::Tcp { tuple: t, outcome } => {
                    assert_eq!(t, tuple(c));
                    outcome
                }
                FrameOutcome::NotTcp => panic!("built TCP frame seen as not TCP"),
            },
            None => self.table.on_segment(seg, self.now),
        };
        if outcome.event == Some(ConnEvent::Opened) {
            self.models[c] = Model::default();
        }
    }

    fn step(&mut self, op: &[u8]) {
        let (kind, c) = (op[0], usize::from(op[1] % 3));
        let (a, b) = (
            u16::from_be_bytes([op[2], op[3]]),
            u16::from_be_bytes([op[4], op[5]]),
        );
        let (e, f) = (op[6], op[7]);
        self.now = self.now.plus_ms(u64::from(f & 0x0f));
        let n = self.stream.len();
        let seg_base = TcpSegment {
            src_ip: CLIENT,
            dst_ip: VIP,
            src_port: PORTS[c],
            dst_port: 80,
            seq: SeqNum(0),
            ack: SeqNum(0),
            flags: TcpFlags(TcpFlags::ACK),
            window: a,
            options: TcpOptions::default(),
            payload: &[],
            ttl: 64,
        };
        match kind % 10 {
            // SYN: the header's ISN, or a fresh one (a new incarnation).
            0 => {
                let isn = if e & 1 == 0 {
                    self.isn
                } else {
                    SeqNum(u32::from(a) << 16 | u32::from(b))
                };
                let take = if e & 2 != 0 {
                    usize::from(f >> 4).min(n)
                } else {
                    0
                };
                let stream = std::rc::Rc::clone(&self.stream);
                let seg = TcpSegment {
                    seq: isn,
                    flags: TcpFlags(TcpFlags::SYN),
                    options: options(e >> 2, u32::from(b)),
                    payload: &stream[..take],
                    ..seg_base
                };
                self.feed(c, &seg, f & 0x80 != 0);
            }
            // Data from the true stream at any offset, any length.
            1 | 2 => {
                let off = usize::from(a) % (n + 1);
                let end = (off + usize::from(b % 1600)).min(n);
                let mut flags = TcpFlags::ACK | TcpFlags::PSH;
                if e & 0x40 != 0 && end == n {
                    flags |= TcpFlags::FIN;
                }
                let stream = std::rc::Rc::clone(&self.stream);
                let seg = TcpSegment {
                    seq: self.client_isn(c).plus(1).plus(off as u64),
                    ack: self.ack_for(c, e, u16::from(f)),
                    flags: TcpFlags(flags),
                    window: u16::from(f) << 4,
                    options: options(e >> 2, u32::from(a)),
                    payload: &stream[off..end],
                    ..seg_base
                };
                self.feed(c, &seg, kind % 10 == 2);
            }
            // Junk data at an arbitrary sequence number near the stream.
            3 => {
                let junk: Vec<u8> = (0..usize::from(b % 700)).map(|i| e ^ (i as u8)).collect();
                let rel = i64::from(a as i16) * 8;
                let seq = self
                    .client_isn(c)
                    .plus(1)
                    .plus(rel.rem_euclid(1 << 32) as u64);
                let seg = TcpSegment {
                    seq,
                    ack: self.ack_for(c, f, a),
                    payload: &junk,
                    ..seg_base
                };
                self.models[c].junk = true;
                self.feed(c, &seg, false);
            }
            // Pure ACK, with window, timestamps and SACK blocks.
            4 => {
                let mut o = options(e, u32::from(b));
                o.sack_len = f % 5;
                for (i, s) in o.sack.iter_mut().enumerate() {
                    let left = self.server_isn(c).plus(u64::from(a) + 100 * i as u64);
                    *s = SackBlock {
                        left,
                        right: left.plus(50),
                    };
                }
                let seg = TcpSegment {
                    seq: self
                        .client_isn(c)
                        .plus(1)
                        .plus(u64::from(b) % (n as u64 + 1)),
                    ack: self.ack_for(c, e, a),
                    window: a,
                    options: o,
                    ..seg_base
                };
                self.feed(c, &seg, e & 0x80 != 0);
            }
            // FIN (with ACK) at an offset.
            5 => {
                let off = usize::from(a) % (n + 1);
                let seg = TcpSegment {
                    seq: self.client_isn(c).plus(1).plus(off as u64),
                    ack: self.ack_for(c, e, b),
                    flags: TcpFlags(TcpFlags::ACK | TcpFlags::FIN),
                    ..seg_base
                };
                self.feed(c, &seg, false);
            }
            // RST near the receive point, or anywhere.
            6 => {
                let rcv = self.table.get(&tuple(c)).map(|k| k.rcv_nxt());
                let seq = match (rcv, e % 3) {
                    (Some(r), 0) => r,
                    (Some(r), 1) => r.plus(u64::from(a)),
                    _ => SeqNum(u32::from(a) << 16 | u32::from(b)),
                };
                let flags = if e & 4 != 0 {
                    TcpFlags::RST | TcpFlags::ACK
                } else {
                    TcpFlags::RST
                };
                let seg = TcpSegment {
                    seq,
                    flags: TcpFlags(flags),
                    ..seg_base
                };
                self.feed(c, &seg, false);
            }
            // The primary logs the next reply, as it should.
            7 => {
                if let Some(k) = self.table.get(&tuple(c)) {
                    let log = k.reply_log();
                    let start = log.log_end();
                    // A HEAD request's reply has no body (its head still
                    // names the length a GET would have).
                    let head_only = log.pending_requests().front().is_some_and(|r| r.is_head);
                    let mut bytes = reply(usize::from(a % 900));
                    if head_only {
                        let at = bytes
                            .windows(4)
                            .position(|w| w == b"\r\n\r\n")
                            .expect("head end");
                        bytes.truncate(at + 4);
                    }
                    let _ = self.table.log_reply(&tuple(c), start, &bytes);
                }
            }
            // A hostile or broken log entry: any start, any bytes, or an
            // exact re-send of logged bytes.
            8 => {
                let start = match e % 3 {
                    0 => u64::from_be_bytes([op[2], op[3], op[4], op[5], op[6], op[7], 0, 0]),
                    1 => self
                        .table
                        .get(&tuple(c))
                        .map_or(0, |k| k.reply_log().log_end().saturating_sub(u64::from(a))),
                    _ => u64::MAX - u64::from(a),
                };
                let bytes: Vec<u8> = if f & 1 == 0 {
                    reply(usize::from(b % 200))
                } else {
                    (0..usize::from(b % 200)).map(|i| f ^ (i as u8)).collect()
                };
                let _ = self.table.log_reply(&tuple(c), start, &bytes);
            }
            // ConnOpen report, then a sweep after some time.
            _ => {
                let opts = NegotiatedOptions {
                    mss: a,
                    snd_wscale: (e & 1 != 0).then_some(f),
                    rcv_wscale: (e & 2 != 0).then_some(f >> 4),
                    sack: e & 4 != 0,
                    timestamps: e & 8 != 0,
                    usec_ts: e & 16 != 0,
                };
                let _ = self.table.on_conn_open(&tuple(c), opts);
                if e & 0x80 != 0 {
                    self.now = self.now.plus_ms(u64::from(b) * 1000);
                    self.table.sweep(self.now);
                }
            }
        }
        self.check();
    }

    fn check(&self) {
        assert!(self.table.len() <= MAX_CONNS);
        let params = TakeoverParams::default();
        for (i, m) in self.models.iter().enumerate() {
            let Some(k) = self.table.get(&tuple(i)) else {
                continue;
            };
            let r = k.reassembler();
            assert!(r.held_bytes() <= MAX_STREAM, "stream bound");
            assert!(k.reply_log().held_bytes() <= MAX_LOG, "log bound");
            assert!(r.released_upto() <= r.end());
            let t = k.takeover(self.now, &params);
            if let Err(NotRestorable::Inconsistent(why)) = &t {
                panic!("inconsistent shadow state: {why}");
            }
            if m.junk || k.unprotected().is_some() {
                continue;
            }
            // Every byte held equals the true stream at its offset.
            let (from, end) = (r.released_upto(), r.end());
            assert!(end as usize <= self.stream.len(), "bytes beyond the stream");
            let held = r.contiguous_from(from).expect("held bytes");
            assert_eq!(held, &self.stream[from as usize..end as usize]);
            for (off, run) in r.out_of_order_runs() {
                let o = off as usize;
                assert!(off > end && o + run.len() <= self.stream.len());
                assert_eq!(run, &self.stream[o..o + run.len()]);
            }
            if let Ok(st) = t {
                let q = st.recv_queue_seq.distance_from(r.seq_at(0));
                assert!(q >= 0, "receive queue before the stream");
                let q = q as usize;
                assert_eq!(st.recv_queue, &self.stream[q..q + st.recv_queue.len()]);
                assert_eq!(
                    st.rcv_nxt,
                    st.recv_queue_seq.plus(st.recv_queue.len() as u64)
                );
                assert_eq!(st.rcv_nxt, k.rcv_nxt());
                assert!(st.window.max_window >= st.window.snd_wnd);
                assert!(
                    !SeqNum(st.window.snd_wl1).after(st.rcv_nxt),
                    "snd_wl1 after rcv_nxt"
                );
                assert_eq!(st.window.rcv_wup, st.rcv_nxt.0);
                assert_eq!(st.pending_requests, k.reply_log().pending_requests().len());
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let (head, ops) = data.split_at(9);
    let mut conn = ConnConfig {
        max_stream_bytes: MAX_STREAM,
        max_log_bytes: MAX_LOG,
        ..ConnConfig::default()
    };
    conn.http.max_head = 512;
    conn.http.max_headers = 16;
    let cfg = TableConfig {
        max_conns: MAX_CONNS,
        conn,
        handshake_timeout_ms: 75_000,
    };
    let mut run = Run {
        table: ConnTable::new(cfg),
        stream: true_stream(head[8]).into(),
        isn: SeqNum(u32::from_be_bytes([head[0], head[1], head[2], head[3]])),
        server_isn: SeqNum(u32::from_be_bytes([head[4], head[5], head[6], head[7]])),
        models: [Model::default(); 3],
        now: Instant(1_000_000_000),
    };
    for op in ops.chunks_exact(8).take(256) {
        run.step(op);
    }
});
