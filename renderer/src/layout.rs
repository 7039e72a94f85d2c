//! Composition: a page's fragments placed into its minijinja layout.
//!
//! The layout sees `slots.NAME` (each slot's HTML), `head` (merged head entries and
//! stylesheets), `scripts` (the embedded bus state, the client bus runtime and the
//! components' scripts), `lang` and `page` (`route`, `team`). Head entries are merged
//! in page order and deduplicated; client assets are deduplicated by URL.

use std::collections::HashSet;
use std::fmt::Write;
use std::path::Path;

use minijinja::{Environment, Value};

use crate::bus::BusSnapshot;
use crate::component::HeadEntry;
use crate::config::ConfigError;

const CLIENT_BUS: &str = include_str!("client_bus.js");

/// The site's layouts, parsed once at load.
pub struct Layouts {
    env: Environment<'static>,
}

impl Layouts {
    /// Load every `*.html` file in `dir`. A template syntax error is a configuration
    /// error located in its file.
    pub fn load(dir: &Path) -> Result<Self, Vec<ConfigError>> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        let mut errors = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| {
            vec![
                ConfigError::new(dir, format!("cannot read layouts directory: {e}"))
                    .help("create it, or set `layouts = \"...\"` in site.toml"),
            ]
        })?;
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for path in files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "html"))
        {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let source = match std::fs::read_to_string(path) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(ConfigError::new(path, format!("cannot read: {e}")));
                    continue;
                }
            };
            if let Err(e) = env.add_template_owned(name, source) {
                let mut err = ConfigError::new(
                    path,
                    format!(
                        "layout does not parse: {}",
                        e.detail().unwrap_or("syntax error")
                    ),
                );
                err.location = e.line().map(|l| (l, 1));
                errors.push(err.help("fix the minijinja syntax on this line"));
            }
        }
        if errors.is_empty() {
            Ok(Self { env })
        } else {
            Err(errors)
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }

    /// Layout names, sorted (the environment's own order is unspecified).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.env.templates().map(|(n, _)| n.to_string()).collect();
        names.sort();
        names
    }

    /// Slot names a layout places, or `None` when it reaches `slots` dynamically (so
    /// which slots it places cannot be known before rendering).
    pub fn placed_slots(&self, name: &str) -> Option<HashSet<String>> {
        let template = self.env.get_template(name).ok()?;
        let vars = template.undeclared_variables(true);
        if vars.contains("slots") {
            return None;
        }
        Some(
            vars.iter()
                .filter_map(|v| v.strip_prefix("slots."))
                .map(str::to_string)
                .collect(),
        )
    }

    /// Render `name` for one response. Takes the composition by value so the slots'
    /// HTML moves into the template context instead of being copied.
    pub fn render(
        &self,
        name: &str,
        composition: Composition<'_>,
    ) -> Result<String, minijinja::Error> {
        let template = self.env.get_template(name)?;
        let head = composition.head();
        let scripts = composition.scripts();
        // Values are built directly rather than through `context!`, which serializes
        // each value (and every slot's HTML) once more on the way in.
        let slots: Value = composition
            .slots
            .into_iter()
            .map(|(n, html)| (n, Value::from_safe_string(html)))
            .collect();
        let page: Value = [
            ("route", Value::from(composition.route)),
            ("team", Value::from(composition.team)),
        ]
        .into_iter()
        .collect();
        let ctx: Value = [
            ("slots", slots),
            ("head", Value::from_safe_string(head)),
            ("scripts", Value::from_safe_string(scripts)),
            ("lang", Value::from(composition.lang)),
            ("page", page),
        ]
        .into_iter()
        .collect();
        template.render(ctx)
    }
}

/// Everything a layout needs for one response.
pub struct Composition<'a> {
    pub route: &'a str,
    pub team: &'a str,
    pub lang: &'a str,
    /// Slot name and HTML (the fragment, or the fallback), in page order.
    pub slots: Vec<(&'a str, String)>,
    /// Head entries of the slots that rendered, in page order.
    pub head: Vec<HeadEntry>,
    /// Asset URLs of the slots that rendered, in page order.
    pub assets: Vec<String>,
    /// Topics to embed for the client bus.
    pub bus: &'a BusSnapshot,
    /// Topics kept server-side.
    pub private_topics: &'a HashSet<&'a str>,
}

