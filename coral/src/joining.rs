//! The new server's side of a join, driven by the node's loop (paper
//! section 3.2, docs/DESIGN.md 6): `coral join` runs a node whose machines
//! start in `Joining` and whose join is the core's [`Joiner`].
//!
//! Nothing here decides. The [`Joiner`] says what to send and which input
//! the machines get; the machines hand out the steps: `StartHeartbeats` at
//! acceptance (toward the simplex node, in the granted epoch), then, once
//! the simplex node released the address, `StartFronting` (the pre-started
//! front switches from idle to forwarding and answers ARP from then on)
//! and `SendGratuitousArp`, then `JoinReady`: the [`Joiner`] is told the
//! address is fronted and answers `JoinComplete`. This module carries those steps out and
//! writes the new server's events: `join-accepted` (as the joiner saw it),
//! `joined` once every address is fronted, and `join-failed` or
//! `join-rolled-back` (the node then stops: exit status 1).
//!
//! Pre-started, before the request is sent (what it costs at rest): the
//! front's thread (idle: its packet socket's filter passes only ARP and
//! frames to the service addresses, none of which reach it before the
//! address moves), the log server's listener and task, and the JOIN
//! connection. Nothing is forked or exec'd on the integration path.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use coral_core::{
    Action, Iface, Instant as CoreInstant, JoinAction, JoinEvent, Joiner, JoinerState, NodeConfig,
    NodeId, VipStatus, DEFAULT_JOIN_TIMEOUT_NS,
};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::events::EventLog;
use crate::io::announce;
use crate::io::front::{Command, Mode};
use crate::io::heartbeat::HeartbeatHandle;
use crate::io::join::{JoinLink, JoinWriter, JoinerInput};
use crate::io::logchan::{LogClient, LogClientConfig};
use crate::io::logged_io::ReplyLogger;
use crate::io::{netcfg, primary};
use crate::reintegration::{record, HeartbeatSpec};
use crate::takeover::TakeoverCtx;

/// Where the join of this node ended, once it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinEnd {
    /// Every address fronted: this node is the simplex node's backup.
    Joined,
    /// Refused, rolled back or timed out: the node must stop.
    Failed(String),
}

/// The new server's join in progress.
pub struct Joining {
    joiner: Joiner,
    writer: JoinWriter,
    rx: UnboundedReceiver<JoinerInput>,
    hb: HeartbeatSpec,
    /// The simplex node's LAN address (the join target).
    peer: Ipv4Addr,
    /// When the request was sent (for the `joined` event).
    sent: Instant,
    failure: Option<String>,
    /// `join-accepted` is written once (one accept per address).
    recorded_accept: bool,
    /// This node's `Hello` (for the log channel of an address it will be
    /// primary for).
    hello: NodeConfig,
    /// Service port of every address, and the LAN interface's name.
    ports: std::collections::HashMap<Ipv4Addr, u16>,
    lan: String,
    /// The heartbeat thread runs toward the simplex node.
    hb_started: bool,
}

impl Joining {
    /// Drive the join over `link` (connected to the simplex node at
    /// `peer`) for the node `me` describes; the request is the first
    /// thing [`Joining::poll`] sends.
    pub fn start(
        link: JoinLink,
        peer: Ipv4Addr,
        me: NodeConfig,
        hb: HeartbeatSpec,
        now: CoreInstant,
        service: (std::collections::HashMap<Ipv4Addr, u16>, String),
    ) -> Joining {
        let (writer, rx) = link.into_node();
        Joining {
            hello: me.clone(),
            ports: service.0,
            lan: service.1,
            joiner: Joiner::new(me, now, DEFAULT_JOIN_TIMEOUT_NS),
            writer,
            rx,
            hb,
            peer,
            sent: Instant::now(),
            failure: None,
            recorded_accept: false,
            hb_started: false,
        }
    }

