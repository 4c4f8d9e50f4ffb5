//! Error responses the relay sends (SPEC.md §9.6).

use serde::{Deserialize, Serialize};

use crate::consts::MAX_ERROR_DETAIL_LEN;
use crate::encoding::BoundedString;

/// What went wrong with a request. Append-only: never reorder or remove a variant.
///
/// ```text
/// ErrorKind = tag:varint u32
///   0 BadRequest | 1 Unauthorized | 2 NotFound | 3 MailboxFull
///   | 4 RateLimited || retry_after_ms:varint u32 | 5 TooLarge | 6 VersionUnsupported
///   | 7 HandleTaken | 8 InviteInvalid | 9 Internal
/// ```
///
/// The `Display` text is written for the person using the app: what happened and what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request was malformed or not allowed in the connection's current state.
    #[error("The app sent a request the relay could not understand. Update the app and try again.")]
    BadRequest,
    /// The connection is not authenticated, or the signature or certificate did not verify.
    #[error("The relay could not confirm this device. Sign in again or re-link this device.")]
    Unauthorized,
    /// The handle, account or device does not exist on this relay.
    #[error("Nobody with that handle or device was found on this relay. Check the spelling.")]
    NotFound,
    /// A recipient's mailbox is full; the message was not stored.
    #[error("The recipient's mailbox is full. Try again after they come online.")]
    MailboxFull,
    /// Too many requests; retry after the given delay.
    #[error("Too many requests. Try again in {} s.", retry_after_ms.div_ceil(1000).max(1))]
    RateLimited {
        /// How long to wait before retrying, in milliseconds.
        retry_after_ms: u32,
    },
    /// A field or the whole request is over its size limit.
    #[error("The message or request is too large for the relay. Send something smaller.")]
    TooLarge,
    /// The relay does not speak this protocol version.
    #[error("This app and the relay use different protocol versions. Update the app.")]
    VersionUnsupported,
    /// Registration asked for a handle that belongs to another account.
    #[error("That handle is already taken. Choose another one.")]
    HandleTaken,
    /// The invite token is missing, unknown, used up or expired.
    #[error("The invite is not valid. Ask for a new invite.")]
    InviteInvalid,
    /// The relay failed internally; nothing was changed.
    #[error("The relay had a problem. Try again later.")]
    Internal,
    /// The relay's storage is (nearly) full; nothing was stored. Deliveries and
    /// acknowledgements still work, and sends succeed again once the operator frees space.
    #[error(
        "The relay's storage is full, so nothing was sent. Try again later; if it persists, \
         tell the relay's operator."
    )]
    StorageFull,
}

/// An error response: a kind for programs and a short detail for operators.
///
/// ```text
/// ErrorFrame = kind:ErrorKind || detail:varint len (≤ 256) || UTF-8 bytes
/// ```
///
/// `detail` is a short hint for operators and developers (for example which limit was hit). It
/// never contains user data, and it is not meant to be shown to users: show `kind` instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Operator hint, at most [`MAX_ERROR_DETAIL_LEN`] bytes.
    pub detail: BoundedString<MAX_ERROR_DETAIL_LEN>,
}

impl ErrorFrame {
    /// An error frame; `detail` is cut at a character boundary to fit the limit.
    pub fn new(kind: ErrorKind, detail: &str) -> Self {
        let cut = detail.floor_char_boundary(MAX_ERROR_DETAIL_LEN);
        Self {
            kind,
            detail: BoundedString::new(&detail[..cut]).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keeps_short_details() {
        let frame = ErrorFrame::new(ErrorKind::TooLarge, "body over limit");
        assert_eq!(frame.detail.as_str(), "body over limit");
        assert_eq!(frame.kind, ErrorKind::TooLarge);
    }

    #[test]
    fn new_truncates_at_a_char_boundary() {
        let ascii = "x".repeat(MAX_ERROR_DETAIL_LEN + 10);
        assert_eq!(
            ErrorFrame::new(ErrorKind::Internal, &ascii)
                .detail
                .as_str()
                .len(),
            MAX_ERROR_DETAIL_LEN
        );
        // 'é' is two bytes: an odd prefix puts the limit in the middle of a character.
        let accented = format!("x{}", "é".repeat(MAX_ERROR_DETAIL_LEN));
        let detail = ErrorFrame::new(ErrorKind::Internal, &accented).detail;
        assert_eq!(detail.as_str().len(), MAX_ERROR_DETAIL_LEN - 1);
        assert!(accented.starts_with(detail.as_str()));
    }

    #[test]
    fn storage_full_has_the_next_tag() {
        let frame = ErrorFrame::new(ErrorKind::StorageFull, "");
        let bytes = postcard::to_allocvec(&frame).unwrap();
        assert_eq!(bytes, [10, 0]);
        assert_eq!(postcard::from_bytes::<ErrorFrame>(&bytes).unwrap(), frame);
    }

    #[test]
    fn rate_limit_message_rounds_up_to_seconds() {
        let kind = ErrorKind::RateLimited {
            retry_after_ms: 1500,
        };
        assert_eq!(kind.to_string(), "Too many requests. Try again in 2 s.");
    }
}
