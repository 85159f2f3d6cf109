//! # coral: the CoRAL node's I/O shells
//!
//! Thin layers that move bytes between the kernel and the sans-IO core
//! (`coral-core`). Each module owns one kind of system interface:
//!
//! - [`repair`]: `TCP_REPAIR` rebuilds of live connections, silent closes.

pub mod repair;