    /// The next message (or the end) of the JOIN connection.
    pub async fn recv(&mut self) -> Option<JoinerInput> {
        self.rx.recv().await
    }

    /// Feed one input from the JOIN connection to the joiner.
    pub fn on_input(&mut self, input: JoinerInput) {
        match input {
            JoinerInput::Message(sender, msg) => self.joiner.on_message(sender, msg),
            JoinerInput::Closed(why) => self.joiner.on_closed(&format!("join connection: {why}")),
        }
    }

    /// The detector declared the simplex node failed: an accepted join is
    /// rolled back (the node stops).
    pub fn on_peer_failed(&mut self) {
        self.joiner.on_peer_failed();
    }

    /// When the join times out.
    pub fn next_deadline(&self) -> Option<CoreInstant> {
        self.joiner.next_deadline()
    }

    /// The next machine input of the join; sends, closes and events are
    /// done here.
    pub fn poll(&mut self, now: CoreInstant, events: &EventLog) -> Option<JoinAction> {
        loop {
            match self.joiner.poll(now)? {
                JoinAction::Send { msg, .. } => {
                    if let Err(e) = self.writer.send(msg) {
                        tracing::error!("{e:#}");
                    }
                }
                JoinAction::Close { .. } => self.writer.close(),
                JoinAction::Event(ev) => {
                    if let JoinEvent::JoinFailed { reason, detail } = &ev {
                        self.failure = Some(format!("join refused: {reason:?}: {detail}"));
                    } else if let JoinEvent::RolledBack { why, .. } = &ev {
                        self.failure = Some(format!("join rolled back: {why}"));
                    }
                    record(events, &ev);
                }
                a @ JoinAction::Machine { .. } => {
                    if let JoinAction::Machine {
                        input: coral_core::Input::JoinAccepted { epoch },
                        ..
                    } = a
                    {
                        self.accepted(events, epoch);
                    }
                    return Some(a);
                }
                JoinAction::AskWitness { .. } => {}
            }
        }
    }

    fn accepted(&mut self, events: &EventLog, epoch: coral_core::Epoch) {
        if std::mem::replace(&mut self.recorded_accept, true) {
            return;
        }
        let node = self.peer_node();
        events.record(
            "join-accepted",
            &format!(
                "node={} epoch={} by={} request_ms={:.3}",
                node.0,
                epoch.0,
                self.peer,
                self.sent.elapsed().as_secs_f64() * 1e3
            ),
        );
    }

    fn peer_node(&self) -> NodeId {
        self.joiner.peer().map_or(NodeId(0), |p| p.node)
    }

    /// Where the join ended, once every action of the end is out.
    pub fn end(&self) -> Option<JoinEnd> {
        match self.joiner.state() {
            JoinerState::Joined { .. } => Some(JoinEnd::Joined),
            JoinerState::Failed => Some(JoinEnd::Failed(
                self.failure
                    .clone()
                    .unwrap_or_else(|| "the join failed".into()),
            )),
            _ => None,
        }
    }

    /// Record that the join completed on this side.
    pub fn record_joined(&self, events: &EventLog) {
        if let JoinerState::Joined { epoch } = self.joiner.state() {
            events.record(
                "joined",
                &format!(
                    "node={} epoch={} by={} total_ms={:.3}",
                    self.peer_node().0,
                    epoch.0,
                    self.peer,
                    self.sent.elapsed().as_secs_f64() * 1e3
                ),
            );
        }
    }

