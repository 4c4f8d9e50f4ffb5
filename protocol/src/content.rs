//! Message content: what clients encrypt with the Double Ratchet (SPEC.md §13).
//!
//! A sender encodes one [`Content`] with [`Content::to_bytes`] and passes the bytes to
//! [`crate::Session::encrypt`] for each device of the recipient (and, as a
//! [`Body::SentTranscript`], for each of its own other devices). The receiver decodes the
//! plaintext with [`Content::from_bytes`] and applies the receiver rules of SPEC.md §13.3: in
//! particular it must not attribute a message to [`Content::sender`] before checking that
//! handle against the directory and the sealed sender certificate.

use core::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::consts::{CONTENT_VERSION, MAX_PLAINTEXT_LEN, MAX_TEXT_LEN};
use crate::encoding::{self, BoundedString, DecodeError};
use crate::group::{SenderKeyDistribution, SignedGroupState};
use crate::wire::Handle;

/// One message, as encrypted end to end (SPEC.md §13.1).
///
/// ```text
/// Content = version:u8 (= CONTENT_VERSION = 1) || message_id:[16] || sent_at:varint u64
///           || sender:Handle || body:Body
/// ```
///
/// Every field is plaintext of the ratchet, so the [`Debug`] output shows only the message id,
/// the time and the kind and length of the body: no handle and no text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// Random, chosen by the sender. The same id goes to every device of the recipient and to
    /// the sender's own other devices, so devices can deduplicate and refer to the message.
    pub message_id: [u8; 16],
    /// The sender's clock when it wrote the message, in seconds since the Unix epoch.
    /// Informational only: never trusted.
    pub sent_at: u64,
    /// The handle the sender claims. Not trusted on its own: the receiver attributes the
    /// message to it only after checking that the directory maps it to the account key of the
    /// sealed sender certificate (SPEC.md §13.3).
    pub sender: Handle,
    /// What the message says.
    pub body: Body,
}

impl Content {
    /// The versioned canonical encoding, in a buffer zeroized on drop (it is plaintext).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        encoding::encode_versioned_zeroizing(CONTENT_VERSION, self)
    }

    /// Decodes a content, rejecting other versions, input over [`MAX_PLAINTEXT_LEN`], a text
    /// over [`MAX_TEXT_LEN`], a handle not in normalised form, an unknown body tag, trailing
    /// bytes and non-canonical encodings.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode_versioned(bytes, CONTENT_VERSION, MAX_PLAINTEXT_LEN)
    }
}

impl fmt::Debug for Content {
    /// Shows no handle and no text: plaintext must never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Content")
            .field("message_id", &HexBytes(&self.message_id))
            .field("sent_at", &self.sent_at)
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

/// The body of a message. Append-only: never reorder or remove a variant.
///
/// ```text
/// Body = tag:varint u32 || fields
///   0 Text           || text:varint len (≤ MAX_TEXT_LEN) || UTF-8 bytes
///   1 SentTranscript || to:Handle || text:varint len (≤ MAX_TEXT_LEN) || UTF-8 bytes
///   2 SenderKey      || SenderKeyDistribution (SPEC.md §14.5)
///   3 GroupUpdate    || SignedGroupState (SPEC.md §14.2)
/// ```
///
/// The plaintext of a group message is a `Content` with a [`Body::Text`]: the group is named by
/// the group message's header, not by the content.
///
/// [`MAX_TEXT_LEN`] counts bytes of UTF-8, not characters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// A one-on-one text message.
    Text {
        /// The text, untrusted: display it as plain text.
        text: BoundedString<MAX_TEXT_LEN>,
    },
    /// A copy of a message this account sent to `to`, for the account's other devices, so
    /// that every device of a person shows the whole conversation. A receiver accepts it only
    /// from a device of its own account (SPEC.md §13.3).
    SentTranscript {
        /// The handle the message was sent to.
        to: Handle,
        /// The text that was sent.
        text: BoundedString<MAX_TEXT_LEN>,
    },
    /// A member device's sender key for a group and epoch (SPEC.md §14.8). Only ever sent
    /// inside a 1:1 session; a receiver accepts it only from a member of that group state.
    SenderKey(SenderKeyDistribution),
    /// A signed group state: a change, or the invitation of a new member (SPEC.md §14.4).
    /// Only ever sent inside a 1:1 session.
    GroupUpdate(SignedGroupState),
}

impl Body {
    /// The text of the message; empty for a body that carries no text.
    pub fn text(&self) -> &str {
        match self {
            Self::Text { text } | Self::SentTranscript { text, .. } => text.as_str(),
            Self::SenderKey(_) | Self::GroupUpdate(_) => "",
        }
    }

