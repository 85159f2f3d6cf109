//! The fault campaign as data: what one trial is, drawn from its seed alone
//! ([`trial`]), and the campaign's shape. Nothing here runs anything.
//!
//! A trial is a fresh CoRAL pair (single or dual role, with the witness),
//! closed-loop clients of one shape (keep-alive, pipelined or a connection
//! per request; replies of 1 KB to 1 MB; in dual role spread over both
//! addresses) and one fault of a random kind at a random instant. The
//! generator is ChaCha8 seeded with the trial's seed, whose output is fixed
//! by its specification, so a seed names the same trial on every machine
//! and build.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// The experiment name `coral-exp run` knows the campaign by.
pub const NAME: &str = "fault-campaign";

/// Trials of a full campaign (`make reproduce`), unless `--trials` says.
pub const TRIALS_FULL: u32 = 50;
/// Trials of a QUICK campaign.
pub const TRIALS_QUICK: u32 = 10;
/// First trial seed, unless `--seed` says.
pub const DEFAULT_SEED: u64 = 1;

/// Load duration of a trial, seconds (as `coral-load --duration-s`).
pub const DURATION_S: f64 = 4.0;
/// Warm-up excluded from the statistics, seconds.
pub const WARMUP_S: f64 = 0.5;
/// How long requests in flight at the end may still complete, seconds: more
/// than any failover stall, so a request still waiting then is really lost.
pub const DRAIN_S: f64 = 6.0;
/// Earliest and latest fault instant, seconds after the load started.
pub const FAULT_WINDOW_S: (f64, f64) = (1.0, 2.5);
/// Shortest and longest SIGSTOP of `stop-cont`, seconds: always past
/// detection (3 missed heartbeats of 100 ms, plus the witness).
pub const PAUSE_S: (f64, f64) = (0.5, 1.2);
/// Requests a pipelined client writes back to back before reading.
pub const PIPELINE_DEPTH: u32 = 4;
/// Reply sizes a trial draws from (1 KB to 1 MB).
pub const SIZES: [u64; 4] = [1024, 16 * 1024, 256 * 1024, 1024 * 1024];

/// The kinds of fault, one per trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The target's switch port down (not restored).
    LinkCut,
    /// SIGKILL of the target's node.
    Kill,
    /// SIGSTOP of the target's node past detection, then SIGCONT: a node
    /// that wakes up after it was declared dead.
    StopCont,
    /// Frames between the two servers dropped on the switch (both still
    /// reach clients and the witness).
    Partition,
    /// The target cut off from the witness alone.
    IsolateWitness,
}

impl FaultKind {
    /// Every kind, in table order.
    pub const ALL: [FaultKind; 5] = [
        FaultKind::LinkCut,
        FaultKind::Kill,
        FaultKind::StopCont,
        FaultKind::Partition,
        FaultKind::IsolateWitness,
    ];

    /// Its name in trials.csv and the tables.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::LinkCut => "link-cut",
            FaultKind::Kill => "kill",
            FaultKind::StopCont => "stop-cont",
            FaultKind::Partition => "partition",
            FaultKind::IsolateWitness => "isolate-witness",
        }
    }
}

/// How a trial's clients use connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnShape {
    /// One keep-alive connection per client, one request at a time.
    KeepAlive,
    /// Keep-alive, [`PIPELINE_DEPTH`] requests written before the replies
    /// are read.
    Pipelined,
    /// A new connection per request (WebStone 2.0).
    ConnectionPerRequest,
}

impl ConnShape {
    /// Its name in trials.csv.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnShape::KeepAlive => "keep-alive",
            ConnShape::Pipelined => "pipelined",
            ConnShape::ConnectionPerRequest => "connection-per-request",
        }
    }
}

/// One trial, everything drawn from its seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialPlan {
    /// The seed it was drawn from (replays it: `--trials 1 --seed SEED`).
    pub seed: u64,
    /// Dual role (each server primary for one address, fronting the other).
    pub dual_role: bool,
    /// The fault.
    pub kind: FaultKind,
    /// The host it hits (`server-a` or `server-b`; both for a partition).
    pub target: &'static str,
    /// Seconds after the load started.
    pub instant_s: f64,
    /// `stop-cont`: seconds between SIGSTOP and SIGCONT.
    pub pause_s: Option<f64>,
    /// How the clients use connections.
    pub shape: ConnShape,
    /// Reply size, bytes.
    pub size: u64,
    /// Closed-loop clients.
    pub clients: u32,
}

