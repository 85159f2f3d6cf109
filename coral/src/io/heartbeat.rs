//! Heartbeats (docs/DESIGN.md section 4): the UDP shell around the core's
//! [`HeartbeatLink`], which decides everything (when to send, what a
//! heartbeat proves, when the peer failed, how long the lease runs).
//!
//! The shell runs on its own OS thread, not on the tokio runtime that
//! carries the log channel and the application, at a raised scheduling
//! priority where the system permits (`SCHED_FIFO`, else a lower nice
//! value; refused: a warning, and it runs as it is), with its own socket
//! marked for the wire (`SO_PRIORITY` 6, DSCP EF). Each round it reads the
//! node's commands, reads every datagram already queued (each with the
//! kernel's receive timestamp as its arrival, so a late round judges no
//! silence that was not there), sends what the link hands out, extends the
//! lease the link names (nft lease and, with a witness, the front's ARP
//! lease: carried out here so a busy runtime cannot delay it), passes the
//! other events to the node, and sleeps until the link's next deadline.
//! Garbage, forged or replayed datagrams are counted and otherwise ignored.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coral_core::{
    Channel, DatagramDecoder, DecoderConfig, DetectorEvent, Encoder, Epoch, HeartbeatLink, Instant,
    Key, LinkEvent, LinkStats, Message, NodeId, RejectCounters, Timing, VipStatus,
};
use tokio::sync::mpsc::UnboundedSender;

use crate::clock::{unix_ns, Clock};
use crate::io::front::Front;
use crate::io::leases::Leases;
use crate::io::logchan::LogClient;
use crate::io::sockopt;

/// What the heartbeat thread needs.
pub struct HeartbeatConfig {
    /// Our address and heartbeat port.
    pub local: SocketAddrV4,
    /// The peer's address and heartbeat port.
    pub peer: SocketAddrV4,
    /// Our node id.
    pub node: NodeId,
    /// The peer's node id (datagrams from anyone else are rejected).
    pub peer_node: NodeId,
    /// Our epoch.
    pub epoch: Epoch,
    /// H, K and the lease.
    pub timing: Timing,
    /// Service addresses reported in our heartbeats until the node sends
    /// [`HeartbeatCmd::Status`].
    pub vips: Vec<VipStatus>,
    /// Our log channel to the peer, if we are primary for an address: its
    /// progress goes to the link each round (a peer that answers
    /// heartbeats but not the log is declared failed).
    pub log: Option<LogClient>,
}

/// What the node tells the heartbeat thread.
#[derive(Debug, Clone)]
pub enum HeartbeatCmd {
    /// Report this status (per address epoch and mode) from now on.
    Status(Vec<VipStatus>),
    /// Stop sending (receiving goes on).
    StopSending,
    /// End the thread.
    Stop,
}

/// What the heartbeat thread tells the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatEvent {
    /// A detector event.
    Detector(DetectorEvent),
    /// The peer's per-address status changed.
    PeerStatus(Vec<VipStatus>),
    /// The lease ran out at `at` while the peer was considered alive.
    LeaseLapsed {
        /// When.
        at: Instant,
    },
    /// Writers waited on the log this long (ns) without an acknowledgement:
    /// the peer is declared failed (the detector event follows).
    LogStalled {
        /// How long.
        waited_ns: u64,
    },
}

/// Where the lease the link names is carried out.
pub struct LeaseTargets {
    /// The nft leases of the addresses this node is primary for.
    pub leases: Arc<Leases>,
    /// The front, whose ARP lease (node clock ns) follows, with a witness.
    pub arp: Option<Front>,
}

/// A copy of the thread's counters.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatCounters {
    /// The link's counters.
    pub link: LinkStats,
    /// Datagrams rejected (garbage, forged, replayed, wrong sender).
    pub rejected: u64,
    /// Decoder rejections by reason.
    pub rejects: RejectCounters,
}

