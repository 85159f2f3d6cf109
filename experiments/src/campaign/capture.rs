//! The switch capture of a trial: `tcpdump -nn -e -tt` on the switch's bridge
//! (ARP, and TCP from the service addresses), run in the switch's namespace
//! for the length of the trial. Only a topology whose switch is a host of
//! its own has one (netns); on Docker the checker goes by the records alone.

use crate::topology::Live;
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running capture; killed if dropped before [`Capture::stop`].
pub struct Capture {
    child: Child,
    out: PathBuf,
}

impl Capture {
    /// Starts tcpdump on the switch of `live` into `dir/switch.txt` and waits
    /// until it listens. None when the topology has no switch namespace.
    pub fn start(live: &Live, vips: &[String], dir: &Path) -> Result<Option<Capture>> {
        let st = live.state();
        if st.topology != "netns" {
            return Ok(None);
        }
        let bridge = crate::topology::netns::BRIDGE;
        let from: Vec<String> = vips.iter().map(|v| format!("src host {v}")).collect();
        let filter = format!("arp or (tcp and ({}))", from.join(" or "));
        let argv: Vec<OsString> = [
            "tcpdump", "-i", bridge, "-nn", "-e", "-tt", "-U", "-l", "-s", "128", "-B", "16384",
        ]
        .iter()
        .map(OsString::from)
        .chain([OsString::from(filter)])
        .collect();
        let out = dir.join("switch.txt");
        let err = dir.join("tcpdump.err");
        let mut cmd = live.backend.command(st, "switch", &argv)?;
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(&err)?);
        let child = cmd.spawn().context("start tcpdump on the switch")?;
        let mut cap = Capture { child, out };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&err).unwrap_or_default();
            if text.contains("listening on") {
                return Ok(Some(cap));
            }
            if let Some(st) = cap.child.try_wait()? {
                bail!("tcpdump on the switch exited ({st}): {}", text.trim());
            }
            if Instant::now() > deadline {
                bail!("tcpdump on the switch did not start: {}", text.trim());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the capture (SIGINT: tcpdump flushes) and returns its text.
    pub fn stop(mut self) -> Result<String> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::read_to_string(&self.out).with_context(|| format!("read {}", self.out.display()))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
