//! # faultinject: the faults the experiments inject
//!
//! Each fault is a real change to a running topology, made from outside the
//! processes it hurts:
//!
//! - [`Fault::LinkCut`] / [`Fault::LinkRestore`]: set one end of a veth down
//!   / up (the kit cuts the switch-side end: the paper's unplugged cable).
//! - [`Fault::Kill`], [`Fault::Stop`], [`Fault::Cont`]: SIGKILL, SIGSTOP,
//!   SIGCONT to a host's service processes.
//! - [`Fault::Partition`] / [`Fault::Heal`]: an nft rule (bridge family) in
//!   the switch's namespace that drops every frame between two MAC addresses,
//!   in both directions, and its removal.
//! - [`Fault::IsolateWitness`]: an nft table (inet family) in one host's
//!   namespace that drops UDP to and from the witness's address and port:
//!   that host alone is cut off from the witness.
//!
//! Every injected fault can be appended to an `events.csv`
//! (`t_unix_ns,host,source,event,detail`, see [`events`]) with
//! [`inject_and_record`]. Namespaces are named as under `/run/netns` (what
//! `ip netns add` creates), and every operation opens `/run/netns/NAME`
//! itself, so it works from whichever namespace the caller is in.

pub mod events;
pub mod netns;
pub mod nl;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::path::Path;
use std::process::Stdio;

pub use events::{append_event, now_unix_ns, read_events, Event};

/// Name of the nft table (bridge family) holding partition rules.
pub const PARTITION_TABLE: &str = "coral_fault";

/// Name of the nft table (inet family) of [`Fault::IsolateWitness`].
pub const ISOLATE_TABLE: &str = "coral_fault_isolate";

/// Errors of fault injection.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// An external command (`ip`, `nft`) could not be run or failed.
    #[error("`{cmd}` failed: {detail}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its exit status and what it printed on stderr, and the input it
        /// was given (or why it could not be started).
        detail: String,
    },
    /// None of the target processes exists any more.
    #[error("no live process among pids {0:?}")]
    NoLiveProcess(Vec<u32>),
    /// A signal could not be delivered.
    #[error("signal {sig} to pid {pid}: {err}")]
    Signal {
        /// Target pid.
        pid: u32,
        /// Signal name.
        sig: String,
        /// The OS error.
        err: nix::Error,
    },
    /// `heal` found no partition between the two hosts.
    #[error("no partition labelled `{0}` is in place")]
    NoSuchPartition(String),
    /// A namespace does not exist under /run/netns.
    #[error("network namespace `{0}` does not exist under /run/netns")]
    NoNetns(String),
    /// Bad input (a MAC address, an interface name...).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A netlink operation failed.
    #[error("netlink: {0}")]
    Netlink(String),
    /// Writing events.csv failed.
    #[error("events file: {0}")]
    Events(String),
}

/// One fault, with everything needed to inject it (no topology lookup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Set interface `dev` in namespace `netns` down.
    LinkCut {
        /// Namespace holding the interface (the switch, for LAN hosts).
        netns: String,
        /// Interface name inside that namespace.
        dev: String,
    },
    /// Set interface `dev` in namespace `netns` up.
    LinkRestore {
        /// Namespace holding the interface.
        netns: String,
        /// Interface name inside that namespace.
        dev: String,
    },
    /// SIGKILL every live process in `pids`.
    Kill {
        /// Target pids.
        pids: Vec<u32>,
    },
    /// SIGSTOP every live process in `pids`.
    Stop {
        /// Target pids.
        pids: Vec<u32>,
    },
    /// SIGCONT every live process in `pids`.
    Cont {
        /// Target pids.
        pids: Vec<u32>,
    },
    /// Drop every bridged frame between `mac_a` and `mac_b` in `netns`.
    Partition {
        /// Namespace of the bridge.
        netns: String,
        /// First MAC address.
        mac_a: String,
        /// Second MAC address.
        mac_b: String,
        /// Label identifying this partition (used by [`Fault::Heal`]).
        label: String,
    },
    /// Remove the partition rules labelled `label` in `netns`.
    Heal {
        /// Namespace of the bridge.
        netns: String,
        /// Label given to [`Fault::Partition`].
        label: String,
    },
    /// Drop UDP from namespace `netns` to `addr:port` and from there back
    /// (the host's own input and output hooks): the host can no longer
    /// reach the witness listening there; everything else flows.
    IsolateWitness {
        /// The isolated host's namespace.
        netns: String,
        /// The witness's IPv4 address.
        addr: String,
        /// The witness's UDP port.
        port: u16,
    },
}

