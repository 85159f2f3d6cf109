//! Small value types shared by every part of the core.

use std::fmt;
use std::net::Ipv4Addr;

/// A point in time, in nanoseconds on a monotonic clock chosen by the caller.
///
/// The core never reads a clock: every function that needs "now" takes one of
/// these. Only differences between two `Instant`s are meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

impl Instant {
    /// The instant `ms` milliseconds after `self`.
    pub fn plus_ms(self, ms: u64) -> Instant {
        Instant(self.0.saturating_add(ms.saturating_mul(1_000_000)))
    }
    /// The instant `ns` nanoseconds after `self`.
    pub fn plus_ns(self, ns: u64) -> Instant {
        Instant(self.0.saturating_add(ns))
    }
    /// Nanoseconds from `earlier` to `self` (0 if `earlier` is later).
    pub fn since_ns(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
    /// Whole milliseconds from `earlier` to `self` (0 if `earlier` is later).
    pub fn since_ms(self, earlier: Instant) -> u64 {
        self.since_ns(earlier) / 1_000_000
    }
}

/// The 4-tuple naming one client connection, as seen from the server side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FourTuple {
    /// Client address.
    pub client_ip: Ipv4Addr,
    /// Client TCP port.
    pub client_port: u16,
    /// Service address (VIP) the client talks to.
    pub server_ip: Ipv4Addr,
    /// Service TCP port.
    pub server_port: u16,
}

impl fmt::Display for FourTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}->{}:{}",
            self.client_ip, self.client_port, self.server_ip, self.server_port
        )
    }
}

/// TCP options as negotiated on one side of a connection.
///
/// For the server side these come from the primary's `ConnOpen` report
/// (read with `getsockopt(TCP_INFO)`); they are what `TCP_REPAIR_OPTIONS`
/// needs to rebuild the socket on the backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct NegotiatedOptions {
    /// MSS the peer announced (what we may send).
    pub mss: u16,
    /// Window scale we apply to windows the client sends (`tcpi_snd_wscale`),
    /// `None` if window scaling is off.
    pub snd_wscale: Option<u8>,
    /// Window scale the server announced (`tcpi_rcv_wscale`).
    pub rcv_wscale: Option<u8>,
    /// SACK permitted on both sides.
    pub sack: bool,
    /// TCP timestamps on.
    pub timestamps: bool,
    /// Microsecond timestamps (Linux 6.7+, `TCPI_OPT_USEC_TS`).
    pub usec_ts: bool,
}

/// Identity of one CoRAL node (or of the witness) on every control channel.
///
/// Carried, authenticated, in the header of every control frame; the replay
/// window is kept per `NodeId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node{}", self.0)
    }
}

/// An ownership epoch: the witness grants each service address to at most
/// one node per epoch, and epochs only grow. A node that sees a higher epoch
/// for an address it serves has been deposed and must fence itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The next epoch (saturating at `u64::MAX`).
    pub fn next(self) -> Epoch {
        Epoch(self.0.saturating_add(1))
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}
