//! The primary's service: the WebStone application on ordinary kernel TCP,
//! listening on the service address (which sits on `lo`), every connection
//! reported to the backup (`ConnOpen`, with the options read from
//! `TCP_INFO`) and served through [`LoggedStream`] so every response is
//! logged before it is written.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use coral_core::CloseKind;
use coral_core::{FourTuple, NegotiatedOptions};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::io::live_conns::{self, LiveConn};
use crate::io::logchan::LogClient;
use crate::io::logged_io::{LoggedStream, ReplyLogger};
use crate::io::repair;

/// Bytes the timestamp option takes in every segment.
const TCPOLEN_TSTAMP_ALIGNED: u32 = 12;

/// The options the backup needs to rebuild this connection, from `TCP_INFO`.
pub fn negotiated_options(fd: std::os::fd::RawFd) -> std::io::Result<NegotiatedOptions> {
    let i = repair::tcp_info(fd)?;
    // The peer's MSS as it advertised it (what TCP_REPAIR_OPTIONS and
    // TCP_MAXSEG take): `snd_mss` is net of the timestamp option.
    let mss = i.snd_mss
        + if i.timestamps {
            TCPOLEN_TSTAMP_ALIGNED
        } else {
            0
        };
    Ok(NegotiatedOptions {
        mss: u16::try_from(mss).unwrap_or(u16::MAX),
        snd_wscale: i.wscale.then_some(i.snd_wscale),
        rcv_wscale: i.wscale.then_some(i.rcv_wscale),
        sack: i.sack,
        timestamps: i.timestamps,
        usec_ts: i.usec_ts,
    })
}

fn tuple_of(peer: SocketAddr, local: SocketAddr) -> Option<FourTuple> {
    match (peer, local) {
        (SocketAddr::V4(p), SocketAddr::V4(l)) => Some(FourTuple {
            client_ip: *p.ip(),
            client_port: p.port(),
            server_ip: *l.ip(),
            server_port: l.port(),
        }),
        _ => None,
    }
}

/// A listener on a service address. `SO_REUSEADDR` lets it share the port
/// with sockets rebuilt by `TCP_REPAIR` (which carry forced reuse) after a
/// takeover.
pub fn listen(addr: std::net::SocketAddrV4) -> std::io::Result<TcpListener> {
    listen_with(addr, false)
}

/// [`listen`] on a service address whose port already holds a takeover's
/// rebuilt sockets (`SO_REUSEPORT` on both sides,
/// [`crate::io::repair::build_in_repair_for_takeover`]): the kernel then
/// skips checking the listener against each of them, a scan that grew with
/// their number.
pub fn listen_beside(addr: std::net::SocketAddrV4) -> std::io::Result<TcpListener> {
    listen_with(addr, true)
}

fn listen_with(addr: std::net::SocketAddrV4, reuse_port: bool) -> std::io::Result<TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::V4(addr).into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

/// Serve one accepted (or rebuilt) connection through log-before-write.
/// `live` is the connection's registration ([`live_conns::register`]),
/// made by whoever created the socket before any byte was written to it;
/// it lasts as long as the connection is served. `log`, when given, hears
/// of the connection's end.
#[allow(clippy::too_many_arguments)]
pub fn spawn_connection(
    stream: tokio::net::TcpStream,
    live: LiveConn,
    tuple: FourTuple,
    logger: Arc<dyn ReplyLogger>,
    log: Option<LogClient>,
    cgi: Arc<workload::cgi::CgiConfig>,
    close_mark: u32,
) {
    tokio::spawn(async move {
        let nudge = live.nudge();
        let _live = live;
        let ending = nudge.ending();
        let io = LoggedStream::new(stream, tuple, logger, close_mark).with_nudge(nudge);
        // The client's address reaches the application (CGI's REMOTE_ADDR).
        let peer = SocketAddr::from((tuple.client_ip, tuple.client_port));
        let r =
            workload::cgi::serve_connection_ending(TokioIo::new(io), cgi, Some(peer), Some(ending))
                .await;
        if let Some(log) = log {
            log.conn_close(
                tuple,
                if r.is_ok() {
                    CloseKind::Fin
                } else {
                    CloseKind::Abort
                },
            );
        }
    });
}

/// The log channel to a server that joined this simplex node
/// ([`join_duplex`]): listeners started without one serve new connections
/// through it from then on.
static JOINED: Mutex<Option<LogClient>> = Mutex::new(None);

/// A new server joined (docs/DESIGN.md 6): connections accepted from now on
/// by listeners serving alone are duplex, logged through `client`
/// (`None`: back to simplex, the join was rolled back).
pub fn join_duplex(client: Option<LogClient>) {
    *JOINED.lock().expect("joined") = client;
}

/// Accept and serve connections on `listener` forever. With `log` (duplex),
/// every connection is reported to the backup with its negotiated options
/// before it is served; `logger` decides when a reply may be written.
/// Without `log`, or once `log` went simplex, a log channel set by
/// [`join_duplex`] takes its place.
pub async fn serve(
    listener: TcpListener,
    logger: Arc<dyn ReplyLogger>,
    log: Option<LogClient>,
    cgi: Arc<workload::cgi::CgiConfig>,
    close_mark: u32,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // Registered (nudge and fence) before anything is written to it.
        let live = live_conns::register(stream.as_raw_fd());
        let _ = stream.set_nodelay(true);
        let Some(tuple) = stream.local_addr().ok().and_then(|l| tuple_of(peer, l)) else {
            continue;
        };
        // A listener whose own channel went simplex (its backup failed:
        // dual role, the survivor's own address) takes a joined server's
        // channel too.
        let joined = match &log {
            Some(c) if !c.is_simplex() => None,
            _ => JOINED.lock().expect("joined").clone(),
        };
        let (logger, log) = match joined {
            Some(c) => (Arc::new(c.clone()) as Arc<dyn ReplyLogger>, Some(c)),
            None => (logger.clone(), log.clone()),
        };
        if let Some(log) = &log {
            match negotiated_options(stream.as_raw_fd()) {
                Ok(opts) => log.conn_open(tuple, opts),
                Err(e) => tracing::warn!(%tuple, "TCP_INFO: {e}"),
            }
        }
        spawn_connection(stream, live, tuple, logger, log, cgi.clone(), close_mark);
    }
}
