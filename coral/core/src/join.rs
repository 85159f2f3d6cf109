//! Reintegration (paper section 3.2 and Table 2; docs/DESIGN.md 6), sans-IO:
//! the join protocol on both sides of the JOIN channel.
//!
//! A new server (the [`Joiner`]) connects to a simplex node (the
//! [`JoinAcceptor`]) and sends its identity and configuration. The simplex
//! node checks it (same service addresses, same heartbeat timing, the same
//! TCP option sysctls, or the join is refused naming the mismatch), asks the
//! witness for a new epoch of every address (so a join can never give one
//! address two voices), then accepts: its machines get
//! [`Input::JoinAccepted`] and hand out the log channel, heartbeats, a
//! refreshed lease and the address moving from the LAN interface to
//! loopback. Once the address left its LAN interface it tells the new server
//! (`VipReleased`), which starts fronting the address (ARP, gratuitous ARP
//! confirmed by a ping) and answers `JoinComplete`; both sides are then
//! duplex. In dual role the simplex node may instead hand an address's
//! primary role over: it offers it at once (`VipReleased`), the new server,
//! already serving it from loopback, answers `JoinComplete`, and only then
//! does the simplex node become its front (docs/DESIGN.md 6).
//!
//! ```text
//!  new server                         simplex node                 witness
//!      │ ── JoinRequest(config) ─────────> │ check config, not busy,
//!      │                                   │ simplex, fresh (no replay)
//!      │                                   │ ── Request(vip, epoch+1) ──> │
//!      │                                   │ <── Grant ────────────────── │
//!      │ <── JoinAccept(config, epoch, vip)│ JoinAccepted -> machines:
//!      │ JoinAccepted -> machines          │ log channel, heartbeats,
//!      │ (heartbeats)                      │ lease, address lan -> lo
//!      │ <── VipReleased(vip, epoch) ───── │
//!      │ front, gratuitous ARP + ping      │
//!      │ ── JoinComplete(vip, epoch) ────> │ JoinCompleted -> machines
//!   Duplex                               Duplex (simplex connections:
//!                                         Connection: close after their next reply)
//! ```
//!
//! One join at a time; a second one is refused (`Busy`). A joiner that
//! closes its connection or stays silent past the timeout after acceptance
//! is rolled back ([`Input::JoinAborted`]: the simplex node serves alone
//! again). Frames that fail authentication or replay a request already seen
//! close the connection with nothing sent (the sender cannot be trusted to
//! read a refusal). Every step is timed on the simplex node and reported as
//! the rows of the paper's Table 2 ([`JoinSteps`]), from the request to both
//! nodes duplex: with an address handed over, that is once the simplex node
//! has carried out its own steps after the last `JoinComplete` and
//! announced its front of the address ([`JoinAcceptor::on_handed_over`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;

use crate::codec::{JoinMsg, JoinRefuseReason, NodeConfig, RefuseReason};
use crate::mode::Input;
use crate::types::{Epoch, Instant, NodeId};

/// The shell's name for one JOIN connection.
pub type JoinConn = u64;

/// Default time a join may take from request to completion before it is
/// rolled back.
pub const DEFAULT_JOIN_TIMEOUT_NS: u64 = 5_000_000_000;

/// What the simplex node is, when a request arrives (from its machines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeView {
    /// Every service address is served alone (`VipMode::Simplex`).
    pub simplex: bool,
    /// The highest epoch any of its machines holds.
    pub epoch: Epoch,
}

/// The Table 2 rows of one join, nanoseconds, measured on the simplex node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JoinSteps {
    /// Request read off the connection to accept sent, less the witness
    /// round trip: decoding, queueing, checking and answering (the paper's
    /// "exchange configuration info over TCP").
    pub config_exchange_ns: u64,
    /// First witness request to the last grant (its own row).
    pub witness_ns: u64,
    /// Accept sent to the log channel and heartbeats running (the paper's
    /// "fork and initialize processes": nothing is forked here).
    pub task_startup_ns: u64,
    /// Tasks running to the address moved and confirmed on both sides: the
    /// address off the LAN interface, `VipReleased` sent, the new front's
    /// ARP, `JoinComplete` received and, for an address handed over (dual
    /// role), this node's own steps after it: the address onto loopback,
    /// fronted, off the LAN interface and announced
    /// ([`JoinAcceptor::on_handed_over`]) (the paper's "identity
    /// restoration").
    pub identity_restoration_ns: u64,
    /// Request read off the connection to both nodes duplex: the last
    /// `JoinComplete`, or the last address handed over announced.
    pub total_ns: u64,
}

