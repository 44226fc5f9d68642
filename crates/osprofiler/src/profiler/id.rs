//! Trace element ids: uuid4 values kept as integers on the hot path and
//! formatted only on the collector thread.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

/// The id of one trace element.
///
/// Ids made by this library are uuid4 values stored as 128-bit integers, so
/// recording one costs no allocation. Ids that arrive from outside (a base id
/// given to [`init`](crate::profiler::init), a header from a peer) may be any
/// text, as in Python osprofiler; those are kept as shared strings.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Id {
    /// A uuid, as its 128-bit integer split into high and low halves (kept
    /// as two `u64` so an `Id` is 24 bytes, not 32).
    Uuid([u64; 2]),
    /// Any other text.
    Text(Arc<str>),
}

impl Id {
    /// A fresh random uuid4.
    #[inline]
    pub fn random() -> Id {
        Id::from_u128(random_uuid4())
    }

    /// The id of a uuid given as its integer.
    #[inline]
    pub fn from_u128(value: u128) -> Id {
        Id::Uuid([(value >> 64) as u64, value as u64])
    }

    /// Parses `text` as a canonical uuid when it is one (lowercase or
    /// uppercase hex with dashes); keeps it as text otherwise, so the string
    /// written back out is always the string that came in.
    pub fn from_text(text: &str) -> Id {
        match parse_lowercase_uuid(text) {
            Some([hi, lo]) => Id::Uuid([hi, lo]),
            None => Id::Text(Arc::from(text)),
        }
    }

    /// The 128-bit integer of this id when it is a uuid (Python's
    /// `uuid_to_int128`).
    pub fn as_u128(&self) -> Option<u128> {
        match self {
            Id::Uuid([hi, lo]) => Some((u128::from(*hi) << 64) | u128::from(*lo)),
            Id::Text(t) => parse_uuid(t),
        }
    }
}

/// A uuid made in this process (the id of an element opened here), kept as
/// the generator state it comes from (see [`Rng::uuid4`]): 8 bytes on the
/// hot path, expanded to the uuid only when it is written out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LocalId(pub(crate) u64);

impl LocalId {
    /// The same id as an [`Id`].
    #[inline]
    pub(crate) fn id(self) -> Id {
        Id::from_u128(self.as_u128())
    }

    /// The uuid as its 128-bit integer.
    #[inline]
    pub(crate) fn as_u128(self) -> u128 {
        uuid_of_state(self.0)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Uuid([hi, lo]) => {
                let mut buf = [0u8; 36];
                f.write_str(write_uuid(
                    (u128::from(*hi) << 64) | u128::from(*lo),
                    &mut buf,
                ))
            }
            Id::Text(t) => f.write_str(t),
        }
    }
}

impl Id {
    /// The id as text: what [`Display`](fmt::Display) writes, built without
    /// the formatting machinery (one allocation of exactly its length).
    pub(crate) fn to_text(&self) -> String {
        match self {
            Id::Uuid([hi, lo]) => format_uuid((u128::from(*hi) << 64) | u128::from(*lo)),
            Id::Text(t) => String::from(&**t),
        }
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({self})")
    }
}

/// A wyrand generator: a few instructions per 64 random bits.
///
/// The caller-thread state of `local` owns one, so recording an element
/// touches a single thread-local; [`random_uuid4`] uses a thread-local one
/// of its own for everything else.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator waiting for its seed: [`Rng::uuid4`] seeds it on first
    /// use, so it can sit in a `const` thread-local.
    pub(crate) const fn unseeded() -> Rng {
        Rng(0)
    }

    /// A random uuid4 as a [`LocalId`]: one generator step.
    #[inline]
    pub(crate) fn local_id(&mut self) -> LocalId {
        if self.0 == 0 {
            self.0 = seed();
        }
        self.0 = self.0.wrapping_add(STATE_STEP);
        LocalId(self.0)
    }

    /// A random uuid4 as an integer (version and variant bits set).
    #[inline]
    pub(crate) fn uuid4(&mut self) -> u128 {
        self.local_id().as_u128()
    }
}