impl Composition<'_> {
    fn head(&self) -> String {
        let mut out = String::new();
        let mut seen_title = false;
        let mut seen_keys = HashSet::new();
        for entry in &self.head {
            let Some(key) = head_key(entry) else {
                tracing::debug!(tag = %entry.tag, "dropped head entry with a tag that is not allowed");
                continue;
            };
            if key == "title" {
                if seen_title {
                    continue;
                }
                seen_title = true;
            }
            if !seen_keys.insert(key) {
                continue;
            }
            write_head_entry(&mut out, entry);
        }
        for url in dedup(&self.assets).filter(|u| u.ends_with(".css")) {
            out.push_str("<link rel=\"stylesheet\" href=\"");
            escape_into(&mut out, url);
            out.push_str("\">");
        }
        out
    }

    fn scripts(&self) -> String {
        let mut out = String::with_capacity(CLIENT_BUS.len() + 1024);
        out.push_str("<script id=\"oberon-bus-state\" type=\"application/json\">");
        self.write_bus_state_json(&mut out);
        out.push_str("</script><script>");
        out.push_str(CLIENT_BUS);
        out.push_str("</script>");
        for url in dedup(&self.assets).filter(|u| u.ends_with(".js")) {
            out.push_str("<script type=\"module\" src=\"");
            escape_into(&mut out, url);
            out.push_str("\"></script>");
        }
        out
    }

    /// The public bus state as a JSON object, safe inside a `<script>` element.
    pub fn bus_state_json(&self) -> String {
        let mut json = String::new();
        self.write_bus_state_json(&mut json);
        json
    }

    fn write_bus_state_json(&self, json: &mut String) {
        let start = json.len();
        json.push('{');
        for (topic, value) in self
            .bus
            .iter()
            .filter(|(t, _)| !self.private_topics.contains(&***t))
        {
            if json.len() > start + 1 {
                json.push(',');
            }
            // Topic names are validated to need no escaping; values are validated JSON.
            json.push('"');
            json.push_str(topic);
            json.push_str("\":");
            push_script_safe(json, value);
        }
        json.push('}');
    }
}

/// Append JSON text so that it cannot end or confuse a `<script>` element. `<`, `>`
/// and `&` only occur inside JSON strings, where the `\u` escapes mean the same; this
/// keeps `</script>` in a value from ending the element. U+2028/U+2029 are escaped for
/// older JavaScript parsers.
fn push_script_safe(out: &mut String, json: &str) {
    // Scanned bytewise: every character to escape is ASCII or starts with 0xE2. Most
    // values contain none, and are copied in one go.
    let bytes = json.as_bytes();
    if !bytes
        .iter()
        .any(|&b| matches!(b, b'<' | b'>' | b'&' | 0xE2))
    {
        out.push_str(json);
        return;
    }
    let mut copied = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped = match b {
            b'<' => "\\u003c",
            b'>' => "\\u003e",
            b'&' => "\\u0026",
            0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA8) => "\\u2028",
            0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA9) => "\\u2029",
            _ => continue,
        };
        out.push_str(&json[copied..i]);
        out.push_str(escaped);
        copied = i + if b == 0xE2 { 3 } else { 1 };
    }
    out.push_str(&json[copied..]);
}

fn dedup(items: &[String]) -> impl Iterator<Item = &String> {
    let mut seen = HashSet::new();
    items.iter().filter(move |u| seen.insert(u.as_str()))
}

/// The identity of a head entry for deduplication, or `None` if its tag is not allowed.
fn head_key(entry: &HeadEntry) -> Option<String> {
    let attr = |name: &str| {
        entry
            .attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if !entry.attrs.iter().all(|(k, _)| is_attr_name(k)) {
        return None;
    }
    match entry.tag.as_str() {
        "title" => Some("title".into()),
        "meta" => {
            let id = attr("name")
                .map(|n| format!("name={n}"))
                .or_else(|| attr("property").map(|p| format!("property={p}")))
                .or_else(|| attr("http-equiv").map(|h| format!("http-equiv={h}")))
                .or_else(|| attr("charset").map(|_| "charset".to_string()));
            Some(format!(
                "meta:{}",
                id.unwrap_or_else(|| format!("{:?}", entry.attrs))
            ))
        }
        "link" => Some(format!(
            "link:{}:{}",
            attr("rel").unwrap_or(""),
            attr("href").unwrap_or("")
        )),
        "script" | "style" => Some(format!(
            "{}:{:?}:{:?}",
            entry.tag, entry.attrs, entry.content
        )),
        _ => None,
    }
}

fn is_attr_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':'))
}

