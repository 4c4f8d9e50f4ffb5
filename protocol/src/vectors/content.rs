//! `content.json`: the message content inside a session, both body variants (SPEC.md §13).

use serde::{Deserialize, Serialize};

use super::{check_against_file, draw, hex, push_varint, seeded, unhex, unhex_vec};
use crate::content::{Body, Content};
use crate::encoding::BoundedString;
use crate::wire::Handle;

const SEED: u64 = 8;

const DESCRIPTION: &str = "Message content (SPEC.md §13), the plaintext passed to the Double \
    Ratchet. encoding = version:u8 (1) || message_id:[16] || sent_at as LEB128 varint || \
    sender as varint length || bytes || body; body = tag as varint (0 Text, 1 SentTranscript) \
    || for SentTranscript, to as varint length || bytes || text as varint length (of the UTF-8 \
    bytes, at most 32768) || UTF-8 bytes. Handles are in normalised form (a-z0-9._-, 3 to 32 \
    bytes). Decoding an encoding and re-encoding it must give the same bytes.";

#[derive(Serialize, Deserialize)]
struct ContentVector {
    description: String,
    contents: Vec<ContentCase>,
}

#[derive(Serialize, Deserialize)]
struct ContentCase {
    name: String,
    message_id: String,
    sent_at: u64,
    sender: String,
    body_tag: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    text: String,
    encoding: String,
}

fn handle(s: &str) -> Handle {
    Handle::parse(s).expect("valid handle")
}

fn text(s: &str) -> BoundedString<{ crate::consts::MAX_TEXT_LEN }> {
    BoundedString::new(s).expect("short text")
}

/// Both variants, with message ids from the seeded RNG.
fn contents() -> [(&'static str, Content); 2] {
    let mut rng = seeded(SEED);
    let text_message = Content {
        message_id: draw(&mut rng),
        sent_at: 1_700_000_123,
        sender: handle("alice"),
        body: Body::Text {
            text: text("Hello, Bob! Grüße 👋"),
        },
    };
    let transcript = Content {
        message_id: draw(&mut rng),
        sent_at: 1_700_000_456,
        sender: handle("alice"),
        body: Body::SentTranscript {
            to: handle("bob.peer-worker"),
            text: text("See you at 8?"),
        },
    };
    [("Text", text_message), ("SentTranscript", transcript)]
}

fn compute() -> ContentVector {
    let contents = contents()
        .into_iter()
        .map(|(name, content)| {
            let (body_tag, to) = match &content.body {
                Body::Text { .. } => (0, None),
                Body::SentTranscript { to, .. } => (1, Some(to.as_str().to_owned())),
                _ => unreachable!("group bodies are in group_state.json and group_message.json"),
            };
            ContentCase {
                name: name.to_owned(),
                message_id: hex(content.message_id),
                sent_at: content.sent_at,
                sender: content.sender.as_str().to_owned(),
                body_tag,
                to,
                text: content.body.text().to_owned(),
                encoding: hex(&content.to_bytes()[..]),
            }
        })
        .collect();
    ContentVector {
        description: DESCRIPTION.to_owned(),
        contents,
    }
}

/// The encoding laid out field by field from the spec.
fn layout(case: &ContentCase) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(&unhex::<16>(&case.message_id));
    push_varint(&mut out, case.sent_at);
    let string = |out: &mut Vec<u8>, s: &str| {
        push_varint(out, u64::try_from(s.len()).expect("short"));
        out.extend_from_slice(s.as_bytes());
    };
    string(&mut out, &case.sender);
    push_varint(&mut out, u64::from(case.body_tag));
    if let Some(to) = &case.to {
        string(&mut out, to);
    }
    string(&mut out, &case.text);
    out
}

#[test]
fn content_vector() {
    let recorded = check_against_file("content.json", &compute());
    let names: Vec<&str> = recorded.contents.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Text", "SentTranscript"]);
    for case in &recorded.contents {
        let bytes = unhex_vec(&case.encoding);
        assert_eq!(bytes, layout(case), "{}", case.name);
        let decoded = Content::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(decoded.to_bytes()[..], bytes[..], "{}", case.name);
        assert_eq!(hex(decoded.message_id), case.message_id);
        assert_eq!(decoded.sent_at, case.sent_at);
        assert_eq!(decoded.sender.as_str(), case.sender);
        assert_eq!(decoded.body.text(), case.text);
        match (&decoded.body, case.body_tag, &case.to) {
            (Body::Text { .. }, 0, None) => {}
            (Body::SentTranscript { to, .. }, 1, Some(expected)) => {
                assert_eq!(to.as_str(), expected);
            }
            _ => panic!("{}: body does not match tag {}", case.name, case.body_tag),
        }
    }
}
