//! # coral: the CoRAL node's I/O shells
//!
//! Thin layers that move bytes between the kernel and the sans-IO core
//! (`coral-core`). Each module owns one kind of system interface:
//!
//! - [`afpacket`]: the front's packet socket (`PACKET_VNET_HDR`).
//! - [`logged_io`]: log before write, the primary's connection wrapper.
//! - [`netcfg`]: addresses, neighbours and sysctls (rtnetlink, /proc/sys).
//! - [`nft`]: the crash fence and the kernel-enforced lease (libnftables).
//! - [`repair`]: `TCP_REPAIR` rebuilds of live connections, silent closes.

pub mod afpacket;
pub mod logged_io;
pub mod netcfg;
pub mod nft;
pub mod repair;