    /// Whether the body is a message with text ([`Body::Text`] or [`Body::SentTranscript`]).
    pub fn is_text(&self) -> bool {
        matches!(self, Self::Text { .. } | Self::SentTranscript { .. })
    }
}

impl fmt::Debug for Body {
    /// Shows the kind and the text's length in bytes, never the text, a handle or a key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Text { .. } => "Text",
            Self::SentTranscript { .. } => "SentTranscript",
            Self::SenderKey(_) => return f.write_str("SenderKey { .. }"),
            Self::GroupUpdate(_) => return f.write_str("GroupUpdate { .. }"),
        };
        f.debug_struct(name)
            .field("text_len", &self.text().len())
            .finish_non_exhaustive()
    }
}

/// Lower-case hex in `Debug` output.
struct HexBytes<'a>(&'a [u8]);

impl fmt::Debug for HexBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::consts::{HANDLE_MAX_LEN, MAX_BODY_LEN};
    use crate::keys::{
        AccountKeyPair, DeviceId, DeviceKeyPair, KemPrekeyKind, KemPrekeySecret,
        OneTimePrekeySecret, PrekeyBundle, SignedPrekeySecret, VerifiedCertificate,
    };
    use crate::sealed::{open, seal};
    use crate::session::{Session, SessionMessage};

    const SECRET: &str = "the secret plan";

    fn handle(s: &str) -> Handle {
        Handle::parse(s).unwrap()
    }

    fn text(s: &str) -> BoundedString<MAX_TEXT_LEN> {
        BoundedString::new(s).unwrap()
    }

    fn text_message() -> Content {
        Content {
            message_id: [0x11; 16],
            sent_at: 1_700_000_123,
            sender: handle("alice"),
            body: Body::Text { text: text(SECRET) },
        }
    }

    fn transcript() -> Content {
        Content {
            message_id: [0x22; 16],
            sent_at: 300,
            sender: handle("alice"),
            body: Body::SentTranscript {
                to: handle("bob.peer-worker"),
                text: text("Grüße 👋"),
            },
        }
    }

    /// The layout of SPEC.md §13.1, by hand, for a body with tag < 128 and short fields.
    fn layout(id: [u8; 16], sent_at: &[u8], sender: &str, tag: u8, to: Option<&str>) -> Vec<u8> {
        let mut out = vec![CONTENT_VERSION];
        out.extend_from_slice(&id);
        out.extend_from_slice(sent_at);
        out.push(u8::try_from(sender.len()).unwrap());
        out.extend_from_slice(sender.as_bytes());
        out.push(tag);
        if let Some(to) = to {
            out.push(u8::try_from(to.len()).unwrap());
            out.extend_from_slice(to.as_bytes());
        }
        out
    }

    /// `bytes` with a text field of `len` bytes of `b'x'` appended (varint length up to 2^21).
    fn with_text(mut bytes: Vec<u8>, len: usize) -> Vec<u8> {
        let mut n = u64::try_from(len).unwrap();
        while n >= 0x80 {
            bytes.push(u8::try_from(n & 0x7F).unwrap() | 0x80);
            n >>= 7;
        }
        bytes.push(u8::try_from(n).unwrap());
        bytes.resize(bytes.len() + len, b'x');
        bytes
    }

    #[test]
    fn text_round_trips_with_the_spec_layout() {
        let content = text_message();
        let bytes = content.to_bytes();
        // 1_700_000_123 = 0x6553F17B as LEB128.
        let mut expected = layout(
            [0x11; 16],
            &[0xFB, 0xE2, 0xCF, 0xAA, 0x06],
            "alice",
            0,
            None,
        );
        expected.push(u8::try_from(SECRET.len()).unwrap());
        expected.extend_from_slice(SECRET.as_bytes());
        assert_eq!(bytes[..], expected[..]);
        assert_eq!(Content::from_bytes(&bytes), Ok(content.clone()));
        assert_eq!(content.body.text(), SECRET);
    }

    #[test]
    fn sent_transcript_round_trips_with_the_spec_layout() {
        let content = transcript();
        let bytes = content.to_bytes();
        let mut expected = layout(
            [0x22; 16],
            &[0xAC, 0x02],
            "alice",
            1,
            Some("bob.peer-worker"),
        );
        let utf8 = "Grüße 👋".as_bytes();
        expected.push(u8::try_from(utf8.len()).unwrap());
        expected.extend_from_slice(utf8);
        assert_eq!(bytes[..], expected[..]);
        assert_eq!(Content::from_bytes(&bytes), Ok(content.clone()));
        assert_eq!(content.body.text(), "Grüße 👋");
    }

    #[test]
    fn empty_and_maximal_texts_round_trip() {
        for len in [0, MAX_TEXT_LEN] {
            let content = Content {
                body: Body::Text {
                    text: text(&"x".repeat(len)),
                },
                ..text_message()
            };
            assert_eq!(Content::from_bytes(&content.to_bytes()), Ok(content));
        }
    }

    #[test]
    fn other_versions_are_rejected() {
        let mut bytes = text_message().to_bytes().to_vec();
        for version in [0, 2, 0xFF] {
            bytes[0] = version;
            assert_eq!(
                Content::from_bytes(&bytes),
                Err(DecodeError::UnsupportedVersion { found: version })
            );
        }
        assert_eq!(Content::from_bytes(&[]), Err(DecodeError::Malformed));
    }

    #[test]
    fn text_over_the_limit_is_rejected_and_not_constructible() {
        let prefix = layout([0x11; 16], &[0x01], "alice", 0, None);
        let at_limit = with_text(prefix.clone(), MAX_TEXT_LEN);
        assert!(Content::from_bytes(&at_limit).is_ok());
        let over = with_text(prefix, MAX_TEXT_LEN + 1);
        assert_eq!(Content::from_bytes(&over), Err(DecodeError::Malformed));

        let prefix = layout([0x22; 16], &[0x01], "alice", 1, Some("bob"));
        assert!(Content::from_bytes(&with_text(prefix.clone(), MAX_TEXT_LEN)).is_ok());
        let over = with_text(prefix, MAX_TEXT_LEN + 1);
        assert_eq!(Content::from_bytes(&over), Err(DecodeError::Malformed));

        assert!(BoundedString::<MAX_TEXT_LEN>::new("x".repeat(MAX_TEXT_LEN + 1)).is_none());
        // The limit is in bytes: 8193 four-byte characters are 32772 bytes.
        assert!(BoundedString::<MAX_TEXT_LEN>::new("👋".repeat(8193)).is_none());
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = text_message().to_bytes().to_vec();
        bytes.push(0);
        assert_eq!(Content::from_bytes(&bytes), Err(DecodeError::TrailingBytes));
    }

    #[test]
    fn non_canonical_varints_are_rejected() {
        // sent_at = 1 as the over-long varint 0x81 0x00.
        let bytes = with_text(layout([0x11; 16], &[0x81, 0x00], "alice", 0, None), 3);
        assert_eq!(Content::from_bytes(&bytes), Err(DecodeError::NonCanonical));
        // Body tag 0 as 0x80 0x00.
        let mut bytes = layout([0x11; 16], &[0x01], "alice", 0x80, None);
        bytes.push(0x00);
        let bytes = with_text(bytes, 3);
        assert_eq!(Content::from_bytes(&bytes), Err(DecodeError::NonCanonical));
    }

    #[test]
    fn unknown_body_tags_are_rejected() {
        for tag in [2, 3, 0x7F] {
            let bytes = with_text(layout([0x11; 16], &[0x01], "alice", tag, None), 3);
            assert_eq!(Content::from_bytes(&bytes), Err(DecodeError::Malformed));
        }
    }

    #[test]
    fn handles_must_be_normalised() {
        for sender in ["Alice", "al ce", "al@ce", "ab"] {
            let bytes = with_text(layout([0x11; 16], &[0x01], sender, 0, None), 3);
            assert_eq!(
                Content::from_bytes(&bytes),
                Err(DecodeError::Malformed),
                "{sender}"
            );
        }
        let bytes = with_text(layout([0x22; 16], &[0x01], "alice", 1, Some("Bob")), 3);
        assert_eq!(Content::from_bytes(&bytes), Err(DecodeError::Malformed));
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let mut bytes = layout([0x11; 16], &[0x01], "alice", 0, None);
        bytes.extend_from_slice(&[2, 0xC3, 0x28]);
        assert_eq!(Content::from_bytes(&bytes), Err(DecodeError::Malformed));
    }

    #[test]
    fn truncations_are_rejected() {
        let bytes = transcript().to_bytes();
        for len in 1..bytes.len() {
            assert_eq!(
                Content::from_bytes(&bytes[..len]),
                Err(DecodeError::Malformed),
                "{len}"
            );
        }
    }

    #[test]
    fn input_over_the_plaintext_limit_is_rejected_first() {
        let bytes = with_text(
            layout([0x11; 16], &[0x01], "alice", 0, None),
            MAX_PLAINTEXT_LEN,
        );
        assert_eq!(
            Content::from_bytes(&bytes),
            Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: MAX_PLAINTEXT_LEN
            })
        );
    }

    #[test]
    fn debug_shows_neither_text_nor_handles() {
        for content in [text_message(), transcript()] {
            let shown = format!("{content:?} {:?}", content.body);
            for secret in [content.body.text(), "alice", "bob.peer-worker"] {
                assert!(!shown.contains(secret), "{shown}");
            }
            assert!(shown.contains(&format!("text_len: {}", content.body.text().len())));
        }
        assert_eq!(
            format!("{:?}", text_message()),
            "Content { message_id: 11111111111111111111111111111111, sent_at: 1700000123, \
             body: Text { text_len: 15, .. }, .. }"
        );
    }

    fn device(
        rng: &mut ChaCha20Rng,
        account: &AccountKeyPair,
    ) -> (DeviceKeyPair, VerifiedCertificate) {
        let keys = DeviceKeyPair::generate(rng);
        let certificate = account
            .certify_device(DeviceId::random(rng), &keys, 1_700_000_000)
            .verify()
            .unwrap();
        (keys, certificate)
    }

    /// The reason for `MAX_TEXT_LEN`: the largest content is below `MAX_PLAINTEXT_LEN` and,
    /// as the first (prekey) message of a session, sealed, below `MAX_BODY_LEN`.
    #[test]
    fn the_largest_content_fits_one_sealed_prekey_message() {
        let long_handle = "h".repeat(HANDLE_MAX_LEN);
        let largest = Content {
            message_id: [0xFF; 16],
            sent_at: u64::MAX,
            sender: handle(&long_handle),
            body: Body::SentTranscript {
                to: handle(&long_handle),
                text: text(&"👋".repeat(MAX_TEXT_LEN / 4)),
            },
        };
        let plaintext = largest.to_bytes();
        assert_eq!(
            plaintext.len(),
            1 + 16 + 10 + 33 + 1 + 33 + 3 + MAX_TEXT_LEN
        );
        assert!(plaintext.len() <= MAX_PLAINTEXT_LEN);

        let mut rng = ChaCha20Rng::seed_from_u64(13);
        let (alice, bob) = (
            AccountKeyPair::generate(&mut rng),
            AccountKeyPair::generate(&mut rng),
        );
        let (alice_keys, alice_certificate) = device(&mut rng, &alice);
        let (bob_keys, bob_certificate) = device(&mut rng, &bob);
        let bundle = PrekeyBundle::new(
            bob_certificate.certificate().clone(),
            SignedPrekeySecret::generate(1, &bob_keys, &mut rng)
                .public()
                .clone(),
            Some(
                OneTimePrekeySecret::generate(100, &mut rng)
                    .public()
                    .clone(),
            ),
            KemPrekeySecret::generate(200, KemPrekeyKind::OneTime, &bob_keys, &mut rng)
                .public()
                .clone(),
        )
        .verify(&bob.public_key())
        .unwrap();
        let mut session =
            Session::initiate(&alice_keys, &alice_certificate, &bundle, &mut rng).unwrap();
        let message = session.encrypt(&plaintext).unwrap();
        assert!(matches!(message, SessionMessage::Prekey(_)));
        let envelope = seal(&alice_certificate, &bob_certificate, &message, &mut rng).unwrap();
        // Padded to two steps of 32768 (SPEC.md §7.3): 49 + 65536 bytes.
        assert_eq!(envelope.len(), 49 + 2 * 32768);
        assert!(envelope.len() <= MAX_BODY_LEN / 2);
        let opened = open(&bob_keys, &bob_certificate, &envelope).unwrap();
        assert_eq!(opened.message, message);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
            if let Ok(content) = Content::from_bytes(&bytes) {
                prop_assert_eq!(&content.to_bytes()[..], &bytes[..]);
            }
        }

        #[test]
        fn arbitrary_bytes_after_the_version_never_panic(body in vec(any::<u8>(), 0..512)) {
            let bytes = [&[CONTENT_VERSION][..], &body].concat();
            if let Ok(content) = Content::from_bytes(&bytes) {
                prop_assert_eq!(&content.to_bytes()[..], &bytes[..]);
            }
        }

        #[test]
        fn mutated_contents_never_panic(
            which in any::<bool>(),
            flips in vec((any::<usize>(), 1..=u8::MAX), 1..8),
        ) {
            let mut bytes = if which { text_message() } else { transcript() }.to_bytes().to_vec();
            for (at, mask) in flips {
                let at = at % bytes.len();
                bytes[at] ^= mask;
            }
            if let Ok(content) = Content::from_bytes(&bytes) {
                prop_assert_eq!(&content.to_bytes()[..], &bytes[..]);
            }
        }

        #[test]
        fn texts_round_trip(id in any::<[u8; 16]>(), sent_at in any::<u64>(), s in ".{0,64}") {
            let content = Content { message_id: id, sent_at, sender: handle("alice"), body: Body::Text { text: text(&s) } };
            prop_assert_eq!(Content::from_bytes(&content.to_bytes()), Ok(content));
        }
    }
}
