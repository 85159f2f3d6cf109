//! The `cgi` application mode as real processes on 127.0.0.1: the built
//! `webstone-cgi` run by hand; `webstone-server --app cgi` serving it to
//! curl, Python's http.client, raw keep-alive and pipelined connections and
//! coral-load, every digest checked; failing CGI programs (non-zero exit,
//! signal, hang past the timeout, malformed or oversized output, a client
//! that leaves mid-request) answered with 502 and reaped, with no zombie
//! left and no descriptor leaked (read from /proc).

mod common;
use common::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const CGI: &str = env!("CARGO_BIN_EXE_webstone-cgi");

/// Run the built program with exactly `vars` as its environment.
fn run_cgi(vars: &[(&str, &str)]) -> (std::process::Output, BTreeMap<String, String>, Vec<u8>) {
    let out = Command::new(CGI)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("webstone-cgi runs");
    let split = out
        .stdout
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("a blank line ends the header block");
    let head = String::from_utf8(out.stdout[..split].to_vec()).unwrap();
    let body = out.stdout[split + 2..].to_vec();
    let headers = head
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(": ").expect("Name: value");
            (k.to_string(), v.to_string())
        })
        .collect();
    (out, headers, body)
}

#[test]
fn webstone_cgi_run_by_hand_prints_a_cgi_response() {
    // As the issue shows: QUERY_STRING=size=100 REQUEST_METHOD=GET webstone-cgi
    let (out, h, body) = run_cgi(&[("QUERY_STRING", "size=100"), ("REQUEST_METHOD", "GET")]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(
            "Content-Type: application/octet-stream\nContent-Length: 100\nX-Coral-Digest: "
        ),
        "{text}"
    );
    assert_eq!(body.len(), 100);
    assert_eq!(h["X-Coral-Digest"], hex::encode(Sha256::digest(&body)));
    assert!(!h["X-Coral-Served-By"].is_empty());
    assert!(!h.contains_key("Status"));
    // The server's name and cap, as the server passes them.
    let (_, h, body) = run_cgi(&[
        ("REQUEST_METHOD", "GET"),
        ("QUERY_STRING", "size=7"),
        ("CORAL_SERVED_BY", "server-b"),
        ("CORAL_MAX_SIZE", "7"),
    ]);
    assert_eq!(
        (h["X-Coral-Served-By"].as_str(), body.len()),
        ("server-b", 7)
    );
    // Bad meta-variables: a Status line and a one-line reason; exit 0
    // (the program answered), never a panic.
    for (vars, status, needle) in [
        (
            vec![("QUERY_STRING", "size=1")],
            "400 Bad Request",
            "REQUEST_METHOD is not set",
        ),
        (
            vec![("REQUEST_METHOD", "GET"), ("QUERY_STRING", "size=x")],
            "400 Bad Request",
            "not a decimal",
        ),
        (
            vec![
                ("REQUEST_METHOD", "GET"),
                ("QUERY_STRING", "size=8"),
                ("CORAL_MAX_SIZE", "7"),
            ],
            "413 Payload Too Large",
            "exceeds the limit of 7",
        ),
        (
            vec![("REQUEST_METHOD", "POST")],
            "405 Method Not Allowed",
            "use GET",
        ),
    ] {
        let (out, h, body) = run_cgi(&vars);
        assert!(out.status.success(), "{vars:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(h["Status"], status, "{vars:?}");
        let body = String::from_utf8(body).unwrap();
        assert!(
            body.contains(needle) && body.ends_with('\n') && body.lines().count() == 1,
            "{body:?}"
        );
        assert_eq!(h["Content-Length"], body.len().to_string());
    }
    // Arguments are not how a request arrives.
    let out = Command::new(CGI).arg("size=5").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("environment"));
    let help = Command::new(CGI).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("QUERY_STRING"));
}

fn header<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {head}"))
}

