//! The node's `counters` rows in events.csv (docs/CLI.md): heartbeats,
//! leases, nudges, the log channel and (on a front) the data path, written
//! once a second when they changed, and once more when the node stops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::io::front::Front;
use crate::io::heartbeat::HeartbeatHandle;
use crate::io::leases::Leases;
use crate::io::logchan::LogServerStats;
use crate::takeover::TakeoverCtx;

/// Writes `counters` rows, each only when the counters changed since the
/// last one (they change rarely once the node is idle).
pub struct Counters {
    log: Arc<LogServerStats>,
    last: String,
}

impl Counters {
    /// Counters of the shells in a node's context, and of its log server.
    pub fn new(log: Arc<LogServerStats>) -> Counters {
        Counters {
            log,
            last: String::new(),
        }
    }

    /// The once-a-second row: written unless it is the last one again.
    pub fn tick(&mut self, ctx: &TakeoverCtx, hb: &HeartbeatHandle) {
        let c = row(hb, &ctx.leases, &self.log, ctx.front.as_ref());
        if c != self.last {
            ctx.events.record("counters", &c);
            self.last = c;
        }
    }

    /// The last row, written whether or not it changed (the node stops).
    pub fn last(&mut self, ctx: &TakeoverCtx, hb: &HeartbeatHandle) {
        let c = row(hb, &ctx.leases, &self.log, ctx.front.as_ref());
        ctx.events.record("counters", &c);
        self.last = c;
    }
}

/// The detail of a `counters` row: heartbeats (with the one-way delay of
/// the peer's heartbeats, in microseconds), leases, window probes sent by
/// nudged connections, log channel and (on a front) the packet engine.
fn row(
    hb: &HeartbeatHandle,
    leases: &Leases,
    log: &LogServerStats,
    front: Option<&Front>,
) -> String {
    let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let h = hb.counters();
    let us = |q: f64| h.link.delay.quantile_ns(q).map_or(0, |ns| ns / 1000);
    let mut c = format!(
        "hb_sent={} hb_received={} hb_rejected={} hb_stale={} hb_seq_gap={} hb_waits={} hb_own_stalls={} hb_delay_p50_us={} hb_delay_p99_us={} hb_delay_max_us={} lease_extensions={} lease_lapses={} lease_refreshes={} lease_errors={} nudge_probes={} log_entries={} log_replies={} log_unknown_conn={} log_rejected={} log_foreign={} log_acks={}",
        h.link.sent,
        h.link.received,
        h.rejected,
        h.link.stale,
        h.link.seq_gap,
        h.link.waits,
        h.link.own_stalls,
        us(0.5),
        us(0.99),
        h.link.delay.max_ns() / 1000,
        h.link.lease_extensions,
        h.link.lease_lapses,
        r(&leases.refreshes),
        r(&leases.refresh_errors),
        crate::io::live_conns::probes_sent(),
        r(&log.entries),
        r(&log.replies),
        r(&log.unknown_conn),
        r(&log.rejected),
        r(&log.foreign),
        r(&log.acks),
    );
    // The log round trip of this node's replies (primary side), us.
    let rtt = crate::io::logchan::round_trips();
    let rtt_us = |q: f64| rtt.quantile_ns(q).map_or(0, |ns| ns / 1000);
    c.push_str(&format!(
        " log_rtt_count={} log_rtt_p50_us={} log_rtt_p99_us={} log_rtt_max_us={}",
        rtt.count(),
        rtt_us(0.5),
        rtt_us(0.99),
        rtt.max_ns() / 1000,
    ));
    if let Some(f) = front {
        c.push_str(&format!(
            " front_frames={} front_forwarded={} front_dropped={} front_malformed={} front_arp_replies={} front_busy_ns={} front_ring_full={}",
            r(&f.stats.frames),
            r(&f.stats.forwarded),
            r(&f.stats.dropped),
            r(&f.stats.malformed),
            r(&f.stats.arp_replies),
            r(&f.stats.busy_ns),
            r(&f.stats.ring_full),
        ));
    }
    c
}
