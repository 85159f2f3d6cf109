//! Synthetic results trees for the report's unit tests: repetitions written
//! to a temporary directory in the results tree's real layout, read back
//! with [`crate::plot::data::load_tree`] and rendered as `coral-exp report`
//! renders them.

use super::{paper, render, Ctx};
use serde_json::{json, Value};
use std::path::PathBuf;
use workload::records::{ErrorKind, RequestRecord};
use workload::summary::Summary;

/// A results tree under a temporary directory.
pub struct Tree {
    dir: tempfile::TempDir,
}

/// A summary with the given throughput and stall, everything else zero.
pub fn summary(throughput: f64, stall_ms: f64) -> Summary {
    Summary {
        schema_version: 1,
        requests: 1000,
        ok: 1000,
        throughput_rps: throughput,
        max_stall_ms: stall_ms,
        p50_ms: 5.0,
        p99_ms: 9.0,
        ..Default::default()
    }
}

/// A summary of a run with a fault: throughput before and after, the stall,
/// and `failover` steps.
pub fn faulted(before: f64, after: f64, stall_ms: f64, failover: &[(&str, f64)]) -> Summary {
    let mut s = summary(before, stall_ms);
    s.throughput_before_rps = Some(before);
    s.throughput_after_rps = Some(after);
    s.fault_at_unix_ns = Some(T0 + 3_000_000_000);
    if !failover.is_empty() {
        s.failover = Some(failover.iter().map(|(k, v)| (k.to_string(), *v)).collect());
    }
    s
}

/// A repetition in which a new server joined: `integration` rows (ms).
pub fn joined(integration: &[(&str, f64)]) -> Summary {
    let mut s = faulted(1.0, 1.0, 0.0, &[]);
    s.integration = Some(
        integration
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
    );
    s
}

/// Run start of every synthetic repetition (unix ns).
pub const T0: u64 = 1_795_000_000_000_000_000;

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// The results directory.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("results")
    }

    fn rep_dir(&self, exp: &str, variant: &str, n: u32) -> PathBuf {
        let d = self.root().join(exp).join(variant).join(format!("rep-{n}"));
        std::fs::create_dir_all(&d).expect("rep dir");
        d
    }

    /// Writes a repetition: `summary.json` (with the runner's `extra` keys
    /// merged in) and a `config.json` with `config` merged into the basics.
    pub fn rep(&self, exp: &str, variant: &str, n: u32, s: &Summary, extra: Value) -> &Self {
        let d = self.rep_dir(exp, variant, n);
        let mut v = serde_json::to_value(s).expect("summary");
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        std::fs::write(d.join("summary.json"), v.to_string()).expect("summary.json");
        let cfg = json!({"experiment": exp, "variant": variant, "rep": n, "clients": 8, "size": 1024,
                         "app": "cgi", "conditions": {"lan_mbit": 100, "server_cpu": 0.5}});
        std::fs::write(d.join("config.json"), cfg.to_string()).expect("config.json");
        self
    }

    /// Writes a repetition's `requests.csv`.
    pub fn requests(&self, exp: &str, variant: &str, n: u32, recs: &[RequestRecord]) -> &Self {
        let d = self.rep_dir(exp, variant, n);
        workload::summary::write_requests_csv(d.join("requests.csv"), recs).expect("requests.csv");
        self
    }

    /// Writes a file at `rel` under the results directory.
    pub fn file(&self, rel: &str, text: &str) -> &Self {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dir");
        std::fs::write(p, text).expect("file");
        self
    }

    /// The report `coral-exp report` would write for this tree (paper
    /// values: the copy compiled in).
    pub fn report(&self) -> String {
        let root = self.root();
        let experiments = crate::plot::data::load_tree(&root).expect("tree");
        let values = paper::parse(paper::EMBEDDED, "embedded").expect("paper values");
        let figures = self.dir.path().join("paper-figures");
        let ctx = Ctx {
            results: &root,
            figures: &figures,
            out_dir: &root,
            paper: &values,
            paper_origin: "`paper_values.csv`",
            experiments: &experiments,
        };
        render(&ctx)
    }
}

/// One request of client `client` from `start_ms` to `end_ms` after [`T0`],
/// failed with a reset when `failed`.
pub fn request(client: u32, seq: u64, start_ms: u64, end_ms: u64, failed: bool) -> RequestRecord {
    let (start, end) = (T0 + start_ms * 1_000_000, T0 + end_ms * 1_000_000);
    RequestRecord {
        client,
        seq,
        url: "http://192.0.2.100/cgi-bin/webstone?size=1024".into(),
        local_port: 40000,
        new_connection: seq == 0,
        start_unix_ns: start,
        end_unix_ns: end,
        latency_us: (end - start) / 1000,
        status: if failed { 0 } else { 200 },
        bytes: if failed { 0 } else { 1024 },
        digest_ok: !failed,
        served_by: "server-a".into(),
        error_kind: failed.then_some(ErrorKind::Reset),
        lost: false,
    }
}

/// The table row of the summary whose first cells are `name | what-prefix`.
pub fn summary_row(md: &str, name: &str, key_label_prefix: &str) -> String {
    let head = format!("| {name} | {key_label_prefix}");
    md.lines()
        .find(|l| l.starts_with(&head))
        .unwrap_or_else(|| panic!("no summary row {head}:\n{md}"))
        .to_string()
}
