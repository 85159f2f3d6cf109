//! The I/O shells: each module owns one kind of system interface, moves
//! bytes between it and the node, and decides nothing (the decisions are in
//! `coral-core`; the node in [`crate::node`] wires the shells together).
//!
//! - [`adopt`]: a primary adopts the frames the switch floods for its
//!   dead front, once the witness granted it the address (tc ingress BPF).
//! - [`afpacket`]: the front's packet socket (`PACKET_VNET_HDR`).
//! - [`announce`]: gratuitous ARP and the confirming ping from a service address.
//! - [`fencing`]: the self-fence (every live connection into `TCP_REPAIR`).
//! - [`ebpf_front`]: the kernel fast path of the front (tc ingress BPF
//!   program, ring buffer).
//! - [`front`]: the backup's packet engine: ARP, record, then forward.
//! - [`join`]: the JOIN channel (reintegration): the simplex node's
//!   listener and the new server's link.
//! - [`heartbeat`]: authenticated UDP heartbeats driving the core's detector.
//! - [`inject`]: client segments handed to the local stack (raw socket).
//! - [`leases`]: the kernel-enforced lease, refreshed by heartbeats.
//! - [`live_conns`]: the live-connection registry and the nudge (an ACK
//!   elicited from every client after an address moved here).
//! - [`logchan`]: the log channel (primary client, backup server).
//! - [`logged_io`]: log before write, the primary's connection wrapper.
//! - [`netcfg`]: addresses, neighbours and sysctls (rtnetlink, /proc/sys).
//! - [`nfnl`]: the lease refresh's own nfnetlink batch (no libnftables).
//! - [`nft`]: the crash fence and the kernel-enforced lease (libnftables).
//! - [`primary`]: the application on kernel TCP behind log-before-write.
//! - [`repair`]: `TCP_REPAIR` rebuilds of live connections, silent closes.
//! - `sockopt`: the raw `setsockopt`/`getsockopt` calls the shells share.
//! - [`witness`]: `coral witness`, the grant service (UDP shell around the
//!   core's witness).

pub mod adopt;
pub mod afpacket;
pub mod announce;
pub mod ebpf_front;
pub mod fencing;
pub mod front;
pub mod heartbeat;
pub mod inject;
pub mod join;
pub mod leases;
pub mod live_conns;
pub mod logchan;
pub mod logged_io;
pub mod netcfg;
pub mod nfnl;
pub mod nft;
pub mod primary;
pub mod repair;
mod sockopt;
pub mod witness;
