use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::messages::{MAX_KERNEL_SETTINGS, MAX_STR, MAX_VIPS};
use super::*;
use crate::types::{FourTuple, NegotiatedOptions};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn key() -> Key {
    Key::new(KEY).unwrap()
}

fn enc(sender: u32, epoch: u64, seq: u64) -> Encoder {
    Encoder::new(key(), NodeId(sender), Epoch(epoch), seq)
}

fn hb() -> Message {
    Message::Heartbeat(Heartbeat {
        mode: ModeTag::Duplex,
        vips: vec![VipStatus {
            vip: Ipv4Addr::new(192, 0, 2, 10),
            epoch: Epoch(3),
            mode: ModeTag::Duplex,
        }],
        echo: 41,
        sent_unix_ns: 1_795_000_000_000_000_000,
        answer: true,
    })
}

fn udp(channel: Channel) -> DatagramDecoder {
    DatagramDecoder::new(key(), DecoderConfig::for_channel(channel))
}

fn tuple() -> FourTuple {
    FourTuple {
        client_ip: Ipv4Addr::new(198, 51, 100, 7),
        client_port: 40000,
        server_ip: Ipv4Addr::new(192, 0, 2, 10),
        server_port: 80,
    }
}

#[test]
fn heartbeat_roundtrip_and_counted() {
    let mut e = enc(1, 2, 100);
    let f = e.encode_to_vec(&hb()).unwrap();
    let mut d = udp(Channel::Heartbeat);
    let got = d.decode(&f).unwrap();
    assert_eq!(got.msg, hb());
    assert_eq!(got.header.sender, NodeId(1));
    assert_eq!(got.header.epoch, Epoch(2));
    assert_eq!(got.header.seq, 100);
    assert_eq!(d.counters().accepted, 1);
    assert_eq!(d.counters().total_rejected(), 0);
}

#[test]
fn last_sequence_number_usable_then_exhausted() {
    let mut e = enc(1, 1, u64::MAX);
    let f = e.encode_to_vec(&hb()).unwrap();
    assert_eq!(
        udp(Channel::Heartbeat).decode(&f).unwrap().header.seq,
        u64::MAX
    );
    assert_eq!(
        e.encode_to_vec(&hb()).unwrap_err(),
        CodecError::SequenceExhausted
    );
    e.set_epoch(Epoch(2));
    assert_eq!(e.next_seq(), Some(0));
}

#[test]
fn largest_messages_fit_default_limits() {
    let long = "x".repeat(MAX_STR);
    let config = NodeConfig {
        node: NodeId(1),
        heartbeat_interval_ns: 1,
        misses: 1,
        vips: vec![Ipv4Addr::LOCALHOST; MAX_VIPS],
        kernel: vec![(long.clone(), long.clone()); MAX_KERNEL_SETTINGS],
        software: long,
        primary_for: vec![Ipv4Addr::LOCALHOST; MAX_VIPS],
    };
    let vips = vec![
        VipStatus {
            vip: Ipv4Addr::LOCALHOST,
            epoch: Epoch(1),
            mode: ModeTag::Duplex
        };
        MAX_VIPS
    ];
    let refuse = RefuseReason::StaleEpoch {
        current: Epoch(1),
        holder: NodeId(1),
    };
    for msg in [
        Message::Log(LogMsg::Hello(config.clone())),
        Message::Join(JoinMsg::JoinAccept {
            config,
            epoch: Epoch(1),
            vip: Ipv4Addr::LOCALHOST,
        }),
        Message::Heartbeat(Heartbeat {
            mode: ModeTag::Duplex,
            vips,
            echo: 0,
            sent_unix_ns: 0,
            answer: false,
        }),
        Message::Witness(WitnessMsg::Refuse {
            vip: Ipv4Addr::LOCALHOST,
            node: NodeId(1),
            epoch: Epoch(1),
            reason: refuse,
        }),
    ] {
        let f = enc(1, 1, 1).encode_to_vec(&msg).unwrap();
        let cfg = DecoderConfig::for_channel(msg.channel());
        assert!(
            f.len() <= cfg.max_frame(),
            "{:?}: {} > {}",
            msg.channel(),
            f.len(),
            cfg.max_frame()
        );
        assert_eq!(
            DatagramDecoder::new(key(), cfg).decode(&f).unwrap().msg,
            msg
        );
    }
}

