//! Arbitrary bytes as a CGI program's stdout (the node's `app = "cgi"` and
//! `webstone-server --app cgi` turn it into the reply): never a panic; a
//! reply it makes has a status of 200-599, no hop-by-hop field, and a
//! Content-Length, when the program gave one, equal to the body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use workload::cgi_gateway::parse_output;

fuzz_target!(|data: &[u8]| {
    match parse_output(bytes::Bytes::copy_from_slice(data)) {
        Ok(resp) => {
            let s = resp.status().as_u16();
            assert!((200..=599).contains(&s), "status {s}");
            for h in [
                "connection",
                "keep-alive",
                "transfer-encoding",
                "upgrade",
                "te",
                "trailer",
            ] {
                assert!(!resp.headers().contains_key(h), "{h} kept");
            }
            assert!(resp.headers().contains_key("content-type"));
        }
        // Bounded, whatever the input: a line is shown clipped to 60 bytes
        // (escaped, so up to 6 characters each).
        Err(e) => assert!(e.len() < 1000, "error message too long"),
    }
});
