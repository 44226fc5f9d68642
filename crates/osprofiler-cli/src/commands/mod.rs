//! One module per subcommand. To add one: a module with an `Args` struct
//! and a `run(args)`, and a variant here.

pub(crate) mod headers;

use clap::Subcommand;

/// `osprofiler trace ...`
#[derive(Debug, Subcommand)]
pub(crate) enum TraceCommand {
    /// Print signed X-Trace-Info / X-Trace-HMAC headers that make a request
    /// start (or continue) a trace.
    Headers(headers::Args),
}

impl TraceCommand {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        match self {
            TraceCommand::Headers(args) => headers::run(args),
        }
    }
}
