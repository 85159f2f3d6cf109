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
                primary_for: vec![],
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

/// A runtime whose workers write deferred log entries when they park, as
/// the node's is built.
fn runtime_with_park_flush() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_park(coral::io::logchan::flush_deferred)
        .build()
        .unwrap()
}

/// Entries logged while a worker is busy wait for it to run out of work and
/// then go in one write: the backup's first read after the busy spell holds
/// all of them (one ack), and none arrived before it ended.
#[test]
fn entries_logged_in_one_burst_of_work_go_in_one_write_when_the_worker_parks() {
    use coral_core::{Channel, DecoderConfig, Encoder, LogMsg, Message, StreamDecoder};
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    let key = Key::new(&[7u8; 32]).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let std::net::SocketAddr::V4(backup) = listener.local_addr().unwrap() else {
        unreachable!()
    };
    // The backup: answers the hello, then acks each read's entries and
    // notes when each read came and how many replies it held.
    let reads: Arc<Mutex<Vec<(Instant, usize)>>> = Arc::default();
    let seen = reads.clone();
    let k = key.clone();
    let backup_thread = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut enc = Encoder::new(k.clone(), NodeId(2), Epoch(1), 1);
        let mut dec = StreamDecoder::new(k, DecoderConfig::for_channel(Channel::Log));
        let mut buf = vec![0u8; 256 * 1024];
        let mut said_hello = false;
        let mut replies_seen = 0;
        while replies_seen < 10 {
            let n = match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let at = Instant::now();
            dec.push(&buf[..n]).unwrap();
            let (mut replies, mut last) = (0, None);
            while let Some(f) = dec.next_frame() {
                match f.unwrap().msg {
                    Message::Log(LogMsg::Hello(h)) if !said_hello => {
                        said_hello = true;
                        let mut out = Vec::new();
                        enc.encode(&Message::Log(LogMsg::Hello(h)), &mut out)
                            .unwrap();
                        s.write_all(&out).unwrap();
                    }
                    Message::Log(LogMsg::Reply { id, .. }) => {
                        replies += 1;
                        last = Some(id);
                    }
                    _ => {}
                }
            }
            if let Some(id) = last {
                seen.lock().unwrap().push((at, replies));
                replies_seen += replies;
                let mut out = Vec::new();
                enc.encode(&Message::Log(LogMsg::LogAck { id }), &mut out)
                    .unwrap();
                s.write_all(&out).unwrap();
            }
        }
    });
    let rt = runtime_with_park_flush();
    let busy_end = rt.block_on(async move {
        let client = LogClient::start(
            key,
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
                    primary_for: vec![],
                },
            },
        );
        assert!(client.wait_connected(Duration::from_secs(5)).await);
        // Let both workers park once (a worker defers only after that).
        tokio::time::sleep(Duration::from_millis(50)).await;
        tokio::spawn(async move {
            let replies: Vec<_> = (1..=10u16)
                .map(|p| client.log_reply(tuple(p), 100, 0, &[b'x'; 1000]))
                .collect();
            // The worker stays busy: nothing it deferred is written yet.
            std::thread::sleep(Duration::from_millis(200));
            let busy_end = Instant::now();
            for f in replies {
                tokio::time::timeout(Duration::from_secs(5), f)
                    .await
                    .expect("acked")
                    .unwrap();
            }
            busy_end
        })
        .await
        .unwrap()
    });
    backup_thread.join().unwrap();
    let reads = reads.lock().unwrap().clone();
    assert_eq!(reads.len(), 1, "one write, one read, one ack: {reads:?}");
    assert_eq!(reads[0].1, 10);
    assert!(
        reads[0].0 >= busy_end,
        "an entry was written while its worker was still busy"
    );
}
