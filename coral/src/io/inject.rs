//! Client segments handed to the local stack as if they had arrived on the
//! LAN: a raw IPv4 socket (`IPPROTO_RAW`, so `IP_HDRINCL`) sends each bare
//! IPv4 packet to a local service address, and the kernel loops it through
//! `lo` with the output route attached (no reverse-path check). The
//! packets must carry correct checksums (they are built with
//! `coral_core::wire::build_ipv4_tcp_packet`).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A raw IPv4 socket for re-injecting client segments into the local stack.
pub fn raw_inject_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); IPPROTO_RAW implies IP_HDRINCL.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Send the bare IPv4 `packet` to `dst` through the local stack.
pub fn inject(fd: &OwnedFd, packet: &[u8], dst: Ipv4Addr) -> io::Result<()> {
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `packet` and `sa` are live for the call.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            packet.as_ptr() as *const libc::c_void,
            packet.len(),
            0,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
