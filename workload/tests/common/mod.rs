//! Helpers shared by the integration tests: real processes on 127.0.0.1
//! with ephemeral ports, killed by a Drop guard.
#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) and reaped when dropped; its stdout
/// lines arrive on `lines`.
pub struct Proc {
    pub child: Child,
    pub lines: Receiver<String>,
}

impl Proc {
    /// Spawn `bin` with `args`, stdout piped line by line.
    pub fn spawn(bin: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(bin)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines: rx }
    }

    /// The next stdout line matching `pred`, within `within`.
    pub fn wait_line(&self, within: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if pred(&l) => return l,
                Ok(_) => continue,
                Err(e) => panic!("no matching stdout line within {within:?}: {e}"),
            }
        }
    }

    /// Every stdout line received so far (waits briefly for stragglers).
    pub fn drain_lines(&self) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            v.push(l);
        }
        v
    }

    /// SIGKILL now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait for exit, at most `within`; panics (and kills) on overrun.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("process did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub const SERVER: &str = env!("CARGO_BIN_EXE_webstone-server");
pub const LOAD: &str = env!("CARGO_BIN_EXE_coral-load");

/// Start webstone-server on 127.0.0.1 (port 0 unless `listen` is given
/// in `extra`) and return it with its address.
pub fn start_server(extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec![];
    if !extra.contains(&"--listen") {
        args.extend(["--listen", "127.0.0.1:0"]);
    }
    args.extend_from_slice(extra);
    let p = Proc::spawn(SERVER, &args);
    let line = p.wait_line(Duration::from_secs(20), |l| l.starts_with("listening on "));
    let addr: SocketAddr = line["listening on ".len()..].parse().expect("address");
    (p, addr)
}

/// One HTTP/1.1 reply read from a raw socket.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// True if the body's sha256 equals X-Coral-Digest.
    pub fn digest_ok(&self) -> bool {
        self.header("x-coral-digest") == Some(hex::encode(Sha256::digest(&self.body)).as_str())
    }
}

/// Connect with a read timeout.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Read one reply (Content-Length framed) from `s`, keeping leftovers in `buf`.
pub fn read_reply(s: &mut TcpStream, buf: &mut Vec<u8>) -> RawReply {
    let mut chunk = [0u8; 65536];
    loop {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut hs);
        if let httparse::Status::Complete(n) = r.parse(buf).expect("reply head parses") {
            let headers: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).to_string(),
                    )
                })
                .collect();
            let status = r.code.unwrap();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .expect("content-length");
            while buf.len() < n + len {
                let k = s.read(&mut chunk).expect("read body");
                assert!(k > 0, "EOF inside the body");
                buf.extend_from_slice(&chunk[..k]);
            }
            let body = buf[n..n + len].to_vec();
            buf.drain(..n + len);
            return RawReply {
                status,
                headers,
                body,
            };
        }
        let k = s.read(&mut chunk).expect("read head");
        assert!(
            k > 0,
            "EOF before a complete reply head: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..k]);
    }
}

/// Send `req` on a fresh connection and read one reply.
pub fn one_shot(addr: SocketAddr, req: &[u8]) -> RawReply {
    let mut s = connect(addr);
    s.write_all(req).expect("write");
    read_reply(&mut s, &mut Vec::new())
}

/// A GET request for `target` on host `addr`.
pub fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}
