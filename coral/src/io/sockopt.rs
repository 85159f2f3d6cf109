//! Typed `setsockopt`/`getsockopt` for the options the standard library and
//! socket2 do not cover (TCP_REPAIR and friends, packet-socket options,
//! SO_MARK on a borrowed descriptor). One place for the unsafe calls.

use std::io;
use std::mem::size_of;
use std::os::fd::RawFd;

fn result(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    }
}

/// `setsockopt(fd, level, name, &val)`; errors name `what`.
pub(crate) fn set<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
    what: &str,
) -> io::Result<()> {
    set_slice(fd, level, name, std::slice::from_ref(val), what)
}

/// `setsockopt` with an array value (e.g. `TCP_REPAIR_OPTIONS`).
pub(crate) fn set_slice<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    vals: &[T],
    what: &str,
) -> io::Result<()> {
    // SAFETY: the slice is live for the call and its byte length is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            vals.as_ptr() as *const libc::c_void,
            std::mem::size_of_val(vals) as libc::socklen_t,
        )
    };
    result(rc, what)
}

/// `getsockopt(fd, level, name)` into a `T`.
pub(crate) fn get<T: Copy + Default>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    what: &str,
) -> io::Result<T> {
    let mut val = T::default();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is a live, writable `T` and `len` its size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            &mut val as *mut T as *mut libc::c_void,
            &mut len,
        )
    };
    result(rc, what).map(|_| val)
}

/// `getsockopt` into a byte array (a prefix of a larger kernel struct).
pub(crate) fn get_bytes<const N: usize>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    what: &str,
) -> io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    let mut len = N as libc::socklen_t;
    // SAFETY: `buf` is writable for `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            buf.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    result(rc, what).map(|_| buf)
}
