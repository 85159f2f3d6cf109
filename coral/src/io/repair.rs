//! TCP_REPAIR: rebuild a live TCP connection in the local kernel from state
//! observed elsewhere, and take a connection down without a single segment.
//!
//! This is the I/O shell for docs/DESIGN.md section 5 step 2. The values come from
//! the core's takeover query; this module only performs the system calls, in
//! the order the kernel requires (each step records what failed when it was
//! done differently on this machine):
//!
//! 1. `socket`, `TCP_REPAIR = 1`;
//! 2. `TCP_QUEUE_SEQ` for the send queue and the receive queue;
//! 3. optional `IP_TRANSPARENT` (bind a service address that is not local yet)
//!    and `SO_MARK`; `bind` (never `SO_REUSEADDR` after repair mode: it breaks
//!    the forced reuse), `connect` (no SYN is sent in repair mode);
//! 4. `TCP_REPAIR_OPTIONS` (after connect, before data);
//! 5. `TCP_TIMESTAMP`;
//! 6. the receive queue filled with the unanswered request bytes;
//! 7. `TCP_REPAIR_WINDOW` (without it the send window starts at 0);
//! 8. `TCP_REPAIR = 0`, then `SO_REUSEADDR` (leaving repair mode drops
//!    the forced reuse, and a listener on the service port must still bind).
//!    A takeover does this step later ([`build_in_repair`], then
//!    [`leave_repair`]): leaving repair mode sends a window probe, which is
//!    dropped unless the address is local and leased by then
//!    ([`leave_repair_quietly`] leaves without it).
//!
//! Bytes that must still reach the client are NOT put into the repair send
//! queue (they would count as already sent and wait for a retransmission
//! timeout); the caller writes them as ordinary data afterwards.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};

use crate::io::sockopt;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// `TCP_REPAIR_QUEUE` selector: no queue.
const TCP_NO_QUEUE: libc::c_int = 0;
/// `TCP_REPAIR_QUEUE` selector: the receive queue.
const TCP_RECV_QUEUE: libc::c_int = 1;
/// `TCP_REPAIR_QUEUE` selector: the send queue.
const TCP_SEND_QUEUE: libc::c_int = 2;

/// `tcpi_options` bits (include/uapi/linux/tcp.h).
const TCPI_OPT_TIMESTAMPS: u8 = 1;
const TCPI_OPT_SACK: u8 = 2;
const TCPI_OPT_WSCALE: u8 = 4;
const TCPI_OPT_USEC_TS: u8 = 64;

/// `struct tcp_repair_opt` from include/uapi/linux/tcp.h.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct TcpRepairOpt {
    opt_code: u32,
    opt_val: u32,
}

/// The options and window state of a rebuild are the core's types: the
/// takeover query produces them, this shell only passes them on.
pub use coral_core::{RepairOptions, RepairWindow};

/// `struct tcp_repair_window` from include/uapi/linux/tcp.h, as the kernel
/// reads and writes it with `TCP_REPAIR_WINDOW`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct KernelWindow {
    snd_wl1: u32,
    snd_wnd: u32,
    max_window: u32,
    rcv_wnd: u32,
    rcv_wup: u32,
}

impl From<RepairWindow> for KernelWindow {
    fn from(w: RepairWindow) -> Self {
        KernelWindow {
            snd_wl1: w.snd_wl1,
            snd_wnd: w.snd_wnd,
            max_window: w.max_window,
            rcv_wnd: w.rcv_wnd,
            rcv_wup: w.rcv_wup,
        }
    }
}

impl From<KernelWindow> for RepairWindow {
    fn from(w: KernelWindow) -> Self {
        RepairWindow {
            snd_wl1: w.snd_wl1,
            snd_wnd: w.snd_wnd,
            max_window: w.max_window,
            rcv_wnd: w.rcv_wnd,
            rcv_wup: w.rcv_wup,
        }
    }
}

