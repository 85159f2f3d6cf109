//! `coral witness`: the UDP shell around the core's [`Witness`] (docs/DESIGN.md
//! section 4). It grants each service address to at most one node per
//! epoch.
//!
//! - Only authenticated requests count: every datagram goes through the
//!   core's [`DatagramDecoder`] (HMAC tag, replay window); rejects are
//!   counted and reported in events.csv, never answered.
//! - Records survive restarts: after every new grant the records are
//!   written to the state file and `fdatasync`ed BEFORE the grant is sent,
//!   and loaded at start. The file is two fixed-size slots written in place
//!   by turns (the core's `witness_file` format: one write and one
//!   `fdatasync` per grant, a torn write spoils only the older slot); it is
//!   created, or converted from the plain text format, once at start by a
//!   temporary file, `fsync`, `rename` and `fsync` of the directory. A
//!   witness that cannot persist a grant does not send it.
//! - Every decision is appended to events.csv (`grant`, `regrant`,
//!   `refuse`) before its reply is sent; a `grant` row says how long the
//!   durable write took (`write_us`).
//!
//! Each slot holds one line per address, `VIP EPOCH HOLDER`, and a
//! trailer with the slot's sequence number and hash: `cat` shows both.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use coral_core::STATE_SLOT_BYTES;
use coral_core::{parse_state_file, render_state_slot, Decision, Record, Witness};
use coral_core::{Channel, DatagramDecoder, DecoderConfig, Encoder, Key, Message};
use coral_core::{Epoch, NodeId};

use crate::events::EventLog;

/// The node id the witness signs its replies with.
pub const WITNESS_NODE: NodeId = NodeId(0);

/// What `coral witness` needs.
#[derive(Debug, Clone)]
pub struct WitnessConfig {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// The pre-shared key (raw bytes).
    pub key: Vec<u8>,
    /// Where the records live.
    pub state: PathBuf,
    /// Only these nodes may ask (any authenticated node if empty).
    pub allow_nodes: Vec<u32>,
    /// Only these addresses may be granted (any if empty).
    pub allow_vips: Vec<Ipv4Addr>,
    /// Where to append decisions (events.csv), if anywhere.
    pub events: Option<PathBuf>,
}

// The state file format lives in the core (pure, fuzzed): `VIP EPOCH HOLDER`.
pub use coral_core::{parse_state, render_state};

/// Write `bytes` to `path` durably: temporary file, fsync, rename, fsync of
/// the directory.
pub fn persist(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))?;
    Ok(())
}

/// The witness's state file, open for in-place writes of its two slots.
pub struct StateStore {
    file: File,
    path: PathBuf,
    /// The slot and sequence number of the next write.
    next: (usize, u64),
}

impl StateStore {
    /// Open the state file at `path` and return its records (none if it
    /// does not exist yet). A missing or plain text file is rewritten as
    /// two slots first (the first slot holding its records), durably.
    pub fn open(path: &Path) -> Result<(StateStore, Vec<(Ipv4Addr, Record)>)> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(e).with_context(|| format!("reading state file {}", path.display()))
            }
        };
        let state = parse_state_file(&bytes)
            .with_context(|| format!("in state file {}", path.display()))?;
        let next = if state.slot.is_some() && bytes.len() == 2 * STATE_SLOT_BYTES {
            state.next_write()
        } else {
            let mut fresh = render_slot(state.seq + 1, state.records.iter().copied())?;
            fresh.resize(2 * STATE_SLOT_BYTES, b'\n');
            persist(path, &fresh)?;
            (1, state.seq + 2)
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening state file {}", path.display()))?;
        let store = StateStore {
            file,
            path: path.to_path_buf(),
            next,
        };
        Ok((store, state.records))
    }

    /// Write `records` durably: one write into the slot not holding the
    /// newest state, then `fdatasync`. On an error nothing is assumed
    /// written and the next call writes the same slot again.
    pub fn store(&mut self, records: impl Iterator<Item = (Ipv4Addr, Record)>) -> Result<()> {
        let (slot, seq) = self.next;
        let bytes = render_slot(seq, records)?;
        self.file
            .write_all_at(&bytes, (slot * STATE_SLOT_BYTES) as u64)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("writing state file {}", self.path.display()))?;
        self.next = (1 - slot, seq + 1);
        Ok(())
    }
}

