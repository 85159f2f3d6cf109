//! Frames with arbitrary headers and payloads but a valid tag, so the fuzzer
//! reaches the payload parsers and the replay window. Anything accepted must
//! re-encode to exactly the same bytes (the encoding is canonical) and decode
//! the same way through the stream decoder.
#![no_main]
use coral_core::{
    DatagramDecoder, DecoderConfig, Encoder, Key, StreamDecoder, HEADER_LEN, MAGIC, VERSION,
};
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let channel = channel_of(sel);
    let mut frame = body.to_vec();
    if frame.len() < HEADER_LEN {
        frame.resize(HEADER_LEN, 0);
    }
    frame[..4].copy_from_slice(&MAGIC);
    frame[4] = VERSION;
    if sel & 0x80 == 0 {
        frame[5] = channel as u8;
    }
    let len = (frame.len() - HEADER_LEN) as u32;
    frame[11..15].copy_from_slice(&len.to_be_bytes());
    let key = Key::new(FUZZ_KEY).expect("key");
    let tag = key.tag(&frame);
    frame.extend_from_slice(&tag);

    let mut cfg = DecoderConfig::for_channel(channel);
    cfg.max_payload = 1 << 20;
    let mut d = DatagramDecoder::new(key.clone(), cfg);
    let got = d.decode(&frame);
    let mut s = StreamDecoder::new(key.clone(), cfg);
    s.push(&frame).expect("fits");
    let via_stream = s.next_frame().expect("one whole frame");
    assert_eq!(got, via_stream);
    if let Ok(f) = got {
        let h = f.header;
        let again = Encoder::new(key, h.sender, h.epoch, h.seq)
            .encode_to_vec(&f.msg)
            .expect("a decoded message encodes");
        assert_eq!(again, frame, "non-canonical encoding of {:?}", f.msg);
    }
});
