//! What a guest returns, through the renderer's own checks and escaping (called
//! directly; no wasm runs): the declaration of `describe` (`from_described`), topics
//! published on the bus (`ComponentBus::publish`), and fragments with head entries
//! composed into a page (`Composition`: head, scripts, embedded bus state).
//! Properties, checked independently of the code that escapes: a declaration that
//! passes has valid names, topics and relative asset paths; the embedded bus state is
//! JSON with no `<`, `>`, `&`, U+2028 or U+2029, so nothing in it can end its
//! `<script>`; a head entry becomes exactly one allowed element whose attribute values
//! stay quoted, whose title text has no markup and whose script or style text cannot
//! end the element, open a comment or start a nested script; at most one `<title>`.
#![no_main]

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use arbitrary::Arbitrary;
use oberon_fuzz::Json;
use oberon_renderer::bus::{BusSnapshot, ComponentBus};
use oberon_renderer::component::{
    Cacheability, ComponentMetadata, Described, Fragment, HeadEntry, is_valid_topic,
};
use oberon_renderer::layout::Composition;

const TAGS: [&str; 7] = [
    "title", "meta", "link", "script", "style", "iframe", "TITLE",
];
const ATTRS: [&str; 8] = [
    "name", "content", "rel", "href", "property", "charset", "src", "onload",
];

#[derive(Debug, Arbitrary)]
enum Word {
    Known(u8),
    Any(String),
}