#[test]
fn key_too_short_is_error() {
    assert_eq!(Key::new(b"short").unwrap_err(), CodecError::KeyTooShort(5));
}

fn reject_of(d: &mut DatagramDecoder, bytes: &[u8]) -> Reject {
    let r = d.decode(bytes).unwrap_err();
    assert_eq!(d.counters().get(r.name()), Some(1), "counter for {r:?}");
    r
}

#[test]
fn forged_tag_rejected() {
    let forger = Key::new(b"another key, same length, wrong!").unwrap();
    let f = Encoder::new(forger, NodeId(1), Epoch(1), 1)
        .encode_to_vec(&hb())
        .unwrap();
    assert_eq!(reject_of(&mut udp(Channel::Heartbeat), &f), Reject::BadTag);
}

#[test]
fn every_flipped_bit_rejected() {
    let f = enc(1, 1, 1).encode_to_vec(&hb()).unwrap();
    for bit in 0..f.len() * 8 {
        let mut g = f.clone();
        g[bit / 8] ^= 1 << (bit % 8);
        let mut d = udp(Channel::Heartbeat);
        let r = d.decode(&g).unwrap_err();
        assert_eq!(d.counters().total_rejected(), 1);
        assert_eq!(d.counters().accepted, 0, "bit {bit} accepted: {r:?}");
    }
}

#[test]
fn replay_and_out_of_order_rejected() {
    let mut e = enc(1, 1, 10);
    let f10 = e.encode_to_vec(&hb()).unwrap();
    let f11 = e.encode_to_vec(&hb()).unwrap();
    let mut d = udp(Channel::Heartbeat);
    d.decode(&f10).unwrap();
    d.decode(&f11).unwrap();
    assert_eq!(
        d.decode(&f11).unwrap_err(),
        Reject::Replay {
            sender: NodeId(1),
            seq: 11
        }
    );
    assert_eq!(
        d.decode(&f10).unwrap_err(),
        Reject::OutOfOrder {
            sender: NodeId(1),
            seq: 10,
            last: 11
        }
    );
    assert_eq!(d.counters().replay, 1);
    assert_eq!(d.counters().out_of_order, 1);
    // A gap is fine.
    let mut e2 = enc(1, 1, 50);
    d.decode(&e2.encode_to_vec(&hb()).unwrap()).unwrap();
}

#[test]
fn epochs_reset_window_and_stale_rejected() {
    let mut d = udp(Channel::Heartbeat);
    d.decode(&enc(1, 5, 100).encode_to_vec(&hb()).unwrap())
        .unwrap();
    // Higher epoch resets: a lower sequence number is accepted.
    d.decode(&enc(1, 6, 1).encode_to_vec(&hb()).unwrap())
        .unwrap();
    assert_eq!(d.window().last(NodeId(1)), Some((Epoch(6), 1)));
    let stale = enc(1, 5, 1000).encode_to_vec(&hb()).unwrap();
    assert_eq!(
        reject_of(&mut d, &stale),
        Reject::StaleEpoch {
            sender: NodeId(1),
            epoch: Epoch(5),
            current: Epoch(6)
        }
    );
    // Windows are per sender.
    d.decode(&enc(2, 1, 1).encode_to_vec(&hb()).unwrap())
        .unwrap();
    // The receiver's own floor.
    d.raise_epoch_floor(Epoch(9));
    let r = d
        .decode(&enc(3, 8, 1).encode_to_vec(&hb()).unwrap())
        .unwrap_err();
    assert_eq!(
        r,
        Reject::StaleEpoch {
            sender: NodeId(3),
            epoch: Epoch(8),
            current: Epoch(9)
        }
    );
}

