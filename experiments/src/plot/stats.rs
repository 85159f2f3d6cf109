//! Small statistics used by the figures and the report: 1 s throughput bins,
//! medians and spreads over repetitions.

use workload::records::RequestRecord;

/// One nanosecond-based time axis bin width: one second.
pub const NS_PER_S: u64 = 1_000_000_000;

/// Successful requests completed in each whole bin of `width_ns` starting at
/// `t0_ns`, counted by completion time (`end_unix_ns`).
///
/// Only whole bins are returned: the bins end at the last whole bin before
/// `t_end_ns`, so a partial last second never shows as a false dip. Requests
/// that completed before `t0_ns` or in the partial tail are not counted.
/// Returns an empty vector if `width_ns` is zero or `t_end_ns <= t0_ns`.
pub fn success_bins(
    records: &[RequestRecord],
    t0_ns: u64,
    t_end_ns: u64,
    width_ns: u64,
) -> Vec<u64> {
    if width_ns == 0 || t_end_ns <= t0_ns {
        return Vec::new();
    }
    let n = ((t_end_ns - t0_ns) / width_ns) as usize;
    let mut bins = vec![0u64; n];
    for r in records.iter().filter(|r| r.is_ok()) {
        if r.end_unix_ns < t0_ns {
            continue;
        }
        let i = ((r.end_unix_ns - t0_ns) / width_ns) as usize;
        if i < n {
            bins[i] += 1;
        }
    }
    bins
}

/// The span of a run as seen in its requests: earliest start, latest end
/// (ns). `None` for an empty slice.
pub fn request_span(records: &[RequestRecord]) -> Option<(u64, u64)> {
    let start = records.iter().map(|r| r.start_unix_ns).min()?;
    let end = records
        .iter()
        .map(|r| r.end_unix_ns.max(r.start_unix_ns))
        .max()?;
    Some((start, end))
}

/// Percentile `p` (0..=100) of `values` with linear interpolation between
/// closest ranks. NaNs are ignored; `None` if nothing is left or `p` is out
/// of range.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if !(0.0..=100.0).contains(&p) {
        return None;
    }
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = p / 100.0 * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    Some(v[lo] + (v[hi] - v[lo]) * frac)
}

/// Median of `values` (mean of the two middle values for an even count);
/// `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    percentile(values, 50.0)
}

/// How a [`Spread`]'s bounds were taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpreadKind {
    /// Minimum and maximum over repetitions.
    MinMax,
    /// 5th and 95th percentiles (used from [`P5_P95_MIN_REPS`] repetitions on).
    P5P95,
}

/// From this many repetitions on, the spread is p5-p95 instead of min-max.
pub const P5_P95_MIN_REPS: usize = 20;

/// Median and spread of one quantity over repetitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The median.
    pub median: f64,
    /// Lower bound of the spread.
    pub lo: f64,
    /// Upper bound of the spread.
    pub hi: f64,
    /// Number of values (repetitions) it was computed from.
    pub n: usize,
    /// Which bounds `lo`/`hi` are.
    pub kind: SpreadKind,
}

impl Spread {
    /// Median and spread of `values` (NaNs ignored); `None` if empty.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        let median = median(&v)?;
        let (kind, lo, hi) = if v.len() >= P5_P95_MIN_REPS {
            (
                SpreadKind::P5P95,
                percentile(&v, 5.0)?,
                percentile(&v, 95.0)?,
            )
        } else {
            (
                SpreadKind::MinMax,
                percentile(&v, 0.0)?,
                percentile(&v, 100.0)?,
            )
        };
        Some(Spread {
            median,
            lo,
            hi,
            n: v.len(),
            kind,
        })
    }
}

/// Formats a number for tables: integers without decimals, values of 100
/// and more with one decimal, smaller ones with up to three, trailing zeros
/// trimmed. Non-finite values print as `n/a`.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".to_string();
    }
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let s = if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    };
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record built through serde, as read from requests.csv.
    fn rec(end_s: f64, ok: bool) -> RequestRecord {
        let end = (end_s * 1e9) as u64;
        serde_json::from_value(serde_json::json!({
            "client": 0, "seq": 0, "url": "http://192.0.2.100/cgi-bin/webstone?size=1024",
            "local_port": 40000, "new_connection": false,
            "start_unix_ns": end.saturating_sub(1_000_000), "end_unix_ns": end, "latency_us": 1000,
            "status": if ok { 200 } else { 0 }, "bytes": 1024, "digest_ok": ok, "served_by": "server-a",
            "error_kind": if ok { None } else { Some("reset") },
        }))
        .expect("a valid record")
    }

    #[test]
    fn bins_count_successes_by_end_time_whole_bins_only() {
        let t0 = 100 * NS_PER_S;
        let rs = vec![
            rec(99.9, true),    // before t0: not counted
            rec(100.0, true),   // bin 0 (inclusive start)
            rec(100.5, true),   // bin 0
            rec(100.99, false), // error: not counted
            rec(101.0, true),   // bin 1
            rec(102.2, true),   // bin 2
            rec(103.1, true),   // partial tail: dropped
        ];
        let bins = success_bins(&rs, t0, t0 + 3 * NS_PER_S + NS_PER_S / 2, NS_PER_S);
        assert_eq!(bins, vec![2, 1, 1]);
    }

    #[test]
    fn bins_degenerate_inputs_are_empty() {
        assert!(success_bins(&[rec(1.0, true)], 5, 5, NS_PER_S).is_empty());
        assert!(success_bins(&[rec(1.0, true)], 5, 1, NS_PER_S).is_empty());
        assert!(success_bins(&[rec(1.0, true)], 0, 10 * NS_PER_S, 0).is_empty());
    }

    #[test]
    fn span_covers_starts_and_ends() {
        assert_eq!(request_span(&[]), None);
        let rs = vec![rec(2.0, true), rec(1.0, false)];
        assert_eq!(request_span(&rs), Some((999_000_000, 2_000_000_000)));
    }

    #[test]
    fn median_odd_even_and_nan() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 7.0]), Some(7.0));
    }

    #[test]
    fn percentile_interpolates_and_rejects_bad_p() {
        let v: Vec<f64> = (0..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 5.0), Some(0.5));
        assert_eq!(percentile(&v, 95.0), Some(9.5));
        assert_eq!(percentile(&v, 101.0), None);
        assert_eq!(percentile(&v, -1.0), None);
    }

    #[test]
    fn spread_min_max_below_threshold_p5_p95_above() {
        let s = Spread::of(&[10.0, 30.0, 20.0]).unwrap();
        assert_eq!(
            (s.median, s.lo, s.hi, s.n, s.kind),
            (20.0, 10.0, 30.0, 3, SpreadKind::MinMax)
        );
        let v: Vec<f64> = (0..=20).map(f64::from).collect(); // 21 reps
        let s = Spread::of(&v).unwrap();
        assert_eq!(s.kind, SpreadKind::P5P95);
        assert_eq!((s.median, s.lo, s.hi), (10.0, 1.0, 19.0));
        assert!(Spread::of(&[]).is_none());
    }

    #[test]
    fn fmt_num_rules() {
        assert_eq!(fmt_num(1050.0), "1050");
        assert_eq!(fmt_num(312.26), "312.3"); // one decimal from 100 on
        assert_eq!(fmt_num(312.5), "312.5");
        assert_eq!(fmt_num(1.5), "1.5");
        assert_eq!(fmt_num(0.1234), "0.123");
        assert_eq!(fmt_num(-0.0001), "0");
        assert_eq!(fmt_num(f64::NAN), "n/a");
    }
}
