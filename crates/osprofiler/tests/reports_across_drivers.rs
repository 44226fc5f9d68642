//! The same notifications stored through Redis, SQLite, PostgreSQL and
//! MariaDB give the same report: same tree, timings, errors and stats.
//!
//! Upstream's SQL driver shows less in `meta.raw_payload.*` (the `data`
//! column: the payload without its id, name, timestamp and project
//! columns) and takes `host` from the driver, not from `info.host`; the
//! comparison covers everything both layouts carry.
#![cfg(all(
    feature = "redis",
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql"
))]

mod servers;

use osprofiler::config::ProfilerConfig;
use osprofiler::drivers::{get_driver, Driver};
use osprofiler::notification::Notification;
use serde_json::{json, Value};

const HOST: &str = "node-1";

fn event(
    name: &str,
    base: &str,
    trace: &str,
    parent: &str,
    micros: u32,
    info: Value,
) -> Notification {
    let mut info = info.as_object().cloned().unwrap_or_default();
    info.insert("host".into(), HOST.into());
    Notification {
        name: name.into(),
        base_id: base.into(),
        trace_id: trace.into(),
        parent_id: parent.into(),
        timestamp: format!("2026-11-21T10:00:00.{micros:06}"),
        info: Some(info),
    }
}

fn trace(base: &str) -> Vec<Notification> {
    let id = |n: u32| format!("00000000-0000-4000-8000-{n:012}");
    let (wsgi, db, rpc, orphan) = (id(1), id(2), id(3), id(4));
    vec![
        event(
            "wsgi-start",
            base,
            &wsgi,
            base,
            0,
            json!({"request": {"path": "/servers", "query": "", "method": "GET", "scheme": "http"}}),
        ),
        event(
            "db-start",
            base,
            &db,
            &wsgi,
            1_500,
            json!({"db": {"statement": "SELECT é", "params": {}}}),
        ),
        event("db-stop", base, &db, &wsgi, 4_900, json!({})),
        event(
            "rpc-start",
            base,
            &rpc,
            &wsgi,
            5_000,
            json!({"function": {"name": "svc.boom", "args": "()", "kwargs": "{}"}}),
        ),
        event(
            "rpc-stop",
            base,
            &rpc,
            &wsgi,
            9_100,
            json!({"etype": "ValueError", "message": "boom"}),
        ),
        // A start whose stop never arrived, under an unknown parent.
        event("rpc-start", base, &orphan, &id(99), 9_200, json!({})),
        event("wsgi-stop", base, &wsgi, base, 12_345, json!({})),
    ]
}

/// What every layout carries, node by node, siblings in a fixed order.
fn essentials(node: &Value) -> Value {
    let info = &node["info"];
    let mut payload_info = serde_json::Map::new();
    for (key, value) in info.as_object().into_iter().flatten() {
        if let Some(name) = key.strip_prefix("meta.raw_payload.") {
            payload_info.insert(name.to_string(), value["info"].clone());
        }
    }
    let mut children: Vec<Value> = node["children"]
        .as_array()
        .into_iter()
        .flatten()
        .map(essentials)
        .collect();
    children.sort_by_key(|c| {
        (
            c["started"].as_i64(),
            c["trace_id"].as_str().map(String::from),
        )
    });
    json!({
        "trace_id": node["trace_id"], "parent_id": node["parent_id"],
        "name": info["name"], "project": info["project"], "service": info["service"], "host": info["host"],
        "started": info["started"], "finished": info["finished"], "exception": info["exception"],
        "payload_info": payload_info, "children": children,
    })
}

fn report(driver: &dyn Driver, base: &str) -> Value {
    let value = driver.get_report(base).unwrap().to_value();
    json!({"top": value["info"], "stats": value["stats"], "tree": essentials(&value)})
}

fn sql_database(admin: &str, kind: &str) -> (String, Box<dyn FnOnce()>) {
    let name = servers::unique("osprofiler_x_");
    match kind {
        "postgres" => {
            servers::require("PostgreSQL", "127.0.0.1:5432");
            let mut client = postgres::Client::connect(admin, postgres::NoTls)
                .expect("PostgreSQL at 127.0.0.1:5432");
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap();
            let drop_name = name.clone();
            let admin = admin.to_string();
            (
                format!("postgresql://postgres@127.0.0.1:5432/{name}"),
                Box::new(move || {
                    if let Ok(mut c) = postgres::Client::connect(&admin, postgres::NoTls) {
                        let _ = c.batch_execute(&format!(
                            "DROP DATABASE IF EXISTS {drop_name} WITH (FORCE)"
                        ));
                    }
                }),
            )
        }
        _ => {
            use mysql::prelude::Queryable;
            servers::require("MariaDB", "127.0.0.1:3306");
            let opts = mysql::Opts::from_url(admin).unwrap();
            let mut conn = mysql::Conn::new(opts.clone()).expect("MariaDB at 127.0.0.1:3306");
            conn.query_drop(format!("CREATE DATABASE {name}")).unwrap();
            let drop_name = name.clone();
            (
                format!("mysql://root@127.0.0.1:3306/{name}"),
                Box::new(move || {
                    if let Ok(mut c) = mysql::Conn::new(opts) {
                        let _ = c.query_drop(format!("DROP DATABASE IF EXISTS {drop_name}"));
                    }
                }),
            )
        }
    }
}

#[test]
fn every_store_gives_the_same_report() {
    servers::require_redis();
    let base = servers::unique_uuid();
    let events = trace(&base);
    let conf = ProfilerConfig::default();
    let dir = servers::temp_dir("reports-across");
    let (pg, drop_pg) = sql_database(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        "postgres",
    );
    let (my, drop_my) = sql_database("mysql://root@127.0.0.1:3306/mysql", "mysql");
    let stores = [
        "redis://127.0.0.1:6379/14".to_string(),
        format!("sqlite://{}", dir.join("traces.db").display()),
        pg,
        my,
    ];
    let mut reports = Vec::new();
    for cs in &stores {
        let driver = get_driver(cs, Some("nova"), Some("api"), Some(HOST), &conf).unwrap();
        driver
            .notify(&events)
            .unwrap_or_else(|e| panic!("{cs}: {e}"));
        reports.push((cs.clone(), report(driver.as_ref(), &base)));
    }
    drop_pg();
    drop_my();
    std::fs::remove_dir_all(&dir).ok();

    let (redis_cs, redis_report) = &reports[0];
    assert_eq!(
        redis_report["stats"],
        json!({"wsgi": {"count": 1, "duration": 12}, "db": {"count": 1, "duration": 3}, "rpc": {"count": 2, "duration": 4}})
    );
    assert_eq!(
        redis_report["tree"]["children"][0]["children"][1]["exception"],
        "ValueError"
    );
    for (cs, other) in &reports[1..] {
        assert_eq!(other, redis_report, "{cs} differs from {redis_cs}");
    }
}
