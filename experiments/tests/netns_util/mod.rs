//! Helpers shared by the namespace integration tests (not a test target).
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Path of the coral-exp binary under test.
pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_coral-exp")
}

/// A unique test prefix `cxt` + 4 hex digits (test-netns.sh checks that no
/// `cxt*` namespace is left behind).
pub fn test_prefix() -> String {
    use std::io::Read;
    let mut b = [0u8; 2];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    format!("cxt{:02x}{:02x}", b[0], b[1])
}

/// Runs coral-exp with `args`, capturing output.
pub fn coral(args: &[&str]) -> Output {
    Command::new(exe())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run coral-exp")
}

/// Runs coral-exp and asserts success; returns stdout.
pub fn coral_ok(args: &[&str]) -> String {
    let o = coral(args);
    assert!(
        o.status.success(),
        "coral-exp {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Namespaces under /run/netns whose name starts with `prefix-`.
pub fn namespaces_with(prefix: &str) -> Vec<String> {
    let dash = format!("{prefix}-");
    std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&dash))
                .collect()
        })
        .unwrap_or_default()
}

/// True if the process exists and is not a zombie.
pub fn alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => match s.rfind(')') {
            Some(i) => !matches!(s[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => false,
        },
        Err(_) => false,
    }
}

/// A topology brought up by a test; `down` runs on drop (also on panic).
pub struct Topo {
    /// Its state directory (a temp dir).
    pub dir: tempfile::TempDir,
    /// Its prefix.
    pub prefix: String,
}

impl Topo {
    /// `coral-exp up --service unreplicated --servers N` in a fresh state dir.
    pub fn up(servers: u8) -> Topo {
        let dir = tempfile::tempdir().unwrap();
        let prefix = test_prefix();
        let t = Topo { dir, prefix };
        coral_ok(&[
            "up",
            "--service",
            "unreplicated",
            "--servers",
            &servers.to_string(),
            "--state",
            t.state(),
            "--prefix",
            &t.prefix,
        ]);
        t
    }

    /// The state directory as a str.
    pub fn state(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    /// topology.json.
    pub fn json(&self) -> Value {
        read_json(&self.dir.path().join("topology.json"))
    }

    /// The client namespace.
    pub fn client_ns(&self) -> String {
        self.json()["client_ns"].as_str().unwrap().to_string()
    }

    /// Runs `cmd` in the client namespace via `ip netns exec`.
    pub fn in_client(&self, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.client_ns()])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// GETs `url?size=N` with curl from the client (2 s timeout); returns
    /// (http code, served-by) if a digest-verified reply came back.
    pub fn fetch(&self, url: &str, size: usize) -> Option<String> {
        let body = self.dir.path().join("body");
        let head = self.dir.path().join("head");
        let _ = std::fs::remove_file(&body);
        let o = self.in_client(&[
            "curl",
            "-s",
            "-m",
            "2",
            "-D",
            head.to_str().unwrap(),
            "-o",
            body.to_str().unwrap(),
            &format!("{url}?size={size}"),
        ]);
        if !o.status.success() {
            return None;
        }
        let head = std::fs::read_to_string(&head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        let bytes = std::fs::read(&body).unwrap();
        assert_eq!(bytes.len(), size);
        let sum = Command::new("sha256sum").arg(&body).output().unwrap();
        let sum = String::from_utf8_lossy(&sum.stdout);
        let hex = sum.split_whitespace().next().unwrap();
        assert_eq!(hex, header("x-coral-digest"), "digest mismatch");
        Some(header("x-coral-served-by"))
    }
}

impl Topo {
    /// [`Topo::fetch`] retried for up to `secs` seconds (after a heal or a
    /// link restore the router's ARP entry may need a new resolution).
    pub fn fetch_within(&self, url: &str, size: usize, secs: u64) -> Option<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(s) = self.fetch(url, size) {
                return Some(s);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        let _ = coral(&["down", "--state", self.state()]);
    }
}

/// Reads a JSON file.
pub fn read_json(p: &Path) -> Value {
    let t = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&t).unwrap()
}

/// All pids recorded in a topology.json.
pub fn recorded_pids(v: &Value) -> Vec<u64> {
    v["hosts"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|h| {
            h["pids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_u64().unwrap())
        })
        .collect()
}

/// A results dir helper: path join.
pub fn join(base: &Path, parts: &[&str]) -> PathBuf {
    parts.iter().fold(base.to_path_buf(), |p, x| p.join(x))
}
