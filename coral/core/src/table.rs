//! The connection table of one front: client frames in, routed to their
//! [`Conn`] by 4-tuple, verdicts out.
//!
//! Connections are created only from a client SYN (without ACK); frames of
//! flows never seen starting are forwarded untouched
//! ([`ConnEvent::Untracked`]), e.g. connections left over from simplex mode.
//! The number of connections is bounded: a SYN for a new connection while
//! the table is full is dropped (the client retries its SYN later; the
//! primary never sees an unrecorded connection). Closed connections are
//! forgotten at once; [`ConnTable::sweep`] forgets handshakes that never
//! completed.

use crate::conn::{
    Conn, ConnConfig, ConnEvent, DropReason, NotRestorable, SegmentOutcome, TakeoverParams,
    TakeoverState, Verdict,
};
use crate::replylog::{LogOutcome, ReplyLogError};
use crate::types::{FourTuple, Instant, NegotiatedOptions};
use crate::wire::{parse_frame, FramePayload, TcpSegment, WireError};
use std::collections::HashMap;

/// Table limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableConfig {
    /// Most connections tracked at once.
    pub max_conns: usize,
    /// Per-connection configuration.
    pub conn: ConnConfig,
    /// [`ConnTable::sweep`] forgets connections whose handshake has not
    /// completed this long after their last segment.
    pub handshake_timeout_ms: u64,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            max_conns: 65536,
            conn: ConnConfig::default(),
            handshake_timeout_ms: 75_000,
        }
    }
}

/// Why a table operation on a connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// No such connection.
    #[error("no connection {0}")]
    UnknownConn(FourTuple),
    /// The connection cannot be rebuilt now.
    #[error(transparent)]
    NotRestorable(#[from] NotRestorable),
    /// The reply log refused the entry.
    #[error(transparent)]
    Log(#[from] ReplyLogError),
}

/// What [`ConnTable::on_frame`] did with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameOutcome {
    /// A TCP segment: its connection and what to do.
    Tcp {
        /// The connection (client = sender).
        tuple: FourTuple,
        /// Verdict and event.
        outcome: SegmentOutcome,
    },
    /// Not an unfragmented IPv4 TCP segment (ARP, ICMP, IPv6,
    /// fragments...): the caller decides.
    NotTcp,
}

/// All shadowed connections of one front.
#[derive(Debug, Clone, Default)]
pub struct ConnTable {
    conns: HashMap<FourTuple, Conn>,
    cfg: TableConfig,
}

impl ConnTable {
    /// An empty table.
    pub fn new(cfg: TableConfig) -> ConnTable {
        ConnTable {
            conns: HashMap::new(),
            cfg,
        }
    }

    /// Parse a captured Ethernet frame and, if it is TCP, feed it to
    /// [`on_segment`](Self::on_segment). Parse errors are returned (the
    /// caller should drop such frames).
    pub fn on_frame(&mut self, frame: &[u8], now: Instant) -> Result<FrameOutcome, WireError> {
        let p = parse_frame(frame)?;
        match p.payload {
            FramePayload::Tcp(seg) => Ok(FrameOutcome::Tcp {
                tuple: seg.client_tuple(),
                outcome: self.on_segment(&seg, now),
            }),
            _ => Ok(FrameOutcome::NotTcp),
        }
    }

    /// Feed one client segment: create, update or forget its connection.
    pub fn on_segment(&mut self, seg: &TcpSegment<'_>, now: Instant) -> SegmentOutcome {
        let tuple = seg.client_tuple();
        let is_syn = seg.flags.syn() && !seg.flags.ack() && !seg.flags.rst();
        if let Some(c) = self.conns.get_mut(&tuple) {
            let new_incarnation = is_syn
                && seg.seq != c.shadow().client_isn()
                && (!c.is_established() || c.is_closed());
            if !new_incarnation {
                let out = c.on_segment(seg, now);
                if c.is_closed() {
                    self.conns.remove(&tuple);
                }
                return out;
            }
            self.conns.remove(&tuple);
        } else if !is_syn {
            return SegmentOutcome {
                verdict: Verdict::Forward,
                event: Some(ConnEvent::Untracked),
            };
        }
        if self.conns.len() >= self.cfg.max_conns {
            return SegmentOutcome {
                verdict: Verdict::Drop(DropReason::TableFull),
                event: None,
            };
        }
        self.conns
            .insert(tuple, Conn::from_syn(seg, now, self.cfg.conn));
        SegmentOutcome {
            verdict: Verdict::Forward,
            event: Some(ConnEvent::Opened),
        }
    }

    /// The primary's `ConnOpen` report for `tuple`.
    pub fn on_conn_open(
        &mut self,
        tuple: &FourTuple,
        opts: NegotiatedOptions,
    ) -> Result<(), TableError> {
        self.conns
            .get_mut(tuple)
            .ok_or(TableError::UnknownConn(*tuple))?
            .on_conn_open(opts);
        Ok(())
    }

    /// Log a reply for `tuple` starting at server stream offset `start`.
    pub fn log_reply(
        &mut self,
        tuple: &FourTuple,
        start: u64,
        bytes: &[u8],
    ) -> Result<LogOutcome, TableError> {
        let c = self
            .conns
            .get_mut(tuple)
            .ok_or(TableError::UnknownConn(*tuple))?;
        Ok(c.log_reply(start, bytes)?)
    }

    /// The takeover query for one connection.
    pub fn takeover(
        &self,
        tuple: &FourTuple,
        now: Instant,
        params: &TakeoverParams,
    ) -> Result<TakeoverState, TableError> {
        let c = self
            .conns
            .get(tuple)
            .ok_or(TableError::UnknownConn(*tuple))?;
        Ok(c.takeover(now, params)?)
    }

    /// The takeover query for every connection (the snapshot of docs/DESIGN.md section 5
    /// step 1), sorted by 4-tuple.
    pub fn takeover_all(
        &self,
        now: Instant,
        params: &TakeoverParams,
    ) -> Vec<(FourTuple, Result<TakeoverState, NotRestorable>)> {
        let mut v: Vec<_> = self
            .conns
            .iter()
            .map(|(t, c)| (*t, c.takeover(now, params)))
            .collect();
        v.sort_by_key(|(t, _)| *t);
        v
    }

    /// Forget connections whose handshake has not completed within the
    /// handshake timeout of their last segment; returns them.
    pub fn sweep(&mut self, now: Instant) -> Vec<FourTuple> {
        let limit = self.cfg.handshake_timeout_ms;
        let stale: Vec<FourTuple> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.is_established() && now.since_ms(c.shadow().last_seen()) >= limit)
            .map(|(t, _)| *t)
            .collect();
        for t in &stale {
            self.conns.remove(t);
        }
        stale
    }

    /// Forget one connection.
    pub fn remove(&mut self, tuple: &FourTuple) -> Option<Conn> {
        self.conns.remove(tuple)
    }
    /// One connection.
    pub fn get(&self, tuple: &FourTuple) -> Option<&Conn> {
        self.conns.get(tuple)
    }
    /// Number of connections tracked.
    pub fn len(&self) -> usize {
        self.conns.len()
    }
    /// No connection tracked.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }
    /// All connections (arbitrary order).
    pub fn iter(&self) -> impl Iterator<Item = (&FourTuple, &Conn)> {
        self.conns.iter()
    }
}
