//! `events.csv`: `t_unix_ns,host,source,event,detail`, one row per event.
//!
//! Every node writes its own file; the runner merges them in time order
//! ([`merge_sorted`]).

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::path::Path;

/// The header line of events.csv.
pub const HEADER: &str = "t_unix_ns,host,source,event,detail";

/// One row of events.csv.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened (unix ns, wall clock).
    pub t_unix_ns: u64,
    /// The host it happened to (or on).
    pub host: String,
    /// Who wrote it (`faultinject`, `coral-exp`, a node name...).
    pub source: String,
    /// What happened (`link-cut`, `kill`, `run-start`...).
    pub event: String,
    /// Free-form detail.
    pub detail: String,
}

/// Now, as unix nanoseconds.
pub fn now_unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Appends `ev` to `path`, writing the header first if the file is new or
/// empty. Each row is written with one `write` call on an `O_APPEND` file, so
/// concurrent writers do not interleave within a row.
pub fn append_event(path: &Path, ev: &Event) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    let empty = f.metadata().map(|m| m.len() == 0).unwrap_or(true);
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.serialize(ev)?;
    let mut buf = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    if empty {
        let mut b = format!("{HEADER}\n").into_bytes();
        b.append(&mut buf);
        buf = b;
    }
    f.write_all(&buf)
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// Reads every row of an events.csv (missing file: no rows).
pub fn read_events(path: &Path) -> anyhow::Result<Vec<Event>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut r = csv::Reader::from_path(path).with_context(|| format!("open {}", path.display()))?;
    let mut out = Vec::new();
    for row in r.deserialize() {
        out.push(row.with_context(|| format!("parse {}", path.display()))?);
    }
    Ok(out)
}

/// Merges several events.csv files into `out`, in time order (stable for
/// equal timestamps).
pub fn merge_sorted(inputs: &[&Path], out: &Path) -> anyhow::Result<usize> {
    let mut all = Vec::new();
    for p in inputs {
        all.extend(read_events(p)?);
    }
    all.sort_by_key(|e| e.t_unix_ns);
    let mut w = csv::Writer::from_path(out).with_context(|| format!("create {}", out.display()))?;
    if all.is_empty() {
        w.write_record(HEADER.split(','))?;
    }
    for e in &all {
        w.serialize(e)?;
    }
    w.flush()?;
    Ok(all.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64, d: &str) -> Event {
        Event {
            t_unix_ns: t,
            host: "server-a".into(),
            source: "faultinject".into(),
            event: "kill".into(),
            detail: d.into(),
        }
    }

    #[test]
    fn append_writes_header_once_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/events.csv");
        append_event(&p, &ev(2, "a, with comma")).unwrap();
        append_event(&p, &ev(1, "b \"quoted\"")).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().next().unwrap(), HEADER);
        assert_eq!(text.matches(HEADER).count(), 1);
        let rows = read_events(&p).unwrap();
        assert_eq!(rows, vec![ev(2, "a, with comma"), ev(1, "b \"quoted\"")]);
    }

    #[test]
    fn merge_orders_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.csv");
        append_event(&a, &ev(5, "a5")).unwrap();
        append_event(&a, &ev(1, "a1")).unwrap();
        append_event(&b, &ev(3, "b3")).unwrap();
        let out = dir.path().join("m.csv");
        let n = merge_sorted(&[&a, &b, &dir.path().join("missing.csv")], &out).unwrap();
        assert_eq!(n, 3);
        let t: Vec<u64> = read_events(&out)
            .unwrap()
            .iter()
            .map(|e| e.t_unix_ns)
            .collect();
        assert_eq!(t, vec![1, 3, 5]);
    }

    #[test]
    fn merge_of_nothing_still_has_header() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.csv");
        merge_sorted(&[], &out).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), HEADER);
    }
}
