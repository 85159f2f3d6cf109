//! `coral witness`: the UDP shell around the core's [`Witness`] (docs/DESIGN.md
//! section 4). It grants each service address to at most one node per
//! epoch.
//!
//! - Only authenticated requests count: every datagram goes through the
//!   core's [`DatagramDecoder`] (HMAC tag, replay window); rejects are
//!   counted and reported in events.csv, never answered.
//! - Records survive restarts: after every new grant the records are
//!   written to the state file (temporary file, `fsync`, `rename`, `fsync`
//!   of the directory) BEFORE the grant is sent, and loaded at start. A
//!   witness that cannot persist a grant does not send it.
//! - Every decision is appended to events.csv (`grant`, `regrant`,
//!   `refuse`) before its reply is sent.
//!
//! The state file holds one line per address: `VIP EPOCH HOLDER`.

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use coral_core::{Channel, DatagramDecoder, DecoderConfig, Encoder, Key, Message};
use coral_core::{Decision, Record, Witness};
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

/// Write `text` to `path` durably: temporary file, fsync, rename, fsync of
/// the directory.
pub fn persist(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))?;
    Ok(())
}

/// Load the witness's records (none if the file does not exist yet).
pub fn load(path: &Path) -> Result<Vec<(Ipv4Addr, Record)>> {
    match std::fs::read_to_string(path) {
        Ok(t) => parse_state(&t).with_context(|| format!("in state file {}", path.display())),
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
    let mut w = witness_from(load(&cfg.state)?, &cfg);
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
        if changed {
            if let Err(e) = persist(&cfg.state, &render_state(w.records())) {
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
                Decision::Granted => ("grant", String::new()),
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

    #[test]
    fn persist_replaces_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.state");
        persist(&p, "a\n").unwrap();
        persist(&p, "b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "b\n");
        assert!(load(&d.path().join("none")).unwrap().is_empty());
    }
}
