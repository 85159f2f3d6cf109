//! `summary.json`: the per-run numbers every experiment reports, computed only
//! from `requests.csv` rows (docs/CLI.md, "summary.json").
//!
//! Definitions (docs/DESIGN.md section 10), with the measured window
//! `[warmup_end, run_end]` of [`SummaryOptions`]:
//! - `requests`, `ok`, `errors`, `errors_by_kind`, `requests_lost`,
//!   `digest_mismatches`, `reconnects` count every row, warm-up included.
//! - `reconnects`: per client in `seq` order, a row that opened a connection
//!   (`new_connection`) after an error row, with no connection opened in
//!   between, counts once (a run of refused connects then one success is one
//!   reconnect).
//! - `max_stall_ms`: per client, the successful completions (`end_unix_ns`)
//!   inside the window, with the window's start and end added as the first
//!   and last points; the longest gap between consecutive points; the
//!   maximum over the clients that appear in the rows.
//! - `p50_ms`, `p99_ms`: nearest-rank percentiles of the latency of
//!   successful requests that started inside the window (0 if none).
//! - `throughput_rps`: successful completions inside the window per second.
//! - `throughput_before_rps`: completions in `[warmup_end, fault)` per second;
//!   `throughput_after_rps`: completions in `[fault + 1 s, run_end]` per
//!   second. Each is `None` when its interval is empty.

use crate::records::{ErrorKind, RequestRecord};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Version of the `summary.json` schema written by this kit.
pub const SUMMARY_SCHEMA_VERSION: u32 = 1;

/// The contents of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Summary {
    /// Schema version ([`SUMMARY_SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Requests sent: the rows of `requests.csv` (a failed connect is a row,
    /// for the request it was opened for). `requests = ok + errors + requests_lost`.
    pub requests: u64,
    /// Requests with a complete, digest-correct 200 reply.
    pub ok: u64,
    /// Requests recorded with an error.
    pub errors: u64,
    /// Errors by kind name.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Sent, never answered, and no error by the end of the run.
    pub requests_lost: u64,
    /// Replies whose body did not match their digest.
    pub digest_mismatches: u64,
    /// Connections opened again after an error.
    pub reconnects: u64,
    /// Longest interval between consecutive successful completions of one
    /// client, over clients; the measured window bounds the first and last.
    pub max_stall_ms: f64,
    /// Median latency of successful requests after warm-up.
    pub p50_ms: f64,
    /// 99th percentile latency of successful requests after warm-up.
    pub p99_ms: f64,
    /// Successful requests per second after warm-up.
    pub throughput_rps: f64,
    /// Fault instant, if a fault was injected.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fault_at_unix_ns: Option<u64>,
    /// Throughput from warm-up end to the fault.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub throughput_before_rps: Option<f64>,
    /// Throughput from fault + 1 s to the end.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub throughput_after_rps: Option<f64>,
    /// Failover breakdown in milliseconds, by step name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub failover: Option<BTreeMap<String, f64>>,
    /// Integration breakdown (a new server joined the simplex node, the
    /// paper's Table 2) in milliseconds, by step name, with `total`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub integration: Option<BTreeMap<String, f64>>,
    /// Added: when the driver started (unix ns; 0 if unknown).
    #[serde(default)]
    pub run_start_unix_ns: u64,
    /// Added: end of warm-up, start of the measured window (unix ns).
    #[serde(default)]
    pub warmup_end_unix_ns: u64,
    /// Added: end of the measured window: the driver stopped sending (unix ns).
    #[serde(default)]
    pub run_end_unix_ns: u64,
}

/// The run's time marks that [`compute`] needs besides the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SummaryOptions {
    /// When the driver started (unix ns).
    pub run_start_unix_ns: u64,
    /// End of warm-up: start of the measured window (unix ns).
    pub warmup_end_unix_ns: u64,
    /// End of the measured window: when the driver stopped sending (unix ns).
    pub run_end_unix_ns: u64,
    /// Fault instant, if a fault was injected (unix ns).
    pub fault_at_unix_ns: Option<u64>,
}

const NS_PER_S: f64 = 1e9;
const NS_PER_MS: f64 = 1e6;

/// Successful completions with `end_unix_ns` in `[from, to)` (or `[from, to]`
/// when `inclusive_end`).
fn ok_completions(records: &[RequestRecord], from: u64, to: u64, inclusive_end: bool) -> u64 {
    records
        .iter()
        .filter(|r| {
            r.is_ok()
                && r.end_unix_ns >= from
                && (r.end_unix_ns < to || (inclusive_end && r.end_unix_ns == to))
        })
        .count() as u64
}

