//! # coral: the CoRAL node
//!
//! The folder is the layering:
//!
//! - [`io`]: the I/O shells, one per system interface (packet socket,
//!   `TCP_REPAIR`, nftables, netlink, the log channel, heartbeats, ...).
//!   They move bytes between the kernel and the sans-IO core
//!   (`coral-core`) and hold no policy.
//! - The node beside them: [`wiring`] builds the shells from the
//!   configuration, [`node`] drives the core's machines with them (one loop:
//!   inputs in, actions out), [`takeover`] carries out a failover
//!   (docs/DESIGN.md section 5), [`reintegration`] a join on the simplex node (section 6) and
//!   [`joining`] on the new server,
//!   [`config`] reads the node's TOML
//!   file, [`clock`] is the node's one monotonic clock, [`events`] its
//!   events.csv.

pub mod clock;
pub mod config;
pub mod events;
pub mod io;
pub mod joining;
pub mod node;
pub mod reintegration;
pub mod rejoin;
pub mod takeover;
pub mod wiring;