/// When a message reached the node: `received` is when the shell read it
/// off the JOIN connection, `now` when the acceptor handles it (the
/// difference is the shell's decoding and queueing, part of the
/// configuration exchange in Table 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Read off the connection.
    pub received: Instant,
    /// Handled now.
    pub now: Instant,
}

impl Arrival {
    /// A message handled the instant it was read.
    pub fn at(now: Instant) -> Self {
        Arrival { received: now, now }
    }
}

/// Something worth a line in the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinEvent {
    /// A request was refused with a reply.
    Refused {
        /// Requesting node.
        node: NodeId,
        /// Why.
        reason: JoinRefuseReason,
        /// The mismatch, or what was in progress.
        detail: String,
    },
    /// A connection was closed without a reply: unauthenticated, replayed
    /// or malformed traffic.
    Rejected {
        /// Connection.
        conn: JoinConn,
        /// Why (a codec reject name, `replay`, `sender-mismatch`, ...).
        why: String,
    },
    /// The witness granted the new epoch; the join is accepted.
    Accepted {
        /// The new server.
        node: NodeId,
        /// The pair's epoch.
        epoch: Epoch,
    },
    /// Both nodes run duplex.
    Completed {
        /// The new server.
        node: NodeId,
        /// The pair's epoch.
        epoch: Epoch,
        /// Table 2.
        steps: JoinSteps,
    },
    /// An accepted join was undone (simplex node) or abandoned (new server).
    RolledBack {
        /// The other node.
        node: NodeId,
        /// Why.
        why: String,
    },
    /// The new server's request was refused.
    JoinFailed {
        /// Why.
        reason: JoinRefuseReason,
        /// Details from the simplex node.
        detail: String,
    },
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinAction {
    /// Send `msg` on connection `conn`.
    Send {
        /// Connection.
        conn: JoinConn,
        /// Message.
        msg: JoinMsg,
    },
    /// Close connection `conn` once what was sent on it is out.
    Close {
        /// Connection.
        conn: JoinConn,
    },
    /// Ask the witness for `vip` in `epoch`, for this node.
    AskWitness {
        /// Address.
        vip: Ipv4Addr,
        /// Epoch.
        epoch: Epoch,
    },
    /// Feed `input` to the machine of `vip`.
    Machine {
        /// Address.
        vip: Ipv4Addr,
        /// Input.
        input: Input,
    },
    /// Record an event.
    Event(JoinEvent),
}

/// Where the one join in progress is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Waiting for the witness to grant every address the new epoch.
    Granting {
        asked: Instant,
        pending: BTreeSet<Ipv4Addr>,
    },
    /// Accepted; the shell starts tasks and moves the addresses.
    Starting {
        witness_ns: u64,
        accepted: Instant,
        tasks: Option<Instant>,
        unreleased: BTreeSet<Ipv4Addr>,
    },
    /// Every address released; waiting for the new server's completions.
    Completing {
        witness_ns: u64,
        accepted: Instant,
        tasks: Instant,
        incomplete: BTreeSet<Ipv4Addr>,
    },
}

/// A join whose new server has completed every address, while this node
/// carries out its own steps for the addresses it handed over (dual role):
/// the join is over (a second one is refused as not simplex), but Table 2
/// ends only once they are done.
#[derive(Debug, Clone)]
struct HandingOver {
    node: NodeId,
    epoch: Epoch,
    received: Instant,
    witness_ns: u64,
    accepted: Instant,
    tasks: Instant,
    /// Handed-over addresses whose front is not announced yet.
    pending: BTreeSet<Ipv4Addr>,
}

impl HandingOver {
    /// Table 2, ending `now`.
    fn steps(&self, now: Instant) -> JoinSteps {
        JoinSteps {
            config_exchange_ns: self
                .accepted
                .since_ns(self.received)
                .saturating_sub(self.witness_ns),
            witness_ns: self.witness_ns,
            task_startup_ns: self.tasks.since_ns(self.accepted),
            identity_restoration_ns: now.since_ns(self.tasks),
            total_ns: now.since_ns(self.received),
        }
    }
}

