//! The messages of the four control channels and their payload encodings.
//!
//! Payloads are big-endian, fixed-order fields; lists carry a u16 count and
//! strings a u16 length, both bounded by the `MAX_*` constants below, so an
//! authenticated but malformed payload is rejected, never trusted.

use std::net::Ipv4Addr;

use super::buf::{PayloadError, Reader, Writer};
use super::Channel;
use crate::types::{Epoch, FourTuple, NegotiatedOptions, NodeId};

/// Most service addresses one node configuration or heartbeat may list.
pub const MAX_VIPS: usize = 16;
/// Most kernel settings one [`NodeConfig`] may carry.
pub const MAX_KERNEL_SETTINGS: usize = 256;
/// Longest string field (setting names and values, software version, detail).
pub const MAX_STR: usize = 1024;
/// Largest TCP window scale shift (RFC 7323).
const MAX_WSCALE: u8 = 14;

/// The mode a sender reports in its heartbeats (see `mode::VipMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModeTag {
    /// Both nodes up; replies logged before they are written.
    Duplex = 1,
    /// Sole server; no log channel.
    Simplex = 2,
    /// Peer declared failed; waiting for the witness.
    WaitingForGrant = 3,
    /// Grant received; building sockets, waiting out the old lease.
    TakingOver = 4,
    /// Deposed: connections dropped, address removed.
    Fenced = 5,
    /// Reintegrating as a new server.
    Joining = 6,
}

impl ModeTag {
    fn from_u8(v: u8) -> Result<Self, PayloadError> {
        Ok(match v {
            1 => ModeTag::Duplex,
            2 => ModeTag::Simplex,
            3 => ModeTag::WaitingForGrant,
            4 => ModeTag::TakingOver,
            5 => ModeTag::Fenced,
            6 => ModeTag::Joining,
            _ => return Err(PayloadError::Invalid("mode")),
        })
    }
}

/// Identity and configuration a node announces on the log channel (`Hello`)
/// and when joining (`JoinRequest`/`JoinAccept`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeConfig {
    /// The node's identity.
    pub node: NodeId,
    /// Heartbeat interval H, nanoseconds.
    pub heartbeat_interval_ns: u64,
    /// Consecutive misses K that declare the peer failed.
    pub misses: u32,
    /// Service addresses this node serves (at most [`MAX_VIPS`]).
    pub vips: Vec<Ipv4Addr>,
    /// Kernel settings that must match on both nodes for a repaired socket to
    /// behave like the original (e.g. `net.ipv4.tcp_timestamps` = `1`),
    /// as name/value pairs (at most [`MAX_KERNEL_SETTINGS`]).
    pub kernel: Vec<(String, String)>,
    /// Software version string.
    pub software: String,
    /// Addresses this node is configured primary for (a joiner asking to
    /// take them over from a simplex node in dual role; at most
    /// [`MAX_VIPS`]).
    pub primary_for: Vec<Ipv4Addr>,
}

