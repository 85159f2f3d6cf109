//! Duplex CoRAL in real namespaces (docs/DESIGN.md sections 2 and 4): the backup
//! fronts the service address and records every client frame before
//! forwarding it; the primary serves on kernel TCP and logs every response
//! before writing it. Clients are unmodified: curl, Python's http.client,
//! and the kit's load driver.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::duplex::{check_reply, counter, sibling, Duplex, VIP};

#[test]
fn netns_duplex_serves_unmodified_clients_through_the_front() {
    // The eBPF front (the default), named so that it runs here even when
    // CORAL_TEST_FRONT=packet puts the other namespace tests on the packet
    // front.
    let d = Duplex::start_configured("dpx", 50, 20, true, "front = \"ebpf\"\n");

    // curl, keep-alive, several URLs on one connection.
    let urls: Vec<String> = (0..3)
        .map(|i| format!("http://{VIP}/cgi-bin/webstone?size={}", 1000 + i))
        .collect();
    let mut args = vec![
        "curl",
        "-s",
        "-i",
        "--max-time",
        "10",
        "-w",
        "\n%{num_connects}\n",
    ];
    for u in &urls {
        args.push(u);
    }
    let out = d.in_client(&args);
    assert!(out.status.success(), "curl failed: {}", d.logs());
    let text = out.stdout;
    let mut at = 0;
    for i in 0..3 {
        let start = at
            + text[at..]
                .windows(9)
                .position(|w| w == b"HTTP/1.1 ")
                .unwrap();
        assert_eq!(check_reply(&text[start..], 1000 + i), "server-a");
        at = start + 1;
    }

    // Python's standard library, keep-alive, digest checked in Python.
    let py = "import http.client,hashlib\nc=http.client.HTTPConnection('192.0.2.100',80,timeout=10)\n\
              for n in (1,5000,70000):\n c.request('GET','/cgi-bin/webstone?size=%d'%n)\n r=c.getresponse();b=r.read()\n \
              assert r.status==200 and len(b)==n and hashlib.sha256(b).hexdigest()==r.getheader('X-Coral-Digest'), n\nprint('ok')";
    let out = d.in_client(&["python3", "-c", py]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Three pipelined requests in one write.
    let mut sock = common::in_netns(&d.c, || std::net::TcpStream::connect((VIP, 80)).unwrap());
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let one = format!("GET /cgi-bin/webstone?size=2000 HTTP/1.1\r\nHost: {VIP}\r\n\r\n");
    sock.write_all(one.repeat(3).as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while got.windows(9).filter(|w| w == b"HTTP/1.1 ").count() < 3 || !complete3(&got) {
        let n = sock.read(&mut buf).expect("pipelined replies");
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let mut at = 0;
    for _ in 0..3 {
        let start = at
            + got[at..]
                .windows(9)
                .position(|w| w == b"HTTP/1.1 ")
                .unwrap();
        check_reply(&got[start..], 2000);
        at = start + 1;
    }

    // The kit's load driver: 8 keep-alive clients for 2 s, every reply verified.
    let out_dir = d.dir.path().join("load");
    let out = d.in_client(&[
        sibling("coral-load").to_str().unwrap(),
        "--url",
        &format!("http://{VIP}/cgi-bin/webstone"),
        "--clients",
        "8",
        "--duration-s",
        "2",
        "--warmup-s",
        "0",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "coral-load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = common::duplex::load_summary(&out_dir);
    assert!(summary["ok"].as_u64().unwrap() > 50, "{summary}");
    assert_eq!(summary["errors"].as_u64().unwrap(), 0, "{summary}");
    assert_eq!(
        summary["digest_mismatches"].as_u64().unwrap(),
        0,
        "{summary}"
    );

    // The backup has no kernel socket on the service address.
    let ss = Command::new("ip")
        .args(["netns", "exec", &d.b, "ss", "-tan"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&ss.stdout).contains(VIP),
        "{}",
        String::from_utf8_lossy(&ss.stdout)
    );
    // The primary has them (its listener at least).
    let ss = Command::new("ip")
        .args(["netns", "exec", &d.a, "ss", "-tan"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&ss.stdout).contains(&format!("{VIP}:80")));
    assert!(d.events("server-b").contains("front=ebpf"));

    // Clients reach the service address at the backup's MAC (the front
    // answers ARP for it; the primary never does).
    let neigh =
        String::from_utf8_lossy(&d.in_client(&["ip", "neigh", "show", VIP]).stdout).to_string();
    let b_link = Command::new("ip")
        .args(["-n", &d.b, "-br", "link", "show", "eth0"])
        .output()
        .unwrap();
    let b_mac = String::from_utf8_lossy(&b_link.stdout)
        .split_whitespace()
        .nth(2)
        .unwrap_or("?")
        .to_string();
    assert!(
        neigh.contains(&b_mac),
        "client resolves {VIP} to the front's MAC {b_mac}: {neigh}"
    );
}

fn complete3(buf: &[u8]) -> bool {
    // Three heads and three 2000-byte bodies.
    let mut at = 0;
    for _ in 0..3 {
        let Some(p) = buf[at..].windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        at += p + 4 + 2000;
        if at > buf.len() {
            return false;
        }
    }
    true
}

/// The packet front (selectable): the backup process itself records each
/// frame before forwarding it, so a stopped backup stops every client byte
/// at once. (With the eBPF front a frame counts as recorded once it is in
/// the ring, so a stopped backup forwards until its ring is full: see
/// `netns_ebpf_front_records_before_forwarding_when_the_backup_stops`.)
#[test]
fn netns_packet_front_records_before_forwarding_when_the_backup_stops() {
    // Misses set high: the stopped backup is not declared failed here.
    let d = Duplex::start_configured("rbp", 100, 100, true, "front = \"packet\"\n");
    assert!(d.events("server-b").contains("front=packet"));
    let mut sock = common::in_netns(&d.c, || std::net::TcpStream::connect((VIP, 80)).unwrap());
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let req = format!("GET /cgi-bin/webstone?size=100 HTTP/1.1\r\nHost: {VIP}\r\n\r\n");
    sock.write_all(req.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    assert!(
        sock.read(&mut buf).unwrap() > 0,
        "served while the backup runs"
    );

    let backup_pid = d.nodes[0].id().to_string();
    common::sh(&["kill", "-STOP", &backup_pid]);
    sock.write_all(req.as_bytes()).unwrap();
    let r = sock.read(&mut buf);
    let unacked = Command::new("ip")
        .args(["netns", "exec", &d.c, "ss", "-tni", "dst", VIP])
        .output()
        .unwrap();
    common::sh(&["kill", "-CONT", &backup_pid]);
    assert!(
        r.is_err(),
        "no reply may come while the backup cannot record: {r:?}"
    );
    let text = String::from_utf8_lossy(&unacked.stdout).to_string();
    assert!(
        text.contains("unacked:") || text.contains("retrans"),
        "the client's bytes stay unacknowledged: {text}"
    );

    // Once the backup runs again, the client's retransmission goes through.
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = 0;
    while got == 0 {
        got = sock.read(&mut buf).expect("answered after SIGCONT");
    }
}

#[test]
fn netns_forged_malformed_and_replayed_control_traffic_is_rejected_and_counted() {
    use coral_core::{Encoder, Epoch, NodeId};

    let d = Duplex::start("frg", 50, 20);
    let good_key = common::duplex::pair_key();
    let bad_key = common::duplex::wrong_key();
    let hb = common::duplex::blank_heartbeat();
    let mut forged = Encoder::new(bad_key, NodeId(1), Epoch(1), u64::MAX / 2);
    let forged = forged.encode_to_vec(&hb).unwrap();
    // Authentic, but sent twice: the second copy is a replay.
    let mut genuine = Encoder::new(good_key.clone(), NodeId(1), Epoch(1), u64::MAX / 2);
    let genuine = genuine.encode_to_vec(&hb).unwrap();
    common::in_netns(&d.a, move || {
        let s = std::net::UdpSocket::bind("192.0.2.11:0").unwrap();
        for dgram in [
            &b"garbage"[..],
            &[0u8; 3000][..],
            &forged,
            &genuine,
            &genuine,
        ] {
            s.send_to(dgram, "192.0.2.12:7011").unwrap();
        }
        // Garbage on the log port from the peer's own address.
        let mut t = std::net::TcpStream::connect("192.0.2.12:7010").unwrap();
        let _ =
            t.write_all(b"GET / HTTP/1.1\r\n\r\n this is not a log frame at all................");
        let mut sink = [0u8; 16];
        t.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert!(
            matches!(t.read(&mut sink), Ok(0) | Err(_)),
            "the backup closes a garbage log stream"
        );
    });
    // A log connection from a host that is not the primary is refused.
    common::in_netns(&d.c, || {
        let mut t = std::net::TcpStream::connect("192.0.2.12:7010").unwrap();
        t.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut sink = [0u8; 16];
        assert!(matches!(t.read(&mut sink), Ok(0) | Err(_)));
    });

    // The node keeps serving, and says what it rejected.
    assert_eq!(d.status_of("/cgi-bin/webstone"), "200");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ev = d.events("server-b");
        let (hb, log, foreign) = (
            counter(&ev, "hb_rejected"),
            counter(&ev, "log_rejected"),
            counter(&ev, "log_foreign"),
        );
        if hb >= 4 && log >= 1 && foreign >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hb_rejected={hb} log_rejected={log} log_foreign={foreign}\n{ev}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn netns_log_before_write_no_reply_byte_before_the_backup_acks() {
    let d = Duplex::start("lbw", 50, 100);
    let mut sock = common::in_netns(&d.c, || std::net::TcpStream::connect((VIP, 80)).unwrap());
    let req = format!("GET /cgi-bin/webstone?size=5000 HTTP/1.1\r\nHost: {VIP}\r\n\r\n");
    let mut buf = vec![0u8; 65536];
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.write_all(req.as_bytes()).unwrap();
    assert!(sock.read(&mut buf).unwrap() > 0);
    std::thread::sleep(Duration::from_millis(1200)); // a counters line is written
    let logged_before = counter(&d.events("server-b"), "log_replies");

    // Hold back the backup's log acknowledgements (its outbound segments from
    // the log port); everything else flows: the request is recorded,
    // forwarded, answered, and the reply logged at the backup.
    common::sh(&["ip", "netns", "exec", &d.b, "nft", "add table inet hold; add chain inet hold out { type filter hook output priority 0; }; add rule inet hold out tcp sport 7010 drop"]);
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    sock.write_all(req.as_bytes()).unwrap();
    let r = sock.read(&mut buf);
    assert!(
        r.is_err(),
        "a reply byte reached the client before the backup acknowledged its log: {r:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while counter(&d.events("server-b"), "log_replies") <= logged_before {
        assert!(Instant::now() < deadline, "the backup logged the reply");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Release the acks: the reply goes out, whole and correct.
    common::sh(&["ip", "netns", "exec", &d.b, "nft", "delete table inet hold"]);
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 5000
        || got
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| got.len() - p - 4 < 5000)
            .unwrap_or(true)
    {
        let n = sock.read(&mut buf).expect("the reply after the ack");
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(check_reply(&got, 5000), "server-a");
}

/// The eBPF front: a frame counts as recorded once it is in the ring (the
/// ring dies with the node, and a dead backup never takes over), so a
/// stopped backup process lets client frames through until its ring is
/// full, and not one byte more: the program drops what it cannot record
/// (`front_ring_full`) and the clients retransmit. Six connections send
/// 1.5 MiB of pipelined requests, far more than the 256 KiB ring, while the
/// backup is stopped; the primary (whose receive buffers would take more)
/// acknowledges at most the ring's worth. After SIGCONT every request is
/// answered correctly on its connection, and a takeover right after shows
/// that every byte the primary acknowledged is in the backup's table (a gap
/// would make the connections unrestorable: reset, not served by server-b).
#[test]
fn netns_ebpf_front_records_before_forwarding_when_the_backup_stops() {
    const RING: u64 = 256 << 10;
    const CONNS: usize = 6;
    const REQS: usize = 64;
    // Misses set high: the stopped backup is not declared failed here.
    let d = Duplex::start_configured(
        "rbe",
        50,
        100,
        true,
        &format!("front = \"ebpf\"\nfront_ring_bytes = {RING}\n"),
    );
    assert!(d.events("server-b").contains("front=ebpf"));
    // About 4 KiB per request: a padding header the server ignores.
    let pad = "x".repeat(4000);
    let req = move |size: usize| {
        format!("GET /cgi-bin/webstone?size={size} HTTP/1.1\r\nHost: {VIP}\r\nX-Pad: {pad}\r\n\r\n")
    };
    let size_of = |c: usize, i: usize| 100 + c * REQS + i;
    let mut socks = Vec::new();
    for _ in 0..CONNS {
        let mut s = common::in_netns(&d.c, || std::net::TcpStream::connect((VIP, 80)).unwrap());
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(req(100).as_bytes()).unwrap();
        assert_eq!(read_replies(&mut s, &[100]), ["server-a"]);
        socks.push(s);
    }
    let (acked_before, n) = client_bytes_acked(&d);
    assert_eq!(n, CONNS, "the client's connections in ss");

    let backup_pid = d.nodes[0].id().to_string();
    common::sh(&["kill", "-STOP", &backup_pid]);
    let mut sent = 0;
    let writers: Vec<_> = socks
        .iter()
        .enumerate()
        .map(|(c, s)| {
            let mut w = s.try_clone().unwrap();
            let batch: String = (0..REQS).map(|i| req(size_of(c, i))).collect();
            sent += batch.len() as u64;
            std::thread::spawn(move || w.write_all(batch.as_bytes()))
        })
        .collect();
    // Time for the clients to send far more than the ring holds (the
    // assertions below hold however long this is).
    std::thread::sleep(Duration::from_secs(2));
    let (acked_stopped, _) = client_bytes_acked(&d);
    common::sh(&["kill", "-CONT", &backup_pid]);
    let passed = acked_stopped - acked_before;
    assert!(
        passed <= RING,
        "the primary acknowledged {passed} bytes while the backup was stopped: more than its \
         {RING}-byte ring can have recorded"
    );
    assert!(passed < sent, "{passed} of {sent} bytes acknowledged");

    // The clients' retransmissions go through once the backup runs again.
    for w in writers {
        w.join().unwrap().expect("the client's writes complete");
    }
    for (c, s) in socks.iter_mut().enumerate() {
        let sizes: Vec<usize> = (0..REQS).map(|i| size_of(c, i)).collect();
        let served = read_replies(s, &sizes);
        assert!(served.iter().all(|w| w == "server-a"), "{served:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter(&d.events("server-b"), "front_ring_full") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        counter(&d.events("server-b"), "front_ring_full") > 0,
        "the ring overflowed (else this test tested nothing): {}",
        d.events("server-b")
    );

    // Every byte the primary acknowledged is in the table: the backup
    // takes every connection over and serves it.
    let primary_pid = d.nodes[1].id().to_string();
    common::sh(&["kill", "-KILL", &primary_pid]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !d.events("server-b").contains(",takeover,") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        d.events("server-b").contains(",takeover,"),
        "no takeover: {}",
        d.logs()
    );
    for s in &mut socks {
        s.write_all(req(1000).as_bytes()).unwrap();
        assert_eq!(read_replies(s, &[1000]), ["server-b"], "{}", d.logs());
    }
}

/// The stopped-backup case that first lost its connection through the
/// eBPF front: a GET with a 1 MiB body, sent while the backup is stopped.
/// The ring let the head through, the primary answered it at once, and
/// its reply waited for the stopped backup's log acknowledgement; the
/// server's closing drain (it does not read GET bodies) gave up on that
/// wait after two seconds and dropped the socket with the reply unwritten:
/// the kernel reset the connection. The reply must come, correct, after
/// SIGCONT, however long the stop.
#[test]
fn netns_ebpf_front_get_with_a_large_body_sent_while_the_backup_stops_is_answered() {
    let d = Duplex::start_configured(
        "rbb",
        50,
        100,
        true,
        "front = \"ebpf\"\nfront_ring_bytes = 262144\n",
    );
    let mut sock = common::in_netns(&d.c, || std::net::TcpStream::connect((VIP, 80)).unwrap());
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let small = format!("GET /cgi-bin/webstone?size=100 HTTP/1.1\r\nHost: {VIP}\r\n\r\n");
    sock.write_all(small.as_bytes()).unwrap();
    assert_eq!(read_replies(&mut sock, &[100]), ["server-a"]);

    let backup_pid = d.nodes[0].id().to_string();
    common::sh(&["kill", "-STOP", &backup_pid]);
    let body = vec![b'x'; 1 << 20];
    let mut req = format!(
        "GET /cgi-bin/webstone?size=1000 HTTP/1.1\r\nHost: {VIP}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let mut w = sock.try_clone().unwrap();
    // The body may be cut short by the server's close after its reply.
    let writer = std::thread::spawn(move || w.write_all(&req));
    // Longer than the server's closing drain (two seconds).
    std::thread::sleep(Duration::from_secs(3));
    common::sh(&["kill", "-CONT", &backup_pid]);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("after {} bytes of the reply: {e}\n{}", got.len(), d.logs()),
        }
    }
    let _ = writer.join();
    assert_eq!(check_reply(&got, 1000), "server-a");
}

/// Read one reply per entry of `sizes` (each checked: 200, length, digest)
/// from `s`; returns who served each.
fn read_replies(s: &mut std::net::TcpStream, sizes: &[usize]) -> Vec<String> {
    let mut got = Vec::new();
    let mut at = 0;
    let mut buf = vec![0u8; 65536];
    let mut served = Vec::new();
    for &size in sizes {
        let head = loop {
            if let Some(p) = got[at..].windows(4).position(|w| w == b"\r\n\r\n") {
                if got.len() >= at + p + 4 + size {
                    break p + 4;
                }
            }
            let n = s
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("after {} replies: {e}", served.len()));
            assert!(n > 0, "connection closed after {} replies", served.len());
            got.extend_from_slice(&buf[..n]);
        };
        served.push(check_reply(&got[at..], size));
        at += head + size;
    }
    assert_eq!(at, got.len(), "nothing beyond the replies");
    served
}

/// The client's connections to the service address (`ss -tni`): the sum
/// of their `bytes_acked`, and how many there are.
fn client_bytes_acked(d: &Duplex) -> (u64, usize) {
    let out = d.in_client(&["ss", "-tni", "state", "established"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines();
    let (mut sum, mut n) = (0, 0);
    while let Some(l) = lines.next() {
        if !l.contains(&format!("{VIP}:80")) {
            continue;
        }
        let info = lines.next().unwrap_or_default();
        n += 1;
        sum += info
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("bytes_acked:"))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    (sum, n)
}
