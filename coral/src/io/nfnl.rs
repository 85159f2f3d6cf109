//! The lease's hot path: set elements written straight over nfnetlink,
//! without libnftables (docs/DESIGN.md section 4, "What a refresh costs").
//!
//! Every heartbeat echo extends the lease, on the heartbeat thread, so the
//! call must be cheap. libnftables parses the command text and fetches the
//! kernel's ruleset cache on every call: about 0.45 ms a refresh here
//! (median, `SCHED_FIFO`, idle namespace), and under a 0.1-core quota that
//! spent the heartbeat thread's real-time budget until the thread was
//! throttled mid-round, 3-19 ms, long enough for both nodes to declare
//! each other failed at 5 ms heartbeats. The same element update sent as
//! one nfnetlink batch (begin, `NFT_MSG_NEWSETELEM`, end) costs the
//! kernel's transaction only: about 0.14 ms.
//!
//! The batch is written by hand: the message layout is the kernel's uapi
//! (`linux/netfilter/nfnetlink.h`, `linux/netfilter/nf_tables.h`), and the
//! maintained Rust crates for nftables either wrap libnftables (the cost
//! this module avoids) or are GPL-licensed. Only this one message is
//! encoded; the ruleset and every other change still go through
//! libnftables ([`crate::io::nft`]).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `NETLINK_NETFILTER` (linux/netlink.h).
const NETLINK_NETFILTER: libc::c_int = 12;
/// `NFNL_MSG_BATCH_BEGIN` / `END` (linux/netfilter/nfnetlink.h).
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
/// `NFNL_SUBSYS_NFTABLES`.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_NEWSETELEM` (linux/netfilter/nf_tables.h).
const NFT_MSG_NEWSETELEM: u16 = 12;
/// `NFPROTO_NETDEV`: the lease set lives in the node's netdev table.
const NFPROTO_NETDEV: u8 = 5;
/// `NFTA_SET_ELEM_LIST_*`.
const LIST_TABLE: u16 = 1;
const LIST_SET: u16 = 2;
const LIST_ELEMENTS: u16 = 3;
/// `NFTA_LIST_ELEM`.
const LIST_ELEM: u16 = 1;
/// `NFTA_SET_ELEM_*`.
const ELEM_KEY: u16 = 1;
const ELEM_TIMEOUT: u16 = 4;
const ELEM_EXPIRATION: u16 = 5;
/// `NFTA_DATA_VALUE`.
const DATA_VALUE: u16 = 1;
/// `NLA_F_NESTED`.
const NESTED: u16 = 0x8000;
/// `NLMSG_ERROR`: the kernel's answer (0: done, else -errno).
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;

/// One element of a lease refresh: the address, its timeout and the time
/// until it expires, each in whole milliseconds as nft takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseElem {
    /// The service address.
    pub vip: Ipv4Addr,
    /// The element's timeout (what a later plain refresh would restart).
    pub timeout: Duration,
    /// When it expires, from when the kernel handles the batch.
    pub expires: Duration,
}

/// A netlink socket that sets elements of one set of one netdev table.
pub struct SetElemSocket {
    fd: OwnedFd,
    seq: u32,
    table: String,
    set: String,
}

impl SetElemSocket {
    /// A socket in this thread's network namespace for `set` of netdev
    /// table `table`.
    pub fn open(table: &str, set: &str) -> io::Result<SetElemSocket> {
        // SAFETY: plain socket(2); the descriptor is checked and owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SetElemSocket {
            fd,
            seq: 1,
            table: table.to_string(),
            set: set.to_string(),
        })
    }

    /// Add or update `elems` in one batch and wait for the kernel's answer
    /// (which it queues before the send returns).
    pub fn set(&mut self, elems: &[LeaseElem]) -> io::Result<()> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(3);
        let batch = encode_set_elems(seq, &self.table, &self.set, elems);
        // SAFETY: sends `batch.len()` bytes from a live buffer.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), batch.as_ptr().cast(), batch.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 512];
        loop {
            // SAFETY: receives at most `buf.len()` bytes into a live buffer.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(r) = answer_to(&buf[..n as usize], seq) {
                return r;
            }
        }
    }
}