/// Handle to the heartbeat thread.
pub struct HeartbeatHandle {
    cmds: mpsc::Sender<HeartbeatCmd>,
    /// The thread's wake-up eventfd (none for an idle handle).
    wake: Option<Arc<OwnedFd>>,
    counters: Arc<Mutex<HeartbeatCounters>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeartbeatHandle {
    /// A handle with no thread behind it: a new server before its join is
    /// accepted has no peer to send to (commands are dropped, counters
    /// stay zero).
    pub fn idle() -> HeartbeatHandle {
        HeartbeatHandle {
            cmds: mpsc::channel().0,
            wake: None,
            counters: Arc::new(Mutex::new(HeartbeatCounters::default())),
            thread: None,
        }
    }

    /// Pass a command to the thread and wake it: taken at once (a round
    /// in progress finishes first).
    pub fn command(&self, cmd: HeartbeatCmd) {
        let _ = self.cmds.send(cmd);
        if let Some(w) = &self.wake {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our eventfd.
            let _ = unsafe { libc::write(w.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// End the thread and wait until it has (its socket is closed then):
    /// the rest of the round in progress, woken at once. A join restarts
    /// heartbeats toward the new server this way (Table 2's task start-up).
    pub async fn stop(&mut self) {
        self.command(HeartbeatCmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }

    /// The counters as of the thread's last round.
    pub fn counters(&self) -> HeartbeatCounters {
        self.counters.lock().expect("counters").clone()
    }
}

/// Bind the socket and start the heartbeat thread; `events` receives what
/// the node must know.
pub fn start(
    key: Key,
    cfg: HeartbeatConfig,
    clock: Clock,
    events: UnboundedSender<HeartbeatEvent>,
    lease: LeaseTargets,
) -> std::io::Result<HeartbeatHandle> {
    let sock = UdpSocket::bind(SocketAddr::V4(cfg.local))?;
    sock.set_nonblocking(true)?;
    mark_for_the_wire(&sock);
    let (ctx, crx) = mpsc::channel();
    let counters = Arc::new(Mutex::new(HeartbeatCounters::default()));
    // SAFETY: plain eventfd(2); checked below.
    let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if efd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(efd) });
    let shell = Shell {
        wake: wake.clone(),
        link: HeartbeatLink::new(cfg.timing, clock.now(), cfg.vips.clone()),
        enc: Encoder::new(key.clone(), cfg.node, cfg.epoch, unix_ns()),
        dec: DatagramDecoder::new(key, DecoderConfig::for_channel(Channel::Heartbeat)),
        sock,
        cfg,
        clock,
        events,
        lease,
        cmds: crx,
        counters: counters.clone(),
        rejected: 0,
        drained_at: clock.now(),
    };
    let thread = std::thread::Builder::new()
        .name("coral-heartbeat".into())
        .spawn(move || shell.run())?;
    Ok(HeartbeatHandle {
        cmds: ctx,
        wake: Some(wake),
        counters,
        thread: Some(thread),
    })
}

/// `SO_PRIORITY` 6 (the highest without `CAP_NET_ADMIN`: the interactive
/// band of the default qdisc) and DSCP EF (46) in `IP_TOS`.
fn mark_for_the_wire(sock: &UdpSocket) {
    let fd = sock.as_raw_fd();
    let prio: libc::c_int = 6;
    let tos: libc::c_int = 46 << 2;
    let r = sockopt::set(
        fd,
        libc::SOL_SOCKET,
        libc::SO_PRIORITY,
        &prio,
        "SO_PRIORITY",
    )
    .and_then(|_| sockopt::set(fd, libc::IPPROTO_IP, libc::IP_TOS, &tos, "IP_TOS"));
    if let Err(e) = r {
        tracing::warn!("heartbeat socket priority: {e}");
    }
}

/// Raise the calling thread above the data path: `SCHED_FIFO` priority 10
/// where permitted, else nice -10; a refusal is logged and ignored.
fn raise_priority() {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: pid 0 is the calling thread; `param` is live for the call.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
        tracing::info!("heartbeat thread: SCHED_FIFO 10");
        return;
    }
    let fifo = std::io::Error::last_os_error();
    // SAFETY: plain syscalls on the calling thread's id.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, -10)
    };
    if rc == 0 {
        tracing::warn!("heartbeat thread: SCHED_FIFO refused ({fifo}); nice -10 instead");
    } else {
        let nice = std::io::Error::last_os_error();
        tracing::warn!(
            "heartbeat thread: SCHED_FIFO ({fifo}) and nice -10 ({nice}) refused; default priority"
        );
    }
}

/// `SIOCGSTAMP` (asm-generic sockios.h; not exported by the libc crate).
const SIOCGSTAMP: libc::c_ulong = 0x8906;

/// When the kernel received the last datagram read from `sock` (unix ns),
/// or `None` if it cannot tell.
fn rx_stamp(sock: &UdpSocket) -> Option<u64> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: SIOCGSTAMP writes one timeval into `tv`.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGSTAMP as _, &mut tv) };
    (rc == 0).then(|| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1000)
}

