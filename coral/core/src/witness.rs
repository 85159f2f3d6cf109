//! The witness's decision logic (docs/DESIGN.md section 4), sans-IO.
//!
//! The witness grants each service address to at most one node per epoch,
//! and an address's epoch only grows. Rules for a request (vip, node, epoch):
//!
//! - the request's node must be the authenticated sender (and, if an
//!   allow-list is set, a known node); the address must be known if an
//!   address list is set;
//! - no record yet, or `epoch` above the recorded one: granted, recorded;
//! - `epoch` equal to the recorded one and the same node: granted again
//!   (an answer to a retransmitted request; nothing changes);
//! - `epoch` equal, another node: refused, `AlreadyGranted`;
//! - `epoch` below the recorded one: refused, `StaleEpoch`;
//! - another address already granted in `epoch` to another node: refused,
//!   `AlreadyGranted` (that node): an epoch has one winner. The witness
//!   serves one pair (its key is the pair's), and after a failure one node
//!   serves every address. In dual role a partition between the servers
//!   makes each ask for its own address first; granting each its own would
//!   leave both refused the other's, and both would fence.
//!
//! Every decision is queued as a [`WitnessEvent`] for the shell's event log.
//! The records must outlive a witness restart, or a restarted witness could
//! grant an epoch twice: the shell persists [`Witness::records`] after every
//! grant, before sending it, and restores them with [`Witness::from_records`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;

use crate::codec::{Frame, Message, RefuseReason, WitnessMsg};
use crate::types::{Epoch, Instant, NodeId};

/// Who holds an address, since which epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Record {
    /// Current epoch.
    pub epoch: Epoch,
    /// Its holder.
    pub holder: NodeId,
}

/// The outcome of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// New grant recorded.
    Granted,
    /// Same node, same epoch: the grant repeated, nothing changed.
    Regranted,
    /// Refused.
    Refused(RefuseReason),
}

/// One logged decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WitnessEvent {
    /// When.
    pub at: Instant,
    /// Authenticated sender of the request.
    pub sender: NodeId,
    /// Address.
    pub vip: Ipv4Addr,
    /// Node named in the request.
    pub node: NodeId,
    /// Epoch requested.
    pub epoch: Epoch,
    /// Outcome.
    pub decision: Decision,
}

/// The witness state.
#[derive(Debug, Clone, Default)]
pub struct Witness {
    records: BTreeMap<Ipv4Addr, Record>,
    nodes: Option<BTreeSet<NodeId>>,
    vips: Option<BTreeSet<Ipv4Addr>>,
    events: VecDeque<WitnessEvent>,
}

impl Witness {
    /// A witness that accepts any authenticated node and any address.
    pub fn new() -> Self {
        Witness::default()
    }

    /// Restrict requests to these nodes and addresses.
    pub fn with_allowed(
        mut self,
        nodes: impl IntoIterator<Item = NodeId>,
        vips: impl IntoIterator<Item = Ipv4Addr>,
    ) -> Self {
        self.nodes = Some(nodes.into_iter().collect());
        self.vips = Some(vips.into_iter().collect());
        self
    }

    /// A witness resuming from persisted records.
    pub fn from_records(records: impl IntoIterator<Item = (Ipv4Addr, Record)>) -> Self {
        Witness {
            records: records.into_iter().collect(),
            ..Witness::default()
        }
    }