impl NodeConfig {
    /// Human-readable differences that forbid pairing `self` with `other`:
    /// heartbeat timing and every kernel setting either side names. Empty if
    /// they match.
    pub fn mismatches(&self, other: &NodeConfig) -> Vec<String> {
        let mut out = Vec::new();
        if self.heartbeat_interval_ns != other.heartbeat_interval_ns {
            out.push(format!(
                "heartbeat_interval_ns: {} != {}",
                self.heartbeat_interval_ns, other.heartbeat_interval_ns
            ));
        }
        if self.misses != other.misses {
            out.push(format!("misses: {} != {}", self.misses, other.misses));
        }
        let find = |cfg: &NodeConfig, name: &str| {
            cfg.kernel
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let mut names: Vec<&String> = self
            .kernel
            .iter()
            .chain(&other.kernel)
            .map(|(n, _)| n)
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            let (a, b) = (find(self, name), find(other, name));
            if a != b {
                out.push(format!("{name}: {a:?} != {b:?}"));
            }
        }
        out
    }

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), PayloadError> {
        check_len(self.vips.len(), MAX_VIPS, "vips")?;
        check_len(self.kernel.len(), MAX_KERNEL_SETTINGS, "kernel")?;
        check_len(self.software.len(), MAX_STR, "software")?;
        check_len(self.primary_for.len(), MAX_VIPS, "primary_for")?;
        w.node(self.node);
        w.u64(self.heartbeat_interval_ns);
        w.u32(self.misses);
        w.u16(self.vips.len() as u16);
        for v in &self.vips {
            w.ip(*v);
        }
        w.u16(self.kernel.len() as u16);
        for (n, v) in &self.kernel {
            check_len(n.len(), MAX_STR, "kernel name")?;
            check_len(v.len(), MAX_STR, "kernel value")?;
            w.str(n);
            w.str(v);
        }
        w.str(&self.software);
        w.u16(self.primary_for.len() as u16);
        for v in &self.primary_for {
            w.ip(*v);
        }
        Ok(())
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, PayloadError> {
        let node = r.node()?;
        let heartbeat_interval_ns = r.u64()?;
        let misses = r.u32()?;
        let n = r.count("vips", MAX_VIPS)?;
        let mut vips = Vec::with_capacity(n);
        for _ in 0..n {
            vips.push(r.ip()?);
        }
        let n = r.count("kernel", MAX_KERNEL_SETTINGS)?;
        let mut kernel = Vec::with_capacity(n);
        for _ in 0..n {
            kernel.push((
                r.str("kernel name", MAX_STR)?,
                r.str("kernel value", MAX_STR)?,
            ));
        }
        let software = r.str("software", MAX_STR)?;
        let n = r.count("primary_for", MAX_VIPS)?;
        let mut primary_for = Vec::with_capacity(n);
        for _ in 0..n {
            primary_for.push(r.ip()?);
        }
        Ok(NodeConfig {
            node,
            heartbeat_interval_ns,
            misses,
            vips,
            kernel,
            software,
            primary_for,
        })
    }
}

fn check_len(n: usize, max: usize, name: &'static str) -> Result<(), PayloadError> {
    if n > max {
        Err(PayloadError::TooLong(name))
    } else {
        Ok(())
    }
}

fn put_options(w: &mut Writer<'_>, o: &NegotiatedOptions) -> Result<(), PayloadError> {
    w.u16(o.mss);
    for ws in [o.snd_wscale, o.rcv_wscale] {
        match ws {
            None => w.u8(0xff),
            Some(s) if s <= MAX_WSCALE => w.u8(s),
            Some(_) => return Err(PayloadError::Invalid("wscale")),
        }
    }
    w.u8(u8::from(o.sack) | u8::from(o.timestamps) << 1 | u8::from(o.usec_ts) << 2);
    Ok(())
}

fn get_options(r: &mut Reader<'_>) -> Result<NegotiatedOptions, PayloadError> {
    let mss = r.u16()?;
    let mut ws = [None, None];
    for slot in &mut ws {
        *slot = match r.u8()? {
            0xff => None,
            s if s <= MAX_WSCALE => Some(s),
            _ => return Err(PayloadError::Invalid("wscale")),
        };
    }
    let flags = r.u8()?;
    if flags & !0b111 != 0 {
        return Err(PayloadError::Invalid("option flags"));
    }
    Ok(NegotiatedOptions {
        mss,
        snd_wscale: ws[0],
        rcv_wscale: ws[1],
        sack: flags & 1 != 0,
        timestamps: flags & 2 != 0,
        usec_ts: flags & 4 != 0,
    })
}

/// How the primary's connection ended (in [`LogMsg::ConnClose`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseKind {
    /// Orderly close (FIN exchanged).
    Fin = 1,
    /// Reset by either side.
    Rst = 2,
    /// Dropped by the application or a fence without anything on the wire.
    Abort = 3,
}

