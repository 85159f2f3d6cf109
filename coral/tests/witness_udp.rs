//! `coral witness` as a real process on loopback: authenticated requests
//! only, one holder per address per epoch, records persisted before the
//! grant and resumed after a restart, clear errors for bad input.

use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coral_core::{
    Channel, DatagramDecoder, DecoderConfig, Encoder, Key, Message, RefuseReason, WitnessMsg,
};
use coral_core::{Epoch, NodeId};

const KEY: &str = "00112233445566778899aabbccddeeff0011223344556677";
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

fn key() -> Key {
    Key::new(&hex::decode(KEY).unwrap()).unwrap()
}

struct W {
    child: Child,
    addr: String,
}

impl Drop for W {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path, port: u16) -> W {
    let starts = || {
        std::fs::read_to_string(dir.join("w-events.csv"))
            .unwrap_or_default()
            .matches(",witness-start,")
            .count()
    };
    let before = starts();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_coral"))
        .args(["witness", "--listen", &addr, "--key-file"])
        .arg(dir.join("key"))
        .arg("--state")
        .arg(dir.join("w.state"))
        .args([
            "--allow-node",
            "1",
            "--allow-node",
            "2",
            "--allow-vip",
            "192.0.2.100",
        ])
        .arg("--events")
        .arg(dir.join("w-events.csv"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Ready once its start is recorded.
    let deadline = Instant::now() + Duration::from_secs(5);
    while starts() == before {
        assert!(Instant::now() < deadline, "witness did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    W { child, addr }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Send one request from node `node` (signed with `k`); the reply, if any
/// within 500 ms.
fn ask(w: &W, k: Key, node: u32, epoch: u64) -> Option<WitnessMsg> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let seq = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut enc = Encoder::new(k, NodeId(node), Epoch(1), seq);
    let d = enc
        .encode_to_vec(&Message::Witness(WitnessMsg::Request {
            vip: VIP,
            node: NodeId(node),
            epoch: Epoch(epoch),
        }))
        .unwrap();
    sock.send_to(&d, &w.addr).unwrap();
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf).ok()?;
    let mut dec = DatagramDecoder::new(key(), DecoderConfig::for_channel(Channel::Witness));
    match dec.decode(&buf[..n]).expect("authenticated reply").msg {
        Message::Witness(m) => Some(m),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn witness_grants_once_per_epoch_persists_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), KEY).unwrap();
    let port = free_port();
    let w = start(dir.path(), port);
    let grant2 = |node| WitnessMsg::Grant {
        vip: VIP,
        node: NodeId(node),
        epoch: Epoch(2),
    };
    assert_eq!(ask(&w, key(), 2, 2), Some(grant2(2)));
    // Persisted before the reply was sent.
    let state = std::fs::read_to_string(dir.path().join("w.state")).unwrap();
    assert!(state.contains("192.0.2.100 2 2"), "{state}");
    // A retransmitted request is granted again; the other node is refused.
    assert_eq!(ask(&w, key(), 2, 2), Some(grant2(2)));
    assert!(matches!(
        ask(&w, key(), 1, 2),
        Some(WitnessMsg::Refuse {
            reason: RefuseReason::AlreadyGranted { holder: NodeId(2) },
            ..
        })
    ));
    // A forged request (wrong key) gets no answer and is counted.
    let forged = Key::new(b"not the key, not the key").unwrap();
    assert_eq!(ask(&w, forged, 1, 3), None);
    drop(w);
    // Restarted: the records are back; epoch 2 is still node 2's.
    let w = start(dir.path(), port);
    assert!(matches!(
        ask(&w, key(), 1, 2),
        Some(WitnessMsg::Refuse {
            reason: RefuseReason::AlreadyGranted { holder: NodeId(2) },
            ..
        })
    ));
    assert!(matches!(
        ask(&w, key(), 1, 3),
        Some(WitnessMsg::Grant {
            epoch: Epoch(3),
            ..
        })
    ));
    let ev = std::fs::read_to_string(dir.path().join("w-events.csv")).unwrap();
    assert_eq!(ev.matches(",grant,").count(), 2, "{ev}");
    assert!(ev.contains(",refuse,"), "{ev}");
    assert!(ev.contains(",witness-reject,"), "{ev}");
}

#[test]
fn witness_bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), KEY).unwrap();
    std::fs::write(dir.path().join("bad.state"), "192.0.2.100 two 1\n").unwrap();
    let run = |extra: &[&str], state: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_coral"))
            .args(["witness", "--listen", "127.0.0.1:0", "--key-file"])
            .arg(dir.path().join("key"))
            .arg("--state")
            .arg(dir.path().join(state))
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let e = run(&[], "bad.state");
    assert!(e.contains("line 1: epoch"), "{e}");
    let e = run(&["--allow-node", "1"], "ok.state");
    assert!(
        e.contains("--allow-node and --allow-vip go together"),
        "{e}"
    );
}
