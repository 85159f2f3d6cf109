//! The Docker topology end to end, through the real binaries and the local
//! engine: CoRAL comes up in containers, replies are digest-verified through
//! the router, the primary's link is cut (its host-side veth) under 8
//! keep-alive clients with no error and no reconnect, a partition between
//! two LAN hosts drops their frames until healed, and `down` leaves no
//! container, network, DOCKER-USER rule, partition rule or attached namespace
//! name; also after an `up` killed half-way.
//!
//! Where no Docker engine answers, each test says so on stderr and passes
//! without checking anything: the Docker topology cannot exist there. CI
//! here has an engine.

#[path = "netns_util/mod.rs"]
mod util;

use experiments::topology::docker;
use experiments::topology::Topology;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use util::*;

fn engine_or_skip(test: &str) -> bool {
    match docker::engine_available() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("{test}: SKIPPED: no Docker engine on this machine: {e:#}");
            false
        }
    }
}

/// Everything the kit could have left of `prefix`, described (empty: none).
fn leftovers(prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    if docker::Docker::default()
        .existing_prefixes()
        .iter()
        .any(|p| p == prefix)
    {
        out.push(format!("containers or networks labelled {prefix}"));
    }
    for n in namespaces_with(prefix) {
        out.push(format!("/run/netns/{n}"));
    }
    let rules = Command::new("iptables")
        .args(["-w", "-S", "DOCKER-USER"])
        .output()
        .unwrap();
    for l in String::from_utf8_lossy(&rules.stdout).lines() {
        if l.contains(&format!("coral-kit {prefix}")) {
            out.push(l.to_string());
        }
    }
    let br = Path::new("/sys/class/net").join(docker::lan_network(prefix));
    if br.exists() {
        out.push(br.display().to_string());
    }
    for rule in partition_rules(prefix) {
        out.push(rule);
    }
    out
}

/// The partition rules of `prefix` in the engine's namespace (nft lines).
fn partition_rules(prefix: &str) -> Vec<String> {
    let o = faultinject::netns::command_in(
        &docker::engine_netns().unwrap(),
        "nft",
        &["list", "table", "bridge", faultinject::PARTITION_TABLE],
    )
    .unwrap()
    .output()
    .unwrap();
    let label = docker::partition_label(prefix, "");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains(&label))
        .map(|l| l.trim().to_string())
        .collect()
}

/// Whether `from` reaches `addr` with one ping (1 s).
fn pings(prefix: &str, from: &str, addr: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", &format!("{prefix}-{from}")])
        .args(["ping", "-c1", "-W1", "-q", addr])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Effective capabilities of `pid` (bit mask from /proc).
fn cap_eff(pid: u64) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = s
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

#[test]
fn netns_docker_coral_link_cut_under_keepalive_load_and_nothing_left() {
    if !engine_or_skip("netns_docker_coral_link_cut_under_keepalive_load_and_nothing_left") {
        return;
    }
    let t = Topo {
        dir: tempfile::tempdir().unwrap(),
        prefix: test_prefix(),
    };
    let out = coral_ok(&[
        "up",
        "--topology",
        "docker",
        "--service",
        "coral",
        "--state",
        t.state(),
        "--prefix",
        &t.prefix,
    ]);
    eprintln!("{out}");
    let v = t.json();
    assert_eq!(v["topology"], "docker");
    let url = v["service_url"].as_str().unwrap().to_string();
    // The names of the netns topology, entered with `ip netns exec`.
    assert_eq!(v["client_ns"], format!("{}-client", t.prefix));
    for _ in 0..3 {
        let by = t.fetch(&url, 4096).expect("a digest-verified reply");
        assert_eq!(by, "server-a");
    }
    // The node runs inside its container, without CAP_SYS_ADMIN (bit 21):
    // never privileged.
    let node = v["hosts"]["server-a"]["pids"][0].as_u64().unwrap();
    assert!(alive(node));
    assert_eq!(
        cap_eff(node) & (1 << 21),
        0,
        "server-a's node has CAP_SYS_ADMIN"
    );
    assert_ne!(
        cap_eff(node) & (1 << 12),
        0,
        "server-a's node lacks CAP_NET_ADMIN"
    );

    // 8 keep-alive clients; the primary's link is cut 3 s in.
    let load = Path::new(exe()).with_file_name("coral-load");
    let out_dir = t.dir.path().join("load");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &t.client_ns()])
        .arg(&load)
        .args(["--url", &url, "--clients", "8", "--duration-s", "8"])
        .args(["--warmup-s", "1", "--out", out_dir.to_str().unwrap()])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let f = coral_ok(&["fault", "--state", t.state(), "link-cut", "primary"]);
    assert!(f.contains("server-a"), "{f}");
    let st = child.wait().unwrap();
    assert!(st.success(), "coral-load {st}");
    let s = read_json(&out_dir.join("summary.json"));
    eprintln!("{s}");
    assert!(s["ok"].as_u64().unwrap() > 100, "{s}");
    assert_eq!(s["errors"], 0, "{s}");
    assert_eq!(s["reconnects"], 0, "{s}");
    assert_eq!(s["digest_mismatches"], 0, "{s}");
    assert_eq!(s["requests_lost"], 0, "{s}");
    let events = std::fs::read_to_string(t.dir.path().join("events.csv")).unwrap();
    assert!(
        events
            .lines()
            .any(|l| l.contains(",server-b,coral,takeover,") && l.contains("restored=8")),
        "no takeover of the 8 connections by server-b:\n{events}"
    );

    // A partition between two LAN hosts drops their frames on the engine's
    // bridge, and heal restores them. Left in place, `down` removes it.
    let spare = v["hosts"]["spare"]["addr"].as_str().unwrap();
    assert!(pings(&t.prefix, "router", spare));
    coral_ok(&[
        "fault",
        "--state",
        t.state(),
        "partition",
        "router",
        "spare",
    ]);
    assert_eq!(partition_rules(&t.prefix).len(), 2);
    assert!(
        !pings(&t.prefix, "router", spare),
        "partitioned spare answered"
    );
    coral_ok(&["fault", "--state", t.state(), "heal", "spare", "router"]);
    assert!(
        pings(&t.prefix, "router", spare),
        "spare unreachable after heal"
    );
    assert_eq!(partition_rules(&t.prefix), Vec::<String>::new());
    coral_ok(&[
        "fault",
        "--state",
        t.state(),
        "partition",
        "router",
        "spare",
    ]);

    coral_ok(&["down", "--state", t.state()]);
    assert_eq!(leftovers(&t.prefix), Vec::<String>::new());
    coral_ok(&["down", "--state", t.state()]);
}

#[test]
fn netns_docker_down_after_a_killed_up_leaves_nothing() {
    if !engine_or_skip("netns_docker_down_after_a_killed_up_leaves_nothing") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = test_prefix();
    let state = dir.path().to_str().unwrap();
    let mut child = Command::new(exe())
        .args(["up", "--topology", "docker", "--service", "unreplicated"])
        .args(["--state", state, "--prefix", &prefix])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once its first containers exist (no teardown of its own).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while namespaces_with(&prefix).len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !leftovers(&prefix).is_empty(),
        "the killed up had created nothing: the test proves nothing"
    );
    coral_ok(&["down", "--state", state]);
    assert_eq!(leftovers(&prefix), Vec::<String>::new());
}
