//! Reintegration in real namespaces (docs/DESIGN.md 6): a new server asking
//! a node to take it as its backup with `coral join`. A node that is not
//! simplex refuses; after a failover the survivor refuses a wrong key (no
//! reply), a mismatching configuration (named), and rolls back a joiner
//! that goes away after acceptance (through the witness), serving its open
//! keep-alive connection throughout. A spare joins the survivor of a failover under load, and
//! the service survives a second fault on the joined node; in dual role the
//! spare takes one address's primary role over and the survivor fronts it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::duplex::{coral_bin, sibling, Duplex, PY_READ_REPLY, VIP, VIP2, WITNESS};

const SPARE: &str = "192.0.2.13";
const SIMPLEX_JOIN: &str = "192.0.2.12:7014";

/// The spare's configuration: node 3, backup of server-b, `hb_ms` and
/// `key` as given; events in `<name>-events.csv`.
fn spare_config(dir: &Path, name: &str, hb_ms: u64, key: &Path) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "name = \"{name}\"\nnode_id = 3\nlan = \"eth0\"\nkey_file = \"{}\"\nheartbeat_ms = {hb_ms}\n\
             misses = 3\nwitness = \"{WITNESS}\"\nevents = \"{}\"\noutside = \"192.0.2.1\"\n\
             [peer]\nnode_id = 2\naddr = \"192.0.2.12\"\n\
             [[service]]\nvip = \"{VIP}\"\nrole = \"backup\"\n",
            key.display(),
            dir.join(format!("{name}-events.csv")).display()
        ),
    )
    .unwrap();
    p
}

/// `coral join --check`: the exchange alone.
fn join(ns: &str, cfg: &Path) -> Output {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            coral_bin(),
            "join",
            "--check",
            "--config",
        ])
        .arg(cfg)
        .args(["--to", SIMPLEX_JOIN])
        .output()
        .unwrap()
}

fn wait_event(d: &Duplex, host: &str, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !d.events(host).contains(what) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {what} on {host}:\n{}",
            d.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn netns_join_refusals_and_rollback_keep_the_simplex_node_serving() {
    let mut d = Duplex::start("tjn", 50, 3);
    let s = d.ns.add("s");
    d.ns.plug(&s, &format!("{SPARE}/24"), &d.sw, "s");
    let dir = d.dir.path().to_path_buf();
    let good = spare_config(&dir, "spare", 50, &dir.join("key"));

    // Duplex: server-b has a peer, so it refuses.
    let o = join(&s, &good);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("NotSimplex"), "{}", stderr(&o));

    // server-a's link is cut: server-b takes over and serves alone.
    common::sh(&["ip", "-n", &d.sw, "link", "set", "p-a", "down"]);
    wait_event(&d, "server-b", ",takeover,");
    d.wait_ready();

    // A keep-alive connection opened now must be served across every join
    // attempt below (the address moves to loopback and back at the rollback).
    let py = format!(
        "{PY_READ_REPLY}{PY}\ns = socket.create_connection(('{VIP}', 80))\nprint(get(s), flush=True)\n\
         sys.stdin.readline()\nprint(get(s), get(s), flush=True)"
    );
    let mut client = Command::new("ip")
        .args(["netns", "exec", &d.c, "python3", "-c", &py])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(client.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    assert_eq!(first.trim(), "server-b", "{}", d.logs());

    // A wrong key: closed without a reply, counted as rejected.
    let bad_key = dir.join("bad-key");
    std::fs::write(&bad_key, "ffeeddccbbaa99887766554433221100ffeeddccbbaa9988").unwrap();
    let o = join(&s, &spare_config(&dir, "spare-bad-key", 50, &bad_key));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    wait_event(&d, "server-b", ",join-rejected,");
    assert!(d.events("server-b").contains("why=bad_tag"), "{}", d.logs());

    // Another heartbeat interval: refused, the mismatch named.
    let o = join(&s, &spare_config(&dir, "spare-60ms", 60, &dir.join("key")));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("ConfigMismatch") && e.contains("heartbeat_interval_ns"),
        "{e}"
    );

    // Accepted under a new witness epoch, then the joiner goes away
    // (`coral join --check` runs no node): server-b rolls back and serves on.
    let o = join(&s, &good);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("epoch 3"),
        "{o:?}"
    );
    wait_event(&d, "server-b", ",join-rolled-back,");
    // The rollback goes through the witness (epoch 4) before server-b
    // serves alone again.
    wait_event(&d, "server-b", "from=WaitingForGrant to=Simplex");
    let ev = d.events("server-b");
    assert!(ev.contains(",join-accepted,node=3 epoch=3"), "{ev}");
    assert!(!ev.contains(",integration,"), "{ev}");
    assert!(!ev.contains(",fenced,"), "{ev}");
    let witness = std::fs::read_to_string(dir.join("witness-events.csv")).unwrap();
    assert!(
        witness.lines().filter(|l| l.contains(",grant,")).count() >= 3,
        "takeover, join, rollback: {witness}"
    );

    use std::io::Write;
    client.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let mut second = String::new();
    std::io::BufRead::read_line(&mut out, &mut second).unwrap();
    let status = client.wait().unwrap();
    assert!(status.success(), "client failed: {}", d.logs());
    assert_eq!(second.trim(), "server-b server-b", "{}", d.logs());
    d.wait_ready();
}

