//! `coral-exp run`: experiments and the results tree.
use crate::commands::RunArgs;

/// Runs an experiment; returns the exit code.
pub fn run(_a: &RunArgs) -> anyhow::Result<i32> {
    anyhow::bail!("not built yet")
}
