//! Test fixtures: throwaway network namespaces joined by veth pairs, removed
//! on drop (also when the test panics). Names carry the pid and a counter so
//! concurrent runs never collide.

#![allow(dead_code)]

pub mod duplex;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Run a command, panic with its stderr if it fails.
pub fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A set of namespaces that disappears on drop.
pub struct Netns {
    /// Unique prefix of every name.
    pub prefix: String,
    names: Vec<String>,
}

impl Netns {
    /// A new, empty set.
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        Netns {
            prefix: format!("ct{}{}{}", tag, std::process::id() % 100_000, n),
            names: vec![],
        }
    }

    /// Create namespace `<prefix>-<host>` with `lo` up; returns its name.
    pub fn add(&mut self, host: &str) -> String {
        let name = format!("{}-{}", self.prefix, host);
        sh(&["ip", "netns", "add", &name]);
        self.names.push(name.clone());
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// Join two namespaces with a veth pair and give each end an address.
    pub fn link(&self, a: &str, a_dev: &str, a_addr: &str, b: &str, b_dev: &str, b_addr: &str) {
        sh(&[
            "ip", "link", "add", "tmpa0", "netns", a, "type", "veth", "peer", "name", "tmpb0",
            "netns", b,
        ]);
        sh(&["ip", "-n", a, "link", "set", "tmpa0", "name", a_dev]);
        sh(&["ip", "-n", b, "link", "set", "tmpb0", "name", b_dev]);
        for (ns, dev, addr) in [(a, a_dev, a_addr), (b, b_dev, b_addr)] {
            sh(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
    }
}

impl Netns {
    /// Create a bridge `br0` in namespace `sw` (a switch).
    pub fn bridge(&self, sw: &str) {
        sh(&["ip", "-n", sw, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", sw, "link", "set", "br0", "up"]);
    }

    /// Plug host namespace `host` into the switch `sw`: `eth0` with `addr`
    /// on the host side, `<tag>` on the switch side (set it down to cut the
    /// link). Returns the switch-side interface name.
    pub fn plug(&self, host: &str, addr: &str, sw: &str, tag: &str) -> String {
        let port = format!("p-{tag}");
        sh(&[
            "ip", "link", "add", "tmpa0", "netns", host, "type", "veth", "peer", "name", "tmpb0",
            "netns", sw,
        ]);
        sh(&["ip", "-n", host, "link", "set", "tmpa0", "name", "eth0"]);
        sh(&["ip", "-n", sw, "link", "set", "tmpb0", "name", &port]);
        sh(&["ip", "-n", sw, "link", "set", &port, "master", "br0"]);
        sh(&["ip", "-n", sw, "link", "set", &port, "up"]);
        sh(&["ip", "-n", host, "addr", "add", addr, "dev", "eth0"]);
        sh(&["ip", "-n", host, "link", "set", "eth0", "up"]);
        port
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "pids", n])
                .output()
                .map(|o| {
                    for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                        let _ = Command::new("kill").args(["-9", pid]).status();
                    }
                });
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// Run `f` on a new thread that has entered namespace `ns`; sockets it
/// creates belong to that namespace wherever they are used afterwards.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on a valid namespace fd affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread panicked")
}
