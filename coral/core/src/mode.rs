//! The mode machine per service address (VIP) and the per-connection mode
//! (docs/DESIGN.md sections 4-6), sans-IO.
//!
//! Each node runs one [`VipMachine`] per service address it has a role for.
//! Inputs ([`Input`]) come from the detector, the witness client, peer
//! heartbeats and the join protocol; outputs are [`Action`]s the shells carry
//! out in the order given. Timers (witness retries, the takeover wait) fire
//! in [`VipMachine::poll`]; [`VipMachine::next_deadline`] says when.
//!
//! ```text
//!            PeerFailed (Backup)                      GrantReceived        voice_at
//!  Duplex ───────────────────────> WaitingForGrant ──────────────> TakingOver ────> Simplex
//!    │ │     PeerFailed (Primary)   │   │ GrantReceived (primary)                     │  ^
//!    │ └───────────────────────────>┘   └────────────────────────────────────────────>┘  │
//!    │   GrantRefused / EpochSeen(higher) from any serving mode                         │  │JoinCompleted
//!    └──────────────────────> Fenced (terminal; rejoin as a new server)     JoinAccepted │  │
//!                                                                                       v  │
//!  Joining (new server) ── JoinAccepted, JoinCompleted ──> Duplex     Joining (simplex node;
//!                                          JoinAborted: WaitingForGrant, then Simplex as GoSimplex)
//! ```
//!
//! ## The kernel-enforced lease and the takeover wait
//!
//! A node that serves connections may send from a service address only while
//! its nft lease element exists. The lease is anchored at an echo (see
//! [`crate::HeartbeatLink`]): every heartbeat carries the sequence number of
//! the last fresh heartbeat its sender received, and the node receiving it
//! extends its lease to its own send time of that echoed heartbeat plus
//! [`Timing::lease_timeout_ns`] = K x H - margin (at least 8 ms: nft counts
//! timeouts in 4 ms jiffies). The peer received the echoed heartbeat at or
//! before the last fresh heartbeat it heard (`last_heard`), so the lease
//! ends before `last_heard + lease + margin` whatever later or stale
//! heartbeats arrive. The new owner therefore gets its voice (permanent
//! lease, address added, logged replies written) at
//!
//! `voice_at = last_heard + max(K x H, lease + margin)`
//!
//! ([`Timing::takeover_wait_ns`]), which is the detection itself whenever
//! K x H >= 8 ms + margin. The argument in full: docs/DESIGN.md section 4.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use crate::codec::{ModeTag, RefuseReason, VipStatus};
use crate::detector::{DetectorConfig, DetectorConfigError};
use crate::types::{Epoch, Instant, NodeId};

/// Shortest lease the kernel enforces reliably (two 4 ms jiffies).
pub const MIN_LEASE_NS: u64 = 8_000_000;

/// Timing shared by the detector, the lease and the mode machine: the one
/// home of H, K and the lease margin (everything else is derived here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Heartbeat interval H and misses K, as the detector takes them.
    pub detector: DetectorConfig,
    /// Extra wait beyond the peer's lease, nanoseconds (jiffy truncation,
    /// heartbeat transit, scheduling).
    pub margin_ns: u64,
    /// How often to repeat an unanswered witness request, nanoseconds.
    pub witness_retry_ns: u64,
}

impl Timing {
    /// H (ns) and K with a 4 ms margin and a witness retry of max(H, 10 ms).
    /// Unchecked: use [`Timing::from_ms`] for configured values.
    pub fn new(heartbeat_ns: u64, misses: u32) -> Self {
        Timing {
            detector: DetectorConfig {
                interval_ns: heartbeat_ns,
                misses,
            },
            margin_ns: 4_000_000,
            witness_retry_ns: heartbeat_ns.max(10_000_000),
        }
    }

    /// H in milliseconds (as configured) and K, checked.
    pub fn from_ms(heartbeat_ms: u64, misses: u32) -> Result<Self, DetectorConfigError> {
        let d = DetectorConfig::new(heartbeat_ms.saturating_mul(1_000_000), misses)?;
        Ok(Timing::new(d.interval_ns, d.misses))
    }

    /// Heartbeat interval H, nanoseconds.
    pub fn heartbeat_ns(&self) -> u64 {
        self.detector.interval_ns
    }

    /// Misses K that declare the peer failed.
    pub fn misses(&self) -> u32 {
        self.detector.misses
    }

    /// K x H (saturating), as the detector counts it.
    pub fn failure_timeout_ns(&self) -> u64 {
        self.detector.failure_timeout_ns()
    }

    /// Lease length past the send time of the echoed heartbeat (module
    /// docs): K x H - margin, raised to [`MIN_LEASE_NS`].
    pub fn lease_timeout_ns(&self) -> u64 {
        self.failure_timeout_ns()
            .saturating_sub(self.margin_ns)
            .max(MIN_LEASE_NS)
    }

    /// The lease timeout in whole milliseconds for nft, rounded up.
    pub fn lease_timeout_ms(&self) -> u64 {
        self.lease_timeout_ns().div_ceil(1_000_000)
    }

    /// max(K x H, lease + margin): the takeover wait counted from the last
    /// fresh heartbeat heard.
    pub fn takeover_wait_ns(&self) -> u64 {
        self.failure_timeout_ns()
            .max(self.lease_timeout_ns().saturating_add(self.margin_ns))
    }

    /// When the node taking over may speak for the address (module docs).
    pub fn voice_at(&self, last_heard: Instant) -> Instant {
        last_heard.plus_ns(self.takeover_wait_ns())
    }
}

/// This node's role for one service address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Serves the connections on ordinary kernel TCP; the peer fronts.
    Primary,
    /// Fronts the address (packet engine), shadows and logs; no kernel
    /// sockets for its connections until takeover.
    Backup,
    /// Both: the address is on this node's LAN interface and it serves alone.
    Sole,
}

/// Why a node waits for the witness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantPurpose {
    /// The backup takes over the failed primary's connections.
    Takeover,
    /// The primary goes simplex after its backup failed.
    GoSimplex,
}

/// Why a node fenced itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FenceReason {
    /// The witness refused this node's request.
    GrantRefused(RefuseReason),
    /// Another node holds a higher epoch for the address.
    HigherEpoch(Epoch),
}

/// The mode of one service address on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VipMode {
    /// Both nodes up; replies logged before they are written.
    Duplex,
    /// Peer declared failed; asked the witness for `requested`.
    WaitingForGrant {
        /// What the grant is for.
        purpose: GrantPurpose,
        /// Epoch asked for.
        requested: Epoch,
        /// Last fresh heartbeat from the peer.
        last_heard: Instant,
        /// When to repeat the request.
        next_retry: Instant,
    },
    /// Granted; repaired sockets being built; silent until `voice_at`.
    TakingOver {
        /// When the old owner's lease has surely lapsed.
        voice_at: Instant,
    },
    /// Serving alone.
    Simplex,
    /// Deposed: connections dropped, address removed. Terminal.
    Fenced {
        /// Why.
        reason: FenceReason,
    },
    /// Reintegrating: a new server waiting to take its role, or the simplex
    /// node handing the address's front over to it.
    Joining,
}

impl VipMode {
    /// The tag reported in heartbeats.
    pub fn tag(&self) -> ModeTag {
        match self {
            VipMode::Duplex => ModeTag::Duplex,
            VipMode::WaitingForGrant { .. } => ModeTag::WaitingForGrant,
            VipMode::TakingOver { .. } => ModeTag::TakingOver,
            VipMode::Simplex => ModeTag::Simplex,
            VipMode::Fenced { .. } => ModeTag::Fenced,
            VipMode::Joining => ModeTag::Joining,
        }
    }
}

