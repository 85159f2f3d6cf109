//! The node's configuration file (TOML) and its validation.
//!
//! ```toml
//! name = "server-a"            # host name: X-Coral-Served-By, events.csv
//! node_id = 1
//! lan = "eth0"                 # the LAN interface
//! key_file = "/etc/coral/key"  # pre-shared key, hex (at least 16 bytes)
//! heartbeat_ms = 100
//! misses = 3
//! events = "/var/log/coral/events.csv"   # optional
//! outside = "198.51.100.2"     # optional: pinged after an address takeover
//! witness = "198.51.100.2:7012"  # optional but needed for safety, see below
//! app = "cgi"                  # "inproc" (default) or "cgi": webstone-cgi per request
//! front = "ebpf"               # "ebpf" (default) or "packet": the backup's frame source
//! # front_fallback = true      # if the eBPF program fails to load, run the packet front
//! # front_ring_bytes = 16777216  # eBPF: the ring's size (a power of two, at least 4096)
//! # adopt_flooded = false      # default true: a primary adopts frames flooded for its dead front
//! # hand_over_at_join = true   # dual role: hand the address it fronts to the next joiner
//! # cgi_program = "/usr/local/bin/webstone-cgi"  # default: beside this executable
//! # log_requests = true       # one stdout line per executed request (its id)
//!
//! [peer]
//! node_id = 2
//! addr = "192.0.2.12"          # the peer's LAN address
//! # mac = "02:00:00:00:00:12"  # optional; else learned from the neighbour table
//!
//! [[service]]
//! vip = "192.0.2.100"
//! port = 80
//! role = "primary"             # this node runs the application for it
//! ```
//!
//! ## `witness`
//!
//! With a witness (`coral witness` on a third machine), a node takes over
//! (backup) or goes simplex (primary) only after the witness granted it the
//! service address for a new epoch; a node refused, or seeing a higher
//! epoch, fences itself and exits (docs/DESIGN.md 4, docs/ARCHITECTURE.md). If
//! the witness is unreachable when a failure is detected, there is no
//! takeover: the node keeps asking and the service stalls until the
//! witness answers (safe default).
//!
//! Without a witness, a node fails over as soon as its detector declares
//! the peer failed. That is UNSAFE under partitions, paused processes and
//! false detections: both nodes may then speak for the same address and
//! connections. It exists for fail-stop experiments only.
//!
//! ## Leases
//!
//! A primary may send from its service addresses only while it holds the
//! kernel-enforced lease (nft set `lease`): refreshed on every fresh
//! authenticated heartbeat from the peer with timeout (K-1) x H (at least
//! 8 ms). At start it holds an initial lease of the same length, so it
//! serves until the first heartbeat would be late anyway: a primary cannot
//! answer a client before its backup is up (the backup fronts the address
//! and acknowledges the log), so the lease costs nothing there.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use workload::cgi_gateway::AppMode;

pub use crate::io::front::FrontKind;

/// Default intentional-close mark (`SO_MARK`) for deliberate FINs.
pub const DEFAULT_CLOSE_MARK: u32 = 0xc0a1;
/// Default TCP port of the log channel (on the backup's LAN address).
pub const DEFAULT_LOG_PORT: u16 = 7010;
/// Default UDP port of heartbeats.
pub const DEFAULT_HEARTBEAT_PORT: u16 = 7011;
/// Default UDP port a node sends witness requests from.
pub const DEFAULT_WITNESS_PORT: u16 = 7013;
/// Default size of the eBPF front's ring, bytes.
pub const DEFAULT_FRONT_RING_BYTES: u32 = crate::io::ebpf_front::DEFAULT_RING_BYTES;

/// This node's role for one service address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceRole {
    /// Runs the application; the address sits on `lo`.
    Primary,
    /// Fronts the address: records and forwards every client frame.
    Backup,
}

/// One service address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The service address (VIP).
    pub vip: Ipv4Addr,
    /// The service TCP port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// This node's role for it.
    pub role: ServiceRole,
}

fn default_port() -> u16 {
    80
}

