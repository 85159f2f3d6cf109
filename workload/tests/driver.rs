//! coral-load as a real process against webstone-server (and a few tiny
//! misbehaving servers made here) on 127.0.0.1. The key test kills the server
//! with SIGKILL mid-reply and checks the request is recorded as an error,
//! never resent, and that the client reconnects with back-off.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};
use workload::records::{ErrorKind, RequestRecord};
use workload::summary::{self, Summary, SummaryOptions};

/// Run coral-load to completion (bounded) with `args` and `--out dir`.
fn run_load(args: &[&str], dir: &Path) -> (Vec<RequestRecord>, Summary, String) {
    let mut all: Vec<&str> = args.to_vec();
    let out = dir.to_str().unwrap();
    all.extend(["--out", out]);
    let mut p = Proc::spawn(LOAD, &all);
    let st = p.wait_exit(Duration::from_secs(60));
    let lines = p.drain_lines();
    assert!(st.success(), "coral-load failed: {st:?} {lines:?}");
    let line = lines.last().cloned().unwrap_or_default();
    assert!(line.starts_with("coral-load: "), "{lines:?}");
    let recs = summary::read_requests_csv(dir.join("requests.csv")).unwrap();
    let sum = summary::read_summary_json(dir.join("summary.json")).unwrap();
    // summary.json is exactly what compute() gives from requests.csv.
    let opts = SummaryOptions {
        run_start_unix_ns: sum.run_start_unix_ns,
        warmup_end_unix_ns: sum.warmup_end_unix_ns,
        run_end_unix_ns: sum.run_end_unix_ns,
        fault_at_unix_ns: sum.fault_at_unix_ns,
    };
    // (Compared after the same JSON round trip: serde_json's default float
    // parsing may differ from the computed f64 in the last bit.)
    let computed = serde_json::to_string(&summary::compute(&recs, &opts)).unwrap();
    assert_eq!(serde_json::from_str::<Summary>(&computed).unwrap(), sum);
    (recs, sum, line)
}

fn by_client(recs: &[RequestRecord]) -> BTreeMap<u32, Vec<RequestRecord>> {
    let mut m: BTreeMap<u32, Vec<RequestRecord>> = BTreeMap::new();
    for r in recs {
        m.entry(r.client).or_default().push(r.clone());
    }
    for v in m.values_mut() {
        v.sort_by_key(|r| r.seq);
        let seqs: Vec<u64> = v.iter().map(|r| r.seq).collect();
        assert_eq!(
            seqs,
            (0..v.len() as u64).collect::<Vec<_>>(),
            "seqs not 0..n"
        );
    }
    m
}

#[test]
fn keep_alive_round_robin_over_two_servers() {
    let (_a, addr_a) = start_server(&["--served-by", "rr-a"]);
    let (_b, addr_b) = start_server(&["--served-by", "rr-b"]);
    let dir = tempfile::tempdir().unwrap();
    let ua = format!("http://{addr_a}/cgi-bin/webstone");
    let ub = format!("http://{addr_b}/cgi-bin/webstone");
    let (recs, sum, line) = run_load(
        &[
            "--url",
            &ua,
            "--url",
            &ub,
            "--clients",
            "4",
            "--requests",
            "200",
            "--size",
            "3000",
        ],
        dir.path(),
    );
    assert!(line.contains("200 requests, 200 ok"), "{line}");
    assert_eq!((sum.requests, sum.ok, sum.errors), (200, 200, 0));
    assert_eq!(
        (sum.requests_lost, sum.reconnects, sum.digest_mismatches),
        (0, 0, 0)
    );
    assert!(sum.throughput_rps > 0.0 && sum.p99_ms >= sum.p50_ms && sum.p50_ms > 0.0);
    let m = by_client(&recs);
    assert_eq!(m.len(), 4);
    for (c, rows) in &m {
        let want = if c % 2 == 0 { "rr-a" } else { "rr-b" };
        for (i, r) in rows.iter().enumerate() {
            assert!(r.is_ok() && r.digest_ok && r.status == 200 && r.bytes == 3000);
            assert_eq!(r.served_by, want);
            assert_eq!(r.new_connection, i == 0, "keep-alive reuses one connection");
            assert_eq!(r.local_port, rows[0].local_port);
            assert!(r.url.ends_with("/cgi-bin/webstone?size=3000"));
            assert!(r.end_unix_ns >= r.start_unix_ns);
        }
    }
}

