//! Text a plugin wrote, made safe for the host's log: control characters
//! (newlines, terminal escapes) are escaped so a plugin cannot forge log
//! lines or drive an operator's terminal, and the length is bounded.

use std::borrow::Cow;

/// The most of one plugin-written text a log line shows.
pub const MAX_LOGGED_BYTES: usize = 1024;

/// `text` with every control character escaped (`\n`, `\u{1b}`) and cut at
/// [`MAX_LOGGED_BYTES`] (on a character boundary) with a note of the rest.
pub fn loggable(text: &str) -> Cow<'_, str> {
    let clean = !text.chars().any(char::is_control);
    if clean && text.len() <= MAX_LOGGED_BYTES {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(MAX_LOGGED_BYTES) + 32);
    for (at, c) in text.char_indices() {
        if out.len() >= MAX_LOGGED_BYTES {
            out.push_str(&format!("… ({} more bytes)", text.len() - at));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_cannot_forge_log_lines_or_drive_a_terminal() {
        let forged = "ok\n2026-12-04T00:00:00Z ERROR turnstile::runner: fake\x1b[2J";
        let shown = loggable(forged);
        assert!(!shown.contains('\n') && !shown.contains('\x1b'), "{shown}");
        assert!(shown.contains("\\n") && shown.contains("\\u{1b}"), "{shown}");
        assert!(matches!(loggable("plain reason"), Cow::Borrowed("plain reason")));
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let long = "é".repeat(5_000);
        let shown = loggable(&long);
        assert!(shown.len() < MAX_LOGGED_BYTES + 40, "{}", shown.len());
        assert!(shown.ends_with("more bytes)"), "{shown}");
    }
}
