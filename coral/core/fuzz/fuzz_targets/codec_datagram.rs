//! Arbitrary datagrams into the UDP decoder: never a panic, every outcome
//! counted exactly once.
#![no_main]
use coral_core::{DatagramDecoder, DecoderConfig, Key};
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let key = Key::new(FUZZ_KEY).expect("key");
    let mut d = DatagramDecoder::new(key, DecoderConfig::for_channel(channel_of(sel)));
    // The same datagram twice: the second is a replay if the first passed.
    let first = d.decode(rest);
    let second = d.decode(rest);
    let c = d.counters();
    assert_eq!(c.accepted + c.total_rejected(), 2);
    if first.is_ok() {
        assert!(second.is_err(), "replayed datagram accepted");
    }
});
