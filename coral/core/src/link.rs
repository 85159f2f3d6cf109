//! The heartbeat link to the peer (docs/DESIGN.md section 4), sans-IO: the
//! [`Detector`], the echo-anchored lease, and what the node is told.
//!
//! The shell sends the heartbeat [`HeartbeatLink::poll_transmit`] hands
//! out and reports its sequence number with [`HeartbeatLink::on_sent`];
//! feeds every authenticated heartbeat from the peer into
//! [`HeartbeatLink::on_heartbeat`] with its arrival time (the kernel's
//! receive timestamp), after reading every datagram already queued; takes
//! events from [`HeartbeatLink::poll`]; and sleeps until
//! [`HeartbeatLink::next_deadline`]. Nothing here reads a clock.
//!
//! ## The lease, anchored at an echo
//!
//! Every heartbeat carries the sequence number of the last fresh heartbeat
//! its sender received from us (the echo), and every scheduled heartbeat is
//! answered at once by one extra heartbeat (flagged as an answer, which is
//! not answered in turn), so an echo comes back one round trip after the
//! heartbeat it names, not up to H later. When a fresh heartbeat echoes
//! our heartbeat `s`, which we sent at `t_s` on our clock, our lease runs
//! until `t_s + `[`Timing::lease_timeout_ns`] ([`LinkEvent::LeaseUntil`],
//! never moved back). The peer received `s` at or before the last fresh
//! heartbeat it heard from us (`last_heard`), and `s` left us before it
//! arrived, so the lease ends before `last_heard + lease`: the peer may
//! speak at `last_heard + `[`Timing::takeover_wait_ns`], normally its
//! detection, whatever heartbeats are still queued or in flight. A
//! heartbeat that arrives late only extends to a moment already past, so
//! stale heartbeats are harmless and need no age test. Once the peer is
//! declared failed the echo we send is frozen and nothing extends our
//! lease. The lease covers the next scheduled heartbeat's round trip while
//! `H + round trip < lease`, i.e. one-way delays below 8 ms at 10 ms x 3; a
//! lease that runs out while the peer is still considered alive is a
//! [`LinkEvent::LeaseLapsed`].
//!
//! ## A peer that answers heartbeats but not the log
//!
//! Heartbeats prove that the peer's heartbeat thread runs, not that its
//! log channel does: a backup whose log server is wedged (or whose log
//! port is cut) keeps every reply of ours waiting for an acknowledgement
//! that never comes, and no silence is ever detected. The shell reports
//! the log channel's progress each round ([`HeartbeatLink::on_log_progress`]:
//! whether writers wait, the highest entry acknowledged, and the bytes the
//! channel's socket holds unacknowledged by the peer's kernel); when
//! writers have waited [`LOG_STALL_MIN_NS`] (or three failure timeouts, if
//! longer) with neither moving, the link reports
//! [`LinkEvent::LogStalled`] and declares the peer failed, and the node
//! goes on as for any failure: through the witness to simplex, the peer
//! fenced by the higher epoch in our heartbeats. Only a mutual link is
//! judged so (the peer must be able to learn of it). The bound is long
//! next to a failure timeout on purpose, and the bytes count as progress:
//! a 1 MB entry sharing a 100 Mb/s link with 16 downloads takes more than
//! a second to be acknowledged whole, and its bytes move all along; a
//! wedged backup costs the clients one stall of the bound, not forever.
//!
//! ## Detection
//!
//! Silence is judged from the arrival of the last fresh heartbeat (the
//! detector's `K x H` rule); sequence numbers decide freshness and count
//! gaps, and the peer's send times give the one-way delay
//! ([`DelayHistogram`]). A peer is waited for, not declared failed, until
//! the link is mutual: until it has echoed one of our heartbeats it has
//! not heard us, holds no lease from us, and could not learn that we took
//! over (so it could never fence). A node that loses a false race has
//! therefore always heard the winner and detects its silence in turn. The
//! wait is bounded ([`MUTUAL_WAIT_MIN_NS`], at least three failure
//! timeouts): a peer that dies before it ever echoed us (a simplex node
//! killed within a heartbeat of accepting our join) is declared failed
//! then, not waited for forever. Safety does not rest on the wait: a peer
//! that never heard us never held a lease from us either.

use std::collections::VecDeque;

use crate::codec::{Heartbeat, ModeTag, VipStatus};
use crate::detector::{Detector, DetectorEvent, HeartbeatVerdict};
use crate::mode::Timing;
use crate::types::{Epoch, Instant};

/// How many of our own send times are kept to resolve echoes (an echo
/// older than this is older than any lease anyway at H >= 1 ms).
const SENT_KEPT: usize = 512;

