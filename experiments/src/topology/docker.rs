//! The Docker backend: the kit's hosts as containers on two internal Docker
//! networks, driven through the engine's API with bollard (no `docker`
//! command anywhere in this path).
//!
//! ```text
//!  client 198.51.100.10 --- router 198.51.100.1 | 192.0.2.1        network <prefix>-cli
//!                                   |
//!          Docker bridge <prefix>-lan (the switch, root namespace)  network <prefix>-lan
//!          |          |          |         |
//!        lb .10  server-a .11 server-b .12 spare .13     (192.0.2.0/24)
//! ```
//!
//! What makes it the same kit as the netns topology (docker/README.md has the
//! differences):
//! - Image: an imported skeleton (folders, the bin/lib symlinks, a passwd),
//!   run with the host's `/usr` read-only, the kit's binary folder read-only
//!   and the state directory read-write, each at its own path, so every
//!   service command line of the netns topology runs unchanged.
//! - Each container's network namespace is attached under the netns
//!   topology's name (`ip netns attach <prefix>-<host> PID`), so `ip netns
//!   exec`, `topology.json`'s `netns`/`client_ns` and every script work on
//!   both; `down` detaches them.
//! - Sysctls are written from the host side into each container's namespace
//!   (inside, `/proc/sys` is read-only): the netns topology's set, plus the
//!   direct-routing ones a CoRAL primary needs on the server hosts.
//! - A link cut sets the container's host-side veth down (in the root
//!   namespace: the engine's, [`engine_netns`]); the LAN rate is the
//!   switch port's qdisc ([`crate::conditions::LanQdisc`]) on the same veth (traffic towards the host, as on a switch port).
//! - A partition is the netns switch's bridge-family rule in the engine's
//!   namespace, its label prefixed with the topology's ([`partition_label`]).
//! - Every container and network carries the label [`LABEL_PREFIX`], every
//!   DOCKER-USER rule the comment `coral-kit <prefix>`: `down` and
//!   `down --stale` remove exactly those.

use super::netns::{self, host_sysctls, nl, ns_name, CLIENT_ADDR, LAN_HOSTS};
use super::{check_cancel, HostInfo, LinkEnd, Resource, ServiceSpec, StateHandle, Status};
use super::{Topology, TopologyState};
use anyhow::{bail, Context, Result};
use bollard::models::{
    ContainerCreateBody, ContainerUpdateBody, EndpointIpamConfig, EndpointSettings, ExecConfig,
    HostConfig, Ipam, IpamConfig, NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, ListNetworksOptions,
    RemoveContainerOptions,
};
use faultinject::Fault;
use futures_util::TryStreamExt;
use std::collections::HashMap;
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

/// Label on every container and network of a topology: its prefix.
pub const LABEL_PREFIX: &str = "org.coral-kit.prefix";
/// The skeleton image (repository:tag), imported by the kit, never pulled.
pub const IMAGE: &str = "coral-kit/skeleton:1";
/// The host's (gateway) address on the LAN network: no role uses it.
pub const LAN_GATEWAY: &str = "192.0.2.254";
/// The host's (gateway) address on the client network.
pub const CLIENT_GATEWAY: &str = "198.51.100.254";
/// The engine's socket.
pub const SOCKET: &str = "/var/run/docker.sock";

/// Containers of the topology (the switch is the LAN network's bridge).
pub const CONTAINERS: [&str; 6] = ["client", "router", "server-a", "server-b", "spare", "lb"];

/// Name of the LAN network and of its bridge (at most 15 characters).
pub fn lan_network(prefix: &str) -> String {
    format!("{prefix}-lan")
}

/// Name of the client network and of its bridge.
pub fn client_network(prefix: &str) -> String {
    format!("{prefix}-cli")
}