fn render_slot(seq: u64, records: impl Iterator<Item = (Ipv4Addr, Record)>) -> Result<Vec<u8>> {
    render_state_slot(seq, records)
        .ok_or_else(|| anyhow!("the records do not fit a {STATE_SLOT_BYTES}-byte slot"))
}

/// Load the witness's records (none if the file does not exist yet),
/// without opening the file for writing.
pub fn load(path: &Path) -> Result<Vec<(Ipv4Addr, Record)>> {
    match std::fs::read(path) {
        Ok(b) => Ok(parse_state_file(&b)
            .with_context(|| format!("in state file {}", path.display()))?
            .records),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading state file {}", path.display())),
    }
}

fn witness_from(records: Vec<(Ipv4Addr, Record)>, cfg: &WitnessConfig) -> Witness {
    let w = Witness::from_records(records);
    if cfg.allow_nodes.is_empty() {
        w
    } else {
        w.with_allowed(
            cfg.allow_nodes.iter().map(|n| NodeId(*n)),
            cfg.allow_vips.iter().copied(),
        )
    }
}

/// Run the witness until the process is killed.
pub fn run(cfg: WitnessConfig) -> Result<()> {
    let key = Key::new(&cfg.key).map_err(|e| anyhow!("key: {e}"))?;
    if cfg.allow_nodes.is_empty() != cfg.allow_vips.is_empty() {
        bail!("--allow-node and --allow-vip go together (the nodes that may ask, the addresses they may hold)");
    }
    let (mut store, records) = StateStore::open(&cfg.state)?;
    let mut w = witness_from(records, &cfg);
    let events = EventLog::new(cfg.events.clone(), "witness");
    let sock = UdpSocket::bind(cfg.listen).with_context(|| format!("binding {}", cfg.listen))?;
    let mut dec = DatagramDecoder::new(key.clone(), DecoderConfig::for_channel(Channel::Witness));
    let mut enc = Encoder::new(key, WITNESS_NODE, Epoch(1), crate::clock::unix_ns());
    let clock = crate::clock::Clock::new();
    events.record(
        "witness-start",
        &format!(
            "listen={} records={}",
            cfg.listen,
            w.records()
                .map(|(v, r)| format!("{v}:{}@{}", r.epoch.0, r.holder.0))
                .collect::<Vec<_>>()
                .join(";")
        ),
    );
    println!("coral witness listening on {}", cfg.listen);
    let mut buf = vec![0u8; 2048];
    let (mut rejected, mut rejected_reported) = (0u64, 0u64);
    loop {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("recv: {e}");
                continue;
            }
        };
        let t_recv = crate::clock::unix_ns();
        let frame = match dec.decode(&buf[..n]) {
            Ok(f) => f,
            Err(r) => {
                rejected += 1;
                let total = rejected;
                // Report rejects, at most one row per power of two, so a
                // flood cannot fill the disk.
                if total.is_power_of_two() && total > rejected_reported {
                    rejected_reported = total;
                    events.record(
                        "witness-reject",
                        &format!("from={from} why={r} total={total}"),
                    );
                }
                continue;
            }
        };
        let before = w.records().collect::<Vec<_>>();
        let Some(reply) = w.on_frame(clock.now(), &frame) else {
            continue;
        };
        let ev = w.poll_event();
        let changed = w.records().collect::<Vec<_>>() != before;
        let mut write_us = 0;
        if changed {
            let t_write = clock.now();
            let stored = store.store(w.records());
            write_us = (clock.now().0 - t_write.0) / 1_000;
            if let Err(e) = stored {
                // Not durable: do not grant. Forget the grant in memory too,
                // so a retry is decided again once the disk works.
                tracing::error!("cannot persist records: {e:#}");
                events.record("witness-persist-failed", &format!("{e:#}"));
                w = witness_from(before, &cfg);
                continue;
            }
        }
        if let Some(ev) = ev {
            let (name, why) = match ev.decision {
                Decision::Granted => ("grant", format!(" write_us={write_us}")),
                Decision::Regranted => ("regrant", String::new()),
                Decision::Refused(r) => ("refuse", format!(" reason={r:?}")),
            };
            events.record_at(
                t_recv,
                name,
                &format!(
                    "vip={} node={} epoch={} sender={} from={from}{why}",
                    ev.vip, ev.node.0, ev.epoch.0, ev.sender.0
                ),
            );
        }
        if let Ok(d) = enc.encode_to_vec(&Message::Witness(reply)) {
            let _ = sock.send_to(&d, from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_bad_lines_are_named() {
        let recs = vec![(
            Ipv4Addr::new(192, 0, 2, 100),
            Record {
                epoch: Epoch(3),
                holder: NodeId(2),
            },
        )];
        let text = render_state(recs.clone().into_iter());
        assert_eq!(parse_state(&text).unwrap(), recs);
        for (bad, needle) in [
            ("192.0.2.100 3", "expected"),
            ("300.0.0.1 1 1", "address"),
            ("192.0.2.100 x 1", "epoch"),
            ("192.0.2.100 1 1\n192.0.2.100 2 1", "twice"),
        ] {
            let e = format!("{:#}", parse_state(bad).unwrap_err());
            assert!(e.contains(needle), "{e}");
        }
    }

    fn rec(epoch: u64, holder: u32) -> Vec<(Ipv4Addr, Record)> {
        vec![(
            Ipv4Addr::new(192, 0, 2, 100),
            Record {
                epoch: Epoch(epoch),
                holder: NodeId(holder),
            },
        )]
    }

    #[test]
    fn the_store_writes_slots_in_turn_and_reopens_at_the_newest() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.state");
        assert!(load(&p).unwrap().is_empty());
        let (mut s, recs) = StateStore::open(&p).unwrap();
        assert!(recs.is_empty());
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            2 * STATE_SLOT_BYTES as u64
        );
        for e in 1..=5 {
            s.store(rec(e, 2).into_iter()).unwrap();
            assert_eq!(load(&p).unwrap(), rec(e, 2));
        }
        drop(s);
        // Reopened: the newest state, and the next write spares it.
        let (mut s, recs) = StateStore::open(&p).unwrap();
        assert_eq!(recs, rec(5, 2));
        s.store(rec(6, 1).into_iter()).unwrap();
        assert_eq!(load(&p).unwrap(), rec(6, 1));
        // A crash that tore the last write: the state before it.
        let mut bytes = std::fs::read(&p).unwrap();
        let newest = coral_core::parse_state_file(&bytes).unwrap().slot.unwrap();
        bytes[newest * STATE_SLOT_BYTES + 3] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(StateStore::open(&p).unwrap().1, rec(5, 2));
    }

    #[test]
    fn a_plain_text_file_is_converted_once() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.state");
        std::fs::write(&p, "192.0.2.100 4 1\n").unwrap();
        let (mut s, recs) = StateStore::open(&p).unwrap();
        assert_eq!(recs, rec(4, 1));
        assert_eq!(load(&p).unwrap(), rec(4, 1));
        s.store(rec(5, 2).into_iter()).unwrap();
        assert_eq!(StateStore::open(&p).unwrap().1, rec(5, 2));
        std::fs::write(&p, "192.0.2.100 x 1\n").unwrap();
        let e = format!("{:#}", StateStore::open(&p).err().unwrap());
        assert!(e.contains("epoch"), "{e}");
    }
}