#[derive(Debug, Clone)]
struct Session {
    conn: JoinConn,
    peer: NodeConfig,
    received: Instant,
    epoch: Epoch,
    deadline: Instant,
    phase: Phase,
    /// Addresses handed over whose front this node announced already (its
    /// hand-over can end before the new server completed the others).
    announced: BTreeSet<Ipv4Addr>,
}

/// The simplex node's side: accepts at most one new server at a time.
#[derive(Debug, Clone)]
pub struct JoinAcceptor {
    me: NodeConfig,
    timeout_ns: u64,
    /// Highest request sequence number accepted per sender, across
    /// connections (each connection has a fresh stream decoder).
    seen: BTreeMap<NodeId, u64>,
    /// Highest epoch granted for a join, so the next asks above it even if
    /// a join was abandoned before the machines saw the epoch.
    granted: Epoch,
    session: Option<Session>,
    /// The last join's hand-over, until this node's steps are done.
    handing_over: Option<HandingOver>,
    actions: VecDeque<JoinAction>,
    /// Addresses this node may hand over to a joiner that asks to be their
    /// primary (dual role; [`JoinAcceptor::may_hand_over`]).
    handable: BTreeSet<Ipv4Addr>,
}

impl JoinAcceptor {
    /// The acceptor of a node described by `me` (its `vips` are the
    /// addresses a new server must front).
    pub fn new(me: NodeConfig, timeout_ns: u64) -> Self {
        JoinAcceptor {
            me,
            timeout_ns,
            seen: BTreeMap::new(),
            granted: Epoch(0),
            session: None,
            handing_over: None,
            actions: VecDeque::new(),
            handable: BTreeSet::new(),
        }
    }

    /// Let a joiner become the primary of these addresses (those this node
    /// fronted before its peer failed, in dual role); a joiner asking for
    /// any other is refused (`ConfigMismatch`).
    pub fn may_hand_over(mut self, vips: impl IntoIterator<Item = Ipv4Addr>) -> Self {
        self.handable = vips.into_iter().collect();
        self
    }

    /// The new server of the join in progress (or just completed).
    pub fn peer(&self) -> Option<&NodeConfig> {
        self.session.as_ref().map(|s| &s.peer)
    }

    /// The connection of the join in progress.
    pub fn conn(&self) -> Option<JoinConn> {
        self.session.as_ref().map(|s| s.conn)
    }

    /// True while a join is between its request and its completion.
    pub fn in_progress(&self) -> bool {
        self.session.is_some()
    }

    fn refuse(&mut self, conn: JoinConn, node: NodeId, reason: JoinRefuseReason, detail: String) {
        self.actions.extend([
            JoinAction::Send {
                conn,
                msg: JoinMsg::JoinRefuse {
                    reason,
                    detail: detail.clone(),
                },
            },
            JoinAction::Close { conn },
            JoinAction::Event(JoinEvent::Refused {
                node,
                reason,
                detail,
            }),
        ]);
    }

    fn reject(&mut self, conn: JoinConn, why: impl Into<String>) {
        self.actions.extend([
            JoinAction::Close { conn },
            JoinAction::Event(JoinEvent::Rejected {
                conn,
                why: why.into(),
            }),
        ]);
    }

    /// A frame on `conn` failed the codec (wrong key, garbage, replay within
    /// the connection): close it, send nothing.
    pub fn on_reject(&mut self, conn: JoinConn, why: &str) {
        self.reject(conn, why);
        if self.conn() == Some(conn) {
            self.abandon("join connection sent an invalid frame");
        }
    }

    /// An authenticated message on `conn` from `sender` with sequence `seq`,
    /// handled the instant it was read.
    pub fn on_message(
        &mut self,
        now: Instant,
        conn: JoinConn,
        sender: NodeId,
        seq: u64,
        msg: JoinMsg,
        view: NodeView,
    ) {
        self.on_message_at(Arrival::at(now), conn, sender, seq, msg, view)
    }

    /// [`JoinAcceptor::on_message`] for a message read at `at.received`
    /// and handled at `at.now` (Table 2 counts from the read).
    pub fn on_message_at(
        &mut self,
        at: Arrival,
        conn: JoinConn,
        sender: NodeId,
        seq: u64,
        msg: JoinMsg,
        view: NodeView,
    ) {
        match msg {
            JoinMsg::JoinRequest(cfg) => self.on_request(at, conn, sender, seq, cfg, view),
            JoinMsg::JoinComplete { vip, epoch } => self.on_complete(at.now, conn, vip, epoch),
            other => self.reject(conn, format!("unexpected {}", msg_name(&other))),
        }
    }

