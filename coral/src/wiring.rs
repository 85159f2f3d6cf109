//! Wiring: the shells of one node, built from its [`Config`] in the order
//! they depend on each other (the only place, with [`crate::node`], that
//! knows every shell).
//!
//! For every service address the node is primary for: direct-routing
//! sysctls, the address on `lo`, the application behind log-before-write,
//! and the log channel to the peer. For every address it fronts: no
//! forwarding, the log server, and the packet engine once the primary's MAC
//! is known. In any case: the crash fence and leases (nftables), heartbeats,
//! and (if configured) the witness channel. Leases: a primary's addresses
//! are leased for one lease timeout at start, then to wherever the
//! heartbeat link extends them ([`crate::io::heartbeat`],
//! [`crate::io::leases`]). A new server that joins a simplex node
//! ([`start_joining`]) fronts every address: its front is pre-started
//! idle and its heartbeats wait for the join's acceptance.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use coral_core::{
    Key, ModeTag, NodeId, RejectCounters, Role, Timing, VipMachine, VipStatus, WitnessMsg,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::clock::Clock;
use crate::config::{parse_mac, Config, Service, ServiceRole};
use crate::events::EventLog;
use crate::grants::{Grants, START_EPOCH};
use crate::io::adopt::{AdoptConfig, Adopter};
use crate::io::afpacket::PacketSocket;
use crate::io::ebpf_front::{EbpfFrontConfig, Wakeup};
use crate::io::front::{serve_log, Front, FrontConfig, FrontEvent, FrontKind, Mode, Source};
use crate::io::heartbeat::{HeartbeatEvent, HeartbeatHandle};
use crate::io::join::JoinLink;
use crate::io::leases::Leases;
use crate::io::logchan::{LogClient, LogClientConfig, LogServer, LogServerStats};
use crate::io::logged_io::ReplyLogger;
use crate::io::netcfg::{self, Iface, NetCfg};
use crate::io::nft::{self, FenceConfig, Nft};
use crate::io::primary;
use crate::joining::Joining;
use crate::machines::{Machines, Slot};
use crate::reintegration::{hello, HeartbeatSpec, Joins};
use crate::takeover::TakeoverCtx;

/// How often the data path drains the eBPF front's ring when nothing else
/// wakes it (log entries and commands drain it at once) while it holds
/// frames or watches connections.
const RING_POLL: Duration = Duration::from_millis(2);
/// The same while it forwards (or idles after a takeover) with nothing
/// watched. Every batch of log entries drains the ring before it is
/// applied, and the program wakes the thread when the ring is a quarter
/// full, so this only bounds how long client ACKs wait before they trim
/// the logged replies: a timer every 2 ms was 500 wake-ups a second per
/// node, about half of the front thread's wake-ups under load.
const RING_POLL_FORWARD: Duration = Duration::from_millis(50);

/// What the node's loop reads: one receiver per source.
pub struct Inputs {
    /// Heartbeat events: detector, the peer's per-address status when it
    /// changes, lease lapses (heartbeat thread).
    pub heartbeat: UnboundedReceiver<HeartbeatEvent>,
    /// Witness replies (witness channel task; never fed without a witness).
    pub witness: UnboundedReceiver<WitnessMsg>,
    /// What the front's data path reports (fronts only).
    pub front: UnboundedReceiver<FrontEvent>,
}

/// Everything the node's loop drives, built and started.
pub struct Wired {
    /// The shells a failover works with.
    pub ctx: TakeoverCtx,
    /// One machine per service address.
    pub machines: Machines,
    /// Grant requests (to the witness, if configured).
    pub grants: Grants,
    /// The heartbeat thread.
    pub hb: HeartbeatHandle,
    /// The log server's counters (fronts).
    pub log_stats: Arc<LogServerStats>,
    /// Every service address of this node.
    pub vips: Vec<Ipv4Addr>,
    /// The addresses this node is primary for.
    pub primaries: Vec<Service>,
    /// The loop's inputs.
    pub inputs: Inputs,
    /// The JOIN listener and what a join starts.
    pub joins: Joins,
}

/// What every part below needs.
struct Base {
    cfg: Config,
    clock: Clock,
    events: EventLog,
    key: Key,
    nc: NetCfg,
    lan: Iface,
    lo: Iface,
    own: Ipv4Addr,
    timing: Timing,
    primaries: Vec<Service>,
    fronted: Vec<Service>,
}

async fn base(cfg: Config) -> Result<Base> {
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
    Ok(Base {
        clock: Clock::new(),
        events,
        key,
        nc,
        lan,
        lo,
        own,
        timing,
        primaries,
        fronted,
        cfg,
    })
}

