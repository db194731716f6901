//! An event's payload as it is stored and sent (see [`Payload`]).

use serde::{Deserialize, Serialize};

/// An event's payload: its JSON object as text. Events are written and
/// forwarded (outbox, event stream, webhooks, NATS) far more often than
/// anything looks inside one, so the text is kept as written: storing or
/// sending a payload copies it, without building a `serde_json::Value` tree
/// and writing it out again. Equality is equality of the JSON values (the
/// key order may differ, e.g. after a round trip through PostgreSQL's
/// `jsonb`).
#[derive(Clone)]
pub struct Payload(Box<serde_json::value::RawValue>);

impl Payload {
    /// The payload `value` serialises to.
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Payload {
        // Serialising the payload structs cannot fail: every field is a
        // string, number, bool or null.
        serde_json::value::to_raw_value(value).map_or_else(|_| Payload::null(), Payload)
    }

    /// A payload from stored JSON text; an error if it is not JSON.
    pub fn from_json(text: String) -> Result<Payload, serde_json::Error> {
        serde_json::value::RawValue::from_string(text).map(Payload)
    }

    fn null() -> Payload {
        Payload::from_json("null".into()).unwrap_or_else(|_| unreachable!("null is JSON"))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The payload as a `serde_json::Value`, for code that looks inside.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.as_str()).unwrap_or(serde_json::Value::Null)
    }

    /// The payload read as `T`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.as_str())
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.as_str() == other.as_str() || self.value() == other.value()
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
        Box::<serde_json::value::RawValue>::deserialize(d).map(Payload)
    }
}

#[cfg(test)]
mod tests {
    use super::Payload;

    #[test]
    fn a_payload_keeps_its_text_and_compares_as_json() {
        let text = r#"{"b":1,"a":"ü","n":null}"#;
        let p = Payload::from_json(text.into()).expect("JSON");
        assert_eq!(p.as_str(), text);
        assert_eq!(serde_json::to_string(&p).expect("serialise"), text);
        assert_eq!(p.value(), serde_json::json!({"a": "ü", "b": 1, "n": null}));
        // The same object with its keys in another order is equal; another
        // value is not.
        let reordered =
            Payload::from_json(r#"{"a": "ü", "n": null, "b": 1}"#.into()).expect("JSON");
        assert_eq!(p, reordered);
        assert_ne!(
            p,
            Payload::of(&serde_json::json!({"a": "ü", "b": 2, "n": null}))
        );
        assert!(Payload::from_json("{not json".into()).is_err());
    }
}
