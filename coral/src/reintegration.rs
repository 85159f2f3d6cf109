//! Reintegration, carried out (paper section 3.2, docs/DESIGN.md 6): the
//! simplex node's side of a join ([`Joins`]) and the new server's
//! (`coral join`, [`join_once`]).
//!
//! Nothing here decides: the core's [`JoinAcceptor`] and [`Joiner`] say what
//! to send and which input the mode machines get, and the machines hand out
//! the steps (log channel, heartbeats, lease, address). This module carries
//! the join-only steps out for the node's loop, times them for the core and
//! writes the events: `join-refused`, `join-rejected`, `join-accepted`,
//! `join-rolled-back` and, once both nodes are duplex, one `integration`
//! event with the rows of the paper's Table 2 (ms).
//!
//! What is ready at rest, before any join: the JOIN listener (one socket,
//! one idle task). Nothing is forked or exec'd on the integration path: the
//! log channel, heartbeats and the front are tasks and a thread started
//! when the join is accepted.

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use coral_core::{
    Action, Arrival, Epoch, Iface, Input, Instant as CoreInstant, JoinAcceptor, JoinAction,
    JoinEvent, JoinSteps, Joiner, JoinerState, Key, Lease, ModeTag, NodeConfig, NodeId, NodeView,
    Timing, VipStatus, DEFAULT_JOIN_TIMEOUT_NS,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::clock::Clock;
use crate::events::EventLog;
use crate::io::front::{Command, Front, Mode};
use crate::io::heartbeat::{self, HeartbeatEvent, HeartbeatHandle, LeaseTargets};
use crate::io::join::{self, JoinInput, JoinLink, JoinServer};
use crate::io::leases::Leases;
use crate::io::logchan::{LogClient, LogClientConfig};
use crate::io::{announce, live_conns, netcfg, primary};
use crate::takeover::{fmt_breakdown, TakeoverCtx};

/// What a node needs to start heartbeats toward a peer: the configured one
/// at start-up, or one it learns of later (a joining node).
#[derive(Clone)]
pub struct HeartbeatSpec {
    /// The pre-shared key.
    pub key: Key,
    /// Our LAN address and heartbeat port.
    pub local: SocketAddrV4,
    /// The peers' heartbeat port.
    pub port: u16,
    /// Our node id.
    pub node: NodeId,
    /// H, K and the lease.
    pub timing: Timing,
    /// The node's clock.
    pub clock: Clock,
    /// The nft leases the heartbeat link extends.
    pub leases: Arc<Leases>,
    /// The front whose ARP lease follows the link's (with a witness).
    pub arp: Option<Front>,
    /// The node loop's heartbeat input.
    pub events: UnboundedSender<HeartbeatEvent>,
}

impl HeartbeatSpec {
    /// Heartbeats toward `peer` (node `peer_node`) in `epoch`, on their own
    /// thread, watching `log` (our log channel to that peer, if any).
    pub fn start(
        &self,
        peer: Ipv4Addr,
        peer_node: NodeId,
        epoch: Epoch,
        vips: Vec<VipStatus>,
        log: Option<LogClient>,
    ) -> std::io::Result<HeartbeatHandle> {
        heartbeat::start(
            self.key.clone(),
            heartbeat::HeartbeatConfig {
                local: self.local,
                peer: SocketAddrV4::new(peer, self.port),
                node: self.node,
                peer_node,
                epoch,
                timing: self.timing,
                vips,
                log,
            },
            self.clock,
            self.events.clone(),
            LeaseTargets {
                leases: self.leases.clone(),
                arp: self.arp.clone(),
            },
        )
    }
}

/// Kernel settings that must match on both nodes for repaired sockets to
/// behave like the originals (checked through the `Hello` exchange).
const MATCHED_SYSCTLS: &[&str] = &[
    "net/ipv4/tcp_timestamps",
    "net/ipv4/tcp_sack",
    "net/ipv4/tcp_window_scaling",
    "net/ipv4/tcp_rmem",
    "net/ipv4/tcp_wmem",
];

/// This node's identity and configuration as a join exchanges them (the
/// core's `NodeConfig`): id, H and K, service addresses, the TCP option
/// sysctls both nodes must share, the software version.
pub(crate) fn hello(cfg: &crate::config::Config, timing: &Timing) -> NodeConfig {
    NodeConfig {
        node: NodeId(cfg.node_id),
        heartbeat_interval_ns: timing.heartbeat_ns(),
        misses: timing.misses(),
        vips: cfg.service.iter().map(|s| s.vip).collect(),
        kernel: MATCHED_SYSCTLS
            .iter()
            .filter_map(|k| {
                netcfg::read_sysctl(k)
                    .ok()
                    .map(|v| (k.replace('/', "."), v))
            })
            .collect(),
        software: format!("coral {}", env!("CARGO_PKG_VERSION")),
        primary_for: cfg
            .service
            .iter()
            .filter(|s| s.role == crate::config::ServiceRole::Primary)
            .map(|s| s.vip)
            .collect(),
    }
}

/// Table 2's rows for summary.json and the event (ms).
pub fn steps_ms(s: &JoinSteps) -> BTreeMap<String, f64> {
    let ms = |ns: u64| ns as f64 / 1e6;
    BTreeMap::from([
        ("identity_restoration".into(), ms(s.identity_restoration_ns)),
        ("config_exchange".into(), ms(s.config_exchange_ns)),
        ("witness".into(), ms(s.witness_ns)),
        ("task_startup".into(), ms(s.task_startup_ns)),
        ("total".into(), ms(s.total_ns)),
    ])
}

/// Write one join event to the event log.
pub(crate) fn record(events: &EventLog, ev: &JoinEvent) {
    match ev {
        JoinEvent::Refused {
            node,
            reason,
            detail,
        } => events.record(
            "join-refused",
            &format!("node={} reason={reason:?} detail={detail}", node.0),
        ),
        JoinEvent::Rejected { conn, why } => {
            events.record("join-rejected", &format!("conn={conn} why={why}"))
        }
        JoinEvent::Accepted { node, epoch } => events.record(
            "join-accepted",
            &format!("node={} epoch={}", node.0, epoch.0),
        ),
        JoinEvent::Completed { node, epoch, steps } => events.record(
            "integration",
            &format!(
                "node={} epoch={} {}",
                node.0,
                epoch.0,
                fmt_breakdown(&steps_ms(steps))
            ),
        ),
        JoinEvent::RolledBack { node, why } => {
            events.record("join-rolled-back", &format!("node={} why={why}", node.0))
        }
        JoinEvent::JoinFailed { reason, detail } => {
            events.record("join-failed", &format!("reason={reason:?} detail={detail}"))
        }
    }
    tracing::info!(?ev, "join");
}

/// The simplex node's side of joins, driven by the node's loop.
pub struct Joins {
    acceptor: JoinAcceptor,
    server: JoinServer,
    rx: UnboundedReceiver<JoinInput>,
    hb: HeartbeatSpec,
    key: Key,
    hello: NodeConfig,
    log_port: u16,
    lan: String,
    /// The new server of the join in progress: LAN address, node.
    peer: Option<(Ipv4Addr, NodeId)>,
    epoch: Epoch,
    /// Addresses whose rollback steps are being carried out.
    rolling_back: HashSet<Ipv4Addr>,
    /// Addresses whose primary role is being handed to the new server
    /// (dual role), until their front is announced.
    handing: HashSet<Ipv4Addr>,
    /// Addresses handed over whose open connections this node keeps
    /// (their frames passed to its stack) until they have all ended.
    kept: HashSet<Ipv4Addr>,
    /// The front kept for a hand-over (`hand_over_at_join`): it takes the
    /// new server's log from the accept on.
    log_front: Option<Front>,
    /// How long each of this shell's join steps took (ms, summed over
    /// addresses), written as `join-shell-steps` beside `integration`.
    shell_ms: BTreeMap<&'static str, f64>,
    /// The new server and epoch the heartbeat thread was last started
    /// toward by a join.
    hb_toward: Option<(Ipv4Addr, Epoch)>,
    /// The log channel this node opened toward the new server at the
    /// join in progress (whether it is connected is written beside
    /// Table 2).
    log: Option<LogClient>,
}

impl Joins {
    /// Listen on the JOIN port of `hb.local`'s address; `lan` names the
    /// LAN interface.
    pub async fn start(
        hb: HeartbeatSpec,
        hello: NodeConfig,
        ports: (u16, u16),
        lan: String,
    ) -> Result<Joins> {
        let (join_port, log_port) = ports;
        let local = SocketAddrV4::new(*hb.local.ip(), join_port);
        let rx = join::listen(local, hb.key.clone(), hb.clock).await?;
        Ok(Joins {
            acceptor: JoinAcceptor::new(hello.clone(), DEFAULT_JOIN_TIMEOUT_NS),
            server: JoinServer::new(hb.key.clone(), hb.node, Epoch(0)),
            rx,
            key: hb.key.clone(),
            hb,
            hello,
            log_port,
            lan,
            peer: None,
            epoch: Epoch(0),
            rolling_back: HashSet::new(),
            handing: HashSet::new(),
            kept: HashSet::new(),
            log_front: None,
            shell_ms: BTreeMap::new(),
            hb_toward: None,
            log: None,
        })
    }

    /// Hand `vips` (those this node fronted before its peer failed) to a
    /// joiner that asks to be their primary; `front`, kept after the
    /// takeover, fronts them again and takes the joiner's log.
    pub fn may_hand_over(&mut self, vips: Vec<Ipv4Addr>, front: Front) {
        let acceptor = std::mem::replace(
            &mut self.acceptor,
            JoinAcceptor::new(self.hello.clone(), DEFAULT_JOIN_TIMEOUT_NS),
        );
        self.acceptor = acceptor.may_hand_over(vips);
        self.log_front = Some(front);
    }

    /// The addresses handed over whose kept connections have all ended
    /// since the last call (none is left with this node as its local
    /// address; no new one can open here: the front forwards SYNs).
    pub fn kept_flows_ended(&mut self) -> Vec<Ipv4Addr> {
        let ended: Vec<Ipv4Addr> = self
            .kept
            .iter()
            .copied()
            .filter(|v| live_conns::count_on(*v) == 0)
            .collect();
        for v in &ended {
            self.kept.remove(v);
        }
        ended
    }

    /// The next input from the JOIN listener.
    pub async fn recv(&mut self) -> Option<JoinInput> {
        self.rx.recv().await
    }

    /// Feed one listener input to the acceptor.
    pub fn on_input(&mut self, now: CoreInstant, input: JoinInput, view: NodeView) {
        match input {
            JoinInput::Opened { conn, peer, writer } => self.server.opened(conn, peer, writer),
            JoinInput::Message {
                at,
                conn,
                sender,
                seq,
                msg,
            } => {
                let at = Arrival { received: at, now };
                self.acceptor
                    .on_message_at(at, conn, sender, seq, msg, view)
            }
            JoinInput::Reject { conn, why } => self.acceptor.on_reject(conn, why),
            JoinInput::Closed { conn } => {
                self.acceptor.on_closed(conn);
                self.server.close(conn);
            }
        }
    }

    /// The detector declared the peer failed: a join past its acceptance
    /// is rolled back.
    pub fn on_peer_failed(&mut self) {
        // Connections still kept are the takeover's from now on.
        self.kept.clear();
        self.acceptor.on_peer_failed();
    }

    /// True if the witness's answer about `vip` in `epoch` is for a join.
    pub fn awaits_grant(&self, vip: Ipv4Addr, epoch: Epoch) -> bool {
        self.acceptor.awaits_grant(vip, epoch)
    }

    /// A witness reply for a join.
    pub fn on_witness(&mut self, now: CoreInstant, vip: Ipv4Addr, input: Input) {
        match input {
            Input::GrantReceived { epoch } => self.acceptor.on_grant(now, vip, epoch),
            Input::GrantRefused { epoch, reason } => {
                self.acceptor.on_grant_refused(vip, epoch, reason)
            }
            _ => {}
        }
    }

    /// Without a witness a join's epoch is granted at once.
    pub fn grant_now(&mut self, now: CoreInstant, vip: Ipv4Addr, epoch: Epoch) {
        self.acceptor.on_grant(now, vip, epoch);
    }

    /// When the join in progress times out.
    pub fn next_deadline(&self) -> Option<CoreInstant> {
        self.acceptor.next_deadline()
    }

    /// The next action the node must carry out (`Machine`, `AskWitness`);
    /// sends, closes and events are done here.
    pub fn poll(&mut self, now: CoreInstant, events: &EventLog) -> Option<JoinAction> {
        loop {
            match self.acceptor.poll(now)? {
                JoinAction::Send { conn, msg } => {
                    if let coral_core::JoinMsg::JoinAccept { epoch, .. } = &msg {
                        self.epoch = *epoch;
                        self.server.set_epoch(*epoch);
                        self.peer = self.server.peer(conn).map(|p| (*p.ip(), self.peer_node()));
                        // A new primary (an address handed over) opens its
                        // log channel as soon as it reads the accept.
                        if let (Some(f), Some((ip, _))) = (&self.log_front, self.peer) {
                            *f.log_peer.lock().unwrap_or_else(|e| e.into_inner()) = ip;
                            f.send(Command::ResumeLog);
                        }
                    }
                    if let Err(e) = self.server.send(conn, msg) {
                        tracing::error!("{e:#}");
                    }
                }
                JoinAction::Close { conn } => self.server.close(conn),
                JoinAction::Event(ev) => {
                    record(events, &ev);
                    if matches!(ev, JoinEvent::RolledBack { .. }) {
                        self.shell_ms.clear();
                        self.log = None;
                    }
                    if matches!(ev, JoinEvent::Completed { .. }) {
                        let steps = std::mem::take(&mut self.shell_ms);
                        let mut detail: Vec<String> =
                            steps.iter().map(|(k, v)| format!("{k}={v:.3}")).collect();
                        // Table 2 ends with the log channel up: say whether
                        // it was (connected, the new server's hello read).
                        if let Some(c) = self.log.take() {
                            detail.push(format!("log_connected={}", c.is_connected()));
                        }
                        events.record("join-shell-steps", &detail.join(" "));
                    }
                }
                a @ JoinAction::Machine {
                    vip,
                    input: Input::JoinAborted,
                } => {
                    self.rolling_back.insert(vip);
                    return Some(a);
                }
                a => return Some(a),
            }
        }
    }

    fn peer_node(&self) -> NodeId {
        self.acceptor.peer().map_or(NodeId(0), |p| p.node)
    }

    /// Carry out `action` if it is a join step; `None` if it is not.
    pub async fn act(
        &mut self,
        ctx: &mut TakeoverCtx,
        hb: &mut HeartbeatHandle,
        vips: Vec<VipStatus>,
        action: Action,
    ) -> Option<Result<()>> {
        let back = action.vip().is_some_and(|v| self.rolling_back.contains(&v));
        let t0 = std::time::Instant::now();
        let r = match action {
            Action::StartLogChannel => self.start_log(ctx),
            Action::StartHeartbeats => self.restart_heartbeats(ctx, hb, vips).await,
            Action::StopLogChannel => {
                if let Some(c) = ctx.log_client.take() {
                    c.go_simplex();
                }
                primary::join_duplex(None);
                Ok(())
            }
            Action::SetLease {
                vip,
                lease: Lease::Refreshed { .. },
            } => ctx.leases.start_refreshed(vip),
            Action::AddVip {
                vip,
                iface: Iface::Loopback,
            } => self.onto_loopback(ctx, vip).await,
            Action::RemoveVip {
                vip,
                iface: Iface::Lan,
            } => {
                let r = ctx.nc.del_addr(ctx.lan.index, vip, 32).await;
                self.acceptor.on_released(ctx.clock.now(), vip);
                r
            }
            // The hand-over of a dual-role join: the role offered at once;
            // at the new primary's JoinComplete the open connections are
            // kept (the front passes their frames to this node's stack),
            // the front forwards everything else to the new primary.
            Action::OfferPrimary { vip } => {
                self.handing.insert(vip);
                let r = self.front_new_primary(ctx).await;
                self.acceptor.on_released(ctx.clock.now(), vip);
                r
            }
            Action::KeepSimplexFlows { vip } => match &ctx.front {
                Some(f) if f.send(Command::PassLocalFlows(true)) => {
                    self.kept.insert(vip);
                    Ok(())
                }
                _ => Err(anyhow!("no front to keep the open connections")),
            },
            // The kept connections have ended: the lease element goes, and
            // the front passes nothing to the stack once no address keeps
            // connections.
            Action::EndKeptFlows { vip } => {
                let r = ctx.leases.revoke(vip);
                let pass_off = self.kept.is_empty();
                if pass_off {
                    if let Some(f) = &ctx.front {
                        f.send(Command::PassLocalFlows(false));
                    }
                }
                ctx.events.record(
                    "kept-flows-ended",
                    &format!(
                        "vip={vip} lease_revoked={} pass_local_off={pass_off}",
                        r.is_ok()
                    ),
                );
                r
            }
            Action::StartFronting { vip } if self.handing.contains(&vip) => match &ctx.front {
                Some(f) if f.send(Command::Mode(Mode::Forward)) => Ok(()),
                _ => Err(anyhow!("the front has stopped")),
            },
            // The front's MAC is this node's, as the router has it: a
            // gratuitous ARP only (a ping from the address would be
            // answered to the new primary, which holds it now).
            // The last step of the hand-over: Table 2 ends here (sent or
            // not: a failure is the action's error event).
            Action::SendGratuitousArp { vip } if self.handing.remove(&vip) => {
                let r = announce::gratuitous_arp(&ctx.arp_sock, vip, ctx.lan.mac)
                    .map_err(|e| anyhow!("gratuitous ARP for {vip}: {e}"));
                self.acceptor.on_handed_over(ctx.clock.now(), vip);
                r
            }
            Action::CloseSimplexConnectionsAfterNextResponse { vip } => {
                primary::join_duplex(ctx.log_client.clone());
                let n = live_conns::end_all_after_next_response();
                ctx.events
                    .record("join-simplex-conns", &format!("vip={vip} ending={n}"));
                Ok(())
            }
            // The rollback, once the witness granted the next epoch (writers
            // were released at StopLogChannel): the address back on the
            // LAN, told to the router.
            Action::GoSimplex { .. } if back => Ok(()),
            Action::SetLease {
                vip,
                lease: Lease::Permanent,
            } if back => ctx.leases.make_permanent(vip),
            Action::AddVip {
                vip,
                iface: Iface::Lan,
            } if back => ctx.nc.add_addr(ctx.lan.index, vip, 32).await,
            Action::RemoveVip {
                vip,
                iface: Iface::Loopback,
            } if back => ctx.nc.del_addr(ctx.lo.index, vip, 32).await,
            Action::SendGratuitousArp { vip } if back => {
                self.rolling_back.remove(&vip);
                announce_now(ctx, vip).map(|_| ())
            }
            _ => return None,
        };
        if let Some(name) = step_name(&action).filter(|_| !back) {
            *self.shell_ms.entry(name).or_default() += t0.elapsed().as_secs_f64() * 1e3;
        }
        Some(r)
    }

    fn start_log(&mut self, ctx: &mut TakeoverCtx) -> Result<()> {
        let (peer, _) = self.peer.ok_or_else(|| anyhow!("no joining peer"))?;
        let client = LogClient::start(
            self.key.clone(),
            LogClientConfig {
                local: *self.hb.local.ip(),
                backup: SocketAddrV4::new(peer, self.log_port),
                node: self.hb.node,
                epoch: self.epoch,
                hello: self.hello.clone(),
            },
        );
        self.log = Some(client.clone());
        ctx.log_client = Some(client);
        Ok(())
    }

    async fn restart_heartbeats(
        &mut self,
        ctx: &TakeoverCtx,
        hb: &mut HeartbeatHandle,
        vips: Vec<VipStatus>,
    ) -> Result<()> {
        let (peer, node) = self.peer.ok_or_else(|| anyhow!("no joining peer"))?;
        // Every address's machine asks; one thread serves them all (a
        // second restart cost a thread's end and start, 0.3-6 ms).
        if self.hb_toward != Some((peer, self.epoch)) {
            // The old thread holds the heartbeat socket: end it first.
            hb.stop().await;
            *hb = self
                .hb
                .start(peer, node, self.epoch, vips, ctx.log_client.clone())?;
            self.hb_toward = Some((peer, self.epoch));
        }
        self.acceptor.on_tasks_started(ctx.clock.now());
        Ok(())
    }

    /// Ready the front for the new server as the primary of an address
    /// handed over (still idle: frames go to this node's stack until the
    /// new primary is ready): its MAC (the JOIN connection taught it to
    /// the kernel), its log connection accepted and acknowledged, a fresh
    /// table.
    async fn front_new_primary(&mut self, ctx: &TakeoverCtx) -> Result<()> {
        let (peer, _) = self.peer.ok_or_else(|| anyhow!("no joining peer"))?;
        let mac = ctx
            .nc
            .neighbour_mac(ctx.lan.index, peer)
            .await?
            .ok_or_else(|| anyhow!("no neighbour entry for the new server {peer}"))?;
        let f = ctx.front.as_ref().ok_or_else(|| anyhow!("no front"))?;
        if f.send(Command::PrimaryMac(mac)) {
            Ok(())
        } else {
            Err(anyhow!("the front has stopped"))
        }
    }

    async fn onto_loopback(&mut self, ctx: &TakeoverCtx, vip: Ipv4Addr) -> Result<()> {
        // A new front records this address's frames from now on: frames
        // flooded for a front's MAC are no longer ours to adopt.
        if let Some(a) = ctx.adopt.get() {
            a.hold(vip)?;
        }
        netcfg::primary_sysctls(&self.lan)?;
        ctx.nc.add_addr(ctx.lo.index, vip, 32).await
    }
}

/// The name of a join step in `join-shell-steps` (ms); `None` for the
/// steps of a rollback and those after Table 2 ends.
fn step_name(a: &Action) -> Option<&'static str> {
    match a {
        Action::StartLogChannel => Some("log_channel_ms"),
        Action::StartHeartbeats => Some("heartbeats_ms"),
        Action::SetLease { .. } => Some("lease_ms"),
        Action::AddVip { .. } => Some("loopback_ms"),
        Action::RemoveVip { .. } => Some("lan_ms"),
        Action::OfferPrimary { .. } => Some("offer_ms"),
        Action::KeepSimplexFlows { .. } | Action::StartFronting { .. } => Some("front_ms"),
        Action::SendGratuitousArp { .. } => Some("announce_ms"),
        _ => None,
    }
}