/// The crash fence guards every address this node may ever speak for; it
/// holds a lease on those it is primary for. A primary cannot answer anyone
/// before its backup is up (the backup fronts the address and acknowledges
/// the log), so the initial lease (one timeout, then refreshed by
/// heartbeats) loses nothing.
fn fence_and_leases(b: &Base) -> Result<Arc<Leases>> {
    let fence = FenceConfig {
        table: format!("coral_{}", b.cfg.node_id),
        lan: b.cfg.lan.clone(),
        close_mark: b.cfg.close_mark,
    };
    let mut nft = Nft::open()?;
    let mut script = nft::fence_ruleset(&fence);
    for s in &b.cfg.service {
        script.push_str(&nft::add_vip(&fence, s.vip));
    }
    nft.run(&script).context("installing the crash fence")?;
    let leases = Arc::new(Leases::new(
        nft,
        fence,
        Duration::from_nanos(b.timing.lease_timeout_ns()),
        Duration::from_nanos(b.timing.margin_ns),
    )?);
    for s in &b.primaries {
        leases
            .start_refreshed(s.vip)
            .context("initial lease of a primary address")?;
    }
    Ok(leases)
}

/// The primary's side: addresses on `lo`, the log client, a listener per
/// address serving the application behind log-before-write.
async fn primary_side(b: &Base, app: &Arc<workload::cgi::CgiConfig>) -> Result<Option<LogClient>> {
    if b.primaries.is_empty() {
        return Ok(None);
    }
    netcfg::primary_sysctls(&b.cfg.lan)?;
    for s in &b.primaries {
        b.nc.add_addr(b.lo.index, s.vip, 32).await?;
    }
    let client = LogClient::start(
        b.key.clone(),
        LogClientConfig {
            local: b.own,
            backup: SocketAddrV4::new(b.cfg.peer.addr, b.cfg.log_port),
            node: NodeId(b.cfg.node_id),
            epoch: START_EPOCH,
            hello: hello(&b.cfg, &b.timing),
        },
    );
    for s in &b.primaries {
        let vip = SocketAddrV4::new(s.vip, s.port);
        let listener = primary::listen(vip).with_context(|| format!("listening on {vip}"))?;
        let logger: Arc<dyn ReplyLogger> = Arc::new(client.clone());
        tokio::spawn(primary::serve(
            listener,
            logger,
            Some(client.clone()),
            app.clone(),
            b.cfg.close_mark,
        ));
    }
    b.events.record("primary-ready", &list(&b.primaries));
    Ok(Some(client))
}

/// The front's side: the address off every interface, the data path (the
/// table's one owner) and the log server handing it the log's entries.
async fn front_side(
    b: &Base,
    log_stats: &Arc<LogServerStats>,
    primary: Ipv4Addr,
    mode: Mode,
) -> Result<(Option<Front>, UnboundedReceiver<FrontEvent>)> {
    let (etx, erx) = unbounded_channel();
    if b.fronted.is_empty() {
        return Ok((None, erx));
    }
    netcfg::front_sysctls()?;
    for s in &b.fronted {
        // The front's kernel must not have the address: it would answer
        // (and reset) the client's segments itself.
        for (idx, len) in [(b.lan.index, 24), (b.lan.index, 32), (b.lo.index, 32)] {
            b.nc.del_addr(idx, s.vip, len).await?;
        }
    }
    // Bound now, served once the front runs: the kernel completes the
    // primary's connection meanwhile, which teaches ours the primary's MAC.
    let listener = TcpListener::bind((b.own, b.cfg.log_port))
        .await
        .with_context(|| format!("log port {}:{}", b.own, b.cfg.log_port))?;
    let primary_mac = match &b.cfg.peer.mac {
        Some(m) if primary == b.cfg.peer.addr => parse_mac(m)?,
        _ => wait_for_mac(&b.nc, b.lan.index, primary).await?,
    };
    let vips: Vec<Ipv4Addr> = b.fronted.iter().map(|s| s.vip).collect();
    let source = frame_source(b, primary_mac, &vips)?;
    let kind = source.kind();
    let f = Front::start(
        FrontConfig {
            own_mac: b.lan.mac,
            primary_mac,
            vips,
            mode,
        },
        source,
        b.clock,
        etx,
    )?;
    if b.cfg.witness.is_some() {
        // The front answers ARP only while heartbeats keep coming (its
        // lease, extended on every fresh heartbeat); one failure timeout
        // to start.
        f.answer_arp_until(b.clock.now().plus_ns(b.timing.failure_timeout_ns()).0);
    }
    *f.log_peer.lock().unwrap_or_else(|e| e.into_inner()) = primary;
    tokio::spawn(serve_log(
        listener,
        LogServer {
            key: b.key.clone(),
            me: NodeId(b.cfg.node_id),
            epoch: START_EPOCH,
            hello: hello(&b.cfg, &b.timing),
            stats: log_stats.clone(),
            rejects: Arc::new(Mutex::new(RejectCounters::default())),
        },
        f.clone(),
    ));
    b.events.record(
        "front-ready",
        &format!("{} front={} mode={mode:?}", list(&b.fronted), kind.as_str()),
    );
    Ok((Some(f), erx))
}

