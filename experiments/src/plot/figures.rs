//! The drawings: Fig. 2 style throughput, Fig. 3 style latency with a zoom
//! panel, and a bar chart of throughput per variant. Each function draws on
//! any plotters backend (PNG and SVG share one code path).

use super::stats::{fmt_num, Spread};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Family name under which the embedded DejaVu Sans is registered.
pub const FONT: &str = "sans-serif";

/// X axis title of the throughput figure (requests binned by completion).
pub const X_TIME: &str = "time since run start (s), requests binned by completion";
/// X axis title of the latency figure (requests are placed at their start).
pub const X_START: &str = "request start, time since run start (s)";
/// Y axis title of the throughput figure.
pub const Y_THROUGHPUT: &str = "successful requests per second (req/s)";
/// Y axis title of the latency figure.
pub const Y_LATENCY: &str = "request latency (ms, log scale)";
/// Y axis title of the bar chart.
pub const Y_BARS: &str = "throughput (req/s), median over repetitions";

const FAULT_COLOR: RGBColor = RGBColor(200, 30, 30);
const OK_COLOR: RGBColor = RGBColor(31, 92, 170);
const ONE_COLOR: RGBColor = RGBColor(110, 110, 110);
const TWO_COLOR: RGBColor = RGBColor(20, 130, 60);
const WARMUP_COLOR: RGBColor = RGBColor(150, 120, 40);

fn de<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing failed: {e:?}")
}

/// Data of a Fig. 2 style plot.
#[derive(Debug, Clone)]
pub struct ThroughputFig {
    /// Caption.
    pub title: String,
    /// Successful requests per 1 s bin, bin 0 starting at run start.
    pub bins: Vec<u64>,
    /// Fault instant, seconds since run start.
    pub fault_s: Option<f64>,
    /// End of warm-up, seconds since run start.
    pub warmup_s: Option<f64>,
    /// Peak throughput of one unreplicated server (req/s).
    pub one_peak: Option<f64>,
    /// Peak throughput of two unreplicated servers (req/s).
    pub two_peak: Option<f64>,
}

/// Data of a Fig. 3 style plot.
#[derive(Debug, Clone)]
pub struct LatencyFig {
    /// Caption.
    pub title: String,
    /// Successful requests: (start s since run start, latency ms).
    pub ok: Vec<(f64, f64)>,
    /// Failed requests: (start s, time to the error in ms).
    pub errors: Vec<(f64, f64)>,
    /// Length of the run in seconds (x range of the full panel).
    pub span_s: f64,
    /// Fault instant, seconds since run start.
    pub fault_s: Option<f64>,
    /// End of warm-up, seconds since run start.
    pub warmup_s: Option<f64>,
    /// The zoom panel's x range (s), if a fault is known.
    pub zoom: Option<(f64, f64)>,
    /// Most successful points drawn per panel; above it every k-th is drawn
    /// (and the legend says so). All failed requests are always drawn.
    pub max_points: usize,
}

/// Data of a bar chart: one bar per label.
#[derive(Debug, Clone)]
pub struct BarsFig {
    /// Caption.
    pub title: String,
    /// (label, median and spread) per bar.
    pub bars: Vec<(String, Spread)>,
}

fn legend_solid(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
}

type Dashes<DB> = plotters::element::ComposedElement<
    (i32, i32),
    DB,
    PathElement<(i32, i32)>,
    PathElement<(i32, i32)>,
>;

fn legend_dashed<DB: DrawingBackend>(color: RGBColor) -> impl Fn((i32, i32)) -> Dashes<DB> {
    move |(x, y)| {
        EmptyElement::at((x, y))
            + PathElement::new(vec![(0, 0), (7, 0)], color.stroke_width(2))
            + PathElement::new(vec![(12, 0), (20, 0)], color.stroke_width(2))
    }
}

