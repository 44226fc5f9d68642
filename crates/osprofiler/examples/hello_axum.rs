//! A hello-world axum server for load generators (`scripts/bench` runs wrk
//! against it): `cargo run --release --features tower --example hello_axum
//! -- [--layer] [PORT]`.
//!
//! With `--layer` the app is wrapped in `web::TraceLayer` (key
//! `SECRET_KEY`) and notifications go to a driver that discards them, so
//! what wrk measures is the layer, not a backend. Runs on one worker
//! thread.

use axum::routing::get;
use axum::Router;
use osprofiler::drivers::DiscardDriver;
use osprofiler::{notifier, web};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let layer = args.iter().any(|a| a == "--layer");
    let port: u16 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(8089);
    let mut app = Router::new().route("/", get(|| async { "hello" }));
    if layer {
        notifier::set(DiscardDriver);
        app = app.layer(web::TraceLayer::new("SECRET_KEY"));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        axum::serve(listener, app).await.expect("serve");
    });
}
