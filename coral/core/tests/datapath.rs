//! Crafted client packet sequences through the whole data path: frames are
//! built with the wire emitters, parsed by `parse_frame`, routed by the
//! connection table, and the takeover query is checked against numbers
//! computed here by hand.

use coral_core::wire::{
    build_tcp_frame, EthernetAddress, SackBlock, TcpFlags, TcpOptions, TcpRepr, TcpSegment,
};
use coral_core::LocalTcpDefaults;
use coral_core::SeqNum;
use coral_core::{
    ConnConfig, ConnEvent, DropReason, NotRestorable, TakeoverParams, Unprotected, Verdict,
};
use coral_core::{ConnTable, FrameOutcome, TableConfig};
use coral_core::{FourTuple, Instant, NegotiatedOptions};
use std::net::Ipv4Addr;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const PSH_ACK: u8 = TcpFlags::PSH | TcpFlags::ACK;
const FIN_ACK: u8 = TcpFlags::FIN | TcpFlags::ACK;
const RST: u8 = TcpFlags::RST;

fn tuple(port: u16) -> FourTuple {
    FourTuple {
        client_ip: CLIENT,
        client_port: port,
        server_ip: VIP,
        server_port: 80,
    }
}

fn ms(n: u64) -> Instant {
    Instant(n * 1_000_000)
}

/// A client frame.
fn frame(
    port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    options: TcpOptions,
    data: &[u8],
) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: port,
        dst_port: 80,
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags: TcpFlags(flags),
        window,
        options,
    };
    build_tcp_frame(
        EthernetAddress([2, 0, 0, 0, 0, 1]),
        EthernetAddress([2, 0, 0, 0, 0, 2]),
        CLIENT,
        VIP,
        64,
        0,
        &repr,
        data,
    )
    .unwrap()
}

fn syn_options(tsval: u32) -> TcpOptions {
    TcpOptions {
        mss: Some(1460),
        wscale: Some(7),
        sack_permitted: true,
        timestamps: Some((tsval, 0)),
        ..Default::default()
    }
}

fn ts(val: u32, ecr: u32) -> TcpOptions {
    TcpOptions {
        timestamps: Some((val, ecr)),
        ..Default::default()
    }
}

fn feed(t: &mut ConnTable, f: &[u8], now: Instant) -> (Verdict, Option<ConnEvent>) {
    match t.on_frame(f, now).unwrap() {
        FrameOutcome::Tcp { outcome, .. } => (outcome.verdict, outcome.event),
        FrameOutcome::NotTcp => panic!("not tcp"),
    }
}

fn response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        body
    )
    .into_bytes()
}

fn primary_opts() -> NegotiatedOptions {
    NegotiatedOptions {
        mss: 1460,
        snd_wscale: Some(7),
        rcv_wscale: Some(9),
        sack: true,
        timestamps: true,
        usec_ts: false,
    }
}

