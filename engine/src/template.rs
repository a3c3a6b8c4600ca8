//! Templating of step arguments with minijinja in strict mode: an undefined reference
//! is an error, never an empty string.
//!
//! A string that is exactly one `{{ expression }}` evaluates to the expression's native
//! value (a list stays a list, a number a number); any other string containing `{{`
//! renders to a string. Conditions (`when`, `expect`) are bare expressions; `{{ }}`
//! around them is accepted.

use minijinja::{Environment, UndefinedBehavior, Value};
use serde_json::Value as Json;

/// The template engine, configured once.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

/// Strip one pair of `{{ }}` around a whole expression, if present.
pub fn bare_expression(text: &str) -> &str {
    let t = text.trim();
    match t.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
        Some(inner) if !inner.contains("{{") && !inner.contains("}}") => inner.trim(),
        _ => t,
    }
}

/// Whether `text` is a single `{{ expression }}` (and so renders to a native value).
fn single_expression(text: &str) -> Option<&str> {
    let t = text.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(inner.trim())
}

/// A template or expression that does not parse or does not render: the message names
/// the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

impl From<String> for TemplateError {
    fn from(s: String) -> TemplateError {
        TemplateError(s)
    }
}

impl Templates {
    pub fn new() -> Templates {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .keep_trailing_newline(true)
                .build()
                .expect("the default syntax with the trailing newline kept"),
        );
        Templates { env }
    }

    /// The variable paths a template string refers to (e.g. `params.primary`,
    /// `steps.scale.outputs.previous`), or its syntax error.
    ///
    /// # Errors
    /// When the text does not parse as a template.
    pub fn references_in_text(&self, text: &str) -> Result<Vec<String>, TemplateError> {
        if let Some(expr) = single_expression(text) {
            return self.references_in_expression(expr);
        }
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(Vec::new());
        }
        let mut refs: Vec<String> = contained(text, || {
            let tmpl = self.env.template_from_str(text).map_err(describe)?;
            Ok(tmpl.undeclared_variables(true).into_iter().collect())
        })
        .map_err(TemplateError)?;
        refs.sort();
        Ok(refs)
    }

    /// The variable paths an expression refers to, or its syntax error.
    ///
    /// # Errors
    /// When the text does not parse as an expression.
    pub fn references_in_expression(&self, expr: &str) -> Result<Vec<String>, TemplateError> {
        let mut refs: Vec<String> = contained(expr, || {
            let compiled = self
                .env
                .compile_expression(bare_expression(expr))
                .map_err(describe)?;
            Ok(compiled.undeclared_variables(true).into_iter().collect())
        })
        .map_err(TemplateError)?;
        refs.sort();
        Ok(refs)
    }

    /// Render every string inside `value` against `ctx`.
    ///
    /// # Errors
    /// An undefined reference or a failing filter, with the offending text.
    pub fn render(&self, value: &Json, ctx: &Json) -> Result<Json, TemplateError> {
        self.render_in(value, &Templates::context(ctx))
    }

    /// A template context converted once, for many renders against it (a fan-out's
    /// items over one step's data: each item costs its own size, not the data's).
    pub fn context(ctx: &Json) -> Value {
        Value::from(minijinja::value::Serde(ctx))
    }

    /// Render `value` against `base` with `overlay`'s keys on top (`item`, `site`).
    ///
    /// # Errors
    /// As [`Templates::render`].
    pub fn render_over(
        &self,
        value: &Json,
        base: &Value,
        overlay: &Json,
    ) -> Result<Json, TemplateError> {
        let ctx = minijinja::value::merge_maps([Templates::context(overlay), base.clone()]);
        self.render_in(value, &ctx)
    }

    fn render_in(&self, value: &Json, ctx: &Value) -> Result<Json, TemplateError> {
        match value {
            Json::String(text) => self.render_text(text, ctx),
            Json::Array(items) => items
                .iter()
                .map(|v| self.render_in(v, ctx))
                .collect::<Result<_, _>>()
                .map(Json::Array),
            Json::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    out.insert(k.clone(), self.render_in(v, ctx)?);
                }
                Ok(Json::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    fn render_text(&self, text: &str, ctx: &Value) -> Result<Json, TemplateError> {
        if let Some(expr) = single_expression(text) {
            return self.eval_in(expr, ctx);
        }
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(Json::String(text.to_string()));
        }
        contained(text, || {
            self.env
                .render_str(text, ctx.clone())
                .map(Json::String)
                .map_err(|e| format!("in `{text}`: {}", describe(e)))
        })
        .map_err(TemplateError)
    }

    /// Evaluate an expression to a JSON value.
    ///
    /// # Errors
    /// An undefined reference, a syntax error, or a value JSON cannot hold.
    pub fn eval(&self, expr: &str, ctx: &Json) -> Result<Json, TemplateError> {
        self.eval_in(expr, &Templates::context(ctx))
    }

    fn eval_in(&self, expr: &str, ctx: &Value) -> Result<Json, TemplateError> {
        let expr = bare_expression(expr);
        let value = contained(expr, || {
            let compiled = self
                .env
                .compile_expression(expr)
                .map_err(|e| format!("in `{expr}`: {}", describe(e)))?;
            compiled
                .eval(ctx.clone())
                .map_err(|e| format!("in `{expr}`: {}", describe(e)))
        })
        .map_err(TemplateError)?;
        if value.is_undefined() {
            return Err(TemplateError(format!("in `{expr}`: undefined value")));
        }
        serde_json::to_value(&value).map_err(|e| TemplateError(format!("in `{expr}`: {e}")))
    }

    /// Evaluate a condition: its value must be a boolean.
    ///
    /// # Errors
    /// As [`Templates::eval`], or a non-boolean value.
    pub fn truth(&self, expr: &str, ctx: &Json) -> Result<bool, TemplateError> {
        match self.eval(expr, ctx)? {
            Json::Bool(b) => Ok(b),
            other => Err(TemplateError(format!(
                "`{}` gave {other}, not true or false",
                bare_expression(expr)
            ))),
        }
    }
}

