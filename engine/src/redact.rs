//! Masking of secret values. Every event passes through here before it is journaled,
//! and the CLI passes what it prints through here too, so a secret given as a
//! parameter never reaches the journal, the logs or the output even if a server echoes
//! it back.

use serde_json::Value as Json;

pub const MASK: &str = "***";

/// Secret values this process learned while working (an Infinispan password read from
/// its file, its Basic form): every [`Redactor`] masks them too, so a server echoing
/// one back never reaches the journal, a snapshot, a report or a log line.
static KNOWN: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// Remember a secret value for every redactor in this process (values shorter than 4
/// characters would mask ordinary text and are not taken).
pub fn learn(secret: &str) {
    if secret.len() < 4 {
        return;
    }
    let mut k = KNOWN.write().unwrap_or_else(|p| p.into_inner());
    if !k.iter().any(|s| s == secret) {
        k.push(secret.to_string());
    }
}

fn known() -> Vec<String> {
    KNOWN.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// `text` with every secret this process learned masked (for log lines).
pub fn known_text(text: &str) -> String {
    Redactor::default().text(text)
}

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
        self.secrets.is_empty() && KNOWN.read().map_or(true, |k| k.is_empty())
    }

    /// This redactor's secrets and the process's learned ones, longest first.
    fn all(&self) -> Vec<String> {
        let mut all = self.secrets.clone();
        for k in known() {
            if !all.contains(&k) {
                all.push(k);
            }
        }
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all
    }

    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.all() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }

    pub fn json(&self, value: &mut Json) {
        if self.is_empty() {
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
        if self.is_empty() {
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