fn write_head_entry(out: &mut String, entry: &HeadEntry) {
    out.push('<');
    out.push_str(&entry.tag);
    for (k, v) in &entry.attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        escape_into(out, v);
        out.push('"');
    }
    out.push('>');
    match entry.tag.as_str() {
        "meta" | "link" => {}
        tag => {
            let content = entry.content.as_deref().unwrap_or("");
            if tag == "title" {
                escape_into(out, content);
            } else {
                raw_text(out, content);
            }
            let _ = write!(out, "</{tag}>");
        }
    }
}

/// The content of a raw text element (`script`, `style`): nothing in it may end the
/// element early. Besides an end tag (`</`), a script must not contain `<!--` or
/// `<script`: together they put the HTML parser in the "double escaped" state, where
/// the host's own `</script>` no longer closes the element and the rest of the page
/// would be swallowed. A backslash after the `<` keeps the meaning in JS strings and
/// regular expressions, where these sequences can legitimately occur.
fn raw_text(out: &mut String, content: &str) {
    let mut rest = content;
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let next = rest.as_bytes();
        let dangerous = next.first().is_some_and(|&b| b == b'/' || b == b'!')
            || next
                .get(..6)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"script"));
        if dangerous {
            out.push('\\');
        }
    }
    out.push_str(rest);
}

/// HTML-escape text for element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

/// [`escape`], appended to `out`: runs of ordinary text are copied whole.
pub fn escape_into(out: &mut String, s: &str) {
    let mut copied = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&s[copied..i]);
        out.push_str(escaped);
        copied = i + 1;
    }
    out.push_str(&s[copied..]);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn entry(tag: &str, attrs: &[(&str, &str)], content: Option<&str>) -> HeadEntry {
        HeadEntry {
            tag: tag.into(),
            attrs: attrs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            content: content.map(str::to_string),
        }
    }

    fn composition<'a>(bus: &'a BusSnapshot, private: &'a HashSet<&'a str>) -> Composition<'a> {
        Composition {
            route: "/",
            team: "t",
            lang: "en",
            slots: vec![],
            head: vec![
                entry("title", &[], Some("First <1>")),
                entry(
                    "meta",
                    &[("name", "description"), ("content", "a \"quote\"")],
                    None,
                ),
                entry("title", &[], Some("Second")),
                entry(
                    "meta",
                    &[("name", "description"), ("content", "other")],
                    None,
                ),
                entry("link", &[("rel", "icon"), ("href", "/i.png")], None),
                entry("link", &[("rel", "icon"), ("href", "/i.png")], None),
                entry("iframe", &[("src", "x")], None),
                entry("meta", &[("on load", "x")], None),
            ],
            assets: vec![
                "/assets/a/1/a.css".into(),
                "/assets/a/1/a.js".into(),
                "/assets/a/1/a.css".into(),
            ],
            bus,
            private_topics: private,
        }
    }

    #[test]
    fn head_is_merged_and_deduplicated() {
        let bus = BusSnapshot::default();
        let private = HashSet::new();
        let head = composition(&bus, &private).head();
        assert_eq!(
            head,
            "<title>First &lt;1&gt;</title><meta name=\"description\" content=\"a &quot;quote&quot;\">\
             <link rel=\"icon\" href=\"/i.png\"><link rel=\"stylesheet\" href=\"/assets/a/1/a.css\">"
        );
    }

    #[test]
    fn head_scripts_cannot_end_early_or_swallow_the_page() {
        let mut out = String::new();
        let entry = HeadEntry {
            tag: "script".into(),
            attrs: vec![],
            content: Some("a='<!--<SCRIPT>';b='</script>';c=1<2;".into()),
        };
        write_head_entry(&mut out, &entry);
        assert_eq!(
            out,
            "<script>a='<\\!--<\\SCRIPT>';b='<\\/script>';c=1<2;</script>"
        );
    }

    #[test]
    fn bus_state_cannot_break_out_of_its_script() {
        let mut bus = BusSnapshot::default();
        bus.insert(Arc::from("a"), Arc::from(r#"{"x":"</script><b>&"}"#));
        bus.insert(Arc::from("b"), Arc::from("\"é\u{2028}€\u{2029}\""));
        bus.insert(Arc::from("secret"), Arc::from("1"));
        let private = HashSet::from(["secret"]);
        let c = composition(&bus, &private);
        let json = c.bus_state_json();
        assert_eq!(
            json,
            r#"{"a":{"x":"\u003c/script\u003e\u003cb\u003e\u0026"},"b":"é\u2028€\u2029"}"#
        );
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["a"]["x"], "</script><b>&");
        assert_eq!(value["b"], "é\u{2028}€\u{2029}");
        let scripts = c.scripts();
        assert_eq!(scripts.matches("/assets/a/1/a.js").count(), 1);
        assert!(!scripts.contains("a.css"));
    }
}
