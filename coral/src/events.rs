//! The node's `events.csv` (docs/CLI.md): one row per notable event, written
//! through the kit's common writer (`faultinject::events`) so every source
//! produces the same format and the runner can merge them.

use std::path::PathBuf;

use std::sync::atomic::{AtomicU64, Ordering};

use faultinject::events::{append_event, Event};

use crate::io::front::Front;
use crate::io::heartbeat::HeartbeatHandle;
use crate::io::leases::Leases;
use crate::io::logchan::LogServerStats;

/// Appends this node's events to one file (or nowhere).
#[derive(Debug, Clone)]
pub struct EventLog {
    path: Option<PathBuf>,
    host: String,
}

impl EventLog {
    /// Events of `host` go to `path` (none if `None`).
    pub fn new(path: Option<PathBuf>, host: &str) -> EventLog {
        EventLog {
            path,
            host: host.to_string(),
        }
    }

    /// Record one event now. Failures to write are reported on stderr and
    /// otherwise ignored: a full disk must not stop the service.
    pub fn record(&self, event: &str, detail: &str) {
        self.record_at(crate::clock::unix_ns(), event, detail);
    }

    /// Record one event with a given timestamp (unix ns).
    pub fn record_at(&self, t_unix_ns: u64, event: &str, detail: &str) {
        let Some(path) = &self.path else { return };
        let ev = Event {
            t_unix_ns,
            host: self.host.clone(),
            source: "coral".into(),
            event: event.into(),
            detail: detail.into(),
        };
        if let Err(e) = append_event(path, &ev) {
            tracing::warn!("cannot write event {event} to {}: {e:#}", path.display());
        }
    }
}

/// The detail of a `counters` row: heartbeats (with the one-way delay of
/// the peer's heartbeats, in microseconds), leases, window probes sent by
/// nudged connections, log channel and (on a front) the packet engine.
pub fn counters(
    hb: &HeartbeatHandle,
    leases: &Leases,
    log: &LogServerStats,
    front: Option<&Front>,
) -> String {
    let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let h = hb.counters();
    let us = |q: f64| h.link.delay.quantile_ns(q).map_or(0, |ns| ns / 1000);
    let mut c = format!(
        "hb_sent={} hb_received={} hb_rejected={} hb_stale={} hb_seq_gap={} hb_waits={} hb_delay_p50_us={} hb_delay_p99_us={} hb_delay_max_us={} lease_extensions={} lease_lapses={} lease_refreshes={} lease_errors={} nudge_probes={} log_entries={} log_replies={} log_unknown_conn={} log_rejected={} log_foreign={}",
        h.link.sent,
        h.link.received,
        h.rejected,
        h.link.stale,
        h.link.seq_gap,
        h.link.waits,
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
    );
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
