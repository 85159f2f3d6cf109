//! The primary's service: the WebStone application on ordinary kernel TCP,
//! listening on the service address (which sits on `lo`), every connection
//! reported to the backup (`ConnOpen`, with the options read from
//! `TCP_INFO`) and served through [`LoggedStream`] so every response is
//! logged before it is written.

use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use coral_core::codec::CloseKind;
use coral_core::types::{FourTuple, NegotiatedOptions};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::logchan::LogClient;
use crate::logged_io::{LoggedStream, ReplyLogger};
use crate::repair;

/// The options the backup needs to rebuild this connection, from `TCP_INFO`.
pub fn negotiated_options(fd: std::os::fd::RawFd) -> std::io::Result<NegotiatedOptions> {
    let i = repair::tcp_info(fd)?;
    Ok(NegotiatedOptions {
        mss: u16::try_from(i.snd_mss).unwrap_or(u16::MAX),
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

/// Accept and serve connections on `vip` forever. `close_mark` is the
/// node's intentional-close mark.
pub async fn serve(
    vip: SocketAddrV4,
    log: LogClient,
    cgi: Arc<workload::cgi::CgiConfig>,
    close_mark: u32,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(SocketAddr::V4(vip)).await?;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("coral: accept on {vip}: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(tuple) = stream.local_addr().ok().and_then(|l| tuple_of(peer, l)) else {
            continue;
        };
        match negotiated_options(stream.as_raw_fd()) {
            Ok(opts) => log.conn_open(tuple, opts),
            Err(e) => eprintln!("coral: TCP_INFO for {tuple}: {e}"),
        }
        let logger: Arc<dyn ReplyLogger> = Arc::new(log.clone());
        let log = log.clone();
        let cgi = cgi.clone();
        tokio::spawn(async move {
            let io = LoggedStream::new(stream, tuple, logger, close_mark);
            let r = workload::cgi::serve_connection(TokioIo::new(io), cgi).await;
            log.conn_close(
                tuple,
                if r.is_ok() {
                    CloseKind::Fin
                } else {
                    CloseKind::Abort
                },
            );
        });
    }
}
