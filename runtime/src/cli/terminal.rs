//! Text from hooks and the server made safe to print: control characters are shown escaped,
//! so a hook's log or denial cannot move the cursor, retitle the window or clear the screen of
//! the operator reading it.

/// `text` with every control character except newline and tab written as a Rust escape
/// (`\u{1b}`), including DEL and the C1 controls some terminals act on.
pub fn safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_text_is_kept() {
        assert_eq!(safe("plain\ttext\nnext"), "plain\ttext\nnext");
        assert_eq!(safe("\u{1b}[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(safe("\u{1b}]0;title\u{7}"), "\\u{1b}]0;title\\u{7}");
        assert_eq!(safe("\r\u{7f}\u{9b}"), "\\r\\u{7f}\\u{9b}");
        assert_eq!(safe("µs café"), "µs café");
    }
}
