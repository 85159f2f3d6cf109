//! webstone-server as a real process on 127.0.0.1: digest-verified replies
//! for curl, Python's http.client and raw sockets; keep-alive; pipelining;
//! every bad input gets its 4xx with a one-line reason; SIGTERM exits 0.

mod common;
use common::*;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

#[test]
fn curl_gets_a_digest_correct_reply() {
    let (_srv, addr) = start_server(&["--served-by", "host-curl"]);
    let dir = tempfile::tempdir().unwrap();
    let body_path = dir.path().join("body");
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o"])
        .arg(&body_path)
        .arg(format!("http://{addr}/cgi-bin/webstone?size=5000"))
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl failed: {out:?}");
    let head = String::from_utf8(out.stdout).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no {name} in {head}"))
    };
    let body = std::fs::read(&body_path).unwrap();
    assert_eq!(body.len(), 5000);
    assert_eq!(header("content-length"), "5000");
    assert_eq!(header("x-coral-served-by"), "host-curl");
    assert_eq!(header("x-coral-digest"), hex::encode(Sha256::digest(&body)));
}

#[test]
fn python_http_client_keeps_alive_and_checks_digests() {
    let (_srv, addr) = start_server(&["--served-by", "host-py"]);
    let script = r#"
import hashlib, http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=20)
bodies = []
for size in (0, 1, 1024, 300000):
    c.request("GET", "/cgi-bin/webstone?size=%d" % size)
    r = c.getresponse()
    b = r.read()
    assert r.status == 200, r.status
    assert len(b) == size == int(r.getheader("Content-Length")), (len(b), size)
    assert r.getheader("X-Coral-Digest") == hashlib.sha256(b).hexdigest()
    assert r.getheader("X-Coral-Served-By") == "host-py"
    bodies.append(b)
assert bodies[2] != bodies[1] * 1024
print("ok", c.sock.getsockname()[1])
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
}

#[test]
fn keep_alive_and_pipelined_replies_come_back_in_order() {
    let (_srv, addr) = start_server(&["--served-by", "host-pipe"]);
    let mut s = connect(addr);
    let mut buf = Vec::new();
    // Keep-alive: two requests one after the other on one connection.
    for size in [7, 70000] {
        s.write_all(&get(&format!("/cgi-bin/webstone?size={size}")))
            .unwrap();
        let r = read_reply(&mut s, &mut buf);
        assert_eq!((r.status, r.body.len()), (200, size));
        assert!(r.digest_ok());
    }
    // Pipelined: three requests in one write, three replies in order.
    let sizes = [10usize, 200000, 30];
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
        assert_eq!(r.header("x-coral-served-by"), Some("host-pipe"));
        digests.push(r.header("x-coral-digest").unwrap().to_string());
    }
    assert!(buf.is_empty(), "bytes past the third reply");
    digests.dedup();
    assert_eq!(digests.len(), 3);
}

/// Send `req` on its own connection; expect `status`, a one-line reason
/// mentioning `needle`, and (for a closing reply) a clean close.
fn expect_rejection(addr: std::net::SocketAddr, req: &[u8], status: u16, needle: &str) {
    let mut s = connect(addr);
    // A large head may be refused before it is all written; that is fine.
    let _ = s.write_all(req);
    let r = read_reply(&mut s, &mut Vec::new());
    assert_eq!(
        r.status,
        status,
        "for {:?}",
        String::from_utf8_lossy(&req[..req.len().min(80)])
    );
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert!(
        text.ends_with('\n') && text.trim_end().lines().count() == 1,
        "{text:?}"
    );
    assert!(text.contains(needle), "{text:?} lacks {needle:?}");
    assert!(r.header("x-coral-digest").is_none());
}

#[test]
fn bad_inputs_get_their_4xx_with_a_reason() {
    let (_srv, addr) = start_server(&["--max-size", "100000", "--max-head", "2048"]);
    expect_rejection(
        addr,
        &get("/cgi-bin/webstone?size=abc"),
        400,
        "not a decimal",
    );
    expect_rejection(addr, &get("/cgi-bin/webstone?size="), 400, "no value");
    expect_rejection(
        addr,
        &get("/cgi-bin/webstone?size=-5"),
        400,
        "not a decimal",
    );
    expect_rejection(addr, &get("/cgi-bin/webstone?size=100001"), 413, "exceeds");
    expect_rejection(addr, &get("/cgi-bin/other"), 404, "no such path");
    expect_rejection(
        addr,
        b"POST /cgi-bin/webstone HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
        405,
        "not allowed",
    );
    expect_rejection(
        addr,
        b"DELETE /cgi-bin/webstone HTTP/1.1\r\nHost: t\r\n\r\n",
        405,
        "use GET",
    );
    // Oversized heads: just over the limit, and far over it (the server
    // refuses before the client has finished writing).
    for pad in [2100usize, 4_000_000] {
        let mut req = b"GET /cgi-bin/webstone HTTP/1.1\r\nHost: t\r\nX-Pad: ".to_vec();
        req.extend(vec![b'a'; pad]);
        req.extend(b"\r\n\r\n");
        expect_rejection(addr, &req, 431, "exceeds 2048 bytes");
    }
    let mut many = b"GET /cgi-bin/webstone HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..150 {
        many.extend(format!("H{i}: v\r\n").as_bytes());
    }
    many.extend(b"\r\n");
    expect_rejection(addr, &many, 431, "header fields");
    expect_rejection(addr, b"G@T / HTTP/1.1\r\n\r\n", 400, "malformed");
    expect_rejection(
        addr,
        b"GET /cgi-bin/webstone HTTP/1.1\r\nBroken Header\r\n\r\n",
        400,
        "malformed",
    );

    // A refused head after a good pipelined request: the good reply first,
    // then the 431, then the server closes.
    let mut s = connect(addr);
    let mut req = get("/cgi-bin/webstone?size=33");
    req.extend(b"GET /cgi-bin/webstone HTTP/1.1\r\nX-Pad: ");
    req.extend(vec![b'b'; 5000]);
    req.extend(b"\r\n\r\n");
    let _ = s.write_all(&req);
    let mut buf = Vec::new();
    let ok = read_reply(&mut s, &mut buf);
    assert_eq!((ok.status, ok.body.len()), (200, 33));
    assert!(ok.digest_ok());
    let refused = read_reply(&mut s, &mut buf);
    assert_eq!(refused.status, 431);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("clean close (FIN, not RST)");
    assert!(rest.is_empty() && buf.is_empty());

    // The server is still fine afterwards.
    let r = one_shot(addr, &get("/cgi-bin/webstone"));
    assert_eq!((r.status, r.body.len()), (200, 1024));
    assert!(r.digest_ok());
}

#[test]
fn sigterm_exits_cleanly_and_bad_flags_are_refused() {
    let (mut srv, addr) = start_server(&[]);
    assert_eq!(one_shot(addr, &get("/cgi-bin/webstone?size=1")).status, 200);
    let pid = srv.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let st = srv.wait_exit(Duration::from_secs(10));
    assert!(st.success(), "exit status {st:?}");

    let out = Command::new(SERVER)
        .args(["--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
    let help = Command::new(SERVER).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--listen", "--served-by", "--max-size", "--max-head"] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    // A port already taken: a clear error, not a panic.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = Command::new(SERVER)
        .args(["--listen", &taken.local_addr().unwrap().to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen") && !err.contains("panicked"),
        "{err}"
    );
}
