//! Grants: the node's side of the witness channel. A machine (or a join)
//! asks for an address in an epoch, the witness's authenticated replies
//! come back as the machines' inputs. Without a witness every request is
//! granted at once ([`coral_core::VipMachine::without_witness`]): the same
//! steps, none waited for.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use coral_core::{
    Channel, DatagramDecoder, DecoderConfig, Encoder, Epoch, Input, Key, Message, NodeId,
    WitnessMsg,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::clock::unix_ns;
use crate::events::EventLog;

/// The epoch a node starts in (witness grants raise it; docs/DESIGN.md 4).
pub const START_EPOCH: Epoch = Epoch(1);

/// The node's grant requests: to the witness, or (none configured)
/// granted at once.
pub struct Grants {
    client: Option<Client>,
    me: NodeId,
}

/// The channel to a configured witness.
struct Client {
    sock: Arc<UdpSocket>,
    to: SocketAddrV4,
    enc: Encoder,
    /// First request of the current round (for the round-trip event).
    asked_at: Option<Instant>,
}

impl Grants {
    /// Node `me`'s channel to the witness at `to` (`None`: no witness)
    /// from `own`, under the pair's `key`: a socket, and a task passing on
    /// authenticated replies (the receiver is never fed without a witness).
    pub async fn open(
        to: Option<SocketAddrV4>,
        own: SocketAddrV4,
        key: Key,
        me: NodeId,
    ) -> Result<(Grants, UnboundedReceiver<WitnessMsg>)> {
        let (wtx, wrx) = unbounded_channel::<WitnessMsg>();
        let Some(to) = to else {
            return Ok((Grants { client: None, me }, wrx));
        };
        let sock = Arc::new(
            UdpSocket::bind(own)
                .await
                .with_context(|| format!("witness socket {own}"))?,
        );
        tokio::spawn(pass_replies(sock.clone(), to, key.clone(), wtx));
        let client = Client {
            sock,
            to,
            enc: Encoder::new(key, me, START_EPOCH, unix_ns()),
            asked_at: None,
        };
        let grants = Grants {
            client: Some(client),
            me,
        };
        Ok((grants, wrx))
    }

    /// This node.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// Send (or resend) a request for `vip` in `epoch` for `node`. Without
    /// a witness nothing is sent and the grant is returned at once, as the
    /// input the asker gets.
    pub async fn ask(
        &mut self,
        events: &EventLog,
        vip: Ipv4Addr,
        node: NodeId,
        epoch: Epoch,
    ) -> Option<Input> {
        match &mut self.client {
            Some(c) => {
                c.ask(events, vip, node, epoch).await;
                None
            }
            None => Some(Input::GrantReceived { epoch }),
        }
    }

    /// A reply for this node: recorded (with the round trip since the
    /// round's first request) and turned into the machine's input.
    pub fn on_reply(&mut self, m: WitnessMsg, events: &EventLog) -> Option<(Ipv4Addr, Input)> {
        let me = self.me;
        let rtt = self
            .client
            .as_mut()?
            .asked_at
            .take()
            .map_or(f64::NAN, |t| t.elapsed().as_secs_f64() * 1e3);
        match m {
            WitnessMsg::Grant { vip, node, epoch } if node == me => {
                events.record(
                    "witness-grant",
                    &format!("vip={vip} epoch={} rtt_ms={rtt:.3}", epoch.0),
                );
                Some((vip, Input::GrantReceived { epoch }))
            }
            WitnessMsg::Refuse {
                vip,
                node,
                epoch,
                reason,
            } if node == me => {
                events.record(
                    "witness-refused",
                    &format!(
                        "vip={vip} epoch={} reason={reason:?} rtt_ms={rtt:.3}",
                        epoch.0
                    ),
                );
                Some((vip, Input::GrantRefused { epoch, reason }))
            }
            _ => None,
        }
    }
}

impl Client {
    async fn ask(&mut self, events: &EventLog, vip: Ipv4Addr, node: NodeId, epoch: Epoch) {
        let msg = Message::Witness(WitnessMsg::Request { vip, node, epoch });
        let d = match self.enc.encode_to_vec(&msg) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("encoding a witness request: {e}");
                return;
            }
        };
        let first = self.asked_at.is_none();
        if first {
            self.asked_at = Some(Instant::now());
        }
        let sent = self.sock.send_to(&d, self.to).await;
        if first {
            events.record(
                "witness-ask",
                &format!("vip={vip} epoch={} sent={}", epoch.0, sent.is_ok()),
            );
        }
    }
}

/// The reply task: every authenticated witness message from `to` goes to
/// the node's loop, until the loop is gone.
async fn pass_replies(
    sock: Arc<UdpSocket>,
    to: SocketAddrV4,
    key: Key,
    tx: UnboundedSender<WitnessMsg>,
) {
    let mut dec = DatagramDecoder::new(key, DecoderConfig::for_channel(Channel::Witness));
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        if from != SocketAddr::V4(to) {
            continue;
        }
        if let Ok(f) = dec.decode(&buf[..n]) {
            if let Message::Witness(m) = f.msg {
                if tx.send(m).is_err() {
                    return;
                }
            }
        }
    }
}