/// Capabilities a host's container gets (everything else is dropped; never
/// `--privileged`). Servers and the load balancer run the services (CoRAL:
/// addresses, nftables, `TCP_REPAIR` and `SO_RCVBUFFORCE` need NET_ADMIN,
/// AF_PACKET and ping NET_RAW; port 80 NET_BIND_SERVICE; haproxy, nginx and
/// keepalived change user and signal their workers). The client runs the
/// witness and the load (NET_RAW for ping); the router only forwards.
pub fn capabilities(host: &str) -> &'static [&'static str] {
    match host {
        "client" => &["NET_RAW", "NET_BIND_SERVICE"],
        "router" => &["NET_ADMIN", "NET_RAW"],
        _ => &[
            "NET_ADMIN",
            "NET_RAW",
            "NET_BIND_SERVICE",
            "SETUID",
            "SETGID",
            "KILL",
            "CHOWN",
            "DAC_OVERRIDE",
            "FOWNER",
        ],
    }
}

/// The engine connection and the runtime that drives it.
struct Engine {
    rt: tokio::runtime::Runtime,
    api: bollard::Docker,
}

/// The Docker backend (state lives in topology.json and the engine's labels).
#[derive(Default)]
pub struct Docker {
    engine: OnceLock<Engine>,
}

impl std::fmt::Debug for Docker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Docker")
    }
}

/// Connects to the local engine and agrees on an API version; a clear error
/// naming the socket when there is none.
fn connect() -> Result<Engine> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let api = rt.block_on(async {
        let d = bollard::Docker::connect_with_unix(SOCKET, 30, bollard::API_DEFAULT_VERSION)
            .with_context(|| format!("no Docker engine at {SOCKET}"))?;
        let d = d
            .negotiate_version()
            .await
            .with_context(|| format!("no Docker engine answers at {SOCKET}"))?;
        d.ping()
            .await
            .with_context(|| format!("the Docker engine at {SOCKET} does not answer a ping"))?;
        anyhow::Ok(d)
    })?;
    Ok(Engine { rt, api })
}

/// Whether a Docker engine answers here; the error says why not.
pub fn engine_available() -> Result<()> {
    connect().map(|_| ())
}

fn labels(prefix: &str, host: Option<&str>) -> HashMap<String, String> {
    let mut m = HashMap::from([(LABEL_PREFIX.to_string(), prefix.to_string())]);
    if let Some(h) = host {
        m.insert("org.coral-kit.host".into(), h.into());
    }
    m
}

fn label_filter(prefix: Option<&str>) -> HashMap<String, Vec<String>> {
    let v = match prefix {
        Some(p) => format!("{LABEL_PREFIX}={p}"),
        None => LABEL_PREFIX.to_string(),
    };
    HashMap::from([("label".to_string(), vec![v])])
}

/// The skeleton image's files: folders, the merged-/usr symlinks, and a
/// passwd/group with the users the services switch to. Everything else
/// comes from the host's `/usr`, mounted read-only.
pub fn skeleton_tar() -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = |path: &str, mode: u32| -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(0);
        b.append_data(&mut h, path, std::io::empty())
            .with_context(|| format!("tar {path}"))
    };
    for d in [
        "usr", "etc", "proc", "sys", "dev", "run", "var", "var/lib", "var/log", "root", "home",
    ] {
        dir(d, 0o755)?;
    }
    dir("tmp", 0o1777)?;
    dir("var/tmp", 0o1777)?;
    for (link, to) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(0);
        b.append_link(&mut h, link, to)
            .with_context(|| format!("tar {link}"))?;
    }
    for (path, text) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\n\
             www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n\
             haproxy:x:100:101::/var/lib/haproxy:/usr/sbin/nologin\n\
             nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        ),
        (
            "etc/group",
            "root:x:0:\nwww-data:x:33:\nhaproxy:x:101:\nnogroup:x:65534:\n",
        ),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(text.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, path, text.as_bytes())
            .with_context(|| format!("tar {path}"))?;
    }
    b.into_inner().context("finish the skeleton tar")
}

/// Where the engine's pid is written.
pub const ENGINE_PIDFILE: &str = "/var/run/docker.pid";

/// The engine's network namespace as a `/proc/<pid>/ns/net` path: where its
/// networks' bridges and the host-side veths are (the root namespace of the
/// machine; `/proc/1` may belong to another namespace in a sandbox).
pub fn engine_netns() -> Result<String> {
    let pid = std::fs::read_to_string(ENGINE_PIDFILE)
        .with_context(|| format!("read {ENGINE_PIDFILE} (the engine's pid)"))?;
    let p = format!("/proc/{}/ns/net", pid.trim());
    if !faultinject::netns::is_proc_path(&p) || !Path::new(&p).exists() {
        bail!("{ENGINE_PIDFILE} names no live engine ({p})");
    }
    Ok(p)
}

