//! `double-fault`: what the clients saw across both faults, per repetition,
//! from its `requests.csv`, `events.csv` and `summary.json`; and the
//! experiment's figure (throughput per 100 ms and every request's latency
//! over the run, the two faults, the join and the window of vulnerability
//! marked).
//!
//! The run splits at its marks into phases: before the first fault; the
//! window of vulnerability (first fault to fault tolerance restored: the
//! first `integration` event after it); duplex again (to the second fault);
//! after the second fault. A mark that is missing merges its two phases.

use super::data::{self, EventRow, Experiment, Rep};
use super::figures::FONT;
use super::stats::{self, fmt_num};
use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use workload::records::RequestRecord;

/// The experiment's name.
pub const EXPERIMENT: &str = "double-fault";
/// Width of a throughput bin (100 ms: the join's stall must show).
pub const BIN_NS: u64 = 100_000_000;

/// File stem of a variant's figure (at the top of the figures directory).
pub fn stem(variant: &str) -> String {
    format!("{EXPERIMENT}-{variant}")
}

/// The instants of a repetition (unix ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    /// The first fault.
    pub first_fault: u64,
    /// The simplex node accepted the join (`join-accepted`).
    pub join: Option<u64>,
    /// Fault tolerance restored (`integration`).
    pub restored: Option<u64>,
    /// The second fault.
    pub second_fault: Option<u64>,
}

impl Marks {
    /// The window of vulnerability (ms), if fault tolerance came back.
    pub fn window_ms(&self) -> Option<f64> {
        self.restored
            .map(|r| r.saturating_sub(self.first_fault) as f64 / 1e6)
    }
}

/// The marks from the events (the first fault from `fault_at` when the
/// summary has it); `None` without a fault.
pub fn marks(events: &[EventRow], fault_at: Option<u64>) -> Option<Marks> {
    let is_fault = |e: &&EventRow| data::FAULT_EVENTS.contains(&e.event.as_str());
    let first_fault =
        fault_at.or_else(|| events.iter().filter(is_fault).map(|e| e.t_unix_ns).min())?;
    let after = |name: &str| {
        events
            .iter()
            .filter(|e| e.event == name && e.t_unix_ns >= first_fault)
            .map(|e| e.t_unix_ns)
            .min()
    };
    let (join, restored) = (after("join-accepted"), after("integration"));
    // The second fault comes after the join (or the restoration) it tests.
    let since = join.or(restored).unwrap_or(first_fault);
    let second_fault = events
        .iter()
        .filter(is_fault)
        .map(|e| e.t_unix_ns)
        .filter(|&t| t > first_fault && t >= since)
        .min();
    Some(Marks {
        first_fault,
        join,
        restored,
        second_fault,
    })
}

/// What the clients saw in one phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// Its name.
    pub name: &'static str,
    /// Start and end (unix ns).
    pub span: (u64, u64),
    /// Successful completions per second.
    pub rps: f64,
    /// Median latency of the successful requests started in it (ms).
    pub p50_ms: f64,
    /// Their 99th percentile (ms).
    pub p99_ms: f64,
    /// Failed requests that ended in it.
    pub errors: u64,
    /// Longest per-client interval without a successful completion that
    /// began in it (ms).
    pub stall_ms: f64,
}

/// Phase names, in order.
pub const PHASES: [&str; 4] = [
    "before the first fault",
    "window of vulnerability",
    "duplex again",
    "after the second fault",
];

