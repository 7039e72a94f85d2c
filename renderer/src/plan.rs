//! Bus ordering: which components of a page run before which.
//!
//! A component that publishes topic T runs before every component that subscribes to T.
//! The plan groups slots into *stages*: all publishers a slot depends on are in earlier
//! stages, and slots within a stage run concurrently. Built once per page and set of
//! component versions, never per request. A cycle, or two publishers of one topic, is a
//! configuration error found here, when the page is loaded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::component::ComponentMetadata;

/// What the planner needs to know of one slot.
pub struct PlanSlot<'a> {
    pub slot: &'a str,
    pub meta: &'a ComponentMetadata,
}

/// Slots (by index into the page's slot list) grouped into stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusPlan {
    pub stages: Vec<Vec<usize>>,
}

/// Why a page's components cannot be ordered. `slot` indexes the slot to blame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub slot: usize,
    pub message: String,
    pub help: String,
}

/// Order `slots` given the topics seeded before any component runs.
pub fn plan(slots: &[PlanSlot<'_>], seeded: &BTreeSet<Arc<str>>) -> Result<BusPlan, PlanError> {
    // Each topic has at most one publisher on a page, and never a seeded topic: the bus
    // is then deterministic, and a topic's schema has exactly one owner.
    let mut publisher: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, s) in slots.iter().enumerate() {
        for topic in &s.meta.publishes {
            if seeded.contains(topic) {
                return Err(PlanError {
                    slot: i,
                    message: format!(
                        "component {} (slot {}) publishes topic {topic:?}, which the page's data sources or the request already provide",
                        s.meta.name, s.slot
                    ),
                    help: "rename the data source's topic, or remove the data source".into(),
                });
            }
            if let Some(&other) = publisher.get(&**topic) {
                return Err(PlanError {
                    slot: i,
                    message: format!(
                        "topic {topic:?} is published by both component {} (slot {}) and component {} (slot {})",
                        slots[other].meta.name, slots[other].slot, s.meta.name, s.slot
                    ),
                    help: "a topic has one publisher per page; remove one of the slots".into(),
                });
            }
            publisher.insert(topic, i);
        }
    }

    // deps[i]: slots that must run before slot i.
    let deps: Vec<BTreeSet<usize>> = slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.meta
                .subscribes
                .iter()
                .filter_map(|t| publisher.get(&**t).copied())
                .filter(|&p| p != i)
                .collect()
        })
        .collect();

    let mut stage_of: Vec<Option<usize>> = vec![None; slots.len()];
    let mut stages: Vec<Vec<usize>> = Vec::new();
    let mut placed = 0;
    while placed < slots.len() {
        let ready: Vec<usize> = (0..slots.len())
            .filter(|&i| stage_of[i].is_none())
            .filter(|&i| {
                deps[i]
                    .iter()
                    .all(|&d| stage_of[d].is_some_and(|s| s < stages.len()))
            })
            .collect();
        if ready.is_empty() {
            return Err(cycle_error(slots, &deps, &stage_of, &publisher));
        }
        for &i in &ready {
            stage_of[i] = Some(stages.len());
        }
        placed += ready.len();
        stages.push(ready);
    }
    Ok(BusPlan { stages })
}

