//! `coral-exp plot`: the figures, drawn from the results tree only.
//!
//! For every `<experiment>/<variant>` it draws, from the variant's typical
//! repetition ([`data::Variant::typical_rep`]):
//! - `<experiment>-<variant>-throughput.{png,svg}`: successful requests per
//!   1 s bin (paper Fig. 2), with the one- and two-unreplicated-server peaks
//!   (median `throughput_rps` of the experiment's own `one-server` and
//!   `two-servers` variants of the same shape, see [`experiment_peaks`]; none
//!   drawn without them) as dashed lines and the fault instant marked;
//! - `<experiment>-<variant>-latency.{png,svg}`: every request's latency over
//!   time (paper Fig. 3), errors as red crosses, with a zoom on the fault.
//!
//! and, for every experiment with two or more variants that have summaries
//! (`baseline`: one vs two servers), `<experiment>-throughput-bars.{png,svg}`;
//! all of these in the subfolder [`VARIANTS_DIR`]. At the top, the paper's
//! figures by the paper's names ([`PAPER_FIGURES`]: `fig2`, `fig3`) and the
//! load-balancer comparison's figures; `coral-exp report` adds `table1.md`,
//! `table2.md` and `table3.md` beside them.
//! Text uses the DejaVu Sans font embedded in the binary, never system fonts.

/// Writes `<out>/<stem>.png` and `.svg` with the same drawing function
/// (defined before the submodules, so they draw with it too).
macro_rules! render_both {
    ($out:expr, $stem:expr, $size:expr, $draw:path, $data:expr) => {{
        let png = $out.join(format!("{}.png", $stem));
        let svg = $out.join(format!("{}.svg", $stem));
        {
            let area = BitMapBackend::new(&png, $size).into_drawing_area();
            $draw(&area, $data).with_context(|| format!("writing {}", png.display()))?;
        }
        {
            let area = SVGBackend::new(&svg, $size).into_drawing_area();
            $draw(&area, $data).with_context(|| format!("writing {}", svg.display()))?;
        }
        vec![png, svg]
    }};
}

pub mod data;
pub mod double_fault;
pub mod figures;
pub mod lb;
pub mod stats;

/// Request records for the plot modules' unit tests.
#[cfg(test)]
pub(crate) mod test_records {
    use workload::records::{ErrorKind, RequestRecord};

    /// A request of `client` from `start_ms` to `end_ms` (Unix ms), failed
    /// with `err` or answered with 10 verified bytes.
    pub fn rec(client: u32, start_ms: u64, end_ms: u64, err: Option<ErrorKind>) -> RequestRecord {
        RequestRecord {
            client,
            seq: start_ms,
            start_unix_ns: start_ms * 1_000_000,
            end_unix_ns: end_ms * 1_000_000,
            latency_us: (end_ms - start_ms) * 1000,
            status: if err.is_none() { 200 } else { 0 },
            bytes: if err.is_none() { 10 } else { 0 },
            digest_ok: err.is_none(),
            error_kind: err,
            url: String::new(),
            local_port: 1,
            new_connection: false,
            served_by: String::new(),
            lost: false,
        }
    }
}

use anyhow::{Context, Result};
use clap::Args;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use tracing::{error, info, warn};

use data::{Experiment, Variant};
use figures::{BarsFig, LatencyFig, ThroughputFig};
use stats::{Spread, NS_PER_S};

/// The embedded font (DejaVu Sans; license in experiments/assets/fonts/).
static DEJAVU_SANS: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Arguments of `coral-exp plot`.
#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// The results tree to read.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Where to write the figures.
    #[arg(long, default_value = "paper-figures")]
    pub out: PathBuf,
}

/// The subfolder of the figures directory that holds every per-variant
/// figure and per-experiment bar chart; the paper's figures by the paper's
/// names (`fig2`, `fig3`, …) sit at the top.
pub const VARIANTS_DIR: &str = "variants";

/// Kinds of per-variant figures, as they appear in file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FigureKind {
    /// Fig. 2 style: requests per second over time.
    Throughput,
    /// Fig. 3 style: latency of every request over time, with a zoom.
    Latency,
}

impl FigureKind {
    /// The suffix used in file names.
    pub fn suffix(self) -> &'static str {
        match self {
            FigureKind::Throughput => "throughput",
            FigureKind::Latency => "latency",
        }
    }
}

