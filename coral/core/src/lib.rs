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

pub mod types;

// Data path: wire views, sequence arithmetic, reassembly, shadow TCP state,
// HTTP framing, request/reply log, per-connection takeover query.
pub mod conn;
pub mod http;
pub mod reassembly;
pub mod replylog;
pub mod seq;
pub mod shadow;
pub mod table;
pub mod wire;

// Control plane: authenticated codecs, failure detector, mode machine, witness.
pub mod codec;
pub mod detector;
pub mod mode;
pub mod witness;
