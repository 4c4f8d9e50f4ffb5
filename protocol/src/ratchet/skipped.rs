//! The bounded store of skipped message keys (SPEC.md §6.6).

use std::collections::VecDeque;

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::message_key::MessageKey;
use crate::consts::MAX_SKIPPED_KEYS;

/// A message key kept for a message that has not arrived yet.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct SkippedKey {
    pub(crate) ratchet_key: [u8; 32],
    pub(crate) key: MessageKey,
}

/// At most [`MAX_SKIPPED_KEYS`] keys, oldest first; inserting into a full store evicts the
/// oldest key.
#[derive(Clone, Default)]
pub(crate) struct SkippedKeys(VecDeque<SkippedKey>);

impl SkippedKeys {
    pub(crate) fn position(&self, ratchet_key: &[u8; 32], index: u32) -> Option<usize> {
        self.0
            .iter()
            .position(|k| &k.ratchet_key == ratchet_key && k.key.index() == index)
    }

    pub(crate) fn key(&self, position: usize) -> Option<&MessageKey> {
        self.0.get(position).map(|k| &k.key)
    }

    /// Deletes a key after use.
    pub(crate) fn remove(&mut self, position: usize) {
        self.0.remove(position);
    }

    pub(crate) fn extend(&mut self, keys: Vec<SkippedKey>) {
        for key in keys {
            if self.0.len() == MAX_SKIPPED_KEYS {
                self.0.pop_front();
            }
            self.0.push_back(key);
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &SkippedKey> {
        self.0.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_when_full() {
        let mut store = SkippedKeys::default();
        let keys = (0..u32::try_from(MAX_SKIPPED_KEYS).unwrap() + 5)
            .map(|i| SkippedKey {
                ratchet_key: [1; 32],
                key: MessageKey::new([0; 32], i),
            })
            .collect();
        store.extend(keys);
        assert_eq!(store.len(), MAX_SKIPPED_KEYS);
        assert_eq!(store.position(&[1; 32], 4), None);
        assert_eq!(store.position(&[1; 32], 5), Some(0));
    }
}