#[test]
fn cgi_mode_serves_curl_python_keep_alive_and_pipelining() {
    // Default program: the webstone-cgi beside webstone-server.
    let (_srv, addr) = start_server(&["--served-by", "host-cgi", "--app", "cgi"]);
    // curl: two URLs on one connection, each body checked against its digest.
    let dir = tempfile::tempdir().unwrap();
    let mut curl = Command::new("curl");
    for (i, (h, b, size)) in [("h1", "b1", 5000), ("h2", "b2", 3)]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            curl.arg("--next");
        }
        curl.args(["-s", "-w", "conns=%{num_connects}\\n", "-D"])
            .arg(dir.path().join(h))
            .arg("-o")
            .arg(dir.path().join(b))
            .arg(format!("http://{addr}/cgi-bin/webstone?size={size}"));
    }
    let out = curl.output().expect("curl runs");
    assert!(out.status.success(), "curl failed: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "conns=1\nconns=0\n");
    for (h, b, size) in [("h1", "b1", 5000), ("h2", "b2", 3)] {
        let head = std::fs::read_to_string(dir.path().join(h)).unwrap();
        let body = std::fs::read(dir.path().join(b)).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body.len(), size);
        assert_eq!(header(&head, "content-length"), size.to_string());
        assert_eq!(header(&head, "content-type"), "application/octet-stream");
        assert_eq!(header(&head, "x-coral-served-by"), "host-cgi");
        assert_eq!(
            header(&head, "x-coral-digest"),
            hex::encode(Sha256::digest(&body))
        );
    }

    // Python's http.client: keep-alive over sizes up to 300000, and the
    // CGI's refusals arrive as HTTP statuses on the same connection.
    let script = r#"
import hashlib, http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=20)
port = None
for size in (0, 1, 1024, 300000):
    c.request("GET", "/cgi-bin/webstone?size=%d" % size)
    r = c.getresponse()
    b = r.read()
    assert r.status == 200, r.status
    assert len(b) == size == int(r.getheader("Content-Length")), (len(b), size)
    assert r.getheader("X-Coral-Digest") == hashlib.sha256(b).hexdigest()
    assert r.getheader("X-Coral-Served-By") == "host-cgi"
    assert port in (None, c.sock.getsockname()[1]), "a new connection"
    port = c.sock.getsockname()[1]
c.request("GET", "/cgi-bin/webstone?size=abc")
r = c.getresponse()
b = r.read()
assert r.status == 400 and b"not a decimal" in b, (r.status, b)
c.request("GET", "/cgi-bin/webstone?size=99999999")
r = c.getresponse()
assert r.status == 413, r.status
r.read()
c.request("GET", "/cgi-bin/webstone?size=2")
r = c.getresponse()
assert r.status == 200 and len(r.read()) == 2
assert port == c.sock.getsockname()[1]
print("ok", port)
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &addr.ip().to_string(),
            &addr.port().to_string(),
        ])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok "),
        "python client failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Raw socket: keep-alive, then five requests pipelined in one write,
    // answered in order, each by its own process (distinct digests).
    let mut s = connect(addr);
    let mut buf = Vec::new();
    for size in [7, 70000] {
        s.write_all(&get(&format!("/cgi-bin/webstone?size={size}")))
            .unwrap();
        let r = read_reply(&mut s, &mut buf);
        assert_eq!((r.status, r.body.len()), (200, size));
        assert!(r.digest_ok());
    }
    let sizes = [10usize, 200000, 30, 0, 1024];
    let mut burst = Vec::new();
    for size in sizes {
        burst.extend(get(&format!("/cgi-bin/webstone?size={size}")));
    }
    s.write_all(&burst).unwrap();
    let mut digests = Vec::new();
    for size in sizes {
        let r = read_reply(&mut s, &mut buf);
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), size, "replies out of order");
        assert!(r.digest_ok());
        assert_eq!(r.header("x-coral-served-by"), Some("host-cgi"));
        digests.push(r.header("x-coral-digest").unwrap().to_string());
    }
    assert!(buf.is_empty(), "bytes past the last reply");
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), sizes.len());
    // The server still checks path and method itself.
    assert_eq!(one_shot(addr, &get("/cgi-bin/other")).status, 404);
    let r = one_shot(
        addr,
        b"DELETE /cgi-bin/webstone HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(r.status, 405);
}

