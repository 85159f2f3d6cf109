//! What the `webstone-cgi` program writes: the WebStone reply generator as a
//! CGI/1.1 script (RFC 3875), run once per request by a web server in the
//! `cgi` application mode (see [`crate::cgi_gateway`]), as WebStone 2.0's
//! CGI workload generator was run by the paper's Apache 1.3.
//!
//! The program reads its meta-variables from the environment:
//! - `REQUEST_METHOD` (required; `GET`, else 405),
//! - `QUERY_STRING` (`size=N`, default 1024, as the in-process application
//!   parses it: [`crate::webstone::parse_size`]),
//! - `GATEWAY_INTERFACE` (if set, must be `CGI/1.x`),
//! - [`SERVED_BY_VAR`] (`CORAL_SERVED_BY`: the server's own host name for
//!   `X-Coral-Served-By`; `SERVER_NAME` is the address the client used, not
//!   the server; default: the system host name),
//! - [`MAX_SIZE_VAR`] (`CORAL_MAX_SIZE`: the server's reply size cap,
//!   default [`crate::webstone::DEFAULT_MAX_SIZE`]; larger sizes get 413),
//!
//! and writes one CGI response on stdout: `Status:` (only where not 200),
//! `Content-Type:`, `Content-Length:`, `X-Coral-Digest:` (lowercase hex
//! sha256 of the body), `X-Coral-Served-By:`, a blank line, then N bytes
//! from a generator seeded afresh from the operating system. Header lines
//! end in a bare LF, as RFC 3875 allows a script to write them. A bad
//! meta-variable gets `Status: 400` with a one-line reason as the body.

use crate::webstone::{self, Rejection};
use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::StatusCode;
use rand::RngCore;
use std::ffi::OsString;
use std::io::Write;

/// Meta-variable carrying the value of `X-Coral-Served-By`.
pub const SERVED_BY_VAR: &str = "CORAL_SERVED_BY";
/// Meta-variable carrying the server's reply size cap, in bytes.
pub const MAX_SIZE_VAR: &str = "CORAL_MAX_SIZE";

/// One CGI response: the header block (ending in the blank line) and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiReply {
    /// Header lines, each ending in LF, then the empty line.
    pub head: String,
    /// The document.
    pub body: Bytes,
}

impl CgiReply {
    /// Write the whole response to `out` (the program's stdout).
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(self.head.as_bytes())?;
        out.write_all(&self.body)?;
        out.flush()
    }

    /// The response as one byte string.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.head.len() + self.body.len());
        v.extend_from_slice(self.head.as_bytes());
        v.extend_from_slice(&self.body);
        v
    }

    /// A refusal: `Status:` line, plain-text one-line reason.
    pub fn rejection(r: &Rejection) -> CgiReply {
        let body = Bytes::from(format!("{}\n", r.reason.replace(['\r', '\n'], " ")));
        let mut head = format!(
            "Status: {} {}\nContent-Type: text/plain; charset=utf-8\nContent-Length: {}\n",
            r.status.as_u16(),
            r.status.canonical_reason().unwrap_or("Error"),
            body.len()
        );
        if r.status == StatusCode::METHOD_NOT_ALLOWED {
            head.push_str("Allow: GET\n");
        }
        head.push('\n');
        CgiReply { head, body }
    }
}

fn bad(reason: String) -> Rejection {
    Rejection::new(StatusCode::BAD_REQUEST, reason)
}

/// A meta-variable as UTF-8 text: `None` if unset, 400 if not UTF-8.
fn text(var: &impl Fn(&str) -> Option<OsString>, name: &str) -> Result<Option<String>, Rejection> {
    match var(name) {
        None => Ok(None),
        Some(v) => v
            .into_string()
            .map(Some)
            .map_err(|_| bad(format!("meta-variable {name} is not valid UTF-8"))),
    }
}

