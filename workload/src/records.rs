//! One row of `requests.csv`: every request the load driver sends is recorded
//! exactly once, whether it succeeded or not (docs/CLI.md, "requests.csv").

use serde::{Deserialize, Serialize};

/// Why a request failed. Serialised in snake_case into `error_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The connection was reset (RST) while the request was outstanding.
    Reset,
    /// The server closed the connection before the whole reply arrived.
    Eof,
    /// No complete reply within the per-request timeout.
    Timeout,
    /// The connection could not be opened (refused or unreachable).
    Refused,
    /// The reply's status was not 200.
    BadStatus,
    /// The body length differed from `Content-Length` or the requested size.
    BadLength,
    /// The body's sha256 did not match `X-Coral-Digest`.
    DigestMismatch,
    /// Anything else (malformed reply head, local error).
    Other,
}

impl ErrorKind {
    /// The snake_case name used in CSV and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Reset => "reset",
            ErrorKind::Eof => "eof",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Refused => "refused",
            ErrorKind::BadStatus => "bad_status",
            ErrorKind::BadLength => "bad_length",
            ErrorKind::DigestMismatch => "digest_mismatch",
            ErrorKind::Other => "other",
        }
    }
}

/// One request as the load driver saw it. A connection attempt that failed
/// (refused, unreachable, timed out) is recorded too, as the request it was
/// opened for, with `local_port` 0 and `new_connection` false.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Client index, 0-based.
    pub client: u32,
    /// Request number within this client, 0-based.
    pub seq: u64,
    /// The URL requested (with query).
    pub url: String,
    /// Local TCP port of the connection that carried the request (0 if none).
    pub local_port: u16,
    /// Whether this request opened a new TCP connection.
    pub new_connection: bool,
    /// When the first byte of the request was written (unix ns); if the
    /// request opened its own connection, when that connect began.
    pub start_unix_ns: u64,
    /// When the reply completed or the error was seen (unix ns).
    pub end_unix_ns: u64,
    /// `end - start` in microseconds.
    pub latency_us: u64,
    /// HTTP status, 0 if none was received.
    pub status: u16,
    /// Body bytes received.
    pub bytes: u64,
    /// Whether the body's sha256 matched `X-Coral-Digest`.
    pub digest_ok: bool,
    /// `X-Coral-Served-By` of the reply, empty if none.
    pub served_by: String,
    /// Empty on success, else the [`ErrorKind`] name. Also empty for a
    /// request that was still unanswered when the run ended (see `lost`).
    pub error_kind: Option<ErrorKind>,
    /// Sent, never answered, and no error by the end of the run (the driver
    /// stopped waiting for it: run end plus its drain time). Always false
    /// when `error_kind` is set. Added column; absent in old files = false.
    #[serde(default)]
    pub lost: bool,
}

impl RequestRecord {
    /// True if the request got a complete, digest-correct 200 reply.
    pub fn is_ok(&self) -> bool {
        self.error_kind.is_none() && !self.lost
    }

    /// True if the request was sent but neither answered nor failed by the
    /// end of the run.
    pub fn is_lost(&self) -> bool {
        self.error_kind.is_none() && self.lost
    }
}
