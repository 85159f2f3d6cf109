//! `lb-compare`: per repetition, what the clients saw before the link cut,
//! across it (until the link came back) and at failback, computed from the
//! repetition's `requests.csv`, `events.csv` and `summary.json`; and the
//! experiment's two figures (stall and errors per service side by side;
//! throughput timelines overlaid, aligned at the cut).

use super::data::{self, Experiment, Rep};
use super::figures::FONT;
use super::stats::{self, fmt_num};
use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use workload::records::RequestRecord;

/// The experiment's name.
pub const EXPERIMENT: &str = "lb-compare";
/// The variant whose fault-free throughput is the ratios' reference.
pub const REFERENCE: &str = "two-unreplicated";
/// File stem of the stall-and-errors figure.
pub const STALL_STEM: &str = "lb-compare-stall-errors";
/// File stem of the overlaid throughput timelines.
pub const TIMELINE_STEM: &str = "lb-compare-timelines";
/// Width of a timeline bin (100 ms: a 300 ms stall must show).
pub const TIMELINE_BIN_NS: u64 = 100_000_000;

/// One repetition of lb-compare, seen by the clients.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LbRep {
    /// Throughput from warm-up end to the cut (req/s).
    pub before_rps: f64,
    /// Median latency of requests started between warm-up end and the cut (ms).
    pub p50_before_ms: f64,
    /// Their 99th percentile (ms).
    pub p99_before_ms: f64,
    /// Errors that ended between the cut and the link restore, by kind.
    pub cut_errors: BTreeMap<String, u64>,
    /// Longest per-client interval without a successful completion that
    /// began between the cut and the restore (ms).
    pub cut_stall_ms: f64,
    /// Errors that ended after the link restore, by kind.
    pub failback_errors: BTreeMap<String, u64>,
    /// Longest per-client stall that began after the restore (ms).
    pub failback_stall_ms: f64,
    /// Reconnects over the run (summary.json).
    pub reconnects: u64,
    /// Digest mismatches over the run.
    pub digest_mismatches: u64,
    /// Requests sent and never answered.
    pub requests_lost: u64,
    /// Host the cut hit (the role resolved at fault time).
    pub target: String,
    /// Cut instant (unix ns).
    pub cut_ns: u64,
    /// Restore instant (unix ns), if the link came back in the run.
    pub restore_ns: Option<u64>,
}

/// Total of an error map.
pub fn total(m: &BTreeMap<String, u64>) -> u64 {
    m.values().sum()
}

/// Analyses one repetition from its records, events and summary.
pub fn analyze(rep: &Rep) -> Result<LbRep> {
    let s = rep
        .summary
        .as_ref()
        .with_context(|| format!("{}: no summary.json", rep.dir.display()))?;
    let records = data::load_requests(rep)?;
    let events = data::load_events(rep)?;
    let cut = events.iter().find(|e| e.event == "link-cut");
    let cut_ns = s
        .fault_at_unix_ns
        .or(cut.map(|e| e.t_unix_ns))
        .with_context(|| format!("{}: no link cut recorded", rep.dir.display()))?;
    let restore_ns = events
        .iter()
        .find(|e| e.event == "link-restore" && e.t_unix_ns >= cut_ns)
        .map(|e| e.t_unix_ns);
    Ok(analyze_records(
        &records,
        s.warmup_end_unix_ns,
        s.run_end_unix_ns,
        cut_ns,
        restore_ns,
        LbRep {
            reconnects: s.reconnects,
            digest_mismatches: s.digest_mismatches,
            requests_lost: s.requests_lost,
            target: cut.map(|e| e.host.clone()).unwrap_or_default(),
            ..LbRep::default()
        },
    ))
}