/// Run the template library on user text, turning a panic inside it into an error.
/// This is the one place where a third-party parser reads what a person typed: a bug
/// there must end in a message naming the text, never in a crash. (minijinja 2.x
/// panicked with "empty lexer stack" on `a}}x`; 3.x answers a syntax error.)
fn contained<T>(text: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(format!(
            "the template engine failed on `{}` ({why}): rewrite the expression",
            text.chars().take(120).collect::<String>()
        ))
    })
}

fn describe(e: minijinja::Error) -> String {
    let mut msg = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn single_expression_keeps_native_type() {
        let t = Templates::new();
        let ctx = json!({"params": {"caches": ["a", "b"], "n": 3}});
        assert_eq!(
            t.render(&json!("{{ params.caches }}"), &ctx).unwrap(),
            json!(["a", "b"])
        );
        assert_eq!(t.render(&json!("{{ params.n }}"), &ctx).unwrap(), json!(3));
        assert_eq!(
            t.render(&json!("n={{ params.n }}"), &ctx).unwrap(),
            json!("n=3")
        );
        assert_eq!(
            t.render(&json!({"x": ["{{ params.n + 1 }}"]}), &ctx)
                .unwrap(),
            json!({"x": [4]})
        );
    }

    #[test]
    fn undefined_is_an_error_not_empty() {
        let t = Templates::new();
        let ctx = json!({"params": {}});
        assert!(t.render(&json!("{{ params.nope }}"), &ctx).is_err());
        assert!(t.render(&json!("x-{{ params.nope }}"), &ctx).is_err());
        assert!(t.truth("params.nope == 1", &ctx).is_err());
    }

    #[test]
    fn references_are_nested_paths() {
        let t = Templates::new();
        let refs = t
            .references_in_text("{{ steps.scale.outputs.previous }}/{{ params.a }}")
            .unwrap();
        assert_eq!(refs, vec!["params.a", "steps.scale.outputs.previous"]);
        assert_eq!(
            t.references_in_expression("{{ observation.status == 'offline' }}")
                .unwrap(),
            vec!["observation.status"]
        );
        assert!(t.references_in_text("{{ oops(").is_err());
    }

    #[test]
    fn conditions_must_be_boolean() {
        let t = Templates::new();
        assert!(t.truth("1 == 1", &json!({})).unwrap());
        assert!(t.truth("'x'", &json!({})).is_err());
    }
}