/// Gratuitous ARP for `vip` from this node, confirmed by a ping from the
/// address when an outside host is configured.
fn announce_now(ctx: &TakeoverCtx, vip: Ipv4Addr) -> Result<announce::AnnounceTiming> {
    tokio::task::block_in_place(|| {
        announce::announce(
            &ctx.arp_sock,
            vip,
            ctx.lan.mac,
            ctx.outside,
            Duration::from_millis(100),
            10,
        )
    })
    .map_err(|e| anyhow!("announcing {vip}: {e}"))
}

/// The new server's view for the node's loop.
pub fn node_view(machines: impl Iterator<Item = (ModeTag, Epoch)>) -> NodeView {
    let mut view = NodeView {
        simplex: true,
        epoch: Epoch(0),
    };
    let mut any = false;
    for (mode, epoch) in machines {
        any = true;
        view.simplex &= mode == ModeTag::Simplex;
        view.epoch = view.epoch.max(epoch);
    }
    view.simplex &= any;
    view
}

/// `coral join`: the exchange for the node `cfg` describes.
pub async fn join_config(cfg: &crate::config::Config, to: SocketAddrV4) -> Result<Epoch> {
    let timing = Timing::from_ms(cfg.heartbeat_ms, cfg.misses).map_err(|e| anyhow!("{e}"))?;
    let key = Key::new(&cfg.read_key()?).map_err(|e| anyhow!("key: {e}"))?;
    join_once(to, key, hello(cfg, &timing)).await
}