/// The phase computation of [`analyze`] on plain records: `w0`..`w1` is the
/// measured window, `cut` the fault, `restore` the failback.
pub fn analyze_records(
    records: &[RequestRecord],
    w0: u64,
    w1: u64,
    cut: u64,
    restore: Option<u64>,
    mut out: LbRep,
) -> LbRep {
    out.cut_ns = cut;
    out.restore_ns = restore;
    let back = restore.unwrap_or(u64::MAX);
    let secs = cut.saturating_sub(w0) as f64 / 1e9;
    let ok_before = records
        .iter()
        .filter(|r| r.is_ok() && r.end_unix_ns >= w0 && r.end_unix_ns < cut)
        .count();
    out.before_rps = if secs > 0.0 {
        ok_before as f64 / secs
    } else {
        0.0
    };
    let lat: Vec<f64> = records
        .iter()
        .filter(|r| r.is_ok() && r.start_unix_ns >= w0 && r.end_unix_ns < cut)
        .map(|r| r.latency_us as f64 / 1000.0)
        .collect();
    out.p50_before_ms = stats::percentile(&lat, 50.0).unwrap_or(0.0);
    out.p99_before_ms = stats::percentile(&lat, 99.0).unwrap_or(0.0);
    for r in records {
        if let Some(k) = r.error_kind {
            if r.end_unix_ns >= cut {
                let m = if r.end_unix_ns < back {
                    &mut out.cut_errors
                } else {
                    &mut out.failback_errors
                };
                *m.entry(k.as_str().to_string()).or_default() += 1;
            }
        }
    }
    // Per client: gaps between consecutive successful completions inside the
    // window (its ends bound the first and last gap), attributed to the
    // phase in which they began.
    let mut ends: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.is_ok()) {
        if r.end_unix_ns >= w0 && r.end_unix_ns <= w1 {
            ends.entry(r.client).or_default().push(r.end_unix_ns);
        }
    }
    for es in ends.values_mut() {
        es.sort_unstable();
        let mut prev = w0;
        for e in es.iter().copied().chain(std::iter::once(w1)) {
            let gap_ms = (e - prev) as f64 / 1e6;
            if e >= cut && prev < back {
                out.cut_stall_ms = out.cut_stall_ms.max(gap_ms);
            } else if prev >= back {
                out.failback_stall_ms = out.failback_stall_ms.max(gap_ms);
            }
            prev = e;
        }
    }
    out
}

/// Successful completions per [`TIMELINE_BIN_NS`] bin from `from` s before
/// the cut to the window's end, in req/s: (seconds since the cut, rate).
pub fn timeline(rep: &Rep, from_s: f64) -> Result<Vec<(f64, f64)>> {
    let s = rep.summary.as_ref().context("no summary.json")?;
    let cut = s.fault_at_unix_ns.context("no fault instant")?;
    let records = data::load_requests(rep)?;
    let t0 = cut
        .saturating_sub((from_s * 1e9) as u64)
        .max(s.warmup_end_unix_ns);
    let bins = stats::success_bins(&records, t0, s.run_end_unix_ns, TIMELINE_BIN_NS);
    let per_s = 1e9 / TIMELINE_BIN_NS as f64;
    Ok(bins
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let mid = t0 as f64 + (i as f64 + 0.5) * TIMELINE_BIN_NS as f64;
            ((mid - cut as f64) / 1e9, b as f64 * per_s)
        })
        .collect())
}

fn de<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing failed: {e:?}")
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(110, 110, 110),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(23, 190, 207),
];

/// Per variant: (name, median cut stall ms, median errors at the cut,
/// median errors at failback).
type StallRow = (String, f64, f64, f64);

