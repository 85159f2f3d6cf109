//! Shadow TCP state of one connection, kept from the client's segments only.
//!
//! The front sees client -> server frames and nothing else, so everything
//! about the server side is inferred: the server ISN is `ack - 1` of the
//! client's first ACK after its SYN, and the server's `snd_una` is the
//! client's cumulative ACK. Server acknowledgment positions are tracked as
//! 64-bit offsets in the server's byte stream (offset 0 = server ISN + 1), so
//! the server sequence space may wrap any number of times.

use crate::seq::SeqNum;
use crate::types::{Instant, NegotiatedOptions};
use crate::wire::{TcpOptions, TcpSegment};

/// What the backup's own kernel would negotiate for a SYN (same kernel and
/// sysctls as the primary's): used when the primary's `ConnOpen` report
/// never arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTcpDefaults {
    /// `net.ipv4.tcp_window_scaling`.
    pub window_scaling: bool,
    /// The window scale this host announces in its SYN-ACK.
    pub rcv_wscale: u8,
    /// `net.ipv4.tcp_sack`.
    pub sack: bool,
    /// `net.ipv4.tcp_timestamps` (non-zero).
    pub timestamps: bool,
}

impl Default for LocalTcpDefaults {
    /// Linux defaults with a 6 MiB `tcp_rmem` max: scaling, shift 7, SACK,
    /// timestamps.
    fn default() -> Self {
        LocalTcpDefaults {
            window_scaling: true,
            rcv_wscale: 7,
            sack: true,
            timestamps: true,
        }
    }
}

/// MSS assumed when the client's SYN carries none (RFC 9293 §3.7.1).
pub const DEFAULT_MSS: u16 = 536;

/// Shadow TCP state of one connection (see the module docs).
#[derive(Debug, Clone)]
pub struct ShadowTcp {
    client_isn: SeqNum,
    syn_options: TcpOptions,
    syn_window: u16,
    server_isn: Option<SeqNum>,
    /// Client's cumulative ACK as a server stream offset, and as a number.
    ack_off: u64,
    ack_seq: SeqNum,
    window: u16,
    wl1: SeqNum,
    wl2: SeqNum,
    max_window: u64,
    tsval: Option<(u32, Instant)>,
    tsecr: Option<(u32, Instant)>,
    fin_seq: Option<SeqNum>,
    rst: bool,
    server_opts: Option<NegotiatedOptions>,
    last_seen: Instant,
}

/// What one segment changed in the shadow state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShadowUpdate {
    /// This segment completed the handshake (the server ISN became known).
    pub established: bool,
    /// The cumulative ACK advanced.
    pub ack_advanced: bool,
}

impl ShadowTcp {
    /// Start from the client's SYN.
    pub fn from_syn(seg: &TcpSegment<'_>, now: Instant) -> ShadowTcp {
        ShadowTcp {
            client_isn: seg.seq,
            syn_options: seg.options,
            syn_window: seg.window,
            server_isn: None,
            ack_off: 0,
            ack_seq: SeqNum(0),
            window: seg.window,
            wl1: seg.seq,
            wl2: SeqNum(0),
            max_window: u64::from(seg.window),
            tsval: seg.options.timestamps.map(|(v, _)| (v, now)),
            tsecr: None,
            fin_seq: None,
            rst: false,
            server_opts: None,
            last_seen: now,
        }
    }

    /// Take a non-SYN segment into account (ACK, window, timestamps, FIN).
    /// A segment with ACK before the server ISN is known teaches the ISN.
    /// RST is not handled here (see [`note_rst`](Self::note_rst)).
    pub fn on_segment(&mut self, seg: &TcpSegment<'_>, now: Instant) -> ShadowUpdate {
        let mut up = ShadowUpdate::default();
        self.last_seen = now;
        if seg.flags.syn() {
            return up;
        }
        if let Some((v, _)) = seg.options.timestamps {
            if !matches!(self.tsval, Some((old, _)) if SeqNum(v).before(SeqNum(old))) {
                self.tsval = Some((v, now));
            }
        }
        if seg.flags.ack() {
            if self.server_isn.is_none() {
                self.server_isn = Some(SeqNum(seg.ack.0.wrapping_sub(1)));
                self.ack_seq = seg.ack;
                self.ack_off = 0;
                self.wl1 = seg.seq;
                self.wl2 = seg.ack;
                self.window = seg.window;
                self.max_window = self.max_window.max(self.scaled(seg.window));
                up.established = true;
            }
            if let Some((_, e)) = seg.options.timestamps {
                let newer = !matches!(self.tsecr, Some((old, _)) if !SeqNum(e).after(SeqNum(old)));
                if newer {
                    self.tsecr = Some((e, now));
                }
            }
            if let Some(off) = seg.ack.unwrap_near(self.ack_seq, self.ack_off) {
                if off > self.ack_off {
                    self.ack_off = off;
                    self.ack_seq = seg.ack;
                    up.ack_advanced = true;
                }
                // RFC 9293 §3.10.7.4 window update rule, for ACKs not older
                // than snd_una.
                if off >= self.ack_off
                    && (self.wl1.before(seg.seq)
                        || (self.wl1 == seg.seq && !seg.ack.before(self.wl2)))
                {
                    self.window = seg.window;
                    self.wl1 = seg.seq;
                    self.wl2 = seg.ack;
                    self.max_window = self.max_window.max(self.scaled(seg.window));
                }
            }
        }
        if seg.flags.fin() && self.fin_seq.is_none() {
            self.fin_seq = Some(seg.seq.plus(seg.payload.len() as u64));
        }
        up
    }

