//! Arbitrary bytes as what the fault campaign's checker reads from disk
//! besides the request records: the switch capture (`tcpdump -nn -e -tt`
//! text) and the nodes' logs with their request lines. Never a panic;
//! the checker's counts stay within what it was given.
#![no_main]
use experiments::campaign::check::{check, executions, Evidence};
use libfuzzer_sys::fuzz_target;
use workload::summary::SummaryOptions;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Half the input as server-a's log, the rest as server-b's.
    let mid = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(0, |(i, _)| i);
    let (a, b) = text.split_at(mid);
    let ex = executions(&[("server-a", a), ("server-b", b)]);
    let lines = text.lines().count() as u64;
    for hosts in ex.values() {
        assert!(!hosts.is_empty());
    }
    for until in [None, Some(u64::MAX / 2)] {
        let v = check(&Evidence {
            records: &[],
            window: SummaryOptions {
                run_start_unix_ns: 0,
                warmup_end_unix_ns: 0,
                run_end_unix_ns: 1,
                fault_at_unix_ns: None,
            },
            capture: Some(&text),
            vips: &["192.0.2.100", "192.0.2.101"],
            voice_until: until,
            executions: Some(&ex),
        });
        assert!(v.captured);
        assert!(v.duplicate_executions.unwrap_or(0) <= lines);
        assert_eq!(v.requests, 0);
    }
});
