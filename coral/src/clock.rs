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

/// The system's monotonic clock (`CLOCK_MONOTONIC`, ns): the same in every
/// process of the host, so a deadline passed on through an `exec` means
/// the same there, and never stepped by a change of the wall clock.
pub fn system_monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Wall-clock now in unix nanoseconds (for events.csv only: never for
/// decisions). The kit has one definition of it, faultinject's, which
/// writes every events.csv.
pub use faultinject::now_unix_ns as unix_ns;
