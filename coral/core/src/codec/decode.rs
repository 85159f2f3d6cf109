//! Frame decoding: datagram (UDP) and streaming (TCP), with counted rejects
//! and a per-sender replay window.

use std::collections::HashMap;

use super::buf::PayloadError;
use super::messages::Message;
use super::{Channel, Frame, Header, Key, HEADER_LEN, MAGIC, MIN_FRAME, TAG_LEN, VERSION};
use crate::types::{Epoch, NodeId};

/// Why a frame was rejected. Every variant has its own counter in
/// [`RejectCounters`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// Fewer bytes than a frame needs (a datagram below the minimum, or a
    /// stream that ended inside a frame).
    #[error("short frame: {0} bytes")]
    Short(usize),
    /// The frame (or its declared payload) exceeds the configured maximum.
    #[error("oversized frame: {0} bytes")]
    Oversized(usize),
    /// The first four bytes are not the magic.
    #[error("bad magic")]
    BadMagic,
    /// A version this code does not speak.
    #[error("unknown version {0}")]
    UnknownVersion(u8),
    /// The length field disagrees with the datagram size.
    #[error("bad length: header says {declared} payload bytes, datagram holds {actual}")]
    BadLength {
        /// Payload length in the header.
        declared: usize,
        /// Payload bytes present.
        actual: usize,
    },
    /// The tag does not verify: unauthenticated or corrupted.
    #[error("bad tag (unauthenticated)")]
    BadTag,
    /// An authenticated frame for another (or no) channel.
    #[error("wrong channel {0}")]
    WrongChannel(u8),
    /// An authenticated frame of an unknown type.
    #[error("unknown type {kind} on channel {channel:?}")]
    UnknownType {
        /// The channel.
        channel: Channel,
        /// The type code.
        kind: u8,
    },
    /// An authenticated frame whose payload does not parse.
    #[error("bad payload: {0}")]
    BadPayload(PayloadError),
    /// Same sequence number as the last accepted one in this epoch.
    #[error("replayed sequence {seq} from {sender}")]
    Replay {
        /// Sender.
        sender: NodeId,
        /// Sequence number received.
        seq: u64,
    },
    /// Sequence number below the last accepted one in this epoch.
    #[error("out-of-order sequence {seq} < {last} from {sender}")]
    OutOfOrder {
        /// Sender.
        sender: NodeId,
        /// Sequence number received.
        seq: u64,
        /// Last accepted.
        last: u64,
    },
    /// Epoch below the sender's last epoch, or below the receiver's floor.
    #[error("stale epoch {epoch} < {current} from {sender}")]
    StaleEpoch {
        /// Sender.
        sender: NodeId,
        /// Epoch received.
        epoch: Epoch,
        /// Epoch required at least.
        current: Epoch,
    },
    /// The stream decoder's buffer would overflow (nothing was appended).
    #[error("stream buffer full")]
    BufferFull,
    /// More distinct authenticated senders than the decoder tracks.
    #[error("too many peers")]
    TooManyPeers,
}

impl Reject {
    /// The counter name of this reason (as exported by [`RejectCounters::iter`]).
    pub fn name(&self) -> &'static str {
        match self {
            Reject::Short(_) => "short",
            Reject::Oversized(_) => "oversized",
            Reject::BadMagic => "bad_magic",
            Reject::UnknownVersion(_) => "unknown_version",
            Reject::BadLength { .. } => "bad_length",
            Reject::BadTag => "bad_tag",
            Reject::WrongChannel(_) => "wrong_channel",
            Reject::UnknownType { .. } => "unknown_type",
            Reject::BadPayload(_) => "bad_payload",
            Reject::Replay { .. } => "replay",
            Reject::OutOfOrder { .. } => "out_of_order",
            Reject::StaleEpoch { .. } => "stale_epoch",
            Reject::BufferFull => "buffer_full",
            Reject::TooManyPeers => "too_many_peers",
        }
    }

    /// True if a byte stream cannot be trusted past this reject (frame
    /// boundaries lost or unauthenticated): the shell must close the
    /// connection. Other rejects skip one authenticated frame.
    pub fn is_fatal_for_stream(&self) -> bool {
        matches!(
            self,
            Reject::Short(_)
                | Reject::Oversized(_)
                | Reject::BadMagic
                | Reject::UnknownVersion(_)
                | Reject::BadLength { .. }
                | Reject::BadTag
        )
    }
}

