//! Rejoining after a lost race (docs/DESIGN.md 6): a node that fenced
//! itself because its peer won an address (a false detection on one side,
//! or a real fault that healed) does not leave the pair without a backup.
//! With `rejoin = true` it replaces its own process with
//! `coral join --config F --to PEER:JOIN_PORT --retry-s N --front-all`,
//! a fresh node that joins the survivor through the reintegration path.
//!
//! Every attempt is a fresh process (`exec`): nothing of the fenced node
//! survives but its kernel state, which a starting node resets (nft table,
//! addresses), and its pid, which keeps supervisors and topologies tracking
//! the same process. A refused, failed or rolled-back join is retried the
//! same way every [`RETRY_EVERY`] until the deadline, then the node exits 1
//! naming the last error.

use std::ffi::OsString;
use std::net::SocketAddrV4;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Config;
use crate::events::EventLog;

/// Pause between two join attempts.
pub const RETRY_EVERY: Duration = Duration::from_millis(200);

/// The environment variable carrying a retried join's deadline (ns of the
/// system's monotonic clock, which an exec keeps and a step of the wall
/// clock does not move) from one attempt's process to the next.
pub const DEADLINE_ENV: &str = "CORAL_JOIN_DEADLINE_NS";

/// How this node rejoins its peer after fencing itself.
#[derive(Debug, Clone)]
pub struct Rejoin {
    config: PathBuf,
    to: SocketAddrV4,
    retry_s: u64,
}

impl Rejoin {
    /// The rejoin a configuration asks for (`rejoin = true` and read from a
    /// file), toward the peer's JOIN port.
    pub fn from_config(cfg: &Config) -> Option<Rejoin> {
        if !cfg.rejoin {
            return None;
        }
        Some(Rejoin {
            config: cfg.path.clone()?,
            to: SocketAddrV4::new(cfg.peer.addr, cfg.join_port),
            retry_s: cfg.rejoin_s,
        })
    }

    /// Record `rejoin` and replace this process with `coral join`; returns
    /// only if the exec failed.
    pub fn exec(&self, events: &EventLog) -> std::io::Error {
        events.record(
            "rejoin",
            &format!("to={} retry_s={}", self.to, self.retry_s),
        );
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("coral"));
        std::process::Command::new(exe)
            .arg("join")
            .arg("--config")
            .arg(&self.config)
            .args(["--to", &self.to.to_string()])
            .args(["--retry-s", &self.retry_s.to_string(), "--front-all"])
            .env_remove(DEADLINE_ENV)
            .exec()
    }
}

/// After a failed join attempt (`err`): when `--retry-s` gave time and it is
/// not over, wait [`RETRY_EVERY`] and run this same command again as a
/// fresh process (returns only if that exec failed); otherwise `None`.
pub fn retry_join(retry_s: u64, err: &anyhow::Error) -> Option<std::io::Error> {
    if retry_s == 0 {
        return None;
    }
    let now = crate::clock::system_monotonic_ns();
    let deadline = std::env::var(DEADLINE_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| now + retry_s * 1_000_000_000);
    if now + RETRY_EVERY.as_nanos() as u64 >= deadline {
        tracing::error!("coral join: giving up after {retry_s} s");
        return None;
    }
    tracing::warn!("coral join: {err:#}; trying again");
    std::thread::sleep(RETRY_EVERY);
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let exe = std::env::current_exe()
        .map(OsString::from)
        .unwrap_or_else(|_| args[0].clone());
    args.remove(0);
    Some(
        std::process::Command::new(exe)
            .args(args)
            .env(DEADLINE_ENV, deadline.to_string())
            .exec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "name = \"server-b\"\nnode_id = 2\nlan = \"eth0\"\nkey_file = \"/k\"\n\
        join_port = 7777\nrejoin_s = 9\nREJOIN\n[peer]\nnode_id = 1\naddr = \"192.0.2.11\"\n\
        [[service]]\nvip = \"192.0.2.100\"\nrole = \"backup\"\n";

    fn cfg(rejoin: &str, path: Option<&str>) -> Config {
        let mut c = Config::parse(&CFG.replace("REJOIN", rejoin)).unwrap();
        c.path = path.map(PathBuf::from);
        c
    }

    #[test]
    fn a_node_rejoins_its_peer_only_when_configured_and_read_from_a_file() {
        assert!(Rejoin::from_config(&cfg("rejoin = false", Some("/c.toml"))).is_none());
        assert!(Rejoin::from_config(&cfg("", Some("/c.toml"))).is_none());
        assert!(Rejoin::from_config(&cfg("rejoin = true", None)).is_none());
        let r = Rejoin::from_config(&cfg("rejoin = true", Some("/c.toml"))).unwrap();
        assert_eq!(r.to, "192.0.2.11:7777".parse().unwrap());
        assert_eq!(r.retry_s, 9);
        assert_eq!(r.config, PathBuf::from("/c.toml"));
    }

    #[test]
    fn no_retry_without_time() {
        assert!(retry_join(0, &anyhow::anyhow!("refused")).is_none());
    }
}