impl Word {
    fn pick(&self, known: &[&str]) -> String {
        match self {
            Word::Known(i) => known[usize::from(*i) % known.len()].to_string(),
            Word::Any(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Head {
    tag: Word,
    attrs: Vec<(Word, String)>,
    content: Option<String>,
}

#[derive(Debug, Arbitrary)]
enum Value {
    Json(Json),
    Text(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    name: String,
    subscribes: Vec<String>,
    publishes: Vec<String>,
    assets: Vec<String>,
    reuse_s: Option<u32>,
    published: Vec<(u8, Value)>,
    private: Vec<u8>,
    head: Vec<Head>,
    html: String,
}

fn valid_name(name: &str, dot_and_underscore: bool) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || c == '-'
                || (dot_and_underscore && (c == '.' || c == '_'))
        })
}

fn check_declaration(input: &Input) -> Option<ComponentMetadata> {
    let described = Described {
        name: input.name.clone(),
        subscribes: input.subscribes.clone(),
        publishes: input.publishes.clone(),
        assets: input.assets.clone(),
        cacheability: Cacheability::Public,
        reuse_s: input.reuse_s,
    };
    let meta = ComponentMetadata::from_described(described).ok()?;
    assert!(
        valid_name(&meta.name, false) && !meta.name.starts_with('-') && !meta.name.ends_with('-')
    );
    for topic in meta.subscribes.iter().chain(&meta.publishes) {
        assert!(valid_name(topic, true), "topic {topic:?}");
    }
    assert!(meta.subscribes.is_disjoint(&meta.publishes));
    for asset in &meta.assets {
        assert!(
            !asset.starts_with('/') && !asset.contains('\\'),
            "asset {asset:?}"
        );
        assert!(
            asset.split('/').all(|s| !matches!(s, "" | "." | "..")),
            "asset {asset:?}"
        );
    }
    Some(meta)
}

/// A metadata that publishes the input's valid topics (a component's topics are
/// checked when it loads, before it ever gets a bus), for the bus checks, whether or
/// not the rest of the declaration passed.
fn publisher(input: &Input) -> ComponentMetadata {
    ComponentMetadata {
        name: Arc::from("fuzz"),
        subscribes: BTreeSet::new(),
        publishes: input
            .publishes
            .iter()
            .filter(|t| is_valid_topic(t))
            .map(|t| Arc::from(t.as_str()))
            .collect(),
        assets: vec![],
        cacheability: Cacheability::Public,
        reuse: None,
    }
}

fn check_bus_state(state: &str) {
    serde_json::from_str::<serde::de::IgnoredAny>(state).expect("the bus state is JSON");
    assert!(state.starts_with('{') && state.ends_with('}'));
    assert!(
        !state.contains(['<', '>', '&', '\u{2028}', '\u{2029}']),
        "markup in the bus state: {state}"
    );
}

/// One head entry composed alone: nothing, or one allowed element, well formed.
fn check_head_entry(entry: &HeadEntry, html: &str) {
    if html.is_empty() {
        return;
    }
    let tag = entry.tag.as_str();
    assert!(
        matches!(tag, "title" | "meta" | "link" | "script" | "style"),
        "tag {tag:?} was written: {html}"
    );
    let open_end = html.find('>').expect("a start tag");
    let start = &html[..open_end];
    assert!(start.starts_with(&format!("<{tag}")), "{html}");
    assert_eq!(
        start.matches('<').count(),
        1,
        "markup in attributes: {html}"
    );
    assert_eq!(
        start.matches('"').count() % 2,
        0,
        "an unquoted attribute: {html}"
    );
    if matches!(tag, "meta" | "link") {
        assert_eq!(open_end + 1, html.len(), "{html}");
        return;
    }
    let close = format!("</{tag}>");
    let text = html[open_end + 1..]
        .strip_suffix(&close)
        .unwrap_or_else(|| panic!("not closed by {close}: {html}"));
    if tag == "title" {
        assert!(!text.contains(['<', '>']), "markup in the title: {html}");
        return;
    }
    let lower = text.to_ascii_lowercase();
    for (at, _) in lower.match_indices('<') {
        let next = &lower[at + 1..];
        assert!(
            !next.starts_with('/') && !next.starts_with('!') && !next.starts_with("script"),
            "{tag} text can end or escape its element: {html}"
        );
    }
}

libfuzzer_sys::fuzz_target!(|input: Input| {
    let _ = check_declaration(&input);

    let meta = publisher(&input);
    let topics: Vec<&Arc<str>> = meta.publishes.iter().collect();
    let mut bus = ComponentBus::new(Arc::new(BusSnapshot::default()), &meta);
    for (i, value) in &input.published {
        let topic = topics
            .get(usize::from(*i) % topics.len().max(1))
            .map_or("undeclared", |t| &***t);
        let value = match value {
            Value::Json(j) => j.0.to_string(),
            Value::Text(t) => t.clone(),
        };
        if bus.publish(topic, value.clone()).is_ok() {
            assert!(meta.publishes.contains(topic));
            serde_json::from_str::<serde::de::IgnoredAny>(&value).expect("published JSON");
        }
    }
    let mut snapshot = BusSnapshot::default();
    for (topic, value) in bus.take_published() {
        snapshot.insert(topic, value);
    }
    let private: HashSet<String> = input
        .private
        .iter()
        .filter_map(|i| topics.get(usize::from(*i) % topics.len().max(1)))
        .map(|t| t.to_string())
        .collect();

    let entries: Vec<HeadEntry> = input
        .head
        .iter()
        .map(|h| HeadEntry {
            tag: h.tag.pick(&TAGS),
            attrs: h
                .attrs
                .iter()
                .map(|(k, v)| (k.pick(&ATTRS), v.clone()))
                .collect(),
            content: h.content.clone(),
        })
        .collect();
    let empty = BusSnapshot::default();
    let none = HashSet::new();
    for entry in &entries {
        let mut alone = Composition::new(&empty, &none, 1);
        alone.rendered(
            "slot",
            Fragment {
                html: String::new(),
                head: vec![entry.clone()],
            },
            Vec::<String>::new(),
        );
        check_head_entry(entry, &alone.head());
    }

    let mut page = Composition::new(&snapshot, &private, 1);
    page.rendered(
        "slot",
        Fragment {
            html: input.html.clone(),
            head: entries,
        },
        ["/assets/fuzz/0123456789abcdef/app.js".to_string()],
    );
    let head = page.head();
    assert!(head.matches("<title>").count() <= 1, "two titles: {head}");
    let state = page.bus_state_json();
    check_bus_state(&state);
    let scripts = page.scripts();
    let opening = "<script id=\"oberon-bus-state\" type=\"application/json\">";
    let embedded = scripts
        .strip_prefix(opening)
        .and_then(|rest| rest.strip_prefix(state.as_str()))
        .expect("the state is embedded as it is");
    assert!(embedded.starts_with("</script>"));
    // Exactly the public topics published are embedded.
    let embedded: BTreeSet<String> =
        serde_json::from_str::<std::collections::BTreeMap<String, serde::de::IgnoredAny>>(&state)
            .expect("the bus state is an object")
            .into_keys()
            .collect();
    let public: BTreeSet<String> = snapshot
        .iter()
        .map(|(t, _)| t.to_string())
        .filter(|t| !private.contains(t))
        .collect();
    assert_eq!(embedded, public);
});
