//! Authenticated, versioned frames for the four control channels.
//!
//! | channel   | transport | direction                  | messages                          |
//! |-----------|-----------|----------------------------|-----------------------------------|
//! | LOG       | TCP       | primary <-> backup         | [`LogMsg`]                        |
//! | HEARTBEAT | UDP       | both ways                  | [`Heartbeat`]                     |
//! | WITNESS   | UDP       | node <-> witness           | [`WitnessMsg`]                    |
//! | JOIN      | TCP       | new server <-> simplex node| [`JoinMsg`]                       |
//!
//! ## Frame layout (all integers big-endian)
//!
//! ```text
//! offset size field
//!  0      4   magic  "CRL\x01"
//!  4      1   version (1)
//!  5      1   channel (1 log, 2 heartbeat, 3 witness, 4 join)
//!  6      1   type within the channel
//!  7      4   sender node id
//! 11      4   payload length L
//! 15      8   epoch
//! 23      8   sequence number (strictly increasing per sender within an epoch)
//! 31      L   payload (see `messages`)
//! 31+L   16   tag: HMAC-SHA256(key, bytes 0 .. 31+L), truncated to 16 bytes
//! ```
//!
//! The tag is HMAC-SHA256 truncated to its leftmost 128 bits (RFC 2104
//! section 5 allows truncation to no less than half the output; 128 bits
//! keeps forgery at 2^-128 per try) and is checked in constant time.
//!
//! Decoding ([`DatagramDecoder`], [`StreamDecoder`]) rejects, never panics,
//! and counts every rejection by reason in [`RejectCounters`]. Checks run in
//! this order: size, magic, version, length, tag (nothing after the tag check
//! trusts an unauthenticated byte), channel and type, payload, then the
//! per-sender replay window (epoch, sequence).
//!
//! Sequence numbers: a sender's [`Encoder`] numbers its frames; shells should
//! seed the first number from the wall clock in nanoseconds at start-up so a
//! restarted process keeps increasing within the same epoch.

mod buf;
mod decode;
pub mod messages;

pub use buf::PayloadError;
pub use decode::{DatagramDecoder, DecoderConfig, Reject, RejectCounters, StreamDecoder};
pub use messages::{
    CloseKind, Heartbeat, JoinMsg, JoinRefuseReason, LogMsg, Message, ModeTag, NodeConfig,
    RefuseReason, VipStatus, WitnessMsg,
};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::types::{Epoch, FourTuple, NodeId};

/// Frame magic.
pub const MAGIC: [u8; 4] = *b"CRL\x01";
/// The only frame version this code speaks.
pub const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 31;
/// Tag length in bytes (HMAC-SHA256 truncated).
pub const TAG_LEN: usize = 16;
/// Smallest possible frame (empty payload).
pub const MIN_FRAME: usize = HEADER_LEN + TAG_LEN;
/// Shortest accepted pre-shared key.
pub const MIN_KEY_LEN: usize = 16;

/// The control channels; each has its own transport and message set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Request/reply log, primary <-> backup, TCP.
    Log = 1,
    /// Heartbeats, UDP.
    Heartbeat = 2,
    /// Grants, node <-> witness, UDP.
    Witness = 3,
    /// Reintegration, TCP.
    Join = 4,
}

impl Channel {
    /// The channel with wire code `v`, if any.
    pub fn from_u8(v: u8) -> Option<Channel> {
        Some(match v {
            1 => Channel::Log,
            2 => Channel::Heartbeat,
            3 => Channel::Witness,
            4 => Channel::Join,
            _ => return None,
        })
    }
}

/// Errors building a key or encoding a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The pre-shared key is shorter than [`MIN_KEY_LEN`].
    #[error("pre-shared key too short: {0} bytes, need at least {MIN_KEY_LEN}")]
    KeyTooShort(usize),
    /// The message does not fit its field limits.
    #[error("message cannot be encoded: {0}")]
    Payload(#[from] PayloadError),
    /// The payload exceeds the u32 length field or the configured maximum.
    #[error("payload of {0} bytes too large")]
    TooLarge(usize),
    /// The encoder's sequence numbers are exhausted in this epoch.
    #[error("sequence numbers exhausted")]
    SequenceExhausted,
}