/// Draws a Fig. 2 style plot on `area`.
pub fn draw_throughput<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    f: &ThroughputFig,
) -> Result<()> {
    area.fill(&WHITE).map_err(de)?;
    let n = f.bins.len().max(1) as f64;
    let top = f
        .bins
        .iter()
        .map(|&b| b as f64)
        .chain(f.one_peak)
        .chain(f.two_peak)
        .fold(1.0f64, f64::max)
        * 1.5; // headroom: the legend sits in the top third
    let mut chart = ChartBuilder::on(area)
        .caption(&f.title, (FONT, 24))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(86)
        .build_cartesian_2d(0f64..n, 0f64..top)
        .map_err(de)?;
    chart
        .configure_mesh()
        .x_desc(X_TIME)
        .y_desc(Y_THROUGHPUT)
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| fmt_num(*v))
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(de)?;
    let pts: Vec<(f64, f64)> = f
        .bins
        .iter()
        .enumerate()
        .map(|(i, &b)| (i as f64 + 0.5, b as f64))
        .collect();
    chart
        .draw_series(LineSeries::new(pts.clone(), OK_COLOR.stroke_width(2)))
        .map_err(de)?
        .label("measured, 1 s bins")
        .legend(legend_solid(OK_COLOR));
    chart
        .draw_series(pts.iter().map(|&p| Circle::new(p, 3, OK_COLOR.filled())))
        .map_err(de)?;
    for (peak, color, label) in [
        (f.two_peak, TWO_COLOR, "two unreplicated servers (peak)"),
        (f.one_peak, ONE_COLOR, "one unreplicated server (peak)"),
    ] {
        if let Some(y) = peak {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, y), (n, y)],
                    10,
                    6,
                    color.stroke_width(2),
                ))
                .map_err(de)?
                .label(format!("{label}: {} req/s", fmt_num(y.round())))
                .legend(legend_dashed(color));
        }
    }
    if let Some(x) = f.warmup_s.filter(|x| *x > 0.0 && *x < n) {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x, 0.0), (x, top)],
                3,
                5,
                WARMUP_COLOR.stroke_width(2),
            ))
            .map_err(de)?
            .label(format!("end of warm-up (t = {} s)", fmt_num(x)))
            .legend(legend_dashed(WARMUP_COLOR));
    }
    if let Some(x) = f.fault_s {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x, 0.0), (x, top)],
                6,
                4,
                FAULT_COLOR.stroke_width(2),
            ))
            .map_err(de)?
            .label(format!("fault injected (t = {} s)", fmt_num(x)))
            .legend(legend_dashed(FAULT_COLOR));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(de)?;
    area.present().map_err(de)?;
    Ok(())
}

/// Lower and upper bounds of a log axis covering `values` (ms), powers of ten.
fn log_bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, 0f64);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.1, 10.0);
    }
    let lo = 10f64.powf(lo.max(0.001).log10().floor());
    // One decade of headroom above the data: the legend sits there.
    let hi = 10f64.powf(hi.log10().ceil().max(lo.log10() + 1.0) + 1.0);
    (lo, hi)
}

/// The points of `points` in the panel `x`, latencies clamped to the axis
/// floor `ylo`.
fn in_panel(
    points: &[(f64, f64)],
    x: (f64, f64),
    ylo: f64,
) -> impl Iterator<Item = (f64, f64)> + '_ {
    points
        .iter()
        .filter(move |p| p.0 >= x.0 && p.0 <= x.1)
        .map(move |p| (p.0, p.1.max(ylo)))
}

/// The successful requests of the panel `x` to draw (at most about
/// `max_points`, one in every n; latencies clamped to the axis floor
/// `ylo`) and their legend label.
fn thinned(
    ok: &[(f64, f64)],
    x: (f64, f64),
    ylo: f64,
    max_points: usize,
) -> (Vec<(f64, f64)>, String) {
    let n = in_panel(ok, x, ylo).count();
    let stride = n.div_ceil(max_points.max(1)).max(1);
    let shown: Vec<(f64, f64)> = in_panel(ok, x, ylo).step_by(stride).collect();
    let label = if stride > 1 {
        format!("successful request (1 in {stride} of {n} drawn)")
    } else {
        "successful request".to_string()
    };
    (shown, label)
}

