//! Property test of the whole data path against a simple model: a pipelined
//! request stream cut into random, duplicated, reordered segments (ISNs
//! often near 2^32) gives back the same request boundaries, and after k
//! replies are logged and partly acknowledged the takeover query returns
//! exactly the model's receive queue and unacknowledged reply bytes.

use coral_core::wire::{build_tcp_frame, EthernetAddress, TcpFlags, TcpOptions, TcpRepr};
use coral_core::SeqNum;
use coral_core::TakeoverParams;
use coral_core::{ConnTable, TableConfig};
use coral_core::{FourTuple, Instant};
use proptest::prelude::*;
use std::net::Ipv4Addr;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

fn frame(seq: u32, ack: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: 50000,
        dst_port: 80,
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags: TcpFlags(flags),
        window: 1000,
        options: TcpOptions::default(),
    };
    build_tcp_frame(
        EthernetAddress([2; 6]),
        EthernetAddress([4; 6]),
        CLIENT,
        VIP,
        64,
        0,
        &repr,
        data,
    )
    .unwrap()
}

fn request(kind: u8, body: &[u8]) -> Vec<u8> {
    match kind % 3 {
        0 => b"GET /cgi-bin/webstone?size=5 HTTP/1.1\r\nHost: v\r\n\r\n".to_vec(),
        1 => [
            format!("POST /p HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
            body,
        ]
        .concat(),
        _ => {
            let mut v = b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for c in body.chunks(17) {
                v.extend(format!("{:x}\r\n", c.len()).as_bytes());
                v.extend(c);
                v.extend(b"\r\n");
            }
            v.extend(b"0\r\n\r\n");
            v
        }
    }
}

fn response(n: usize) -> Vec<u8> {
    [
        format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").into_bytes(),
        vec![b'r'; n],
    ]
    .concat()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn stream_boundaries_and_takeover_match_model(
        reqs in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..200)), 1..8),
        c_isn in prop_oneof![any::<u32>(), (u32::MAX - 600)..=u32::MAX],
        s_isn in prop_oneof![any::<u32>(), (u32::MAX - 600)..=u32::MAX],
        cuts in proptest::collection::vec((any::<usize>(), 1usize..300), 0..30),
        order in proptest::collection::vec(any::<u32>(), 0..60),
        answered in 0usize..8,
        rsp_sizes in proptest::collection::vec(0usize..300, 8),
        ack_frac in 0u64..=1000,
    ) {
        let mut stream = Vec::new();
        let mut bounds = vec![0u64];
        for (k, b) in &reqs {
            stream.extend(request(*k, b));
            bounds.push(stream.len() as u64);
        }
        let n = stream.len();
        let mut segs: Vec<(usize, usize)> = cuts.iter().map(|&(s, l)| (s % n, (s % n + l).min(n))).collect();
        let mut i = 0;
        while i < n { segs.push((i, (i + 211).min(n))); i += 211; }
        for (j, o) in order.iter().enumerate() {
            let a = j % segs.len();
            let b = (*o as usize) % segs.len();
            segs.swap(a, b);
            if o % 4 == 0 { let s = segs[b]; segs.push(s); }
        }

        let tuple = FourTuple { client_ip: CLIENT, client_port: 50000, server_ip: VIP, server_port: 80 };
        let mut t = ConnTable::new(TableConfig::default());
        let s1 = s_isn.wrapping_add(1);
        t.on_frame(&frame(c_isn, 0, TcpFlags::SYN, b""), Instant(0)).unwrap();
        t.on_frame(&frame(c_isn.wrapping_add(1), s1, TcpFlags::ACK, b""), Instant(1)).unwrap();
        for (s, e) in segs {
            let seq = c_isn.wrapping_add(1).wrapping_add(s as u32);
            t.on_frame(&frame(seq, s1, TcpFlags::ACK | TcpFlags::PSH, &stream[s..e]), Instant(2)).unwrap();
        }
        let got: Vec<(u64, u64)> = t.get(&tuple).unwrap().reply_log().pending_requests()
            .iter().map(|r| (r.start, r.end)).collect();
        let want: Vec<(u64, u64)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
        prop_assert_eq!(got, want);

        // Log replies to the first k requests, then ACK part of them.
        let k = answered.min(reqs.len());
        let mut replies = Vec::new();
        for sz in rsp_sizes.iter().take(k) {
            let r = response(*sz);
            t.log_reply(&tuple, replies.len() as u64, &r).unwrap();
            replies.extend(r);
        }
        let acked = replies.len() as u64 * ack_frac / 1000;
        let end = c_isn.wrapping_add(1).wrapping_add(n as u32);
        t.on_frame(&frame(end, s1.wrapping_add(acked as u32), TcpFlags::ACK, b""), Instant(3)).unwrap();

        let q = t.takeover(&tuple, Instant(4), &TakeoverParams::default()).unwrap();
        prop_assert_eq!(q.send_queue_seq, SeqNum(s1.wrapping_add(acked as u32)));
        prop_assert_eq!(&q.unacked_replies[..], &replies[acked as usize..]);
        prop_assert_eq!(q.recv_queue_seq, SeqNum(c_isn.wrapping_add(1).wrapping_add(bounds[k] as u32)));
        prop_assert_eq!(&q.recv_queue[..], &stream[bounds[k] as usize..]);
        prop_assert_eq!(q.rcv_nxt, SeqNum(end));
        prop_assert_eq!(q.pending_requests, reqs.len() - k);
        prop_assert_eq!(q.window.rcv_wup, end);
    }
}