    fn on_request(
        &mut self,
        at: Arrival,
        conn: JoinConn,
        sender: NodeId,
        seq: u64,
        cfg: NodeConfig,
        view: NodeView,
    ) {
        if sender != cfg.node {
            return self.reject(conn, "sender-mismatch");
        }
        if self.seen.get(&sender).is_some_and(|&last| seq <= last) {
            return self.reject(conn, "replay");
        }
        self.seen.insert(sender, seq);
        let node = cfg.node;
        if let Some(s) = &self.session {
            let detail = format!("node {} is joining", s.peer.node.0);
            return self.refuse(conn, node, JoinRefuseReason::Busy, detail);
        }
        if !view.simplex {
            let detail = "this node is not serving alone".to_string();
            return self.refuse(conn, node, JoinRefuseReason::NotSimplex, detail);
        }
        if node == self.me.node || node.0 == 0 {
            let detail = format!("node id {} is not acceptable", node.0);
            return self.refuse(conn, node, JoinRefuseReason::UnknownNode, detail);
        }
        let mut mismatches = self.me.mismatches(&cfg);
        let (mine, theirs): (BTreeSet<_>, BTreeSet<_>) =
            (self.me.vips.iter().collect(), cfg.vips.iter().collect());
        if mine != theirs {
            mismatches.insert(0, format!("vips: {:?} != {:?}", self.me.vips, cfg.vips));
        }
        let refused: Vec<_> = cfg
            .primary_for
            .iter()
            .filter(|v| !self.handable.contains(v) || !self.me.vips.contains(v))
            .collect();
        if !refused.is_empty() {
            mismatches.push(format!(
                "primary_for: this node hands over {:?}, not {refused:?}",
                self.handable
            ));
        }
        if !mismatches.is_empty() {
            let detail = mismatches.join("; ");
            return self.refuse(conn, node, JoinRefuseReason::ConfigMismatch, detail);
        }
        let epoch = view.epoch.max(self.granted).next();
        for &vip in &self.me.vips {
            self.actions
                .push_back(JoinAction::AskWitness { vip, epoch });
        }
        let now = at.now;
        self.session = Some(Session {
            conn,
            peer: cfg,
            received: at.received.min(now),
            epoch,
            deadline: now.plus_ns(self.timeout_ns),
            phase: Phase::Granting {
                asked: now,
                pending: self.me.vips.iter().copied().collect(),
            },
            announced: BTreeSet::new(),
        });
    }

    /// True if a join waits for the witness's answer about `vip` in `epoch`
    /// (the shell routes witness replies here instead of to the machines).
    pub fn awaits_grant(&self, vip: Ipv4Addr, epoch: Epoch) -> bool {
        matches!(&self.session, Some(Session { epoch: e, phase: Phase::Granting { pending, .. }, .. })
            if *e == epoch && pending.contains(&vip))
    }

    /// The witness granted `vip` in `epoch`.
    pub fn on_grant(&mut self, now: Instant, vip: Ipv4Addr, epoch: Epoch) {
        let Some(s) = &mut self.session else { return };
        let Phase::Granting { asked, pending } = &mut s.phase else {
            return;
        };
        if s.epoch != epoch || !pending.remove(&vip) {
            return;
        }
        self.granted = self.granted.max(epoch);
        if !pending.is_empty() {
            return;
        }
        let witness_ns = now.since_ns(*asked);
        s.phase = Phase::Starting {
            witness_ns,
            accepted: now,
            tasks: None,
            unreleased: self.me.vips.iter().copied().collect(),
        };
        let (conn, node) = (s.conn, s.peer.node);
        let handed = s.peer.primary_for.clone();
        for &vip in &self.me.vips {
            self.actions.push_back(JoinAction::Send {
                conn,
                msg: JoinMsg::JoinAccept {
                    config: self.me.clone(),
                    epoch,
                    vip,
                },
            });
        }
        self.actions
            .push_back(JoinAction::Event(JoinEvent::Accepted { node, epoch }));
        for &vip in &self.me.vips {
            if handed.contains(&vip) {
                self.actions.push_back(JoinAction::Machine {
                    vip,
                    input: Input::HandOverAtJoin,
                });
            }
            self.actions.push_back(JoinAction::Machine {
                vip,
                input: Input::JoinAccepted { epoch },
            });
        }
    }

