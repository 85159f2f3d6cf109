//! Arbitrary client byte streams into `http::RequestFramer`: never a panic;
//! frames ordered and within the bytes pushed; the result does not depend on
//! how the stream was split into pushes.
#![no_main]
use coral_core::{RequestFrame, RequestFramer};
use libfuzzer_sys::fuzz_target;

/// The frames found must not depend on how the stream was split: a stream
/// accepted in one push is accepted, with the same frames, in any pieces.
/// (When the one-push stream is malformed, the split run may report the
/// error later, once more bytes arrive: then only the frames found before it
/// must agree.)
fn check_split<T: PartialEq + std::fmt::Debug>(whole: (Vec<T>, bool), split: (Vec<T>, bool)) {
    let ((a, a_err), (b, b_err)) = (whole, split);
    if !a_err {
        assert!(
            !b_err,
            "stream accepted whole but rejected when split: {a:?}"
        );
        assert_eq!(a, b, "framing depends on the split");
    } else {
        let n = a.len().min(b.len());
        assert_eq!(a[..n], b[..n], "framing depends on the split");
    }
}

fn run(data: &[u8], chunk: usize) -> (Vec<RequestFrame>, bool) {
    let mut f = RequestFramer::new();
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        match f.push(piece) {
            Ok(frames) => out.extend(frames),
            Err(_) => return (out, true),
        }
        let mut prev_end = 0;
        for r in &out {
            assert!(r.start >= prev_end && r.start < r.end && r.end <= f.offset());
            prev_end = r.end;
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let whole = run(stream, stream.len());
    let split = run(stream, usize::from(chunk));
    check_split(whole, split);
});
