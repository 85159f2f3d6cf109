//! The eBPF front in real namespaces: a client, the backup (the front) and
//! the primary on a Linux bridge, the primary holding the service address
//! on `lo` (direct routing), the client resolving it to the backup's MAC.
//! The front is the real tc ingress program, loaded by `EbpfFront` or by
//! the `coral-front` binary; the clients are Python's socket library.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coral::io::ebpf_front::{EbpfFront, EbpfFrontConfig, Mode, RecordKind, Wakeup};

const VIP: &str = "192.0.2.100";
const SERVER: &str = r#"
import http.server,hashlib
class H(http.server.BaseHTTPRequestHandler):
    protocol_version='HTTP/1.1'
    def do_GET(self):
        n=int(self.path.split('=')[1])
        self.send_response(200);self.send_header('Content-Length',str(n));self.end_headers();self.wfile.write(b'x'*n)
    def do_POST(self):
        n=int(self.headers['Content-Length']);d=b''
        while len(d)<n: d+=self.rfile.read(n-len(d))
        h=hashlib.sha256(d).hexdigest().encode()
        self.send_response(200);self.send_header('Content-Length',str(len(h)));self.end_headers();self.wfile.write(h)
    def log_message(self,*a): pass
http.server.ThreadingHTTPServer(('192.0.2.100',80),H).serve_forever()
"#;

/// Three keep-alive GETs, then a 300 KB upload on a raw socket; prints
/// the upload's request length and whether the server's SHA-256 matched.
const CLIENT: &str = r#"
import http.client,hashlib,os,socket,sys
t=float(sys.argv[1])
c=http.client.HTTPConnection('192.0.2.100',80,timeout=t)
for n in (10,5000,70000):
    c.request('GET','/?n=%d'%n);r=c.getresponse();b=r.read()
    assert r.status==200 and len(b)==n,n
body=os.urandom(300000)
req=b'POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n'+body
s=socket.create_connection(('192.0.2.100',80),timeout=t)
s.sendall(req)
got=b''
while not got.endswith(hashlib.sha256(body).hexdigest().encode()):
    d=s.recv(65536)
    if not d: break
    got+=d
print(len(req), 'sha-equal' if got.endswith(hashlib.sha256(body).hexdigest().encode()) else 'sha-differs')
"#;

struct Lan {
    ns: common::Netns,
    c: String,
    a: String,
    b: String,
    a_mac: [u8; 6],
    b_mac: [u8; 6],
    server: std::process::Child,
}

impl Drop for Lan {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = &self.ns;
    }
}

fn mac_of(ns: &str, dev: &str) -> [u8; 6] {
    let out = common::sh(&[
        "ip",
        "netns",
        "exec",
        ns,
        "cat",
        &format!("/sys/class/net/{dev}/address"),
    ]);
    let s = String::from_utf8_lossy(&out.stdout);
    let mut m = [0u8; 6];
    for (i, p) in s.trim().split(':').enumerate() {
        m[i] = u8::from_str_radix(p, 16).unwrap();
    }
    m
}

fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn sysctl(ns: &str, kv: &str) {
    common::sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", kv]);
}

