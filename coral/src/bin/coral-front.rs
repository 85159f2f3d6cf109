//! `coral-front`: one front alone, for measuring and for tests.
//!
//! Runs the backup's front for some service addresses on a LAN interface,
//! either kind (`--front ebpf`: the tc ingress program and its ring;
//! `--front packet`: the node's data path, `coral::io::front`, on its
//! AF_PACKET source), and records
//! every client frame into the core's `ConnTable` exactly as a node's front
//! does. No log channel, no heartbeats, no takeover: just record and
//! forward. Prints `ready` (with `prog_id=N` for the eBPF front) once the front is attached; on SIGTERM/SIGINT or
//! after `--duration-s` it prints one JSON line with the frames handled,
//! the process's CPU time since `ready` and, for the eBPF front, the
//! program's own run time from the kernel's BPF statistics.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use coral::clock::Clock;
use coral::io::ebpf_front::{EbpfFront, EbpfFrontConfig, Wakeup};
use coral_core::{ConnTable, TableConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FrontKind {
    /// The tc ingress BPF program with its ring buffer.
    Ebpf,
    /// The AF_PACKET engine.
    Packet,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum WakeupArg {
    /// `BPF_RB_NO_WAKEUP`; poll every --poll-ms.
    Never,
    /// The ring wakes the consumer when it has caught up.
    WhenIdle,
}

/// One front alone (see the module documentation).
#[derive(Parser, Debug)]
#[command(name = "coral-front", version, about)]
struct Args {
    /// Which front.
    #[arg(long, value_enum, default_value = "ebpf")]
    front: FrontKind,
    /// LAN interface (in this process's namespace).
    #[arg(long)]
    lan: String,
    /// A service address to front (repeatable).
    #[arg(long, required = true)]
    vip: Vec<Ipv4Addr>,
    /// The primary's MAC (aa:bb:cc:dd:ee:ff).
    #[arg(long)]
    primary_mac: String,
    /// eBPF: ring size in bytes (power of two).
    #[arg(long, default_value_t = coral::io::ebpf_front::DEFAULT_RING_BYTES)]
    ring_bytes: u32,
    /// eBPF: how the ring wakes this process.
    #[arg(long, value_enum, default_value = "never")]
    wakeup: WakeupArg,
    /// eBPF: poll interval (ms) when the ring does not wake us.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    /// eBPF: count the program's own run time (BPF_ENABLE_STATS).
    #[arg(long)]
    bpf_stats: bool,
    /// Stop after this many seconds (default: at SIGTERM/SIGINT).
    #[arg(long)]
    duration_s: Option<f64>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn parse_mac(s: &str) -> anyhow::Result<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    anyhow::ensure!(parts.len() == 6, "MAC {s:?}: want six hex bytes");
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        m[i] = u8::from_str_radix(p, 16).map_err(|e| anyhow::anyhow!("MAC {s:?}: {e}"))?;
    }
    Ok(m)
}

fn own_mac(lan: &str) -> anyhow::Result<[u8; 6]> {
    let p = format!("/sys/class/net/{lan}/address");
    let s = std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("{p}: {e}"))?;
    parse_mac(s.trim())
}

/// This process's CPU time (user + system), all threads.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills a zeroed, owned struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("coral-front: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    // SAFETY: installing an async-signal-safe handler (one atomic store).
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let own = own_mac(&args.lan)?;
    let primary = parse_mac(&args.primary_mac)?;
    let clock = Clock::new();
    let mut table = ConnTable::new(TableConfig::default());
    let until = args
        .duration_s
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let done = || STOP.load(Ordering::SeqCst) || until.is_some_and(|u| Instant::now() >= u);
    let report = match args.front {
        FrontKind::Ebpf => run_ebpf(&args, (own, primary), clock, &mut table, done)?,
        FrontKind::Packet => run_packet(&args, (own, primary), clock, done)?,
    };
    println!("{report}");
    Ok(())
}

/// The eBPF front until `done`: drain its ring into `table`; the report
/// line adds the program's own counters and run time.
fn run_ebpf(
    args: &Args,
    (own, primary): ([u8; 6], [u8; 6]),
    clock: Clock,
    table: &mut ConnTable,
    done: impl Fn() -> bool,
) -> anyhow::Result<String> {
    let mut front = EbpfFront::load(&EbpfFrontConfig {
        lan: args.lan.clone(),
        own_mac: own,
        primary_mac: primary,
        vips: args.vip.clone(),
        ring_bytes: args.ring_bytes,
        wakeup: match args.wakeup {
            WakeupArg::Never => Wakeup::Never,
            WakeupArg::WhenIdle => Wakeup::WhenIdle,
        },
    })?;
    if args.bpf_stats {
        front.enable_run_stats()?;
    }
    let run0 = front.run_stats()?;
    println!("ready prog_id={}", front.program_id()?);
    let cpu0 = cpu_time();
    let (mut frames, mut malformed, mut batches) = (0u64, 0u64, 0u64);
    let poll = Duration::from_millis(args.poll_ms);
    let t = table;
    while !done() {
        front.wait(poll)?;
        let now = clock.now();
        let n = front.drain(usize::MAX, |_, frame| {
            frames += 1;
            if t.on_frame(frame, now).is_err() {
                malformed += 1;
            }
        });
        batches += u64::from(n > 0);
    }
    let cpu = cpu_time() - cpu0;
    let run = front.run_stats()?;
    let c = front.counters()?;
    Ok(format!(
        "{{\"front\":\"ebpf\",\"frames\":{frames},\"malformed\":{malformed},\"batches\":{batches},\
         \"forwarded\":{},\"recorded\":{},\"ring_full\":{},\"seen\":{},\"cpu_ns\":{},\
         \"prog_run_ns\":{},\"prog_runs\":{},\"conns\":{}}}",
        c.forwarded,
        c.recorded,
        c.ring_full,
        c.seen,
        cpu.as_nanos(),
        (run.run_time - run0.run_time).as_nanos(),
        run.run_count - run0.run_count,
        t.len()
    ))
}

/// The packet front (the node's data path on AF_PACKET) until `done`.
fn run_packet(
    args: &Args,
    (own, primary): ([u8; 6], [u8; 6]),
    clock: Clock,
    done: impl Fn() -> bool,
) -> anyhow::Result<String> {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let front = coral::io::front::Front::start(
        coral::io::front::FrontConfig {
            own_mac: own,
            primary_mac: primary,
            vips: args.vip.clone(),
            mode: coral::io::front::Mode::Forward,
        },
        coral::io::front::Source::packet(&args.lan, &args.vip)?,
        clock,
        tx,
    )?;
    println!("ready");
    let cpu0 = cpu_time();
    while !done() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu = cpu_time() - cpu0;
    front.retire();
    let s = &front.stats;
    Ok(format!(
        "{{\"front\":\"packet\",\"frames\":{},\"forwarded\":{},\"dropped\":{},\"malformed\":{},\
         \"cpu_ns\":{},\"prog_run_ns\":0,\"prog_runs\":0,\"conns\":{}}}",
        s.frames.load(Ordering::Relaxed),
        s.forwarded.load(Ordering::Relaxed),
        s.dropped.load(Ordering::Relaxed),
        s.malformed.load(Ordering::Relaxed),
        cpu.as_nanos(),
        s.conns.load(Ordering::Relaxed),
    ))
}
