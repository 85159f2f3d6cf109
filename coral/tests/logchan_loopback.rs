//! The primary's end of the log channel on a real loopback socket, against a
//! backup that dies (its socket reset) or stops reading (a partition: the
//! channel's writes block): every reply logged after the channel broke
//! waits for the node to go simplex and is then released. A reply failed
//! instead would close its client's connection with requests unanswered
//! (the fault campaign saw `eof` errors at a kill in dual role); one never
//! released would leave them unanswered forever (lost requests at a
//! partition between the servers).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use coral::io::logchan::{LogClient, LogClientConfig};
use coral::io::logged_io::ReplyLogger;
use coral_core::{Epoch, FourTuple, Key, NodeConfig, NodeId};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

fn tuple(port: u16) -> FourTuple {
    FourTuple {
        client_ip: "127.0.0.1".parse().unwrap(),
        client_port: port,
        server_ip: "127.0.0.1".parse().unwrap(),
        server_port: 80,
    }
}

/// A log client toward a backup listening on loopback.
async fn start() -> (LogClient, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let std::net::SocketAddr::V4(backup) = listener.local_addr().unwrap() else {
        unreachable!()
    };
    let client = LogClient::start(
        Key::new(&[7u8; 32]).unwrap(),
        LogClientConfig {
            local: Ipv4Addr::LOCALHOST,
            backup: SocketAddrV4::new(*backup.ip(), backup.port()),
            node: NodeId(1),
            epoch: Epoch(1),
            hello: NodeConfig {
                node: NodeId(1),
                heartbeat_interval_ns: 100_000_000,
                misses: 3,
                vips: vec![],
                kernel: vec![],
                software: "test".into(),
            },
        },
    );
    (client, listener)
}

#[tokio::test]
async fn replies_logged_after_the_backup_died_wait_for_simplex() {
    let (client, listener) = start().await;
    // The backup reads the hello and dies: its socket is reset.
    let (mut sock, _) = listener.accept().await.unwrap();
    let mut buf = [0u8; 256];
    assert!(sock.read(&mut buf).await.unwrap() > 0, "no hello");
    socket2::SockRef::from(&sock)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(sock);
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The first reply's write finds the channel broken; the later ones
    // come while the detector has not declared the backup failed yet.
    let mut replies = Vec::new();
    for port in 1..=3u16 {
        let mut f = client.log_reply(tuple(port), 100, 0, &[b'x'; 1000]);
        tokio::select! {
            r = &mut f => panic!("reply {port} resolved before simplex: {r:?}"),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        replies.push(f);
    }
    assert!(!client.is_connected());

    client.go_simplex();
    for (i, f) in replies.into_iter().enumerate() {
        let r = tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("released by go_simplex");
        assert!(r.is_ok(), "reply {} failed: {r:?}", i + 1);
    }
    // And a reply logged in simplex mode resolves at once.
    client
        .log_reply(tuple(9), 100, 0, &[b'y'; 10])
        .await
        .unwrap();
}

#[tokio::test]
async fn replies_queued_behind_a_blocked_write_are_released_by_simplex() {
    let (client, listener) = start().await;
    // The backup reads the hello, then nothing: as behind a partition, the
    // channel's writes block once the socket buffers are full.
    let (mut sock, _) = listener.accept().await.unwrap();
    let mut buf = [0u8; 256];
    assert!(sock.read(&mut buf).await.unwrap() > 0, "no hello");
    let log = |ports: std::ops::Range<u16>| -> Vec<_> {
        ports
            .map(|port| client.log_reply(tuple(port), 100, 0, &vec![b'x'; 1 << 20]))
            .collect()
    };
    // The channel's task takes a first batch (16 MB) and blocks writing it;
    // the next replies stay queued behind it.
    let mut replies = log(0..16);
    tokio::time::sleep(Duration::from_millis(200)).await;
    replies.extend(log(16..20));
    tokio::select! {
        r = replies.last_mut().unwrap() => panic!("resolved before simplex: {r:?}"),
        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
    }
    client.go_simplex();
    for (i, f) in replies.into_iter().enumerate() {
        let r = tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .unwrap_or_else(|_| panic!("reply {} not released by go_simplex", i + 1));
        assert!(r.is_ok(), "reply {} failed: {r:?}", i + 1);
    }
    drop(sock);
}