/// The recorded-style sequence of the brief: SYN with options, the client's
/// ACK of the SYN-ACK (which teaches the server ISN), two pipelined
/// requests, one logged reply partly ACKed. Both ISNs sit just below 2^32 so
/// both sequence spaces wrap inside the exchange. Every expected number is
/// computed here with plain u32 arithmetic.
#[test]
fn takeover_query_returns_exact_numbers() {
    let c_isn: u32 = 0xffff_ff00;
    let s_isn: u32 = 0xffff_fff0;
    let p = 40000;
    let mut t = ConnTable::new(TableConfig::default());

    // SYN at t=0.
    let (v, e) = feed(
        &mut t,
        &frame(p, c_isn, 0, SYN, 64240, syn_options(1000), b""),
        ms(0),
    );
    assert_eq!((v, e), (Verdict::Forward, Some(ConnEvent::Opened)));
    // Mid-handshake: not restorable yet.
    assert_eq!(
        t.get(&tuple(p))
            .unwrap()
            .takeover(ms(1), &TakeoverParams::default()),
        Err(NotRestorable::HandshakeIncomplete)
    );
    // Client's ACK of the SYN-ACK at t=10 ms: TSecr 5000 is the server's TSval.
    let (_, e) = feed(
        &mut t,
        &frame(
            p,
            c_isn.wrapping_add(1),
            s_isn.wrapping_add(1),
            ACK,
            502,
            ts(1010, 5000),
            b"",
        ),
        ms(10),
    );
    assert_eq!(e, Some(ConnEvent::Established));
    t.on_conn_open(&tuple(p), primary_opts()).unwrap();

    // Two pipelined requests in one segment, across the client's 2^32 wrap.
    let req1 = b"GET /cgi-bin/webstone?size=10 HTTP/1.1\r\nHost: 192.0.2.100\r\n\r\n".to_vec();
    let req2 = b"POST /cgi-bin/webstone?size=20 HTTP/1.1\r\nHost: 192.0.2.100\r\nContent-Length: 300\r\n\r\n"
        .iter()
        .copied()
        .chain(std::iter::repeat_n(b'x', 300))
        .collect::<Vec<u8>>();
    let both = [req1.clone(), req2.clone()].concat();
    assert!(
        both.len() > 0x100,
        "the requests must cross the client wrap"
    );
    let (v, _) = feed(
        &mut t,
        &frame(
            p,
            c_isn.wrapping_add(1),
            s_isn.wrapping_add(1),
            PSH_ACK,
            502,
            ts(1020, 5000),
            &both,
        ),
        ms(20),
    );
    assert_eq!(v, Verdict::Forward);
    let conn = t.get(&tuple(p)).unwrap();
    assert_eq!(conn.reply_log().pending_requests().len(), 2);

    // The primary logs the reply to request 1 at server offset 0.
    let rsp1 = response("0123456789");
    let out = t.log_reply(&tuple(p), 0, &rsp1).unwrap();
    assert_eq!(out.answered, 1);

    // The client ACKs 40 bytes of it (crossing the server's 2^32 wrap) at
    // t=50 ms, with TSecr 5045 and a new window.
    let after_reqs = c_isn.wrapping_add(1).wrapping_add(both.len() as u32);
    let (_, e) = feed(
        &mut t,
        &frame(
            p,
            after_reqs,
            s_isn.wrapping_add(1).wrapping_add(40),
            ACK,
            600,
            ts(1050, 5045),
            b"",
        ),
        ms(50),
    );
    assert_eq!(e, None);

    // Takeover at t=250 ms with a 100 ms margin.
    let q = t
        .takeover(&tuple(p), ms(250), &TakeoverParams { ts_margin_ms: 100 })
        .unwrap();
    assert_eq!(q.tuple, tuple(p));
    assert_eq!(q.send_queue_seq, SeqNum(s_isn.wrapping_add(41)));
    assert_eq!(q.send_queue_seq, SeqNum(25)); // 0xfffffff0 + 41 wraps to 25
    assert_eq!(
        q.recv_queue_seq,
        SeqNum(c_isn.wrapping_add(1).wrapping_add(req1.len() as u32))
    );
    assert_eq!(q.recv_queue, req2);
    assert_eq!(q.rcv_nxt, SeqNum(after_reqs));
    assert_eq!(q.unacked_replies, rsp1[40..].to_vec());
    assert_eq!(q.pending_requests, 1);
    assert!(q.options_from_primary);
    assert_eq!(q.options.mss, 1460);
    assert_eq!(q.options.snd_wscale, Some(7));
    assert_eq!(q.options.rcv_wscale, Some(9));
    assert_eq!(q.options.window_value(), Some(7 | 9 << 16));
    assert_eq!(
        q.options.repair_opts(),
        vec![(2, 1460), (3, 7 | 9 << 16), (4, 0), (8, 0)]
    );
    assert!(q.options.sack && q.options.timestamps);
    // 5045 + (250 - 50) ms + 100 ms margin = 5345, bit 0 cleared -> 5344.
    assert_eq!(q.timestamp, Some(5344));
    assert_eq!(q.window.snd_wl1, after_reqs);
    assert_eq!(q.window.snd_wnd, 600 << 7);
    assert_eq!(q.window.max_window, 600 << 7);
    assert_eq!(q.window.rcv_wnd, 65535 << 9);
    assert_eq!(q.window.rcv_wup, after_reqs);
    assert!(!q.client_fin);

    // Reply 2 logged, then ACKed entirely: nothing left to resend, every
    // request answered, the receive queue is empty at rcv_nxt.
    let rsp2 = response("abcdefghijabcdefghij");
    t.log_reply(&tuple(p), rsp1.len() as u64, &rsp2).unwrap();
    let total = (rsp1.len() + rsp2.len()) as u32;
    feed(
        &mut t,
        &frame(
            p,
            after_reqs,
            s_isn.wrapping_add(1).wrapping_add(total),
            ACK,
            600,
            ts(1060, 5070),
            b"",
        ),
        ms(60),
    );
    let conn = t.get(&tuple(p)).unwrap();
    assert!(
        conn.reply_log().replies().is_empty(),
        "acked replies are collected"
    );
    let q = conn
        .takeover(ms(60), &TakeoverParams { ts_margin_ms: 0 })
        .unwrap();
    assert_eq!(
        q.send_queue_seq,
        SeqNum(s_isn.wrapping_add(1).wrapping_add(total))
    );
    assert_eq!(q.recv_queue_seq, SeqNum(after_reqs));
    assert!(q.recv_queue.is_empty() && q.unacked_replies.is_empty());
    assert_eq!(q.timestamp, Some(5070));
}

