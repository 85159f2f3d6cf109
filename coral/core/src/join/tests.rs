//! The join protocol from crafted message sequences, both sides, with the
//! real mode machines behind them.

use super::*;
use crate::mode::{Action, ConnMode, Iface, Lease, Role, Timing, VipMachine, VipMode};

const MS: u64 = 1_000_000;
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const S: NodeId = NodeId(2);
const N: NodeId = NodeId(3);

fn t(ms: u64) -> Instant {
    Instant(ms * MS)
}

fn cfg(node: NodeId) -> NodeConfig {
    NodeConfig {
        node,
        heartbeat_interval_ns: 10 * MS,
        misses: 3,
        vips: vec![VIP],
        kernel: vec![
            ("net.ipv4.tcp_sack".into(), "1".into()),
            ("net.ipv4.tcp_timestamps".into(), "1".into()),
        ],
        software: "coral test".into(),
        primary_for: vec![],
    }
}

const SIMPLEX: NodeView = NodeView {
    simplex: true,
    epoch: Epoch(2),
};

fn drain_a(a: &mut JoinAcceptor, now: Instant) -> Vec<JoinAction> {
    std::iter::from_fn(|| a.poll(now)).collect()
}

fn drain_j(j: &mut Joiner, now: Instant) -> Vec<JoinAction> {
    std::iter::from_fn(|| j.poll(now)).collect()
}

fn drain_m(m: &mut VipMachine, now: Instant) -> Vec<Action> {
    std::iter::from_fn(|| m.poll(now))
        .filter(|a| !matches!(a, Action::ModeChanged { .. }))
        .collect()
}

