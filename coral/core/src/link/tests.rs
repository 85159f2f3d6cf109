use super::*;
use crate::mode::Timing;
use proptest::prelude::*;
use std::net::Ipv4Addr;

const MS: u64 = 1_000_000;

fn t(ms: u64) -> Instant {
    Instant(ms * MS)
}

fn timing() -> Timing {
    Timing::new(10 * MS, 3)
}

fn hb(echo: u64) -> Heartbeat {
    Heartbeat {
        mode: ModeTag::Duplex,
        vips: vec![],
        echo,
        sent_unix_ns: 0,
        answer: true,
    }
}

fn drain(l: &mut HeartbeatLink, now: Instant) -> Vec<LinkEvent> {
    std::iter::from_fn(|| l.poll(now)).collect()
}

/// Our heartbeats at 0, 10, 20... carry sequence numbers 100, 101, ...
fn send_until(l: &mut HeartbeatLink, ms: u64) {
    let mut seq = 100 + l.stats().sent;
    for now in (0..=ms).map(t) {
        if l.poll_transmit(now, 0).is_some() {
            l.on_sent(now, seq);
            seq += 1;
        }
    }
}

#[test]
fn lease_runs_from_our_send_time_of_the_echoed_heartbeat() {
    let mut l = HeartbeatLink::new(timing(), t(0), vec![]);
    send_until(&mut l, 10);
    // The peer's heartbeat echoes our first (sent at 0): lease to 0 + 26.
    l.on_heartbeat(t(12), 0, Epoch(1), 7, &hb(100));
    let ev = drain(&mut l, t(12));
    assert!(ev.contains(&LinkEvent::LeaseUntil(t(26))), "{ev:?}");
    assert!(l.is_mutual());
    // Echoing our second (sent at 10): lease to 36.
    l.on_heartbeat(t(22), 0, Epoch(1), 8, &hb(101));
    assert_eq!(drain(&mut l, t(22)), vec![LinkEvent::LeaseUntil(t(36))]);
    // The same echo again, or an older one, extends nothing.
    l.on_heartbeat(t(23), 0, Epoch(1), 9, &hb(101));
    l.on_heartbeat(t(24), 0, Epoch(1), 10, &hb(100));
    assert_eq!(drain(&mut l, t(24)), vec![]);
    assert_eq!(l.stats().lease_extensions, 2);
}

#[test]
fn a_stale_heartbeat_extends_nothing_and_a_lapse_is_counted_once() {
    let mut l = HeartbeatLink::new(timing(), t(0), vec![]);
    send_until(&mut l, 20);
    l.on_heartbeat(t(5), 0, Epoch(1), 7, &hb(100));
    assert!(drain(&mut l, t(5)).contains(&LinkEvent::LeaseUntil(t(26))));
    // Our second heartbeat (sent at 10) is echoed only at 40: its lease
    // (to 36) is already over, however fresh the heartbeat that carries it.
    assert_eq!(l.next_deadline(), Some(t(26)), "the lapse is a deadline");
    assert_eq!(drain(&mut l, t(25)), vec![]);
    assert_eq!(
        drain(&mut l, t(26)),
        vec![LinkEvent::LeaseLapsed { at: t(26) }]
    );
    l.on_heartbeat(t(34), 0, Epoch(1), 8, &hb(0));
    l.on_heartbeat(t(40), 0, Epoch(1), 9, &hb(101));
    assert_eq!(drain(&mut l, t(40)), vec![]);
    assert_eq!(l.stats().lease_lapses, 1);
    // The next one that is echoed in time extends it again.
    send_until(&mut l, 40);
    l.on_heartbeat(t(41), 0, Epoch(1), 10, &hb(104));
    assert_eq!(drain(&mut l, t(41)), vec![LinkEvent::LeaseUntil(t(66))]);
}

#[test]
fn a_peer_that_never_heard_us_is_waited_for_a_bounded_time() {
    let mut l = HeartbeatLink::new(timing(), t(0), vec![]);
    send_until(&mut l, 0);
    l.on_heartbeat(t(1), 0, Epoch(1), 7, &hb(0));
    drain(&mut l, t(1));
    // Silent, never mutual: waited for up to the bound after the first
    // wait (at K x H), then declared failed (a peer that died before it
    // ever echoed us must not be waited for forever).
    let bound_ms = MUTUAL_WAIT_MIN_NS / 1_000_000;
    let mut failed_at = None;
    for ms in (2..2 * bound_ms).step_by(5) {
        send_until(&mut l, ms);
        if drain(&mut l, t(ms))
            .iter()
            .any(|e| matches!(e, LinkEvent::Detector(DetectorEvent::PeerFailed { .. })))
        {
            failed_at = Some(ms);
            break;
        }
    }
    let at = failed_at.expect("declared failed after the bound");
    assert!(at >= bound_ms && at <= bound_ms + 100, "failed at {at} ms");
}

