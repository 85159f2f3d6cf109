//! The JOIN channel (paper section 3.2, docs/DESIGN.md 6): TCP between a
//! new server and a simplex node, every frame authenticated by the core's
//! codec. This shell only moves frames: the decisions are the core's
//! [`coral_core::JoinAcceptor`] (driven by the node's loop) and
//! [`coral_core::Joiner`].
//!
//! The simplex node's end is a listener started with the node (the only
//! thing reintegration keeps ready at rest: one listening socket and one
//! idle task) and one reader task per connection; what they read reaches the
//! node's loop as [`JoinInput`]s, and the loop answers through
//! [`JoinServer`]. The new server's end is [`JoinLink`].

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};

use anyhow::{anyhow, bail, Context, Result};
use coral_core::{
    Channel, DecoderConfig, Encoder, Epoch, JoinConn, JoinMsg, Key, Message, NodeId, StreamDecoder,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::clock::{unix_ns, Clock};

/// Default TCP port of the JOIN channel (on the simplex node's LAN address).
pub const DEFAULT_JOIN_PORT: u16 = 7014;

/// What the node's loop hears from the JOIN listener.
#[derive(Debug)]
pub enum JoinInput {
    /// A connection was accepted; frames for it go to `writer`.
    Opened {
        /// Its name.
        conn: JoinConn,
        /// The new server's address (its LAN address).
        peer: SocketAddrV4,
        /// Encoded frames to write.
        writer: UnboundedSender<Vec<u8>>,
    },
    /// An authenticated message.
    Message {
        /// When it was read off the connection (node clock).
        at: coral_core::Instant,
        /// Connection.
        conn: JoinConn,
        /// Authenticated sender.
        sender: NodeId,
        /// Its sequence number.
        seq: u64,
        /// The message.
        msg: JoinMsg,
    },
    /// A frame failed the codec (wrong key, garbage, replay): the reader
    /// stopped.
    Reject {
        /// Connection.
        conn: JoinConn,
        /// The codec's name for the reject.
        why: &'static str,
    },
    /// The connection ended.
    Closed {
        /// Connection.
        conn: JoinConn,
    },
}

/// Reads frames from `rd` into `dec` and hands each to `on_frame`; returns
/// why it stopped (EOF, I/O error or a reject).
async fn read_frames(
    rd: &mut (impl AsyncReadExt + Unpin),
    dec: &mut StreamDecoder,
    mut on_frame: impl FnMut(NodeId, u64, JoinMsg) -> bool,
) -> std::result::Result<(), &'static str> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(f) = dec.next_frame() {
            match f {
                Ok(f) => {
                    let Message::Join(m) = f.msg else {
                        return Err("wrong_channel");
                    };
                    if !on_frame(f.header.sender, f.header.seq, m) {
                        return Ok(());
                    }
                }
                Err(r) => return Err(r.name()),
            }
        }
        let n = rd.read(&mut buf).await.map_err(|_| "io")?;
        if n == 0 {
            return Ok(());
        }
        dec.push(&buf[..n]).map_err(|r| r.name())?;
    }
}

