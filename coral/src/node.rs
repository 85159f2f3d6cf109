//! The node: one loop that feeds inputs to the core's machines and carries
//! out the actions they hand back (the shape of quinn's `ConnectionDriver`
//! around quinn-proto). It decides nothing itself.
//!
//! Inputs: heartbeat events (detector, the peer's per-address status, lease
//! lapses), witness replies, both sides of a join, the front's reports, the
//! one timer armed from the machines' next deadline, a counters tick, and
//! SIGTERM/SIGINT. The actions go to whoever carries them out: a failover's
//! steps to [`Failovers`] (docs/DESIGN.md section 5), a join's to
//! [`crate::reintegration`] or [`crate::joining`], a grant request to
//! [`Grants`], `Fence` to [`stop::fence`].

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use anyhow::{anyhow, Result};
use coral_core::{Action, DetectorEvent, Input, JoinAction, WitnessMsg};

use crate::clock::unix_ns;
use crate::config::{Config, ServiceRole};
use crate::counters::Counters;
use crate::failover::Failovers;
use crate::grants::Grants;
use crate::io::front::FrontEvent;
use crate::io::heartbeat::{HeartbeatCmd, HeartbeatEvent, HeartbeatHandle};
use crate::joining::{self, Joining};
use crate::machines::Machines;
use crate::reintegration::Joins;
use crate::stop;
use crate::takeover::TakeoverCtx;
use crate::wiring::{self, Inputs};

pub use crate::grants::START_EPOCH;

pub use crate::takeover::FENCED_EXIT;

/// Run the node until SIGTERM or SIGINT.
pub async fn run(cfg: Config) -> Result<()> {
    let name = cfg.name.clone();
    let w = wiring::start(cfg).await?;
    serve(&name, w, None).await
}

/// Run a new server that joins the simplex node at `to` (its JOIN
/// endpoint), then serves as its backup until SIGTERM or SIGINT. A refused
/// or rolled-back join stops it with an error.
pub async fn join(cfg: Config, to: SocketAddrV4) -> Result<()> {
    let name = cfg.name.clone();
    let (w, joining) = wiring::start_joining(cfg, to).await?;
    serve(&name, w, Some(joining)).await
}

async fn serve(name: &str, w: wiring::Wired, joining: Option<Joining>) -> Result<()> {
    let mut node = Node {
        ctx: w.ctx,
        machines: w.machines,
        grants: w.grants,
        hb: w.hb,
        counters: Counters::new(w.log_stats),
        vips: w.vips,
        primaries: w.primaries.iter().map(|s| s.vip).collect(),
        failovers: Failovers::default(),
        joins: w.joins,
        joining,
        failed: None,
    };
    match node.joining {
        Some(_) => println!("coral node {name} joining"),
        None => println!("coral node {name} ready"),
    }
    node.run(w.inputs).await
}

/// Everything a running node holds.
struct Node {
    ctx: TakeoverCtx,
    /// One machine per service address.
    machines: Machines,
    /// Grant requests (to the witness, if configured).
    grants: Grants,
    hb: HeartbeatHandle,
    /// The `counters` rows.
    counters: Counters,
    vips: Vec<Ipv4Addr>,
    primaries: Vec<Ipv4Addr>,
    /// Takeovers and claims under way.
    failovers: Failovers,
    /// New servers joining this node once it is simplex (docs/DESIGN.md 6).
    joins: Joins,
    /// This node's own join, while it is a new server joining a simplex
    /// node.
    joining: Option<Joining>,
    /// Why the node must stop (its join failed).
    failed: Option<String>,
}