/// Inputs to a [`VipMachine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The detector declared the peer failed.
    PeerFailed {
        /// Last fresh heartbeat from the peer (`DetectorEvent::PeerFailed`).
        last_heard: Instant,
    },
    /// The witness granted this node the address for `epoch`.
    GrantReceived {
        /// Granted epoch.
        epoch: Epoch,
    },
    /// The witness refused this node's request for `epoch`.
    GrantRefused {
        /// The epoch that was requested.
        epoch: Epoch,
        /// Why.
        reason: RefuseReason,
    },
    /// Some authenticated message (peer heartbeat `VipStatus`, witness reply)
    /// showed this epoch for the address.
    EpochSeen {
        /// The epoch seen.
        epoch: Epoch,
    },
    /// Join accepted (on the simplex node: it accepted a new server; on the
    /// new server: its request was accepted). Both run in `epoch` from now.
    JoinAccepted {
        /// The pair's epoch.
        epoch: Epoch,
    },
    /// Join finished (on the new server: the simplex node released the
    /// address; on the simplex node: the new server fronts it).
    JoinCompleted,
    /// The join was abandoned after acceptance (the new server died, closed
    /// the join connection or timed out): the simplex node serves alone
    /// again, the new server stops.
    JoinAborted,
    /// The join about to be accepted hands this address's primary role to
    /// the new server (it asked for it, and this node may hand it over):
    /// given just before [`Input::JoinAccepted`]; a simplex node only.
    HandOverAtJoin,
    /// The connections this node kept at a hand-over
    /// ([`Action::KeepSimplexFlows`]) have all ended: its lease for the
    /// address goes.
    SimplexFlowsEnded,
}

/// Where a service address is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Iface {
    /// The LAN interface: the kernel answers ARP for it.
    Lan,
    /// Loopback, with `arp_ignore=1`, `arp_announce=2` (primary in duplex).
    Loopback,
}

/// The nft lease element for an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lease {
    /// Refreshed on every authenticated heartbeat with this timeout (ms).
    Refreshed {
        /// Timeout, milliseconds ([`Timing::lease_timeout_ms`]).
        timeout_ms: u64,
    },
    /// No timeout: a witness grant made this node the only voice.
    Permanent,
}

/// What the shells must do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Atomically: stop forwarding the address's frames (keep the packet
    /// socket open), snapshot the shadow state, and stop acknowledging log
    /// messages (from then on the old primary cannot write a byte).
    SnapshotAndStopAckingLog {
        /// Address.
        vip: Ipv4Addr,
    },
    /// Stop sending heartbeats to the peer (lets the peer's lease lapse).
    StopHeartbeats,
    /// Start (or resume) heartbeats to the peer.
    StartHeartbeats,
    /// Send (or resend) a grant request to the witness.
    AskWitness {
        /// Address.
        vip: Ipv4Addr,
        /// Requesting node (this one).
        node: NodeId,
        /// Requested epoch.
        epoch: Epoch,
    },
    /// Build a `TCP_REPAIR` socket for every snapshotted connection of the
    /// address (its output is still dropped by nft: no lease yet).
    BuildRepairedSockets {
        /// Address.
        vip: Ipv4Addr,
    },
    /// Set the nft lease element for the address.
    SetLease {
        /// Address.
        vip: Ipv4Addr,
        /// Lease kind.
        lease: Lease,
    },
    /// Add the address on an interface (for the LAN: also fill in the
    /// neighbour entries already known).
    AddVip {
        /// Address.
        vip: Ipv4Addr,
        /// Interface.
        iface: Iface,
    },
    /// Remove the address from an interface.
    RemoveVip {
        /// Address.
        vip: Ipv4Addr,
        /// Interface.
        iface: Iface,
    },
    /// Re-read the capture socket and inject client data that arrived after
    /// the snapshot into the local stack.
    InjectLateFrames {
        /// Address.
        vip: Ipv4Addr,
    },
    /// Write the logged but unacknowledged reply bytes on the repaired
    /// sockets, then hand them to the HTTP server.
    FlushLoggedReplies {
        /// Address.
        vip: Ipv4Addr,
    },
    /// Gratuitous ARP for the address, confirmed with a ping from it to the
    /// outside host (resend until answered).
    SendGratuitousArp {
        /// Address.
        vip: Ipv4Addr,
    },
    /// Stop waiting for log acknowledgements: release every writer blocked on
    /// one at once; new connections of the address are simplex.
    GoSimplex {
        /// Address.
        vip: Ipv4Addr,
    },
    /// Deposed: drop every connection of the address silently (`TCP_REPAIR`
    /// on, close), stop fronting it and acknowledging log messages, remove it
    /// from every interface and remove its lease element.
    Fence {
        /// Address.
        vip: Ipv4Addr,
    },
    /// Open the log channel to the peer (primary side).
    StartLogChannel,
    /// Close the log channel opened for a join that was abandoned.
    StopLogChannel,
    /// Start fronting the address: the packet engine answers ARP for it,
    /// shadows and forwards its frames to the primary.
    StartFronting {
        /// Address.
        vip: Ipv4Addr,
    },
    /// Connections opened in simplex stay simplex: end each after its next
    /// response with `Connection: close`.
    CloseSimplexConnectionsAfterNextResponse {
        /// Address.
        vip: Ipv4Addr,
    },
    /// Simplex node handing the address's primary role to the new server:
    /// offer it now (`VipReleased`); this node serves the address alone
    /// until the new server answers that it is ready.
    OfferPrimary {
        /// Address.
        vip: Ipv4Addr,
    },
    /// Simplex node handing the address over: the connections of the
    /// address open now stay on this node to their end. The front passes
    /// every frame of a flow with a local socket to the local stack,
    /// unrecorded (everything else it records and forwards to the new
    /// primary); their replies leave under this node's lease.
    KeepSimplexFlows {
        /// Address.
        vip: Ipv4Addr,
    },
    /// The connections kept at a hand-over ([`Action::KeepSimplexFlows`])
    /// have all ended: this node, the address's backup now, holds no lease
    /// element for it any more (remove it), and its front stops passing
    /// local flows to the stack.
    EndKeptFlows {
        /// Address.
        vip: Ipv4Addr,
    },
    /// New server: its part of the join for the address is done (fronting
    /// and announced, or ready to serve as primary): tell the simplex node
    /// (`JoinComplete`).
    JoinReady {
        /// Address.
        vip: Ipv4Addr,
    },
    /// The mode changed (for the event log; no work).
    ModeChanged {
        /// Address.
        vip: Ipv4Addr,
        /// Old mode.
        from: ModeTag,
        /// New mode.
        to: ModeTag,
    },
}

impl Action {
    /// The service address the action is about (`None` for the node-wide
    /// ones: heartbeats and the log channel).
    pub fn vip(&self) -> Option<Ipv4Addr> {
        match *self {
            Action::SnapshotAndStopAckingLog { vip }
            | Action::AskWitness { vip, .. }
            | Action::BuildRepairedSockets { vip }
            | Action::SetLease { vip, .. }
            | Action::AddVip { vip, .. }
            | Action::RemoveVip { vip, .. }
            | Action::InjectLateFrames { vip }
            | Action::FlushLoggedReplies { vip }
            | Action::SendGratuitousArp { vip }
            | Action::GoSimplex { vip }
            | Action::Fence { vip }
            | Action::StartFronting { vip }
            | Action::CloseSimplexConnectionsAfterNextResponse { vip }
            | Action::OfferPrimary { vip }
            | Action::KeepSimplexFlows { vip }
            | Action::EndKeptFlows { vip }
            | Action::JoinReady { vip }
            | Action::ModeChanged { vip, .. } => Some(vip),
            Action::StopHeartbeats
            | Action::StartHeartbeats
            | Action::StartLogChannel
            | Action::StopLogChannel => None,
        }
    }
}

/// The mode of one client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnMode {
    /// Shadowed and logged: survives the primary's failure.
    Duplex,
    /// Served by a lone node: not protected.
    Simplex,
    /// Opened in simplex, now paired again: close after the next response.
    CloseAfterNextResponse,
}

