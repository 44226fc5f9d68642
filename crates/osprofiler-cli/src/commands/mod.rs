//! One module per subcommand. To add one: a module with an `Args` struct
//! and a `run(args)`, and a variant here.

pub(crate) mod demo;
pub(crate) mod headers;
pub(crate) mod list;
pub(crate) mod show;
mod store;

use clap::Subcommand;

/// `osprofiler trace ...`
#[derive(Debug, Subcommand)]
pub(crate) enum TraceCommand {
    /// Print signed X-Trace-Info / X-Trace-HMAC headers that make a request
    /// start (or continue) a trace.
    Headers(headers::Args),
    /// Display a trace as a tree, or in JSON, HTML, DOT or Chrome format.
    Show(show::Args),
    /// List all traces (upstream's `base_id`/`timestamp` table).
    List(list::Args),
}

impl TraceCommand {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        match self {
            TraceCommand::Headers(args) => headers::run(args),
            TraceCommand::List(args) => list::run(args),
            TraceCommand::Show(args) => show::run(args),
        }
    }
}