/// Validate the meta-variables: the reply size and the served-by name.
fn parse_meta(var: &impl Fn(&str) -> Option<OsString>) -> Result<(u64, String), Rejection> {
    if let Some(gi) = text(var, "GATEWAY_INTERFACE")? {
        if !gi.starts_with("CGI/1.") {
            return Err(bad(format!("GATEWAY_INTERFACE {gi:?} is not CGI/1.x")));
        }
    }
    let method = text(var, "REQUEST_METHOD")?.ok_or_else(|| {
        bad("REQUEST_METHOD is not set (a CGI program: run as REQUEST_METHOD=GET QUERY_STRING=size=N webstone-cgi)".into())
    })?;
    if method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(bad(format!(
            "REQUEST_METHOD {method:?} is not an HTTP method"
        )));
    }
    if method != "GET" {
        return Err(Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} not allowed; use GET"),
        ));
    }
    let max_size = match text(var, MAX_SIZE_VAR)? {
        None => webstone::DEFAULT_MAX_SIZE,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(bad(format!(
                    "{MAX_SIZE_VAR} {v:?} is not a decimal byte count"
                )))
            }
        },
    };
    let query = text(var, "QUERY_STRING")?.unwrap_or_default();
    let size = webstone::parse_size(&query, max_size)?;
    let served_by = match text(var, SERVED_BY_VAR)? {
        Some(s) => s,
        None => webstone::system_hostname(),
    };
    if served_by.is_empty() || HeaderValue::from_str(&served_by).is_err() {
        return Err(bad(format!(
            "{SERVED_BY_VAR} {served_by:?} is not a header value"
        )));
    }
    Ok((size, served_by))
}

