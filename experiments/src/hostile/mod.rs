//! `coral-exp run hostile-input`: hostile input on every listener of a
//! live CoRAL pair (with its witness) while 8 keep-alive clients fetch
//! verified replies, in the kit's topology. The attacker is the `spare`
//! host on the server LAN (ARP does not cross the router). One attack at a
//! time ([`attacks`]), each followed by a settling pause, so every row of
//! `RESULTS/hostile-input/attacks.csv` has its own window: the requests
//! the clients started in it, the detections and address moves the nodes
//! recorded in it, and the growth of the node counter that counts the
//! attack's rejections. The standard: no client error, lost request,
//! reconnect or corrupted reply; no detection and no address move; no node
//! exits; the witness grants nothing; each attack's rejections counted
//! where docs/CLI.md says; the oversized head never served; every garbage
//! stream closed by the node. Exits 0 only when it held.

pub mod attacks;

use crate::catalog::{LoadOptions, Shape};
use crate::live::{self, UpOptions};
use crate::runner::{load_argv, load_failed, sleep_until, spawn_load, LoadGuard};
use crate::services::{coral as coral_service, AppMode, CoralOptions, ServiceOptions};
use crate::topology;
use anyhow::{bail, Context, Result};
use attacks::Target;
use faultinject::events::Event;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use workload::records::RequestRecord;
use workload::summary::{self, SummaryOptions};

/// The experiment name `coral-exp run` knows it by.
pub const NAME: &str = "hostile-input";
/// The host the attacks come from (on the server LAN).
pub const ATTACKER: &str = "spare";
/// Load duration, seconds: longer than every attack and pause together.
pub const DURATION_S: f64 = 40.0;
/// Pause after each attack, seconds: the nodes write their counters at
/// most once a second, so the attack's row lands inside its window.
pub const SETTLE_S: f64 = 1.6;
/// Clients before the first attack, seconds.
pub const LEAD_S: f64 = 1.0;

/// What `coral-exp run hostile-input` was asked to do.
#[derive(Debug, Clone)]
pub struct HostileOptions {
    /// Topology backend name.
    pub topology: String,
    /// Results directory (writes `RESULTS/hostile-input/`).
    pub results: PathBuf,
    /// Name prefix of the topology.
    pub prefix: Option<String>,
}

/// What the nodes count an attack's rejections in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    /// Nothing counts it (the outcome is the check).
    Nothing,
    /// A `counters` key of one node.
    Counter(&'static str, &'static str),
    /// Two `counters` keys of one node, summed.
    Counters(&'static str, &'static str, &'static str),
    /// Events of one name recorded by a host (`*`: any host).
    Events(&'static str, &'static str),
}

impl Counted {
    fn label(self) -> String {
        match self {
            Counted::Nothing => "-".into(),
            Counted::Counter(h, k) => format!("{h} {k}"),
            Counted::Counters(h, k1, k2) => format!("{h} {k1}+{k2}"),
            Counted::Events("*", e) => format!("{e} events"),
            Counted::Events(h, e) => format!("{h} {e} events"),
        }
    }
}

/// One attack as it ran (the attacker's side).
#[derive(Debug, Clone)]
struct Ran {
    attack: &'static str,
    target: String,
    sent: u64,
    /// What the attacker saw, for the row.
    observed: String,
    /// Whether what it saw is what the standard asks for.
    observed_ok: bool,
    /// How many rejections the counter must grow by at least.
    expect: u64,
    counted: Counted,
    start_unix_ns: u64,
    end_unix_ns: u64,
}

/// One row of `attacks.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackRow {
    /// The attack.
    pub attack: String,
    /// The listener or host it hit.
    pub target: String,
    /// Connections, datagrams or frames sent.
    pub sent: u64,
    /// What the attacker saw (a status line, connections closed…).
    pub observed: String,
    /// Where the nodes count its rejections (`-`: nothing counts it).
    pub counter: String,
    /// How much that counter grew in the attack's window.
    pub counted: Option<u64>,
    /// Requests the clients started in the window.
    pub requests: u64,
    /// Verified replies among them.
    pub ok: u64,
    /// Client errors.
    pub errors: u64,
    /// Lost requests.
    pub lost: u64,
    /// Reconnects after an error.
    pub reconnects: u64,
    /// Corrupted replies.
    pub digest_mismatches: u64,
    /// Failure detections (peer-failed, witness-ask, fenced) in the window.
    pub detections: u64,
    /// Address moves (takeover, simplex) in the window.
    pub address_moves: u64,
    /// `pass` or `FAIL`.
    pub verdict: String,
    /// Why it failed.
    pub detail: String,
}