    /// The current record of every address ever granted.
    pub fn records(&self) -> impl Iterator<Item = (Ipv4Addr, Record)> + '_ {
        self.records.iter().map(|(v, r)| (*v, *r))
    }

    /// The current record of `vip`.
    pub fn record(&self, vip: Ipv4Addr) -> Option<Record> {
        self.records.get(&vip).copied()
    }

    /// Decide a request from the authenticated `sender` and return the reply
    /// to send back (a `Grant` or a `Refuse`).
    pub fn on_request(
        &mut self,
        now: Instant,
        sender: NodeId,
        vip: Ipv4Addr,
        node: NodeId,
        epoch: Epoch,
    ) -> WitnessMsg {
        let decision = self.decide(sender, vip, node, epoch);
        if decision == Decision::Granted {
            self.records.insert(
                vip,
                Record {
                    epoch,
                    holder: node,
                },
            );
        }
        self.events.push_back(WitnessEvent {
            at: now,
            sender,
            vip,
            node,
            epoch,
            decision,
        });
        match decision {
            Decision::Granted | Decision::Regranted => WitnessMsg::Grant { vip, node, epoch },
            Decision::Refused(reason) => WitnessMsg::Refuse {
                vip,
                node,
                epoch,
                reason,
            },
        }
    }

    fn decide(&self, sender: NodeId, vip: Ipv4Addr, node: NodeId, epoch: Epoch) -> Decision {
        if node != sender || self.nodes.as_ref().is_some_and(|n| !n.contains(&node)) {
            return Decision::Refused(RefuseReason::UnknownNode);
        }
        if self.vips.as_ref().is_some_and(|v| !v.contains(&vip)) {
            return Decision::Refused(RefuseReason::UnknownVip);
        }
        let own = match self.records.get(&vip) {
            None => Decision::Granted,
            Some(r) if epoch > r.epoch => Decision::Granted,
            Some(r) if epoch == r.epoch && node == r.holder => Decision::Regranted,
            Some(r) if epoch == r.epoch => {
                Decision::Refused(RefuseReason::AlreadyGranted { holder: r.holder })
            }
            Some(r) => Decision::Refused(RefuseReason::StaleEpoch {
                current: r.epoch,
                holder: r.holder,
            }),
        };
        // An epoch has one winner across the addresses.
        let winner = self
            .records
            .iter()
            .find(|(v, r)| **v != vip && r.epoch == epoch && r.holder != node);
        match (own, winner) {
            (Decision::Granted, Some((_, r))) => {
                Decision::Refused(RefuseReason::AlreadyGranted { holder: r.holder })
            }
            _ => own,
        }
    }

    /// Decide an authenticated frame from the WITNESS channel: a `Request`
    /// yields the reply; anything else (a grant or refusal sent to the
    /// witness) is ignored.
    pub fn on_frame(&mut self, now: Instant, frame: &Frame) -> Option<WitnessMsg> {
        match &frame.msg {
            Message::Witness(WitnessMsg::Request { vip, node, epoch }) => {
                Some(self.on_request(now, frame.header.sender, *vip, *node, *epoch))
            }
            _ => None,
        }
    }

    /// The next logged decision, oldest first.
    pub fn poll_event(&mut self) -> Option<WitnessEvent> {
        self.events.pop_front()
    }
}

/// Why a witness state file could not be read. Lines are numbered from 1;
/// quoted text is escaped and clipped, so a hostile file cannot blow up
/// the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateFileError {
    /// A line is not three fields.
    #[error("line {line}: expected `VIP EPOCH HOLDER`, got \"{text}\"")]
    Shape {
        /// Line number.
        line: usize,
        /// The line (escaped, clipped).
        text: String,
    },
    /// The first field is not an IPv4 address.
    #[error("line {line}: address \"{text}\" is not an IPv4 address")]
    Address {
        /// Line number.
        line: usize,
        /// The field (escaped, clipped).
        text: String,
    },
    /// The second field is not a decimal epoch.
    #[error("line {line}: epoch \"{text}\" is not a number")]
    Epoch {
        /// Line number.
        line: usize,
        /// The field (escaped, clipped).
        text: String,
    },
    /// The third field is not a decimal node id.
    #[error("line {line}: holder \"{text}\" is not a node id")]
    Holder {
        /// Line number.
        line: usize,
        /// The field (escaped, clipped).
        text: String,
    },
    /// An address has two records.
    #[error("line {line}: {vip} listed twice")]
    Duplicate {
        /// Line number.
        line: usize,
        /// The address.
        vip: Ipv4Addr,
    },
    /// A two-slot file (`witness_file`) with no slot to trust.
    #[error("state file slots: {why}")]
    Slots {
        /// What is wrong.
        why: &'static str,
    },
}

/// At most this many characters of a bad line, once escaped, go into an
/// error.
const CLIP: usize = 80;

/// `s` escaped (control characters and quotes as `\n`, `\u{18}`...) and cut
/// to [`CLIP`] characters, `...` marking a cut.
fn clip(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let e = c.escape_debug().to_string();
        if out.len() + e.len() > CLIP {
            out.push_str("...");
            break;
        }
        out.push_str(&e);
    }
    out
}

/// Parse the witness's state file: one record per line, `VIP EPOCH HOLDER`
/// (decimal epoch and node id), blank lines and `#` comments ignored, each
/// address at most once. The inverse of [`render_state`].
pub fn parse_state(text: &str) -> Result<Vec<(Ipv4Addr, Record)>, StateFileError> {
    let mut out: Vec<(Ipv4Addr, Record)> = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        let (Some(vip), Some(epoch), Some(holder), None) = (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(StateFileError::Shape {
                line: line_no,
                text: clip(line),
            });
        };
        let vip: Ipv4Addr = vip.parse().map_err(|_| StateFileError::Address {
            line: line_no,
            text: clip(vip),
        })?;
        let epoch: u64 = epoch.parse().map_err(|_| StateFileError::Epoch {
            line: line_no,
            text: clip(epoch),
        })?;
        let holder: u32 = holder.parse().map_err(|_| StateFileError::Holder {
            line: line_no,
            text: clip(holder),
        })?;
        if !seen.insert(vip) {
            return Err(StateFileError::Duplicate { line: line_no, vip });
        }
        out.push((
            vip,
            Record {
                epoch: Epoch(epoch),
                holder: NodeId(holder),
            },
        ));
    }
    Ok(out)
}

