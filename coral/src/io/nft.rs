//! nftables from inside the process: the crash fence and the kernel-enforced
//! lease of docs/DESIGN.md section 4.
//!
//! The lease is refreshed on every authenticated heartbeat, so the handle
//! must be cheap: spawning `nft` costs about 1.9 ms here, a persistent
//! libnftables context about 50 us. libnftables (`libnftables.so.1`, shipped
//! with Debian's nftables package) is loaded at run time with `libloading`,
//! so building the kit needs no C headers; its API is four functions.
//!
//! The ruleset ([`fence_ruleset`]) lives in two tables of the same name per
//! node:
//! - `ip` table, output hook: a FIN or RST from a service address (set
//!   `vips`) is dropped unless the socket carries the intentional-close
//!   mark (a crashed process looks fail-stop);
//! - `netdev` table, egress hook of the LAN interface: a packet from a
//!   service address (set `vips`) without an element in set `lease`
//!   (per-element timeouts) is dropped: a stopped, partitioned or deposed
//!   node's kernel goes silent.
//!
//! Why egress and not output: a segment that passed the output hook while
//! the lease was valid can wait in the neighbour (ARP) queue while the
//! link is down and leave when it comes back, after the lease lapsed and
//! after the new owner spoke (seen in `netns_link_cut_restored_after_
//! detection_fences_the_old_primary`: one stale ACK from the old primary
//! after the backup's takeover). The egress hook runs after neighbour
//! resolution, when the packet is handed to the device.
//!
//! Frames the front forwards and ARP carry no service source address (or
//! are not IP) and pass.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use libloading::{Library, Symbol};

/// Flag for `nft_ctx_new`: default.
const NFT_CTX_DEFAULT: u32 = 0;

type CtxNew = unsafe extern "C" fn(u32) -> *mut c_void;
type CtxFree = unsafe extern "C" fn(*mut c_void);
type BufferOutput = unsafe extern "C" fn(*mut c_void) -> c_int;
type GetBuffer = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type RunCmd = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

/// A persistent libnftables context: commands run in this process's network
/// namespace, in-process, with their output and errors captured.
pub struct Nft {
    ctx: *mut c_void,
    run: RunCmd,
    get_output: GetBuffer,
    get_error: GetBuffer,
    free: CtxFree,
    _lib: Library,
}

// SAFETY: the context is only used through `&mut self`, one call at a time.
unsafe impl Send for Nft {}

impl Nft {
    /// Load libnftables and create a context.
    pub fn open() -> Result<Nft> {
        // SAFETY: loading a system library whose initialisers are benign.
        let lib = unsafe { Library::new("libnftables.so.1") }
            .context("loading libnftables.so.1 (install Debian's nftables package)")?;
        // SAFETY: the symbol types match libnftables' public API (nftables/libnftables.h).
        unsafe {
            let ctx_new: Symbol<CtxNew> = lib.get(b"nft_ctx_new\0")?;
            let free: Symbol<CtxFree> = lib.get(b"nft_ctx_free\0")?;
            let buf_out: Symbol<BufferOutput> = lib.get(b"nft_ctx_buffer_output\0")?;
            let buf_err: Symbol<BufferOutput> = lib.get(b"nft_ctx_buffer_error\0")?;
            let get_output: Symbol<GetBuffer> = lib.get(b"nft_ctx_get_output_buffer\0")?;
            let get_error: Symbol<GetBuffer> = lib.get(b"nft_ctx_get_error_buffer\0")?;
            let run: Symbol<RunCmd> = lib.get(b"nft_run_cmd_from_buffer\0")?;
            let ctx = ctx_new(NFT_CTX_DEFAULT);
            if ctx.is_null() {
                bail!("nft_ctx_new failed");
            }
            if buf_out(ctx) != 0 || buf_err(ctx) != 0 {
                free(ctx);
                bail!("nft_ctx_buffer_output/error failed");
            }
            Ok(Nft {
                ctx,
                run: *run,
                get_output: *get_output,
                get_error: *get_error,
                free: *free,
                _lib: lib,
            })
        }
    }

    /// Run one nft script (one or more commands); returns its output.
    pub fn run(&mut self, cmd: &str) -> Result<String> {
        let c = CString::new(cmd).map_err(|_| anyhow!("nft command contains a NUL byte"))?;
        // SAFETY: `ctx` is live; `c` is NUL-terminated; the buffers returned
        // are owned by the context and copied before the next call.
        unsafe {
            let rc = (self.run)(self.ctx, c.as_ptr());
            let out = cstr((self.get_output)(self.ctx));
            let err = cstr((self.get_error)(self.ctx));
            if rc != 0 {
                bail!("nft: {}", err.trim());
            }
            Ok(out)
        }
    }
}

fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: libnftables returns NUL-terminated buffers.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

impl Drop for Nft {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from nft_ctx_new and is freed once.
        unsafe { (self.free)(self.ctx) }
    }
}

/// The name of the lease set in the node's netdev table (the heartbeat
/// thread refreshes its elements over nfnetlink, [`crate::io::nfnl`]).
pub const LEASE_SET: &str = "lease";

/// The nftables table a node's fence lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceConfig {
    /// Table name (families `ip` and `netdev`), unique per node.
    pub table: String,
    /// The LAN interface (the lease is enforced at its egress hook).
    pub lan: String,
    /// The node's intentional-close mark (`SO_MARK` set before a deliberate
    /// FIN or close).
    pub close_mark: u32,
}

