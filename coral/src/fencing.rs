//! Fencing (DESIGN.md section 4): the registry of live connection sockets,
//! so a deposed node can drop every connection silently.
//!
//! Every connection the node serves (accepted by the primary or rebuilt at
//! a takeover) registers its descriptor for as long as it is served. To
//! fence, [`silence_all`] puts every registered socket into `TCP_REPAIR`
//! mode: from then on the kernel sends nothing for it, and closing it (at
//! exit) sends no FIN or RST. The lease is revoked before (so nothing
//! leaves even in between) and the nft table stays after exit.
//!
//! A descriptor is unregistered just after its socket closes, so a fence
//! racing with a close may set `TCP_REPAIR` on an unrelated descriptor that
//! reused the number; the node exits right after fencing, so that is
//! harmless (a non-TCP descriptor refuses the option).

use std::collections::BTreeSet;
use std::os::fd::RawFd;
use std::sync::Mutex;

static LIVE: Mutex<BTreeSet<RawFd>> = Mutex::new(BTreeSet::new());

/// A registered connection; unregistered on drop.
#[derive(Debug)]
pub struct LiveConn(RawFd);

/// Register a connection's socket for as long as the guard lives.
pub fn register(fd: RawFd) -> LiveConn {
    LIVE.lock().expect("live").insert(fd);
    LiveConn(fd)
}

impl Drop for LiveConn {
    fn drop(&mut self) {
        LIVE.lock().expect("live").remove(&self.0);
    }
}

/// How many connections are registered.
pub fn live() -> usize {
    LIVE.lock().expect("live").len()
}

/// Put every registered socket into repair mode (the kernel goes silent
/// for it). Returns (silenced, failed).
pub fn silence_all() -> (usize, usize) {
    let fds: Vec<RawFd> = LIVE.lock().expect("live").iter().copied().collect();
    let mut ok = 0;
    for fd in &fds {
        if crate::repair::set_repair(*fd, true).is_ok() {
            ok += 1;
        }
    }
    (ok, fds.len() - ok)
}