/// File stem (no extension) of a per-variant figure.
pub fn figure_stem(experiment: &str, variant: &str, kind: FigureKind) -> String {
    format!("{experiment}-{variant}-{}", kind.suffix())
}

/// File stem (no extension) of an experiment's bar chart.
pub fn bars_stem(experiment: &str) -> String {
    format!("{experiment}-throughput-bars")
}

/// Registers the embedded font with plotters under [`figures::FONT`].
pub fn register_fonts() -> Result<()> {
    plotters::style::register_font(figures::FONT, FontStyle::Normal, DEJAVU_SANS)
        .map_err(|_| anyhow::anyhow!("the embedded DejaVu Sans font could not be loaded"))?;
    Ok(())
}

/// Median `throughput_rps` over a variant's repetitions.
pub fn median_throughput(v: &Variant) -> Option<f64> {
    let xs: Vec<f64> = v.summaries().map(|(_, s)| s.throughput_rps).collect();
    stats::median(&xs)
}

/// The one- and two-unreplicated-server peaks from `baseline`, if present.
pub fn baseline_peaks(experiments: &[Experiment]) -> (Option<f64>, Option<f64>) {
    let Some(b) = experiments.iter().find(|e| e.name == "baseline") else {
        return (None, None);
    };
    (
        b.variant("one-server").and_then(median_throughput),
        b.variant("two-servers").and_then(median_throughput),
    )
}

/// A variant name split into its base and its topology suffix (`-docker`
/// for a Docker run, see [`crate::runner::variant_dir`]; empty on netns).
pub fn split_topology(name: &str) -> (&str, &str) {
    match name.strip_suffix("-docker") {
        Some(base) => (base, &name[base.len()..]),
        None => (name, ""),
    }
}

/// The peaks drawn with variant `v` of `exp`: the experiment's own
/// unreplicated variants measured in the same run, shape and topology
/// (`[inproc-][cpuNNN-]one-server[-connection-per-request|-NNNNKB][-docker]`,
/// the same prefix and suffixes as `v`), else `fallback`. The report and the
/// figures pass no fallback: a bound from another experiment is another run.
pub fn experiment_peaks(
    exp: &Experiment,
    v: &Variant,
    fallback: (Option<f64>, Option<f64>),
) -> (Option<f64>, Option<f64>) {
    let (name, topo) = split_topology(v.name.as_str());
    // An `inproc-` variant is compared with the in-process servers.
    let (mode, rest) = match name.strip_prefix(crate::catalog::INPROC_PREFIX) {
        Some(r) => (crate::catalog::INPROC_PREFIX, r),
        None => ("", name),
    };
    let cpu = rest
        .split_once('-')
        .filter(|(p, _)| p.starts_with("cpu") && p[3..].chars().all(|c| c.is_ascii_digit()))
        .map(|(p, _)| format!("{p}-"))
        .unwrap_or_default();
    let prefix = format!("{mode}{cpu}");
    let suffix = if name.ends_with("-connection-per-request") {
        "-connection-per-request".to_string()
    } else {
        match name.rsplit_once('-') {
            Some((_, s))
                if s.ends_with("KB") && s[..s.len() - 2].chars().all(|c| c.is_ascii_digit()) =>
            {
                format!("-{s}")
            }
            _ => String::new(),
        }
    };
    let get = |n: &str| {
        exp.variant(&format!("{prefix}{n}{suffix}{topo}"))
            .and_then(median_throughput)
    };
    let (one, two) = (get("one-server"), get("two-servers"));
    if one.is_none() && two.is_none() {
        fallback
    } else {
        (one, two)
    }
}

/// Most successful points drawn in each panel of a latency figure; above
/// this, every k-th is drawn (and the legend says so).
pub const MAX_SCATTER_POINTS: usize = 20_000;