/// A datagram's arrival on the node clock, and on the wall clock (for the
/// one-way delay only): `now` and `wall` read together after it was
/// dequeued, `stamp` the kernel's wall-clock receive time, `floor` the
/// previous drain. A wall clock stepped back since the stamp (a stamp in
/// the future) counts as `now`; one stepped forward moves the arrival back
/// to `floor` at most: a step of the wall clock never makes a heartbeat
/// older than one round, nor newer than its dequeuing.
fn arrival_of(now: Instant, wall: u64, stamp: Option<u64>, floor: Instant) -> (Instant, u64) {
    let stamp = stamp.filter(|s| *s <= wall).unwrap_or(wall);
    let arrival = Instant(now.0.saturating_sub(wall - stamp))
        .max(floor)
        .min(now);
    (arrival, stamp)
}

struct Shell {
    /// Written by [`HeartbeatHandle::command`]: ends the wait at once.
    wake: Arc<OwnedFd>,
    link: HeartbeatLink,
    enc: Encoder,
    dec: DatagramDecoder,
    sock: UdpSocket,
    cfg: HeartbeatConfig,
    clock: Clock,
    events: UnboundedSender<HeartbeatEvent>,
    lease: LeaseTargets,
    cmds: mpsc::Receiver<HeartbeatCmd>,
    counters: Arc<Mutex<HeartbeatCounters>>,
    rejected: u64,
    /// When the previous round started reading the queue.
    drained_at: Instant,
}

impl Shell {
    fn run(mut self) {
        raise_priority();
        let mut buf = vec![0u8; 2048];
        while self.take_commands() {
            self.link.on_round(self.clock.now());
            self.receive_queued(&mut buf);
            if let Some(p) = self.cfg.log.as_ref().and_then(LogClient::progress) {
                self.link.on_log_progress(self.clock.now(), p.0, p.1, p.2);
            }
            self.transmit();
            if !self.deliver() {
                return;
            }
            self.publish_counters();
            self.wait();
        }
    }

