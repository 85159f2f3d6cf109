//! Heartbeat failure detector for one peer (docs/DESIGN.md section 4), sans-IO.
//!
//! The shell sends a heartbeat whenever [`Detector::poll_transmit`] says so,
//! feeds every authenticated heartbeat it receives into
//! [`Detector::on_heartbeat`], calls [`Detector::poll`] for events, and
//! sleeps until [`Detector::next_deadline`] (the shape of quinn-proto's
//! `Connection`). Nothing here reads a clock.
//!
//! Rule: with heartbeats every H, the peer is declared failed when `K x H`
//! has passed since the last fresh heartbeat (or since [`Detector::new`] if
//! none ever arrived): at `last_heard + K*H` exactly, the K-th expected
//! heartbeat is missing. Liveness is decided by time only; sequence gaps are
//! counted, not treated as misses. Once failed, the peer stays failed until
//! [`Detector::reset`] (a failed peer rejoins only as a new server): later
//! heartbeats from it are reported once as [`DetectorEvent::HeardAfterFailure`].
//!
//! Silence counts only while this side was running. The shell reports the
//! start of each of its rounds ([`Detector::on_round`]); a round that starts
//! more than 1.5 x H after the previous one means this side was stopped
//! (its thread, or the whole machine with the peer on it), and then the
//! peer gets one more interval from that round on before it is declared
//! failed: a peer that was running has its heartbeats queued with their
//! kernel arrival times (the shell reads them first), and one stopped with
//! us sends again at once.

use std::collections::VecDeque;

use crate::types::{Epoch, Instant};

/// Detector timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectorConfig {
    /// Heartbeat interval H, nanoseconds (> 0).
    pub interval_ns: u64,
    /// Consecutive misses K that declare the peer failed (>= 1).
    pub misses: u32,
}

/// An invalid [`DetectorConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectorConfigError {
    /// H must be positive.
    #[error("heartbeat interval must be positive")]
    ZeroInterval,
    /// K must be at least 1.
    #[error("misses must be at least 1")]
    ZeroMisses,
}

impl DetectorConfig {
    /// A checked configuration.
    pub fn new(interval_ns: u64, misses: u32) -> Result<Self, DetectorConfigError> {
        if interval_ns == 0 {
            return Err(DetectorConfigError::ZeroInterval);
        }
        if misses == 0 {
            return Err(DetectorConfigError::ZeroMisses);
        }
        Ok(DetectorConfig {
            interval_ns,
            misses,
        })
    }

    /// K x H, nanoseconds (saturating).
    pub fn failure_timeout_ns(&self) -> u64 {
        self.interval_ns.saturating_mul(u64::from(self.misses))
    }
}

/// How a received heartbeat was classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatVerdict {
    /// Newer than anything seen: counts as a sign of life.
    Fresh,
    /// Same (epoch, sequence) as the last fresh one.
    Duplicate,
    /// Same epoch, lower sequence than the last fresh one (reordered).
    OutOfOrder,
    /// Lower epoch than the last fresh one.
    StaleEpoch,
}

/// What the detector tells its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectorEvent {
    /// First fresh heartbeat (after [`Detector::new`] or [`Detector::reset`]).
    PeerUp {
        /// The peer's epoch.
        epoch: Epoch,
    },
    /// K x H passed without a fresh heartbeat.
    PeerFailed {
        /// Last fresh heartbeat (or the detector's start if none).
        last_heard: Instant,
        /// Whether any heartbeat was ever heard.
        ever_heard: bool,
    },
    /// The peer's epoch rose.
    PeerEpochChanged {
        /// Previous epoch.
        from: Epoch,
        /// New epoch.
        to: Epoch,
    },
    /// A fresh heartbeat from a peer already declared failed (reported once).
    HeardAfterFailure {
        /// Its epoch.
        epoch: Epoch,
    },
}

/// Counters for export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DetectorStats {
    /// Heartbeats fed in.
    pub received: u64,
    /// Fresh ones.
    pub fresh: u64,
    /// [`HeartbeatVerdict::Duplicate`].
    pub duplicate: u64,
    /// [`HeartbeatVerdict::OutOfOrder`].
    pub out_of_order: u64,
    /// [`HeartbeatVerdict::StaleEpoch`].
    pub stale_epoch: u64,
    /// Fresh heartbeats that arrived more than 1.5 x H after the previous one.
    pub late: u64,
    /// Sequence numbers skipped within an epoch (lost or reordered heartbeats).
    pub seq_gap: u64,
    /// Heartbeats sent ([`Detector::poll_transmit`] returned true).
    pub sent: u64,
    /// Failures declared.
    pub failures: u64,
    /// Rounds that started more than 1.5 x H after the previous one (this
    /// side was stopped; see [`Detector::on_round`]).
    pub own_stalls: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerState {
    Unknown,
    Alive,
    Failed { reported_return: bool },
}