/// Host-side veth (root namespace) of `dev` inside namespace `ns`, found by
/// the peer index the container's end reports.
fn host_veth(ns: &str, dev: &str) -> Result<String> {
    let d = dev.to_string();
    let peer = nl(ns, move |h| async move {
        let links = links(&h).await?;
        links
            .iter()
            .find(|l| l.name == d)
            .and_then(|l| l.peer)
            .ok_or(format!("{d} has no peer index"))
    })?;
    nl(&engine_netns()?, move |h| async move {
        links(&h)
            .await?
            .into_iter()
            .find(|l| l.index == peer)
            .map(|l| l.name)
            .ok_or(format!(
                "no interface with index {peer} in the root namespace"
            ))
    })
    .with_context(|| format!("host-side veth of {dev} in {ns}"))
}

/// One interface as rtnetlink reports it.
#[derive(Debug, Clone)]
struct Link {
    index: u32,
    name: String,
    peer: Option<u32>,
    mac: String,
    addrs: Vec<Ipv4Addr>,
}

async fn links(h: &faultinject::nl::rtnetlink::Handle) -> faultinject::nl::NlResult<Vec<Link>> {
    use faultinject::nl::rtnetlink::packet_route::address::AddressAttribute;
    use faultinject::nl::rtnetlink::packet_route::link::LinkAttribute;
    let mut out = Vec::new();
    let mut s = h.link().get().execute();
    while let Some(m) = s.try_next().await.map_err(|e| format!("list links: {e}"))? {
        let mut l = Link {
            index: m.header.index,
            name: String::new(),
            peer: None,
            mac: String::new(),
            addrs: Vec::new(),
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Link(i) => l.peer = Some(*i),
                LinkAttribute::Address(b) if b.len() == 6 => {
                    l.mac = b
                        .iter()
                        .map(|x| format!("{x:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                }
                _ => {}
            }
        }
        out.push(l);
    }
    let mut s = h.address().get().execute();
    while let Some(m) = s
        .try_next()
        .await
        .map_err(|e| format!("list addresses: {e}"))?
    {
        for a in &m.attributes {
            if let AddressAttribute::Address(IpAddr::V4(v4)) = a {
                if let Some(l) = out.iter_mut().find(|l| l.index == m.header.index) {
                    l.addrs.push(*v4);
                }
            }
        }
    }
    Ok(out)
}

impl Docker {
    fn engine(&self) -> Result<&Engine> {
        if let Some(e) = self.engine.get() {
            return Ok(e);
        }
        let e = connect()?;
        Ok(self.engine.get_or_init(|| e))
    }

    fn block<T>(&self, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.engine()?.rt.block_on(f)
    }

    /// Imports the skeleton image unless the engine has it.
    pub fn ensure_image(&self) -> Result<()> {
        let e = self.engine()?;
        e.rt.block_on(async {
            if e.api.inspect_image(IMAGE).await.is_ok() {
                return Ok(());
            }
            let (repo, tag) = IMAGE.split_once(':').unwrap_or((IMAGE, "latest"));
            let body = bollard::body_full(bytes::Bytes::from(skeleton_tar()?));
            let opts = CreateImageOptions {
                from_src: Some("-".into()),
                repo: Some(repo.into()),
                tag: Some(tag.into()),
                ..Default::default()
            };
            e.api
                .create_image(Some(opts), Some(body), None)
                .try_collect::<Vec<_>>()
                .await
                .with_context(|| format!("import the skeleton image {IMAGE}"))?;
            Ok(())
        })
    }

    fn create_network(
        &self,
        h: &mut StateHandle,
        name: &str,
        subnet: &str,
        gw: &str,
    ) -> Result<()> {
        h.record(Resource::DockerNetwork { name: name.into() })?;
        let req = NetworkCreateRequest {
            name: name.into(),
            driver: Some("bridge".into()),
            internal: Some(true),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.into()),
                    gateway: Some(gw.into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            options: Some(HashMap::from([(
                "com.docker.network.bridge.name".to_string(),
                name.to_string(),
            )])),
            labels: Some(labels(&h.state.prefix, None)),
            ..Default::default()
        };
        self.block(async {
            self.engine()?
                .api
                .create_network(req)
                .await
                .with_context(|| format!("create network {name} ({subnet})"))?;
            Ok(())
        })?;
        // Docker's isolation chain drops what the router forwards between
        // its two internal networks; allow each bridge to itself.
        h.record(Resource::DockerUserRule {
            bridge: name.into(),
        })?;
        docker_user_rule(&h.state.prefix, name, true)
    }

    fn endpoint(addr: &str) -> EndpointSettings {
        EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: Some(addr.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Creates and starts `host`'s container on `net` at `addr`, attaches its
    /// namespace under the netns topology's name; returns that name.
    fn add_container(
        &self,
        h: &mut StateHandle,
        host: &str,
        net: &str,
        addr: &str,
        second: Option<(&str, &str)>,
        mounts: &[String],
    ) -> Result<String> {
        let prefix = h.state.prefix.clone();
        let name = ns_name(&prefix, host);
        h.record(Resource::DockerContainer { name: name.clone() })?;
        let body = ContainerCreateBody {
            image: Some(IMAGE.into()),
            hostname: Some(host.into()),
            cmd: Some(vec!["/usr/bin/sleep".into(), "infinity".into()]),
            labels: Some(labels(&prefix, Some(host))),
            host_config: Some(HostConfig {
                binds: Some(mounts.to_vec()),
                network_mode: Some(net.into()),
                cap_drop: Some(vec!["ALL".into()]),
                cap_add: Some(capabilities(host).iter().map(|c| c.to_string()).collect()),
                tmpfs: Some(HashMap::from([("/run".to_string(), String::new())])),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(net.to_string(), Self::endpoint(addr))])),
            }),
            ..Default::default()
        };
        let pid = self.block(async {
            let api = &self.engine()?.api;
            api.create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .with_context(|| format!("create container {name}"))?;
            if let Some((net2, addr2)) = second {
                api.connect_network(
                    net2,
                    NetworkConnectRequest {
                        container: name.clone(),
                        endpoint_config: Some(Self::endpoint(addr2)),
                    },
                )
                .await
                .with_context(|| format!("connect {name} to {net2}"))?;
            }
            api.start_container(&name, None)
                .await
                .with_context(|| format!("start container {name}"))?;
            let i = api.inspect_container(&name, None).await?;
            i.state
                .and_then(|s| s.pid)
                .filter(|p| *p > 0)
                .with_context(|| format!("container {name} has no pid after start"))
        })?;
        h.record(Resource::NetnsAttach { name: name.clone() })?;
        run_cmd(
            Command::new("ip").args(["netns", "attach", &name, &pid.to_string()]),
            None,
        )?;
        Ok(name)
    }

    /// The cgroup (cpu controller) directory of `container`'s first process.
    fn cgroup_of(&self, container: &str) -> Result<String> {
        let pid = self.block(async {
            let i = self
                .engine()?
                .api
                .inspect_container(container, None)
                .await?;
            i.state
                .and_then(|s| s.pid)
                .with_context(|| format!("{container} is not running"))
        })?;
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, ctrls, path) = (parts.next(), parts.next(), parts.next());
            if ctrls.is_some_and(|c| c.split(',').any(|x| x == "cpu")) {
                let p = Path::new(crate::conditions::CPU_CGROUP_ROOT)
                    .join(path.unwrap_or("/").trim_start_matches('/'));
                return Ok(p.to_string_lossy().into_owned());
            }
        }
        bail!("no cpu cgroup for {container} (pid {pid})")
    }

    fn remove_everything(&self, prefix: &str, created: &[Resource]) -> Vec<String> {
        let mut problems = Vec::new();
        // Names under /run/netns first (they only point at the containers'
        // namespaces; unmounting never kills anything).
        let mut attached: Vec<String> = created
            .iter()
            .filter_map(|r| match r {
                Resource::NetnsAttach { name } => Some(name.clone()),
                _ => None,
            })
            .collect();
        for host in CONTAINERS {
            let n = ns_name(prefix, host);
            if !attached.contains(&n) {
                attached.push(n);
            }
        }
        for n in &attached {
            if netns::netns_exists(n) {
                if let Err(e) = run_cmd(Command::new("ip").args(["netns", "del", n]), None) {
                    problems.push(format!("{e:#}"));
                }
            }
        }
        let r = self.block(async {
            let api = &self.engine()?.api;
            let mut problems = Vec::new();
            let cs = api
                .list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: Some(label_filter(Some(prefix))),
                    ..Default::default()
                }))
                .await?;
            for c in cs {
                let Some(id) = c.id else { continue };
                if let Err(e) = api
                    .remove_container(
                        &id,
                        Some(RemoveContainerOptions {
                            force: true,
                            v: true,
                            ..Default::default()
                        }),
                    )
                    .await
                {
                    problems.push(format!("remove container {id}: {e}"));
                }
            }
            let ns = api
                .list_networks(Some(ListNetworksOptions {
                    filters: Some(label_filter(Some(prefix))),
                }))
                .await?;
            for n in ns {
                let Some(id) = n.id else { continue };
                if let Err(e) = api.remove_network(&id).await {
                    problems.push(format!("remove network {id}: {e}"));
                }
            }
            Ok(problems)
        });
        match r {
            Ok(p) => problems.extend(p),
            Err(e) => problems.push(format!("{e:#}")),
        }
        if let Err(e) = remove_docker_user_rules(prefix) {
            problems.push(format!("{e:#}"));
        }
        let partitions = engine_netns().and_then(|ns| {
            Ok(faultinject::remove_partitions(
                &ns,
                &partition_label(prefix, ""),
            )?)
        });
        if let Err(e) = partitions {
            problems.push(format!("partition rules of {prefix}: {e:#}"));
        }
        problems
    }
}