#[test]
fn connection_per_request_opens_one_connection_each() {
    let (srv, addr) = start_server(&["--served-by", "pr", "--log-requests"]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/cgi-bin/webstone");
    let (recs, sum, _) = run_load(
        &[
            "--url",
            &url,
            "--clients",
            "2",
            "--requests",
            "30",
            "--connection-per-request",
        ],
        dir.path(),
    );
    assert_eq!((sum.requests, sum.ok, sum.reconnects), (30, 30, 0));
    assert!(recs
        .iter()
        .all(|r| r.new_connection && r.is_ok() && r.bytes == 1024));
    // The server saw exactly these 30 requests, each once.
    let lines = srv.drain_lines();
    let ids: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("id=")))
        .collect();
    let set: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 30);
    assert_eq!(set.len(), 30);
    let peers: BTreeSet<&str> = lines
        .iter()
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("peer=")))
        .collect();
    assert!(peers.len() > 1, "connections were not per request");
}

#[test]
fn pipelined_rounds_write_requests_back_to_back() {
    // A server that answers only once it holds a whole round of 3 requests:
    // a client that waited for each reply before the next would time out.
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let heads = buf.windows(4).filter(|w| w == b"\r\n\r\n").count();
                        if heads >= 3 {
                            let body = b"abc";
                            let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body));
                            let one = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: 3\r\nx-coral-digest: {digest}\r\nx-coral-served-by: pipe\r\n\r\nabc"
                            );
                            if s.write_all(one.repeat(3).as_bytes()).is_err() {
                                return;
                            }
                            buf.clear();
                        }
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        addr
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/cgi-bin/webstone?size=3");
    let (recs, sum, _) = run_load(
        &[
            "--url",
            &url,
            "--clients",
            "2",
            "--requests",
            "12",
            "--pipeline",
            "3",
            "--timeout-s",
            "5",
        ],
        dir.path(),
    );
    assert_eq!(
        (sum.requests, sum.ok, sum.errors, sum.reconnects),
        (12, 12, 0, 0)
    );
    for rows in by_client(&recs).values() {
        // The 12 requests are shared out a round at a time, to whichever
        // client is free first (not necessarily 6 each).
        assert_eq!(rows.len() % 3, 0, "whole rounds of 3: {rows:?}");
        for (i, r) in rows.iter().enumerate() {
            assert!(r.is_ok() && r.served_by == "pipe", "{r:?}");
            assert_eq!(r.new_connection, i == 0);
            // The round's requests were written together.
            assert_eq!(r.start_unix_ns, rows[i - i % 3].start_unix_ns);
        }
    }
    // A pipeline of 0, or with a connection per request, is refused.
    for args in [
        &["--pipeline", "0"][..],
        &["--pipeline", "2", "--connection-per-request"],
    ] {
        let out = std::process::Command::new(LOAD)
            .args(["--url", &url, "--requests", "1"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
    }
}

/// THE key test: SIGKILL the server while a 32 MiB reply is in flight.
#[test]
fn server_killed_mid_reply_is_an_error_never_resent_then_reconnect() {
    const SIZE: u64 = 32 * 1024 * 1024;
    let max = (2 * SIZE).to_string();
    let (mut a, addr) = start_server(&[
        "--served-by",
        "kill-a",
        "--max-size",
        &max,
        "--log-requests",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/cgi-bin/webstone");
    let out = dir.path().to_str().unwrap().to_string();
    let size = SIZE.to_string();
    let mut load = Proc::spawn(
        LOAD,
        &[
            "--url",
            &url,
            "--clients",
            "1",
            "--size",
            &size,
            "--duration-s",
            "6",
            "--drain-s",
            "20",
            "--out",
            &out,
        ],
    );
    // The moment server A has generated request 0-0's reply: kill it.
    a.wait_line(Duration::from_secs(30), |l| l.contains("id=0-0 "));
    a.kill();
    let a_lines = a.drain_lines();
    // Down for a while (the client backs off meanwhile), then B takes the port.
    std::thread::sleep(Duration::from_millis(400));
    let addr_s = addr.to_string();
    let (b, _) = start_server(&[
        "--listen",
        &addr_s,
        "--served-by",
        "kill-b",
        "--max-size",
        &max,
        "--log-requests",
    ]);
    let st = load.wait_exit(Duration::from_secs(90));
    assert!(st.success());
    let recs = summary::read_requests_csv(dir.path().join("requests.csv")).unwrap();
    let sum = summary::read_summary_json(dir.path().join("summary.json")).unwrap();
    let rows = by_client(&recs).remove(&0).unwrap();

    // Request 0 was cut: an eof/reset error with less than the whole body.
    let first = &rows[0];
    assert!(
        matches!(
            first.error_kind,
            Some(ErrorKind::Eof) | Some(ErrorKind::Reset)
        ),
        "{first:?}"
    );
    assert!(first.new_connection && first.bytes < SIZE && !first.digest_ok);
    assert!(first.served_by.is_empty() || first.served_by == "kill-a");

    // Then only refused connects (no connection, no request sent), spaced by
    // at least the doubling back-off 10, 20, 40 ... ms.
    let ok_at = rows
        .iter()
        .position(|r| r.is_ok())
        .expect("a success after B started");
    let mut backoff_ns = 10_000_000u64;
    let mut prev_end = first.end_unix_ns;
    for r in &rows[1..ok_at] {
        assert_eq!(r.error_kind, Some(ErrorKind::Refused), "{r:?}");
        assert_eq!((r.local_port, r.new_connection, r.bytes), (0, false, 0));
        assert!(
            r.start_unix_ns - prev_end >= backoff_ns,
            "back-off too short"
        );
        prev_end = r.end_unix_ns;
        backoff_ns = (backoff_ns * 2).min(1_000_000_000);
    }
    assert!(
        ok_at >= 2,
        "B was started 400 ms later: some connects were refused"
    );
    // The reconnect: a new connection to B, then keep-alive on it.
    let re = &rows[ok_at];
    assert!(re.new_connection && re.local_port != 0 && re.served_by == "kill-b");
    assert!(re.start_unix_ns - prev_end >= backoff_ns);
    for r in &rows[ok_at..] {
        assert!(
            r.is_ok() && r.digest_ok && r.bytes == SIZE && r.served_by == "kill-b",
            "{r:?}"
        );
        assert_eq!(r.local_port, re.local_port);
        assert_eq!(r.new_connection, r.seq == re.seq);
    }
    assert_eq!(sum.reconnects, 1);
    assert_eq!(sum.errors, ok_at as u64);
    assert_eq!(sum.requests_lost, 0);
    assert_eq!(sum.ok, (rows.len() - ok_at) as u64);
    assert_eq!(
        sum.errors_by_kind.get("refused").copied().unwrap_or(0),
        ok_at as u64 - 1
    );

    // Server side: A saw request 0-0 once; B saw exactly the requests sent
    // on its connection, each once; 0-0 was never sent again.
    let ids = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("id=")))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        ids(&a_lines),
        Vec::<String>::new(),
        "A logged more after 0-0"
    );
    let b_ids = ids(&b.drain_lines());
    let sent_to_b: Vec<String> = rows[ok_at..]
        .iter()
        .map(|r| format!("0-{}", r.seq))
        .collect();
    assert_eq!(b_ids, sent_to_b);
    assert!(!b_ids.contains(&"0-0".to_string()));
}

