//! The WebStone request and reply vocabulary shared by every way of serving
//! it (the in-process application in [`crate::cgi`], the per-request CGI
//! program in [`crate::cgi_program`] and the gateway that runs it in
//! [`crate::cgi_gateway`]): the one path, the reply headers, the `size`
//! query, the random body and its digest, and the one-line refusals. It
//! depends on no other module of the crate, so those three never import one
//! another for these.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode, Uri};
use rand::rngs::{OsRng, SmallRng};
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

/// The one path the application serves.
pub const CGI_PATH: &str = "/cgi-bin/webstone";
/// Reply size when the query names none.
pub const DEFAULT_SIZE: u64 = 1024;
/// Default cap on the reply size (16 MiB).
pub const DEFAULT_MAX_SIZE: u64 = 16 * 1024 * 1024;
/// Response header carrying the lowercase hex sha256 of the body.
pub const DIGEST_HEADER: &str = "x-coral-digest";
/// Response header naming the host that generated the reply.
pub const SERVED_BY_HEADER: &str = "x-coral-served-by";
/// Request header the load driver sets (`<client>-<seq>`); logged by the
/// server when `CgiConfig::log_requests` is set, so tests can count requests.
pub const REQUEST_ID_HEADER: &str = "x-coral-request-id";

/// The host name of this UTS namespace (`/proc/sys/kernel/hostname`), or
/// `"unknown"` if it cannot be read.
pub fn system_hostname() -> String {
    for path in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(s) = std::fs::read_to_string(path) {
            let s = s.trim();
            if !s.is_empty() {
                return s.to_string();
            }
        }
    }
    "unknown".to_string()
}

/// A fresh fast generator seeded from the operating system (falls back to a
/// clock-derived seed if the OS source fails, rather than panicking).
pub fn new_rng() -> SmallRng {
    SmallRng::from_rng(OsRng).unwrap_or_else(|_| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        SmallRng::seed_from_u64(t ^ u64::from(std::process::id()))
    })
}

/// Lowercase hex sha256 of `body`.
pub fn digest_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// `size` fresh random bytes and their lowercase hex sha256.
pub fn generate_body(size: usize, rng: &mut impl RngCore) -> (Bytes, String) {
    let mut v = vec![0u8; size];
    rng.fill_bytes(&mut v);
    let d = digest_hex(&v);
    (Bytes::from(v), d)
}

/// Why a request was refused: the status and its one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The 4xx status (502 for a CGI program that failed).
    pub status: StatusCode,
    /// One line, no trailing newline.
    pub reason: String,
}

impl Rejection {
    /// A refusal with `status` and a one-line `reason`.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Rejection {
            status,
            reason: reason.into(),
        }
    }
}

/// The part of a request the server itself checks in both application
/// modes: the path ([`CGI_PATH`], else 404) and the method (GET, else 405).
pub fn check_target(method: &Method, uri: &Uri) -> Result<(), Rejection> {
    if uri.path() != CGI_PATH {
        return Err(Rejection::new(
            StatusCode::NOT_FOUND,
            format!("no such path {:?}; the only path is {CGI_PATH}", uri.path()),
        ));
    }
    if method != Method::GET {
        return Err(Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} not allowed; use GET"),
        ));
    }
    Ok(())
}

/// The reply size a query string (`size=N`, other keys ignored) asks for:
/// [`DEFAULT_SIZE`] if it names none; 400 if `size` is empty, repeated or
/// not a decimal byte count; 413 above `max_size`. Shared by the in-process
/// application and the `webstone-cgi` program, so both refuse alike.
pub fn parse_size(query: &str, max_size: u64) -> Result<u64, Rejection> {
    let mut size = None;
    for pair in query.split('&') {
        let (key, value) = match pair.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (pair, None),
        };
        if key != "size" {
            continue;
        }
        if size.is_some() {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                "size given more than once",
            ));
        }
        let value = match value {
            Some(v) if !v.is_empty() => v,
            _ => {
                return Err(Rejection::new(
                    StatusCode::BAD_REQUEST,
                    "size has no value; use size=N with N a decimal byte count",
                ))
            }
        };
        if !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                format!("size {value:?} is not a decimal byte count"),
            ));
        }
        // All digits: the only failure left is overflow, which is too large.
        let n = value.parse::<u64>().unwrap_or(u64::MAX);
        size = Some(n);
    }
    let size = size.unwrap_or(DEFAULT_SIZE);
    if size > max_size {
        return Err(Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("size {size} exceeds the limit of {max_size} bytes"),
        ));
    }
    Ok(size)
}

/// A 4xx (or 502) response with the one-line reason as a `text/plain` body.
pub fn rejection_response(r: &Rejection) -> Response<Full<Bytes>> {
    let body = Bytes::from(format!("{}\n", r.reason));
    let len = body.len();
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = r.status;
    let h = resp.headers_mut();
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if r.status == StatusCode::METHOD_NOT_ALLOWED {
        h.insert(ALLOW, HeaderValue::from_static("GET"));
    }
    resp
}