/// Runs the experiment; returns the exit code (0: the standard held).
pub fn run(o: &HostileOptions) -> Result<i32> {
    topology::backend(&o.topology)?;
    if let Some(p) = &o.prefix {
        topology::check_prefix(p)?;
    }
    let load_bin = topology::sibling_binary("coral-load")?;
    topology::sibling_binary("coral")?;
    let cancel = live::install_signal_flag()?;
    let dir = o.results.join(NAME);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let t0 = Instant::now();
    let (rows, exits) = attack_live_pair(o, &dir, &load_bin, &cancel)?;
    let csv_path = dir.join("attacks.csv");
    let mut w = csv::Writer::from_path(&csv_path)
        .with_context(|| format!("write {}", csv_path.display()))?;
    for r in &rows {
        w.serialize(r)?;
    }
    w.flush()?;
    print!("{}", table(&rows));
    let failed: Vec<&AttackRow> = rows.iter().filter(|r| r.verdict != "pass").collect();
    for r in &failed {
        println!("FAILED {} on {}: {}", r.attack, r.target, r.detail);
    }
    for e in &exits {
        println!("FAILED: {e}");
    }
    println!(
        "{NAME}: {} attacks in {:.1} s, {} passed; {}",
        rows.len(),
        t0.elapsed().as_secs_f64(),
        rows.len() - failed.len(),
        csv_path.display()
    );
    Ok(i32::from(!failed.is_empty() || !exits.is_empty()))
}

/// The table printed at the end (Markdown).
pub fn table(rows: &[AttackRow]) -> String {
    let mut t = String::from(
        "| attack | target | sent | observed | counted by | counted | requests | errors | lost | reconnects | detections | address moves | verdict |\n\
         |---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.attack,
            r.target,
            r.sent,
            r.observed,
            r.counter,
            r.counted.map_or("-".into(), |c| c.to_string()),
            r.requests,
            r.errors,
            r.lost,
            r.reconnects,
            r.detections,
            r.address_moves,
            r.verdict
        ));
    }
    t
}

