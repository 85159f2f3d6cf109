//! The packet socket sees client frames with their virtio-net headers:
//! partial checksums flagged, and segmentation-offloaded frames larger than
//! the MTU carried whole (docs/DESIGN.md section 7). Real namespaces, real veth.

mod common;

use std::time::{Duration, Instant};

use coral::io::afpacket::{PacketSocket, VnetHdr};

#[test]
fn netns_packet_socket_captures_offloaded_tcp_frames() {
    let mut ns = common::Netns::new("afp");
    let a = ns.add("a");
    let b = ns.add("b");
    ns.link(&a, "eth0", "192.0.2.1/24", &b, "eth0", "192.0.2.2/24");

    let sock = common::in_netns(&b, || {
        PacketSocket::open("eth0").expect("open packet socket")
    });
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    sock.set_recv_buffer(8 << 20).unwrap(); // the whole upload is read afterwards

    // A listener in b and a 300 KB upload from a.
    let server = std::process::Command::new("ip")
        .args(["netns", "exec", &b, "python3", "-c"])
        .arg("import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('192.0.2.2',8080));s.listen()\nc,_=s.accept()\nn=0\nwhile True:\n d=c.recv(65536)\n if not d: break\n n+=len(d)\nprint(n)")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let upload = common::sh(&[
        "ip", "netns", "exec", &a, "python3", "-c",
        "import socket,time\nc=socket.create_connection(('192.0.2.2',8080))\nc.sendall(b'x'*300000)\nc.close()",
    ]);
    assert!(upload.status.success());
    let out = server.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "300000");

    let mut buf = vec![0u8; 70_000];
    let (mut syn, mut big, mut partial) = (false, false, false);
    // Payload ranges by sequence number relative to the client's ISN: a
    // retransmission (the sender's timer on a loaded machine) is seen twice
    // and is fine; what matters is that every byte was seen.
    let (mut isn, mut ranges) = (None::<u32>, Vec::<(u64, u64)>::new());
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let (hdr, len) = match sock.recv(&mut buf) {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("recv: {e}"),
        };
        let f = &buf[VnetHdr::LEN..VnetHdr::LEN + len];
        // Ethernet + IPv4 + TCP from a to b only.
        if len < 54 || f[12..14] != [0x08, 0x00] || f[23] != 6 || f[26..30] != [192, 0, 2, 1] {
            continue;
        }
        let ihl = usize::from(f[14] & 0x0f) * 4;
        let tcp = &f[14 + ihl..];
        let doff = usize::from(tcp[12] >> 4) * 4;
        let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
        if tcp[13] & 0x02 != 0 {
            syn = true;
            isn = Some(seq);
        }
        let payload = (len - 14 - ihl - doff) as u64;
        if let (Some(isn), true) = (isn, payload > 0) {
            let start = u64::from(seq.wrapping_sub(isn.wrapping_add(1)));
            ranges.push((start, start + payload));
        }
        if len > 1514 {
            big = true;
            assert_eq!(
                hdr.gso_type, 1,
                "a frame above the MTU is a TCPv4 GSO frame"
            );
            assert!(hdr.gso_size > 0 && usize::from(hdr.gso_size) <= 1460);
        }
        partial |= hdr.flags & VnetHdr::F_NEEDS_CSUM != 0;
    }
    assert!(syn, "the SYN was captured");
    assert!(
        big,
        "segmentation-offloaded frames above the MTU were captured whole"
    );
    assert!(
        partial,
        "partial checksums are flagged in the virtio-net header"
    );
    ranges.sort_unstable();
    let mut covered = Vec::<(u64, u64)>::new();
    for (a, b) in ranges {
        match covered.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => covered.push((a, b)),
        }
    }
    assert_eq!(
        covered,
        vec![(0, 300_000)],
        "every payload byte was seen, and nothing else"
    );
}

#[test]
fn netns_front_filter_keeps_log_channel_and_heartbeats_off_the_packet_socket() {
    let mut ns = common::Netns::new("afl");
    let a = ns.add("a");
    let b = ns.add("b");
    ns.link(&a, "eth0", "192.0.2.1/24", &b, "eth0", "192.0.2.2/24");
    let vip = "192.0.2.100";

    let sock = common::in_netns(&b, || {
        let s = PacketSocket::open("eth0").expect("open packet socket");
        s.set_front_filter(&["192.0.2.100".parse().unwrap()])
            .expect("attach the filter");
        s
    });
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    sock.set_recv_buffer(8 << 20).unwrap();
    // b's MAC for the service address, as the front's ARP answer would give.
    let b_mac = common::sh(&[
        "ip",
        "netns",
        "exec",
        &b,
        "cat",
        "/sys/class/net/eth0/address",
    ]);
    let b_mac = String::from_utf8_lossy(&b_mac.stdout).trim().to_string();

    // Log-channel-like TCP (100 KB to b's own address) and heartbeat-like
    // UDP datagrams: b's kernel takes them; the packet socket must not.
    let listener = std::process::Command::new("ip")
        .args(["netns", "exec", &b, "python3", "-c"])
        .arg("import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('192.0.2.2',7010));s.listen()\nc,_=s.accept()\nwhile c.recv(65536): pass")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    common::sh(&[
        "ip", "netns", "exec", &a, "python3", "-c",
        "import socket\nc=socket.create_connection(('192.0.2.2',7010))\nc.sendall(b'l'*100000)\nc.close()\nu=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range(20): u.sendto(b'hb',('192.0.2.2',7011))",
    ]);
    let _ = listener.wait_with_output();
    // Frames to the service address and ARP do reach it.
    common::sh(&[
        "ip", "-n", &a, "neigh", "replace", vip, "lladdr", &b_mac, "dev", "eth0",
    ]);
    let _ = std::process::Command::new("ip")
        .args([
            "netns", "exec", &a, "ping", "-c", "3", "-i", "0.2", "-W", "1", vip,
        ])
        .output();
    common::sh(&["ip", "-n", &a, "neigh", "flush", "dev", "eth0"]);
    let _ = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &a,
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "192.0.2.2",
        ])
        .output();

    let mut buf = vec![0u8; 70_000];
    let (mut arp, mut to_vip, mut other) = (0, 0, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let (_, len) = match sock.recv(&mut buf) {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("recv: {e}"),
        };
        let f = &buf[VnetHdr::LEN..VnetHdr::LEN + len];
        match (f[12], f[13]) {
            (0x08, 0x06) => arp += 1,
            (0x08, 0x00) if f[30..34] == [192, 0, 2, 100] => to_vip += 1,
            _ => other.push(f[..34.min(len)].to_vec()),
        }
    }
    assert!(
        other.is_empty(),
        "frames not for the front reached the packet socket: {other:02x?}"
    );
    assert!(
        to_vip >= 3,
        "the pings to the service address were delivered"
    );
    assert!(arp >= 1, "ARP was delivered");
}