/// The configured frame source. The eBPF program failing to load is an
/// error naming what is missing, unless the configuration allows the
/// packet front instead (then recorded as `front-fallback`).
fn frame_source(b: &Base, primary_mac: [u8; 6], vips: &[Ipv4Addr]) -> Result<Source> {
    let lan = &b.cfg.lan;
    let packet = || Source::packet(lan, vips).with_context(|| format!("packet socket on {lan}"));
    if b.cfg.front == FrontKind::Packet {
        return packet();
    }
    let cfg = EbpfFrontConfig {
        lan: lan.clone(),
        own_mac: b.lan.mac,
        primary_mac,
        vips: vips.to_vec(),
        ring_bytes: b.cfg.front_ring_bytes,
        wakeup: Wakeup::Never,
    };
    match Source::ebpf(&cfg, RING_POLL, RING_POLL_FORWARD) {
        Ok(s) => Ok(s),
        Err(e) if b.cfg.front_fallback => {
            tracing::warn!("{e}; front_fallback = true: running the packet front");
            b.events.record("front-fallback", &e.to_string());
            packet()
        }
        Err(e) => Err(anyhow!(
            "{e} (set front = \"packet\", or front_fallback = true, to run without it)"
        )),
    }
}

/// The primary's adoption of frames flooded for its dead front (docs/
/// DESIGN.md 5), with either front (`adopt_flooded`). Loaded in the background once
/// our kernel knows the peer's MAC (the log channel and heartbeats teach
/// it; a peer down at start must not hold the node up): until then the
/// slot is empty and nothing is adopted. A program that fails to load is
/// recorded as `adopt-unavailable`; the node runs on without it.
fn adopter(b: &Base) -> Arc<OnceLock<Adopter>> {
    let slot = Arc::new(OnceLock::new());
    if b.primaries.is_empty() || !b.cfg.adopt_flooded {
        return slot;
    }
    let (nc, index, peer) = (b.nc.clone(), b.lan.index, b.cfg.peer.addr);
    let configured = b.cfg.peer.mac.as_deref().map(parse_mac);
    let (events, lan) = (b.events.clone(), b.cfg.lan.clone());
    let vips: Vec<Ipv4Addr> = b.primaries.iter().map(|s| s.vip).collect();
    let listed = list(&b.primaries);
    // Copies older than this were retransmitted by their client.
    let keep = Duration::from_nanos(b.timing.failure_timeout_ns() * 4).max(Duration::from_secs(1));
    let out = slot.clone();
    tokio::spawn(async move {
        let peer_mac = match configured {
            Some(Ok(m)) => m,
            Some(Err(e)) => return events.record("adopt-unavailable", &e.to_string()),
            None => loop {
                match nc.neighbour_mac(index, peer).await {
                    Ok(Some(m)) => break m,
                    Ok(None) => tokio::time::sleep(Duration::from_millis(10)).await,
                    Err(e) => return events.record("adopt-unavailable", &e.to_string()),
                }
            },
        };
        let cfg = AdoptConfig {
            lan,
            peer_mac,
            vips,
            keep,
        };
        match tokio::task::spawn_blocking(move || Adopter::start(&cfg)).await {
            Ok(Ok(a)) => {
                let _ = out.set(a);
                events.record("adopt-ready", &listed);
            }
            Ok(Err(e)) => {
                tracing::error!("{e}: frames flooded for a dead front will not be adopted");
                events.record("adopt-unavailable", &e.to_string());
            }
            Err(e) => events.record("adopt-unavailable", &e.to_string()),
        }
    });
    slot
}

