//! Namespace integration tests of `coral-exp up/down/exec`: real namespaces,
//! real webstone-server processes, real curl and Python clients. Run as root,
//! one at a time (scripts/test-netns.sh).

#[path = "netns_util/mod.rs"]
mod util;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::*;

#[test]
fn netns_up_serves_verified_replies_and_down_removes_everything() {
    let t = Topo::up(2);
    let v = t.json();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["topology"], "netns");
    assert_eq!(v["service"], "unreplicated");
    assert_eq!(v["status"], "up");
    let urls: Vec<String> = v["service_urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        urls,
        vec![
            "http://192.0.2.11/cgi-bin/webstone",
            "http://192.0.2.12/cgi-bin/webstone"
        ]
    );
    assert_eq!(v["service_url"], urls[0].as_str());
    assert_eq!(namespaces_with(&t.prefix).len(), 7);
    assert_eq!(v["hosts"]["server-a"]["roles"][0]["role"], "primary");

    // curl from the client namespace, digest checked against the header.
    assert_eq!(t.fetch(&urls[0], 1000).as_deref(), Some("server-a"));
    assert_eq!(t.fetch(&urls[1], 1000).as_deref(), Some("server-b"));

    // A Python stdlib client, keep-alive, several requests on one connection.
    let py = r#"
import hashlib, http.client
c = http.client.HTTPConnection("192.0.2.11", 80, timeout=5)
for n in (1, 1000, 70000):
    c.request("GET", "/cgi-bin/webstone?size=%d" % n)
    r = c.getresponse()
    b = r.read()
    assert r.status == 200, r.status
    assert len(b) == n, (len(b), n)
    assert hashlib.sha256(b).hexdigest() == r.getheader("X-Coral-Digest"), "digest"
    assert r.getheader("X-Coral-Served-By") == "server-a"
print("py-ok")
"#;
    let o = t.in_client(&["python3", "-c", py]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("py-ok"),
        "python client: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    // The router forwards, nobody else does.
    let fwd = |host: &str| {
        let o = coral(&[
            "exec",
            "--state",
            t.state(),
            host,
            "--",
            "cat",
            "/proc/sys/net/ipv4/ip_forward",
        ]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(fwd("router"), "1");
    assert_eq!(fwd("server-a"), "0");
    assert_eq!(fwd("client"), "0");

    let pids = recorded_pids(&v);
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| alive(p)));
    let t0 = Instant::now();
    coral_ok(&["down", "--state", t.state()]);
    eprintln!("down took {:?}", t0.elapsed());
    assert!(namespaces_with(&t.prefix).is_empty());
    assert!(pids.iter().all(|&p| !alive(p)), "service process left");
    assert_eq!(t.json()["status"], "down");
    assert!(!std::path::Path::new(&format!("/run/coral-exp/{}.json", t.prefix)).exists());
    // No interface of ours in the caller's namespace either.
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains("p-server-a"));
    // Idempotent.
    coral_ok(&["down", "--state", t.state()]);
}

