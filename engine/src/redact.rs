//! Masking of secret values. Every event passes through here before it is journaled,
//! and the CLI passes what it prints through here too, so a secret given as a
//! parameter never reaches the journal, the logs or the output even if a server echoes
//! it back.

use serde_json::Value as Json;

pub const MASK: &str = "***";

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }

    pub fn json(&self, value: &mut Json) {
        if self.secrets.is_empty() {
            return;
        }
        match value {
            Json::String(s) => {
                let masked = self.text(s);
                if masked != *s {
                    *s = masked;
                }
            }
            Json::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Json::Object(map) => map.values_mut().for_each(|v| self.json(v)),
            _ => {}
        }
    }

    /// An event with every secret value masked, wherever it appears.
    ///
    /// # Errors
    /// Only if the event cannot pass through JSON (it always can: masking changes
    /// strings into strings).
    pub fn event(
        &self,
        event: crate::event::Event,
    ) -> Result<crate::event::Event, serde_json::Error> {
        if self.secrets.is_empty() {
            return Ok(event);
        }
        let mut v = serde_json::to_value(&event)?;
        self.json(&mut v);
        serde_json::from_value(v)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn masks_inside_nested_values() {
        let r = Redactor::new(["hunter2".to_string(), String::new()]);
        let mut v = json!({"a": ["x hunter2 y", {"b": "hunter2"}], "n": 1});
        r.json(&mut v);
        assert_eq!(v, json!({"a": ["x *** y", {"b": "***"}], "n": 1}));
        assert_eq!(r.text("no secret"), "no secret");
    }
}
