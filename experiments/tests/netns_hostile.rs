//! Hostile input, live (docs/DESIGN.md section 4, "Hostile input"): `coral-exp
//! run hostile-input` throws, from the spare host on the server LAN, at a
//! CoRAL pair with its witness while 8 keep-alive clients fetch verified
//! replies: slow and oversized HTTP request heads, garbage and truncated
//! streams on the log and join ports, forged, replayed and flooded
//! heartbeats (the replays with the peer's own source address), forged
//! witness requests, ARP replies claiming the service address, and a flood
//! of SYNs from addresses that never answer. The attacks are the
//! experiment's (experiments/src/hostile/attacks.rs); this test asserts on
//! what it wrote, attack by attack: the clients did not notice, no node
//! detected a failure or moved the address or exited, the witness granted
//! nothing, and each rejection was counted where docs/CLI.md says.

#[path = "netns_util/mod.rs"]
mod util;

use util::*;

#[test]
fn netns_hostile_input_on_every_listener_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = test_prefix();
    let o = coral(&[
        "run",
        "hostile-input",
        "--results",
        dir.path().to_str().unwrap(),
        "--prefix",
        &prefix,
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let ctx = format!("{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    println!("{stdout}");
    assert!(namespaces_with(&prefix).is_empty(), "namespaces left");
    let path = dir.path().join("hostile-input/attacks.csv");
    let mut r = csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{e}\n{ctx}"));
    let head = r.headers().unwrap().clone();
    let col = |n: &str| head.iter().position(|h| h == n).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    let num = |r: &csv::StringRecord, c: &str| -> u64 {
        r[col(c)].parse().unwrap_or_else(|_| panic!("{c} of {r:?}"))
    };
    let row = |attack: &str, target: &str| -> &csv::StringRecord {
        rows.iter()
            .find(|r| r[col("attack")].starts_with(attack) && r[col("target")].starts_with(target))
            .unwrap_or_else(|| panic!("no row {attack} on {target}\n{ctx}"))
    };

    // Clients: every window had verified replies and nothing else.
    assert_eq!(rows.len(), 12, "{ctx}");
    for r in &rows {
        assert!(num(r, "ok") > 0, "{r:?}\n{ctx}");
        for k in [
            "errors",
            "lost",
            "reconnects",
            "digest_mismatches",
            "detections",
            "address_moves",
        ] {
            assert_eq!(num(r, k), 0, "{k} in {r:?}\n{ctx}");
        }
    }
    // The oversized head was refused, never served.
    let big = row("oversized request head", "192.0.2.100");
    assert!(
        !big[col("observed")].contains(" 200") && !big[col("observed")].is_empty(),
        "{big:?}"
    );
    // Every garbage or truncated log/JOIN stream was closed by the node and
    // counted: server-b's log_rejected+log_foreign, each node's join-rejected.
    for (attack, target) in [
        ("garbage and truncated log", "server-b"),
        ("garbage and truncated JOIN", "server-a"),
        ("garbage and truncated JOIN", "server-b"),
    ] {
        let r = row(attack, target);
        assert_eq!(&r[col("observed")], "2 of 2 closed by the node", "{r:?}");
        assert!(num(r, "counted") >= 1, "{r:?}\n{ctx}");
    }
    // Heartbeats: 2000 forged (every tenth garbage) and 500 replayed to
    // each node, every one counted in that node's hb_rejected.
    for host in ["server-a", "server-b"] {
        for (attack, n) in [("forged heartbeats", 2000), ("replayed heartbeats", 500)] {
            let r = row(attack, host);
            assert_eq!(num(r, "sent"), n, "{r:?}");
            assert_eq!(&r[col("counter")], format!("{host} hb_rejected"));
            assert!(num(r, "counted") >= n, "{r:?}\n{ctx}");
        }
    }
    // The witness counted the forged request and the garbage.
    let w = row("forged witness request", "198.51.100.10");
    assert!(num(w, "counted") >= 2, "{w:?}\n{ctx}");
    // ARP and SYNs: sent, and (above) nothing moved.
    assert_eq!(num(row("spoofed ARP", "server-a"), "sent"), 40);
    assert_eq!(num(row("SYN flood", "192.0.2.100"), "sent"), 5000);
    for r in &rows {
        assert_eq!(&r[col("verdict")], "pass", "{r:?}\n{ctx}");
    }
    // No node stopped, the witness granted nothing, a client was served
    // after the last attack: the experiment's exit code says so.
    assert!(o.status.success(), "exit {:?}\n{ctx}", o.status.code());
}
