//! Hostile input, live (docs/DESIGN.md section 4, "Hostile input"): while 8 keep-alive
//! clients fetch verified replies from a CoRAL pair with a witness, a host
//! on the server LAN throws at every listener what a broken or malicious
//! peer could: slow and oversized HTTP request heads, garbage and truncated
//! streams on the log and join ports, forged, replayed and flooded
//! heartbeats (some with the peer's own source address), forged and
//! replayed witness requests, ARP replies claiming the service address, and
//! a flood of SYNs from addresses that never answer. The clients must not
//! notice, neither node may detect a failure, ask the witness, move the
//! address or exit, the witness may grant nothing, and each rejection is
//! counted where the docs say it is (docs/CLI.md, `counters`).

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::duplex::{
    blank_heartbeat, counter, pair_key, sibling, wrong_key, Duplex, VIP, WITNESS,
};
use coral::io::afpacket::{PacketSocket, VnetHdr};
use coral_core::wire::{build_arp_frame, build_tcp_frame, ArpOperation, ArpRepr};
use coral_core::wire::{EthernetAddress, TcpFlags, TcpOptions, TcpRepr};
use coral_core::{Encoder, Epoch, Message, NodeId, SeqNum, WitnessMsg};

const A: &str = "192.0.2.11";
const B: &str = "192.0.2.12";
/// The attacker's own address on the server LAN.
const X: &str = "192.0.2.50";
const LOG_PORT: u16 = 7010;
const HB_PORT: u16 = 7011;
const JOIN_PORT: u16 = 7014;

/// What the attacker saw; asserted on by the test's thread.
#[derive(Debug, Default)]
struct Seen {
    /// Status line (or "closed") the oversized head got.
    oversized: String,
    /// Log and join connections the nodes closed after garbage.
    closed_streams: usize,
    /// Log and join connections tried.
    streams: usize,
    /// Slow connections still open when the attack ended.
    slow_open: usize,
}

fn mac_of(ns: &str, ip: Option<&str>) -> EthernetAddress {
    let out = match ip {
        // Resolve `ip` from `ns` first (one ping), then read the entry.
        Some(ip) => {
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "1", ip])
                .stdout(Stdio::null())
                .status();
            Command::new("ip")
                .args(["-n", ns, "neigh", "show", ip])
                .output()
                .unwrap()
        }
        None => Command::new("ip")
            .args(["-n", ns, "link", "show", "eth0"])
            .output()
            .unwrap(),
    };
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    let key = if ip.is_some() { "lladdr" } else { "link/ether" };
    let hex = s
        .split_whitespace()
        .skip_while(|w| *w != key)
        .nth(1)
        .unwrap_or_else(|| panic!("no {key} in {s:?}"));
    let mut m = [0u8; 6];
    for (i, b) in hex.split(':').enumerate() {
        m[i] = u8::from_str_radix(b, 16).unwrap();
    }
    EthernetAddress(m)
}

/// 200 connections that send half a request head, then a header line every
/// 300 ms for `secs`; returns how many the server still holds open.
fn slowloris(secs: u64) -> Vec<TcpStream> {
    let mut conns: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect((VIP, 80)).ok())
        .collect();
    for c in &mut conns {
        let _ = c.write_all(b"GET /cgi-bin/webstone?size=10 HTTP/1.1\r\nHost: x\r\n");
    }
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(300));
        conns.retain_mut(|c| c.write_all(b"X-Slow: 1\r\n").is_ok());
    }
    conns
}