impl ConnMode {
    /// After the node went simplex (grant received).
    pub fn on_go_simplex(self) -> ConnMode {
        match self {
            ConnMode::Duplex => ConnMode::Simplex,
            m => m,
        }
    }

    /// After a join completed: simplex connections are ended after their
    /// next response; duplex ones are unaffected.
    pub fn on_join(self) -> ConnMode {
        match self {
            ConnMode::Simplex => ConnMode::CloseAfterNextResponse,
            m => m,
        }
    }
}

/// The mode machine of one service address on one node.
#[derive(Debug, Clone)]
pub struct VipMachine {
    vip: Ipv4Addr,
    node: NodeId,
    role: Role,
    mode: VipMode,
    epoch: Epoch,
    timing: Timing,
    actions: VecDeque<Action>,
    /// Role to take when a join completes (for a joining node).
    join_role: Role,
    /// In `Joining`: the join was accepted.
    join_accepted: bool,
    /// A witness arbitrates takeovers (see [`VipMachine::without_witness`]).
    arbitrated: bool,
    /// Primary gone simplex: when to claim the address on the LAN (the
    /// backup's front answers ARP under its own lease until then).
    claim_at: Option<Instant>,
    /// Serving alone: at a join, hand the primary role to the new server
    /// and become the address's front (dual role; [`VipMachine::hand_over_at_join`]).
    hand_over: bool,
    /// A backup still serving the connections it kept at a hand-over.
    kept_flows: bool,
}

impl VipMachine {
    /// A machine in duplex mode with `role` in `epoch`.
    pub fn duplex(vip: Ipv4Addr, node: NodeId, role: Role, epoch: Epoch, timing: Timing) -> Self {
        VipMachine {
            vip,
            node,
            role,
            mode: VipMode::Duplex,
            epoch,
            timing,
            actions: VecDeque::new(),
            join_role: role,
            join_accepted: false,
            arbitrated: true,
            claim_at: None,
            hand_over: false,
            kept_flows: false,
        }
    }

    /// A machine for a node serving the address alone (e.g. started without
    /// a peer) in `epoch`.
    pub fn simplex(vip: Ipv4Addr, node: NodeId, epoch: Epoch, timing: Timing) -> Self {
        VipMachine {
            vip,
            node,
            role: Role::Sole,
            mode: VipMode::Simplex,
            epoch,
            timing,
            actions: VecDeque::new(),
            join_role: Role::Primary,
            join_accepted: false,
            arbitrated: true,
            claim_at: None,
            hand_over: false,
            kept_flows: false,
        }
    }

    /// A machine for a new server joining a simplex node; it will take
    /// `role` (normally [`Role::Backup`]: it fronts the address).
    pub fn joining(vip: Ipv4Addr, node: NodeId, role: Role, timing: Timing) -> Self {
        VipMachine {
            vip,
            node,
            role,
            mode: VipMode::Joining,
            epoch: Epoch(0),
            timing,
            actions: VecDeque::new(),
            join_role: role,
            join_accepted: false,
            arbitrated: true,
            claim_at: None,
            hand_over: false,
            kept_flows: false,
        }
    }

    /// The same machine for a node with no witness: the node answers every
    /// [`Action::AskWitness`] with an immediate [`Input::GrantReceived`],
    /// and since nobody arbitrates, heartbeats are not stopped, the peer's
    /// lease is not waited for (the grant speaks at once) and a peer's epoch
    /// proves nothing. Unsafe under partitions (two voices); kept for runs
    /// without a third machine.
    pub fn without_witness(mut self) -> Self {
        self.arbitrated = false;
        self
    }

    /// At the next accepted join, hand this address's primary role to the
    /// new server and become its front (the dual-role move of one address;
    /// docs/DESIGN.md 6), instead of staying its primary. The join
    /// protocol sets it per join ([`Input::HandOverAtJoin`]).
    pub fn hand_over_at_join(&mut self, yes: bool) {
        self.hand_over = yes;
    }

    /// The service address.
    pub fn vip(&self) -> Ipv4Addr {
        self.vip
    }

    /// Current mode.
    pub fn mode(&self) -> &VipMode {
        &self.mode
    }

    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The epoch this node holds for the address.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The timing.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// The lease this node must hold for the address now: `Refreshed` means
    /// refresh the nft element on every fresh authenticated heartbeat;
    /// `Permanent` means never refresh it (a timed refresh would end the
    /// permanence); `None` means the address must have no lease element.
    pub fn lease(&self) -> Option<Lease> {
        let refreshed = Lease::Refreshed {
            timeout_ms: self.timing.lease_timeout_ms(),
        };
        match (self.mode, self.role) {
            (VipMode::Simplex, _) => Some(Lease::Permanent),
            (VipMode::Duplex | VipMode::WaitingForGrant { .. }, Role::Primary) => Some(refreshed),
            // A rolled-back join: the lease of the join, no longer extended.
            (VipMode::WaitingForGrant { .. }, Role::Sole) => Some(refreshed),
            // Accepted: the joiner that will be primary, and the simplex
            // node (lapses with the new server's heartbeats, also while it
            // hands the address over).
            (VipMode::Joining, role)
                if self.join_accepted
                    && (self.join_role == Role::Primary || role == Role::Sole) =>
            {
                Some(refreshed)
            }
            (VipMode::Duplex, Role::Backup) if self.kept_flows => Some(refreshed),
            _ => None,
        }
    }

    /// This address's entry for the node's heartbeats.
    pub fn status(&self) -> VipStatus {
        VipStatus {
            vip: self.vip,
            epoch: self.epoch,
            mode: self.mode.tag(),
        }
    }

    /// The mode a connection accepted now gets, or `None` if this node does
    /// not serve new connections of the address in its current mode.
    pub fn new_connection_mode(&self) -> Option<ConnMode> {
        match (self.mode, self.role) {
            (VipMode::Duplex | VipMode::WaitingForGrant { .. }, Role::Primary | Role::Backup) => {
                Some(ConnMode::Duplex)
            }
            (VipMode::Simplex, _)
            | (VipMode::Joining | VipMode::WaitingForGrant { .. }, Role::Sole) => {
                Some(ConnMode::Simplex)
            }
            _ => None,
        }
    }

    fn set_mode(&mut self, mode: VipMode) {
        let (from, to) = (self.mode.tag(), mode.tag());
        self.mode = mode;
        if from != to {
            self.actions.push_back(Action::ModeChanged {
                vip: self.vip,
                from,
                to,
            });
        }
    }

    fn fence(&mut self, reason: FenceReason) {
        self.claim_at = None;
        self.actions.push_back(Action::Fence { vip: self.vip });
        self.actions.push_back(Action::StopHeartbeats);
        self.set_mode(VipMode::Fenced { reason });
    }

    /// Feed one input at `now`; actions are queued for [`VipMachine::poll`].
    /// A fenced machine ignores every input; otherwise each input has its
    /// own step below, which ignores it in a mode where it means nothing.
    pub fn handle(&mut self, now: Instant, input: Input) {
        if let VipMode::Fenced { .. } = self.mode {
            return;
        }
        match input {
            Input::PeerFailed { last_heard } => self.on_peer_failed(now, last_heard),
            Input::GrantReceived { epoch } => self.on_grant(now, epoch),
            Input::GrantRefused { epoch, reason } => {
                if let VipMode::WaitingForGrant { requested, .. } = self.mode {
                    if epoch == requested {
                        self.fence(FenceReason::GrantRefused(reason));
                    }
                }
            }
            Input::EpochSeen { epoch } => self.on_epoch_seen(epoch),
            Input::JoinAccepted { epoch } => match self.mode {
                VipMode::Simplex => self.accept_join(epoch),
                VipMode::Joining => self.on_join_accepted(epoch),
                _ => {}
            },
            Input::JoinCompleted => self.on_join_completed(),
            Input::JoinAborted => self.on_join_aborted(now),
            Input::SimplexFlowsEnded => {
                if self.kept_flows {
                    self.kept_flows = false;
                    self.actions
                        .push_back(Action::EndKeptFlows { vip: self.vip });
                }
            }
            Input::HandOverAtJoin => {
                if self.mode == VipMode::Simplex {
                    self.hand_over = true;
                }
            }
        }
    }