/// `coral join` without a node behind it: the exchange alone, up to the
/// simplex node's accept or refusal (used to check a join would be
/// accepted, and by the refused-join tests). Returns the accepted epoch.
pub async fn join_once(to: SocketAddrV4, key: Key, me: NodeConfig) -> Result<Epoch> {
    let mut link = JoinLink::connect(to, key, me.node).await?;
    let mut j = Joiner::new(me, CoreInstant(0), DEFAULT_JOIN_TIMEOUT_NS);
    loop {
        while let Some(a) = j.poll(CoreInstant(0)) {
            match a {
                JoinAction::Send { msg, .. } => link.send(msg).await?,
                JoinAction::Event(JoinEvent::JoinFailed { reason, detail }) => {
                    bail!("join refused: {reason:?}: {detail}")
                }
                JoinAction::Event(ev) => bail!("join failed: {ev:?}"),
                _ => {}
            }
        }
        if let JoinerState::Accepted { epoch } = j.state() {
            link.close().await;
            return Ok(epoch);
        }
        let r = tokio::time::timeout(Duration::from_secs(5), link.recv()).await;
        match r {
            Ok(Ok((sender, msg))) => j.on_message(sender, msg),
            Ok(Err(why)) => j.on_closed(why),
            Err(_) => bail!("no answer from {to} in 5 s"),
        }
    }
}
