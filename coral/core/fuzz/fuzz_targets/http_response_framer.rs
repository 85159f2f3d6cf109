//! Arbitrary server byte streams into `http::ResponseFramer`: never a panic;
//! frames ordered and within the bytes pushed; the result does not depend on
//! how the stream was split into pushes.
#![no_main]
use coral_core::{ResponseFrame, ResponseFramer};
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

fn run(heads: u8, data: &[u8], chunk: usize) -> (Vec<ResponseFrame>, bool) {
    let mut f = ResponseFramer::new();
    for i in 0..8 {
        f.expect_request(heads & (1 << i) != 0);
    }
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        match f.push(piece) {
            Ok(frames) => out.extend(frames),
            Err(_) => return (out, true),
        }
    }
    out.extend(f.end_of_stream());
    let mut prev_end = 0;
    for r in &out {
        assert!(r.start >= prev_end && r.start <= r.end && r.end <= f.offset());
        prev_end = r.end;
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (heads, chunk, stream) = (data[0], usize::from(data[1]), &data[2..]);
    let whole = run(heads, stream, stream.len());
    let split = run(heads, stream, chunk);
    check_split(whole, split);
});
