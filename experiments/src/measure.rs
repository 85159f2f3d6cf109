//! Measurements the runner adds to a repetition's `summary.json` beyond what
//! the load driver computes, all from files of the repetition or from
//! counters read around the load:
//!
//! - `failover` (ms): the CoRAL node's `takeover` event (or, when the backup
//!   failed, the primary's `simplex-address` event) parsed from `events.csv`,
//!   keys `kernel_ops`, `user_ops`, `gratuitous_arp`, `outside_ping`,
//!   `total`, plus `detection_ms` (fault instant to the survivor's
//!   `peer-failed`) and, in dual role where the survivor also takes the
//!   address the failed node fronted, `address_move_ms` (that event's total).
//! - counts: `false_detections` (`peer-failed` rows of a node that had
//!   heard its peer, without a fault before them; a node starting before its
//!   peer reports `ever_heard=false`, which is not counted), `lease_lapses`
//!   (`lease-lapsed` rows without a fault before them),
//!   `fences` (`fenced` rows: a node that lost a race for an address),
//!   `rejoins` (`rejoin` rows: a fenced node that restarted to join its
//!   peer, `rejoin = true`), `takeover_restored` (connections rebuilt),
//!   `tails_unwritable`
//!   (`tail-unwritable` rows: a rebuilt connection whose logged reply tail
//!   could not be written).
//! - heartbeat one-way delay: `hb_delay_p50_ms`, `hb_delay_p99_ms`,
//!   `hb_delay_max_ms`, from each node's last `counters` row, the larger of
//!   the nodes' values.
//! - log round trip: `log_rtt_p50_ms`, `log_rtt_p99_ms`, `log_rtt_max_ms`,
//!   the primaries' replies from being handed to the log to the backup's
//!   ack, from each node's last `counters` row (a node that logged nothing
//!   is left out), the larger of the nodes' values.
//! - CPU: `server_cpu_ms` (cgroup cpuacct of every server host over the
//!   load), `cpu_ms_per_request` (that per completed request) and
//!   `machine_cpu_ms_per_request` (whole machine, `/proc/stat`).

use crate::plot::data::{EventRow, FAULT_EVENTS};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// The breakdown keys of a `takeover`/`simplex-address` detail, in ms.
pub const BREAKDOWN_KEYS: &[&str] = &[
    "kernel_ops",
    "user_ops",
    "gratuitous_arp",
    "outside_ping",
    "total",
];

/// Every `key=number` token of an event detail (other tokens are skipped).
pub fn parse_detail(detail: &str) -> BTreeMap<String, f64> {
    detail
        .split_whitespace()
        .filter_map(|tok| {
            let (k, v) = tok.split_once('=')?;
            let v: f64 = v.parse().ok()?;
            v.is_finite().then(|| (k.to_string(), v))
        })
        .collect()
}

/// Reads an `events.csv` (merged, any order).
pub fn read_events(path: &Path) -> Result<Vec<EventRow>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (i, row) in reader.deserialize::<EventRow>().enumerate() {
        out.push(row.with_context(|| format!("{}: row {}", path.display(), i + 2))?);
    }
    out.sort_by_key(|e| e.t_unix_ns);
    Ok(out)
}

/// What the events of one repetition say about failover.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FailoverFacts {
    /// The breakdown (ms) for `summary.failover`, if a survivor recorded one.
    pub failover: Option<BTreeMap<String, f64>>,
    /// `peer-failed` rows with no fault injected at or before them, from a
    /// node that had heard its peer (`ever_heard=false` is start-up).
    pub false_detections: u64,
    /// Connections the survivor rebuilt (`restored=`), if it took over.
    pub restored: Option<f64>,
    /// `lease-lapsed` rows with no fault injected at or before them.
    pub lease_lapses: u64,
    /// `tail-unwritable` rows (any host, any time).
    pub tails_unwritable: u64,
    /// `fenced` rows (any host, any time).
    pub fences: u64,
    /// `rejoin` rows (any host, any time).
    pub rejoins: u64,
}