impl Node {
    /// The loop: one input at a time, then the machines' actions.
    async fn run(&mut self, mut inputs: Inputs) -> Result<()> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        // How often the connections kept at a hand-over are counted.
        let mut kept = tokio::time::interval(Duration::from_millis(100));
        loop {
            // The one timer: the earliest deadline any machine handed out.
            let now = self.ctx.clock.now();
            let wait = self
                .machines
                .next_deadline()
                .into_iter()
                .chain(self.joins.next_deadline())
                .chain(self.joining.as_ref().and_then(|j| j.next_deadline()))
                .min()
                .map(|d| Duration::from_nanos(d.since_ns(now)))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = tick.tick() => self.counters.tick(&self.ctx, &self.hb),
                _ = kept.tick() => {
                    for vip in self.joins.kept_flows_ended() {
                        self.feed(Some(vip), Input::SimplexFlowsEnded);
                    }
                }
                _ = tokio::time::sleep(wait) => {}
                Some(m) = inputs.witness.recv() => self.on_witness(m),
                Some(j) = self.joins.recv() => {
                    self.joins.on_input(self.ctx.clock.now(), j, self.machines.view());
                }
                Some(j) = joining::next_input(&mut self.joining) => {
                    if let Some(joining) = &mut self.joining {
                        joining.on_input(j);
                    }
                }
                Some(e) = inputs.front.recv() => self.on_front(e),
                ev = inputs.heartbeat.recv() => match ev {
                    Some(ev) => self.on_heartbeat(ev),
                    None => break,
                },
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
            self.drive().await;
            if self.failed.is_some() {
                break;
            }
        }
        self.counters.last(&self.ctx, &self.hb);
        let why = self.failed.take();
        stop::shut_down(&self.ctx, &self.primaries, why.as_deref()).await;
        why.map_or(Ok(()), |w| Err(anyhow!(w)))
    }

    fn feed(&mut self, vip: Option<Ipv4Addr>, input: Input) {
        self.machines.feed(self.ctx.clock.now(), vip, input);
    }

    fn on_heartbeat(&mut self, ev: HeartbeatEvent) {
        match ev {
            HeartbeatEvent::Detector(d) => self.on_detector(d),
            // The peer's heartbeat reported its per-address epochs.
            HeartbeatEvent::PeerStatus(v) => {
                for st in v {
                    self.feed(Some(st.vip), Input::EpochSeen { epoch: st.epoch });
                }
            }
            HeartbeatEvent::LeaseLapsed { at } => {
                let late_ms = self.ctx.clock.now().since_ns(at) as f64 / 1e6;
                self.ctx
                    .events
                    .record("lease-lapsed", &format!("late_ms={late_ms:.3}"));
                tracing::warn!(late_ms, "lease lapsed");
            }
            HeartbeatEvent::LogStalled { waited_ns } => {
                let ms = waited_ns as f64 / 1e6;
                self.ctx
                    .events
                    .record("log-stalled", &format!("waited_ms={ms:.1}"));
                tracing::warn!(ms, "the peer answers heartbeats but not the log");
            }
        }
    }

    fn on_detector(&mut self, ev: DetectorEvent) {
        let events = &self.ctx.events;
        match ev {
            DetectorEvent::PeerFailed {
                ever_heard,
                last_heard,
            } => {
                let silent_ms = self.ctx.clock.now().since_ms(last_heard);
                events.record_at(
                    unix_ns(),
                    "peer-failed",
                    &format!("ever_heard={ever_heard} silent_ms={silent_ms}"),
                );
                tracing::warn!(silent_ms, "peer failed");
                // A join in progress is rolled back (its machines ignore
                // the detection in `Joining`; the join's owner decides).
                self.joins.on_peer_failed();
                if let Some(j) = &mut self.joining {
                    j.on_peer_failed();
                }
                self.feed(None, Input::PeerFailed { last_heard });
            }
            DetectorEvent::PeerUp { epoch } => {
                events.record("peer-up", &format!("epoch={}", epoch.0))
            }
            other => events.record("detector", &format!("{other:?}")),
        }
    }

    /// A reply from the witness.
    fn on_witness(&mut self, m: WitnessMsg) {
        let Some((vip, input)) = self.grants.on_reply(m, &self.ctx.events) else {
            return;
        };
        let epoch = match input {
            Input::GrantReceived { epoch } | Input::GrantRefused { epoch, .. } => Some(epoch),
            _ => None,
        };
        if epoch.is_some_and(|e| self.joins.awaits_grant(vip, e)) {
            self.joins.on_witness(self.ctx.clock.now(), vip, input);
        } else {
            self.feed(Some(vip), input);
        }
    }

    /// Something the front's data path reported.
    fn on_front(&mut self, e: FrontEvent) {
        let ctx = &self.ctx;
        match e {
            FrontEvent::Conn(t, c) => ctx.events.record("conn", &format!("{t} {c:?}")),
            FrontEvent::Failed(why) => ctx.events.record("front-failed", &why),
            FrontEvent::Restorable(tuple, state) => {
                crate::takeover::restore_late(ctx, tuple, state)
            }
        }
    }

    /// Run every machine's due actions, in order; then report what the
    /// machines say in our heartbeats.
    async fn drive(&mut self) {
        loop {
            let now = self.ctx.clock.now();
            if let Some(a) = self.joins.poll(now, &self.ctx.events) {
                self.on_join_action(a).await;
                continue;
            }
            if let Some(a) = self
                .joining
                .as_mut()
                .and_then(|j| j.poll(now, &self.ctx.events))
            {
                self.on_join_action(a).await;
                continue;
            }
            let Some((i, action)) = self.machines.poll(now) else {
                break;
            };
            if let Err(e) = self.act(i, action).await {
                self.ctx
                    .events
                    .record("action-error", &format!("{action:?}: {e:#}"));
                tracing::error!(?action, "{e:#}");
            }
        }
        if let Some(why) = joining::finish(&mut self.joining, &self.ctx.events) {
            self.failed = Some(why);
        }
        if let Some(st) = self.machines.status_changed() {
            self.hb.command(HeartbeatCmd::Status(st));
        }
    }

    /// A join asks the witness or gives a machine an input.
    async fn on_join_action(&mut self, a: JoinAction) {
        match a {
            JoinAction::Machine { vip, input } => self.feed(Some(vip), input),
            JoinAction::AskWitness { vip, epoch } => {
                let (events, me) = (&self.ctx.events, self.grants.me());
                if self.grants.ask(events, vip, me, epoch).await.is_some() {
                    self.joins.grant_now(self.ctx.clock.now(), vip, epoch);
                }
            }
            _ => {}
        }
    }

    /// Carry out one action of machine `i`.
    async fn act(&mut self, i: usize, action: Action) -> Result<()> {
        if let Some(r) = self.act_join(i, action).await {
            return r;
        }
        let ctx = &self.ctx;
        let slot = self.machines.slot(i);
        match (slot.role, action) {
            (_, Action::ModeChanged { vip, from, to }) => {
                ctx.events
                    .record("mode", &format!("vip={vip} from={from:?} to={to:?}"));
            }
            (_, Action::StopHeartbeats) => {
                // No lease is extended from now on except by a grant.
                ctx.leases.stop_refreshing();
                self.hb.command(HeartbeatCmd::StopSending);
            }
            (_, Action::AskWitness { vip, node, epoch }) => {
                if let Some(granted) = self.grants.ask(&ctx.events, vip, node, epoch).await {
                    slot.machine.handle(ctx.clock.now(), granted);
                }
            }
            (_, Action::Fence { vip }) => {
                let (machines, failovers) = (&self.machines, &mut self.failovers);
                stop::fence(ctx, &self.hb, &self.vips, machines, failovers, vip).await
            }
            (ServiceRole::Backup, action) => {
                let port = slot.port;
                self.failovers.take_over(ctx, action, port).await?
            }
            (ServiceRole::Primary, action) => {
                self.failovers.claim(ctx, &slot.machine, action).await?
            }
        }
        Ok(())
    }

    /// Carry out `action` if it is a step of a join (this node's own, or a
    /// new server's joining it); `None` if it is not.
    async fn act_join(&mut self, i: usize, action: Action) -> Option<Result<()>> {
        let st = self.machines.statuses();
        if let Some(j) = &mut self.joining {
            if let Some(r) = j.act(&mut self.ctx, &mut self.hb, st.clone(), action).await {
                return Some(r);
            }
        }
        let r = self
            .joins
            .act(&mut self.ctx, &mut self.hb, st, action)
            .await?;
        if let Action::CloseSimplexConnectionsAfterNextResponse { .. } = action {
            // Joined: this node is the address's primary from now on, or
            // its front if it handed the address over.
            let slot = self.machines.slot(i);
            slot.role = match slot.machine.role() {
                coral_core::Role::Backup => ServiceRole::Backup,
                _ => ServiceRole::Primary,
            };
        }
        Some(r)
    }
}