/// What a wyrand state steps by (odd: the state repeats only after 2^64
/// steps).
const STATE_STEP: u64 = 0xa076_1d64_78bd_642f;

/// The uuid4 of one wyrand state: the high half is wyrand's output for the
/// state, the low half the state scrambled by an odd multiplier. The low
/// half (less its two variant bits) repeats only after 2^62 steps, so one
/// generator's ids never repeat; two generators (seeded apart) collide only
/// where their state sequences overlap, as they would with two outputs per
/// id.
#[inline]
fn uuid_of_state(state: u64) -> u128 {
    let t = u128::from(state) * u128::from(state ^ 0xe703_7ed1_a0b4_28db);
    let hi = (t as u64) ^ ((t >> 64) as u64);
    let lo = state.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let raw = (u128::from(hi) << 64) | u128::from(lo);
    (raw & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62)
}

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
}

fn seed() -> u64 {
    // RandomState is seeded from the OS once per thread and varied per call,
    // which is all a trace id needs: ids must not collide, not be secret.
    // Never 0, which marks an unseeded generator.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(std::process::id() as u64);
    hasher.finish() | 1
}

/// A random uuid4 as an integer (version and variant bits set).
#[inline]
pub(crate) fn random_uuid4() -> u128 {
    RNG.with(|state| {
        let mut rng = Rng(state.get());
        let value = rng.uuid4();
        state.set(rng.0);
        value
    })
}

/// Formats a uuid integer as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub(crate) fn format_uuid(value: u128) -> String {
    let mut buf = [0u8; 36];
    String::from(write_uuid(value, &mut buf))
}

/// Writes the canonical text of a uuid into `buf` and returns it.
pub(crate) fn write_uuid(value: u128, buf: &mut [u8; 36]) -> &str {
    fill_uuid(value, buf);
    // Only ASCII was written; the check cannot fail.
    std::str::from_utf8(buf).unwrap_or_default()
}

/// Writes the canonical text of a uuid into `buf` (ASCII), for callers
/// that want its bytes and need no `&str` (checking it costs as much as
/// writing it).
pub(crate) fn fill_uuid(value: u128, buf: &mut [u8; 36]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    /// Where the two hex digits of each byte go.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    *buf = *b"00000000-0000-0000-0000-000000000000";
    for (&at, byte) in AT.iter().zip(value.to_be_bytes()) {
        buf[at] = HEX[usize::from(byte >> 4)];
        buf[at + 1] = HEX[usize::from(byte & 0xf)];
    }
}

/// The two halves of a canonical uuid written in lowercase: the only
/// texts that formatting the value gives back unchanged.
fn parse_lowercase_uuid(text: &str) -> Option<[u64; 2]> {
    let b = text.as_bytes();
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    // Per half, not per u128: 64-bit shifts are single instructions.
    fn digits(acc: u64, run: &[u8]) -> Option<u64> {
        run.iter().try_fold(acc, |acc, &c| {
            let v = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => return None,
            };
            Some((acc << 4) | u64::from(v))
        })
    }
    let hi = digits(digits(digits(0, &b[0..8])?, &b[9..13])?, &b[14..18])?;
    let lo = digits(digits(0, &b[19..23])?, &b[24..36])?;
    Some([hi, lo])
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses a uuid the way Python's `uuid.UUID(text)` does: optional `urn:uuid:`
/// prefix, optional braces, dashes anywhere, 32 hex digits.
pub(crate) fn parse_uuid(text: &str) -> Option<u128> {
    let mut s = text.trim();
    if let Some(rest) = s.strip_prefix("urn:uuid:") {
        s = rest;
    }
    s = s.trim_matches(|c| c == '{' || c == '}');
    let mut value: u128 = 0;
    let mut digits = 0;
    for b in s.bytes() {
        if b == b'-' {
            continue;
        }
        value = (value << 4) | u128::from(hex_value(b)?);
        digits += 1;
        if digits > 32 {
            return None;
        }
    }
    (digits == 32).then_some(value)
}