/// The phases of the measured window `w0`..`w1` split at `m`.
pub fn phases(records: &[RequestRecord], w0: u64, w1: u64, m: &Marks) -> Vec<Phase> {
    let cuts = [Some(m.first_fault), m.restored, m.second_fault];
    let mut bounds: Vec<(&'static str, u64)> = vec![(PHASES[0], w0)];
    for (i, c) in cuts.iter().enumerate() {
        if let Some(t) = c.filter(|&t| t > w0 && t < w1) {
            bounds.push((PHASES[i + 1], t));
        }
    }
    let mut out: Vec<Phase> = bounds
        .iter()
        .enumerate()
        .map(|(i, &(name, from))| {
            let to = bounds.get(i + 1).map(|b| b.1).unwrap_or(w1);
            let ok = records
                .iter()
                .filter(|r| r.is_ok() && r.end_unix_ns >= from && r.end_unix_ns < to)
                .count();
            let secs = (to - from) as f64 / 1e9;
            let lat: Vec<f64> = records
                .iter()
                .filter(|r| r.is_ok() && r.start_unix_ns >= from && r.start_unix_ns < to)
                .map(|r| r.latency_us as f64 / 1000.0)
                .collect();
            Phase {
                name,
                span: (from, to),
                rps: if secs > 0.0 { ok as f64 / secs } else { 0.0 },
                p50_ms: stats::percentile(&lat, 50.0).unwrap_or(0.0),
                p99_ms: stats::percentile(&lat, 99.0).unwrap_or(0.0),
                errors: records
                    .iter()
                    .filter(|r| !r.is_ok() && r.end_unix_ns >= from && r.end_unix_ns < to)
                    .count() as u64,
                stall_ms: 0.0,
            }
        })
        .collect();
    // Per client: gaps between consecutive successful completions inside the
    // window (its ends bound the first and last gap), in the phase where
    // they end (a fault's stall begins before it and ends after it).
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
            if let Some(p) = out.iter_mut().rfind(|p| p.span.0 <= e) {
                p.stall_ms = p.stall_ms.max((e - prev) as f64 / 1e6);
            }
            prev = e;
        }
    }
    out
}

/// One repetition analysed: its marks and phases.
#[derive(Debug, Clone)]
pub struct Analysed {
    /// The instants.
    pub marks: Marks,
    /// The phases, in order.
    pub phases: Vec<Phase>,
}

/// Analyses one repetition (window: warm-up end to run end).
pub fn analyze(rep: &Rep) -> Result<Analysed> {
    let s = rep
        .summary
        .as_ref()
        .with_context(|| format!("{}: no summary.json", rep.dir.display()))?;
    let events = data::load_events(rep)?;
    let marks = marks(&events, s.fault_at_unix_ns)
        .with_context(|| format!("{}: no fault recorded", rep.dir.display()))?;
    let records = data::load_requests(rep)?;
    let phases = phases(&records, s.warmup_end_unix_ns, s.run_end_unix_ns, &marks);
    Ok(Analysed { marks, phases })
}

fn de<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing failed: {e:?}")
}

/// The figure's data, times in seconds since the run's start.
#[derive(Debug, Clone)]
pub struct DoubleFaultFig {
    /// Caption.
    pub title: String,
    /// Successful requests per second in [`BIN_NS`] bins: (bin middle, rate).
    pub rate: Vec<(f64, f64)>,
    /// Successful requests: (start, latency ms).
    pub ok: Vec<(f64, f64)>,
    /// Failed requests: (start, time to the error ms).
    pub errors: Vec<(f64, f64)>,
    /// Labelled instants: (label, s, colour).
    pub lines: Vec<(String, f64, RGBColor)>,
    /// The window of vulnerability (s, s).
    pub window: Option<(f64, f64)>,
    /// Length of the run (s).
    pub span_s: f64,
}

const WINDOW_COLOR: RGBColor = RGBColor(230, 120, 40);

fn marks_on<DB: DrawingBackend>(
    c: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, impl Ranged<ValueType = f64>>,
    >,
    f: &DoubleFaultFig,
    (lo, hi): (f64, f64),
    legend: bool,
) -> Result<()> {
    if let Some((a, b)) = f.window {
        let s = c
            .draw_series(std::iter::once(Rectangle::new(
                [(a, lo), (b, hi)],
                WINDOW_COLOR.mix(0.15).filled(),
            )))
            .map_err(de)?;
        if legend {
            s.label(format!(
                "window of vulnerability ({} ms)",
                fmt_num(((b - a) * 1000.0).round())
            ))
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 6), (x + 20, y + 6)],
                    WINDOW_COLOR.mix(0.3).filled(),
                )
            });
        }
    }
    for (label, x, col) in &f.lines {
        let col = *col;
        let s = c
            .draw_series(std::iter::once(PathElement::new(
                vec![(*x, lo), (*x, hi)],
                col.stroke_width(2),
            )))
            .map_err(de)?;
        if legend {
            s.label(format!("{label} (t = {} s)", fmt_num(*x)))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2))
                });
        }
    }
    Ok(())
}

