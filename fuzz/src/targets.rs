//! Fuzz target bodies: each takes arbitrary bytes, must not panic, and
//! asserts properties that hold for every input. The libFuzzer binaries in
//! `fuzz/fuzz_targets/` call them, and `crates/osprofiler/tests/hostile_input.rs`
//! includes this file to run them on proptest inputs in CI, so both runs
//! check the same things.
//!
//! Most targets read the first byte as a mode: a raw mode that hands the
//! bytes to the parser as they are, and structured modes that build
//! near-valid input from the bytes (random bytes alone almost never get
//! past a base64/JSON/HMAC check to the code behind it).

use base64::Engine;
use osprofiler::config::ProfilerConfig;
use osprofiler::report::{Event, ReportBuilder};
use osprofiler::web::{generate_hmac, signed_pack, signed_unpack, MAX_HEADER_LEN};
use serde_json::{json, Map, Value};

/// Structured choices read from fuzz bytes; past the end every read is 0.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads `data` from the start.
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn below(&mut self, n: usize) -> usize {
        let wide = u16::from_le_bytes([self.byte(), self.byte()]);
        usize::from(wide) % n.max(1)
    }

    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A length-prefixed chunk of at most `max` bytes.
    fn chunk(&mut self, max: usize) -> &'a [u8] {
        let len = self.below(max + 1).min(self.data.len());
        let (chunk, rest) = self.data.split_at(len);
        self.data = rest;
        chunk
    }

    fn text(&mut self, max: usize) -> String {
        String::from_utf8_lossy(self.chunk(max)).into_owned()
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// What Python's `str.strip()` removes, for the header oracle.
fn python_strip(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || matches!(c, '\x1c'..='\x1f'))
}

// ---------------------------------------------------------------------------
// Header decoding and HMAC validation

/// `signed_unpack` on hostile headers, and the pack/unpack round trip.
///
/// Properties: an accepted header was signed (its stripped HMAC is the HMAC
/// of the data under the key reported, which is one of the server's keys);
/// a correctly signed JSON object is accepted exactly when it has the
/// allowed shape; a packed header unpacks with its key to the same ids and
/// is refused with any other key and after any change to its HMAC (one
/// character, truncation, upper case) or to its data.
pub fn headers(data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => raw_headers(&mut input),
        1 => signed_json(&mut input),
        _ => round_trip(&mut input),
    }
}

fn raw_headers(input: &mut Input<'_>) {
    let info = input.text(MAX_HEADER_LEN + 64);
    let hmac = input.text(64);
    let keys_text = input.text(64);
    let keys: Vec<&str> = keys_text.split(',').collect();
    // Half the time the header is signed right, so decoding is reached.
    let hmac = if input.flag() {
        generate_hmac(info.as_bytes(), keys[0])
    } else {
        hmac
    };
    for (info, hmac) in [
        (Some(info.as_str()), Some(hmac.as_str())),
        (None, Some(hmac.as_str())),
        (Some(info.as_str()), None),
    ] {
        if let Some(trace) = signed_unpack(info, hmac, &keys) {
            let (info, hmac) = (info.unwrap_or(""), hmac.unwrap_or(""));
            assert!(keys.contains(&trace.hmac_key.as_str()));
            if trace.hmac_key.is_empty() {
                // An empty key signs nothing in signed_pack.
                continue;
            }
            assert_eq!(
                python_strip(hmac),
                generate_hmac(info.as_bytes(), &trace.hmac_key)
            );
            // What was accepted packs again into an accepted header.
            let mut fields = Map::new();
            fields.insert("base_id".into(), trace.base_id.clone().into());
            if let Some(parent) = &trace.parent_id {
                fields.insert("parent_id".into(), parent.clone().into());
            }
            let (info, hmac) = signed_pack(&fields, Some(&trace.hmac_key));
            if info.len() <= MAX_HEADER_LEN {
                let again = signed_unpack(Some(&info), hmac.as_deref(), &[&trace.hmac_key]);
                assert_eq!(again, Some(trace));
            }
        }
    }
}