/// Handshake, then mid-handshake restore becomes possible on the ACK, with
/// the fallback options when no ConnOpen arrived.
#[test]
fn handshake_fallback_options_and_usec_timestamps() {
    let mut t = ConnTable::new(TableConfig::default());
    let p = 40001;
    let opts = TcpOptions {
        mss: Some(1400),
        wscale: Some(3),
        sack_permitted: false,
        timestamps: Some((7, 0)),
        ..Default::default()
    };
    feed(&mut t, &frame(p, 100, 0, SYN, 65535, opts, b""), ms(0));
    // Retransmitted SYN: same connection.
    let (v, e) = feed(&mut t, &frame(p, 100, 0, SYN, 65535, opts, b""), ms(1000));
    assert_eq!((v, e), (Verdict::Forward, None));
    assert_eq!(t.len(), 1);
    feed(
        &mut t,
        &frame(p, 101, 2_000_001, ACK, 1000, ts(9, 777), b""),
        ms(1010),
    );
    let q = t
        .takeover(&tuple(p), ms(1011), &TakeoverParams { ts_margin_ms: 0 })
        .unwrap();
    assert!(!q.options_from_primary);
    assert_eq!(q.options.mss, 1400);
    assert_eq!(q.options.snd_wscale, Some(3));
    assert_eq!(
        q.options.rcv_wscale,
        Some(LocalTcpDefaults::default().rcv_wscale)
    );
    assert!(!q.options.sack);
    assert_eq!(q.send_queue_seq, SeqNum(2_000_001));
    assert_eq!(q.recv_queue_seq, SeqNum(101));
    assert_eq!(q.window.snd_wnd, 1000 << 3);
    // 777 + 1 ms = 778 (even).
    assert_eq!(q.timestamp, Some(778));
    // With microsecond timestamps from the primary: bit 0 set, us elapsed.
    t.on_conn_open(
        &tuple(p),
        NegotiatedOptions {
            usec_ts: true,
            ..primary_opts()
        },
    )
    .unwrap();
    let q = t
        .takeover(&tuple(p), ms(1011), &TakeoverParams { ts_margin_ms: 2 })
        .unwrap();
    assert_eq!(q.timestamp, Some((777 + 1000 + 2000) | 1));
    // No window scaling from the client: both scales off, even with a ConnOpen saying otherwise.
    let p2 = 40002;
    feed(
        &mut t,
        &frame(
            p2,
            5,
            0,
            SYN,
            65535,
            TcpOptions {
                mss: Some(1460),
                ..Default::default()
            },
            b"",
        ),
        ms(0),
    );
    feed(
        &mut t,
        &frame(p2, 6, 10, ACK, 30000, TcpOptions::default(), b""),
        ms(1),
    );
    let q = t
        .takeover(&tuple(p2), ms(2), &TakeoverParams::default())
        .unwrap();
    assert_eq!(q.options.window_value(), None);
    assert_eq!(q.timestamp, None);
    assert_eq!(q.window.snd_wnd, 30000);
    assert_eq!(q.window.rcv_wnd, 65535);
}

/// Helper: an established connection with timestamps off, client ISN `c`,
/// server ISN `s`.
fn established(t: &mut ConnTable, p: u16, c: u32, s: u32) {
    feed(
        t,
        &frame(
            p,
            c,
            0,
            SYN,
            65535,
            TcpOptions {
                mss: Some(1460),
                wscale: Some(2),
                ..Default::default()
            },
            b"",
        ),
        ms(0),
    );
    let (_, e) = feed(
        t,
        &frame(
            p,
            c.wrapping_add(1),
            s.wrapping_add(1),
            ACK,
            1000,
            TcpOptions::default(),
            b"",
        ),
        ms(1),
    );
    assert_eq!(e, Some(ConnEvent::Established));
}

