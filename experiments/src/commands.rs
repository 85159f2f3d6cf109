//! (under construction) `up`, `down`, `exec`, `fault`, `run`.
use clap::Args;

/// Arguments of `coral-exp up`.
#[derive(Args, Debug)]
pub struct UpArgs {}
/// Arguments of `coral-exp down`.
#[derive(Args, Debug)]
pub struct DownArgs {}
/// Arguments of `coral-exp exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {}
/// Arguments of `coral-exp fault`.
#[derive(Args, Debug)]
pub struct FaultArgs {}
/// Arguments of `coral-exp run`.
#[derive(Args, Debug)]
pub struct RunArgs {}

/// `coral-exp up`; returns the process exit code.
pub fn up(_a: UpArgs) -> anyhow::Result<i32> { anyhow::bail!("not built yet") }
/// `coral-exp down`.
pub fn down(_a: DownArgs) -> anyhow::Result<i32> { anyhow::bail!("not built yet") }
/// `coral-exp exec`.
pub fn exec(_a: ExecArgs) -> anyhow::Result<i32> { anyhow::bail!("not built yet") }
/// `coral-exp fault`.
pub fn fault(_a: FaultArgs) -> anyhow::Result<i32> { anyhow::bail!("not built yet") }
/// `coral-exp run`.
pub fn run(_a: RunArgs) -> anyhow::Result<i32> { anyhow::bail!("not built yet") }