/// The throughput and latency figures of one variant, from its typical
/// repetition.
fn variant_figures(
    exp: &Experiment,
    v: &Variant,
    peaks: (Option<f64>, Option<f64>),
) -> Result<(ThroughputFig, LatencyFig)> {
    let rep = v.typical_rep().context("no repetition")?;
    let records = data::load_requests(rep)?;
    let events = match data::load_events(rep) {
        Ok(e) => e,
        Err(e) => {
            warn!("{e:#} (fault instant from summary.json only)");
            Vec::new()
        }
    };
    let (first, last) = stats::request_span(&records)
        .with_context(|| format!("{}: no requests", rep.dir.join("requests.csv").display()))?;
    // The driver's own marks when summary.json has them, else the requests' span.
    let marks = rep
        .summary
        .as_ref()
        .map(|s| (s.run_start_unix_ns, s.warmup_end_unix_ns, s.run_end_unix_ns));
    let t0 = marks
        .map(|m| m.0)
        .filter(|&t| t > 0 && t <= first)
        .unwrap_or(first);
    let t_end = marks.map(|m| m.2).filter(|&t| t > t0).unwrap_or(last);
    let warmup_ns = marks.map(|m| m.1).filter(|&t| t > t0);
    let secs = |t: u64| (t as i128 - t0 as i128) as f64 / 1e9;
    let fault_s = data::fault_instant(rep, &events).map(secs);
    let span_s = secs(t_end.max(last));
    let warmup_s = warmup_ns.map(secs);
    let what = format!("{} / {}, rep-{}", exp.name, v.name, rep.n);

    let tf = ThroughputFig {
        title: format!("{what}: throughput per second"),
        bins: stats::success_bins(&records, t0, t_end, NS_PER_S),
        fault_s,
        warmup_s,
        one_peak: peaks.0,
        two_peak: peaks.1,
    };

    let ok: Vec<(f64, f64)> = records
        .iter()
        .filter(|r| r.is_ok())
        .map(|r| (secs(r.start_unix_ns), r.latency_us as f64 / 1000.0))
        .collect();
    let errors: Vec<(f64, f64)> = records
        .iter()
        .filter(|r| !r.is_ok())
        .map(|r| (secs(r.start_unix_ns), r.latency_us as f64 / 1000.0))
        .collect();
    let stall_s = rep
        .summary
        .as_ref()
        .map(|s| s.max_stall_ms / 1000.0)
        .unwrap_or(0.0);
    let zoom = fault_s.map(|f| {
        let right = 0.5f64.max((stall_s + 0.25).min(10.0));
        ((f - 0.5).max(0.0), (f + right).min(span_s.max(f + 0.001)))
    });
    let lf = LatencyFig {
        title: format!("{what}: client-observed latency of every request"),
        max_points: MAX_SCATTER_POINTS,
        ok,
        errors,
        span_s,
        fault_s,
        warmup_s,
        zoom,
    };
    Ok((tf, lf))
}

/// Draws the throughput and latency figures of one variant into `out`;
/// returns the files.
fn plot_variant(
    out: &Path,
    exp: &Experiment,
    v: &Variant,
    peaks: (Option<f64>, Option<f64>),
) -> Result<Vec<PathBuf>> {
    let (tf, lf) = variant_figures(exp, v, peaks)?;
    let mut files = Vec::new();
    let stem = figure_stem(&exp.name, &v.name, FigureKind::Throughput);
    files.extend(render_both!(
        out,
        stem,
        (1200, 700),
        figures::draw_throughput,
        &tf
    ));
    let stem = figure_stem(&exp.name, &v.name, FigureKind::Latency);
    files.extend(render_both!(
        out,
        stem,
        (1500, 650),
        figures::draw_latency,
        &lf
    ));
    Ok(files)
}

/// The paper's figures by the paper's names: (stem, experiment, variant,
/// title). The variant is the paper's configuration: dual role, the paper's
/// workload and application, keep-alive, the default front, on netns.
pub const PAPER_FIGURES: &[(&str, &str, &str, &str)] = &[
    (
        "fig2",
        "fig2-throughput",
        "coral-keep-alive",
        "Fig. 2: system throughput per second before and after a fault (dashed: one and two unreplicated servers, same run)",
    ),
    (
        "fig3",
        "fig3-latency",
        "coral-keep-alive",
        "Fig. 3: client-observed request latencies before and after a fault (right: zoom on the fault)",
    ),
];