/// Counts of accepted frames and of rejects by reason, for the shells to
/// export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RejectCounters {
    /// Frames accepted.
    pub accepted: u64,
    /// [`Reject::Short`].
    pub short: u64,
    /// [`Reject::Oversized`].
    pub oversized: u64,
    /// [`Reject::BadMagic`].
    pub bad_magic: u64,
    /// [`Reject::UnknownVersion`].
    pub unknown_version: u64,
    /// [`Reject::BadLength`].
    pub bad_length: u64,
    /// [`Reject::BadTag`].
    pub bad_tag: u64,
    /// [`Reject::WrongChannel`].
    pub wrong_channel: u64,
    /// [`Reject::UnknownType`].
    pub unknown_type: u64,
    /// [`Reject::BadPayload`].
    pub bad_payload: u64,
    /// [`Reject::Replay`].
    pub replay: u64,
    /// [`Reject::OutOfOrder`].
    pub out_of_order: u64,
    /// [`Reject::StaleEpoch`].
    pub stale_epoch: u64,
    /// [`Reject::BufferFull`].
    pub buffer_full: u64,
    /// [`Reject::TooManyPeers`].
    pub too_many_peers: u64,
}

impl RejectCounters {
    /// Count one reject.
    pub fn record(&mut self, r: &Reject) {
        let c = match r {
            Reject::Short(_) => &mut self.short,
            Reject::Oversized(_) => &mut self.oversized,
            Reject::BadMagic => &mut self.bad_magic,
            Reject::UnknownVersion(_) => &mut self.unknown_version,
            Reject::BadLength { .. } => &mut self.bad_length,
            Reject::BadTag => &mut self.bad_tag,
            Reject::WrongChannel(_) => &mut self.wrong_channel,
            Reject::UnknownType { .. } => &mut self.unknown_type,
            Reject::BadPayload(_) => &mut self.bad_payload,
            Reject::Replay { .. } => &mut self.replay,
            Reject::OutOfOrder { .. } => &mut self.out_of_order,
            Reject::StaleEpoch { .. } => &mut self.stale_epoch,
            Reject::BufferFull => &mut self.buffer_full,
            Reject::TooManyPeers => &mut self.too_many_peers,
        };
        *c = c.saturating_add(1);
    }

    /// Every counter with its name (`accepted` first, then reject reasons
    /// named as [`Reject::name`]).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("accepted", self.accepted),
            ("short", self.short),
            ("oversized", self.oversized),
            ("bad_magic", self.bad_magic),
            ("unknown_version", self.unknown_version),
            ("bad_length", self.bad_length),
            ("bad_tag", self.bad_tag),
            ("wrong_channel", self.wrong_channel),
            ("unknown_type", self.unknown_type),
            ("bad_payload", self.bad_payload),
            ("replay", self.replay),
            ("out_of_order", self.out_of_order),
            ("stale_epoch", self.stale_epoch),
            ("buffer_full", self.buffer_full),
            ("too_many_peers", self.too_many_peers),
        ]
        .into_iter()
    }

    /// The counter for reason `name` (as in [`Reject::name`]), if any.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Sum of all reject counters.
    pub fn total_rejected(&self) -> u64 {
        self.iter()
            .skip(1)
            .map(|(_, v)| v)
            .fold(0, u64::saturating_add)
    }
}

/// Per-sender replay protection: a frame is accepted only if its epoch is at
/// least the sender's last epoch (and the receiver's floor) and, within the
/// same epoch, its sequence number is above the last accepted one. A higher
/// epoch resets the sender's window.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    peers: HashMap<NodeId, (Epoch, u64)>,
    floor: Epoch,
    max_peers: usize,
}

impl ReplayWindow {
    /// A window tracking at most `max_peers` senders.
    pub fn new(max_peers: usize) -> Self {
        ReplayWindow {
            peers: HashMap::new(),
            floor: Epoch(0),
            max_peers,
        }
    }

    /// Reject every frame with an epoch below `floor` from now on (only
    /// raises the floor).
    pub fn raise_floor(&mut self, floor: Epoch) {
        self.floor = self.floor.max(floor);
    }

    /// The last accepted (epoch, sequence) of `sender`.
    pub fn last(&self, sender: NodeId) -> Option<(Epoch, u64)> {
        self.peers.get(&sender).copied()
    }

    /// Check `sender`'s (epoch, seq) and, if fresh, record it.
    pub fn accept(&mut self, sender: NodeId, epoch: Epoch, seq: u64) -> Result<(), Reject> {
        if epoch < self.floor {
            return Err(Reject::StaleEpoch {
                sender,
                epoch,
                current: self.floor,
            });
        }
        match self.peers.get(&sender) {
            Some(&(e, _)) if epoch < e => Err(Reject::StaleEpoch {
                sender,
                epoch,
                current: e,
            }),
            Some(&(e, last)) if epoch == e && seq == last => Err(Reject::Replay { sender, seq }),
            Some(&(e, last)) if epoch == e && seq < last => {
                Err(Reject::OutOfOrder { sender, seq, last })
            }
            None if self.peers.len() >= self.max_peers => Err(Reject::TooManyPeers),
            _ => {
                self.peers.insert(sender, (epoch, seq));
                Ok(())
            }
        }
    }
}