#[test]
fn truncated_short_oversized_bad_length() {
    let f = enc(1, 1, 1).encode_to_vec(&hb()).unwrap();
    assert_eq!(
        reject_of(&mut udp(Channel::Heartbeat), &f[..10]),
        Reject::Short(10)
    );
    assert_eq!(
        reject_of(&mut udp(Channel::Heartbeat), &[]),
        Reject::Short(0)
    );
    // Truncated but still above the minimum: the length field disagrees.
    let r = reject_of(&mut udp(Channel::Heartbeat), &f[..f.len() - 1]);
    assert!(matches!(r, Reject::BadLength { .. }), "{r:?}");
    // Extra byte.
    let mut g = f.clone();
    g.push(0);
    assert!(matches!(
        reject_of(&mut udp(Channel::Heartbeat), &g),
        Reject::BadLength { .. }
    ));
    // Oversized datagram.
    let big = vec![0u8; 5000];
    assert_eq!(
        reject_of(&mut udp(Channel::Heartbeat), &big),
        Reject::Oversized(5000)
    );
    // Oversized declared length on an otherwise small frame.
    let mut h = f.clone();
    h[11..15].copy_from_slice(&100_000u32.to_be_bytes());
    assert!(matches!(
        reject_of(&mut udp(Channel::Heartbeat), &h),
        Reject::Oversized(_)
    ));
}

#[test]
fn garbage_magic_version_rejected() {
    let garbage: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37)).collect();
    assert_eq!(
        reject_of(&mut udp(Channel::Heartbeat), &garbage),
        Reject::BadMagic
    );
    let mut f = enc(1, 1, 1).encode_to_vec(&hb()).unwrap();
    f[4] = 2;
    assert_eq!(
        reject_of(&mut udp(Channel::Heartbeat), &f),
        Reject::UnknownVersion(2)
    );
}

/// Builds a correctly tagged frame with arbitrary header fields and payload.
fn raw_frame(channel: u8, kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAGIC);
    f.push(VERSION);
    f.push(channel);
    f.push(kind);
    f.extend_from_slice(&1u32.to_be_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(&1u64.to_be_bytes());
    f.extend_from_slice(&1u64.to_be_bytes());
    f.extend_from_slice(payload);
    let tag = key().tag(&f);
    f.extend_from_slice(&tag);
    f
}

#[test]
fn wrong_channel_unknown_type_bad_payload() {
    let log = enc(1, 1, 1)
        .encode_to_vec(&Message::Log(LogMsg::LogAck { id: 3 }))
        .unwrap();
    assert_eq!(
        reject_of(&mut udp(Channel::Heartbeat), &log),
        Reject::WrongChannel(1)
    );
    assert_eq!(
        reject_of(&mut udp(Channel::Heartbeat), &raw_frame(9, 1, &[])),
        Reject::WrongChannel(9)
    );
    assert_eq!(
        reject_of(&mut udp(Channel::Witness), &raw_frame(3, 7, &[])),
        Reject::UnknownType {
            channel: Channel::Witness,
            kind: 7
        }
    );
    // Truncated payload, trailing bytes, invalid enum value, too many vips.
    for payload in [vec![1u8], vec![1, 0, 0, 9], vec![9, 0, 0], {
        let mut p = vec![1u8];
        p.extend_from_slice(&(MAX_VIPS as u16 + 1).to_be_bytes());
        p
    }] {
        let r = reject_of(&mut udp(Channel::Heartbeat), &raw_frame(2, 1, &payload));
        assert!(matches!(r, Reject::BadPayload(_)), "{payload:?}: {r:?}");
    }
}

#[test]
fn too_many_peers_rejected() {
    let mut cfg = DecoderConfig::for_channel(Channel::Heartbeat);
    cfg.max_peers = 2;
    let mut d = DatagramDecoder::new(key(), cfg);
    d.decode(&enc(1, 1, 1).encode_to_vec(&hb()).unwrap())
        .unwrap();
    d.decode(&enc(2, 1, 1).encode_to_vec(&hb()).unwrap())
        .unwrap();
    assert_eq!(
        d.decode(&enc(3, 1, 1).encode_to_vec(&hb()).unwrap())
            .unwrap_err(),
        Reject::TooManyPeers
    );
    assert_eq!(d.counters().too_many_peers, 1);
}