/// The label of a partition rule of `prefix`'s topology (the netns label
/// `part_X_Y` behind the prefix): the engine's namespace is shared with
/// other topologies and the engine's own bridges.
pub fn partition_label(prefix: &str, label: &str) -> String {
    format!("{prefix}_{label}")
}

/// Runs a command (faultinject's runner), its failure as an anyhow error.
fn run_cmd(cmd: &mut Command, input: Option<&str>) -> Result<String> {
    Ok(faultinject::run_command(cmd, input)?)
}

/// The comment that marks the kit's DOCKER-USER rules of `prefix`.
fn rule_comment(prefix: &str) -> String {
    format!("coral-kit {prefix}")
}

fn docker_user_rule(prefix: &str, bridge: &str, add: bool) -> Result<()> {
    let c = rule_comment(prefix);
    let mut cmd = Command::new("iptables");
    cmd.args(["-w", if add { "-I" } else { "-D" }, "DOCKER-USER"])
        .args(["-i", bridge, "-o", bridge, "-j", "ACCEPT"])
        .args(["-m", "comment", "--comment", &c]);
    run_cmd(&mut cmd, None).with_context(|| {
        format!(
            "{} the DOCKER-USER rule of bridge {bridge}",
            if add { "add" } else { "remove" }
        )
    })?;
    Ok(())
}

