//! The per-request state bus. Topic values are JSON.
//!
//! A component only sees topics it declared in [`Metadata::subscribes`](crate::Metadata::subscribes)
//! and may only publish topics it declared in [`Metadata::publishes`](crate::Metadata::publishes).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::oberon::component::bus as raw;

/// The latest value of `topic`, decoded from JSON. `None` when the topic is
/// absent, undeclared, or its JSON does not decode as `T`.
pub fn get<T: DeserializeOwned>(topic: &str) -> Option<T> {
    get_raw(topic).and_then(|json| decode(&json))
}

/// The latest value of `topic` as JSON text; `None` when absent or undeclared.
pub fn get_raw(topic: &str) -> Option<String> {
    raw::get(topic)
}

/// Publishes `value`, encoded as JSON, on `topic`. Fails when the topic is not
/// declared in `publishes` (the host's message) or the value cannot be encoded.
pub fn publish<T: Serialize + ?Sized>(topic: &str, value: &T) -> Result<(), String> {
    let json = serde_json::to_string(value).map_err(|e| format!("cannot encode {topic}: {e}"))?;
    publish_raw(topic, &json)
}

/// Publishes JSON text on `topic` as is. The host rejects text that is not JSON.
pub fn publish_raw(topic: &str, json: &str) -> Result<(), String> {
    raw::publish(topic, json)
}

/// Decodes bus JSON into `T`; `None` when it does not decode.
pub(crate) fn decode<T: DeserializeOwned>(json: &str) -> Option<T> {
    serde_json::from_str(json).ok()
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decode_is_lenient() {
        assert_eq!(decode::<i64>("21"), Some(21));
        assert_eq!(decode::<i64>("\"x\""), None);
        assert_eq!(decode::<i64>("{"), None);
    }
}