fn draw_stall<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, rows: &[StallRow]) -> Result<()> {
    area.fill(&WHITE).map_err(de)?;
    let area = area
        .titled(
            "lb-compare: across a link cut of the target server (medians over repetitions)",
            (FONT, 22),
        )
        .map_err(de)?;
    let (left, right) = area.split_horizontally(area.dim_in_pixel().0 / 2);
    let n = rows.len().max(1);
    let label = |i: &usize| rows.get(*i).map(|r| r.0.clone()).unwrap_or_default();
    // Left: longest per-client stall, log scale (300 ms and 30 s on one axis).
    let top = rows.iter().map(|r| r.1).fold(10.0f64, f64::max) * 3.0;
    let mut c = ChartBuilder::on(&left)
        .margin(14)
        .x_label_area_size(90)
        .y_label_area_size(80)
        .caption("longest per-client stall (ms, log)", (FONT, 18))
        .build_cartesian_2d((0..n - 1).into_segmented(), (1.0f64..top).log_scale())
        .map_err(de)?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => label(i),
            _ => String::new(),
        })
        .y_label_formatter(&|v| fmt_num(*v))
        .label_style((FONT, 11))
        .draw()
        .map_err(de)?;
    for (i, r) in rows.iter().enumerate() {
        let col = PALETTE[i % PALETTE.len()];
        c.draw_series(std::iter::once(Rectangle::new(
            [
                (SegmentValue::Exact(i), 1.0),
                (SegmentValue::Exact(i + 1), r.1.max(1.0)),
            ],
            col.mix(0.8).filled(),
        )))
        .map_err(de)?;
        c.draw_series(std::iter::once(Text::new(
            fmt_num(r.1),
            (SegmentValue::CenterOf(i), r.1.max(1.0) * 1.15),
            (FONT, 13),
        )))
        .map_err(de)?;
    }
    // Right: errors at the cut and at failback, side by side.
    let etop = rows.iter().map(|r| r.2.max(r.3)).fold(1.0f64, f64::max) * 1.3;
    let mut c = ChartBuilder::on(&right)
        .margin(14)
        .x_label_area_size(90)
        .y_label_area_size(60)
        .caption(
            "errors seen by clients (solid: at the cut; hatched: at failback)",
            (FONT, 18),
        )
        .build_cartesian_2d(0f64..n as f64, 0f64..etop)
        .map_err(de)?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (*x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                label(&(i as usize))
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| fmt_num(*v))
        .label_style((FONT, 11))
        .draw()
        .map_err(de)?;
    for (i, r) in rows.iter().enumerate() {
        let col = PALETTE[i % PALETTE.len()];
        let x = i as f64;
        c.draw_series([
            Rectangle::new([(x + 0.1, 0.0), (x + 0.48, r.2)], col.filled()),
            Rectangle::new([(x + 0.52, 0.0), (x + 0.9, r.3)], col.mix(0.35).filled()),
            Rectangle::new([(x + 0.52, 0.0), (x + 0.9, r.3)], col.stroke_width(2)),
        ])
        .map_err(de)?;
        for (v, dx) in [(r.2, 0.15), (r.3, 0.57)] {
            if v > 0.0 {
                c.draw_series(std::iter::once(Text::new(
                    fmt_num(v),
                    (x + dx, v + etop * 0.02),
                    (FONT, 13),
                )))
                .map_err(de)?;
            }
        }
    }
    area.present().map_err(de)?;
    Ok(())
}

/// Per variant: (name, timeline points).
type Timelines = Vec<(String, Vec<(f64, f64)>)>;

fn draw_timelines<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    f: &(Timelines, Option<f64>),
) -> Result<()> {
    let (lines, restore_s) = f;
    area.fill(&WHITE).map_err(de)?;
    let x0 = lines
        .iter()
        .flat_map(|l| l.1.first().map(|p| p.0))
        .fold(0.0f64, f64::min)
        .floor();
    let x1 = lines
        .iter()
        .flat_map(|l| l.1.last().map(|p| p.0))
        .fold(1.0f64, f64::max)
        .ceil();
    let top = lines
        .iter()
        .flat_map(|l| l.1.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.35;
    let mut c = ChartBuilder::on(area)
        .caption(
            "lb-compare: successful requests per 100 ms (as req/s), aligned at the link cut (typical repetition)",
            (FONT, 20),
        )
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, 0f64..top)
        .map_err(de)?;
    c.configure_mesh()
        .x_desc("seconds since the link cut")
        .y_desc("successful requests per second")
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| fmt_num(*v))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(de)?;
    let vline =
        |x: f64, col: RGBColor| PathElement::new(vec![(x, 0.0), (x, top)], col.stroke_width(2));
    c.draw_series(std::iter::once(vline(0.0, BLACK)))
        .map_err(de)?
        .label("link cut")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    if let Some(r) = restore_s {
        c.draw_series(std::iter::once(vline(*r, RGBColor(230, 171, 2))))
            .map_err(de)?
            .label("link restored (failback)")
            .legend(|(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 20, y)],
                    RGBColor(230, 171, 2).stroke_width(2),
                )
            });
    }
    for (i, (name, pts)) in lines.iter().enumerate() {
        let col = PALETTE[i % PALETTE.len()];
        c.draw_series(LineSeries::new(pts.iter().copied(), col.stroke_width(2)))
            .map_err(de)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(3)));
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FONT, 14))
        .draw()
        .map_err(de)?;
    area.present().map_err(de)?;
    Ok(())
}

/// The experiment's variants in the runner's order (reference first), a
/// `-docker` variant right after its netns one, then any others by name.
pub fn ordered(exp: &Experiment) -> Vec<&data::Variant> {
    let pos = |n: &str| {
        let base = crate::plot::split_topology(n).0;
        crate::catalog::LB_COMPARE
            .iter()
            .position(|(name, _, _)| *name == base)
            .unwrap_or(usize::MAX)
    };
    let mut vs: Vec<&data::Variant> = exp.variants.iter().collect();
    vs.sort_by(|a, b| pos(&a.name).cmp(&pos(&b.name)).then(a.name.cmp(&b.name)));
    vs
}