/// Brings up the pair, runs the load and the attacks, and judges them;
/// returns the rows and what went wrong outside any attack's window (a
/// node that exited, a witness grant, clients not served at the end).
fn attack_live_pair(
    o: &HostileOptions,
    dir: &Path,
    load_bin: &Path,
    cancel: &AtomicBool,
) -> Result<(Vec<AttackRow>, Vec<String>)> {
    let state_dir = dir.join("topology");
    let live = live::bring_up(
        &UpOptions {
            topology: o.topology.clone(),
            state_dir: state_dir.clone(),
            prefix: o.prefix.clone(),
            lan_mbit: None,
            service: ServiceOptions {
                name: "coral".into(),
                servers: 2,
                server_cpu: None,
                coral: CoralOptions::default().on_topology(&o.topology),
                lb: Default::default(),
                app: AppMode::Inproc,
            },
        },
        cancel,
    )?;
    let st = live.state().clone();
    let target = target_of(&st, &state_dir)?;
    let attacker_ns = format!("/run/netns/{}", st.host(ATTACKER)?.netns);
    let servers = [
        attacks::parse_mac(&st.host("server-a")?.mac)?,
        attacks::parse_mac(&st.host("server-b")?.mac)?,
    ];
    let dev = match st.host(ATTACKER)?.dev.as_str() {
        "" => "eth0".to_string(),
        d => d.to_string(),
    };

    let load_dir = dir.join("load");
    let mut argv = load_argv(
        load_bin,
        &st.service_urls,
        &LoadOptions {
            clients: 8,
            size: 4096,
            connection_per_request: false,
            idle_conns: 0,
        },
        Shape {
            duration_s: DURATION_S,
            warmup_s: 0.0,
            reps: 1,
        },
    );
    for (k, v) in [
        ("--drain-s", "6".to_string()),
        ("--timeout-s", "10".to_string()),
        ("--out", load_dir.display().to_string()),
    ] {
        argv.push(k.into());
        argv.push(v.into());
    }
    let (mut child, started) = spawn_load(&live, &argv, dir)?;
    let mut load = LoadGuard(Some(&mut child));
    sleep_until(started + Duration::from_secs_f64(LEAD_S), cancel)?;

    let ran = attacks_from(&attacker_ns, target, dev, servers)?;
    if started.elapsed().as_secs_f64() > DURATION_S {
        bail!("the attacks outlasted the load ({DURATION_S} s)");
    }
    let limit = started + Duration::from_secs_f64(DURATION_S + 6.0 + 30.0);
    let status = load.wait(limit, "its duration, drain and 30 s", cancel)?;
    live.down()?;
    if !status.success() {
        return Err(load_failed(status, dir));
    }
    let records = summary::read_requests_csv(load_dir.join("requests.csv"))?;
    let events = faultinject::events::read_events(&state_dir.join("events.csv"))?;
    let rows = ran.iter().map(|r| judge(r, &records, &events)).collect();
    let after = ran.last().map_or(0, |r| r.end_unix_ns);
    Ok((rows, outside_windows(&records, &events, after)))
}

/// The pair as the attacker knows it, from the topology and its key file.
fn target_of(st: &topology::TopologyState, state_dir: &Path) -> Result<Target> {
    let addr = |h: &str| -> Result<Ipv4Addr> {
        st.host(h)?
            .addr
            .parse()
            .with_context(|| format!("{h}'s address"))
    };
    let key_hex = std::fs::read_to_string(state_dir.join("coral.key"))?;
    let key = coral_core::Key::new(&hex::decode(key_hex.trim())?)
        .map_err(|e| anyhow::anyhow!("the pair's key: {e:?}"))?;
    Ok(Target {
        vip: coral_service::VIP_A.parse()?,
        http_port: 80,
        servers: [(addr("server-a")?, 1), (addr("server-b")?, 2)],
        witness: SocketAddr::new(addr("client")?.into(), coral_service::WITNESS_PORT),
        key,
        log_port: coral::config::DEFAULT_LOG_PORT,
        hb_port: coral::config::DEFAULT_HEARTBEAT_PORT,
        join_port: coral::io::join::DEFAULT_JOIN_PORT,
    })
}

