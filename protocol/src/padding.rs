//! Length padding before encryption (SPEC.md §7.3).
//!
//! ISO/IEC 7816-4 style: append `0x80`, then zero bytes up to the bucket size. The bucket is
//! the smallest entry of [`PADDING_BUCKETS`] that fits content plus the `0x80` marker; beyond
//! the largest bucket, the next multiple of [`PADDING_LARGE_STEP`].

use crate::consts::{PADDING_BUCKETS, PADDING_LARGE_STEP};

/// The padded length for `len` content bytes.
pub(crate) fn padded_len(len: usize) -> usize {
    let needed = len.saturating_add(1);
    PADDING_BUCKETS
        .iter()
        .copied()
        .find(|&bucket| bucket >= needed)
        .unwrap_or_else(|| {
            needed
                .div_ceil(PADDING_LARGE_STEP)
                .saturating_mul(PADDING_LARGE_STEP)
        })
}

/// Pads `content` in place.
pub(crate) fn pad(content: &mut Vec<u8>) {
    let target = padded_len(content.len());
    content.push(0x80);
    content.resize(target, 0);
}

/// Removes padding, or returns `None` when there is no `0x80` marker after the content.
pub(crate) fn unpad(padded: &[u8]) -> Option<&[u8]> {
    let end = padded.iter().rposition(|&b| b != 0)?;
    (padded[end] == 0x80).then(|| &padded[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(padded_len(0), 256);
        assert_eq!(padded_len(255), 256);
        assert_eq!(padded_len(256), 512);
        assert_eq!(padded_len(32767), 32768);
        assert_eq!(padded_len(32768), 65536);
        assert_eq!(padded_len(70000), 98304);
    }

    #[test]
    fn round_trip_including_trailing_zeros_in_content() {
        for content in [vec![], vec![0], vec![1, 0, 0], vec![0x80], vec![7; 300]] {
            let mut padded = content.clone();
            pad(&mut padded);
            assert_eq!(padded.len(), padded_len(content.len()));
            assert_eq!(unpad(&padded), Some(&content[..]));
        }
    }

    #[test]
    fn rejects_missing_marker() {
        assert_eq!(unpad(&[]), None);
        assert_eq!(unpad(&[0, 0]), None);
        assert_eq!(unpad(&[1, 2, 0]), None);
    }
}