#[test]
fn a_peer_that_never_heard_us_is_waited_for() {
    let mut l = HeartbeatLink::new(timing(), t(0), vec![]);
    send_until(&mut l, 0);
    // It speaks, but echoes nothing of ours: not mutual.
    l.on_heartbeat(t(1), 0, Epoch(1), 7, &hb(0));
    assert_eq!(
        drain(&mut l, t(1)),
        vec![LinkEvent::Detector(DetectorEvent::PeerUp {
            epoch: Epoch(1)
        })]
    );
    assert!(!l.is_mutual());
    // Silent for 10 x K x H: waited for, never failed.
    for ms in (2..300).step_by(3) {
        assert!(
            !drain(&mut l, t(ms))
                .iter()
                .any(|e| matches!(e, LinkEvent::Detector(DetectorEvent::PeerFailed { .. }))),
            "failed at {ms}"
        );
    }
    assert!(l.stats().waits >= 9);
    // It hears us (echoes our heartbeat): mutual, PeerUp not repeated.
    send_until(&mut l, 300);
    let last = 100 + l.stats().sent - 1;
    l.on_heartbeat(t(301), 0, Epoch(1), 8, &hb(last));
    assert!(l.is_mutual());
    assert!(drain(&mut l, t(301))
        .iter()
        .all(|e| !matches!(e, LinkEvent::Detector(_))));
    // Now silence is a failure.
    let ev = drain(&mut l, t(331));
    assert!(
        ev.contains(&LinkEvent::Detector(DetectorEvent::PeerFailed {
            last_heard: t(301),
            ever_heard: true
        })),
        "{ev:?}"
    );
}

#[test]
fn after_a_failure_the_echo_is_frozen_and_nothing_extends() {
    let mut l = HeartbeatLink::new(timing(), t(0), vec![]);
    send_until(&mut l, 0);
    l.on_heartbeat(t(1), 0, Epoch(1), 7, &hb(100));
    drain(&mut l, t(1));
    let ev = drain(&mut l, t(31));
    assert!(ev
        .iter()
        .any(|e| matches!(e, LinkEvent::Detector(DetectorEvent::PeerFailed { .. }))));
    send_until(&mut l, 40);
    // The peer is heard again: reported once, echo stays 7, no lease.
    l.on_heartbeat(t(41), 0, Epoch(1), 9, &hb(103));
    assert_eq!(
        drain(&mut l, t(41)),
        vec![LinkEvent::Detector(DetectorEvent::HeardAfterFailure {
            epoch: Epoch(1)
        })]
    );
    assert_eq!(l.poll_transmit(t(50), 0).map(|h| h.echo), Some(7));
    assert_eq!(l.stats().stale, 1);
}

#[test]
fn peer_status_and_delay_are_reported() {
    let st = vec![VipStatus {
        vip: Ipv4Addr::new(192, 0, 2, 100),
        epoch: Epoch(2),
        mode: ModeTag::Simplex,
    }];
    let mut l = HeartbeatLink::new(timing(), t(0), st.clone());
    let out = l.poll_transmit(t(0), 5).unwrap();
    assert_eq!(
        (out.mode, &out.vips, out.sent_unix_ns),
        (ModeTag::Simplex, &st, 5)
    );
    let mut h = hb(0);
    h.vips = st.clone();
    h.sent_unix_ns = 1_000_000;
    l.on_heartbeat(t(1), 1_250_000, Epoch(1), 7, &h);
    h.sent_unix_ns = 2_000_000;
    l.on_heartbeat(t(2), 2_900_000, Epoch(1), 8, &h);
    let ev = drain(&mut l, t(2));
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, LinkEvent::PeerStatus(_)))
            .count(),
        1
    );
    let d = &l.stats().delay;
    assert_eq!((d.count(), d.max_ns()), (2, 900_000));
    let p50 = d.quantile_ns(0.5).unwrap();
    assert!((250_000..=280_000).contains(&p50), "{p50}");
    assert_eq!(d.quantile_ns(1.0), Some(900_000));
}

#[test]
fn histogram_buckets_are_monotone_and_tight() {
    let mut last = 0;
    for us in 0..200_000u64 {
        let i = DelayHistogram::bucket(us);
        assert!(i >= last);
        last = i;
        let upper = DelayHistogram::upper_us(i);
        assert!(upper > us && upper <= us + us / 8 + 1, "{us} -> {upper}");
    }
}

