//! User handles: the names the relay's directory maps to account keys (SPEC.md §9.4).

use core::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::consts::{HANDLE_MAX_LEN, HANDLE_MIN_LEN};

/// A user handle in its normalised (canonical) form: 3 to 32 bytes of `a-z 0-9 . _ -`.
///
/// ```text
/// Handle = len:varint || len bytes of [a-z0-9._-], HANDLE_MIN_LEN ≤ len ≤ HANDLE_MAX_LEN
/// ```
///
/// [`Handle::parse`] accepts user input and lower-cases ASCII letters first, so `"Alice"` and
/// `"alice"` are the same handle. Decoding accepts only the normalised form, so each handle has
/// exactly one encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(String);

/// Why a string is not a valid handle. The message never repeats the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// Shorter than [`HANDLE_MIN_LEN`] bytes.
    #[error("a handle needs at least {HANDLE_MIN_LEN} characters")]
    TooShort,
    /// Longer than [`HANDLE_MAX_LEN`] bytes.
    #[error("a handle can have at most {HANDLE_MAX_LEN} characters")]
    TooLong,
    /// Contains a character outside `a-z 0-9 . _ -` (after lower-casing).
    #[error("a handle can only contain letters a-z, digits 0-9, '.', '_' and '-'")]
    InvalidCharacter,
}

impl Handle {
    /// Normalises user input (ASCII lower-casing) and validates the result.
    pub fn parse(input: &str) -> Result<Self, HandleError> {
        // Lower-casing ASCII keeps the byte length, so the length can be checked first.
        check_len(input.len())?;
        let normalised = input.to_ascii_lowercase();
        check_normalised(&normalised)?;
        Ok(Self(normalised))
    }

    /// The normalised handle.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_len(len: usize) -> Result<(), HandleError> {
    if len < HANDLE_MIN_LEN {
        Err(HandleError::TooShort)
    } else if len > HANDLE_MAX_LEN {
        Err(HandleError::TooLong)
    } else {
        Ok(())
    }
}

fn is_handle_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-')
}

/// Validates a string that must already be in normalised form.
fn check_normalised(s: &str) -> Result<(), HandleError> {
    check_len(s.len())?;
    if s.bytes().all(is_handle_byte) {
        Ok(())
    } else {
        Err(HandleError::InvalidCharacter)
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Handle {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Handle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HandleVisitor;
        impl Visitor<'_> for HandleVisitor {
            type Value = Handle;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a normalised handle")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Handle, E> {
                check_normalised(v)
                    .map_err(|_| E::invalid_value(de::Unexpected::Other("handle"), &self))?;
                Ok(Handle(v.to_owned()))
            }
        }
        deserializer.deserialize_str(HandleVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{DecodeError, decode, encode};

    #[test]
    fn parse_lower_cases_then_validates() {
        assert_eq!(Handle::parse("Alice").unwrap().as_str(), "alice");
        assert_eq!(Handle::parse("b.o_b-42").unwrap().to_string(), "b.o_b-42");
    }

    #[test]
    fn parse_rejects_bad_lengths_and_characters() {
        assert_eq!(Handle::parse("ab"), Err(HandleError::TooShort));
        assert_eq!(Handle::parse(&"a".repeat(33)), Err(HandleError::TooLong));
        assert!(Handle::parse(&"a".repeat(32)).is_ok());
        assert_eq!(Handle::parse("al@ce"), Err(HandleError::InvalidCharacter));
        assert_eq!(Handle::parse("al ce"), Err(HandleError::InvalidCharacter));
        assert_eq!(Handle::parse("alicé"), Err(HandleError::InvalidCharacter));
    }

    #[test]
    fn error_messages_do_not_repeat_input() {
        let err = Handle::parse("secret@name").unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn encodes_as_a_string() {
        let handle = Handle::parse("alice").unwrap();
        assert_eq!(encode(&handle), b"\x05alice");
        assert_eq!(decode::<Handle>(b"\x05alice", 64), Ok(handle));
    }

    #[test]
    fn decode_accepts_only_the_normalised_form() {
        for bad in [&b"\x02ab"[..], b"\x05Alice", b"\x05al@ce", b"\x05al ce"] {
            assert_eq!(
                decode::<Handle>(bad, 64),
                Err(DecodeError::Malformed),
                "{bad:?}"
            );
        }
        let mut too_long = vec![33];
        too_long.extend_from_slice(&[b'a'; 33]);
        assert_eq!(decode::<Handle>(&too_long, 64), Err(DecodeError::Malformed));
    }
}