fn log_msgs() -> Vec<Message> {
    vec![
        Message::Log(LogMsg::ConnOpen {
            id: 1,
            tuple: tuple(),
            server_isn: 0xdead_beef,
            client_isn: 7,
            options: NegotiatedOptions {
                mss: 1460,
                snd_wscale: Some(7),
                rcv_wscale: Some(9),
                sack: true,
                timestamps: true,
                usec_ts: false,
            },
        }),
        Message::Log(LogMsg::Reply {
            id: 2,
            tuple: tuple(),
            request_end: 77,
            offset: 0,
            last: true,
            bytes: b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
        }),
        Message::Log(LogMsg::ConnClose {
            id: 3,
            tuple: tuple(),
            kind: CloseKind::Fin,
        }),
    ]
}

#[test]
fn stream_decoder_byte_by_byte() {
    let mut e = enc(1, 1, 1);
    let msgs = log_msgs();
    let mut wire = Vec::new();
    for m in &msgs {
        e.encode(m, &mut wire).unwrap();
    }
    let mut d = StreamDecoder::new(key(), DecoderConfig::for_channel(Channel::Log));
    let mut got = Vec::new();
    for b in &wire {
        d.push(std::slice::from_ref(b)).unwrap();
        while let Some(r) = d.next_frame() {
            got.push(r.unwrap().msg);
        }
    }
    assert_eq!(got, msgs);
    d.finish().unwrap();
    assert_eq!(d.counters().accepted, 3);
}

#[test]
fn stream_truncated_at_eof_counted() {
    let f = enc(1, 1, 1).encode_to_vec(&log_msgs()[0]).unwrap();
    let mut d = StreamDecoder::new(key(), DecoderConfig::for_channel(Channel::Log));
    d.push(&f[..f.len() - 3]).unwrap();
    assert!(d.next_frame().is_none());
    assert_eq!(d.finish().unwrap_err(), Reject::Short(f.len() - 3));
    assert_eq!(d.counters().short, 1);
}

#[test]
fn stream_garbage_poisons() {
    let mut d = StreamDecoder::new(key(), DecoderConfig::for_channel(Channel::Log));
    d.push(b"GET / HTTP/1.1\r\n").unwrap();
    assert_eq!(d.next_frame().unwrap().unwrap_err(), Reject::BadMagic);
    assert!(d.next_frame().is_none());
    assert_eq!(d.poisoned(), Some(&Reject::BadMagic));
    // Even a valid frame afterwards is not trusted.
    d.push(&enc(1, 1, 1).encode_to_vec(&log_msgs()[0]).unwrap())
        .unwrap();
    assert!(d.next_frame().is_none());
    assert_eq!(d.counters().bad_magic, 1);
}

#[test]
fn stream_replay_skips_one_frame_only() {
    let mut e = enc(1, 1, 5);
    let a = e.encode_to_vec(&log_msgs()[0]).unwrap();
    let b = e.encode_to_vec(&log_msgs()[1]).unwrap();
    let mut d = StreamDecoder::new(key(), DecoderConfig::for_channel(Channel::Log));
    d.push(&a).unwrap();
    d.push(&a).unwrap();
    d.push(&b).unwrap();
    assert!(d.next_frame().unwrap().is_ok());
    assert_eq!(
        d.next_frame().unwrap().unwrap_err(),
        Reject::Replay {
            sender: NodeId(1),
            seq: 5
        }
    );
    assert_eq!(d.next_frame().unwrap().unwrap().msg, log_msgs()[1]);
}

#[test]
fn stream_oversized_header_rejected_before_buffering() {
    let mut cfg = DecoderConfig::for_channel(Channel::Log);
    cfg.max_payload = 100;
    let mut d = StreamDecoder::new(key(), cfg);
    let big = Message::Log(LogMsg::Reply {
        id: 1,
        tuple: tuple(),
        request_end: 0,
        offset: 0,
        last: true,
        bytes: vec![0; 1000],
    });
    let f = enc(1, 1, 1).encode_to_vec(&big).unwrap();
    d.push(&f[..HEADER_LEN]).unwrap();
    assert!(matches!(
        d.next_frame().unwrap().unwrap_err(),
        Reject::Oversized(_)
    ));
    assert_eq!(d.counters().oversized, 1);
}

