//! The node's `events.csv` (docs/CLI.md): one row per notable event, written
//! through the kit's common writer (`faultinject::events`) so every source
//! produces the same format and the runner can merge them.

use std::path::PathBuf;

use faultinject::events::{append_event, Event};

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
