//! HTML helpers. Components must escape every piece of data they interpolate.

/// Escapes `&`, `<`, `>`, `"` and `'` so the text is safe in element content
/// and in quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    escape_into(&mut out, text);
    out
}

/// Appends `text` to `out`, escaped as [`escape`] does, without a `String` of its
/// own: for building a fragment's HTML piece by piece.
pub fn escape_into(out: &mut String, text: &str) {
    // The five characters are ASCII, so runs between them are copied whole (a byte
    // that is one of them never occurs inside a multi-byte character).
    let mut copied = 0;
    for (i, byte) in text.bytes().enumerate() {
        let entity = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&text[copied..i]);
        out.push_str(entity);
        copied = i + 1;
    }
    out.push_str(&text[copied..]);
}

#[cfg(test)]
mod tests {
    use super::{escape, escape_into};

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

    #[test]
    fn escapes_into_a_buffer() {
        let mut out = String::from("<p>");
        escape_into(&mut out, "Zürich <b>&</b> 'x'");
        escape_into(&mut out, "");
        escape_into(&mut out, "€");
        assert_eq!(out, "<p>Zürich &lt;b&gt;&amp;&lt;/b&gt; &#39;x&#39;€");
    }
}
