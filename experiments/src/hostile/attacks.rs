//! The hostile-input attacks (docs/DESIGN.md 4, "Hostile input"): what a
//! broken or malicious host on the server LAN can throw at every listener
//! of a CoRAL pair. Each function runs on a thread inside the attacker's
//! network namespace ([`in_netns`]) and returns what it sent and what it
//! saw; deciding whether the pair took it well is the experiment's
//! ([`super`]), from the clients' records and the nodes' counters.

use coral::io::afpacket::{PacketSocket, VnetHdr};
use coral_core::wire::{build_arp_frame, build_tcp_frame, ArpOperation, ArpRepr};
use coral_core::wire::{EthernetAddress, TcpFlags, TcpOptions, TcpRepr};
use coral_core::{Encoder, Epoch, Key, Message, NodeId, SeqNum, WitnessMsg};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A pair under attack, as the attacker knows it.
#[derive(Clone)]
pub struct Target {
    /// The service address.
    pub vip: Ipv4Addr,
    /// HTTP port of the service.
    pub http_port: u16,
    /// LAN address and node id of each server (server-a, server-b).
    pub servers: [(Ipv4Addr, u32); 2],
    /// The witness's UDP address.
    pub witness: SocketAddr,
    /// The pair's key (replays need it; forgeries use another).
    pub key: Key,
    /// Log channel, heartbeat and JOIN ports (the nodes' defaults).
    pub log_port: u16,
    /// Heartbeat port.
    pub hb_port: u16,
    /// JOIN port.
    pub join_port: u16,
}

/// A key the pair does not hold.
pub fn wrong_key() -> Key {
    Key::new(b"not-the-key-at-all-0123456789").expect("a 29-byte key")
}

/// A heartbeat of a duplex node reporting no address (to forge or replay).
pub fn blank_heartbeat() -> Message {
    Message::Heartbeat(coral_core::Heartbeat {
        mode: coral_core::ModeTag::Duplex,
        vips: vec![],
        echo: 0,
        sent_unix_ns: 0,
        answer: false,
    })
}

/// Runs `f` on a new thread that entered the network namespace at `path`
/// (`/run/netns/NAME`); sockets it creates, and processes it starts, live
/// there.
pub fn in_netns<T: Send + 'static>(
    path: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let path = path.to_string();
    std::thread::spawn(move || -> anyhow::Result<T> {
        let file = std::fs::File::open(&path).map_err(|e| anyhow::anyhow!("open {path}: {e}"))?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| anyhow::anyhow!("setns {path}: {e}"))?;
        Ok(f())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the attacker's thread panicked"))?
}

/// The MAC of `dev` in the current namespace, or (with `ip`) the MAC the
/// neighbour table holds for `ip` after one ping.
pub fn mac_of(dev: &str, ip: Option<Ipv4Addr>) -> anyhow::Result<EthernetAddress> {
    let out = match ip {
        Some(ip) => {
            let ip = ip.to_string();
            let _ = Command::new("ping")
                .args(["-c", "1", "-W", "1", &ip])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            Command::new("ip").args(["neigh", "show", &ip]).output()?
        }
        None => Command::new("ip").args(["link", "show", dev]).output()?,
    };
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    let key = if ip.is_some() { "lladdr" } else { "link/ether" };
    let hex = s
        .split_whitespace()
        .skip_while(|w| *w != key)
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("no {key} in {s:?}"))?;
    parse_mac(hex)
}

/// `02:00:c0:00:02:0b` as an address.
pub fn parse_mac(s: &str) -> anyhow::Result<EthernetAddress> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        anyhow::bail!("not a MAC: {s:?}");
    }
    let mut m = [0u8; 6];
    for (i, b) in parts.iter().enumerate() {
        m[i] = u8::from_str_radix(b, 16).map_err(|e| anyhow::anyhow!("{s:?}: {e}"))?;
    }
    Ok(EthernetAddress(m))
}