    /// The peer failed, seen in duplex: the backup stops acking the log
    /// and snapshots, either role asks the witness for the next epoch.
    fn on_peer_failed(&mut self, now: Instant, last_heard: Instant) {
        if self.mode != VipMode::Duplex {
            return;
        }
        let vip = self.vip;
        // Kept connections still open now are the takeover's: their end
        // must not take away the lease this node is about to claim.
        self.kept_flows = false;
        let purpose = match self.role {
            Role::Backup => {
                self.actions
                    .push_back(Action::SnapshotAndStopAckingLog { vip });
                GrantPurpose::Takeover
            }
            Role::Primary => GrantPurpose::GoSimplex,
            Role::Sole => return,
        };
        let requested = self.epoch.next();
        if self.arbitrated {
            self.actions.push_back(Action::StopHeartbeats);
        }
        self.actions.push_back(Action::AskWitness {
            vip,
            node: self.node,
            epoch: requested,
        });
        let next_retry = now.plus_ns(self.timing.witness_retry_ns);
        self.set_mode(VipMode::WaitingForGrant {
            purpose,
            requested,
            last_heard,
            next_retry,
        });
    }

    /// The epoch we asked for was granted: take over, or go simplex.
    fn on_grant(&mut self, now: Instant, epoch: Epoch) {
        let VipMode::WaitingForGrant {
            purpose,
            requested,
            last_heard,
            ..
        } = self.mode
        else {
            return;
        };
        if epoch != requested {
            return;
        }
        let vip = self.vip;
        self.epoch = epoch;
        let voice_at = if self.arbitrated {
            self.timing.voice_at(last_heard)
        } else {
            now
        };
        match purpose {
            GrantPurpose::Takeover => {
                self.actions.push_back(Action::BuildRepairedSockets { vip });
                self.set_mode(VipMode::TakingOver { voice_at });
            }
            // Writers are released at once; the address moves to the LAN
            // only at `voice_at`, when the backup front's ARP lease
            // (extended by our heartbeats, stopped at our detection) has
            // surely lapsed.
            GrantPurpose::GoSimplex => {
                self.actions.extend([
                    Action::SetLease {
                        vip,
                        lease: Lease::Permanent,
                    },
                    Action::GoSimplex { vip },
                ]);
                // A hand-over rolled back before it completed never took
                // the address off the LAN: nothing to claim.
                let handed = self.role == Role::Sole && self.join_role == Role::Backup;
                self.role = Role::Sole;
                self.set_mode(VipMode::Simplex);
                if !handed {
                    self.claim_at = Some(voice_at);
                }
            }
        }
        self.poll_timers(now);
    }

    /// A peer's heartbeat names `epoch`: any epoch above ours (including
    /// the one we asked for) was granted to someone else, so we lost.
    fn on_epoch_seen(&mut self, epoch: Epoch) {
        let contested = matches!(
            self.mode,
            VipMode::Duplex
                | VipMode::WaitingForGrant { .. }
                | VipMode::TakingOver { .. }
                | VipMode::Simplex
        );
        if contested && epoch > self.epoch && self.arbitrated {
            self.fence(FenceReason::HigherEpoch(epoch));
        }
    }

    /// The simplex node accepts a new server that will front the address:
    /// log channel and heartbeats toward it, a refreshed lease, and the
    /// address from the LAN to loopback.
    fn accept_join(&mut self, epoch: Epoch) {
        let vip = self.vip;
        self.epoch = self.epoch.max(epoch);
        if self.hand_over {
            // Still serving alone, under a lease the new server's
            // heartbeats extend; the role is offered at once.
            self.actions.extend([
                Action::StartHeartbeats,
                Action::SetLease {
                    vip,
                    lease: Lease::Refreshed {
                        timeout_ms: self.timing.lease_timeout_ms(),
                    },
                },
                Action::OfferPrimary { vip },
            ]);
            self.join_role = Role::Backup;
            self.join_accepted = true;
            self.set_mode(VipMode::Joining);
            return;
        }
        self.actions.extend([
            Action::StartLogChannel,
            Action::StartHeartbeats,
            Action::SetLease {
                vip,
                lease: Lease::Refreshed {
                    timeout_ms: self.timing.lease_timeout_ms(),
                },
            },
            Action::AddVip {
                vip,
                iface: Iface::Loopback,
            },
            Action::RemoveVip {
                vip,
                iface: Iface::Lan,
            },
        ]);
        self.join_role = Role::Primary;
        self.join_accepted = true;
        self.set_mode(VipMode::Joining);
    }

    /// New server: its join was accepted (once): heartbeats, and for a
    /// joiner that will be primary its log channel, lease and address.
    fn on_join_accepted(&mut self, epoch: Epoch) {
        if self.role == Role::Sole || self.join_accepted {
            return;
        }
        let vip = self.vip;
        self.epoch = epoch;
        self.join_accepted = true;
        self.actions.push_back(Action::StartHeartbeats);
        if self.join_role == Role::Primary {
            self.actions.extend([
                Action::StartLogChannel,
                Action::SetLease {
                    vip,
                    lease: Lease::Refreshed {
                        timeout_ms: self.timing.lease_timeout_ms(),
                    },
                },
                Action::AddVip {
                    vip,
                    iface: Iface::Loopback,
                },
            ]);
        }
    }

    /// An accepted join completed: duplex again, the simplex node closing
    /// the connections it served alone, the new backup fronting.
    fn on_join_completed(&mut self) {
        if self.mode != VipMode::Joining || !self.join_accepted {
            return;
        }
        let vip = self.vip;
        self.join_accepted = false;
        match (self.role, self.join_role) {
            // Handing over: the new primary is ready. Open connections stay
            // here (frames to the local stack, replies under the lease);
            // the kernel keeps the address on loopback only; the front
            // answers ARP and forwards everything else.
            (Role::Sole, Role::Backup) => {
                self.actions.extend([
                    Action::KeepSimplexFlows { vip },
                    Action::AddVip {
                        vip,
                        iface: Iface::Loopback,
                    },
                    Action::StartFronting { vip },
                    Action::RemoveVip {
                        vip,
                        iface: Iface::Lan,
                    },
                    Action::SendGratuitousArp { vip },
                    Action::CloseSimplexConnectionsAfterNextResponse { vip },
                ]);
                self.role = Role::Backup;
                self.kept_flows = true;
            }
            (Role::Sole, _) => {
                self.actions
                    .push_back(Action::CloseSimplexConnectionsAfterNextResponse { vip });
                self.role = Role::Primary;
            }
            (_, Role::Backup) => {
                self.actions.extend([
                    Action::StartFronting { vip },
                    Action::SendGratuitousArp { vip },
                    Action::JoinReady { vip },
                ]);
            }
            _ => self.actions.push_back(Action::JoinReady { vip }),
        }
        self.set_mode(VipMode::Duplex);
    }

