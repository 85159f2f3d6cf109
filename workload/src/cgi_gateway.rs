//! The server side of CGI/1.1 (RFC 3875): how the WebStone application's
//! `cgi` mode answers a request by starting a program (`webstone-cgi`) for
//! it, as the paper's Apache 1.3 started WebStone 2.0's CGI generator.
//!
//! One process per request, no pool: [`execute`] spawns the program with the
//! request's meta-variables ([`meta_variables`]) as its whole environment,
//! stdin from `/dev/null`, stdout and stderr piped; reads stdout (at most
//! the reply cap plus [`MAX_CGI_HEAD`]) and the first [`STDERR_KEPT`] bytes
//! of stderr while the child runs; waits for it; and turns its header block
//! into the HTTP response ([`parse_output`]). The child always runs under a
//! task of its own, so a client that goes away does not cancel the wait:
//! every child is reaped and its pipes closed, whatever happens to the
//! connection. A child that cannot start, exits non-zero or by a signal,
//! outlives [`CgiProgram::timeout`] (it is killed, then reaped), writes too
//! much, or writes a malformed header block gets a 502 with a one-line
//! reason naming what went wrong.

use crate::cgi_program::{MAX_SIZE_VAR, SERVED_BY_VAR};
use crate::webstone::{rejection_response, Rejection, CGI_PATH};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use hyper::{HeaderMap, Method, Response, StatusCode, Uri, Version};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Name of the CGI program the `cgi` mode runs by default, looked up beside
/// the running executable (`webstone-server`, `coral`).
pub const CGI_PROGRAM_NAME: &str = "webstone-cgi";
/// Default limit on one CGI program's run, from spawn to exit.
pub const DEFAULT_CGI_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest CGI header block accepted (the lines before the blank line).
pub const MAX_CGI_HEAD: usize = 16 * 1024;
/// Bytes of a child's stderr kept for the 502 reason (the rest is drained).
pub const STDERR_KEPT: usize = 4096;
/// Most header lines accepted in a CGI header block.
const MAX_CGI_HEADERS: usize = 64;

/// Which application answers requests (the name used on command lines,
/// in the node's configuration and in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppMode {
    /// The reply generated inside the server process (cheap: no process).
    #[default]
    Inproc,
    /// A `webstone-cgi` process started for every request (the paper's).
    Cgi,
}

impl AppMode {
    /// `"inproc"` or `"cgi"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppMode::Inproc => "inproc",
            AppMode::Cgi => "cgi",
        }
    }
}

impl std::fmt::Display for AppMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AppMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "inproc" => Ok(AppMode::Inproc),
            "cgi" => Ok(AppMode::Cgi),
            _ => Err(format!("unknown application mode {s:?}: use inproc or cgi")),
        }
    }
}

/// The CGI program the `cgi` mode runs, and how long one run may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiProgram {
    /// Absolute path of the program.
    pub path: PathBuf,
    /// Limit from spawn to exit; past it the child is killed (502).
    pub timeout: Duration,
}

impl CgiProgram {
    /// `path` (or, if `None`, [`CGI_PROGRAM_NAME`] beside the running
    /// executable) after checking it is an executable file, with `timeout`.
    pub fn resolve(path: Option<&Path>, timeout: Duration) -> Result<CgiProgram, String> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => default_program_path()?,
        };
        check_executable(&path)?;
        let path = std::fs::canonicalize(&path)
            .map_err(|e| format!("CGI program {}: {e}", path.display()))?;
        if timeout.is_zero() {
            return Err("the CGI timeout must be above zero".into());
        }
        Ok(CgiProgram { path, timeout })
    }
}

/// [`CGI_PROGRAM_NAME`] in the directory of the running executable.
pub fn default_program_path() -> Result<PathBuf, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the running executable: {e}"))?;
    Ok(exe.with_file_name(CGI_PROGRAM_NAME))
}

fn check_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        format!(
            "CGI program {}: {e} (build it with `cargo build -p workload`, or name one with --cgi-program)",
            path.display()
        )
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "CGI program {} is not an executable file",
            path.display()
        ));
    }
    Ok(())
}

