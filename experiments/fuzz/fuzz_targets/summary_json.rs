//! Arbitrary bytes as a `summary.json` (coral-load writes it; the
//! campaign, plot and report read it back): never a panic; what parses
//! writes back to JSON that parses to the same summary.
#![no_main]
use libfuzzer_sys::fuzz_target;
use workload::summary::parse_summary_json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(s) = parse_summary_json(text) else {
        return;
    };
    let again = serde_json::to_string(&s).expect("a summary serializes");
    let back = parse_summary_json(&again).expect("a written summary parses");
    // NaN never equals itself: compare the JSON instead of the values.
    assert_eq!(serde_json::to_string(&back).unwrap(), again);
});
