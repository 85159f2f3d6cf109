//! `coral-fault`: inject one fault without `coral-exp` (no topology.json
//! needed) and append it to an events.csv.

use clap::{Parser, Subcommand};
use faultinject::{inject_and_record, Fault};
use std::io::IsTerminal;
use std::path::PathBuf;
use tracing::error;
use tracing_subscriber::EnvFilter;

/// Inject one fault (link cut/restore, SIGKILL/SIGSTOP/SIGCONT, bridge
/// partition/heal, a host cut off from the witness) and append it to an events.csv.
#[derive(Parser, Debug)]
#[command(name = "coral-fault", version, about)]
struct Cli {
    /// events.csv to append the fault to.
    #[arg(long, default_value = "events.csv")]
    events: PathBuf,
    /// Host name recorded in the event.
    #[arg(long, default_value = "-")]
    host: String,
    #[command(subcommand)]
    fault: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Set interface DEV in namespace NETNS down.
    LinkCut {
        /// Namespace name under /run/netns.
        #[arg(long)]
        netns: String,
        /// Interface name in that namespace.
        #[arg(long)]
        dev: String,
    },
    /// Set interface DEV in namespace NETNS up.
    LinkRestore {
        /// Namespace name under /run/netns.
        #[arg(long)]
        netns: String,
        /// Interface name in that namespace.
        #[arg(long)]
        dev: String,
    },
    /// SIGKILL the given pids.
    Kill {
        /// Target pids.
        #[arg(required = true)]
        pids: Vec<u32>,
    },
    /// SIGSTOP the given pids.
    Stop {
        /// Target pids.
        #[arg(required = true)]
        pids: Vec<u32>,
    },
    /// SIGCONT the given pids.
    Cont {
        /// Target pids.
        #[arg(required = true)]
        pids: Vec<u32>,
    },
    /// Drop bridged frames between two MACs (nft bridge family in NETNS).
    Partition {
        /// Namespace of the bridge.
        #[arg(long)]
        netns: String,
        /// Label to heal it by.
        #[arg(long)]
        label: String,
        /// First MAC address.
        mac_a: String,
        /// Second MAC address.
        mac_b: String,
    },
    /// Remove the partition labelled LABEL.
    Heal {
        /// Namespace of the bridge.
        #[arg(long)]
        netns: String,
        /// Label given to `partition`.
        #[arg(long)]
        label: String,
    },
    /// Drop UDP between namespace NETNS and the witness at ADDR:PORT.
    IsolateWitness {
        /// Namespace of the host to cut off from the witness.
        #[arg(long)]
        netns: String,
        /// The witness's IPv4 address.
        #[arg(long)]
        addr: String,
        /// The witness's UDP port.
        #[arg(long)]
        port: u16,
    },
}

fn main() {
    let cli = Cli::parse();
    init_logging();
    let fault = match cli.fault {
        Cmd::LinkCut { netns, dev } => Fault::LinkCut { netns, dev },
        Cmd::LinkRestore { netns, dev } => Fault::LinkRestore { netns, dev },
        Cmd::Kill { pids } => Fault::Kill { pids },
        Cmd::Stop { pids } => Fault::Stop { pids },
        Cmd::Cont { pids } => Fault::Cont { pids },
        Cmd::Partition {
            netns,
            label,
            mac_a,
            mac_b,
        } => Fault::Partition {
            netns,
            mac_a,
            mac_b,
            label,
        },
        Cmd::Heal { netns, label } => Fault::Heal { netns, label },
        Cmd::IsolateWitness { netns, addr, port } => Fault::IsolateWitness { netns, addr, port },
    };
    match inject_and_record(&fault, &cli.host, "coral-fault", &cli.events) {
        Ok(ev) => println!("{} {}: {}", ev.event, ev.host, ev.detail),
        Err(e) => {
            error!(fault = fault.name(), host = %cli.host, "{e}");
            std::process::exit(1);
        }
    }
}

/// Logs as every program of the kit does (`workload::logging`, which this
/// crate cannot use: faultinject depends on no other crate of the kit):
/// standard error, `RUST_LOG` (default `info`), colour only on a terminal.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
