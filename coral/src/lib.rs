//! # coral: the CoRAL node's I/O shells
//!
//! Thin layers that move bytes between the kernel and the sans-IO core
//! (`coral-core`). Each module owns one kind of system interface:
//!
//! - [`afpacket`]: the front's packet socket (`PACKET_VNET_HDR`).
//! - [`nft`]: the crash fence and the kernel-enforced lease (libnftables).
//! - [`repair`]: `TCP_REPAIR` rebuilds of live connections, silent closes.

pub mod afpacket;
pub mod nft;
pub mod repair;