/// Failure detector for one peer.
#[derive(Debug, Clone)]
pub struct Detector {
    cfg: DetectorConfig,
    state: PeerState,
    started: Instant,
    last_heard: Option<Instant>,
    last: Option<(Epoch, u64)>,
    sending: bool,
    next_send: Instant,
    last_sent: Option<Instant>,
    /// The start of the shell's previous round.
    last_round: Option<Instant>,
    /// Since when this side has been running without a stop (the failure
    /// deadline is at least one interval after it).
    awake_since: Instant,
    events: VecDeque<DetectorEvent>,
    stats: DetectorStats,
}

impl Detector {
    /// A detector started at `now`; the first heartbeat is due at once.
    pub fn new(cfg: DetectorConfig, now: Instant) -> Self {
        Detector {
            cfg,
            state: PeerState::Unknown,
            started: now,
            last_heard: None,
            last: None,
            sending: true,
            next_send: now,
            last_sent: None,
            last_round: None,
            awake_since: now,
            events: VecDeque::new(),
            stats: DetectorStats::default(),
        }
    }

    /// The shell starts a round at `now` (before it reads what is queued).
    /// If the previous round started more than 1.5 x H earlier, this side
    /// was not running in between, so the peer's silence over that time
    /// proves nothing: it is declared failed no earlier than H after `now`.
    /// Detection of a real failure is late by at most H, and only after a
    /// stop of our own; the lease does not depend on it.
    pub fn on_round(&mut self, now: Instant) {
        if let Some(prev) = self.last_round {
            let late = self
                .cfg
                .interval_ns
                .saturating_add(self.cfg.interval_ns / 2);
            if now.since_ns(prev) > late {
                self.awake_since = now;
                self.stats.own_stalls += 1;
            }
        }
        self.last_round = Some(now);
    }

    /// Forget the peer (e.g. after a join): as if new at `now`; the peer's
    /// epoch floor is kept, so older heartbeats stay stale.
    pub fn reset(&mut self, now: Instant) {
        self.state = PeerState::Unknown;
        self.started = now;
        self.last_heard = None;
        self.events.clear();
        self.sending = true;
        self.next_send = now;
        self.awake_since = now;
    }

    /// Feed one authenticated heartbeat from the peer.
    pub fn on_heartbeat(&mut self, now: Instant, epoch: Epoch, seq: u64) -> HeartbeatVerdict {
        self.stats.received += 1;
        let verdict = match self.last {
            Some((e, _)) if epoch < e => HeartbeatVerdict::StaleEpoch,
            Some((e, s)) if epoch == e && seq == s => HeartbeatVerdict::Duplicate,
            Some((e, s)) if epoch == e && seq < s => HeartbeatVerdict::OutOfOrder,
            _ => HeartbeatVerdict::Fresh,
        };
        match verdict {
            HeartbeatVerdict::StaleEpoch => self.stats.stale_epoch += 1,
            HeartbeatVerdict::Duplicate => self.stats.duplicate += 1,
            HeartbeatVerdict::OutOfOrder => self.stats.out_of_order += 1,
            HeartbeatVerdict::Fresh => self.fresh(now, epoch, seq),
        }
        verdict
    }

    fn fresh(&mut self, now: Instant, epoch: Epoch, seq: u64) {
        self.stats.fresh += 1;
        match self.last {
            Some((e, s)) if e == epoch => self.stats.seq_gap += seq - s - 1,
            Some((e, _)) => self
                .events
                .push_back(DetectorEvent::PeerEpochChanged { from: e, to: epoch }),
            None => {}
        }
        self.last = Some((epoch, seq));
        // A heartbeat that arrives after the failure deadline (and before
        // the owner polled) does not undo the failure.
        self.check_deadline(now);
        match self.state {
            PeerState::Failed {
                reported_return: false,
            } => {
                self.state = PeerState::Failed {
                    reported_return: true,
                };
                self.events
                    .push_back(DetectorEvent::HeardAfterFailure { epoch });
                return;
            }
            PeerState::Failed {
                reported_return: true,
            } => return,
            PeerState::Unknown => self.events.push_back(DetectorEvent::PeerUp { epoch }),
            PeerState::Alive => {}
        }
        if let Some(prev) = self.last_heard {
            if now.since_ns(prev)
                > self
                    .cfg
                    .interval_ns
                    .saturating_add(self.cfg.interval_ns / 2)
            {
                self.stats.late += 1;
            }
        }
        self.state = PeerState::Alive;
        self.last_heard = Some(now);
    }

