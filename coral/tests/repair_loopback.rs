//! A live loopback connection moved from one server socket to a new one built
//! with TCP_REPAIR from the old one's dumped state: the client keeps its
//! connection (same socket, no error), an unanswered request re-queued into
//! the rebuilt socket is read there, and data flows both ways afterwards.
//! Needs CAP_NET_ADMIN (tests run as root).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use coral::io::repair::{self, RepairSpec};

/// The MSS a peer on an Ethernet LAN advertises.
const ETHERNET_MSS: u16 = 1460;

fn read_exact_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).expect("read");
    buf
}

#[test]
fn connection_survives_move_to_repaired_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_addr = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(server_addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let client_addr = client.local_addr().unwrap();
    let (mut old, _) = listener.accept().unwrap();
    drop(listener);

    // One full exchange on the original socket.
    client.write_all(b"ping1").unwrap();
    assert_eq!(read_exact_n(&mut old, 5), b"ping1");
    old.write_all(b"pong1").unwrap();
    assert_eq!(read_exact_n(&mut client, 5), b"pong1");

    // A request the old server received but never answered.
    client.write_all(b"ping2").unwrap();
    assert_eq!(read_exact_n(&mut old, 5), b"ping2");
    std::thread::sleep(Duration::from_millis(50)); // let the ACKs settle

    let d = repair::dump(old.as_raw_fd()).expect("dump");
    assert_eq!(d.info.state, 1, "ESTABLISHED");
    let (local, remote) = match (server_addr, client_addr) {
        (SocketAddr::V4(l), SocketAddr::V4(r)) => (l, r),
        _ => unreachable!(),
    };
    repair::close_silently(old).expect("silent close");

    let spec = RepairSpec {
        local,
        remote,
        send_seq: d.send_seq,
        recv_seq: d.recv_seq.wrapping_sub(5),
        recv_queue: b"ping2".to_vec(),
        // An Ethernet peer's MSS rather than loopback's 64 KiB, so the check
        // below sees whether the rebuilt socket really sends with it.
        options: d.info.repair_options(ETHERNET_MSS),
        timestamp: Some(d.timestamp.wrapping_add(10) & !1),
        window: d.window,
        transparent: false,
        mark: 0,
    };
    let mut new = repair::build_repaired_socket(&spec).expect("rebuild");
    new.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

    // The re-queued request is read from the rebuilt socket and answered.
    assert_eq!(read_exact_n(&mut new, 5), b"ping2");
    new.write_all(b"pong2").unwrap();
    assert_eq!(read_exact_n(&mut client, 5), b"pong2");

    // And the connection goes on in both directions, bigger than one segment.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    client.write_all(b"ping3").unwrap();
    assert_eq!(read_exact_n(&mut new, 5), b"ping3");
    new.write_all(&big).unwrap();
    assert_eq!(read_exact_n(&mut client, big.len()), big);

    // Same options after the move.
    let after = repair::tcp_info(new.as_raw_fd()).unwrap();
    assert_eq!(after.state, 1);
    assert_eq!(after.timestamps, d.info.timestamps);
    assert_eq!(after.sack, d.info.sack);
    assert_eq!(
        (after.snd_wscale, after.rcv_wscale),
        (d.info.snd_wscale, d.info.rcv_wscale)
    );
    // Segments of the restored MSS, not of the 536-byte default the kernel
    // fixes at connect when TCP_MAXSEG is not set first (524 with timestamps).
    let ts = if d.info.timestamps { 12 } else { 0 };
    assert_eq!(
        after.snd_mss,
        u32::from(ETHERNET_MSS) - ts,
        "send MSS after the move"
    );
}

#[test]
fn silent_close_sends_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (srv, _) = listener.accept().unwrap();
    repair::close_silently(srv).unwrap();
    // A normal close would deliver EOF (FIN) at once; a silent one delivers
    // nothing, so the read times out.
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 1];
    let err = client.read(&mut b).expect_err("no FIN or RST may arrive");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err:?}"
    );
}

/// A connection moved to a rebuilt socket, with or without the takeover's
/// filler byte (docs/DESIGN.md 4): returns the rebuilt socket's RTO (µs)
/// once everything it sent is acknowledged.
fn rto_after_rebuild(filler: bool) -> u32 {
    // A loopback address of its own (drawn from the clock): no TCP metrics
    // cache entry, which would seed the RTO, exists for it.
    let r = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        / 7;
    let ip = std::net::Ipv4Addr::new(
        127,
        100 + (r % 100) as u8,
        (r >> 8) as u8,
        (r >> 16) as u8 | 1,
    );
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let server_addr = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(server_addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let client_addr = client.local_addr().unwrap();
    let (mut old, _) = listener.accept().unwrap();
    drop(listener);
    old.write_all(b"pong1").unwrap();
    assert_eq!(read_exact_n(&mut client, 5), b"pong1");
    std::thread::sleep(Duration::from_millis(50)); // let the ACKs settle
    let d = repair::dump(old.as_raw_fd()).expect("dump");
    let (local, remote) = match (server_addr, client_addr) {
        (SocketAddr::V4(l), SocketAddr::V4(r)) => (l, r),
        _ => unreachable!(),
    };
    repair::close_silently(old).expect("silent close");
    let spec = RepairSpec {
        local,
        remote,
        // The takeover's send queue starts one byte early for the filler.
        send_seq: d.send_seq.wrapping_sub(u32::from(filler)),
        recv_seq: d.recv_seq,
        recv_queue: Vec::new(),
        options: d.info.repair_options(ETHERNET_MSS),
        timestamp: Some(d.timestamp.wrapping_add(10) & !1),
        window: d.window,
        transparent: false,
        mark: 0,
    };
    let mut new = repair::build_in_repair(&spec).expect("rebuild");
    repair::leave_repair(new.as_raw_fd()).expect("leave repair");
    if filler {
        // A byte the client already has ("pong1"'s last): discarded unread
        // and acknowledged at once.
        new.write_all(b"1").unwrap();
    }
    for _ in 0..200 {
        if repair::tcp_info(new.as_raw_fd()).unwrap().unacked == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let info = repair::tcp_info(new.as_raw_fd()).unwrap();
    assert_eq!(info.unacked, 0, "the client acknowledged everything");
    // The client's byte stream is unchanged: the next bytes are new ones.
    new.write_all(b"pong2").unwrap();
    assert_eq!(read_exact_n(&mut client, 5), b"pong2");
    info.rto_us
}

/// Without an RTT sample a rebuilt socket keeps the kernel's 3 s fallback
/// RTO until its first data is acknowledged; the filler byte, acknowledged
/// at once, gives it a sample (the 200 ms minimum plus the RTT).
#[test]
fn filler_byte_gives_a_rebuilt_socket_an_rtt_sample() {
    let without = rto_after_rebuild(false);
    let with = rto_after_rebuild(true);
    eprintln!("RTO of a rebuilt socket: {without} us without the filler, {with} us with it");
    assert!(
        without >= 1_000_000,
        "fallback RTO without filler: {without} us"
    );
    assert!(with < 1_000_000, "RTO after the filler: {with} us");
}