fn latency_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    f: &LatencyFig,
    x: (f64, f64),
    max_points: usize,
    legend: bool,
) -> Result<()> {
    let in_x = |p: &&(f64, f64)| p.0 >= x.0 && p.0 <= x.1;
    let (ylo, yhi) = log_bounds(
        f.ok.iter()
            .filter(in_x)
            .chain(f.errors.iter().filter(in_x))
            .map(|p| p.1),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 20))
        .margin(14)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d(x.0..x.1, (ylo..yhi).log_scale())
        .map_err(de)?;
    chart
        .configure_mesh()
        .x_desc(X_START)
        .y_desc(Y_LATENCY)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| fmt_num(*v))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(de)?;
    let (shown, ok_label) = thinned(&f.ok, x, ylo, max_points);
    chart
        .draw_series(
            shown
                .iter()
                .map(|&p| Circle::new(p, 2, OK_COLOR.mix(0.6).filled())),
        )
        .map_err(de)?
        .label(ok_label)
        .legend(|(x, y)| Circle::new((x + 9, y), 3, OK_COLOR.filled()));
    let errs = in_panel(&f.errors, x, ylo).collect::<Vec<_>>();
    if !errs.is_empty() {
        chart
            .draw_series(
                errs.iter()
                    .map(|&p| Cross::new(p, 5, FAULT_COLOR.stroke_width(2))),
            )
            .map_err(de)?
            .label(format!("failed request ({} in this panel)", errs.len()))
            .legend(|(x, y)| Cross::new((x + 9, y), 5, FAULT_COLOR.stroke_width(2)));
    }
    // Vertical markers: (instant, dash and gap, colour, label).
    let markers = [
        (
            f.warmup_s.filter(|t| *t > x.0 && *t < x.1),
            (3, 5),
            WARMUP_COLOR,
            "end of warm-up",
        ),
        (
            f.fault_s.filter(|t| *t >= x.0 && *t <= x.1),
            (6, 4),
            FAULT_COLOR,
            "fault injected",
        ),
    ];
    for (t, (dash, gap), color, label) in markers {
        let Some(t) = t else { continue };
        chart
            .draw_series(DashedLineSeries::new(
                vec![(t, ylo), (t, yhi)],
                dash,
                gap,
                color.stroke_width(2),
            ))
            .map_err(de)?
            .label(label)
            .legend(legend_dashed(color));
    }
    if legend {
        chart
            .configure_series_labels()
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(de)?;
    }
    Ok(())
}

/// Draws a Fig. 3 style plot: the whole run on the left, the zoom around
/// the fault on the right (or the whole run alone when there is no fault).
pub fn draw_latency<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    f: &LatencyFig,
) -> Result<()> {
    area.fill(&WHITE).map_err(de)?;
    let titled = area.titled(&f.title, (FONT, 24)).map_err(de)?;
    let full = (0.0, f.span_s.max(0.001));
    match f.zoom {
        Some(z) => {
            let (left, right) = titled.split_horizontally((55).percent_width());
            latency_panel(&left, "whole run", f, full, f.max_points, true)?;
            latency_panel(
                &right,
                &format!(
                    "zoom on the fault ({} s to {} s)",
                    fmt_num(z.0),
                    fmt_num(z.1)
                ),
                f,
                z,
                f.max_points,
                true,
            )?;
        }
        None => latency_panel(&titled, "whole run (no fault)", f, full, f.max_points, true)?,
    }
    area.present().map_err(de)?;
    Ok(())
}

/// Draws a bar chart (median bar, spread as an error bar, value on top).
pub fn draw_bars<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, f: &BarsFig) -> Result<()> {
    area.fill(&WHITE).map_err(de)?;
    let n = f.bars.len().max(1);
    let top = f
        .bars
        .iter()
        .map(|b| b.1.hi.max(b.1.median))
        .fold(1.0f64, f64::max)
        * 1.2;
    let names: Vec<String> = f.bars.iter().map(|b| b.0.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(&f.title, (FONT, 24))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(86)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..top)
        .map_err(de)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("variant")
        .y_desc(Y_BARS)
        .y_label_formatter(&|v| fmt_num(*v))
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(de)?;
    chart
        .draw_series(f.bars.iter().enumerate().map(|(i, (_, s))| {
            let mut r = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), s.median),
                ],
                OK_COLOR.mix(0.75).filled(),
            );
            r.set_margin(0, 0, 60, 60);
            r
        }))
        .map_err(de)?;
    chart
        .draw_series(
            f.bars
                .iter()
                .enumerate()
                .filter(|(_, (_, s))| s.n > 1)
                .map(|(i, (_, s))| {
                    ErrorBar::new_vertical(
                        SegmentValue::CenterOf(i),
                        s.lo,
                        s.median,
                        s.hi,
                        BLACK.stroke_width(2),
                        16,
                    )
                }),
        )
        .map_err(de)?;
    chart
        .draw_series(f.bars.iter().enumerate().map(|(i, (_, s))| {
            let label = format!("{} req/s (n={})", fmt_num(s.median.round()), s.n);
            let style =
                TextStyle::from((FONT, 16).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
            Text::new(
                label,
                (SegmentValue::CenterOf(i), s.hi.max(s.median) + top * 0.015),
                style,
            )
        }))
        .map_err(de)?;
    area.present().map_err(de)?;
    Ok(())
}
