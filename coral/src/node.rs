//! Wiring: one CoRAL node from its [`Config`]. This is the only place that
//! knows how the shells fit together; each shell knows only its interface.
//!
//! For every service address the node is primary for: direct-routing
//! sysctls, the address on `lo`, the application behind log-before-write,
//! and the log channel to the peer. For every address it fronts: no
//! forwarding, the log server, and the packet engine once the primary's MAC
//! is known. In any case: the crash fence (nftables) and heartbeats.
//!
//! When the peer is declared failed, the node takes over what the peer did:
//! the connections it was backing up are rebuilt ([`crate::takeover`]), and
//! the addresses the peer fronted move to this node's LAN interface
//! (primary going simplex: waiting writers released, no rebuild needed).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use coral_core::codec::{Key, ModeTag, NodeConfig, RejectCounters, VipStatus};
use coral_core::detector::{DetectorConfig, DetectorEvent};
use coral_core::table::{ConnTable, TableConfig};
use coral_core::types::{Epoch, NodeId};
use tokio::net::TcpListener;

use crate::afpacket::PacketSocket;
use crate::clock::{unix_ns, Clock};
use crate::config::{parse_mac, Config, Service, ServiceRole};
use crate::events::EventLog;
use crate::front::{Front, FrontConfig, FrontEvent};
use crate::logchan::{serve_log, LogClient, LogClientConfig, LogServer, LogServerStats};
use crate::logged_io::ReplyLogger;
use crate::netcfg::{self, Iface, NetCfg};
use crate::nft::{self, FenceConfig, Nft};
use crate::takeover::{self, SimplexLogger, TakeoverCtx, TakeoverReport};
use crate::{announce, heartbeat, primary};

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

/// Everything a running node holds.
struct Node {
    cfg: Config,
    clock: Clock,
    events: EventLog,
    nc: NetCfg,
    lan: Iface,
    lo: Iface,
    nft: Nft,
    fence: FenceConfig,
    primaries: Vec<Service>,
    fronted: Vec<Service>,
    cgi: Arc<workload::cgi::CgiConfig>,
    log_client: Option<LogClient>,
    front: Option<Arc<Front>>,
    table: Arc<Mutex<ConnTable>>,
    acking: Arc<AtomicBool>,
    log_stats: Arc<LogServerStats>,
    /// Send-only packet socket for gratuitous ARP (primaries).
    arp_sock: Option<PacketSocket>,
    failed_over: bool,
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
    let pick = |r: ServiceRole| {
        cfg.service
            .iter()
            .filter(|s| s.role == r)
            .cloned()
            .collect::<Vec<_>>()
    };
    let (primaries, fronted) = (pick(ServiceRole::Primary), pick(ServiceRole::Backup));
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

    // The crash fence guards every address this node may ever speak for;
    // it holds a lease on those it is primary for.
    let fence = FenceConfig {
        table: format!("coral_{}", cfg.node_id),
        close_mark: cfg.close_mark,
    };
    let mut nft = Nft::open()?;
    let mut script = nft::fence_ruleset(&fence);
    for s in &cfg.service {
        script.push_str(&nft::add_vip(&fence, s.vip));
    }
    for s in &primaries {
        // Until leases follow heartbeats (witness work), a primary holds a
        // permanent lease on its own addresses.
        script.push_str(&nft::permanent_lease(&fence, s.vip));
    }
    nft.run(&script).context("installing the crash fence")?;

    let cgi = Arc::new(workload::cgi::CgiConfig {
        served_by: cfg.name.clone(),
        max_size: cfg.max_size,
        ..Default::default()
    });
    let mut node = Node {
        clock,
        events: events.clone(),
        nc: nc.clone(),
        lan,
        lo,
        nft,
        fence,
        primaries: primaries.clone(),
        fronted: fronted.clone(),
        cgi: cgi.clone(),
        log_client: None,
        front: None,
        table: Arc::new(Mutex::new(ConnTable::new(TableConfig::default()))),
        acking: Arc::new(AtomicBool::new(true)),
        log_stats: Arc::new(LogServerStats::default()),
        arp_sock: None,
        failed_over: false,
        cfg,
    };
    let cfg = node.cfg.clone();