impl Fault {
    /// The event name written to events.csv (`link-cut`, `kill`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Fault::LinkCut { .. } => "link-cut",
            Fault::LinkRestore { .. } => "link-restore",
            Fault::Kill { .. } => "kill",
            Fault::Stop { .. } => "stop",
            Fault::Cont { .. } => "cont",
            Fault::Partition { .. } => "partition",
            Fault::Heal { .. } => "heal",
            Fault::IsolateWitness { .. } => "isolate-witness",
        }
    }
}

/// Injects `fault` and returns a human-readable detail of what was done.
pub fn inject(fault: &Fault) -> Result<String, FaultError> {
    match fault {
        Fault::LinkCut { netns, dev } => {
            link_set(netns, dev, false)?;
            Ok(format!("{netns}/{dev} down"))
        }
        Fault::LinkRestore { netns, dev } => {
            link_set(netns, dev, true)?;
            Ok(format!("{netns}/{dev} up"))
        }
        Fault::Kill { pids } => signal_pids(pids, Signal::SIGKILL),
        Fault::Stop { pids } => signal_pids(pids, Signal::SIGSTOP),
        Fault::Cont { pids } => signal_pids(pids, Signal::SIGCONT),
        Fault::Partition {
            netns,
            mac_a,
            mac_b,
            label,
        } => {
            partition(netns, mac_a, mac_b, label)?;
            Ok(format!("{netns}: drop {mac_a} <-> {mac_b} ({label})"))
        }
        Fault::Heal { netns, label } => {
            let n = heal(netns, label)?;
            Ok(format!("{netns}: removed {n} rules ({label})"))
        }
        Fault::IsolateWitness { netns, addr, port } => {
            isolate_witness(netns, addr, *port)?;
            Ok(format!("{netns}: drop udp to/from {addr}:{port}"))
        }
    }
}

/// Injects `fault` and appends one row to `events_path` (created with its
/// header if missing): `host` is the host the fault hit, `source` who injected
/// it. Returns the event written.
pub fn inject_and_record(
    fault: &Fault,
    host: &str,
    source: &str,
    events_path: &Path,
) -> Result<Event, FaultError> {
    let t = now_unix_ns();
    let detail = inject(fault)?;
    let ev = Event {
        t_unix_ns: t,
        host: host.to_string(),
        source: source.to_string(),
        event: fault.name().to_string(),
        detail,
    };
    append_event(events_path, &ev).map_err(|e| FaultError::Events(format!("{e:#}")))?;
    Ok(ev)
}

fn check_name(what: &str, s: &str) -> Result<(), FaultError> {
    if what == "namespace" && netns::is_proc_path(s) {
        return Ok(());
    }
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(FaultError::Invalid(format!("{what} `{s}`")))
    }
}

fn check_mac(s: &str) -> Result<(), FaultError> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        Ok(())
    } else {
        Err(FaultError::Invalid(format!("MAC address `{s}`")))
    }
}

/// Runs `cmd` to completion, feeding it `input` on stdin (else stdin is
/// empty), and returns its stdout. Fails with [`FaultError::Command`] if it
/// cannot be started or exits unsuccessfully; the error carries its exit
/// status, its stderr and the input it was given.
pub fn run_command(
    cmd: &mut std::process::Command,
    input: Option<&str>,
) -> Result<String, FaultError> {
    use std::io::Write;
    let line = format!("{cmd:?}");
    let failed = |detail: String| FaultError::Command {
        cmd: line.clone(),
        detail,
    };
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("cannot start: {e}")))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| failed(format!("writing its input: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(format!("waiting for it: {e}")))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(failed(format!(
        "{}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        input
            .map(|i| format!("\ninput was:\n{i}"))
            .unwrap_or_default()
    )))
}

/// Sets `dev` in namespace `netns` up or down (rtnetlink, see [`nl`]).
pub fn link_set(netns: &str, dev: &str, up: bool) -> Result<(), FaultError> {
    check_name("namespace", netns)?;
    check_name("interface", dev)?;
    let dev = dev.to_string();
    nl::in_netns(netns, move |h| async move {
        nl::link_set_up(&h, &dev, up).await?;
        // Read it back: the fault is only done if the kernel says so.
        if nl::link_is_up(&h, &dev).await? != up {
            return Err(format!(
                "{dev} did not go {}",
                if up { "up" } else { "down" }
            ));
        }
        Ok(())
    })
}