#[test]
fn retransmission_overlap_and_out_of_order_requests() {
    let mut t = ConnTable::new(TableConfig::default());
    let (p, c, s) = (40010, u32::MAX - 20, 1000);
    established(&mut t, p, c, s);
    let stream = b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n";
    let at = |off: usize| c.wrapping_add(1).wrapping_add(off as u32);
    let a = s + 1;
    // Out of order: the tail first, then an overlapping middle, then a
    // retransmission of the tail, then the head.
    feed(
        &mut t,
        &frame(
            p,
            at(40),
            a,
            PSH_ACK,
            1000,
            TcpOptions::default(),
            &stream[40..],
        ),
        ms(2),
    );
    feed(
        &mut t,
        &frame(
            p,
            at(15),
            a,
            PSH_ACK,
            1000,
            TcpOptions::default(),
            &stream[15..45],
        ),
        ms(3),
    );
    feed(
        &mut t,
        &frame(
            p,
            at(40),
            a,
            PSH_ACK,
            1000,
            TcpOptions::default(),
            &stream[40..],
        ),
        ms(4),
    );
    assert_eq!(
        t.get(&tuple(p))
            .unwrap()
            .reply_log()
            .pending_requests()
            .len(),
        0
    );
    feed(
        &mut t,
        &frame(
            p,
            at(0),
            a,
            PSH_ACK,
            1000,
            TcpOptions::default(),
            &stream[..20],
        ),
        ms(5),
    );
    let conn = t.get(&tuple(p)).unwrap();
    let reqs: Vec<(u64, u64)> = conn
        .reply_log()
        .pending_requests()
        .iter()
        .map(|r| (r.start, r.end))
        .collect();
    assert_eq!(reqs, vec![(0, 19), (19, 38), (38, 57)]);
    assert_eq!(conn.rcv_nxt(), SeqNum(at(57)));
    // Answer the first: the receive queue starts at request 2.
    t.log_reply(&tuple(p), 0, &response("one")).unwrap();
    let q = t
        .takeover(&tuple(p), ms(6), &TakeoverParams::default())
        .unwrap();
    assert_eq!(q.recv_queue_seq, SeqNum(at(19)));
    assert_eq!(q.recv_queue, stream[19..].to_vec());
    assert_eq!(q.pending_requests, 2);
    // Nothing ACKed yet: the whole reply is to be written.
    assert_eq!(q.unacked_replies, response("one"));
    assert_eq!(q.send_queue_seq, SeqNum(a));
    // Answered bytes are released from the reassembler.
    assert_eq!(t.get(&tuple(p)).unwrap().reassembler().released_upto(), 19);
}

