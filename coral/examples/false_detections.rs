//! Measures (not a test): how often a CoRAL pair with a witness falsely
//! declares a live peer failed at 1, 5 and 10 ms heartbeats under full load
//! on this machine, and what asking the witness costs on the failover path.
//!
//! For each heartbeat interval H, pairs are started in namespaces (the
//! tests' fixture: real `coral node` and `coral witness` binaries) and
//! loaded by coral-load with 16 closed-loop keep-alive clients; nothing is
//! injected. A `peer-failed` event on either node is a false detection
//! (the witness then lets one node win and the other fences itself); the
//! pair is then restarted until the time budget per H is used up (at most
//! 5 pairs per H).
//!
//! Run as root after `cargo build --workspace --examples`:
//! `target/debug/examples/false_detections [SECONDS_PER_H] [MISSES] [CLIENTS]`
//! (defaults 30, 3, 16). Prints one line per H and the witness round
//! trips. A detection "after 0.00 s" happened before the load started
//! (while the pair was coming up).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::duplex::{sibling, Duplex, VIP};

fn field(line: &str, key: &str) -> Option<f64> {
    line.split([' ', ',', '"'])
        .find_map(|kv| kv.strip_prefix(key))
        .and_then(|v| v.parse().ok())
}

fn t_ns(line: &str) -> u64 {
    line.split(',')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let budget = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(30u64);
    let misses = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(3u32);
    let clients = args.get(3).cloned().unwrap_or_else(|| "16".into());
    let mut rtts = Vec::new();
    let mut grant_to_voice = Vec::new();
    for h in [1u64, 5, 10] {
        let (mut detections, mut pair_s, mut pairs) = (0u32, 0f64, 0u32);
        // At most 5 pairs per H: a pair that fails at once costs a restart.
        while pair_s < budget as f64 && pairs < 5 {
            let d = Duplex::start(&format!("fd{h}"), h, misses);
            pairs += 1;
            let left = (budget as f64 - pair_s).ceil().max(1.0) as u64;
            let mut load = Command::new("ip")
                .args(["netns", "exec", &d.c])
                .arg(sibling("coral-load"))
                .args(["--url", &format!("http://{VIP}/cgi-bin/webstone")])
                .args(["--clients", &clients, "--duration-s", &left.to_string()])
                .args(["--timeout-s", "20", "--out"])
                .arg(d.dir.path().join("load"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("coral-load");
            let t0 = Instant::now();
            let mut detected = false;
            while t0.elapsed() < Duration::from_secs(left) {
                if d.events("server-a").contains(",peer-failed,")
                    || d.events("server-b").contains(",peer-failed,")
                {
                    detected = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            pair_s += t0.elapsed().as_secs_f64();
            eprintln!(
                "H={h}ms pair {pairs}: {} after {:.2} s",
                if detected { "false detection" } else { "none" },
                t0.elapsed().as_secs_f64()
            );
            if detected {
                detections += 1;
                // Let the witness decide and the winner speak.
                std::thread::sleep(Duration::from_millis(1500));
                for host in ["server-a", "server-b"] {
                    let ev = d.events(host);
                    // The first grant answers the first request; later
                    // ones answer retries (regrants).
                    let Some(g) = ev.lines().find(|l| l.contains(",witness-grant,")) else {
                        continue;
                    };
                    if let Some(r) = field(g, "rtt_ms=").filter(|r| r.is_finite()) {
                        rtts.push(r);
                    }
                    let voice = ev
                        .lines()
                        .find(|x| x.contains(",takeover,") || x.contains(",simplex-address,"));
                    if let Some(v) = voice {
                        grant_to_voice.push((t_ns(v) as f64 - t_ns(g) as f64) / 1e6);
                    }
                }
            }
            let _ = Command::new("kill")
                .args(["-INT", &load.id().to_string()])
                .status();
            let _ = load.wait();
            drop(d);
        }
        println!(
            "H={h}ms K={misses}: {detections} false detection(s) in {pair_s:.1} s of loaded pair time over {pairs} pair(s): {:.2} per minute",
            detections as f64 * 60.0 / pair_s
        );
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        if v.is_empty() {
            "none".to_string()
        } else {
            format!(
                "n={} min={:.3} median={:.3} max={:.3} ms",
                v.len(),
                v[0],
                v[v.len() / 2],
                v[v.len() - 1]
            )
        }
    };
    println!(
        "witness round trip (first request to grant): {}",
        stats(&mut rtts)
    );
    println!(
        "grant to voice (takeover or simplex address recorded): {}",
        stats(&mut grant_to_voice)
    );
}