/// Rate of successful completions over `[from, to]`, `None` if empty.
fn rate(records: &[RequestRecord], from: u64, to: u64, inclusive_end: bool) -> Option<f64> {
    if to <= from {
        return None;
    }
    let n = ok_completions(records, from, to, inclusive_end);
    Some(n as f64 / ((to - from) as f64 / NS_PER_S))
}

/// Nearest-rank percentile (`p` in 0..=100) of sorted values; 0 if empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Compute `summary.json` from the rows of `requests.csv` (definitions in the
/// module doc). `failover` and `integration` are left `None` for the
/// experiment runner to fill.
pub fn compute(records: &[RequestRecord], opts: &SummaryOptions) -> Summary {
    let w0 = opts.warmup_end_unix_ns;
    let w1 = opts.run_end_unix_ns.max(w0);
    let mut s = Summary {
        schema_version: SUMMARY_SCHEMA_VERSION,
        requests: records.len() as u64,
        run_start_unix_ns: opts.run_start_unix_ns,
        warmup_end_unix_ns: opts.warmup_end_unix_ns,
        run_end_unix_ns: opts.run_end_unix_ns,
        ..Summary::default()
    };
    for r in records {
        if r.is_ok() {
            s.ok += 1;
        } else if r.is_lost() {
            s.requests_lost += 1;
        }
        if let Some(k) = r.error_kind {
            s.errors += 1;
            *s.errors_by_kind.entry(k.as_str().to_string()).or_default() += 1;
            if k == ErrorKind::DigestMismatch {
                s.digest_mismatches += 1;
            }
        }
    }

    // Per client, rows in request order.
    let mut by_client: BTreeMap<u32, Vec<&RequestRecord>> = BTreeMap::new();
    for r in records {
        by_client.entry(r.client).or_default().push(r);
    }
    let mut max_stall_ns = 0u64;
    for rows in by_client.values_mut() {
        rows.sort_by_key(|r| (r.seq, r.start_unix_ns));
        let mut after_error = false;
        for r in rows.iter() {
            if r.new_connection && after_error {
                s.reconnects += 1;
                after_error = false;
            }
            if r.error_kind.is_some() {
                after_error = true;
            }
        }
        let mut ends: Vec<u64> = rows
            .iter()
            .filter(|r| r.is_ok() && r.end_unix_ns >= w0 && r.end_unix_ns <= w1)
            .map(|r| r.end_unix_ns)
            .collect();
        ends.sort_unstable();
        let mut prev = w0;
        for e in ends.into_iter().chain(std::iter::once(w1)) {
            max_stall_ns = max_stall_ns.max(e - prev);
            prev = e;
        }
    }
    s.max_stall_ms = max_stall_ns as f64 / NS_PER_MS;

    let mut lat: Vec<f64> = records
        .iter()
        .filter(|r| r.is_ok() && r.start_unix_ns >= w0 && r.start_unix_ns <= w1)
        .map(|r| r.latency_us as f64 / 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    s.p50_ms = percentile(&lat, 50.0);
    s.p99_ms = percentile(&lat, 99.0);
    s.throughput_rps = rate(records, w0, w1, true).unwrap_or(0.0);

    if let Some(f) = opts.fault_at_unix_ns {
        s.fault_at_unix_ns = Some(f);
        s.throughput_before_rps = rate(records, w0, f.min(w1), false);
        s.throughput_after_rps = rate(records, f.saturating_add(1_000_000_000).max(w0), w1, true);
    }
    s
}

/// Successful completions per time bin over `[from, to)`, `bin_ns` wide (the
/// per-second throughput of Fig. 2 with `bin_ns` = 1e9). Empty if `bin_ns`
/// is 0 or `to <= from`.
pub fn completions_per_bin(records: &[RequestRecord], from: u64, to: u64, bin_ns: u64) -> Vec<u64> {
    if bin_ns == 0 || to <= from {
        return Vec::new();
    }
    let n = (to - from).div_ceil(bin_ns) as usize;
    let mut bins = vec![0u64; n];
    for r in records {
        if r.is_ok() && r.end_unix_ns >= from && r.end_unix_ns < to {
            bins[((r.end_unix_ns - from) / bin_ns) as usize] += 1;
        }
    }
    bins
}

/// Write `requests.csv`: a header row, then one row per record, columns in
/// the field order of [`RequestRecord`]; `error_kind` empty on success.
pub fn write_requests_csv(path: impl AsRef<Path>, records: &[RequestRecord]) -> anyhow::Result<()> {
    let path = path.as_ref();
    let mut w = csv::Writer::from_path(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    for r in records {
        w.serialize(r)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Read `requests.csv` as written by [`write_requests_csv`].
pub fn read_requests_csv(path: impl AsRef<Path>) -> anyhow::Result<Vec<RequestRecord>> {
    let path = path.as_ref();
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    for (i, row) in r.deserialize().enumerate() {
        let rec: RequestRecord =
            row.with_context(|| format!("{}: bad row {}", path.display(), i + 2))?;
        out.push(rec);
    }
    Ok(out)
}

/// Write `summary.json` (pretty-printed, trailing newline).
pub fn write_summary_json(path: impl AsRef<Path>, summary: &Summary) -> anyhow::Result<()> {
    let path = path.as_ref();
    let mut text = serde_json::to_string_pretty(summary)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Read `summary.json`.
pub fn read_summary_json(path: impl AsRef<Path>) -> anyhow::Result<Summary> {
    let path = path.as_ref();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_summary_json(&text).with_context(|| format!("{}: not a summary.json", path.display()))
}

/// Parses `summary.json`'s text (what [`read_summary_json`] reads; also the
/// `summary_json` fuzz target's entry).
pub fn parse_summary_json(text: &str) -> anyhow::Result<Summary> {
    Ok(serde_json::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 1_700_000_000_000_000_000;
    const MS: u64 = 1_000_000;

    /// A row of `client`, ending `end_ms` after BASE, `lat_ms` long.
    fn rec(client: u32, seq: u64, end_ms: u64, lat_ms: u64) -> RequestRecord {
        RequestRecord {
            client,
            seq,
            url: "http://127.0.0.1/cgi-bin/webstone?size=1024".into(),
            local_port: 40000 + client as u16,
            new_connection: seq == 0,
            start_unix_ns: BASE + (end_ms - lat_ms) * MS,
            end_unix_ns: BASE + end_ms * MS,
            latency_us: lat_ms * 1000,
            status: 200,
            bytes: 1024,
            digest_ok: true,
            served_by: "server-a".into(),
            error_kind: None,
            lost: false,
        }
    }

    fn err(mut r: RequestRecord, k: ErrorKind) -> RequestRecord {
        r.error_kind = Some(k);
        r.digest_ok = false;
        r.status = 0;
        r.bytes = 0;
        r
    }

    fn conn(mut r: RequestRecord, new: bool) -> RequestRecord {
        r.new_connection = new;
        r
    }

    fn opts(fault_ms: Option<u64>) -> SummaryOptions {
        SummaryOptions {
            run_start_unix_ns: BASE,
            warmup_end_unix_ns: BASE + 1000 * MS,
            run_end_unix_ns: BASE + 5000 * MS,
            fault_at_unix_ns: fault_ms.map(|f| BASE + f * MS),
        }
    }

    #[test]
    fn throughput_stall_and_percentiles_without_fault() {
        let rows = vec![
            rec(0, 0, 500, 10), // warm-up: counted in ok, not in rates
            rec(0, 1, 1500, 10),
            rec(0, 2, 2500, 10),
            rec(0, 3, 3500, 10),
            rec(0, 4, 4500, 10),
            rec(1, 0, 1200, 20),
            rec(1, 1, 4800, 30),
        ];
        let s = compute(&rows, &opts(None));
        assert_eq!(s.schema_version, SUMMARY_SCHEMA_VERSION);
        assert_eq!((s.requests, s.ok, s.errors, s.requests_lost), (7, 7, 0, 0));
        assert_eq!(s.reconnects, 0);
        assert_eq!(s.throughput_rps, 1.5); // 6 completions in 4 s
        assert_eq!(s.max_stall_ms, 3600.0); // client 1: 1200 -> 4800
        assert_eq!(s.p50_ms, 10.0); // [10,10,10,10,20,30], rank 3
        assert_eq!(s.p99_ms, 30.0); // rank 6
        assert_eq!(s.fault_at_unix_ns, None);
        assert_eq!(s.throughput_before_rps, None);
        assert_eq!(s.throughput_after_rps, None);
        let j = serde_json::to_value(&s).unwrap();
        assert!(j.get("throughput_before_rps").is_none());
    }

    #[test]
    fn stall_across_a_fault_errors_lost_and_reconnect() {
        let rows = vec![
            rec(0, 0, 1500, 5),
            rec(0, 1, 2500, 5),
            err(rec(0, 2, 3100, 590), ErrorKind::Eof), // cut by the fault
            err(rec(0, 3, 3110, 0), ErrorKind::Refused),
            conn(rec(0, 4, 3400, 5), true), // the reconnect
            rec(0, 5, 4200, 5),
            rec(0, 6, 4600, 5),
            rec(1, 0, 1100, 5),
            rec(1, 1, 2000, 5),
            rec(1, 2, 2900, 5),
            rec(1, 3, 4500, 5), // stalled 2900 -> 4500 across the fault
            {
                let mut r = rec(1, 4, 5500, 600); // unanswered at the end
                r.lost = true;
                r.digest_ok = false;
                r.status = 0;
                r
            },
        ];
        let s = compute(&rows, &opts(Some(3000)));
        assert_eq!(s.requests, 12);
        assert_eq!(s.ok, 9);
        assert_eq!(s.errors, 2);
        assert_eq!(s.requests_lost, 1);
        assert_eq!(s.ok + s.errors + s.requests_lost, s.requests);
        assert_eq!(s.errors_by_kind.get("eof"), Some(&1));
        assert_eq!(s.errors_by_kind.get("refused"), Some(&1));
        assert_eq!(s.errors_by_kind.len(), 2);
        assert_eq!(s.digest_mismatches, 0);
        assert_eq!(s.reconnects, 1);
        assert_eq!(s.max_stall_ms, 1600.0);
        assert_eq!(s.throughput_rps, 2.25); // 9 in 4 s
        assert_eq!(s.fault_at_unix_ns, Some(BASE + 3000 * MS));
        assert_eq!(s.throughput_before_rps, Some(2.5)); // 5 in [1 s, 3 s)
        assert_eq!(s.throughput_after_rps, Some(3.0)); // 3 in [4 s, 5 s]
        assert_eq!(s.p50_ms, 5.0);
        assert_eq!(s.p99_ms, 5.0);
    }

    #[test]
    fn reconnects_count_connections_opened_after_errors() {
        let rows = vec![
            conn(rec(2, 0, 1100, 1), true),            // first connection
            err(rec(2, 1, 1200, 1), ErrorKind::Reset), // error
            err(conn(rec(2, 2, 1300, 1), true), ErrorKind::Reset), // reconnect 1, error
            err(rec(2, 3, 1400, 1), ErrorKind::Refused), // no connection
            err(rec(2, 4, 1500, 1), ErrorKind::Timeout), // no connection
            conn(rec(2, 5, 1600, 1), true),            // reconnect 2
            conn(rec(2, 6, 1700, 1), true),            // not after an error
            err(rec(2, 7, 1800, 1), ErrorKind::DigestMismatch), // error, no reconnect after
        ];
        let s = compute(&rows, &opts(None));
        assert_eq!(s.reconnects, 2);
        assert_eq!(s.errors, 5);
        assert_eq!(s.digest_mismatches, 1);
        assert_eq!(s.errors_by_kind.get("reset"), Some(&2));
        // Client 2's last success is at 1.7 s; the window ends at 5 s.
        assert_eq!(s.max_stall_ms, 3300.0);
    }

    #[test]
    fn empty_run_and_percentile_edges() {
        let s = compute(&[], &opts(Some(500)));
        assert_eq!(s.requests, 0);
        assert_eq!(s.throughput_rps, 0.0);
        assert_eq!(s.max_stall_ms, 0.0);
        assert_eq!(s.throughput_before_rps, None); // fault before warm-up end
        assert_eq!(s.throughput_after_rps, Some(0.0));
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 100.0), 4.0);
        assert_eq!(percentile(&[7.0], 0.0), 7.0);
    }

    #[test]
    fn bins_count_successes_per_interval() {
        let rows = vec![rec(0, 0, 1000, 1), rec(0, 1, 1999, 1), rec(0, 2, 2000, 1)];
        assert_eq!(
            completions_per_bin(&rows, BASE + 1000 * MS, BASE + 3000 * MS, 1000 * MS),
            vec![2, 1]
        );
        assert!(completions_per_bin(&rows, 5, 5, 1).is_empty());
    }

    #[test]
    fn csv_round_trip_keeps_columns_and_empty_error_kind() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("requests.csv");
        let mut lost = rec(1, 1, 2000, 3);
        lost.lost = true;
        let rows = vec![
            rec(0, 0, 1000, 1),
            err(rec(0, 1, 1500, 2), ErrorKind::BadLength),
            lost,
        ];
        write_requests_csv(&p, &rows).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "client,seq,url,local_port,new_connection,start_unix_ns,end_unix_ns,latency_us,\
             status,bytes,digest_ok,served_by,error_kind,lost"
        );
        assert!(lines.next().unwrap().ends_with(",server-a,,false"));
        assert!(lines.next().unwrap().ends_with(",bad_length,false"));
        assert_eq!(read_requests_csv(&p).unwrap(), rows);
        let sp = dir.path().join("summary.json");
        let s = compute(&rows, &opts(None));
        write_summary_json(&sp, &s).unwrap();
        assert_eq!(read_summary_json(&sp).unwrap(), s);
        assert!(read_requests_csv(dir.path().join("missing.csv")).is_err());
        std::fs::write(&p, "client,seq\nx,y\n").unwrap();
        assert!(read_requests_csv(&p).is_err());
    }
}