#[test]
fn sack_does_not_advance_snd_una_and_gc_follows_cumulative_ack() {
    let mut t = ConnTable::new(TableConfig::default());
    let (p, c, s) = (40020, 5000, u32::MAX - 3);
    established(&mut t, p, c, s);
    let req = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    feed(
        &mut t,
        &frame(
            p,
            c + 1,
            s.wrapping_add(1),
            PSH_ACK,
            1000,
            TcpOptions::default(),
            req,
        ),
        ms(2),
    );
    let r1 = response("first");
    let r2 = response("second");
    t.log_reply(&tuple(p), 0, &r1).unwrap();
    t.log_reply(&tuple(p), r1.len() as u64, &r2).unwrap();
    let una = |off: u64| s.wrapping_add(1).wrapping_add(off as u32);
    // A duplicate ACK with a SACK block for reply 2: snd_una unchanged.
    let mut o = TcpOptions::default();
    o.sack[0] = SackBlock {
        left: SeqNum(una(r1.len() as u64)),
        right: SeqNum(una((r1.len() + r2.len()) as u64)),
    };
    o.sack_len = 1;
    let next = c + 1 + req.len() as u32;
    feed(&mut t, &frame(p, next, una(0), ACK, 1000, o, b""), ms(3));
    let conn = t.get(&tuple(p)).unwrap();
    assert_eq!(conn.shadow().snd_una(), Some(SeqNum(una(0))));
    assert_eq!(conn.reply_log().replies().len(), 2);
    // Cumulative ACK into reply 1: both kept; into reply 2: reply 1 collected.
    feed(
        &mut t,
        &frame(p, next, una(3), ACK, 1000, TcpOptions::default(), b""),
        ms(4),
    );
    assert_eq!(t.get(&tuple(p)).unwrap().reply_log().replies().len(), 2);
    feed(
        &mut t,
        &frame(
            p,
            next,
            una(r1.len() as u64 + 2),
            ACK,
            1000,
            TcpOptions::default(),
            b"",
        ),
        ms(5),
    );
    let conn = t.get(&tuple(p)).unwrap();
    assert_eq!(conn.reply_log().replies().len(), 1);
    let q = conn.takeover(ms(5), &TakeoverParams::default()).unwrap();
    assert_eq!(q.unacked_replies, r2[2..].to_vec());
    assert_eq!(q.send_queue_seq, SeqNum(una(r1.len() as u64 + 2)));
    // An old ACK (reordered) does not move snd_una back.
    feed(
        &mut t,
        &frame(p, next, una(3), ACK, 1000, TcpOptions::default(), b""),
        ms(6),
    );
    assert_eq!(
        t.get(&tuple(p)).unwrap().shadow().snd_una(),
        Some(SeqNum(una(r1.len() as u64 + 2)))
    );
    // An ACK beyond the log is a violation the query reports.
    let end = (r1.len() + r2.len()) as u64;
    feed(
        &mut t,
        &frame(p, next, una(end + 5), ACK, 1000, TcpOptions::default(), b""),
        ms(7),
    );
    assert_eq!(
        t.takeover(&tuple(p), ms(7), &TakeoverParams::default())
            .unwrap_err()
            .to_string(),
        format!(
            "client acked server offset {} beyond logged {}",
            end + 5,
            end
        )
    );
}

#[test]
fn fin_then_close_and_rst() {
    let mut t = ConnTable::new(TableConfig::default());
    let (p, c, s) = (40030, 77, 99);
    established(&mut t, p, c, s);
    let req = b"GET / HTTP/1.1\r\n\r\n";
    // Request with FIN (client half-close).
    feed(
        &mut t,
        &frame(
            p,
            c + 1,
            s + 1,
            FIN_ACK | TcpFlags::PSH,
            1000,
            TcpOptions::default(),
            req,
        ),
        ms(2),
    );
    let q = t
        .takeover(&tuple(p), ms(2), &TakeoverParams::default())
        .unwrap();
    assert!(q.client_fin);
    assert_eq!(q.rcv_nxt, SeqNum(c + 1 + req.len() as u32));
    // The FIN is carried over at its sequence number (the repair queue
    // cannot hold it).
    let fin: Vec<_> = q
        .carry_over
        .iter()
        .map(|p| TcpSegment::parse_ipv4(p).unwrap())
        .collect();
    assert_eq!(fin.len(), 1);
    assert!(fin[0].flags.fin() && fin[0].payload.is_empty());
    assert_eq!(fin[0].seq, q.rcv_nxt);
    let r = response("bye");
    t.log_reply(&tuple(p), 0, &r).unwrap();
    // Client ACKs the reply and the server's FIN: both FINs done, forgotten.
    let (_, e) = feed(
        &mut t,
        &frame(
            p,
            c + 2 + req.len() as u32,
            s + 1 + r.len() as u32 + 1,
            ACK,
            1000,
            TcpOptions::default(),
            b"",
        ),
        ms(3),
    );
    assert_eq!(e, Some(ConnEvent::Closed));
    assert!(t.get(&tuple(p)).is_none());
    // Its late retransmission is untracked and forwarded.
    let (v, e) = feed(
        &mut t,
        &frame(
            p,
            c + 2 + req.len() as u32,
            s + 1,
            ACK,
            1000,
            TcpOptions::default(),
            b"",
        ),
        ms(4),
    );
    assert_eq!((v, e), (Verdict::Forward, Some(ConnEvent::Untracked)));

    // Server closed first (client ACKs the server FIN only): not restorable.
    let p = 40031;
    established(&mut t, p, c, s);
    feed(
        &mut t,
        &frame(p, c + 1, s + 1, PSH_ACK, 1000, TcpOptions::default(), req),
        ms(2),
    );
    t.log_reply(&tuple(p), 0, &r).unwrap();
    feed(
        &mut t,
        &frame(
            p,
            c + 1 + req.len() as u32,
            s + 2 + r.len() as u32,
            ACK,
            1000,
            TcpOptions::default(),
            b"",
        ),
        ms(3),
    );
    assert_eq!(
        t.get(&tuple(p))
            .unwrap()
            .takeover(ms(3), &TakeoverParams::default()),
        Err(NotRestorable::ServerClosed)
    );

    // RST far outside the window is ignored; one at rcv_nxt closes.
    let p = 40032;
    established(&mut t, p, c, s);
    let (_, e) = feed(
        &mut t,
        &frame(
            p,
            c.wrapping_sub(100_000),
            0,
            RST,
            0,
            TcpOptions::default(),
            b"",
        ),
        ms(2),
    );
    assert_eq!(e, None);
    assert!(t.get(&tuple(p)).is_some());
    let (_, e) = feed(
        &mut t,
        &frame(p, c + 1, 0, RST, 0, TcpOptions::default(), b""),
        ms(3),
    );
    assert_eq!(e, Some(ConnEvent::Closed));
    assert!(t.get(&tuple(p)).is_none());
}