/// A two-node run with per-heartbeat delays (ms) and losses (`None`).
struct Sim {
    links: [HeartbeatLink; 2],
    seq: [u64; 2],
    /// In flight: (delivery ms, to, seq, heartbeat).
    wire: Vec<(u64, usize, u64, Heartbeat)>,
    /// Per node: the latest lease end it was given.
    lease: [Option<Instant>; 2],
    /// Per node: the peer declared failed at this last_heard.
    failed: [Option<Instant>; 2],
}

fn run(delays: [&[Option<u64>]; 2], ms: u64) -> Sim {
    let mut s = Sim {
        links: [
            HeartbeatLink::new(timing(), t(0), vec![]),
            HeartbeatLink::new(timing(), t(3), vec![]),
        ],
        seq: [1000, 5000],
        wire: Vec::new(),
        lease: [None, None],
        failed: [None, None],
    };
    let mut n = [0usize; 2];
    for now in 0..ms {
        for i in 0..2 {
            if now < 3 && i == 1 {
                continue;
            }
            while let Some(h) = s.links[i].poll_transmit(t(now), 0) {
                s.links[i].on_sent(t(now), s.seq[i]);
                let d = delays[i][n[i] % delays[i].len()];
                n[i] += 1;
                if let Some(d) = d {
                    s.wire.push((now + d, 1 - i, s.seq[i], h));
                }
                s.seq[i] += 1;
            }
        }
        let mut due: Vec<_> = s.wire.iter().filter(|w| w.0 <= now).cloned().collect();
        s.wire.retain(|w| w.0 > now);
        due.sort_by_key(|w| w.0);
        for (at, to, seq, h) in due {
            s.links[to].on_heartbeat(t(at), 0, Epoch(1), seq, &h);
        }
        for i in 0..2 {
            while let Some(ev) = s.links[i].poll(t(now)) {
                match ev {
                    LinkEvent::LeaseUntil(u) => s.lease[i] = Some(u),
                    LinkEvent::Detector(DetectorEvent::PeerFailed { last_heard, .. }) => {
                        s.failed[i] = Some(last_heard)
                    }
                    _ => {}
                }
            }
        }
    }
    s
}

#[test]
fn steady_heartbeats_under_jitter_never_lapse() {
    // One-way delays of 0-7 ms, varying: no lapse, no failure.
    let a: Vec<_> = (0..37).map(|i| Some((i * 3) % 8)).collect();
    let b: Vec<_> = (0..41).map(|i| Some((i * 5) % 7)).collect();
    let s = run([&a, &b], 5_000);
    for l in &s.links {
        assert_eq!(l.stats().lease_lapses, 0, "{:?}", l.stats());
        assert!(l.is_mutual());
    }
    assert_eq!(s.failed, [None, None]);
}

proptest! {
    /// Whatever the delays and losses: once a node declares its peer failed
    /// after last hearing it at `h`, the peer's lease never runs past
    /// `h + lease`, so the node may speak at `h + takeover wait`.
    #[test]
    fn the_lease_ends_before_the_peer_may_speak(
        a in prop::collection::vec(prop::option::weighted(0.9, 0u64..60), 1..40),
        b in prop::collection::vec(prop::option::weighted(0.9, 0u64..60), 1..40),
    ) {
        let s = run([&a, &b], 3_000);
        let tm = timing();
        for i in 0..2 {
            if let (Some(h), Some(u)) = (s.failed[i], s.lease[1 - i]) {
                prop_assert!(u <= h.plus_ns(tm.lease_timeout_ns()), "{i}: {u:?} > {h:?} + lease");
                prop_assert!(u.plus_ns(tm.margin_ns) <= tm.voice_at(h));
            }
        }
    }
}

#[test]
fn a_burst_of_losses_is_detected_and_the_lease_ended_first() {
    // Every 40th..79th heartbeat of server 0 is lost (200 ms of silence at
    // a time, answers included): server 1 declares it failed.
    let a: Vec<_> = (0..80).map(|i| (i < 40).then_some(2)).collect();
    let s = run([&a, &[Some(2)]], 3_000);
    let h = s.failed[1].expect("detected");
    let u = s.lease[0].expect("leased");
    assert!(u <= h.plus_ns(timing().lease_timeout_ns()), "{u:?} {h:?}");
    assert!(s.links[0].stats().lease_lapses >= 1);
}