/// True if `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // state is the field after the ")" closing the command name
            match s.rfind(')') {
                Some(i) => !matches!(s[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
                None => false,
            }
        }
        Err(_) => false,
    }
}

/// Sends `sig` to every live pid; fails if none was alive.
pub fn signal_pids(pids: &[u32], sig: Signal) -> Result<String, FaultError> {
    let mut hit = Vec::new();
    for &pid in pids {
        if pid == 0 || pid > i32::MAX as u32 || !pid_alive(pid) {
            continue;
        }
        match nix::sys::signal::kill(Pid::from_raw(pid as i32), sig) {
            Ok(()) => hit.push(pid),
            Err(nix::Error::ESRCH) => {}
            Err(err) => {
                return Err(FaultError::Signal {
                    pid,
                    sig: sig.as_str().to_string(),
                    err,
                })
            }
        }
    }
    if hit.is_empty() {
        return Err(FaultError::NoLiveProcess(pids.to_vec()));
    }
    Ok(format!("{} to pids {hit:?}", sig.as_str()))
}

/// Adds rules dropping frames between `mac_a` and `mac_b` (both directions)
/// to the bridge-family table [`PARTITION_TABLE`] in `netns`.
pub fn partition(netns: &str, mac_a: &str, mac_b: &str, label: &str) -> Result<(), FaultError> {
    check_name("namespace", netns)?;
    check_mac(mac_a)?;
    check_mac(mac_b)?;
    check_name("label", label)?;
    netns::require(netns)?;
    let t = PARTITION_TABLE;
    let script = format!(
        "add table bridge {t}\n\
         add chain bridge {t} forward {{ type filter hook forward priority 0; policy accept; }}\n\
         add rule bridge {t} forward ether saddr {mac_a} ether daddr {mac_b} drop comment \"{label}\"\n\
         add rule bridge {t} forward ether saddr {mac_b} ether daddr {mac_a} drop comment \"{label}\"\n"
    );
    run_command(
        &mut netns::command_in(netns, "nft", &["-f", "-"])?,
        Some(&script),
    )?;
    Ok(())
}

/// Adds the table [`ISOLATE_TABLE`] to `netns`, dropping UDP to `addr:port`
/// (output) and from it (input). Injecting it twice adds the rules twice:
/// still one isolation.
pub fn isolate_witness(netns: &str, addr: &str, port: u16) -> Result<(), FaultError> {
    check_name("namespace", netns)?;
    let addr: std::net::Ipv4Addr = addr
        .parse()
        .map_err(|_| FaultError::Invalid(format!("IPv4 address `{addr}`")))?;
    netns::require(netns)?;
    let t = ISOLATE_TABLE;
    let script = format!(
        "add table inet {t}\n\
         add chain inet {t} out {{ type filter hook output priority 0; policy accept; }}\n\
         add chain inet {t} in {{ type filter hook input priority 0; policy accept; }}\n\
         add rule inet {t} out ip daddr {addr} udp dport {port} drop\n\
         add rule inet {t} in ip saddr {addr} udp sport {port} drop\n"
    );
    run_command(
        &mut netns::command_in(netns, "nft", &["-f", "-"])?,
        Some(&script),
    )?;
    Ok(())
}

/// Removes the rules labelled `label`; returns how many were removed, and
/// fails with [`FaultError::NoSuchPartition`] if there were none.
pub fn heal(netns: &str, label: &str) -> Result<usize, FaultError> {
    check_name("label", label)?;
    let n = match list_partition_rules(netns)? {
        Some(_) => remove_rules(netns, |l| l == label)?,
        None => 0,
    };
    if n == 0 {
        return Err(FaultError::NoSuchPartition(label.to_string()));
    }
    Ok(n)
}

/// Removes every partition rule whose label starts with `label_prefix`
/// (one topology's rules in a namespace other topologies may share, such as
/// the Docker engine's), then the table itself once no rule is left in it.
/// Returns how many rules were removed; a namespace without the table has
/// none to remove.
pub fn remove_partitions(netns: &str, label_prefix: &str) -> Result<usize, FaultError> {
    check_name("label prefix", label_prefix)?;
    if list_partition_rules(netns)?.is_none() {
        return Ok(0);
    }
    let n = remove_rules(netns, |l| l.starts_with(label_prefix))?;
    if list_partition_rules(netns)?.is_some_and(|rules| rules.is_empty()) {
        run_command(
            &mut netns::command_in(
                netns,
                "nft",
                &["delete", "table", "bridge", PARTITION_TABLE],
            )?,
            None,
        )?;
    }
    Ok(n)
}

