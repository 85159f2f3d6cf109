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
//!
//! With a witness configured, each service address is driven by the core's
//! [`VipMachine`]: on a detected failure the node stops its heartbeats (the
//! peer's lease lapses), the backup snapshots and stops acknowledging the
//! log, and both ask the witness for the next epoch. Only a grant lets the
//! backup rebuild the connections, and it speaks (permanent lease, address,
//! late frames, logged replies, ARP) only at the machine's `voice_at`, when
//! the old owner's lease has surely lapsed. A refusal, or a higher epoch in
//! a peer heartbeat, fences the node (`Node::fence_and_exit`): silent
//! drop of every connection, lease revoked, address removed, front and log
//! stopped, heartbeats stopped, `fenced` recorded, exit with status 3
//! leaving the nft table (a zombie kernel stays silent).
//!
//! Leases: a primary's addresses are leased for (K-1) x H at start and on
//! every fresh heartbeat ([`crate::io::leases`]); a grant (or, without a
//! witness, the failover itself) makes the lease permanent.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use coral_core::DetectorEvent;
use coral_core::{Action, Input, Lease, Role, Timing, VipMachine};
use coral_core::{
    Channel, DatagramDecoder, DecoderConfig, Encoder, Key, Message, ModeTag, NodeConfig,
    RejectCounters, VipStatus, WitnessMsg,
};
use coral_core::{ConnTable, TableConfig};
use coral_core::{Epoch, Instant as CoreInstant, NodeId};
use tokio::net::{TcpListener, UdpSocket};

use crate::clock::{unix_ns, Clock};
use crate::config::{parse_mac, Config, Service, ServiceRole};
use crate::events::EventLog;
use crate::io::afpacket::PacketSocket;
use crate::io::front::{Front, FrontConfig, FrontEvent};
use crate::io::leases::Leases;
use crate::io::logchan::{serve_log, LogClient, LogClientConfig, LogServer, LogServerStats};
use crate::io::logged_io::ReplyLogger;
use crate::io::netcfg::{self, Iface, NetCfg};
use crate::io::nft::{self, FenceConfig, Nft};
use crate::io::{announce, fencing, heartbeat, live_conns, primary, repair};
use crate::takeover::{self, SimplexLogger, TakeoverCtx, TakeoverReport};

/// Exit status of a node that fenced itself.
pub const FENCED_EXIT: i32 = 3;

/// A takeover between the grant (sockets rebuilt) and the voice.
struct PendingTakeover {
    ctx: TakeoverCtx,
    restored: Vec<takeover::Restored>,
    points: takeover::ReceivePoints,
    handshakes: std::collections::HashSet<coral_core::FourTuple>,
    report: TakeoverReport,
}

/// The node's side of the witness channel.
struct WitnessClient {
    sock: Arc<UdpSocket>,
    to: SocketAddrV4,
    enc: Encoder,
    /// First request of the current round (for the round-trip event).
    asked_at: Option<Instant>,
}

/// The epoch a node starts in (witness grants raise it; docs/DESIGN.md 4).
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