/// Render records as a state file (read back by [`parse_state`]).
pub fn render_state(records: impl Iterator<Item = (Ipv4Addr, Record)>) -> String {
    let mut s = String::from("# coral witness records: VIP EPOCH HOLDER\n");
    for (v, r) in records {
        s.push_str(&format!("{v} {} {}\n", r.epoch.0, r.holder.0));
    }
    s
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codec::{Channel, DatagramDecoder, DecoderConfig, Encoder, Key};

    const V1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

    #[test]
    fn state_file_round_trips_and_names_bad_lines() {
        let recs = vec![
            (
                V1,
                Record {
                    epoch: Epoch(u64::MAX),
                    holder: NodeId(2),
                },
            ),
            (
                Ipv4Addr::new(192, 0, 2, 101),
                Record {
                    epoch: Epoch(0),
                    holder: NodeId(u32::MAX),
                },
            ),
        ];
        let text = render_state(recs.iter().copied());
        assert_eq!(parse_state(&text).unwrap(), recs);
        assert_eq!(
            parse_state("\n  # c\n\t192.0.2.100\t3  1 \r\n")
                .unwrap()
                .len(),
            1
        );
        let long = format!("192.0.2.100 1 1 {}", "x".repeat(10_000));
        let ctrl = "\u{18}".repeat(100);
        for (bad, needle) in [
            ("192.0.2.100 3", "line 1: expected"),
            (long.as_str(), "..."),
            ("\n300.0.0.1 1 1", "line 2: address"),
            ("192.0.2.100 -1 1", "epoch"),
            ("192.0.2.100 18446744073709551616 1", "epoch"),
            ("192.0.2.100 1 4294967296", "holder"),
            (
                "192.0.2.100 1 1\n192.0.2.100 2 1",
                "line 2: 192.0.2.100 listed twice",
            ),
                    // Found by the witness_state fuzz target: a control character
            // escapes to up to 10 bytes, so clipping before escaping let a
            // short line make a long message.
            (
                "1\u{0}92]0ggggggggg\u{0}\u{0}\u{0}\u{0}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18}\u{18} \u{0}\u{0}\u{0}\u{8}",
                "expected",
            ),
            (&ctrl, "\\u{18}"),
        ] {
            let e = parse_state(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
            assert!(
                e.len() < 200,
                "error message not clipped: {} bytes",
                e.len()
            );
        }
    }
    const V2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 101);
    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);

    fn now() -> Instant {
        Instant(42)
    }

    #[test]
    fn one_grant_per_epoch() {
        let mut w = Witness::new();
        assert_eq!(
            w.on_request(now(), A, V1, A, Epoch(1)),
            WitnessMsg::Grant {
                vip: V1,
                node: A,
                epoch: Epoch(1)
            }
        );
        // The other node asks for the same epoch: refused.
        assert_eq!(
            w.on_request(now(), B, V1, B, Epoch(1)),
            WitnessMsg::Refuse {
                vip: V1,
                node: B,
                epoch: Epoch(1),
                reason: RefuseReason::AlreadyGranted { holder: A }
            }
        );
        // The holder's retransmission is answered with the same grant.
        assert_eq!(
            w.on_request(now(), A, V1, A, Epoch(1)),
            WitnessMsg::Grant {
                vip: V1,
                node: A,
                epoch: Epoch(1)
            }
        );
        // Another address in another epoch is granted on its own.
        assert_eq!(
            w.on_request(now(), B, V2, B, Epoch(3)),
            WitnessMsg::Grant {
                vip: V2,
                node: B,
                epoch: Epoch(3)
            }
        );
        // A later epoch moves the address; the old one is stale.
        assert_eq!(
            w.on_request(now(), B, V1, B, Epoch(2)),
            WitnessMsg::Grant {
                vip: V1,
                node: B,
                epoch: Epoch(2)
            }
        );
        assert_eq!(
            w.on_request(now(), A, V1, A, Epoch(1)),
            WitnessMsg::Refuse {
                vip: V1,
                node: A,
                epoch: Epoch(1),
                reason: RefuseReason::StaleEpoch {
                    current: Epoch(2),
                    holder: B
                }
            }
        );
        assert_eq!(
            w.record(V1),
            Some(Record {
                epoch: Epoch(2),
                holder: B
            })
        );
        let decisions: Vec<_> = std::iter::from_fn(|| w.poll_event())
            .map(|e| e.decision)
            .collect();
        assert_eq!(
            decisions,
            vec![
                Decision::Granted,
                Decision::Refused(RefuseReason::AlreadyGranted { holder: A }),
                Decision::Regranted,
                Decision::Granted,
                Decision::Granted,
                Decision::Refused(RefuseReason::StaleEpoch {
                    current: Epoch(2),
                    holder: B
                }),
            ]
        );
    }

    /// Dual role, a partition between the servers: each node asks for its
    /// own address first, then for the other's. The first grant of the
    /// epoch names its winner; the other node is refused both, and fences.
    #[test]
    fn an_epoch_has_one_winner_across_addresses() {
        let mut w = Witness::new();
        let grant = |vip, node| WitnessMsg::Grant {
            vip,
            node,
            epoch: Epoch(2),
        };
        let refuse = |vip, node| WitnessMsg::Refuse {
            vip,
            node,
            epoch: Epoch(2),
            reason: RefuseReason::AlreadyGranted { holder: A },
        };
        assert_eq!(w.on_request(now(), A, V1, A, Epoch(2)), grant(V1, A));
        assert_eq!(w.on_request(now(), B, V2, B, Epoch(2)), refuse(V2, B));
        assert_eq!(w.on_request(now(), A, V2, A, Epoch(2)), grant(V2, A));
        assert_eq!(w.on_request(now(), B, V1, B, Epoch(2)), refuse(V1, B));
        assert_eq!(w.record(V2).map(|r| r.holder), Some(A));
        // A retransmission is still answered; the next epoch is open.
        assert_eq!(w.on_request(now(), A, V2, A, Epoch(2)), grant(V2, A));
        assert_eq!(
            w.on_request(now(), B, V2, B, Epoch(3)),
            WitnessMsg::Grant {
                vip: V2,
                node: B,
                epoch: Epoch(3)
            }
        );
    }

    #[test]
    fn identity_and_allow_lists() {
        let mut w = Witness::new().with_allowed([A, B], [V1]);
        // A asks on B's behalf.
        assert!(matches!(
            w.on_request(now(), A, V1, B, Epoch(1)),
            WitnessMsg::Refuse {
                reason: RefuseReason::UnknownNode,
                ..
            }
        ));
        assert!(matches!(
            w.on_request(now(), NodeId(9), V1, NodeId(9), Epoch(1)),
            WitnessMsg::Refuse {
                reason: RefuseReason::UnknownNode,
                ..
            }
        ));
        assert!(matches!(
            w.on_request(now(), A, V2, A, Epoch(1)),
            WitnessMsg::Refuse {
                reason: RefuseReason::UnknownVip,
                ..
            }
        ));
        assert_eq!(w.records().count(), 0);
    }

    #[test]
    fn restored_records_keep_epochs() {
        let mut w = Witness::new();
        w.on_request(now(), A, V1, A, Epoch(5));
        let saved: Vec<_> = w.records().collect();
        let mut w2 = Witness::from_records(saved);
        assert!(matches!(
            w2.on_request(now(), B, V1, B, Epoch(5)),
            WitnessMsg::Refuse { .. }
        ));
    }

    #[test]
    fn decides_decoded_frames() {
        let key = Key::new(&[7u8; 32]).unwrap();
        let wire = Encoder::new(key.clone(), B, Epoch(0), 1)
            .encode_to_vec(&Message::Witness(WitnessMsg::Request {
                vip: V1,
                node: B,
                epoch: Epoch(1),
            }))
            .unwrap();
        let frame = DatagramDecoder::new(key, DecoderConfig::for_channel(Channel::Witness))
            .decode(&wire)
            .unwrap();
        let mut w = Witness::new();
        assert_eq!(
            w.on_frame(now(), &frame),
            Some(WitnessMsg::Grant {
                vip: V1,
                node: B,
                epoch: Epoch(1)
            })
        );
        assert_eq!(w.poll_event().map(|e| (e.sender, e.at)), Some((B, now())));
    }

    proptest! {
        /// Whatever the interleaving of requests, no (address, epoch) is ever
        /// granted to two nodes, and each address's recorded epoch never falls.
        #[test]
        fn never_two_holders(reqs in prop::collection::vec((0u32..3, 0usize..2, 0u64..6), 0..60)) {
            let vips = [V1, V2];
            let mut w = Witness::new();
            let mut granted: BTreeMap<(Ipv4Addr, Epoch), NodeId> = BTreeMap::new();
            let mut last: BTreeMap<Ipv4Addr, Epoch> = BTreeMap::new();
            for (n, v, e) in reqs {
                let (node, vip, epoch) = (NodeId(n), vips[v], Epoch(e));
                if let WitnessMsg::Grant { .. } = w.on_request(now(), node, vip, node, epoch) {
                    let holder = *granted.entry((vip, epoch)).or_insert(node);
                    prop_assert_eq!(holder, node);
                }
                if let Some(r) = w.record(vip) {
                    let prev = last.insert(vip, r.epoch).unwrap_or(Epoch(0));
                    prop_assert!(r.epoch >= prev);
                }
            }
        }
    }
}