/// Arbitrary JSON text, correctly encoded and signed: accepted exactly when
/// it is an object of `base_id` (a string) and optionally `parent_id`
/// (string or null) and `hmac_key`.
fn signed_json(input: &mut Input<'_>) {
    let json_bytes = input.rest();
    let info = base64::engine::general_purpose::URL_SAFE.encode(json_bytes);
    let hmac = generate_hmac(info.as_bytes(), "k");
    let got = signed_unpack(Some(&info), Some(&hmac), &["k"]);
    let expected = std::str::from_utf8(json_bytes)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .filter(|_| info.len() <= MAX_HEADER_LEN)
        .and_then(|value| expected_trace(&value));
    match (got, expected) {
        (None, None) => {}
        (Some(trace), Some((base, parent))) => {
            assert_eq!((trace.base_id, trace.parent_id), (base, parent));
            assert_eq!(trace.hmac_key, "k");
        }
        (got, expected) => panic!("signed_unpack gave {got:?}, expected {expected:?}"),
    }
}

fn expected_trace(value: &Value) -> Option<(String, Option<String>)> {
    let fields = value.as_object()?;
    if fields
        .keys()
        .any(|k| !matches!(k.as_str(), "base_id" | "parent_id" | "hmac_key"))
    {
        return None;
    }
    let base = fields.get("base_id")?.as_str()?.to_string();
    let parent = match fields.get("parent_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => return None,
    };
    Some((base, parent))
}

fn round_trip(input: &mut Input<'_>) {
    let base_id = input.text(200);
    let parent_id = input.flag().then(|| input.text(200));
    let mut key = input.text(40);
    if key.is_empty() {
        key.push('k');
    }
    let other = input.text(40);
    let mut fields = Map::new();
    fields.insert("base_id".into(), base_id.clone().into());
    if let Some(parent) = &parent_id {
        fields.insert("parent_id".into(), parent.clone().into());
    }
    let (info, hmac) = signed_pack(&fields, Some(&key));
    let hmac = hmac.expect("a non-empty key signs");
    assert_eq!(hmac.len(), 40);
    if info.len() > MAX_HEADER_LEN {
        assert_eq!(signed_unpack(Some(&info), Some(&hmac), &[&key]), None);
        return;
    }
    let trace = signed_unpack(Some(&info), Some(&hmac), &[&key]).expect("own key accepts");
    assert_eq!((&trace.base_id, &trace.parent_id), (&base_id, &parent_id));
    assert_eq!(trace.hmac_key, key);
    // Python strips the HMAC before comparing.
    let padded = format!(" {hmac}\n");
    assert!(signed_unpack(Some(&info), Some(&padded), &[&key]).is_some());
    // Replay to a server with other keys; the right key anywhere in the list.
    // HMAC pads keys with zero bytes, so "k" and "k\0" are the same key
    // (in Python too): only keys that differ once padded are "other".
    if other.trim_end_matches('\0') != key.trim_end_matches('\0') {
        assert_eq!(signed_unpack(Some(&info), Some(&hmac), &[&other]), None);
        let both = signed_unpack(Some(&info), Some(&hmac), &[&other, &key]);
        assert_eq!(both.map(|t| t.hmac_key), Some(key.clone()));
    }
    let refused = |hmac: &str| signed_unpack(Some(&info), Some(hmac), &[&key]).is_none();
    // Any one character changed.
    let at = input.below(40);
    let replacement = input.pick(b"0123456789abcdefABCDEF xg\0\xff") as char;
    if hmac.as_bytes()[at] as char != replacement {
        let mut forged = hmac.clone().into_bytes();
        forged.truncate(at);
        let mut forged = String::from_utf8(forged).unwrap_or_default();
        forged.push(replacement);
        forged.push_str(&hmac[at + 1..]);
        assert!(refused(&forged), "one character changed: {forged:?}");
    }
    assert!(refused(&hmac[..input.below(40)]), "truncated");
    assert!(refused(&format!("{hmac}0")), "extended");
    if hmac.bytes().any(|b| b.is_ascii_alphabetic()) {
        assert!(refused(&hmac.to_uppercase()), "upper-cased");
    }
    assert!(refused(""), "empty");
    // The data changed under the same HMAC.
    let at = input.below(info.len());
    let replacement = input.pick(b"Aa0=-_+/ \n");
    if info.as_bytes()[at] != replacement {
        let mut changed = info.clone().into_bytes();
        changed[at] = replacement;
        let changed = String::from_utf8(changed).expect("base64 is ASCII");
        assert_eq!(signed_unpack(Some(&changed), Some(&hmac), &[&key]), None);
    }
}

