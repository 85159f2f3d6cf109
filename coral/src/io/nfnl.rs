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
//! A grant (the element made permanent) and a revocation (fencing) take
//! the same path, one batch each: they sit on the takeover's and the
//! fence's critical paths, where libnftables cost about 1 ms.
//!
//! The batch is written by hand: the message layout is the kernel's uapi
//! (`linux/netfilter/nfnetlink.h`, `linux/netfilter/nf_tables.h`), and the
//! maintained Rust crates for nftables either wrap libnftables (the cost
//! this module avoids) or are GPL-licensed. Only the lease set's element
//! messages are encoded; the ruleset and the guarded addresses still go
//! through libnftables ([`crate::io::nft`]).

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
/// `NFT_MSG_NEWSETELEM` and `NFT_MSG_DELSETELEM` (linux/netfilter/nf_tables.h).
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
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

/// One change to the lease set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemChange {
    /// Add or update the element with its timeout and expiry.
    Lease(LeaseElem),
    /// Replace the element (lapsed or not) with one without a timeout.
    Permanent(Ipv4Addr),
    /// Remove the element, whether it lapsed already or not.
    Revoke(Ipv4Addr),
}

/// One element message: its type, the element, and its timeout and expiry
/// in milliseconds if it carries them.
type ElemMessage = (u16, Ipv4Addr, Option<(u64, u64)>);

/// The element messages of one change. A delete is preceded by an add of the same
/// element, so it succeeds whether or not the element was still there (in
/// a `timeout` set, deleting a lapsed element fails).
fn element_messages(c: &ElemChange) -> Vec<ElemMessage> {
    let one_second = Some((1_000, 1_000));
    match *c {
        ElemChange::Lease(e) => {
            let t = ms(e.timeout);
            vec![(NFT_MSG_NEWSETELEM, e.vip, Some((t, ms(e.expires).min(t))))]
        }
        ElemChange::Revoke(v) => vec![
            (NFT_MSG_NEWSETELEM, v, one_second),
            (NFT_MSG_DELSETELEM, v, None),
        ],
        ElemChange::Permanent(v) => vec![
            (NFT_MSG_NEWSETELEM, v, one_second),
            (NFT_MSG_DELSETELEM, v, None),
            (NFT_MSG_NEWSETELEM, v, None),
        ],
    }
}

/// A netlink socket that changes elements of one set of one netdev table.
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

    /// Carry out `changes` in one batch (one kernel transaction: all or
    /// nothing) and wait for the kernel's answer to each of its messages.
    pub fn apply(&mut self, changes: &[ElemChange]) -> io::Result<()> {
        let seq = self.seq;
        let (batch, n) = encode_changes(seq, &self.table, &self.set, changes);
        self.seq = self.seq.wrapping_add(n + 2);
        // SAFETY: sends `batch.len()` bytes from a live buffer.
        let sent =
            unsafe { libc::send(self.fd.as_raw_fd(), batch.as_ptr().cast(), batch.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut tally = Tally::default();
        let mut buf = [0u8; 1024];
        while tally.acks < n && tally.error.is_none() {
            // SAFETY: receives at most `buf.len()` bytes into a live buffer.
            let got = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if got < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EAGAIN) {
                    // Everything the kernel had to say was queued by the
                    // send: a missing answer is an error of its own.
                    return Err(io::Error::other(format!(
                        "nfnetlink: {} of {n} answers",
                        tally.acks
                    )));
                }
                return Err(e);
            }
            tally.read(&buf[..got as usize], seq, n);
        }
        match tally.error {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }
}

/// The kernel's answers to one batch read so far.
#[derive(Debug, Default)]
struct Tally {
    /// Acknowledgements of the batch's element messages.
    acks: u32,
    /// The first error about any of the batch's messages (an errno).
    error: Option<i32>,
}

