//! Reading the results tree (docs/DESIGN.md section 10, docs/CLI.md):
//! `<results>/<experiment>/<variant>/rep-<n>/{config.json,requests.csv,events.csv,summary.json}`.
//!
//! The reader is tolerant: a repetition with an unreadable file is kept with
//! that part missing and a warning, so one bad run never hides the others.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use workload::records::RequestRecord;
use workload::summary::Summary;

/// One row of `events.csv`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventRow {
    /// When it happened (unix ns).
    pub t_unix_ns: u64,
    /// The host that wrote it.
    pub host: String,
    /// The component that wrote it (e.g. `faultinject`).
    pub source: String,
    /// The event's name (e.g. `link-cut`).
    pub event: String,
    /// Free text.
    #[serde(default)]
    pub detail: String,
}

/// One repetition directory.
#[derive(Debug, Clone)]
pub struct Rep {
    /// The `n` of `rep-<n>`.
    pub n: u32,
    /// The directory.
    pub dir: PathBuf,
    /// `config.json`, or `Value::Null` if missing or unreadable.
    pub config: serde_json::Value,
    /// `summary.json`, if present and readable.
    pub summary: Option<Summary>,
    /// Problems met while reading this repetition.
    pub warnings: Vec<String>,
}

/// One variant directory with its repetitions, sorted by `n`.
#[derive(Debug, Clone)]
pub struct Variant {
    /// Directory name.
    pub name: String,
    /// Its repetitions.
    pub reps: Vec<Rep>,
}

/// One experiment directory with its variants, sorted by name.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// Directory name.
    pub name: String,
    /// Its variants.
    pub variants: Vec<Variant>,
}

impl Experiment {
    /// The variant called `name`, if present.
    pub fn variant(&self, name: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.name == name)
    }
}

impl Variant {
    /// Summaries of the repetitions that have one.
    pub fn summaries(&self) -> impl Iterator<Item = (&Rep, &Summary)> {
        self.reps
            .iter()
            .filter_map(|r| r.summary.as_ref().map(|s| (r, s)))
    }

    /// The "typical" repetition to draw: the one whose `max_stall_ms` is the
    /// median among repetitions with a summary (lower middle for an even
    /// count, lowest `n` on ties); the first repetition if none has one.
    pub fn typical_rep(&self) -> Option<&Rep> {
        let mut with: Vec<(&Rep, f64)> =
            self.summaries().map(|(r, s)| (r, s.max_stall_ms)).collect();
        if with.is_empty() {
            return self.reps.first();
        }
        with.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.n.cmp(&b.0.n)));
        Some(with[(with.len() - 1) / 2].0)
    }
}

/// Numeric `n` of a `rep-<n>` directory name.
fn rep_number(name: &str) -> Option<u32> {
    name.strip_prefix("rep-")?.parse().ok()
}

fn sorted_subdirs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("reading directory {}", dir.display()))?
    {
        let entry = entry.with_context(|| format!("reading directory {}", dir.display()))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            if !name.starts_with('.') {
                out.push((name.to_string(), path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a repetition's `config.json` and `summary.json` (not the CSVs,
/// which may be large: see [`load_requests`] and [`load_events`]).
pub fn load_rep(n: u32, dir: &Path) -> Rep {
    let mut warnings = Vec::new();
    let config = match std::fs::read_to_string(dir.join("config.json")) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
            warnings.push(format!(
                "{}: not valid JSON: {e}",
                dir.join("config.json").display()
            ));
            serde_json::Value::Null
        }),
        Err(_) => {
            warnings.push(format!("{}: missing", dir.join("config.json").display()));
            serde_json::Value::Null
        }
    };
    let summary = match std::fs::read_to_string(dir.join("summary.json")) {
        Ok(text) => match serde_json::from_str::<Summary>(&text) {
            Ok(s) => Some(s),
            Err(e) => {
                warnings.push(format!(
                    "{}: not a summary: {e}",
                    dir.join("summary.json").display()
                ));
                None
            }
        },
        Err(_) => {
            warnings.push(format!("{}: missing", dir.join("summary.json").display()));
            None
        }
    };
    Rep {
        n,
        dir: dir.to_path_buf(),
        config,
        summary,
        warnings,
    }
}

/// Reads the results tree under `root`: every `<experiment>/<variant>/rep-<n>`
/// directory. Directories that are not `rep-<n>` (e.g. `live`, a topology
/// state directory) are skipped; experiments with no repetition are dropped.
/// Fails only if `root` itself cannot be read.
pub fn load_tree(root: &Path) -> Result<Vec<Experiment>> {
    if !root.is_dir() {
        anyhow::bail!(
            "results directory {} does not exist (run `coral-exp run EXPERIMENT` first)",
            root.display()
        );
    }
    let mut experiments = Vec::new();
    for (ename, epath) in sorted_subdirs(root)? {
        let mut variants = Vec::new();
        for (vname, vpath) in sorted_subdirs(&epath)? {
            let mut reps: Vec<Rep> = sorted_subdirs(&vpath)?
                .into_iter()
                .filter_map(|(rname, rpath)| rep_number(&rname).map(|n| load_rep(n, &rpath)))
                .collect();
            reps.sort_by_key(|r| r.n);
            if !reps.is_empty() {
                variants.push(Variant { name: vname, reps });
            }
        }
        if !variants.is_empty() {
            experiments.push(Experiment {
                name: ename,
                variants,
            });
        }
    }
    Ok(experiments)
}

/// Reads a repetition's `requests.csv`.
pub fn load_requests(rep: &Rep) -> Result<Vec<RequestRecord>> {
    let path = rep.dir.join("requests.csv");
    let mut reader =
        csv::Reader::from_path(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (i, row) in reader.deserialize::<RequestRecord>().enumerate() {
        out.push(row.with_context(|| format!("{}: row {}", path.display(), i + 2))?);
    }
    Ok(out)
}

/// Reads a repetition's `events.csv` (empty if the file is absent).
pub fn load_events(rep: &Rep) -> Result<Vec<EventRow>> {
    let path = rep.dir.join("events.csv");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (i, row) in reader.deserialize::<EventRow>().enumerate() {
        out.push(row.with_context(|| format!("{}: row {}", path.display(), i + 2))?);
    }
    Ok(out)
}

/// Event names that mark an injected fault when found in `events.csv`.
pub const FAULT_EVENTS: &[&str] = &["link-cut", "kill", "stop", "partition", "fault"];

/// The fault instant of a repetition: `summary.fault_at_unix_ns`, else the
/// first `events.csv` row named like a fault ([`FAULT_EVENTS`]; recoveries
/// such as `link-restore` or `heal` are not faults).
pub fn fault_instant(rep: &Rep, events: &[EventRow]) -> Option<u64> {
    if let Some(t) = rep.summary.as_ref().and_then(|s| s.fault_at_unix_ns) {
        return Some(t);
    }
    events
        .iter()
        .filter(|e| FAULT_EVENTS.contains(&e.event.as_str()))
        .map(|e| e.t_unix_ns)
        .min()
}

/// Looks up the first of `keys` present in a JSON object, also inside its
/// `conditions` object; dotted keys (`a.b`) descend.
pub fn config_lookup<'a>(
    config: &'a serde_json::Value,
    keys: &[&str],
) -> Option<&'a serde_json::Value> {
    for key in keys {
        let mut v = Some(config);
        for part in key.split('.') {
            v = v.and_then(|x| x.get(part));
        }
        if let Some(v) = v.filter(|v| !v.is_null()) {
            return Some(v);
        }
        if let Some(v) = config
            .get("conditions")
            .and_then(|c| c.get(*key))
            .filter(|v| !v.is_null())
        {
            return Some(v);
        }
    }
    None
}