/// The largest MSS `TCP_MAXSEG` accepts (the kernel's `MAX_TCP_WINDOW`).
pub const MAX_USER_MSS: u16 = 32767;

/// Everything needed to rebuild one connection (docs/DESIGN.md section 5 step 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairSpec {
    /// Our end: the service address and port.
    pub local: SocketAddrV4,
    /// The client's address and port.
    pub remote: SocketAddrV4,
    /// Send-queue sequence: the client's cumulative ACK (our `snd_una`).
    pub send_seq: u32,
    /// Receive-queue sequence: where `recv_queue` starts in client sequence
    /// space (start of the first request without a complete logged reply).
    pub recv_seq: u32,
    /// Client bytes to place in the receive queue (unanswered requests).
    pub recv_queue: Vec<u8>,
    /// Negotiated options.
    pub options: RepairOptions,
    /// Value for `TCP_TIMESTAMP` (bit 0 clear unless microsecond timestamps).
    pub timestamp: Option<u32>,
    /// Window state; required (without it the send window starts at 0).
    pub window: RepairWindow,
    /// Set `IP_TRANSPARENT` so `local` may be an address not (yet) local.
    pub transparent: bool,
    /// `SO_MARK` for the socket (0 = none).
    pub mark: u32,
}

/// What the kernel reports of a live connection: used to verify a rebuild
/// and to take a connection over from a socket in this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairDump {
    /// Next sequence number to be written (`write_seq`).
    pub send_seq: u32,
    /// Next sequence number expected from the peer (`rcv_nxt`).
    pub recv_seq: u32,
    /// Window state.
    pub window: RepairWindow,
    /// Current `TCP_TIMESTAMP` value.
    pub timestamp: u32,
    /// Negotiated options from `TCP_INFO`.
    pub info: TcpInfoLite,
}

/// The fields of `struct tcp_info` CoRAL uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfoLite {
    /// `tcpi_state` (1 = ESTABLISHED).
    pub state: u8,
    /// Timestamps negotiated.
    pub timestamps: bool,
    /// SACK negotiated.
    pub sack: bool,
    /// Window scaling negotiated.
    pub wscale: bool,
    /// Microsecond timestamps (`TCPI_OPT_USEC_TS`).
    pub usec_ts: bool,
    /// Scale applied to the peer's windows.
    pub snd_wscale: u8,
    /// Scale we announced.
    pub rcv_wscale: u8,
    /// `tcpi_snd_mss`.
    pub snd_mss: u32,
    /// `tcpi_rcv_mss`.
    pub rcv_mss: u32,
    /// `tcpi_unacked`: segments sent and not yet acknowledged.
    pub unacked: u32,
    /// `tcpi_rto`: the retransmission timeout, in microseconds.
    pub rto_us: u32,
}

impl TcpInfoLite {
    /// The options a rebuild of this connection needs.
    pub fn repair_options(&self, peer_mss: u16) -> RepairOptions {
        RepairOptions {
            mss: peer_mss,
            snd_wscale: self.wscale.then_some(self.snd_wscale),
            rcv_wscale: self.wscale.then_some(self.rcv_wscale),
            sack: self.sack,
            timestamps: self.timestamps,
        }
    }
}

fn step<T>(what: &'static str, r: io::Result<T>) -> io::Result<T> {
    r.map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))
}

/// `TCP_REPAIR` value: leave repair mode without the window probe
/// (`TCP_REPAIR_OFF_NO_WP` in include/uapi/linux/tcp.h; the libc crate
/// lacks it on Linux).
const TCP_REPAIR_OFF_NO_WP: libc::c_int = -1;

/// Switch repair mode on or off for a socket.
pub fn set_repair(fd: RawFd, on: bool) -> io::Result<()> {
    sockopt::set(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_REPAIR,
        &(on as libc::c_int),
        "TCP_REPAIR",
    )
}

