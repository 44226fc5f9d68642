//! The demo's `compute` service: keeps servers in SQLite through traced
//! SQL, behind the osprofiler server layer.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use osprofiler::notifier::ServiceTag;
use osprofiler::sql::sqlx::{query, Traced};
use osprofiler::trace_impl;
use osprofiler::web::TraceLayer;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};
use sqlx::Row;

/// A server record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Server {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) status: String,
}

/// Body of `POST /servers`.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateServer {
    pub(crate) name: String,
}

/// The compute manager; every public method is a traced `rpc` element, as
/// upstream services get with `trace_cls("rpc")`.
#[derive(Debug)]
pub(crate) struct ComputeManager {
    db: Traced<SqlitePool>,
}

#[trace_impl("rpc")]
impl ComputeManager {
    pub(crate) async fn create_server(&self, name: String) -> Result<Server, sqlx::Error> {
        let host = self.schedule(&name);
        let id = query("INSERT INTO servers (name, host, status) VALUES (?, ?, ?)")
            .bind(name.clone())
            .bind(host.clone())
            .bind("ACTIVE")
            .execute(&self.db)
            .await?
            .last_insert_rowid();
        Ok(Server {
            id,
            name,
            host,
            status: "ACTIVE".into(),
        })
    }

    pub(crate) async fn list_servers(&self) -> Result<Vec<Server>, sqlx::Error> {
        let rows = query("SELECT id, name, host, status FROM servers ORDER BY id")
            .fetch_all(&self.db)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Server {
                id: r.get(0),
                name: r.get(1),
                host: r.get(2),
                status: r.get(3),
            })
            .collect())
    }

    /// Picks a hypervisor; a plain sync method, traced all the same.
    pub(crate) fn schedule(&self, name: &str) -> String {
        let hosts = ["node-1", "node-2", "node-3"];
        hosts[name.len() % hosts.len()].to_string()
    }
}

/// Starts the manager on a fresh in-memory database.
pub(crate) async fn manager() -> anyhow::Result<Arc<ComputeManager>> {
    // One connection: an in-memory SQLite database lives per connection.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await?;
    sqlx::query("CREATE TABLE servers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, host TEXT NOT NULL, status TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    Ok(Arc::new(ComputeManager {
        db: Traced::new(pool),
    }))
}

/// The compute API, its requests traced into the `compute` service.
pub(crate) fn router(manager: Arc<ComputeManager>, hmac_keys: &str, service: ServiceTag) -> Router {
    Router::new()
        .route("/servers", get(list).post(create))
        .with_state(manager)
        .layer(TraceLayer::new(hmac_keys).service(service))
}

async fn create(
    State(manager): State<Arc<ComputeManager>>,
    Json(body): Json<CreateServer>,
) -> Result<(StatusCode, Json<Server>), (StatusCode, String)> {
    manager
        .create_server(body.name)
        .await
        .map(|server| (StatusCode::CREATED, Json(server)))
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn list(
    State(manager): State<Arc<ComputeManager>>,
) -> Result<Json<Vec<Server>>, (StatusCode, String)> {
    manager
        .list_servers()
        .await
        .map(Json)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
