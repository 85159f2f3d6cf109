//! Arbitrary bytes as the witness's state file (`coral witness --state`):
//! never a panic; an error names a line and stays short; what parses
//! renders back to a file that parses to the same records, and those
//! records seed a witness that never grants an address at a lower epoch.
#![no_main]
use coral_core::{parse_state, render_state, Epoch, Instant, NodeId, Witness};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The shell reads the file as UTF-8 (read_to_string) and refuses other
    // bytes with an I/O error before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let recs = match parse_state(text) {
        Ok(r) => r,
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("line "), "{msg}");
            assert!(msg.len() < 300, "error message of {} bytes", msg.len());
            return;
        }
    };
    let again = parse_state(&render_state(recs.iter().copied())).expect("rendered state parses");
    assert_eq!(again, recs, "render/parse round trip");

    // A witness restored from these records refuses every epoch not above
    // the recorded one to anyone but the holder.
    let mut w = Witness::from_records(recs.iter().copied());
    for (vip, r) in &recs {
        let other = NodeId(r.holder.0.wrapping_add(1));
        w.on_request(Instant(0), other, *vip, other, r.epoch);
        assert_eq!(w.record(*vip), Some(*r), "granted an epoch twice");
        if r.epoch.0 > 0 {
            w.on_request(Instant(0), other, *vip, other, Epoch(r.epoch.0 - 1));
            assert_eq!(w.record(*vip), Some(*r), "granted a stale epoch");
        }
    }
});
