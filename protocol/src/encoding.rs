//! Canonical binary encoding (SPEC.md §2).
//!
//! Kith encodes every structure with postcard 1.x. postcard's own decoder is *not* canonical:
//! it accepts over-long varints and ignores trailing bytes. [`decode`] therefore
//!
//! 1. rejects input longer than the caller's limit before looking at it,
//! 2. decodes with `take_from_bytes` and requires an empty remainder,
//! 3. re-encodes the value and requires the result to equal the input byte for byte,
//!
//! so every value has exactly one accepted encoding. Variable-length fields use the bounded
//! types below, which enforce their limits *while* decoding.

use core::fmt;
use core::marker::PhantomData;

use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Why bytes could not be decoded into a Kith structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is longer than the limit for this structure.
    #[error("input of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit that applies.
        max: usize,
    },
    /// The input is not a valid encoding (truncated, bad tag, a field over its limit, …).
    #[error("malformed input")]
    Malformed,
    /// The input has bytes after the end of the structure.
    #[error("trailing bytes after the structure")]
    TrailingBytes,
    /// The input decodes, but is not the canonical encoding of the value.
    #[error("non-canonical encoding")]
    NonCanonical,
    /// The structure carries a version this implementation does not speak.
    #[error("unsupported version {found}")]
    UnsupportedVersion {
        /// The version found in the input.
        found: u8,
    },
}

/// Encodes `value` canonically into a buffer of exactly the right size (computed first), so
/// that encoding never reallocates and leaves no stray copy of secret fields behind.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = vec![0u8; encoded_len(value)];
    write_into(value, &mut out);
    out
}

/// Like [`encode`], in a buffer that is zeroized on drop (for structures holding secrets).
pub(crate) fn encode_zeroizing<T: Serialize + ?Sized>(value: &T) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![0u8; encoded_len(value)]);
    write_into(value, &mut out);
    out
}

/// Like [`encode_zeroizing`], in a zeroizing buffer whose capacity is `capacity(len)` for an
/// encoding of `len` bytes, so the caller can append (e.g. padding) without reallocating.
pub(crate) fn encode_zeroizing_with_capacity<T: Serialize + ?Sized>(
    value: &T,
    capacity: impl FnOnce(usize) -> usize,
) -> Zeroizing<Vec<u8>> {
    let len = encoded_len(value);
    let mut out = Zeroizing::new(Vec::with_capacity(capacity(len).max(len)));
    out.resize(len, 0);
    write_into(value, &mut out);
    out
}

// Serialising Kith's own types cannot fail: every sequence has a known length, no `Serialize`
// impl in this crate returns a custom error, and the buffer is sized by a first pass. postcard
// fails only in those cases, so these `expect`s document invariants of the crate.
#[allow(clippy::expect_used)]
fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .expect("Kith types always serialise")
}

#[allow(clippy::expect_used)]
fn write_into<T: Serialize + ?Sized>(value: &T, out: &mut [u8]) {
    postcard::to_slice(value, out).expect("buffer sized by encoded_len");
}

/// Decodes exactly one canonical `T` from `bytes`, which must not exceed `max_len`.
pub(crate) fn decode<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    max_len: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|_| DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    if encode_zeroizing(&value)[..] != *bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}

/// Decodes a structure that starts with a one-byte version (encoded as a postcard `u8`, i.e.
/// one raw byte) equal to `version`, then the body `T`.
pub(crate) fn decode_versioned<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    version: u8,
    max_len: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    match bytes.split_first() {
        None => Err(DecodeError::Malformed),
        Some((&found, _)) if found != version => Err(DecodeError::UnsupportedVersion { found }),
        Some((_, body)) => decode(body, max_len),
    }
}

/// Encodes `version` (one byte) followed by the canonical encoding of `value`.
pub(crate) fn encode_versioned<T: Serialize + ?Sized>(version: u8, value: &T) -> Vec<u8> {
    let mut out = vec![0u8; 1 + encoded_len(value)];
    out[0] = version;
    write_into(value, &mut out[1..]);
    out
}

/// Like [`encode_versioned`], in a buffer that is zeroized on drop.
pub(crate) fn encode_versioned_zeroizing<T: Serialize + ?Sized>(
    version: u8,
    value: &T,
) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![0u8; 1 + encoded_len(value)]);
    out[0] = version;
    write_into(value, &mut out[1..]);
    out
}

/// Fixed-size byte arrays of any length, encoded as exactly `N` raw bytes (a postcard tuple of
/// `u8`), with no length prefix. Use with `#[serde(with = "crate::encoding::array")]`.
pub(crate) mod array {
    use super::*;

    pub(crate) fn serialize<S: Serializer, const N: usize>(
        value: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(N)?;
        for byte in value {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        struct ArrayVisitor<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for ArrayVisitor<N> {
            type Value = [u8; N];
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{N} bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
                let mut out = [0u8; N];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(out)
            }
        }
        deserializer.deserialize_tuple(N, ArrayVisitor::<N>)
    }
}

/// A byte string of at most `MAX` bytes, encoded as a varint length then the bytes.
/// Decoding fails as soon as the length prefix exceeds `MAX`.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct BoundedBytes<const MAX: usize>(Vec<u8>);

impl<const MAX: usize> BoundedBytes<MAX> {
    /// Wraps `bytes`, or returns `None` when it is longer than `MAX`.
    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() <= MAX).then_some(Self(bytes))
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Returns the bytes, consuming the wrapper.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<const MAX: usize> fmt::Debug for BoundedBytes<MAX> {
    /// Shows only the length: these fields carry ciphertext and tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BoundedBytes(len = {})", self.0.len())
    }
}