/// Derives [`FailoverFacts`] from the merged events of a repetition whose
/// fault (if any) was injected at `fault_at` (unix ns). The faulted host is
/// the one named by the fault row at that instant; its own events (a cut-off
/// node also misses heartbeats) never count as the survivor's.
pub fn failover_facts(events: &[EventRow], fault_at: Option<u64>) -> FailoverFacts {
    let mut facts = FailoverFacts::default();
    let faulted: Option<&str> = fault_at.and_then(|t| {
        events
            .iter()
            .filter(|e| FAULT_EVENTS.contains(&e.event.as_str()))
            .min_by_key(|e| e.t_unix_ns.abs_diff(t))
            .map(|e| e.host.as_str())
    });
    facts.false_detections = events
        .iter()
        .filter(|e| e.event == "peer-failed" && !e.detail.contains("ever_heard=false"))
        .filter(|e| fault_at.is_none_or(|t| e.t_unix_ns < t))
        .count() as u64;
    facts.lease_lapses = events
        .iter()
        .filter(|e| e.event == "lease-lapsed")
        .filter(|e| fault_at.is_none_or(|t| e.t_unix_ns < t))
        .count() as u64;
    let count = |name: &str| events.iter().filter(|e| e.event == name).count() as u64;
    facts.tails_unwritable = count("tail-unwritable");
    facts.fences = count("fenced");
    facts.rejoins = count("rejoin");
    let Some(t0) = fault_at else {
        return facts;
    };
    let after = |name: &str| {
        events
            .iter()
            .find(|e| e.event == name && e.t_unix_ns >= t0 && Some(e.host.as_str()) != faulted)
    };
    let detected = after("peer-failed");
    let takeover = after("takeover");
    let address = after("simplex-address");
    let main = takeover.or(address);
    let Some(main) = main else {
        return facts;
    };
    let detail = parse_detail(&main.detail);
    let mut m: BTreeMap<String, f64> = BREAKDOWN_KEYS
        .iter()
        .filter_map(|k| detail.get(*k).map(|v| (k.to_string(), *v)))
        .collect();
    if let Some(d) = detected {
        m.insert(
            "detection_ms".into(),
            d.t_unix_ns.saturating_sub(t0) as f64 / 1e6,
        );
    }
    if let (Some(_), Some(a)) = (takeover, address) {
        if a.host == main.host {
            if let Some(t) = parse_detail(&a.detail).get("total") {
                m.insert("address_move_ms".into(), *t);
            }
        }
    }
    facts.restored = detail.get("restored").copied();
    facts.failover = Some(m);
    facts
}

/// Heartbeat one-way delay (ms) by key (`hb_delay_p50_ms`, `_p99_ms`,
/// `_max_ms`): each node's last `counters` row, the larger of the nodes'.
pub fn heartbeat_delay(events: &[EventRow]) -> BTreeMap<String, f64> {
    last_counter_quantiles(events, "hb_delay")
}

/// The log round trip of the primaries' replies (ms; `log_rtt_p50_ms`,
/// `_p99_ms`, `_max_ms`): from the reply handed to the log to the backup's
/// ack releasing it, over the node's whole run, each node's last
/// `counters` row, the larger of the nodes'.
pub fn log_round_trip(events: &[EventRow]) -> BTreeMap<String, f64> {
    last_counter_quantiles(events, "log_rtt")
}

/// `{prefix}_{p50,p99,max}_ms` from each node's last `counters` row
/// (`{prefix}_{q}_us`), the larger of the nodes'. A node whose histogram
/// is empty (`{prefix}_count=0`) does not count.
fn last_counter_quantiles(events: &[EventRow], prefix: &str) -> BTreeMap<String, f64> {
    let mut last: BTreeMap<&str, &EventRow> = BTreeMap::new();
    for e in events.iter().filter(|e| e.event == "counters") {
        last.insert(e.host.as_str(), e);
    }
    let mut m = BTreeMap::new();
    for row in last.values() {
        let d = parse_detail(&row.detail);
        if d.get(&format!("{prefix}_count")) == Some(&0.0) {
            continue;
        }
        for q in ["p50", "p99", "max"] {
            if let Some(us) = d.get(&format!("{prefix}_{q}_us")) {
                let v = m.entry(format!("{prefix}_{q}_ms")).or_insert(0.0f64);
                *v = v.max(us / 1e3);
            }
        }
    }
    m
}

