//! Opening the trace store named on the command line.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use osprofiler::config::ProfilerConfig;
use osprofiler::drivers::{self, Driver};

/// `--connection-string` and `OSPROFILER_CONNECTION_STRING`, shared by the
/// commands that read traces.
#[derive(Debug, clap::Args)]
pub(crate) struct StoreArgs {
    /// Storage driver's connection string [default: env
    /// OSPROFILER_CONNECTION_STRING, else the embedded store in the user's
    /// data directory].
    #[arg(long, env = "OSPROFILER_CONNECTION_STRING", hide_env_values = true)]
    pub(crate) connection_string: Option<String>,
}

impl StoreArgs {
    /// The connection string to use: given, from the environment, or the
    /// embedded default store.
    pub(crate) fn connection_string(&self) -> anyhow::Result<String> {
        match self.connection_string.as_deref().filter(|c| !c.is_empty()) {
            Some(cs) => Ok(cs.to_string()),
            None => drivers::default_connection_string().context(
                "You must provide connection string via either --connection-string or via \
                 env[OSPROFILER_CONNECTION_STRING] (no home directory for the default store)",
            ),
        }
    }

    /// Opens the driver. Errors name the connection string with any
    /// password hidden.
    pub(crate) fn open(&self, conf: &ProfilerConfig) -> anyhow::Result<Arc<dyn Driver>> {
        let cs = self.connection_string()?;
        Ok(drivers::get_driver(&cs, None, None, None, conf)?)
    }
}

/// Runs `work` while a spinner turns on stderr (only when stderr is a
/// terminal), so a slow store does not look like a hang.
pub(crate) fn with_progress<T>(what: &str, work: impl FnOnce() -> T) -> T {
    if !std::io::stderr().is_terminal() {
        return work();
    }
    let done = Arc::new(AtomicBool::new(false));
    let spinner = {
        let done = done.clone();
        let what = what.to_string();
        std::thread::spawn(move || {
            // Quick answers show nothing at all.
            std::thread::sleep(Duration::from_millis(300));
            let frames = ['|', '/', '-', '\\'];
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                eprint!("\r{} {what}...", frames[i % frames.len()]);
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            if i > 0 {
                eprint!("\r{}\r", " ".repeat(what.len() + 6));
            }
        })
    };
    let result = work();
    done.store(true, Ordering::Relaxed);
    let _ = spinner.join();
    result
}
