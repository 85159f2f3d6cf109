//! Wiring: one CoRAL node from its [`Config`]. This is the only place that
//! knows how the shells fit together; each shell knows only its interface.
//!
//! For every service address the node is primary for: direct-routing
//! sysctls, the crash fence, the address on `lo`, the application behind
//! log-before-write, and the log channel to the peer. For every address it
//! fronts: no forwarding, the log server, and the packet engine once the
//! primary's MAC is known. Heartbeats both ways in any case.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use coral_core::codec::{Key, ModeTag, NodeConfig, RejectCounters, VipStatus};
use coral_core::detector::{DetectorConfig, DetectorEvent};
use coral_core::table::{ConnTable, TableConfig};
use coral_core::types::{Epoch, NodeId};
use tokio::net::TcpListener;

use crate::afpacket::PacketSocket;
use crate::clock::Clock;
use crate::config::{parse_mac, Config, ServiceRole};
use crate::events::EventLog;
use crate::front::{Front, FrontConfig, FrontEvent};
use crate::logchan::{serve_log, LogClient, LogClientConfig, LogServer, LogServerStats};
use crate::netcfg::{self, NetCfg};
use crate::nft::{self, FenceConfig, Nft};
use crate::{heartbeat, primary};

/// The epoch a node starts in (witness grants raise it; DESIGN.md 4).
pub const START_EPOCH: Epoch = Epoch(1);

/// Kernel settings that must match on both nodes for repaired sockets to
/// behave like the originals (checked through the `Hello` exchange).
const MATCHED_SYSCTLS: &[&str] = &[
    "net/ipv4/tcp_timestamps",
    "net/ipv4/tcp_sack",
    "net/ipv4/tcp_window_scaling",
    "net/ipv4/tcp_rmem",
    "net/ipv4/tcp_wmem",
];

fn hello(cfg: &Config) -> NodeConfig {
    NodeConfig {
        node: NodeId(cfg.node_id),
        heartbeat_interval_ns: cfg.heartbeat_ms * 1_000_000,
        misses: cfg.misses,
        vips: cfg.service.iter().map(|s| s.vip).collect(),
        kernel: MATCHED_SYSCTLS
            .iter()
            .filter_map(|k| {
                netcfg::read_sysctl(k)
                    .ok()
                    .map(|v| (k.replace('/', "."), v))
            })
            .collect(),
        software: format!("coral {}", env!("CARGO_PKG_VERSION")),
    }
}

