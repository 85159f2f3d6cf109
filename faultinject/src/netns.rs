//! Running things inside a named network namespace (`/run/netns/NAME`).
//!
//! The child process enters the namespace itself (`setns` between fork and
//! exec), so the caller's own namespace never matters and no thread of the
//! caller ever changes namespace.

use crate::FaultError;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// Whether `name` is a namespace given by a process's path,
/// `/proc/<pid>/ns/net`, rather than a /run/netns name: the Docker topology
/// names the engine's own namespace so (where its networks' bridges and the
/// host-side ends of its containers' veths live, to cut a link there).
pub fn is_proc_path(name: &str) -> bool {
    name.strip_prefix("/proc/")
        .and_then(|r| r.strip_suffix("/ns/net"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Where `ip netns add NAME` puts the namespace handle (a
/// `/proc/<pid>/ns/net` path is its own).
pub fn path(name: &str) -> PathBuf {
    if is_proc_path(name) {
        return PathBuf::from(name);
    }
    PathBuf::from("/run/netns").join(name)
}

/// Fails with [`FaultError::NoNetns`] unless `/run/netns/NAME` exists (or
/// NAME is a `/proc/<pid>/ns/net` that exists).
pub fn require(name: &str) -> Result<(), FaultError> {
    if is_proc_path(name) {
        if !path(name).exists() {
            return Err(FaultError::NoNetns(name.to_string()));
        }
        return Ok(());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_paths_are_recognised_and_nothing_else() {
        assert!(is_proc_path("/proc/1426/ns/net"));
        assert_eq!(path("/proc/12/ns/net"), PathBuf::from("/proc/12/ns/net"));
        assert_eq!(
            path("cx12ab-switch"),
            PathBuf::from("/run/netns/cx12ab-switch")
        );
        for bad in [
            "/proc//ns/net",
            "/proc/1/../ns/net",
            "/proc/self/ns/net",
            "/tmp/x",
        ] {
            assert!(!is_proc_path(bad), "{bad}");
        }
        assert!(require("/proc/999999999/ns/net").is_err());
        assert!(require("../etc").is_err());
    }
}