/// CPU counters read at the start and the end of the load.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    /// Sum of cpuacct usage of the server hosts' groups, ns (None without
    /// groups or cpuacct).
    pub servers_ns: Option<u64>,
    /// Busy (non-idle, non-iowait) CPU time of the whole machine, ns.
    pub machine_ns: Option<u64>,
}

impl CpuSample {
    /// Reads the counters now; `cgroups` are the server hosts' cpu groups.
    pub fn take(cgroups: &[String]) -> CpuSample {
        let servers_ns = if cgroups.is_empty() {
            None
        } else {
            cgroups
                .iter()
                .map(|p| crate::conditions::CpuGroup { path: p.into() }.usage_ns())
                .sum::<Option<u64>>()
        };
        CpuSample {
            servers_ns,
            machine_ns: machine_busy_ns(),
        }
    }
}

/// Busy CPU time of the machine from the first line of `/proc/stat`.
fn machine_busy_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest counted in user).
    let busy: u64 = v.iter().take(8).sum::<u64>() - v[3] - v[4];
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| busy * (1_000_000_000 / hz as u64))
}

/// The CPU keys for `summary.json` from two samples and the completed
/// requests in between.
pub fn cpu_keys(start: &CpuSample, end: &CpuSample, ok: u64) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    let per = |ns: u64| {
        if ok > 0 {
            Some(ns as f64 / 1e6 / ok as f64)
        } else {
            None
        }
    };
    if let (Some(a), Some(b)) = (start.servers_ns, end.servers_ns) {
        let d = b.saturating_sub(a);
        m.insert("server_cpu_ms".into(), d as f64 / 1e6);
        if let Some(x) = per(d) {
            m.insert("cpu_ms_per_request".into(), x);
        }
    }
    if let (Some(a), Some(b)) = (start.machine_ns, end.machine_ns) {
        if let Some(x) = per(b.saturating_sub(a)) {
            m.insert("machine_cpu_ms_per_request".into(), x);
        }
    }
    m
}

/// Table 2's rows of a repetition: the first node `integration` event's
/// `k=ms` pairs (a new server joined a simplex node; docs/CLI.md).
pub fn integration_breakdown(events: &[EventRow]) -> Option<BTreeMap<String, f64>> {
    let e = events.iter().find(|e| e.event == "integration")?;
    let m: BTreeMap<String, f64> = parse_detail(&e.detail)
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "node" | "epoch"))
        .collect();
    m.contains_key("total").then_some(m)
}

/// The window of vulnerability: from the first fault (`fault_at`) to the
/// first `integration` event after it (a new server joined: both nodes
/// duplex again), ms.
pub fn vulnerability_ms(events: &[EventRow], fault_at: Option<u64>) -> Option<f64> {
    let t0 = fault_at?;
    let e = events
        .iter()
        .find(|e| e.event == "integration" && e.t_unix_ns >= t0)?;
    Some((e.t_unix_ns - t0) as f64 / 1e6)
}

/// The longest client-visible stall during a join (ms): the join runs from
/// the simplex node's `join-accepted` to its `integration`; per client, the
/// longest gap between consecutive successful completions that overlaps
/// that window; the largest over the clients. `None` without a completed
/// join.
pub fn join_stall_ms(
    events: &[EventRow],
    records: &[workload::records::RequestRecord],
) -> Option<f64> {
    let end = events.iter().find(|e| e.event == "integration")?;
    let start = events.iter().rfind(|e| {
        e.event == "join-accepted" && e.host == end.host && e.t_unix_ns <= end.t_unix_ns
    })?;
    let (w0, w1) = (start.t_unix_ns, end.t_unix_ns);
    let mut by_client: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.is_ok()) {
        by_client.entry(r.client).or_default().push(r.end_unix_ns);
    }
    let mut worst = 0u64;
    for ends in by_client.values_mut() {
        ends.sort_unstable();
        for w in ends.windows(2) {
            if w[0] <= w1 && w[1] >= w0 {
                worst = worst.max(w[1] - w[0]);
            }
        }
    }
    Some(worst as f64 / 1e6)
}

