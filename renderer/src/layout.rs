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
use crate::component::{Fragment, HeadEntry};
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

    /// An error page ([`crate::error_page`]): layout `name` given `status`, `title`,
    /// `message` and `lang`, and nothing else (no slots, head entries or scripts).
    pub fn render_error(
        &self,
        name: &str,
        status: u16,
        title: &str,
        message: &str,
        lang: &str,
    ) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(minijinja::context! {
            status, title, message, lang,
        })
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

    /// Render `name` once, at site build, with holes where the slots, the head and the
    /// scripts go. The layout may place each of them at most once and as it is (no
    /// filter, no condition on its content): it is checked by rendering it once more
    /// with every hole empty, which must give the same text.
    pub fn skeleton(
        &self,
        name: &str,
        page: PageText<'_>,
        slots: &[&str],
    ) -> Result<Skeleton, SkeletonError> {
        let template = self
            .env
            .get_template(name)
            .map_err(SkeletonError::Template)?;
        let context = |hole: &dyn Fn(&str) -> String| -> Value {
            let slot_values: Value = slots
                .iter()
                .enumerate()
                .map(|(i, n)| (*n, Value::from_safe_string(hole(&i.to_string()))))
                .collect();
            let page_value: Value = [
                ("route", Value::from(page.route)),
                ("team", Value::from(page.team)),
            ]
            .into_iter()
            .collect();
            [
                ("slots", slot_values),
                ("head", Value::from_safe_string(hole("head"))),
                ("scripts", Value::from_safe_string(hole("scripts"))),
                ("lang", Value::from(page.lang)),
                ("page", page_value),
            ]
            .into_iter()
            .collect()
        };
        let marked = template
            .render(context(&|h| format!("{HOLE}hole:{h}{HOLE}")))
            .map_err(SkeletonError::Render)?;
        let empty = template
            .render(context(&|_| String::new()))
            .map_err(SkeletonError::Render)?;
        let skeleton = Skeleton::parse(&marked, slots.len())?;
        if skeleton.text() != empty {
            return Err(SkeletonError::DependsOnHoles);
        }
        Ok(skeleton)
    }
}

/// The page-level text a layout may use besides its holes.
#[derive(Debug, Clone, Copy)]
pub struct PageText<'a> {
    pub route: &'a str,
    pub team: &'a str,
    pub lang: &'a str,
}

/// Marks a hole in a layout rendered for its skeleton (never valid in HTML text).
const HOLE: char = '\u{1}';

/// Why a layout has no skeleton: the site author's to fix, reported with the page.
#[derive(Debug, thiserror::Error)]
pub enum SkeletonError {
    /// The layout is missing or does not parse.
    #[error("{0}")]
    Template(minijinja::Error),
    /// Rendering it failed; minijinja's alternate form says where.
    #[error("{0:#}")]
    Render(minijinja::Error),
    #[error(
        "the layout changes with what the slots, head or scripts contain (a condition or filter on them); place each as it is, `{{{{ slots.NAME }}}}`"
    )]
    DependsOnHoles,
    #[error(
        "the layout changes what it places (a filter on `slots.NAME`, `head` or `scripts`), or contains the control character U+0001"
    )]
    ChangesHoles,
    /// `head`, `scripts` or a slot (named by the first field) placed twice.
    #[error("the layout places {0} more than once; place it once")]
    PlacedTwice(&'static str),
}

/// One piece of a page's layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Piece {
    Text(Box<str>),
    /// The slot at this index of the page.
    Slot(usize),
    Head,
    Scripts,
}

/// A page's layout rendered once, at site build, with holes: a request only fills the
/// holes (no template runs per request), and a streamed page sends the text up to the
/// first hole that is not ready.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skeleton {
    pieces: Vec<Piece>,
    text_len: usize,
}

impl Skeleton {
    fn parse(marked: &str, slots: usize) -> Result<Self, SkeletonError> {
        let mut pieces = Vec::new();
        let mut seen = HashSet::new();
        for (i, part) in marked.split(HOLE).enumerate() {
            if i % 2 == 0 {
                if !part.is_empty() {
                    pieces.push(Piece::Text(part.into()));
                }
                continue;
            }
            let piece = match part.strip_prefix("hole:") {
                Some("head") => Piece::Head,
                Some("scripts") => Piece::Scripts,
                Some(n) if n.parse::<usize>().is_ok_and(|n| n < slots) => {
                    Piece::Slot(n.parse().unwrap_or_default())
                }
                _ => return Err(SkeletonError::ChangesHoles),
            };
            if !seen.insert(piece.clone()) {
                return Err(SkeletonError::PlacedTwice(match &piece {
                    Piece::Head => "`head`",
                    Piece::Scripts => "`scripts`",
                    _ => "a slot",
                }));
            }
            pieces.push(piece);
        }
        if marked.split(HOLE).count().is_multiple_of(2) {
            return Err(SkeletonError::ChangesHoles);
        }
        let text_len = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                _ => 0,
            })
            .sum();
        Ok(Self { pieces, text_len })
    }

    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The layout's own text, every hole empty.
    fn text(&self) -> String {
        let mut out = String::with_capacity(self.text_len);
        for piece in &self.pieces {
            if let Piece::Text(t) = piece {
                out.push_str(t);
            }
        }
        out
    }

    /// The whole page: the skeleton with `composition` in its holes.
    pub fn fill(&self, composition: &Composition<'_>) -> String {
        let slots: usize = composition.slots.iter().map(|(_, h)| h.len()).sum();
        let mut out = String::with_capacity(self.text_len + slots + 16 * 1024);
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Slot(i) => {
                    if let Some((_, html)) = composition.slots.get(*i) {
                        out.push_str(html);
                    }
                }
                Piece::Head => composition.write_head(&mut out),
                Piece::Scripts => composition.write_scripts(&mut out),
            }
        }
        out
    }
}

