//! Never two voices (docs/DESIGN.md section 4), in real namespaces with the real
//! binaries: a witness on the outside host grants each takeover, the loser
//! fences itself, and a capture on the switch shows that no service address
//! is answered from two MACs and no connection gets segments from two
//! servers after the switch-over. Eight keep-alive clients (coral-load) run
//! through every fault.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::duplex::{sibling, Duplex, VIP};

/// The MAC of `eth0` in namespace `ns`.
fn mac(ns: &str) -> String {
    let out = common::sh(&["ip", "-n", ns, "-br", "link", "show", "eth0"]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(2)
        .expect("mac")
        .to_string()
}

/// tcpdump on the switch's bridge: ARP, and TCP from the service address.
struct Capture {
    child: Child,
    path: std::path::PathBuf,
}

impl Capture {
    fn start(d: &Duplex) -> Capture {
        let path = d.dir.path().join("switch.txt");
        let err = d.dir.path().join("tcpdump.err");
        let child = Command::new("ip")
            .args([
                "netns", "exec", &d.sw, "tcpdump", "-i", "br0", "-nn", "-e", "-tt",
            ])
            .args(["-U", "-l", "-s", "128", "-B", "8192"])
            .arg(format!("arp or (tcp and src host {VIP})"))
            .stdout(std::fs::File::create(&path).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(&err)
            .unwrap_or_default()
            .contains("listening on")
        {
            assert!(Instant::now() < deadline, "tcpdump did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Capture { child, path }
    }

    /// Stop and return the text.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.path).unwrap()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the switch saw speak for the service address, in order.
#[derive(Debug, Default)]
struct Voices {
    /// Source MACs of TCP segments from the address, as runs (mac, count).
    tcp: Vec<(String, usize)>,
    /// MACs that claimed the address in ARP, as runs.
    arp: Vec<(String, usize)>,
    /// Per connection (client port): runs of source MACs.
    conns: std::collections::BTreeMap<String, Vec<String>>,
}

fn push_run(runs: &mut Vec<(String, usize)>, mac: &str) {
    match runs.last_mut() {
        Some((m, n)) if m == mac => *n += 1,
        _ => runs.push((mac.to_string(), 1)),
    }
}

/// Parse the `tcpdump -nn -e -tt` lines captured before `until_ns` (unix ns).
fn voices_before(text: &str, until_ns: u64) -> Voices {
    let mut v = Voices::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let at = f[0].parse::<f64>().map_or(0, |t| (t * 1e9) as u64);
        if at >= until_ns {
            break;
        }
        let src = f[1];
        if line.contains("ethertype ARP") {
            // A reply "VIP is-at MAC", or a gratuitous request "tell VIP".
            let claims = line.contains(&format!("Reply {VIP} is-at"))
                || line.contains(&format!("tell {VIP},"));
            if claims {
                push_run(&mut v.arp, src);
            }
        } else if let Some(i) = f.iter().position(|w| w.starts_with(&format!("{VIP}."))) {
            if f.get(i + 1) == Some(&">") {
                push_run(&mut v.tcp, src);
                let client = f.get(i + 2).unwrap_or(&"?").trim_end_matches(':');
                let runs = v.conns.entry(client.to_string()).or_default();
                if runs.last().map(String::as_str) != Some(src) {
                    runs.push(src.to_string());
                }
            }
        }
    }
    v
}

/// The capture shows at most one switch-over of the address's voice, and
/// no connection that went back to its old server.
fn assert_one_voice(text: &str, ctx: &str) -> Voices {
    assert_one_voice_before(text, u64::MAX, ctx)
}

/// [`assert_one_voice`] over what was captured before `until_ns`.
fn assert_one_voice_before(text: &str, until_ns: u64, ctx: &str) -> Voices {
    let v = voices_before(text, until_ns);
    assert!(!v.tcp.is_empty(), "the capture saw the service: {ctx}");
    assert!(
        v.tcp.len() <= 2,
        "TCP from {VIP} came from more than one MAC after the switch-over: {:?}\n{ctx}",
        v.tcp
    );
    assert!(
        v.arp.len() <= 2,
        "{VIP} claimed in ARP by alternating MACs: {:?}\n{ctx}",
        v.arp
    );
    for (c, runs) in &v.conns {
        assert!(
            runs.len() <= 2,
            "connection {c} got segments from two servers after the switch-over: {runs:?}"
        );
    }
    v
}

/// coral-load in the client for `secs` with 8 keep-alive clients.
fn start_load(d: &Duplex, secs: u64, extra: &[&str]) -> (Child, std::path::PathBuf) {
    let out_dir = d.dir.path().join("load");
    let child = Command::new("ip")
        .args(["netns", "exec", &d.c])
        .arg(sibling("coral-load"))
        .args([
            "--url",
            &format!("http://{VIP}/cgi-bin/webstone"),
            "--clients",
            "8",
        ])
        .args(["--duration-s", &secs.to_string(), "--warmup-s", "0"])
        .args(extra)
        .args(["--timeout-s", "20", "--out"])
        .arg(&out_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, out_dir)
}

fn finish_load(d: &Duplex, child: Child, out_dir: &std::path::Path) -> serde_json::Value {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "coral-load: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.logs()
    );
    common::duplex::load_summary(out_dir)
}

fn wait_event(d: &Duplex, host: &str, what: &str, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if d.events(host).contains(what) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn witness_events(d: &Duplex) -> String {
    std::fs::read_to_string(d.dir.path().join("witness-events.csv")).unwrap_or_default()
}

/// Exit status of node `i` (0 = server-b, 1 = server-a), waiting up to 5 s.
fn exit_code(d: &mut Duplex, i: usize) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(st)) = d.nodes[i].try_wait() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Which node survived: exactly one fenced itself (exit status 3), the
/// other took the address over. Returns the survivor's name.
fn one_survivor(d: &mut Duplex, ctx: &str) -> &'static str {
    let a_fenced = wait_event(d, "server-a", ",fenced,", 8);
    let b_fenced = d.events("server-b").contains(",fenced,");
    assert!(a_fenced ^ b_fenced, "exactly one node fenced\n{ctx}");
    let (loser, survivor, done) = if a_fenced {
        (1, "server-b", ",takeover,")
    } else {
        (0, "server-a", ",simplex-address,")
    };
    assert_eq!(
        exit_code(d, loser),
        Some(3),
        "the fenced node exited 3\n{ctx}"
    );
    assert!(
        wait_event(d, survivor, done, 5),
        "{survivor} took over\n{ctx}"
    );
    let w = witness_events(d);
    assert_eq!(
        w.lines().filter(|l| l.contains(",grant,")).count(),
        1,
        "one grant: {w}"
    );
    survivor
}

fn assert_clean(s: &serde_json::Value, ctx: &str) {
    assert_eq!(s["digest_mismatches"].as_u64(), Some(0), "{s}\n{ctx}");
    assert_eq!(s["errors"].as_u64(), Some(0), "{s}\n{ctx}");
    assert_eq!(s["requests_lost"].as_u64(), Some(0), "{s}\n{ctx}");
    assert!(s["ok"].as_u64().unwrap_or(0) > 0, "{s}");
}

#[test]
fn netns_partition_between_the_servers_leaves_one_voice() {
    partition_leaves_one_voice("wpa", &[]);
}

/// The same with 1 MB replies: the loser is fenced while its connections
/// (or, on the backup, its rebuilt sockets, still in repair mode before
/// the grant) have large replies in flight, and still not one segment
/// from it follows the survivor's.
#[test]
fn netns_partition_with_1mb_replies_leaves_one_voice() {
    partition_leaves_one_voice("wpm", &["--size", "1048576"]);
}

fn partition_leaves_one_voice(tag: &str, load_args: &[&str]) {
    let mut d = Duplex::start(tag, 50, 3);
    let cap = Capture::start(&d);
    let (load, out) = start_load(&d, 6, load_args);
    std::thread::sleep(Duration::from_millis(1500));
    // server-a and server-b lose each other; both still reach the client
    // and the witness.
    common::sh(&[
        "ip",
        "netns",
        "exec",
        &d.sw,
        "nft",
        "add table bridge ctpart; \
         add chain bridge ctpart pfw { type filter hook forward priority 0; policy accept; }; \
         add rule bridge ctpart pfw iifname p-a oifname p-b drop; \
         add rule bridge ctpart pfw iifname p-b oifname p-a drop",
    ]);
    let s = finish_load(&d, load, &out);
    let text = cap.stop();
    let ctx = d.logs();
    let survivor = one_survivor(&mut d, &ctx);
    let v = assert_one_voice(&text, &ctx);
    eprintln!("survivor={survivor} tcp={:?} arp={:?}", v.tcp, v.arp);
    assert_clean(&s, &ctx);
    let (ma, mb) = (mac(&d.a), mac(&d.b));
    let last = &v.tcp.last().unwrap().0;
    assert_eq!(
        last,
        if survivor == "server-a" { &ma } else { &mb },
        "the survivor speaks last"
    );
}

#[test]
fn netns_link_cut_restored_before_detection_changes_nothing() {
    // A port that comes back up carries traffic again only when the
    // kernel's link watch runs (up to 1 s later): detection must be slower.
    let d = Duplex::start("wcb", 50, 60);
    let cap = Capture::start(&d);
    let (load, out) = start_load(&d, 4, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    // 100 ms (plus up to 1 s until the port forwards again) < 60 x 50 ms:
    // no detection.
    common::sh(&["ip", "-n", &d.sw, "link", "set", "p-a", "down"]);
    std::thread::sleep(Duration::from_millis(100));
    common::sh(&["ip", "-n", &d.sw, "link", "set", "p-a", "up"]);
    let s = finish_load(&d, load, &out);
    let text = cap.stop();
    let ctx = d.logs();
    for h in ["server-a", "server-b"] {
        let ev = d.events(h);
        assert!(!ev.contains(",fenced,"), "{h} did not fence\n{ctx}");
        assert!(!ev.contains(",witness-ask,"), "{h} did not ask\n{ctx}");
    }
    let v = assert_one_voice(&text, &ctx);
    assert_eq!(v.tcp.len(), 1, "one voice throughout: {:?}", v.tcp);
    assert_clean(&s, &ctx);
}

#[test]
fn netns_link_cut_restored_after_detection_fences_the_old_primary() {
    cut_restored_after_detection("wca", &[]);
}

/// The same with 1 MB replies: the survivor writes large logged tails
/// while the old primary, its own large replies cut off mid-way, comes
/// back and is fenced without a segment after the survivor's.
#[test]
fn netns_link_cut_restored_after_detection_with_1mb_replies() {
    cut_restored_after_detection("wcm", &["--size", "1048576"]);
}

fn cut_restored_after_detection(tag: &str, load_args: &[&str]) {
    let mut d = Duplex::start(tag, 50, 3);
    let cap = Capture::start(&d);
    let (load, out) = start_load(&d, 6, load_args);
    std::thread::sleep(Duration::from_millis(1500));
    common::sh(&["ip", "-n", &d.sw, "link", "set", "p-a", "down"]);
    let took = wait_event(&d, "server-b", ",takeover,", 8);
    std::thread::sleep(Duration::from_millis(300));
    common::sh(&["ip", "-n", &d.sw, "link", "set", "p-a", "up"]);
    let s = finish_load(&d, load, &out);
    let text = cap.stop();
    let ctx = d.logs();
    assert!(took, "server-b took over\n{ctx}");
    let evb = d.events("server-b");
    eprintln!(
        "{}",
        evb.lines().find(|l| l.contains(",takeover,")).unwrap_or("")
    );
    // The old primary's retried request reached the witness once the link
    // was back: refused, fenced, exited.
    assert_eq!(one_survivor(&mut d, &ctx), "server-b");
    assert!(d.events("server-a").contains(",witness-refused,"), "{ctx}");
    let v = assert_one_voice(&text, &ctx);
    assert_eq!(v.tcp.last().unwrap().0, mac(&d.b), "{:?}", v.tcp);
    assert_clean(&s, &ctx);
}

#[test]
fn netns_sigstopped_primary_stays_silent_after_sigcont() {
    sigstopped_primary_stays_silent("wst", &[]);
}

/// The same with 1 MB replies: the zombie wakes with large replies half
/// written, the survivor is writing their logged tails.
#[test]
fn netns_sigstopped_primary_with_1mb_replies_stays_silent_after_sigcont() {
    sigstopped_primary_stays_silent("wsm", &["--size", "1048576"]);
}

fn sigstopped_primary_stays_silent(tag: &str, load_args: &[&str]) {
    let mut d = Duplex::start(tag, 50, 3);
    let pid = d.nodes[1].id().to_string();
    let cap = Capture::start(&d);
    let (load, out) = start_load(&d, 6, load_args);
    std::thread::sleep(Duration::from_millis(1500));
    common::sh(&["kill", "-STOP", &pid]);
    let took = wait_event(&d, "server-b", ",takeover,", 8);
    std::thread::sleep(Duration::from_millis(500));
    common::sh(&["kill", "-CONT", &pid]);
    let s = finish_load(&d, load, &out);
    let text = cap.stop();
    let ctx = d.logs();
    assert!(took, "server-b took over\n{ctx}");
    let evb = d.events("server-b");
    eprintln!(
        "{}",
        evb.lines().find(|l| l.contains(",takeover,")).unwrap_or("")
    );
    assert_eq!(one_survivor(&mut d, &ctx), "server-b");
    let v = assert_one_voice(&text, &ctx);
    // The zombie's kernel said nothing once server-b spoke: the last run
    // of TCP from the address is server-b's, and the one before server-a's.
    let (ma, mb) = (mac(&d.a), mac(&d.b));
    assert_eq!(
        v.tcp.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(),
        vec![ma, mb],
        "{:?}",
        v.tcp
    );
    assert_clean(&s, &ctx);
}

/// server-a drops every heartbeat it receives for `ms` (an nft rule in its
/// namespace), while both nodes keep running.
fn deafen_a(d: &Duplex, ms: u64) {
    common::sh(&[
        "ip",
        "netns",
        "exec",
        &d.a,
        "nft",
        "add table ip ctfd; \
         add chain ip ctfd in { type filter hook input priority 0; policy accept; }; \
         add rule ip ctfd in udp dport 7011 drop",
    ]);
    std::thread::sleep(Duration::from_millis(ms));
    common::sh(&["ip", "netns", "exec", &d.a, "nft", "delete table ip ctfd"]);
}

/// At 1 ms x 5 the lease is the 8 ms minimum, two jiffies: a loser that
/// rejoins finds a primary whose lease rule let its retransmissions out
/// (rounded down to one jiffy it expired at every tick, when TCP's timers
/// fire, and the clients hung; docs/DESIGN.md 6).
#[test]
fn netns_forced_false_detection_at_1ms_heartbeats_under_load() {
    false_race_then_rejoin("wfd", 1, 5, 60);
}

#[test]
fn netns_false_race_at_10ms_ends_with_the_loser_rejoined() {
    false_race_then_rejoin("wrj", 10, 3, 100);
}

/// A pair at `hb_ms` x `misses` with `rejoin = true` under 8 keep-alive
/// clients; server-a stops hearing heartbeats for `deaf_ms` (at least 10 x
/// H): a false detection on its side, then on server-b's when server-a
/// falls silent. The node that loses the race fences itself and rejoins
/// its peer (docs/DESIGN.md 6, "Rejoining"); the clients see nothing.
fn false_race_then_rejoin(tag: &str, hb_ms: u64, misses: u32, deaf_ms: u64) {
    let mut d = Duplex::start_configured(tag, hb_ms, misses, true, "rejoin = true\n");
    let cap = Capture::start(&d);
    let (load, out) = start_load(&d, 6, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    deafen_a(&d, deaf_ms);
    // Each race (on a loaded machine there may be more than the forced
    // one) ends with one node fenced, and that node rejoins the other,
    // which accepts it under a new grant.
    let first_accept = Instant::now() + Duration::from_secs(10);
    let accepted = |d: &Duplex| {
        let (ea, eb) = (d.events("server-a"), d.events("server-b"));
        first_time(&ea, ",join-accepted,")
            .into_iter()
            .chain(first_time(&eb, ",join-accepted,"))
            .min()
    };
    while Instant::now() < first_accept && accepted(&d).is_none() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = cap.stop();
    let ctx = d.logs();
    let rejoined_at = accepted(&d).unwrap_or_else(|| panic!("no rejoin was accepted\n{ctx}"));
    let (ea, eb) = (d.events("server-a"), d.events("server-b"));
    let (fa, fb) = (first_time(&ea, ",fenced,"), first_time(&eb, ",fenced,"));
    let survivor = match (fa, fb) {
        (Some(a), Some(b)) if a < b => "server-b",
        (Some(_), None) => "server-b",
        (_, Some(_)) => "server-a",
        (None, None) => panic!("no node fenced itself\n{ctx}"),
    };
    // One voice up to the first rejoin (after it the new front answers ARP
    // for the address again, as a joined node does, and a later race has
    // a voice of its own).
    let v = assert_one_voice_before(&text, rejoined_at, &ctx);
    let (ma, mb) = (mac(&d.a), mac(&d.b));
    assert_eq!(
        v.tcp.last().unwrap().0,
        if survivor == "server-a" { ma } else { mb },
        "the survivor of the first race speaks last before the rejoin"
    );
    let s = finish_load(&d, load, &out);
    // Let a race at the very end of the load finish its rejoin.
    let settle = Instant::now() + Duration::from_secs(10);
    while Instant::now() < settle && !healed(&d) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let ctx = d.logs();
    assert!(
        healed(&d),
        "every fenced node rejoined, the pair is duplex\n{ctx}"
    );
    for (i, n) in d.nodes.iter_mut().enumerate() {
        assert!(
            n.try_wait().unwrap().is_none(),
            "node {i} is gone (a loser rejoins in the same process)\n{ctx}"
        );
    }
    eprintln!(
        "first survivor={survivor} tcp={:?} races={}",
        v.tcp,
        d.events("server-a").matches(",fenced,").count()
            + d.events("server-b").matches(",fenced,").count()
    );
    assert_clean(&s, &ctx);
}

/// When `what` first appears in `events` (unix ns).
fn first_time(events: &str, what: &str) -> Option<u64> {
    let l = events.lines().find(|l| l.contains(what))?;
    l.split(',').next()?.parse().ok()
}

/// When `what` last appears in `events` (unix ns).
fn last_time(events: &str, what: &str) -> Option<u64> {
    let l = events.lines().rev().find(|l| l.contains(what))?;
    l.split(',').next()?.parse().ok()
}

/// Every fence was followed by a rejoin of the same node, and the last
/// fence by a completed join (`integration` on the node it joined).
fn healed(d: &Duplex) -> bool {
    let (ea, eb) = (d.events("server-a"), d.events("server-b"));
    let rejoined = |e: &str| e.matches(",fenced,").count() == e.matches(",rejoin,").count();
    let last_fence = last_time(&ea, ",fenced,").max(last_time(&eb, ",fenced,"));
    let last_join = last_time(&ea, ",integration,").max(last_time(&eb, ",integration,"));
    rejoined(&ea) && rejoined(&eb) && last_fence.is_some() && last_join > last_fence
}

/// A backup that answers heartbeats but not the log (its log port cut by
/// an nft rule in its namespace; its heartbeat thread runs on): the
/// primary's replies wait for acknowledgements that never come, and no
/// heartbeat goes missing. The primary declares it failed once the log has
/// not moved for the bound (coral-core's `LOG_STALL_MIN_NS`), goes simplex
/// through the witness, and the backup, deposed by the epoch in the
/// primary's heartbeats or refused by the witness once it misses them,
/// fences: the broken node never takes the service and every client gets
/// every reply.
#[test]
fn netns_a_backup_that_answers_heartbeats_but_not_the_log_is_fenced() {
    let mut d = Duplex::start("wlg", 10, 3);
    let cap = Capture::start(&d);
    // Long enough for the 10 s bound to pass mid-run (requests time out
    // after 20 s).
    let (load, out) = start_load(&d, 16, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    common::sh(&[
        "ip",
        "netns",
        "exec",
        &d.b,
        "nft",
        &format!(
            "add table ip ctlg; \
             add chain ip ctlg in {{ type filter hook input priority 0; policy accept; }}; \
             add rule ip ctlg in tcp dport {} drop",
            coral::config::DEFAULT_LOG_PORT
        ),
    ]);
    assert!(
        wait_event(&d, "server-a", ",log-stalled,", 20),
        "the primary saw the log stall\n{}",
        d.logs()
    );
    let s = finish_load(&d, load, &out);
    let text = cap.stop();
    let ctx = d.logs();
    assert_eq!(one_survivor(&mut d, &ctx), "server-a");
    let eb = d.events("server-b");
    // The primary's heartbeats stop once it is simplex: the broken node
    // detects that, asks, is refused, and never takes the address.
    assert!(
        !eb.contains(",takeover,") && !eb.contains(",witness-grant,"),
        "no takeover by the broken node\n{ctx}"
    );
    let v = assert_one_voice(&text, &ctx);
    assert_eq!(v.tcp.last().unwrap().0, mac(&d.a), "{:?}", v.tcp);
    assert_clean(&s, &ctx);
    eprintln!("max_stall_ms={}", s["max_stall_ms"]);
}

#[test]
fn netns_unreachable_witness_means_no_takeover_until_it_answers() {
    let mut d = Duplex::start("wun", 50, 3);
    let mut w = d.witness.take().expect("witness");
    let _ = w.kill();
    let _ = w.wait();
    let cap = Capture::start(&d);
    let (load, out) = start_load(&d, 6, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    common::sh(&["ip", "-n", &d.sw, "link", "set", "p-a", "down"]);
    assert!(
        wait_event(&d, "server-b", ",witness-ask,", 5),
        "{}",
        d.logs()
    );
    // No grant, no voice: a second later server-b still has not taken the
    // address (its requests go unanswered; clients stall).
    std::thread::sleep(Duration::from_millis(1000));
    let ev = d.events("server-b");
    assert!(
        !ev.contains(",takeover,"),
        "no takeover without a grant\n{ev}"
    );
    let addrs = common::sh(&["ip", "-n", &d.b, "-4", "addr", "show", "eth0"]);
    assert!(
        !String::from_utf8_lossy(&addrs.stdout).contains(VIP),
        "the address stayed off server-b"
    );
    // The witness comes back (same records): the next retry is granted.
    d.witness = Some(d.spawn_witness());
    assert!(
        wait_event(&d, "server-b", ",takeover,", 8),
        "takeover once the witness answers\n{}",
        d.logs()
    );
    let s = finish_load(&d, load, &out);
    let text = cap.stop();
    let ctx = d.logs();
    let v = assert_one_voice(&text, &ctx);
    assert_eq!(v.tcp.last().unwrap().0, mac(&d.b), "{:?}", v.tcp);
    assert_clean(&s, &ctx);
    eprintln!("max_stall_ms={}", s["max_stall_ms"]);
}
