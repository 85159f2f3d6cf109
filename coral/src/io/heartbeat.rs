//! Heartbeats (docs/DESIGN.md section 4): sequenced, authenticated UDP datagrams
//! both ways every H; the core's [`Detector`] decides when the peer failed.
//!
//! The task sends when the detector says so, feeds every datagram that
//! passes the core's [`DatagramDecoder`] (HMAC tag, replay window) into the
//! detector, and reports detector events on a channel. Garbage, forged or
//! replayed datagrams are counted and otherwise ignored. A callback runs on
//! every fresh heartbeat (the node refreshes its kernel-enforced lease there).
//!
//! A peer that was never heard is waited for, not declared failed: the
//! detector restarts each time its deadline passes before the first
//! heartbeat (so a node started well before its peer does not take over at
//! start).

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use coral_core::{
    Channel, DatagramDecoder, DecoderConfig, Encoder, Heartbeat, Key, Message, ModeTag,
    RejectCounters, VipStatus,
};
use coral_core::{Detector, DetectorConfig, DetectorEvent, HeartbeatVerdict};
use coral_core::{Epoch, NodeId};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::clock::Clock;

/// Counters of the heartbeat task.
#[derive(Debug, Default)]
pub struct HeartbeatStats {
    /// Heartbeats sent.
    pub sent: AtomicU64,
    /// Authenticated heartbeats received.
    pub received: AtomicU64,
    /// Datagrams rejected (garbage, forged, replayed, wrong sender).
    pub rejected: AtomicU64,
}

/// What the heartbeat task needs.
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
    /// Detector timing.
    pub detector: DetectorConfig,
    /// Service addresses reported in our heartbeats (initially; change
    /// them through [`HeartbeatHandle::vips`]).
    pub vips: Vec<VipStatus>,
    /// Stop sending, and never call `on_fresh` again, once the detector
    /// declares the peer failed (witness mode: the peer's lease must lapse,
    /// and only a grant gives this node a lease back).
    pub stop_on_failure: bool,
    /// Call `on_fresh` only for heartbeats that waited at most this long in
    /// the kernel's receive queue (kernel receive timestamp): a paused or
    /// starved process must not extend its lease on stale heartbeats.
    pub max_refresh_age: Option<std::time::Duration>,
    /// Where to send the peer's per-address status when it changes.
    pub peer_vips: Option<mpsc::UnboundedSender<Vec<VipStatus>>>,
}

