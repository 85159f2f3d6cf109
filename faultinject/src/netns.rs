//! Running things inside a named network namespace (`/run/netns/NAME`).
//!
//! The child process enters the namespace itself (`setns` between fork and
//! exec), so the caller's own namespace never matters and no thread of the
//! caller ever changes namespace.

use crate::FaultError;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// Where `ip netns add NAME` puts the namespace handle.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Fails with [`FaultError::NoNetns`] unless `/run/netns/NAME` exists.
pub fn require(name: &str) -> Result<(), FaultError> {
    if name.contains('/') || name.is_empty() || !path(name).exists() {
        return Err(FaultError::NoNetns(name.to_string()));
    }
    Ok(())
}

/// A [`Command`] for `program args...` whose process runs in namespace
/// `name` (entered with `setns` in the child before `exec`).
pub fn command_in(name: &str, program: &str, args: &[&str]) -> Result<Command, FaultError> {
    require(name)?;
    let ns = std::fs::File::open(path(name)).map_err(|_| FaultError::NoNetns(name.to_string()))?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: the closure only calls setns(2), which is async-signal-safe,
    // on a file descriptor opened before the fork (moved into the closure).
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
        });
    }
    Ok(cmd)
}
