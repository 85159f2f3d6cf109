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
//!   inputs in, actions out). The actions are carried out by the module
//!   that owns them: [`machines`] holds the mode machines, [`failover`] the
//!   failovers under way, whose steps [`takeover`] carries out
//!   (docs/DESIGN.md section 5), [`grants`] the witness channel,
//!   [`reintegration`] a join on the simplex node (section 6), [`joining`]
//!   on the new server, [`rejoin`] a fenced node's return, [`stop`] how the
//!   node stops. [`config`] reads the node's TOML file, [`clock`] is the
//!   node's one monotonic clock, [`events`] its events.csv and [`counters`]
//!   the `counters` rows in it.

pub mod clock;
pub mod config;
pub mod counters;
pub mod events;
pub mod failover;
pub mod grants;
pub mod io;
pub mod joining;
pub mod machines;
pub mod node;
pub mod reintegration;
pub mod rejoin;
pub mod stop;
pub mod takeover;
pub mod wiring;