#[test]
fn chunked_upload_split_across_segments() {
    let mut t = ConnTable::new(TableConfig::default());
    let (p, c, s) = (40040, 1, 2);
    established(&mut t, p, c, s);
    let req = b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\n\r\nGET /next HTTP/1.1\r\n\r\n";
    let first_end = req.len() - 22;
    for (i, chunk) in req.chunks(7).enumerate() {
        let seq = c + 1 + (i * 7) as u32;
        feed(
            &mut t,
            &frame(p, seq, s + 1, PSH_ACK, 1000, TcpOptions::default(), chunk),
            ms(2 + i as u64),
        );
    }
    let conn = t.get(&tuple(p)).unwrap();
    let reqs: Vec<(u64, u64)> = conn
        .reply_log()
        .pending_requests()
        .iter()
        .map(|r| (r.start, r.end))
        .collect();
    assert_eq!(
        reqs,
        vec![(0, first_end as u64), (first_end as u64, req.len() as u64)]
    );
}

#[test]
fn bounds_table_full_buffer_full_and_overflow() {
    let cfg = TableConfig {
        max_conns: 2,
        conn: ConnConfig {
            max_stream_bytes: 64,
            ..ConnConfig::default()
        },
        handshake_timeout_ms: 1000,
    };
    let mut t = ConnTable::new(cfg);
    established(&mut t, 1, 10, 20);
    feed(
        &mut t,
        &frame(2, 10, 0, SYN, 100, TcpOptions::default(), b""),
        ms(0),
    );
    let (v, e) = feed(
        &mut t,
        &frame(3, 10, 0, SYN, 100, TcpOptions::default(), b""),
        ms(0),
    );
    assert_eq!((v, e), (Verdict::Drop(DropReason::TableFull), None));
    // A handshake that never completes is swept; then port 3 fits.
    assert_eq!(t.sweep(ms(500)), vec![]);
    assert_eq!(t.sweep(ms(1000)), vec![tuple(2)]);
    let (v, _) = feed(
        &mut t,
        &frame(3, 10, 0, SYN, 100, TcpOptions::default(), b""),
        ms(1000),
    );
    assert_eq!(v, Verdict::Forward);

    // Conn 1: a complete request (40 bytes) waits for its reply; more data
    // that does not fit is dropped, not forwarded.
    let r1 = b"GET /aaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n";
    assert_eq!(r1.len(), 40);
    feed(
        &mut t,
        &frame(1, 11, 21, PSH_ACK, 100, TcpOptions::default(), r1),
        ms(2),
    );
    let more = [b'G'; 30];
    let (v, _) = feed(
        &mut t,
        &frame(1, 51, 21, PSH_ACK, 100, TcpOptions::default(), &more),
        ms(3),
    );
    assert_eq!(v, Verdict::Drop(DropReason::BufferFull));
    // Once answered, room is made and the retransmission is recorded.
    t.log_reply(&tuple(1), 0, &response("x")).unwrap();
    let (v, _) = feed(
        &mut t,
        &frame(1, 51, 21, PSH_ACK, 100, TcpOptions::default(), &more),
        ms(4),
    );
    assert_eq!(v, Verdict::Forward);
    // Now one incomplete request fills the buffer: waiting cannot help, so
    // the connection becomes unprotected and its frames are forwarded.
    let (v, e) = feed(
        &mut t,
        &frame(1, 81, 21, PSH_ACK, 100, TcpOptions::default(), &[b'E'; 40]),
        ms(5),
    );
    assert_eq!(
        (v, e),
        (
            Verdict::Forward,
            Some(ConnEvent::Unprotected(Unprotected::StreamOverflow))
        )
    );
    assert!(matches!(
        t.get(&tuple(1))
            .unwrap()
            .takeover(ms(5), &TakeoverParams::default()),
        Err(NotRestorable::Unprotected(Unprotected::StreamOverflow))
    ));
}

