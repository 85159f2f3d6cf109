//! Arbitrary Ethernet frames into `wire::parse_frame` (and bare IPv4 packets
//! into `TcpSegment::parse_ipv4`): never a panic; a TCP segment trimmed for
//! re-injection parses again and carries a suffix of the original data.
#![no_main]
use coral_core::wire::{parse_frame, FramePayload, TcpSegment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = TcpSegment::parse_ipv4(data);
    let Ok(parsed) = parse_frame(data) else {
        return;
    };
    if let FramePayload::Tcp(seg) = parsed.payload {
        // Trim point: derived from the segment so it often falls inside it.
        let skew = data.last().copied().unwrap_or(0) as u64;
        let from = seg.seq.plus(skew);
        if let Some(packet) = seg.ipv4_packet_from(from) {
            let again = TcpSegment::parse_ipv4(&packet).expect("re-emitted packet parses");
            assert!(seg.payload.ends_with(again.payload));
            assert_eq!(again.client_tuple(), seg.client_tuple());
        }
    }
});