    /// An accepted join was rolled back: its heartbeats and log channel
    /// stop; the simplex node asks for the address again.
    fn on_join_aborted(&mut self, now: Instant) {
        if self.mode != VipMode::Joining || !self.join_accepted {
            return;
        }
        self.join_accepted = false;
        // The next join decides again whether it takes the address over.
        self.hand_over = false;
        self.actions
            .extend([Action::StopHeartbeats, Action::StopLogChannel]);
        if self.role != Role::Sole {
            return;
        }
        // Back to serving alone through the witness, as a primary whose
        // backup failed: the new server may be duplex already (its
        // JoinComplete in flight) and be granted the next epoch on its own
        // detection, so the address is taken back only with a grant
        // (refused: fenced), and returns to the LAN only once the new
        // front's ARP lease, extended by the heartbeats stopped now, has
        // surely lapsed.
        let requested = self.epoch.next();
        self.actions.push_back(Action::AskWitness {
            vip: self.vip,
            node: self.node,
            epoch: requested,
        });
        self.set_mode(VipMode::WaitingForGrant {
            purpose: GrantPurpose::GoSimplex,
            requested,
            last_heard: now,
            next_retry: now.plus_ns(self.timing.witness_retry_ns),
        });
    }

    fn poll_timers(&mut self, now: Instant) {
        let vip = self.vip;
        if self.claim_at.is_some_and(|at| now >= at) {
            self.claim_at = None;
            self.actions.extend([
                Action::AddVip {
                    vip,
                    iface: Iface::Lan,
                },
                Action::RemoveVip {
                    vip,
                    iface: Iface::Loopback,
                },
                Action::SendGratuitousArp { vip },
            ]);
        }
        match self.mode {
            VipMode::WaitingForGrant {
                purpose,
                requested,
                last_heard,
                next_retry,
            } if now >= next_retry => {
                self.actions.push_back(Action::AskWitness {
                    vip,
                    node: self.node,
                    epoch: requested,
                });
                let next_retry = now.plus_ns(self.timing.witness_retry_ns);
                self.mode = VipMode::WaitingForGrant {
                    purpose,
                    requested,
                    last_heard,
                    next_retry,
                };
            }
            VipMode::TakingOver { voice_at } if now >= voice_at => {
                self.actions.extend([
                    Action::SetLease {
                        vip,
                        lease: Lease::Permanent,
                    },
                    Action::AddVip {
                        vip,
                        iface: Iface::Lan,
                    },
                    Action::InjectLateFrames { vip },
                    Action::FlushLoggedReplies { vip },
                    Action::SendGratuitousArp { vip },
                ]);
                self.role = Role::Sole;
                self.set_mode(VipMode::Simplex);
            }
            _ => {}
        }
    }

    /// Advance timers to `now` and return the next action, if any.
    pub fn poll(&mut self, now: Instant) -> Option<Action> {
        self.poll_timers(now);
        self.actions.pop_front()
    }

    /// When [`VipMachine::poll`] next has timer work (witness retry, the
    /// end of the takeover wait, or a simplex primary's claim of the
    /// address). The driver arms one timer for it; nothing sleeps.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.mode {
            VipMode::WaitingForGrant { next_retry, .. } => Some(next_retry),
            VipMode::TakingOver { voice_at } => Some(voice_at),
            VipMode::Simplex => self.claim_at,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

    fn t(ms: u64) -> Instant {
        Instant(ms * MS)
    }

    fn drain(m: &mut VipMachine, now: Instant) -> Vec<Action> {
        std::iter::from_fn(|| m.poll(now))
            .filter(|a| !matches!(a, Action::ModeChanged { .. }))
            .collect()
    }

    fn timing() -> Timing {
        Timing::new(10 * MS, 3)
    }

    #[test]
    fn lease_arithmetic() {
        // The lease is K x H less the margin: it ends, with jiffy
        // truncation, by the time the peer may speak.
        let t = Timing::new(100 * MS, 3);
        assert_eq!(t.lease_timeout_ns(), 296 * MS);
        assert_eq!(t.lease_timeout_ms(), 296);
        assert_eq!(t.takeover_wait_ns(), 300 * MS);
        let t = Timing::new(10 * MS, 3);
        assert_eq!(t.lease_timeout_ns(), 26 * MS);
        assert_eq!(t.takeover_wait_ns(), 30 * MS, "voice at detection");
        // Short heartbeats: the lease is raised to 8 ms and the wait follows it.
        let t = Timing::new(MS, 3);
        assert_eq!(t.lease_timeout_ns(), 8 * MS);
        assert_eq!(t.takeover_wait_ns(), 12 * MS);
        let t = Timing {
            margin_ns: 0,
            ..Timing::new(MS, 1)
        };
        assert_eq!(t.lease_timeout_ns(), 8 * MS);
        assert_eq!(t.takeover_wait_ns(), 8 * MS);
        // Non-whole milliseconds round up for nft's nominal timeout.
        let t = Timing::new(4_500_000, 3);
        assert_eq!(t.lease_timeout_ns(), 9_500_000);
        assert_eq!(t.lease_timeout_ms(), 10);
        // voice_at: last_heard + takeover wait.
        let t = Timing::new(MS, 3);
        assert_eq!(t.voice_at(t0()), t0().plus_ms(12));
    }

    #[test]
    fn timing_from_configured_milliseconds() {
        let t = Timing::from_ms(50, 3).unwrap();
        assert_eq!(t, Timing::new(50 * MS, 3));
        assert_eq!((t.heartbeat_ns(), t.misses()), (50 * MS, 3));
        assert_eq!(t.failure_timeout_ns(), t.detector.failure_timeout_ns());
        assert_eq!(t.failure_timeout_ns(), 150 * MS);
        assert_eq!(
            Timing::from_ms(0, 3),
            Err(DetectorConfigError::ZeroInterval)
        );
        assert_eq!(Timing::from_ms(1, 0), Err(DetectorConfigError::ZeroMisses));
    }

    fn t0() -> Instant {
        t(1000)
    }

    #[test]
    fn backup_takeover_waits_for_grant_then_lease() {
        let mut m = VipMachine::duplex(VIP, NodeId(2), Role::Backup, Epoch(4), timing());
        assert_eq!(m.new_connection_mode(), Some(ConnMode::Duplex));
        m.handle(t(130), Input::PeerFailed { last_heard: t(120) });
        assert_eq!(
            drain(&mut m, t(130)),
            vec![
                Action::SnapshotAndStopAckingLog { vip: VIP },
                Action::StopHeartbeats,
                Action::AskWitness {
                    vip: VIP,
                    node: NodeId(2),
                    epoch: Epoch(5)
                }
            ]
        );
        assert_eq!(m.mode().tag(), ModeTag::WaitingForGrant);
        // Unanswered: retried after the retry interval (10 ms), not before.
        assert_eq!(m.next_deadline(), Some(t(140)));
        assert_eq!(drain(&mut m, t(139)), vec![]);
        assert_eq!(
            drain(&mut m, t(140)),
            vec![Action::AskWitness {
                vip: VIP,
                node: NodeId(2),
                epoch: Epoch(5)
            }]
        );
        // A grant for another epoch is ignored.
        m.handle(t(141), Input::GrantReceived { epoch: Epoch(9) });
        assert_eq!(drain(&mut m, t(141)), vec![]);
        m.handle(t(142), Input::GrantReceived { epoch: Epoch(5) });
        assert_eq!(
            drain(&mut m, t(142)),
            vec![Action::BuildRepairedSockets { vip: VIP }]
        );
        assert_eq!(m.epoch(), Epoch(5));
        // voice_at = 120 + max(30, 26 + 4) = 150.
        assert_eq!(m.mode(), &VipMode::TakingOver { voice_at: t(150) });
        assert_eq!(m.new_connection_mode(), None);
        assert_eq!(drain(&mut m, t(149)), vec![]);
        assert_eq!(
            drain(&mut m, t(150)),
            vec![
                Action::SetLease {
                    vip: VIP,
                    lease: Lease::Permanent
                },
                Action::AddVip {
                    vip: VIP,
                    iface: Iface::Lan
                },
                Action::InjectLateFrames { vip: VIP },
                Action::FlushLoggedReplies { vip: VIP },
                Action::SendGratuitousArp { vip: VIP },
            ]
        );
        assert_eq!(m.mode(), &VipMode::Simplex);
        assert_eq!(m.role(), Role::Sole);
        assert_eq!(m.next_deadline(), None);
    }