#[test]
fn non_http_stream_becomes_unprotected() {
    let mut t = ConnTable::new(TableConfig::default());
    established(&mut t, 9, 10, 20);
    let (v, e) = feed(
        &mut t,
        &frame(
            9,
            11,
            21,
            PSH_ACK,
            100,
            TcpOptions::default(),
            b"\x16\x03\x01 TLS\r\n\r\n",
        ),
        ms(2),
    );
    assert_eq!(v, Verdict::Forward);
    assert!(matches!(
        e,
        Some(ConnEvent::Unprotected(Unprotected::RequestFraming(_)))
    ));
}

#[test]
fn new_incarnation_replaces_unestablished_conn() {
    let mut t = ConnTable::new(TableConfig::default());
    feed(
        &mut t,
        &frame(7, 10, 0, SYN, 100, TcpOptions::default(), b""),
        ms(0),
    );
    let (_, e) = feed(
        &mut t,
        &frame(7, 999, 0, SYN, 100, TcpOptions::default(), b""),
        ms(1),
    );
    assert_eq!(e, Some(ConnEvent::Opened));
    assert_eq!(t.get(&tuple(7)).unwrap().shadow().client_isn(), SeqNum(999));
    // An established conn keeps its state when a stray SYN arrives.
    feed(
        &mut t,
        &frame(7, 1000, 50, ACK, 100, TcpOptions::default(), b""),
        ms(2),
    );
    feed(
        &mut t,
        &frame(7, 5, 0, SYN, 100, TcpOptions::default(), b""),
        ms(3),
    );
    assert_eq!(t.get(&tuple(7)).unwrap().shadow().client_isn(), SeqNum(999));
    assert_eq!(t.takeover_all(ms(3), &TakeoverParams::default()).len(), 1);
}

#[test]
fn out_of_order_data_is_reported_for_reinjection() {
    let mut t = ConnTable::new(TableConfig::default());
    let (p, c, s) = (40050, u32::MAX - 5, 3);
    established(&mut t, p, c, s);
    let req = b"GET /x HTTP/1.1\r\n\r\n";
    feed(
        &mut t,
        &frame(
            p,
            c.wrapping_add(1),
            s + 1,
            PSH_ACK,
            1000,
            TcpOptions::default(),
            req,
        ),
        ms(2),
    );
    // A hole of 10 bytes, then 6 bytes.
    let far = c.wrapping_add(1).wrapping_add(req.len() as u32 + 10);
    feed(
        &mut t,
        &frame(
            p,
            far,
            s + 1,
            PSH_ACK,
            1000,
            TcpOptions::default(),
            b"GET /y",
        ),
        ms(3),
    );
    let q = t
        .takeover(&tuple(p), ms(3), &TakeoverParams::default())
        .unwrap();
    assert_eq!(
        q.rcv_nxt,
        SeqNum(c.wrapping_add(1).wrapping_add(req.len() as u32))
    );
    assert_eq!(q.recv_queue, req.to_vec());
    assert_eq!(q.out_of_order, vec![(SeqNum(far), b"GET /y".to_vec())]);
    // Carried over as one packet from the client: the run at its sequence
    // number, acknowledging the client's last ACK, checksums valid.
    assert_eq!(q.carry_over.len(), 1);
    let seg = TcpSegment::parse_ipv4(&q.carry_over[0]).unwrap();
    assert_eq!(
        (seg.seq, seg.ack, seg.payload),
        (SeqNum(far), q.send_queue_seq, &b"GET /y"[..])
    );
    assert_eq!(seg.client_tuple(), tuple(p));
    assert!(!seg.flags.fin());
    // Kernel checks of TCP_REPAIR_WINDOW hold.
    assert!(q.window.max_window >= q.window.snd_wnd);
    assert!(!SeqNum(q.window.snd_wl1).after(q.rcv_nxt + q.window.rcv_wnd));
    assert!(!SeqNum(q.window.rcv_wup).after(q.rcv_nxt));
}
