//! `osprofiler demo`: a two-service cloud in one process on loopback, to
//! see a whole trace with no server installed.
//!
//! `api` (public: `POST /servers`, `GET /servers`) calls `compute` through
//! the traced HTTP client; `compute` runs `#[trace_impl]` methods and keeps
//! its records in SQLite through traced SQL. Both sit behind the
//! osprofiler server layer and record into the same store, as services
//! `api` and `compute` of project `demo`.

mod api;
mod compute;
mod stderr_log;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use osprofiler::config::ProfilerConfig;
use osprofiler::drivers::{self, Driver};
use osprofiler::{notifier, profiler, web};
use tokio::net::TcpListener;

use super::store::StoreArgs;
use crate::render;

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    store: StoreArgs,

    /// Key the services trust and the demo client signs with [default:
    /// env OSPROFILER_HMAC_KEY, else SECRET_KEY].
    #[arg(long, env = "OSPROFILER_HMAC_KEY", hide_env_values = true)]
    hmac_key: Option<String>,

    /// Keep the api listening for traced requests from outside (curl with
    /// `osprofiler trace headers`, Python osprofiler clients) until
    /// Ctrl-C/SIGTERM, instead of sending one request itself.
    #[arg(long)]
    serve: bool,

    /// Address of the api with --serve.
    #[arg(long, default_value = "127.0.0.1:8080", requires = "serve")]
    listen: SocketAddr,

    /// Oslo.messaging transport URL (messaging:// driver only), e.g.
    /// rabbit://user:password@host:5672/
    #[arg(long)]
    transport_url: Option<String>,

    /// Most notifications kept waiting for the store (while it is slow or
    /// down); beyond it they are dropped and counted.
    #[arg(long, default_value_t = notifier::Options::default().capacity)]
    buffer_capacity: usize,

    /// Most seconds to wait at exit for notifications to reach the store.
    #[arg(long, default_value_t = 10)]
    flush_timeout: u64,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let key = match args.hmac_key.filter(|k| !k.is_empty()) {
        Some(key) => key,
        None => {
            eprintln!("warning: no --hmac-key or OSPROFILER_HMAC_KEY; using SECRET_KEY");
            "SECRET_KEY".to_string()
        }
    };
    let connection_string = args.store.connection_string()?;
    let mut conf = ProfilerConfig::default();
    conf.transport_url = args.transport_url.clone();
    // The library reports store failures and dropped notifications
    // through `log`; show them.
    stderr_log::install();
    notifier::configure(notifier::Options::default().capacity(args.buffer_capacity));
    let open = |service| {
        drivers::get_driver(
            &connection_string,
            Some("demo"),
            Some(service),
            Some(notifier::host()),
            &conf,
        )
    };
    let store = open("api")?;
    notifier::set_shared(store.clone());
    let compute_tag =
        notifier::add_service(open("compute")?).context("cannot register the compute service")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let compute_listener = TcpListener::bind("127.0.0.1:0").await?;
        let compute_url = format!("http://{}", compute_listener.local_addr()?);
        let compute = compute::router(compute::manager().await?, &key, compute_tag);
        let api_addr = if args.serve {
            args.listen
        } else {
            "127.0.0.1:0".parse()?
        };
        let api_listener = TcpListener::bind(api_addr)
            .await
            .with_context(|| format!("cannot listen on {api_addr}"))?;
        let api_url = format!("http://{}", api_listener.local_addr()?);
        let api = api::router(api::Api::new(compute_url), &key);

        // Two stop signals: api stops first and finishes its requests while
        // compute still answers them, so a request in flight at shutdown
        // is never cut off half way (a 502 with half a trace).
        let (stop_api, api_stopped) = tokio::sync::watch::channel(false);
        let (stop_compute, compute_stopped) = tokio::sync::watch::channel(false);
        let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let compute_server = tokio::spawn(
            axum::serve(compute_listener, compute)
                .with_graceful_shutdown(until_stopped(compute_stopped))
                .into_future(),
        );
        let api_server = tokio::spawn(
            axum::serve(api_listener, api)
                .with_graceful_shutdown(until_stopped(api_stopped))
                .into_future(),
        );

        let result = if args.serve {
            serve(&api_url, &key).await
        } else {
            one_request(&api_url, &key).await.map(Some)
        };
        let _ = stop_api.send(true);
        let _ = api_server.await;
        let _ = stop_compute.send(true);
        let _ = compute_server.await;
        result
    });
    // The services are gone: hand every notification to the store.
    if let Err(e) = flush(Duration::from_secs(args.flush_timeout)) {
        eprintln!("warning: {e}");
    }
    if args.serve {
        // One line for operators and the reliability tests: what reached
        // the store, what was lost.
        let stats = notifier::stats();
        eprintln!(
            "notifications: sent={} dropped={} undelivered={} failed_calls={}",
            stats.sent, stats.dropped, stats.queued, stats.failed
        );
    }
    let Some(trace_id) = outcome? else {
        return Ok(());
    };
    show(
        store.as_ref(),
        &trace_id,
        &connection_string,
        args.store.connection_string.is_some(),
    )
}

