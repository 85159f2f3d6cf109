//! Namespace integration tests of `coral-exp fault`: each fault really cuts
//! (and restores) service as seen from the client namespace, and is recorded.

#[path = "netns_util/mod.rs"]
mod util;

use std::process::Command;
use util::*;

const A: &str = "http://192.0.2.11/cgi-bin/webstone";
const B: &str = "http://192.0.2.12/cgi-bin/webstone";

fn events(t: &Topo) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(t.dir.path().join("events.csv")).unwrap_or_default();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("t_unix_ns,host,source,event,detail"));
    lines
        .map(|l| l.splitn(5, ',').map(String::from).collect())
        .collect()
}

#[test]
fn netns_link_cut_and_restore() {
    let t = Topo::up(2);
    assert!(t.fetch(A, 100).is_some());
    coral_ok(&["fault", "--state", t.state(), "link-cut", "server-a"]);
    assert!(
        t.fetch(A, 100).is_none(),
        "server-a reachable after link cut"
    );
    assert!(t.fetch(B, 100).is_some(), "server-b must be unaffected");
    coral_ok(&["fault", "--state", t.state(), "link-restore", "server-a"]);
    assert!(
        t.fetch(A, 100).is_some(),
        "server-a unreachable after restore"
    );
    let ev = events(&t);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0][1], "server-a");
    assert_eq!(ev[0][2], "faultinject");
    assert_eq!(ev[0][3], "link-cut");
    assert_eq!(ev[1][3], "link-restore");
    assert!(ev[0][0].parse::<u64>().unwrap() <= ev[1][0].parse::<u64>().unwrap());
}

#[test]
fn netns_partition_and_heal_from_inside_the_client() {
    let t = Topo::up(2);
    // Injected from inside the client namespace: must not depend on it.
    let fault = |args: &[&str]| {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &t.client_ns(),
                exe(),
                "fault",
                "--state",
                t.state(),
            ])
            .args(args)
            .output()
            .unwrap()
    };
    let o = fault(&["partition", "router", "server-b"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(t.fetch(B, 100).is_none(), "partitioned server-b answered");
    assert!(t.fetch(A, 100).is_some(), "server-a must be unaffected");
    let o = fault(&["heal", "server-b", "router"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        t.fetch_within(B, 100, 10).is_some(),
        "server-b unreachable after heal"
    );
    // Healing again did nothing: non-zero.
    assert!(!fault(&["heal", "router", "server-b"]).status.success());
    // The client is not on the switch: a clear error.
    let o = fault(&["partition", "client", "server-a"]);
    assert!(!o.status.success());
    let ev = events(&t);
    assert_eq!(
        ev.iter().map(|e| e[3].as_str()).collect::<Vec<_>>(),
        vec!["partition", "heal"]
    );
}

#[test]
fn netns_stop_cont_and_kill_by_role() {
    let t = Topo::up(1);
    assert!(t.fetch(A, 100).is_some());
    coral_ok(&["fault", "--state", t.state(), "stop", "primary"]);
    assert!(t.fetch(A, 100).is_none(), "stopped server answered");
    coral_ok(&["fault", "--state", t.state(), "cont", "primary:192.0.2.11"]);
    assert!(
        t.fetch_within(A, 100, 10).is_some(),
        "continued server silent"
    );
    let pid = recorded_pids(&t.json())[0];
    coral_ok(&["fault", "--state", t.state(), "kill", "server-a"]);
    // SIGKILL is delivered asynchronously: the exit may take a moment on a
    // loaded machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!alive(pid), "killed server still alive after 5 s");
    assert!(t.fetch(A, 100).is_none(), "killed server answered");
    // Nothing left to kill: non-zero.
    assert!(!coral(&["fault", "--state", t.state(), "kill", "server-a"])
        .status
        .success());
    // Unknown role / host: non-zero.
    assert!(!coral(&["fault", "--state", t.state(), "kill", "backup"])
        .status
        .success());
    let ev = events(&t);
    assert_eq!(
        ev.iter().map(|e| e[3].as_str()).collect::<Vec<_>>(),
        vec!["stop", "cont", "kill"]
    );
    assert!(
        ev[0][4].contains("primary=server-a"),
        "role not recorded: {:?}",
        ev[0]
    );
}