/// The shortest bound on waiting for a peer that never heard us.
pub const MUTUAL_WAIT_MIN_NS: u64 = 1_000_000_000;

/// The shortest time writers wait on the log without its acknowledgement
/// moving before the peer counts as failed: 10 s, since a healthy backup
/// on a loaded 2-core machine (debug build, 16 clients of 1 MB replies
/// over a 100 Mb/s link) was seen to leave the log still for over 1 s.
pub const LOG_STALL_MIN_NS: u64 = 10_000_000_000;

/// What the link tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A detector event (a silent, never-mutual peer is waited for, see
    /// the module docs, and reported as nothing).
    Detector(DetectorEvent),
    /// The peer's per-address status changed.
    PeerStatus(Vec<VipStatus>),
    /// Our lease now runs until this instant (extend the nft lease and the
    /// front's ARP lease to it).
    LeaseUntil(Instant),
    /// The lease ran out at `at` while the peer was still considered alive.
    LeaseLapsed {
        /// When it ran out.
        at: Instant,
    },
    /// Writers waited on the log this long without its acknowledgement
    /// moving: the peer is declared failed (a
    /// [`DetectorEvent::PeerFailed`] follows).
    LogStalled {
        /// How long, ns.
        waited_ns: u64,
    },
}

/// One-way delay histogram: 8 buckets per power of two of microseconds
/// (about 9 % resolution), plus the maximum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayHistogram {
    buckets: [u32; 8 * 40],
    count: u64,
    max_ns: u64,
}

impl Default for DelayHistogram {
    fn default() -> Self {
        DelayHistogram {
            buckets: [0; 8 * 40],
            count: 0,
            max_ns: 0,
        }
    }
}

impl DelayHistogram {
    fn bucket(us: u64) -> usize {
        if us < 8 {
            return us as usize;
        }
        let octave = 63 - us.leading_zeros() as usize; // >= 3
        let sub = ((us >> (octave - 3)) & 7) as usize;
        ((octave - 2) * 8 + sub).min(8 * 40 - 1)
    }

    /// The upper edge (microseconds) of bucket `i`.
    fn upper_us(i: usize) -> u64 {
        if i < 8 {
            return i as u64 + 1;
        }
        let octave = i / 8 + 2;
        let sub = (i % 8) as u64;
        (8 + sub + 1) << (octave - 3)
    }

    /// Record one delay.
    pub fn record(&mut self, ns: u64) {
        let i = Self::bucket(ns / 1000);
        self.buckets[i] = self.buckets[i].saturating_add(1);
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest delay, nanoseconds.
    pub fn max_ns(&self) -> u64 {
        self.max_ns
    }

    /// The `q` quantile (0..=1) in nanoseconds, as its bucket's upper edge
    /// (never above the maximum); `None` without samples.
    pub fn quantile_ns(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank {
                return Some((Self::upper_us(i) * 1000).min(self.max_ns));
            }
        }
        Some(self.max_ns)
    }
}

/// Counters of the link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Heartbeats sent.
    pub sent: u64,
    /// Authenticated heartbeats fed in.
    pub received: u64,
    /// Of those, not fresh (duplicate, reordered, stale epoch) or heard
    /// after the peer was declared failed.
    pub stale: u64,
    /// Sequence numbers skipped by the peer (lost heartbeats).
    pub seq_gap: u64,
    /// Echoes that named no heartbeat we remember (or none yet).
    pub echo_unknown: u64,
    /// Times the lease was moved later.
    pub lease_extensions: u64,
    /// [`LinkEvent::LeaseLapsed`] events.
    pub lease_lapses: u64,
    /// Detector deadlines passed before the link was mutual (waited for).
    pub waits: u64,
    /// [`LinkEvent::LogStalled`] events.
    pub log_stalls: u64,
    /// Rounds that started late enough to show this side had stopped (the
    /// peer then got one more interval; [`HeartbeatLink::on_round`]).
    pub own_stalls: u64,
    /// One-way delay of fresh heartbeats (arrival minus the peer's send
    /// time, both wall clocks: exact when both nodes share a host's clock).
    pub delay: DelayHistogram,
}