#[test]
fn coral_load_against_cgi_mode_verifies_every_digest() {
    let (srv, addr) = start_server(&["--served-by", "load-cgi", "--app", "cgi", "--log-requests"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap().to_string();
    let url = format!("http://{addr}/cgi-bin/webstone");
    let mut p = Proc::spawn(
        LOAD,
        &[
            "--url",
            &url,
            "--clients",
            "8",
            "--requests",
            "400",
            "--size",
            "1024",
            "--out",
            &out,
        ],
    );
    let st = p.wait_exit(Duration::from_secs(120));
    assert!(st.success(), "coral-load: {st:?} {:?}", p.drain_lines());
    let sum: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(sum["requests"], 400, "{sum}");
    assert_eq!(sum["ok"], 400, "{sum}");
    assert_eq!(sum["errors"], 0, "{sum}");
    assert_eq!(sum["digest_mismatches"], 0, "{sum}");
    assert_eq!(sum["reconnects"], 0, "{sum}");
    let recs = workload::summary::read_requests_csv(dir.path().join("requests.csv")).unwrap();
    assert!(recs
        .iter()
        .all(|r| r.digest_ok && r.served_by == "load-cgi" && r.bytes == 1024));
    // One server log line per request, each a 200 from the CGI.
    let lines: Vec<String> = srv
        .drain_lines()
        .into_iter()
        .filter(|l| l.starts_with("request "))
        .collect();
    assert_eq!(lines.len(), 400);
    assert!(lines.iter().all(|l| l.ends_with("status=200")), "{lines:?}");
}

/// A CGI program that fails as its query says, else runs webstone-cgi.
fn failing_wrapper(dir: &Path) -> String {
    let p = dir.join("flaky-cgi.sh");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\n\
             case \"$QUERY_STRING\" in\n\
             mode=exit) echo 'boom on stderr' >&2; exit 3 ;;\n\
             mode=signal) kill -9 $$ ;;\n\
             mode=hang) exec /bin/sleep 60 ;;\n\
             mode=garbage) printf 'this is not a header\\n\\nbody' ;;\n\
             mode=noblank) printf 'Content-Type: a/b\\n' ;;\n\
             mode=badlen) printf 'Content-Type: a/b\\nContent-Length: 9\\n\\nabc' ;;\n\
             mode=flood) exec /usr/bin/head -c 100000 /dev/zero ;;\n\
             *) exec {CGI} ;;\n\
             esac\n"
        ),
    )
    .unwrap();
    let mut perm = std::fs::metadata(&p).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&p, perm).unwrap();
    p.to_str().unwrap().to_string()
}