#[test]
fn stream_buffer_bounded() {
    let mut cfg = DecoderConfig::for_channel(Channel::Log);
    cfg.max_payload = 100;
    let mut d = StreamDecoder::new(key(), cfg);
    let space = d.space();
    assert!(space < 100_000);
    assert_eq!(
        d.push(&vec![0u8; space + 1]).unwrap_err(),
        Reject::BufferFull
    );
    assert_eq!(d.buffered(), 0);
    assert_eq!(d.counters().buffer_full, 1);
}

#[test]
fn config_mismatches_named() {
    let a = NodeConfig {
        node: NodeId(1),
        heartbeat_interval_ns: 10_000_000,
        misses: 3,
        vips: vec![],
        kernel: vec![
            ("net.ipv4.tcp_timestamps".into(), "1".into()),
            ("net.ipv4.tcp_sack".into(), "1".into()),
        ],
        software: "x".into(),
        primary_for: vec![],
    };
    let mut b = a.clone();
    b.node = NodeId(2);
    assert!(a.mismatches(&b).is_empty());
    b.kernel[0].1 = "0".into();
    b.kernel.pop();
    b.misses = 4;
    let m = a.mismatches(&b);
    assert_eq!(m.len(), 3, "{m:?}");
    assert!(m.iter().any(|s| s.starts_with("net.ipv4.tcp_sack")));
}

#[test]
fn encode_rejects_out_of_range_fields() {
    let mut e = enc(1, 1, 1);
    let bad = Message::Log(LogMsg::ConnOpen {
        id: 1,
        tuple: tuple(),
        server_isn: 0,
        client_isn: 0,
        options: NegotiatedOptions {
            snd_wscale: Some(15),
            ..Default::default()
        },
    });
    assert!(matches!(e.encode_to_vec(&bad), Err(CodecError::Payload(_))));
    assert_eq!(
        e.next_seq(),
        Some(1),
        "failed encode uses no sequence number"
    );
    let too_many = Message::Heartbeat(Heartbeat {
        mode: ModeTag::Simplex,
        vips: vec![
            VipStatus {
                vip: Ipv4Addr::LOCALHOST,
                epoch: Epoch(0),
                mode: ModeTag::Duplex
            };
            MAX_VIPS + 1
        ],
        echo: 0,
        sent_unix_ns: 0,
        answer: false,
    });
    assert!(e.encode_to_vec(&too_many).is_err());
}

// ---- property tests: every message round-trips ----

fn arb_ip() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn arb_tuple() -> impl Strategy<Value = FourTuple> {
    (arb_ip(), any::<u16>(), arb_ip(), any::<u16>()).prop_map(|(a, b, c, d)| FourTuple {
        client_ip: a,
        client_port: b,
        server_ip: c,
        server_port: d,
    })
}

fn arb_options() -> impl Strategy<Value = NegotiatedOptions> {
    (
        any::<u16>(),
        prop::option::of(0u8..=14),
        prop::option::of(0u8..=14),
        any::<[bool; 3]>(),
    )
        .prop_map(|(mss, s, r, f)| NegotiatedOptions {
            mss,
            snd_wscale: s,
            rcv_wscale: r,
            sack: f[0],
            timestamps: f[1],
            usec_ts: f[2],
        })
}

fn arb_str() -> impl Strategy<Value = String> {
    "[a-z0-9._ =-]{0,40}"
}

fn arb_config() -> impl Strategy<Value = NodeConfig> {
    (
        any::<u32>(),
        any::<u64>(),
        any::<u32>(),
        prop::collection::vec(arb_ip(), 0..=MAX_VIPS),
        prop::collection::vec((arb_str(), arb_str()), 0..8),
        arb_str(),
        prop::collection::vec(arb_ip(), 0..=MAX_VIPS),
    )
        .prop_map(
            |(n, h, k, vips, kernel, software, primary_for)| NodeConfig {
                node: NodeId(n),
                heartbeat_interval_ns: h,
                misses: k,
                vips,
                kernel,
                software,
                primary_for,
            },
        )
}

