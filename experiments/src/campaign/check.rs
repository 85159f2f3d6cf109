//! The campaign's checker: from what a trial left behind (every request
//! record, the switch capture if the topology has one, the nodes' request
//! lines) it decides whether the trial met the standard: no request lost,
//! no error of any kind (a corrupted reply is one: `digest_mismatch`), no
//! reconnect, and no split brain: no service address claimed in ARP by
//! alternating MACs or answered in TCP from a MAC it had left, and no
//! connection with segments from two nodes after its switch-over. Pure:
//! reads nothing, so it is tested on synthetic records and captures.

use serde::Serialize;
use std::collections::BTreeMap;
use workload::records::RequestRecord;
use workload::summary::{self, SummaryOptions};

/// What one trial left behind.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// Every request the load driver sent.
    pub records: &'a [RequestRecord],
    /// The driver's measured window.
    pub window: SummaryOptions,
    /// `tcpdump -nn -e` text of the switch (ARP, and TCP from the service
    /// addresses), if the topology has a switch to capture on.
    pub capture: Option<&'a str>,
    /// The service addresses.
    pub vips: &'a [&'a str],
    /// When a join was first accepted (unix ns; a fenced node rejoining its
    /// peer): the capture is judged up to then. After it the joined node
    /// fronts the addresses and answers ARP for them, a new voice by
    /// design, and any later race has a switch-over of its own.
    pub voice_until: Option<u64>,
    /// Request id -> the nodes that executed it (their request lines), if
    /// the nodes logged them.
    pub executions: Option<&'a BTreeMap<String, Vec<String>>>,
}

/// The checker's decision on one trial, with its counts.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Verdict {
    /// Requests sent.
    pub requests: u64,
    /// Verified 200 replies.
    pub ok: u64,
    /// Sent, never answered, no error.
    pub lost: u64,
    /// Requests that failed, by error kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Connections opened again after an error.
    pub reconnects: u64,
    /// Replies whose body did not match their digest.
    pub digest_mismatches: u64,
    /// Requests executed by more than one node (None: not logged). Not a
    /// failure: a takeover re-executes the requests whose reply was not yet
    /// logged (docs/DESIGN.md); counted to show how many.
    pub duplicate_executions: Option<u64>,
    /// Longest gap between two verified replies of one client, ms.
    pub stall_ms: f64,
    /// Whether a switch capture was checked.
    pub captured: bool,
    /// What the capture shows against one voice per address and connection.
    pub split_brain: Vec<String>,
    /// A node's detection before the fault ([`early_detection`]): not a
    /// failure by itself, named in the trial's detail.
    pub early_detection: Option<String>,
}

impl Verdict {
    /// Requests that failed with an error.
    pub fn errors(&self) -> u64 {
        self.errors_by_kind.values().sum()
    }