/// The heartbeat link to one peer.
#[derive(Debug, Clone)]
pub struct HeartbeatLink {
    timing: Timing,
    det: Detector,
    /// Our recent heartbeats: (sequence number, send time), oldest first.
    sent: VecDeque<(u64, Instant)>,
    /// The last fresh peer heartbeat (its sequence number), echoed in ours.
    echo: u64,
    /// The peer echoed one of ours: it has heard us.
    mutual: bool,
    /// When we first waited for a silent peer that had not heard us.
    waiting_since: Option<Instant>,
    /// Sending at all (`set_sending`).
    sending: bool,
    /// A fresh scheduled heartbeat arrived at this instant: answer it.
    answer_due: Option<Instant>,
    peer_up_reported: bool,
    lease_until: Option<Instant>,
    lapse_reported: bool,
    status: Vec<VipStatus>,
    peer_status: Vec<VipStatus>,
    events: VecDeque<LinkEvent>,
    stats: LinkStats,
    /// The log's (highest acknowledged entry, unacknowledged bytes) at the
    /// last report.
    log_acked: (u64, u64),
    /// Since when writers have waited with that acknowledgement unmoved.
    log_waiting_since: Option<Instant>,
}

impl HeartbeatLink {
    /// A link started at `now`, reporting `status` (each address's epoch
    /// and mode) in its heartbeats; the first heartbeat is due at once.
    pub fn new(timing: Timing, now: Instant, status: Vec<VipStatus>) -> Self {
        HeartbeatLink {
            timing,
            det: Detector::new(timing.detector, now),
            sent: VecDeque::with_capacity(SENT_KEPT),
            echo: 0,
            mutual: false,
            waiting_since: None,
            sending: true,
            answer_due: None,
            peer_up_reported: false,
            lease_until: None,
            lapse_reported: false,
            status,
            peer_status: Vec::new(),
            events: VecDeque::new(),
            stats: LinkStats::default(),
            log_acked: (0, 0),
            log_waiting_since: None,
        }
    }

    /// The log channel's progress at `now` (see the module docs): whether
    /// writers wait for the peer's acknowledgement, the highest entry it
    /// acknowledged, and the bytes its kernel has not acknowledged yet.
    pub fn on_log_progress(&mut self, now: Instant, waiting: bool, acked: u64, unacked: u64) {
        let moved = (acked, unacked) != self.log_acked;
        self.log_acked = (acked, unacked);
        if !waiting || !self.mutual || self.det.is_failed() {
            self.log_waiting_since = None;
            return;
        }
        let since = match self.log_waiting_since {
            Some(s) if !moved => s,
            _ => {
                self.log_waiting_since = Some(now);
                return;
            }
        };
        let waited_ns = now.since_ns(since);
        let bound = LOG_STALL_MIN_NS.max(3 * self.timing.failure_timeout_ns());
        if waited_ns >= bound {
            self.log_waiting_since = None;
            self.stats.log_stalls += 1;
            self.events.push_back(LinkEvent::LogStalled { waited_ns });
            self.det.declare_failed();
            self.advance(now);
        }
    }

    /// What our heartbeats report from now on.
    pub fn set_status(&mut self, status: Vec<VipStatus>) {
        self.status = status;
    }

    /// Stop (false) or resume (true) sending heartbeats.
    pub fn set_sending(&mut self, now: Instant, sending: bool) {
        self.sending = sending;
        if !sending {
            self.answer_due = None;
        }
        self.det.set_sending(now, sending);
    }

    /// The heartbeat to send now, if one is due (`sent_unix_ns` is the
    /// shell's wall clock, carried for the peer's delay measurement). Report
    /// the sequence number it went out with through
    /// [`HeartbeatLink::on_sent`].
    pub fn poll_transmit(&mut self, now: Instant, sent_unix_ns: u64) -> Option<Heartbeat> {
        self.advance(now);
        let answer = self.answer_due.take().is_some();
        if !answer && !self.det.poll_transmit(now) {
            return None;
        }
        Some(Heartbeat {
            mode: self.status.first().map_or(ModeTag::Duplex, |s| s.mode),
            vips: self.status.clone(),
            echo: self.echo,
            sent_unix_ns,
            answer,
        })
    }

    /// The heartbeat from [`HeartbeatLink::poll_transmit`] left at `now`
    /// with sequence number `seq`.
    pub fn on_sent(&mut self, now: Instant, seq: u64) {
        if self.sent.len() == SENT_KEPT {
            self.sent.pop_front();
        }
        self.sent.push_back((seq, now));
        self.stats.sent += 1;
    }