/// The other node of the pair.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Its node id.
    pub node_id: u32,
    /// Its LAN address.
    pub addr: Ipv4Addr,
    /// Its LAN MAC ("aa:bb:cc:dd:ee:ff"); learned if absent.
    #[serde(default)]
    pub mac: Option<String>,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Host name.
    pub name: String,
    /// Node id (non-zero).
    pub node_id: u32,
    /// LAN interface.
    pub lan: String,
    /// File holding the pre-shared key in hex.
    pub key_file: PathBuf,
    /// Heartbeat interval, ms.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// Consecutive misses that declare the peer failed.
    #[serde(default = "default_misses")]
    pub misses: u32,
    /// Where to append events (events.csv); none if absent.
    #[serde(default)]
    pub events: Option<PathBuf>,
    /// Intentional-close mark.
    #[serde(default = "default_close_mark")]
    pub close_mark: u32,
    /// Log channel TCP port.
    #[serde(default = "default_log_port")]
    pub log_port: u16,
    /// Heartbeat UDP port.
    #[serde(default = "default_heartbeat_port")]
    pub heartbeat_port: u16,
    /// Largest reply the application may be asked for, bytes.
    #[serde(default = "default_max_size")]
    pub max_size: u64,
    /// The WebStone application: `inproc` (generated inside the node) or
    /// `cgi` (a CGI program started per request, the paper's).
    #[serde(default)]
    pub app: AppMode,
    /// The CGI program for `app = "cgi"` [default: `webstone-cgi` beside
    /// the `coral` executable].
    #[serde(default)]
    pub cgi_program: Option<PathBuf>,
    /// Outside host pinged from a service address after taking it over,
    /// to confirm the router learned its new MAC (paper section 3.1).
    #[serde(default)]
    pub outside: Option<Ipv4Addr>,
    /// The witness (`coral witness`) granting takeovers; see the module docs.
    #[serde(default)]
    pub witness: Option<SocketAddrV4>,
    /// UDP port this node sends witness requests from (on its LAN address).
    #[serde(default = "default_witness_port")]
    pub witness_port: u16,
    /// TCP port of the JOIN channel (on the LAN address): a simplex node
    /// listens there for a new server (`coral join`).
    #[serde(default = "default_join_port")]
    pub join_port: u16,
    /// The backup's frame source: `ebpf` (the tc ingress program and its
    /// ring, the default) or `packet` (an AF_PACKET socket).
    #[serde(default)]
    pub front: FrontKind,
    /// If the eBPF program cannot be loaded, run the packet front instead
    /// (recorded as `front-fallback`); without it the node refuses to start.
    #[serde(default)]
    pub front_fallback: bool,
    /// Size of the eBPF front's ring in bytes: a frame arriving while it is
    /// full is dropped (the client retransmits), never forwarded unrecorded.
    #[serde(default = "default_front_ring_bytes")]
    pub front_ring_bytes: u32,
    /// A primary adopts the frames the switch floods for its front's MAC
    /// once the witness granted it the address (docs/DESIGN.md 5; a tc
    /// program, loaded when the kernel allows: otherwise recorded as
    /// `adopt-unavailable`). Off: those frames wait for the client's timer.
    #[serde(default = "default_true")]
    pub adopt_flooded: bool,
    /// After fencing itself (it lost a race for an address to its peer),
    /// restart as a new node that joins the peer (`coral join`), trying
    /// for `rejoin_s` seconds (docs/DESIGN.md 6). Only for a node started
    /// from a configuration file.
    #[serde(default)]
    pub rejoin: bool,
    /// Dual role: once serving alone, hand the primary role of each
    /// address configured `backup` here to the next server that joins, and
    /// front it (docs/DESIGN.md 6). The joiner must be configured primary
    /// for those addresses. Off: the joiner fronts every address.
    #[serde(default)]
    pub hand_over_at_join: bool,
    /// How long a rejoining node keeps trying, seconds.
    #[serde(default = "default_rejoin_s")]
    pub rejoin_s: u64,
    /// Print one stdout line per request the application executed
    /// (`request id=ID peer=… status=…`, the id from the client's
    /// `X-Coral-Request-Id`), so a fault campaign can count requests
    /// executed by both nodes around a takeover. Off: one untaken branch
    /// per request.
    #[serde(default)]
    pub log_requests: bool,
    /// The peer.
    pub peer: Peer,
    /// Service addresses and this node's role for each.
    pub service: Vec<Service>,
    /// The file this configuration was read from (set by [`Config::load`]).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

