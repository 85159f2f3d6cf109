//! Dual role (paper section 3): each server fronts one service
//! address and is primary for the other. Clients on both addresses; when
//! either server's link is cut, the survivor takes both roles (rebuilding the
//! connections it was backing up, taking the address the failed node fronted
//! for those it already served) and no client notices.

mod netns_util;

use netns_util::{coral, coral_ok, read_json, test_prefix};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Pair {
    dir: tempfile::TempDir,
}

impl Pair {
    fn up() -> Pair {
        let p = Pair {
            dir: tempfile::tempdir().unwrap(),
        };
        coral_ok(&[
            "up",
            "--service",
            "coral",
            "--dual-role",
            "--heartbeat-ms",
            "50",
            "--misses",
            "3",
            "--state",
            p.state(),
            "--prefix",
            &test_prefix(),
        ]);
        p
    }
    fn state(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
    fn json(&self) -> serde_json::Value {
        read_json(&self.dir.path().join("topology.json"))
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = coral(&["down", "--state", self.state()]);
    }
}

fn survive_cut_of(victim: &str, survivor: &str) {
    let p = Pair::up();
    let t = p.json();
    let urls: Vec<String> = t["service_urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    assert_eq!(urls.len(), 2, "{t}");
    for (host, roles) in [
        ("server-a", ["192.0.2.100", "192.0.2.101"]),
        ("server-b", ["192.0.2.101", "192.0.2.100"]),
    ] {
        let r = &t["hosts"][host]["roles"];
        assert_eq!(
            r[0]["vip"], roles[0],
            "{host} is primary for its own address: {r}"
        );
        assert_eq!(r[0]["role"], "primary");
        assert_eq!(r[1]["vip"], roles[1], "{host} fronts the other: {r}");
        assert_eq!(r[1]["role"], "backup");
    }
    let out = p.dir.path().join("load");
    let mut load = Command::new("ip");
    load.args(["netns", "exec", t["client_ns"].as_str().unwrap()])
        .arg(std::path::Path::new(netns_util::exe()).with_file_name("coral-load"));
    for u in &urls {
        load.args(["--url", u]);
    }
    let child = load
        .args([
            "--clients",
            "8",
            "--duration-s",
            "5",
            "--warmup-s",
            "0",
            "--timeout-s",
            "20",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    coral_ok(&["fault", "--state", p.state(), "link-cut", victim]);
    let o = child.wait_with_output().unwrap();
    let events = std::fs::read_to_string(p.dir.path().join("events.csv")).unwrap_or_default();
    assert!(
        o.status.success(),
        "coral-load: {}\n{events}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = read_json(&out.join("summary.json"));
    let ctx = format!("{s}\n{events}");
    assert_eq!(s["errors"], 0, "{ctx}");
    assert_eq!(s["reconnects"], 0, "{ctx}");
    assert_eq!(s["digest_mismatches"], 0, "{ctx}");
    assert_eq!(s["requests_lost"], 0, "{ctx}");
    // Afterwards the survivor serves both addresses, on the same connections.
    let mut rdr = csv::Reader::from_path(out.join("requests.csv")).unwrap();
    let h: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    for client in 0..8 {
        let mine: Vec<_> = rows
            .iter()
            .filter(|r| r[col("client")] == client.to_string())
            .collect();
        let ports: std::collections::BTreeSet<&str> = mine
            .iter()
            .map(|r| r.get(col("local_port")).unwrap())
            .collect();
        assert_eq!(
            ports.len(),
            1,
            "client {client} kept its connection: {ports:?}"
        );
        assert_eq!(
            mine.last().unwrap().get(col("served_by")),
            Some(survivor),
            "client {client}: {ctx}"
        );
    }
    // Both kinds of failover happened on the survivor: a rebuild of the
    // connections it backed up, and the address it served as primary moved
    // to its LAN interface.
    assert!(
        events.contains(&format!("{survivor},coral,takeover,")),
        "{events}"
    );
    assert!(
        events.contains(&format!("{survivor},coral,simplex-address,")),
        "{events}"
    );
}

#[test]
fn netns_dual_role_survives_the_cut_of_server_a() {
    survive_cut_of("server-a", "server-b");
}

#[test]
fn netns_dual_role_survives_the_cut_of_server_b() {
    survive_cut_of("server-b", "server-a");
}

#[test]
fn netns_every_process_of_a_coral_server_host_is_in_its_cpu_group() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().to_str().unwrap().to_string();
    coral_ok(&[
        "up",
        "--service",
        "coral",
        "--dual-role",
        "--heartbeat-ms",
        "50",
        "--server-cpu",
        "0.5",
        "--state",
        &state,
        "--prefix",
        &test_prefix(),
    ]);
    let t = read_json(&d.path().join("topology.json"));
    let check = || -> Result<(), String> {
        for host in ["server-a", "server-b"] {
            let h = &t["hosts"][host];
            let cg = h["cgroup"]
                .as_str()
                .ok_or(format!("{host} has no cgroup: {h}"))?;
            let procs =
                std::fs::read_to_string(format!("{cg}/cgroup.procs")).map_err(|e| e.to_string())?;
            let quota = std::fs::read_to_string(format!("{cg}/cpu.cfs_quota_us"))
                .map_err(|e| e.to_string())?;
            let period = std::fs::read_to_string(format!("{cg}/cpu.cfs_period_us"))
                .map_err(|e| e.to_string())?;
            // 0.5 core: 5 ms per 10 ms period (a slow CPU, not a stop-and-go one).
            if quota.trim() != "5000" || period.trim() != "10000" {
                return Err(format!("{host} quota {quota} per period {period}"));
            }
            // Every process in the host's namespace, not only the ones the
            // kit recorded, is charged to the host's quota.
            let o = Command::new("ip")
                .args(["netns", "pids", h["netns"].as_str().unwrap()])
                .output()
                .unwrap();
            let pids: Vec<String> = String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(String::from)
                .collect();
            if pids.is_empty() {
                return Err(format!("{host} runs no process"));
            }
            let mut fifo = 0;
            for p in pids {
                if !procs.lines().any(|l| l.trim() == p) {
                    return Err(format!("{host}: pid {p} is outside {cg} ({procs})"));
                }
                fifo += heartbeat_threads_in_fifo(&p);
            }
            // The group's real-time budget lets the node's heartbeat thread
            // run SCHED_FIFO inside the quota (without it: nice -10).
            if fifo != 1 {
                return Err(format!(
                    "{host}: {fifo} SCHED_FIFO heartbeat threads in {cg}, want 1"
                ));
            }
        }
        Ok(())
    };
    let r = check();
    let _ = coral(&["down", "--state", &state]);
    r.unwrap();
}

/// How many threads of process `pid` named `coral-heartbeat` run under
/// `SCHED_FIFO` (policy 1, field 41 of /proc/PID/task/TID/stat).
fn heartbeat_threads_in_fifo(pid: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // Fields after the parenthesised command name start at field 3.
            let policy = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(41 - 3))
                .unwrap_or("");
            comm.trim() == "coral-heartbeat" && policy == "1"
        })
        .count()
}
