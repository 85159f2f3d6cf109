//! Namespace integration test of the paper's CoRAL experiments through the
//! real binaries: `coral-exp run table1-failover --quick --reps 1` cuts a
//! CoRAL server's link under load, and the runner must turn the survivor's
//! `takeover`/`simplex-address` event into `summary.failover`; and
//! `coral-exp join` on a live CoRAL topology, refusals included.

#[path = "netns_util/mod.rs"]
mod util;

use util::*;

/// `key=number` tokens of an events.csv detail.
fn detail_value(detail: &str, key: &str) -> Option<f64> {
    detail.split_whitespace().find_map(|t| {
        let (k, v) = t.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

#[test]
fn netns_table1_failover_quick_fills_the_breakdown() {
    let res = tempfile::tempdir().unwrap();
    let prefix = test_prefix();
    let out = coral_ok(&[
        "run",
        "table1-failover",
        "--quick",
        "--reps",
        "1",
        "--prefix",
        &prefix,
        "--results",
        res.path().to_str().unwrap(),
    ]);
    eprintln!("{out}");
    for (variant, cut, event) in [
        ("dual-role", "server-a", "takeover"),
        ("single-role-backup-cut", "server-b", "simplex-address"),
    ] {
        let d = join(res.path(), &["table1-failover", variant, "rep-1"]);
        let s = read_json(&d.join("summary.json"));
        assert_eq!(s["errors"], 0, "{variant}: {s}");
        assert_eq!(s["digest_mismatches"], 0, "{variant}: {s}");
        assert_eq!(s["requests_lost"], 0, "{variant}: {s}");
        assert!(s["ok"].as_u64().unwrap() > 0, "{variant}: {s}");
        let f = s["failover"]
            .as_object()
            .unwrap_or_else(|| panic!("{variant}: no failover in {s}"));
        for k in [
            "kernel_ops",
            "user_ops",
            "gratuitous_arp",
            "outside_ping",
            "total",
            "detection_ms",
        ] {
            assert!(f[k].is_number(), "{variant}: failover.{k} missing: {s}");
        }
        assert!(f["detection_ms"].as_f64().unwrap() > 0.0, "{variant}: {s}");
        assert_eq!(
            f.contains_key("address_move_ms"),
            variant == "dual-role",
            "{variant}: {s}"
        );
        // The breakdown is the survivor's event, copied, not the cut node's.
        let mut r = csv::Reader::from_path(d.join("events.csv")).unwrap();
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        let survivor_event = rows
            .iter()
            .find(|x| &x[3] == event && &x[1] != cut)
            .unwrap_or_else(|| panic!("{variant}: no {event} of the survivor in events.csv"));
        assert_eq!(
            f["total"].as_f64(),
            detail_value(&survivor_event[4], "total"),
            "{variant}: {s}"
        );
        assert!(rows.iter().any(|x| &x[3] == "link-cut" && &x[1] == cut));
        let c = read_json(&d.join("config.json"));
        assert_eq!(c["service"], "coral");
        assert_eq!(c["conditions"]["lan_mbit"], 100);
        assert_eq!(c["conditions"]["server_cpu"], 0.5);
        assert_eq!(c["conditions"]["cfs_period_us"], 10_000);
        assert_eq!(c["conditions"]["bridge_nf_call"], 0);
        assert_eq!(c["conditions"]["rt_runtime_us"], 2000);
        assert_eq!(c["conditions"]["rt_period_us"], 10_000);
        assert!(
            c["conditions"]["lan_qdisc"]
                .as_str()
                .is_some_and(|q| q.starts_with("htb 100mbit")),
            "{c}"
        );
        assert_eq!(c["fault"]["host"], cut);
    }
    assert!(
        namespaces_with(&prefix).is_empty(),
        "namespaces left behind: {:?}",
        namespaces_with(&prefix)
    );
}

/// Waits up to 10 s for an events.csv row of `host` whose event and detail
/// contain `what` (`event,detail`).
fn wait_row(t: &Topo, host: &str, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ev = std::fs::read_to_string(t.dir.path().join("events.csv")).unwrap_or_default();
        if ev
            .lines()
            .any(|l| l.contains(&format!(",{host},")) && l.contains(what))
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {what} of {host}:\n{ev}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn stderr_of(args: &[&str]) -> String {
    let o = coral(args);
    assert!(!o.status.success(), "coral-exp {args:?} should fail");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `coral-exp join HOST` on a live CoRAL topology: refused without a
/// simplex node and for a host whose link is cut; after server-a is killed
/// the spare joins server-b (both duplex), a second join of the running
/// spare is refused, and when server-b is killed too the spare serves.
#[test]
fn netns_coral_exp_join_the_spare_after_a_kill_and_refusals() {
    let t = Topo {
        dir: tempfile::tempdir().unwrap(),
        prefix: test_prefix(),
    };
    let st = t.state().to_string();
    coral_ok(&[
        "up",
        "--service",
        "coral",
        "--state",
        &st,
        "--prefix",
        &t.prefix,
    ]);
    let url = t.json()["service_url"].as_str().unwrap().to_string();
    let e = stderr_of(&["join", "--state", &st, "spare"]);
    assert!(e.contains("no node serves alone"), "{e}");

    coral_ok(&["fault", "--state", &st, "kill", "server-a"]);
    wait_row(&t, "server-b", "to=Simplex");
    coral_ok(&["fault", "--state", &st, "link-cut", "spare"]);
    let e = stderr_of(&["join", "--state", &st, "spare"]);
    assert!(e.contains("cannot reach the simplex node server-b"), "{e}");
    coral_ok(&["fault", "--state", &st, "link-restore", "spare"]);

    let out = coral_ok(&["join", "--state", &st, "spare"]);
    assert!(out.contains("join spare: joined server-b"), "{out}");
    assert!(out.contains("total="), "{out}");
    let e = stderr_of(&["join", "--state", &st, "spare"]);
    assert!(e.contains("already serving"), "{e}");
    let j = t.json();
    assert_eq!(j["hosts"]["spare"]["roles"][0]["role"], "backup", "{j}");
    assert_eq!(j["hosts"]["server-b"]["roles"][0]["role"], "primary", "{j}");
    assert_eq!(t.fetch_within(&url, 1000, 5).as_deref(), Some("server-b"));

    coral_ok(&["fault", "--state", &st, "kill", "server-b"]);
    wait_row(&t, "spare", ",takeover,");
    assert_eq!(t.fetch_within(&url, 1000, 5).as_deref(), Some("spare"));
}

/// `coral-exp join` in dual role: after server-a is killed, the spare
/// joins server-b as the primary of server-a's address (server-b fronts it
/// again) and the front of the other; new connections to that address are
/// served by the spare, the other's by server-b; when server-b is killed
/// the spare serves both.
#[test]
fn netns_coral_exp_join_in_dual_role_moves_one_address_to_the_spare() {
    let t = Topo {
        dir: tempfile::tempdir().unwrap(),
        prefix: test_prefix(),
    };
    let st = t.state().to_string();
    coral_ok(&[
        "up",
        "--service",
        "coral",
        "--dual-role",
        "--state",
        &st,
        "--prefix",
        &t.prefix,
    ]);
    let j = t.json();
    let urls: Vec<String> = j["service_urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    assert_eq!(urls.len(), 2, "{j}");
    coral_ok(&["fault", "--state", &st, "kill", "server-a"]);
    wait_row(&t, "server-b", ",takeover,");
    let out = coral_ok(&["join", "--state", &st, "spare"]);
    assert!(out.contains("join spare: joined server-b"), "{out}");
    let j = t.json();
    let role = |h: &str, vip: &str| -> String {
        j["hosts"][h]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["vip"] == vip)
            .map(|r| r["role"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (moved, other) = ("192.0.2.100", "192.0.2.101");
    assert_eq!(
        (role("spare", moved), role("spare", other)),
        ("primary".into(), "backup".into()),
        "{j}"
    );
    assert_eq!(
        (role("server-b", moved), role("server-b", other)),
        ("backup".into(), "primary".into()),
        "{j}"
    );
    assert!(
        urls[0].contains(moved) && urls[1].contains(other),
        "{urls:?}"
    );
    assert_eq!(t.fetch_within(&urls[0], 1000, 5).as_deref(), Some("spare"));
    assert_eq!(
        t.fetch_within(&urls[1], 1000, 5).as_deref(),
        Some("server-b")
    );

    coral_ok(&["fault", "--state", &st, "kill", "server-b"]);
    wait_row(&t, "spare", ",takeover,");
    for u in &urls {
        assert_eq!(t.fetch_within(u, 1000, 5).as_deref(), Some("spare"), "{u}");
    }
}
