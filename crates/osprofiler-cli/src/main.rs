//! `osprofiler`: the command-line interface of osprofiler-rs, compatible
//! with Python OSProfiler's `osprofiler` command.
//!
//! Each subcommand lives in its own module under `commands/`; this file only
//! parses arguments, dispatches and reports errors.

mod commands;
mod render;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command-line interface to the OpenStack Profiler.
#[derive(Debug, Parser)]
#[command(
    name = "osprofiler",
    disable_version_flag = true,
    arg_required_else_help = true
)]
struct Cli {
    /// Print the version and exit.
    #[arg(short = 'v', long = "version")]
    version: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with traces.
    #[command(subcommand)]
    Trace(commands::TraceCommand),
    /// Run a two-service demo cloud (api -> compute -> SQLite) that records
    /// one trace into the store and shows it.
    Demo(commands::demo::Args),
}

/// `trace show` builds reports of up to millions of events out of as many
/// small strings: mimalloc makes and frees them in about half the time
/// glibc's malloc takes (`benches/report.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        // Python's `osprofiler -v` prints the bare version too.
        println!("{}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let result = match cli.command {
        Some(Command::Trace(command)) => command.run(),
        Some(Command::Demo(args)) => commands::demo::run(args),
        // `arg_required_else_help` prints help when there are no arguments;
        // this is only reached with flags but no command.
        None => Err(anyhow::anyhow!("no command given; see `osprofiler --help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the error and its causes, worded as upstream's
            // messages (which scripts may match), no backtrace.
            eprintln!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