/// Decoder limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// The channel frames must belong to.
    pub channel: Channel,
    /// Largest accepted payload, bytes.
    pub max_payload: usize,
    /// Most distinct senders tracked by the replay window.
    pub max_peers: usize,
}

impl DecoderConfig {
    /// Defaults per channel: LOG 16 MiB payloads (whole responses), JOIN
    /// 1 MiB (a maximal `NodeConfig` is about 530 KB), HEARTBEAT and WITNESS
    /// 1 KiB (one unfragmented datagram; their largest message is 211
    /// bytes).
    pub fn for_channel(channel: Channel) -> Self {
        let max_payload = match channel {
            Channel::Log => 16 << 20,
            Channel::Join => 1 << 20,
            Channel::Heartbeat | Channel::Witness => 1024,
        };
        DecoderConfig {
            channel,
            max_payload,
            max_peers: 64,
        }
    }

    /// Largest accepted frame, bytes.
    pub fn max_frame(&self) -> usize {
        self.max_payload.saturating_add(MIN_FRAME)
    }
}

/// Shared core: checks one complete frame candidate `buf` whose header says
/// `buf.len() == MIN_FRAME + declared payload`.
struct Checker {
    key: Key,
    cfg: DecoderConfig,
    window: ReplayWindow,
    counters: RejectCounters,
}

/// Header fields read before authentication (not yet trusted).
fn read_prefix(buf: &[u8], cfg: &DecoderConfig) -> Result<usize, Reject> {
    if buf[0..4] != MAGIC {
        return Err(Reject::BadMagic);
    }
    if buf[4] != VERSION {
        return Err(Reject::UnknownVersion(buf[4]));
    }
    let len = u32::from_be_bytes([buf[11], buf[12], buf[13], buf[14]]) as usize;
    if len > cfg.max_payload {
        return Err(Reject::Oversized(len.saturating_add(MIN_FRAME)));
    }
    Ok(len)
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

impl Checker {
    fn new(key: Key, cfg: DecoderConfig) -> Self {
        Checker {
            key,
            cfg,
            window: ReplayWindow::new(cfg.max_peers),
            counters: RejectCounters::default(),
        }
    }

    /// `frame` is exactly one frame (header, payload, tag), lengths checked.
    fn check(&mut self, frame: &[u8]) -> Result<Frame, Reject> {
        let body = frame.len() - TAG_LEN;
        if !self.key.verify(&frame[..body], &frame[body..]) {
            return Err(Reject::BadTag);
        }
        let channel = Channel::from_u8(frame[5])
            .filter(|c| *c == self.cfg.channel)
            .ok_or(Reject::WrongChannel(frame[5]))?;
        let kind = frame[6];
        if !Message::known_kind(channel, kind) {
            return Err(Reject::UnknownType { channel, kind });
        }
        let header = Header {
            channel,
            kind,
            sender: NodeId(u32::from_be_bytes([
                frame[7], frame[8], frame[9], frame[10],
            ])),
            epoch: Epoch(be_u64(&frame[15..23])),
            seq: be_u64(&frame[23..31]),
        };
        let msg = Message::decode_payload(channel, kind, &frame[HEADER_LEN..body])
            .map_err(Reject::BadPayload)?;
        self.window
            .accept(header.sender, header.epoch, header.seq)?;
        Ok(Frame { header, msg })
    }

    fn count(&mut self, r: Result<Frame, Reject>) -> Result<Frame, Reject> {
        match &r {
            Ok(_) => self.counters.accepted = self.counters.accepted.saturating_add(1),
            Err(e) => self.counters.record(e),
        }
        r
    }
}

/// Decodes one frame per datagram (HEARTBEAT, WITNESS over UDP), from any
/// number of senders (bounded by [`DecoderConfig::max_peers`]).
#[derive(Debug)]
pub struct DatagramDecoder {
    inner: Checker,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("cfg", &self.cfg)
            .field("counters", &self.counters)
            .finish()
    }
}

impl DatagramDecoder {
    /// A decoder for `cfg.channel` under `key`.
    pub fn new(key: Key, cfg: DecoderConfig) -> Self {
        DatagramDecoder {
            inner: Checker::new(key, cfg),
        }
    }

    /// Decode one datagram. Every outcome is counted.
    pub fn decode(&mut self, datagram: &[u8]) -> Result<Frame, Reject> {
        let r = self.decode_inner(datagram);
        self.inner.count(r)
    }