/// Waits, at most `timeout`, until every notification reached the store,
/// retrying while the store fails: one `notifier::flush` returns after a
/// single failed delivery, which would lose the queue of a store that is
/// restarting at shutdown.
fn flush(timeout: Duration) -> Result<(), notifier::FlushError> {
    let deadline = Instant::now() + timeout;
    let pause = Duration::from_millis(200);
    loop {
        match notifier::flush(deadline.saturating_duration_since(Instant::now())) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() + pause >= deadline => return Err(e),
            Err(_) => std::thread::sleep(pause),
        }
    }
}

/// Sends `POST /servers` as a traced client, as OpenStack clients do with
/// `--profile KEY`: a profiler for the signed headers, no span of its own.
async fn one_request(api_url: &str, key: &str) -> anyhow::Result<String> {
    let trace_id = profiler::init(key, None, None).base_id();
    let mut request = reqwest::Client::new()
        .post(format!("{api_url}/servers"))
        .json(&serde_json::json!({"name": "demo-vm-1"}));
    for (name, value) in web::get_trace_id_headers() {
        request = request.header(name, value);
    }
    profiler::clean();
    let response = request.send().await.context("the api did not answer")?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.as_u16() != 201 {
        bail!("POST /servers answered {status}: {body}");
    }
    println!("POST {api_url}/servers -> {status} {body}");
    Ok(trace_id)
}

/// `--serve`: waits for Ctrl-C or SIGTERM.
async fn serve(api_url: &str, key: &str) -> anyhow::Result<Option<String>> {
    println!("api listening on {api_url} (POST /servers {{\"name\": ...}}, GET /servers)");
    println!("trace a request with:");
    println!("  curl -X POST {api_url}/servers -H 'Content-Type: application/json' -d '{{\"name\": \"vm\"}}' \\");
    println!(
        "       $(osprofiler trace headers --hmac-key {} | sed 's/^/-H /; s/: /:/' | tr '\\n' ' ')",
        shell_quote(key)
    );
    println!("stop with Ctrl-C");
    shutdown_signal().await;
    eprintln!("stopping: flushing notifications");
    Ok(None)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn shell_quote(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Prints the trace id, its tree, and how to open it in a browser.
fn show(
    store: &dyn Driver,
    trace_id: &str,
    connection_string: &str,
    explicit_store: bool,
) -> anyhow::Result<()> {
    let report = store.get_report(trace_id)?.to_value();
    println!();
    println!("Trace ID: {trace_id}");
    print!(
        "{}",
        render::tree::tree(
            &report,
            std::io::IsTerminal::is_terminal(&std::io::stdout())
        )
    );
    let store_flag = if explicit_store {
        format!(
            " --connection-string {}",
            shell_quote(&drivers::redact_secrets(connection_string))
        )
    } else {
        String::new()
    };
    println!();
    println!("To display the trace in a browser, run:");
    println!("  osprofiler trace show --html --out trace.html{store_flag} {trace_id}");
    Ok(())
}