    /// Why the trial missed the standard (empty: it met it).
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.ok == 0 {
            f.push("no verified reply at all".to_string());
        }
        for (n, what) in [
            (self.lost, "lost"),
            (self.errors(), "errors"),
            (self.reconnects, "reconnects"),
            (self.digest_mismatches, "digest mismatches"),
        ] {
            if n > 0 {
                f.push(format!("{n} {what}"));
            }
        }
        f.extend(self.split_brain.iter().map(|s| format!("split brain: {s}")));
        f
    }

    /// `pass` or `FAIL`.
    pub fn label(&self) -> &'static str {
        if self.failures().is_empty() {
            "pass"
        } else {
            "FAIL"
        }
    }

    /// Errors by kind as one CSV cell: `reset=2;eof=1` (empty: none).
    pub fn errors_cell(&self) -> String {
        self.errors_by_kind
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// Decides one trial.
pub fn check(e: &Evidence) -> Verdict {
    let s = summary::compute(e.records, &e.window);
    let mut v = Verdict {
        requests: s.requests,
        ok: s.ok,
        lost: s.requests_lost,
        errors_by_kind: s.errors_by_kind,
        reconnects: s.reconnects,
        digest_mismatches: s.digest_mismatches,
        duplicate_executions: e
            .executions
            .map(|x| x.values().filter(|n| n.len() > 1).count() as u64),
        stall_ms: s.max_stall_ms,
        captured: e.capture.is_some(),
        split_brain: Vec::new(),
        early_detection: None,
    };
    if let Some(text) = e.capture {
        for vip in e.vips {
            let v_ = voices_before(text, vip, e.voice_until.unwrap_or(u64::MAX));
            v.split_brain.extend(v_.split_brain(vip));
        }
    }
    v
}

/// What the switch saw speak for one service address, in order.
#[derive(Debug, Default, PartialEq)]
pub struct Voices {
    /// Source MACs of TCP segments from the address, as runs (mac, count).
    pub tcp: Vec<(String, usize)>,
    /// MACs that claimed the address in ARP, as runs.
    pub arp: Vec<(String, usize)>,
    /// Per connection (client address and port): runs of source MACs.
    pub conns: BTreeMap<String, Vec<String>>,
}

impl Voices {
    /// More than one switch-over is a second voice: the address (or a
    /// connection) went back to a MAC it had left, so two nodes spoke for it.
    pub fn split_brain(&self, vip: &str) -> Vec<String> {
        let macs = |runs: &[(String, usize)]| {
            runs.iter()
                .map(|(m, n)| format!("{m}x{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut out = Vec::new();
        if self.tcp.len() > 2 {
            out.push(format!(
                "TCP from {vip} by alternating MACs: {}",
                macs(&self.tcp)
            ));
        }
        if self.arp.len() > 2 {
            out.push(format!(
                "{vip} claimed in ARP by alternating MACs: {}",
                macs(&self.arp)
            ));
        }
        for (c, runs) in &self.conns {
            if runs.len() > 2 {
                out.push(format!(
                    "connection {vip} <-> {c} got segments from two nodes after its switch-over: {}",
                    runs.join(" ")
                ));
            }
        }
        out
    }
}

fn push_run(runs: &mut Vec<(String, usize)>, mac: &str) {
    match runs.last_mut() {
        Some((m, n)) if m == mac => *n += 1,
        _ => runs.push((mac.to_string(), 1)),
    }
}

/// Parses `tcpdump -nn -e` lines for `vip`: ARP claims (a reply `VIP is-at
/// MAC`, or a gratuitous request `tell VIP`) by the MAC they name, and TCP
/// segments from `vip` by their source MAC.
///
/// A reply sent to a MAC that announced `vip` itself (gratuitous ARP) is
/// not a claim: it answers the announcement and reaches only the announcer,
/// the address's owner, which ignores it; no router or client cache sees
/// it. A front still answering for the address when its new owner announces
/// itself sends one such reply (unicast, to the new owner).
pub fn voices(text: &str, vip: &str) -> Voices {
    voices_before(text, vip, u64::MAX)
}

/// [`voices`] of the lines captured before `until_ns` (unix ns, read from
/// `tcpdump -tt`'s first field; a line without one counts).
pub fn voices_before(text: &str, vip: &str, until_ns: u64) -> Voices {
    let mut v = Voices::default();
    let is_at = format!("Reply {vip} is-at ");
    let tell = format!("tell {vip},");
    let from = format!("{vip}.");
    let mut announcers: Vec<&str> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        if f[0]
            .parse::<f64>()
            .is_ok_and(|t| t * 1e9 >= until_ns as f64)
        {
            break;
        }
        let (src, dst) = (f[1], f[3].trim_end_matches(','));
        if line.contains("ethertype ARP") {
            if let Some(i) = line.find(&is_at) {
                if announcers.contains(&dst) {
                    continue;
                }
                let mac = line[i + is_at.len()..]
                    .split([',', ' '])
                    .next()
                    .unwrap_or(src);
                push_run(&mut v.arp, mac);
            } else if line.contains(&tell) {
                announcers.push(src);
                push_run(&mut v.arp, src);
            }
        } else if let Some(i) = f.iter().position(|w| w.starts_with(&from)) {
            if f.get(i + 1) == Some(&">") {
                push_run(&mut v.tcp, src);
                let client = f.get(i + 2).unwrap_or(&"?").trim_end_matches(':');
                let runs = v.conns.entry(client.to_string()).or_default();
                if runs.last().map(String::as_str) != Some(src) {
                    runs.push(src.to_string());
                }
            }
        }
    }
    v
}

/// The first detection before the fault: a node's `peer-failed` (or a
/// `fenced`) recorded before `fault_unix_ns`, as `HOST EVENT at S s before
/// the fault`. Such a trial met two faults, the planned one and a false
/// detection (a peer starved of CPU, say); its row says so. None when the
/// nodes saw nothing before the fault.
pub fn early_detection(
    events: &[faultinject::events::Event],
    fault_unix_ns: u64,
) -> Option<String> {
    events
        .iter()
        .filter(|e| e.t_unix_ns < fault_unix_ns)
        .find(|e| e.source == "coral" && (e.event == "peer-failed" || e.event == "fenced"))
        .map(|e| {
            format!(
                "false detection: {} {} {:.3} s before the fault ({})",
                e.host,
                e.event,
                (fault_unix_ns - e.t_unix_ns) as f64 / 1e9,
                e.detail
            )
        })
}

/// When the first join was accepted (a `join-accepted` event of any node).
pub fn first_join(events: &[faultinject::events::Event]) -> Option<u64> {
    events
        .iter()
        .filter(|e| e.source == "coral" && e.event == "join-accepted")
        .map(|e| e.t_unix_ns)
        .min()
}

/// Request id -> the hosts that executed it, from each host's request lines
/// (`request id=ID peer=… status=…`, what `--log-requests` prints).
pub fn executions(logs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (host, text) in logs {
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("request id=") else {
                continue;
            };
            let id = rest.split(' ').next().unwrap_or("");
            if !id.is_empty() && id != "-" {
                out.entry(id.to_string())
                    .or_default()
                    .push(host.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use workload::records::ErrorKind;

    const A: &str = "02:00:c0:00:02:0b";
    const B: &str = "02:00:c0:00:02:0c";
    const R: &str = "02:00:c0:00:02:01";
    const VIP: &str = "192.0.2.100";

    fn rec(client: u32, seq: u64, end_ms: u64) -> RequestRecord {
        RequestRecord {
            client,
            seq,
            url: format!("http://{VIP}/cgi-bin/webstone?size=1024"),
            local_port: 40000 + client as u16,
            new_connection: seq == 0,
            start_unix_ns: (end_ms - 1) * 1_000_000,
            end_unix_ns: end_ms * 1_000_000,
            latency_us: 1000,
            status: 200,
            bytes: 1024,
            digest_ok: true,
            served_by: "server-a".into(),
            error_kind: None,
            lost: false,
        }
    }

    fn window() -> SummaryOptions {
        SummaryOptions {
            run_start_unix_ns: 0,
            warmup_end_unix_ns: 0,
            run_end_unix_ns: 1_000_000_000,
            fault_at_unix_ns: Some(500_000_000),
        }
    }

    /// Two clients, a reply every 10 ms, a 300 ms gap around the fault.
    fn clean() -> Vec<RequestRecord> {
        let mut v = Vec::new();
        for c in 0..2 {
            let mut seq = 0;
            for t in (10..=1000).step_by(10) {
                if (500..800).contains(&t) {
                    continue;
                }
                v.push(rec(c, seq, t));
                seq += 1;
            }
        }
        v
    }

    fn tcp(mac: &str, port: u16) -> String {
        format!(
            "12:00:00.000001 {mac} > {R}, ethertype IPv4 (0x0800), length 66: {VIP}.80 > 198.51.100.10.{port}: Flags [.], ack 1, win 502, length 0"
        )
    }

    fn arp_reply(mac: &str) -> String {
        format!("12:00:00.000002 {mac} > {R}, ethertype ARP (0x0806), length 42: Reply {VIP} is-at {mac}, length 28")
    }

    const BCAST: &str = "ff:ff:ff:ff:ff:ff";

    fn arp_reply_to(mac: &str, to: &str) -> String {
        format!("12:00:00.000002 {mac} > {to}, ethertype ARP (0x0806), length 42: Reply {VIP} is-at {mac}, length 28")
    }

    fn garp(mac: &str) -> String {
        format!("12:00:00.000003 {mac} > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has {VIP} tell {VIP}, length 28")
    }

    fn evidence<'a>(
        records: &'a [RequestRecord],
        capture: Option<&'a str>,
        executions: Option<&'a BTreeMap<String, Vec<String>>>,
    ) -> Evidence<'a> {
        Evidence {
            records,
            window: window(),
            capture,
            vips: &[VIP],
            voice_until: None,
            executions,
        }
    }

    #[test]
    fn a_rejoined_node_is_judged_only_up_to_the_join() {
        // -tt lines: B fronts; A took over (B was paused); B woke, fenced,
        // rejoined, and fronts again after the join accepted at t = 10 s.
        let at = |t: f64, line: String| format!("{t:.6}{}", &line[15..]);
        let cap = [
            at(1.0, arp_reply(B)),
            at(5.0, garp(A)),
            at(11.0, garp(B)),
            at(11.5, arp_reply(B)),
        ]
        .join("\n");
        let r = clean();
        let mut e = evidence(&r, Some(&cap), None);
        assert_eq!(check(&e).split_brain.len(), 1, "the whole capture: B, A, B");
        e.voice_until = Some(10_000_000_000);
        assert!(check(&e).split_brain.is_empty(), "{:?}", check(&e));
        let ev = |t: u64, event: &str| faultinject::events::Event {
            t_unix_ns: t,
            host: "server-b".into(),
            source: "coral".into(),
            event: event.into(),
            detail: String::new(),
        };
        let events = [
            ev(9, "fenced"),
            ev(10, "join-accepted"),
            ev(12, "join-accepted"),
        ];
        assert_eq!(first_join(&events), Some(10));
        assert_eq!(first_join(&events[..1]), None);
    }

    #[test]
    fn a_clean_switch_over_passes() {
        let r = clean();
        // The front answered ARP, the primary replied; then the survivor
        // announced itself and replied on the same connection.
        let cap = [
            arp_reply(B),
            tcp(A, 40000),
            tcp(A, 40001),
            garp(B),
            tcp(B, 40000),
            tcp(B, 40001),
            tcp(B, 40002),
        ]
        .join("\n");
        let ex = executions(&[
            (
                "server-a",
                "request id=0-1 peer=x\nrequest id=0-2 peer=x\nnoise",
            ),
            (
                "server-b",
                "request id=0-2 peer=y\nrequest id=1-1 peer=y\nrequest id=- peer=y",
            ),
        ]);
        let v = check(&evidence(&r, Some(&cap), Some(&ex)));
        assert_eq!(v.failures(), Vec::<String>::new(), "{v:?}");
        assert_eq!(v.label(), "pass");
        assert_eq!((v.requests, v.ok, v.lost, v.reconnects), (140, 140, 0, 0));
        assert!((v.stall_ms - 310.0).abs() < 1e-6, "{}", v.stall_ms);
        assert_eq!(v.duplicate_executions, Some(1));
        assert!(v.captured && v.split_brain.is_empty());
        assert_eq!(v.errors_cell(), "");
        // No capture (Docker): decided on the records alone.
        let v = check(&evidence(&r, None, None));
        assert!(v.failures().is_empty() && !v.captured);
        assert_eq!(v.duplicate_executions, None);
    }

    #[test]
    fn lost_errors_reconnects_and_corruption_fail() {
        let mut r = clean();
        let n = r.len();
        r[3].error_kind = Some(ErrorKind::Reset);
        r[3].status = 0;
        r[4].new_connection = true; // the reconnect after it
        r[10].error_kind = Some(ErrorKind::DigestMismatch);
        r[10].digest_ok = false;
        r[n - 1].lost = true;
        let v = check(&evidence(&r, None, None));
        assert_eq!(v.lost, 1);
        assert_eq!(v.errors(), 2);
        assert_eq!(v.digest_mismatches, 1);
        assert_eq!(v.reconnects, 1);
        assert_eq!(v.errors_cell(), "digest_mismatch=1;reset=1");
        let f = v.failures();
        assert_eq!(f.len(), 4, "{f:?}");
        assert!(f.iter().any(|x| x == "1 lost"), "{f:?}");
        assert_eq!(v.label(), "FAIL");
        // Nothing served at all is a failure too.
        let v = check(&evidence(&[], None, None));
        assert_eq!(v.failures(), vec!["no verified reply at all".to_string()]);
    }

    #[test]
    fn a_second_voice_is_split_brain() {
        let r = clean();
        // The old primary spoke again after the survivor took over.
        let cap = [tcp(A, 40000), tcp(B, 40001), tcp(A, 40002)].join("\n");
        let v = check(&evidence(&r, Some(&cap), None));
        assert_eq!(v.split_brain.len(), 1, "{:?}", v.split_brain);
        assert!(v.split_brain[0].contains("TCP from 192.0.2.100 by alternating MACs"));
        assert_eq!(v.label(), "FAIL");
        // One connection answered from both nodes after its switch-over.
        let cap = [tcp(A, 40000), tcp(B, 40000), tcp(A, 40000)].join("\n");
        let v = check(&evidence(&r, Some(&cap), None));
        assert!(
            v.split_brain.iter().any(|s| s.contains("connection")),
            "{v:?}"
        );
        // The address claimed by alternating MACs.
        let cap = [arp_reply(B), garp(A), arp_reply(B), tcp(A, 1)].join("\n");
        let v = check(&evidence(&r, Some(&cap), None));
        assert_eq!(v.split_brain.len(), 1, "{:?}", v.split_brain);
        assert!(v.split_brain[0].contains("claimed in ARP"));
        // Broadcast replies by alternating MACs are claims too.
        let cap = [arp_reply_to(B, BCAST), garp(A), arp_reply_to(B, BCAST)].join("\n");
        let v = check(&evidence(&r, Some(&cap), None));
        assert_eq!(v.split_brain.len(), 1, "{:?}", v.split_brain);
        // Another address's traffic is not this one's.
        let other = cap.replace(VIP, "192.0.2.101");
        let v = check(&evidence(&r, Some(&other), None));
        assert!(v.split_brain.is_empty());
    }

    /// Seen in the campaign (seed 18, dual role): the new owner announces
    /// the address (request `tell VIP`, then a broadcast reply); the other
    /// node's front, still answering for it, replies to the announcement,
    /// unicast to the announcer. One switch-over, not a second voice.
    #[test]
    fn a_front_answering_the_new_owners_announcement_is_not_a_claim() {
        let r = clean();
        let cap = [
            arp_reply(B),
            tcp(A, 40000),
            garp(A),
            arp_reply_to(B, A),
            arp_reply_to(A, BCAST),
            tcp(A, 40000),
        ]
        .join("\n");
        let v = check(&evidence(&r, Some(&cap), None));
        assert!(v.split_brain.is_empty(), "{:?}", v.split_brain);
        assert_eq!(
            voices(&cap, VIP).arp,
            vec![(B.to_string(), 1), (A.to_string(), 2)]
        );
        // The same reply sent to the router is a claim: B spoke again.
        let cap = cap.replace(&arp_reply_to(B, A), &arp_reply(B));
        let v = check(&evidence(&r, Some(&cap), None));
        assert_eq!(v.split_brain.len(), 1, "{:?}", v.split_brain);
    }

    #[test]
    fn a_detection_before_the_fault_is_named() {
        let ev = |t: u64, host: &str, source: &str, event: &str| faultinject::events::Event {
            t_unix_ns: t,
            host: host.into(),
            source: source.into(),
            event: event.into(),
            detail: "silent_ms=301".into(),
        };
        let events = [
            ev(100, "server-a", "coral", "start"),
            ev(2_000_000_000, "server-b", "coral", "peer-failed"),
            ev(3_000_000_000, "server-a", "faultinject", "kill"),
            ev(3_300_000_000, "server-b", "coral", "peer-failed"),
        ];
        assert_eq!(
            early_detection(&events, 3_000_000_000).as_deref(),
            Some("false detection: server-b peer-failed 1.000 s before the fault (silent_ms=301)")
        );
        // A detection after the fault is the fault's own.
        assert_eq!(early_detection(&events[2..], 3_000_000_000), None);
        assert_eq!(early_detection(&events, 1_000_000_000), None);
    }

    #[test]
    fn voices_reads_tcpdump_lines() {
        let v = voices(
            &[garp(A), arp_reply(A), tcp(A, 5), tcp(B, 5), "short".into()].join("\n"),
            VIP,
        );
        assert_eq!(v.arp, vec![(A.to_string(), 2)]);
        assert_eq!(v.tcp, vec![(A.to_string(), 1), (B.to_string(), 1)]);
        assert_eq!(
            v.conns["198.51.100.10.5"],
            vec![A.to_string(), B.to_string()]
        );
    }
}
