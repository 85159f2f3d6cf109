//! The node's network identity, through netlink (rtnetlink) and `/proc/sys`:
//! interface lookup, service addresses on the LAN interface or on `lo`,
//! neighbour entries, and the sysctls of the Linux Virtual Server "direct
//! routing" arrangement (docs/DESIGN.md sections 2 and 7).
//!
//! Everything acts on the network namespace of the calling process (or
//! thread, when the connection was opened after a `setns`).

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{new_connection, AddressMessageBuilder, Handle};

/// A netlink handle for the current network namespace.
#[derive(Clone, Debug)]
pub struct NetCfg {
    handle: Handle,
}

/// An interface: index and MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iface {
    /// Interface index.
    pub index: u32,
    /// Hardware address (zeros for `lo`).
    pub mac: [u8; 6],
}

impl NetCfg {
    /// Open a netlink connection; its driver task runs on the current tokio
    /// runtime.
    pub fn open() -> Result<NetCfg> {
        let (conn, handle, _) = new_connection().context("opening a netlink socket")?;
        tokio::spawn(conn);
        Ok(NetCfg { handle })
    }

    /// Look an interface up by name.
    pub async fn iface(&self, name: &str) -> Result<Iface> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        let link = links
            .try_next()
            .await
            .with_context(|| format!("looking up interface {name:?}"))?
            .ok_or_else(|| anyhow!("no interface {name:?} in this namespace"))?;
        let mut mac = [0u8; 6];
        for a in &link.attributes {
            if let LinkAttribute::Address(b) = a {
                if b.len() == 6 {
                    mac.copy_from_slice(b);
                }
            }
        }
        Ok(Iface {
            index: link.header.index,
            mac,
        })
    }

    /// Add `addr/prefix` to interface `index` (succeeds if already there).
    pub async fn add_addr(&self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<()> {
        self.handle
            .address()
            .add(index, IpAddr::V4(addr), prefix)
            .replace()
            .execute()
            .await
            .with_context(|| format!("adding {addr}/{prefix} to interface {index}"))
    }

    /// Remove `addr/prefix` from interface `index` (succeeds if absent).
    /// One request: the kernel's "no such address" answer is the absent
    /// case (a listing first cost a second round trip on the join's and
    /// the takeover's path).
    pub async fn del_addr(&self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<()> {
        let msg = AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(addr, prefix)
            .build();
        match self.handle.address().del(msg).execute().await {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::EADDRNOTAVAIL => {
                Ok(())
            }
            r => r.with_context(|| format!("removing {addr}/{prefix} from interface {index}")),
        }
    }

    /// The IPv4 addresses of interface `index`, in the kernel's order.
    pub async fn addrs(&self, index: u32) -> Result<Vec<Ipv4Addr>> {
        let mut s = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut out = Vec::new();
        while let Some(m) = s.try_next().await.context("listing addresses")? {
            if m.header.index != index {
                continue;
            }
            for a in &m.attributes {
                if let AddressAttribute::Local(IpAddr::V4(x)) = a {
                    out.push(*x);
                }
            }
        }
        Ok(out)
    }

    /// Whether interface `index` has address `addr`.
    pub async fn has_addr(&self, index: u32, addr: Ipv4Addr) -> Result<bool> {
        let mut s = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(IpAddr::V4(addr))
            .execute();
        while let Some(m) = s.try_next().await.context("listing addresses")? {
            let found = m.attributes.iter().any(|a| {
                matches!(a, AddressAttribute::Address(IpAddr::V4(x)) | AddressAttribute::Local(IpAddr::V4(x)) if *x == addr)
            });
            if found && m.header.index == index {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Set (or replace) a permanent neighbour entry `ip -> mac` on `index`,
    /// so nothing waits for ARP (docs/DESIGN.md section 5 step 3).
    pub async fn set_neighbour(&self, index: u32, ip: Ipv4Addr, mac: [u8; 6]) -> Result<()> {
        self.handle
            .neighbours()
            .add(index, IpAddr::V4(ip))
            .link_layer_address(&mac)
            .state(NeighbourState::Reachable)
            .replace()
            .execute()
            .await
            .with_context(|| format!("setting neighbour {ip} on interface {index}"))
    }
}

impl NetCfg {
    /// The MAC the neighbour table holds for `ip` on interface `index`
    /// (reachable, stale or permanent), if any.
    pub async fn neighbour_mac(&self, index: u32, ip: Ipv4Addr) -> Result<Option<[u8; 6]>> {
        let mut s = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Inet)
            .execute();
        while let Some(m) = s.try_next().await.context("listing neighbours")? {
            if m.header.ifindex != index
                || matches!(
                    m.header.state,
                    NeighbourState::Failed | NeighbourState::Incomplete | NeighbourState::None
                )
            {
                continue;
            }
            let mut dst = None;
            let mut lladdr = None;
            for a in &m.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(x)) => dst = Some(*x),
                    NeighbourAttribute::LinkLayerAddress(b) if b.len() == 6 => {
                        let mut mac = [0u8; 6];
                        mac.copy_from_slice(b);
                        lladdr = Some(mac);
                    }
                    _ => {}
                }
            }
            if dst == Some(ip) {
                return Ok(lladdr);
            }
        }
        Ok(None)
    }
}

/// Write one sysctl of the current network namespace, e.g.
/// `("net/ipv4/conf/all/arp_ignore", "1")`. A value already in place is not
/// written again: in a container `/proc/sys` is read-only, and the topology
/// sets these from outside before the node starts.
pub fn sysctl(key: &str, value: &str) -> Result<()> {
    if key.contains("..") || key.starts_with('/') {
        bail!("bad sysctl key {key:?}");
    }
    let path = format!("/proc/sys/{key}");
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value).with_context(|| format!("writing {value} to {path}"))
}

/// Read one sysctl of the current network namespace.
pub fn read_sysctl(key: &str) -> Result<String> {
    let path = format!("/proc/sys/{key}");
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("reading {path}"))?
        .trim()
        .to_string())
}

/// The primary's arrangement: the service address will sit on `lo`, and the
/// node must never answer ARP for it nor use it as an ARP source
/// (`arp_ignore=1`, `arp_announce=2` on `all` and the LAN interface).
pub fn primary_sysctls(lan: &str) -> Result<()> {
    for dev in ["all", lan] {
        sysctl(&format!("net/ipv4/conf/{dev}/arp_ignore"), "1")?;
        sysctl(&format!("net/ipv4/conf/{dev}/arp_announce"), "2")?;
    }
    Ok(())
}

/// The front's arrangement: no IP forwarding (the kernel must drop the
/// service address's frames silently, not forward them or send redirects).
pub fn front_sysctls() -> Result<()> {
    sysctl("net/ipv4/ip_forward", "0")
}
