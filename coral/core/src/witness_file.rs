//! The witness's state file on disk, sans-IO: two fixed-size slots written
//! in place, so a grant costs one write and one `fdatasync` instead of a
//! temporary file, two `fsync`s and a rename (docs/DESIGN.md section 4).
//!
//! Each slot is readable text: the records as [`render_state`] writes them,
//! then a trailer line `# slot seq=N sha256=HEX`, then newlines up to
//! [`STATE_SLOT_BYTES`]. The hash covers the records text and the sequence
//! number. A new state goes into the slot the older state is in, so a write
//! torn by a crash spoils only that slot; the reader takes the valid slot
//! with the highest sequence number, which is the last state that was fully
//! written. A file without any trailer is the plain text format (a
//! hand-written state file, or one from an older witness) and is parsed as
//! such.

use std::net::Ipv4Addr;

use sha2::{Digest, Sha256};

use crate::witness::{parse_state, render_state, Record, StateFileError};

/// Bytes in one slot; the file is two slots.
pub const STATE_SLOT_BYTES: usize = 4096;

/// The start of a slot's trailer line.
const TRAILER: &str = "# slot seq=";

/// What a state file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    /// Sequence number of the slot read (0 for a plain text file).
    pub seq: u64,
    /// Which slot it was in (`None` for a plain text file).
    pub slot: Option<usize>,
    /// The records.
    pub records: Vec<(Ipv4Addr, Record)>,
}

impl StateFile {
    /// Where the next state goes and with which sequence number: the slot
    /// not holding the newest state, so the newest survives a torn write.
    pub fn next_write(&self) -> (usize, u64) {
        let slot = match self.slot {
            Some(s) => 1 - s,
            None => 0,
        };
        (slot, self.seq + 1)
    }
}

fn digest(body: &[u8], seq: u64) -> String {
    let mut h = Sha256::new();
    h.update(body);
    h.update(seq.to_le_bytes());
    hex::encode(h.finalize())
}

/// One slot holding `records` under sequence number `seq`, exactly
/// [`STATE_SLOT_BYTES`] long; `None` if the records do not fit (about 90
/// addresses do).
pub fn render_state_slot(
    seq: u64,
    records: impl Iterator<Item = (Ipv4Addr, Record)>,
) -> Option<Vec<u8>> {
    let body = render_state(records);
    let trailer = format!("{TRAILER}{seq} sha256={}\n", digest(body.as_bytes(), seq));
    let mut out = Vec::with_capacity(STATE_SLOT_BYTES);
    out.extend_from_slice(body.as_bytes());
    out.extend_from_slice(trailer.as_bytes());
    if out.len() > STATE_SLOT_BYTES {
        return None;
    }
    out.resize(STATE_SLOT_BYTES, b'\n');
    Some(out)
}

/// The sequence number and records of one slot, if its trailer is intact
/// and its hash matches.
fn read_slot(slot: &[u8]) -> Option<(u64, &str)> {
    let end = slot.iter().rposition(|b| *b != b'\n')? + 1;
    let used = &slot[..end];
    let line_start = used.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let trailer = std::str::from_utf8(&used[line_start..]).ok()?;
    let rest = trailer.strip_prefix(TRAILER)?;
    let (seq, hash) = rest.split_once(" sha256=")?;
    let seq: u64 = seq.parse().ok()?;
    let body = &used[..line_start];
    if digest(body, seq) != hash {
        return None;
    }
    Some((seq, std::str::from_utf8(body).ok()?))
}

