//! # experiments: the kit's driver (`coral-exp`)
//!
//! - [`commands`]: `up`, `down`, `exec`, `fault`, `run` (docs/CLI.md).
//! - [`conditions`]: paper-faithful conditions (LAN rate, per-host CPU quota).
//! - [`plot`]: `coral-exp plot`, figures from the results tree.
//! - [`report`]: `coral-exp report`, `results/REPORT.md` from the results tree.

pub mod catalog;
pub mod commands;
pub mod conditions;
pub mod live;
pub mod measure;
pub mod plot;
pub mod report;
pub mod runner;
pub mod services;
pub mod topology;