fn median_of(xs: Vec<f64>) -> f64 {
    stats::median(&xs).unwrap_or(0.0)
}

/// Draws the experiment's two figures into `out` (PNG and SVG each).
pub fn plot(out: &Path, exp: &Experiment) -> Result<Vec<PathBuf>> {
    let mut rows: Vec<StallRow> = Vec::new();
    let mut lines: Timelines = Vec::new();
    let mut restore_s = None;
    for v in ordered(exp) {
        let reps: Vec<LbRep> = v.reps.iter().filter_map(|r| analyze(r).ok()).collect();
        if reps.is_empty() {
            continue;
        }
        rows.push((
            v.name.clone(),
            median_of(reps.iter().map(|r| r.cut_stall_ms).collect()),
            median_of(reps.iter().map(|r| total(&r.cut_errors) as f64).collect()),
            median_of(
                reps.iter()
                    .map(|r| total(&r.failback_errors) as f64)
                    .collect(),
            ),
        ));
        if let Some(rep) = v.typical_rep() {
            if let Ok(pts) = timeline(rep, 1.5) {
                lines.push((v.name.clone(), pts));
            }
            if restore_s.is_none() {
                if let Ok(a) = analyze(rep) {
                    restore_s = a.restore_ns.map(|r| (r as f64 - a.cut_ns as f64) / 1e9);
                }
            }
        }
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for (stem, size) in [
        (STALL_STEM, (1500u32, 700u32)),
        (TIMELINE_STEM, (1500, 700)),
    ] {
        if stem == STALL_STEM {
            files.extend(render_both!(out, stem, size, draw_stall, &rows));
        } else {
            let f = (lines.clone(), restore_s);
            files.extend(render_both!(out, stem, size, draw_timelines, &f));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::test_records::rec;
    use workload::records::ErrorKind;

    #[test]
    fn docker_variants_sit_beside_their_netns_ones() {
        let names = [
            "coral-docker",
            "zz-other",
            "coral",
            "two-unreplicated-docker",
            "two-unreplicated",
            "haproxy-stock",
        ];
        let exp = Experiment {
            name: EXPERIMENT.into(),
            variants: names
                .iter()
                .map(|n| data::Variant {
                    name: n.to_string(),
                    reps: Vec::new(),
                })
                .collect(),
        };
        let got: Vec<&str> = ordered(&exp).iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            got,
            [
                "two-unreplicated",
                "two-unreplicated-docker",
                "haproxy-stock",
                "coral",
                "coral-docker",
                "zz-other"
            ]
        );
    }

    #[test]
    fn phases_split_errors_and_stalls_at_cut_and_restore() {
        // Window 0..10 s, cut at 4 s, restore at 7 s.
        let mut rs = Vec::new();
        for t in (0..4000).step_by(100) {
            rs.push(rec(1, t, t + 100, None));
        }
        // Client 1 stalls from 4.0 s to 4.3 s, then an error ends at 4.2 s.
        rs.push(rec(1, 4000, 4200, Some(ErrorKind::Reset)));
        for t in (4300..7500).step_by(100) {
            rs.push(rec(1, t - 100, t, None));
        }
        // At failback: another reset, then a 600 ms stall (7.4 s to 8.0 s).
        rs.push(rec(1, 7500, 7600, Some(ErrorKind::Reset)));
        for t in (8000..=10000).step_by(100) {
            rs.push(rec(1, t - 100, t, None));
        }
        let a = analyze_records(
            &rs,
            0,
            10_000_000_000,
            4_000_000_000,
            Some(7_000_000_000),
            LbRep::default(),
        );
        assert_eq!(a.cut_errors.get("reset"), Some(&1));
        assert_eq!(a.failback_errors.get("reset"), Some(&1));
        assert!((a.cut_stall_ms - 300.0).abs() < 1e-6, "{}", a.cut_stall_ms);
        assert!(
            (a.failback_stall_ms - 600.0).abs() < 1e-6,
            "{}",
            a.failback_stall_ms
        );
        assert!((a.before_rps - 10.0).abs() < 0.3, "{}", a.before_rps);
        assert!((a.p50_before_ms - 100.0).abs() < 1e-6);
    }
}
