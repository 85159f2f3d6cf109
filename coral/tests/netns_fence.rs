//! The crash fence and the kernel-enforced lease, in real namespaces
//! (docs/DESIGN.md section 4): a SIGKILLed server process sends the client no FIN
//! and no RST unless it marked the socket for an intentional close, and no
//! segment leaves a service address without a lease.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use coral::io::nft::{self, FenceConfig, Nft};

const MARK: u32 = 0xc0a1;

struct Pair {
    _ns: common::Netns,
    client: String,
    server: String,
    cfg: FenceConfig,
}

fn setup(tag: &str) -> Pair {
    let mut ns = common::Netns::new(tag);
    let client = ns.add("c");
    let server = ns.add("s");
    ns.link(
        &client,
        "eth0",
        "192.0.2.1/24",
        &server,
        "eth0",
        "192.0.2.2/24",
    );
    let cfg = FenceConfig {
        table: "coral_fence".into(),
        lan: "eth0".into(),
        close_mark: MARK,
    };
    let script = format!(
        "{}{}",
        nft::fence_ruleset(&cfg),
        nft::add_vip(&cfg, "192.0.2.2".parse().unwrap())
    );
    run_nft(&server, script);
    Pair {
        _ns: ns,
        client,
        server,
        cfg,
    }
}

fn run_nft(ns: &str, script: String) {
    common::in_netns(ns, move || {
        Nft::open()
            .expect("libnftables")
            .run(&script)
            .expect("nft script")
    });
}

