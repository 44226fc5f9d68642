//! Only correctly signed requests start traces (issue #8 item 6): forged,
//! altered, truncated, case-changed and replayed HMACs are refused by
//! `signed_unpack` and by the tower layer, which still serves the request;
//! the HMAC key is never stored in a notification.

use osprofiler::web::{self, generate_hmac, signed_pack, signed_unpack};
use serde_json::{json, Map, Value};

const KEY: &str = "hmac-S3cret-key";

fn signed(base_id: &str, key: &str) -> (String, String) {
    let mut fields = Map::new();
    fields.insert("base_id".into(), base_id.into());
    fields.insert("parent_id".into(), "p".into());
    let (info, hmac) = signed_pack(&fields, Some(key));
    (info, hmac.expect("signed"))
}

/// `(case, X-Trace-Info, X-Trace-HMAC)` that must all be refused by a server
/// whose keys are `[KEY]`.
fn hostile_headers() -> Vec<(&'static str, String, Option<String>)> {
    let (info, hmac) = signed("b", KEY);
    let (other_info, other_hmac) = signed("other-trace", KEY);
    let (_, foreign_hmac) = signed("b", "another-deployment-key");
    let json_text = r#"{"base_id": "b", "parent_id": "p"}"#;
    let mut one_changed = hmac.clone().into_bytes();
    one_changed[39] = if one_changed[39] == b'0' { b'1' } else { b'0' };
    let upper = hmac.to_uppercase();
    assert_ne!(upper, hmac, "the HMAC has a letter to upper-case");
    vec![
        ("missing HMAC", info.clone(), None),
        ("empty HMAC", info.clone(), Some(String::new())),
        ("blank HMAC", info.clone(), Some(" \t ".into())),
        ("forged zeros", info.clone(), Some("0".repeat(40))),
        (
            "forged with a guessed key",
            info.clone(),
            Some(generate_hmac(info.as_bytes(), "SECRET_KEY")),
        ),
        (
            "replayed from a deployment with another key",
            info.clone(),
            Some(foreign_hmac),
        ),
        (
            "one digit changed",
            info.clone(),
            Some(String::from_utf8(one_changed).unwrap()),
        ),
        ("truncated to 39", info.clone(), Some(hmac[..39].into())),
        ("truncated to 20", info.clone(), Some(hmac[..20].into())),
        ("truncated to 1", info.clone(), Some(hmac[..1].into())),
        ("extended", info.clone(), Some(format!("{hmac}0"))),
        ("doubled", info.clone(), Some(hmac.repeat(2))),
        ("upper-cased", info.clone(), Some(upper)),
        ("0x prefix", info.clone(), Some(format!("0x{}", &hmac[2..]))),
        (
            "HMAC of the JSON, not of the base64",
            info.clone(),
            Some(generate_hmac(json_text.as_bytes(), KEY)),
        ),
        (
            "HMAC of another trace's data",
            info.clone(),
            Some(other_hmac.clone()),
        ),
        ("data of another trace", other_info, Some(hmac.clone())),
        (
            "data re-padded (decodes the same, signs differently)",
            format!("{info}="),
            Some(hmac.clone()),
        ),
        ("HMAC in the data header", hmac.clone(), Some(hmac.clone())),
        ("missing data", String::new(), Some(hmac.clone())),
    ]
}

#[test]
fn signed_unpack_refuses_every_hostile_header() {
    let (info, hmac) = signed("b", KEY);
    let genuine = signed_unpack(Some(&info), Some(&hmac), &[KEY]).expect("genuine accepted");
    assert_eq!(genuine.base_id, "b");
    for (case, info, hmac) in hostile_headers() {
        let info = Some(info.as_str()).filter(|i| !i.is_empty());
        assert_eq!(
            signed_unpack(info, hmac.as_deref(), &[KEY]),
            None,
            "{case} must be refused"
        );
        // Extra keys on the server change nothing.
        assert_eq!(
            signed_unpack(info, hmac.as_deref(), &["k1", KEY, "k2"]),
            None,
            "{case} (several keys) must be refused"
        );
    }
}

#[test]
fn no_key_means_no_trust() {
    let (info, hmac) = signed("b", KEY);
    assert_eq!(signed_unpack::<&str>(Some(&info), Some(&hmac), &[]), None);
    // A signature under the empty key is refused by a server keyed KEY.
    let empty_key_hmac = generate_hmac(info.as_bytes(), "");
    assert_eq!(
        signed_unpack(Some(&info), Some(&empty_key_hmac), &[KEY]),
        None
    );
}