/// Start `coral join` (a whole node) for the spare in namespace `ns`; its
/// output goes to spare.log. Returned for the fixture to kill on drop.
fn spawn_joiner(d: &Duplex, ns: &str, cfg: &Path) -> std::process::Child {
    let log = std::fs::File::create(d.dir.path().join("spare.log")).unwrap();
    Command::new("ip")
        .args(["netns", "exec", ns, coral_bin(), "join", "--config"])
        .arg(cfg)
        .args(["--to", SIMPLEX_JOIN])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// coral-load in the client namespace: 8 keep-alive clients for `secs`.
fn spawn_load(d: &Duplex, secs: u64) -> (std::process::Child, PathBuf) {
    spawn_load_on(d, &[VIP], secs)
}

/// The same, the clients spread over `vips`.
fn spawn_load_on(d: &Duplex, vips: &[&str], secs: u64) -> (std::process::Child, PathBuf) {
    let out_dir = d.dir.path().join("load");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &d.c]).arg(sibling("coral-load"));
    for v in vips {
        cmd.args(["--url", &format!("http://{v}/cgi-bin/webstone")]);
    }
    let child = cmd
        .args(["--clients", "8", "--duration-s", &secs.to_string()])
        .args(["--warmup-s", "0", "--timeout-s", "20", "--out"])
        .arg(&out_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    (child, out_dir)
}

/// The table-2 rows of server-b's `integration` event.
fn integration_rows(events: &str) -> Vec<(String, f64)> {
    let line = events
        .lines()
        .find(|l| l.contains(",integration,"))
        .expect("an integration event");
    line.split([' ', ',', '"'])
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse::<f64>().ok()?)))
        .collect()
}

/// The paper's Table 2 and the second fault: server-a (the primary) is
/// killed under 8 keep-alive clients, server-b takes over and serves alone;
/// a spare joins it with `coral join` (the spare fronts, server-b is its
/// primary, both duplex; server-b writes one `integration` event); then
/// server-b is killed too and the spare takes over. No client sees an
/// error through either fault or the join: connections served alone end
/// after their next reply with `Connection: close` (not an error, not a
/// reconnect), and every reply's digest is checked.
#[test]
fn netns_join_after_failover_under_load_then_the_joined_node_survives_a_second_fault() {
    let mut d = Duplex::start("tjl", 50, 3);
    let s = d.ns.add("s");
    d.ns.plug(&s, &format!("{SPARE}/24"), &d.sw, "s");
    let dir = d.dir.path().to_path_buf();
    let spare = spare_config(&dir, "spare", 50, &dir.join("key"));
    let (load, out_dir) = spawn_load(&d, 14);

    // First fault: the primary is killed; server-b takes over.
    std::thread::sleep(Duration::from_millis(1500));
    d.nodes[1].kill().unwrap();
    wait_event(&d, "server-b", ",takeover,");
    std::thread::sleep(Duration::from_millis(500));

    // The spare joins the survivor.
    let joiner = spawn_joiner(&d, &s, &spare);
    d.nodes.push(joiner);
    wait_event(&d, "server-b", ",integration,");
    wait_event(&d, "spare", ",joined,");
    let rows = integration_rows(&d.events("server-b"));
    eprintln!("integration: {rows:?}");
    for step in [
        "config_exchange",
        "witness",
        "task_startup",
        "identity_restoration",
        "total",
    ] {
        assert!(
            rows.iter().any(|(k, v)| k == step && *v >= 0.0),
            "{step} in {rows:?}"
        );
    }
    let sb = d.events("server-b");
    assert!(sb.contains(",join-simplex-conns,"), "{}", d.logs());
    assert!(!sb.contains(",join-rolled-back,"), "{}", d.logs());

    // Connections served alone end at their next reply; then the second
    // fault: server-b (now the primary) is killed, the spare takes over.
    std::thread::sleep(Duration::from_millis(2000));
    d.nodes[0].kill().unwrap();
    wait_event(&d, "spare", ",takeover,");

    let out = load.wait_with_output().unwrap();
    let ctx = format!("{}\n{}", String::from_utf8_lossy(&out.stderr), d.logs());
    assert!(out.status.success(), "coral-load: {ctx}");
    let summary: serde_json::Value = common::duplex::load_summary(&out_dir);
    let ctx = format!("{summary}\n{ctx}");
    assert_eq!(summary["errors"].as_u64(), Some(0), "{ctx}");
    assert_eq!(summary["reconnects"].as_u64(), Some(0), "{ctx}");
    assert_eq!(summary["digest_mismatches"].as_u64(), Some(0), "{ctx}");
    assert_eq!(summary["requests_lost"].as_u64(), Some(0), "{ctx}");
    // Every client ends on the spare.
    let mut rdr = csv::Reader::from_path(out_dir.join("requests.csv")).unwrap();
    let h: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    let col = |name: &str| h.iter().position(|x| x == name).unwrap();
    let recs: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    for client in 0..8 {
        let last = recs
            .iter()
            .filter(|r| &r[col("client")] == client.to_string().as_str())
            .max_by_key(|r| r[col("seq")].parse::<u64>().unwrap())
            .map(|r| r[col("served_by")].to_string());
        assert_eq!(last.as_deref(), Some("spare"), "client {client}: {ctx}");
    }
    eprintln!("max_stall_ms={}", summary["max_stall_ms"]);
}