    /// The witness refused `vip` in `epoch`: someone else holds the address
    /// at that epoch or above; the join is refused.
    pub fn on_grant_refused(&mut self, vip: Ipv4Addr, epoch: Epoch, reason: RefuseReason) {
        if !self.awaits_grant(vip, epoch) {
            return;
        }
        let Some(s) = self.session.take() else { return };
        let detail = format!("the witness refused {vip} epoch {}: {reason:?}", epoch.0);
        self.refuse(s.conn, s.peer.node, JoinRefuseReason::NotSimplex, detail);
    }

    /// The log channel and heartbeats toward the new server run (the shell
    /// carried out `StartLogChannel` and `StartHeartbeats`).
    pub fn on_tasks_started(&mut self, now: Instant) {
        if let Some(Session {
            phase: Phase::Starting { tasks, .. },
            ..
        }) = &mut self.session
        {
            tasks.get_or_insert(now);
        }
    }

    /// `vip` left this node's LAN interface (it is on loopback now).
    pub fn on_released(&mut self, now: Instant, vip: Ipv4Addr) {
        let Some(s) = &mut self.session else { return };
        let Phase::Starting {
            witness_ns,
            accepted,
            tasks,
            unreleased,
        } = &mut s.phase
        else {
            return;
        };
        if !unreleased.remove(&vip) {
            return;
        }
        self.actions.push_back(JoinAction::Send {
            conn: s.conn,
            msg: JoinMsg::VipReleased {
                vip,
                epoch: s.epoch,
            },
        });
        if unreleased.is_empty() {
            s.phase = Phase::Completing {
                witness_ns: *witness_ns,
                accepted: *accepted,
                tasks: tasks.unwrap_or(now),
                incomplete: self.me.vips.iter().copied().collect(),
            };
        }
    }

    fn on_complete(&mut self, now: Instant, conn: JoinConn, vip: Ipv4Addr, epoch: Epoch) {
        let Some(s) = &mut self.session else {
            return self.reject(conn, "JoinComplete without a join");
        };
        let Phase::Completing {
            witness_ns,
            accepted,
            tasks,
            incomplete,
        } = &mut s.phase
        else {
            return self.reject(conn, "JoinComplete before VipReleased");
        };
        if s.conn != conn || s.epoch != epoch || !incomplete.remove(&vip) {
            return self.reject(conn, "JoinComplete for another join");
        }
        self.actions.push_back(JoinAction::Machine {
            vip,
            input: Input::JoinCompleted,
        });
        if !incomplete.is_empty() {
            return;
        }
        let h = HandingOver {
            node: s.peer.node,
            epoch: s.epoch,
            received: s.received,
            witness_ns: *witness_ns,
            accepted: *accepted,
            tasks: *tasks,
            pending: s
                .peer
                .primary_for
                .iter()
                .copied()
                .filter(|v| self.me.vips.contains(v) && !s.announced.contains(v))
                .collect(),
        };
        self.session = None;
        if h.pending.is_empty() {
            self.complete(&h, now);
        } else {
            self.handing_over = Some(h);
        }
    }

    fn complete(&mut self, h: &HandingOver, now: Instant) {
        self.actions
            .push_back(JoinAction::Event(JoinEvent::Completed {
                node: h.node,
                epoch: h.epoch,
                steps: h.steps(now),
            }));
    }

    /// This node announced its front of `vip`, an address it handed over
    /// at the join just completed (the last of its steps there: address
    /// onto loopback, fronted, off the LAN interface, gratuitous ARP). Once
    /// every such address is, the join's Table 2 is written.
    pub fn on_handed_over(&mut self, now: Instant, vip: Ipv4Addr) {
        if let Some(s) = &mut self.session {
            // The new server has not completed every address yet.
            s.announced.insert(vip);
            return;
        }
        let Some(h) = &mut self.handing_over else {
            return;
        };
        if !h.pending.remove(&vip) || !h.pending.is_empty() {
            return;
        }
        if let Some(h) = self.handing_over.take() {
            self.complete(&h, now);
        }
    }

    /// True between the new server's last `JoinComplete` and this node's
    /// last hand-over step ([`JoinAcceptor::on_handed_over`]).
    pub fn handing_over(&self) -> bool {
        self.handing_over.is_some()
    }

