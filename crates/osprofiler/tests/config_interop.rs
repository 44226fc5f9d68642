//! `ProfilerConfig::from_ini_str` against oslo.config reading the same
//! file with osprofiler 4.4.0's options registered.

mod common {
    pub mod python;
}

use common::python;
use osprofiler::config::ProfilerConfig;
use serde_json::{json, Value};

/// Our config as the values oslo.config reports (connection_string's
/// upstream default is `messaging://`, ours is "not set").
fn as_oslo_values(c: &ProfilerConfig) -> Value {
    json!({
        "enabled": c.enabled,
        "trace_sqlalchemy": c.trace_sqlalchemy,
        "trace_requests": c.trace_requests,
        "hmac_keys": c.hmac_keys,
        "connection_string": c.connection_string.as_deref().unwrap_or("messaging://"),
        "es_doc_type": c.es_doc_type,
        "es_scroll_time": c.es_scroll_time,
        "es_scroll_size": c.es_scroll_size,
        "socket_timeout": c.socket_timeout,
        "sentinel_service_name": c.sentinel_service_name,
        "filter_error_trace": c.filter_error_trace,
        "service_name_prefix": c.service_name_prefix,
        "transport_url": c.transport_url,
    })
}

#[test]
fn files_read_like_oslo_config() {
    let files = [
        "",
        "[profiler]\nenabled = true\n",
        "[DEFAULT]\ntransport_url = rabbit://u:p@h:5672/\ndebug = True\n\n[profiler]\n\
         enabled = YES\ntrace_sqlalchemy: on\ntrace_requests = 1\nhmac_keys = \"k1, k2\"\n\
         connection_string = redis://:pw@127.0.0.1:6379/0\nes_doc_type = doc\nes_scroll_time = 5m\n\
         es_scroll_size = 42\nsocket_timeout = 2.5\nsentinel_service_name = master2\n\
         filter_error_trace = True\nunknown_option = whatever\n; comment\n# comment\n\
         [profiler_otlp]\nservice_name_prefix = 'region1'\n[other]\nenabled = nope\n",
        "[PROFILER]\nenabled = on\nhmac_keys = a\nhmac_keys = b # not a comment\n",
        "[profiler]\nprofiler_enabled = true\n",
        "[profiler]\nconnection_string = x\n   continued\n\tagain\n\nenabled = off\n",
        "[profiler]\nhmac_keys = 'mismatched\"\n",
        "[profiler]\nenabled = maybe\n",
        "[profiler]\nes_scroll_size = ten\n",
        "[profiler]\nsocket_timeout = fast\n",
        "enabled = true\n",
        "[profiler\nenabled = true\n",
        "[profiler]\njust words\n",
        "  indented\n",
    ];
    let requests: Vec<Value> = files.iter().map(|t| json!({ "text": t })).collect();
    let answers = python::run_json_lines("config_referee.py", &[], &requests);
    for (text, answer) in files.iter().zip(answers) {
        match (ProfilerConfig::from_ini_str(text), answer.get("values")) {
            (Ok(ours), Some(theirs)) => assert_eq!(&as_oslo_values(&ours), theirs, "{text:?}"),
            (Err(_), None) => {}
            (ours, _) => panic!("{text:?}: ours {ours:?}, oslo.config {answer}"),
        }
    }
}
