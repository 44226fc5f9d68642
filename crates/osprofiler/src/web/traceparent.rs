//! W3C Trace Context `traceparent` for osprofiler traces, so services
//! instrumented with OpenTelemetry join the same trace as the OTLP driver's
//! export.
//!
//! # The mapping
//!
//! Upstream's OTLP driver turns osprofiler ids into OpenTelemetry ids this
//! way, and this module uses the same mapping:
//!
//! - trace id = the 128-bit integer of the trace's `base_id`
//!   ([`uuid_to_int128`](crate::profiler::uuid_to_int128));
//! - span id = the low 64 bits of the element's id
//!   ([`shorten_id`](crate::profiler::shorten_id)).
//!
//! So `traceparent_for(base_id, element_id)` names exactly the span the OTLP
//! driver exports for that element:
//! `00-<32 hex trace id>-<16 hex span id>-01`.
//!
//! For an id that is not a uuid, upstream draws a fresh random number on
//! every call, so the spans of such a trace never share a trace id. Here
//! such an id maps to the first 128 bits of its SHA-1 instead (span id: the
//! low 64 of those), so the header and the export always agree.
//!
//! # Accepting `traceparent` is opt-in, and why
//!
//! Upstream only traces a request whose `X-Trace-Info` is signed with a
//! shared HMAC key, because every traced request costs: a notification per
//! element, written to the trace store by every service the request
//! touches. A `traceparent` header is not signed: anyone who can reach the
//! service can send one. If it started traces, any client could switch on
//! profiling for as many requests as it likes and make every service behind
//! the edge write to the collector, amplifying one cheap request into many
//! writes (a denial of service on the store, and on the services' own
//! collector threads), and choose the trace ids its requests land in.
//!
//! So the server layer ignores `traceparent` unless told otherwise
//! (`TraceLayer::accept_traceparent`, feature `tower`), and then only as
//! [`TraceparentPolicy`] says:
//! [`ContinueTrusted`](TraceparentPolicy::ContinueTrusted) uses it only on a
//! request that signed headers already made trusted, and only when it names
//! the same trace; [`AlwaysOn`](TraceparentPolicy::AlwaysOn) lets it start
//! traces, for deployments whose edge (an authenticating proxy, a service
//! mesh) makes sure only trusted peers reach the service.
//!
//! Emitting the header is always safe: the HTTP client sends it with the
//! signed headers (`http_client::inject_headers`, feature `http-client`).
//!
//! ```
//! use osprofiler::web::{traceparent_for, TraceParent};
//!
//! let base = "0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c";
//! let element = "11111111-2222-4333-8444-555555555555";
//! let header = traceparent_for(base, element).unwrap();
//! assert_eq!(header, "00-0f2b6a3c1d4e4f5a8b6c7d8e9f0a1b2c-8444555555555555-01");
//!
//! let parsed = TraceParent::parse(&header).unwrap();
//! assert_eq!(parsed.base_id(), base);
//! assert!(parsed.sampled());
//! assert!(TraceParent::parse("00-0F2B6A3C1D4E4F5A8B6C7D8E9F0A1B2C-8444555555555555-01").is_none());
//! ```

use std::fmt;

use sha1::{Digest, Sha1};

use crate::profiler::id::{format_uuid, parse_uuid, random_uuid4};

/// `traceparent`, the header name (lowercase, as HTTP/2 sends it).
pub const TRACEPARENT: &str = "traceparent";

/// The W3C flag bit saying the caller records the trace.
const FLAG_SAMPLED: u8 = 0x01;

