//! Measures (not a test): the backup's CPU per forwarded client frame, for
//! the eBPF front and the AF_PACKET front, on the same namespace topology.
//!
//! A client, the backup (the front, `coral-front`) and the primary (a
//! Python sink holding the service address on `lo`) on a Linux bridge.
//! The client opens keep-alive connections to the service address and
//! writes small HTTP GETs with `TCP_NODELAY`, paced at --rate writes per
//! second for --seconds; each connection sends 1000 requests, then closes.
//! The primary never answers (the front records every request into the
//! core's `ConnTable`, as a node's front does).
//!
//! Per front: frames handled, the `coral-front` process's CPU time (user +
//! system, all threads) from `ready` to the end, and for the eBPF front the
//! program's own run time from the kernel's BPF statistics (it runs in the
//! sender's context, so it is added to the backup's bill). Printed per
//! frame in microseconds, with the load average (the machine is shared:
//! say so when comparing).
//!
//! Run as root after `cargo build --release -p coral --example front_cpu --bin coral-front`:
//! `target/release/examples/front_cpu [--rate N] [--seconds S]` (defaults
//! 5000 and 5).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

const VIP: &str = "192.0.2.100";

const SINK: &str = r#"
import socket,threading
s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(('192.0.2.100',80));s.listen(64)
def sink(c):
    while c.recv(65536): pass
    c.close()
while True:
    c,_=s.accept();threading.Thread(target=sink,args=(c,),daemon=True).start()
"#;

const CLIENT: &str = r#"
import socket,sys,time
rate=int(sys.argv[1]);secs=float(sys.argv[2])
req=b'GET /cgi-bin/webstone?size=1000 HTTP/1.1\r\nHost: 192.0.2.100\r\n\r\n'
end=time.monotonic()+secs;sent=0;t0=time.monotonic()
while time.monotonic()<end:
    s=socket.create_connection(('192.0.2.100',80));s.setsockopt(socket.IPPROTO_TCP,socket.TCP_NODELAY,1)
    for i in range(1000):
        s.send(req);sent+=1
        ahead=sent/rate-(time.monotonic()-t0)
        if ahead>0: time.sleep(ahead)
        if time.monotonic()>=end: break
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536): pass
    s.close()
print(sent)
"#;

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn mac_of(ns: &str) -> String {
    let out = common::sh(&[
        "ip",
        "netns",
        "exec",
        ns,
        "cat",
        "/sys/class/net/eth0/address",
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn field(json: &str, key: &str) -> f64 {
    let pat = format!("\"{key}\":");
    json.split(&pat)
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .and_then(|v| v.trim_matches('"').parse().ok())
        .unwrap_or(0.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let rate = arg("--rate", 5000.0) as u64;
    let secs = arg("--seconds", 5.0);
    let front_bin = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("coral-front"))
        .unwrap();
    assert!(
        front_bin.exists(),
        "{} missing: build it with the example",
        front_bin.display()
    );

    let mut ns = common::Netns::new("fcpu");
    let sw = ns.add("sw");
    let c = ns.add("c");
    let a = ns.add("a");
    let b = ns.add("b");
    ns.bridge(&sw);
    ns.plug(&c, "192.0.2.1/24", &sw, "c");
    ns.plug(&a, "192.0.2.11/24", &sw, "a");
    ns.plug(&b, "192.0.2.12/24", &sw, "b");
    common::sh(&[
        "ip",
        "netns",
        "exec",
        &b,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=0",
    ]);
    for k in ["all", "eth0"] {
        for kv in ["arp_ignore=1", "arp_announce=2"] {
            common::sh(&[
                "ip",
                "netns",
                "exec",
                &a,
                "sysctl",
                "-qw",
                &format!("net.ipv4.conf.{k}.{kv}"),
            ]);
        }
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
    let (a_mac, b_mac) = (mac_of(&a), mac_of(&b));
    common::sh(&[
        "ip",
        "-n",
        &c,
        "neigh",
        "replace",
        VIP,
        "lladdr",
        &b_mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
    let mut sink = Command::new("ip")
        .args(["netns", "exec", &a, "python3", "-c", SINK])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    println!(
        "front_cpu: {rate} writes/s for {secs} s per front; load average before: {}",
        loadavg()
    );
    println!("front          frames  cpu_us/frame  prog_us/frame  total_us/frame  load_avg");
    let variants: [(&str, &[&str]); 3] = [
        ("packet", &["--front", "packet"]),
        (
            "ebpf-poll5ms",
            &[
                "--front",
                "ebpf",
                "--wakeup",
                "never",
                "--poll-ms",
                "5",
                "--bpf-stats",
            ],
        ),
        (
            "ebpf-wakeup",
            &[
                "--front",
                "ebpf",
                "--wakeup",
                "when-idle",
                "--poll-ms",
                "100",
                "--bpf-stats",
            ],
        ),
    ];
    for (name, extra) in variants {
        let mut front = Command::new("ip")
            .args(["netns", "exec", &b])
            .arg(&front_bin)
            .args(["--lan", "eth0", "--vip", VIP, "--primary-mac", &a_mac])
            .args(["--duration-s", &format!("{}", secs + 1.5)])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(front.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("ready"), "{name}: {line}");
        let client = common::sh(&[
            "ip",
            "netns",
            "exec",
            &c,
            "python3",
            "-c",
            CLIENT,
            &rate.to_string(),
            &secs.to_string(),
        ]);
        let sent = String::from_utf8_lossy(&client.stdout).trim().to_string();
        line.clear();
        out.read_line(&mut line).unwrap();
        let _ = front.wait();
        let frames = field(&line, "frames");
        let cpu = field(&line, "cpu_ns") / 1000.0;
        let prog = field(&line, "prog_run_ns") / 1000.0;
        let f = frames.max(1.0);
        println!(
            "{name:<13} {frames:>7}  {:>12.2}  {:>13.2}  {:>14.2}  {}   (client writes {sent}; {})",
            cpu / f,
            prog / f,
            (cpu + prog) / f,
            loadavg(),
            line.trim()
        );
    }
    let _ = sink.kill();
    let _ = sink.wait();
}