/// A request head of 1 MiB that never ends; the status line it gets, or
/// "closed".
fn oversized_head() -> String {
    let mut c = TcpStream::connect((VIP, 80)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = c.write_all(b"GET /cgi-bin/webstone?size=10 HTTP/1.1\r\nHost: x\r\n");
    let line = [b'a'; 1023];
    for _ in 0..1024 {
        if c.write_all(b"X-Pad: ").is_err()
            || c.write_all(&line[..1014]).is_err()
            || c.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let mut buf = [0u8; 256];
    match c.read(&mut buf) {
        Ok(n) if n > 0 => String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        _ => "closed".into(),
    }
}

/// Garbage, a truncated frame and an immediate close on `addr`; how many of
/// the two data-carrying connections the node closed (within 3 s).
fn garbage_streams(addr: (&str, u16)) -> (usize, usize) {
    let mut closed = 0;
    let payloads: [&[u8]; 2] = [
        b"this is not a frame of any channel, just bytes.................",
        // A length prefix promising more than ever arrives, then silence.
        &[0, 0, 0x10, 0, 1, 2, 3],
    ];
    for p in payloads {
        let mut t = TcpStream::connect(addr).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = t.write_all(p);
        if p.len() > 10 {
            let mut sink = [0u8; 64];
            if matches!(t.read(&mut sink), Ok(0) | Err(_)) {
                closed += 1;
            }
        } else {
            // Truncated: shut our side; the node must drop it, not wait.
            let _ = t.shutdown(std::net::Shutdown::Write);
            let mut sink = [0u8; 64];
            if matches!(t.read(&mut sink), Ok(0) | Err(_)) {
                closed += 1;
            }
        }
    }
    drop(TcpStream::connect(addr).unwrap());
    (closed, 2)
}

/// Heartbeats: garbage, a flood of well-formed ones under a wrong key, and
/// genuine-looking ones with the right key but sequence numbers long past,
/// sent from the peer's own address: 2000 + 500 to each node.
fn heartbeats() {
    let good = pair_key();
    let bad = wrong_key();
    let hb = blank_heartbeat();
    // From the attacker's address: garbage and wrong-key heartbeats.
    let s = UdpSocket::bind((X, 0)).unwrap();
    let mut forged = Encoder::new(bad, NodeId(1), Epoch(1), 1_000);
    for i in 0..2000u32 {
        let d = if i % 10 == 0 {
            vec![0xa5; 64 + (i as usize % 1400)]
        } else {
            forged.encode_to_vec(&hb).unwrap()
        };
        for to in [A, B] {
            let _ = s.send_to(&d, (to, HB_PORT));
        }
    }
    // From each node's own address: the right key, the sender's node id,
    // sequence numbers long past (a replay of its first heartbeats).
    for (from, id, to) in [(A, 1, B), (B, 2, A)] {
        let s = spoofed_udp(from);
        let mut old = Encoder::new(good.clone(), NodeId(id), Epoch(1), 1);
        for _ in 0..500 {
            let _ = s.send_to(&old.encode_to_vec(&hb).unwrap(), (to, HB_PORT));
        }
    }
}

/// Witness requests: a well-formed one under a wrong key, and garbage.
/// (With the right key a request from a node the witness never heard from
/// is fresh by definition: the key is the trust boundary.)
fn witness_requests() {
    let bad = wrong_key();
    let ask = Message::Witness(WitnessMsg::Request {
        vip: VIP.parse().unwrap(),
        node: NodeId(2),
        epoch: Epoch(2),
    });
    let to: SocketAddr = WITNESS.parse().unwrap();
    let s = spoofed_udp(B);
    let mut forged = Encoder::new(bad, NodeId(2), Epoch(1), 1_000_000);
    let _ = s.send_to(&forged.encode_to_vec(&ask).unwrap(), to);
    let _ = s.send_to(b"garbage for the witness", to);
}

/// A UDP socket bound to `from` (port 0), which need not be ours:
/// `IP_TRANSPARENT` lets the attacker send with another host's address.
fn spoofed_udp(from: &str) -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_ip_transparent(true).unwrap();
    let addr: SocketAddr = (from.parse::<Ipv4Addr>().unwrap(), 0).into();
    s.bind(&addr.into()).unwrap();
    s.into()
}

/// ARP replies saying the service address is at the attacker, sent to each
/// server (not broadcast: the client shares this LAN in the test topology,
/// and ARP has no authentication a node could check).
fn spoofed_arp(sock: &PacketSocket, me: EthernetAddress, servers: &[EthernetAddress]) {
    for &to in servers {
        let arp = ArpRepr {
            operation: ArpOperation::Reply,
            sender_hw: me,
            sender_ip: VIP.parse().unwrap(),
            target_hw: to,
            target_ip: Ipv4Addr::new(192, 0, 2, 12),
        };
        for _ in 0..20 {
            sock.send(&VnetHdr::default(), &build_arp_frame(me, to, &arp))
                .unwrap();
        }
    }
}

/// 5000 SYNs to the service address from addresses nobody answers for.
fn syn_flood(sock: &PacketSocket, me: EthernetAddress, front: EthernetAddress) {
    for i in 0..5000u32 {
        let src = Ipv4Addr::new(192, 0, 2, 200 + (i % 50) as u8);
        let tcp = TcpRepr {
            src_port: 10_000 + (i % 50_000) as u16,
            dst_port: 80,
            seq: SeqNum(i.wrapping_mul(2_654_435_761)),
            ack: SeqNum(0),
            flags: TcpFlags(TcpFlags::SYN),
            window: 64_240,
            options: TcpOptions::default(),
        };
        let f = build_tcp_frame(
            me,
            front,
            src,
            VIP.parse().unwrap(),
            64,
            i as u16,
            &tcp,
            &[],
        )
        .unwrap();
        let _ = sock.send(&VnetHdr::default(), &f);
    }
}

#[test]
fn netns_hostile_input_on_every_listener_changes_nothing() {
    let mut d = Duplex::start("hst", 20, 5);
    let x = d.ns.add("x");
    d.ns.plug(&x, &format!("{X}/24"), &d.sw, "x");
    let servers = [mac_of(&d.a, None), mac_of(&d.b, None)];
    let me = mac_of(&x, None);
    let front = mac_of(&x, Some(VIP));

    let out_dir = d.dir.path().join("load");
    let load = Command::new("ip")
        .args(["netns", "exec", &d.c])
        .arg(sibling("coral-load"))
        .args(["--url", &format!("http://{VIP}/cgi-bin/webstone")])
        .args(["--clients", "8", "--size", "4096"])
        .args(["--duration-s", "14", "--warmup-s", "0", "--timeout-s", "10"])
        .arg("--out")
        .arg(&out_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));

    let seen = common::in_netns(&x, move || {
        let slow = std::thread::spawn(|| slowloris(8));
        let mut seen = Seen {
            oversized: oversized_head(),
            ..Seen::default()
        };
        for addr in [(B, LOG_PORT), (A, JOIN_PORT), (B, JOIN_PORT)] {
            let (c, n) = garbage_streams(addr);
            seen.closed_streams += c;
            seen.streams += n;
        }
        heartbeats();
        witness_requests();
        let sock = PacketSocket::open_send_only("eth0").unwrap();
        spoofed_arp(&sock, me, &servers);
        syn_flood(&sock, me, front);
        seen.slow_open = slow.join().unwrap().len();
        seen
    });
    eprintln!("attacker saw: {seen:?}");

    let res = load.wait_with_output().unwrap();
    let ctx = d.logs();
    assert!(
        res.status.success(),
        "coral-load: {}\n{ctx}",
        String::from_utf8_lossy(&res.stderr)
    );
    let s: serde_json::Value = common::duplex::load_summary(&out_dir);
    for k in ["errors", "digest_mismatches", "reconnects", "requests_lost"] {
        assert_eq!(s[k].as_u64(), Some(0), "{k}: {s}\n{ctx}");
    }
    assert!(s["ok"].as_u64().unwrap_or(0) > 100, "{s}");

    // The oversized head was refused, never served.
    assert!(
        !seen.oversized.contains(" 200"),
        "a 1 MiB request head was served: {seen:?}"
    );
    // Every garbage or truncated log/join stream was closed by the node.
    assert_eq!(seen.closed_streams, seen.streams, "{seen:?}\n{ctx}");

    // Nobody detected anything, asked the witness, moved or exited.
    for h in ["server-a", "server-b"] {
        let ev = d.events(h);
        for bad in [
            ",peer-failed,",
            ",witness-ask,",
            ",simplex,",
            ",takeover,",
            ",fenced,",
        ] {
            assert!(!ev.contains(bad), "{h} recorded {bad}\n{ctx}");
        }
    }
    for (i, n) in d.nodes.iter_mut().enumerate() {
        assert!(n.try_wait().unwrap().is_none(), "node {i} exited\n{ctx}");
    }
    let w = std::fs::read_to_string(d.dir.path().join("witness-events.csv")).unwrap_or_default();
    assert!(!w.contains(",grant,"), "the witness granted\n{w}");
    assert!(
        w.matches(",witness-reject,").count() >= 2,
        "the witness did not count the forged request and the garbage\n{w}"
    );

    // Each rejection counted where the docs say.
    let (ea, eb) = (d.events("server-a"), d.events("server-b"));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (ea2, eb2) = (d.events("server-a"), d.events("server-b"));
        let hb = (counter(&ea2, "hb_rejected"), counter(&eb2, "hb_rejected"));
        let log = counter(&eb2, "log_rejected") + counter(&eb2, "log_foreign");
        // 2000 from the attacker's address, 500 spoofed replays each.
        if hb.0 >= 2500 && hb.1 >= 2500 && log >= 1 {
            eprintln!(
                "hb_rejected a={} b={} log_rejected+foreign b={log}",
                hb.0, hb.1
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hb_rejected={hb:?} log={log}\n{ea}\n{eb}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for h in ["server-a", "server-b"] {
        assert!(
            d.events(h).contains(",join-rejected,"),
            "{h} recorded no join-rejected\n{ctx}"
        );
    }
    // And a new client is still served.
    assert_eq!(d.status_of("/cgi-bin/webstone?size=100"), "200", "{ctx}");
}