/// The kernel's answer to the batch that began with `seq` in `datagram`, if
/// it holds one: `Ok` for the acknowledgement of the element message
/// (`seq + 1`), the errno of an error about any of the batch's three.
fn answer_to(datagram: &[u8], seq: u32) -> Option<io::Result<()>> {
    let mut rest = datagram;
    while rest.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(rest[4..6].try_into().ok()?);
        let mseq = u32::from_ne_bytes(rest[8..12].try_into().ok()?);
        if len < NLMSG_HDRLEN || len > rest.len() {
            return None;
        }
        let ours = mseq.wrapping_sub(seq) < 3;
        if kind == NLMSG_ERROR && ours && len >= NLMSG_HDRLEN + 4 {
            let err = i32::from_ne_bytes(rest[16..20].try_into().ok()?);
            if err != 0 {
                return Some(Err(io::Error::from_raw_os_error(-err)));
            }
            if mseq == seq.wrapping_add(1) {
                return Some(Ok(()));
            }
        }
        rest = &rest[align4(len).min(rest.len())..];
    }
    None
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Append one attribute (header, payload, padding).
fn attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(align4(out.len()), 0);
}

/// Append one nested attribute whose payload `inner` writes.
fn nested(out: &mut Vec<u8>, kind: u16, inner: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    inner(out);
    let len = (out.len() - start) as u16;
    out[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    out[start + 2..start + 4].copy_from_slice(&(kind | NESTED).to_ne_bytes());
}

/// Append one netlink message with an `nfgenmsg` header.
fn message(
    out: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    body: &[u8],
) {
    let len = NLMSG_HDRLEN + 4 + body.len();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[family, 0]);
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(body);
    out.resize(align4(out.len()), 0);
}