/// What starts heartbeats (the core's heartbeat link, on their own thread)
/// toward a peer; the lease it names is carried out there: the nft leases
/// and, with a witness, the front's ARP lease.
fn heartbeat_spec(
    b: &Base,
    leases: &Arc<Leases>,
    front: Option<&Front>,
) -> (HeartbeatSpec, UnboundedReceiver<HeartbeatEvent>) {
    let (tx, rx) = unbounded_channel();
    let witness = b.cfg.witness.is_some();
    let spec = HeartbeatSpec {
        key: b.key.clone(),
        local: SocketAddrV4::new(b.own, b.cfg.heartbeat_port),
        port: b.cfg.heartbeat_port,
        node: NodeId(b.cfg.node_id),
        timing: b.timing,
        clock: b.clock,
        leases: leases.clone(),
        arp: front.filter(|_| witness).cloned(),
        events: tx,
    };
    (spec, rx)
}

/// Heartbeats toward the configured peer, started now. The spec it returns
/// starts heartbeats toward a peer that joins later.
fn heartbeats(
    b: &Base,
    leases: &Arc<Leases>,
    front: Option<&Front>,
    log: Option<LogClient>,
) -> Result<(
    HeartbeatHandle,
    UnboundedReceiver<HeartbeatEvent>,
    HeartbeatSpec,
)> {
    let (spec, rx) = heartbeat_spec(b, leases, front);
    let vips = b
        .cfg
        .service
        .iter()
        .map(|s| VipStatus {
            vip: s.vip,
            epoch: START_EPOCH,
            mode: ModeTag::Duplex,
        })
        .collect();
    let hb = spec
        .start(
            b.cfg.peer.addr,
            NodeId(b.cfg.peer.node_id),
            START_EPOCH,
            vips,
            log,
        )
        .context("heartbeat socket")?;
    Ok((hb, rx, spec))
}

/// One mode machine per service address, in duplex with the configured
/// role, or (a new server, `joining`) waiting to join as the backup of
/// every address. Without a witness the node grants itself every request
/// at once ([`VipMachine::without_witness`]).
fn machines(b: &Base, joining: bool) -> Machines {
    let me = NodeId(b.cfg.node_id);
    b.cfg
        .service
        .iter()
        .map(|s| {
            let role = match s.role {
                ServiceRole::Primary => Role::Primary,
                ServiceRole::Backup => Role::Backup,
            };
            let m = match joining {
                true => VipMachine::joining(s.vip, me, role, b.timing),
                false => VipMachine::duplex(s.vip, me, role, START_EPOCH, b.timing),
            };
            let m = if b.cfg.witness.is_some() {
                m
            } else {
                m.without_witness()
            };
            Slot {
                machine: m,
                role: s.role,
                port: s.port,
            }
        })
        .collect()
}

/// The application (for app = "cgi": its program, checked now).
fn application(b: &Base) -> Result<Arc<workload::cgi::CgiConfig>> {
    let app = workload::cgi::App::from_mode(
        b.cfg.app,
        b.cfg.cgi_program.as_deref(),
        workload::cgi_gateway::DEFAULT_CGI_TIMEOUT,
    )
    .map_err(|e| anyhow!("app = {:?}: {e}", b.cfg.app.as_str()))?;
    Ok(Arc::new(workload::cgi::CgiConfig {
        served_by: b.cfg.name.clone(),
        max_size: b.cfg.max_size,
        app,
        log_requests: b.cfg.log_requests,
        ..Default::default()
    }))
}

/// The parts every node has, started in dependency order before the
/// node-kind specific ones.
struct Common {
    app: Arc<workload::cgi::CgiConfig>,
    leases: Arc<Leases>,
    arp_sock: PacketSocket,
    log_stats: Arc<LogServerStats>,
}

fn common(b: &Base) -> Result<Common> {
    let app = application(b)?;
    let leases = fence_and_leases(b)?;
    let arp_sock = PacketSocket::open_send_only(&b.cfg.lan)?;
    Ok(Common {
        app,
        leases,
        arp_sock,
        log_stats: Arc::new(LogServerStats::default()),
    })
}

/// The node-kind specific parts, started.
struct Started {
    front: (Option<Front>, UnboundedReceiver<FrontEvent>),
    adopt: Arc<OnceLock<Adopter>>,
    log_client: Option<LogClient>,
    hb: HeartbeatHandle,
    heartbeat: UnboundedReceiver<HeartbeatEvent>,
    witness: (Grants, UnboundedReceiver<WitnessMsg>),
    joins: Joins,
}