/// LOG channel messages (primary <-> backup over TCP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogMsg {
    /// Identity and configuration, sent by each side first.
    Hello(NodeConfig),
    /// Primary -> backup: the primary accepted a connection.
    ConnOpen {
        /// Log entry id (acknowledged cumulatively by [`LogMsg::LogAck`]).
        id: u64,
        /// The connection.
        tuple: FourTuple,
        /// The server's initial sequence number.
        server_isn: u32,
        /// The client's initial sequence number.
        client_isn: u32,
        /// Server-side negotiated options from `TCP_INFO`
        /// (`rcv_wscale` is the primary's `tcpi_rcv_wscale`).
        options: NegotiatedOptions,
    },
    /// Primary -> backup: a response (or part of one), logged before it is
    /// written to the socket.
    Reply {
        /// Log entry id.
        id: u64,
        /// The connection.
        tuple: FourTuple,
        /// Offset in the client byte stream (from the client ISN + 1) where
        /// the request this reply answers ends.
        request_end: u64,
        /// Offset in the server byte stream (from the server ISN + 1) of the
        /// first byte of `bytes`.
        offset: u64,
        /// True on the last (or only) part of the response.
        last: bool,
        /// Response wire bytes, headers included.
        bytes: Vec<u8>,
    },
    /// Primary -> backup: the connection is gone.
    ConnClose {
        /// Log entry id.
        id: u64,
        /// The connection.
        tuple: FourTuple,
        /// How it ended.
        kind: CloseKind,
    },
    /// Backup -> primary: every log entry with id <= `id` is recorded.
    LogAck {
        /// Highest id recorded (cumulative).
        id: u64,
    },
}

/// What a node reports about one service address in its heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VipStatus {
    /// The service address.
    pub vip: Ipv4Addr,
    /// The sender's epoch for it.
    pub epoch: Epoch,
    /// The sender's mode for it.
    pub mode: ModeTag,
}

/// HEARTBEAT channel message (UDP, both ways). The sender's node id, epoch and
/// sequence number are the frame header's ([`super::Header`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The sender's overall mode.
    pub mode: ModeTag,
    /// Per service address state (at most [`MAX_VIPS`]).
    pub vips: Vec<VipStatus>,
    /// Sequence number of the last fresh heartbeat the sender received from
    /// us (0 = none yet). The receiver extends its lease from its own send
    /// time of that heartbeat (docs/DESIGN.md section 4).
    pub echo: u64,
    /// The sender's wall clock when it sent this heartbeat (unix ns). Only
    /// measured (one-way delay), never decided on.
    pub sent_unix_ns: u64,
    /// An immediate answer to a fresh heartbeat (not on the sender's
    /// schedule): it is not answered in turn.
    pub answer: bool,
}

/// Why the witness refused a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// Another node already holds the address in the requested epoch.
    AlreadyGranted {
        /// The holder.
        holder: NodeId,
    },
    /// The requested epoch is not above the current one (held by `holder`).
    StaleEpoch {
        /// The witness's current epoch for the address.
        current: Epoch,
        /// Who holds it.
        holder: NodeId,
    },
    /// The witness does not know this service address.
    UnknownVip,
    /// The witness does not know this node, or the request's node differs
    /// from the authenticated sender.
    UnknownNode,
}

/// WITNESS channel messages (node <-> witness, UDP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessMsg {
    /// Node -> witness: grant me `vip` for `epoch`.
    Request {
        /// Service address.
        vip: Ipv4Addr,
        /// Requesting node.
        node: NodeId,
        /// Requested epoch (the node's current epoch + 1).
        epoch: Epoch,
    },
    /// Witness -> node: `node` owns `vip` in `epoch`.
    Grant {
        /// Service address.
        vip: Ipv4Addr,
        /// Grantee.
        node: NodeId,
        /// Granted epoch.
        epoch: Epoch,
    },
    /// Witness -> node: request refused.
    Refuse {
        /// Service address.
        vip: Ipv4Addr,
        /// Requesting node.
        node: NodeId,
        /// The epoch that was requested.
        epoch: Epoch,
        /// Why.
        reason: RefuseReason,
    },
}

/// Why a simplex node refused a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinRefuseReason {
    /// Heartbeat timing or kernel settings differ (see `detail`).
    ConfigMismatch = 1,
    /// The node is not simplex (it already has a peer, or is fenced).
    NotSimplex = 2,
    /// A join is already in progress.
    Busy = 3,
    /// The joining node's identity is not acceptable (e.g. same id).
    UnknownNode = 4,
}

