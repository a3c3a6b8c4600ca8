//! Text for error messages: server answers cut to a readable length, error chains.

/// `text` cut to at most `max` bytes (on a character boundary), with `…` when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// An error and its sources, `: `-separated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::excerpt;

    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(excerpt("abc", 5), "abc");
        assert_eq!(excerpt("héllo", 2), "h…");
    }
}