    #[test]
    fn late_grant_speaks_at_once() {
        let mut m = VipMachine::duplex(VIP, NodeId(2), Role::Backup, Epoch(0), timing());
        m.handle(t(130), Input::PeerFailed { last_heard: t(100) });
        drain(&mut m, t(130));
        m.handle(t(500), Input::GrantReceived { epoch: Epoch(1) });
        let acts = drain(&mut m, t(500));
        assert_eq!(
            acts.first(),
            Some(&Action::BuildRepairedSockets { vip: VIP })
        );
        assert!(acts.contains(&Action::SendGratuitousArp { vip: VIP }));
        assert_eq!(m.mode(), &VipMode::Simplex);
    }

    #[test]
    fn backup_failure_primary_asks_grant_then_simplex() {
        let mut m = VipMachine::duplex(VIP, NodeId(1), Role::Primary, Epoch(2), timing());
        m.handle(t(50), Input::PeerFailed { last_heard: t(39) });
        assert_eq!(
            drain(&mut m, t(50)),
            vec![
                Action::StopHeartbeats,
                Action::AskWitness {
                    vip: VIP,
                    node: NodeId(1),
                    epoch: Epoch(3)
                }
            ]
        );
        // Still serving (writers wait for log acks) until the grant.
        assert_eq!(m.new_connection_mode(), Some(ConnMode::Duplex));
        m.handle(t(51), Input::GrantReceived { epoch: Epoch(3) });
        assert_eq!(
            drain(&mut m, t(51)),
            vec![
                Action::SetLease {
                    vip: VIP,
                    lease: Lease::Permanent
                },
                Action::GoSimplex { vip: VIP },
            ]
        );
        // The address moves only at voice_at = max(20 + 30, 45 + 20 + 4) = 69:
        // a deadline handed out, not a sleep.
        assert_eq!(m.next_deadline(), Some(t(69)));
        assert_eq!(drain(&mut m, t(68)), vec![]);
        assert_eq!(
            drain(&mut m, t(69)),
            vec![
                Action::AddVip {
                    vip: VIP,
                    iface: Iface::Lan
                },
                Action::RemoveVip {
                    vip: VIP,
                    iface: Iface::Loopback
                },
                Action::SendGratuitousArp { vip: VIP },
            ]
        );
        assert_eq!(m.next_deadline(), None);
        assert_eq!(m.mode(), &VipMode::Simplex);
        assert_eq!(m.new_connection_mode(), Some(ConnMode::Simplex));
        assert_eq!(ConnMode::Duplex.on_go_simplex(), ConnMode::Simplex);
    }

    #[test]
    fn without_witness_the_grant_arrives_at_once_and_speaks_at_once() {
        let failed = Input::PeerFailed { last_heard: t(100) };
        // Backup: the same steps, in the same order, none waited for.
        let mut b =
            VipMachine::duplex(VIP, NodeId(2), Role::Backup, Epoch(4), timing()).without_witness();
        b.handle(t(130), failed);
        let ask = Action::AskWitness {
            vip: VIP,
            node: NodeId(2),
            epoch: Epoch(5),
        };
        assert_eq!(
            drain(&mut b, t(130)),
            vec![Action::SnapshotAndStopAckingLog { vip: VIP }, ask],
            "heartbeats go on without a witness"
        );
        b.handle(t(130), Input::GrantReceived { epoch: Epoch(5) });
        assert_eq!(
            drain(&mut b, t(130)),
            vec![
                Action::BuildRepairedSockets { vip: VIP },
                Action::SetLease {
                    vip: VIP,
                    lease: Lease::Permanent
                },
                Action::AddVip {
                    vip: VIP,
                    iface: Iface::Lan
                },
                Action::InjectLateFrames { vip: VIP },
                Action::FlushLoggedReplies { vip: VIP },
                Action::SendGratuitousArp { vip: VIP },
            ]
        );
        assert_eq!((b.mode(), b.next_deadline()), (&VipMode::Simplex, None));
        // Each step once: nothing more, ever.
        b.handle(t(131), Input::GrantReceived { epoch: Epoch(5) });
        assert_eq!(drain(&mut b, t(10_000)), vec![]);
        // No witness, so a peer's epoch deposes nobody.
        b.handle(t(132), Input::EpochSeen { epoch: Epoch(9) });
        assert_eq!(b.mode(), &VipMode::Simplex);
        // Primary: writers released and the address claimed at once.
        let mut p =
            VipMachine::duplex(VIP, NodeId(1), Role::Primary, Epoch(4), timing()).without_witness();
        p.handle(t(130), failed);
        assert_eq!(
            drain(&mut p, t(130)),
            vec![Action::AskWitness {
                vip: VIP,
                node: NodeId(1),
                epoch: Epoch(5)
            }]
        );
        p.handle(t(130), Input::GrantReceived { epoch: Epoch(5) });
        assert_eq!(
            drain(&mut p, t(130)),
            vec![
                Action::SetLease {
                    vip: VIP,
                    lease: Lease::Permanent
                },
                Action::GoSimplex { vip: VIP },
                Action::AddVip {
                    vip: VIP,
                    iface: Iface::Lan
                },
                Action::RemoveVip {
                    vip: VIP,
                    iface: Iface::Loopback
                },
                Action::SendGratuitousArp { vip: VIP },
            ]
        );
        assert_eq!((p.mode(), p.next_deadline()), (&VipMode::Simplex, None));
        assert_eq!(drain(&mut p, t(10_000)), vec![]);
    }

    #[test]
    fn refused_grant_fences() {
        for role in [Role::Primary, Role::Backup] {
            let mut m = VipMachine::duplex(VIP, NodeId(1), role, Epoch(2), timing());
            m.handle(t(50), Input::PeerFailed { last_heard: t(39) });
            drain(&mut m, t(50));
            let reason = RefuseReason::AlreadyGranted { holder: NodeId(2) };
            // A refusal for another epoch is ignored.
            m.handle(
                t(51),
                Input::GrantRefused {
                    epoch: Epoch(7),
                    reason,
                },
            );
            assert_eq!(m.mode().tag(), ModeTag::WaitingForGrant);
            m.handle(
                t(52),
                Input::GrantRefused {
                    epoch: Epoch(3),
                    reason,
                },
            );
            assert_eq!(
                drain(&mut m, t(52)),
                vec![Action::Fence { vip: VIP }, Action::StopHeartbeats]
            );
            assert_eq!(
                m.mode(),
                &VipMode::Fenced {
                    reason: FenceReason::GrantRefused(reason)
                }
            );
            assert_eq!(m.new_connection_mode(), None);
            // Terminal: nothing moves a fenced machine.
            m.handle(t(53), Input::GrantReceived { epoch: Epoch(3) });
            m.handle(t(53), Input::JoinCompleted);
            assert_eq!(drain(&mut m, t(1000)), vec![]);
            assert_eq!(m.mode().tag(), ModeTag::Fenced);
        }
    }