/// The whole fence ruleset, replacing any older version of the tables.
pub fn fence_ruleset(cfg: &FenceConfig) -> String {
    let t = &cfg.table;
    let mut s = String::new();
    // `add` then `delete` makes the delete succeed whether or not it existed.
    let _ = writeln!(s, "add table ip {t}");
    let _ = writeln!(s, "delete table ip {t}");
    let _ = writeln!(s, "add table netdev {t}");
    let _ = writeln!(s, "delete table netdev {t}");
    let _ = writeln!(s, "table ip {t} {{");
    let _ = writeln!(s, "  set vips {{ type ipv4_addr; }}");
    let _ = writeln!(s, "  chain output {{");
    let _ = writeln!(s, "    type filter hook output priority 0; policy accept;");
    let _ = writeln!(
        s,
        "    ip saddr @vips tcp flags & (fin | rst) != 0 meta mark != {:#x} counter drop",
        cfg.close_mark
    );
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "}}");
    let _ = writeln!(s, "table netdev {t} {{");
    let _ = writeln!(s, "  set vips {{ type ipv4_addr; }}");
    let _ = writeln!(s, "  set lease {{ type ipv4_addr; flags timeout; }}");
    let _ = writeln!(s, "  chain egress {{");
    let _ = writeln!(
        s,
        "    type filter hook egress device \"{}\" priority 0; policy accept;",
        cfg.lan
    );
    let _ = writeln!(s, "    ip saddr @vips ip saddr != @lease counter drop");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "}}");
    s
}

/// Milliseconds for an nft timeout: at least 1 (nft truncates to jiffies;
/// keep leases at 8 ms or more, docs/DESIGN.md section 4).
fn ms(d: Duration) -> u128 {
    d.as_millis().max(1)
}

/// Command adding `vip` to the service addresses this node guards.
pub fn add_vip(cfg: &FenceConfig, vip: Ipv4Addr) -> String {
    format!(
        "add element ip {t} vips {{ {vip} }}\nadd element netdev {t} vips {{ {vip} }}\n",
        t = cfg.table
    )
}

/// Command removing `vip` from the guarded addresses, and its lease. (Each
/// delete is preceded by an add, so it succeeds whether or not the element
/// was there: a lease may have lapsed already.)
pub fn remove_vip(cfg: &FenceConfig, vip: Ipv4Addr) -> String {
    format!(
        "add element ip {t} vips {{ {vip} }}\ndelete element ip {t} vips {{ {vip} }}\n\
         add element netdev {t} vips {{ {vip} }}\ndelete element netdev {t} vips {{ {vip} }}\n{}",
        revoke_lease(cfg, vip),
        t = cfg.table
    )
}

/// Command granting or refreshing a lease on `vip` for `timeout`. A plain
/// `add element` on an existing element does not reset its expiry: `expires`
/// does, so both are given.
pub fn refresh_lease(cfg: &FenceConfig, vip: Ipv4Addr, timeout: Duration) -> String {
    let t = ms(timeout);
    format!(
        "add element netdev {} lease {{ {vip} timeout {t}ms expires {t}ms }}\n",
        cfg.table
    )
}

/// Command making the lease on `vip` permanent (simplex after a witness
/// grant): the element is replaced by one without a timeout.
pub fn permanent_lease(cfg: &FenceConfig, vip: Ipv4Addr) -> String {
    format!(
        "{}add element netdev {} lease {{ {vip} }}\n",
        revoke_lease(cfg, vip),
        cfg.table
    )
}

/// Command revoking the lease on `vip` at once (fencing).
pub fn revoke_lease(cfg: &FenceConfig, vip: Ipv4Addr) -> String {
    format!(
        "add element netdev {t} lease {{ {vip} timeout 1s }}\ndelete element netdev {t} lease {{ {vip} }}\n",
        t = cfg.table
    )
}

/// Command removing the node's tables.
pub fn remove_table(cfg: &FenceConfig) -> String {
    format!(
        "add table ip {t}\ndelete table ip {t}\nadd table netdev {t}\ndelete table netdev {t}\n",
        t = cfg.table
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> FenceConfig {
        FenceConfig {
            table: "coral_t".into(),
            lan: "eth0".into(),
            close_mark: 0xc0a1,
        }
    }

    #[test]
    fn ruleset_mentions_both_rules() {
        let r = fence_ruleset(&cfg());
        assert!(r.contains("ip saddr @vips ip saddr != @lease counter drop"));
        assert!(r.contains("hook egress device \"eth0\""));
        assert!(r.contains("meta mark != 0xc0a1"));
        assert!(r.starts_with("add table ip coral_t\ndelete table ip coral_t\n"));
    }

    #[test]
    fn lease_refresh_sets_timeout_and_expiry() {
        let c = refresh_lease(
            &cfg(),
            Ipv4Addr::new(192, 0, 2, 100),
            Duration::from_millis(30),
        );
        assert_eq!(
            c,
            "add element netdev coral_t lease { 192.0.2.100 timeout 30ms expires 30ms }\n"
        );
        let c = refresh_lease(
            &cfg(),
            Ipv4Addr::new(192, 0, 2, 100),
            Duration::from_micros(10),
        );
        assert!(c.contains("timeout 1ms"), "{c}");
    }
}