fn hello(cfg: &Config, timing: &Timing) -> NodeConfig {
    NodeConfig {
        node: NodeId(cfg.node_id),
        heartbeat_interval_ns: timing.heartbeat_ns(),
        misses: timing.misses(),
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
    leases: Arc<Leases>,
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
    /// One mode machine per service address (witness mode only), with the
    /// role it started in.
    machines: Vec<(VipMachine, ServiceRole)>,
    witness: Option<WitnessClient>,
    pending: Option<PendingTakeover>,
    /// Heartbeat handle (set once heartbeats run).
    hb: Option<heartbeat::HeartbeatHandle>,
    /// (last heard, last sent) when the peer was declared failed.
    failure: Option<(CoreInstant, CoreInstant)>,
    snapshot_done: bool,
    simplex_done: bool,
}

/// Run the node until SIGTERM or SIGINT.
pub async fn run(cfg: Config) -> Result<()> {
    let clock = Clock::new();
    let events = EventLog::new(cfg.events.clone(), &cfg.name);
    let key = Key::new(&cfg.read_key()?).map_err(|e| anyhow!("key: {e}"))?;
    // The application (for app = "cgi": its program, checked now).
    let app = workload::cgi::App::from_mode(
        cfg.app,
        cfg.cgi_program.as_deref(),
        workload::cgi_gateway::DEFAULT_CGI_TIMEOUT,
    )
    .map_err(|e| anyhow!("app = {:?}: {e}", cfg.app.as_str()))?;
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
    // H, K and the lease margin: derived once, here, for every part below.
    let timing = Timing::from_ms(cfg.heartbeat_ms, cfg.misses).map_err(|e| anyhow!("{e}"))?;
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
        lan: cfg.lan.clone(),
        close_mark: cfg.close_mark,
    };
    let mut nft = Nft::open()?;
    let mut script = nft::fence_ruleset(&fence);
    for s in &cfg.service {
        script.push_str(&nft::add_vip(&fence, s.vip));
    }
    nft.run(&script).context("installing the crash fence")?;
    let leases = Arc::new(Leases::new(
        nft,
        fence.clone(),
        Duration::from_nanos(timing.lease_timeout_ns()),
    ));
    // Initial lease: one lease timeout, then refreshed by heartbeats. A
    // primary cannot answer anyone before its backup is up (the backup
    // fronts the address and acknowledges the log), so nothing is lost.
    for s in &primaries {
        leases
            .start_refreshed(s.vip)
            .context("initial lease of a primary address")?;
    }
    let machines: Vec<(VipMachine, ServiceRole)> = cfg
        .service
        .iter()
        .map(|s| {
            let role = match s.role {
                ServiceRole::Primary => Role::Primary,
                ServiceRole::Backup => Role::Backup,
            };
            (
                VipMachine::duplex(s.vip, me, role, START_EPOCH, timing),
                s.role,
            )
        })
        .collect();

    let cgi = Arc::new(workload::cgi::CgiConfig {
        served_by: cfg.name.clone(),
        max_size: cfg.max_size,
        app,
        ..Default::default()
    });
    let mut node = Node {
        clock,
        events: events.clone(),
        nc: nc.clone(),
        lan,
        lo,
        leases: leases.clone(),
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
        machines: if cfg.witness.is_some() {
            machines
        } else {
            Vec::new()
        },
        witness: None,
        pending: None,
        hb: None,
        failure: None,
        snapshot_done: false,
        simplex_done: false,
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
                hello: hello(&cfg, &timing),
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
                hello: hello(&cfg, &timing),
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
        if cfg.witness.is_some() {
            // The front answers ARP only while heartbeats keep coming (its
            // lease, see Front::arp_lease); one failure timeout to start.
            f.arp_lease().store(
                clock.now().plus_ns(timing.failure_timeout_ns()).0,
                Ordering::Release,
            );
        }
        node.front = Some(Arc::new(f));
        events.record("front-ready", &list(&fronted));
    }

    // --- heartbeats ----------------------------------------------------
    let (dtx, mut drx) = tokio::sync::mpsc::unbounded_channel();
    let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel::<Vec<VipStatus>>();
    let vips: Vec<VipStatus> = cfg
        .service
        .iter()
        .map(|s| VipStatus {
            vip: s.vip,
            epoch: START_EPOCH,
            mode: ModeTag::Duplex,
        })
        .collect();
    let hb = heartbeat::start(
        key.clone(),
        heartbeat::HeartbeatConfig {
            local: SocketAddrV4::new(own, cfg.heartbeat_port),
            peer: SocketAddrV4::new(cfg.peer.addr, cfg.heartbeat_port),
            node: me,
            peer_node: NodeId(cfg.peer.node_id),
            epoch: START_EPOCH,
            detector: timing.detector,
            vips,
            stop_on_failure: cfg.witness.is_some(),
            max_refresh_age: Some(Duration::from_nanos(timing.margin_ns)),
            peer_vips: Some(ptx),
        },
        clock,
        dtx,
        {
            let leases = leases.clone();
            let arp = node
                .front
                .as_ref()
                .filter(|_| cfg.witness.is_some())
                .map(|f| f.arp_lease());
            let lease_ns = timing.lease_timeout_ns();
            Box::new(move |age: std::time::Duration| {
                leases.refresh(age);
                if let Some(a) = &arp {
                    let left = lease_ns.saturating_sub(age.as_nanos() as u64);
                    a.store(clock.now().plus_ns(left).0, Ordering::Release);
                }
            })
        },
    )
    .await
    .context("heartbeat socket")?;
    node.hb = Some(hb);

    // --- the witness channel ----------------------------------------------
    let (wtx, mut wrx) = tokio::sync::mpsc::unbounded_channel::<WitnessMsg>();
    if let Some(to) = cfg.witness {
        let sock = Arc::new(
            UdpSocket::bind((own, cfg.witness_port))
                .await
                .with_context(|| format!("witness socket {own}:{}", cfg.witness_port))?,
        );
        let rx_sock = sock.clone();
        let rx_key = key.clone();
        tokio::spawn(async move {
            let mut dec =
                DatagramDecoder::new(rx_key, DecoderConfig::for_channel(Channel::Witness));
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok((n, from)) = rx_sock.recv_from(&mut buf).await else {
                    continue;
                };
                if from != std::net::SocketAddr::V4(to) {
                    continue;
                }
                if let Ok(f) = dec.decode(&buf[..n]) {
                    if let Message::Witness(m) = f.msg {
                        if wtx.send(m).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        node.witness = Some(WitnessClient {
            sock,
            to,
            enc: Encoder::new(key.clone(), me, START_EPOCH, unix_ns()),
            asked_at: None,
        });
    }

    println!("coral node {} ready", cfg.name);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_counters = String::new();
    loop {
        let wait = node
            .machines
            .iter()
            .filter_map(|(m, _)| m.next_deadline())
            .min()
            .map(|d| Duration::from_nanos(d.since_ns(clock.now())))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            _ = tick.tick() => {
                // Counters change rarely once idle; write them when they do.
                let c = node.counters();
                if c != last_counters {
                    events.record("counters", &c);
                    last_counters = c;
                }
            }
            _ = tokio::time::sleep(wait) => node.drive().await,
            m = wrx.recv() => {
                if let Some(m) = m { node.on_witness(m).await; }
            }
            v = prx.recv() => {
                if let Some(v) = v { node.on_peer_status(&v).await; }
            }
            ev = drx.recv() => {
                let Some(ev) = ev else { break };
                match ev {
                    DetectorEvent::PeerFailed { ever_heard, last_heard } => {
                        let detected = unix_ns();
                        events.record_at(detected, "peer-failed", &format!(
                            "ever_heard={ever_heard} silent_ms={}", clock.now().since_ms(last_heard)));
                        if !node.machines.is_empty() {
                            node.on_peer_failed(last_heard).await;
                        } else if !node.failed_over {
                            node.failed_over = true;
                            if let Some(hb) = &node.hb {
                                hb.mode.store(ModeTag::Simplex as u8, Ordering::Relaxed);
                            }
                            if let Err(e) = node.fail_over().await {
                                events.record("failover-error", &format!("{e:#}"));
                                tracing::error!("failover: {e:#}");
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
    events.record("counters", &node.counters());
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
    fn counters(&self) -> String {
        let r = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let Some(hb) = &self.hb else {
            return String::new();
        };
        let mut c = format!(
            "hb_sent={} hb_received={} hb_rejected={} hb_stale={} lease_refreshes={} lease_errors={} log_entries={} log_replies={} log_unknown_conn={} log_rejected={} log_foreign={}",
            r(&hb.stats.sent),
            r(&hb.stats.received),
            r(&hb.stats.rejected),
            r(&hb.stale),
            r(&self.leases.refreshes),
            r(&self.leases.refresh_errors),
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

    /// Without a witness: the peer failed, take over what it did at once
    /// (unsafe under partitions; see the config docs).
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
            self.build_takeover();
            self.speak().await?;
        }
        if !self.primaries.is_empty() {
            for s in &self.primaries {
                self.leases.make_permanent(s.vip)?;
            }
            self.take_fronted_addresses().await?;
        }
        Ok(())
    }

    // --- witness mode ------------------------------------------------------

    /// The detector declared the peer failed: feed every machine.
    async fn on_peer_failed(&mut self, last_heard: CoreInstant) {
        // The heartbeat task already stopped sending and refreshing; no
        // lease is extended from now on except by a grant.
        self.leases.stop_refreshing();
        let sent = self
            .hb
            .as_ref()
            .map(|h| h.last_sent_ns.load(Ordering::SeqCst))
            .unwrap_or(0);
        let last_sent = if sent == 0 {
            last_heard
        } else {
            CoreInstant(sent)
        };
        self.failure = Some((last_heard, last_sent));
        let now = self.clock.now();
        for (m, _) in &mut self.machines {
            m.handle(
                now,
                Input::PeerFailed {
                    last_heard,
                    last_sent,
                },
            );
        }
        self.drive().await;
    }

    /// A reply from the witness.
    async fn on_witness(&mut self, m: WitnessMsg) {
        let me = NodeId(self.cfg.node_id);
        let rtt = self
            .witness
            .as_mut()
            .and_then(|w| w.asked_at.take())
            .map(|t| t.elapsed().as_secs_f64() * 1e3)
            .unwrap_or(f64::NAN);
        let (vip, input) = match m {
            WitnessMsg::Grant { vip, node, epoch } if node == me => {
                self.events.record(
                    "witness-grant",
                    &format!("vip={vip} epoch={} rtt_ms={rtt:.3}", epoch.0),
                );
                (vip, Input::GrantReceived { epoch })
            }
            WitnessMsg::Refuse {
                vip,
                node,
                epoch,
                reason,
            } if node == me => {
                self.events.record(
                    "witness-refused",
                    &format!(
                        "vip={vip} epoch={} reason={reason:?} rtt_ms={rtt:.3}",
                        epoch.0
                    ),
                );
                (vip, Input::GrantRefused { epoch, reason })
            }
            _ => return,
        };
        let now = self.clock.now();
        for (mach, _) in &mut self.machines {
            if mach.vip() == vip {
                mach.handle(now, input);
            }
        }
        self.drive().await;
    }

    /// The peer's heartbeat reported its per-address epochs.
    async fn on_peer_status(&mut self, v: &[VipStatus]) {
        let now = self.clock.now();
        for st in v {
            for (m, _) in &mut self.machines {
                if m.vip() == st.vip {
                    m.handle(now, Input::EpochSeen { epoch: st.epoch });
                }
            }
        }
        self.drive().await;
    }

    /// Run every machine's due actions, in order.
    async fn drive(&mut self) {
        loop {
            let now = self.clock.now();
            let mut next = None;
            for (i, (m, _)) in self.machines.iter_mut().enumerate() {
                if let Some(a) = m.poll(now) {
                    next = Some((i, a));
                    break;
                }
            }
            let Some((i, action)) = next else { break };
            let origin = self.machines[i].1;
            if let Err(e) = self.act(origin, action).await {
                self.events
                    .record("action-error", &format!("{action:?}: {e:#}"));
                tracing::error!(?action, "{e:#}");
            }
        }
        // Report what the machines say in our heartbeats.
        if let Some(hb) = &self.hb {
            let st: Vec<VipStatus> = self.machines.iter().map(|(m, _)| m.status()).collect();
            if let Some(first) = st.first() {
                hb.mode.store(first.mode as u8, Ordering::Relaxed);
            }
            *hb.vips.lock().expect("vips") = st;
        }
    }

    /// Carry out one action of a machine that started as `origin`.
    async fn act(&mut self, origin: ServiceRole, action: Action) -> Result<()> {
        match (origin, action) {
            (_, Action::ModeChanged { vip, from, to }) => {
                self.events
                    .record("mode", &format!("vip={vip} from={from:?} to={to:?}"));
            }
            (_, Action::StopHeartbeats) => {
                if let Some(hb) = &self.hb {
                    hb.silent.store(true, Ordering::SeqCst);
                }
            }
            (_, Action::AskWitness { vip, node, epoch }) => {
                let w = self
                    .witness
                    .as_mut()
                    .ok_or_else(|| anyhow!("no witness configured"))?;
                let d = w
                    .enc
                    .encode_to_vec(&Message::Witness(WitnessMsg::Request { vip, node, epoch }))
                    .map_err(|e| anyhow!("encoding a witness request: {e}"))?;
                let first = w.asked_at.is_none();
                if first {
                    w.asked_at = Some(Instant::now());
                }
                let sent = w.sock.send_to(&d, w.to).await;
                if first {
                    self.events.record(
                        "witness-ask",
                        &format!("vip={vip} epoch={} sent={}", epoch.0, sent.is_ok()),
                    );
                }
            }
            (_, Action::Fence { vip }) => self.fence_and_exit(vip).await,
            (ServiceRole::Backup, Action::SnapshotAndStopAckingLog { .. })
                if !self.snapshot_done =>
            {
                self.snapshot_done = true;
                if let Some(f) = &self.front {
                    f.hold();
                    f.stop_answering_arp();
                }
                let _table = self.table.lock().expect("table");
                self.acking.store(false, Ordering::SeqCst);
                self.events.record("log-acks-stopped", "");
            }
            (ServiceRole::Backup, Action::BuildRepairedSockets { .. })
                if self.pending.is_none() && self.front.is_some() && !self.failed_over =>
            {
                self.build_takeover();
            }
            // The voice: lease, address, late frames, logged replies, ARP.
            (
                ServiceRole::Backup,
                Action::SetLease {
                    lease: Lease::Permanent,
                    ..
                },
            ) if !self.failed_over => {
                self.failed_over = true;
                self.speak().await?;
            }
            (ServiceRole::Primary, Action::SetLease { vip, lease }) => match lease {
                Lease::Permanent => self.leases.make_permanent(vip)?,
                Lease::Refreshed { .. } => self.leases.start_refreshed(vip)?,
            },
            (ServiceRole::Primary, Action::GoSimplex { .. }) if !self.simplex_done => {
                self.simplex_done = true;
                if let Some(client) = &self.log_client {
                    let t = Instant::now();
                    client.go_simplex();
                    self.events.record(
                        "simplex",
                        &format!("released_ms={:.3}", t.elapsed().as_secs_f64() * 1e3),
                    );
                }
                // The backup's front answers ARP only under its own lease,
                // extended by our heartbeats (stopped at our detection):
                // claim the address only once that lease surely lapsed.
                if let Some((heard, sent)) = self.failure {
                    let (timing, now) = (*self.machines[0].0.timing(), self.clock.now());
                    let wait = timing.voice_at(heard, sent).since_ns(now);
                    self.events
                        .record("simplex-wait", &format!("ms={:.3}", wait as f64 / 1e6));
                    tokio::time::sleep(Duration::from_nanos(wait)).await;
                }
                self.take_fronted_addresses().await?;
            }
            // Done as part of the steps above (addresses, re-injection,
            // flush, ARP), in the machine's order.
            _ => {}
        }
        Ok(())
    }

    /// Deposed: drop everything silently, stop, record, exit non-zero. The
    /// nft table stays: without a lease the kernel sends nothing from the
    /// service addresses.
    async fn fence_and_exit(&mut self, vip: Ipv4Addr) -> ! {
        let t = Instant::now();
        let vips: Vec<Ipv4Addr> = self.cfg.service.iter().map(|s| s.vip).collect();
        let revoked = self.leases.revoke_all(&vips);
        let (silenced, failed) = fencing::silence_all();
        let mut pending = 0;
        if let Some(p) = self.pending.take() {
            for r in p.restored {
                pending += 1;
                let _ = repair::close_silently(r.stream);
            }
        }
        for v in &vips {
            for (idx, len) in [
                (self.lan.index, 32),
                (self.lan.index, 24),
                (self.lo.index, 32),
            ] {
                let _ = self.nc.del_addr(idx, *v, len).await;
            }
        }
        if let Some(f) = &self.front {
            f.retire();
        }
        self.acking.store(false, Ordering::SeqCst);
        if let Some(hb) = &self.hb {
            hb.silent.store(true, Ordering::SeqCst);
            hb.abort();
        }
        let reason = self
            .machines
            .iter()
            .find(|(m, _)| m.vip() == vip)
            .map(|(m, _)| format!("{:?}", m.mode()))
            .unwrap_or_default();
        self.events.record(
            "fenced",
            &format!(
                "vip={vip} {reason} silenced={silenced} silence_failed={failed} pending_closed={pending} lease_revoked={} took_ms={:.3}",
                revoked.is_ok(),
                t.elapsed().as_secs_f64() * 1e3
            ),
        );
        tracing::warn!(%vip, "fenced ({reason}); exiting");
        std::process::exit(FENCED_EXIT);
    }

    /// Steps 1-2 of the takeover: snapshot, stop acking, rebuild sockets
    /// (silent: no lease, address not local yet).
    fn build_takeover(&mut self) {
        let Some(front) = self.front.clone() else {
            return;
        };
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
        let (restored, points, handshakes) =
            takeover::snapshot_and_rebuild(&ctx, &front, &mut report);
        self.pending = Some(PendingTakeover {
            ctx,
            restored,
            points,
            handshakes,
            report,
        });
    }

    /// Steps 3-7 of the takeover: the backup gets its voice.
    async fn speak(&mut self) -> Result<()> {
        if self.pending.is_none() {
            self.build_takeover();
        }
        let Some(PendingTakeover {
            ctx,
            restored,
            points,
            handshakes,
            mut report,
        }) = self.pending.take()
        else {
            return Ok(());
        };
        let front = self.front.clone().expect("front");
        let front = &*front;
        // Step 3: lease, then the address on the LAN interface.
        let t = Instant::now();
        for s in &self.fronted {
            self.leases
                .make_permanent(s.vip)
                .context("leasing the taken-over addresses")?;
        }
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
                        Err(e) => tracing::warn!(%tuple, "rebuilding after its handshake: {e}"),
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
        // Client ACKs sent while the address moved were lost: ask for them again.
        report.nudged = live_conns::nudge_all();
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
                "{} restored={} handshakes={} snapshot={} failed={} reinjected={} unacked_bytes={} rounds={} nudged={} skipped={:?}",
                fmt_breakdown(&report.breakdown()),
                report.restored,
                report.handshakes,
                report.snapshot_conns,
                report.failed,
                report.reinjected,
                report.unacked_bytes,
                report.announce_rounds,
                report.nudged,
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
                        Err(e) => tracing::warn!(%vip, "announcing: {e}"),
                    }
                }
            });
        }
        // Client ACKs sent to the old front while the address moved were
        // lost; our senders would wait for a backed-off timeout without this.
        report.nudged = live_conns::nudge_all();
        self.events.record(
            "simplex-address",
            &format!(
                "{} rounds={} nudged={}",
                fmt_breakdown(&report.breakdown()),
                report.announce_rounds,
                report.nudged
            ),
        );
        Ok(())
    }

    fn hand_off(&self, r: takeover::Restored, logger: Arc<dyn ReplyLogger>) {
        hand_off(r, logger, self.cgi.clone(), self.cfg.close_mark);
    }

    async fn shutdown(self) {
        if let Some(f) = self.front {
            self.acking.store(false, Ordering::SeqCst);
            f.retire();
        }
        let _ = self.leases.run(&nft::remove_table(self.leases.fence()));
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
            tracing::warn!(%tuple, "handing over: {e}");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    if rest.is_empty() {
        primary::spawn_connection(stream, tuple, logger, None, cgi, mark);
    } else {
        tokio::spawn(async move {
            let mut stream = stream;
            match tokio::io::AsyncWriteExt::write_all(&mut stream, &rest).await {
                Ok(()) => primary::spawn_connection(stream, tuple, logger, None, cgi, mark),
                Err(e) => tracing::warn!(
                    %tuple,
                    "writing the last {} logged reply bytes after the takeover: {e}",
                    rest.len()
                ),
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