/// What [`meta_variables`] needs to know of one request.
#[derive(Debug, Clone, Copy)]
pub struct CgiRequest<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Request target.
    pub uri: &'a Uri,
    /// HTTP version of the request.
    pub version: Version,
    /// Request header fields.
    pub headers: &'a HeaderMap,
    /// The client's address, if known.
    pub peer: Option<SocketAddr>,
    /// Value for [`SERVED_BY_VAR`].
    pub served_by: &'a str,
    /// Value for [`MAX_SIZE_VAR`].
    pub max_size: u64,
}

/// The program's environment for one request (RFC 3875 section 4.1, plus
/// `HTTP_*` for the request's header fields and the two `CORAL_*` values).
/// `SERVER_NAME`/`SERVER_PORT` come from the `Host` header (the service
/// address the client used), else from `served_by` and port 80.
pub fn meta_variables(req: &CgiRequest<'_>) -> Vec<(String, OsString)> {
    let mut env: Vec<(String, OsString)> = Vec::with_capacity(16 + req.headers.len());
    let mut put = |k: &str, v: OsString| env.push((k.to_string(), v));
    put("GATEWAY_INTERFACE", "CGI/1.1".into());
    put(
        "SERVER_SOFTWARE",
        concat!("coral-webstone/", env!("CARGO_PKG_VERSION")).into(),
    );
    let protocol = match req.version {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_09 => "HTTP/0.9",
        _ => "HTTP/1.1",
    };
    put("SERVER_PROTOCOL", protocol.into());
    put("REQUEST_METHOD", req.method.as_str().into());
    put("SCRIPT_NAME", CGI_PATH.into());
    put("QUERY_STRING", req.uri.query().unwrap_or("").into());
    let host = req
        .headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<hyper::http::uri::Authority>().ok());
    let (name, port) = match &host {
        Some(a) => (a.host().to_string(), a.port_u16().unwrap_or(80)),
        None => (req.served_by.to_string(), 80),
    };
    put("SERVER_NAME", name.into());
    put("SERVER_PORT", port.to_string().into());
    if let Some(p) = req.peer {
        put("REMOTE_ADDR", p.ip().to_string().into());
        put("REMOTE_PORT", p.port().to_string().into());
    }
    put(SERVED_BY_VAR, req.served_by.into());
    put(MAX_SIZE_VAR, req.max_size.to_string().into());
    // Request header fields as HTTP_* (RFC 3875 4.1.18), repeated fields
    // joined by ", "; not the body's framing and not credentials.
    let mut seen: Vec<String> = Vec::new();
    for name in req.headers.keys() {
        let n = name.as_str();
        if matches!(
            n,
            "content-length" | "content-type" | "authorization" | "proxy-authorization"
        ) {
            continue;
        }
        let var = format!("HTTP_{}", n.to_ascii_uppercase().replace('-', "_"));
        if seen.contains(&var) {
            continue;
        }
        let mut value = Vec::new();
        for (i, v) in req.headers.get_all(name).iter().enumerate() {
            if i > 0 {
                value.extend_from_slice(b", ");
            }
            value.extend_from_slice(v.as_bytes());
        }
        seen.push(var.clone());
        env.push((var, OsString::from_vec(value)));
    }
    env
}

fn bad_gateway(reason: String) -> Response<Full<Bytes>> {
    rejection_response(&Rejection::new(StatusCode::BAD_GATEWAY, reason))
}

/// Hop-by-hop fields a CGI program may not set: the server frames the reply.
const DROPPED: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
];