/// The response the program writes for the meta-variables `var` returns
/// (the process environment in the program; a map in tests), drawing the
/// body from `rng`. Never panics: every bad meta-variable is a refusal.
pub fn respond(var: impl Fn(&str) -> Option<OsString>, rng: &mut impl RngCore) -> CgiReply {
    let (size, served_by) = match parse_meta(&var) {
        Ok(x) => x,
        Err(r) => return CgiReply::rejection(&r),
    };
    let Ok(size) = usize::try_from(size) else {
        return CgiReply::rejection(&Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("size {size} does not fit in memory"),
        ));
    };
    let (body, digest) = webstone::generate_body(size, rng);
    let head = format!(
        "Content-Type: application/octet-stream\nContent-Length: {size}\nX-Coral-Digest: {digest}\nX-Coral-Served-By: {served_by}\n\n"
    );
    CgiReply { head, body }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(vars: &[(&str, &str)]) -> CgiReply {
        let m: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        respond(|k| m.get(k).cloned(), &mut webstone::new_rng())
    }

    /// The header lines as (name, value), checking the block's shape.
    fn headers(r: &CgiReply) -> Vec<(String, String)> {
        assert!(r.head.ends_with("\n\n"), "{:?}", r.head);
        assert!(!r.head.contains('\r'));
        r.head
            .trim_end_matches('\n')
            .lines()
            .map(|l| {
                let (k, v) = l.split_once(": ").expect("name: value");
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn a_good_request_gets_headers_in_order_and_a_matching_digest() {
        let r = run(&[
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REQUEST_METHOD", "GET"),
            ("QUERY_STRING", "size=100"),
            (SERVED_BY_VAR, "server-a"),
        ]);
        let h = headers(&r);
        let names: Vec<&str> = h.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "Content-Type",
                "Content-Length",
                "X-Coral-Digest",
                "X-Coral-Served-By"
            ]
        );
        assert_eq!(h[0].1, "application/octet-stream");
        assert_eq!(h[1].1, "100");
        assert_eq!(r.body.len(), 100);
        assert_eq!(h[2].1, webstone::digest_hex(&r.body));
        assert_eq!(h[3].1, "server-a");
        // The bytes on stdout are the head then the body, nothing more.
        let mut out = Vec::new();
        r.write_to(&mut out).unwrap();
        assert_eq!(out, r.to_bytes());
        assert_eq!(out.len(), r.head.len() + 100);
    }

    #[test]
    fn defaults_fresh_bodies_and_empty_replies() {
        let a = run(&[("REQUEST_METHOD", "GET")]);
        let b = run(&[("REQUEST_METHOD", "GET"), ("QUERY_STRING", "x=1&size=1024")]);
        assert_eq!((a.body.len(), b.body.len()), (1024, 1024));
        assert_ne!(a.body, b.body, "each run draws fresh bytes");
        let h = headers(&a);
        assert_eq!(h[3].1, webstone::system_hostname());
        let z = run(&[("REQUEST_METHOD", "GET"), ("QUERY_STRING", "size=0")]);
        assert!(z.body.is_empty());
        assert_eq!(headers(&z)[2].1, webstone::digest_hex(b""));
    }

    fn refused(vars: &[(&str, &str)]) -> (u16, String) {
        let r = run(vars);
        let h = headers(&r);
        assert_eq!(h[0].0, "Status", "{:?}", r.head);
        let code: u16 = h[0].1[..3].parse().unwrap();
        let body = String::from_utf8(r.body.to_vec()).unwrap();
        assert!(body.ends_with('\n') && body.trim_end().lines().count() == 1);
        let len = h.iter().find(|(k, _)| k == "Content-Length").unwrap();
        assert_eq!(len.1, body.len().to_string());
        assert!(h.iter().all(|(k, _)| k != "X-Coral-Digest"));
        (code, body)
    }

    #[test]
    fn bad_meta_variables_get_a_status_and_one_line() {
        let get = ("REQUEST_METHOD", "GET");
        for (vars, code, needle) in [
            (vec![], 400, "REQUEST_METHOD is not set"),
            (vec![("REQUEST_METHOD", "")], 400, "not an HTTP method"),
            (vec![("REQUEST_METHOD", "G T")], 400, "not an HTTP method"),
            (vec![("REQUEST_METHOD", "POST")], 405, "use GET"),
            (
                vec![get, ("QUERY_STRING", "size=abc")],
                400,
                "not a decimal",
            ),
            (vec![get, ("QUERY_STRING", "size=")], 400, "no value"),
            (
                vec![get, ("QUERY_STRING", "size=1&size=2")],
                400,
                "more than once",
            ),
            (vec![get, ("QUERY_STRING", "size=-1")], 400, "not a decimal"),
            (vec![get, ("GATEWAY_INTERFACE", "CGI/2.0")], 400, "CGI/1.x"),
            (vec![get, (MAX_SIZE_VAR, "lots")], 400, "CORAL_MAX_SIZE"),
            (vec![get, (MAX_SIZE_VAR, "+5")], 400, "CORAL_MAX_SIZE"),
            (vec![get, (SERVED_BY_VAR, "")], 400, "CORAL_SERVED_BY"),
            (
                vec![get, (SERVED_BY_VAR, "a\u{1}b")],
                400,
                "CORAL_SERVED_BY",
            ),
            (
                vec![get, (MAX_SIZE_VAR, "10"), ("QUERY_STRING", "size=11")],
                413,
                "exceeds the limit of 10",
            ),
            (
                vec![get, ("QUERY_STRING", "size=99999999999999999999999")],
                413,
                "exceeds",
            ),
        ] {
            let (c, body) = refused(&vars);
            assert_eq!(c, code, "{vars:?}: {body}");
            assert!(body.contains(needle), "{vars:?}: {body:?} lacks {needle:?}");
        }
        // The cap itself is allowed; 405 names the allowed method.
        let ok = run(&[get, (MAX_SIZE_VAR, "10"), ("QUERY_STRING", "size=10")]);
        assert_eq!(ok.body.len(), 10);
        let r = run(&[("REQUEST_METHOD", "PUT")]);
        assert!(r.head.starts_with("Status: 405 Method Not Allowed\n"));
        assert!(r.head.contains("\nAllow: GET\n"));
    }

    #[test]
    fn non_utf8_meta_variables_are_refused() {
        use std::os::unix::ffi::OsStringExt;
        let r = respond(
            |k| match k {
                "REQUEST_METHOD" => Some("GET".into()),
                "QUERY_STRING" => Some(OsString::from_vec(vec![b's', 0xff])),
                _ => None,
            },
            &mut webstone::new_rng(),
        );
        assert!(r.head.starts_with("Status: 400 Bad Request\n"), "{r:?}");
        assert!(String::from_utf8_lossy(&r.body).contains("QUERY_STRING is not valid UTF-8"));
    }
}
