//! rtnetlink inside a named network namespace.
//!
//! A netlink socket talks to the namespace it was opened in. [`in_netns`]
//! runs the given async work on a fresh OS thread that first `setns`es into
//! `/run/netns/NAME`, then builds a current-thread tokio runtime and opens
//! the rtnetlink connection there. `setns(CLONE_NEWNET)` only changes the
//! calling thread, so the caller and every other thread keep their
//! namespace, and no tokio worker thread ever changes namespace (tokio could
//! otherwise move a task between threads in different namespaces).

use crate::FaultError;
use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{
    BridgeStpState, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags,
};
use rtnetlink::{
    new_connection, Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth,
    RouteMessageBuilder,
};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

/// Errors of netlink work, as text (what failed and the kernel's answer).
pub type NlResult<T> = Result<T, String>;

/// The rtnetlink crate, re-exported for callers of [`in_netns`].
pub use rtnetlink;

/// Runs `f` with an rtnetlink [`Handle`] opened inside namespace `ns`, on a
/// dedicated thread; returns its result.
pub fn in_netns<T, F, Fut>(ns: &str, f: F) -> Result<T, FaultError>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = NlResult<T>>,
{
    crate::netns::require(ns)?;
    let file = std::fs::File::open(crate::netns::path(ns))
        .map_err(|_| FaultError::NoNetns(ns.to_string()))?;
    let name = ns.to_string();
    let thread = std::thread::Builder::new()
        .name(format!("nl-{name}"))
        .spawn(move || -> NlResult<T> {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("setns into {name}: {e}"))?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("tokio runtime: {e}"))?;
            rt.block_on(async move {
                let (conn, handle, _) =
                    new_connection().map_err(|e| format!("netlink socket: {e}"))?;
                let driver = tokio::spawn(conn);
                let r = f(handle).await;
                driver.abort();
                r
            })
        })
        .map_err(|e| FaultError::Netlink(format!("spawn thread: {e}")))?;
    thread
        .join()
        .map_err(|_| FaultError::Netlink(format!("netlink thread for {ns} panicked")))?
        .map_err(|e| FaultError::Netlink(format!("in namespace {ns}: {e}")))
}

/// Index of interface `name`.
pub async fn link_index(h: &Handle, name: &str) -> NlResult<u32> {
    let mut s = h.link().get().match_name(name.to_string()).execute();
    match s.try_next().await {
        Ok(Some(m)) => Ok(m.header.index),
        Ok(None) => Err(format!("no interface {name}")),
        Err(e) => Err(format!("look up interface {name}: {e}")),
    }
}

/// Whether interface `name` is administratively up.
pub async fn link_is_up(h: &Handle, name: &str) -> NlResult<bool> {
    let mut s = h.link().get().match_name(name.to_string()).execute();
    match s.try_next().await {
        Ok(Some(m)) => Ok(m.header.flags.contains(LinkFlags::Up)),
        Ok(None) => Err(format!("no interface {name}")),
        Err(e) => Err(format!("look up interface {name}: {e}")),
    }
}

/// Sets interface `name` up or down.
pub async fn link_set_up(h: &Handle, name: &str, up: bool) -> NlResult<()> {
    let idx = link_index(h, name).await?;
    let b = LinkUnspec::new_with_index(idx);
    let msg = if up { b.up() } else { b.down() }.build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| format!("set {name} {}: {e}", if up { "up" } else { "down" }))
}

/// Creates bridge `name` with STP off and no forwarding delay, and sets it up.
pub async fn add_bridge(h: &Handle, name: &str) -> NlResult<()> {
    let msg = LinkBridge::new(name)
        .stp_state(BridgeStpState::Disabled)
        .forward_delay(0)
        .up()
        .build();
    h.link()
        .add(msg)
        .execute()
        .await
        .map_err(|e| format!("add bridge {name}: {e}"))
}

