//! A CoRAL pair in real namespaces for the node's integration tests: a
//! switch (bridge), a client (also the outside host), server-a (primary)
//! and server-b (backup), each node started from the real `coral` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub const VIP: &str = "192.0.2.100";

/// The second service address of a dual-role pair ([`Duplex::start_dual`]):
/// server-b is its primary, server-a fronts it.
pub const VIP2: &str = "192.0.2.101";

/// The pair's pre-shared key (hex), written to its key file.
pub const KEY_HEX: &str = "00112233445566778899aabbccddeeff0011223344556677";

/// The pair's key, for tests that forge or replay its control traffic.
pub fn pair_key() -> coral_core::Key {
    coral_core::Key::new(&hex::decode(KEY_HEX).unwrap()).unwrap()
}

/// A key the pair does not hold.
pub fn wrong_key() -> coral_core::Key {
    coral_core::Key::new(b"not-the-key-at-all-0123456789").unwrap()
}

/// A heartbeat of a duplex node reporting no address (to forge or replay).
pub fn blank_heartbeat() -> coral_core::Message {
    coral_core::Message::Heartbeat(coral_core::Heartbeat {
        mode: coral_core::ModeTag::Duplex,
        vips: vec![],
        echo: 0,
        sent_unix_ns: 0,
        answer: false,
    })
}

pub struct Duplex {
    pub ns: super::Netns,
    pub c: String,
    pub a: String,
    pub b: String,
    pub sw: String,
    pub dir: tempfile::TempDir,
    /// server-b's then server-a's `coral node` (ip netns exec execs it).
    pub nodes: Vec<Child>,
    /// The witness (`coral witness` in the client namespace, the outside
    /// host), if the pair uses one.
    pub witness: Option<Child>,
}

/// Where the witness listens (the client namespace: the outside host).
pub const WITNESS: &str = "192.0.2.1:7012";

/// The `coral` binary: cargo's path in tests; next to the examples
/// directory when the fixture is used by an example (examples/..).
pub fn coral_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| match option_env!("CARGO_BIN_EXE_coral") {
        Some(p) => p.to_string(),
        None => std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.parent()?.join("coral")))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "coral".into()),
    })
}

/// The front the pair's nodes are given unless a test names its own:
/// `CORAL_TEST_FRONT` (`ebpf` or `packet`) runs the suites on that front;
/// unset, the node's default.
fn test_front(extra: &str) -> Option<String> {
    let f = std::env::var("CORAL_TEST_FRONT").ok()?;
    if extra.contains("front =") {
        return None;
    }
    assert!(
        f == "ebpf" || f == "packet",
        "CORAL_TEST_FRONT={f:?}: ebpf or packet"
    );
    Some(f)
}