/// Fills `s.failover` and `s.integration` from the repetition's merged `events.csv` and
/// returns the other keys this module adds to `summary.json` (counts, CPU,
/// idle connections from the driver's `idle.json` when it exists).
pub fn summary_extras(
    s: &mut workload::summary::Summary,
    events_csv: &Path,
    fault_at: Option<u64>,
    records: &[workload::records::RequestRecord],
    cpu: (&CpuSample, &CpuSample),
    idle_json: &Path,
) -> Result<BTreeMap<String, f64>> {
    let events = if events_csv.exists() {
        read_events(events_csv)?
    } else {
        Vec::new()
    };
    let facts = failover_facts(&events, fault_at);
    if facts.failover.is_some() {
        s.failover = facts.failover;
    }
    if let Some(m) = integration_breakdown(&events) {
        s.integration = Some(m);
    }
    let ok = records.iter().filter(|r| r.is_ok()).count() as u64;
    let mut m = cpu_keys(cpu.0, cpu.1, ok);
    m.insert("false_detections".into(), facts.false_detections as f64);
    m.insert("lease_lapses".into(), facts.lease_lapses as f64);
    m.extend(heartbeat_delay(&events));
    m.extend(log_round_trip(&events));
    m.insert("tails_unwritable".into(), facts.tails_unwritable as f64);
    m.insert("fences".into(), facts.fences as f64);
    m.insert("rejoins".into(), facts.rejoins as f64);
    if let Some(r) = facts.restored {
        m.insert("takeover_restored".into(), r);
    }
    if let Some(w) = vulnerability_ms(&events, fault_at) {
        m.insert("vulnerability_ms".into(), w);
    }
    if let Some(j) = join_stall_ms(&events, records) {
        m.insert("join_stall_ms".into(), j);
    }
    if idle_json.exists() {
        let text = std::fs::read_to_string(idle_json)
            .with_context(|| format!("reading {}", idle_json.display()))?;
        let idle: workload::driver::IdleStats = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", idle_json.display()))?;
        m.insert("idle_conns_opened".into(), idle.opened as f64);
        m.insert("idle_conns_open_at_end".into(), idle.open_at_end as f64);
    }
    Ok(m)
}

