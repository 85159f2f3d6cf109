//! The node's one clock: the core takes time as an argument, and every shell
//! reads it here, so all of a node's [`Instant`]s share one origin.

use coral_core::Instant;

/// A monotonic clock whose zero is when it was created.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock {
            origin: std::time::Instant::now(),
        }
    }

    /// Now, as the core's [`Instant`].
    pub fn now(&self) -> Instant {
        Instant(self.origin.elapsed().as_nanos() as u64)
    }
}

/// Wall-clock now in unix nanoseconds (for events.csv only: never for
/// decisions). The kit has one definition of it, faultinject's, which
/// writes every events.csv.
pub use faultinject::now_unix_ns as unix_ns;
