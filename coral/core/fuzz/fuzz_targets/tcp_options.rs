//! Arbitrary TCP option areas into `TcpOptions::parse`: never a panic; what
//! parses re-encodes canonically (emit, parse again: the same options), and
//! a segment built with those options parses back with them.
#![no_main]
use coral_core::wire::{build_ipv4_tcp_packet, TcpFlags, TcpOptions, TcpRepr, TcpSegment};
use coral_core::SeqNum;
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;

/// Most option bytes a TCP header can carry (data offset 15).
const MAX_OPTIONS: usize = 40;

fuzz_target!(|data: &[u8]| {
    // The parser takes any slice (the header view bounds it to 40 bytes,
    // but the function itself must not rely on that).
    let Ok(o) = TcpOptions::parse(data) else {
        return;
    };
    assert!(o.sack_blocks().len() <= 4);
    assert!(o.wscale_clamped().is_none_or(|s| s <= 14));

    let len = o.encoded_len();
    assert_eq!(len % 4, 0, "options must pad to 32-bit words");
    let mut buf = [0u8; 64];
    match o.emit(&mut buf) {
        Ok(n) => {
            assert_eq!(n, len);
            assert!(n <= MAX_OPTIONS);
            let again = TcpOptions::parse(&buf[..n]).expect("emitted options parse");
            assert_eq!(again, o, "emit/parse round trip");
        }
        Err(_) => {
            // Only refused when it cannot fit a TCP header.
            assert!(len > MAX_OPTIONS, "emit refused {len} bytes of options");
            return;
        }
    }

    // Through a whole segment: the header view and the segment parser agree.
    let repr = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: SeqNum(1),
        ack: SeqNum(2),
        flags: TcpFlags(TcpFlags::ACK),
        window: 100,
        options: o,
    };
    let (src, dst) = (Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(192, 0, 2, 1));
    let packet = build_ipv4_tcp_packet(src, dst, 64, 0, &repr, b"x").expect("fits");
    let seg = TcpSegment::parse_ipv4(&packet).expect("built segment parses");
    assert_eq!(seg.options, o);
    assert_eq!(seg.payload, b"x");
});
