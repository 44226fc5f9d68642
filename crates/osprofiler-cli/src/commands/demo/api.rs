//! The demo's `api` service: validates requests and calls compute through
//! the traced HTTP client.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use osprofiler::http_client::TracingMiddleware;
use osprofiler::web::TraceLayer;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde_json::Value;

use super::compute::CreateServer;

/// Where api finds compute, and how it calls it.
#[derive(Debug)]
pub(crate) struct Api {
    compute_url: String,
    client: ClientWithMiddleware,
}

impl Api {
    pub(crate) fn new(compute_url: String) -> Arc<Api> {
        let client = ClientBuilder::new(reqwest::Client::new())
            .with(TracingMiddleware::new())
            .build();
        Arc::new(Api {
            compute_url,
            client,
        })
    }
}

/// The public API, its requests traced into the default (`api`) service.
pub(crate) fn router(api: Arc<Api>, hmac_keys: &str) -> Router {
    Router::new()
        .route("/servers", get(list).post(create))
        .with_state(api)
        .layer(TraceLayer::new(hmac_keys))
}

type Reply = Result<(StatusCode, Json<Value>), (StatusCode, String)>;

async fn create(State(api): State<Arc<Api>>, Json(body): Json<CreateServer>) -> Reply {
    if body.name.trim().is_empty() {
        return Err((StatusCode::BAD_REQUEST, "name must not be empty".into()));
    }
    forward(
        api.client
            .post(format!("{}/servers", api.compute_url))
            .json(&serde_json::json!({"name": body.name})),
    )
    .await
}

async fn list(State(api): State<Arc<Api>>) -> Reply {
    forward(api.client.get(format!("{}/servers", api.compute_url))).await
}

async fn forward(request: reqwest_middleware::RequestBuilder) -> Reply {
    let bad_gateway =
        |e: &dyn std::fmt::Display| (StatusCode::BAD_GATEWAY, format!("compute: {e}"));
    let response = request.send().await.map_err(|e| bad_gateway(&e))?;
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let body: Value = response.json().await.map_err(|e| bad_gateway(&e))?;
    Ok((status, Json(body)))
}