#[test]
fn a_peer_that_answers_heartbeats_but_not_the_log_is_declared_failed() {
    let mut l = HeartbeatLink::new(timing(), t(0), vec![]);
    // A healthy peer: every heartbeat echoed at once.
    let beat = |l: &mut HeartbeatLink, ms: u64| {
        if l.poll_transmit(t(ms), 0).is_some() {
            let seq = 100 + l.stats().sent;
            l.on_sent(t(ms), seq);
        }
        let last = 100 + l.stats().sent - 1;
        l.on_heartbeat(t(ms), 0, Epoch(1), 10 + ms, &hb(last));
    };
    let failed = |ev: &[LinkEvent]| {
        ev.iter()
            .any(|e| matches!(e, LinkEvent::Detector(DetectorEvent::PeerFailed { .. })))
    };
    let bound_ms = LOG_STALL_MIN_NS / MS;
    // Writers wait, but the acknowledgement keeps moving (a slow log
    // under load): never a failure, however long.
    for ms in (0..3 * bound_ms).step_by(10) {
        beat(&mut l, ms);
        l.on_log_progress(t(ms), true, ms / 100, 5000);
        assert!(!failed(&drain(&mut l, t(ms))), "failed at {ms}");
    }
    // No entry acknowledged for as long, but its bytes move (one large
    // entry on a shared link): no failure either.
    let start = 3 * bound_ms;
    for ms in (start..start + 3 * bound_ms).step_by(10) {
        beat(&mut l, ms);
        l.on_log_progress(t(ms), true, 7, (1 << 20) - (ms - start));
        assert!(!failed(&drain(&mut l, t(ms))), "failed at {ms}");
    }
    // Nothing waits: an unmoving acknowledgement is no stall either.
    let start = 6 * bound_ms;
    for ms in (start..start + 2 * bound_ms).step_by(10) {
        beat(&mut l, ms);
        l.on_log_progress(t(ms), false, 7, 0);
        assert!(!failed(&drain(&mut l, t(ms))), "failed at {ms}");
    }
    // Writers wait and nothing is acknowledged, not even a byte: failed
    // after the bound,
    // though heartbeats never stopped, with the last one heard.
    let start = start + 2 * bound_ms;
    let mut at = None;
    for ms in (start..start + 2 * bound_ms).step_by(10) {
        beat(&mut l, ms);
        l.on_log_progress(t(ms), true, 7, 4096);
        let ev = drain(&mut l, t(ms));
        if failed(&ev) {
            assert!(ev.contains(&LinkEvent::Detector(DetectorEvent::PeerFailed {
                last_heard: t(ms),
                ever_heard: true
            })));
            let stalled = ev
                .iter()
                .position(|e| matches!(e, LinkEvent::LogStalled { .. }));
            let failed_at = ev.iter().position(|e| matches!(e, LinkEvent::Detector(_)));
            assert!(stalled.is_some() && stalled < failed_at, "{ev:?}");
            at = Some(ms - start);
            break;
        }
    }
    let at = at.expect("declared failed");
    assert!((bound_ms..=bound_ms + 20).contains(&at), "after {at} ms");
    assert_eq!(l.stats().log_stalls, 1);
}

#[test]
fn a_log_stall_of_a_peer_that_never_heard_us_is_not_judged() {
    let mut l = HeartbeatLink::new(timing(), t(0), vec![]);
    for ms in (0..3000).step_by(10) {
        send_until(&mut l, ms);
        // It speaks but echoes nothing of ours: not mutual.
        l.on_heartbeat(t(ms), 0, Epoch(1), 10 + ms, &hb(0));
        l.on_log_progress(t(ms), true, 0, 0);
        assert!(
            !drain(&mut l, t(ms))
                .iter()
                .any(|e| matches!(e, LinkEvent::LogStalled { .. })),
            "at {ms}"
        );
    }
}

#[test]
fn a_heartbeat_that_comes_too_late_still_counts_in_the_delay() {
    let mut l = HeartbeatLink::new(timing(), t(0), vec![]);
    send_until(&mut l, 0);
    let mut h = hb(100);
    h.sent_unix_ns = 1_000 * MS;
    l.on_heartbeat(t(1), 1_000 * MS + 200_000, Epoch(1), 7, &h);
    drain(&mut l, t(1));
    // The next one was sent at 1,010 ms and held up 45 ms: the peer is
    // declared failed before it arrives, and its delay is recorded all
    // the same.
    assert!(drain(&mut l, t(40))
        .iter()
        .any(|e| matches!(e, LinkEvent::Detector(DetectorEvent::PeerFailed { .. }))));
    h.sent_unix_ns = 1_010 * MS;
    l.on_heartbeat(t(56), 1_055 * MS, Epoch(1), 8, &h);
    assert_eq!(l.stats().delay.count(), 2);
    assert_eq!(l.stats().delay.max_ns(), 45 * MS);
}
