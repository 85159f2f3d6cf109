//! # experiments: the kit's driver (`coral-exp`)
//!
//! Layers, each using only the ones below it:
//!
//! - [`commands`]: `up`, `down`, `exec`, `fault`, `run` (docs/CLI.md): their
//!   clap arguments, turned into the plain options of the layers below.
//!   clap is known only here, in `main.rs`, and in the argument structs of
//!   `plot`, `report` and `compare`.
//! - [`runner`]: runs an experiment of the catalog, repetition by
//!   repetition, from plain [`runner::RunOptions`].
//! - [`progress`]: which run is running, how many remain, time left.
//! - [`campaign`]: `run fault-campaign`: randomized single faults against
//!   fresh CoRAL pairs and the checker that decides each trial; it runs on
//!   [`live`], [`runner`]'s load helpers and faultinject.
//! - [`hostile`]: `run hostile-input`: every attack of a hostile LAN host
//!   at a live pair under load, each judged by its window; the attack
//!   generators are shared with the namespace test.
//! - [`catalog`]: what each experiment is (variants, faults, load, shapes),
//!   as data.
//! - [`live`]: a topology with its service running ([`live::bring_up`]),
//!   and the roles that move while it runs.
//! - [`services`]: the services `up` can start on a built topology.
//! - [`topology`]: topologies behind one trait, their state file, and the
//!   guard that tears one down ([`topology::Live`]); knows no service.
//! - [`conditions`]: paper-faithful conditions (LAN rate, per-host CPU quota).
//! - [`measure`]: what the runner adds to a repetition's `summary.json`.
//! - [`plot`]: `coral-exp plot`, figures from the results tree.
//! - [`report`]: `coral-exp report`, `results/REPORT.md` from the results tree.

pub mod campaign;
pub mod catalog;
pub mod commands;
pub mod conditions;
pub mod hostile;
pub mod live;
pub mod measure;
pub mod plot;
pub mod progress;
pub mod report;
pub mod runner;
pub mod services;
pub mod topology;