/// Every attack, one after the other, from inside the attacker's namespace.
fn attacks_from(
    ns: &str,
    t: Target,
    dev: String,
    servers: [coral_core::wire::EthernetAddress; 2],
) -> Result<Vec<Ran>> {
    attacks::in_netns(ns, move || -> Result<Vec<Ran>> {
        let me = attacks::mac_of(&dev, None)?;
        let front = attacks::mac_of(&dev, Some(t.vip))?;
        let sock = coral::io::afpacket::PacketSocket::open_send_only(&dev)?;
        let [(a, _), (b, _)] = t.servers;
        let mut ran = Vec::new();
        let mut step = |attack: &'static str,
                        target: String,
                        counted: Counted,
                        f: &mut dyn FnMut() -> (u64, String, bool, u64)| {
            let start_unix_ns = faultinject::now_unix_ns();
            let (sent, observed, observed_ok, expect) = f();
            let end_unix_ns = faultinject::now_unix_ns();
            std::thread::sleep(Duration::from_secs_f64(SETTLE_S));
            ran.push(Ran {
                attack,
                target,
                sent,
                observed,
                observed_ok,
                expect,
                counted,
                start_unix_ns,
                end_unix_ns,
            });
        };
        let http = format!("{}:{}", t.vip, t.http_port);
        step("slowloris", http.clone(), Counted::Nothing, &mut || {
            let (opened, open) = attacks::slowloris(&t, 200, 6.0);
            let seen = format!("{open} of {opened} still open at the end");
            (opened as u64, seen, opened > 0, 0)
        });
        step(
            "oversized request head (1 MiB)",
            http,
            Counted::Nothing,
            &mut || {
                let line = attacks::oversized_head(&t);
                let ok = !line.contains(" 200");
                (1, line, ok, 0)
            },
        );
        for (host, addr, port, counted) in [
            (
                "server-b",
                b,
                t.log_port,
                Counted::Counters("server-b", "log_rejected", "log_foreign"),
            ),
            (
                "server-a",
                a,
                t.join_port,
                Counted::Events("server-a", "join-rejected"),
            ),
            (
                "server-b",
                b,
                t.join_port,
                Counted::Events("server-b", "join-rejected"),
            ),
        ] {
            let what = if port == t.log_port {
                "garbage and truncated log stream"
            } else {
                "garbage and truncated JOIN stream"
            };
            step(what, format!("{host}:{port}"), counted, &mut || {
                let (closed, tried) = attacks::garbage_streams(SocketAddrV4::new(addr, port));
                let seen = format!("{closed} of {tried} closed by the node");
                (3, seen, closed == tried, 1)
            });
        }
        for (i, (host, addr)) in [("server-a", a), ("server-b", b)].into_iter().enumerate() {
            step(
                "forged heartbeats (garbage, wrong key)",
                format!("{host}:{}", t.hb_port),
                Counted::Counter(host, "hb_rejected"),
                &mut || {
                    let n = attacks::forged_heartbeats(&t, addr, 2000);
                    (n, "-".into(), n > 0, n)
                },
            );
            step(
                "replayed heartbeats (right key, old sequence numbers, from the peer's address)",
                format!("{host}:{}", t.hb_port),
                Counted::Counter(host, "hb_rejected"),
                &mut || {
                    let n = attacks::replayed_heartbeats(&t, i, 500);
                    (n, "-".into(), n > 0, n)
                },
            );
        }
        step(
            "forged witness request and garbage",
            t.witness.to_string(),
            Counted::Events("*", "witness-reject"),
            &mut || {
                let n = attacks::witness_requests(&t);
                (n, "-".into(), n == 2, 2)
            },
        );
        step(
            "spoofed ARP replies for the service address",
            "server-a, server-b".into(),
            Counted::Nothing,
            &mut || {
                let n = attacks::spoofed_arp(&sock, me, &t, &servers, 20);
                (n, "-".into(), n > 0, 0)
            },
        );
        step(
            "SYN flood from unanswered sources",
            format!("{}:{}", t.vip, t.http_port),
            Counted::Nothing,
            &mut || {
                let n = attacks::syn_flood(&sock, me, front, &t, 5000);
                (n, "-".into(), n > 0, 0)
            },
        );
        Ok(ran)
    })?
}