    /// Carry out `action` if it is a step of the join on this side; `None`
    /// if it is not.
    pub async fn act(
        &mut self,
        ctx: &mut TakeoverCtx,
        hb: &mut HeartbeatHandle,
        vips: Vec<VipStatus>,
        action: Action,
    ) -> Option<Result<()>> {
        let r = match action {
            Action::StartHeartbeats => self.start_heartbeats(hb, vips).await,
            // An address this node will be primary for (a dual-role join
            // handing it over): the log channel to the simplex node, then
            // the address on loopback and its listener.
            Action::StartLogChannel => self.start_log(ctx),
            Action::AddVip {
                vip,
                iface: Iface::Loopback,
            } => self.serve_primary(ctx, vip).await,
            Action::StopHeartbeats => {
                hb.stop().await;
                Ok(())
            }
            // This node opened no log channel; its log server stays.
            Action::StopLogChannel => Ok(()),
            Action::StartFronting { .. } => match &ctx.front {
                Some(f) if f.send(Command::Mode(Mode::Forward)) => Ok(()),
                _ => Err(anyhow!("the front is not running")),
            },
            Action::SendGratuitousArp { vip } => {
                announce::gratuitous_arp(&ctx.arp_sock, vip, ctx.lan.mac)
                    .map_err(|e| anyhow!("gratuitous ARP for {vip}: {e}"))
            }
            Action::JoinReady { vip } => {
                self.joiner.on_ready(vip);
                Ok(())
            }
            _ => return None,
        };
        Some(r)
    }

    fn start_log(&mut self, ctx: &mut TakeoverCtx) -> Result<()> {
        let JoinerState::Accepted { epoch } = self.joiner.state() else {
            return Err(anyhow!("a log channel before the join was accepted"));
        };
        let client = LogClient::start(
            self.hb.key.clone(),
            LogClientConfig {
                local: *self.hb.local.ip(),
                backup: SocketAddrV4::new(self.peer, ctx.log_port),
                node: self.hb.node,
                epoch,
                hello: self.hello.clone(),
            },
        );
        ctx.log_client = Some(client);
        Ok(())
    }

    async fn serve_primary(&mut self, ctx: &TakeoverCtx, vip: Ipv4Addr) -> Result<()> {
        let client = ctx
            .log_client
            .clone()
            .ok_or_else(|| anyhow!("no log channel for {vip}"))?;
        let port = *self
            .ports
            .get(&vip)
            .ok_or_else(|| anyhow!("no service port for {vip}"))?;
        netcfg::primary_sysctls(&self.lan)?;
        ctx.nc.add_addr(ctx.lo.index, vip, 32).await?;
        let addr = SocketAddrV4::new(vip, port);
        let listener = primary::listen(addr).with_context(|| format!("listening on {addr}"))?;
        let logger: Arc<dyn ReplyLogger> = Arc::new(client.clone());
        tokio::spawn(primary::serve(
            listener,
            logger,
            Some(client),
            ctx.app.clone(),
            ctx.close_mark,
        ));
        Ok(())
    }

    async fn start_heartbeats(
        &mut self,
        hb: &mut HeartbeatHandle,
        vips: Vec<VipStatus>,
    ) -> Result<()> {
        let JoinerState::Accepted { epoch } = self.joiner.state() else {
            return Err(anyhow!("heartbeats before the join was accepted"));
        };
        // Every address's machine asks; one thread serves them all.
        if self.hb_started {
            return Ok(());
        }
        self.hb_started = true;
        hb.stop().await;
        *hb = self
            .hb
            .start(self.peer, self.peer_node(), epoch, vips, None)?;
        Ok(())
    }
}

/// The next input of this node's own join (never, when it is not joining).
pub async fn next_input(joining: &mut Option<Joining>) -> Option<JoinerInput> {
    match joining {
        Some(j) => j.recv().await,
        None => std::future::pending().await,
    }
}

/// This node's own join ended: joined (recorded; the node is the backup
/// from now on, its actions take the ordinary paths) or failed (the reason
/// the node must stop). `None` while the join goes on, or with no join.
pub fn finish(joining: &mut Option<Joining>, events: &EventLog) -> Option<String> {
    let end = joining.as_ref().and_then(|j| j.end())?;
    let j = joining.take()?;
    match end {
        JoinEnd::Joined => {
            j.record_joined(events);
            None
        }
        JoinEnd::Failed(why) => Some(why),
    }
}