fn set_queue(fd: RawFd, queue: libc::c_int) -> io::Result<()> {
    sockopt::set(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_REPAIR_QUEUE,
        &queue,
        "TCP_REPAIR_QUEUE",
    )
}

/// Rebuild one connection from `spec`; the returned stream is ESTABLISHED,
/// out of repair mode, and the client sees no segment until it is used
/// (but the window probe sent on leaving repair mode).
pub fn build_repaired_socket(spec: &RepairSpec) -> io::Result<TcpStream> {
    let stream = build_in_repair(spec)?;
    leave_repair(stream.as_raw_fd())?;
    Ok(stream)
}

/// Rebuild one connection from `spec` and leave it in repair mode (steps 1
/// to 7 of the module docs): the kernel sends nothing for it until
/// [`leave_repair`], whose window probe should find the address local and
/// leased.
pub fn build_in_repair(spec: &RepairSpec) -> io::Result<TcpStream> {
    build(spec, Type::STREAM, false)
}

/// [`build_in_repair`] for a takeover: the socket non-blocking from its
/// creation (one system call less than setting it afterwards; the async
/// runtime takes it so), and `SO_REUSEPORT` set, so that a listener on the
/// service port with `SO_REUSEPORT` too ([`crate::io::primary::listen_beside`])
/// binds without the kernel checking it against every rebuilt socket (10,000
/// of them made `bind` and `listen` take 10 ms in a namespace of their own,
/// 0.01 ms with the option).
pub fn build_in_repair_for_takeover(spec: &RepairSpec) -> io::Result<TcpStream> {
    build(spec, Type::STREAM.nonblocking(), true)
}

/// Steps 1 to 7 with the fewest system calls: the queue selector is left
/// on the receive queue after its sequence is set (only `send` in repair
/// mode reads it, and the receive queue is the one filled next), so no
/// `TCP_NO_QUEUE` between the steps.
fn build(spec: &RepairSpec, ty: Type, reuse_port: bool) -> io::Result<TcpStream> {
    let sock = Socket::new(Domain::IPV4, ty, Some(Protocol::TCP))?;
    let fd = sock.as_raw_fd();
    if reuse_port {
        step("SO_REUSEPORT", sock.set_reuse_port(true))?;
    }
    set_repair(fd, true)?;
    set_queue_seqs(fd, spec.send_seq, spec.recv_seq)?;
    bind_and_connect(&sock, spec)?;
    set_options(fd, spec)?;
    if !spec.recv_queue.is_empty() {
        fill_receive_queue(&sock, &spec.recv_queue)?;
    }
    sockopt::set(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_REPAIR_WINDOW,
        &KernelWindow::from(spec.window),
        "TCP_REPAIR_WINDOW",
    )?;
    // SAFETY: ownership of the descriptor moves from `sock` to the stream.
    Ok(unsafe { TcpStream::from_raw_fd(sock.into_raw_fd()) })
}

/// Step 8: `TCP_REPAIR = 0` (the kernel sends a window probe, which the
/// client answers with an ACK), then `SO_REUSEADDR`.
pub fn leave_repair(fd: RawFd) -> io::Result<()> {
    set_repair(fd, false)?;
    allow_reuse(fd)
}

/// Step 8 without the window probe (`TCP_REPAIR_OFF_NO_WP`): for a socket
/// that draws its client's ACK otherwise (a takeover's filler byte,
/// written right after), so the client is not asked twice.
pub fn leave_repair_quietly(fd: RawFd) -> io::Result<()> {
    sockopt::set(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_REPAIR,
        &TCP_REPAIR_OFF_NO_WP,
        "TCP_REPAIR off, no window probe",
    )?;
    allow_reuse(fd)
}

fn allow_reuse(fd: RawFd) -> io::Result<()> {
    // Leaving repair mode resets the forced reuse to "no reuse"; allow reuse
    // again so a listener on the same service port can be bound afterwards
    // (step 7). Only now: set during repair mode it breaks the forced reuse.
    sockopt::set(
        fd,
        libc::SOL_SOCKET,
        libc::SO_REUSEADDR,
        &(1 as libc::c_int),
        "SO_REUSEADDR",
    )
}