/// `conns` connections that send half a request head, then a header line
/// every 300 ms for `secs`; returns (connections opened, still open at
/// the end: the server kept holding them).
pub fn slowloris(t: &Target, conns: usize, secs: f64) -> (usize, usize) {
    let mut open: Vec<TcpStream> = (0..conns)
        .filter_map(|_| TcpStream::connect((t.vip, t.http_port)).ok())
        .collect();
    let opened = open.len();
    for c in &mut open {
        let _ = c.write_all(b"GET /cgi-bin/webstone?size=10 HTTP/1.1\r\nHost: x\r\n");
    }
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(300));
        open.retain_mut(|c| c.write_all(b"X-Slow: 1\r\n").is_ok());
    }
    (opened, open.len())
}

/// A request head of 1 MiB that never ends; the status line it got, or
/// `closed`.
pub fn oversized_head(t: &Target) -> String {
    let Ok(mut c) = TcpStream::connect((t.vip, t.http_port)) else {
        return "refused".into();
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = c.write_all(b"GET /cgi-bin/webstone?size=10 HTTP/1.1\r\nHost: x\r\n");
    let line = [b'a'; 1014];
    for _ in 0..1024 {
        if c.write_all(b"X-Pad: ").is_err()
            || c.write_all(&line).is_err()
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

/// Garbage, a truncated frame, and a bare connect-and-close on `addr`;
/// returns (data-carrying connections the node closed within 3 s, tried:
/// 2).
pub fn garbage_streams(addr: SocketAddrV4) -> (usize, usize) {
    let mut closed = 0;
    let payloads: [&[u8]; 2] = [
        b"this is not a frame of any channel, just bytes.................",
        // A length prefix promising more than ever arrives, then silence.
        &[0, 0, 0x10, 0, 1, 2, 3],
    ];
    for p in payloads {
        let Ok(mut t) = TcpStream::connect(addr) else {
            continue;
        };
        let _ = t.set_read_timeout(Some(Duration::from_secs(3)));
        let _ = t.write_all(p);
        if p.len() <= 10 {
            // Truncated: shut our side; the node must drop it, not wait.
            let _ = t.shutdown(std::net::Shutdown::Write);
        }
        let mut sink = [0u8; 64];
        if matches!(t.read(&mut sink), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    drop(TcpStream::connect(addr));
    (closed, 2)
}

/// From the attacker's own address, to `to`'s heartbeat port: `n`
/// datagrams, every tenth garbage, the rest well-formed heartbeats under a
/// wrong key. Returns datagrams sent.
pub fn forged_heartbeats(t: &Target, to: Ipv4Addr, n: u32) -> u64 {
    let Ok(s) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) else {
        return 0;
    };
    let hb = blank_heartbeat();
    let mut forged = Encoder::new(wrong_key(), NodeId(1), Epoch(1), 1_000);
    let mut sent = 0;
    for i in 0..n {
        let d = if i % 10 == 0 {
            vec![0xa5; 64 + (i as usize % 1400)]
        } else {
            match forged.encode_to_vec(&hb) {
                Ok(d) => d,
                Err(_) => continue,
            }
        };
        if s.send_to(&d, (to, t.hb_port)).is_ok() {
            sent += 1;
        }
    }
    sent
}

/// A replay to server `to` (0: server-a, 1: server-b) from its peer's own
/// address (spoofed): `n` heartbeats with the right key and the peer's
/// node id but sequence numbers long past (its first ones). Returns
/// datagrams sent.
pub fn replayed_heartbeats(t: &Target, to: usize, n: u32) -> u64 {
    let hb = blank_heartbeat();
    let (to, _) = t.servers[to % 2];
    let (from, id) = t.servers[usize::from(to == t.servers[0].0)];
    let Ok(s) = spoofed_udp(from) else {
        return 0;
    };
    let mut old = Encoder::new(t.key.clone(), NodeId(id), Epoch(1), 1);
    let mut sent = 0;
    for _ in 0..n {
        if let Ok(d) = old.encode_to_vec(&hb) {
            if s.send_to(&d, (to, t.hb_port)).is_ok() {
                sent += 1;
            }
        }
    }
    sent
}

/// To the witness, from server-b's address (spoofed): a well-formed
/// request for the service address under a wrong key, and garbage.
/// Returns datagrams sent (2). (With the right key a request from a node
/// the witness never heard from is fresh by definition: the key is the
/// trust boundary.)
pub fn witness_requests(t: &Target) -> u64 {
    let [_, (b, idb)] = t.servers;
    let ask = Message::Witness(WitnessMsg::Request {
        vip: t.vip,
        node: NodeId(idb),
        epoch: Epoch(2),
    });
    let Ok(s) = spoofed_udp(b) else {
        return 0;
    };
    let mut forged = Encoder::new(wrong_key(), NodeId(idb), Epoch(1), 1_000_000);
    let mut sent = 0;
    if let Ok(d) = forged.encode_to_vec(&ask) {
        sent += u64::from(s.send_to(&d, t.witness).is_ok());
    }
    sent += u64::from(s.send_to(b"garbage for the witness", t.witness).is_ok());
    sent
}

/// A UDP socket bound to `from` (port 0), which need not be ours:
/// `IP_TRANSPARENT` lets the attacker send with another host's address.
fn spoofed_udp(from: Ipv4Addr) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    s.set_ip_transparent(true)?;
    let addr: SocketAddr = (from, 0).into();
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// ARP replies saying the service address is at the attacker (`me`), `n`
/// to each server (not broadcast: clients may share the LAN, and ARP has
/// no authentication a node could check). Returns frames sent.
pub fn spoofed_arp(
    sock: &PacketSocket,
    me: EthernetAddress,
    t: &Target,
    servers: &[EthernetAddress],
    n: u32,
) -> u64 {
    let mut sent = 0;
    for (&to, (to_ip, _)) in servers.iter().zip(t.servers) {
        let arp = ArpRepr {
            operation: ArpOperation::Reply,
            sender_hw: me,
            sender_ip: t.vip,
            target_hw: to,
            target_ip: to_ip,
        };
        for _ in 0..n {
            if sock
                .send(&VnetHdr::default(), &build_arp_frame(me, to, &arp))
                .is_ok()
            {
                sent += 1;
            }
        }
    }
    sent
}

/// `n` SYNs to the service address from 50 addresses of `lan` (from .200)
/// that nobody answers for, sent to `front` (the MAC the service address
/// resolves to). Returns frames sent.
pub fn syn_flood(
    sock: &PacketSocket,
    me: EthernetAddress,
    front: EthernetAddress,
    t: &Target,
    n: u32,
) -> u64 {
    let [a, b, c, _] = t.vip.octets();
    let mut sent = 0;
    for i in 0..n {
        let src = Ipv4Addr::new(a, b, c, 200 + (i % 50) as u8);
        let tcp = TcpRepr {
            src_port: 10_000 + (i % 50_000) as u16,
            dst_port: t.http_port,
            seq: SeqNum(i.wrapping_mul(2_654_435_761)),
            ack: SeqNum(0),
            flags: TcpFlags(TcpFlags::SYN),
            window: 64_240,
            options: TcpOptions::default(),
        };
        let Ok(f) = build_tcp_frame(me, front, src, t.vip, 64, i as u16, &tcp, &[]) else {
            continue;
        };
        if sock.send(&VnetHdr::default(), &f).is_ok() {
            sent += 1;
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_and_bad_ones_are_errors() {
        assert_eq!(
            parse_mac("02:00:c0:00:02:0b").unwrap(),
            EthernetAddress([2, 0, 0xc0, 0, 2, 0x0b])
        );
        assert!(parse_mac("02:00:c0:00:02").is_err());
        assert!(parse_mac("02:00:c0:00:02:zz").is_err());
    }

    #[test]
    fn forged_heartbeats_do_not_verify_under_the_pair_key() {
        let pair = Key::new(&[7u8; 32]).unwrap();
        let mut e = Encoder::new(wrong_key(), NodeId(1), Epoch(1), 1_000);
        let d = e.encode_to_vec(&blank_heartbeat()).unwrap();
        let cfg = coral_core::DecoderConfig::for_channel(coral_core::Channel::Heartbeat);
        let mut dec = coral_core::DatagramDecoder::new(pair.clone(), cfg);
        assert!(dec.decode(&d).is_err(), "a wrong key must not verify");
        // The same heartbeat under the pair's key does.
        let mut e = Encoder::new(pair.clone(), NodeId(1), Epoch(1), 1_000);
        let d = e.encode_to_vec(&blank_heartbeat()).unwrap();
        let mut dec = coral_core::DatagramDecoder::new(pair, cfg);
        assert!(dec.decode(&d).is_ok());
    }
}
