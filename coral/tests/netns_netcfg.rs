//! Netlink identity operations in a real namespace: interface lookup,
//! service address on and off `lo` and the LAN interface, neighbour entries,
//! and the direct-routing sysctls.

mod common;

use std::net::Ipv4Addr;

use coral::io::netcfg::{self, NetCfg};

fn ip_out(args: &[&str]) -> String {
    String::from_utf8_lossy(&common::sh(args).stdout).into_owned()
}

#[test]
fn netns_addresses_neighbours_and_sysctls() {
    let mut ns = common::Netns::new("ncf");
    let a = ns.add("a");
    let b = ns.add("b");
    ns.link(&a, "eth0", "192.0.2.1/24", &b, "eth0", "192.0.2.2/24");
    let vip = Ipv4Addr::new(192, 0, 2, 100);

    let mac_text = ip_out(&["ip", "-n", &a, "-br", "link", "show", "eth0"]);
    let (eth, lo) = common::in_netns(&a, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let nc = NetCfg::open().unwrap();
            let eth = nc.iface("eth0").await.unwrap();
            let lo = nc.iface("lo").await.unwrap();
            assert!(nc.iface("nonexistent0").await.is_err());
            nc.add_addr(lo.index, vip, 32).await.unwrap();
            nc.add_addr(lo.index, vip, 32).await.unwrap(); // idempotent
            assert!(nc.has_addr(lo.index, vip).await.unwrap());
            assert!(!nc.has_addr(eth.index, vip).await.unwrap());
            nc.set_neighbour(eth.index, Ipv4Addr::new(192, 0, 2, 7), [2, 0, 0, 0, 0, 7])
                .await
                .unwrap();
            netcfg::primary_sysctls("eth0").unwrap();
            netcfg::front_sysctls().unwrap();
            assert_eq!(
                netcfg::read_sysctl("net/ipv4/conf/eth0/arp_ignore").unwrap(),
                "1"
            );
            assert_eq!(
                netcfg::read_sysctl("net/ipv4/conf/all/arp_announce").unwrap(),
                "2"
            );
            assert_eq!(netcfg::read_sysctl("net/ipv4/ip_forward").unwrap(), "0");
            assert!(netcfg::sysctl("../etc/passwd", "x").is_err());
            (eth, lo)
        })
    });
    let mac = eth
        .mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    assert!(mac_text.contains(&mac), "{mac} in {mac_text}");
    assert!(ip_out(&["ip", "-n", &a, "addr", "show", "lo"]).contains("192.0.2.100/32"));
    assert!(ip_out(&["ip", "-n", &a, "neigh", "show", "dev", "eth0"])
        .contains("192.0.2.7 lladdr 02:00:00:00:00:07"));

    // Move the address from lo to the LAN interface: add first, then remove,
    // so it is never non-local (docs/DESIGN.md section 5, backup failure).
    common::in_netns(&a, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let nc = NetCfg::open().unwrap();
            nc.add_addr(eth.index, vip, 24).await.unwrap();
            nc.del_addr(lo.index, vip, 32).await.unwrap();
            nc.del_addr(lo.index, vip, 32).await.unwrap(); // idempotent
            assert!(!nc.has_addr(lo.index, vip).await.unwrap());
            assert!(nc.has_addr(eth.index, vip).await.unwrap());
        })
    });
    assert!(!ip_out(&["ip", "-n", &a, "addr", "show", "lo"]).contains("192.0.2.100"));
    assert!(ip_out(&["ip", "-n", &a, "addr", "show", "eth0"]).contains("192.0.2.100/24"));
    // The address answers from the other namespace now.
    common::sh(&[
        "ip",
        "netns",
        "exec",
        &b,
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "192.0.2.100",
    ]);
}
