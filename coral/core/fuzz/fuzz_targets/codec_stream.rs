//! Arbitrary bytes, in arbitrary chunks, into the TCP stream decoder: never a
//! panic, a bounded buffer, every frame or reject counted.
#![no_main]
use coral_core::{DecoderConfig, Key, StreamDecoder};
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (sel, chunk, rest) = (data[0], usize::from(data[1]).max(1), &data[2..]);
    let key = Key::new(FUZZ_KEY).expect("key");
    let mut cfg = DecoderConfig::for_channel(channel_of(sel));
    cfg.max_payload = cfg.max_payload.min(4096);
    let mut d = StreamDecoder::new(key, cfg);
    let (mut ok, mut err) = (0u64, 0u64);
    for piece in rest.chunks(chunk) {
        if d.push(piece).is_err() {
            err += 1;
        }
        assert!(d.buffered() <= cfg.max_frame() + (64 << 10));
        while let Some(r) = d.next_frame() {
            match r {
                Ok(_) => ok += 1,
                Err(_) => err += 1,
            }
        }
    }
    if d.finish().is_err() {
        err += 1;
    }
    let c = d.counters();
    assert_eq!((c.accepted, c.total_rejected()), (ok, err));
});