    /// Record that the client reset the connection.
    pub fn note_rst(&mut self) {
        self.rst = true;
    }

    /// The primary's `ConnOpen` report arrived.
    pub fn set_server_options(&mut self, opts: NegotiatedOptions) {
        self.server_opts = Some(opts);
    }

    /// The server side's options: the primary's report if it arrived
    /// (`true`), else what `local` would negotiate for the client's SYN
    /// (`false`).
    pub fn server_options(&self, local: &LocalTcpDefaults) -> (NegotiatedOptions, bool) {
        if let Some(o) = self.server_opts {
            return (o, true);
        }
        let s = &self.syn_options;
        let ws = local.window_scaling && s.wscale.is_some();
        (
            NegotiatedOptions {
                mss: s.mss.unwrap_or(DEFAULT_MSS),
                snd_wscale: if ws { s.wscale_clamped() } else { None },
                rcv_wscale: if ws {
                    Some(local.rcv_wscale.min(14))
                } else {
                    None
                },
                sack: local.sack && s.sack_permitted,
                timestamps: local.timestamps && s.timestamps.is_some(),
                usec_ts: false,
            },
            false,
        )
    }

    /// Window-scale shift applied to the client's (non-SYN) windows.
    fn client_shift(&self) -> u8 {
        match self.server_opts {
            Some(o) => o.snd_wscale.unwrap_or(0).min(14),
            None => self.syn_options.wscale_clamped().unwrap_or(0),
        }
    }

    fn scaled(&self, w: u16) -> u64 {
        u64::from(w) << self.client_shift()
    }

    /// Client ISN (sequence number of its SYN).
    pub fn client_isn(&self) -> SeqNum {
        self.client_isn
    }
    /// Options of the client's SYN.
    pub fn syn_options(&self) -> &TcpOptions {
        &self.syn_options
    }
    /// Raw window of the client's SYN.
    pub fn syn_window(&self) -> u16 {
        self.syn_window
    }
    /// Server ISN, once learned from the client's first ACK.
    pub fn server_isn(&self) -> Option<SeqNum> {
        self.server_isn
    }
    /// True once the server ISN is known.
    pub fn established(&self) -> bool {
        self.server_isn.is_some()
    }
    /// Client's cumulative ACK (server `snd_una`), once established.
    pub fn snd_una(&self) -> Option<SeqNum> {
        self.server_isn.map(|_| self.ack_seq)
    }
    /// Client's cumulative ACK as a server stream offset (0 = ISN + 1).
    pub fn acked_offset(&self) -> u64 {
        self.ack_off
    }
    /// Server sequence number of server stream offset `off`.
    pub fn server_seq_at(&self, off: u64) -> Option<SeqNum> {
        self.server_isn.map(|i| i.plus(1).plus(off))
    }
    /// Last raw window the client sent (after the window update rule).
    pub fn window_raw(&self) -> u16 {
        self.window
    }
    /// Last client window in bytes (scaled).
    pub fn window_scaled(&self) -> u64 {
        self.scaled(self.window)
    }
    /// Largest client window in bytes seen.
    pub fn max_window_scaled(&self) -> u64 {
        self.max_window.max(self.window_scaled())
    }
    /// Sequence number of the segment that last updated the window (snd_wl1).
    pub fn snd_wl1(&self) -> SeqNum {
        self.wl1
    }
    /// Last TSval the client sent, with when it was seen.
    pub fn last_tsval(&self) -> Option<(u32, Instant)> {
        self.tsval
    }
    /// Newest TSecr the client echoed (a server TSval), with when it was
    /// first seen.
    pub fn last_tsecr(&self) -> Option<(u32, Instant)> {
        self.tsecr
    }
    /// Sequence number of the client's FIN, if one was seen.
    pub fn client_fin(&self) -> Option<SeqNum> {
        self.fin_seq
    }
    /// The client reset the connection.
    pub fn reset(&self) -> bool {
        self.rst
    }
    /// When the last segment was seen.
    pub fn last_seen(&self) -> Instant {
        self.last_seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{TcpFlags, TcpSegment};
    use std::net::Ipv4Addr;

    fn seg(
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        ts: Option<(u32, u32)>,
    ) -> TcpSegment<'static> {
        TcpSegment {
            src_ip: Ipv4Addr::new(198, 51, 100, 1),
            dst_ip: Ipv4Addr::new(192, 0, 2, 100),
            src_port: 1234,
            dst_port: 80,
            seq: SeqNum(seq),
            ack: SeqNum(ack),
            flags: TcpFlags(flags),
            window,
            options: TcpOptions {
                timestamps: ts,
                wscale: Some(2),
                ..Default::default()
            },
            payload: b"",
            ttl: 64,
        }
    }