fn arb_mode() -> impl Strategy<Value = ModeTag> {
    prop_oneof![
        Just(ModeTag::Duplex),
        Just(ModeTag::Simplex),
        Just(ModeTag::WaitingForGrant),
        Just(ModeTag::TakingOver),
        Just(ModeTag::Fenced),
        Just(ModeTag::Joining),
    ]
}

fn arb_epoch() -> impl Strategy<Value = Epoch> {
    any::<u64>().prop_map(Epoch)
}

fn arb_node() -> impl Strategy<Value = NodeId> {
    any::<u32>().prop_map(NodeId)
}

fn arb_message() -> impl Strategy<Value = Message> {
    let log = prop_oneof![
        arb_config().prop_map(LogMsg::Hello),
        (
            any::<u64>(),
            arb_tuple(),
            any::<u32>(),
            any::<u32>(),
            arb_options()
        )
            .prop_map(|(id, tuple, s, c, o)| {
                LogMsg::ConnOpen {
                    id,
                    tuple,
                    server_isn: s,
                    client_isn: c,
                    options: o,
                }
            }),
        (
            any::<u64>(),
            arb_tuple(),
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(
                |(id, tuple, request_end, offset, last, bytes)| LogMsg::Reply {
                    id,
                    tuple,
                    request_end,
                    offset,
                    last,
                    bytes
                }
            ),
        (
            any::<u64>(),
            arb_tuple(),
            prop_oneof![
                Just(CloseKind::Fin),
                Just(CloseKind::Rst),
                Just(CloseKind::Abort)
            ]
        )
            .prop_map(|(id, tuple, kind)| LogMsg::ConnClose { id, tuple, kind }),
        any::<u64>().prop_map(|id| LogMsg::LogAck { id }),
    ]
    .prop_map(Message::Log);
    let heartbeat = (
        arb_mode(),
        prop::collection::vec(
            (arb_ip(), arb_epoch(), arb_mode()).prop_map(|(vip, epoch, mode)| VipStatus {
                vip,
                epoch,
                mode,
            }),
            0..=MAX_VIPS,
        ),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(mode, vips, echo, sent_unix_ns, answer)| {
            Message::Heartbeat(Heartbeat {
                mode,
                vips,
                echo,
                sent_unix_ns,
                answer,
            })
        });
    let reason = prop_oneof![
        arb_node().prop_map(|holder| RefuseReason::AlreadyGranted { holder }),
        (arb_epoch(), arb_node())
            .prop_map(|(current, holder)| RefuseReason::StaleEpoch { current, holder }),
        Just(RefuseReason::UnknownVip),
        Just(RefuseReason::UnknownNode),
    ];
    let witness =
        prop_oneof![
            (arb_ip(), arb_node(), arb_epoch())
                .prop_map(|(vip, node, epoch)| WitnessMsg::Request { vip, node, epoch }),
            (arb_ip(), arb_node(), arb_epoch()).prop_map(|(vip, node, epoch)| WitnessMsg::Grant {
                vip,
                node,
                epoch
            }),
            (arb_ip(), arb_node(), arb_epoch(), reason).prop_map(|(vip, node, epoch, reason)| {
                WitnessMsg::Refuse {
                    vip,
                    node,
                    epoch,
                    reason,
                }
            }),
        ]
        .prop_map(Message::Witness);
    let jreason = prop_oneof![
        Just(JoinRefuseReason::ConfigMismatch),
        Just(JoinRefuseReason::NotSimplex),
        Just(JoinRefuseReason::Busy),
        Just(JoinRefuseReason::UnknownNode),
    ];
    let join = prop_oneof![
        arb_config().prop_map(JoinMsg::JoinRequest),
        (arb_config(), arb_epoch(), arb_ip())
            .prop_map(|(config, epoch, vip)| JoinMsg::JoinAccept { config, epoch, vip }),
        (jreason, arb_str()).prop_map(|(reason, detail)| JoinMsg::JoinRefuse { reason, detail }),
        (arb_ip(), arb_epoch()).prop_map(|(vip, epoch)| JoinMsg::VipReleased { vip, epoch }),
        (arb_ip(), arb_epoch()).prop_map(|(vip, epoch)| JoinMsg::JoinComplete { vip, epoch }),
    ]
    .prop_map(Message::Join);
    prop_oneof![log, heartbeat, witness, join]
}

proptest! {
    #[test]
    fn every_message_roundtrips(msg in arb_message(), sender in any::<u32>(), epoch in any::<u64>(),
                                seq in any::<u64>(), split in any::<prop::sample::Index>()) {
        let mut e = Encoder::new(key(), NodeId(sender), Epoch(epoch), seq);
        let wire = e.encode_to_vec(&msg).unwrap();
        let cfg = DecoderConfig::for_channel(msg.channel());
        // Datagram path (when the channel's limit allows it).
        if wire.len() <= cfg.max_frame() {
            let f = DatagramDecoder::new(key(), cfg).decode(&wire).unwrap();
            prop_assert_eq!(&f.msg, &msg);
            prop_assert_eq!(f.header, Header { channel: msg.channel(), kind: msg.kind(),
                sender: NodeId(sender), epoch: Epoch(epoch), seq });
        }
        // Stream path, split at an arbitrary point.
        let mut s = StreamDecoder::new(key(), DecoderConfig::for_channel(msg.channel()));
        let at = split.index(wire.len() + 1);
        s.push(&wire[..at]).unwrap();
        let mut got = Vec::new();
        while let Some(r) = s.next_frame() { got.push(r.unwrap().msg); }
        s.push(&wire[at..]).unwrap();
        while let Some(r) = s.next_frame() { got.push(r.unwrap().msg); }
        prop_assert_eq!(got, vec![msg]);
        prop_assert!(s.finish().is_ok());
    }

    #[test]
    fn arbitrary_bytes_never_accepted(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        for ch in [Channel::Log, Channel::Heartbeat, Channel::Witness, Channel::Join] {
            let mut d = DatagramDecoder::new(key(), DecoderConfig::for_channel(ch));
            prop_assert!(d.decode(&bytes).is_err());
            prop_assert_eq!(d.counters().total_rejected(), 1);
            let mut s = StreamDecoder::new(key(), DecoderConfig::for_channel(ch));
            s.push(&bytes).unwrap();
            while let Some(r) = s.next_frame() { prop_assert!(r.is_err()); }
        }
    }
}

#[test]
fn a_borrowed_reply_encodes_as_the_owned_message() {
    let bytes = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi".to_vec();
    let owned = Message::Log(LogMsg::Reply {
        id: 9,
        tuple: tuple(),
        request_end: 77,
        offset: 1234,
        last: true,
        bytes: bytes.clone(),
    });
    let a = enc(1, 2, 5).encode_to_vec(&owned).unwrap();
    let mut b = b"prefix".to_vec();
    let mut e = enc(1, 2, 5);
    e.encode_reply(9, &tuple(), 77, 1234, true, &bytes, &mut b)
        .unwrap();
    assert_eq!(&b[..6], b"prefix");
    assert_eq!(&b[6..], &a[..]);
    assert_eq!(e.next_seq(), Some(6));
    let mut d = StreamDecoder::new(key(), DecoderConfig::for_channel(Channel::Log));
    d.push(&b[6..]).unwrap();
    assert_eq!(d.next_frame().unwrap().unwrap().msg, owned);
}

#[test]
fn a_payload_that_cannot_encode_leaves_the_output_and_the_sequence_alone() {
    let mut e = enc(1, 2, 5);
    // Fails half-way, after the fields before the long kernel value.
    let bad = Message::Join(JoinMsg::JoinRequest(NodeConfig {
        kernel: vec![("a".into(), "x".repeat(MAX_STR + 1))],
        ..NodeConfig::default()
    }));
    let mut out = b"kept".to_vec();
    assert!(e.encode(&bad, &mut out).is_err());
    assert_eq!(out, b"kept");
    assert_eq!(e.next_seq(), Some(5));
}