/// Turn a CGI program's complete stdout into the HTTP response: the header
/// block (lines ending in LF or CRLF, up to a blank line; `Status: NNN
/// reason` sets the status, default 200; `Content-Type` is required; a
/// `Content-Length` must equal the body's length; hop-by-hop fields are
/// dropped) and the rest as the body. Why it is malformed, if it is.
pub fn parse_output(out: Bytes) -> Result<Response<Full<Bytes>>, String> {
    let mut pos = 0usize;
    let mut status: Option<StatusCode> = None;
    let mut length: Option<u64> = None;
    let mut has_type = false;
    let mut headers = HeaderMap::new();
    let mut lines = 0usize;
    let body_start = loop {
        let Some(nl) = out[pos..].iter().position(|&b| b == b'\n') else {
            return Err(if out.len() > MAX_CGI_HEAD {
                format!("no blank line ends the header block within {MAX_CGI_HEAD} bytes")
            } else {
                "the output ends before the blank line that ends the header block".into()
            });
        };
        let end = pos + nl;
        if end > MAX_CGI_HEAD {
            return Err(format!(
                "no blank line ends the header block within {MAX_CGI_HEAD} bytes"
            ));
        }
        let line = out[pos..end].strip_suffix(b"\r").unwrap_or(&out[pos..end]);
        pos = end + 1;
        if line.is_empty() {
            break pos;
        }
        lines += 1;
        if lines > MAX_CGI_HEADERS {
            return Err(format!("more than {MAX_CGI_HEADERS} header lines"));
        }
        let show = || String::from_utf8_lossy(&line[..line.len().min(60)]).into_owned();
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| format!("header line {:?} has no colon", show()))?;
        let name = HeaderName::from_bytes(&line[..colon])
            .map_err(|_| format!("header line {:?} has a bad field name", show()))?;
        let value = line[colon + 1..].trim_ascii();
        if name.as_str() == "status" {
            if status.is_some() {
                return Err("Status given more than once".into());
            }
            let code = value
                .get(..3)
                .filter(|d| d.iter().all(u8::is_ascii_digit))
                .filter(|_| value.len() == 3 || value[3] == b' ')
                .and_then(|d| std::str::from_utf8(d).ok()?.parse::<u16>().ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .filter(|c| (200..600).contains(&c.as_u16()))
                .ok_or_else(|| format!("Status {:?} is not NNN reason (200-599)", show()))?;
            status = Some(code);
            continue;
        }
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| format!("header line {:?} has a bad value", show()))?;
        if name == CONTENT_LENGTH {
            let n = value
                .to_str()
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("Content-Length {:?} is not a byte count", show()))?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length lines".into());
            }
            length = Some(n);
            continue;
        }
        if DROPPED.contains(&name.as_str()) {
            continue;
        }
        has_type |= name == hyper::header::CONTENT_TYPE;
        headers.append(name, value);
    };
    if !has_type {
        return Err("the header block has no Content-Type".into());
    }
    let body = out.slice(body_start..);
    if let Some(n) = length {
        if n != body.len() as u64 {
            return Err(format!(
                "the body is {} bytes but Content-Length says {n}",
                body.len()
            ));
        }
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status.unwrap_or(StatusCode::OK);
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// Read `r` to EOF keeping at most `cap` bytes; true if more came (the rest
/// is read only until the first byte past `cap`).
async fn read_capped(mut r: impl AsyncRead + Unpin, cap: usize) -> (Vec<u8>, bool) {
    let mut buf = Vec::with_capacity(cap.min(16 * 1024));
    let _ = (&mut r).take(cap as u64 + 1).read_to_end(&mut buf).await;
    let over = buf.len() > cap;
    buf.truncate(cap);
    (buf, over)
}

/// Read `r` to EOF, keeping the first [`STDERR_KEPT`] bytes.
async fn read_prefix(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = STDERR_KEPT - kept.len();
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

/// The first non-empty line of a child's stderr, for a 502 reason.
fn first_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| format!(": {}", l.chars().take(200).collect::<String>()))
        .unwrap_or_default()
}

/// Run `prog` once with `env` and answer with its response (or a 502).
/// `max_body` is the largest body the program may write (the reply cap).
/// The run happens on a task of its own, so dropping the returned future
/// does not stop the wait: the child is still killed at the timeout and
/// reaped either way.
pub async fn execute(
    prog: &CgiProgram,
    env: Vec<(String, OsString)>,
    max_body: u64,
) -> Response<Full<Bytes>> {
    let prog = prog.clone();
    let cap = usize::try_from(max_body)
        .unwrap_or(usize::MAX)
        .saturating_add(MAX_CGI_HEAD);
    match tokio::spawn(run_child(prog, env, cap)).await {
        Ok(resp) => resp,
        Err(e) => bad_gateway(format!("the CGI task failed: {e}")),
    }
}

