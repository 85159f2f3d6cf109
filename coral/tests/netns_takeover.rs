//! Transparent takeover in real namespaces (DESIGN.md section 5): when the
//! primary's link is cut, every open client connection continues on the
//! backup: same connection, no error, no reconnect, every reply correct.

mod common;

use std::time::Duration;

use common::duplex::{sibling, Duplex, VIP};

/// Run the load driver in the client for `secs`, cutting server-a's link
/// after `cut_after`; returns the summary and the rows.
fn load_across_cut(
    d: &Duplex,
    secs: u64,
    cut_after: Duration,
    extra: &[&str],
) -> (serde_json::Value, Vec<csv::StringRecord>, Vec<String>) {
    let out_dir = d.dir.path().join("load");
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", &d.c])
        .arg(sibling("coral-load"))
        .args([
            "--url",
            &format!("http://{VIP}/cgi-bin/webstone"),
            "--clients",
            "8",
        ])
        .args([
            "--duration-s",
            &secs.to_string(),
            "--warmup-s",
            "0",
            "--timeout-s",
            "20",
        ])
        .args(extra)
        .arg("--out")
        .arg(&out_dir);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(cut_after);
    common::sh(&["ip", "-n", &d.sw, "link", "set", "p-a", "down"]);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "coral-load: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.logs()
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    let mut rdr = csv::Reader::from_path(out_dir.join("requests.csv")).unwrap();
    let headers: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    let rows = rdr.records().map(|r| r.unwrap()).collect();
    (summary, rows, headers)
}

#[test]
fn netns_link_cut_of_the_primary_is_invisible_to_keepalive_clients() {
    let d = Duplex::start("tko", 50, 3);
    let (s, rows, h) = load_across_cut(&d, 5, Duration::from_millis(2000), &[]);
    let col = |name: &str| h.iter().position(|x| x == name).unwrap();
    let ctx = format!("{s}\n{}", d.logs());
    assert_eq!(s["errors"].as_u64(), Some(0), "{ctx}");
    assert_eq!(s["reconnects"].as_u64(), Some(0), "{ctx}");
    assert_eq!(s["digest_mismatches"].as_u64(), Some(0), "{ctx}");
    assert_eq!(s["requests_lost"].as_u64(), Some(0), "{ctx}");
    // Every client's connection moved from server-a to server-b without a
    // new connection: same local port before and after.
    for client in 0..8 {
        let mine: Vec<_> = rows
            .iter()
            .filter(|r| &r[col("client")] == client.to_string().as_str())
            .collect();
        let ports: std::collections::BTreeSet<_> = mine
            .iter()
            .map(|r| r[col("local_port")].to_string())
            .collect();
        assert_eq!(
            ports.len(),
            1,
            "client {client} used one connection: {ports:?}"
        );
        let served: Vec<&str> = mine
            .iter()
            .map(|r| r.get(col("served_by")).unwrap())
            .collect();
        assert_eq!(served.first(), Some(&"server-a"), "client {client}");
        assert_eq!(
            served.last(),
            Some(&"server-b"),
            "client {client} ends on the backup: {ctx}"
        );
    }
    assert!(d.events("server-b").contains(",takeover,"), "{ctx}");
    eprintln!(
        "{}",
        d.events("server-b")
            .lines()
            .filter(|l| l.contains("takeover") || l.contains("peer-failed"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("max_stall_ms={}", s["max_stall_ms"]);
}