/// Draws the figure: throughput on top, latency below, the marks on both.
pub fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, f: &DoubleFaultFig) -> Result<()> {
    area.fill(&WHITE).map_err(de)?;
    let titled = area.titled(&f.title, (FONT, 22)).map_err(de)?;
    let (up, down) = titled.split_vertically((50).percent_height());
    let x1 = f.span_s.max(0.001);
    let top = f.rate.iter().map(|p| p.1).fold(1.0f64, f64::max) * 1.5;
    let mut c = ChartBuilder::on(&up)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x1, 0f64..top)
        .map_err(de)?;
    c.configure_mesh()
        .x_desc("time since run start (s)")
        .y_desc("successful requests per second (100 ms bins)")
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| fmt_num(*v))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(de)?;
    marks_on(&mut c, f, (0.0, top), true)?;
    c.draw_series(LineSeries::new(
        f.rate.iter().copied(),
        RGBColor(31, 92, 170).stroke_width(2),
    ))
    .map_err(de)?
    .label("throughput")
    .legend(|(x, y)| {
        PathElement::new(
            vec![(x, y), (x + 20, y)],
            RGBColor(31, 92, 170).stroke_width(2),
        )
    });
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FONT, 13))
        .draw()
        .map_err(de)?;
    let lat_top =
        f.ok.iter()
            .chain(&f.errors)
            .map(|p| p.1)
            .fold(10.0f64, f64::max)
            * 2.0;
    let mut c = ChartBuilder::on(&down)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x1, (0.01f64..lat_top).log_scale())
        .map_err(de)?;
    c.configure_mesh()
        .x_desc("request start, time since run start (s)")
        .y_desc("request latency (ms, log scale)")
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| fmt_num(*v))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(de)?;
    marks_on(&mut c, f, (0.01, lat_top), false)?;
    let step = (f.ok.len() / super::MAX_SCATTER_POINTS).max(1);
    c.draw_series(
        f.ok.iter()
            .step_by(step)
            .map(|&(x, y)| Circle::new((x, y.max(0.01)), 1, RGBColor(31, 92, 170).filled())),
    )
    .map_err(de)?;
    c.draw_series(
        f.errors
            .iter()
            .map(|&(x, y)| Cross::new((x, y.max(0.01)), 5, RGBColor(200, 30, 30).stroke_width(2))),
    )
    .map_err(de)?
    .label(format!("failed request ({})", f.errors.len()))
    .legend(|(x, y)| Cross::new((x + 10, y), 5, RGBColor(200, 30, 30).stroke_width(2)));
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FONT, 13))
        .draw()
        .map_err(de)?;
    area.present().map_err(de)?;
    Ok(())
}

/// The figure's data for one repetition.
pub fn figure(exp: &str, variant: &str, rep: &Rep) -> Result<DoubleFaultFig> {
    let s = rep.summary.as_ref().context("no summary.json")?;
    let events = data::load_events(rep)?;
    let m = marks(&events, s.fault_at_unix_ns).context("no fault recorded")?;
    let records = data::load_requests(rep)?;
    let (first, last) = stats::request_span(&records).context("no requests")?;
    let t0 = Some(s.run_start_unix_ns)
        .filter(|&t| t > 0 && t <= first)
        .unwrap_or(first);
    let t_end = Some(s.run_end_unix_ns).filter(|&t| t > t0).unwrap_or(last);
    let secs = |t: u64| (t as i128 - t0 as i128) as f64 / 1e9;
    let per_s = 1e9 / BIN_NS as f64;
    let rate = stats::success_bins(&records, t0, t_end, BIN_NS)
        .iter()
        .enumerate()
        .map(|(i, &b)| ((i as f64 + 0.5) * BIN_NS as f64 / 1e9, b as f64 * per_s))
        .collect();
    let pts = |ok: bool| -> Vec<(f64, f64)> {
        records
            .iter()
            .filter(|r| r.is_ok() == ok)
            .map(|r| (secs(r.start_unix_ns), r.latency_us as f64 / 1000.0))
            .collect()
    };
    let mut lines = vec![(
        "first fault".to_string(),
        secs(m.first_fault),
        RGBColor(200, 30, 30),
    )];
    if let Some(t) = m.join {
        lines.push(("join accepted".into(), secs(t), RGBColor(148, 103, 189)));
    }
    if let Some(t) = m.restored {
        lines.push((
            "fault tolerance restored".into(),
            secs(t),
            RGBColor(44, 160, 44),
        ));
    }
    if let Some(t) = m.second_fault {
        lines.push(("second fault".into(), secs(t), RGBColor(120, 0, 0)));
    }
    Ok(DoubleFaultFig {
        title: format!(
            "{exp} / {variant}, rep-{}: the clients across both faults and the join",
            rep.n
        ),
        rate,
        ok: pts(true),
        errors: pts(false),
        lines,
        window: m.restored.map(|r| (secs(m.first_fault), secs(r))),
        span_s: secs(t_end.max(last)),
    })
}

