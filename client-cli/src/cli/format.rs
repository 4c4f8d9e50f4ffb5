//! Pure formatting: dates, message and contact lines, JSON objects, safety-number rows, and
//! making other people's text safe to print on a terminal.

use kith::{Contact, Message};
use kith_protocol::wire::Handle;
use serde_json::{Value, json};

const SECS_PER_DAY: u64 = 86_400;

/// `YYYY-MM-DD HH:MM` in UTC for seconds since the Unix epoch.
pub(crate) fn utc_date_time(epoch_secs: u64) -> String {
    let (year, month, day) = civil_from_days(epoch_secs / SECS_PER_DAY);
    format!("{year:04}-{month:02}-{day:02} {}", utc_time(epoch_secs))
}

/// `HH:MM` in UTC for seconds since the Unix epoch.
pub(crate) fn utc_time(epoch_secs: u64) -> String {
    let secs_of_day = epoch_secs % SECS_PER_DAY;
    format!("{:02}:{:02}", secs_of_day / 3600, secs_of_day % 3600 / 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, restricted to non-negative days so every step stays unsigned).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Someone else's text made safe for a terminal: control characters (which could move the
/// cursor, recolour or retitle the terminal) become U+FFFD, tabs become spaces; newlines stay.
pub(crate) fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => '\n',
            '\t' => ' ',
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// A name someone chose (a circle's) made safe for one line: like [`sanitize`], and newlines
/// become U+FFFD too.
pub(crate) fn sanitize_name(name: &str) -> String {
    sanitize(name).replace('\n', "\u{FFFD}")
}

/// `1 device`, `2 devices`: a count and its noun.
pub(crate) fn plural(count: usize, noun: &str) -> String {
    match count {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// A change to a circle as `kith receive` and `kith chat` announce it: `[NAME] description`.
pub(crate) fn group_notice(group: &str, description: &str) -> String {
    format!("[{}] {}", sanitize_name(group), sanitize_name(description))
}

/// What `kith receive` and `kith chat` say when messages from `from` went missing: the relay
/// lost or withheld them, or they are late. Either way the user should know the conversation
/// has a hole; a late one is shown when it comes.
pub(crate) fn gap_notice(from: &Handle, missing: usize) -> String {
    let (count, verb) = match missing {
        1 => ("1 earlier message".to_owned(), "has"),
        n => (format!("{n} earlier messages"), "have"),
    };
    format!(
        "{count} from @{from} {verb} not arrived (yet); if they come later, they are shown then."
    )
}

/// A message as one JSON object. `me` is this account, the recipient of incoming one-on-one
/// messages; circle messages are addressed to the circle's name.
pub(crate) fn message_json(message: &Message, me: &Handle) -> Value {
    let to = match (&message.group, message.outgoing) {
        (Some(group), _) => group.as_str(),
        (None, true) => message.conversation.as_str(),
        (None, false) => me.as_str(),
    };
    json!({
        "id": message.id,
        "from": message.from.as_str(),
        "to": to,
        "conversation": message.conversation.as_str(),
        "text": message.text,
        "sent_at": message.sent_at,
        "received_at": message.received_at,
        "group": message.group,
        "outgoing": message.outgoing,
    })
}

/// A message as `kith receive` prints it: `@bob: …`, `you → @bob: …`, `[NAME] @bob: …` or
/// `[NAME] you: …`.
pub(crate) fn received_line(message: &Message) -> String {
    let text = sanitize(&message.text);
    match (circle_tag(message), message.outgoing) {
        (Some(tag), true) => format!("{tag} you: {text}"),
        (Some(tag), false) => format!("{tag} @{}: {text}", message.from),
        (None, true) => format!("you → @{}: {text}", message.conversation),
        (None, false) => format!("@{}: {text}", message.from),
    }
}

/// A message as `kith history` prints it: `[date] @from: …`, or `[date] [NAME] @from: …`.
pub(crate) fn history_line(message: &Message) -> String {
    let when = utc_date_time(message.sent_at);
    let circle = circle_tag(message).map(|tag| tag + " ").unwrap_or_default();
    format!(
        "[{when}] {circle}@{}: {}",
        message.from,
        sanitize(&message.text)
    )
}

/// `[NAME]` for a circle message.
fn circle_tag(message: &Message) -> Option<String> {
    let group = message.group.as_deref()?;
    Some(format!("[{}]", sanitize_name(group)))
}

/// A contact as one JSON object.
pub(crate) fn contact_json(contact: &Contact) -> Value {
    json!({
        "handle": contact.handle.as_str(),
        "verified": contact.verified,
        "key_changed": contact.key_changed,
        "devices": contact.devices,
        "last_message_at": contact.last_message_at,
    })
}

/// A contact as `kith contacts` prints it, the handle padded to `handle_width` characters.
pub(crate) fn contact_line(contact: &Contact, handle_width: usize) -> String {
    let handle = format!("@{}", contact.handle);
    let verified = if contact.verified {
        "verified"
    } else {
        "not verified"
    };
    let changed = if contact.key_changed {
        "  key changed"
    } else {
        ""
    };
    let devices = plural(contact.devices, "device");
    format!("{handle:handle_width$}  {verified:12}{changed}  {devices}")
}

/// The 12 groups of a safety number as 3 rows of 4.
pub(crate) fn safety_rows(groups: [&str; 12]) -> Vec<String> {
    groups.chunks(4).map(|row| row.join(" ")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(name: &str) -> Handle {
        Handle::parse(name).unwrap()
    }

    fn message(outgoing: bool) -> Message {
        Message {
            id: "00112233445566778899aabbccddeeff".to_owned(),
            conversation: handle("bob"),
            from: if outgoing {
                handle("alice")
            } else {
                handle("bob")
            },
            outgoing,
            text: "hi\u{1b}[2J there".to_owned(),
            sent_at: 1_700_000_000,
            received_at: 1_700_000_005,
            group: None,
        }
    }

    #[test]
    fn dates_of_known_epochs() {
        assert_eq!(utc_date_time(0), "1970-01-01 00:00");
        assert_eq!(utc_date_time(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc_date_time(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(utc_date_time(4_107_542_399), "2100-02-28 23:59");
        assert_eq!(utc_date_time(4_107_542_400), "2100-03-01 00:00");
        assert_eq!(utc_date_time(1_735_689_599), "2024-12-31 23:59");
        assert_eq!(utc_time(1_700_000_000), "22:13");
    }

    #[test]
    fn control_characters_are_neutralised() {
        assert_eq!(
            sanitize("a\u{1b}[31mb\tc\nd\u{9b}"),
            "a\u{FFFD}[31mb c\nd\u{FFFD}"
        );
    }

    #[test]
    fn incoming_json_is_addressed_to_me() {
        let value = message_json(&message(false), &handle("alice"));
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = [
            "conversation",
            "from",
            "group",
            "id",
            "outgoing",
            "received_at",
            "sent_at",
            "text",
            "to",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(value["from"], "bob");
        assert_eq!(value["to"], "alice");
        assert_eq!(value["group"], Value::Null);
        assert_eq!(value["sent_at"], 1_700_000_000);
        assert_eq!(value["text"], "hi\u{1b}[2J there");
        assert!(!value.to_string().contains('\n'));
    }

    #[test]
    fn outgoing_json_is_addressed_to_the_conversation() {
        let value = message_json(&message(true), &handle("alice"));
        assert_eq!(value["from"], "alice");
        assert_eq!(value["to"], "bob");
        assert_eq!(value["outgoing"], true);
    }

    #[test]
    fn text_lines() {
        assert_eq!(received_line(&message(false)), "@bob: hi\u{FFFD}[2J there");
        assert_eq!(
            received_line(&message(true)),
            "you → @bob: hi\u{FFFD}[2J there"
        );
        assert_eq!(
            history_line(&message(false)),
            "[2023-11-14 22:13] @bob: hi\u{FFFD}[2J there"
        );
    }

    fn circle_message(outgoing: bool) -> Message {
        Message {
            group: Some("Tuesday\ngroup".to_owned()),
            text: "see you".to_owned(),
            ..message(outgoing)
        }
    }

    #[test]
    fn circle_messages_as_text() {
        assert_eq!(
            received_line(&circle_message(false)),
            "[Tuesday\u{FFFD}group] @bob: see you"
        );
        assert_eq!(
            received_line(&circle_message(true)),
            "[Tuesday\u{FFFD}group] you: see you"
        );
        assert_eq!(
            history_line(&circle_message(true)),
            "[2023-11-14 22:13] [Tuesday\u{FFFD}group] @alice: see you"
        );
        assert_eq!(
            group_notice("a\u{1b}b", "bob joined"),
            "[a\u{FFFD}b] bob joined"
        );
    }

    #[test]
    fn circle_json_is_addressed_to_the_circle() {
        for outgoing in [false, true] {
            let value = message_json(&circle_message(outgoing), &handle("alice"));
            assert_eq!(value["group"], "Tuesday\ngroup");
            assert_eq!(value["to"], "Tuesday\ngroup");
            assert_eq!(value["outgoing"], outgoing);
        }
    }

    #[test]
    fn counts_and_nouns() {
        assert_eq!(plural(1, "member"), "1 member");
        assert_eq!(plural(0, "device"), "0 devices");
        assert_eq!(plural(3, "device"), "3 devices");
    }

    #[test]
    fn gap_notices_count_the_missing_messages() {
        assert_eq!(
            gap_notice(&handle("alice"), 1),
            "1 earlier message from @alice has not arrived (yet); if they come later, they are \
             shown then."
        );
        assert!(gap_notice(&handle("alice"), 3).starts_with("3 earlier messages from @alice have"));
    }

    #[test]
    fn contacts_as_text_and_json() {
        let mut contact = Contact {
            handle: handle("bob"),
            verified: false,
            key_changed: true,
            devices: 2,
            last_message_at: None,
        };
        assert_eq!(
            contact_line(&contact, 6),
            "@bob    not verified  key changed  2 devices"
        );
        contact.verified = true;
        contact.key_changed = false;
        contact.devices = 1;
        assert_eq!(contact_line(&contact, 4), "@bob  verified      1 device");
        let value = contact_json(&contact);
        assert_eq!(value["handle"], "bob");
        assert_eq!(value["last_message_at"], Value::Null);
        assert_eq!(value.as_object().unwrap().len(), 5);
    }

    #[test]
    fn safety_number_in_three_rows() {
        let groups: [&str; 12] = [
            "00001", "00002", "00003", "00004", "00005", "00006", "00007", "00008", "00009",
            "00010", "00011", "00012",
        ];
        assert_eq!(
            safety_rows(groups),
            [
                "00001 00002 00003 00004",
                "00005 00006 00007 00008",
                "00009 00010 00011 00012"
            ]
        );
    }
}