/// The partition rules in `netns` as (label, handle); `None` when the table
/// does not exist there.
fn list_partition_rules(netns: &str) -> Result<Option<Vec<(String, String)>>, FaultError> {
    check_name("namespace", netns)?;
    netns::require(netns)?;
    let Ok(listing) = run_command(
        &mut netns::command_in(
            netns,
            "nft",
            &["-a", "list", "chain", "bridge", PARTITION_TABLE, "forward"],
        )?,
        None,
    ) else {
        return Ok(None);
    };
    // ... drop comment "LABEL" # handle N
    let rules = listing
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("comment \"")?;
            let (label, rest) = rest.split_once('"')?;
            let (_, handle) = rest.rsplit_once("# handle ")?;
            Some((label.to_string(), handle.trim().to_string()))
        })
        .collect();
    Ok(Some(rules))
}

/// Deletes the partition rules whose label `select` accepts; how many.
fn remove_rules(netns: &str, select: impl Fn(&str) -> bool) -> Result<usize, FaultError> {
    let rules = list_partition_rules(netns)?.ok_or_else(|| {
        FaultError::NoSuchPartition(format!("table {PARTITION_TABLE} in {netns}"))
    })?;
    let script: String = rules
        .iter()
        .filter(|(label, _)| select(label))
        .map(|(_, h)| format!("delete rule bridge {PARTITION_TABLE} forward handle {h}\n"))
        .collect();
    if script.is_empty() {
        return Ok(0);
    }
    run_command(
        &mut netns::command_in(netns, "nft", &["-f", "-"])?,
        Some(&script),
    )?;
    Ok(script.lines().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_command_returns_stdout_or_says_what_failed() {
        let mut ok = std::process::Command::new("sh");
        ok.args(["-c", "cat; echo done"]);
        assert_eq!(run_command(&mut ok, Some("in\n")).unwrap(), "in\ndone\n");
        let mut bad = std::process::Command::new("sh");
        bad.args(["-c", "cat >/dev/null; echo oops >&2; exit 3"]);
        let e = run_command(&mut bad, Some("the input"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("exit status: 3: oops"), "{e}");
        assert!(e.ends_with("input was:\nthe input"), "{e}");
        let mut none = std::process::Command::new("/nonexistent/program");
        let e = run_command(&mut none, None).unwrap_err().to_string();
        assert!(e.contains("cannot start"), "{e}");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("x", "cx12ab-switch").is_ok());
        assert!(check_name("x", "a b").is_err());
        assert!(check_name("x", "").is_err());
        assert!(check_name("x", "$(rm)").is_err());
        assert!(check_mac("02:00:c0:00:02:0b").is_ok());
        assert!(check_mac("02:00:c0:00:02").is_err());
        assert!(check_mac("02:00:c0:00:02:zz").is_err());
    }

    #[test]
    fn signal_to_dead_pids_fails() {
        // pid 0 and an out-of-range pid are skipped: nothing alive to hit.
        let r = signal_pids(&[0, u32::MAX], Signal::SIGCONT);
        assert!(matches!(r, Err(FaultError::NoLiveProcess(_))));
    }

    #[test]
    fn signal_reaches_a_real_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(pid_alive(pid));
        signal_pids(&[pid], Signal::SIGKILL).unwrap();
        let st = child.wait().unwrap();
        assert!(!st.success());
        assert!(!pid_alive(pid));
    }

    #[test]
    fn missing_namespace_is_an_error() {
        let r = link_set("cx-no-such-ns-zz", "eth0", false);
        assert!(matches!(r, Err(FaultError::NoNetns(_))), "{r:?}");
    }

    #[test]
    fn isolate_witness_checks_its_arguments() {
        let r = isolate_witness("cx-no-such-ns-zz", "198.51.100.10", 7012);
        assert!(matches!(r, Err(FaultError::NoNetns(_))), "{r:?}");
        let r = isolate_witness("cx-no-such-ns-zz", "198.51.100.10; flush ruleset", 7012);
        assert!(matches!(r, Err(FaultError::Invalid(_))), "{r:?}");
    }

    #[test]
    fn fault_names() {
        let f = Fault::Kill { pids: vec![] };
        assert_eq!(f.name(), "kill");
        assert_eq!(
            Fault::Heal {
                netns: "a".into(),
                label: "b".into()
            }
            .name(),
            "heal"
        );
    }
}
