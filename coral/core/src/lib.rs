//! # coral-core: the sans-IO heart of CoRAL
//!
//! Everything that decides something lives here, with no sockets, no threads
//! and no clock reads: frames, messages and the current time go in, decisions
//! come out (the shape of quinn-proto's `Connection`). The I/O shells in the
//! `coral` crate (AF_PACKET engine, TCP_REPAIR, log channel, heartbeats) only
//! move bytes and call into this crate. See `docs/ARCHITECTURE.md`.
//!
//! Time is always an argument of type [`Instant`](types::Instant): a count of
//! nanoseconds on a monotonic clock chosen by the caller.

#![forbid(unsafe_code)]

mod types;

// Data path: wire views, sequence arithmetic, reassembly, shadow TCP state,
// HTTP framing, request/reply log, per-connection takeover query.
mod conn;
mod http;
mod reassembly;
mod replylog;
mod seq;
mod shadow;
mod table;
pub mod wire;

// Control plane: authenticated codecs, failure detector and heartbeat link
// (echo-anchored lease), mode machine, witness.
mod codec;
mod detector;
mod join;
mod link;
mod mode;
mod witness;
mod witness_file;

// The public API: what the node and its tests use, including the join
// protocol (docs/DESIGN.md section 6) on both sides of the JOIN channel. Wire views stay in their own
// namespace (`coral_core::wire::...`), the way smoltcp keeps `wire`.
pub use codec::{
    Channel, CloseKind, DatagramDecoder, DecoderConfig, Encoder, Heartbeat, JoinMsg,
    JoinRefuseReason, Key, LogMsg, Message, ModeTag, NodeConfig, RefuseReason, Reject,
    RejectCounters, StreamDecoder, VipStatus, WitnessMsg, HEADER_LEN, MAGIC, MIN_KEY_LEN, TAG_LEN,
    VERSION,
};
pub use conn::{
    ConnConfig, ConnEvent, DropReason, NotRestorable, RepairOptions, RepairWindow, TakeoverParams,
    TakeoverState, Unprotected, Verdict,
};
pub use detector::{
    Detector, DetectorConfig, DetectorConfigError, DetectorEvent, HeartbeatVerdict,
};
pub use http::{RequestFrame, RequestFramer, ResponseFrame, ResponseFramer};
pub use join::{
    Arrival, JoinAcceptor, JoinAction, JoinConn, JoinEvent, JoinSteps, Joiner, JoinerState,
    NodeView, DEFAULT_JOIN_TIMEOUT_NS, JOINER_CONN,
};
pub use link::{DelayHistogram, HeartbeatLink, LinkEvent, LinkStats};
pub use mode::{
    Action, ConnMode, FenceReason, GrantPurpose, Iface, Input, Lease, Role, Timing, VipMachine,
    VipMode,
};
pub use seq::SeqNum;
pub use shadow::LocalTcpDefaults;
pub use table::{ConnTable, FrameOutcome, TableConfig};
pub use types::{Epoch, FourTuple, Instant, NegotiatedOptions, NodeId};
pub use witness::{
    parse_state, render_state, Decision, Record, StateFileError, Witness, WitnessEvent,
};
pub use witness_file::{parse_state_file, render_state_slot, StateFile, STATE_SLOT_BYTES};
