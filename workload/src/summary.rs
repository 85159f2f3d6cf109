//! `summary.json`: the per-run numbers every experiment reports, computed only
//! from `requests.csv` rows (docs/CLI.md, "summary.json").
//! (under construction: the struct is the contract; the computation lands with the driver)

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the `summary.json` schema written by this kit.
pub const SUMMARY_SCHEMA_VERSION: u32 = 1;

/// The contents of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Summary {
    /// Schema version ([`SUMMARY_SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Requests sent.
    pub requests: u64,
    /// Requests with a complete, digest-correct 200 reply.
    pub ok: u64,
    /// Requests recorded with an error.
    pub errors: u64,
    /// Errors by kind name.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Sent, never answered, and no error by the end of the run.
    pub requests_lost: u64,
    /// Replies whose body did not match their digest.
    pub digest_mismatches: u64,
    /// Connections opened again after an error.
    pub reconnects: u64,
    /// Longest interval between consecutive successful completions of one
    /// client, over clients; the measured window bounds the first and last.
    pub max_stall_ms: f64,
    /// Median latency of successful requests after warm-up.
    pub p50_ms: f64,
    /// 99th percentile latency of successful requests after warm-up.
    pub p99_ms: f64,
    /// Successful requests per second after warm-up.
    pub throughput_rps: f64,
    /// Fault instant, if a fault was injected.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fault_at_unix_ns: Option<u64>,
    /// Throughput from warm-up end to the fault.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub throughput_before_rps: Option<f64>,
    /// Throughput from fault + 1 s to the end.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub throughput_after_rps: Option<f64>,
    /// Failover breakdown in milliseconds, by step name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub failover: Option<BTreeMap<String, f64>>,
}
