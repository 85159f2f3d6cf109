//! Arbitrary bytes as the node's configuration file (`coral node --config`,
//! TOML) and key file: never a panic; a configuration that parses has
//! passed validation and passes it again, with what validation promises;
//! a key that parses is long enough.
#![no_main]
use coral::config::{parse_key, parse_mac, Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The node reads both files with read_to_string: other bytes are an
    // I/O error before any parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text) {
        Ok(c) => {
            c.validate()
                .expect("a parsed configuration validates again");
            assert!(!c.name.is_empty() && c.name.len() <= 64);
            assert!(c.node_id != 0 && c.peer.node_id != c.node_id);
            assert!(!c.service.is_empty());
            assert!((1..=10_000).contains(&c.heartbeat_ms));
        }
        Err(e) => {
            let _ = format!("{e:#}");
        }
    }
    if let Ok(k) = parse_key(text) {
        assert!(k.len() >= coral_core::MIN_KEY_LEN);
    }
    if let Ok(m) = parse_mac(text) {
        // Six bytes that print back as what parses to them.
        let back = m.map(|b| format!("{b:02x}")).join(":");
        assert_eq!(parse_mac(&back).unwrap(), m);
    }
});
