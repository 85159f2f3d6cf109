//! `coral-exp`: build topologies, inject faults, run experiments, plot and
//! report. The command contract is docs/CLI.md.

use clap::{Parser, Subcommand};
use experiments::{commands, plot, report};

/// Drive the CoRAL reproduction kit: topologies, faults, experiments, figures.
#[derive(Parser, Debug)]
#[command(name = "coral-exp", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build a topology, start a service on it, write topology.json, return.
    Up(commands::UpArgs),
    /// Tear a topology down (or every stale one with --stale).
    Down(commands::DownArgs),
    /// Run a command inside one host of the topology.
    Exec(commands::ExecArgs),
    /// Inject a fault into a running topology.
    Fault(commands::FaultArgs),
    /// A fresh CoRAL node on HOST joins the simplex node (reintegration).
    Join(commands::JoinArgs),
    /// Run an experiment and write its results tree.
    Run(commands::RunArgs),
    /// Draw the figures from the results tree into paper-figures/.
    Plot(plot::PlotArgs),
    /// Write results/REPORT.md from the results tree.
    Report(report::ReportArgs),
    /// Compare two results trees metric by metric (run-to-run agreement).
    Compare(report::agreement::CompareArgs),
}

fn main() {
    let cli = Cli::parse();
    workload::logging::init();
    let result = match cli.command {
        Command::Up(a) => commands::up(a),
        Command::Down(a) => commands::down(a),
        Command::Exec(a) => commands::exec(a),
        Command::Fault(a) => commands::fault(a),
        Command::Join(a) => commands::join(a),
        Command::Run(a) => commands::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Report(a) => report::run(a),
        Command::Compare(a) => report::agreement::run(a),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::exit(1);
        }
    }
}