/// NUL-terminated name, as netlink strings are.
fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// The batch that adds or updates `elems` in `set` of netdev table
/// `table`: begin (`seq`), `NFT_MSG_NEWSETELEM` (`seq + 1`, create,
/// acknowledged), end (`seq + 2`). Each element carries its timeout and
/// expiration in milliseconds (at least 1; the expiration never past the
/// timeout), big-endian as the kernel reads them; an element that exists
/// gets both updated, as `nft add element` with `timeout` and `expires`
/// does.
pub fn encode_set_elems(seq: u32, table: &str, set: &str, elems: &[LeaseElem]) -> Vec<u8> {
    let flags_request = libc::NLM_F_REQUEST as u16;
    let mut body = Vec::with_capacity(64 + 48 * elems.len());
    attr(&mut body, LIST_TABLE, &cstr(table));
    attr(&mut body, LIST_SET, &cstr(set));
    nested(&mut body, LIST_ELEMENTS, |b| {
        for e in elems {
            nested(b, LIST_ELEM, |b| {
                nested(b, ELEM_KEY, |b| attr(b, DATA_VALUE, &e.vip.octets()));
                attr(b, ELEM_TIMEOUT, &ms(e.timeout).to_be_bytes());
                attr(
                    b,
                    ELEM_EXPIRATION,
                    &ms(e.expires.min(e.timeout)).to_be_bytes(),
                );
            });
        }
    });
    let mut out = Vec::with_capacity(body.len() + 3 * (NLMSG_HDRLEN + 4));
    message(
        &mut out,
        NFNL_MSG_BATCH_BEGIN,
        flags_request,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    message(
        &mut out,
        (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM,
        flags_request | libc::NLM_F_CREATE as u16 | libc::NLM_F_ACK as u16,
        seq.wrapping_add(1),
        NFPROTO_NETDEV,
        0,
        &body,
    );
    message(
        &mut out,
        NFNL_MSG_BATCH_END,
        flags_request,
        seq.wrapping_add(2),
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    out
}

/// Whole milliseconds, at least 1 (as nft hands them to the kernel).
fn ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], i: usize) -> u16 {
        u16::from_ne_bytes([b[i], b[i + 1]])
    }

    fn u32_at(b: &[u8], i: usize) -> u32 {
        u32::from_ne_bytes(b[i..i + 4].try_into().unwrap())
    }

    #[test]
    fn a_refresh_is_one_batch_of_three_messages_with_the_element_inside() {
        let e = LeaseElem {
            vip: Ipv4Addr::new(192, 0, 2, 100),
            timeout: Duration::from_millis(20),
            expires: Duration::from_micros(12_900),
        };
        let b = encode_set_elems(7, "coral_1", "lease", &[e]);
        // Three messages, each 4-aligned, lengths adding up.
        let (l1, l2) = (u32_at(&b, 0) as usize, u32_at(&b, 20) as usize);
        assert_eq!(l1, 20);
        let l3 = u32_at(&b, l1 + l2) as usize;
        assert_eq!(l1 + l2 + l3, b.len());
        assert_eq!(l2 % 4, 0);
        // begin, NEWSETELEM (acked, netdev family), end; sequence numbers.
        assert_eq!(u16_at(&b, 4), NFNL_MSG_BATCH_BEGIN);
        assert_eq!(u16_at(&b, l1 + 4), (10 << 8) | 12);
        assert_ne!(u16_at(&b, l1 + 6) & libc::NLM_F_ACK as u16, 0);
        assert_eq!(b[l1 + 16], NFPROTO_NETDEV);
        assert_eq!(u16_at(&b, l1 + l2 + 4), NFNL_MSG_BATCH_END);
        assert_eq!(
            [u32_at(&b, 8), u32_at(&b, l1 + 8), u32_at(&b, l1 + l2 + 8)],
            [7, 8, 9]
        );
        // The batch's subsystem, big-endian in the nfgenmsg header.
        assert_eq!(&b[18..20], &10u16.to_be_bytes());
        // The names, the address and both times (ms, big-endian, truncated).
        let body = &b[l1 + 20..l1 + l2];
        let find = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
        assert!(find(b"coral_1\0") && find(b"lease\0"));
        assert!(find(&[192, 0, 2, 100]));
        assert!(find(&20u64.to_be_bytes()) && find(&12u64.to_be_bytes()));
    }

    #[test]
    fn an_expiry_never_outlasts_its_timeout() {
        let e = LeaseElem {
            vip: Ipv4Addr::new(192, 0, 2, 100),
            timeout: Duration::from_millis(100),
            expires: Duration::from_secs(5),
        };
        let b = encode_set_elems(1, "t", "lease", &[e]);
        let at = |v: u64| b.windows(8).position(|w| w == v.to_be_bytes());
        assert!(at(100).is_some() && at(5_000).is_none());
        assert_eq!(
            b.windows(8).filter(|w| *w == 100u64.to_be_bytes()).count(),
            2
        );
    }

    #[test]
    fn a_time_under_a_millisecond_is_sent_as_one() {
        assert_eq!(ms(Duration::from_micros(300)), 1);
        assert_eq!(ms(Duration::ZERO), 1);
        assert_eq!(ms(Duration::from_micros(8_999)), 8);
    }

    #[test]
    fn the_answer_is_found_by_sequence_number_and_errno_is_kept() {
        let answer = |seq: u32, err: i32| {
            let mut m = Vec::new();
            m.extend_from_slice(&36u32.to_ne_bytes());
            m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            m.extend_from_slice(&0u16.to_ne_bytes());
            m.extend_from_slice(&seq.to_ne_bytes());
            m.extend_from_slice(&0u32.to_ne_bytes());
            m.extend_from_slice(&err.to_ne_bytes());
            m.extend_from_slice(&[0; 16]);
            m
        };
        // The batch began at 7: the element message is 8.
        assert!(matches!(answer_to(&answer(8, 0), 7), Some(Ok(()))));
        let e = answer_to(&answer(8, -libc::ENOENT), 7)
            .unwrap()
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        // A refused batch (its begin, say, without the capability).
        let e = answer_to(&answer(7, -libc::EPERM), 7).unwrap().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        // Another batch's answer, then ours, in one datagram.
        let mut two = answer(5, -libc::EINVAL);
        two.extend(answer(8, 0));
        assert!(matches!(answer_to(&two, 7), Some(Ok(()))));
        assert!(answer_to(&answer(5, 0), 7).is_none());
        // Truncated or garbage: nothing.
        assert!(answer_to(&[1, 2, 3], 7).is_none());
        assert!(answer_to(&answer(8, 0)[..20], 7).is_none());
    }
}