/// Writes `summary.json`: the driver's summary with `extra` as further
/// top-level keys (readers of [`workload::summary::Summary`] ignore them;
/// [`extra_value`] reads them).
pub fn write_summary_with(
    path: &Path,
    s: &workload::summary::Summary,
    extra: &BTreeMap<String, f64>,
) -> Result<()> {
    let mut v = serde_json::to_value(s)?;
    if let Some(obj) = v.as_object_mut() {
        for (k, x) in extra {
            obj.insert(k.clone(), serde_json::json!(x));
        }
    }
    std::fs::write(path, serde_json::to_string_pretty(&v)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// An extra key of a repetition's `summary.json` (see [`write_summary_with`]).
pub fn extra_value(rep_dir: &Path, key: &str) -> Option<f64> {
    let text = std::fs::read_to_string(rep_dir.join("summary.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get(key)?.as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64, host: &str, event: &str, detail: &str) -> EventRow {
        EventRow {
            t_unix_ns: t,
            host: host.into(),
            source: "x".into(),
            event: event.into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn the_window_of_vulnerability_ends_at_the_integration() {
        let events = [
            ev(5_000_000, "server-b", "integration", "total=1.0"),
            ev(10_000_000, "server-a", "kill", ""),
            ev(12_000_000, "server-b", "takeover", "total=1.0"),
            ev(40_000_000, "server-b", "integration", "total=2.0"),
        ];
        assert_eq!(vulnerability_ms(&events, Some(10_000_000)), Some(30.0));
        assert_eq!(vulnerability_ms(&events, None), None);
        assert_eq!(vulnerability_ms(&events[..3], Some(10_000_000)), None);
    }

    #[test]
    fn the_join_stall_is_the_longest_gap_overlapping_the_join() {
        let rec = |client: u32, end_ms: u64| workload::records::RequestRecord {
            client,
            seq: end_ms,
            url: String::new(),
            local_port: 1,
            new_connection: false,
            start_unix_ns: end_ms * 1_000_000,
            end_unix_ns: end_ms * 1_000_000,
            latency_us: 0,
            status: 200,
            bytes: 0,
            digest_ok: true,
            served_by: String::new(),
            error_kind: None,
            lost: false,
        };
        let events = [
            ev(100_000_000, "server-b", "join-accepted", "node=3 epoch=3"),
            ev(120_000_000, "server-b", "integration", "total=20.0"),
        ];
        // Client 0: a 40 ms gap across the join; client 1: a 90 ms gap
        // before it (not counted) and 5 ms gaps during it.
        let recs = [
            rec(0, 90),
            rec(0, 130),
            rec(1, 0),
            rec(1, 90),
            rec(1, 95),
            rec(1, 100),
            rec(1, 105),
            rec(1, 110),
            rec(1, 115),
            rec(1, 120),
        ];
        assert_eq!(join_stall_ms(&events, &recs), Some(40.0));
        assert_eq!(join_stall_ms(&events[..1], &recs), None);
    }

    #[test]
    fn integration_rows_come_from_the_node_event() {
        assert_eq!(
            integration_breakdown(&[ev(1, "server-b", "join-accepted", "node=3 epoch=3")]),
            None
        );
        let m = integration_breakdown(&[ev(
            2,
            "server-b",
            "integration",
            "node=3 epoch=3 config_exchange=0.100 identity_restoration=0.400 task_startup=0.300 total=1.200 witness=0.400",
        )])
        .unwrap();
        assert_eq!(m.get("total"), Some(&1.2));
        assert_eq!(m.get("witness"), Some(&0.4));
        assert!(!m.contains_key("node") && !m.contains_key("epoch"));
        assert_eq!(m.len(), 5);
    }

    #[test]
    fn detail_tokens() {
        let d = parse_detail("gratuitous_arp=0.120 kernel_ops=1.5 restored=8 skipped={} x=nan y=");
        assert_eq!(d["gratuitous_arp"], 0.12);
        assert_eq!(d["restored"], 8.0);
        assert!(!d.contains_key("skipped") && !d.contains_key("x") && !d.contains_key("y"));
    }

    #[test]
    fn takeover_of_the_survivor_only() {
        let s = 1_000_000_000u64;
        let events = vec![
            ev(s / 2, "server-b", "peer-failed", "ever_heard=true"),
            ev(s, "server-a", "link-cut", ""),
            ev(s + 250_000_000, "server-a", "peer-failed", ""),
            ev(s + 290_000_000, "server-a", "takeover", "total=99"),
            ev(s + 300_000_000, "server-b", "peer-failed", "ever_heard=true"),
            ev(
                s + 302_000_000,
                "server-b",
                "takeover",
                "gratuitous_arp=0.100 kernel_ops=0.300 outside_ping=0.200 total=1.000 user_ops=0.400 restored=8 skipped={}",
            ),
            ev(s + 303_000_000, "server-b", "simplex-address", "total=0.7 rounds=1"),
            ev(
                s + 400_000_000,
                "server-b",
                "tail-unwritable",
                "conn=192.0.2.1:40000->192.0.2.100:80 left=4096 error=broken pipe",
            ),
        ];
        let f = failover_facts(&events, Some(s));
        let m = f.failover.unwrap();
        assert_eq!(m["total"], 1.0);
        assert_eq!(m["kernel_ops"], 0.3);
        assert_eq!(m["detection_ms"], 300.0);
        assert_eq!(m["address_move_ms"], 0.7);
        assert_eq!(f.restored, Some(8.0));
        assert_eq!(f.false_detections, 1);
        assert_eq!(f.tails_unwritable, 1);
        assert_eq!((f.fences, f.rejoins), (0, 0));
        let mut raced = events.clone();
        raced.push(ev(s + 500_000_000, "server-a", "fenced", "vip=192.0.2.100"));
        raced.push(ev(
            s + 500_100_000,
            "server-a",
            "rejoin",
            "to=192.0.2.12:7014",
        ));
        let f = failover_facts(&raced, Some(s));
        assert_eq!((f.fences, f.rejoins), (1, 1));
    }

    #[test]
    fn lease_lapses_before_the_fault_and_heartbeat_delay_from_counters() {
        let events = vec![
            ev(1, "server-a", "lease-lapsed", "late_ms=0.2"),
            ev(
                2,
                "server-a",
                "counters",
                "hb_sent=9 hb_delay_p50_us=120 hb_delay_p99_us=900 hb_delay_max_us=4000",
            ),
            ev(
                3,
                "server-b",
                "counters",
                "hb_delay_p50_us=80 hb_delay_p99_us=1500 hb_delay_max_us=2000",
            ),
            ev(
                4,
                "server-a",
                "counters",
                "hb_delay_p50_us=100 hb_delay_p99_us=700 hb_delay_max_us=5000",
            ),
            ev(5, "server-b", "link-cut", ""),
            ev(6, "server-a", "lease-lapsed", "late_ms=0.1"),
        ];
        assert_eq!(failover_facts(&events, Some(5)).lease_lapses, 1);
        let d = heartbeat_delay(&events);
        assert_eq!(d["hb_delay_p50_ms"], 0.1);
        assert_eq!(d["hb_delay_p99_ms"], 1.5);
        assert_eq!(d["hb_delay_max_ms"], 5.0);
    }

    #[test]
    fn log_round_trip_from_counters_without_nodes_that_logged_nothing() {
        let events = vec![
            ev(
                1,
                "server-a",
                "counters",
                "log_rtt_count=5 log_rtt_p50_us=300 log_rtt_p99_us=900 log_rtt_max_us=950",
            ),
            ev(
                2,
                "server-b",
                "counters",
                "log_rtt_count=0 log_rtt_p50_us=0 log_rtt_p99_us=0 log_rtt_max_us=9000",
            ),
            ev(
                3,
                "server-a",
                "counters",
                "log_rtt_count=9 log_rtt_p50_us=400 log_rtt_p99_us=2000 log_rtt_max_us=2500",
            ),
        ];
        let d = log_round_trip(&events);
        assert_eq!(d["log_rtt_p50_ms"], 0.4);
        assert_eq!(d["log_rtt_p99_ms"], 2.0);
        assert_eq!(d["log_rtt_max_ms"], 2.5);
        assert!(log_round_trip(&events[1..2]).is_empty());
    }

    #[test]
    fn backup_failure_uses_simplex_address() {
        let events = vec![
            ev(10, "server-b", "link-cut", ""),
            ev(20, "server-a", "peer-failed", ""),
            ev(30, "server-a", "simplex", "released_ms=0.01"),
            ev(
                40,
                "server-a",
                "simplex-address",
                "gratuitous_arp=0.2 kernel_ops=0.1 outside_ping=0.3 total=0.6 user_ops=0 rounds=1",
            ),
        ];
        let f = failover_facts(&events, Some(10));
        let m = f.failover.unwrap();
        assert_eq!(m["outside_ping"], 0.3);
        assert_eq!(m["detection_ms"], 10.0 / 1e6);
        assert!(!m.contains_key("address_move_ms"));
        assert_eq!(f.false_detections, 0);
    }

    #[test]
    fn no_fault_counts_every_detection_and_no_breakdown() {
        let events = vec![
            ev(1, "server-a", "peer-failed", ""),
            ev(2, "server-b", "peer-failed", "ever_heard=true silent_ms=4"),
            ev(3, "server-b", "peer-failed", "ever_heard=false silent_ms=3"),
        ];
        let f = failover_facts(&events, None);
        assert_eq!(f.failover, None);
        assert_eq!(f.false_detections, 2);
        assert_eq!(f.lease_lapses, 0);
        // A fault with no survivor event: no breakdown at all.
        let f = failover_facts(&[ev(5, "server-a", "link-cut", "")], Some(5));
        assert_eq!(f.failover, None);
    }

    #[test]
    fn cpu_per_request() {
        let a = CpuSample {
            servers_ns: Some(1_000_000),
            machine_ns: Some(0),
        };
        let b = CpuSample {
            servers_ns: Some(11_000_000),
            machine_ns: Some(20_000_000),
        };
        let m = cpu_keys(&a, &b, 100);
        assert_eq!(m["server_cpu_ms"], 10.0);
        assert_eq!(m["cpu_ms_per_request"], 0.1);
        assert_eq!(m["machine_cpu_ms_per_request"], 0.2);
        assert!(!cpu_keys(&a, &b, 0).contains_key("cpu_ms_per_request"));
        assert!(cpu_keys(&CpuSample::default(), &b, 5).is_empty());
    }
}