/// Creates veth `name` here whose peer `peer` (with MAC `peer_mac`) is
/// created directly inside the namespace `peer_ns` (a /run/netns name),
/// both ends with `queues` transmit and receive queues (a veth hands a
/// frame to its peer's receive queue of the number it was sent on).
pub async fn add_veth_to(
    h: &Handle,
    name: &str,
    mac: Option<[u8; 6]>,
    peer: &str,
    peer_mac: [u8; 6],
    peer_ns: &str,
    queues: u32,
) -> NlResult<()> {
    let f = std::fs::File::open(crate::netns::path(peer_ns))
        .map_err(|e| format!("open namespace {peer_ns}: {e}"))?;
    let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer.to_string())
        .address(peer_mac.to_vec())
        .setns_by_fd(f.as_raw_fd())
        .append_extra_attribute(LinkAttribute::NumTxQueues(queues))
        .append_extra_attribute(LinkAttribute::NumRxQueues(queues))
        .build();
    let mut b = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(name.to_string())
        .append_extra_attribute(LinkAttribute::NumTxQueues(queues))
        .append_extra_attribute(LinkAttribute::NumRxQueues(queues))
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)));
    if let Some(m) = mac {
        b = b.address(m.to_vec());
    }
    let r = h
        .link()
        .add(b.build())
        .execute()
        .await
        .map_err(|e| format!("add veth {name} <-> {peer_ns}/{peer}: {e}"));
    drop(f); // the fd must stay open until the kernel has read it
    r
}

/// Attaches `port` to bridge `bridge` and sets it up.
pub async fn enslave_up(h: &Handle, port: &str, bridge: &str) -> NlResult<()> {
    let p = link_index(h, port).await?;
    let br = link_index(h, bridge).await?;
    let msg = LinkUnspec::new_with_index(p).controller(br).up().build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| format!("attach {port} to {bridge}: {e}"))
}

/// Adds `addr/prefix` to interface `dev` and sets it up.
pub async fn addr_up(h: &Handle, dev: &str, addr: Ipv4Addr, prefix: u8) -> NlResult<()> {
    let idx = link_index(h, dev).await?;
    h.address()
        .add(idx, IpAddr::V4(addr), prefix)
        .replace()
        .execute()
        .await
        .map_err(|e| format!("add {addr}/{prefix} to {dev}: {e}"))?;
    link_set_up(h, dev, true).await
}

/// Adds the default route via `gw`.
pub async fn default_route(h: &Handle, gw: Ipv4Addr) -> NlResult<()> {
    let msg = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).build();
    h.route()
        .add(msg)
        .replace()
        .execute()
        .await
        .map_err(|e| format!("default route via {gw}: {e}"))
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], FaultError> {
    let mut out = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(FaultError::Invalid(format!("MAC address `{s}`")));
    }
    for (o, p) in out.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(FaultError::Invalid(format!("MAC address `{s}`")));
        }
        *o = u8::from_str_radix(p, 16)
            .map_err(|_| FaultError::Invalid(format!("MAC address `{s}`")))?;
    }
    Ok(out)
}

/// Writes sysctls of the current thread's network namespace through
/// /proc/sys (which resolves `net.*` in the writer's namespace).
pub fn write_sysctls(kv: &[(&str, &str)]) -> NlResult<()> {
    for (k, v) in kv {
        if k.contains("..") || k.contains('/') {
            return Err(format!("bad sysctl key {k}"));
        }
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        std::fs::write(&path, v).map_err(|e| format!("write {path}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse() {
        assert_eq!(
            parse_mac("02:00:c0:00:02:0b").unwrap(),
            [2, 0, 0xc0, 0, 2, 0xb]
        );
        assert!(parse_mac("02:00:c0:00:02").is_err());
        assert!(parse_mac("02:00:c0:00:02:0bb").is_err());
        assert!(parse_mac("02:00:c0:00:02:zz").is_err());
    }

    #[test]
    fn missing_namespace_is_an_error() {
        let r = in_netns("cx-no-such-ns-zz", |_h| async { Ok(()) });
        assert!(matches!(r, Err(FaultError::NoNetns(_))));
    }
}
