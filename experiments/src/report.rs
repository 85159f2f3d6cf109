//! (under construction) `coral-exp report`.
use clap::Args;

/// Arguments of `coral-exp report`.
#[derive(Args, Debug)]
pub struct ReportArgs {}

/// `coral-exp report`; returns the process exit code.
pub fn run(_a: ReportArgs) -> anyhow::Result<i32> { anyhow::bail!("not built yet") }
