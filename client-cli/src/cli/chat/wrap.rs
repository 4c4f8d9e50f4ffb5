//! Word wrapping measured in terminal columns, so the chat knows how many rows each message
//! takes before it draws (and can scroll by rows).

use ratatui::text::Span;

/// The width of `text` in terminal columns.
pub(super) fn width(text: &str) -> usize {
    Span::raw(text).width()
}

/// Wraps `text` into lines: the first at most `first` columns wide, the others at most `rest`.
/// Newlines force a break; words longer than a line are split. Always returns at least one
/// line. Widths below 1 are treated as 1.
pub(super) fn wrap(text: &str, first: usize, rest: usize) -> Vec<String> {
    let mut wrapper = Wrapper {
        lines: Vec::new(),
        current: String::new(),
        used: 0,
        first,
        rest,
    };
    for (index, paragraph) in text.split('\n').enumerate() {
        if index > 0 {
            wrapper.break_line();
        }
        for word in paragraph.split(' ').filter(|w| !w.is_empty()) {
            wrapper.push_word(word);
        }
    }
    wrapper.break_line();
    wrapper.lines
}

struct Wrapper {
    lines: Vec<String>,
    current: String,
    used: usize,
    first: usize,
    rest: usize,
}

impl Wrapper {
    fn limit(&self) -> usize {
        let limit = if self.lines.is_empty() {
            self.first
        } else {
            self.rest
        };
        limit.max(1)
    }

    fn break_line(&mut self) {
        self.lines.push(std::mem::take(&mut self.current));
        self.used = 0;
    }

    fn push_word(&mut self, word: &str) {
        let word_width = width(word);
        if self.used > 0 && self.used + 1 + word_width <= self.limit() {
            self.current.push(' ');
            self.current.push_str(word);
            self.used += 1 + word_width;
            return;
        }
        if self.used > 0 {
            self.break_line();
        }
        if word_width <= self.limit() {
            self.current.push_str(word);
            self.used = word_width;
        } else {
            self.push_long_word(word);
        }
    }

    fn push_long_word(&mut self, word: &str) {
        for (start, c) in word.char_indices() {
            let piece = &word[start..start + c.len_utf8()];
            let piece_width = width(piece);
            if self.used > 0 && self.used + piece_width > self.limit() {
                self.break_line();
            }
            self.current.push_str(piece);
            self.used += piece_width;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_line() {
        assert_eq!(wrap("hello there", 20, 20), ["hello there"]);
        assert_eq!(wrap("", 20, 20), [""]);
    }

    #[test]
    fn words_move_to_the_next_line() {
        assert_eq!(wrap("aaa bbb ccc", 7, 7), ["aaa bbb", "ccc"]);
        assert_eq!(wrap("aaa bbb ccc", 3, 8), ["aaa", "bbb ccc"]);
    }

    #[test]
    fn long_words_are_split() {
        assert_eq!(wrap("abcdefgh", 3, 3), ["abc", "def", "gh"]);
        assert_eq!(wrap("xy abcdefgh", 4, 4), ["xy", "abcd", "efgh"]);
    }

    #[test]
    fn newlines_break() {
        assert_eq!(wrap("one\n\ntwo", 10, 10), ["one", "", "two"]);
    }

    #[test]
    fn wide_characters_count_double() {
        assert_eq!(width("日本"), 4);
        assert_eq!(wrap("日本語", 4, 4), ["日本", "語"]);
    }

    #[test]
    fn zero_width_does_not_loop() {
        assert_eq!(wrap("ab", 0, 0), ["a", "b"]);
    }
}
