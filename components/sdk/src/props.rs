//! Slot props: the JSON the page configuration gives a component.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// The props of one slot, a JSON value (normally an object; `null` when absent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Props(pub Value);

impl Props {
    /// Parses props from JSON text. Empty or blank text gives `null` props.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        if text.trim().is_empty() {
            return Ok(Props(Value::Null));
        }
        serde_json::from_str(text).map(Props)
    }

    /// Decodes the props into a typed value (use `#[serde(default)]` for optional fields).
    /// `null` props decode as an empty object, so a struct whose fields all have
    /// defaults always decodes from absent props.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, String> {
        let value = match &self.0 {
            Value::Null => Value::Object(Default::default()),
            v => v.clone(),
        };
        serde_json::from_value(value).map_err(|e| format!("invalid props: {e}"))
    }

    /// The raw JSON value.
    pub fn value(&self) -> &Value {
        &self.0
    }

    /// The member `key` of the props object, if any.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The member `key` if it is a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The member `key` if it is an integer that fits an `i64`.
    pub fn i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }

    /// The member `key` if it is a boolean.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }
}

impl From<Value> for Props {
    fn from(value: Value) -> Self {
        Props(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    struct P {
        #[serde(default)]
        name: Option<String>,
        #[serde(default = "two")]
        qty: u32,
    }

    fn two() -> u32 {
        2
    }

    #[test]
    fn parses_typed_props() {
        let p = Props::from_json(r#"{"name":"x","qty":5}"#).unwrap();
        assert_eq!(
            p.parse::<P>().unwrap(),
            P {
                name: Some("x".into()),
                qty: 5
            }
        );
        assert_eq!(p.str("name"), Some("x"));
        assert_eq!(p.i64("qty"), Some(5));
        assert_eq!(p.bool("qty"), None);
    }

    #[test]
    fn empty_props_use_defaults() {
        for text in ["", "  ", "null", "{}"] {
            let p = Props::from_json(text).unwrap();
            assert_eq!(p.parse::<P>().unwrap(), P { name: None, qty: 2 });
        }
    }

    #[test]
    fn bad_props_are_errors() {
        assert!(Props::from_json("{").is_err());
        let p = Props::from_json(r#"{"qty":"many"}"#).unwrap();
        assert!(p.parse::<P>().is_err());
    }
}