fn default_heartbeat_ms() -> u64 {
    100
}
fn default_misses() -> u32 {
    3
}
fn default_close_mark() -> u32 {
    DEFAULT_CLOSE_MARK
}
fn default_log_port() -> u16 {
    DEFAULT_LOG_PORT
}
fn default_heartbeat_port() -> u16 {
    DEFAULT_HEARTBEAT_PORT
}
fn default_join_port() -> u16 {
    crate::io::join::DEFAULT_JOIN_PORT
}
fn default_witness_port() -> u16 {
    DEFAULT_WITNESS_PORT
}
fn default_front_ring_bytes() -> u32 {
    DEFAULT_FRONT_RING_BYTES
}
fn default_true() -> bool {
    true
}

fn default_rejoin_s() -> u64 {
    30
}
fn default_max_size() -> u64 {
    16 << 20
}

impl Config {
    /// Read, parse and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut c = Self::parse(&text).with_context(|| format!("in config {}", path.display()))?;
        c.path = Some(path.to_path_buf());
        Ok(c)
    }

    /// Parse and validate configuration text.
    pub fn parse(text: &str) -> Result<Config> {
        let c: Config = toml::from_str(text).context("parsing TOML")?;
        c.validate()?;
        Ok(c)
    }

    /// Check every value; the error names the field and what is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty()
            || self.name.len() > 64
            || self.name.chars().any(|c| c.is_control() || c == ',')
        {
            bail!("name must be 1-64 printable characters without commas");
        }
        if self.node_id == 0 {
            bail!("node_id must be non-zero");
        }
        if self.peer.node_id == 0 || self.peer.node_id == self.node_id {
            bail!("peer.node_id must be non-zero and differ from node_id");
        }
        if self.lan.is_empty() || self.lan.len() > 15 {
            bail!("lan must be an interface name (1-15 characters)");
        }
        if !(1..=10_000).contains(&self.heartbeat_ms) {
            bail!(
                "heartbeat_ms must be between 1 and 10000, got {}",
                self.heartbeat_ms
            );
        }
        if !(2..=100).contains(&self.misses) {
            bail!("misses must be between 2 and 100, got {}", self.misses);
        }
        if self.close_mark == 0 {
            bail!("close_mark must be non-zero");
        }
        if !self.front_ring_bytes.is_power_of_two() || self.front_ring_bytes < 128 << 10 {
            bail!(
                "front_ring_bytes must be a power of two of at least 131072 (one 64 KiB \
                 frame's record), got {}",
                self.front_ring_bytes
            );
        }
        if [
            self.log_port,
            self.heartbeat_port,
            self.witness_port,
            self.join_port,
        ]
        .contains(&0)
        {
            bail!("log_port, heartbeat_port, witness_port and join_port must be non-zero");
        }
        if let Some(w) = self.witness {
            if w.port() == 0 || w.ip().is_unspecified() {
                bail!("witness must be ADDR:PORT with a non-zero port, got {w}");
            }
        }
        if self.service.is_empty() {
            bail!("at least one [[service]] is needed");
        }
        for (i, s) in self.service.iter().enumerate() {
            if s.port == 0 {
                bail!("service[{i}].port must be non-zero");
            }
            if self.service[..i].iter().any(|o| o.vip == s.vip) {
                bail!("service[{i}]: {} is listed twice", s.vip);
            }
        }
        if self.cgi_program.is_some() && self.app != AppMode::Cgi {
            bail!("cgi_program needs app = \"cgi\"");
        }
        if let Some(m) = &self.peer.mac {
            parse_mac(m).with_context(|| format!("peer.mac {m:?}"))?;
        }
        Ok(())
    }

    /// Read the pre-shared key (hex, whitespace ignored).
    pub fn read_key(&self) -> Result<Vec<u8>> {
        read_key_file(&self.key_file)
    }
}

/// Read a pre-shared key file (hex, whitespace ignored, at least
/// [`coral_core::MIN_KEY_LEN`] bytes).
pub fn read_key_file(path: &Path) -> Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading key_file {}", path.display()))?;
    parse_key(&text).with_context(|| format!("key_file {}", path.display()))
}