/// Removes every DOCKER-USER rule carrying `prefix`'s comment.
fn remove_docker_user_rules(prefix: &str) -> Result<()> {
    let out = run_cmd(
        Command::new("iptables").args(["-w", "-S", "DOCKER-USER"]),
        None,
    )?;
    let tag = format!("\"{}\"", rule_comment(prefix));
    for line in out.lines().filter(|l| l.contains(&tag)) {
        // -A DOCKER-USER -i B -o B -m comment --comment "coral-kit P" -j ACCEPT
        let words: Vec<&str> = line.split_whitespace().collect();
        let field = |k: &str| {
            words
                .iter()
                .position(|w| *w == k)
                .and_then(|i| words.get(i + 1))
        };
        if let (Some(i), Some(o)) = (field("-i"), field("-o")) {
            if i == o {
                docker_user_rule(prefix, i, false)?;
            }
        }
    }
    Ok(())
}

impl Topology for Docker {
    fn kind(&self) -> &'static str {
        "docker"
    }

    fn build(&self, h: &mut StateHandle, cancel: &AtomicBool) -> Result<()> {
        let prefix = h.state.prefix.clone();
        self.engine()?;
        self.ensure_image()?;
        check_cancel(cancel)?;
        let (lan, cli) = (lan_network(&prefix), client_network(&prefix));
        h.state.client_ns = ns_name(&prefix, "client");
        h.state.hosts.insert(
            "switch".into(),
            HostInfo {
                netns: String::new(),
                dev: lan.clone(),
                ..Default::default()
            },
        );
        h.save()?;
        self.create_network(h, &cli, "198.51.100.0/24", CLIENT_GATEWAY)?;
        self.create_network(h, &lan, "192.0.2.0/24", LAN_GATEWAY)?;

        let mounts = mounts(&h.dir())?;
        for host in CONTAINERS {
            check_cancel(cancel)?;
            let (net, addr, second) = match host {
                "client" => (cli.as_str(), CLIENT_ADDR, None),
                "router" => (
                    cli.as_str(),
                    netns::ROUTER_CLIENT_ADDR,
                    Some((lan.as_str(), netns::ROUTER_LAN_ADDR)),
                ),
                _ => {
                    let (_, a, _) = LAN_HOSTS
                        .iter()
                        .find(|(n, _, _)| *n == host)
                        .context("host plan")?;
                    (lan.as_str(), *a, None)
                }
            };
            let ns = self.add_container(h, host, net, addr, second, &mounts)?;
            let (main_addr, found) = settle_inside(&ns, host, addr)?;
            // The link a cut sets down: the container's host-side veth
            // (the client's is its cable to the router).
            let link = Some(LinkEnd {
                netns: engine_netns()?,
                dev: host_veth(&ns, &found.name)?,
            });
            h.state.hosts.insert(
                host.into(),
                HostInfo {
                    netns: ns,
                    addr: main_addr.to_string(),
                    mac: found.mac.clone(),
                    dev: found.name.clone(),
                    link,
                    on_switch: host != "client",
                    ..Default::default()
                },
            );
            h.save()?;
        }
        Ok(())
    }

    fn set_lan_rate(&self, h: &mut StateHandle, mbit: u32) -> Result<()> {
        for (host, _, _) in LAN_HOSTS {
            let l = h
                .state
                .host(host)?
                .link
                .clone()
                .with_context(|| format!("{host} has no link"))?;
            crate::conditions::apply_lan_rate(&engine_netns()?, &l.dev, mbit)?;
        }
        Ok(())
    }

    fn set_cpu_quota(&self, h: &mut StateHandle, host: &str, cores: f64) -> Result<()> {
        let name = h.state.host(host)?.netns.clone();
        let (period, quota) = crate::conditions::cfs_period_quota(cores);
        self.block(async {
            self.engine()?
                .api
                .update_container(
                    &name,
                    ContainerUpdateBody {
                        cpu_period: Some(period as i64),
                        cpu_quota: Some(quota as i64),
                        ..Default::default()
                    },
                )
                .await
                .with_context(|| format!("CPU quota of {name}"))?;
            Ok(())
        })?;
        // The engine owns the group (it goes with the container): recorded
        // for CPU accounting only, never removed by the kit.
        let cg = self.cgroup_of(&name)?;
        if let Some(hi) = h.state.hosts.get_mut(host) {
            hi.cgroup = Some(cg);
        }
        h.save()
    }

    fn spawn_service(&self, h: &mut StateHandle, spec: &ServiceSpec) -> Result<u32> {
        let container = h.state.host(&spec.host)?.netns.clone();
        if container.is_empty() {
            bail!("{} is not a container", spec.host);
        }
        if spec.argv.is_empty() {
            bail!("empty argv");
        }
        if let Some(d) = spec.log.parent() {
            std::fs::create_dir_all(d)?;
        }
        let log = std::path::absolute(&spec.log)?;
        // The engine gives an exec no output file: a shell opens the log
        // (append) and execs the program, so the pid is the program's.
        let mut cmd: Vec<String> = vec![
            "/bin/sh".into(),
            "-c".into(),
            "exec \"$@\" >>\"$0\" 2>&1".into(),
            log.to_string_lossy().into_owned(),
        ];
        cmd.extend(spec.argv.iter().map(|a| a.to_string_lossy().into_owned()));
        let pid = self.block(async {
            let api = &self.engine()?.api;
            let ex = api
                .create_exec(
                    &container,
                    ExecConfig {
                        cmd: Some(cmd),
                        ..Default::default()
                    },
                )
                .await
                .with_context(|| format!("exec in {container}"))?;
            api.start_exec(
                &ex.id,
                Some(bollard::exec::StartExecOptions {
                    detach: true,
                    ..Default::default()
                }),
            )
            .await
            .with_context(|| format!("start exec in {container}"))?;
            for _ in 0..200 {
                let i = api.inspect_exec(&ex.id).await?;
                if let Some(p) = i.pid.filter(|p| *p > 0) {
                    return Ok(p as u32);
                }
                if i.running == Some(false) {
                    bail!(
                        "{} exited at once (status {:?}); see {}",
                        spec.argv[0].to_string_lossy(),
                        i.exit_code,
                        log.display()
                    );
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            bail!("exec in {container} reported no pid")
        })?;
        if let Some(hi) = h.state.hosts.get_mut(&spec.host) {
            hi.pids.push(pid);
        }
        h.record(Resource::Process {
            host: spec.host.clone(),
            pid,
            program: Path::new(&spec.argv[0])
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        })?;
        Ok(pid)
    }

    fn command(&self, s: &TopologyState, host: &str, argv: &[OsString]) -> Result<Command> {
        let info = s.host(host)?;
        if info.netns.is_empty() {
            bail!(
                "host {host} of a Docker topology is the engine's bridge {} in the root namespace, not a container",
                info.dev
            );
        }
        // A container's namespace is attached under its netns name: from
        // here on it is entered like any other.
        netns::Netns.command(s, host, argv)
    }

    fn link_fault(&self, s: &TopologyState, host: &str, up: bool) -> Result<Fault> {
        // The engine may have restarted since `up`: its namespace now.
        let mut s = s.clone();
        if let Some(l) = s.hosts.get_mut(host).and_then(|h| h.link.as_mut()) {
            l.netns = engine_netns()?;
        }
        netns::Netns.link_fault(&s, host, up)
    }

    fn partition_fault(&self, s: &TopologyState, a: &str, b: &str, heal: bool) -> Result<Fault> {
        // The LAN is the engine's bridge: the same bridge-family rule as
        // on the netns switch, in the engine's namespace, labelled with the
        // prefix so that `down` removes exactly this topology's rules.
        let mut f = netns::Netns.partition_fault(s, a, b, heal)?;
        let engine = engine_netns()?;
        match &mut f {
            Fault::Partition { netns, label, .. } | Fault::Heal { netns, label } => {
                *netns = engine;
                *label = partition_label(&s.prefix, label);
            }
            _ => unreachable!("partition_fault gives a partition or a heal"),
        }
        Ok(f)
    }

    fn destroy(&self, h: &mut StateHandle) -> Result<()> {
        let prefix = h.state.prefix.clone();
        let problems = self.remove_everything(&prefix, &h.state.created);
        h.state.status = Status::Down;
        h.state.owner_pid = None;
        h.save()?;
        if !problems.is_empty() {
            bail!("teardown of {prefix} incomplete: {}", problems.join("; "));
        }
        super::unregister(&prefix);
        Ok(())
    }

    fn existing_prefixes(&self) -> Vec<String> {
        let r = self.block(async {
            let api = &self.engine()?.api;
            let mut out: Vec<String> = Vec::new();
            let cs = api
                .list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: Some(label_filter(None)),
                    ..Default::default()
                }))
                .await?;
            let ns = api
                .list_networks(Some(ListNetworksOptions {
                    filters: Some(label_filter(None)),
                }))
                .await?;
            let labels = cs
                .into_iter()
                .filter_map(|c| c.labels)
                .chain(ns.into_iter().filter_map(|n| n.labels));
            for l in labels {
                if let Some(p) = l.get(LABEL_PREFIX) {
                    if !out.contains(p) {
                        out.push(p.clone());
                    }
                }
            }
            Ok(out)
        });
        r.unwrap_or_default()
    }

    fn destroy_prefix(&self, prefix: &str) -> Result<()> {
        let problems = self.remove_everything(prefix, &[]);
        if !problems.is_empty() {
            bail!("teardown of {prefix} incomplete: {}", problems.join("; "));
        }
        super::unregister(prefix);
        Ok(())
    }
}