impl Tally {
    /// Count the answers in `datagram` to the batch that began with `seq`
    /// and holds `n` element messages (`seq + 1` to `seq + n`; the end is
    /// `seq + n + 1`).
    fn read(&mut self, datagram: &[u8], seq: u32, n: u32) {
        let mut rest = datagram;
        while rest.len() >= NLMSG_HDRLEN {
            let word =
                |i: usize| u32::from_ne_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
            let len = word(0) as usize;
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            let off = word(8).wrapping_sub(seq);
            if len < NLMSG_HDRLEN || len > rest.len() {
                return;
            }
            if kind == NLMSG_ERROR && off <= n + 1 && len >= NLMSG_HDRLEN + 4 {
                let err = word(16) as i32;
                if err != 0 {
                    self.error.get_or_insert(-err);
                } else if (1..=n).contains(&off) {
                    self.acks += 1;
                }
            }
            rest = &rest[align4(len).min(rest.len())..];
        }
    }
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

/// The batch that carries out `changes` in `set` of netdev table
/// `table`, and how many element messages it holds: begin (`seq`), one
/// message per element operation (`seq + 1` on, each acknowledged), end.
/// Times go in milliseconds (at least 1; an expiry never past its
/// timeout), big-endian as the kernel reads them; an element that exists
/// gets both updated, as `nft add element` with `timeout` and `expires`
/// does.
pub fn encode_changes(seq: u32, table: &str, set: &str, changes: &[ElemChange]) -> (Vec<u8>, u32) {
    let request = libc::NLM_F_REQUEST as u16;
    let ack = libc::NLM_F_ACK as u16;
    let mut out = Vec::with_capacity(128 + 96 * changes.len());
    message(
        &mut out,
        NFNL_MSG_BATCH_BEGIN,
        request,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    let mut n = 0u32;
    for (kind, vip, times) in changes.iter().flat_map(element_messages) {
        let mut body = Vec::with_capacity(96);
        attr(&mut body, LIST_TABLE, &cstr(table));
        attr(&mut body, LIST_SET, &cstr(set));
        nested(&mut body, LIST_ELEMENTS, |b| {
            nested(b, LIST_ELEM, |b| {
                nested(b, ELEM_KEY, |b| attr(b, DATA_VALUE, &vip.octets()));
                if let Some((timeout, expires)) = times {
                    attr(b, ELEM_TIMEOUT, &timeout.to_be_bytes());
                    attr(b, ELEM_EXPIRATION, &expires.to_be_bytes());
                }
            });
        });
        let flags = if kind == NFT_MSG_NEWSETELEM {
            request | ack | libc::NLM_F_CREATE as u16
        } else {
            request | ack
        };
        n += 1;
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | kind;
        message(
            &mut out,
            kind,
            flags,
            seq.wrapping_add(n),
            NFPROTO_NETDEV,
            0,
            &body,
        );
    }
    message(
        &mut out,
        NFNL_MSG_BATCH_END,
        request,
        seq.wrapping_add(n + 1),
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    (out, n)
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

    /// (type, flags, seq, body) of every message in a batch.
    fn messages(b: &[u8]) -> Vec<(u16, u16, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let len = u32_at(b, i) as usize;
            assert_eq!(len % 4, 0, "aligned");
            out.push((
                u16_at(b, i + 4),
                u16_at(b, i + 6),
                u32_at(b, i + 8),
                b[i + 20..i + len].to_vec(),
            ));
            i += len;
        }
        assert_eq!(i, b.len(), "lengths add up");
        out
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
    const NEW: u16 = (10 << 8) | 12;
    const DEL: u16 = (10 << 8) | 14;

    #[test]
    fn a_refresh_is_one_batch_of_three_messages_with_the_element_inside() {
        let e = LeaseElem {
            vip: VIP,
            timeout: Duration::from_millis(20),
            expires: Duration::from_micros(12_900),
        };
        let (b, n) = encode_changes(7, "coral_1", "lease", &[ElemChange::Lease(e)]);
        assert_eq!(n, 1);
        let m = messages(&b);
        let kinds: Vec<u16> = m.iter().map(|x| x.0).collect();
        assert_eq!(kinds, [NFNL_MSG_BATCH_BEGIN, NEW, NFNL_MSG_BATCH_END]);
        assert_eq!(m.iter().map(|x| x.2).collect::<Vec<_>>(), [7, 8, 9]);
        assert_ne!(m[1].1 & libc::NLM_F_ACK as u16, 0);
        assert_ne!(m[1].1 & libc::NLM_F_CREATE as u16, 0);
        // The batch's subsystem, big-endian in the nfgenmsg header; the
        // element message in the netdev family.
        assert_eq!(&b[18..20], &10u16.to_be_bytes());
        assert_eq!(b[20 + 16], NFPROTO_NETDEV);
        // The names, the address and both times (ms, big-endian, truncated).
        let body = &m[1].3;
        assert!(contains(body, b"coral_1\0") && contains(body, b"lease\0"));
        assert!(contains(body, &VIP.octets()));
        assert!(contains(body, &20u64.to_be_bytes()) && contains(body, &12u64.to_be_bytes()));
    }

    #[test]
    fn permanent_and_revoke_add_before_they_delete_and_permanent_has_no_timeout() {
        let (b, n) = encode_changes(
            1,
            "t",
            "lease",
            &[ElemChange::Permanent(VIP), ElemChange::Revoke(VIP)],
        );
        assert_eq!(n, 5);
        let m = messages(&b);
        let kinds: Vec<u16> = m.iter().map(|x| x.0).collect();
        assert_eq!(
            kinds,
            [
                NFNL_MSG_BATCH_BEGIN,
                NEW,
                DEL,
                NEW,
                NEW,
                DEL,
                NFNL_MSG_BATCH_END
            ]
        );
        // Every element message asks for an answer.
        assert!(m[1..6].iter().all(|x| x.1 & libc::NLM_F_ACK as u16 != 0));
        // The permanent element carries no timeout; the adds before the
        // deletes carry one second.
        let timeout_attr = |body: &[u8]| contains(body, &1_000u64.to_be_bytes());
        assert!(timeout_attr(&m[1].3) && timeout_attr(&m[4].3));
        assert!(!timeout_attr(&m[3].3) && m[3].3.len() < m[1].3.len());
    }

    #[test]
    fn an_expiry_never_outlasts_its_timeout() {
        let e = LeaseElem {
            vip: VIP,
            timeout: Duration::from_millis(100),
            expires: Duration::from_secs(5),
        };
        let (b, _) = encode_changes(1, "t", "lease", &[ElemChange::Lease(e)]);
        assert!(!contains(&b, &5_000u64.to_be_bytes()));
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

    fn answer(seq: u32, err: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&err.to_ne_bytes());
        m.extend_from_slice(&[0; 16]);
        m
    }

    #[test]
    fn answers_are_counted_by_sequence_number_and_the_first_errno_is_kept() {
        // A batch that began at 7 with two element messages (8, 9).
        let mut t = Tally::default();
        t.read(&answer(8, 0), 7, 2);
        t.read(&answer(9, 0), 7, 2);
        assert_eq!((t.acks, t.error), (2, None));
        // Another batch's answers do not count.
        let mut t = Tally::default();
        let mut two = answer(5, -libc::EINVAL);
        two.extend(answer(8, 0));
        t.read(&two, 7, 2);
        assert_eq!((t.acks, t.error), (1, None));
        // An error about any of the batch's messages (its begin too, say
        // without the capability) is kept, the first one only.
        let mut t = Tally::default();
        t.read(&answer(7, -libc::EPERM), 7, 2);
        t.read(&answer(9, -libc::ENOENT), 7, 2);
        assert_eq!(t.error, Some(libc::EPERM));
        // Truncated or garbage: nothing.
        let mut t = Tally::default();
        t.read(&[1, 2, 3], 7, 2);
        t.read(&answer(8, 0)[..20], 7, 2);
        assert_eq!((t.acks, t.error), (0, None));
    }
}