    #[test]
    fn server_isn_from_first_ack_and_ack_offsets_across_wrap() {
        let mut s = ShadowTcp::from_syn(&seg(10, 0, TcpFlags::SYN, 100, Some((1, 0))), Instant(0));
        assert!(!s.established());
        assert_eq!(s.snd_una(), None);
        // A segment without ACK teaches nothing.
        s.on_segment(&seg(11, 0, 0, 100, None), Instant(1));
        assert!(!s.established());
        let up = s.on_segment(&seg(11, 0, TcpFlags::ACK, 100, Some((2, 50))), Instant(2));
        assert!(up.established);
        assert_eq!(s.server_isn(), Some(SeqNum(u32::MAX)));
        assert_eq!(s.acked_offset(), 0);
        assert_eq!(s.server_seq_at(5), Some(SeqNum(5)));
        let up = s.on_segment(
            &seg(11, 70_000, TcpFlags::ACK, 100, Some((3, 60))),
            Instant(3),
        );
        assert!(up.ack_advanced);
        assert_eq!(s.acked_offset(), 70_000);
        // An older ACK does not move it back nor update the window.
        s.on_segment(
            &seg(11, 60_000, TcpFlags::ACK, 5, Some((4, 60))),
            Instant(4),
        );
        assert_eq!(s.acked_offset(), 70_000);
        assert_eq!(s.window_raw(), 100);
        assert_eq!(s.window_scaled(), 400);
        // TSecr: newest kept with its first-seen instant; TSval newest.
        assert_eq!(s.last_tsecr(), Some((60, Instant(3))));
        assert_eq!(s.last_tsval(), Some((4, Instant(4))));
    }

    #[test]
    fn window_update_rule_and_fin() {
        let mut s = ShadowTcp::from_syn(&seg(u32::MAX, 0, TcpFlags::SYN, 100, None), Instant(0));
        s.on_segment(&seg(0, 1, TcpFlags::ACK, 100, None), Instant(1));
        // Newer seq updates the window.
        s.on_segment(&seg(50, 1, TcpFlags::ACK, 300, None), Instant(2));
        assert_eq!((s.window_raw(), s.snd_wl1()), (300, SeqNum(50)));
        // An older seq (reordered) does not.
        s.on_segment(&seg(20, 1, TcpFlags::ACK, 7, None), Instant(3));
        assert_eq!(s.window_raw(), 300);
        assert_eq!(s.max_window_scaled(), 1200);
        let mut f = seg(50, 1, TcpFlags::ACK | TcpFlags::FIN, 300, None);
        f.payload = b"abc";
        s.on_segment(&f, Instant(4));
        assert_eq!(s.client_fin(), Some(SeqNum(53)));
    }

    #[test]
    fn fallback_options_follow_the_syn_and_local_sysctls() {
        let s = ShadowTcp::from_syn(&seg(1, 0, TcpFlags::SYN, 100, Some((1, 0))), Instant(0));
        let local = LocalTcpDefaults {
            window_scaling: true,
            rcv_wscale: 9,
            sack: true,
            timestamps: false,
        };
        let (o, from_primary) = s.server_options(&local);
        assert!(!from_primary);
        assert_eq!(o.mss, DEFAULT_MSS);
        assert_eq!((o.snd_wscale, o.rcv_wscale), (Some(2), Some(9)));
        assert!(!o.sack, "the SYN did not permit SACK");
        assert!(!o.timestamps, "local timestamps are off");
        let local = LocalTcpDefaults {
            window_scaling: false,
            ..local
        };
        assert_eq!(s.server_options(&local).0.rcv_wscale, None);
    }
}
