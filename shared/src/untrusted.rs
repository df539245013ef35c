//! Text a peer sent, made safe to write into a log line or an error message.
//!
//! A client chooses its build string, game name and version; written as they are, a newline
//! forges a second log line and a megabyte fills the disk. [`Untrusted`] escapes control
//! characters, quotes and backslashes (as `str::escape_debug` does) and cuts the text at
//! [`MAX_SHOWN_CHARS`], saying how much was left out.

use std::fmt;

/// The most characters of untrusted text shown.
pub const MAX_SHOWN_CHARS: usize = 64;

/// Displays peer-supplied text escaped and capped.
#[derive(Clone, Copy)]
pub struct Untrusted<'a>(pub &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.char_indices();
        for (_, c) in chars.by_ref().take(MAX_SHOWN_CHARS) {
            write!(f, "{}", c.escape_debug())?;
        }
        if let Some((at, _)) = chars.next() {
            write!(f, "…(+{} bytes)", self.0.len() - at)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_newline_cannot_forge_a_log_line() {
        let shown = Untrusted("1.0\nERROR matchmaker: all seats sold\u{1b}[2J").to_string();
        assert_eq!(shown, "1.0\\nERROR matchmaker: all seats sold\\u{1b}[2J");
    }

    #[test]
    fn long_text_is_cut_with_what_was_left_out() {
        let text = "a".repeat(1000);
        assert_eq!(
            Untrusted(&text).to_string(),
            format!("{}…(+936 bytes)", "a".repeat(64))
        );
        assert_eq!(Untrusted("short").to_string(), "short");
    }

    proptest! {
        #[test]
        fn what_is_shown_is_one_bounded_line(text in any::<String>()) {
            let shown = Untrusted(&text).to_string();
            prop_assert!(!shown.chars().any(char::is_control));
            // Each char escapes to at most 10 (`\u{10ffff}`), plus the note on what was cut.
            prop_assert!(shown.chars().count() <= MAX_SHOWN_CHARS * 10 + 24);
        }
    }
}