/// Whether any of `keys` is present (even as `null`) in a JSON object or in
/// its `conditions` object.
pub fn config_has_key(config: &serde_json::Value, keys: &[&str]) -> bool {
    keys.iter().any(|k| {
        config.get(*k).is_some() || config.get("conditions").and_then(|c| c.get(*k)).is_some()
    })
}

/// A JSON value as short text: strings unquoted, others compact JSON.
pub fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(n: u32, stall: Option<f64>, fault: Option<u64>) -> Rep {
        Rep {
            n,
            dir: PathBuf::from(format!("rep-{n}")),
            config: serde_json::Value::Null,
            summary: stall.map(|s| Summary {
                max_stall_ms: s,
                fault_at_unix_ns: fault,
                ..Default::default()
            }),
            warnings: Vec::new(),
        }
    }

    fn event(t: u64, source: &str, event: &str) -> EventRow {
        EventRow {
            t_unix_ns: t,
            host: "server-a".into(),
            source: source.into(),
            event: event.into(),
            detail: String::new(),
        }
    }

    #[test]
    fn typical_rep_is_the_median_stall() {
        let v = Variant {
            name: "coral".into(),
            reps: vec![
                rep(1, Some(900.0), None),
                rep(2, Some(100.0), None),
                rep(3, Some(300.0), None),
                rep(4, None, None),
            ],
        };
        assert_eq!(v.typical_rep().map(|r| r.n), Some(3));
        let v = Variant {
            name: "x".into(),
            reps: vec![rep(5, None, None), rep(6, None, None)],
        };
        assert_eq!(v.typical_rep().map(|r| r.n), Some(5));
    }

    #[test]
    fn fault_instant_prefers_summary_then_fault_events() {
        let events = vec![
            event(3, "faultinject", "heal"),
            event(5, "coral", "heartbeat-miss"),
            event(9, "faultinject", "link-cut"),
            event(7, "x", "kill"),
        ];
        assert_eq!(
            fault_instant(&rep(1, Some(1.0), Some(42)), &events),
            Some(42)
        );
        assert_eq!(fault_instant(&rep(1, Some(1.0), None), &events), Some(7));
        assert_eq!(fault_instant(&rep(1, None, None), &events[..2]), None);
    }

    #[test]
    fn rep_numbers() {
        assert_eq!(rep_number("rep-3"), Some(3));
        assert_eq!(rep_number("rep-x"), None);
        assert_eq!(rep_number("live"), None);
    }

    #[test]
    fn config_lookup_descends_and_checks_conditions() {
        let c: serde_json::Value =
            serde_json::json!({"clients": 8, "conditions": {"lan_rate": "100mbit"}, "a": {"b": 1}});
        assert_eq!(
            config_lookup(&c, &["nope", "clients"]),
            Some(&serde_json::json!(8))
        );
        assert_eq!(
            config_lookup(&c, &["lan_rate"]),
            Some(&serde_json::json!("100mbit"))
        );
        assert_eq!(config_lookup(&c, &["a.b"]), Some(&serde_json::json!(1)));
        assert_eq!(config_lookup(&serde_json::Value::Null, &["x"]), None);
        let n = serde_json::json!({"conditions": {"lan_mbit": null}});
        assert_eq!(config_lookup(&n, &["lan_mbit"]), None);
        assert!(config_has_key(&n, &["lan_mbit"]) && !config_has_key(&n, &["x"]));
    }
}