    /// The heartbeat detector declared the new server failed. Once the join
    /// was accepted the heartbeats (and the refreshed lease they extend)
    /// run toward the new server, so the join is rolled back: ignored, the
    /// lease would lapse and the node fall silent. Before acceptance the
    /// detection is about the old peer, and nothing is undone.
    pub fn on_peer_failed(&mut self) {
        // A hand-over cut short by the new primary's failure never ends
        // duplex: no Table 2 for it.
        self.handing_over = None;
        if self
            .session
            .as_ref()
            .is_some_and(|s| !matches!(s.phase, Phase::Granting { .. }))
        {
            self.abandon("the new server's heartbeats stopped");
        }
    }

    /// Connection `conn` closed (EOF or error).
    pub fn on_closed(&mut self, conn: JoinConn) {
        if self.conn() == Some(conn) {
            self.abandon("the new server closed the join connection");
        }
    }

    /// Undo the join in progress: machines told `JoinAccepted` get
    /// `JoinAborted`; the connection is closed.
    fn abandon(&mut self, why: &str) {
        let Some(s) = self.session.take() else { return };
        if !matches!(s.phase, Phase::Granting { .. }) {
            for &vip in &self.me.vips {
                self.actions.push_back(JoinAction::Machine {
                    vip,
                    input: Input::JoinAborted,
                });
            }
        }
        self.actions.extend([
            JoinAction::Close { conn: s.conn },
            JoinAction::Event(JoinEvent::RolledBack {
                node: s.peer.node,
                why: why.to_string(),
            }),
        ]);
    }

    /// When [`JoinAcceptor::poll`] next has timer work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.session.as_ref().map(|s| s.deadline)
    }

    /// Advance the timeout to `now` and return the next action.
    pub fn poll(&mut self, now: Instant) -> Option<JoinAction> {
        if self.session.as_ref().is_some_and(|s| now >= s.deadline) {
            self.abandon("the join timed out");
        }
        self.actions.pop_front()
    }
}

/// Where a joiner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinerState {
    /// Request sent; waiting for the answer.
    Requested,
    /// Accepted in `epoch`; waiting for the addresses to be released.
    Accepted {
        /// The pair's epoch.
        epoch: Epoch,
    },
    /// Every address fronted: duplex.
    Joined {
        /// The pair's epoch.
        epoch: Epoch,
    },
    /// Refused, rolled back or timed out: the process should exit.
    Failed,
}

/// The new server's side of a join.
#[derive(Debug, Clone)]
pub struct Joiner {
    me: NodeConfig,
    state: JoinerState,
    deadline: Instant,
    /// The simplex node's identity, once it accepted.
    peer: Option<NodeConfig>,
    /// Addresses accepted but not yet fronted.
    pending: BTreeSet<Ipv4Addr>,
    /// Addresses released to us, waiting for our front.
    released: BTreeSet<Ipv4Addr>,
    actions: VecDeque<JoinAction>,
}

/// The one connection a joiner has.
pub const JOINER_CONN: JoinConn = 0;

impl Joiner {
    /// Start a join for a node described by `me`: the request is the first
    /// action.
    pub fn new(me: NodeConfig, now: Instant, timeout_ns: u64) -> Self {
        let actions = VecDeque::from([JoinAction::Send {
            conn: JOINER_CONN,
            msg: JoinMsg::JoinRequest(me.clone()),
        }]);
        Joiner {
            me,
            state: JoinerState::Requested,
            deadline: now.plus_ns(timeout_ns),
            peer: None,
            pending: BTreeSet::new(),
            released: BTreeSet::new(),
            actions,
        }
    }

    /// Where the join is.
    pub fn state(&self) -> JoinerState {
        self.state
    }

    /// The simplex node's configuration, once it accepted.
    pub fn peer(&self) -> Option<&NodeConfig> {
        self.peer.as_ref()
    }

    fn fail(&mut self, ev: JoinEvent) {
        if self.state == JoinerState::Failed {
            return;
        }
        if let JoinerState::Accepted { .. } = self.state {
            for &vip in &self.me.vips {
                self.actions.push_back(JoinAction::Machine {
                    vip,
                    input: Input::JoinAborted,
                });
            }
        }
        self.state = JoinerState::Failed;
        self.actions.extend([
            JoinAction::Close { conn: JOINER_CONN },
            JoinAction::Event(ev),
        ]);
    }

