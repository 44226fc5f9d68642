//! `osprofiler trace headers`: the signed headers a client sends so that
//! the services it calls record a trace. Each line is a ready `Name: value`
//! header (for `curl -H`).

use std::io::Write;

use anyhow::{bail, Context};
use clap::builder::NonEmptyStringValueParser;
use osprofiler::profiler::Id;
use osprofiler::web;

/// Arguments of `trace headers`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Key that signs the headers; one of the services' `hmac_keys`.
    #[arg(long, env = "OSPROFILER_HMAC_KEY", hide_env_values = true)]
    hmac_key: Option<String>,

    /// Trace id to use [default: a fresh uuid4, printed on stderr].
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    base_id: Option<String>,

    /// Element the request continues [default: the base id].
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    parent_id: Option<String>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let Some(key) = args.hmac_key.filter(|k| !k.is_empty()) else {
        bail!("no HMAC key: pass --hmac-key or set OSPROFILER_HMAC_KEY");
    };
    let base_id = match args.base_id {
        Some(id) => id,
        None => {
            let id = Id::random().to_string();
            eprintln!("Trace ID: {id}");
            id
        }
    };
    let parent_id = args.parent_id.as_deref().unwrap_or(&base_id);
    let (info, hmac) =
        web::trace_headers(&base_id, parent_id, &key).context("cannot sign the headers")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}: {info}", web::X_TRACE_INFO)?;
    writeln!(out, "{}: {hmac}", web::X_TRACE_HMAC)?;
    Ok(())
}