/// Start the listener on `local`; returns the receiver of [`JoinInput`]s,
/// each message stamped with `clock` when it was read.
pub async fn listen(
    local: SocketAddrV4,
    key: Key,
    clock: Clock,
) -> Result<UnboundedReceiver<JoinInput>> {
    let listener = TcpListener::bind(local)
        .await
        .with_context(|| format!("join port {local}"))?;
    let (tx, rx) = unbounded_channel();
    tokio::spawn(async move {
        let mut next: JoinConn = 1;
        loop {
            let Ok((stream, SocketAddr::V4(peer))) = listener.accept().await else {
                continue;
            };
            let conn = next;
            next += 1;
            let _ = stream.set_nodelay(true);
            let (mut rd, mut wr) = stream.into_split();
            let (wtx, mut wrx) = unbounded_channel::<Vec<u8>>();
            if tx
                .send(JoinInput::Opened {
                    conn,
                    peer,
                    writer: wtx,
                })
                .is_err()
            {
                return;
            }
            // Writer: until the loop drops the sender (close), then FIN.
            tokio::spawn(async move {
                while let Some(b) = wrx.recv().await {
                    if wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                let _ = wr.shutdown().await;
            });
            let (tx, key) = (tx.clone(), key.clone());
            tokio::spawn(async move {
                let mut dec = StreamDecoder::new(key, DecoderConfig::for_channel(Channel::Join));
                let r = read_frames(&mut rd, &mut dec, |sender, seq, msg| {
                    tx.send(JoinInput::Message {
                        at: clock.now(),
                        conn,
                        sender,
                        seq,
                        msg,
                    })
                    .is_ok()
                })
                .await;
                let _ = match r {
                    Err(why) if why != "io" => tx.send(JoinInput::Reject { conn, why }),
                    _ => tx.send(JoinInput::Closed { conn }),
                };
            });
        }
    });
    Ok(rx)
}

/// The simplex node's writers, one per open JOIN connection.
pub struct JoinServer {
    enc: Encoder,
    conns: HashMap<JoinConn, (SocketAddrV4, UnboundedSender<Vec<u8>>)>,
}

impl JoinServer {
    /// Frames from `me`, stamped with `epoch` (raised at each accept).
    pub fn new(key: Key, me: NodeId, epoch: Epoch) -> Self {
        JoinServer {
            enc: Encoder::new(key, me, epoch, unix_ns()),
            conns: HashMap::new(),
        }
    }

    /// A connection was accepted.
    pub fn opened(&mut self, conn: JoinConn, peer: SocketAddrV4, w: UnboundedSender<Vec<u8>>) {
        self.conns.insert(conn, (peer, w));
    }

    /// The address a connection came from.
    pub fn peer(&self, conn: JoinConn) -> Option<SocketAddrV4> {
        self.conns.get(&conn).map(|(p, _)| *p)
    }

    /// Stamp later frames with `epoch`.
    pub fn set_epoch(&mut self, epoch: Epoch) {
        if epoch > self.enc.epoch() {
            self.enc.set_epoch(epoch);
        }
    }

    /// Encode and queue `msg` on `conn` (dropped if it is gone).
    pub fn send(&mut self, conn: JoinConn, msg: JoinMsg) -> Result<()> {
        let bytes = self
            .enc
            .encode_to_vec(&Message::Join(msg))
            .map_err(|e| anyhow!("encoding a join message: {e}"))?;
        if let Some((_, w)) = self.conns.get(&conn) {
            let _ = w.send(bytes);
        }
        Ok(())
    }

    /// Close `conn` once what was queued is written.
    pub fn close(&mut self, conn: JoinConn) {
        self.conns.remove(&conn);
    }
}

/// The new server's end of the JOIN channel.
pub struct JoinLink {
    enc: Encoder,
    stream: TcpStream,
    dec: StreamDecoder,
    /// Our address on the connection (the LAN address the simplex node sees).
    pub local: SocketAddrV4,
}

impl JoinLink {
    /// Connect from `local` (our LAN address, any port) to the simplex node.
    pub async fn connect(to: SocketAddrV4, key: Key, me: NodeId) -> Result<JoinLink> {
        let stream = TcpStream::connect(to)
            .await
            .with_context(|| format!("connecting to the join port {to}"))?;
        let _ = stream.set_nodelay(true);
        let SocketAddr::V4(local) = stream.local_addr()? else {
            bail!("join over IPv6");
        };
        Ok(JoinLink {
            enc: Encoder::new(key.clone(), me, Epoch(0), unix_ns()),
            dec: StreamDecoder::new(key, DecoderConfig::for_channel(Channel::Join)),
            stream,
            local,
        })
    }

    /// Send one message.
    pub async fn send(&mut self, msg: JoinMsg) -> Result<()> {
        let bytes = self
            .enc
            .encode_to_vec(&Message::Join(msg))
            .map_err(|e| anyhow!("encoding a join message: {e}"))?;
        self.stream.write_all(&bytes).await?;
        Ok(())
    }

    /// The next authenticated message and its sender; an error says why the
    /// channel ended (`eof`, `io` or the codec's reject name).
    pub async fn recv(&mut self) -> std::result::Result<(NodeId, JoinMsg), &'static str> {
        let mut got = None;
        let r = read_frames(&mut self.stream, &mut self.dec, |sender, _, msg| {
            got = Some((sender, msg));
            false
        })
        .await;
        match (got, r) {
            (Some(m), _) => Ok(m),
            (None, Ok(())) => Err("eof"),
            (None, Err(why)) => Err(why),
        }
    }

    /// Close the connection (FIN).
    pub async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Hand the connection to the node's loop: a reader task passes every
    /// authenticated message (or why the channel ended, once) to the
    /// receiver; [`JoinWriter`] queues frames for a writer task.
    pub fn into_node(self) -> (JoinWriter, UnboundedReceiver<JoinerInput>) {
        let (mut rd, mut wr) = self.stream.into_split();
        let (tx, rx) = unbounded_channel();
        let mut dec = self.dec;
        tokio::spawn(async move {
            let r = read_frames(&mut rd, &mut dec, |sender, _, msg| {
                tx.send(JoinerInput::Message(sender, msg)).is_ok()
            })
            .await;
            let _ = tx.send(JoinerInput::Closed(match r {
                Ok(()) => "eof",
                Err(why) => why,
            }));
        });
        let (wtx, mut wrx) = unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(b) = wrx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        (
            JoinWriter {
                enc: self.enc,
                tx: Some(wtx),
            },
            rx,
        )
    }
}

/// What the new server's loop hears on its JOIN connection.
#[derive(Debug)]
pub enum JoinerInput {
    /// An authenticated message and its sender.
    Message(NodeId, JoinMsg),
    /// The channel ended (`eof`, `io` or the codec's reject name).
    Closed(&'static str),
}

/// The new server's writer, once the node's loop drives the join.
pub struct JoinWriter {
    enc: Encoder,
    tx: Option<UnboundedSender<Vec<u8>>>,
}

impl JoinWriter {
    /// Encode and queue `msg` (dropped once closed).
    pub fn send(&mut self, msg: JoinMsg) -> Result<()> {
        let bytes = self
            .enc
            .encode_to_vec(&Message::Join(msg))
            .map_err(|e| anyhow!("encoding a join message: {e}"))?;
        if let Some(tx) = &self.tx {
            let _ = tx.send(bytes);
        }
        Ok(())
    }

    /// Close the connection once what was queued is written.
    pub fn close(&mut self) {
        self.tx = None;
    }
}