#[test]
fn netns_exec_passes_status_and_stdio_through() {
    let t = Topo::up(1);
    let o = coral(&[
        "exec",
        "--state",
        t.state(),
        "client",
        "--",
        "sh",
        "-c",
        "echo out-$(cat /proc/sys/net/ipv4/ip_forward); echo err >&2; exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "out-0");
    assert_eq!(String::from_utf8_lossy(&o.stderr).trim(), "err");
    // A role resolves to its host.
    let o = coral(&["exec", "--state", t.state(), "primary", "--", "true"]);
    assert!(o.status.success());
    // Unknown host: a clear error, non-zero.
    let o = coral(&["exec", "--state", t.state(), "nosuch", "--", "true"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nosuch"));
    // An unknown backend is refused clearly, and creates nothing. (Docker is
    // built: netns_docker.rs tests it; naming it here would start one.)
    let d = tempfile::tempdir().unwrap();
    let o = coral(&[
        "up",
        "--service",
        "unreplicated",
        "--topology",
        "vm",
        "--state",
        d.path().to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown topology `vm`"));
    assert!(!d.path().join("topology.json").exists());
}

/// Starts `up` with a per-namespace delay, waits until topology.json lists
/// at least 3 namespaces, and returns the child (still running).
fn start_slow_up(state: &str, prefix: &str) -> std::process::Child {
    let mut child = Command::new(exe())
        .args([
            "up",
            "--service",
            "unreplicated",
            "--servers",
            "2",
            "--state",
            state,
            "--prefix",
            prefix,
        ])
        .env("CORAL_EXP_STEP_DELAY_MS", "300")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let path = std::path::Path::new(state).join("topology.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut status = serde_json::Value::Null;
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                let n = v["created"].as_array().map(|a| a.len()).unwrap_or(0);
                if n >= 3 && namespaces_with(prefix).len() >= 3 {
                    status = v["status"].clone();
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if status != "building" {
        let _ = child.kill();
        let _ = child.wait();
        let _ = coral(&["down", "--state", state]);
        panic!("up never showed a half-built topology (status {status})");
    }
    child
}

#[test]
fn netns_down_cleans_up_after_a_killed_up() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let prefix = test_prefix();
    let mut child = start_slow_up(state, &prefix);
    child.kill().unwrap(); // SIGKILL: no chance to clean up itself
    child.wait().unwrap();
    assert!(
        namespaces_with(&prefix).len() >= 3,
        "half-built topology expected"
    );
    coral_ok(&["down", "--state", state]);
    assert!(namespaces_with(&prefix).is_empty());
}

#[test]
fn netns_down_stale_cleans_up_after_a_killed_up() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let prefix = test_prefix();
    let mut child = start_slow_up(state, &prefix);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!namespaces_with(&prefix).is_empty());
    // Also a topology that is up and detached: --stale must leave it alone.
    let keep = Topo::up(1);
    coral_ok(&["down", "--stale"]);
    assert!(namespaces_with(&prefix).is_empty());
    assert_eq!(
        namespaces_with(&keep.prefix).len(),
        7,
        "--stale removed a live topology"
    );
    assert!(keep
        .fetch("http://192.0.2.11/cgi-bin/webstone", 10)
        .is_some());
}

#[test]
fn netns_interrupted_up_tears_itself_down() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let prefix = test_prefix();
    let child = start_slow_up(state, &prefix);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "interrupted up must fail");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        namespaces_with(&prefix).is_empty(),
        "Ctrl-C left namespaces"
    );
    let v = read_json(&dir.path().join("topology.json"));
    assert_eq!(v["status"], "down");
}

#[test]
fn netns_conditions_lan_rate_and_cpu_quota_are_applied_and_removed() {
    let prefix = test_prefix();
    let t = Topo {
        dir: tempfile::tempdir().unwrap(),
        prefix: prefix.clone(),
    };
    let state = t.state();
    coral_ok(&[
        "up",
        "--service",
        "unreplicated",
        "--state",
        state,
        "--prefix",
        &prefix,
        "--lan-mbit",
        "100",
        "--server-cpu",
        "0.5",
    ]);
    let v = t.json();
    let q = Command::new("tc")
        .args([
            "-n",
            &format!("{prefix}-switch"),
            "qdisc",
            "show",
            "dev",
            "p-server-a",
        ])
        .output()
        .unwrap();
    let q = String::from_utf8_lossy(&q.stdout);
    assert!(q.contains("htb 1: root"), "{q}");
    assert!(q.contains("bfifo 20: parent 1:20 limit 250000b"), "{q}");
    let c = Command::new("tc")
        .args([
            "-n",
            &format!("{prefix}-switch"),
            "class",
            "show",
            "dev",
            "p-server-a",
        ])
        .output()
        .unwrap();
    let c = String::from_utf8_lossy(&c.stdout);
    assert!(c.contains("class htb 1:1 root rate 100Mbit"), "{c}");
    assert!(
        c.contains("class htb 1:10 parent 1:1 leaf 10: prio 0"),
        "{c}"
    );
    let cg = v["hosts"]["server-a"]["cgroup"]
        .as_str()
        .unwrap()
        .to_string();
    let procs = std::fs::read_to_string(format!("{cg}/cgroup.procs")).unwrap();
    let pid = recorded_pids(&v)[0];
    assert!(
        procs.lines().any(|l| l.trim() == pid.to_string()),
        "{procs}"
    );
    // Half a core as 5 ms per 10 ms period: throttled hosts stand still for
    // at most 5 ms at a time, not 50 ms as with the kernel's 100 ms period.
    let read = |f: &str| {
        std::fs::read_to_string(format!("{cg}/{f}"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("cpu.cfs_period_us"), "10000");
    assert_eq!(read("cpu.cfs_quota_us"), "5000");
    // The host receives in a NAPI thread of its own, inside its CPU group
    // (its receive path is charged to it, not to the sender).
    let rx = v["hosts"]["server-a"]["rx_thread"]
        .as_u64()
        .expect("rx_thread");
    let comm = std::fs::read_to_string(format!("/proc/{rx}/comm")).unwrap();
    assert!(comm.starts_with("napi/eth0-"), "{comm}");
    let tasks = read("tasks");
    assert!(tasks.lines().any(|l| l.trim() == rx.to_string()), "{tasks}");
    // Inside the quota as an ordinary thread; a host without a quota
    // receives at SCHED_FIFO (policy 1, field 41 of /proc/PID/stat).
    let policy = |pid: u64| -> String {
        let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let rest = st.rsplit_once(')').unwrap().1;
        rest.split_whitespace().nth(41 - 3).unwrap().to_string()
    };
    assert_eq!(policy(rx), "0");
    let router_rx = v["hosts"]["router"]["rx_thread"]
        .as_u64()
        .expect("rx_thread");
    assert_eq!(policy(router_rx), "1");
    // Heartbeats (DSCP EF) arrive on a queue of their own, received by a
    // real-time thread in the same group: EF datagrams wake it, others
    // never do (the switch port's egress program sorts them).
    let hb_rx = v["hosts"]["server-a"]["heartbeat_rx_thread"]
        .as_u64()
        .expect("heartbeat_rx_thread");
    assert_ne!(hb_rx, rx);
    assert!(
        tasks.lines().any(|l| l.trim() == hb_rx.to_string()),
        "{tasks}"
    );
    assert_eq!(policy(hb_rx), "1");
    let runs = |pid: u64| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
        s.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    let send = |tos: u8| {
        let code = format!(
            "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.setsockopt(socket.IPPROTO_IP,socket.IP_TOS,{tos})\n\
             for i in range(50):\n s.sendto(b'x'*64,('192.0.2.11',9)); time.sleep(0.002)\n"
        );
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &format!("{prefix}-router"),
                "python3",
                "-c",
                &code,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let before = runs(hb_rx);
    send(0);
    assert_eq!(
        runs(hb_rx),
        before,
        "plain datagrams stay off the heartbeat queue"
    );
    send(46 << 2);
    assert!(
        runs(hb_rx) > before,
        "EF datagrams are received by the heartbeat thread"
    );
    let o = Command::new("ip")
        .args(["netns", "exec", &format!("{prefix}-switch")])
        .args(["tc", "filter", "show", "dev", "p-server-a", "egress"])
        .output()
        .unwrap();
    let f = String::from_utf8_lossy(&o.stdout);
    assert!(f.contains("coral_lan_queue"), "{f}");
    let o = Command::new("ip")
        .args(["netns", "exec", &format!("{prefix}-server-a"), "cat"])
        .arg("/sys/class/net/eth0/threaded")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1");
    let o = Command::new("ip")
        .args(["netns", "exec", &format!("{prefix}-switch")])
        .args(["ethtool", "-k", "p-server-a"])
        .output()
        .unwrap();
    let k = String::from_utf8_lossy(&o.stdout);
    assert!(k.contains("tcp-segmentation-offload: off"), "{k}");
    // The switch's port receives in its own thread too, outside the
    // host's group, and the host sends without TSO so that port takes it.
    let o = Command::new("ip")
        .args(["netns", "exec", &format!("{prefix}-switch"), "cat"])
        .arg("/sys/class/net/p-server-a/threaded")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1");
    let o = Command::new("ip")
        .args(["netns", "exec", &format!("{prefix}-server-a")])
        .args(["ethtool", "-k", "eth0"])
        .output()
        .unwrap();
    let k = String::from_utf8_lossy(&o.stdout);
    assert!(k.contains("tcp-segmentation-offload: off"), "{k}");
    let ran = || -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{rx}/schedstat")).unwrap();
        s.split_whitespace().next().unwrap().parse().unwrap()
    };
    let before = ran();
    // Real-time budget, so the node's heartbeat thread gets SCHED_FIFO
    // inside the group (a halving of 2 ms if other groups hold the rest).
    assert_eq!(read("cpu.rt_period_us"), "10000");
    let rt: u64 = read("cpu.rt_runtime_us").parse().unwrap();
    assert!((125..=2000).contains(&rt), "rt_runtime_us {rt}");
    // The switch is a plain switch: no bridge netfilter hooks, neither by the
    // namespace's sysctls (they start at 1 in every new namespace when
    // br_netfilter is in the kernel) nor by the bridge's own options.
    let sw = format!("{prefix}-switch");
    if std::path::Path::new("/proc/sys/net/bridge").exists() {
        for k in ["iptables", "ip6tables", "arptables"] {
            let o = Command::new("ip")
                .args(["netns", "exec", &sw, "cat"])
                .arg(format!("/proc/sys/net/bridge/bridge-nf-call-{k}"))
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&o.stdout).trim(),
                "0",
                "bridge-nf-call-{k} in {sw}"
            );
        }
    }
    let o = Command::new("ip")
        .args(["-n", &sw, "-d", "link", "show", "br0"])
        .output()
        .unwrap();
    let br = String::from_utf8_lossy(&o.stdout);
    for k in ["iptables", "ip6tables", "arptables"] {
        assert!(br.contains(&format!("nf_call_{k} 0")), "{br}");
    }
    assert!(t
        .fetch("http://192.0.2.11/cgi-bin/webstone", 1000)
        .is_some());
    // The fetch's frames to server-a ran in that thread (its run time
    // grew), which is still in the group afterwards.
    assert!(ran() > before, "the receive thread never ran");
    assert!(read("tasks").lines().any(|l| l.trim() == rx.to_string()));
    coral_ok(&["down", "--state", state]);
    assert!(!std::path::Path::new(&cg).exists(), "cgroup left behind");
    let acct = cg.replace("/sys/fs/cgroup/cpu/", "/sys/fs/cgroup/cpuacct/");
    assert!(
        !std::path::Path::new(&acct).exists(),
        "cpuacct group left behind"
    );
    // Nonsense conditions: a clear error, nothing created.
    let d2 = tempfile::tempdir().unwrap();
    let o = coral(&[
        "up",
        "--service",
        "unreplicated",
        "--state",
        d2.path().to_str().unwrap(),
        "--server-cpu",
        "0",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("server-cpu"));
    assert!(!d2.path().join("topology.json").exists());
}
