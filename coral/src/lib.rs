//! # coral: the CoRAL node's I/O shells
//!
//! Thin layers that move bytes between the kernel and the sans-IO core
//! (`coral-core`). Each module owns one kind of system interface:
//!
//! - [`clock`]: the node's one monotonic clock.
//! - [`events`]: the node's events.csv.
//! - [`front`]: the backup's packet engine: ARP, record, then forward.
//! - [`config`]: the node's TOML configuration and its validation.
//! - [`ebpf_front`]: the kernel fast path of the front (tc ingress BPF program, ring buffer).
//! - [`afpacket`]: the front's packet socket (`PACKET_VNET_HDR`).
//! - [`heartbeat`]: authenticated UDP heartbeats driving the core's detector.
//! - [`logchan`]: the log channel (primary client, backup server).
//! - [`logged_io`]: log before write, the primary's connection wrapper.
//! - [`netcfg`]: addresses, neighbours and sysctls (rtnetlink, /proc/sys).
//! - [`node`]: wiring: one node from its configuration (the only place that knows all shells).
//! - [`nft`]: the crash fence and the kernel-enforced lease (libnftables).
//! - [`primary`]: the application on kernel TCP behind log-before-write.
//! - [`repair`]: `TCP_REPAIR` rebuilds of live connections, silent closes.
//! - [`takeover`]: the backup rebuilds the failed primary's connections (DESIGN.md 5).
//! - [`announce`]: gratuitous ARP and the confirming ping from a service address.
//! - [`witness`]: `coral witness`, the grant service (UDP shell around the core's witness).
//! - [`leases`]: the kernel-enforced lease, refreshed by heartbeats.
//! - [`live_conns`]: the live-connection registry and the nudge (an ACK
//!   elicited from every client after an address moved here).
//! - [`fencing`]: the self-fence.

pub mod afpacket;
pub mod announce;
pub mod clock;
pub mod config;
pub mod ebpf_front;
pub mod events;
pub mod fencing;
pub mod front;
pub mod heartbeat;
pub mod leases;
pub mod live_conns;
pub mod logchan;
pub mod logged_io;
pub mod netcfg;
pub mod nft;
pub mod node;
pub mod primary;
pub mod repair;
mod sockopt;
pub mod takeover;
pub mod witness;
