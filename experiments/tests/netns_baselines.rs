//! Namespace integration tests of the load-balancer baselines: each one is
//! brought up with `coral-exp up`, serves digest-verified replies (curl and
//! sha256sum from the client namespace) through its service address, and
//! `coral-exp down` leaves no namespace and no process behind.

#[path = "netns_util/mod.rs"]
mod util;

use std::collections::BTreeSet;
use util::*;

/// Brings `service` up with `extra` flags in a fresh state dir.
fn up(service: &str, extra: &[&str]) -> Topo {
    let dir = tempfile::tempdir().unwrap();
    let prefix = test_prefix();
    let t = Topo { dir, prefix };
    let mut args = vec![
        "up",
        "--service",
        service,
        "--state",
        t.state(),
        "--prefix",
        &t.prefix,
    ];
    args.extend_from_slice(extra);
    coral_ok(&args);
    t
}

/// Pids of processes whose command line mentions `needle`.
fn pids_mentioning(needle: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// `down` removes every namespace, every recorded pid, and every process
/// started with a file of this state directory (nginx workers, keepalived's
/// VRRP child).
fn down_leaves_nothing(t: Topo) {
    let v = t.json();
    let pids = recorded_pids(&v);
    assert!(!pids.is_empty());
    let state = t.state().to_string();
    assert!(!pids_mentioning(&state).is_empty());
    coral_ok(&["down", "--state", &state]);
    assert!(namespaces_with(&t.prefix).is_empty(), "namespaces left");
    for p in pids {
        assert!(!alive(p), "pid {p} survived down");
    }
    assert_eq!(pids_mentioning(&state), Vec::<u64>::new(), "processes left");
}

/// Fetches `n` verified replies from the service URL; returns who served them.
fn served_by(t: &Topo, n: usize) -> BTreeSet<String> {
    let url = t.json()["service_url"].as_str().unwrap().to_string();
    (0..n)
        .map(|i| {
            t.fetch(&url, 1000 + i * 7)
                .unwrap_or_else(|| panic!("request {i} to {url} failed"))
        })
        .collect()
}

fn proxy_roles_and_url(t: &Topo, service: &str) {
    let v = t.json();
    assert_eq!(v["service"], service);
    assert_eq!(v["status"], "up");
    assert_eq!(v["service_url"], "http://192.0.2.10/cgi-bin/webstone");
    let roles: Vec<&str> = ["server-a", "server-b"]
        .iter()
        .map(|h| v["hosts"][h]["roles"][0]["role"].as_str().unwrap())
        .collect();
    assert!(
        roles.contains(&"primary") && roles.contains(&"backup"),
        "{roles:?}"
    );
}

#[test]
fn netns_haproxy_stock_and_tuned_serve_verified_replies_through_lb() {
    for profile in ["stock", "tuned"] {
        let t = up("haproxy", &["--lb-profile", profile]);
        proxy_roles_and_url(&t, "haproxy");
        let cfg = std::fs::read_to_string(t.dir.path().join("haproxy.cfg")).unwrap();
        assert!(cfg.contains(&format!("profile {profile}")));
        // Round robin over both servers, every reply verified.
        let by = served_by(&t, 6);
        assert_eq!(by, BTreeSet::from(["server-a".into(), "server-b".into()]));
        down_leaves_nothing(t);
    }
}

#[test]
fn netns_nginx_serves_verified_replies_through_lb() {
    let t = up("nginx", &[]);
    proxy_roles_and_url(&t, "nginx");
    assert!(t.dir.path().join("nginx.conf").is_file());
    let by = served_by(&t, 6);
    assert_eq!(by, BTreeSet::from(["server-a".into(), "server-b".into()]));
    down_leaves_nothing(t);
}

#[test]
fn netns_keepalived_master_serves_and_the_address_moves_on_a_link_cut() {
    let t = up("keepalived", &["--advert-ms", "50"]);
    let v = t.json();
    assert_eq!(v["service_url"], "http://192.0.2.100/cgi-bin/webstone");
    assert_eq!(v["hosts"]["server-a"]["roles"][0]["role"], "primary");
    assert_eq!(v["hosts"]["server-b"]["roles"][0]["role"], "backup");
    assert_eq!(served_by(&t, 3), BTreeSet::from(["server-a".into()]));
    // Cut the master's link: the role resolves to the master at fault time,
    // and server-b takes the address over.
    let out = coral_ok(&["fault", "--state", t.state(), "link-cut", "primary"]);
    assert!(out.contains("primary=server-a"), "{out}");
    let url = "http://192.0.2.100/cgi-bin/webstone";
    assert_eq!(t.fetch_within(url, 500, 5).as_deref(), Some("server-b"));
    // With nopreempt the restored server stays backup.
    coral_ok(&["fault", "--state", t.state(), "link-restore", "server-a"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = coral_ok(&["exec", "--state", t.state(), "primary", "--", "true"]);
    assert!(out.is_empty());
    assert_eq!(t.json()["hosts"]["server-b"]["roles"][0]["role"], "primary");
    assert_eq!(t.fetch_within(url, 500, 5).as_deref(), Some("server-b"));
    down_leaves_nothing(t);
}

#[test]
fn netns_baseline_options_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().to_str().unwrap();
    for (args, says) in [
        (
            vec!["--service", "nginx", "--lb-profile", "tuned"],
            "--lb-profile",
        ),
        (
            vec!["--service", "keepalived", "--advert-ms", "15"],
            "advert",
        ),
        (
            vec!["--service", "haproxy", "--advert-ms", "100"],
            "--advert-ms",
        ),
    ] {
        let mut a = vec!["up", "--state", s];
        a.extend(args);
        let o = coral(&a);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{err}");
    }
    assert!(!d.path().join("topology.json").exists());
}