impl TrialPlan {
    /// The pair's configuration: `single` or `dual`.
    pub fn role(&self) -> &'static str {
        if self.dual_role {
            "dual"
        } else {
            "single"
        }
    }

    /// What the target was when the fault hit: `primary`, `backup`,
    /// `primary+backup` (dual role), `both` (a partition).
    pub fn target_role(&self) -> &'static str {
        match (self.kind, self.dual_role, self.target) {
            (FaultKind::Partition, _, _) => "both",
            (_, true, _) => "primary+backup",
            (_, false, "server-a") => "primary",
            _ => "backup",
        }
    }

    /// The shape column of trials.csv: connection use and reply size.
    pub fn shape_label(&self) -> String {
        format!("{}/{}", self.shape.as_str(), size_label(self.size))
    }

    /// The command that runs this trial again, alone.
    pub fn replay_command(&self) -> String {
        format!("coral-exp run {NAME} --trials 1 --seed {}", self.seed)
    }
}

/// `1KB`, `16KB`, `256KB`, `1MB`.
pub fn size_label(size: u64) -> String {
    if size >= 1024 * 1024 && size.is_multiple_of(1024 * 1024) {
        format!("{}MB", size / (1024 * 1024))
    } else {
        format!("{}KB", size / 1024)
    }
}

/// The trial of `seed`.
pub fn trial(seed: u64) -> TrialPlan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dual_role = rng.gen_bool(0.5);
    let kind = FaultKind::ALL[rng.gen_range(0..FaultKind::ALL.len())];
    let target = if rng.gen_bool(0.5) {
        "server-a"
    } else {
        "server-b"
    };
    let instant_s = round_ms(rng.gen_range(FAULT_WINDOW_S.0..=FAULT_WINDOW_S.1));
    let pause = round_ms(rng.gen_range(PAUSE_S.0..=PAUSE_S.1));
    let shape = [
        ConnShape::KeepAlive,
        ConnShape::Pipelined,
        ConnShape::ConnectionPerRequest,
    ][rng.gen_range(0..3)];
    let size = SIZES[rng.gen_range(0..SIZES.len())];
    TrialPlan {
        seed,
        dual_role,
        kind,
        target: if kind == FaultKind::Partition {
            "server-a"
        } else {
            target
        },
        instant_s,
        pause_s: (kind == FaultKind::StopCont).then_some(pause),
        shape,
        size,
        // Fewer clients for the large replies: the same bytes in flight.
        clients: if size >= 256 * 1024 { 4 } else { 8 },
    }
}

fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// The seeds of a campaign of `trials` trials from `first`: consecutive,
/// so trial `first + i` is replayed by `--trials 1 --seed first+i`.
pub fn seeds(first: u64, trials: u32) -> impl Iterator<Item = u64> {
    (0..u64::from(trials)).map(move |i| first.wrapping_add(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_names_one_trial() {
        assert_eq!(trial(7), trial(7));
        let plans: Vec<TrialPlan> = seeds(1, 400).map(trial).collect();
        assert_ne!(plans[0], plans[1]);
        for p in &plans {
            assert!(p.instant_s >= FAULT_WINDOW_S.0 && p.instant_s <= FAULT_WINDOW_S.1);
            assert!(p.instant_s + 1.0 < DURATION_S, "{p:?}");
            assert_eq!(p.pause_s.is_some(), p.kind == FaultKind::StopCont);
            if let Some(s) = p.pause_s {
                // Past detection: 3 missed heartbeats of 100 ms.
                assert!(s > 0.3 && p.instant_s + s < DURATION_S, "{p:?}");
            }
            assert!(SIZES.contains(&p.size) && p.clients > 0);
        }
        // 400 draws cover every kind, shape, size and both roles and targets.
        for k in FaultKind::ALL {
            assert!(plans.iter().any(|p| p.kind == k), "{k:?}");
        }
        for s in SIZES {
            assert!(plans.iter().any(|p| p.size == s));
        }
        for sh in ["keep-alive", "pipelined", "connection-per-request"] {
            assert!(plans.iter().any(|p| p.shape.as_str() == sh));
        }
        for r in ["primary", "backup", "primary+backup", "both"] {
            assert!(plans.iter().any(|p| p.target_role() == r), "{r}");
        }
        assert!(plans.iter().any(|p| p.dual_role) && plans.iter().any(|p| !p.dual_role));
    }

    #[test]
    fn labels_and_replay() {
        assert_eq!(size_label(1024), "1KB");
        assert_eq!(size_label(256 * 1024), "256KB");
        assert_eq!(size_label(1024 * 1024), "1MB");
        let p = trial(42);
        assert_eq!(
            p.replay_command(),
            "coral-exp run fault-campaign --trials 1 --seed 42"
        );
        assert!(p.shape_label().contains('/'));
        assert_eq!(seeds(u64::MAX, 2).collect::<Vec<_>>(), vec![u64::MAX, 0]);
    }
}