    #[test]
    fn higher_epoch_fences_from_every_serving_mode() {
        // Duplex.
        let mut m = VipMachine::duplex(VIP, NodeId(1), Role::Primary, Epoch(2), timing());
        m.handle(t(1), Input::EpochSeen { epoch: Epoch(2) });
        assert_eq!(m.mode(), &VipMode::Duplex, "same epoch is no deposition");
        m.handle(t(1), Input::EpochSeen { epoch: Epoch(3) });
        assert_eq!(
            drain(&mut m, t(1)),
            vec![Action::Fence { vip: VIP }, Action::StopHeartbeats]
        );
        assert_eq!(
            m.mode(),
            &VipMode::Fenced {
                reason: FenceReason::HigherEpoch(Epoch(3))
            }
        );
        // Simplex.
        let mut m = VipMachine::simplex(VIP, NodeId(1), Epoch(5), timing());
        m.handle(t(1), Input::EpochSeen { epoch: Epoch(6) });
        assert_eq!(m.mode().tag(), ModeTag::Fenced);
        // Waiting for a grant: someone else got the epoch we asked for.
        let mut m = VipMachine::duplex(VIP, NodeId(1), Role::Backup, Epoch(2), timing());
        m.handle(t(50), Input::PeerFailed { last_heard: t(39) });
        m.handle(t(51), Input::EpochSeen { epoch: Epoch(3) });
        assert_eq!(m.mode().tag(), ModeTag::Fenced);
        // Taking over.
        let mut m = VipMachine::duplex(VIP, NodeId(1), Role::Backup, Epoch(2), timing());
        m.handle(t(50), Input::PeerFailed { last_heard: t(39) });
        m.handle(t(51), Input::GrantReceived { epoch: Epoch(3) });
        m.handle(t(52), Input::EpochSeen { epoch: Epoch(3) });
        assert_eq!(m.mode().tag(), ModeTag::TakingOver, "our own epoch");
        m.handle(t(52), Input::EpochSeen { epoch: Epoch(4) });
        assert_eq!(m.mode().tag(), ModeTag::Fenced);
        assert!(drain(&mut m, t(1000))
            .iter()
            .all(|a| !matches!(a, Action::SetLease { .. } | Action::AddVip { .. })));
    }

    #[test]
    fn join_returns_both_sides_to_duplex() {
        // The simplex node.
        let mut s = VipMachine::simplex(VIP, NodeId(1), Epoch(3), timing());
        s.handle(t(1), Input::JoinAccepted { epoch: Epoch(3) });
        assert_eq!(
            drain(&mut s, t(1)),
            vec![
                Action::StartLogChannel,
                Action::StartHeartbeats,
                Action::SetLease {
                    vip: VIP,
                    lease: Lease::Refreshed { timeout_ms: 26 }
                },
                Action::AddVip {
                    vip: VIP,
                    iface: Iface::Loopback
                },
                Action::RemoveVip {
                    vip: VIP,
                    iface: Iface::Lan
                },
            ]
        );
        assert_eq!(s.mode(), &VipMode::Joining);
        assert_eq!(s.new_connection_mode(), Some(ConnMode::Simplex));
        // The new server.
        let mut n = VipMachine::joining(VIP, NodeId(3), Role::Backup, timing());
        assert_eq!(n.new_connection_mode(), None);
        n.handle(t(2), Input::JoinAccepted { epoch: Epoch(3) });
        assert_eq!(drain(&mut n, t(2)), vec![Action::StartHeartbeats]);
        n.handle(t(3), Input::JoinCompleted);
        assert_eq!(
            drain(&mut n, t(3)),
            vec![
                Action::StartFronting { vip: VIP },
                Action::SendGratuitousArp { vip: VIP },
                Action::JoinReady { vip: VIP }
            ]
        );
        assert_eq!(
            (n.mode(), n.role(), n.epoch()),
            (&VipMode::Duplex, Role::Backup, Epoch(3))
        );
        s.handle(t(4), Input::JoinCompleted);
        assert_eq!(
            drain(&mut s, t(4)),
            vec![Action::CloseSimplexConnectionsAfterNextResponse { vip: VIP }]
        );
        assert_eq!((s.mode(), s.role()), (&VipMode::Duplex, Role::Primary));
        assert_eq!(s.new_connection_mode(), Some(ConnMode::Duplex));
        assert_eq!(
            ConnMode::Simplex.on_join(),
            ConnMode::CloseAfterNextResponse
        );
        assert_eq!(ConnMode::Duplex.on_join(), ConnMode::Duplex);
        // And the pair can fail over again: the new backup takes over.
        n.handle(t(100), Input::PeerFailed { last_heard: t(60) });
        assert!(drain(&mut n, t(100)).contains(&Action::AskWitness {
            vip: VIP,
            node: NodeId(3),
            epoch: Epoch(4)
        }));
    }

    /// The simplex node that took over the address it fronted, and a new
    /// server that will be the address's primary (dual role).
    fn hand_over_pair() -> (VipMachine, VipMachine) {
        let mut s = VipMachine::duplex(VIP, NodeId(2), Role::Backup, Epoch(2), timing());
        s.handle(t(0), Input::PeerFailed { last_heard: t(0) });
        s.handle(t(1), Input::GrantReceived { epoch: Epoch(3) });
        drain(&mut s, t(40));
        assert_eq!((s.mode(), s.role()), (&VipMode::Simplex, Role::Sole));
        s.hand_over_at_join(true);
        let n = VipMachine::joining(VIP, NodeId(3), Role::Primary, timing());
        (s, n)
    }

    #[test]
    fn hand_over_moves_the_primary_role_and_keeps_the_open_connections() {
        let refreshed = Lease::Refreshed { timeout_ms: 26 };
        let (mut s, mut n) = hand_over_pair();
        // Accepted: still serving alone, under a lease the new server's
        // heartbeats extend; the role offered at once; nothing moves yet.
        s.handle(t(50), Input::JoinAccepted { epoch: Epoch(4) });
        assert_eq!(
            drain(&mut s, t(50)),
            vec![
                Action::StartHeartbeats,
                Action::SetLease {
                    vip: VIP,
                    lease: refreshed
                },
                Action::OfferPrimary { vip: VIP },
            ]
        );
        assert_eq!((s.mode(), s.role()), (&VipMode::Joining, Role::Sole));
        assert_eq!(s.lease(), Some(refreshed));
        assert_eq!(s.new_connection_mode(), Some(ConnMode::Simplex));
        // The new server: primary from loopback at acceptance, ready at
        // the offer, with nothing to front.
        n.handle(t(51), Input::JoinAccepted { epoch: Epoch(4) });
        assert_eq!(
            drain(&mut n, t(51)),
            vec![
                Action::StartHeartbeats,
                Action::StartLogChannel,
                Action::SetLease {
                    vip: VIP,
                    lease: refreshed
                },
                Action::AddVip {
                    vip: VIP,
                    iface: Iface::Loopback
                },
            ]
        );
        n.handle(t(52), Input::JoinCompleted);
        assert_eq!(drain(&mut n, t(52)), vec![Action::JoinReady { vip: VIP }]);
        assert_eq!(
            (n.mode(), n.role(), n.lease()),
            (&VipMode::Duplex, Role::Primary, Some(refreshed))
        );
        assert_eq!(n.new_connection_mode(), Some(ConnMode::Duplex));
        // The new primary is ready: the open connections stay (kept before
        // anything moves), the address onto loopback before it leaves the
        // LAN, the front started before the kernel stops answering ARP.
        s.handle(t(53), Input::JoinCompleted);
        assert_eq!(
            drain(&mut s, t(53)),
            vec![
                Action::KeepSimplexFlows { vip: VIP },
                Action::AddVip {
                    vip: VIP,
                    iface: Iface::Loopback
                },
                Action::StartFronting { vip: VIP },
                Action::RemoveVip {
                    vip: VIP,
                    iface: Iface::Lan
                },
                Action::SendGratuitousArp { vip: VIP },
                Action::CloseSimplexConnectionsAfterNextResponse { vip: VIP },
            ]
        );
        assert_eq!((s.mode(), s.role()), (&VipMode::Duplex, Role::Backup));
        assert_eq!(s.new_connection_mode(), Some(ConnMode::Duplex));
        // Kept connections still answer under the refreshed lease until
        // they end; then the backup holds none.
        assert_eq!(s.lease(), Some(refreshed));
        s.handle(t(60), Input::SimplexFlowsEnded);
        assert_eq!(s.lease(), None);
        assert_eq!(
            drain(&mut s, t(60)),
            vec![Action::EndKeptFlows { vip: VIP }]
        );
        // Said once: a second report of the same end asks for nothing.
        s.handle(t(61), Input::SimplexFlowsEnded);
        assert!(drain(&mut s, t(61)).is_empty());
        // Both nodes in the join's epoch; the next fault fails over as
        // ever: the new front takes over from the new primary.
        assert_eq!((s.epoch(), n.epoch()), (Epoch(4), Epoch(4)));
        s.handle(t(100), Input::PeerFailed { last_heard: t(60) });
        let a = drain(&mut s, t(100));
        assert_eq!(a[0], Action::SnapshotAndStopAckingLog { vip: VIP });
        assert!(a.contains(&Action::AskWitness {
            vip: VIP,
            node: NodeId(2),
            epoch: Epoch(5)
        }));
    }