const PY: &str = r#"
def get(s):
    s.sendall(b"GET /cgi-bin/webstone?size=2000 HTTP/1.1\r\nHost: x\r\n\r\n")
    served, _ = read_reply(s)
    return served
"#;

/// The spare of a dual-role pair: node 3, joining server-b as the primary
/// of [`VIP`] (server-a's before it failed) and the front of [`VIP2`].
fn dual_spare_config(dir: &Path, hb_ms: u64) -> PathBuf {
    let p = dir.join("spare.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"spare\"\nnode_id = 3\nlan = \"eth0\"\nkey_file = \"{}\"\nheartbeat_ms = {hb_ms}\n\
             misses = 3\nwitness = \"{WITNESS}\"\nevents = \"{}\"\noutside = \"192.0.2.1\"\n\
             [peer]\nnode_id = 2\naddr = \"192.0.2.12\"\n\
             [[service]]\nvip = \"{VIP}\"\nrole = \"primary\"\n\
             [[service]]\nvip = \"{VIP2}\"\nrole = \"backup\"\n",
            dir.join("key").display(),
            dir.join("spare-events.csv").display()
        ),
    )
    .unwrap();
    p
}

/// The dual-role join that moves one address (docs/DESIGN.md 6): server-a
/// is killed under 8 keep-alive clients on both addresses, server-b serves
/// both alone; the spare joins it and becomes the primary of server-a's
/// address, server-b its front (and still the primary of the other, which
/// the spare fronts). Connections server-b served alone stay on it (its
/// front passes their frames to its own stack) and end after their next
/// reply with `Connection: close`; then server-b is killed too and the
/// spare serves both. No client error, reconnect or lost request.
#[test]
fn netns_dual_role_join_moves_one_address_then_the_service_survives_a_second_fault() {
    // The eBPF front (whatever CORAL_TEST_FRONT says): it keeps the
    // survivor's open connections.
    let mut d = Duplex::start_dual("tjd", 50, 3, "hand_over_at_join = true\nfront = \"ebpf\"\n");
    let s = d.ns.add("s");
    d.ns.plug(&s, &format!("{SPARE}/24"), &d.sw, "s");
    let dir = d.dir.path().to_path_buf();
    let spare = dual_spare_config(&dir, 50);
    let (load, out_dir) = spawn_load_on(&d, &[VIP, VIP2], 14);

    std::thread::sleep(Duration::from_millis(1500));
    d.nodes[1].kill().unwrap();
    wait_event(&d, "server-b", ",takeover,");
    std::thread::sleep(Duration::from_millis(500));

    let joiner = spawn_joiner(&d, &s, &spare);
    d.nodes.push(joiner);
    wait_event(&d, "server-b", ",integration,");
    wait_event(&d, "spare", ",joined,");
    let sb = d.events("server-b");
    assert!(!sb.contains(",join-rolled-back,"), "{}", d.logs());
    assert!(!sb.contains(",action-error,"), "{}", d.logs());
    assert!(
        !d.events("spare").contains(",action-error,"),
        "{}",
        d.logs()
    );
    eprintln!("integration: {:?}", integration_rows(&sb));
    // server-b fronts the moved address now, still primary of the other.
    assert!(
        sb.contains(&format!("mode,vip={VIP} from=Joining to=Duplex"))
            && sb.contains(&format!("mode,vip={VIP2} from=Joining to=Duplex")),
        "{}",
        d.logs()
    );

    // New connections to the moved address reach the spare; the kept
    // ones end after their next reply, and with them server-b's lease
    // element for the moved address (the other's stays); then the second
    // fault.
    std::thread::sleep(Duration::from_millis(2500));
    let sb = d.events("server-b");
    assert!(
        sb.contains(&format!(
            ",kept-flows-ended,vip={VIP} lease_revoked=true pass_local_off=true"
        )),
        "{}",
        d.logs()
    );
    let leases = common::sh(&[
        "ip",
        "netns",
        "exec",
        &d.b,
        "nft",
        "list set netdev coral_2 lease",
    ]);
    let leases = String::from_utf8_lossy(&leases.stdout).to_string();
    eprintln!(
        "{:?}",
        sb.lines().find(|l| l.contains(",kept-flows-ended,"))
    );
    assert!(!leases.contains(VIP) && leases.contains(VIP2), "{leases}");
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    d.nodes[0].kill().unwrap();
    wait_event(&d, "spare", ",takeover,");

    let out = load.wait_with_output().unwrap();
    let ctx = format!("{}\n{}", String::from_utf8_lossy(&out.stderr), d.logs());
    assert!(out.status.success(), "coral-load: {ctx}");
    let summary: serde_json::Value = common::duplex::load_summary(&out_dir);
    let ctx = format!("{summary}\n{ctx}");
    assert_eq!(summary["errors"].as_u64(), Some(0), "{ctx}");
    assert_eq!(summary["reconnects"].as_u64(), Some(0), "{ctx}");
    assert_eq!(summary["digest_mismatches"].as_u64(), Some(0), "{ctx}");
    assert_eq!(summary["requests_lost"].as_u64(), Some(0), "{ctx}");
    let mut rdr = csv::Reader::from_path(out_dir.join("requests.csv")).unwrap();
    let h: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    let col = |name: &str| h.iter().position(|x| x == name).unwrap();
    let recs: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    for client in 0..8 {
        let last = recs
            .iter()
            .filter(|r| &r[col("client")] == client.to_string().as_str())
            .max_by_key(|r| r[col("seq")].parse::<u64>().unwrap())
            .map(|r| r[col("served_by")].to_string());
        assert_eq!(last.as_deref(), Some("spare"), "client {client}: {ctx}");
    }
    // Before the second fault the spare served the moved address (its
    // primary), server-b the other.
    let served = |vip: &str, by: &str| {
        recs.iter()
            .filter(|r| r[col("url")].contains(vip) && &r[col("served_by")] == by)
            .filter(|r| r[col("end_unix_ns")].parse::<u64>().unwrap() < second)
            .count()
    };
    let (moved, other) = (served(VIP, "spare"), served(VIP2, "server-b"));
    eprintln!("before the second fault: {moved} replies from the spare on {VIP}, {other} from server-b on {VIP2}");
    assert!(moved > 0 && other > 0, "{ctx}");
    assert_eq!(served(VIP2, "spare"), 0, "{ctx}");
    eprintln!("max_stall_ms={}", summary["max_stall_ms"]);
}

/// With the packet front the survivor cannot keep its open connections at
/// a hand-over, so it hands nothing over: a joiner asking to be primary of
/// an address is refused, naming it.
#[test]
fn netns_dual_role_hand_over_needs_the_ebpf_front() {
    let mut d = Duplex::start_dual(
        "tjp",
        50,
        3,
        "hand_over_at_join = true\nfront = \"packet\"\n",
    );
    let s = d.ns.add("s");
    d.ns.plug(&s, &format!("{SPARE}/24"), &d.sw, "s");
    let spare = dual_spare_config(d.dir.path(), 50);
    assert!(
        d.events("server-b").contains(",hand-over-unavailable,"),
        "{}",
        d.logs()
    );
    d.nodes[1].kill().unwrap();
    wait_event(&d, "server-b", ",takeover,");
    std::thread::sleep(Duration::from_millis(300));
    let o = join(&s, &spare);
    assert!(!o.status.success(), "{}", d.logs());
    assert!(
        stderr(&o).contains("primary_for"),
        "{}\n{}",
        stderr(&o),
        d.logs()
    );
}
