//! Namespace integration tests of `coral-exp run`: the baseline experiments
//! in their QUICK shape, through the real binaries, into a temp results tree.

#[path = "netns_util/mod.rs"]
mod util;

use std::path::Path;
use util::*;

/// requests.csv rows as column -> value maps; the contract's columns must
/// all be there (extra columns are allowed).
fn rows(p: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(p).unwrap();
    let h = r.headers().unwrap().clone();
    for col in [
        "client",
        "seq",
        "url",
        "local_port",
        "new_connection",
        "start_unix_ns",
        "end_unix_ns",
        "latency_us",
        "status",
        "bytes",
        "digest_ok",
        "served_by",
        "error_kind",
    ] {
        assert!(h.iter().any(|x| x == col), "requests.csv lacks {col}");
    }
    r.records()
        .map(|x| {
            let x = x.unwrap();
            h.iter()
                .zip(x.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn netns_run_baseline_quick_writes_the_tree() {
    let res = tempfile::tempdir().unwrap();
    let out = coral_ok(&[
        "run",
        "baseline",
        "--quick",
        "--results",
        res.path().to_str().unwrap(),
    ]);
    eprintln!("{out}");
    let mut rps = Vec::new();
    for variant in ["one-server", "two-servers"] {
        let d = join(res.path(), &["baseline", variant, "rep-1"]);
        for f in ["config.json", "requests.csv", "events.csv", "summary.json"] {
            assert!(d.join(f).is_file(), "{variant}: missing {f}");
        }
        let s = read_json(&d.join("summary.json"));
        assert!(s["ok"].as_u64().unwrap() > 0, "{variant}: {s}");
        assert_eq!(s["errors"], 0, "{variant}: {s}");
        assert_eq!(s["digest_mismatches"], 0);
        assert_eq!(s["requests_lost"], 0);
        assert!(s.get("fault_at_unix_ns").is_none());
        rps.push(s["throughput_rps"].as_f64().unwrap());
        let c = read_json(&d.join("config.json"));
        assert_eq!(c["experiment"], "baseline");
        assert_eq!(c["variant"], variant);
        assert_eq!(c["clients"], 8);
        assert_eq!(c["size"], 1024);
        // Every request row is a verified 1 KB reply from a server.
        let rows = rows(&d.join("requests.csv"));
        assert_eq!(rows.len() as u64, s["requests"].as_u64().unwrap());
        let mut served = std::collections::BTreeSet::new();
        for r in &rows {
            assert_eq!(&r["digest_ok"], "true");
            assert_eq!(&r["bytes"], "1024");
            served.insert(r["served_by"].clone());
        }
        let want: Vec<&str> = if variant == "one-server" {
            vec!["server-a"]
        } else {
            vec!["server-a", "server-b"]
        };
        assert_eq!(served.iter().map(String::as_str).collect::<Vec<_>>(), want);
        let prefix = c["prefix"].as_str().unwrap();
        assert!(
            namespaces_with(prefix).is_empty(),
            "rep left its topology up"
        );
    }
    eprintln!(
        "throughput one server {:.0} req/s, two servers {:.0} req/s",
        rps[0], rps[1]
    );
}

/// The CGI application through coral-exp: a Table 3 CoRAL variant (the
/// paper's experiments run `cgi` by default) and the baseline with `--app
/// cgi`; config.json records the mode, every reply is digest-verified, the
/// server CPU per request is measured (where a quota gives a cgroup).
#[test]
fn netns_run_cgi_application_is_recorded_and_served() {
    let res = tempfile::tempdir().unwrap();
    let r = res.path().to_str().unwrap();
    for (args, exp, variant) in [
        (
            vec![
                "run",
                "table3-overhead",
                "--quick",
                "--variant",
                "cpu050-coral-single-role",
            ],
            "table3-overhead",
            "cpu050-coral-single-role",
        ),
        (
            vec![
                "run",
                "baseline",
                "--quick",
                "--app",
                "cgi",
                "--variant",
                "one-server",
            ],
            "baseline",
            "one-server",
        ),
    ] {
        let mut a = args.clone();
        a.extend(["--results", r]);
        let out = coral_ok(&a);
        eprintln!("{out}");
        let d = join(res.path(), &[exp, variant, "rep-1"]);
        let c = read_json(&d.join("config.json"));
        assert_eq!(c["app"], "cgi", "{c}");
        let s = read_json(&d.join("summary.json"));
        assert!(s["ok"].as_u64().unwrap() > 0, "{variant}: {s}");
        assert_eq!(s["errors"], 0, "{variant}: {s}");
        assert_eq!(s["digest_mismatches"], 0);
        if c["conditions"]["server_cpu"].is_number() {
            // A quota puts each server host in a cgroup: its CPU is measured.
            assert!(s["cpu_ms_per_request"].as_f64().is_some(), "{s}");
        }
        for row in rows(&d.join("requests.csv")) {
            assert_eq!(&row["digest_ok"], "true");
            assert_eq!(&row["bytes"], "1024");
        }
        eprintln!(
            "{exp}/{variant} (cgi): {} req/s, server CPU {} ms per request",
            s["throughput_rps"], s["cpu_ms_per_request"]
        );
    }
    // --app on Table 3 selects that mode's variants: a cgi one is gone.
    let out = coral(&[
        "run",
        "table3-overhead",
        "--quick",
        "--app",
        "inproc",
        "--variant",
        "cpu050-one-server",
        "--results",
        r,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no variant"));
}

#[test]
fn netns_run_baseline_crash_records_errors_and_reconnects() {
    let res = tempfile::tempdir().unwrap();
    coral_ok(&[
        "run",
        "baseline-crash",
        "--quick",
        "--results",
        res.path().to_str().unwrap(),
    ]);
    let d = join(res.path(), &["baseline-crash", "one-server", "rep-1"]);
    let s = read_json(&d.join("summary.json"));
    assert!(s["errors"].as_u64().unwrap() > 0, "{s}");
    assert!(s["reconnects"].as_u64().unwrap() > 0, "{s}");
    assert!(s["ok"].as_u64().unwrap() > 0, "{s}");
    let fault_at = s["fault_at_unix_ns"].as_u64().unwrap();
    // The errors are in requests.csv, at or after the kill.
    let rows = rows(&d.join("requests.csv"));
    let errs: Vec<_> = rows
        .iter()
        .filter(|r| !r["error_kind"].is_empty())
        .collect();
    assert_eq!(errs.len() as u64, s["errors"].as_u64().unwrap());
    assert!(errs
        .iter()
        .all(|r| r["end_unix_ns"].parse::<u64>().unwrap() >= fault_at));
    // After the restart, clients reconnected and got verified replies again.
    let reconnected = rows.iter().any(|r| {
        &r["new_connection"] == "true"
            && r["error_kind"].is_empty()
            && r["start_unix_ns"].parse::<u64>().unwrap() > fault_at
    });
    assert!(reconnected, "no successful new connection after the kill");
    // The kill is in events.csv, with the host it hit.
    let ev = std::fs::read_to_string(d.join("events.csv")).unwrap();
    let kill = ev
        .lines()
        .find(|l| l.contains(",kill,"))
        .expect("kill event");
    assert!(kill.contains("server-a") && kill.starts_with(&fault_at.to_string()));
}

#[test]
fn netns_run_interrupted_tears_its_topology_down() {
    let res = tempfile::tempdir().unwrap();
    let prefix = test_prefix();
    let mut child = std::process::Command::new(exe())
        .args([
            "run",
            "baseline",
            "--quick",
            "--variant",
            "two-servers",
            "--results",
            res.path().to_str().unwrap(),
            "--prefix",
            &prefix,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the load runs (config.json is written once the topology is up).
    let cfg = join(
        res.path(),
        &["baseline", "two-servers", "rep-1", "config.json"],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !cfg.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let up = cfg.exists() && namespaces_with(&prefix).len() == 7;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(up, "the run never brought its topology up");
    assert!(!status.success(), "an interrupted run must fail");
    assert!(
        namespaces_with(&prefix).is_empty(),
        "Ctrl-C left the topology up"
    );
    // No coral-load or webstone-server of this run is left either.
    let t = read_json(&join(
        res.path(),
        &[
            "baseline",
            "two-servers",
            "rep-1",
            "topology",
            "topology.json",
        ],
    ));
    assert_eq!(t["status"], "down");
    assert!(recorded_pids(&t).iter().all(|&p| !alive(p)));
}
