//! (under construction) `coral-exp plot`.
use clap::Args;

/// Arguments of `coral-exp plot`.
#[derive(Args, Debug)]
pub struct PlotArgs {}

/// `coral-exp plot`; returns the process exit code.
pub fn run(_a: PlotArgs) -> anyhow::Result<i32> { anyhow::bail!("not built yet") }