/// The last value of `key` in `host`'s `counters` rows at or before `t`
/// (0 before the first row).
fn counter_at(events: &[Event], host: &str, key: &str, t: u64) -> u64 {
    events
        .iter()
        .filter(|e| e.host == host && e.event == "counters" && e.t_unix_ns <= t)
        .max_by_key(|e| e.t_unix_ns)
        .and_then(|e| {
            e.detail
                .split([' ', ','])
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Events named `name` (by `host`, `*`: any) in `[from, to]`.
fn events_in(events: &[Event], host: &str, names: &[&str], from: u64, to: u64) -> u64 {
    events
        .iter()
        .filter(|e| (host == "*" || e.host == host) && names.contains(&e.event.as_str()))
        .filter(|e| (from..=to).contains(&e.t_unix_ns))
        .count() as u64
}

/// Detections a node records.
const DETECTIONS: [&str; 3] = ["peer-failed", "witness-ask", "fenced"];
/// Address moves a node records.
const MOVES: [&str; 2] = ["takeover", "simplex"];

/// The client side of `[from, to)`: the summary of the requests started in it.
fn clients_in(records: &[RequestRecord], from: u64, to: u64) -> summary::Summary {
    let inside: Vec<RequestRecord> = records
        .iter()
        .filter(|r| (from..to).contains(&r.start_unix_ns))
        .cloned()
        .collect();
    summary::compute(
        &inside,
        &SummaryOptions {
            run_start_unix_ns: from,
            warmup_end_unix_ns: from,
            run_end_unix_ns: to,
            fault_at_unix_ns: None,
        },
    )
}

/// Decides one attack from its window: `[start, end + settle]`.
fn judge(r: &Ran, records: &[RequestRecord], events: &[Event]) -> AttackRow {
    let to = r.end_unix_ns + (SETTLE_S * 1e9) as u64;
    let c = clients_in(records, r.start_unix_ns, to);
    let counted = match r.counted {
        Counted::Nothing => None,
        Counted::Counter(h, k) => Some(counter_at(events, h, k, to).saturating_sub(counter_at(
            events,
            h,
            k,
            r.start_unix_ns,
        ))),
        Counted::Counters(h, k1, k2) => {
            let at = |t| counter_at(events, h, k1, t) + counter_at(events, h, k2, t);
            Some(at(to).saturating_sub(at(r.start_unix_ns)))
        }
        Counted::Events(h, e) => Some(events_in(events, h, &[e], r.start_unix_ns, to)),
    };
    let mut row = AttackRow {
        attack: r.attack.into(),
        target: r.target.clone(),
        sent: r.sent,
        observed: r.observed.clone(),
        counter: r.counted.label(),
        counted,
        requests: c.requests,
        ok: c.ok,
        errors: c.errors,
        lost: c.requests_lost,
        reconnects: c.reconnects,
        digest_mismatches: c.digest_mismatches,
        detections: events_in(events, "*", &DETECTIONS, r.start_unix_ns, to),
        address_moves: events_in(events, "*", &MOVES, r.start_unix_ns, to),
        verdict: String::new(),
        detail: String::new(),
    };
    let mut why = Vec::new();
    if row.ok == 0 {
        why.push("no verified reply in the window".to_string());
    }
    for (n, what) in [
        (row.errors, "client errors"),
        (row.lost, "lost"),
        (row.reconnects, "reconnects"),
        (row.digest_mismatches, "digest mismatches"),
        (row.detections, "detections"),
        (row.address_moves, "address moves"),
    ] {
        if n > 0 {
            why.push(format!("{n} {what}"));
        }
    }
    if !r.observed_ok {
        why.push(format!("the attacker saw: {}", r.observed));
    }
    if let Some(n) = counted {
        if n < r.expect {
            why.push(format!(
                "{} grew by {n}, expected at least {}",
                row.counter, r.expect
            ));
        }
    }
    row.verdict = if why.is_empty() { "pass" } else { "FAIL" }.into();
    row.detail = why.join("; ");
    row
}

/// What must hold over the whole run, outside the attacks' windows: no
/// node stopped, the witness granted nothing, and clients were still
/// served after the last attack.
fn outside_windows(records: &[RequestRecord], events: &[Event], after: u64) -> Vec<String> {
    let mut out = Vec::new();
    for e in events {
        match e.event.as_str() {
            "stop" => out.push(format!("{} stopped: {}", e.host, e.detail)),
            "grant" => out.push(format!("the witness granted: {}", e.detail)),
            _ => {}
        }
    }
    let tail = clients_in(records, after + (SETTLE_S * 1e9) as u64, u64::MAX);
    if tail.ok == 0 {
        out.push("no verified reply after the last attack".into());
    }
    out
}

/// Reads `attacks.csv`; a malformed row is an error naming it.
pub fn read(path: &Path) -> Result<Vec<AttackRow>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (i, row) in r.deserialize::<AttackRow>().enumerate() {
        out.push(row.with_context(|| format!("{}: row {}", path.display(), i + 2))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64, host: &str, event: &str, detail: &str) -> Event {
        Event {
            t_unix_ns: t,
            host: host.into(),
            source: "coral".into(),
            event: event.into(),
            detail: detail.into(),
        }
    }

    fn ran(counted: Counted, expect: u64) -> Ran {
        Ran {
            attack: "forged heartbeats",
            target: "server-a:7011".into(),
            sent: 2000,
            observed: "-".into(),
            observed_ok: true,
            expect,
            counted,
            start_unix_ns: 10_000_000_000,
            end_unix_ns: 11_000_000_000,
        }
    }

    fn ok_record(client: u32, seq: u64, start: u64) -> RequestRecord {
        RequestRecord {
            client,
            seq,
            url: "http://192.0.2.100/cgi-bin/webstone?size=4096".into(),
            local_port: 40_000,
            new_connection: seq == 0,
            start_unix_ns: start,
            end_unix_ns: start + 1_000_000,
            latency_us: 1000,
            status: 200,
            bytes: 4096,
            digest_ok: true,
            served_by: "server-a".into(),
            error_kind: None,
            lost: false,
        }
    }

    #[test]
    fn an_attack_is_judged_by_its_window_and_its_counter() {
        let events = vec![
            ev(
                9_000_000_000,
                "server-a",
                "counters",
                "hb_sent=5 hb_rejected=3",
            ),
            ev(
                11_500_000_000,
                "server-a",
                "counters",
                "hb_sent=20 hb_rejected=2003",
            ),
            // After the window: not this attack's.
            ev(20_000_000_000, "server-a", "peer-failed", "x"),
        ];
        let records = vec![
            ok_record(0, 0, 10_100_000_000),
            ok_record(0, 1, 10_200_000_000),
        ];
        let row = judge(
            &ran(Counted::Counter("server-a", "hb_rejected"), 2000),
            &records,
            &events,
        );
        assert_eq!(row.counted, Some(2000));
        assert_eq!((row.requests, row.ok, row.detections), (2, 2, 0));
        assert_eq!(row.verdict, "pass", "{row:?}");
        assert_eq!(row.counter, "server-a hb_rejected");

        // Too few counted, a detection inside the window, a client error.
        let mut events = events;
        events[1].detail = "hb_rejected=1500".into();
        events.push(ev(11_000_000_001, "server-b", "peer-failed", "x"));
        let mut records = records;
        records[1].status = 0;
        records[1].error_kind = Some(workload::records::ErrorKind::Reset);
        let row = judge(
            &ran(Counted::Counter("server-a", "hb_rejected"), 2000),
            &records,
            &events,
        );
        assert_eq!(row.verdict, "FAIL");
        assert!(row.detail.contains("1 client errors"), "{}", row.detail);
        assert!(row.detail.contains("1 detections"), "{}", row.detail);
        assert!(
            row.detail.contains("grew by 1497, expected at least 2000"),
            "{}",
            row.detail
        );
    }

    #[test]
    fn events_counted_and_nothing_outside_the_windows() {
        let events = vec![
            ev(10_500_000_000, "client", "witness-reject", "bad tag"),
            ev(10_600_000_000, "client", "witness-reject", "garbage"),
            ev(30_000_000_000, "server-b", "stop", "signal"),
        ];
        let row = judge(
            &ran(Counted::Events("*", "witness-reject"), 2),
            &[ok_record(1, 0, 10_100_000_000)],
            &events,
        );
        assert_eq!((row.counted, row.verdict.as_str()), (Some(2), "pass"));
        let out = outside_windows(&[ok_record(1, 0, 10_100_000_000)], &events, 11_000_000_000);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].contains("server-b stopped"));
        assert!(out[1].contains("no verified reply after the last attack"));
    }

    #[test]
    fn attacks_csv_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let events = vec![ev(
            11_500_000_000,
            "server-a",
            "counters",
            "hb_rejected=2000",
        )];
        let row = judge(
            &ran(Counted::Counter("server-a", "hb_rejected"), 2000),
            &[ok_record(0, 0, 10_100_000_000)],
            &events,
        );
        let p = d.path().join("attacks.csv");
        let mut w = csv::Writer::from_path(&p).unwrap();
        w.serialize(&row).unwrap();
        w.flush().unwrap();
        assert_eq!(read(&p).unwrap(), vec![row]);
        assert!(table(&read(&p).unwrap()).contains("| server-a hb_rejected | 2000 |"));
    }
}