/// JOIN channel messages (reintegration, paper section 3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinMsg {
    /// New server -> simplex node: who I am and how I am configured.
    JoinRequest(NodeConfig),
    /// Simplex node -> new server: accepted; the new server will front `vip`
    /// from `epoch` on.
    JoinAccept {
        /// The simplex node's configuration.
        config: NodeConfig,
        /// Epoch the pair runs in.
        epoch: Epoch,
        /// Service address the new server will front.
        vip: Ipv4Addr,
    },
    /// Simplex node -> new server: refused.
    JoinRefuse {
        /// Why.
        reason: JoinRefuseReason,
        /// Details (e.g. the mismatching settings).
        detail: String,
    },
    /// Simplex node -> new server: `vip` is no longer on my LAN interface
    /// (still on loopback: I stay its primary).
    VipReleased {
        /// Service address.
        vip: Ipv4Addr,
        /// Epoch.
        epoch: Epoch,
    },
    /// New server -> simplex node: I front `vip` now (ARP answered,
    /// gratuitous ARP sent); the pair is duplex.
    JoinComplete {
        /// Service address.
        vip: Ipv4Addr,
        /// Epoch.
        epoch: Epoch,
    },
}

/// Any control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// LOG channel.
    Log(LogMsg),
    /// HEARTBEAT channel.
    Heartbeat(Heartbeat),
    /// WITNESS channel.
    Witness(WitnessMsg),
    /// JOIN channel.
    Join(JoinMsg),
}

impl Message {
    /// The channel this message travels on.
    pub fn channel(&self) -> Channel {
        match self {
            Message::Log(_) => Channel::Log,
            Message::Heartbeat(_) => Channel::Heartbeat,
            Message::Witness(_) => Channel::Witness,
            Message::Join(_) => Channel::Join,
        }
    }

    /// The type code of this message within its channel.
    pub fn kind(&self) -> u8 {
        match self {
            Message::Log(m) => match m {
                LogMsg::Hello(_) => 1,
                LogMsg::ConnOpen { .. } => 2,
                LogMsg::Reply { .. } => KIND_REPLY,
                LogMsg::ConnClose { .. } => 4,
                LogMsg::LogAck { .. } => 5,
            },
            Message::Heartbeat(_) => 1,
            Message::Witness(m) => match m {
                WitnessMsg::Request { .. } => 1,
                WitnessMsg::Grant { .. } => 2,
                WitnessMsg::Refuse { .. } => 3,
            },
            Message::Join(m) => match m {
                JoinMsg::JoinRequest(_) => 1,
                JoinMsg::JoinAccept { .. } => 2,
                JoinMsg::JoinRefuse { .. } => 3,
                JoinMsg::VipReleased { .. } => 4,
                JoinMsg::JoinComplete { .. } => 5,
            },
        }
    }

    /// True if `kind` names a message type of `channel`.
    pub fn known_kind(channel: Channel, kind: u8) -> bool {
        let max = match channel {
            Channel::Log => 5,
            Channel::Heartbeat => 1,
            Channel::Witness => 3,
            Channel::Join => 5,
        };
        (1..=max).contains(&kind)
    }

    /// Appends the payload encoding to `out`.
    pub(crate) fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), PayloadError> {
        let w = &mut Writer(out);
        match self {
            Message::Log(m) => m.encode(w),
            Message::Heartbeat(hb) => hb.encode(w),
            Message::Witness(m) => {
                m.encode(w);
                Ok(())
            }
            Message::Join(m) => m.encode(w),
        }
    }

    /// Parses the payload of a message of `channel`/`kind` (the kind must be
    /// known, see [`Message::known_kind`]).
    pub(crate) fn decode_payload(
        channel: Channel,
        kind: u8,
        payload: &[u8],
    ) -> Result<Message, PayloadError> {
        let r = &mut Reader::new(payload);
        let msg = match channel {
            Channel::Log => Message::Log(LogMsg::decode(kind, r)?),
            Channel::Heartbeat if kind == 1 => Message::Heartbeat(Heartbeat::decode(r)?),
            Channel::Heartbeat => return Err(PayloadError::Invalid("kind")),
            Channel::Witness => Message::Witness(WitnessMsg::decode(kind, r)?),
            Channel::Join => Message::Join(JoinMsg::decode(kind, r)?),
        };
        r_finish(r)?;
        Ok(msg)
    }
}

