//! Detection that load does not fool (docs/DESIGN.md section 4): a pair at
//! 10 ms x 3 heartbeats, with a witness, carries a minute of 1 MB replies
//! (16 closed-loop keep-alive clients, two per each of 8 client slots) in
//! real namespaces, with no fault at all. Before heartbeats had a thread of
//! their own, both nodes declared each other failed as such downloads
//! started (the log channel moves every reply byte to the backup).
//!
//! The machine itself can stop a node: this VM's host preempts a busy
//! virtual CPU for up to 100 ms (a `SCHED_FIFO` 50 thread sleeping 1 ms at
//! a time saw gaps of 15, 20 and 100 ms in 40 s beside two busy loops, none
//! when idle; docs/DESIGN.md 4). A node stopped longer than the failure
//! timeout is, by the detector's definition, failed. So the test runs one
//! such probe thread on each CPU and holds the detector to its promise
//! while the host ran the nodes: a detection is accepted only within a
//! 300 ms of a stop of a CPU of at least (K - 1) x H, and then the
//! survivor must still serve every client without an error.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Stops of a CPU seen by a probe: (unix ns when it ended, its length).
type Stops = Arc<Mutex<Vec<(u64, Duration)>>>;

/// One `SCHED_FIFO` 50 thread per CPU, each pinned, sleeping 1 ms at a
/// time and recording every wake-up later than `least`, until `stop`.
fn probe_cpus(least: Duration, stop: Arc<AtomicBool>) -> (Stops, Vec<std::thread::JoinHandle<()>>) {
    let stops: Stops = Arc::default();
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = (0..cpus)
        .map(|cpu| {
            let (stops, stop) = (stops.clone(), stop.clone());
            std::thread::spawn(move || {
                // SAFETY: plain calls on this thread with live arguments.
                unsafe {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
                    let p = libc::sched_param { sched_priority: 50 };
                    libc::sched_setscheduler(0, libc::SCHED_FIFO, &p);
                }
                let mut prev = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                    let now = Instant::now();
                    let gap = now - prev;
                    prev = now;
                    if gap >= least {
                        let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
                        stops.lock().unwrap().push((at.as_nanos() as u64, gap));
                    }
                }
            })
        })
        .collect();
    (stops, threads)
}

/// The unix-ns times of the `peer-failed` events in `events`.
fn detections(events: &str) -> Vec<u64> {
    events
        .lines()
        .filter(|l| l.contains(",peer-failed,"))
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect()
}

use common::duplex::{sibling, Duplex, VIP};

/// The value of `key=` in the last `counters` row of `events`.
fn last_counter(events: &str, key: &str) -> Option<u64> {
    let row = events.lines().rev().find(|l| l.contains(",counters,"))?;
    let tok = row
        .split([' ', ','])
        .find_map(|t| t.strip_prefix(&format!("{key}=")))?;
    tok.trim_matches('"').parse().ok()
}

#[test]
fn netns_a_minute_of_1mb_replies_at_10ms_heartbeats_detects_nothing() {
    let mut d = Duplex::start("hbl", 10, 3);
    let stop = Arc::new(AtomicBool::new(false));
    // (K - 1) x H: a stop that long leaves the peer one heartbeat short.
    let (stops, probes) = probe_cpus(Duration::from_millis(20), stop.clone());
    let out_dir = d.dir.path().join("load");
    let out = Command::new("ip")
        .args(["netns", "exec", &d.c])
        .arg(sibling("coral-load"))
        .args(["--url", &format!("http://{VIP}/cgi-bin/webstone")])
        .args(["--clients", "16", "--size", "1048576"])
        .args(["--duration-s", "60", "--warmup-s", "0", "--timeout-s", "30"])
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    for p in probes {
        p.join().unwrap();
    }
    let stops = stops.lock().unwrap().clone();
    let ctx = d.logs();
    assert!(
        out.status.success(),
        "coral-load: {}\n{ctx}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("CPU stops of 20 ms or more seen by the probes: {stops:?}");
    let mut excused = false;
    for h in ["server-a", "server-b"] {
        let ev = d.events(h);
        for at in detections(&ev) {
            let near = stops.iter().any(|(end, _)| end.abs_diff(at) < 300_000_000);
            assert!(
                near,
                "{h} detected a failure at {at} with no stop of a CPU near it \
                 (stops: {stops:?})\n{ctx}"
            );
            excused = true;
        }
        eprintln!(
            "{h}: lease_lapses={:?} hb_delay_p50_us={:?} p99={:?} max={:?} hb_seq_gap={:?} hb_own_stalls={:?}",
            last_counter(&ev, "lease_lapses"),
            last_counter(&ev, "hb_delay_p50_us"),
            last_counter(&ev, "hb_delay_p99_us"),
            last_counter(&ev, "hb_delay_max_us"),
            last_counter(&ev, "hb_seq_gap"),
            last_counter(&ev, "hb_own_stalls"),
        );
    }
    if excused {
        eprintln!(
            "the host stopped a CPU past the failure timeout: a node was failed by definition"
        );
    } else {
        for h in ["server-a", "server-b"] {
            assert!(!d.events(h).contains(",fenced,"), "{h} fenced\n{ctx}");
        }
        for (i, n) in d.nodes.iter_mut().enumerate() {
            assert!(
                n.try_wait().unwrap().is_none(),
                "node {i} exited while both were healthy\n{ctx}"
            );
        }
    }
    let s: serde_json::Value = common::duplex::load_summary(&out_dir);
    assert_eq!(s["errors"].as_u64(), Some(0), "{s}\n{ctx}");
    assert_eq!(s["digest_mismatches"].as_u64(), Some(0), "{s}");
    assert!(s["ok"].as_u64().unwrap_or(0) > 0, "{s}");
    eprintln!(
        "ok={} max_stall_ms={} throughput_rps={}",
        s["ok"], s["max_stall_ms"], s["throughput_rps"]
    );
}
