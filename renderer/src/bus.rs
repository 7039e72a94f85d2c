//! The per-request state bus.
//!
//! Components run in stages (see [`crate::plan`]): every publisher of a topic is in an
//! earlier stage than its subscribers, and a topic has at most one publisher on a page.
//! So a stage can read an immutable [`BusSnapshot`] taken after the previous stage, and
//! the components of one stage never need a lock to run concurrently. Each component
//! sees the snapshot through a [`ComponentBus`] that enforces what it declared.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::component::ComponentMetadata;

/// Largest value one publish may carry. Bounds what a guest can make the host hold.
pub const MAX_TOPIC_VALUE_BYTES: usize = 256 << 10;

/// Topic values (JSON text) visible to a stage.
#[derive(Debug, Default, Clone)]
pub struct BusSnapshot {
    topics: BTreeMap<Arc<str>, Arc<str>>,
}

impl BusSnapshot {
    pub fn get(&self, topic: &str) -> Option<&Arc<str>> {
        self.topics.get(topic)
    }

    pub fn insert(&mut self, topic: Arc<str>, json: Arc<str>) {
        self.topics.insert(topic, json);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Arc<str>)> {
        self.topics.iter()
    }

    pub fn len(&self) -> usize {
        self.topics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }
}

/// One component's view of the bus during one render.
pub struct ComponentBus {
    snapshot: Arc<BusSnapshot>,
    subscribes: Vec<Arc<str>>,
    publishes: Vec<Arc<str>>,
    published: Vec<(Arc<str>, Arc<str>)>,
}

impl ComponentBus {
    pub fn new(snapshot: Arc<BusSnapshot>, meta: &ComponentMetadata) -> Self {
        Self {
            snapshot,
            subscribes: meta.subscribes.iter().cloned().collect(),
            publishes: meta.publishes.iter().cloned().collect(),
            published: Vec::new(),
        }
    }

    /// A bus on which nothing is declared: used while calling `describe`.
    pub fn closed() -> Self {
        Self {
            snapshot: Arc::default(),
            subscribes: Vec::new(),
            publishes: Vec::new(),
            published: Vec::new(),
        }
    }

    /// The latest value of a declared topic; nothing for an undeclared or absent one.
    pub fn get(&self, topic: &str) -> Option<String> {
        if !self.subscribes.iter().any(|t| &**t == topic) {
            return None;
        }
        self.snapshot.get(topic).map(|v| v.to_string())
    }

    /// Publish a declared topic. The value must be JSON; a later publish of the same
    /// topic in the same render replaces the earlier one.
    pub fn publish(&mut self, topic: &str, value: String) -> Result<(), PublishError> {
        let Some(topic) = self.publishes.iter().find(|t| &***t == topic).cloned() else {
            return Err(PublishError::Undeclared(topic.to_string()));
        };
        if value.len() > MAX_TOPIC_VALUE_BYTES {
            return Err(PublishError::TooLarge {
                topic,
                bytes: value.len(),
            });
        }
        if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(&value) {
            return Err(PublishError::NotJson { topic, error });
        }
        self.published.retain(|(t, _)| *t != topic);
        self.published.push((topic, Arc::from(value)));
        Ok(())
    }

    pub fn take_published(&mut self) -> Vec<(Arc<str>, Arc<str>)> {
        std::mem::take(&mut self.published)
    }
}

/// Why a publish was refused: the component's doing (the guest gets the message as
/// the `publish` call's error, and its render goes on).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("topic {0:?} is not declared in this component's publishes")]
    Undeclared(String),
    #[error("value for topic {topic:?} is {bytes} bytes; the limit is {MAX_TOPIC_VALUE_BYTES}")]
    TooLarge { topic: Arc<str>, bytes: usize },
    #[error("value for topic {topic:?} is not JSON: {error}")]
    NotJson {
        topic: Arc<str>,
        error: serde_json::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::Cacheability;

    fn meta(subs: &[&str], pubs: &[&str]) -> ComponentMetadata {
        ComponentMetadata {
            name: Arc::from("probe"),
            subscribes: subs.iter().map(|s| Arc::from(*s)).collect(),
            publishes: pubs.iter().map(|s| Arc::from(*s)).collect(),
            assets: vec![],
            cacheability: Cacheability::Public,
            reuse: None,
        }
    }

    fn snapshot() -> Arc<BusSnapshot> {
        let mut s = BusSnapshot::default();
        s.insert(Arc::from("declared"), Arc::from("{\"a\":1}"));
        s.insert(Arc::from("secret"), Arc::from("42"));
        Arc::new(s)
    }

    #[test]
    fn undeclared_read_gives_nothing() {
        let bus = ComponentBus::new(snapshot(), &meta(&["declared"], &[]));
        assert_eq!(bus.get("declared").as_deref(), Some("{\"a\":1}"));
        assert_eq!(bus.get("secret"), None);
    }

    #[test]
    fn undeclared_publish_is_an_error() {
        let mut bus = ComponentBus::new(snapshot(), &meta(&[], &["mine"]));
        let err = bus.publish("not-mine", "1".into()).unwrap_err().to_string();
        assert!(err.contains("not declared"), "{err}");
        assert!(
            bus.publish("mine", "not json".into())
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
        bus.publish("mine", "1".into()).unwrap();
        bus.publish("mine", "2".into()).unwrap();
        assert_eq!(
            bus.take_published(),
            vec![(Arc::from("mine"), Arc::from("2"))]
        );
    }

    #[test]
    fn oversized_publish_is_refused() {
        let mut bus = ComponentBus::new(snapshot(), &meta(&[], &["mine"]));
        let big = format!("\"{}\"", "x".repeat(MAX_TOPIC_VALUE_BYTES));
        assert!(
            bus.publish("mine", big)
                .unwrap_err()
                .to_string()
                .contains("limit")
        );
    }
}