/// The type code of [`LogMsg::Reply`].
pub(crate) const KIND_REPLY: u8 = 3;

/// The payload of a [`LogMsg::Reply`], from borrowed bytes.
pub(crate) fn encode_reply(
    out: &mut Vec<u8>,
    id: u64,
    tuple: &FourTuple,
    request_end: u64,
    offset: u64,
    last: bool,
    bytes: &[u8],
) -> Result<(), PayloadError> {
    if bytes.len() > u32::MAX as usize {
        return Err(PayloadError::TooLong("reply bytes"));
    }
    let w = &mut Writer(out);
    w.u64(id);
    w.tuple(tuple);
    w.u64(request_end);
    w.u64(offset);
    w.bool(last);
    w.bytes(bytes);
    Ok(())
}

impl LogMsg {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), PayloadError> {
        match self {
            LogMsg::Hello(cfg) => cfg.encode(w)?,
            LogMsg::ConnOpen {
                id,
                tuple,
                server_isn,
                client_isn,
                options,
            } => {
                w.u64(*id);
                w.tuple(tuple);
                w.u32(*server_isn);
                w.u32(*client_isn);
                put_options(w, options)?;
            }
            LogMsg::Reply {
                id,
                tuple,
                request_end,
                offset,
                last,
                bytes,
            } => encode_reply(w.0, *id, tuple, *request_end, *offset, *last, bytes)?,
            LogMsg::ConnClose { id, tuple, kind } => {
                w.u64(*id);
                w.tuple(tuple);
                w.u8(*kind as u8);
            }
            LogMsg::LogAck { id } => w.u64(*id),
        }
        Ok(())
    }

    fn decode(kind: u8, r: &mut Reader<'_>) -> Result<Self, PayloadError> {
        Ok(match kind {
            1 => LogMsg::Hello(NodeConfig::decode(r)?),
            2 => LogMsg::ConnOpen {
                id: r.u64()?,
                tuple: r.tuple()?,
                server_isn: r.u32()?,
                client_isn: r.u32()?,
                options: get_options(r)?,
            },
            3 => LogMsg::Reply {
                id: r.u64()?,
                tuple: r.tuple()?,
                request_end: r.u64()?,
                offset: r.u64()?,
                last: r.bool("last")?,
                bytes: r.bytes()?,
            },
            4 => LogMsg::ConnClose {
                id: r.u64()?,
                tuple: r.tuple()?,
                kind: match r.u8()? {
                    1 => CloseKind::Fin,
                    2 => CloseKind::Rst,
                    3 => CloseKind::Abort,
                    _ => return Err(PayloadError::Invalid("close kind")),
                },
            },
            5 => LogMsg::LogAck { id: r.u64()? },
            _ => return Err(PayloadError::Invalid("kind")),
        })
    }
}

impl Heartbeat {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), PayloadError> {
        check_len(self.vips.len(), MAX_VIPS, "vips")?;
        w.u8(self.mode as u8);
        w.u64(self.echo);
        w.u64(self.sent_unix_ns);
        w.u8(u8::from(self.answer));
        w.u16(self.vips.len() as u16);
        for v in &self.vips {
            w.ip(v.vip);
            w.epoch(v.epoch);
            w.u8(v.mode as u8);
        }
        Ok(())
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, PayloadError> {
        let mode = ModeTag::from_u8(r.u8()?)?;
        let (echo, sent_unix_ns) = (r.u64()?, r.u64()?);
        let answer = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(PayloadError::Invalid("answer flag")),
        };
        let n = r.count("vips", MAX_VIPS)?;
        let mut vips = Vec::with_capacity(n);
        for _ in 0..n {
            vips.push(VipStatus {
                vip: r.ip()?,
                epoch: r.epoch()?,
                mode: ModeTag::from_u8(r.u8()?)?,
            });
        }
        Ok(Heartbeat {
            mode,
            vips,
            echo,
            sent_unix_ns,
            answer,
        })
    }
}