/// A tiny server made here: answers each request line-by-line via `reply`
/// (None: never answer, keep the connection open). Bounded to 30 s.
fn fake_server(reply: fn(&[u8]) -> Option<Vec<u8>>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(30);
        let mut held = Vec::new();
        while Instant::now() < end {
            match l.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    match reply(&buf) {
                        Some(r) => {
                            let _ = s.write_all(&r);
                        }
                        None => held.push(s),
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    addr
}

#[test]
fn bad_replies_are_classified_and_each_error_reconnects() {
    let wrong_digest = fake_server(|_| {
        Some(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 16\r\nX-Coral-Digest: {}\r\n\r\n0123456789abcdef",
                "0".repeat(64)
            )
            .into_bytes(),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{wrong_digest}/cgi-bin/webstone");
    let (recs, sum, _) = run_load(
        &[
            "--url",
            &url,
            "--clients",
            "1",
            "--requests",
            "3",
            "--size",
            "16",
        ],
        dir.path(),
    );
    assert_eq!((sum.requests, sum.errors, sum.digest_mismatches), (3, 3, 3));
    assert_eq!(sum.reconnects, 2);
    assert!(recs
        .iter()
        .all(|r| r.error_kind == Some(ErrorKind::DigestMismatch)
            && r.bytes == 16
            && r.status == 200));

    let wrong_len =
        fake_server(|_| Some(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcde".to_vec()));
    let url = format!("http://{wrong_len}/cgi-bin/webstone");
    let (recs, sum, _) = run_load(
        &[
            "--url",
            &url,
            "--clients",
            "1",
            "--requests",
            "2",
            "--size",
            "16",
        ],
        dir.path(),
    );
    assert_eq!(sum.errors_by_kind.get("bad_length"), Some(&2));
    assert!(recs.iter().all(|r| r.new_connection));

    let (_srv, addr) = start_server(&[]);
    let url = format!("http://{addr}/not-the-cgi");
    let (recs, sum, _) = run_load(
        &["--url", &url, "--clients", "1", "--requests", "2"],
        dir.path(),
    );
    assert_eq!(sum.errors_by_kind.get("bad_status"), Some(&2));
    assert!(recs.iter().all(|r| r.status == 404));

    // Nobody listening: refused, bounded by the duration.
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{free}/cgi-bin/webstone");
    let (recs, sum, _) = run_load(
        &["--url", &url, "--clients", "2", "--duration-s", "0.5"],
        dir.path(),
    );
    assert!(sum.requests >= 2 && sum.errors == sum.requests && sum.reconnects == 0);
    assert!(recs
        .iter()
        .all(|r| r.error_kind == Some(ErrorKind::Refused) && r.local_port == 0));
}

#[test]
fn silent_server_gives_timeouts_or_lost_requests() {
    let silent = fake_server(|_| None);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{silent}/cgi-bin/webstone");
    // The run ends (1 s + 0.3 s drain) long before the 30 s timeout: lost.
    let (recs, sum, line) = run_load(
        &[
            "--url",
            &url,
            "--clients",
            "2",
            "--duration-s",
            "1",
            "--drain-s",
            "0.3",
            "--timeout-s",
            "30",
        ],
        dir.path(),
    );
    assert_eq!(
        (sum.requests, sum.requests_lost, sum.errors, sum.ok),
        (2, 2, 0, 0)
    );
    assert!(recs
        .iter()
        .all(|r| r.is_lost() && r.error_kind.is_none() && r.local_port != 0));
    assert!(line.contains("2 lost"), "{line}");
    // A short timeout inside the run: timeouts, each followed by a reconnect.
    let (recs, sum, _) = run_load(
        &[
            "--url",
            &url,
            "--clients",
            "1",
            "--duration-s",
            "1",
            "--drain-s",
            "2",
            "--timeout-s",
            "0.2",
        ],
        dir.path(),
    );
    assert_eq!(sum.requests_lost, 0);
    assert!(sum.requests >= 2);
    assert_eq!(sum.errors_by_kind.get("timeout"), Some(&sum.requests));
    assert_eq!(sum.reconnects, sum.requests - 1);
    assert!(recs.iter().all(|r| r.new_connection));
}

#[test]
fn bad_driver_flags_are_refused_clearly() {
    for args in [
        vec!["--clients", "1"],
        vec!["--url", "ftp://127.0.0.1/x", "--requests", "1"],
        vec!["--url", "http://127.0.0.1:1/x", "--clients", "0"],
        vec!["--url", "http://127.0.0.1:1/x", "--duration-s", "-1"],
        vec!["--url", "http://127.0.0.1:1/x", "--timeout-s", "0"],
    ] {
        let out = std::process::Command::new(LOAD)
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.is_empty() && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn sigterm_stops_the_run_early_and_still_writes_outputs() {
    let (_srv, addr) = start_server(&["--served-by", "term"]);
    let silent = fake_server(|_| None);
    let dir = tempfile::tempdir().unwrap();
    let (u0, u1) = (
        format!("http://{addr}/cgi-bin/webstone"),
        format!("http://{silent}/cgi-bin/webstone"),
    );
    let out = dir.path().to_str().unwrap();
    let mut p = Proc::spawn(
        LOAD,
        &[
            "--url",
            &u0,
            "--url",
            &u1,
            "--clients",
            "2",
            "--duration-s",
            "300",
            "--drain-s",
            "0.5",
            "--out",
            out,
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let pid = p.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let st = p.wait_exit(Duration::from_secs(30));
    assert!(st.success(), "{st:?}");
    let recs = summary::read_requests_csv(dir.path().join("requests.csv")).unwrap();
    let sum = summary::read_summary_json(dir.path().join("summary.json")).unwrap();
    let m = by_client(&recs);
    // Client 0 (the real server) got replies; client 1 (silent) one lost.
    assert!(m[&0].iter().all(|r| r.is_ok()) && !m[&0].is_empty());
    assert_eq!(m[&1].len(), 1);
    assert!(m[&1][0].is_lost());
    assert_eq!(sum.requests_lost, 1);
    assert!(sum.run_end_unix_ns - sum.run_start_unix_ns < 300_000_000_000);
}