/// Draws every variant's figure (its typical repetition) into `out`.
pub fn plot(out: &Path, exp: &Experiment) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for v in &exp.variants {
        let Some(rep) = v.typical_rep() else {
            continue;
        };
        let f = figure(&exp.name, &v.name, rep)
            .with_context(|| format!("{}/{} rep-{}", exp.name, v.name, rep.n))?;
        files.extend(render_both!(
            out,
            stem(&v.name),
            (1500u32, 900u32),
            draw,
            &f
        ));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::test_records::rec;
    use workload::records::ErrorKind;

    const MS: u64 = 1_000_000;

    fn ev(t_ms: u64, host: &str, event: &str) -> EventRow {
        EventRow {
            t_unix_ns: t_ms * MS,
            host: host.into(),
            source: "test".into(),
            event: event.into(),
            detail: String::new(),
        }
    }

    #[test]
    fn the_marks_are_the_faults_the_join_and_the_restoration() {
        let events = [
            ev(500, "server-a", "started"),
            ev(1500, "server-a", "kill"),
            ev(3000, "server-b", "join-accepted"),
            ev(3010, "server-b", "integration"),
            ev(5000, "server-b", "kill"),
        ];
        let m = marks(&events, None).unwrap();
        assert_eq!(m.first_fault, 1500 * MS);
        assert_eq!(m.join, Some(3000 * MS));
        assert_eq!(m.restored, Some(3010 * MS));
        assert_eq!(m.second_fault, Some(5000 * MS));
        assert_eq!(m.window_ms(), Some(1510.0));
        // No join: no restoration, no second fault before it is tested.
        let m = marks(&events[..2], None).unwrap();
        assert_eq!((m.join, m.restored, m.second_fault), (None, None, None));
        assert!(marks(&events[..1], None).is_none());
    }

    #[test]
    fn phases_split_throughput_errors_and_stalls_at_the_marks() {
        // One client, 100 ms requests from 0 to 8 s; a 400 ms stall and a
        // reset at the first fault (2 s), a 200 ms stall at the second (6 s).
        let mut rs = Vec::new();
        let mut t = 0;
        while t < 8000 {
            let (end, err) = match t {
                2000 => (2400, None),
                1900 => (2000, Some(ErrorKind::Reset)),
                6000 => (6200, None),
                _ => (t + 100, None),
            };
            rs.push(rec(1, t, end, err));
            t = end;
        }
        let m = Marks {
            first_fault: 2000 * MS,
            join: Some(3900 * MS),
            restored: Some(4000 * MS),
            second_fault: Some(6000 * MS),
        };
        let p = phases(&rs, 0, 8000 * MS, &m);
        let names: Vec<&str> = p.iter().map(|p| p.name).collect();
        assert_eq!(names, PHASES);
        assert_eq!((p[0].errors, p[1].errors), (0, 1));
        assert!((p[0].stall_ms - 100.0).abs() < 1e-6, "{:?}", p[0]);
        assert!((p[1].stall_ms - 500.0).abs() < 1e-6, "{:?}", p[1]);
        assert!((p[3].stall_ms - 200.0).abs() < 1e-6, "{:?}", p[3]);
        assert!((p[2].rps - 10.0).abs() < 1e-6, "{:?}", p[2]);
        assert!((p[2].p99_ms - 100.0).abs() < 1e-6);
        assert!(
            (p[1].p50_ms - 100.0).abs() < 1e-6 && p[1].p99_ms > 300.0,
            "{:?}",
            p[1]
        );
        // Without a restoration the window runs to the end.
        let m = Marks {
            restored: None,
            second_fault: None,
            ..m
        };
        let p = phases(&rs, 0, 8000 * MS, &m);
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].span, (2000 * MS, 8000 * MS));
    }
}
