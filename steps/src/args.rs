//! Reading rendered arguments (already type-checked against each action's schema).

use std::time::Duration;

use engine::{Args, StepError};
use serde_json::Value as Json;

pub fn str_arg<'a>(args: &'a Args, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Json::as_str)
}

/// # Errors
/// The argument is missing.
pub fn req_str<'a>(args: &'a Args, name: &str) -> Result<&'a str, StepError> {
    str_arg(args, name).ok_or_else(|| StepError::permanent(format!("argument `{name}` is missing")))
}

pub fn int_arg(args: &Args, name: &str) -> Option<i64> {
    args.get(name).and_then(Json::as_i64)
}

pub fn bool_arg(args: &Args, name: &str) -> Option<bool> {
    args.get(name).and_then(Json::as_bool)
}

/// A duration argument, or `default`.
///
/// # Errors
/// Not a duration.
pub fn dur_arg(args: &Args, name: &str, default: Duration) -> Result<Duration, StepError> {
    match str_arg(args, name) {
        None => Ok(default),
        Some(t) => humantime::parse_duration(t).map_err(|e| {
            StepError::permanent(format!("argument `{name}`: bad duration `{t}`: {e}"))
        }),
    }
}

/// A list of strings, if given.
pub fn list_arg(args: &Args, name: &str) -> Option<Vec<String>> {
    args.get(name).and_then(Json::as_array).map(|a| {
        a.iter()
            .map(|v| match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    })
}

/// `cache` (one) or `caches` (a list); `None` when neither: all caches.
pub fn caches_arg(args: &Args) -> Option<Vec<String>> {
    if let Some(c) = str_arg(args, "cache") {
        return Some(vec![c.to_string()]);
    }
    list_arg(args, "caches")
}

/// A duration as people write it (`30s`, `5m`, `250ms`), in typed arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Human(pub Duration);

impl<'de> serde::Deserialize<'de> for Human {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Human, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(Human)
            .map_err(|e| serde::de::Error::custom(format!("bad duration `{text}`: {e}")))
    }
}

/// An action's rendered arguments in its typed form. They were checked against the
/// action's `ArgSpec`s at load and again after rendering; this is where the action
/// reads them, and a mismatch between the two is a bug the tests below catch.
///
/// # Errors
/// The arguments do not fit the type (named, with the action).
pub fn typed<T: serde::de::DeserializeOwned>(action: &str, args: &Args) -> Result<T, StepError> {
    serde_json::from_value(Json::Object(args.clone()))
        .map_err(|e| StepError::permanent(format!("arguments of `{action}`: {e}")))
}

/// The field names a `#[derive(Deserialize)]` struct declares: serde hands them to
/// `deserialize_struct`, which is all this deserializer answers.
pub fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Deserializer, Visitor};

    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("fields read")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Stop {
            Stop
        }
    }
    struct Fields(&'static [&'static str]);
    impl<'de> Deserializer<'de> for &mut Fields {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = fields;
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            enum identifier ignored_any
        }
    }
    let mut f = Fields(&[]);
    let _ = T::deserialize(&mut f);
    f.0
}

/// The typed arguments of every action, for the test that they match the specs.
#[cfg(test)]
pub(crate) type Reader = fn(&Args) -> Result<(), StepError>;

/// A reading as a step's outputs (its fields): what a read-only action's `apply`
/// records of its `probe`.
pub fn outputs(reading: serde_json::Value) -> engine::Outputs {
    reading.as_object().cloned().unwrap_or_default()
}

/// The arguments of an action that takes none.
#[derive(Debug, serde::Deserialize)]
pub struct NoArgs {}