    fn rolled_back(&mut self, why: impl Into<String>) {
        let node = self.peer.as_ref().map_or(NodeId(0), |p| p.node);
        self.fail(JoinEvent::RolledBack {
            node,
            why: why.into(),
        });
    }

    /// An authenticated message from the simplex node (`sender`).
    pub fn on_message(&mut self, sender: NodeId, msg: JoinMsg) {
        if matches!(self.state, JoinerState::Joined { .. } | JoinerState::Failed) {
            return;
        }
        match (self.state, msg) {
            (JoinerState::Requested, JoinMsg::JoinRefuse { reason, detail }) => {
                self.fail(JoinEvent::JoinFailed { reason, detail })
            }
            (
                JoinerState::Requested | JoinerState::Accepted { .. },
                JoinMsg::JoinAccept { config, epoch, vip },
            ) => self.on_accept(sender, config, epoch, vip),
            (JoinerState::Accepted { epoch }, JoinMsg::VipReleased { vip, epoch: e })
                if e == epoch && self.pending.contains(&vip) =>
            {
                if self.released.insert(vip) {
                    self.actions.push_back(JoinAction::Machine {
                        vip,
                        input: Input::JoinCompleted,
                    });
                }
            }
            (_, other) => self.rolled_back(format!("unexpected {}", msg_name(&other))),
        }
    }

    fn on_accept(&mut self, sender: NodeId, config: NodeConfig, epoch: Epoch, vip: Ipv4Addr) {
        let mismatches = self.me.mismatches(&config);
        if sender != config.node || !self.me.vips.contains(&vip) || !mismatches.is_empty() {
            return self.rolled_back(format!(
                "accept does not match this node: sender {} vip {vip} {}",
                sender.0,
                mismatches.join("; ")
            ));
        }
        if let JoinerState::Accepted { epoch: e } = self.state {
            if e != epoch {
                return self.rolled_back("accepts in two epochs");
            }
        }
        self.state = JoinerState::Accepted { epoch };
        self.peer = Some(config);
        if self.pending.insert(vip) {
            self.actions.push_back(JoinAction::Machine {
                vip,
                input: Input::JoinAccepted { epoch },
            });
        }
    }

    /// The shell did this node's part of the join for `vip`
    /// ([`crate::Action::JoinReady`]: fronting and announced, or, for an
    /// address this node will be primary for, serving it from loopback).
    pub fn on_ready(&mut self, vip: Ipv4Addr) {
        let JoinerState::Accepted { epoch } = self.state else {
            return;
        };
        if !self.released.contains(&vip) || !self.pending.remove(&vip) {
            return;
        }
        self.actions.push_back(JoinAction::Send {
            conn: JOINER_CONN,
            msg: JoinMsg::JoinComplete { vip, epoch },
        });
        if self.pending.is_empty() && self.released.len() == self.me.vips.len() {
            self.state = JoinerState::Joined { epoch };
        }
    }

    /// The heartbeat detector declared the simplex node failed before the
    /// join completed: the join is rolled back (the node stops).
    pub fn on_peer_failed(&mut self) {
        if let JoinerState::Accepted { .. } = self.state {
            self.rolled_back("the simplex node's heartbeats stopped");
        }
    }

    /// The connection closed or failed authentication.
    pub fn on_closed(&mut self, why: &str) {
        if !matches!(self.state, JoinerState::Joined { .. }) {
            self.rolled_back(why.to_string());
        }
    }

    /// When [`Joiner::poll`] next has timer work.
    pub fn next_deadline(&self) -> Option<Instant> {
        matches!(
            self.state,
            JoinerState::Requested | JoinerState::Accepted { .. }
        )
        .then_some(self.deadline)
    }

    /// Advance the timeout to `now` and return the next action.
    pub fn poll(&mut self, now: Instant) -> Option<JoinAction> {
        if self.next_deadline().is_some_and(|d| now >= d) {
            self.rolled_back("the join timed out");
        }
        self.actions.pop_front()
    }
}

fn msg_name(m: &JoinMsg) -> &'static str {
    match m {
        JoinMsg::JoinRequest(_) => "JoinRequest",
        JoinMsg::JoinAccept { .. } => "JoinAccept",
        JoinMsg::JoinRefuse { .. } => "JoinRefuse",
        JoinMsg::VipReleased { .. } => "VipReleased",
        JoinMsg::JoinComplete { .. } => "JoinComplete",
    }
}

#[cfg(test)]
mod tests;