// ---------------------------------------------------------------------------
// Report building

/// Builds reports from hostile stored events: raw bytes read as a JSON
/// array or as JSON lines, or generated events drawn from small id pools
/// (so duplicates, parent loops and self-parents are frequent) with wrong
/// types, missing fields and bad timestamps.
///
/// Properties: every event is either used or counted in `skipped`; every
/// node appears exactly once in the tree; stats count every node; all
/// times are non-negative and within the total; the report serializes.
pub fn report(data: &[u8]) {
    let mut input = Input::new(data);
    let mut builder = ReportBuilder::new();
    // Whether each event was used.
    let mut outcomes = Vec::new();
    if input.byte() % 2 == 0 {
        let raw = input.rest();
        match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Array(events)) => {
                outcomes.extend(events.into_iter().map(|e| builder.push(e)));
            }
            Ok(event) => outcomes.push(builder.push(event)),
            Err(_) => {
                for line in raw.split(|&b| b == b'\n') {
                    match serde_json::from_slice::<Value>(line) {
                        Ok(event) => outcomes.push(builder.push(event)),
                        Err(_) => {
                            builder.count_malformed();
                            outcomes.push(false);
                        }
                    }
                }
            }
        }
    } else {
        for _ in 0..1 + input.below(64) {
            let used = if input.byte() % 4 == 0 {
                builder.append(generated_event(&mut input))
            } else {
                builder.push(generated_payload(&mut input))
            };
            outcomes.push(used);
        }
    }
    let used = outcomes.iter().filter(|&&u| u).count();
    check_report(&builder.finish(), used, outcomes.len() - used);
}

const IDS: [&str; 6] = ["b", "t1", "t2", "t3", "", "t-1"];
const NAMES: [&str; 9] = [
    "wsgi-start",
    "wsgi-stop",
    "db-start",
    "db-stop",
    "stop",
    "-start",
    "a-b-c-stop",
    "",
    "x",
];

fn generated_timestamp(input: &mut Input<'_>) -> String {
    match input.byte() % 8 {
        // Mostly valid, within one second, so durations vary.
        0..=4 => format!(
            "2024-02-29T12:00:0{}.{:06}",
            input.below(10),
            input.below(1_000_000)
        ),
        5 => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{}",
            input.below(10_000),
            input.below(14),
            input.below(33),
            input.below(25),
            input.below(61),
            input.below(61),
            input.below(10_000_000)
        ),
        6 => input
            .pick(&[
                "0000-01-01T00:00:00.000000",
                "9999-12-31T23:59:59.999999",
                "2024-01-01T00:00:00.0",
                "2024-01-01T00:00:00.",
                "2024-01-01T00:00:00.1234567",
                "2024-01-01T00:00:00.-12345",
                "2024-01-01T00:00:00.+12345",
                "2024-01-01 00:00:00.000000",
                "２０２４-01-01T00:00:00.000000",
                "2024-01-01T00:00:00.00000é",
            ])
            .to_string(),
        _ => input.text(30),
    }
}