/// (pid, state) of every process whose parent is `ppid`.
fn children(ppid: u32) -> Vec<(u32, char)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) S ppid ...": comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if f.next().and_then(|p| p.parse::<u32>().ok()) == Some(ppid) {
            v.push((pid, state));
        }
    }
    v
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Poll `f` until it returns true or `within` passes; its last value.
fn settles(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn failing_children_get_502_and_leave_no_zombies_or_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = failing_wrapper(dir.path());
    let (srv, addr) = start_server(&[
        "--served-by",
        "host-fail",
        "--app",
        "cgi",
        "--cgi-program",
        &wrapper,
        "--cgi-timeout-ms",
        "300",
        "--max-size",
        "1000",
    ]);
    let pid = srv.child.id();
    let cases: [(&str, &str); 7] = [
        ("mode=exit", "exited with status 3: boom on stderr"),
        ("mode=signal", "was killed by signal 9"),
        ("mode=hang", "did not finish within 300 ms and was killed"),
        (
            "mode=garbage",
            "malformed response: header line \"this is not a header\" has no colon",
        ),
        (
            "mode=noblank",
            "malformed response: the output ends before the blank line",
        ),
        (
            "mode=badlen",
            "the body is 3 bytes but Content-Length says 9",
        ),
        ("mode=flood", "wrote more than 17384 bytes and was killed"),
    ];
    let mut s = connect(addr);
    let mut buf = Vec::new();
    let round = |s: &mut std::net::TcpStream, buf: &mut Vec<u8>| {
        for (q, needle) in cases {
            s.write_all(&get(&format!("/cgi-bin/webstone?{q}")))
                .unwrap();
            let r = read_reply(s, buf);
            let text = String::from_utf8_lossy(&r.body).to_string();
            assert_eq!(r.status, 502, "{q}: {text}");
            assert!(text.contains(needle), "{q}: {text:?} lacks {needle:?}");
            assert!(text.ends_with('\n') && text.trim_end().lines().count() == 1);
            assert!(r.header("x-coral-digest").is_none());
            // A good request on the same connection after every failure.
            s.write_all(&get("/cgi-bin/webstone?size=100")).unwrap();
            let r = read_reply(s, buf);
            assert_eq!((r.status, r.body.len()), (200, 100));
            assert!(r.digest_ok());
        }
    };
    // Warm-up round (the runtime's own lazily opened descriptors), then the
    // baseline with this one connection open.
    round(&mut s, &mut buf);
    // Every reply is sent after its child was reaped: none left now.
    assert_eq!(children(pid), vec![], "children after the warm-up");
    let base = fd_count(pid);
    for _ in 0..15 {
        round(&mut s, &mut buf);
    }
    // Pipelined good and failing requests.
    let mut burst = Vec::new();
    for q in ["size=5", "mode=exit", "size=6", "mode=garbage", "size=7"] {
        burst.extend(get(&format!("/cgi-bin/webstone?{q}")));
    }
    s.write_all(&burst).unwrap();
    let got: Vec<(u16, usize)> = (0..5)
        .map(|_| {
            let r = read_reply(&mut s, &mut buf);
            (r.status, if r.status == 200 { r.body.len() } else { 0 })
        })
        .collect();
    assert_eq!(got, vec![(200, 5), (502, 0), (200, 6), (502, 0), (200, 7)]);
    assert_eq!(
        children(pid),
        vec![],
        "children after {} requests",
        16 * 14 + 5
    );
    assert_eq!(fd_count(pid), base, "descriptors leaked");

    // Clients that leave while their CGI runs (hung, or slow and then
    // answered into a closed socket): the server still kills and reaps.
    for q in ["mode=hang", "size=1000"] {
        for _ in 0..5 {
            let mut c = connect(addr);
            c.write_all(&get(&format!("/cgi-bin/webstone?{q}")))
                .unwrap();
            drop(c);
        }
    }
    let clean = settles(Duration::from_secs(20), || {
        children(pid).is_empty() && fd_count(pid) == base
    });
    assert!(
        clean,
        "children {:?}, descriptors {} (baseline {base})",
        children(pid),
        fd_count(pid)
    );
    // Still serving on the old connection.
    s.write_all(&get("/cgi-bin/webstone?size=10")).unwrap();
    let r = read_reply(&mut s, &mut buf);
    assert_eq!((r.status, r.body.len()), (200, 10));
    assert!(r.digest_ok());
}

#[test]
fn cgi_mode_refuses_to_start_without_a_usable_program() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-cgi");
    let out = Command::new(SERVER)
        .args(["--listen", "127.0.0.1:0", "--app", "cgi", "--cgi-program"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing-cgi") && !err.contains("panicked"),
        "{err}"
    );
    let out = Command::new(SERVER)
        .args(["--listen", "127.0.0.1:0", "--cgi-program", CGI])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --app cgi"));
    let out = Command::new(SERVER)
        .args(["--listen", "127.0.0.1:0", "--app", "fastcgi"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("inproc or cgi"));
    let help = Command::new(SERVER).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--app", "--cgi-program", "--cgi-timeout-ms"] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}
