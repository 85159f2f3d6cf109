//! The self-fence (docs/DESIGN.md section 4): a deposed node drops every
//! connection silently.
//!
//! [`silence_all`] puts every socket of the live-connection registry
//! ([`crate::io::live_conns`]) into `TCP_REPAIR` mode: from then on the kernel
//! sends nothing for it, and closing it (at exit) sends no FIN or RST. The
//! lease is revoked before (so nothing leaves even in between) and the nft
//! table stays after exit.
//!
//! [`silence_connections_to_port`] does the same for the primary's log
//! channel once it went simplex (the backup is dead or deposed).

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

/// Every TCP socket of this process connected to remote port `port` goes
/// silently: repair mode on, then disconnected (`connect(AF_UNSPEC)`,
/// which in repair mode sends no RST and stops the socket's timers; its
/// owner's next read or write fails). For the primary's log channel once
/// the witness granted it the address: the backup is dead or deposed, and
/// entries it never acknowledged would be retransmitted on this node's
/// timer for minutes. Found by peer port, so the channel's own code is not
/// involved. Returns how many sockets went silent.
pub fn silence_connections_to_port(port: u16) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut n = 0;
    for fd in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        if peer_port(fd) != Some(port) {
            continue;
        }
        if crate::io::repair::set_repair(fd, true).is_err() {
            continue;
        }
        let unspec = libc::sockaddr {
            sa_family: libc::AF_UNSPEC as libc::sa_family_t,
            sa_data: [0; 14],
        };
        // SAFETY: a valid sockaddr of the size passed.
        let rc = unsafe {
            libc::connect(
                fd,
                &unspec,
                std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            n += 1;
        }
    }
    n
}

/// The remote port of `fd` if it is a connected IPv4 TCP socket.
fn peer_port(fd: i32) -> Option<u16> {
    let mut ty: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `ty` and `len` are valid for the call; a descriptor that is
    // not a socket fails with ENOTSOCK.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            &mut ty as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    if rc != 0 || ty != libc::SOCK_STREAM {
        return None;
    }
    // SAFETY: zeroed sockaddr_in is valid; `len` gives its size.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `sa` and `len` are valid for the call.
    let rc = unsafe { libc::getpeername(fd, &mut sa as *mut _ as *mut libc::sockaddr, &mut len) };
    if rc != 0 || sa.sin_family != libc::AF_INET as libc::sa_family_t {
        return None;
    }
    Some(u16::from_be(sa.sin_port))
}
