//! Progress of a long run: which experiment, variant and repetition is
//! running, how many runs remain, and an estimate of the time left. A
//! progress bar (indicatif) when stderr is a terminal, plain lines on stdout
//! otherwise (logs, CI).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// What one repetition costs besides its load duration: bringing the
/// topology up and down, the driver's drain, writing the results. Measured
/// at about 1 s per run for `baseline --quick` (2 runs of 6 s in 14.1 s, load
/// average 12); 2 s leaves room for CoRAL's and the proxies' start.
pub const REP_OVERHEAD_S: f64 = 2.0;

/// The estimated wall time of `runs` repetitions of `duration_s` each.
pub fn estimate_s(runs: u32, duration_s: f64) -> f64 {
    f64::from(runs) * (duration_s + REP_OVERHEAD_S)
}

/// `1 min 05 s`, `42 s`.
pub fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

/// Progress over the repetitions of one `coral-exp run`.
pub struct Progress {
    experiment: String,
    total: u32,
    done: u32,
    per_run_s: f64,
    start: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Progress over `total` runs, each estimated at `per_run_s` until the
    /// first finishes (then the measured mean is used).
    pub fn new(experiment: &str, total: u32, per_run_s: f64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(u64::from(total));
            if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
                b.set_style(style);
            }
            b.enable_steady_tick(Duration::from_millis(500));
            b
        });
        Self {
            experiment: experiment.to_string(),
            total,
            done: 0,
            per_run_s,
            start: Instant::now(),
            bar,
        }
    }

    /// Seconds left, from the measured mean once a run has finished.
    pub fn left_s(&self) -> f64 {
        let per = if self.done > 0 {
            self.start.elapsed().as_secs_f64() / f64::from(self.done)
        } else {
            self.per_run_s
        };
        per * f64::from(self.total - self.done)
    }

    /// The line shown when a repetition starts.
    pub fn line(&self, variant: &str, rep: u32, reps: u32) -> String {
        format!(
            "[{}/{}] {} {variant} rep {rep}/{reps}: {} run(s) left with this one, about {} left{}",
            self.done + 1,
            self.total,
            self.experiment,
            self.total - self.done,
            fmt_secs(self.left_s()),
            if self.done == 0 { " (estimate)" } else { "" }
        )
    }

    /// A repetition starts.
    pub fn start(&self, variant: &str, rep: u32, reps: u32) {
        let line = self.line(variant, rep, reps);
        match &self.bar {
            Some(b) => b.set_message(line),
            None => println!("{line}"),
        }
    }

    /// A repetition finished with result line `result`.
    pub fn finish(&mut self, result: &str) {
        self.done += 1;
        match &self.bar {
            Some(b) => {
                b.suspend(|| println!("{result}"));
                b.inc(1);
            }
            None => println!("{result}"),
        }
    }

    /// The run is over: the bar is removed.
    pub fn close(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_and_lines() {
        assert_eq!(estimate_s(3, 6.0), 24.0);
        assert_eq!(fmt_secs(65.2), "1 min 05 s");
        assert_eq!(fmt_secs(42.0), "42 s");
        let mut p = Progress::new("fig3-latency", 3, 12.0);
        assert_eq!(
            p.line("coral-keep-alive", 1, 3),
            "[1/3] fig3-latency coral-keep-alive rep 1/3: 3 run(s) left with this one, about 36 s left (estimate)"
        );
        p.finish("done");
        assert!(p
            .line("coral-keep-alive", 2, 3)
            .starts_with("[2/3] fig3-latency coral-keep-alive rep 2/3: 2 run(s) left"));
        assert!(!p.line("coral-keep-alive", 2, 3).ends_with("(estimate)"));
        p.close();
    }
}