/// The lowest 64 bits of a uuid (Python's `shorten_id`); a text that is not
/// a uuid gets a fresh random id, as upstream does.
pub fn shorten_id(uuid: &str) -> u64 {
    parse_uuid(uuid).unwrap_or_else(random_uuid4) as u64
}

/// The full 128-bit integer of a uuid (Python's `uuid_to_int128`); a text that
/// is not a uuid gets a fresh random id, as upstream does.
pub fn uuid_to_int128(uuid: &str) -> u128 {
    parse_uuid(uuid).unwrap_or_else(random_uuid4)
}

/// [`shorten_id`] as lowercase hex without padding (Python's
/// `Profiler.get_shorten_id`).
pub fn get_shorten_id(uuid: &str) -> String {
    format!("{:x}", shorten_id(uuid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_matches_the_reference_layout() {
        for value in [
            0,
            u128::MAX,
            0x0f2b6a3c_1d4e_4f5a_8b6c_7d8e9f0a1b2c,
            random_uuid4(),
        ] {
            let hex = format!("{value:032x}");
            let expected = format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            );
            assert_eq!(format_uuid(value), expected);
            assert_eq!(Id::from_u128(value).to_string(), expected);
            assert_eq!(Id::from_u128(value).to_text(), expected);
        }
        assert_eq!(Id::from_text("x-1").to_text(), "x-1");
    }

    #[test]
    fn owned_generators_make_version_4_ids() {
        let mut rng = Rng::unseeded();
        let a = rng.uuid4();
        assert_ne!(a, rng.uuid4());
        assert_ne!(a, Rng::unseeded().uuid4());
        assert_eq!((a >> 76) & 0xf, 4);
        assert_eq!((a >> 62) & 0x3, 2);
    }

    #[test]
    fn one_generator_never_repeats_an_id_or_its_low_half() {
        let mut rng = Rng::unseeded();
        let mut lows = std::collections::HashSet::new();
        for _ in 0..200_000 {
            let id = rng.local_id();
            assert!(
                lows.insert(id.as_u128() as u64),
                "low half repeated: {id:?}"
            );
            assert_eq!((id.as_u128() >> 76) & 0xf, 4);
            assert_eq!((id.as_u128() >> 62) & 0x3, 2);
        }
    }

    #[test]
    fn random_ids_are_version_4_and_distinct() {
        let a = format_uuid(random_uuid4());
        let b = format_uuid(random_uuid4());
        assert_ne!(a, b);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn uuid_text_round_trips() {
        let text = "0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c";
        let id = Id::from_text(text);
        assert!(matches!(id, Id::Uuid(_)));
        assert_eq!(std::mem::size_of::<Id>(), 24);
        assert_eq!(id.to_string(), text);
        // Uppercase stays text so it is written back unchanged.
        let upper = text.to_uppercase();
        assert_eq!(Id::from_text(&upper).to_string(), upper);
        assert!(matches!(Id::from_text("1"), Id::Text(_)));
        // Anything but the canonical lowercase layout stays text.
        for other in [
            "0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2C",
            "0f2b6a3c1d4e-4f5a-8b6c-7d8e9f0a1b2c-",
            "0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2g",
            "{0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b}",
            "0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2cc",
            "0f2b6a3c-1d4e-4f5a-8b6c+7d8e9f0a1b2c",
        ] {
            let id = Id::from_text(other);
            assert!(matches!(id, Id::Text(_)), "{other}");
            assert_eq!(id.to_string(), other);
        }
        let max = "ffffffff-ffff-ffff-ffff-ffffffffffff";
        assert_eq!(Id::from_text(max).as_u128(), Some(u128::MAX));
    }

    #[test]
    fn shorten_id_takes_low_64_bits() {
        // Value computed with Python: format(uuid.UUID(x).int & (2**64-1), "x")
        assert_eq!(
            get_shorten_id("0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c"),
            "8b6c7d8e9f0a1b2c"
        );
        assert_eq!(
            get_shorten_id("{0F2B6A3C1D4E4F5A8B6C00000000000a}"),
            "8b6c00000000000a"
        );
        assert_ne!(get_shorten_id("not a uuid"), get_shorten_id("not a uuid"));
    }
}