/// Client, primary (a) and backup (b) on a bridge; the service address on
/// a's `lo`, the client's neighbour entry for it pointing at b.
fn lan(tag: &str) -> Lan {
    let mut ns = common::Netns::new(tag);
    let sw = ns.add("sw");
    let c = ns.add("c");
    let a = ns.add("a");
    let b = ns.add("b");
    ns.bridge(&sw);
    ns.plug(&c, "192.0.2.1/24", &sw, "c");
    ns.plug(&a, "192.0.2.11/24", &sw, "a");
    ns.plug(&b, "192.0.2.12/24", &sw, "b");
    sysctl(&b, "net.ipv4.ip_forward=0");
    for k in ["all", "eth0"] {
        sysctl(&a, &format!("net.ipv4.conf.{k}.arp_ignore=1"));
        sysctl(&a, &format!("net.ipv4.conf.{k}.arp_announce=2"));
    }
    common::sh(&[
        "ip",
        "-n",
        &a,
        "addr",
        "add",
        &format!("{VIP}/32"),
        "dev",
        "lo",
    ]);
    let a_mac = mac_of(&a, "eth0");
    let b_mac = mac_of(&b, "eth0");
    common::sh(&[
        "ip",
        "-n",
        &c,
        "neigh",
        "replace",
        VIP,
        "lladdr",
        &mac_str(&b_mac),
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
    let server = Command::new("ip")
        .args(["netns", "exec", &a, "python3", "-c", SERVER])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the listener.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ss = Command::new("ip")
            .args(["netns", "exec", &a, "ss", "-tln"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&ss.stdout).contains(&format!("{VIP}:80")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the primary's server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Lan {
        ns,
        c,
        a,
        b,
        a_mac,
        b_mac,
        server,
    }
}

fn load(l: &Lan, ring_bytes: u32) -> EbpfFront {
    let cfg = EbpfFrontConfig {
        lan: "eth0".into(),
        own_mac: l.b_mac,
        primary_mac: l.a_mac,
        vips: vec![VIP.parse().unwrap()],
        ring_bytes,
        wakeup: Wakeup::Never,
    };
    common::in_netns(&l.b, move || {
        EbpfFront::load(&cfg).expect("load the eBPF front")
    })
}

/// The client's TCP payload bytes seen per connection, as a set of byte
/// ranges relative to its ISN (so a retransmission counts once).
#[derive(Default)]
struct Streams {
    isn: BTreeMap<u16, u32>,
    ranges: BTreeMap<u16, Vec<(u64, u64)>>,
}

impl Streams {
    fn add(&mut self, frame: &[u8]) {
        let Ok(p) = coral_core::wire::parse_frame(frame) else {
            return;
        };
        let coral_core::wire::FramePayload::Tcp(seg) = p.payload else {
            return;
        };
        assert_eq!(seg.dst_ip, VIP.parse::<Ipv4Addr>().unwrap());
        let port = seg.src_port;
        if seg.flags.syn() {
            self.isn.insert(port, seg.seq.0);
            return;
        }
        if seg.payload.is_empty() {
            return;
        }
        let Some(isn) = self.isn.get(&port) else {
            return;
        };
        let start = u64::from(seg.seq.0.wrapping_sub(isn.wrapping_add(1)));
        self.ranges
            .entry(port)
            .or_default()
            .push((start, start + seg.payload.len() as u64));
    }

    /// Bytes covered from offset 0 without a gap, per connection.
    fn contiguous(&self) -> BTreeMap<u16, u64> {
        self.ranges
            .iter()
            .map(|(p, r)| {
                let mut r = r.clone();
                r.sort();
                let mut end = 0;
                for (s, e) in r {
                    if s <= end {
                        end = end.max(e);
                    }
                }
                (*p, end)
            })
            .collect()
    }
}

fn client(l: &Lan, timeout_s: u32) -> std::process::Child {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &l.c,
            "python3",
            "-c",
            CLIENT,
            &timeout_s.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn netns_ebpf_front_forwards_gets_and_an_upload_intact_with_every_frame_recorded() {
    let l = lan("ebf");
    let mut front = load(&l, 16 << 20);
    let out = client(&l, 10).wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("sha-equal"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let req_len: u64 = text.split_whitespace().next().unwrap().parse().unwrap();

    let mut streams = Streams::default();
    let (mut forwarded, mut big, mut other) = (0u64, 0usize, 0usize);
    // Hold, wait for runs under way, drain: the counters are final.
    front
        .quiesce(Duration::from_secs(1), |kind, frame| {
            match kind {
                RecordKind::Forwarded => forwarded += 1,
                // A late frame (the client's last ACK) after the switch.
                RecordKind::Held => return,
                _ => other += 1,
            }
            big = big.max(frame.len());
            streams.add(frame);
        })
        .unwrap();
    let c = front.counters().unwrap();
    assert_eq!(other, 0, "only forwarded and held records");
    assert_eq!(c.ring_full, 0, "{c:?}");
    assert_eq!(
        c.forwarded, forwarded,
        "every forwarded frame is in the ring: {c:?}"
    );
    assert!(
        big > 1514,
        "GSO frames above the MTU were recorded and forwarded whole (largest {big})"
    );
    let covered = streams.contiguous();
    assert_eq!(covered.len(), 2, "two client connections: {covered:?}");
    assert!(
        covered.values().any(|&n| n == req_len),
        "every byte of the upload's {req_len} is in the ring: {covered:?}"
    );
}

#[test]
fn netns_ebpf_front_hold_forwards_nothing_and_records_everything() {
    let l = lan("ebh");
    let mut front = load(&l, 16 << 20);
    let before = front.counters().unwrap();
    let held_copies = front
        .quiesce(Duration::from_secs(1), |_, _| {})
        .expect("quiesce");
    assert_eq!(held_copies, 0, "nothing in the ring before any traffic");
    assert_eq!(front.mode().unwrap(), Mode::Hold);

    let out = common::sh(&[
        "ip", "netns", "exec", &l.c, "python3", "-c",
        "import socket\ntry:\n socket.create_connection(('192.0.2.100',80),timeout=1.5);print('connected')\nexcept Exception as e: print('refused', e)",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.starts_with("refused"),
        "held: no SYN reaches the primary: {text}"
    );
    let c = front.counters().unwrap();
    assert_eq!(
        c.forwarded, before.forwarded,
        "nothing forwarded in hold: {c:?}"
    );
    assert!(c.held >= 1, "the SYNs were recorded: {c:?}");
    let mut held = 0;
    front.drain(usize::MAX, |kind, _| {
        assert_eq!(kind, RecordKind::Held);
        held += 1;
    });
    assert_eq!(held, c.held, "every held frame is in the ring");
    // The primary's listener saw no connection at all.
    let ss = common::sh(&[
        "ip", "netns", "exec", &l.a, "ss", "-tn", "state", "syn-recv",
    ]);
    assert!(!String::from_utf8_lossy(&ss.stdout).contains(VIP));

    // Back to forwarding: served again.
    front.set_mode(Mode::Forward).unwrap();
    let out = client(&l, 10).wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("sha-equal"));
}

#[test]
fn netns_ebpf_front_full_ring_drops_and_never_forwards_unrecorded() {
    let l = lan("ebr");
    // 128 KiB: room for one 64 KiB GSO record, so an upload overflows it
    // unless the ring is drained.
    let mut front = load(&l, 128 << 10);
    let child = client(&l, 30);
    // Nobody drains: the ring fills and frames are dropped (the upload
    // cannot finish without a drain, so this must happen).
    let deadline = Instant::now() + Duration::from_secs(25);
    let c = loop {
        let c = front.counters().unwrap();
        if c.ring_full > 0 {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "the ring never overflowed: {c:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(c.too_big, 0, "{c:?}");

    // Drain until the client is done: its retransmissions get through.
    let mut streams = Streams::default();
    let mut forwarded = 0u64;
    let deadline = Instant::now() + Duration::from_secs(40);
    let child_id = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        assert!(
            Instant::now() < deadline,
            "client {child_id} did not finish"
        );
        front.wait(Duration::from_millis(5)).unwrap();
        front.drain(usize::MAX, |kind, frame| {
            assert_eq!(kind, RecordKind::Forwarded);
            forwarded += 1;
            streams.add(frame);
        });
    }
    // Stop forwarding, wait for runs under way, take the rest: from here
    // the forwarded count cannot move.
    front
        .quiesce(Duration::from_secs(1), |kind, frame| {
            if kind == RecordKind::Forwarded {
                forwarded += 1;
                streams.add(frame);
            }
        })
        .unwrap();
    let out = waiter.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("sha-equal"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let req_len: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
    let c = front.counters().unwrap();
    assert_eq!(
        c.forwarded, forwarded,
        "no frame forwarded unrecorded: {c:?}"
    );
    assert!(
        streams.contiguous().values().any(|&n| n == req_len),
        "every upload byte is in the ring"
    );
}

#[test]
fn netns_ebpf_front_a_quarter_full_ring_wakes_its_consumer() {
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    use std::os::fd::AsRawFd;

    let l = lan("ebq");
    // 1 MiB: the client's GETs and 300 KB upload fit whole, so nothing
    // is dropped and nothing is drained until the wake-up.
    let ring = 1u32 << 20;
    let mut front = load(&l, ring);
    // Edge-triggered, as the node's data path polls it: an event comes
    // only from the program's wake-up. Records are submitted without one
    // (`Wakeup::Never`), so the GETs' small records wake nobody; the
    // upload takes the ring past a quarter, which must.
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(
            &mut SourceFd(&front.as_raw_fd()),
            Token(0),
            Interest::READABLE,
        )
        .unwrap();
    let child = client(&l, 30);
    let mut events = Events::with_capacity(4);
    poll.poll(&mut events, Some(Duration::from_secs(20)))
        .unwrap();
    let c = front.counters().unwrap();
    let mut bytes = 0usize;
    front.drain(usize::MAX, |_, frame| bytes += frame.len());
    assert!(
        !events.is_empty(),
        "no wake-up in 20 s with {bytes} bytes of frames in a {ring}-byte ring"
    );
    assert_eq!(c.ring_full, 0, "{c:?}");
    assert!(
        bytes >= ring as usize / 8,
        "woken with only {bytes} bytes of frames in the ring"
    );
    // The client finishes through a ring drained as the node drains it.
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let deadline = Instant::now() + Duration::from_secs(40);
    while !waiter.is_finished() {
        assert!(Instant::now() < deadline, "client did not finish");
        front.wait(Duration::from_millis(5)).unwrap();
        front.drain(usize::MAX, |_, _| {});
    }
    let out = waiter.join().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("sha-equal"));
}

#[test]
fn netns_ebpf_front_link_is_gone_when_the_loader_is_killed() {
    let l = lan("ebk");
    let bin = env!("CARGO_BIN_EXE_coral-front");
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &l.b,
            bin,
            "--front",
            "ebpf",
            "--lan",
            "eth0",
            "--vip",
            VIP,
            "--primary-mac",
            &mac_str(&l.a_mac),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let prog_id = line
        .trim()
        .strip_prefix("ready prog_id=")
        .unwrap_or_else(|| panic!("ready line: {line:?}"))
        .to_string();
    // bpftool 7.1 (Debian 12) lists tcx links as "type 11" without their
    // interface: the program id is what ties the link to us.
    let prog_alive = || {
        Command::new("bpftool")
            .args(["prog", "show", "id", &prog_id])
            .output()
            .unwrap()
            .status
            .success()
    };
    let links = || {
        let out = common::sh(&["bpftool", "link", "show"]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(prog_alive());
    assert!(
        links().contains(&format!("prog {prog_id} ")),
        "attached with a link: {}",
        links()
    );
    // Served through the loader's front.
    let out = client(&l, 10).wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("sha-equal"));

    common::sh(&["kill", "-9", &child.id().to_string()]);
    let _ = child.wait();
    // The link dies with the process's descriptors, and the program with
    // its last reference (the kernel frees it after an RCU grace period).
    let deadline = Instant::now() + Duration::from_secs(5);
    while prog_alive() || links().contains(&format!("prog {prog_id} ")) {
        assert!(
            Instant::now() < deadline,
            "still attached after kill -9: {}",
            links()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let tc = common::sh(&[
        "ip", "netns", "exec", &l.b, "tc", "filter", "show", "dev", "eth0", "ingress",
    ]);
    assert!(String::from_utf8_lossy(&tc.stdout).trim().is_empty());
    // Nothing forwards the service address any more.
    let out = common::sh(&[
        "ip", "netns", "exec", &l.c, "python3", "-c",
        "import socket\ntry:\n socket.create_connection(('192.0.2.100',80),timeout=1);print('connected')\nexcept Exception as e: print('unreachable', e)",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("unreachable"));
}

#[test]
fn netns_ebpf_front_load_errors_name_what_is_missing() {
    let l = lan("ebe");
    let cfg = EbpfFrontConfig {
        lan: "nosuch0".into(),
        own_mac: l.b_mac,
        primary_mac: l.a_mac,
        vips: vec![VIP.parse().unwrap()],
        ring_bytes: 1 << 16,
        wakeup: Wakeup::Never,
    };
    let e = common::in_netns(&l.b, move || EbpfFront::load(&cfg).unwrap_err());
    assert!(e.to_string().contains("nosuch0"), "{e}");

    // Without CAP_BPF/CAP_SYS_ADMIN the load fails and says so.
    let bin = env!("CARGO_BIN_EXE_coral-front");
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &l.b,
            "capsh",
            "--drop=cap_bpf,cap_sys_admin,cap_perfmon",
            "--",
            "-c",
        ])
        .arg(format!(
            "{bin} --lan eth0 --vip {VIP} --primary-mac {} --duration-s 0.1",
            mac_str(&l.a_mac)
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("CAP_BPF"),
        "the error names the capability: {err}"
    );
}

/// A server on the front's own node answering with its name.
const NAMED_SERVER: &str = r#"
import http.server,sys
name=sys.argv[1].encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version='HTTP/1.1'
    def do_GET(self):
        self.send_response(200);self.send_header('Content-Length',str(len(name)));self.end_headers();self.wfile.write(name)
    def log_message(self,*a): pass
http.server.ThreadingHTTPServer(('192.0.2.100',80),H).serve_forever()
"#;

/// A keep-alive connection answered once, then (after a line on stdin)
/// again on the same connection and once on a new one; prints who
/// answered each, or the error.
const OLD_AND_NEW: &str = r#"
import http.client,sys
def get(c):
    c.request('GET','/?n=1');r=c.getresponse();return r.read().decode()
old=http.client.HTTPConnection('192.0.2.100',80,timeout=3)
print('first', get(old), flush=True)
sys.stdin.readline()
for name,c in (('old',old),('new',http.client.HTTPConnection('192.0.2.100',80,timeout=3))):
    try: print(name, get(c), flush=True)
    except Exception as e: print(name, 'error', type(e).__name__, flush=True)
"#;

/// The hand-over of a dual-role join on the front's side: the backup (b)
/// served a keep-alive connection itself, then starts fronting the address
/// for the new primary (a). With `pass_local`, the kept connection's next
/// request is still answered by b (its frames go to b's own stack,
/// unrecorded) while a new connection goes to a; without it, the kept
/// connection's frames are forwarded to a, whose kernel has no socket for
/// them and resets it.
fn hand_over(tag: &str, pass_local: bool) -> (String, coral::io::ebpf_front::EbpfCounters) {
    use std::io::{BufRead, BufReader, Write};
    let l = lan(tag);
    common::sh(&[
        "ip",
        "-n",
        &l.b,
        "addr",
        "add",
        &format!("{VIP}/32"),
        "dev",
        "lo",
    ]);
    let mut b_server = Command::new("ip")
        .args(["netns", "exec", &l.b, "python3", "-c", NAMED_SERVER, "b"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_listener(&l.b);
    let mut client = Command::new("ip")
        .args(["netns", "exec", &l.c, "python3", "-c", OLD_AND_NEW])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, "first b", "before the hand-over b serves");
    let mut front = load(&l, 16 << 20);
    front.pass_local_flows(pass_local).unwrap();
    writeln!(client.stdin.take().unwrap()).unwrap();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let _ = client.wait();
    let _ = b_server.kill();
    let _ = b_server.wait();
    (rest.join("; "), front.counters().unwrap())
}

#[test]
fn netns_ebpf_front_passes_the_connections_kept_at_a_hand_over_to_the_local_stack() {
    let (text, c) = hand_over("ebk", true);
    eprintln!("kept: {text}; {c:?}");
    assert_eq!(text, "old b; new x", "{c:?}");
    assert!(
        c.local_pass >= 2,
        "the kept connection's request and ACKs: {c:?}"
    );
    assert!(
        c.forwarded >= 3,
        "the new connection's handshake and request: {c:?}"
    );
    // Without the rule the kept connection is forwarded and reset.
    let (text, c) = hand_over("ebn", false);
    eprintln!("not kept: {text}; {c:?}");
    assert!(
        text.starts_with("old error") && text.ends_with("new x"),
        "{text} {c:?}"
    );
    assert_eq!(c.local_pass, 0, "{c:?}");
}

/// b's server for the hold-data test: one connection; "ok" to its first
/// line, then "ping" for every line on b's stdin.
const PINGER: &str = r#"
import socket,sys
s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(('192.0.2.100',80));s.listen()
c,_=s.accept();c.recv(100);c.sendall(b'ok\n')
for _ in sys.stdin: c.sendall(b'ping\n')
"#;

/// The client of the hold-data test: "hi", prints the answer; then for
/// each line on its stdin prints the next line from b ("ping"), and sends
/// "pong" once its stdin says so.
const PONGER: &str = r#"
import socket,sys
s=socket.create_connection(('192.0.2.100',80),timeout=5);f=s.makefile('rb')
s.sendall(b'hi\n');print('first', f.readline().decode().strip(), flush=True)
for line in sys.stdin:
    if line.startswith('pong'): s.sendall(b'pong\n');print('sent', flush=True)
    else: print('got', f.readline().decode().strip(), flush=True)
"#;

/// Send-Q and Recv-Q of b's one established connection on the address.
fn b_queues(l: &Lan) -> (u64, u64) {
    let out = common::sh(&[
        "ip",
        "netns",
        "exec",
        &l.b,
        "ss",
        "-tnH",
        "state",
        "established",
        "sport",
        "=",
        ":80",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let f: Vec<&str> = text.split_whitespace().collect();
    assert!(f.len() >= 2, "one connection on b: {text}");
    (f[1].parse().unwrap(), f[0].parse().unwrap())
}

/// A takeover's step 4 (docs/DESIGN.md 5): in hold-data mode a bare ACK
/// of a connection with a socket on the front's node reaches that socket
/// unrecorded, while the client's data is still recorded and held.
#[test]
fn netns_ebpf_front_hold_data_passes_bare_acks_of_local_sockets_and_holds_data() {
    use std::io::{BufRead, BufReader, Write};
    let l = lan("ebd");
    common::sh(&[
        "ip",
        "-n",
        &l.b,
        "addr",
        "add",
        &format!("{VIP}/32"),
        "dev",
        "lo",
    ]);
    let mut b_server = Command::new("ip")
        .args(["netns", "exec", &l.b, "python3", "-c", PINGER])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_listener(&l.b);
    let mut client = Command::new("ip")
        .args(["netns", "exec", &l.c, "python3", "-c", PONGER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_client = client.stdin.take().unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "first ok");

    let mut front = load(&l, 16 << 20);
    front
        .switch_mode(Mode::HoldData, Duration::from_secs(1), |_, _| {})
        .expect("hold-data mode");
    assert_eq!(front.mode().unwrap(), Mode::HoldData);
    // b sends; the client's ACK must reach b's socket: its send queue
    // empties (held, the ACK would never arrive and "ping" stay queued).
    writeln!(b_server.stdin.as_mut().unwrap()).unwrap();
    writeln!(to_client, "next").unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "got ping");
    let deadline = Instant::now() + Duration::from_secs(5);
    while b_queues(&l).0 != 0 {
        assert!(
            Instant::now() < deadline,
            "the client's ACK never reached b: {:?}",
            front.counters().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let c = front.counters().unwrap();
    assert!(c.hold_ack_pass >= 1, "{c:?}");
    assert_eq!(c.forwarded, 0, "{c:?}");

    // The client's data is held: recorded, never delivered to b.
    writeln!(to_client, "pong").unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "sent");
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !held.iter().any(|f: &Vec<u8>| f.ends_with(b"pong\n")) {
        assert!(Instant::now() < deadline, "the data was not held");
        front.drain(usize::MAX, |kind, frame| {
            assert_eq!(kind, RecordKind::Held);
            held.push(frame.to_vec());
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(b_queues(&l).1, 0, "nothing of the held data reached b");
    drop(to_client);
    let _ = client.kill();
    let _ = client.wait();
    let _ = b_server.kill();
    let _ = b_server.wait();
}

/// Wait (at most 10 s) until a server listens on the service address's
/// port 80 in namespace `ns`.
fn wait_for_listener(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&common::sh(&["ip", "netns", "exec", ns, "ss", "-tln"]).stdout)
        .contains(&format!("{VIP}:80"))
    {
        assert!(
            Instant::now() < deadline,
            "the server in {ns} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