    /// One authenticated heartbeat from the peer that arrived at `arrival`
    /// (`arrival_unix_ns` on the wall clock, for the delay only).
    pub fn on_heartbeat(
        &mut self,
        arrival: Instant,
        arrival_unix_ns: u64,
        epoch: Epoch,
        seq: u64,
        hb: &Heartbeat,
    ) {
        self.advance(arrival);
        self.stats.received += 1;
        let gaps = self.det.stats().seq_gap;
        let verdict = self.det.on_heartbeat(arrival, epoch, seq);
        self.stats.seq_gap += self.det.stats().seq_gap - gaps;
        // Its delay counts whether or not it came in time: a histogram of
        // the timely ones only would hide the very delays that caused a
        // false detection.
        if verdict == HeartbeatVerdict::Fresh && hb.sent_unix_ns > 0 {
            if let Some(d) = arrival_unix_ns.checked_sub(hb.sent_unix_ns) {
                self.stats.delay.record(d);
            }
        }
        // A heartbeat after the failure deadline is no sign of life: it
        // neither moves the echo nor extends anything.
        if self.det.is_failed() {
            self.stats.stale += 1;
            self.advance(arrival);
            return;
        }
        // A reordered or duplicated heartbeat is no sign of life either, but
        // its echo is as sound as any (the peer echoes only heartbeats it
        // took as fresh before it declared us failed).
        if verdict == HeartbeatVerdict::Fresh {
            self.on_fresh(seq, hb);
        } else {
            self.stats.stale += 1;
        }
        // Answer every scheduled heartbeat, reordered ones too (their
        // sequence number is new: the decoder drops replays).
        let new = matches!(
            verdict,
            HeartbeatVerdict::Fresh | HeartbeatVerdict::OutOfOrder
        );
        if new && !hb.answer && self.sending {
            self.answer_due = Some(arrival);
        }
        self.on_echo(arrival, hb.echo);
        self.advance(arrival);
    }

    fn on_fresh(&mut self, seq: u64, hb: &Heartbeat) {
        self.echo = seq;
        if hb.vips != self.peer_status {
            self.peer_status = hb.vips.clone();
            self.events
                .push_back(LinkEvent::PeerStatus(self.peer_status.clone()));
        }
    }

    fn on_echo(&mut self, now: Instant, echo: u64) {
        let Some(&(_, sent_at)) = self.sent.iter().rev().find(|(s, _)| *s == echo) else {
            self.stats.echo_unknown += 1;
            return;
        };
        self.mutual = true;
        let until = sent_at.plus_ns(self.timing.lease_timeout_ns());
        if until <= now || self.lease_until.is_some_and(|u| until <= u) {
            return; // extends nothing: harmless
        }
        self.lease_until = Some(until);
        self.lapse_reported = false;
        self.stats.lease_extensions += 1;
        self.events.push_back(LinkEvent::LeaseUntil(until));
    }

    /// Run the detector's timers to `now`, waiting for a peer that is not
    /// mutual yet instead of declaring it failed.
    fn advance(&mut self, now: Instant) {
        while let Some(ev) = self.det.poll(now) {
            match ev {
                DetectorEvent::PeerFailed { .. } if !self.mutual && self.still_waiting(now) => {
                    self.stats.waits += 1;
                    self.det.reset(now);
                }
                DetectorEvent::PeerUp { .. } if self.peer_up_reported => {}
                ev => {
                    self.peer_up_reported |= matches!(ev, DetectorEvent::PeerUp { .. });
                    self.events.push_back(LinkEvent::Detector(ev));
                }
            }
        }
        if let Some(until) = self.lease_until {
            if now >= until && !self.lapse_reported && !self.det.is_failed() {
                self.lapse_reported = true;
                self.stats.lease_lapses += 1;
                self.events.push_back(LinkEvent::LeaseLapsed { at: until });
            }
        }
    }

    /// Whether a silent peer that never heard us is still waited for at
    /// `now` (the first wait starts the bound).
    fn still_waiting(&mut self, now: Instant) -> bool {
        let since = *self.waiting_since.get_or_insert(now);
        let bound = MUTUAL_WAIT_MIN_NS.max(3 * self.timing.failure_timeout_ns());
        now.since_ns(since) < bound
    }

    /// The shell starts a round at `now`, before it reads the datagrams
    /// queued for it: silence over a stop of our own is not held against
    /// the peer ([`Detector::on_round`]).
    pub fn on_round(&mut self, now: Instant) {
        self.det.on_round(now);
        self.stats.own_stalls = self.det.stats().own_stalls;
    }

    /// Advance to `now` and return the next event, if any.
    pub fn poll(&mut self, now: Instant) -> Option<LinkEvent> {
        self.advance(now);
        self.events.pop_front()
    }

    /// When [`HeartbeatLink::poll`] or [`HeartbeatLink::poll_transmit`]
    /// next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let lapse = self
            .lease_until
            .filter(|_| !self.lapse_reported && !self.det.is_failed());
        [self.det.next_deadline(), lapse, self.answer_due]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the peer has heard us (echoed one of our heartbeats).
    pub fn is_mutual(&self) -> bool {
        self.mutual
    }

    /// Counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests;
