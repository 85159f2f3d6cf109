//! # coral: the CoRAL node
//!
//! The folder is the layering:
//!
//! - [`io`]: the I/O shells, one per system interface (packet socket,
//!   `TCP_REPAIR`, nftables, netlink, the log channel, heartbeats, ...).
//!   They move bytes between the kernel and the sans-IO core
//!   (`coral-core`) and hold no policy.
//! - The node beside them: [`node`] wires the shells to the core's machines
//!   (the only module that knows every shell), [`takeover`] carries out a
//!   takeover (docs/DESIGN.md section 5), [`config`] reads the node's TOML
//!   file, [`clock`] is the node's one monotonic clock, [`events`] its
//!   events.csv.

pub mod clock;
pub mod config;
pub mod events;
pub mod io;
pub mod node;
pub mod takeover;