/// The containers' mounts: `/usr`, the kit's binaries and the state
/// directory `state`, each at its own path.
fn mounts(state: &Path) -> Result<Vec<String>> {
    let bin_dir = super::sibling_binary("coral-exp")
        .or_else(|_| super::sibling_binary("webstone-server"))?
        .parent()
        .map(Path::to_path_buf)
        .context("binary folder")?;
    let state_dir = std::path::absolute(state)?;
    Ok(vec![
        "/usr:/usr:ro".to_string(),
        format!("{}:{}:ro", bin_dir.display(), bin_dir.display()),
        format!("{}:{}", state_dir.display(), state_dir.display()),
    ])
}

/// Sysctls and routes of container `host` (namespace `ns`, address
/// `addr`) from the host side, as in the netns topology; its main address
/// and the interface that holds it.
fn settle_inside(ns: &str, host: &'static str, addr: &str) -> Result<(Ipv4Addr, Link)> {
    let fwd = if host == "router" { "1" } else { "0" };
    let server = host.starts_with("server") || host == "spare";
    let (main_addr, gw): (Ipv4Addr, Option<Ipv4Addr>) = match host {
        "client" => (
            CLIENT_ADDR.parse()?,
            Some(netns::ROUTER_CLIENT_ADDR.parse()?),
        ),
        "router" => (netns::ROUTER_LAN_ADDR.parse()?, None),
        _ => (addr.parse()?, Some(netns::ROUTER_LAN_ADDR.parse()?)),
    };
    let found = nl(ns, move |h| async move {
        faultinject::nl::write_sysctls(&host_sysctls(fwd))?;
        let ls = links(&h).await?;
        let main = ls
            .iter()
            .find(|l| l.addrs.contains(&main_addr))
            .cloned()
            .ok_or(format!("no interface holds {main_addr}"))?;
        if server {
            // A CoRAL primary's direct-routing settings: its node
            // cannot write them inside the container.
            let d = &main.name;
            let keys = [
                ("net.ipv4.conf.all.arp_ignore".to_string(), "1"),
                ("net.ipv4.conf.all.arp_announce".to_string(), "2"),
                (format!("net.ipv4.conf.{d}.arp_ignore"), "1"),
                (format!("net.ipv4.conf.{d}.arp_announce"), "2"),
            ];
            let kv: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            faultinject::nl::write_sysctls(&kv)?;
        }
        if let Some(gw) = gw {
            faultinject::nl::default_route(&h, gw).await?;
        }
        Ok(main)
    })
    .with_context(|| format!("sysctls and routes in {ns}"))?;
    Ok((main_addr, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skeleton_has_the_merged_usr_links_and_no_binaries() {
        let t = skeleton_tar().unwrap();
        let mut a = tar::Archive::new(&t[..]);
        let mut names = Vec::new();
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            if e.header().entry_type() == tar::EntryType::Symlink {
                let to = e.link_name().unwrap().unwrap();
                assert!(to.starts_with("usr/"), "{p} -> {}", to.display());
            }
            assert!(
                e.header().entry_type() != tar::EntryType::Regular || p.starts_with("etc/"),
                "{p}"
            );
            names.push(p);
        }
        for n in ["bin", "lib64", "tmp", "etc/passwd"] {
            assert!(
                names.iter().any(|x| x.trim_end_matches('/') == n),
                "{n} in {names:?}"
            );
        }
    }

    #[test]
    fn names_fit_interface_limits_and_roles_have_no_privilege() {
        assert!(lan_network("cxt1234").len() <= 15);
        assert!(client_network("cx12ab").len() <= 15);
        for h in CONTAINERS {
            let c = capabilities(h);
            assert!(!c.contains(&"SYS_ADMIN") && !c.is_empty(), "{h}");
        }
        assert!(!capabilities("client").contains(&"NET_ADMIN"));
    }
}
