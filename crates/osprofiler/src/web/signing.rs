//! `signed_pack` / `signed_unpack`: the signed trace headers of Python's
//! `osprofiler._utils`, accepting exactly what Python accepts.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use sha1::Sha1;

/// Largest `X-Trace-Info` value looked at; longer ones are not trusted
/// (a real one is under 200 bytes).
pub const MAX_HEADER_LEN: usize = 8 * 1024;

/// Trace data recovered from trusted headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceInfo {
    /// The trace's base id.
    pub base_id: String,
    /// The element the request continues, if given.
    pub parent_id: Option<String>,
    /// The server key that validated the signature.
    pub hmac_key: String,
}

/// Lowercase hex HMAC-SHA1 of `data` under `key` (Python's `generate_hmac`).
pub fn generate_hmac(data: &[u8], key: &str) -> String {
    hex(&hmac_sha1(data, key))
}

fn hmac_sha1(data: &[u8], key: &str) -> [u8; 20] {
    let mut mac = keyed_hmac(key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// An HMAC-SHA1 already keyed with `key`. Keying hashes two blocks; a
/// server checks every request against the same few keys, so each thread
/// keeps the keyed states of the last few and clones them.
fn keyed_hmac(key: &str) -> Hmac<Sha1> {
    const KEPT: usize = 8;
    thread_local! {
        static KEYED: std::cell::RefCell<Vec<(Box<str>, Hmac<Sha1>)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    let new = || {
        // HMAC accepts keys of any length, so this cannot fail.
        <Hmac<Sha1> as Mac>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length")
    };
    KEYED
        .try_with(|keyed| {
            let mut keyed = keyed.try_borrow_mut().ok()?;
            if let Some((_, mac)) = keyed.iter().find(|(k, _)| **k == *key) {
                return Some(mac.clone());
            }
            let mac = new();
            if keyed.len() == KEPT {
                keyed.remove(0);
            }
            keyed.push((key.into(), mac.clone()));
            Some(mac)
        })
        .ok()
        .flatten()
        .unwrap_or_else(new)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Packs and signs `data` (Python's `signed_pack`): URL-safe base64 of the
/// JSON text, and the HMAC of that base64 text (none without a key).
///
/// The JSON text is written as Python's `json.dumps` writes it (`", "` and
/// `": "` separators, non-ASCII escaped), so both sides sign the same bytes.
pub fn signed_pack(data: &Map<String, Value>, hmac_key: Option<&str>) -> (String, Option<String>) {
    let json = crate::pyjson::to_string(&Value::Object(data.clone()));
    let packed = base64::engine::general_purpose::URL_SAFE.encode(json.as_bytes());
    let signature = hmac_key
        .filter(|k| !k.is_empty())
        .map(|k| generate_hmac(packed.as_bytes(), k));
    (packed, signature)
}

/// Checks and unpacks trace headers (Python's `signed_unpack` followed by
/// the middleware's key-set check).
///
/// Returns `None` ("not trusted") unless: both values are present, the HMAC
/// is non-empty after trimming and equals, in constant time, the HMAC of
/// `data` under one of `hmac_keys`; `data` decodes (as Python's lenient
/// URL-safe base64) to a JSON object whose keys are `base_id` (required),
/// `parent_id` and `hmac_key` (optional) and nothing else. Never panics,
/// whatever the input.
///
/// Python 4.4.0 accepts four things this refuses (checked against it by
/// `tests/interop_headers.rs`): ids that are not strings (`{"base_id": 5}`),
/// ids holding a lone UTF-16 surrogate escape (`"\ud800"`, no valid text),
/// JSON beyond the standard (`NaN`, `Infinity`, 128+ levels of nesting),
/// and `data` longer than [`MAX_HEADER_LEN`].
pub fn signed_unpack<K: AsRef<str>>(
    data: Option<&str>,
    hmac_data: Option<&str>,
    hmac_keys: &[K],
) -> Option<TraceInfo> {
    unpack_with(data, hmac_data, hmac_keys, |ids| TraceInfo {
        base_id: ids.base_id.to_owned(),
        parent_id: ids.parent_id.map(str::to_owned),
        hmac_key: hmac_keys[ids.key].as_ref().to_owned(),
    })
}

/// The ids of trusted headers, borrowed from the decoded header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrustedIds<'a> {
    pub(crate) base_id: &'a str,
    pub(crate) parent_id: Option<&'a str>,
    /// Index of the key that validated the signature.
    pub(crate) key: usize,
}

/// [`signed_unpack`] without its allocations: the same checks, then `f`
/// gets the ids borrowed from a scratch buffer.
pub(crate) fn unpack_with<K: AsRef<str>, R>(
    data: Option<&str>,
    hmac_data: Option<&str>,
    hmac_keys: &[K],
    f: impl FnOnce(TrustedIds<'_>) -> R,
) -> Option<R> {
    let data = data.filter(|d| !d.is_empty() && d.len() <= MAX_HEADER_LEN)?;
    let hmac_data = hmac_data?.trim_matches(is_python_whitespace);
    if hmac_data.is_empty() || hmac_keys.is_empty() {
        return None;
    }
    // Python compares hex text, so only the 40 lowercase digits it writes
    // can match; anything else (upper case, truncated) is refused here.
    let signature = parse_lowercase_hex(hmac_data)?;
    let key = hmac_keys
        .iter()
        .position(|key| hmac_matches(data.as_bytes(), key.as_ref(), &signature))?;
    // A header made by `signed_pack` decodes to about 100 bytes: decode it
    // on the stack, and only anything longer or non-canonical on the heap.
    let mut scratch = [0u8; 256];
    let heap;
    let decoded = match base64::engine::general_purpose::URL_SAFE.decode_slice(data, &mut scratch) {
        Ok(len) => &scratch[..len],
        Err(_) => {
            heap = python_urlsafe_b64decode(data)?;
            &heap[..]
        }
    };
    let text = std::str::from_utf8(decoded).ok()?;
    let fields: HeaderFields<'_> = serde_json::from_str(text).ok()?;
    let base_id = match fields.base_id? {
        IdField::Text(s) => s,
        IdField::Null | IdField::Other => return None,
    };
    let parent_id = match fields.parent_id {
        None | Some(IdField::Null) => None,
        Some(IdField::Text(s)) => Some(s),
        Some(IdField::Other) => return None,
    };
    Some(f(TrustedIds {
        base_id: &base_id,
        parent_id: parent_id.as_deref(),
        key,
    }))
}

/// Whether `signature` is the HMAC-SHA1 of `data` under `key`, compared in
/// constant time (`Mac::verify_slice` uses `subtle`), so response timing
/// does not tell a forger how many leading bytes were right.
fn hmac_matches(data: &[u8], key: &str, signature: &[u8; 20]) -> bool {
    let mut mac = keyed_hmac(key);
    mac.update(data);
    mac.verify_slice(signature).is_ok()
}

/// The 20 bytes of a 40-digit lowercase hex text. Branches on the
/// attacker's own input only, never on the expected HMAC.
fn parse_lowercase_hex(text: &str) -> Option<[u8; 20]> {
    let digits = text.as_bytes();
    if digits.len() != 40 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 20];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// What Python's `str.strip()` removes.
fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\x1c'..='\x1f')
}

/// Python's `base64.urlsafe_b64decode` on a `str`: ASCII only; `-`/`_` read
/// as `+`/`/` (which stay valid too); characters outside the alphabet
/// skipped; padding handled as CPython's `binascii.a2b_base64` in
/// non-strict mode.
fn python_urlsafe_b64decode(text: &str) -> Option<Vec<u8>> {
    // What Python's own `signed_pack` writes is canonical base64, and the
    // strict decoder reads that several times faster; whatever it refuses
    // goes through the lenient decoder, which gives the same bytes for
    // everything the strict one accepts.
    if let Ok(decoded) = base64::engine::general_purpose::URL_SAFE.decode(text) {
        return Some(decoded);
    }
    if !text.is_ascii() {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut quad_pos = 0u8;
    let mut left: u32 = 0;
    let mut pads = 0u8;
    for &c in text.as_bytes() {
        if c == b'=' {
            if quad_pos >= 2 {
                pads += 1;
                if quad_pos + pads >= 4 {
                    return Some(out);
                }
            }
            continue;
        }
        let Some(v) = sextet(c) else { continue };
        let v = u32::from(v);
        pads = 0;
        match quad_pos {
            0 => {
                left = v;
                quad_pos = 1;
            }
            1 => {
                out.push(((left << 2) | (v >> 4)) as u8);
                left = v & 0x0f;
                quad_pos = 2;
            }
            2 => {
                out.push(((left << 4) | (v >> 2)) as u8);
                left = v & 0x03;
                quad_pos = 3;
            }
            _ => {
                out.push(((left << 6) | v) as u8);
                left = 0;
                quad_pos = 0;
            }
        }
    }
    (quad_pos == 0).then_some(out)
}

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

// --- The JSON object of `X-Trace-Info` ---
//
// Read with serde visitors instead of into a `Value`: no map, no key
// strings, ids borrowed from the text unless they hold escapes. What it
// accepts is what parsing into a `Value` and then checking the keys
// accepts: every value is parsed in full (so `\ud800`, `NaN` or 128+
// levels of nesting anywhere still refuse the header), and of duplicate
// keys the last one counts, as in Python's `json.loads`.

/// The fields that matter; any key but these three refuses the header.
#[derive(Default)]
struct HeaderFields<'a> {
    base_id: Option<IdField<'a>>,
    parent_id: Option<IdField<'a>>,
}

/// What an id field held.
enum IdField<'a> {
    Text(Cow<'a, str>),
    Null,
    /// A number, a boolean, an array or an object.
    Other,
}

enum FieldName {
    BaseId,
    ParentId,
    HmacKey,
}

impl<'de> Deserialize<'de> for HeaderFields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = HeaderFields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a trace info object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = HeaderFields::default();
                while let Some(name) = map.next_key::<FieldName>()? {
                    match name {
                        FieldName::BaseId => fields.base_id = Some(map.next_value()?),
                        FieldName::ParentId => fields.parent_id = Some(map.next_value()?),
                        // Python overwrites it with the validating key.
                        FieldName::HmacKey => {
                            map.next_value::<AnyJson>()?;
                        }
                    }
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = FieldName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("base_id, parent_id or hmac_key")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<FieldName, E> {
                match name {
                    "base_id" => Ok(FieldName::BaseId),
                    "parent_id" => Ok(FieldName::ParentId),
                    "hmac_key" => Ok(FieldName::HmacKey),
                    _ => Err(E::custom("unexpected key")),
                }
            }
        }
        deserializer.deserialize_identifier(Name)
    }
}

impl<'de> Deserialize<'de> for IdField<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Field;
        impl<'de> Visitor<'de> for Field {
            type Value = IdField<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(IdField::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(IdField::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(IdField::Text(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(IdField::Null)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(IdField::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(IdField::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(IdField::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(IdField::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                AnyJson.visit_seq(seq).map(|_| IdField::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                AnyJson.visit_map(map).map(|_| IdField::Other)
            }
        }
        deserializer.deserialize_any(Field)
    }
}

/// Any JSON value, checked as strictly as parsing it into a `Value` does
/// (unlike `IgnoredAny`, which lets serde_json skip strings unchecked),
/// and then dropped.
struct AnyJson;

impl<'de> Deserialize<'de> for AnyJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AnyJson)
    }
}

impl<'de> Visitor<'de> for AnyJson {
    type Value = AnyJson;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_unit<E: de::Error>(self) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyJson, A::Error> {
        while seq.next_element::<AnyJson>()?.is_some() {}
        Ok(AnyJson)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyJson, A::Error> {
        while map.next_key::<AnyJson>()?.is_some() {
            map.next_value::<AnyJson>()?;
        }
        Ok(AnyJson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn pack_matches_python_bytes() {
        // Python: signed_pack({"base_id": "1", "parent_id": "2"}, "secret")
        let (data, sig) = signed_pack(
            &map(json!({"base_id": "1", "parent_id": "2"})),
            Some("secret"),
        );
        assert_eq!(data, "eyJiYXNlX2lkIjogIjEiLCAicGFyZW50X2lkIjogIjIifQ==");
        assert_eq!(
            sig.as_deref(),
            Some(generate_hmac(data.as_bytes(), "secret").as_str())
        );
        assert_eq!(signed_pack(&map(json!({"a": 1})), None).1, None);
    }

    #[test]
    fn unpack_round_trip_and_refusals() {
        let (data, sig) = signed_pack(&map(json!({"base_id": "b", "parent_id": "p"})), Some("k2"));
        let info = signed_unpack(Some(&data), sig.as_deref(), &["k1", "k2"]).unwrap();
        assert_eq!(info.base_id, "b");
        assert_eq!(info.parent_id.as_deref(), Some("p"));
        assert_eq!(info.hmac_key, "k2");
        assert!(signed_unpack(Some(&data), sig.as_deref(), &["k1"]).is_none());
        assert!(signed_unpack(
            Some(&data),
            Some(&sig.clone().unwrap().to_uppercase()),
            &["k2"]
        )
        .is_none());
        assert!(signed_unpack(Some(&data), Some("  "), &["k2"]).is_none());
        assert!(signed_unpack(None, sig.as_deref(), &["k2"]).is_none());
        assert!(signed_unpack::<&str>(Some(&data), sig.as_deref(), &[]).is_none());
        let padded = format!(" {} \n", sig.as_deref().unwrap());
        assert!(signed_unpack(Some(&data), Some(&padded), &["k2"]).is_some());
    }

    #[test]
    fn unpack_checks_key_set() {
        for (payload, ok) in [
            (json!({"base_id": "b"}), true),
            (json!({"base_id": "b", "hmac_key": "x"}), true),
            (json!({"parent_id": "p"}), false),
            (json!({"base_id": "b", "extra": 1}), false),
            (json!(["base_id"]), false),
        ] {
            let text = serde_json::to_string(&payload).unwrap();
            let data = base64::engine::general_purpose::URL_SAFE.encode(text);
            let sig = generate_hmac(data.as_bytes(), "k");
            assert_eq!(
                signed_unpack(Some(&data), Some(&sig), &["k"]).is_some(),
                ok,
                "{payload}"
            );
        }
    }

    /// What `signed_unpack` did before it read the JSON with visitors:
    /// parse into a `Value`, then check the keys.
    fn via_value(text: &str) -> Option<(String, Option<String>)> {
        let Value::Object(fields) = serde_json::from_str::<Value>(text).ok()? else {
            return None;
        };
        let mut base_id = None;
        let mut parent_id = None;
        for (name, value) in fields {
            match name.as_str() {
                "base_id" => base_id = Some(value),
                "parent_id" => parent_id = Some(value),
                "hmac_key" => {}
                _ => return None,
            }
        }
        let base_id = match base_id? {
            Value::String(s) => s,
            _ => return None,
        };
        let parent_id = match parent_id {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return None,
        };
        Some((base_id, parent_id))
    }

    #[test]
    fn json_reading_accepts_what_a_value_parse_accepts() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let texts = [
            r#"{"base_id": "b", "parent_id": "p"}"#.to_string(),
            r#"{"base_id": "b"}"#.into(),
            r#"{"base_id": "b", "parent_id": null}"#.into(),
            r#"{"base_id": null}"#.into(),
            r#"{"base_id": 5}"#.into(),
            r#"{"base_id": "b", "parent_id": 5}"#.into(),
            r#"{"base_id": "b", "parent_id": [1, {"a": "\ud800"}]}"#.into(),
            r#"{"base_id": "b", "parent_id": {"x": [true, false, null, 1.5e3]}}"#.into(),
            r#"{"base_id": "b", "hmac_key": "x"}"#.into(),
            r#"{"base_id": "b", "hmac_key": {"deep": [1, 2, "\u00e9"]}}"#.into(),
            r#"{"base_id": "b", "hmac_key": "\ud800"}"#.into(),
            r#"{"base_id": "b", "hmac_key": 1e400}"#.into(),
            r#"{"base_id": "b", "hmac_key": NaN}"#.into(),
            r#"{"base_id": "b", "extra": 1}"#.into(),
            r#"{"base_id": 5, "base_id": "b"}"#.into(),
            r#"{"base_id": "b", "base_id": 5}"#.into(),
            r#"{"base_id": "a", "parent_id": 1, "parent_id": "p"}"#.into(),
            r#"{"base\u005fid": "escaped key"}"#.into(),
            r#"{"base_id": "\u00e9\ud83d\ude00\n"}"#.into(),
            r#"{"base_id": "\ud800"}"#.into(),
            r#"{"base_id": "\udc00\ud800"}"#.into(),
            r#" {"base_id" : "b" } "#.into(),
            r#"{"base_id": "b"} x"#.into(),
            r#"{"base_id": "b",}"#.into(),
            r#"{"base_id": "b""#.into(),
            r#"["base_id"]"#.into(),
            r#""base_id""#.into(),
            "{}".into(),
            "".into(),
            "null".into(),
            format!(r#"{{"base_id": "b", "hmac_key": {}}}"#, deep(126)),
            format!(r#"{{"base_id": "b", "hmac_key": {}}}"#, deep(127)),
            format!(r#"{{"base_id": "b", "hmac_key": {}}}"#, deep(128)),
            format!(r#"{{"base_id": "b", "parent_id": {}}}"#, deep(127)),
            format!(r#"{{"base_id": "b", "parent_id": {}}}"#, deep(200)),
        ];
        for text in &texts {
            let data = base64::engine::general_purpose::URL_SAFE.encode(text);
            let sig = generate_hmac(data.as_bytes(), "k");
            let got = signed_unpack(Some(&data), Some(&sig), &["k"])
                .map(|info| (info.base_id, info.parent_id));
            assert_eq!(got, via_value(text), "{text}");
        }
    }

    #[test]
    fn long_headers_decode_on_the_heap() {
        let long = "x".repeat(2000);
        let (data, sig) = signed_pack(&map(json!({"base_id": long, "parent_id": "p"})), Some("k"));
        let info = signed_unpack(Some(&data), sig.as_deref(), &["k"]).unwrap();
        assert_eq!(info.base_id, long);
        // Not canonical base64 (whitespace inside): the lenient decoder.
        let (data, sig) = signed_pack(&map(json!({"base_id": "b"})), Some("k"));
        let spaced = format!("{} {}", &data[..4], &data[4..]);
        let sig_spaced = generate_hmac(spaced.as_bytes(), "k");
        assert!(sig.is_some());
        let info = signed_unpack(Some(&spaced), Some(&sig_spaced), &["k"]).unwrap();
        assert_eq!(info.base_id, "b");
    }

    #[test]
    fn lenient_base64_like_cpython() {
        assert_eq!(python_urlsafe_b64decode("YQ==").unwrap(), b"a");
        assert_eq!(python_urlsafe_b64decode("Y Q = =").unwrap(), b"a");
        assert_eq!(python_urlsafe_b64decode("YQ==garbage").unwrap(), b"a");
        assert_eq!(python_urlsafe_b64decode("YQ").as_deref(), None);
        assert_eq!(python_urlsafe_b64decode("Y").as_deref(), None);
        assert_eq!(
            python_urlsafe_b64decode("-_-_").unwrap(),
            python_urlsafe_b64decode("+/+/").unwrap()
        );
        assert_eq!(python_urlsafe_b64decode("é"), None);
    }

    #[test]
    fn python_json_escapes_non_ascii() {
        assert_eq!(
            crate::pyjson::to_string(&json!({"a": "é\u{1F600}"})),
            r#"{"a": "\u00e9\ud83d\ude00"}"#
        );
    }
}