async fn run_child(
    prog: CgiProgram,
    env: Vec<(String, OsString)>,
    cap: usize,
) -> Response<Full<Bytes>> {
    let name = prog.path.display();
    let mut cmd = tokio::process::Command::new(&prog.path);
    cmd.env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return bad_gateway(format!("cannot start the CGI program {name}: {e}")),
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.start_kill();
        let _ = child.wait().await;
        return bad_gateway("the CGI program's pipes are missing".into());
    };
    let pid = child.id();
    let run = async {
        let out = async {
            let (buf, over) = read_capped(stdout, cap).await;
            if over {
                // Not reaped yet (we wait below), so the pid is still ours.
                if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                    // SAFETY: kill(2) on our own unreaped child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            (buf, over)
        };
        let ((buf, over), err) = tokio::join!(out, read_prefix(stderr));
        (buf, over, err, child.wait().await)
    };
    let (buf, over, err, status) = match tokio::time::timeout(prog.timeout, run).await {
        Ok(r) => r,
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return bad_gateway(format!(
                "the CGI program {name} did not finish within {} ms and was killed",
                prog.timeout.as_millis()
            ));
        }
    };
    let status = match status {
        Ok(s) => s,
        Err(e) => return bad_gateway(format!("waiting for the CGI program {name}: {e}")),
    };
    if over {
        return bad_gateway(format!(
            "the CGI program {name} wrote more than {cap} bytes and was killed"
        ));
    }
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        let how = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(s)) => format!("was killed by signal {s}"),
            _ => "failed".to_string(),
        };
        return bad_gateway(format!("the CGI program {name} {how}{}", first_line(&err)));
    }
    parse_output(Bytes::from(buf)).unwrap_or_else(|why| {
        bad_gateway(format!(
            "the CGI program {name} wrote a malformed response: {why}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(r: Response<Full<Bytes>>) -> Bytes {
        r.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_cgi_document_becomes_the_http_response() {
        let out = b"Content-Type: application/octet-stream\nContent-Length: 3\r\nX-Coral-Digest: abc\nX-Coral-Served-By: s1\nConnection: close\n\nxyz";
        let r = parse_output(Bytes::from_static(out)).unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers();
        assert_eq!(h["content-length"], "3");
        assert_eq!(h["x-coral-digest"], "abc");
        assert_eq!(h["x-coral-served-by"], "s1");
        assert!(h.get("connection").is_none(), "framing is the server's");
        assert_eq!(body(r).await, "xyz");
        // Status sets the code; no Content-Length: the body's own length.
        let r = parse_output(Bytes::from_static(
            b"Status: 413 Payload Too Large\nContent-Type: text/plain\n\nno\n",
        ))
        .unwrap();
        assert_eq!(r.status(), 413);
        assert_eq!(r.headers()["content-length"], "3");
        let r = parse_output(Bytes::from_static(
            b"Status: 204\r\nContent-Type: x/y\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(r.status(), 204);
    }

    #[test]
    fn malformed_header_blocks_are_named() {
        for (out, needle) in [
            (&b""[..], "ends before the blank line"),
            (b"Content-Type: a/b\n", "ends before the blank line"),
            (b"garbage\n\n", "no colon"),
            (b"Bad Name: x\nContent-Type: a/b\n\n", "bad field name"),
            (b"Content-Type: a/b\nX: \x01\n\n", "bad value"),
            (b"X-Coral-Digest: 00\n\nbody", "no Content-Type"),
            (b"Status: abc\nContent-Type: a/b\n\n", "not NNN"),
            (b"Status: 99\nContent-Type: a/b\n\n", "not NNN"),
            (b"Status: 101 Switching\nContent-Type: a/b\n\n", "not NNN"),
            (b"Status: 2000\nContent-Type: a/b\n\n", "not NNN"),
            // Three digits the http crate takes but HTTP does not define
            // (found by the cgi_output fuzz target).
            (b"Status: 861 OK\nContent-Type: a/b\n\n", "not NNN"),
            (
                b"Status: 200\nStatus: 200\nContent-Type: a/b\n\n",
                "more than once",
            ),
            (
                b"Content-Type: a/b\nContent-Length: 5\n\nab",
                "body is 2 bytes",
            ),
            (
                b"Content-Type: a/b\nContent-Length: x\n\n",
                "not a byte count",
            ),
            (
                b"Content-Type: a/b\nContent-Length: 1\nContent-Length: 2\n\n",
                "conflicting",
            ),
        ] {
            let e = parse_output(Bytes::copy_from_slice(out)).unwrap_err();
            assert!(
                e.contains(needle),
                "{:?}: {e}",
                String::from_utf8_lossy(out)
            );
            assert!(!e.contains('\n'));
        }
        let long = format!("Content-Type: a/b\nX: {}\n\n", "a".repeat(MAX_CGI_HEAD));
        let e = parse_output(Bytes::from(long)).unwrap_err();
        assert!(e.contains("within 16384 bytes"), "{e}");
        let many: String = (0..70).map(|i| format!("X{i}: v\n")).collect();
        let e = parse_output(Bytes::from(format!("Content-Type: a/b\n{many}\n"))).unwrap_err();
        assert!(e.contains("more than 64 header lines"), "{e}");
    }

    #[test]
    fn meta_variables_follow_rfc_3875() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "192.0.2.100:8080".parse().unwrap());
        headers.append("x-coral-request-id", "3-7".parse().unwrap());
        headers.append("accept", "a/b".parse().unwrap());
        headers.append("accept", "c/d".parse().unwrap());
        headers.insert("authorization", "secret".parse().unwrap());
        let uri: Uri = "/cgi-bin/webstone?size=5&x=%20".parse().unwrap();
        let req = CgiRequest {
            method: &Method::GET,
            uri: &uri,
            version: Version::HTTP_11,
            headers: &headers,
            peer: Some("192.0.2.1:40000".parse().unwrap()),
            served_by: "server-a",
            max_size: 4096,
        };
        let env = meta_variables(&req);
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.to_str().unwrap().to_string())
        };
        assert_eq!(get("GATEWAY_INTERFACE").as_deref(), Some("CGI/1.1"));
        assert_eq!(get("REQUEST_METHOD").as_deref(), Some("GET"));
        assert_eq!(get("QUERY_STRING").as_deref(), Some("size=5&x=%20"));
        assert_eq!(get("SCRIPT_NAME").as_deref(), Some(CGI_PATH));
        assert_eq!(get("SERVER_PROTOCOL").as_deref(), Some("HTTP/1.1"));
        assert_eq!(get("SERVER_NAME").as_deref(), Some("192.0.2.100"));
        assert_eq!(get("SERVER_PORT").as_deref(), Some("8080"));
        assert_eq!(get("REMOTE_ADDR").as_deref(), Some("192.0.2.1"));
        assert_eq!(get("REMOTE_PORT").as_deref(), Some("40000"));
        assert_eq!(get(SERVED_BY_VAR).as_deref(), Some("server-a"));
        assert_eq!(get(MAX_SIZE_VAR).as_deref(), Some("4096"));
        assert_eq!(get("HTTP_X_CORAL_REQUEST_ID").as_deref(), Some("3-7"));
        assert_eq!(get("HTTP_ACCEPT").as_deref(), Some("a/b, c/d"));
        assert_eq!(get("HTTP_AUTHORIZATION"), None);
        // No Host, no peer: the server's own name, port 80, no REMOTE_*.
        let empty = HeaderMap::new();
        let env = meta_variables(&CgiRequest {
            headers: &empty,
            peer: None,
            version: Version::HTTP_10,
            ..req
        });
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.to_str().unwrap().to_string())
        };
        assert_eq!(get("SERVER_NAME").as_deref(), Some("server-a"));
        assert_eq!(get("SERVER_PORT").as_deref(), Some("80"));
        assert_eq!(get("SERVER_PROTOCOL").as_deref(), Some("HTTP/1.0"));
        assert_eq!(get("REMOTE_ADDR"), None);
    }

    #[test]
    fn app_mode_names_round_trip_and_bad_programs_are_refused() {
        for m in [AppMode::Inproc, AppMode::Cgi] {
            assert_eq!(m.as_str().parse::<AppMode>(), Ok(m));
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.as_str())
            );
        }
        assert!("CGI"
            .parse::<AppMode>()
            .unwrap_err()
            .contains("inproc or cgi"));
        let dir = tempfile::tempdir().unwrap();
        let e =
            CgiProgram::resolve(Some(&dir.path().join("nope")), DEFAULT_CGI_TIMEOUT).unwrap_err();
        assert!(e.contains("nope") && e.contains("--cgi-program"), "{e}");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        let e = CgiProgram::resolve(Some(&plain), DEFAULT_CGI_TIMEOUT).unwrap_err();
        assert!(e.contains("not an executable file"), "{e}");
        let e = CgiProgram::resolve(Some(dir.path()), DEFAULT_CGI_TIMEOUT).unwrap_err();
        assert!(e.contains("not an executable file"), "{e}");
        let e = CgiProgram::resolve(Some(Path::new("/bin/true")), Duration::ZERO).unwrap_err();
        assert!(e.contains("above zero"), "{e}");
    }
}