fn wired(b: &Base, c: Common, s: Started, joining: bool) -> Wired {
    Wired {
        machines: machines(b, joining),
        ctx: TakeoverCtx {
            front: s.front.0,
            adopt: s.adopt,
            log_client: s.log_client,
            log_port: b.cfg.log_port,
            leases: c.leases,
            nc: b.nc.clone(),
            lan: b.lan,
            lo: b.lo,
            arp_sock: c.arp_sock,
            app: c.app,
            clock: b.clock,
            close_mark: b.cfg.close_mark,
            outside: b.cfg.outside,
            events: b.events.clone(),
            rejoin: crate::rejoin::Rejoin::from_config(&b.cfg),
            keep_front: b.cfg.hand_over_at_join,
        },
        grants: s.witness.0,
        hb: s.hb,
        log_stats: c.log_stats,
        vips: b.cfg.service.iter().map(|s| s.vip).collect(),
        primaries: b.primaries.clone(),
        inputs: Inputs {
            heartbeat: s.heartbeat,
            witness: s.witness.1,
            front: s.front.1,
        },
        joins: s.joins,
    }
}

/// Build and start every shell of the node described by `cfg`.
pub async fn start(cfg: Config) -> Result<Wired> {
    let b = base(cfg).await?;
    let c = common(&b)?;
    let log_client = primary_side(&b, &c.app).await?;
    let adopt = adopter(&b);
    let front = front_side(&b, &c.log_stats, b.cfg.peer.addr, Mode::Forward).await?;
    let (hb, heartbeat, spec) = heartbeats(&b, &c.leases, front.0.as_ref(), log_client.clone())?;
    let witness = witness_link(&b).await?;
    let joins = Joins::start(
        spec,
        hello(&b.cfg, &b.timing),
        (b.cfg.join_port, b.cfg.log_port),
        b.cfg.lan.clone(),
    )
    .await?;
    let mut joins = joins;
    if let Some(f) = front.0.as_ref().filter(|_| b.cfg.hand_over_at_join) {
        // Only the eBPF front passes the kept connections to this node's
        // stack: with the packet front they would be forwarded and reset.
        if f.kind() == FrontKind::Ebpf {
            let backups = b.fronted.iter().map(|s| s.vip).collect();
            joins.may_hand_over(backups, f.clone());
        } else {
            b.events.record(
                "hand-over-unavailable",
                "the packet front cannot keep the open connections: a joiner fronts every address",
            );
        }
    }
    let started = Started {
        front,
        adopt,
        log_client,
        hb,
        heartbeat,
        witness,
        joins,
    };
    Ok(wired(&b, c, started, false))
}

/// Build and start a new server that joins the simplex node whose JOIN
/// endpoint is `to` (docs/DESIGN.md 6): it fronts every address, so every
/// service must have role = "backup". Pre-started before the request: the
/// JOIN connection (which teaches our kernel the simplex node's MAC), the
/// front (idle), the log server; heartbeats start when the join is
/// accepted.
pub async fn start_joining(cfg: Config, to: SocketAddrV4) -> Result<(Wired, Joining)> {
    let b = base(cfg).await?;
    let c = common(&b)?;
    let me = NodeId(b.cfg.node_id);
    let link = JoinLink::connect(to, b.key.clone(), me).await?;
    let front = front_side(&b, &c.log_stats, *to.ip(), Mode::Idle).await?;
    let (spec, heartbeat) = heartbeat_spec(&b, &c.leases, front.0.as_ref());
    let witness = witness_link(&b).await?;
    let hello = hello(&b.cfg, &b.timing);
    let ports = b.cfg.service.iter().map(|s| (s.vip, s.port)).collect();
    let joining = Joining::start(
        link,
        *to.ip(),
        hello.clone(),
        spec.clone(),
        b.clock.now(),
        (ports, b.cfg.lan.clone()),
    );
    let joins = Joins::start(
        spec,
        hello,
        (b.cfg.join_port, b.cfg.log_port),
        b.cfg.lan.clone(),
    )
    .await?;
    let started = Started {
        front,
        adopt: Arc::default(),
        log_client: None,
        hb: HeartbeatHandle::idle(),
        heartbeat,
        witness,
        joins,
    };
    Ok((wired(&b, c, started, true), joining))
}

/// The witness channel (grants at once without a witness).
async fn witness_link(b: &Base) -> Result<(Grants, UnboundedReceiver<WitnessMsg>)> {
    let own = SocketAddrV4::new(b.own, b.cfg.witness_port);
    Grants::open(b.cfg.witness, own, b.key.clone(), NodeId(b.cfg.node_id)).await
}

fn list(s: &[Service]) -> String {
    s.iter()
        .map(|s| s.vip.to_string())
        .collect::<Vec<_>>()
        .join(" ")
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