impl WitnessMsg {
    fn encode(&self, w: &mut Writer<'_>) {
        match self {
            WitnessMsg::Request { vip, node, epoch } | WitnessMsg::Grant { vip, node, epoch } => {
                w.ip(*vip);
                w.node(*node);
                w.epoch(*epoch);
            }
            WitnessMsg::Refuse {
                vip,
                node,
                epoch,
                reason,
            } => {
                w.ip(*vip);
                w.node(*node);
                w.epoch(*epoch);
                match reason {
                    RefuseReason::AlreadyGranted { holder } => {
                        w.u8(1);
                        w.node(*holder);
                    }
                    RefuseReason::StaleEpoch { current, holder } => {
                        w.u8(2);
                        w.epoch(*current);
                        w.node(*holder);
                    }
                    RefuseReason::UnknownVip => w.u8(3),
                    RefuseReason::UnknownNode => w.u8(4),
                }
            }
        }
    }

    fn decode(kind: u8, r: &mut Reader<'_>) -> Result<Self, PayloadError> {
        Ok(match kind {
            1 => WitnessMsg::Request {
                vip: r.ip()?,
                node: r.node()?,
                epoch: r.epoch()?,
            },
            2 => WitnessMsg::Grant {
                vip: r.ip()?,
                node: r.node()?,
                epoch: r.epoch()?,
            },
            3 => {
                let (vip, node, epoch) = (r.ip()?, r.node()?, r.epoch()?);
                let reason = match r.u8()? {
                    1 => RefuseReason::AlreadyGranted { holder: r.node()? },
                    2 => RefuseReason::StaleEpoch {
                        current: r.epoch()?,
                        holder: r.node()?,
                    },
                    3 => RefuseReason::UnknownVip,
                    4 => RefuseReason::UnknownNode,
                    _ => return Err(PayloadError::Invalid("refuse reason")),
                };
                WitnessMsg::Refuse {
                    vip,
                    node,
                    epoch,
                    reason,
                }
            }
            _ => return Err(PayloadError::Invalid("kind")),
        })
    }
}

impl JoinMsg {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), PayloadError> {
        match self {
            JoinMsg::JoinRequest(cfg) => cfg.encode(w)?,
            JoinMsg::JoinAccept { config, epoch, vip } => {
                config.encode(w)?;
                w.epoch(*epoch);
                w.ip(*vip);
            }
            JoinMsg::JoinRefuse { reason, detail } => {
                check_len(detail.len(), MAX_STR, "detail")?;
                w.u8(*reason as u8);
                w.str(detail);
            }
            JoinMsg::VipReleased { vip, epoch } | JoinMsg::JoinComplete { vip, epoch } => {
                w.ip(*vip);
                w.epoch(*epoch);
            }
        }
        Ok(())
    }

    fn decode(kind: u8, r: &mut Reader<'_>) -> Result<Self, PayloadError> {
        Ok(match kind {
            1 => JoinMsg::JoinRequest(NodeConfig::decode(r)?),
            2 => JoinMsg::JoinAccept {
                config: NodeConfig::decode(r)?,
                epoch: r.epoch()?,
                vip: r.ip()?,
            },
            3 => {
                let reason = match r.u8()? {
                    1 => JoinRefuseReason::ConfigMismatch,
                    2 => JoinRefuseReason::NotSimplex,
                    3 => JoinRefuseReason::Busy,
                    4 => JoinRefuseReason::UnknownNode,
                    _ => return Err(PayloadError::Invalid("join refuse reason")),
                };
                JoinMsg::JoinRefuse {
                    reason,
                    detail: r.str("detail", MAX_STR)?,
                }
            }
            4 => JoinMsg::VipReleased {
                vip: r.ip()?,
                epoch: r.epoch()?,
            },
            5 => JoinMsg::JoinComplete {
                vip: r.ip()?,
                epoch: r.epoch()?,
            },
            _ => return Err(PayloadError::Invalid("kind")),
        })
    }
}

fn r_finish(r: &mut Reader<'_>) -> Result<(), PayloadError> {
    std::mem::replace(r, Reader::new(&[])).finish()
}
