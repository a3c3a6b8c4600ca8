//! Where each node of a YAML document starts, so that validation errors found after
//! deserialisation (duplicate ids, unknown actions, bad references) can still name the
//! line and column a person has to fix.
//!
//! serde_yaml gives positions only for its own errors; this walks the same text with
//! yaml-rust2's event parser and records the start of every value under a path such as
//! `steps.3.with.url`. A YAML layer below the loader and the environment file, which
//! both place their errors with it.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in a source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// Start positions of the values of one YAML document, by dotted path.
#[derive(Debug, Default)]
pub struct Spans {
    by_path: HashMap<String, Pos>,
    /// Where the nesting first went deeper than [`MAX_DEPTH`], if it did.
    pub too_deep: Option<Pos>,
}

/// The deepest nesting of mappings and sequences a runbook or environment file may
/// have. Real ones stay under 10; the bound keeps every input linear to read (paths
/// are not built below it).
pub use crate::depth::MAX_DEPTH;

impl Spans {
    /// Index `source`. A text that does not parse gives an empty index (the
    /// deserialiser reports the syntax error with its own position).
    pub fn index(source: &str) -> Spans {
        if let Some(pos) = too_deep(source) {
            return Spans {
                too_deep: Some(pos),
                ..Spans::default()
            };
        }
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(source);
        if parser.load(&mut walker, false).is_err() {
            return Spans::default();
        }
        Spans {
            by_path: walker.by_path,
            too_deep: None,
        }
    }

    /// The position of the value at `path`, or of its nearest ancestor that exists.
    pub fn find(&self, path: &str) -> Pos {
        let mut path = path;
        loop {
            if let Some(pos) = self.by_path.get(path) {
                return *pos;
            }
            match path.rfind('.') {
                Some(cut) => path = &path[..cut],
                None => {
                    return self
                        .by_path
                        .get("")
                        .copied()
                        .unwrap_or(Pos { line: 1, column: 1 })
                }
            }
        }
    }

    /// The index of the step whose text contains `line`, if any.
    pub fn step_at_line(&self, line: usize) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (path, pos) in &self.by_path {
            let Some(rest) = path.strip_prefix("steps.") else {
                continue;
            };
            if rest.contains('.') {
                continue;
            }
            let Ok(index) = rest.parse::<usize>() else {
                continue;
            };
            if pos.line <= line && best.is_none_or(|(_, l)| pos.line > l) {
                best = Some((index, pos.line));
            }
        }
        best.map(|(index, _)| index)
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    by_path: HashMap<String, Pos>,
}

/// Where a YAML text first nests deeper than [`MAX_DEPTH`] ([`crate::depth`]).
pub fn too_deep(source: &str) -> Option<Pos> {
    crate::depth::too_deep(source).map(|(line, column)| Pos { line, column })
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

impl Walker {
    /// Called for every node start. Returns the node's path when it is a value (as
    /// opposed to a mapping key), after advancing the parent frame.
    fn node(&mut self, scalar: Option<&str>, mark: Marker) -> Option<String> {
        let pos = Pos {
            line: mark.line(),
            column: mark.col() + 1,
        };
        if self.stack.len() >= MAX_DEPTH {
            // Below the bound nothing is addressed (and a path as long as the nesting
            // would make reading quadratic).
            return Some(String::new());
        }
        let path = match self.stack.last_mut() {
            None => String::new(),
            Some(Frame::Map { path, key }) => match key.take() {
                None => {
                    *key = Some(scalar.unwrap_or("?").to_string());
                    return None;
                }
                Some(k) => join(path, &k),
            },
            Some(Frame::Seq { path, next }) => {
                let p = join(path, &next.to_string());
                *next += 1;
                p
            }
        };
        self.by_path.entry(path.clone()).or_insert(pos);
        Some(path)
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                self.node(Some(&value), mark);
            }
            Event::Alias(_) => {
                self.node(None, mark);
            }
            Event::MappingStart(..) => {
                // A mapping used as a key is not addressable; give it a dummy path.
                let path = self.node(None, mark).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.node(None, mark).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_found_and_read_in_linear_time() {
        let deep = format!("a: {}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let t = std::time::Instant::now();
        let spans = Spans::index(&deep);
        assert_eq!(
            spans.too_deep,
            Some(Pos {
                line: 1,
                column: 4 + MAX_DEPTH - 1
            })
        );
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "not quadratic"
        );
        assert!(Spans::index("a: [[1]]").too_deep.is_none());
        // block nesting counts too; brackets in quotes and comments do not
        let mut block = String::new();
        for i in 0..100 {
            block.push_str(&format!("{}k{i}:\n", "  ".repeat(i)));
        }
        assert!(too_deep(&block).is_some());
        let quoted = format!(
            "a: \"{}\" # {}\nb: '{}'\n",
            "[".repeat(200),
            "{".repeat(200),
            "{".repeat(200)
        );
        assert_eq!(too_deep(&quoted), None);
        let builtin = include_str!("../../packs/keycloak-24/switchback.yaml");
        assert_eq!(too_deep(builtin), None);
    }

    #[test]
    fn finds_nested_values_and_steps() {
        let src = "name: x\nsteps:\n  - id: a\n    action: wait\n  - id: b\n    with:\n      url: http://x\n";
        let spans = Spans::index(src);
        assert_eq!(spans.find("name"), Pos { line: 1, column: 7 });
        assert_eq!(spans.find("steps.1.id"), Pos { line: 5, column: 9 });
        assert_eq!(
            spans.find("steps.1.with.url"),
            Pos {
                line: 7,
                column: 12
            }
        );
        // a missing leaf falls back to its parent
        assert_eq!(spans.find("steps.1.with.nope"), spans.find("steps.1.with"));
        assert_eq!(spans.step_at_line(4), Some(0));
        assert_eq!(spans.step_at_line(7), Some(1));
        assert_eq!(spans.step_at_line(1), None);
    }
}