/// Draws `fig2` and `fig3` into `out` from the experiments that have them;
/// returns the files.
fn plot_paper_figures(out: &Path, experiments: &[Experiment]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for (stem, exp_name, variant, title) in PAPER_FIGURES {
        let Some(exp) = experiments.iter().find(|e| e.name == *exp_name) else {
            continue;
        };
        let Some(v) = exp.variant(variant) else {
            continue;
        };
        let rep = v.typical_rep().map(|r| r.n).unwrap_or(0);
        let (mut tf, mut lf) = variant_figures(exp, v, experiment_peaks(exp, v, (None, None)))?;
        let caption = format!("{title}; {exp_name}/{variant} rep-{rep}");
        if *stem == "fig2" {
            tf.title = caption;
            files.extend(render_both!(
                out,
                stem,
                (1200, 700),
                figures::draw_throughput,
                &tf
            ));
        } else {
            lf.title = caption;
            files.extend(render_both!(
                out,
                stem,
                (1500, 650),
                figures::draw_latency,
                &lf
            ));
        }
    }
    Ok(files)
}

/// Draws an experiment's throughput bar chart if two or more variants have
/// summaries; returns the files written.
fn plot_bars(out: &Path, exp: &Experiment) -> Result<Vec<PathBuf>> {
    let bars: Vec<(String, Spread)> = exp
        .variants
        .iter()
        .filter_map(|v| {
            let xs: Vec<f64> = v.summaries().map(|(_, s)| s.throughput_rps).collect();
            Spread::of(&xs).map(|s| (v.name.clone(), s))
        })
        .collect();
    if bars.len() < 2 {
        return Ok(Vec::new());
    }
    let bf = BarsFig {
        title: format!(
            "{}: throughput by variant (bars: median; whiskers: spread)",
            exp.name
        ),
        bars,
    };
    let stem = bars_stem(&exp.name);
    // Wide enough that every variant's name and value label fit side by side.
    let width = (bf.bars.len() as u32 * 230).max(1000);
    Ok(render_both!(
        out,
        stem,
        (width, 650),
        figures::draw_bars,
        &bf
    ))
}

/// `coral-exp plot`; returns the process exit code (1 if some figure failed,
/// after drawing all the others).
pub fn run(a: PlotArgs) -> Result<i32> {
    register_fonts()?;
    let experiments = data::load_tree(&a.results)?;
    if experiments.is_empty() {
        anyhow::bail!(
            "no results under {} (expected <experiment>/<variant>/rep-<n>/)",
            a.results.display()
        );
    }
    let by_variant = a.out.join(VARIANTS_DIR);
    std::fs::create_dir_all(&by_variant)
        .with_context(|| format!("creating {}", by_variant.display()))?;
    let total: usize = experiments.iter().map(|e| e.variants.len()).sum();
    let bar = indicatif::ProgressBar::new(total as u64);
    let mut failures = 0;
    let mut written = 0;
    for exp in &experiments {
        for v in &exp.variants {
            bar.set_message(format!("{}/{}", exp.name, v.name));
            for rep in &v.reps {
                for w in &rep.warnings {
                    bar.suspend(|| warn!("{w}"));
                }
            }
            match plot_variant(&by_variant, exp, v, experiment_peaks(exp, v, (None, None))) {
                Ok(files) => written += files.len(),
                Err(e) => {
                    failures += 1;
                    bar.suspend(|| error!("{}/{}: {e:#}", exp.name, v.name));
                }
            }
            bar.inc(1);
        }
        if exp.name == lb::EXPERIMENT {
            match lb::plot(&a.out, exp) {
                Ok(files) => written += files.len(),
                Err(e) => {
                    failures += 1;
                    bar.suspend(|| error!("{} figures: {e:#}", exp.name));
                }
            }
        }
        if exp.name == double_fault::EXPERIMENT {
            match double_fault::plot(&a.out, exp) {
                Ok(files) => written += files.len(),
                Err(e) => {
                    failures += 1;
                    bar.suspend(|| error!("{} figure: {e:#}", exp.name));
                }
            }
        }
        match plot_bars(&by_variant, exp) {
            Ok(files) => written += files.len(),
            Err(e) => {
                failures += 1;
                bar.suspend(|| error!("{} bars: {e:#}", exp.name));
            }
        }
    }
    bar.finish_and_clear();
    match plot_paper_figures(&a.out, &experiments) {
        Ok(files) => written += files.len(),
        Err(e) => {
            failures += 1;
            error!("the paper's figures: {e:#}");
        }
    }
    info!("wrote {written} files to {}", a.out.display());
    Ok(if failures > 0 { 1 } else { 0 })
}