#[test]
fn genuine_headers_are_accepted_exactly_as_signed() {
    // The control for the refusals above: whitespace around the HMAC is
    // stripped (as Python does) and nothing else is tolerated.
    let (info, hmac) = signed("b", KEY);
    for padded in [
        format!(" {hmac}"),
        format!("{hmac}\r\n"),
        format!("\t{hmac} "),
    ] {
        assert!(signed_unpack(Some(&info), Some(&padded), &[KEY]).is_some());
    }
    let trace = signed_unpack(Some(&info), Some(&hmac), &["old", KEY]).unwrap();
    assert_eq!(trace.hmac_key, KEY);
}

#[cfg(feature = "tower")]
mod layer {
    use super::*;

    use std::convert::Infallible;
    use std::time::Duration;

    use http::{HeaderValue, Request, Response};
    use osprofiler::drivers::MemoryDriver;
    use osprofiler::web::TraceLayer;
    use osprofiler::{notifier, profiler};
    use serial_test::serial;
    use tower::{service_fn, Layer, ServiceExt};

    /// Serves one request; returns the status and whether the handler ran
    /// with an active profiler.
    fn serve(runtime: &tokio::runtime::Runtime, info: &str, hmac: Option<&str>) -> (u16, bool) {
        let mut request = Request::builder().uri("/servers");
        if !info.is_empty() {
            request = request.header("X-Trace-Info", info);
        }
        if let Some(hmac) = hmac {
            request = request.header("X-Trace-HMAC", HeaderValue::from_str(hmac).unwrap());
        }
        let service =
            TraceLayer::new(&format!("k1,{KEY}")).layer(service_fn(|_: Request<()>| async {
                Ok::<_, Infallible>(Response::new(profiler::get().is_some()))
            }));
        let response = runtime
            .block_on(service.oneshot(request.body(()).unwrap()))
            .unwrap();
        (response.status().as_u16(), response.into_body())
    }

    #[test]
    #[serial]
    fn the_layer_serves_hostile_requests_untraced() {
        let store = MemoryDriver::new();
        notifier::set(store.clone());
        web::reset_global();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();

        for (case, info, hmac) in hostile_headers() {
            let (status, traced) = serve(&runtime, &info, hmac.as_deref());
            assert_eq!(status, 200, "{case}: served");
            assert!(!traced, "{case}: no profiler in the handler");
        }
        notifier::flush(Duration::from_secs(10)).unwrap();
        assert_eq!(store.payloads(), Vec::<Value>::new(), "no trace started");

        // Control: the genuine header does start a trace.
        let (info, hmac) = signed("b", KEY);
        assert_eq!(serve(&runtime, &info, Some(&hmac)), (200, true));
        notifier::flush(Duration::from_secs(10)).unwrap();
        let payloads = store.payloads();
        assert_eq!(payloads.len(), 2);
        assert_eq!(payloads[0]["base_id"], "b");
        // The key that validated the request is never stored.
        assert!(!serde_json::to_string(&payloads).unwrap().contains(KEY));
        notifier::reset();
    }
}

#[test]
#[serial_test::serial]
fn notifications_never_carry_the_hmac_key() {
    use osprofiler::drivers::MemoryDriver;
    use osprofiler::{notifier, profiler};

    let store = MemoryDriver::with_identity(Some("nova"), Some("api"));
    notifier::set(store.clone());
    profiler::init(KEY, Some("b"), None);
    {
        let _outer = profiler::Trace::new("rpc", Some(json!({"method": "boot"})));
        profiler::start("db", None);
        profiler::stop(Some(json!({"result": "ok"})));
    }
    // The headers a client would send carry only the HMAC, not the key.
    let headers = web::get_trace_id_headers();
    assert_eq!(headers.len(), 2, "an active profiler signs");
    profiler::clean();
    notifier::flush(std::time::Duration::from_secs(10)).unwrap();
    let payloads = store.payloads();
    assert_eq!(payloads.len(), 4);
    let stored = serde_json::to_string(&payloads).unwrap();
    assert!(!stored.contains(KEY), "{stored}");
    assert!(!format!("{headers:?}").contains(KEY));
    notifier::reset();
}