/// A key file's text: hex, whitespace ignored, at least
/// [`coral_core::MIN_KEY_LEN`] bytes.
pub fn parse_key(text: &str) -> Result<Vec<u8>> {
    let hexs: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let key = hex::decode(&hexs).context("not hex")?;
    if key.len() < coral_core::MIN_KEY_LEN {
        bail!(
            "holds {} bytes; at least {} are needed",
            key.len(),
            coral_core::MIN_KEY_LEN
        );
    }
    Ok(key)
}

/// Parse "aa:bb:cc:dd:ee:ff".
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        bail!("a MAC address has six colon-separated bytes");
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        mac[i] = u8::from_str_radix(p, 16).with_context(|| format!("byte {p:?}"))?;
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "server-a"
node_id = 1
lan = "eth0"
key_file = "/tmp/k"
[peer]
node_id = 2
addr = "192.0.2.12"
[[service]]
vip = "192.0.2.100"
role = "primary"
"#;

    #[test]
    fn key_text_is_hex_of_at_least_the_minimum_length() {
        let k = parse_key(" 0011223344556677\n8899aabbccddeeff \n").unwrap();
        assert_eq!(k.len(), 16);
        assert!(format!("{:#}", parse_key("zz").unwrap_err()).contains("not hex"));
        assert!(format!("{:#}", parse_key("0011").unwrap_err()).contains("holds 2 bytes"));
    }

    #[test]
    fn good_config_gets_defaults() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.heartbeat_ms, 100);
        assert_eq!(c.misses, 3);
        assert_eq!(c.service[0].port, 80);
        assert_eq!(c.service[0].role, ServiceRole::Primary);
        assert_eq!(c.close_mark, DEFAULT_CLOSE_MARK);
        assert_eq!((c.app, c.cgi_program), (AppMode::Inproc, None));
        assert_eq!((c.front, c.front_fallback), (FrontKind::Ebpf, false));
        assert!(!c.log_requests, "request lines are opt-in");
        assert!(
            !c.hand_over_at_join,
            "a joiner fronts every address unless asked"
        );
        let c =
            Config::parse(&GOOD.replace("lan = \"eth0\"", "lan = \"eth0\"\nlog_requests = true"))
                .unwrap();
        assert!(c.log_requests);
        assert!(c.adopt_flooded);
        let c = Config::parse(&GOOD.replace(
            "lan = \"eth0\"",
            "lan = \"eth0\"\napp = \"cgi\"\ncgi_program = \"/x/cgi\"",
        ))
        .unwrap();
        assert_eq!(c.app, AppMode::Cgi);
        assert_eq!(c.cgi_program.as_deref(), Some(Path::new("/x/cgi")));
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let cases = [
            (GOOD.replace("node_id = 2", "node_id = 1"), "peer.node_id"),
            (
                GOOD.replace("role = \"primary\"", "role = \"leader\""),
                "unknown variant",
            ),
            (
                GOOD.replace("lan = \"eth0\"", "lan = \"eth0\"\nbogus = 1"),
                "unknown field",
            ),
            (
                GOOD.replace("vip = \"192.0.2.100\"", "vip = \"300.1.1.1\""),
                "invalid",
            ),
            (
                GOOD.replace("lan = \"eth0\"", "lan = \"eth0\"\nheartbeat_ms = 0"),
                "heartbeat_ms must be",
            ),
            (
                GOOD.replace(
                    "addr = \"192.0.2.12\"",
                    "addr = \"192.0.2.12\"\nmac = \"zz\"",
                ),
                "peer.mac",
            ),
            (
                format!("{GOOD}[[service]]\nvip = \"192.0.2.100\"\nrole = \"backup\"\n"),
                "listed twice",
            ),
            (
                GOOD.replace("lan = \"eth0\"", "lan = \"eth0\"\napp = \"fastcgi\""),
                "unknown variant",
            ),
            (
                GOOD.replace("lan = \"eth0\"", "lan = \"eth0\"\ncgi_program = \"/x\""),
                "cgi_program needs app",
            ),
        ];
        for (text, needle) in cases {
            let err = format!("{:#}", Config::parse(&text).unwrap_err());
            assert!(err.contains(needle), "expected {needle:?} in {err:?}");
        }
    }

    #[test]
    fn macs_parse() {
        assert_eq!(parse_mac("02:00:00:00:00:0a").unwrap(), [2, 0, 0, 0, 0, 10]);
        assert!(parse_mac("02:00:00:00:00").is_err());
        assert!(parse_mac("02:00:00:00:00:zz").is_err());
    }
}