fn generated_value(input: &mut Input<'_>, depth: u8) -> Value {
    match input.byte() % 8 {
        0 => Value::Null,
        1 => input.flag().into(),
        2 => (input.below(65536) as i64 - 32768).into(),
        3 => json!(f64::from(input.byte()) / 7.0),
        4 => input.pick(&IDS).into(),
        // Large strings; hostile_input.rs adds 1 MB ones on its own.
        5 => "x".repeat(input.below(1 << 16)).into(),
        6 if depth < 4 => Value::Array(
            (0..input.below(4))
                .map(|_| generated_value(input, depth + 1))
                .collect(),
        ),
        _ if depth < 4 => {
            let mut map = Map::new();
            for _ in 0..input.below(4) {
                let key = input.pick(&["host", "etype", "name", "base_id", "info", "__type__"]);
                map.insert(key.into(), generated_value(input, depth + 1));
            }
            Value::Object(map)
        }
        _ => input.text(16).into(),
    }
}

fn generated_payload(input: &mut Input<'_>) -> Value {
    if input.byte() % 16 == 0 {
        return generated_value(input, 0);
    }
    let mut event = Map::new();
    let fields = [
        "name",
        "base_id",
        "trace_id",
        "parent_id",
        "timestamp",
        "info",
        "project",
        "service",
    ];
    for field in fields {
        let value = match (input.byte() % 8, field) {
            (0, _) => continue,
            (1, _) => generated_value(input, 0),
            (_, "name") => input.pick(&NAMES).into(),
            (_, "timestamp") => generated_timestamp(input).into(),
            (_, "info") => {
                let mut info = Map::new();
                if input.flag() {
                    info.insert("host".into(), generated_value(input, 1));
                }
                if input.flag() {
                    info.insert("etype".into(), generated_value(input, 1));
                }
                Value::Object(info)
            }
            (_, "project" | "service") => input.text(8).into(),
            _ => input.pick(&IDS).into(),
        };
        event.insert(field.into(), value);
    }
    Value::Object(event)
}

fn generated_event(input: &mut Input<'_>) -> Event {
    Event {
        trace_id: input.pick(&IDS).into(),
        parent_id: input.pick(&IDS).into(),
        name: input.pick(&NAMES).into(),
        project: generated_value(input, 2),
        service: generated_value(input, 2),
        host: generated_value(input, 2),
        timestamp: generated_timestamp(input),
        raw_payload: generated_value(input, 0),
    }
}

