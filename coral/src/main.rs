//! `coral`: a CoRAL node (primary, backup, or both in dual role).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A CoRAL node: client-transparent failover of live TCP connections for a
/// web service (Aghdaie & Tamir, PDCS 2003), on an unmodified Linux kernel.
#[derive(Parser, Debug)]
#[command(name = "coral", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node from its configuration file until SIGTERM/SIGINT.
    ///
    /// Needs root (packet sockets, TCP_REPAIR, nftables, addresses) and is
    /// normally started inside the host's network namespace.
    Node {
        /// The node's TOML configuration (see docs/CLI.md, "coral").
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a new server that joins a simplex node as its backup (paper
    /// section 3.2, docs/DESIGN.md 6), then serves as a node until
    /// SIGTERM/SIGINT. Identity and configuration are exchanged over the
    /// authenticated JOIN channel and the simplex node's witness decides a
    /// new epoch; a refused or rolled-back join exits 1 naming the reason.
    /// With --check: the exchange alone, up to the accept (exit 0; the
    /// simplex node rolls the join back) or the refusal (exit 1).
    Join {
        /// This server's TOML configuration (every service role = "backup").
        #[arg(long, short)]
        config: PathBuf,
        /// The simplex node's JOIN endpoint (ADDR:PORT, port 7014 by default).
        #[arg(long)]
        to: std::net::SocketAddrV4,
        /// Only check that the join would be accepted; run no node.
        #[arg(long)]
        check: bool,
        /// Try again for up to this many seconds when the join is refused
        /// (e.g. the peer is not simplex yet), fails or is rolled back:
        /// each attempt a fresh process, 200 ms apart. 0: one attempt.
        #[arg(long, default_value_t = 0)]
        retry_s: u64,
        /// Front every service of the configuration, whatever its role
        /// says (a joining node backs up every address): lets a node's own
        /// configuration serve for its rejoin (`rejoin = true`).
        #[arg(long)]
        front_all: bool,
    },
    /// Parse and validate a configuration file, then exit.
    CheckConfig {
        /// The file to check.
        config: PathBuf,
    },
    /// Print a fresh random pre-shared key (hex) for the key_file.
    Keygen,
    /// Run the witness (docs/DESIGN.md 4): grants each service address to at
    /// most one node per epoch. Run it on a third machine (the outside
    /// host in the test topologies). Records are persisted to --state
    /// before any grant is sent.
    Witness {
        /// UDP address to listen on (ADDR:PORT).
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// File with the pre-shared key in hex (the nodes' key_file).
        #[arg(long)]
        key_file: PathBuf,
        /// File holding the records (created if absent).
        #[arg(long)]
        state: PathBuf,
        /// A node id allowed to ask (repeatable; with --allow-vip).
        #[arg(long = "allow-node")]
        allow_node: Vec<u32>,
        /// A service address that may be granted (repeatable; with --allow-node).
        #[arg(long = "allow-vip")]
        allow_vip: Vec<std::net::Ipv4Addr>,
        /// Append every decision to this events.csv.
        #[arg(long)]
        events: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Node { config } => coral::config::Config::load(&config).and_then(|cfg| {
            // Every client connection is a socket (and, after a takeover, a
            // rebuilt one): lift the soft descriptor limit to the hard one.
            raise_nofile_limit();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .on_thread_park(coral::io::logchan::flush_deferred)
                .build()?;
            rt.block_on(coral::node::run(cfg))
        }),
        Command::Join {
            config,
            to,
            check: true,
            ..
        } => coral::config::Config::load(&config).and_then(|cfg| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let epoch = rt.block_on(coral::reintegration::join_config(&cfg, to))?;
            println!(
                "coral join: accepted by {to} in epoch {} (check only: closing, the simplex node rolls back)",
                epoch.0
            );
            Ok(())
        }),
        Command::Join {
            config,
            to,
            check: false,
            retry_s,
            front_all,
        } => coral::config::Config::load(&config).and_then(|mut cfg| {
            if front_all {
                for s in &mut cfg.service {
                    s.role = coral::config::ServiceRole::Backup;
                }
            }
            raise_nofile_limit();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .on_thread_park(coral::io::logchan::flush_deferred)
                .build()?;
            let r = rt.block_on(coral::node::join(cfg, to));
            if let Err(e) = &r {
                if let Some(exec_err) = coral::rejoin::retry_join(retry_s, e) {
                    eprintln!("coral join: cannot run again: {exec_err}");
                }
            }
            r
        }),
        Command::CheckConfig { config } => coral::config::Config::load(&config).map(|c| {
            println!(
                "{}: ok ({} service address(es), node {})",
                config.display(),
                c.service.len(),
                c.node_id
            );
        }),
        Command::Witness {
            listen,
            key_file,
            state,
            allow_node,
            allow_vip,
            events,
        } => coral::config::read_key_file(&key_file).and_then(|key| {
            coral::io::witness::run(coral::io::witness::WitnessConfig {
                listen,
                key,
                state,
                allow_nodes: allow_node,
                allow_vips: allow_vip,
                events,
            })
        }),
        Command::Keygen => {
            let mut k = [0u8; 32];
            match std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut k))
            {
                Ok(()) => {
                    println!("{}", hex::encode(k));
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
    };
    if let Err(e) = result {
        eprintln!("coral: error: {e:#}");
        std::process::exit(1);
    }
}

/// Log lines go to stderr through `tracing` (level from `RUST_LOG`, `info`
/// by default); stdout carries only the lines other programs wait for
/// (`coral node NAME ready`, `coral witness listening on ADDR`) and command
/// results.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Raise `RLIMIT_NOFILE`'s soft limit to its hard limit (best effort).
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, owned rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!(
                    "could not raise the open-file limit: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}
