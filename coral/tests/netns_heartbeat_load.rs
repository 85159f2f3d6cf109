//! Detection that load does not fool (docs/DESIGN.md section 4): a pair at
//! 10 ms x 3 heartbeats, with a witness, carries a minute of 1 MB replies
//! (16 closed-loop keep-alive clients, two per each of 8 client slots) in
//! real namespaces, with no fault at all. Before heartbeats had a thread of
//! their own, both nodes declared each other failed as such downloads
//! started (the log channel moves every reply byte to the backup).

mod common;

use std::process::Command;

use common::duplex::{sibling, Duplex, VIP};

/// The value of `key=` in the last `counters` row of `events`.
fn last_counter(events: &str, key: &str) -> Option<u64> {
    let row = events.lines().rev().find(|l| l.contains(",counters,"))?;
    let tok = row
        .split([' ', ','])
        .find_map(|t| t.strip_prefix(&format!("{key}=")))?;
    tok.trim_matches('"').parse().ok()
}

#[test]
fn netns_a_minute_of_1mb_replies_at_10ms_heartbeats_detects_nothing() {
    let mut d = Duplex::start("hbl", 10, 3);
    let out_dir = d.dir.path().join("load");
    let out = Command::new("ip")
        .args(["netns", "exec", &d.c])
        .arg(sibling("coral-load"))
        .args(["--url", &format!("http://{VIP}/cgi-bin/webstone")])
        .args(["--clients", "16", "--size", "1048576"])
        .args(["--duration-s", "60", "--warmup-s", "0", "--timeout-s", "30"])
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let ctx = d.logs();
    assert!(
        out.status.success(),
        "coral-load: {}\n{ctx}",
        String::from_utf8_lossy(&out.stderr)
    );
    for h in ["server-a", "server-b"] {
        let ev = d.events(h);
        assert!(
            !ev.contains(",peer-failed,"),
            "{h} detected a failure\n{ctx}"
        );
        assert!(!ev.contains(",fenced,"), "{h} fenced\n{ctx}");
        eprintln!(
            "{h}: lease_lapses={:?} hb_delay_p50_us={:?} p99={:?} max={:?} hb_seq_gap={:?}",
            last_counter(&ev, "lease_lapses"),
            last_counter(&ev, "hb_delay_p50_us"),
            last_counter(&ev, "hb_delay_p99_us"),
            last_counter(&ev, "hb_delay_max_us"),
            last_counter(&ev, "hb_seq_gap"),
        );
    }
    for (i, n) in d.nodes.iter_mut().enumerate() {
        assert!(
            n.try_wait().unwrap().is_none(),
            "node {i} exited while both were healthy\n{ctx}"
        );
    }
    let s: serde_json::Value = common::duplex::load_summary(&out_dir);
    assert_eq!(s["errors"].as_u64(), Some(0), "{s}\n{ctx}");
    assert_eq!(s["digest_mismatches"].as_u64(), Some(0), "{s}");
    assert!(s["ok"].as_u64().unwrap_or(0) > 0, "{s}");
    eprintln!(
        "ok={} max_stall_ms={} throughput_rps={}",
        s["ok"], s["max_stall_ms"], s["throughput_rps"]
    );
}