    #[test]
    fn kept_connections_ending_after_a_second_fault_leave_the_takeovers_lease() {
        let (mut s, _) = hand_over_pair();
        s.handle(t(50), Input::JoinAccepted { epoch: Epoch(4) });
        s.handle(t(53), Input::JoinCompleted);
        drain(&mut s, t(53));
        // The new primary fails while kept connections are still open:
        // they become the takeover's, and their end revokes nothing.
        s.handle(t(100), Input::PeerFailed { last_heard: t(60) });
        drain(&mut s, t(100));
        s.handle(t(101), Input::SimplexFlowsEnded);
        let a = drain(&mut s, t(101));
        assert!(!a.contains(&Action::EndKeptFlows { vip: VIP }), "{a:?}");
    }

    #[test]
    fn a_hand_over_rolled_back_before_it_completed_claims_nothing() {
        let (mut s, _) = hand_over_pair();
        s.handle(t(50), Input::JoinAccepted { epoch: Epoch(4) });
        drain(&mut s, t(50));
        s.handle(t(60), Input::JoinAborted);
        assert_eq!(
            drain(&mut s, t(60)),
            vec![
                Action::StopHeartbeats,
                Action::StopLogChannel,
                Action::AskWitness {
                    vip: VIP,
                    node: NodeId(2),
                    epoch: Epoch(5)
                },
            ]
        );
        s.handle(t(61), Input::GrantReceived { epoch: Epoch(5) });
        // The address never left the LAN: permanent again, writers
        // released, and no move at the claim instant or after it.
        assert_eq!(
            drain(&mut s, t(61)),
            vec![
                Action::SetLease {
                    vip: VIP,
                    lease: Lease::Permanent
                },
                Action::GoSimplex { vip: VIP },
            ]
        );
        assert!(drain(&mut s, t(1000)).is_empty());
        assert_eq!((s.mode(), s.role()), (&VipMode::Simplex, Role::Sole));
        // A later join hands the address over only if it asks again.
        s.handle(t(2000), Input::JoinAccepted { epoch: Epoch(6) });
        assert!(!drain(&mut s, t(2000)).contains(&Action::OfferPrimary { vip: VIP }));
        s.handle(t(2001), Input::JoinAborted);
        s.handle(t(2002), Input::GrantReceived { epoch: Epoch(7) });
        drain(&mut s, t(3000));
        s.handle(t(3001), Input::HandOverAtJoin);
        s.handle(t(3001), Input::JoinAccepted { epoch: Epoch(8) });
        assert!(drain(&mut s, t(3001)).contains(&Action::OfferPrimary { vip: VIP }));
        // Not in duplex: a machine that is not serving alone ignores it.
        let mut d = VipMachine::duplex(VIP, NodeId(1), Role::Primary, Epoch(2), timing());
        d.handle(t(1), Input::HandOverAtJoin);
        d.handle(t(2), Input::PeerFailed { last_heard: t(0) });
        d.handle(t(3), Input::GrantReceived { epoch: Epoch(3) });
        drain(&mut d, t(100));
        d.handle(t(101), Input::JoinAccepted { epoch: Epoch(4) });
        assert!(!drain(&mut d, t(101)).contains(&Action::OfferPrimary { vip: VIP }));
    }

    #[test]
    fn without_hand_over_a_simplex_node_keeps_the_primary_role() {
        let (mut s, _) = hand_over_pair();
        s.hand_over_at_join(false);
        s.handle(t(50), Input::JoinAccepted { epoch: Epoch(4) });
        let a = drain(&mut s, t(50));
        assert!(!a.contains(&Action::OfferPrimary { vip: VIP }), "{a:?}");
        s.handle(t(53), Input::JoinCompleted);
        assert_eq!(
            drain(&mut s, t(53)),
            vec![Action::CloseSimplexConnectionsAfterNextResponse { vip: VIP }]
        );
        assert_eq!(s.role(), Role::Primary);
        // SimplexFlowsEnded means nothing to a primary.
        s.handle(t(54), Input::SimplexFlowsEnded);
        assert_eq!(s.lease(), Some(Lease::Refreshed { timeout_ms: 26 }));
        assert!(drain(&mut s, t(54)).is_empty());
    }

    #[test]
    fn lease_follows_mode_and_role() {
        let refreshed = Some(Lease::Refreshed { timeout_ms: 26 });
        let mut p = VipMachine::duplex(VIP, NodeId(1), Role::Primary, Epoch(2), timing());
        let mut b = VipMachine::duplex(VIP, NodeId(2), Role::Backup, Epoch(2), timing());
        assert_eq!((p.lease(), b.lease()), (refreshed, None));
        p.handle(t(50), Input::PeerFailed { last_heard: t(39) });
        b.handle(t(50), Input::PeerFailed { last_heard: t(39) });
        assert_eq!((p.lease(), b.lease()), (refreshed, None));
        b.handle(t(51), Input::GrantReceived { epoch: Epoch(3) });
        assert_eq!(b.lease(), None, "no voice before voice_at");
        drain(&mut b, t(100));
        assert_eq!(b.lease(), Some(Lease::Permanent));
        assert_eq!(
            b.status(),
            VipStatus {
                vip: VIP,
                epoch: Epoch(3),
                mode: ModeTag::Simplex
            }
        );
        p.handle(
            t(52),
            Input::GrantRefused {
                epoch: Epoch(3),
                reason: RefuseReason::AlreadyGranted { holder: NodeId(2) },
            },
        );
        assert_eq!(p.lease(), None);
        // Join: the simplex node goes back to a refreshed lease at acceptance.
        b.handle(t(200), Input::JoinAccepted { epoch: Epoch(3) });
        assert_eq!(b.lease(), refreshed);
        let mut n = VipMachine::joining(VIP, NodeId(3), Role::Backup, timing());
        n.handle(t(201), Input::JoinCompleted);
        assert_eq!(
            n.mode(),
            &VipMode::Joining,
            "completion before acceptance is ignored"
        );
        n.handle(t(202), Input::JoinAccepted { epoch: Epoch(3) });
        n.handle(t(203), Input::JoinCompleted);
        assert_eq!((n.mode(), n.lease()), (&VipMode::Duplex, None));
    }

    #[test]
    fn mode_changes_reported() {
        let mut m = VipMachine::duplex(VIP, NodeId(1), Role::Primary, Epoch(2), timing());
        m.handle(t(50), Input::PeerFailed { last_heard: t(39) });
        let changes: Vec<_> = std::iter::from_fn(|| m.poll(t(50)))
            .filter(|a| matches!(a, Action::ModeChanged { .. }))
            .collect();
        assert_eq!(
            changes,
            vec![Action::ModeChanged {
                vip: VIP,
                from: ModeTag::Duplex,
                to: ModeTag::WaitingForGrant
            }]
        );
    }

    #[test]
    fn peer_failure_ignored_when_sole() {
        let mut m = VipMachine::simplex(VIP, NodeId(1), Epoch(1), timing());
        m.handle(t(50), Input::PeerFailed { last_heard: t(39) });
        assert_eq!(drain(&mut m, t(50)), vec![]);
        assert_eq!(m.mode(), &VipMode::Simplex);
    }
}