fn python_server(ns: &str, mark_before_close: bool) -> std::process::Child {
    let close = if mark_before_close {
        format!(
            "c.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, {MARK}); c.shutdown(socket.SHUT_WR)"
        )
    } else {
        String::new()
    };
    let code = format!(
        "import socket,sys,time\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('192.0.2.2',7000));s.listen();print('ready',flush=True)\nc,_=s.accept()\nc.sendall(b'hi')\n{close}\ntime.sleep(30)\n"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", &code])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut ready)
        .unwrap();
    child
}

fn connect_from(ns: &str) -> TcpStream {
    let s = common::in_netns(ns, || {
        TcpStream::connect("192.0.2.2:7000").expect("connect")
    });
    s.set_read_timeout(Some(Duration::from_millis(600)))
        .unwrap();
    s
}

fn read_some(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut b = [0u8; 64];
    let n = s.read(&mut b)?;
    Ok(b[..n].to_vec())
}

fn timed_out(r: &std::io::Result<Vec<u8>>) -> bool {
    matches!(r, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

#[test]
fn netns_crash_fence_keeps_fin_and_rst_off_the_wire() {
    let p = setup("fen");
    run_nft(
        &p.server,
        nft::permanent_lease(&p.cfg, "192.0.2.2".parse().unwrap()),
    );
    let mut server = python_server(&p.server, false);
    let mut c = connect_from(&p.client);
    assert_eq!(read_some(&mut c).unwrap(), b"hi");
    server.kill().unwrap(); // SIGKILL of `ip netns exec` execs python: same pid
    server.wait().unwrap();
    let r = read_some(&mut c);
    assert!(
        timed_out(&r),
        "after SIGKILL the client must see nothing, got {r:?}"
    );
    // Data to the dead socket would draw an RST; the fence drops it too.
    c.write_all(b"more").unwrap();
    let r = read_some(&mut c);
    assert!(timed_out(&r), "no RST may reach the client, got {r:?}");
}

#[test]
fn netns_marked_close_gets_its_fin_out() {
    let p = setup("fmk");
    run_nft(
        &p.server,
        nft::permanent_lease(&p.cfg, "192.0.2.2".parse().unwrap()),
    );
    let mut server = python_server(&p.server, true);
    let mut c = connect_from(&p.client);
    let mut got = Vec::new();
    c.read_to_end(&mut got)
        .expect("the marked FIN arrives as EOF");
    assert_eq!(got, b"hi");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn netns_no_lease_no_segments() {
    let p = setup("fls");
    let vip = "192.0.2.2".parse().unwrap();
    run_nft(&p.server, nft::permanent_lease(&p.cfg, vip));
    let listener = common::in_netns(&p.server, || TcpListener::bind("192.0.2.2:7000").unwrap());
    let mut c = connect_from(&p.client);
    let (mut s, _) = listener.accept().unwrap();
    s.write_all(b"one").unwrap();
    assert_eq!(read_some(&mut c).unwrap(), b"one");

    // A short lease that is not refreshed lapses: nothing leaves afterwards.
    run_nft(
        &p.server,
        nft::refresh_lease(&p.cfg, vip, Duration::from_millis(40)),
    );
    std::thread::sleep(Duration::from_millis(120));
    s.write_all(b"two").unwrap();
    let r = read_some(&mut c);
    assert!(
        timed_out(&r),
        "a lapsed lease lets no segment out, got {r:?}"
    );

    // A fresh lease lets the retransmission through.
    run_nft(
        &p.server,
        nft::refresh_lease(&p.cfg, vip, Duration::from_secs(10)),
    );
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(read_some(&mut c).unwrap(), b"two");

    // Revoked: silent again.
    run_nft(&p.server, nft::revoke_lease(&p.cfg, vip));
    s.write_all(b"three").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(600)))
        .unwrap();
    assert!(timed_out(&read_some(&mut c)));
    // The table comes out cleanly.
    run_nft(&p.server, nft::remove_table(&p.cfg));
}

/// The node's leases in this thread's namespace: a 400 ms timeout, 4 ms
/// of margin.
fn leases_here(cfg: FenceConfig) -> coral::io::leases::Leases {
    coral::io::leases::Leases::new(
        Nft::open().unwrap(),
        cfg,
        Duration::from_millis(400),
        Duration::from_millis(4),
    )
    .expect("leases")
}

/// The lease's netlink path (one nfnetlink batch, no libnftables): the
/// element a refresh writes is the one the kernel enforces, with the
/// expiry it asked for; left alone it lapses and segments stop; a refresh
/// lets the retransmission through again; a grant makes it permanent and
/// a revocation silences the address at once.
#[test]
fn netns_a_lease_changed_over_netlink_is_the_one_the_kernel_enforces() {
    let p = setup("flr");
    let vip: std::net::Ipv4Addr = "192.0.2.2".parse().unwrap();
    let listener = common::in_netns(&p.server, || TcpListener::bind("192.0.2.2:7000").unwrap());
    let cfg = p.cfg.clone();
    // The node's one clock and its leases, kept on one thread in the
    // server's namespace: (refreshes, errors, the set as nft lists it).
    let refresh = move |until_ms: u64| {
        let cfg = cfg.clone();
        move || {
            let clock = coral::clock::Clock::new();
            let leases = leases_here(cfg);
            leases.start_refreshed(vip).unwrap();
            leases.extend_to(coral_core::Instant(until_ms * 1_000_000), &clock);
            let listed = leases.run("list set netdev coral_fence lease\n").unwrap();
            (
                leases.refreshes.load(std::sync::atomic::Ordering::Relaxed),
                leases
                    .refresh_errors
                    .load(std::sync::atomic::Ordering::Relaxed),
                listed,
            )
        }
    };
    // A long lease: the element carries the expiry the refresh asked for
    // (200 ms, rounded up to whole 4 ms jiffies within the 4 ms margin).
    let (ok, errors, listed) = common::in_netns(&p.server, refresh(200));
    assert_eq!((ok, errors), (1, 0), "one refresh, no error");
    assert!(
        listed.contains("192.0.2.2 timeout 400ms expires"),
        "{listed}"
    );
    let expires: u64 = listed
        .split("expires ")
        .nth(1)
        .and_then(|r| r.split("ms").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("an expiry in {listed}"));
    assert!(
        (150..=204).contains(&expires),
        "expires {expires} ms: {listed}"
    );
    let mut c = connect_from(&p.client);
    let (mut s, _) = listener.accept().unwrap();
    s.write_all(b"one").unwrap();
    assert_eq!(read_some(&mut c).unwrap(), b"one");

    // Lapsed (not refreshed past its expiry): nothing leaves.
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(b"two").unwrap();
    assert!(timed_out(&read_some(&mut c)), "a lapsed lease is silent");

    // Refreshed again over netlink: the retransmission gets out.
    let (ok, errors, _) = common::in_netns(&p.server, refresh(5_000));
    assert_eq!((ok, errors), (1, 0));
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(read_some(&mut c).unwrap(), b"two");

    // A grant over netlink: the element loses its timeout and outlives
    // the refresh's; revoked over netlink: silent at once.
    let cfg = p.cfg.clone();
    let change = move |revoke: bool| {
        let cfg = cfg.clone();
        move || {
            let leases = leases_here(cfg);
            if revoke {
                leases.revoke_all(&[vip]).unwrap();
            } else {
                leases.start_refreshed(vip).unwrap();
                leases.make_permanent(vip).unwrap();
            }
            leases.run("list set netdev coral_fence lease\n").unwrap()
        }
    };
    let listed = common::in_netns(&p.server, change(false));
    assert!(
        listed.contains("elements = { 192.0.2.2 }"),
        "permanent: {listed}"
    );
    std::thread::sleep(Duration::from_millis(500));
    s.write_all(b"three").unwrap();
    assert_eq!(read_some(&mut c).unwrap(), b"three");
    let listed = common::in_netns(&p.server, change(true));
    assert!(!listed.contains("192.0.2.2"), "revoked: {listed}");
    s.write_all(b"four").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(600)))
        .unwrap();
    assert!(timed_out(&read_some(&mut c)), "a revoked lease is silent");
    run_nft(&p.server, nft::remove_table(&p.cfg));
}
