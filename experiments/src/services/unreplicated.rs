//! `unreplicated`: `webstone-server` on server-a (and server-b), each serving
//! its own address; the baseline the paper's dashed lines come from. Each
//! runs the service's application mode (`--app inproc|cgi`).

use crate::services::ServiceOptions;
use crate::topology::{self, Live, Role, ServiceSpec};
use anyhow::{Context, Result};
use std::ffi::OsString;
use std::sync::atomic::AtomicBool;

/// Start webstone-server on the first `opts.servers` servers.
pub fn start(live: &mut Live, opts: &ServiceOptions, cancel: &AtomicBool) -> Result<()> {
    let server_bin = topology::sibling_binary("webstone-server")?;
    let app_args = super::app_args(opts.app)?;
    let servers: Vec<&str> = ["server-a", "server-b"][..opts.servers as usize].to_vec();
    let mut started = Vec::new();
    for s in &servers {
        topology::check_cancel(cancel)?;
        if let Some(cores) = opts.server_cpu {
            live.backend.set_cpu_quota(&mut live.handle, s, cores)?;
        }
        let addr = live.handle.state.host(s)?.addr.clone();
        let log = live.handle.dir().join(format!("{s}.log"));
        let _ = std::fs::remove_file(&log);
        let mut argv = vec![
            OsString::from(&server_bin),
            "--listen".into(),
            "0.0.0.0:80".into(),
            "--served-by".into(),
            OsString::from(*s),
        ];
        argv.extend(app_args.iter().cloned());
        let spec = ServiceSpec {
            host: s.to_string(),
            argv,
            log: log.clone(),
        };
        let pid = live.backend.spawn_service(&mut live.handle, &spec)?;
        started.push((s.to_string(), pid, log, addr));
    }
    for (s, pid, log, addr) in &started {
        super::wait_ready(*pid, log, cancel).with_context(|| format!("webstone-server on {s}"))?;
        let st = &mut live.handle.state;
        if let Some(h) = st.hosts.get_mut(s) {
            h.roles = vec![Role {
                vip: addr.clone(),
                role: "primary".into(),
            }];
        }
        st.service_urls
            .push(format!("http://{addr}/cgi-bin/webstone"));
    }
    Ok(())
}