    node.arp_sock = Some(PacketSocket::open_send_only(&cfg.lan)?);

    // --- the primary's side -------------------------------------------
    if !primaries.is_empty() {
        netcfg::primary_sysctls(&cfg.lan)?;
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
        for s in &primaries {
            let vip = SocketAddrV4::new(s.vip, s.port);
            let listener = primary::listen(vip).with_context(|| format!("listening on {vip}"))?;
            let logger: Arc<dyn ReplyLogger> = Arc::new(client.clone());
            tokio::spawn(primary::serve(
                listener,
                logger,
                Some(client.clone()),
                cgi.clone(),
                cfg.close_mark,
            ));
        }
        node.log_client = Some(client);
        events.record("primary-ready", &list(&primaries));
    }

    // --- the front's side ---------------------------------------------
    if !fronted.is_empty() {
        netcfg::front_sysctls()?;
        for s in &fronted {
            // The front's kernel must not have the address: it would answer
            // (and reset) the client's segments itself.
            for (idx, len) in [(lan.index, 24), (lan.index, 32), (lo.index, 32)] {
                nc.del_addr(idx, s.vip, len).await?;
            }
        }
        let listener = TcpListener::bind((own, cfg.log_port))
            .await
            .with_context(|| format!("log port {own}:{}", cfg.log_port))?;
        tokio::spawn(serve_log(
            listener,
            LogServer {
                key: key.clone(),
                peer: cfg.peer.addr,
                me,
                epoch: START_EPOCH,
                hello: hello(&cfg),
                table: node.table.clone(),
                acking: node.acking.clone(),
                stats: node.log_stats.clone(),
                rejects: Arc::new(Mutex::new(RejectCounters::default())),
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
            node.table.clone(),
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
        node.front = Some(Arc::new(f));
        events.record("front-ready", &list(&fronted));
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
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // Counters change rarely once idle; write them when they do.
                let c = node.counters(&hb);
                if c != last_counters {
                    events.record("counters", &c);
                    last_counters = c;
                }
            }
            ev = drx.recv() => {
                let Some(ev) = ev else { break };
                match ev {
                    DetectorEvent::PeerFailed { ever_heard, last_heard } => {
                        let detected = unix_ns();
                        events.record_at(detected, "peer-failed", &format!(
                            "ever_heard={ever_heard} silent_ms={}", clock.now().since_ms(last_heard)));
                        if !node.failed_over {
                            node.failed_over = true;
                            hb.mode.store(ModeTag::Simplex as u8, Ordering::Relaxed);
                            if let Err(e) = node.fail_over().await {
                                events.record("failover-error", &format!("{e:#}"));
                                eprintln!("coral: failover: {e:#}");
                            }
                        }
                    }
                    DetectorEvent::PeerUp { epoch } => events.record("peer-up", &format!("epoch={}", epoch.0)),
                    other => events.record("detector", &format!("{other:?}")),
                }
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    events.record("counters", &node.counters(&hb));
    events.record("stop", "signal");
    node.shutdown().await;
    Ok(())
}

fn list(s: &[Service]) -> String {
    s.iter()
        .map(|s| s.vip.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn fmt_breakdown(m: &std::collections::BTreeMap<String, f64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v:.3}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Node {
    fn counters(&self, hb: &heartbeat::HeartbeatHandle) -> String {
        let r = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let mut c = format!(
            "hb_sent={} hb_received={} hb_rejected={} log_entries={} log_replies={} log_unknown_conn={} log_rejected={} log_foreign={}",
            r(&hb.stats.sent),
            r(&hb.stats.received),
            r(&hb.stats.rejected),
            r(&self.log_stats.entries),
            r(&self.log_stats.replies),
            r(&self.log_stats.unknown_conn),
            r(&self.log_stats.rejected),
            r(&self.log_stats.foreign),
        );
        if let Some(f) = &self.front {
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
    }

    /// The peer failed: take over what it did.
    async fn fail_over(&mut self) -> Result<()> {
        if let Some(client) = &self.log_client {
            // Paper 3.1: writers waiting for log acks must stop waiting.
            let t = Instant::now();
            client.go_simplex();
            self.events.record(
                "simplex",
                &format!("released_ms={:.3}", t.elapsed().as_secs_f64() * 1e3),
            );
        }
        if self.front.is_some() {
            self.take_over_connections().await?;
        }
        if !self.primaries.is_empty() {
            self.take_fronted_addresses().await?;
        }
        Ok(())
    }

    /// The backup's takeover of the primary's connections (DESIGN.md 5).
    async fn take_over_connections(&mut self) -> Result<()> {
        let front = self.front.clone().expect("front");
        let front = &*front;
        let ctx = TakeoverCtx {
            vips: self
                .fronted
                .iter()
                .map(|s| SocketAddrV4::new(s.vip, s.port))
                .collect(),
            table: self.table.clone(),
            acking: self.acking.clone(),
            clock: self.clock,
            close_mark: self.cfg.close_mark,
            own_mac: self.lan.mac,
            outside: self.cfg.outside,
        };
        let mut report = TakeoverReport::default();
        // Steps 1-2.
        let (restored, points, handshakes) =
            takeover::snapshot_and_rebuild(&ctx, front, &mut report);
        // Step 3: lease, then the address on the LAN interface.
        let t = Instant::now();
        let mut script = String::new();
        for s in &self.fronted {
            script.push_str(&nft::permanent_lease(&self.fence, s.vip));
        }
        self.nft
            .run(&script)
            .context("leasing the taken-over addresses")?;
        let t = report.step("lease", t);
        for s in &self.fronted {
            self.nc.add_addr(self.lan.index, s.vip, 32).await?;
        }
        report.step("address", t);
        // Step 4.
        takeover::reinject(front, &points, &mut report)?;
        // Step 5: unacknowledged replies out, sockets to the server.
        let t = Instant::now();
        let logger: Arc<dyn ReplyLogger> = Arc::new(SimplexLogger);
        for mut r in restored {
            report.unacked_bytes += r.unacked.len();
            takeover::write_unacked(&mut r)?;
            self.hand_off(r, logger.clone());
        }
        // Step 7, late half: handshakes completing from now on.
        if !handshakes.is_empty() {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let (table, clock, mark) = (self.table.clone(), self.clock, self.cfg.close_mark);
            front.watch_handshakes(
                handshakes,
                Box::new(
                    move |tuple| match takeover::rebuild_one(&table, clock, mark, tuple) {
                        Ok(r) => {
                            let _ = tx.send(r);
                        }
                        Err(e) => eprintln!("coral: rebuilding {tuple} after its handshake: {e}"),
                    },
                ),
            );
            let (cgi, ev, logger) = (self.cgi.clone(), self.events.clone(), logger.clone());
            tokio::spawn(async move {
                while let Some(mut r) = rx.recv().await {
                    ev.record("handshake-restored", &r.tuple.to_string());
                    if takeover::write_unacked(&mut r).is_ok() {
                        hand_off(r, logger.clone(), cgi.clone(), mark);
                    }
                }
            });
        }
        let t = report.step("handoff", t);
        // Step 7 before 6: new connections find a listener as soon as the
        // router learns the address moved.
        for s in &self.fronted {
            let vip = SocketAddrV4::new(s.vip, s.port);
            let listener = primary::listen(vip).with_context(|| format!("listening on {vip}"))?;
            tokio::spawn(primary::serve(
                listener,
                logger.clone(),
                None,
                self.cgi.clone(),
                self.cfg.close_mark,
            ));
        }
        report.step("listen", t);
        // Step 6: gratuitous ARP, confirmed by the outside host's reply.
        let sock = self.arp_sock.as_ref().expect("arp socket");
        tokio::task::block_in_place(|| takeover::announce_all(&ctx, sock, &mut report));
        // The engine has nothing left to do once no handshake is pending.
        let f = self.front.clone().expect("front");
        tokio::spawn(async move {
            for _ in 0..100 {
                if !f.watching_handshakes() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            f.retire();
        });
        self.events.record(
            "takeover",
            &format!(
                "{} restored={} handshakes={} snapshot={} failed={} reinjected={} unacked_bytes={} rounds={} skipped={:?}",
                fmt_breakdown(&report.breakdown()),
                report.restored,
                report.handshakes,
                report.snapshot_conns,
                report.failed,
                report.reinjected,
                report.unacked_bytes,
                report.announce_rounds,
                report.skipped
            ),
        );
        Ok(())
    }

    /// The primary lost its backup: the addresses the backup fronted move
    /// to our LAN interface (added there first, then removed from `lo`, so
    /// they are never non-local); gratuitous ARP tells the router.
    async fn take_fronted_addresses(&mut self) -> Result<()> {
        let mut report = TakeoverReport::default();
        let t = Instant::now();
        for s in &self.primaries {
            self.nc.add_addr(self.lan.index, s.vip, 32).await?;
            self.nc.del_addr(self.lo.index, s.vip, 32).await?;
        }
        report.step("address", t);
        if let Some(sock) = &self.arp_sock {
            let (mac, outside) = (self.lan.mac, self.cfg.outside);
            let vips: Vec<Ipv4Addr> = self.primaries.iter().map(|s| s.vip).collect();
            tokio::task::block_in_place(|| {
                for vip in vips {
                    match announce::announce(
                        sock,
                        vip,
                        mac,
                        outside,
                        Duration::from_millis(100),
                        10,
                    ) {
                        Ok(a) => {
                            report.steps.push(("garp", a.garp));
                            report.steps.push(("ping", a.ping));
                            report.announce_rounds = report.announce_rounds.max(a.rounds);
                        }
                        Err(e) => eprintln!("coral: announcing {vip}: {e}"),
                    }
                }
            });
        }
        self.events.record(
            "simplex-address",
            &format!(
                "{} rounds={}",
                fmt_breakdown(&report.breakdown()),
                report.announce_rounds
            ),
        );
        Ok(())
    }

    fn hand_off(&self, r: takeover::Restored, logger: Arc<dyn ReplyLogger>) {
        hand_off(r, logger, self.cgi.clone(), self.cfg.close_mark);
    }

    async fn shutdown(self) {
        let mut nft = self.nft;
        if let Some(f) = self.front {
            self.acking.store(false, Ordering::SeqCst);
            f.retire();
        }
        let _ = nft.run(&nft::remove_table(&self.fence));
        for s in &self.primaries {
            let _ = self.nc.del_addr(self.lo.index, s.vip, 32).await;
        }
    }
}

/// Step 5, second half: give a rebuilt connection to the HTTP server once
/// the rest of its unacknowledged reply bytes are written.
fn hand_off(
    r: takeover::Restored,
    logger: Arc<dyn ReplyLogger>,
    cgi: Arc<workload::cgi::CgiConfig>,
    mark: u32,
) {
    let tuple = r.tuple;
    let rest = r.unacked;
    let stream = match r
        .stream
        .set_nonblocking(true)
        .and_then(|_| tokio::net::TcpStream::from_std(r.stream))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("coral: handing {tuple} over: {e}");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    if rest.is_empty() {
        primary::spawn_connection(stream, tuple, logger, None, cgi, mark);
    } else {
        tokio::spawn(async move {
            let mut stream = stream;
            if tokio::io::AsyncWriteExt::write_all(&mut stream, &rest)
                .await
                .is_ok()
            {
                primary::spawn_connection(stream, tuple, logger, None, cgi, mark);
            }
        });
    }
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