/// Which incoming `traceparent` headers the server layer uses. See the
/// [module docs](self) for why the default ignores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TraceparentPolicy {
    /// `traceparent` is ignored; only signed headers start or continue a
    /// trace (upstream's behaviour).
    #[default]
    Ignore,
    /// On a request already trusted through its signed headers, a valid
    /// `traceparent` naming the same trace (its trace id is the trace's
    /// `base_id`) is kept in the `wsgi` element's info as `"traceparent"`:
    /// the OTLP driver then makes that span (an OpenTelemetry-instrumented
    /// hop between the two services, say a proxy) the parent of the `wsgi`
    /// span. The osprofiler tree is unchanged. A `traceparent` naming
    /// another trace is ignored, as is one on an untrusted request.
    ContinueTrusted,
    /// [`ContinueTrusted`](Self::ContinueTrusted), and a request with a
    /// valid `traceparent` but no trusted signed headers starts a trace:
    /// `base_id` is the uuid of its trace id, the `wsgi` element's parent is
    /// its parent span, and the first configured HMAC key signs the headers
    /// sent further on. Every such request is traced, whatever its sampled
    /// flag: enable it only where untrusted clients cannot reach the
    /// service.
    AlwaysOn,
}

/// The OpenTelemetry trace id of an osprofiler trace: the 128-bit integer
/// of its `base_id` when it is a uuid, else the first 128 bits of the
/// SHA-1 of the text.
pub fn otel_trace_id(base_id: &str) -> u128 {
    parse_uuid(base_id).unwrap_or_else(|| text_id(base_id))
}

/// The OpenTelemetry span id of an element: the low 64 bits of
/// [`otel_trace_id`] of its id (upstream's `shorten_id` for a uuid).
pub fn otel_span_id(element_id: &str) -> u64 {
    otel_trace_id(element_id) as u64
}

fn text_id(text: &str) -> u128 {
    let digest = Sha1::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(bytes)
}

/// The `traceparent` value naming the span of `element_id` in the trace
/// `base_id`, sampled: `00-<trace id>-<span id>-01`.
///
/// `None` when either id maps to zero, which W3C forbids (only the
/// all-zero uuid does).
pub fn traceparent_for(base_id: &str, element_id: &str) -> Option<String> {
    let header = TraceParent {
        trace_id: otel_trace_id(base_id),
        parent_id: otel_span_id(element_id),
        flags: FLAG_SAMPLED,
    };
    (header.trace_id != 0 && header.parent_id != 0).then(|| header.to_string())
}

/// A parsed `traceparent` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The 128-bit trace id (never zero).
    pub trace_id: u128,
    /// The caller's span id (never zero).
    pub parent_id: u64,
    /// The trace flags; bit 0 is "sampled".
    pub flags: u8,
}

