//! Arbitrary bytes as `topology.json` (every `coral-exp` command after
//! `up` reads it back): never a panic; a state that parses has the schema
//! this coral-exp reads, writes back to JSON that parses to the same
//! state, and answers host lookups without panicking.
#![no_main]
use experiments::topology::TopologyState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(st) = TopologyState::parse(text) else {
        return;
    };
    let again = serde_json::to_string_pretty(&st).expect("a state serializes");
    assert_eq!(
        TopologyState::parse(&again).expect("written state parses"),
        st
    );
    for h in [
        "client", "router", "switch", "server-a", "server-b", "spare", "lb",
    ] {
        if let Ok(info) = st.host(h) {
            let _ = (info.addr.len(), info.mac.len(), info.roles.len());
        }
    }
});