fn sends(acts: &[JoinAction]) -> Vec<JoinMsg> {
    acts.iter()
        .filter_map(|a| match a {
            JoinAction::Send { msg, .. } => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

fn refusal(acts: &[JoinAction]) -> Option<(JoinRefuseReason, String)> {
    sends(acts).into_iter().find_map(|m| match m {
        JoinMsg::JoinRefuse { reason, detail } => Some((reason, detail)),
        _ => None,
    })
}

fn request(a: &mut JoinAcceptor, now: Instant, conn: JoinConn, seq: u64, c: NodeConfig) {
    let sender = c.node;
    a.on_message(now, conn, sender, seq, JoinMsg::JoinRequest(c), SIMPLEX);
}

/// Feed every `Machine` action to the machine; return the other actions.
fn apply(m: &mut VipMachine, now: Instant, acts: Vec<JoinAction>) -> Vec<JoinAction> {
    let mut rest = Vec::new();
    for a in acts {
        match a {
            JoinAction::Machine { vip, input } => {
                assert_eq!(vip, m.vip());
                m.handle(now, input);
            }
            other => rest.push(other),
        }
    }
    rest
}

#[test]
fn join_runs_both_sides_to_duplex_and_times_every_step() {
    let timing = Timing::new(10 * MS, 3);
    let mut sm = VipMachine::simplex(VIP, S, Epoch(2), timing);
    let mut nm = VipMachine::joining(VIP, N, Role::Backup, timing);
    let mut acc = JoinAcceptor::new(cfg(S), DEFAULT_JOIN_TIMEOUT_NS);
    let mut joiner = Joiner::new(cfg(N), t(0), DEFAULT_JOIN_TIMEOUT_NS);

    // Request: the joiner's first action, carried to the acceptor.
    let first = drain_j(&mut joiner, t(0));
    assert_eq!(sends(&first), vec![JoinMsg::JoinRequest(cfg(N))]);
    // Read off the connection at 9, handled at 10 (the shell's queueing
    // counts in the configuration exchange).
    let at = Arrival {
        received: t(9),
        now: t(10),
    };
    acc.on_message_at(at, 7, N, 100, JoinMsg::JoinRequest(cfg(N)), SIMPLEX);
    assert_eq!(
        drain_a(&mut acc, t(10)),
        vec![JoinAction::AskWitness {
            vip: VIP,
            epoch: Epoch(3)
        }]
    );
    assert!(acc.awaits_grant(VIP, Epoch(3)));
    assert!(!acc.awaits_grant(VIP, Epoch(4)));

    // Grant after 2 ms: accept sent, machines told.
    acc.on_grant(t(12), VIP, Epoch(3));
    let acts = drain_a(&mut acc, t(12));
    let accept = JoinMsg::JoinAccept {
        config: cfg(S),
        epoch: Epoch(3),
        vip: VIP,
    };
    assert_eq!(sends(&acts), vec![accept.clone()]);
    assert!(acts.contains(&JoinAction::Event(JoinEvent::Accepted {
        node: N,
        epoch: Epoch(3)
    })));
    let rest = apply(&mut sm, t(12), acts);
    assert_eq!(rest.len(), 2, "send and event: {rest:?}");
    assert_eq!(
        drain_m(&mut sm, t(12)),
        vec![
            Action::StartLogChannel,
            Action::StartHeartbeats,
            Action::SetLease {
                vip: VIP,
                lease: Lease::Refreshed {
                    timeout_ms: timing.lease_timeout_ms()
                }
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
    assert_eq!(sm.epoch(), Epoch(3));
    // The new server hears the accept.
    joiner.on_message(S, accept);
    let rest = apply(&mut nm, t(13), drain_j(&mut joiner, t(13)));
    assert!(rest.is_empty());
    assert_eq!(drain_m(&mut nm, t(13)), vec![Action::StartHeartbeats]);
    assert_eq!(joiner.state(), JoinerState::Accepted { epoch: Epoch(3) });
    assert_eq!(joiner.peer().map(|p| p.node), Some(S));

    // Tasks up at 15, address off the LAN at 16: VipReleased.
    acc.on_tasks_started(t(15));
    acc.on_released(t(16), VIP);
    let released = JoinMsg::VipReleased {
        vip: VIP,
        epoch: Epoch(3),
    };
    assert_eq!(sends(&drain_a(&mut acc, t(16))), vec![released.clone()]);
    joiner.on_message(S, released);
    let rest = apply(&mut nm, t(17), drain_j(&mut joiner, t(17)));
    assert!(rest.is_empty());
    assert_eq!(
        drain_m(&mut nm, t(17)),
        vec![
            Action::StartFronting { vip: VIP },
            Action::SendGratuitousArp { vip: VIP },
            Action::JoinReady { vip: VIP }
        ]
    );
    // Fronting (ARP confirmed): JoinComplete.
    joiner.on_ready(VIP);
    let complete = JoinMsg::JoinComplete {
        vip: VIP,
        epoch: Epoch(3),
    };
    assert_eq!(sends(&drain_j(&mut joiner, t(18))), vec![complete.clone()]);
    assert_eq!(joiner.state(), JoinerState::Joined { epoch: Epoch(3) });
    assert_eq!(joiner.next_deadline(), None);

    acc.on_message(t(20), 7, N, 101, complete, SIMPLEX);
    let acts = drain_a(&mut acc, t(20));
    let steps = JoinSteps {
        config_exchange_ns: MS,
        witness_ns: 2 * MS,
        task_startup_ns: 3 * MS,
        identity_restoration_ns: 5 * MS,
        total_ns: 11 * MS,
    };
    assert_eq!(
        acts.last(),
        Some(&JoinAction::Event(JoinEvent::Completed {
            node: N,
            epoch: Epoch(3),
            steps
        }))
    );
    apply(&mut sm, t(20), acts);
    assert_eq!(
        drain_m(&mut sm, t(20)),
        vec![Action::CloseSimplexConnectionsAfterNextResponse { vip: VIP }]
    );
    assert_eq!(
        (sm.mode(), sm.role(), nm.mode(), nm.role()),
        (
            &VipMode::Duplex,
            Role::Primary,
            &VipMode::Duplex,
            Role::Backup
        )
    );
    assert_eq!(sm.new_connection_mode(), Some(ConnMode::Duplex));
    assert!(!acc.in_progress());
    assert_eq!(acc.next_deadline(), None);
}

/// The two machines of one node in dual role: the address it will be
/// primary for first.
const VIP2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 101);

/// Carries out a machine's actions as the simplex node's shell does for the
/// join: the address offered or off the LAN tells the acceptor; returns
/// the actions.
fn shell_s(acc: &mut JoinAcceptor, m: &mut VipMachine, now: Instant) -> Vec<Action> {
    let acts = drain_m(m, now);
    for a in &acts {
        match *a {
            Action::OfferPrimary { vip }
            | Action::RemoveVip {
                vip,
                iface: Iface::Lan,
            } => acc.on_released(now, vip),
            Action::StartHeartbeats => acc.on_tasks_started(now),
            _ => {}
        }
    }
    acts
}

/// The same for the new server: its part done, the joiner is told.
fn shell_n(j: &mut Joiner, m: &mut VipMachine, now: Instant) -> Vec<Action> {
    let acts = drain_m(m, now);
    for a in &acts {
        if let Action::JoinReady { vip } = *a {
            j.on_ready(vip);
        }
    }
    acts
}

/// Delivers the acceptor's messages to the joiner and the joiner's to the
/// acceptor, machine inputs to the machines (by address), until both are
/// quiet; returns every machine action, by node.
fn run_pair(
    acc: &mut JoinAcceptor,
    joiner: &mut Joiner,
    sm: &mut [VipMachine; 2],
    nm: &mut [VipMachine; 2],
    now: Instant,
) -> (Vec<Action>, Vec<Action>) {
    let (mut s_acts, mut n_acts) = (Vec::new(), Vec::new());
    let by = |ms: &mut [VipMachine; 2], vip: Ipv4Addr| {
        ms.iter_mut().position(|m| m.vip() == vip).unwrap()
    };
    loop {
        let mut quiet = true;
        for a in drain_a(acc, now) {
            quiet = false;
            match a {
                JoinAction::Send { msg, .. } => joiner.on_message(S, msg),
                JoinAction::Machine { vip, input } => {
                    let i = by(sm, vip);
                    sm[i].handle(now, input)
                }
                JoinAction::AskWitness { vip, epoch } => acc.on_grant(now, vip, epoch),
                _ => {}
            }
        }
        for m in sm.iter_mut() {
            s_acts.extend(shell_s(acc, m, now));
        }
        for a in drain_j(joiner, now) {
            quiet = false;
            match a {
                JoinAction::Send { msg, .. } => acc.on_message(now, 7, N, 200, msg, SIMPLEX),
                JoinAction::Machine { vip, input } => {
                    let i = by(nm, vip);
                    nm[i].handle(now, input)
                }
                _ => {}
            }
        }
        for m in nm.iter_mut() {
            n_acts.extend(shell_n(joiner, m, now));
        }
        if quiet {
            return (s_acts, n_acts);
        }
    }
}

/// A node of the dual-role pair: both addresses, primary for `primary_for`.
fn two(node: NodeId, primary_for: &[Ipv4Addr]) -> NodeConfig {
    NodeConfig {
        vips: vec![VIP, VIP2],
        primary_for: primary_for.to_vec(),
        ..cfg(node)
    }
}

#[test]
fn a_joiner_is_primary_only_for_what_the_simplex_node_hands_over() {
    // Asking for the address the simplex node keeps: refused, named.
    let mut acc = JoinAcceptor::new(two(S, &[VIP2]), DEFAULT_JOIN_TIMEOUT_NS).may_hand_over([VIP]);
    acc.on_message(
        t(1),
        1,
        N,
        10,
        JoinMsg::JoinRequest(two(N, &[VIP2])),
        SIMPLEX,
    );
    let (reason, detail) = refusal(&drain_a(&mut acc, t(1))).expect("refused");
    assert_eq!(reason, JoinRefuseReason::ConfigMismatch);
    assert!(detail.contains("primary_for"), "{detail}");
    // A node that hands nothing over refuses any.
    let mut acc = JoinAcceptor::new(two(S, &[VIP2]), DEFAULT_JOIN_TIMEOUT_NS);
    acc.on_message(
        t(2),
        2,
        N,
        11,
        JoinMsg::JoinRequest(two(N, &[VIP])),
        SIMPLEX,
    );
    assert!(refusal(&drain_a(&mut acc, t(2))).is_some());
    // A joiner that asks for nothing (one that rejoins fronting every
    // address) joins the ordinary way: no address is handed over.
    let mut acc = JoinAcceptor::new(two(S, &[VIP2]), DEFAULT_JOIN_TIMEOUT_NS).may_hand_over([VIP]);
    acc.on_message(t(3), 3, N, 12, JoinMsg::JoinRequest(two(N, &[])), SIMPLEX);
    for a in drain_a(&mut acc, t(3)) {
        if let JoinAction::AskWitness { vip, epoch } = a {
            acc.on_grant(t(4), vip, epoch);
        }
    }
    let acts = drain_a(&mut acc, t(4));
    assert!(acts.iter().any(|a| matches!(
        a,
        JoinAction::Machine {
            input: Input::JoinAccepted { .. },
            ..
        }
    )));
    assert!(
        !acts.iter().any(|a| matches!(
            a,
            JoinAction::Machine {
                input: Input::HandOverAtJoin,
                ..
            }
        )),
        "{acts:?}"
    );
}

/// A dual-role pair at a join: the simplex node took over VIP (which it
/// fronted) and serves VIP2 it was primary for; the new server asks to be
/// primary for VIP, front of VIP2; its request read at t(1).
fn dual_role_join(timing: Timing) -> (JoinAcceptor, Joiner, [VipMachine; 2], [VipMachine; 2]) {
    let sm = [
        VipMachine::simplex(VIP, S, Epoch(2), timing),
        VipMachine::simplex(VIP2, S, Epoch(2), timing),
    ];
    let nm = [
        VipMachine::joining(VIP, N, Role::Primary, timing),
        VipMachine::joining(VIP2, N, Role::Backup, timing),
    ];
    let mut acc = JoinAcceptor::new(two(S, &[VIP2]), DEFAULT_JOIN_TIMEOUT_NS).may_hand_over([VIP]);
    let mut joiner = Joiner::new(two(N, &[VIP]), t(0), DEFAULT_JOIN_TIMEOUT_NS);
    for a in drain_j(&mut joiner, t(0)) {
        if let JoinAction::Send { msg, .. } = a {
            acc.on_message(t(1), 7, N, 100, msg, SIMPLEX);
        }
    }
    (acc, joiner, sm, nm)
}

#[test]
fn dual_role_join_hands_one_address_over_and_fronts_the_other() {
    let timing = Timing::new(10 * MS, 3);
    let (mut acc, mut joiner, mut sm, mut nm) = dual_role_join(timing);
    let (s_acts, n_acts) = run_pair(&mut acc, &mut joiner, &mut sm, &mut nm, t(2));
    // Both addresses granted in the join's epoch, then completed.
    assert!(!acc.in_progress());
    assert_eq!(joiner.state(), JoinerState::Joined { epoch: Epoch(3) });
    let roles: Vec<_> = sm
        .iter()
        .chain(&nm)
        .map(|m| (m.mode(), m.role(), m.epoch()))
        .collect();
    assert_eq!(
        roles,
        vec![
            (&VipMode::Duplex, Role::Backup, Epoch(3)),
            (&VipMode::Duplex, Role::Primary, Epoch(3)),
            (&VipMode::Duplex, Role::Primary, Epoch(3)),
            (&VipMode::Duplex, Role::Backup, Epoch(3)),
        ]
    );
    // The moved address: the new server serves it from loopback before
    // the simplex node keeps its flows and starts fronting it; nobody puts
    // it on a LAN interface, and the old node's lease stays refreshed for
    // the kept connections.
    let pos = |acts: &[Action], a: Action| acts.iter().position(|x| *x == a).unwrap();
    let n_lo = pos(
        &n_acts,
        Action::AddVip {
            vip: VIP,
            iface: Iface::Loopback,
        },
    );
    let n_ready = pos(&n_acts, Action::JoinReady { vip: VIP });
    assert!(n_lo < n_ready);
    let keep = pos(&s_acts, Action::KeepSimplexFlows { vip: VIP });
    let s_lo = pos(
        &s_acts,
        Action::AddVip {
            vip: VIP,
            iface: Iface::Loopback,
        },
    );
    let front = pos(&s_acts, Action::StartFronting { vip: VIP });
    let off = pos(
        &s_acts,
        Action::RemoveVip {
            vip: VIP,
            iface: Iface::Lan,
        },
    );
    assert!(keep < s_lo && s_lo < front && front < off, "{s_acts:?}");
    assert!(!n_acts.contains(&Action::StartFronting { vip: VIP }));
    for acts in [&s_acts, &n_acts] {
        assert!(!acts.iter().any(|a| matches!(
            a,
            Action::AddVip {
                iface: Iface::Lan,
                ..
            }
        )));
    }
    assert_eq!(
        sm[0].lease(),
        Some(Lease::Refreshed {
            timeout_ms: timing.lease_timeout_ms()
        })
    );
    // The other address: the ordinary join (the new server fronts it).
    assert!(n_acts.contains(&Action::StartFronting { vip: VIP2 }));
    assert!(s_acts.contains(&Action::RemoveVip {
        vip: VIP2,
        iface: Iface::Lan
    }));
    // Both addresses' open connections end after their next reply.
    for vip in [VIP, VIP2] {
        assert!(s_acts.contains(&Action::CloseSimplexConnectionsAfterNextResponse { vip }));
    }
}

#[test]
fn a_dual_role_join_is_timed_to_the_simplex_node_announcing_its_front() {
    let timing = Timing::new(10 * MS, 3);
    let (mut acc, mut joiner, mut sm, mut nm) = dual_role_join(timing);
    // Request at t(1); accepted, tasks up, released and completed at t(2).
    run_pair(&mut acc, &mut joiner, &mut sm, &mut nm, t(2));
    assert_eq!(joiner.state(), JoinerState::Joined { epoch: Epoch(3) });
    // The new server is duplex, but this node's own steps for the moved
    // address (onto loopback, fronted, off the LAN, announced) are not
    // done: no Table 2 yet, and no join in progress either.
    assert!(acc.handing_over() && !acc.in_progress());
    assert_eq!(acc.next_deadline(), None);
    // The address this node keeps ends nothing.
    acc.on_handed_over(t(6), VIP2);
    assert!(acc.handing_over());
    assert!(drain_a(&mut acc, t(6)).is_empty());
    // The moved address's front announced at t(9): the total ends there.
    acc.on_handed_over(t(9), VIP);
    assert!(!acc.handing_over());
    // Asked at the request (1), granted at 2.
    let steps = JoinSteps {
        config_exchange_ns: 0,
        witness_ns: MS,
        task_startup_ns: 0,
        identity_restoration_ns: 7 * MS,
        total_ns: 8 * MS,
    };
    assert_eq!(
        drain_a(&mut acc, t(9)),
        vec![JoinAction::Event(JoinEvent::Completed {
            node: N,
            epoch: Epoch(3),
            steps
        })]
    );
    acc.on_handed_over(t(10), VIP);
    assert!(drain_a(&mut acc, t(10)).is_empty());
}

#[test]
fn a_hand_over_done_before_the_last_join_complete_ends_nothing_later() {
    let timing = Timing::new(10 * MS, 3);
    let (mut acc, _, _, _) = dual_role_join(timing);
    let grants: Vec<_> = drain_a(&mut acc, t(2))
        .into_iter()
        .filter_map(|a| match a {
            JoinAction::AskWitness { vip, epoch } => Some((vip, epoch)),
            _ => None,
        })
        .collect();
    for (vip, epoch) in grants {
        acc.on_grant(t(3), vip, epoch);
    }
    acc.on_tasks_started(t(4));
    acc.on_released(t(4), VIP);
    acc.on_released(t(5), VIP2);
    drain_a(&mut acc, t(5));
    // The moved address completes first and this node announces its front
    // at 7, before the new server completes the other address at 9.
    let complete = |vip| JoinMsg::JoinComplete {
        vip,
        epoch: Epoch(3),
    };
    acc.on_message(t(6), 7, N, 101, complete(VIP), SIMPLEX);
    acc.on_handed_over(t(7), VIP);
    acc.on_message(t(9), 7, N, 102, complete(VIP2), SIMPLEX);
    assert!(!acc.handing_over());
    let done = drain_a(&mut acc, t(9));
    assert!(
        done.iter().any(|a| matches!(
            a,
            JoinAction::Event(JoinEvent::Completed { steps, .. }) if steps.total_ns == 8 * MS
        )),
        "{done:?}"
    );
}

#[test]
fn a_hand_over_cut_by_the_new_primary_failing_writes_no_table_2() {
    let timing = Timing::new(10 * MS, 3);
    let (mut acc, mut joiner, mut sm, mut nm) = dual_role_join(timing);
    run_pair(&mut acc, &mut joiner, &mut sm, &mut nm, t(2));
    assert!(acc.handing_over());
    acc.on_peer_failed();
    assert!(!acc.handing_over());
    acc.on_handed_over(t(9), VIP);
    // Nothing to roll back either: the join had completed.
    assert!(drain_a(&mut acc, t(9)).is_empty());
}

#[test]
fn config_mismatch_is_refused_naming_it() {
    let mut acc = JoinAcceptor::new(cfg(S), DEFAULT_JOIN_TIMEOUT_NS);
    let mut c = cfg(N);
    c.kernel[0].1 = "0".into();
    request(&mut acc, t(1), 1, 10, c);
    let acts = drain_a(&mut acc, t(1));
    let (reason, detail) = refusal(&acts).expect("refused");
    assert_eq!(reason, JoinRefuseReason::ConfigMismatch);
    assert!(detail.contains("net.ipv4.tcp_sack"), "{detail}");
    assert!(acts.contains(&JoinAction::Close { conn: 1 }));
    assert!(!acc.in_progress());

    let mut c = cfg(N);
    c.vips = vec![Ipv4Addr::new(192, 0, 2, 101)];
    c.misses = 5;
    request(&mut acc, t(2), 2, 11, c);
    let (_, detail) = refusal(&drain_a(&mut acc, t(2))).expect("refused");
    assert!(
        detail.starts_with("vips:") && detail.contains("misses"),
        "{detail}"
    );
}

#[test]
fn not_simplex_busy_and_own_id_are_refused() {
    let mut acc = JoinAcceptor::new(cfg(S), DEFAULT_JOIN_TIMEOUT_NS);
    let duplex = NodeView {
        simplex: false,
        epoch: Epoch(1),
    };
    acc.on_message(t(1), 1, N, 1, JoinMsg::JoinRequest(cfg(N)), duplex);
    assert_eq!(
        refusal(&drain_a(&mut acc, t(1))).map(|r| r.0),
        Some(JoinRefuseReason::NotSimplex)
    );
    request(&mut acc, t(2), 2, 2, cfg(S));
    assert_eq!(
        refusal(&drain_a(&mut acc, t(2))).map(|r| r.0),
        Some(JoinRefuseReason::UnknownNode)
    );
    // One join in progress: a second one (another node) is refused.
    request(&mut acc, t(3), 3, 3, cfg(N));
    drain_a(&mut acc, t(3));
    assert!(acc.in_progress());
    request(&mut acc, t(4), 4, 1, cfg(NodeId(4)));
    let acts = drain_a(&mut acc, t(4));
    let (reason, detail) = refusal(&acts).expect("refused");
    assert_eq!(reason, JoinRefuseReason::Busy);
    assert!(detail.contains("node 3"), "{detail}");
    assert!(acts.contains(&JoinAction::Close { conn: 4 }));
    assert_eq!(acc.conn(), Some(3), "the first join carries on");
}

#[test]
fn replayed_and_unauthenticated_requests_get_no_reply() {
    let mut acc = JoinAcceptor::new(cfg(S), DEFAULT_JOIN_TIMEOUT_NS);
    request(&mut acc, t(1), 1, 50, cfg(N));
    drain_a(&mut acc, t(1));
    acc.on_closed(1);
    drain_a(&mut acc, t(1));
    // The same request again on a new connection: a replay.
    request(&mut acc, t(2), 2, 50, cfg(N));
    let acts = drain_a(&mut acc, t(2));
    assert!(sends(&acts).is_empty());
    assert_eq!(
        acts,
        vec![
            JoinAction::Close { conn: 2 },
            JoinAction::Event(JoinEvent::Rejected {
                conn: 2,
                why: "replay".into()
            })
        ]
    );
    assert!(!acc.in_progress());
    // A request naming another node than its authenticated sender.
    acc.on_message(
        t(3),
        3,
        NodeId(9),
        60,
        JoinMsg::JoinRequest(cfg(N)),
        SIMPLEX,
    );
    assert!(sends(&drain_a(&mut acc, t(3))).is_empty());
    // The shell's codec rejected a frame (wrong key): closed, nothing sent.
    acc.on_reject(4, "bad_tag");
    let acts = drain_a(&mut acc, t(4));
    assert!(sends(&acts).is_empty());
    assert!(acts.contains(&JoinAction::Close { conn: 4 }));
    // A fresh request from the same node is accepted for the witness.
    request(&mut acc, t(5), 5, 51, cfg(N));
    assert!(matches!(
        drain_a(&mut acc, t(5)).as_slice(),
        [JoinAction::AskWitness { .. }]
    ));
}

fn accepted(acc: &mut JoinAcceptor, sm: &mut VipMachine) {
    request(acc, t(10), 1, 1, cfg(N));
    drain_a(acc, t(10));
    acc.on_grant(t(11), VIP, Epoch(3));
    apply(sm, t(11), drain_a(acc, t(11)));
    drain_m(sm, t(11));
    assert_eq!(sm.mode(), &VipMode::Joining);
}

/// What the simplex node does at once when a join is rolled back: stops
/// the heartbeats and log channel toward the new server and asks the
/// witness for the next epoch (the new server may be duplex already).
fn rollback_actions() -> Vec<Action> {
    vec![
        Action::StopHeartbeats,
        Action::StopLogChannel,
        Action::AskWitness {
            vip: VIP,
            node: S,
            epoch: Epoch(4),
        },
    ]
}

/// The rest of a rollback begun at `at`: granted, the lease is permanent
/// and writers are released; once the new front's ARP lease has surely
/// lapsed, the address returns to the LAN before it leaves loopback.
fn finish_rollback(sm: &mut VipMachine, at: Instant) {
    let granted = at.plus_ns(MS);
    sm.handle(granted, Input::GrantReceived { epoch: Epoch(4) });
    assert_eq!(
        drain_m(sm, granted),
        vec![
            Action::SetLease {
                vip: VIP,
                lease: Lease::Permanent,
            },
            Action::GoSimplex { vip: VIP },
        ]
    );
    let claim = at.plus_ns(sm.timing().takeover_wait_ns());
    assert!(drain_m(sm, Instant(claim.0 - 1)).is_empty(), "not before");
    assert_eq!(
        drain_m(sm, claim),
        vec![
            Action::AddVip {
                vip: VIP,
                iface: Iface::Lan,
            },
            Action::RemoveVip {
                vip: VIP,
                iface: Iface::Loopback,
            },
            Action::SendGratuitousArp { vip: VIP },
        ]
    );
    assert_eq!(
        (sm.mode(), sm.role(), sm.epoch()),
        (&VipMode::Simplex, Role::Sole, Epoch(4))
    );
    assert_eq!(sm.lease(), Some(Lease::Permanent));
}

#[test]
fn joiner_dying_half_way_rolls_the_simplex_node_back() {
    let timing = Timing::new(10 * MS, 3);
    let mut sm = VipMachine::simplex(VIP, S, Epoch(2), timing);
    let mut acc = JoinAcceptor::new(cfg(S), DEFAULT_JOIN_TIMEOUT_NS);
    accepted(&mut acc, &mut sm);
    acc.on_tasks_started(t(12));
    acc.on_released(t(13), VIP);
    drain_a(&mut acc, t(13));
    // The new server's connection drops before JoinComplete.
    acc.on_closed(1);
    let acts = drain_a(&mut acc, t(14));
    assert!(acts.contains(&JoinAction::Event(JoinEvent::RolledBack {
        node: N,
        why: "the new server closed the join connection".into()
    })));
    apply(&mut sm, t(14), acts);
    assert_eq!(drain_m(&mut sm, t(14)), rollback_actions());
    assert_eq!(sm.new_connection_mode(), Some(ConnMode::Simplex));
    finish_rollback(&mut sm, t(14));
    assert_eq!(sm.new_connection_mode(), Some(ConnMode::Simplex));
    // A later join asks the witness above the epoch already granted.
    request(&mut acc, t(20), 2, 2, cfg(N));
    let asks: Vec<_> = drain_a(&mut acc, t(20))
        .into_iter()
        .filter(|a| matches!(a, JoinAction::AskWitness { .. }))
        .collect();
    assert_eq!(
        asks,
        vec![JoinAction::AskWitness {
            vip: VIP,
            epoch: Epoch(4)
        }]
    );
}

#[test]
fn a_detection_during_the_join_rolls_it_back_on_both_sides() {
    let timing = Timing::new(10 * MS, 3);
    // Before acceptance the detection is about the old peer: nothing undone.
    let mut acc = JoinAcceptor::new(cfg(S), DEFAULT_JOIN_TIMEOUT_NS);
    request(&mut acc, t(10), 1, 1, cfg(N));
    drain_a(&mut acc, t(10));
    acc.on_peer_failed();
    assert!(drain_a(&mut acc, t(10)).is_empty());
    assert!(acc.in_progress());
    // Accepted, address released: the new server's heartbeats stop.
    let mut sm = VipMachine::simplex(VIP, S, Epoch(2), timing);
    let mut acc = JoinAcceptor::new(cfg(S), DEFAULT_JOIN_TIMEOUT_NS);
    accepted(&mut acc, &mut sm);
    acc.on_tasks_started(t(12));
    acc.on_released(t(13), VIP);
    drain_a(&mut acc, t(13));
    acc.on_peer_failed();
    let acts = drain_a(&mut acc, t(14));
    assert!(acts.contains(&JoinAction::Close { conn: 1 }));
    assert!(acts.contains(&JoinAction::Event(JoinEvent::RolledBack {
        node: N,
        why: "the new server's heartbeats stopped".into()
    })));
    apply(&mut sm, t(14), acts);
    assert_eq!(drain_m(&mut sm, t(14)), rollback_actions());
    // The witness refuses: the new server won the address; fenced.
    let mut refused = sm.clone();
    refused.handle(
        t(15),
        Input::GrantRefused {
            epoch: Epoch(4),
            reason: RefuseReason::AlreadyGranted { holder: N },
        },
    );
    assert!(drain_m(&mut refused, t(15)).contains(&Action::Fence { vip: VIP }));
    assert_eq!(refused.mode().tag(), crate::codec::ModeTag::Fenced);
    finish_rollback(&mut sm, t(14));
    assert!(!acc.in_progress());
    acc.on_peer_failed();
    assert!(drain_a(&mut acc, t(15)).is_empty(), "nothing left to undo");
    // The new server: accepted, then the simplex node's heartbeats stop.
    let mut nm = VipMachine::joining(VIP, N, Role::Backup, timing);
    let mut joiner = Joiner::new(cfg(N), t(0), DEFAULT_JOIN_TIMEOUT_NS);
    drain_j(&mut joiner, t(0));
    joiner.on_peer_failed();
    assert!(drain_j(&mut joiner, t(1)).is_empty(), "not accepted yet");
    let accept = JoinMsg::JoinAccept {
        config: cfg(S),
        epoch: Epoch(3),
        vip: VIP,
    };
    joiner.on_message(S, accept);
    apply(&mut nm, t(2), drain_j(&mut joiner, t(2)));
    drain_m(&mut nm, t(2));
    joiner.on_peer_failed();
    let acts = drain_j(&mut joiner, t(3));
    assert!(acts.contains(&JoinAction::Close { conn: JOINER_CONN }));
    assert!(acts.contains(&JoinAction::Event(JoinEvent::RolledBack {
        node: S,
        why: "the simplex node's heartbeats stopped".into()
    })));
    assert_eq!(joiner.state(), JoinerState::Failed);
    apply(&mut nm, t(3), acts);
    assert_eq!(
        drain_m(&mut nm, t(3)),
        vec![Action::StopHeartbeats, Action::StopLogChannel]
    );
}

#[test]
fn silent_joiner_times_out_and_is_rolled_back() {
    let timing = Timing::new(10 * MS, 3);
    let mut sm = VipMachine::simplex(VIP, S, Epoch(2), timing);
    let mut acc = JoinAcceptor::new(cfg(S), 100 * MS);
    accepted(&mut acc, &mut sm);
    assert_eq!(acc.next_deadline(), Some(t(110)));
    assert!(drain_a(&mut acc, t(109)).is_empty());
    let acts = drain_a(&mut acc, t(110));
    assert!(acts.contains(&JoinAction::Close { conn: 1 }));
    apply(&mut sm, t(110), acts);
    assert_eq!(drain_m(&mut sm, t(110)), rollback_actions());
    finish_rollback(&mut sm, t(110));
    // Before acceptance a timeout undoes nothing in the machines.
    let mut acc = JoinAcceptor::new(cfg(S), 100 * MS);
    request(&mut acc, t(0), 1, 1, cfg(N));
    drain_a(&mut acc, t(0));
    let acts = drain_a(&mut acc, t(100));
    assert!(acts
        .iter()
        .all(|a| !matches!(a, JoinAction::Machine { .. })));
    assert!(!acc.in_progress());
}

#[test]
fn witness_refusal_refuses_the_join() {
    let mut acc = JoinAcceptor::new(cfg(S), DEFAULT_JOIN_TIMEOUT_NS);
    request(&mut acc, t(1), 1, 1, cfg(N));
    drain_a(&mut acc, t(1));
    // A refusal for another epoch is not ours.
    let reason = RefuseReason::StaleEpoch {
        current: Epoch(7),
        holder: NodeId(1),
    };
    acc.on_grant_refused(VIP, Epoch(9), reason);
    assert!(drain_a(&mut acc, t(2)).is_empty());
    acc.on_grant_refused(VIP, Epoch(3), reason);
    let acts = drain_a(&mut acc, t(2));
    let (r, detail) = refusal(&acts).expect("refused");
    assert_eq!(r, JoinRefuseReason::NotSimplex);
    assert!(detail.contains("witness"), "{detail}");
    assert!(!acc.in_progress());
}

#[test]
fn joiner_refused_or_misled_fails_and_stops() {
    let timing = Timing::new(10 * MS, 3);
    // Refused: the reason is reported.
    let mut j = Joiner::new(cfg(N), t(0), 100 * MS);
    drain_j(&mut j, t(0));
    j.on_message(
        S,
        JoinMsg::JoinRefuse {
            reason: JoinRefuseReason::ConfigMismatch,
            detail: "net.ipv4.tcp_sack".into(),
        },
    );
    assert_eq!(j.state(), JoinerState::Failed);
    assert!(
        drain_j(&mut j, t(1)).contains(&JoinAction::Event(JoinEvent::JoinFailed {
            reason: JoinRefuseReason::ConfigMismatch,
            detail: "net.ipv4.tcp_sack".into()
        }))
    );
    // An accept from a node configured differently is not trusted.
    let mut j = Joiner::new(cfg(N), t(0), 100 * MS);
    let mut other = cfg(S);
    other.heartbeat_interval_ns = 50 * MS;
    j.on_message(
        S,
        JoinMsg::JoinAccept {
            config: other,
            epoch: Epoch(3),
            vip: VIP,
        },
    );
    assert_eq!(j.state(), JoinerState::Failed);
    // Accepted, then the simplex node goes away: the machine stops.
    let mut nm = VipMachine::joining(VIP, N, Role::Backup, timing);
    let mut j = Joiner::new(cfg(N), t(0), 100 * MS);
    drain_j(&mut j, t(0));
    j.on_message(
        S,
        JoinMsg::JoinAccept {
            config: cfg(S),
            epoch: Epoch(3),
            vip: VIP,
        },
    );
    apply(&mut nm, t(1), drain_j(&mut j, t(1)));
    drain_m(&mut nm, t(1));
    j.on_closed("eof");
    apply(&mut nm, t(2), drain_j(&mut j, t(2)));
    assert_eq!(
        drain_m(&mut nm, t(2)),
        vec![Action::StopHeartbeats, Action::StopLogChannel]
    );
    assert_eq!(nm.mode(), &VipMode::Joining);
    // Silence: the timeout fails the join.
    let mut j = Joiner::new(cfg(N), t(0), 100 * MS);
    drain_j(&mut j, t(0));
    assert!(drain_j(&mut j, t(99)).is_empty());
    drain_j(&mut j, t(100));
    assert_eq!(j.state(), JoinerState::Failed);
}