/// The pre-shared key, with the HMAC state precomputed.
#[derive(Clone)]
pub struct Key {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A key from raw bytes (at least [`MIN_KEY_LEN`]).
    pub fn new(bytes: &[u8]) -> Result<Key, CodecError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(CodecError::KeyTooShort(bytes.len()));
        }
        let mac = Hmac::<Sha256>::new_from_slice(bytes)
            .map_err(|_| CodecError::KeyTooShort(bytes.len()))?;
        Ok(Key { mac })
    }

    /// The (truncated) tag of arbitrary bytes under this key: what
    /// [`Encoder`] appends to header and payload. Public for tests and
    /// fuzzing, which build frames with hand-picked headers.
    pub fn tag(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(data);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&full[..TAG_LEN]);
        out
    }

    fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.verify_truncated_left(tag).is_ok()
    }
}

/// The authenticated header of a decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Channel.
    pub channel: Channel,
    /// Type within the channel.
    pub kind: u8,
    /// Sending node.
    pub sender: NodeId,
    /// Sender's epoch.
    pub epoch: Epoch,
    /// Sender's sequence number.
    pub seq: u64,
}

/// A frame that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its header.
    pub header: Header,
    /// Its message.
    pub msg: Message,
}

/// Builds frames for one sender: numbers them and tags them.
#[derive(Debug, Clone)]
pub struct Encoder {
    key: Key,
    sender: NodeId,
    epoch: Epoch,
    next_seq: Option<u64>,
}

impl Encoder {
    /// An encoder for `sender` in `epoch` whose first frame carries
    /// `first_seq` (seed it from the wall clock, see the module docs).
    pub fn new(key: Key, sender: NodeId, epoch: Epoch, first_seq: u64) -> Encoder {
        Encoder {
            key,
            sender,
            epoch,
            next_seq: Some(first_seq),
        }
    }

    /// The epoch frames are stamped with.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Stamp later frames with `epoch`. Sequence numbers keep increasing
    /// (receivers reset their window on a higher epoch anyway), except that
    /// exhausted numbering restarts at 0 in a new epoch.
    pub fn set_epoch(&mut self, epoch: Epoch) {
        if epoch != self.epoch && self.next_seq.is_none() {
            self.next_seq = Some(0);
        }
        self.epoch = epoch;
    }

    /// The sequence number the next frame will carry (`None` once
    /// `u64::MAX` was used: change the epoch).
    pub fn next_seq(&self) -> Option<u64> {
        self.next_seq
    }

    /// Appends one complete frame carrying `msg` to `out` and returns its
    /// header. On error nothing is appended and no sequence number is used.
    pub fn encode(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<Header, CodecError> {
        self.frame(msg.channel(), msg.kind(), out, |out| {
            msg.encode_payload(out)
        })
    }

    /// [`Encoder::encode`] of a [`LogMsg::Reply`] whose bytes are borrowed:
    /// the reply is copied once, straight into `out` (the same frame as
    /// `encode` makes of the owned message).
    #[allow(clippy::too_many_arguments)]
    pub fn encode_reply(
        &mut self,
        id: u64,
        tuple: &FourTuple,
        request_end: u64,
        offset: u64,
        last: bool,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Header, CodecError> {
        self.frame(Channel::Log, messages::KIND_REPLY, out, |out| {
            messages::encode_reply(out, id, tuple, request_end, offset, last, bytes)
        })
    }

    /// Header, the payload `payload` appends, tag; on error `out` is left
    /// as it was.
    fn frame(
        &mut self,
        channel: Channel,
        kind: u8,
        out: &mut Vec<u8>,
        payload: impl FnOnce(&mut Vec<u8>) -> Result<(), PayloadError>,
    ) -> Result<Header, CodecError> {
        let seq = self.next_seq.ok_or(CodecError::SequenceExhausted)?;
        let header = Header {
            channel,
            kind,
            sender: self.sender,
            epoch: self.epoch,
            seq,
        };
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(header.channel as u8);
        out.push(header.kind);
        out.extend_from_slice(&header.sender.0.to_be_bytes());
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&header.epoch.0.to_be_bytes());
        out.extend_from_slice(&header.seq.to_be_bytes());
        if let Err(e) = payload(out) {
            out.truncate(start);
            return Err(e.into());
        }
        let n = out.len() - start - HEADER_LEN;
        let Ok(len) = u32::try_from(n) else {
            out.truncate(start);
            return Err(CodecError::TooLarge(n));
        };
        out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
        let tag = self.key.tag(&out[start..]);
        out.extend_from_slice(&tag);
        self.next_seq = seq.checked_add(1);
        Ok(header)
    }

    /// Convenience: one frame as a fresh vector.
    pub fn encode_to_vec(&mut self, msg: &Message) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        self.encode(msg, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