/// Step 2: where the send queue and the receive queue start. The selector
/// stays on the receive queue (for step 6).
fn set_queue_seqs(fd: RawFd, send_seq: u32, recv_seq: u32) -> io::Result<()> {
    for (queue, seq, what) in [
        (TCP_SEND_QUEUE, send_seq, "TCP_QUEUE_SEQ send"),
        (TCP_RECV_QUEUE, recv_seq, "TCP_QUEUE_SEQ recv"),
    ] {
        set_queue(fd, queue)?;
        sockopt::set(fd, libc::IPPROTO_TCP, libc::TCP_QUEUE_SEQ, &seq, what)?;
    }
    Ok(())
}

/// Step 3: `IP_TRANSPARENT`, `SO_MARK`, bind, the MSS, connect.
fn bind_and_connect(sock: &Socket, spec: &RepairSpec) -> io::Result<()> {
    if spec.transparent {
        step("IP_TRANSPARENT", sock.set_ip_transparent(true))?;
    }
    if spec.mark != 0 {
        step("SO_MARK", sock.set_mark(spec.mark))?;
    }
    step(
        "bind",
        sock.bind(&SockAddr::from(SocketAddr::V4(spec.local))),
    )?;
    // The MSS the kernel sends with is fixed at connect (from the route and
    // the MSS clamp); TCP_REPAIR_OPTIONS below comes too late to change it,
    // and without this a rebuilt socket sends 524-byte segments (the 536
    // default less the timestamp option) for the rest of the connection.
    // The kernel takes at most 32767 here (MAX_TCP_WINDOW): only loopback's
    // 64 KiB MTU is above it.
    if spec.options.mss > 0 {
        sockopt::set(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            &libc::c_int::from(spec.options.mss.min(MAX_USER_MSS)),
            "TCP_MAXSEG",
        )?;
    }
    step(
        "connect",
        sock.connect(&SockAddr::from(SocketAddr::V4(spec.remote))),
    )
}

/// Steps 4 and 5: `TCP_REPAIR_OPTIONS`, `TCP_TIMESTAMP`.
fn set_options(fd: RawFd, spec: &RepairSpec) -> io::Result<()> {
    let opts: Vec<TcpRepairOpt> = spec
        .options
        .repair_opts()
        .into_iter()
        .map(|(opt_code, opt_val)| TcpRepairOpt { opt_code, opt_val })
        .collect();
    sockopt::set_slice(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_REPAIR_OPTIONS,
        &opts,
        "TCP_REPAIR_OPTIONS",
    )?;
    if let Some(ts) = spec.timestamp {
        sockopt::set(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_TIMESTAMP,
            &ts,
            "TCP_TIMESTAMP",
        )?;
    }
    Ok(())
}

/// Step 6: the unanswered request bytes into the receive queue (the queue
/// selector is on it since step 2; a send there never blocks).
fn fill_receive_queue(sock: &Socket, data: &[u8]) -> io::Result<()> {
    let mut off = 0;
    while off < data.len() {
        let n = step("fill receive queue", sock.send(&data[off..]))?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "fill receive queue: kernel took 0 bytes",
            ));
        }
        off += n;
    }
    Ok(())
}