/// Run the node until SIGTERM or SIGINT.
pub async fn run(cfg: Config) -> Result<()> {
    let clock = Clock::new();
    let events = EventLog::new(cfg.events.clone(), &cfg.name);
    let key = Key::new(&cfg.read_key()?).map_err(|e| anyhow!("key: {e}"))?;
    let nc = NetCfg::open()?;
    let lan = nc
        .iface(&cfg.lan)
        .await
        .with_context(|| format!("lan interface {:?}", cfg.lan))?;
    let lo = nc.iface("lo").await?;
    let own = *nc
        .addrs(lan.index)
        .await?
        .first()
        .ok_or_else(|| anyhow!("interface {} has no IPv4 address", cfg.lan))?;
    let me = NodeId(cfg.node_id);
    let primaries: Vec<_> = cfg
        .service
        .iter()
        .filter(|s| s.role == ServiceRole::Primary)
        .cloned()
        .collect();
    let fronted: Vec<_> = cfg
        .service
        .iter()
        .filter(|s| s.role == ServiceRole::Backup)
        .cloned()
        .collect();
    events.record(
        "start",
        &format!(
            "node {} on {} ({own}); primary for {}, front for {}",
            cfg.node_id,
            cfg.lan,
            primaries.len(),
            fronted.len()
        ),
    );

    // --- the primary's side -------------------------------------------
    let mut nft_handle = None;
    let mut log_client = None;
    if !primaries.is_empty() {
        netcfg::primary_sysctls(&cfg.lan)?;
        let fence = FenceConfig {
            table: format!("coral_{}", cfg.node_id),
            close_mark: cfg.close_mark,
        };
        let mut n = Nft::open()?;
        let mut script = nft::fence_ruleset(&fence);
        for s in &primaries {
            script.push_str(&nft::add_vip(&fence, s.vip));
            // Until leases follow heartbeats (witness work), the primary
            // holds a permanent lease on its own addresses.
            script.push_str(&nft::permanent_lease(&fence, s.vip));
        }
        n.run(&script).context("installing the crash fence")?;
        nft_handle = Some(n);
        for s in &primaries {
            nc.add_addr(lo.index, s.vip, 32).await?;
        }
        let client = LogClient::start(
            key.clone(),
            LogClientConfig {
                local: own,
                backup: SocketAddrV4::new(cfg.peer.addr, cfg.log_port),
                node: me,
                epoch: START_EPOCH,
                hello: hello(&cfg),
            },
        );
        let cgi = Arc::new(workload::cgi::CgiConfig {
            served_by: cfg.name.clone(),
            max_size: cfg.max_size,
            ..Default::default()
        });
        for s in &primaries {
            let vip = SocketAddrV4::new(s.vip, s.port);
            let (client, cgi, mark) = (client.clone(), cgi.clone(), cfg.close_mark);
            let ev = events.clone();
            tokio::spawn(async move {
                if let Err(e) = primary::serve(vip, client, cgi, mark).await {
                    ev.record("error", &format!("serving {vip}: {e}"));
                    eprintln!("coral: serving {vip}: {e}");
                    std::process::exit(1);
                }
            });
        }
        log_client = Some(client);
        events.record(
            "primary-ready",
            &primaries
                .iter()
                .map(|s| s.vip.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }

    // --- the front's side ---------------------------------------------
    let mut front = None;
    let log_stats = Arc::new(LogServerStats::default());
    let acking = Arc::new(AtomicBool::new(true));
    if !fronted.is_empty() {
        netcfg::front_sysctls()?;
        for s in &fronted {
            // The front's kernel must not have the address: it would answer
            // (and reset) the client's segments itself.
            nc.del_addr(lan.index, s.vip, 24).await?;
            nc.del_addr(lan.index, s.vip, 32).await?;
            nc.del_addr(lo.index, s.vip, 32).await?;
        }
        let table = Arc::new(Mutex::new(ConnTable::new(TableConfig::default())));
        let listener = TcpListener::bind((own, cfg.log_port))
            .await
            .with_context(|| format!("log port {own}:{}", cfg.log_port))?;
        let stats = log_stats.clone();
        let rejects = Arc::new(Mutex::new(RejectCounters::default()));
        tokio::spawn(serve_log(
            listener,
            LogServer {
                key: key.clone(),
                peer: cfg.peer.addr,
                me,
                epoch: START_EPOCH,
                hello: hello(&cfg),
                table: table.clone(),
                acking: acking.clone(),
                stats,
                rejects,
            },
        ));
        let primary_mac = match &cfg.peer.mac {
            Some(m) => parse_mac(m)?,
            None => wait_for_mac(&nc, lan.index, cfg.peer.addr).await?,
        };
        let sock = PacketSocket::open(&cfg.lan)
            .with_context(|| format!("packet socket on {}", cfg.lan))?;
        let (etx, erx) = std::sync::mpsc::channel();
        let f = Front::start(
            FrontConfig {
                lan: cfg.lan.clone(),
                own_mac: lan.mac,
                primary_mac,
                vips: fronted.iter().map(|s| s.vip).collect(),
            },
            sock,
            table,
            clock,
            etx,
        )?;
        let ev = events.clone();
        std::thread::Builder::new()
            .name("coral-front-events".into())
            .spawn(move || {
                for e in erx {
                    match e {
                        FrontEvent::Conn(t, c) => ev.record("conn", &format!("{t} {c:?}")),
                        FrontEvent::Failed(why) => ev.record("front-failed", &why),
                    }
                }
            })?;
        front = Some(f);
        events.record(
            "front-ready",
            &fronted
                .iter()
                .map(|s| s.vip.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }

    // --- heartbeats ----------------------------------------------------
    let (dtx, mut drx) = tokio::sync::mpsc::unbounded_channel();
    let vips: Vec<VipStatus> = cfg
        .service
        .iter()
        .map(|s| VipStatus {
            vip: s.vip,
            epoch: START_EPOCH,
            mode: ModeTag::Duplex,
        })
        .collect();
    let detector = DetectorConfig::new(cfg.heartbeat_ms * 1_000_000, cfg.misses)
        .map_err(|e| anyhow!("{e}"))?;
    let hb = heartbeat::start(
        key.clone(),
        heartbeat::HeartbeatConfig {
            local: SocketAddrV4::new(own, cfg.heartbeat_port),
            peer: SocketAddrV4::new(cfg.peer.addr, cfg.heartbeat_port),
            node: me,
            peer_node: NodeId(cfg.peer.node_id),
            epoch: START_EPOCH,
            detector,
            vips,
        },
        clock,
        dtx,
        Box::new(|| {}),
    )
    .await
    .context("heartbeat socket")?;

    println!("coral node {} ready", cfg.name);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_counters = String::new();
    let counters = |front: &Option<Front>| {
        let r = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let mut c = format!(
            "hb_sent={} hb_received={} hb_rejected={} log_entries={} log_replies={} log_unknown_conn={} log_rejected={} log_foreign={}",
            r(&hb.stats.sent),
            r(&hb.stats.received),
            r(&hb.stats.rejected),
            r(&log_stats.entries),
            r(&log_stats.replies),
            r(&log_stats.unknown_conn),
            r(&log_stats.rejected),
            r(&log_stats.foreign),
        );
        if let Some(f) = front {
            c.push_str(&format!(
                " front_frames={} front_forwarded={} front_dropped={} front_malformed={} front_arp_replies={} front_busy_ns={}",
                r(&f.stats.frames),
                r(&f.stats.forwarded),
                r(&f.stats.dropped),
                r(&f.stats.malformed),
                r(&f.stats.arp_replies),
                r(&f.stats.busy_ns),
            ));
        }
        c
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // Counters change rarely once idle; write them when they do.
                let c = counters(&front);
                if c != last_counters {
                    events.record("counters", &c);
                    last_counters = c;
                }
            }
            ev = drx.recv() => {
                let Some(ev) = ev else { break };
                match ev {
                    DetectorEvent::PeerFailed { ever_heard, .. } => {
                        events.record("peer-failed", &format!("ever_heard={ever_heard}"));
                        // Takeover and simplex land with the failover work; in
                        // duplex-only operation a primary keeps waiting writers
                        // blocked rather than write unlogged bytes.
                    }
                    DetectorEvent::PeerUp { epoch } => events.record("peer-up", &format!("epoch={}", epoch.0)),
                    other => events.record("detector", &format!("{other:?}")),
                }
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    events.record("counters", &counters(&front));
    events.record("stop", "signal");
    if let Some(f) = front {
        acking.store(false, Ordering::SeqCst);
        f.stop();
    }
    if let (Some(mut n), true) = (nft_handle, !primaries.is_empty()) {
        let _ = n.run(&nft::remove_table(&FenceConfig {
            table: format!("coral_{}", cfg.node_id),
            close_mark: cfg.close_mark,
        }));
    }
    for s in &primaries {
        let _ = nc.del_addr(lo.index, s.vip, 32).await;
    }
    drop(log_client);
    Ok(())
}

async fn wait_for_mac(nc: &NetCfg, index: u32, ip: Ipv4Addr) -> Result<[u8; 6]> {
    // The primary's log connection makes our kernel resolve its MAC.
    for _ in 0..3000 {
        if let Some(m) = nc.neighbour_mac(index, ip).await? {
            return Ok(m);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("no neighbour entry for the primary {ip} after 30 s (set peer.mac in the config)")
}