/// Read a state file: the newest intact slot, or plain text if the file has
/// no slot trailer at all. A file with trailers but no intact slot, or
/// whose newest intact slot does not parse, is an error: the witness must
/// not start from nothing when it has granted before.
pub fn parse_state_file(bytes: &[u8]) -> Result<StateFile, StateFileError> {
    let has_trailer = bytes
        .windows(TRAILER.len())
        .any(|w| w == TRAILER.as_bytes());
    if !has_trailer {
        let text = std::str::from_utf8(bytes).map_err(|_| StateFileError::Slots {
            why: "not UTF-8 text and no slot trailer",
        })?;
        return Ok(StateFile {
            seq: 0,
            slot: None,
            records: parse_state(text)?,
        });
    }
    let newest = bytes
        .chunks(STATE_SLOT_BYTES)
        .take(2)
        .enumerate()
        .filter_map(|(i, s)| read_slot(s).map(|(seq, body)| (seq, i, body)))
        .max_by_key(|(seq, _, _)| *seq);
    let Some((seq, slot, body)) = newest else {
        return Err(StateFileError::Slots {
            why: "no slot is intact (trailer or hash wrong)",
        });
    };
    Ok(StateFile {
        seq,
        slot: Some(slot),
        records: parse_state(body)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Epoch, NodeId};

    fn recs(epoch: u64) -> Vec<(Ipv4Addr, Record)> {
        vec![
            (
                Ipv4Addr::new(192, 0, 2, 100),
                Record {
                    epoch: Epoch(epoch),
                    holder: NodeId(1),
                },
            ),
            (
                Ipv4Addr::new(192, 0, 2, 101),
                Record {
                    epoch: Epoch(epoch),
                    holder: NodeId(2),
                },
            ),
        ]
    }

    /// A file of two slots, `a` then `b`.
    fn file(a: &[u8], b: &[u8]) -> Vec<u8> {
        [a, b].concat()
    }

    #[test]
    fn the_newest_intact_slot_wins_and_the_next_write_spares_it() {
        let s1 = render_state_slot(1, recs(1).into_iter()).unwrap();
        let s2 = render_state_slot(2, recs(2).into_iter()).unwrap();
        assert_eq!(s1.len(), STATE_SLOT_BYTES);
        let f = parse_state_file(&file(&s1, &s2)).unwrap();
        assert_eq!((f.seq, f.slot, f.records.clone()), (2, Some(1), recs(2)));
        assert_eq!(f.next_write(), (0, 3));
        let f = parse_state_file(&file(&s2, &s1)).unwrap();
        assert_eq!((f.seq, f.slot), (2, Some(0)));
        assert_eq!(f.next_write(), (1, 3));
        // A slot is readable text: the records, then the trailer.
        let text = std::str::from_utf8(&s2).unwrap();
        assert!(text.contains("192.0.2.100 2 1\n"), "{text}");
        assert!(text.contains("# slot seq=2 sha256="), "{text}");
    }

    #[test]
    fn a_torn_write_falls_back_to_the_older_slot() {
        let s1 = render_state_slot(1, recs(1).into_iter()).unwrap();
        let s2 = render_state_slot(2, recs(2).into_iter()).unwrap();
        // The write of seq 2 torn after 20 bytes: the rest is the old slot's
        // content (here: zeros, a never-written slot).
        let mut torn = s2.clone();
        torn[20..].fill(0);
        let f = parse_state_file(&file(&s1, &torn)).unwrap();
        assert_eq!((f.seq, f.records), (1, recs(1)));
        // One changed byte in the records: the hash no longer matches.
        let mut flipped = s2.clone();
        let at = flipped.iter().position(|b| *b == b'2').unwrap();
        flipped[at] = b'3';
        let f = parse_state_file(&file(&s1, &flipped)).unwrap();
        assert_eq!(f.seq, 1);
        // A sequence number changed in the trailer: also rejected.
        let text = String::from_utf8(s2.clone()).unwrap();
        let forged = text.replace("seq=2 ", "seq=9 ");
        let f = parse_state_file(&file(&s1, forged.as_bytes())).unwrap();
        assert_eq!(f.seq, 1);
    }

    #[test]
    fn no_intact_slot_is_an_error_and_plain_text_still_reads() {
        let mut s = render_state_slot(4, recs(4).into_iter()).unwrap();
        s[0] = b'X';
        let e = parse_state_file(&file(&s, &vec![0; STATE_SLOT_BYTES])).unwrap_err();
        assert!(e.to_string().contains("no slot is intact"), "{e}");
        let plain = render_state(recs(7).into_iter());
        let f = parse_state_file(plain.as_bytes()).unwrap();
        assert_eq!((f.seq, f.slot, f.records.clone()), (0, None, recs(7)));
        assert_eq!(f.next_write(), (0, 1));
        assert!(parse_state_file(b"\xff\xfe").is_err());
        assert!(parse_state_file(b"").unwrap().records.is_empty());
    }

    #[test]
    fn records_that_do_not_fit_a_slot_are_refused() {
        let many = (0..200u32).map(|i| {
            (
                Ipv4Addr::from(0xC000_0200 + i),
                Record {
                    epoch: Epoch(u64::MAX),
                    holder: NodeId(u32::MAX),
                },
            )
        });
        assert!(render_state_slot(1, many).is_none());
    }
}