/// Read the kernel's view of a live connection. Puts the socket into repair
/// mode and leaves it there: the caller either closes it silently
/// ([`close_silently`]) or calls [`set_repair`]`(fd, false)`.
pub fn dump(fd: RawFd) -> io::Result<RepairDump> {
    let info = tcp_info(fd)?;
    set_repair(fd, true)?;
    set_queue(fd, TCP_SEND_QUEUE)?;
    let send_seq: u32 = sockopt::get(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_QUEUE_SEQ,
        "TCP_QUEUE_SEQ send",
    )?;
    set_queue(fd, TCP_RECV_QUEUE)?;
    let recv_seq: u32 = sockopt::get(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_QUEUE_SEQ,
        "TCP_QUEUE_SEQ recv",
    )?;
    set_queue(fd, TCP_NO_QUEUE)?;
    let window: KernelWindow = sockopt::get(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_REPAIR_WINDOW,
        "TCP_REPAIR_WINDOW",
    )?;
    let window = RepairWindow::from(window);
    let timestamp: u32 = sockopt::get(fd, libc::IPPROTO_TCP, libc::TCP_TIMESTAMP, "TCP_TIMESTAMP")?;
    Ok(RepairDump {
        send_seq,
        recv_seq,
        window,
        timestamp,
        info,
    })
}

/// Close a connection without the kernel sending anything (no FIN, no RST):
/// repair mode on, then close. Used by fencing and after a dump.
pub fn close_silently<F: IntoRawFd>(sock: F) -> io::Result<()> {
    let fd = sock.into_raw_fd();
    let r = set_repair(fd, true);
    // SAFETY: we own `fd` (taken from `sock`) and close it exactly once.
    unsafe { libc::close(fd) };
    r
}

/// `getsockopt(TCP_INFO)`, reduced to what CoRAL needs.
pub fn tcp_info(fd: RawFd) -> io::Result<TcpInfoLite> {
    // struct tcp_info starts: u8 state, ca_state, retransmits, probes, backoff,
    // options, wscale (snd:4 | rcv:4), delivery_rate_app_limited..., then u32
    // rto, ato, snd_mss, rcv_mss, unacked. Read a prefix large enough for those.
    let raw: [u8; 104] = sockopt::get_bytes(fd, libc::IPPROTO_TCP, libc::TCP_INFO, "TCP_INFO")?;
    let options = raw[5];
    let wscale = raw[6];
    let u32_at =
        |off: usize| u32::from_ne_bytes([raw[off], raw[off + 1], raw[off + 2], raw[off + 3]]);
    Ok(TcpInfoLite {
        state: raw[0],
        timestamps: options & TCPI_OPT_TIMESTAMPS != 0,
        sack: options & TCPI_OPT_SACK != 0,
        wscale: options & TCPI_OPT_WSCALE != 0,
        usec_ts: options & TCPI_OPT_USEC_TS != 0,
        snd_wscale: wscale & 0x0f,
        rcv_wscale: wscale >> 4,
        snd_mss: u32_at(16),
        rcv_mss: u32_at(20),
        unacked: u32_at(24),
        rto_us: u32_at(8),
    })
}

/// Make the kernel send a window probe on a live connection that has data
/// the client has not acknowledged, sent or not, so the client answers
/// with an ACK (and its window) now rather than after the next (backed-off)
/// retransmission or persist timeout: leaving `TCP_REPAIR` mode sends the
/// probe (`tcp_send_window_probe`). Unsent data counts too: a client whose
/// window was full when the address moved sent its window update to the
/// old MAC, and the sender would wait for its persist timer. Returns
/// whether it did. The caller must be the only user of the socket for the
/// duration (a write while in repair mode fails). Leaving repair mode resets
/// the socket's address reuse; it is set again as an accepted or rebuilt
/// socket of this node has it.
pub fn elicit_ack(fd: RawFd) -> io::Result<bool> {
    let info = tcp_info(fd)?;
    if info.state != TCP_ESTABLISHED || (info.unacked == 0 && out_queue(fd)? == 0) {
        return Ok(false);
    }
    set_repair(fd, true)?;
    leave_repair(fd)?;
    Ok(true)
}

/// Bytes in the send queue not yet acknowledged by the peer, sent or not
/// (`SIOCOUTQ`).
pub fn out_queue(fd: RawFd) -> io::Result<libc::c_int> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one int through the pointer.
    if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n)
}

/// `tcpi_state` of an established connection.
const TCP_ESTABLISHED: u8 = 1;