    fn failure_deadline(&self) -> Option<Instant> {
        match self.state {
            PeerState::Failed { .. } => None,
            _ => Some(
                self.last_heard
                    .unwrap_or(self.started)
                    .plus_ns(self.cfg.failure_timeout_ns())
                    .max(self.awake_since.plus_ns(self.cfg.interval_ns)),
            ),
        }
    }

    fn check_deadline(&mut self, now: Instant) {
        if self.failure_deadline().is_some_and(|d| now >= d) {
            self.fail();
        }
    }

    fn fail(&mut self) {
        self.state = PeerState::Failed {
            reported_return: false,
        };
        self.stats.failures += 1;
        self.events.push_back(DetectorEvent::PeerFailed {
            last_heard: self.last_heard.unwrap_or(self.started),
            ever_heard: self.last_heard.is_some(),
        });
    }

    /// Declare the peer failed now, whatever its heartbeats say (the
    /// heartbeat link does when the peer stopped answering the log):
    /// [`DetectorEvent::PeerFailed`] with the last fresh heartbeat, as at a
    /// deadline. Nothing if it is failed already.
    pub fn declare_failed(&mut self) {
        if !self.is_failed() {
            self.fail();
        }
    }

    /// Advance to `now` and return the next event, if any.
    pub fn poll(&mut self, now: Instant) -> Option<DetectorEvent> {
        self.check_deadline(now);
        self.events.pop_front()
    }

    /// True if a heartbeat should be sent now (the shell then encodes and
    /// sends one); schedules the next one H later.
    pub fn poll_transmit(&mut self, now: Instant) -> bool {
        if !self.sending || now < self.next_send {
            return false;
        }
        self.next_send = self.next_send.plus_ns(self.cfg.interval_ns);
        if self.next_send <= now {
            // We fell behind (the shell was late): do not burst.
            self.next_send = now.plus_ns(self.cfg.interval_ns);
        }
        self.last_sent = Some(now);
        self.stats.sent += 1;
        true
    }

    /// Stop (false) or resume (true) sending heartbeats, e.g. on the mode
    /// machine's `StopHeartbeats`; resuming sends one at once.
    pub fn set_sending(&mut self, now: Instant, sending: bool) {
        if sending && !self.sending {
            self.next_send = now;
        }
        self.sending = sending;
    }