    fn decode_inner(&mut self, d: &[u8]) -> Result<Frame, Reject> {
        if d.len() < MIN_FRAME {
            return Err(Reject::Short(d.len()));
        }
        if d.len() > self.inner.cfg.max_frame() {
            return Err(Reject::Oversized(d.len()));
        }
        let len = read_prefix(d, &self.inner.cfg)?;
        let actual = d.len() - MIN_FRAME;
        if len != actual {
            return Err(Reject::BadLength {
                declared: len,
                actual,
            });
        }
        self.inner.check(d)
    }

    /// Reject frames with an epoch below `floor` from now on.
    pub fn raise_epoch_floor(&mut self, floor: Epoch) {
        self.inner.window.raise_floor(floor);
    }

    /// The replay window.
    pub fn window(&self) -> &ReplayWindow {
        &self.inner.window
    }

    /// Counters so far.
    pub fn counters(&self) -> &RejectCounters {
        &self.inner.counters
    }
}

/// Decodes frames from a byte stream (LOG, JOIN over TCP) with a bounded
/// buffer: push bytes in, pull frames out.
///
/// After a reject for which [`Reject::is_fatal_for_stream`] holds, the
/// decoder is poisoned: it yields nothing more and the shell must close the
/// connection.
#[derive(Debug)]
pub struct StreamDecoder {
    inner: Checker,
    buf: Vec<u8>,
    start: usize,
    capacity: usize,
    poisoned: Option<Reject>,
}

impl StreamDecoder {
    /// A decoder for `cfg.channel` under `key`; it buffers at most
    /// `cfg.max_frame()` plus 64 KiB.
    pub fn new(key: Key, cfg: DecoderConfig) -> Self {
        let capacity = cfg.max_frame().saturating_add(64 << 10);
        StreamDecoder {
            inner: Checker::new(key, cfg),
            buf: Vec::new(),
            start: 0,
            capacity,
            poisoned: None,
        }
    }

    /// Bytes that may be pushed now without [`Reject::BufferFull`].
    pub fn space(&self) -> usize {
        self.capacity.saturating_sub(self.buf.len() - self.start)
    }

    /// Append received bytes. Fails with [`Reject::BufferFull`] (counted,
    /// nothing appended) if they do not fit: drain frames first. Bytes pushed
    /// into a poisoned decoder are discarded.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), Reject> {
        if self.poisoned.is_some() {
            return Ok(());
        }
        if bytes.len() > self.space() {
            let r = Reject::BufferFull;
            self.inner.counters.record(&r);
            return Err(r);
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The next complete frame, a reject, or `None` if more bytes are
    /// needed (or the decoder is poisoned).
    pub fn next_frame(&mut self) -> Option<Result<Frame, Reject>> {
        if self.poisoned.is_some() {
            return None;
        }
        let avail = &self.buf[self.start..];
        if avail.len() < HEADER_LEN {
            // Check what we can early so garbage is rejected without waiting.
            if !avail.is_empty() && !MAGIC.starts_with(&avail[..avail.len().min(4)]) {
                return Some(Err(self.fail(Reject::BadMagic)));
            }
            return None;
        }
        let len = match read_prefix(avail, &self.inner.cfg) {
            Ok(len) => len,
            Err(r) => return Some(Err(self.fail(r))),
        };
        let total = MIN_FRAME + len;
        if avail.len() < total {
            return None;
        }
        let (a, b) = (self.start, self.start + total);
        self.start = b;
        let r = self.inner.check(&self.buf[a..b]);
        match r {
            Err(e) if e.is_fatal_for_stream() => Some(Err(self.fail(e))),
            r => Some(self.inner.count(r)),
        }
    }

    /// The stream ended: a partial frame left in the buffer is a counted
    /// [`Reject::Short`] (and poisons the decoder).
    pub fn finish(&mut self) -> Result<(), Reject> {
        let left = self.buf.len() - self.start;
        if self.poisoned.is_none() && left > 0 {
            return Err(self.fail(Reject::Short(left)));
        }
        Ok(())
    }

    fn fail(&mut self, r: Reject) -> Reject {
        self.inner.counters.record(&r);
        self.poisoned = Some(r.clone());
        self.buf = Vec::new();
        self.start = 0;
        r
    }

    /// The fatal reject that poisoned this decoder, if any.
    pub fn poisoned(&self) -> Option<&Reject> {
        self.poisoned.as_ref()
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Reject frames with an epoch below `floor` from now on.
    pub fn raise_epoch_floor(&mut self, floor: Epoch) {
        self.inner.window.raise_floor(floor);
    }

    /// The replay window.
    pub fn window(&self) -> &ReplayWindow {
        &self.inner.window
    }

    /// Counters so far.
    pub fn counters(&self) -> &RejectCounters {
        &self.inner.counters
    }
}