impl<const MAX: usize> Serialize for BoundedBytes<MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for BoundedBytes<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor<const MAX: usize>;
        impl<const MAX: usize> Visitor<'_> for BytesVisitor<MAX> {
            type Value = BoundedBytes<MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "at most {MAX} bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                BoundedBytes::new(v.to_vec()).ok_or_else(|| E::invalid_length(v.len(), &self))
            }
        }
        deserializer.deserialize_bytes(BytesVisitor::<MAX>)
    }
}

/// A UTF-8 string of at most `MAX` bytes, encoded as a varint length then the bytes.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct BoundedString<const MAX: usize>(String);

impl<const MAX: usize> BoundedString<MAX> {
    /// Wraps `s`, or returns `None` when it is longer than `MAX` bytes.
    pub fn new(s: impl Into<String>) -> Option<Self> {
        let s = s.into();
        (s.len() <= MAX).then_some(Self(s))
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> fmt::Debug for BoundedString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<const MAX: usize> Serialize for BoundedString<MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for BoundedString<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor<const MAX: usize>;
        impl<const MAX: usize> Visitor<'_> for StrVisitor<MAX> {
            type Value = BoundedString<MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a string of at most {MAX} bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                BoundedString::new(v).ok_or_else(|| E::invalid_length(v.len(), &self))
            }
        }
        deserializer.deserialize_str(StrVisitor::<MAX>)
    }
}

/// A list of at most `MAX` items, encoded as a varint count then the items. Decoding fails on
/// the count, before any item is decoded or memory reserved, when it exceeds `MAX`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BoundedVec<T, const MAX: usize>(Vec<T>);

impl<T, const MAX: usize> BoundedVec<T, MAX> {
    /// Wraps `items`, or returns `None` when there are more than `MAX`.
    pub fn new(items: Vec<T>) -> Option<Self> {
        (items.len() <= MAX).then_some(Self(items))
    }

    /// The items.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// Returns the items, consuming the wrapper.
    pub fn into_vec(self) -> Vec<T> {
        self.0
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T, const MAX: usize> Default for BoundedVec<T, MAX> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T: fmt::Debug, const MAX: usize> fmt::Debug for BoundedVec<T, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<T: Serialize, const MAX: usize> Serialize for BoundedVec<T, MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.0)
    }
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for BoundedVec<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeqVisitor<T, const MAX: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for SeqVisitor<T, MAX> {
            type Value = BoundedVec<T, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "at most {MAX} items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let hint = seq.size_hint().unwrap_or(0);
                if hint > MAX {
                    return Err(de::Error::invalid_length(hint, &self));
                }
                let mut items = Vec::with_capacity(hint);
                while let Some(item) = seq.next_element()? {
                    if items.len() == MAX {
                        return Err(de::Error::invalid_length(MAX + 1, &self));
                    }
                    items.push(item);
                }
                Ok(BoundedVec(items))
            }
        }
        deserializer.deserialize_seq(SeqVisitor::<T, MAX>(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        n: u32,
        bytes: BoundedBytes<4>,
        #[serde(with = "array")]
        fixed: [u8; 40],
    }

    fn sample() -> Sample {
        Sample {
            n: 300,
            bytes: BoundedBytes(vec![1, 2]),
            fixed: [7; 40],
        }
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&sample());
        assert_eq!(decode::<Sample>(&bytes, 100), Ok(sample()));
    }

    #[test]
    fn fixed_array_has_no_length_prefix() {
        // n = 300 is a 2-byte varint, bytes is 1 + 2, fixed is 40 raw bytes.
        assert_eq!(encode(&sample()).len(), 2 + 3 + 40);
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = encode(&sample());
        bytes.push(0);
        assert_eq!(
            decode::<Sample>(&bytes, 100),
            Err(DecodeError::TrailingBytes)
        );
    }

    #[test]
    fn rejects_overlong_varint() {
        // 300 = 0xAC 0x02; over-long form 0xAC 0x82 0x00 decodes to the same value in postcard.
        let canonical = encode(&sample());
        let mut bytes = vec![0xAC, 0x82, 0x00];
        bytes.extend_from_slice(&canonical[2..]);
        assert_eq!(
            decode::<Sample>(&bytes, 100),
            Err(DecodeError::NonCanonical)
        );
    }

    #[test]
    fn rejects_field_over_its_bound() {
        let mut bytes = encode(&sample());
        bytes[2] = 5; // length prefix of `bytes` beyond its bound of 4
        bytes.splice(3..3, [0, 0, 0]);
        assert_eq!(decode::<Sample>(&bytes, 100), Err(DecodeError::Malformed));
    }

    #[test]
    fn rejects_input_over_the_limit_before_decoding() {
        let bytes = encode(&sample());
        let len = bytes.len();
        assert_eq!(
            decode::<Sample>(&bytes, len - 1),
            Err(DecodeError::TooLarge { len, max: len - 1 })
        );
    }

    #[test]
    fn bounded_vec_rejects_count_before_items() {
        // A count of 2^32 with no items behind it must fail on the count.
        let bytes = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F];
        assert_eq!(
            decode::<BoundedVec<u8, 10>>(&bytes, 100),
            Err(DecodeError::Malformed)
        );
    }

    #[test]
    fn versioned_rejects_other_versions() {
        let bytes = encode_versioned(2, &7u8);
        assert_eq!(
            decode_versioned::<u8>(&bytes, 1, 10),
            Err(DecodeError::UnsupportedVersion { found: 2 })
        );
        assert_eq!(decode_versioned::<u8>(&bytes, 2, 10), Ok(7));
        assert_eq!(
            decode_versioned::<u8>(&[], 2, 10),
            Err(DecodeError::Malformed)
        );
    }
}