impl TraceParent {
    /// Parses a header value strictly, as W3C Trace Context level 1 says:
    /// lowercase hex only, the field lengths and dashes exact, trace id and
    /// parent id not all zeros, version `ff` refused, version `00` exactly
    /// 55 characters, a later version at least 55 with a `-` after them
    /// (its extra fields are ignored). Spaces or tabs around the value are
    /// allowed (HTTP's optional whitespace). `None` for anything else;
    /// never panics.
    pub fn parse(value: &str) -> Option<TraceParent> {
        let b = value.trim_matches([' ', '\t']).as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let version = lower_hex(&b[0..2])?;
        match version {
            0xff => return None,
            0 if b.len() != 55 => return None,
            _ if b.len() > 55 && b[55] != b'-' => return None,
            _ => {}
        }
        let trace_id = lower_hex(&b[3..35])?;
        let parent_id = lower_hex(&b[36..52])? as u64;
        let flags = lower_hex(&b[53..55])? as u8;
        if trace_id == 0 || parent_id == 0 {
            return None;
        }
        Some(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// Whether the caller records this trace (flag bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// The osprofiler `base_id` whose trace id is this one: the trace id
    /// written as a uuid.
    pub fn base_id(&self) -> String {
        format_uuid(self.trace_id)
    }

    /// A fresh element id whose span id is this header's parent id (random
    /// high bits, the parent span id as low 64 bits): the parent of a
    /// trace started from this header.
    pub fn parent_element_id(&self) -> String {
        let high = random_uuid4() & !u128::from(u64::MAX);
        format_uuid(high | u128::from(self.parent_id))
    }
}

impl fmt::Display for TraceParent {
    /// Version `00` form: `00-<trace id>-<parent id>-<flags>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

/// Lowercase hex digits (at most 32) as a number; uppercase refused.
fn lower_hex(digits: &[u8]) -> Option<u128> {
    let mut value: u128 = 0;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        value = (value << 4) | u128::from(v);
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn header(version: &str, trace: &str, span: &str, flags: &str) -> String {
        format!("{version}-{trace}-{span}-{flags}")
    }

    #[test]
    fn parses_the_spec_example() {
        let tp = TraceParent::parse(&header("00", TRACE, SPAN, "01")).unwrap();
        assert_eq!(tp.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(tp.parent_id, 0x00f067aa0ba902b7);
        assert!(tp.sampled());
        assert_eq!(tp.to_string(), header("00", TRACE, SPAN, "01"));
        let unsampled = TraceParent::parse(&header("00", TRACE, SPAN, "00")).unwrap();
        assert!(!unsampled.sampled());
        assert!(TraceParent::parse(&format!(" {}\t", header("00", TRACE, SPAN, "01"))).is_some());
    }

    #[test]
    fn later_versions_parse_their_first_fields() {
        let base = header("01", TRACE, SPAN, "01");
        assert!(TraceParent::parse(&base).is_some());
        assert!(TraceParent::parse(&format!("{base}-what-ever")).is_some());
        assert!(TraceParent::parse(&format!("{base}x")).is_none());
    }

    #[test]
    fn refuses_everything_else() {
        let zeros32 = "0".repeat(32);
        let zeros16 = "0".repeat(16);
        let bad = [
            String::new(),
            "00".into(),
            header("ff", TRACE, SPAN, "01"),
            header("00", &TRACE.to_uppercase(), SPAN, "01"),
            header("00", TRACE, &SPAN.to_uppercase(), "01"),
            header("00", TRACE, SPAN, "0A"),
            header("0G", TRACE, SPAN, "01"),
            header("00", &zeros32, SPAN, "01"),
            header("00", TRACE, &zeros16, "01"),
            header("00", &TRACE[1..], SPAN, "01"),
            header("00", TRACE, &SPAN[1..], "01"),
            header("00", TRACE, SPAN, "1"),
            format!("{}-", header("00", TRACE, SPAN, "01")),
            format!("{}-x", header("00", TRACE, SPAN, "01")),
            header("00", TRACE, SPAN, "01").replace('-', "_"),
            format!("00-{TRACE}-{SPAN}-01").replace("4b", "é"),
            format!("0-0{TRACE}-{SPAN}-01"),
        ];
        for value in bad {
            assert_eq!(TraceParent::parse(&value), None, "{value:?}");
        }
    }

    #[test]
    fn uuids_map_like_upstream() {
        let base = "0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c";
        assert_eq!(otel_trace_id(base), 0x0f2b6a3c1d4e4f5a8b6c7d8e9f0a1b2c);
        assert_eq!(otel_span_id(base), 0x8b6c7d8e9f0a1b2c);
        assert_eq!(
            otel_trace_id(base),
            crate::profiler::uuid_to_int128(base),
            "same as upstream's uuid_to_int128"
        );
        let tp = TraceParent::parse(&traceparent_for(base, base).unwrap()).unwrap();
        assert_eq!(tp.base_id(), base);
        let parent = tp.parent_element_id();
        assert_eq!(otel_span_id(&parent), tp.parent_id);
        assert_ne!(parent, base);
    }

    #[test]
    fn text_ids_map_stably() {
        assert_eq!(otel_trace_id("not a uuid"), otel_trace_id("not a uuid"));
        assert_ne!(otel_trace_id("a"), otel_trace_id("b"));
        assert_eq!(otel_span_id("x"), otel_trace_id("x") as u64);
        assert_eq!(
            traceparent_for("00000000-0000-0000-0000-000000000000", "x"),
            None
        );
    }
}