    /// The node's commands; false once told to stop (or the node is gone).
    fn take_commands(&mut self) -> bool {
        loop {
            match self.cmds.try_recv() {
                Ok(HeartbeatCmd::Status(st)) => self.link.set_status(st),
                Ok(HeartbeatCmd::StopSending) => self.link.set_sending(self.clock.now(), false),
                Ok(HeartbeatCmd::Stop) | Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    /// Every datagram already queued, each at its kernel arrival time (a
    /// wall-clock timestamp turned into the node clock; never earlier than
    /// the previous drain, so a step of the wall clock cannot move an
    /// arrival further back than that).
    fn receive_queued(&mut self, buf: &mut [u8]) {
        let floor = std::mem::replace(&mut self.drained_at, self.clock.now());
        while let Ok((n, from)) = self.sock.recv_from(buf) {
            let (now, wall) = (self.clock.now(), unix_ns());
            let (arrival, stamp) = arrival_of(now, wall, rx_stamp(&self.sock), floor);
            let from_peer = from.ip() == std::net::IpAddr::V4(*self.cfg.peer.ip());
            match self.dec.decode(&buf[..n]) {
                Ok(f) if from_peer && f.header.sender == self.cfg.peer_node => match &f.msg {
                    Message::Heartbeat(hb) => {
                        let (e, s) = (f.header.epoch, f.header.seq);
                        self.link.on_heartbeat(arrival, stamp, e, s, hb);
                    }
                    _ => self.rejected += 1,
                },
                _ => self.rejected += 1,
            }
        }
    }

    /// Whatever the link has due (a scheduled heartbeat, an answer).
    fn transmit(&mut self) {
        while let Some(hb) = self.link.poll_transmit(self.clock.now(), unix_ns()) {
            let Ok(seq) = self.enc.next_seq().ok_or(()) else {
                return;
            };
            let Ok(dgram) = self.enc.encode_to_vec(&Message::Heartbeat(hb)) else {
                return;
            };
            // Recorded before it leaves: the echo can come back at once.
            self.link.on_sent(self.clock.now(), seq);
            if let Err(e) = self.sock.send_to(&dgram, self.cfg.peer) {
                tracing::debug!("heartbeat send: {e}");
            }
        }
    }

    /// Carry out the lease, pass everything else on; false once the node
    /// is gone.
    fn deliver(&mut self) -> bool {
        while let Some(ev) = self.link.poll(self.clock.now()) {
            let ev = match ev {
                LinkEvent::LeaseUntil(until) => {
                    self.lease.leases.extend_to(until, &self.clock);
                    if let Some(f) = &self.lease.arp {
                        f.answer_arp_until(until.0);
                    }
                    continue;
                }
                LinkEvent::Detector(d) => HeartbeatEvent::Detector(d),
                LinkEvent::PeerStatus(v) => HeartbeatEvent::PeerStatus(v),
                LinkEvent::LeaseLapsed { at } => HeartbeatEvent::LeaseLapsed { at },
                LinkEvent::LogStalled { waited_ns } => HeartbeatEvent::LogStalled { waited_ns },
            };
            if self.events.send(ev).is_err() {
                return false;
            }
        }
        true
    }

    fn publish_counters(&self) {
        let mut c = self.counters.lock().expect("counters");
        c.link.clone_from(self.link.stats());
        c.rejected = self.rejected;
        c.rejects = *self.dec.counters();
    }

    /// Sleep until a datagram arrives, a command wakes the thread, or the
    /// link's next deadline (at most 100 ms).
    fn wait(&self) {
        let now = self.clock.now();
        let wait = self
            .link
            .next_deadline()
            .map_or(Duration::from_millis(100), |d| {
                Duration::from_nanos(d.since_ns(now))
            })
            .min(Duration::from_millis(100));
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        let mut pfd = [self.sock.as_raw_fd(), self.wake.as_raw_fd()].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: two pollfds and one timespec, all live for the call.
        unsafe { libc::ppoll(pfd.as_mut_ptr(), 2, &ts, std::ptr::null()) };
        if pfd[1].revents != 0 {
            let mut n: u64 = 0;
            // SAFETY: reads 8 bytes into a live u64 (clears the eventfd).
            let _ = unsafe { libc::read(self.wake.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const HOUR: u64 = 3_600_000 * MS;

    #[test]
    fn a_step_of_the_wall_clock_moves_an_arrival_no_further_than_the_round() {
        let (now, floor) = (Instant(500 * MS), Instant(490 * MS));
        let wall = 1_000 * HOUR;
        // Steady clocks: the kernel's stamp 3 ms before the read.
        assert_eq!(
            arrival_of(now, wall, Some(wall - 3 * MS), floor),
            (Instant(497 * MS), wall - 3 * MS)
        );
        // Stepped forward an hour between the stamp and the read: no
        // earlier than the previous drain.
        assert_eq!(arrival_of(now, wall, Some(wall - HOUR), floor).0, floor);
        // Stepped back an hour (the stamp is in the future): now.
        assert_eq!(arrival_of(now, wall, Some(wall + HOUR), floor), (now, wall));
        // No stamp: now.
        assert_eq!(arrival_of(now, wall, None, floor), (now, wall));
    }
}