/// Everything a layout needs for one response.
pub struct Composition<'a> {
    /// Slot name and HTML (the fragment, or the fallback), in page order.
    pub slots: Vec<(&'a str, String)>,
    /// Head entries of the slots that rendered, in page order.
    pub head: Vec<HeadEntry>,
    /// Asset URLs of the slots that rendered, in page order.
    pub assets: Vec<String>,
    /// Asset URLs the head names besides: a streamed page's head names every
    /// component's stylesheets and preloads its scripts, before the slots render.
    pub preload: Vec<String>,
    /// Topics to embed for the client bus.
    pub bus: &'a BusSnapshot,
    /// Topics kept server-side.
    pub private_topics: &'a HashSet<String>,
    /// The page's own head entries, written where no slot's has the same key (its
    /// `[head]`).
    pub defaults: &'a [HeadEntry],
}

impl<'a> Composition<'a> {
    /// An empty composition of a page's bus state, for its slots to be folded in.
    pub fn new(bus: &'a BusSnapshot, private_topics: &'a HashSet<String>, slots: usize) -> Self {
        Self {
            slots: Vec::with_capacity(slots),
            head: Vec::new(),
            assets: Vec::new(),
            preload: Vec::new(),
            bus,
            private_topics,
            defaults: &[],
        }
    }

    /// Fold in the next slot (in page order) that rendered: its HTML, head entries and
    /// assets.
    pub fn rendered(
        &mut self,
        name: &'a str,
        fragment: Fragment,
        assets: impl IntoIterator<Item = String>,
    ) {
        self.head.extend(fragment.head);
        self.assets.extend(assets);
        self.slots.push((name, fragment.html));
    }

    /// Fold in the next slot (in page order) that fell back: its fallback HTML alone.
    pub fn fell_back(&mut self, name: &'a str, fallback: &str) {
        self.slots.push((name, fallback.to_string()));
    }
}

