//! Arbitrary bytes as the witness's state file (`coral witness --state`):
//! never a panic; an error names a line (or the slots) and stays short;
//! what parses renders back to a file that parses to the same records, and
//! those records seed a witness that never grants an address at a lower
//! epoch. The bytes are read both as the two-slot file the witness writes
//! and as plain text.
#![no_main]
use coral_core::{
    parse_state, parse_state_file, render_state, render_state_slot, Epoch, Instant, NodeId,
    Witness,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_state_file(data) {
        Ok(f) => {
            // What was read is written back as the next slot and read again.
            let (slot, seq) = f.next_write();
            if let Some(bytes) = render_state_slot(seq, f.records.iter().copied()) {
                let mut file = vec![b'\n'; 2 * bytes.len()];
                file[slot * bytes.len()..(slot + 1) * bytes.len()].copy_from_slice(&bytes);
                let again = parse_state_file(&file).expect("a rendered slot parses");
                assert_eq!((again.seq, again.records), (seq, f.records));
            }
        }
        Err(e) => assert!(e.to_string().len() < 300, "error message too long"),
    }
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
