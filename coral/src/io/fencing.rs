//! The self-fence (docs/DESIGN.md section 4): a deposed node drops every
//! connection silently.
//!
//! [`silence_all`] puts every socket of the live-connection registry
//! ([`crate::io::live_conns`]) into `TCP_REPAIR` mode: from then on the kernel
//! sends nothing for it, and closing it (at exit) sends no FIN or RST. The
//! lease is revoked before (so nothing leaves even in between) and the nft
//! table stays after exit.

use crate::io::live_conns;

/// Put every registered socket into repair mode (the kernel goes silent
/// for it). Returns (silenced, failed).
pub fn silence_all() -> (usize, usize) {
    let fds = live_conns::fds();
    let mut ok = 0;
    for fd in &fds {
        if crate::io::repair::set_repair(*fd, true).is_ok() {
            ok += 1;
        }
    }
    (ok, fds.len() - ok)
}