/// Handle to a running heartbeat task.
pub struct HeartbeatHandle {
    /// Counters.
    pub stats: Arc<HeartbeatStats>,
    /// Fresh heartbeats not used for a lease refresh (too old, or after
    /// the peer was declared failed).
    pub stale: Arc<AtomicU64>,
    /// Decoder rejections by reason.
    pub rejects: Arc<Mutex<RejectCounters>>,
    /// The mode we report (a [`ModeTag`] as u8).
    pub mode: Arc<AtomicU8>,
    /// Our per-address status as reported.
    pub vips: Arc<Mutex<Vec<VipStatus>>>,
    /// Set to stop sending (receiving goes on).
    pub silent: Arc<AtomicBool>,
    /// When the last heartbeat was sent (the node clock's ns; 0 = never).
    pub last_sent_ns: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl HeartbeatHandle {
    /// Stop sending and listening (e.g. when fenced).
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Stop the task and wait until its socket is closed (a join starts a
    /// new task on the same port toward the new peer).
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn mode_from_u8(v: u8) -> ModeTag {
    match v {
        2 => ModeTag::Simplex,
        3 => ModeTag::WaitingForGrant,
        4 => ModeTag::TakingOver,
        5 => ModeTag::Fenced,
        6 => ModeTag::Joining,
        _ => ModeTag::Duplex,
    }
}

/// Start the heartbeat task. `events` receives detector events; `on_fresh`
/// (given how long ago the heartbeat arrived, from the kernel's timestamp)
/// runs on every fresh heartbeat from the peer.
pub async fn start(
    key: Key,
    cfg: HeartbeatConfig,
    clock: Clock,
    events: mpsc::UnboundedSender<DetectorEvent>,
    on_fresh: Box<dyn Fn(std::time::Duration) + Send + Sync>,
) -> std::io::Result<HeartbeatHandle> {
    let sock = UdpSocket::bind(SocketAddr::V4(cfg.local)).await?;
    let stats = Arc::new(HeartbeatStats::default());
    let rejects = Arc::new(Mutex::new(RejectCounters::default()));
    let shared = Shared {
        stats: stats.clone(),
        rejects: rejects.clone(),
        mode: Arc::new(AtomicU8::new(ModeTag::Duplex as u8)),
        vips: Arc::new(Mutex::new(cfg.vips.clone())),
        silent: Arc::new(AtomicBool::new(false)),
        last_sent_ns: Arc::new(AtomicU64::new(0)),
        stale: Arc::new(AtomicU64::new(0)),
    };
    let task = tokio::spawn(run(sock, key, cfg, clock, events, on_fresh, shared.clone()));
    Ok(HeartbeatHandle {
        stats,
        rejects,
        mode: shared.mode,
        vips: shared.vips,
        silent: shared.silent,
        last_sent_ns: shared.last_sent_ns,
        stale: shared.stale,
        task,
    })
}

#[derive(Clone)]
struct Shared {
    stats: Arc<HeartbeatStats>,
    rejects: Arc<Mutex<RejectCounters>>,
    mode: Arc<AtomicU8>,
    vips: Arc<Mutex<Vec<VipStatus>>>,
    silent: Arc<AtomicBool>,
    last_sent_ns: Arc<AtomicU64>,
    stale: Arc<AtomicU64>,
}

/// `SIOCGSTAMP` (asm-generic sockios.h; not exported by the libc crate).
const SIOCGSTAMP: libc::c_ulong = 0x8906;

/// How long the last datagram read from `sock` waited in the kernel
/// (`SIOCGSTAMP`), or `None` if the kernel cannot tell.
fn rx_age(sock: &UdpSocket) -> Option<std::time::Duration> {
    use std::os::fd::AsRawFd;
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: SIOCGSTAMP writes one timeval into `tv`.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGSTAMP as _, &mut tv) };
    if rc != 0 {
        return None;
    }
    let stamp = std::time::UNIX_EPOCH
        + std::time::Duration::new(tv.tv_sec as u64, (tv.tv_usec as u32) * 1000);
    Some(
        std::time::SystemTime::now()
            .duration_since(stamp)
            .unwrap_or_default(),
    )
}

async fn run(
    sock: UdpSocket,
    key: Key,
    cfg: HeartbeatConfig,
    clock: Clock,
    events: mpsc::UnboundedSender<DetectorEvent>,
    on_fresh: Box<dyn Fn(std::time::Duration) + Send + Sync>,
    sh: Shared,
) {
    let Shared {
        stats,
        rejects,
        mode,
        vips,
        silent,
        last_sent_ns,
        stale,
    } = sh;
    let mut det = Detector::new(cfg.detector, clock.now());
    let mut enc = Encoder::new(key.clone(), cfg.node, cfg.epoch, crate::clock::unix_ns());
    let mut dec = DatagramDecoder::new(key, DecoderConfig::for_channel(Channel::Heartbeat));
    let mut buf = vec![0u8; 2048];
    let peer = SocketAddr::V4(cfg.peer);
    let mut failed = false;
    let mut last_peer_vips: Vec<VipStatus> = Vec::new();
    // Feed the detector's timers; a failure stops refreshes (and sending)
    // in witness mode before any queued heartbeat is looked at.
    // A peer never heard is not up yet, not failed: the detector starts
    // over (a pair starts duplex; nothing to take over from a node that
    // never spoke).
    let poll_det = |det: &mut Detector, failed: &mut bool| {
        while let Some(ev) = det.poll(clock.now()) {
            match ev {
                DetectorEvent::PeerFailed {
                    ever_heard: false, ..
                } => {
                    det.reset(clock.now());
                    continue;
                }
                DetectorEvent::PeerFailed { .. } if cfg.stop_on_failure => {
                    *failed = true;
                    silent.store(true, Ordering::SeqCst);
                }
                _ => {}
            }
            let _ = events.send(ev);
        }
    };
    loop {
        poll_det(&mut det, &mut failed);
        let now = clock.now();
        if det.poll_transmit(now) && !silent.load(Ordering::SeqCst) {
            let hb = Heartbeat {
                mode: mode_from_u8(mode.load(Ordering::Relaxed)),
                vips: vips.lock().expect("vips").clone(),
            };
            if let Ok(dgram) = enc.encode_to_vec(&Message::Heartbeat(hb)) {
                last_sent_ns.store(clock.now().0.max(1), Ordering::SeqCst);
                if sock.send_to(&dgram, peer).await.is_ok() {
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let wait = det
            .next_deadline()
            .map(|d| std::time::Duration::from_nanos(d.since_ns(clock.now())))
            .unwrap_or(std::time::Duration::from_millis(100));
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                let age = rx_age(&sock);
                poll_det(&mut det, &mut failed);
                let ok_sender = from.ip() == std::net::IpAddr::V4(*cfg.peer.ip());
                match dec.decode(&buf[..n]) {
                    Ok(frame) if ok_sender && frame.header.sender == cfg.peer_node
                        && matches!(frame.msg, Message::Heartbeat(_)) => {
                        stats.received.fetch_add(1, Ordering::Relaxed);
                        if let (Message::Heartbeat(hb), Some(tx)) = (&frame.msg, &cfg.peer_vips) {
                            if hb.vips != last_peer_vips {
                                last_peer_vips = hb.vips.clone();
                                let _ = tx.send(hb.vips.clone());
                            }
                        }
                        if det.on_heartbeat(clock.now(), frame.header.epoch, frame.header.seq) == HeartbeatVerdict::Fresh {
                            let too_old = matches!((cfg.max_refresh_age, age), (Some(max), Some(a)) if a > max);
                            if failed || too_old {
                                stale.fetch_add(1, Ordering::Relaxed);
                            } else {
                                // How long ago the heartbeat arrived: leases are
                                // anchored at its arrival, not at this moment.
                                on_fresh(age.unwrap_or_default());
                            }
                        }
                    }
                    _ => {
                        stats.rejected.fetch_add(1, Ordering::Relaxed);
                        *rejects.lock().expect("rejects") = *dec.counters();
                    }
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