    /// The earliest instant at which [`Detector::poll`] or
    /// [`Detector::poll_transmit`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let send = self.sending.then_some(self.next_send);
        match (send, self.failure_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The peer's latest epoch, if heard.
    pub fn peer_epoch(&self) -> Option<Epoch> {
        self.last.map(|(e, _)| e)
    }

    /// Last fresh heartbeat.
    pub fn last_heard(&self) -> Option<Instant> {
        self.last_heard
    }

    /// Last heartbeat this side sent (input to the takeover wait, see
    /// `mode`).
    pub fn last_sent(&self) -> Option<Instant> {
        self.last_sent
    }

    /// True once the peer was declared failed (until [`Detector::reset`]).
    pub fn is_failed(&self) -> bool {
        matches!(self.state, PeerState::Failed { .. })
    }

    /// Counters.
    pub fn stats(&self) -> &DetectorStats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> DetectorConfig {
        self.cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn det() -> (Detector, Instant) {
        let t0 = Instant(1_000 * MS);
        (
            Detector::new(DetectorConfig::new(10 * MS, 3).unwrap(), t0),
            t0,
        )
    }

    fn drain(d: &mut Detector, now: Instant) -> Vec<DetectorEvent> {
        std::iter::from_fn(|| d.poll(now)).collect()
    }

    /// Rounds every `step` ms from `from` to `to` (inclusive), polling
    /// each; the events seen.
    fn rounds(d: &mut Detector, from: Instant, to: Instant, step: u64) -> Vec<DetectorEvent> {
        let mut out = Vec::new();
        let mut t = from;
        while t <= to {
            d.on_round(t);
            out.extend(drain(d, t));
            t = t.plus_ns(step * MS);
        }
        out
    }

    /// A detector that heard the peer at t0 and ran rounds on time to
    /// t0 + H.
    fn heard_then_on_time() -> (Detector, Instant) {
        let (mut d, t0) = det();
        d.on_heartbeat(t0, Epoch(1), 1);
        drain(&mut d, t0);
        rounds(&mut d, t0, t0.plus_ns(10 * MS), 10);
        (d, t0)
    }

    #[test]
    fn a_stop_of_our_own_gives_the_peer_one_more_interval() {
        let (mut d, t0) = heard_then_on_time();
        // Both sides stopped 100 ms (one machine, say): the first round
        // after it finds the peer silent far past K x H, but this side was
        // not running either: no failure yet, one interval of grace.
        let back = t0.plus_ns(110 * MS);
        d.on_round(back);
        assert!(drain(&mut d, back).is_empty());
        assert_eq!(d.stats().own_stalls, 1);
        // The peer, stopped with us, sends at once: alive, nothing declared.
        d.on_heartbeat(back.plus_ns(MS / 10), Epoch(1), 2);
        assert_eq!(
            rounds(&mut d, back.plus_ns(MS), back.plus_ns(25 * MS), 1),
            vec![]
        );
    }

    #[test]
    fn a_peer_silent_after_our_stop_is_declared_failed_one_interval_later() {
        let (mut d, t0) = heard_then_on_time();
        let back = t0.plus_ns(110 * MS);
        // Nothing from the peer after our stop: failed H after we came
        // back, not at once, and not later.
        assert_eq!(rounds(&mut d, back, back.plus_ns(9 * MS), 1), vec![]);
        let ev = rounds(&mut d, back.plus_ns(10 * MS), back.plus_ns(10 * MS), 1);
        assert!(
            matches!(ev.as_slice(), [DetectorEvent::PeerFailed { .. }]),
            "{ev:?}"
        );
    }

    #[test]
    fn rounds_on_time_change_nothing() {
        let (mut d, t0) = det();
        d.on_heartbeat(t0, Epoch(1), 1);
        drain(&mut d, t0);
        // Rounds every H (and a little late, up to 1.5 x H): failed at
        // exactly last_heard + K x H, as without rounds.
        let ev = rounds(&mut d, t0.plus_ns(MS), t0.plus_ns(29 * MS), 14);
        assert!(ev.is_empty(), "{ev:?}");
        assert_eq!(d.stats().own_stalls, 0);
        d.on_round(t0.plus_ns(30 * MS));
        assert!(matches!(
            drain(&mut d, t0.plus_ns(30 * MS)).as_slice(),
            [DetectorEvent::PeerFailed { .. }]
        ));
    }

    #[test]
    fn config_checked() {
        assert_eq!(
            DetectorConfig::new(0, 3),
            Err(DetectorConfigError::ZeroInterval)
        );
        assert_eq!(
            DetectorConfig::new(1, 0),
            Err(DetectorConfigError::ZeroMisses)
        );
    }

    #[test]
    fn exact_miss_boundary() {
        let (mut d, t0) = det();
        assert_eq!(
            d.on_heartbeat(t0.plus_ms(5), Epoch(1), 1),
            HeartbeatVerdict::Fresh
        );
        assert_eq!(
            drain(&mut d, t0.plus_ms(5)),
            vec![DetectorEvent::PeerUp { epoch: Epoch(1) }]
        );
        let last = t0.plus_ms(5);
        assert_eq!(d.next_deadline(), Some(t0), "first heartbeat due at once");
        assert!(d.poll_transmit(t0.plus_ms(5)));
        // Failure deadline is last + 3 x 10 ms; the next send is earlier.
        assert_eq!(d.next_deadline(), Some(t0.plus_ms(10)));
        d.set_sending(t0, false);
        assert_eq!(d.next_deadline(), Some(last.plus_ms(30)));
        let just_before = last.plus_ns(30 * MS - 1);
        assert_eq!(drain(&mut d, just_before), vec![]);
        assert!(!d.is_failed());
        assert_eq!(
            drain(&mut d, last.plus_ms(30)),
            vec![DetectorEvent::PeerFailed {
                last_heard: last,
                ever_heard: true
            }]
        );
        assert!(d.is_failed());
        assert_eq!(d.next_deadline(), None);
        assert_eq!(d.stats().failures, 1);
    }

    #[test]
    fn steady_heartbeats_keep_peer_alive() {
        let (mut d, t0) = det();
        for i in 0..100u64 {
            let now = t0.plus_ms(i * 10);
            d.on_heartbeat(now, Epoch(1), i);
            assert!(drain(&mut d, now.plus_ms(29))
                .iter()
                .all(|e| !matches!(e, DetectorEvent::PeerFailed { .. })));
        }
        assert_eq!(d.stats().late, 0);
        assert_eq!(d.stats().seq_gap, 0);
    }

    #[test]
    fn never_heard_fails_after_k_h_from_start() {
        let (mut d, t0) = det();
        assert_eq!(drain(&mut d, t0.plus_ns(30 * MS - 1)), vec![]);
        assert_eq!(
            drain(&mut d, t0.plus_ms(30)),
            vec![DetectorEvent::PeerFailed {
                last_heard: t0,
                ever_heard: false
            }]
        );
    }

    #[test]
    fn sequence_gaps_duplicates_reorder_counted() {
        let (mut d, t0) = det();
        d.on_heartbeat(t0, Epoch(1), 10);
        assert_eq!(
            d.on_heartbeat(t0.plus_ms(1), Epoch(1), 10),
            HeartbeatVerdict::Duplicate
        );
        assert_eq!(
            d.on_heartbeat(t0.plus_ms(2), Epoch(1), 14),
            HeartbeatVerdict::Fresh
        );
        assert_eq!(
            d.on_heartbeat(t0.plus_ms(3), Epoch(1), 12),
            HeartbeatVerdict::OutOfOrder
        );
        let s = d.stats();
        assert_eq!(
            (s.duplicate, s.out_of_order, s.seq_gap, s.fresh),
            (1, 1, 3, 2)
        );
        // A reordered or duplicate heartbeat is no sign of life: the deadline
        // stays at the last fresh one.
        assert_eq!(d.failure_deadline(), Some(t0.plus_ms(32)));
    }

    #[test]
    fn late_heartbeat_counted() {
        let (mut d, t0) = det();
        d.on_heartbeat(t0, Epoch(1), 1);
        d.on_heartbeat(t0.plus_ms(15), Epoch(1), 2);
        assert_eq!(d.stats().late, 0);
        d.on_heartbeat(t0.plus_ms(31), Epoch(1), 3);
        assert_eq!(d.stats().late, 1);
    }

    #[test]
    fn epoch_change_and_stale_epoch() {
        let (mut d, t0) = det();
        d.on_heartbeat(t0, Epoch(1), 500);
        drain(&mut d, t0);
        assert_eq!(
            d.on_heartbeat(t0.plus_ms(1), Epoch(2), 1),
            HeartbeatVerdict::Fresh
        );
        assert_eq!(
            drain(&mut d, t0.plus_ms(1)),
            vec![DetectorEvent::PeerEpochChanged {
                from: Epoch(1),
                to: Epoch(2)
            }]
        );
        assert_eq!(d.peer_epoch(), Some(Epoch(2)));
        assert_eq!(
            d.on_heartbeat(t0.plus_ms(2), Epoch(1), 501),
            HeartbeatVerdict::StaleEpoch
        );
        assert_eq!(d.stats().stale_epoch, 1);
        assert_eq!(d.stats().seq_gap, 0, "no gap across epochs");
    }

    #[test]
    fn heartbeat_after_failure_does_not_revive() {
        let (mut d, t0) = det();
        d.on_heartbeat(t0, Epoch(1), 1);
        drain(&mut d, t0);
        // Arrives after the deadline but before the owner polled.
        d.on_heartbeat(t0.plus_ms(31), Epoch(1), 2);
        let ev = drain(&mut d, t0.plus_ms(31));
        assert_eq!(
            ev,
            vec![
                DetectorEvent::PeerFailed {
                    last_heard: t0,
                    ever_heard: true
                },
                DetectorEvent::HeardAfterFailure { epoch: Epoch(1) }
            ]
        );
        d.on_heartbeat(t0.plus_ms(32), Epoch(1), 3);
        assert_eq!(drain(&mut d, t0.plus_ms(100)), vec![]);
        assert!(d.is_failed());
        d.reset(t0.plus_ms(200));
        d.on_heartbeat(t0.plus_ms(201), Epoch(1), 4);
        assert_eq!(
            drain(&mut d, t0.plus_ms(201)),
            vec![DetectorEvent::PeerUp { epoch: Epoch(1) }]
        );
    }

    #[test]
    fn transmit_schedule_does_not_burst() {
        let (mut d, t0) = det();
        assert!(d.poll_transmit(t0));
        assert!(!d.poll_transmit(t0.plus_ms(9)));
        assert!(d.poll_transmit(t0.plus_ms(10)));
        // The shell was 55 ms late: one heartbeat, next one H later.
        assert!(d.poll_transmit(t0.plus_ms(65)));
        assert!(!d.poll_transmit(t0.plus_ms(66)));
        assert_eq!(d.last_sent(), Some(t0.plus_ms(65)));
        d.set_sending(t0.plus_ms(70), false);
        assert!(!d.poll_transmit(t0.plus_ms(80)));
        d.set_sending(t0.plus_ms(90), true);
        assert!(d.poll_transmit(t0.plus_ms(90)));
        assert_eq!(d.stats().sent, 4);
    }
}