/// A sibling binary of the workspace (built by `cargo build --workspace`).
pub fn sibling(name: &str) -> PathBuf {
    let p = Path::new(coral_bin()).with_file_name(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` first",
        p.display()
    );
    p
}

#[allow(clippy::too_many_arguments)]
fn config(
    name: &str,
    id: u32,
    peer_id: u32,
    peer: &str,
    role: &str,
    dir: &Path,
    hb_ms: u64,
    misses: u32,
    witness: bool,
    extra: &str,
    services: &[(&str, &str)],
) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "name = \"{name}\"\nnode_id = {id}\nlan = \"eth0\"\nkey_file = \"{key}\"\nheartbeat_ms = {hb_ms}\nmisses = {misses}\n\
             events = \"{ev}\"\noutside = \"192.0.2.1\"\n{w}{front}{extra}[peer]\nnode_id = {peer_id}\naddr = \"{peer}\"\n[[service]]\nvip = \"{VIP}\"\nrole = \"{role}\"\n{more}",
            key = dir.join("key").display(),
            ev = dir.join(format!("{name}-events.csv")).display(),
            front = test_front(extra)
                .map(|f| format!("front = \"{f}\"\n"))
                .unwrap_or_default(),
            more = services
                .iter()
                .map(|(vip, role)| format!("[[service]]\nvip = \"{vip}\"\nrole = \"{role}\"\n"))
                .collect::<String>(),
            w = if witness {
                format!("witness = \"{WITNESS}\"\n")
            } else {
                String::new()
            },
        ),
    )
    .unwrap();
    p
}

impl Duplex {
    /// A pair with a witness (the safe configuration every test uses
    /// unless it says otherwise).
    pub fn start(tag: &str, hb_ms: u64, misses: u32) -> Duplex {
        Self::start_with(tag, hb_ms, misses, true)
    }

    /// A pair, with or without a witness.
    pub fn start_with(tag: &str, hb_ms: u64, misses: u32, with_witness: bool) -> Duplex {
        Self::start_configured(tag, hb_ms, misses, with_witness, "")
    }

    /// A pair with `extra` top-level lines in both nodes' configurations
    /// (e.g. `app = "cgi"\n`).
    pub fn start_configured(
        tag: &str,
        hb_ms: u64,
        misses: u32,
        with_witness: bool,
        extra: &str,
    ) -> Duplex {
        Self::start_roles(tag, hb_ms, misses, with_witness, extra, false)
    }

    /// A dual-role pair with a witness (the paper's configuration): server-a
    /// is primary for [`VIP`] and fronts [`VIP2`], server-b the other way
    /// round; `extra` as for [`Duplex::start_configured`].
    pub fn start_dual(tag: &str, hb_ms: u64, misses: u32, extra: &str) -> Duplex {
        Self::start_roles(tag, hb_ms, misses, true, extra, true)
    }

    fn start_roles(
        tag: &str,
        hb_ms: u64,
        misses: u32,
        with_witness: bool,
        extra: &str,
        dual: bool,
    ) -> Duplex {
        let mut ns = super::Netns::new(tag);
        let sw = ns.add("sw");
        let c = ns.add("c");
        let a = ns.add("a");
        let b = ns.add("b");
        ns.bridge(&sw);
        ns.plug(&c, "192.0.2.1/24", &sw, "c");
        ns.plug(&a, "192.0.2.11/24", &sw, "a");
        ns.plug(&b, "192.0.2.12/24", &sw, "b");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), KEY_HEX).unwrap();
        let ca = config(
            "server-a",
            1,
            2,
            "192.0.2.12",
            "primary",
            dir.path(),
            hb_ms,
            misses,
            with_witness,
            extra,
            if dual { &[(VIP2, "backup")] } else { &[] },
        );
        let cb = config(
            "server-b",
            2,
            1,
            "192.0.2.11",
            "backup",
            dir.path(),
            hb_ms,
            misses,
            with_witness,
            extra,
            if dual { &[(VIP2, "primary")] } else { &[] },
        );
        let mut nodes = Vec::new();
        for (n, cfg) in [(&b, &cb), (&a, &ca)] {
            let log = std::fs::File::create(dir.path().join(format!("{n}.log"))).unwrap();
            nodes.push(
                Command::new("ip")
                    .args(["netns", "exec", n, coral_bin(), "node", "--config"])
                    .arg(cfg)
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap(),
            );
        }
        let mut d = Duplex {
            ns,
            c,
            a,
            b,
            sw,
            dir,
            nodes,
            witness: None,
        };
        if with_witness {
            d.witness = Some(d.spawn_witness());
        }
        d.wait_ready();
        if let Some(f) = test_front(extra) {
            // The front asked for runs (a node never falls back silently).
            let ev = d.events("server-b");
            assert!(
                ev.contains(&format!("front={f}")),
                "CORAL_TEST_FRONT={f}: {ev}"
            );
        }
        d
    }

    /// Start `coral witness` in the client namespace (records in the
    /// test's directory, so a restarted witness resumes them).
    pub fn spawn_witness(&self) -> Child {
        let dir = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("witness.log"))
            .unwrap();
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.c,
                coral_bin(),
                "witness",
                "--listen",
                WITNESS,
            ])
            .arg("--key-file")
            .arg(dir.join("key"))
            .arg("--state")
            .arg(dir.join("witness.state"))
            .args([
                "--allow-node",
                "1",
                "--allow-node",
                "2",
                "--allow-node",
                "3",
            ])
            .args(["--allow-vip", VIP, "--allow-vip", VIP2])
            .arg("--events")
            .arg(dir.join("witness-events.csv"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    pub fn wait_ready(&self) {
        self.wait_serving(VIP);
        let dual = std::fs::read_to_string(self.dir.path().join("server-a.toml"))
            .is_ok_and(|c| c.contains(VIP2));
        if dual {
            self.wait_serving(VIP2);
        }
    }

    fn wait_serving(&self, vip: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.c,
                    "curl",
                    "-s",
                    "-m",
                    "1",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                ])
                .arg(format!("http://{vip}/cgi-bin/webstone?size=10"))
                .output()
                .unwrap();
            if out.stdout == b"200" {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("CoRAL did not come up; logs:\n{}", self.logs());
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        for f in [
            "server-a.log",
            "server-b.log",
            "server-a-events.csv",
            "server-b-events.csv",
            "witness.log",
            "witness-events.csv",
            "spare.log",
            "spare-events.csv",
        ] {
            let text = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
            s.push_str(&format!("--- {f}\n{text}\n"));
        }
        s
    }

    pub fn events(&self, host: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{host}-events.csv")))
            .unwrap_or_default()
    }

    pub fn in_client(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.c])
            .args(args)
            .output()
            .unwrap()
    }

    /// The HTTP status a fresh curl from the client gets for `path` on the
    /// service address (5 s at most; empty if it got none).
    pub fn status_of(&self, path: &str) -> String {
        let url = format!("http://{VIP}{path}");
        let out = self.in_client(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "5",
            &url,
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Duplex {
    fn drop(&mut self) {
        for n in self.nodes.iter_mut().chain(self.witness.iter_mut()) {
            let _ = n.kill();
            let _ = n.wait();
        }
        let _ = &self.ns;
    }
}

/// Split an HTTP/1.1 response; check status 200, length and digest.
pub fn check_reply(raw: &[u8], size: usize) -> String {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head ends")
        + 4;
    let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let body = &raw[end..end + size];
    let digest = head
        .lines()
        .find_map(|l| l.strip_prefix("x-coral-digest: "))
        .expect("digest header")
        .trim()
        .to_string();
    assert_eq!(
        hex::encode(Sha256::digest(body)),
        digest,
        "digest matches the body"
    );
    head.lines()
        .find_map(|l| l.strip_prefix("x-coral-served-by: "))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The latest value of counter `name` in a node's events.csv.
pub fn counter(events: &str, name: &str) -> u64 {
    events
        .lines()
        .rfind(|l| l.contains(",counters,"))
        .and_then(|l| {
            l.split([' ', ','])
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        })
        .and_then(|v| v.trim_matches('"').parse().ok())
        .unwrap_or(0)
}

/// `TcpExtTCPTimeouts` (retransmission timeouts that fired) in namespace `ns`.
pub fn tcp_timeouts(ns: &str) -> u64 {
    tcp_ext(ns, "TCPTimeouts")
}

/// The `TcpExt` counter `name` of namespace `ns` (/proc/net/netstat).
pub fn tcp_ext(ns: &str, name: &str) -> u64 {
    let out = super::sh(&["ip", "netns", "exec", ns, "cat", "/proc/net/netstat"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let (names, values) = (lines[0], lines[1]);
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("TcpExt {name}"))
}

/// Run the load driver in the client (8 clients over `vips`) for `secs`,
/// taking switch port `port` (`p-a`, `p-b`) down after `cut_after`; returns
/// the summary, the rows and the rows' headers.
pub fn load_across_cut(
    d: &Duplex,
    vips: &[&str],
    port: &str,
    secs: u64,
    cut_after: Duration,
    extra: &[&str],
) -> (serde_json::Value, Vec<csv::StringRecord>, Vec<String>) {
    let out_dir = d.dir.path().join("load");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &d.c]).arg(sibling("coral-load"));
    for v in vips {
        cmd.args(["--url", &format!("http://{v}/cgi-bin/webstone")]);
    }
    cmd.args(["--clients", "8", "--duration-s", &secs.to_string()])
        .args(["--warmup-s", "0", "--timeout-s", "20"])
        .args(extra)
        .arg("--out")
        .arg(&out_dir);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(cut_after);
    super::sh(&["ip", "-n", &d.sw, "link", "set", port, "down"]);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "coral-load: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.logs()
    );
    let summary = load_summary(&out_dir);
    let mut rdr = csv::Reader::from_path(out_dir.join("requests.csv")).unwrap();
    let headers: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    let rows = rdr.records().map(|r| r.unwrap()).collect();
    (summary, rows, headers)
}

/// coral-load's `summary.json` in `out_dir`.
pub fn load_summary(out_dir: &Path) -> serde_json::Value {
    let p = out_dir.join("summary.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

/// Python for tests that speak HTTP themselves: `read_reply(s, buf)` reads
/// one reply from socket `s`, checks the status is 200 and the body's
/// SHA-256 against `X-Coral-Digest`, and returns the `X-Coral-Served-By`
/// value and the bytes read past the reply.
pub const PY_READ_REPLY: &str = r#"
import socket, hashlib, time, sys
def read_reply(s, buf=b""):
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d: raise SystemExit("eof in head")
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    h = {}
    for l in head.split(b"\r\n")[1:]:
        k, v = l.split(b":", 1); h[k.strip().lower()] = v.strip().decode()
    n = int(h[b"content-length"])
    while len(rest) < n:
        d = s.recv(65536)
        if not d: raise SystemExit("eof in body")
        rest += d
    body, more = rest[:n], rest[n:]
    assert head.startswith(b"HTTP/1.1 200"), head
    assert hashlib.sha256(body).hexdigest() == h[b"x-coral-digest"], "digest"
    return h[b"x-coral-served-by"], more
"#;