impl Composition<'_> {
    /// The merged head entries of the slots that rendered (then the page's own where
    /// none of theirs has the same key), and the stylesheets (and preloaded scripts) of
    /// the page.
    pub fn head(&self) -> String {
        let mut out = String::new();
        self.write_head(&mut out);
        out
    }

    fn write_head(&self, out: &mut String) {
        let mut seen_title = false;
        let mut seen_keys = HashSet::new();
        for entry in self.head.iter().chain(self.defaults) {
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
            write_head_entry(out, entry);
        }
        let urls = self.assets.iter().chain(&self.preload);
        for url in dedup(urls).filter(|u| u.ends_with(".css")) {
            out.push_str("<link rel=\"stylesheet\" href=\"");
            escape_into(out, url);
            out.push_str("\">");
        }
        for url in dedup(self.preload.iter()).filter(|u| u.ends_with(".js")) {
            out.push_str("<link rel=\"modulepreload\" href=\"");
            escape_into(out, url);
            out.push_str("\">");
        }
    }

    /// The embedded bus state, the client bus runtime and the scripts of the slots
    /// that rendered.
    pub fn scripts(&self) -> String {
        let mut out = String::with_capacity(CLIENT_BUS.len() + 1024);
        self.write_scripts(&mut out);
        out
    }

    fn write_scripts(&self, out: &mut String) {
        out.push_str("<script id=\"oberon-bus-state\" type=\"application/json\">");
        self.write_bus_state_json(out);
        out.push_str("</script><script>");
        out.push_str(CLIENT_BUS);
        out.push_str("</script>");
        for url in dedup(self.assets.iter()).filter(|u| u.ends_with(".js")) {
            out.push_str("<script type=\"module\" src=\"");
            escape_into(out, url);
            out.push_str("\"></script>");
        }
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

fn dedup<'a>(items: impl Iterator<Item = &'a String>) -> impl Iterator<Item = &'a String> {
    let mut seen = HashSet::new();
    items.filter(move |u| seen.insert(u.as_str()))
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

    fn composition<'a>(bus: &'a BusSnapshot, private: &'a HashSet<String>) -> Composition<'a> {
        Composition {
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
            preload: vec![],
            bus,
            private_topics: private,
            defaults: &[],
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
    fn the_pages_own_head_fills_in_only_what_no_slot_said() {
        let bus = BusSnapshot::default();
        let private = HashSet::new();
        let defaults = [
            entry("title", &[], Some("Events")),
            entry(
                "meta",
                &[("name", "keywords"), ("content", "tickets")],
                None,
            ),
        ];
        let mut c = composition(&bus, &private);
        c.defaults = &defaults;
        let head = c.head();
        assert!(head.starts_with("<title>First &lt;1&gt;</title>"), "{head}");
        assert!(!head.contains("Events"), "{head}");
        assert!(
            head.contains("<meta name=\"keywords\" content=\"tickets\">"),
            "{head}"
        );
        let mut alone = Composition::new(&bus, &private, 0);
        alone.defaults = &defaults;
        assert_eq!(
            alone.head(),
            "<title>Events</title><meta name=\"keywords\" content=\"tickets\">"
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
        let private = HashSet::from(["secret".to_string()]);
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

    fn layouts(source: &str) -> Layouts {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("l.html"), source).unwrap();
        Layouts::load(dir.path()).unwrap()
    }

    const PAGE: PageText<'static> = PageText {
        route: "/e/{id}",
        team: "t",
        lang: "en",
    };

    #[test]
    fn a_skeleton_is_the_layout_with_holes_and_fills_like_the_template() {
        let layouts = layouts(
            "<html lang=\"{{ lang }}\"><head>{{ head }}</head><body data-r=\"{{ page.route }}\">\
             <main>{{ slots.main }}</main><aside>{{ slots.side }}</aside>{{ scripts }}</body></html>",
        );
        let skeleton = layouts.skeleton("l.html", PAGE, &["main", "side"]).unwrap();
        assert_eq!(
            skeleton.pieces(),
            &[
                Piece::Text("<html lang=\"en\"><head>".into()),
                Piece::Head,
                // minijinja's HTML escaping, as in any template.
                Piece::Text("</head><body data-r=\"&#x2f;e&#x2f;{id}\"><main>".into()),
                Piece::Slot(0),
                Piece::Text("</main><aside>".into()),
                Piece::Slot(1),
                Piece::Text("</aside>".into()),
                Piece::Scripts,
                Piece::Text("</body></html>".into()),
            ]
        );
        let bus = BusSnapshot::default();
        let private = HashSet::new();
        let mut c = Composition::new(&bus, &private, 2);
        c.rendered(
            "main",
            Fragment {
                html: "<p>m</p>".into(),
                head: vec![entry("title", &[], Some("T"))],
            },
            ["/assets/m/1/m.css".to_string()],
        );
        c.fell_back("side", "<p>later</p>");
        let page = skeleton.fill(&c);
        assert!(page.starts_with(
            "<html lang=\"en\"><head><title>T</title><link rel=\"stylesheet\" href=\"/assets/m/1/m.css\"></head>"
        ));
        assert!(page.contains(
            "<main><p>m</p></main><aside><p>later</p></aside><script id=\"oberon-bus-state\""
        ));
        assert!(page.ends_with("</script></body></html>"));
    }

    #[test]
    fn a_layout_that_loops_over_its_slots_has_a_skeleton() {
        let layouts = layouts(
            "{{ head }}{% for name, html in slots|items %}<div data-slot=\"{{ name }}\">{{ html }}</div>{% endfor %}{{ scripts }}",
        );
        let skeleton = layouts.skeleton("l.html", PAGE, &["a", "b"]).unwrap();
        let slots: Vec<_> = (skeleton.pieces().iter())
            .filter(|p| matches!(p, Piece::Slot(_)))
            .collect();
        assert_eq!(slots.len(), 2);
    }

    #[test]
    fn a_layout_that_branches_on_or_repeats_a_hole_has_no_skeleton() {
        for (source, expect) in [
            (
                "{% if slots.a %}<aside>{{ slots.a }}</aside>{% endif %}",
                "changes with",
            ),
            ("{{ slots.a | upper }}", "a filter"),
            ("{{ slots.a | length }}", "changes with"),
            ("{{ slots.a }}{{ slots.a }}", "more than once"),
            ("{{ head }}{{ head }}", "more than once"),
        ] {
            let err = layouts(source)
                .skeleton("l.html", PAGE, &["a"])
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{source}: {err}");
        }
    }

    #[test]
    fn a_streamed_head_names_every_stylesheet_and_preloads_every_script() {
        let bus = BusSnapshot::default();
        let private = HashSet::new();
        let mut c = Composition::new(&bus, &private, 0);
        c.preload = vec!["/assets/a/1/a.css".into(), "/assets/a/1/a.js".into()];
        assert_eq!(
            c.head(),
            "<link rel=\"stylesheet\" href=\"/assets/a/1/a.css\"><link rel=\"modulepreload\" href=\"/assets/a/1/a.js\">"
        );
        assert!(
            !c.scripts().contains("a.js"),
            "a script runs only for a slot that rendered"
        );
    }
}