/// The report invariants shared with `hostile_input.rs`.
pub fn check_report(report: &osprofiler::report::Report, used: usize, refused: usize) {
    assert_eq!(report.skipped(), refused, "every refused event is counted");
    assert!(report.len() <= used, "a node per used element at most");
    assert_eq!(report.is_empty(), used == 0);
    let total = report.finished();
    assert_eq!(total.is_some(), used > 0);
    let total = total.unwrap_or(0);
    assert!(total >= 0);
    if let Some(last) = report.last_trace_started() {
        assert!(
            (0..=total).contains(&last),
            "last start {last} within 0..={total}"
        );
    }
    // Walk without recursion: a loop left in the tree would never end, so
    // cap the walk at the node count.
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<_> = report.roots().collect();
    while let Some(node) = stack.pop() {
        assert!(
            seen.insert(node.trace_id()),
            "node {:?} twice",
            node.trace_id()
        );
        assert!(seen.len() <= report.len());
        let info = node.info();
        let started = info["started"].as_i64().expect("integer started");
        let finished = info["finished"].as_i64().expect("integer finished");
        assert!((0..=total).contains(&started) && (0..=total).contains(&finished));
        stack.extend(node.children());
    }
    assert_eq!(seen.len(), report.len(), "every node reachable from a root");
    let counted: i64 = report.stats().map(|(_, count, _)| count).sum();
    assert_eq!(counted as usize, report.len());
    // Not parsed back: serde_json's reader stops at 128 levels, which a
    // deep (but valid) tree exceeds.
    let text = serde_json::to_string(report).expect("reports serialize");
    assert!(text.starts_with(r#"{"info":{"name":"total""#) && text.ends_with('}'));
}

// ---------------------------------------------------------------------------
// INI configuration

/// `ProfilerConfig::from_ini_str` on hostile text, and on generated files
/// whose parsed values are known.
///
/// Properties: errors are `configuration:` errors that never repeat the
/// value of `hmac_keys` or a connection-string password; generated options
/// (odd spacing, quoting, case of booleans, section case, comments)
/// read back as written.
pub fn config(data: &[u8]) {
    let mut input = Input::new(data);
    if input.byte() % 2 == 0 {
        let text = String::from_utf8_lossy(input.rest());
        if let Err(e) = ProfilerConfig::from_ini_str(&text) {
            assert!(e.to_string().starts_with("configuration: "), "{e}");
        }
        return;
    }
    let enabled = input.flag();
    let boolean = input.pick(&[("true", "false"), ("YES", "no"), ("On", "oFF"), ("1", "0")]);
    let key = format!("K3y{}", input.below(1000));
    let password = format!("Pw{}", input.below(1000));
    let connection_string = format!("redis://:{password}@h:{}/0", input.below(65536));
    let space = |input: &mut Input<'_>| input.pick(&["", " ", "\t", "  "]);
    let mut text = String::new();
    if input.flag() {
        text.push_str("# comment\n[DEFAULT]\ntransport_url = rabbit://\n\n");
    }
    text.push_str(input.pick(&["[profiler]\n", "[PROFILER]\n", "[Profiler]\n"]));
    let options = [
        (
            "enabled",
            if enabled { boolean.0 } else { boolean.1 }.to_string(),
        ),
        ("hmac_keys", key.clone()),
        ("connection_string", connection_string.clone()),
    ];
    for (name, value) in &options {
        let quote = input.pick(&["", "\"", "'"]);
        let separator = input.pick(&["=", ":"]);
        let (a, b, c) = (space(&mut input), space(&mut input), space(&mut input));
        text.push_str(&format!(
            "{name}{a}{separator}{b}{quote}{value}{quote}{c}\n"
        ));
        if input.byte() % 4 == 0 {
            text.push_str(input.pick(&["; note\n", "# note\n", "\n"]));
        }
    }
    // A broken line makes a parse error; it must not echo secrets.
    let broken = input.byte() % 4;
    match broken {
        1 => text.push_str(&format!("\n  hmac_keys = {key}\n")),
        2 => text.push_str(&format!("connection_string {connection_string}x\n[bad\n")),
        3 => text.push_str(&format!("enabled = maybe{key}\n")),
        _ => {}
    }
    match ProfilerConfig::from_ini_str(&text) {
        Ok(conf) => {
            assert_eq!(broken, 0, "{text}");
            assert_eq!(conf.enabled, enabled, "{text}");
            assert_eq!(conf.hmac_keys, key, "{text}");
            assert_eq!(
                conf.connection_string.as_deref(),
                Some(connection_string.as_str())
            );
        }
        Err(e) => {
            assert_ne!(broken, 0, "{text}: {e}");
            let message = e.to_string();
            assert!(!message.contains(&password), "{message}");
            if broken == 1 {
                assert!(!message.contains(&key), "{message}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Messaging reader

/// The messaging reader's decoding of consumed message bodies (bare 1.0
/// and 2.0 envelopes, kombu type tags) and the transport URL parser.
///
/// Properties: a message taken for a trace has an object payload of that
/// trace with no decodable type tag left; an envelope reads as the bare
/// message inside it; priorities other than `info` are never taken;
/// transport URL errors never include the password.
#[cfg(feature = "messaging")]
pub fn messaging(data: &[u8]) {
    use osprofiler::drivers::messaging::__fuzz::{classify_body, transport_endpoints};

    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => {
            let base_id = input.pick(&IDS);
            let (kind, taken) = classify_body(input.rest(), base_id);
            if let Some((payload, _)) = taken {
                assert_eq!(kind, "match");
                assert_eq!(payload["base_id"], base_id);
                assert!(!has_known_tag(&payload));
            }
        }
        1 => {
            let priority = input.pick(&[None, Some("info"), Some("INFO"), Some("error"), Some("")]);
            let base_id = input.pick(&IDS);
            let mut payload = match generated_payload(&mut input) {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            payload.insert("base_id".into(), input.pick(&IDS).into());
            payload.insert("info".into(), tagged(&mut input, 0));
            let mut message = Map::new();
            message.insert("event_type".into(), "profiler.x".into());
            if let Some(p) = priority {
                message.insert("priority".into(), p.into());
            }
            if input.flag() {
                message.insert("_unique_id".into(), input.text(8).into());
            }
            message.insert("payload".into(), Value::Object(payload.clone()));
            let bare = Value::Object(message).to_string();
            let envelope = json!({"oslo.version": "2.0", "oslo.message": bare}).to_string();
            let (kind, taken) = classify_body(bare.as_bytes(), base_id);
            assert_eq!(
                classify_body(envelope.as_bytes(), base_id),
                (kind, taken.clone())
            );
            let wanted =
                matches!(priority, None | Some("info" | "INFO")) && payload["base_id"] == base_id;
            assert_eq!(kind, if wanted { "match" } else { "other" });
            if let Some((payload, _)) = taken {
                assert!(!has_known_tag(&payload));
            }
        }
        _ => {
            let password = format!("pw{}", input.below(100_000));
            let url = match input.byte() % 2 {
                0 => input.text(200),
                _ => {
                    let hosts: Vec<String> = (0..1 + input.below(3))
                        .map(|_| {
                            let host = input.pick(&["h", "[::1]", "", "10.0.0.1", "h:", "[::1"]);
                            let port = input.pick(&["", ":5672", ":0", ":70000", ":x", ":-1"]);
                            format!("guest:{password}@{host}{port}")
                        })
                        .collect();
                    let scheme = input.pick(&["rabbit", "amqp", "kombu+rabbit", "kafka", ""]);
                    let vhost = input.pick(&["", "/", "/v%2Fh", "/%ff", "?x=1#f"]);
                    format!("{scheme}://{}{vhost}", hosts.join(","))
                }
            };
            match transport_endpoints(&url) {
                Ok(endpoints) => assert!(!endpoints.is_empty()),
                Err(e) => assert!(!e.contains(&password), "{url}: {e}"),
            }
        }
    }
}

/// A value with kombu type tags in it, some well-formed.
#[cfg(feature = "messaging")]
fn tagged(input: &mut Input<'_>, depth: u8) -> Value {
    match input.byte() % 6 {
        0 => json!({"__type__": "datetime", "__value__": "2024-01-01T00:00:00.000000"}),
        1 => json!({"__type__": "uuid", "__value__": {"hex": input.pick(&[
            "0123456789abcdef0123456789abcdef", "0123", "zz23456789abcdef0123456789abcdef",
            "+123456789abcdef0123456789abcdef"])}}),
        2 => {
            json!({"__type__": input.pick(&["bytes", "set", "decimal"]), "__value__": generated_value(input, 3)})
        }
        3 if depth < 5 => Value::Array(
            (0..input.below(3))
                .map(|_| tagged(input, depth + 1))
                .collect(),
        ),
        4 if depth < 5 => json!({"host": "h", "nested": tagged(input, depth + 1)}),
        _ => generated_value(input, 2),
    }
}

/// Whether a tag the reader knows how to decode is still there.
#[cfg(feature = "messaging")]
fn has_known_tag(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().any(has_known_tag),
        Value::Object(map) => {
            let decodable = map.len() == 2
                && match (map.get("__type__"), map.get("__value__")) {
                    (Some(Value::String(kind)), Some(Value::String(_))) => matches!(
                        kind.as_str(),
                        "datetime" | "date" | "time" | "decimal" | "bytes"
                    ),
                    _ => false,
                };
            decodable || map.values().any(has_known_tag)
        }
        _ => false,
    }
}
