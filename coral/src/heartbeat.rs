//! Heartbeats (DESIGN.md section 4): sequenced, authenticated UDP datagrams
//! both ways every H; the core's [`Detector`] decides when the peer failed.
//!
//! The task sends when the detector says so, feeds every datagram that
//! passes the core's [`DatagramDecoder`] (HMAC tag, replay window) into the
//! detector, and reports detector events on a channel. Garbage, forged or
//! replayed datagrams are counted and otherwise ignored. A callback runs on
//! every fresh heartbeat (the node refreshes its kernel-enforced lease there).

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use coral_core::codec::{
    Channel, DatagramDecoder, DecoderConfig, Encoder, Heartbeat, Key, Message, ModeTag,
    RejectCounters, VipStatus,
};
use coral_core::detector::{Detector, DetectorConfig, DetectorEvent, HeartbeatVerdict};
use coral_core::types::{Epoch, NodeId};
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
    /// Service addresses reported in our heartbeats.
    pub vips: Vec<VipStatus>,
}

/// Handle to a running heartbeat task.
pub struct HeartbeatHandle {
    /// Counters.
    pub stats: Arc<HeartbeatStats>,
    /// Decoder rejections by reason.
    pub rejects: Arc<Mutex<RejectCounters>>,
    /// The mode we report (a [`ModeTag`] as u8).
    pub mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl HeartbeatHandle {
    /// Stop sending and listening (e.g. when fenced).
    pub fn abort(&self) {
        self.task.abort();
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
/// runs on every fresh heartbeat from the peer.
pub async fn start(
    key: Key,
    cfg: HeartbeatConfig,
    clock: Clock,
    events: mpsc::UnboundedSender<DetectorEvent>,
    on_fresh: Box<dyn Fn() + Send + Sync>,
) -> std::io::Result<HeartbeatHandle> {
    let sock = UdpSocket::bind(SocketAddr::V4(cfg.local)).await?;
    let stats = Arc::new(HeartbeatStats::default());
    let rejects = Arc::new(Mutex::new(RejectCounters::default()));
    let mode = Arc::new(AtomicU8::new(ModeTag::Duplex as u8));
    let task = tokio::spawn(run(
        sock,
        key,
        cfg,
        clock,
        events,
        on_fresh,
        stats.clone(),
        rejects.clone(),
        mode.clone(),
    ));
    Ok(HeartbeatHandle {
        stats,
        rejects,
        mode,
        task,
    })
}

#[allow(clippy::too_many_arguments)]
async fn run(
    sock: UdpSocket,
    key: Key,
    cfg: HeartbeatConfig,
    clock: Clock,
    events: mpsc::UnboundedSender<DetectorEvent>,
    on_fresh: Box<dyn Fn() + Send + Sync>,
    stats: Arc<HeartbeatStats>,
    rejects: Arc<Mutex<RejectCounters>>,
    mode: Arc<AtomicU8>,
) {
    let mut det = Detector::new(cfg.detector, clock.now());
    let mut enc = Encoder::new(key.clone(), cfg.node, cfg.epoch, crate::clock::unix_ns());
    let mut dec = DatagramDecoder::new(key, DecoderConfig::for_channel(Channel::Heartbeat));
    let mut buf = vec![0u8; 2048];
    let peer = SocketAddr::V4(cfg.peer);
    loop {
        let now = clock.now();
        while let Some(ev) = det.poll(now) {
            let _ = events.send(ev);
        }
        if det.poll_transmit(now) {
            let hb = Heartbeat {
                mode: mode_from_u8(mode.load(Ordering::Relaxed)),
                vips: cfg.vips.clone(),
            };
            if let Ok(dgram) = enc.encode_to_vec(&Message::Heartbeat(hb)) {
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
                let ok_sender = from.ip() == std::net::IpAddr::V4(*cfg.peer.ip());
                match dec.decode(&buf[..n]) {
                    Ok(frame) if ok_sender && frame.header.sender == cfg.peer_node
                        && matches!(frame.msg, Message::Heartbeat(_)) => {
                        stats.received.fetch_add(1, Ordering::Relaxed);
                        if det.on_heartbeat(clock.now(), frame.header.epoch, frame.header.seq) == HeartbeatVerdict::Fresh {
                            on_fresh();
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