/// Find one cycle among the unplaced slots and describe it with its topics.
fn cycle_error(
    slots: &[PlanSlot<'_>],
    deps: &[BTreeSet<usize>],
    stage_of: &[Option<usize>],
    publisher: &BTreeMap<&str, usize>,
) -> PlanError {
    // Walk dependencies from an unplaced slot; in a finite graph where every unplaced
    // slot has an unplaced dependency, the walk must revisit a slot.
    let start = stage_of.iter().position(Option::is_none).unwrap_or(0);
    let mut path = vec![start];
    let mut current = start;
    loop {
        let next = deps[current]
            .iter()
            .copied()
            .find(|&d| stage_of[d].is_none())
            .unwrap_or(start);
        if let Some(pos) = path.iter().position(|&p| p == next) {
            path.drain(..pos);
            break;
        }
        path.push(next);
        current = next;
    }
    // path: a → b → c where each depends on the next; print in data-flow order.
    path.reverse();
    let mut steps = Vec::new();
    for (k, &i) in path.iter().enumerate() {
        let next = path[(k + 1) % path.len()];
        let topic = slots[next]
            .meta
            .subscribes
            .iter()
            .find(|t| publisher.get(&***t) == Some(&i))
            .map(|t| t.to_string())
            .unwrap_or_default();
        steps.push(format!(
            "{} publishes {topic:?} read by {}",
            slots[i].meta.name, slots[next].meta.name
        ));
    }
    PlanError {
        slot: path[0],
        message: format!("components form a cycle on the bus: {}", steps.join(", ")),
        help: "state flows one way: remove one of these subscriptions, or split a component".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::Cacheability;

    fn meta(name: &str, subs: &[&str], pubs: &[&str]) -> ComponentMetadata {
        ComponentMetadata {
            name: Arc::from(name),
            subscribes: subs.iter().map(|s| Arc::from(*s)).collect(),
            publishes: pubs.iter().map(|s| Arc::from(*s)).collect(),
            assets: vec![],
            cacheability: Cacheability::Public,
            reuse: None,
        }
    }

    fn run(metas: &[ComponentMetadata], seeded: &[&str]) -> Result<BusPlan, PlanError> {
        let slots: Vec<_> = metas
            .iter()
            .map(|m| PlanSlot {
                slot: &m.name,
                meta: m,
            })
            .collect();
        plan(&slots, &seeded.iter().map(|s| Arc::from(*s)).collect())
    }

    #[test]
    fn publishers_run_before_subscribers() {
        let metas = [
            meta("sink", &["n", "n2"], &[]),
            meta("double", &["n"], &["n2"]),
            meta("source", &[], &["n"]),
            meta("header", &[], &[]),
        ];
        assert_eq!(
            run(&metas, &[]).unwrap().stages,
            vec![vec![2, 3], vec![1], vec![0]]
        );
    }

    #[test]
    fn seeded_topics_do_not_order() {
        let metas = [
            meta("a", &["event"], &["x"]),
            meta("b", &["event", "x"], &[]),
        ];
        assert_eq!(
            run(&metas, &["event"]).unwrap().stages,
            vec![vec![0], vec![1]]
        );
    }

    #[test]
    fn cycle_names_components_and_topics() {
        let metas = [
            meta("header", &[], &[]),
            meta("relay-a", &["x"], &["y"]),
            meta("relay-b", &["y"], &["x"]),
        ];
        let err = run(&metas, &[]).unwrap_err();
        assert!(err.message.contains("cycle"), "{}", err.message);
        assert!(
            err.message
                .contains("relay-a publishes \"y\" read by relay-b"),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains("relay-b publishes \"x\" read by relay-a"),
            "{}",
            err.message
        );
    }

    #[test]
    fn longer_cycle_is_reported_whole() {
        let metas = [
            meta("a", &["z"], &["x"]),
            meta("b", &["x"], &["y"]),
            meta("c", &["y"], &["z"]),
        ];
        let err = run(&metas, &[]).unwrap_err();
        for part in [
            "a publishes \"x\" read by b",
            "b publishes \"y\" read by c",
            "c publishes \"z\" read by a",
        ] {
            assert!(err.message.contains(part), "{}", err.message);
        }
    }

    #[test]
    fn two_publishers_of_one_topic_are_rejected() {
        let metas = [meta("a", &[], &["x"]), meta("b", &[], &["x"])];
        assert!(
            run(&metas, &[])
                .unwrap_err()
                .message
                .contains("published by both")
        );
    }

    #[test]
    fn publishing_a_seeded_topic_is_rejected() {
        let metas = [meta("a", &[], &["event"])];
        assert!(
            run(&metas, &["event"])
                .unwrap_err()
                .message
                .contains("already provide")
        );
    }
}
