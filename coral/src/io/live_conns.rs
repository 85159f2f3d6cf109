//! The registry of live connection sockets, and the nudge that asks each
//! one's own task to elicit an ACK from its client.
//!
//! Every connection the node serves (accepted by the primary or rebuilt at
//! a takeover) registers its descriptor for as long as it is served. Two
//! things use the registry: the self-fence (`fencing::silence_all`) and
//! [`nudge_all`], run after a service address moved to this node.
//!
//! Why the nudge: while an address moves (peer failed, detection, witness,
//! lease wait, gratuitous ARP) the client's ACKs for data this node already
//! sent, and its window updates, go to the old MAC and are lost. The data itself reached the client,
//! but the sender's retransmission timer backs off (200 ms, 400 ms, 800 ms
//! ...), so after the address has moved the connection still waits for the
//! next backed-off timeout: seconds with large replies. A client whose
//! window was full waits likewise for the sender's persist timer. Leaving `TCP_REPAIR`
//! mode makes the kernel send a window probe, which the client answers with
//! an ACK at once ([`elicit_ack`], counted: [`probes_sent`]). A socket must not be in
//! repair mode while its task writes to it (a write fails with EINVAL
//! then), so the toggle runs inside the connection's own task: the nudge
//! only sets a flag and wakes that task, and the task's stream
//! ([`crate::io::logged_io::LoggedStream`]) does the toggle on its next poll.
//!
//! A descriptor is unregistered just after its socket closes, so a fence
//! racing with a close may set `TCP_REPAIR` on an unrelated descriptor that
//! reused the number; the node exits right after fencing, so that is
//! harmless (a non-TCP descriptor refuses the option). A nudge never
//! touches a descriptor itself.

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Context;

use futures_util::task::AtomicWaker;

static LIVE: Mutex<BTreeMap<RawFd, Arc<Nudge>>> = Mutex::new(BTreeMap::new());

/// Window probes sent by [`elicit_ack`] since the node started.
static PROBES: AtomicU64 = AtomicU64::new(0);

/// Answer a nudge in the connection's own task: the kernel sends a window
/// probe if the connection has unacknowledged data
/// ([`crate::io::repair::elicit_ack`]); each probe sent is counted.
pub fn elicit_ack(fd: RawFd) -> std::io::Result<bool> {
    let sent = crate::io::repair::elicit_ack(fd)?;
    if sent {
        PROBES.fetch_add(1, Ordering::Relaxed);
    }
    Ok(sent)
}

/// How many window probes nudged connections actually sent (a nudge of a
/// connection with nothing unacknowledged sends none): `nudge_probes` in
/// the node's `counters` event.
pub fn probes_sent() -> u64 {
    PROBES.load(Ordering::Relaxed)
}

/// A pending request that a connection's task elicit an ACK from its
/// client, with the task's waker.
#[derive(Debug, Default)]
pub struct Nudge {
    wanted: AtomicBool,
    waker: AtomicWaker,
    /// Set once a new server joined: the connection is simplex and ends
    /// after its next response (`Connection: close`, docs/DESIGN.md 6).
    ending: Arc<AtomicBool>,
}

impl Nudge {
    /// Ask for an ACK and wake the connection's task.
    pub fn request(&self) {
        self.wanted.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    /// In the connection's task, on every poll: remember the task's waker;
    /// true once after each [`Nudge::request`].
    pub fn take(&self, cx: &Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.wanted.swap(false, Ordering::SeqCst)
    }

    /// The connection's "end after the next response" flag, for its HTTP
    /// server.
    pub fn ending(&self) -> Arc<AtomicBool> {
        self.ending.clone()
    }
}

/// A registered connection; unregistered on drop.
#[derive(Debug)]
pub struct LiveConn {
    fd: RawFd,
    nudge: Arc<Nudge>,
}

impl LiveConn {
    /// This connection's nudge, for its stream to check on every poll.
    pub fn nudge(&self) -> Arc<Nudge> {
        self.nudge.clone()
    }
}

/// Register a connection's socket for as long as the guard lives.
pub fn register(fd: RawFd) -> LiveConn {
    let nudge = Arc::new(Nudge::default());
    LIVE.lock().expect("live").insert(fd, nudge.clone());
    LiveConn { fd, nudge }
}

impl Drop for LiveConn {
    fn drop(&mut self) {
        LIVE.lock().expect("live").remove(&self.fd);
    }
}

/// How many connections are registered.
pub fn count() -> usize {
    LIVE.lock().expect("live").len()
}

/// The registered descriptors.
pub fn fds() -> Vec<RawFd> {
    LIVE.lock().expect("live").keys().copied().collect()
}

/// How many registered connections have `vip` as their local address
/// (read from each socket; one that cannot be read is counted, so an
/// address is never said to be free of connections by mistake).
pub fn count_on(vip: std::net::Ipv4Addr) -> usize {
    fds()
        .into_iter()
        .filter(|&fd| {
            // SAFETY: the descriptor is registered, so its connection is
            // open; it is only borrowed for the call.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let sock = socket2::SockRef::from(&fd);
            match sock.local_addr().ok().and_then(|a| a.as_socket_ipv4()) {
                Some(a) => *a.ip() == vip,
                None => true,
            }
        })
        .count()
}

/// Mark every registered connection to end after its next response
/// (`Connection: close`); returns how many. Run when a new server joined:
/// every connection served until then is simplex.
pub fn end_all_after_next_response() -> usize {
    let all: Vec<Arc<Nudge>> = LIVE.lock().expect("live").values().cloned().collect();
    for n in &all {
        n.ending.store(true, Ordering::SeqCst);
    }
    all.len()
}

/// Nudge every registered connection; returns how many.
pub fn nudge_all() -> usize {
    let all: Vec<Arc<Nudge>> = LIVE.lock().expect("live").values().cloned().collect();
    for n in &all {
        n.request();
    }
    all.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};

    #[test]
    fn connections_are_counted_by_their_local_address() {
        // An address of loopback no other test uses.
        let ip = std::net::Ipv4Addr::new(127, 0, 0, 23);
        let l = std::net::TcpListener::bind((ip, 0)).unwrap();
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        assert_eq!(count_on(ip), 0);
        let live = register(std::os::fd::AsRawFd::as_raw_fd(&s));
        assert_eq!(count_on(ip), 1);
        assert_eq!(count_on(std::net::Ipv4Addr::new(127, 0, 0, 24)), 0);
        drop(live);
        assert_eq!(count_on(ip), 0);
    }

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_nudge_wakes_the_task_and_is_taken_once() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let cx = Context::from_waker(&waker);
        let n = Nudge::default();
        assert!(!n.take(&cx), "nothing requested yet");
        n.request();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the stored waker was woken"
        );
        assert!(n.take(&cx));
        assert!(!n.take(&cx), "taken once per request");
        // A request before any poll is kept until the first poll.
        let m = Nudge::default();
        m.request();
        assert!(m.take(&cx));
    }

    #[test]
    fn registered_connections_are_nudged_until_dropped() {
        // Descriptor numbers no real socket of this test process uses.
        let a = register(1_000_001);
        let b = register(1_000_002);
        let (na, nb) = (a.nudge(), b.nudge());
        assert!(nudge_all() >= 2);
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let cx = Context::from_waker(&waker);
        assert!(na.take(&cx) && nb.take(&cx));
        drop(b);
        assert!(fds().contains(&1_000_001) && !fds().contains(&1_000_002));
        nudge_all();
        assert!(
            na.take(&cx) && !nb.take(&cx),
            "a dropped connection is not nudged"
        );
        drop(a);
    }
}
