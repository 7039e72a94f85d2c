//! HTML helpers. Components must escape every piece of data they interpolate.

/// Escapes `&`, `<`, `>`, `"` and `'` so the text is safe in element content
/// and in quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_the_five_characters() {
        assert_eq!(
            escape(r#"<a href="x" title='y'>Tom & Jerry</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;Tom &amp; Jerry&lt;/a&gt;"
        );
    }

    #[test]
    fn leaves_other_text_alone() {
        assert_eq!(escape(""), "");
        assert_eq!(escape("Zürich · 20:00 €"), "Zürich · 20:00 €");
        assert_eq!(escape("&amp;"), "&amp;amp;");
    }
}
