//! Loading a runbook: YAML text in, a validated [`Runbook`] out, or every problem found
//! with its file, line, column and step.
//!
//! Structure errors (unknown keys, wrong types) come from serde_yaml with its own
//! positions; meaning errors (duplicate ids, unknown actions and arguments, references
//! that do not resolve, bad durations) are found afterwards and placed with [`Spans`].

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use crate::digest::sha256_hex;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::action::{ArgKind, Registry};
use crate::model::{Condition, ForEach, Guard, Param, ParamType, RetryPolicy, Runbook, Step};
use crate::spans::Spans;
use crate::template::Templates;

/// One thing wrong with a runbook, placed in its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub step: Option<String>,
    pub message: String,
}

/// Everything wrong with one runbook text.
#[derive(Debug, Clone)]
pub struct LoadError {
    pub origin: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: {}", self.origin, p.line, p.column, p.message)?;
            if let Some(step) = &p.step {
                write!(f, " (step `{step}`)")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunbook {
    name: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    params: IndexMap<String, RawParam>,
    #[serde(default)]
    guards: Vec<RawGuard>,
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGuard {
    id: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    probe: Option<String>,
    #[serde(default)]
    site: Option<String>,
    #[serde(default)]
    with: Option<serde_yaml::Mapping>,
    expect: String,
    #[serde(default)]
    when: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    before: Vec<String>,
    #[serde(default)]
    unchecked: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    #[serde(rename = "type")]
    kind: ParamType,
    #[serde(default)]
    default: Option<serde_yaml::Value>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    allowed: Vec<serde_yaml::Value>,
    #[serde(default)]
    secret: bool,
    #[serde(default)]
    from_run: Option<crate::model::FromRun>,
    #[serde(default)]
    from_deployment: Option<String>,
    #[serde(default)]
    differs_from: Option<String>,
    #[serde(default)]
    non_empty: bool,
    #[serde(default)]
    unique: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: String,
    #[serde(default)]
    title: Option<String>,
    action: String,
    #[serde(default)]
    site: Option<String>,
    #[serde(default)]
    with: Option<serde_yaml::Mapping>,
    #[serde(default)]
    when: Option<serde_yaml::Value>,
    #[serde(default)]
    require: Vec<RawCondition>,
    #[serde(default)]
    verify: Vec<RawCondition>,
    #[serde(default)]
    retry: Option<RetryPolicy>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    for_each: Option<RawForEach>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    #[serde(default)]
    probe: Option<String>,
    #[serde(default)]
    site: Option<String>,
    #[serde(default)]
    with: Option<serde_yaml::Mapping>,
    expect: String,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForEach {
    items: serde_yaml::Value,
    #[serde(default)]
    concurrency: Option<usize>,
}

/// Hex SHA-256 of a text.
fn yaml_to_json(v: &serde_yaml::Value) -> Result<Json, String> {
    serde_json::to_value(v).map_err(|e| format!("cannot use this value: {e}"))
}

/// Parse and validate a runbook text. `origin` names it in messages (a path or
/// `builtin:NAME`).
///
/// # Errors
/// Every problem found, each with line, column and step.
pub fn load_str(source: &str, origin: &str, registry: &Registry) -> Result<Runbook, LoadError> {
    let spans = Spans::index(source);
    let fail = |problems: Vec<Problem>| LoadError {
        origin: origin.to_string(),
        problems,
    };
    if let Some(pos) = spans.too_deep {
        return Err(fail(vec![Problem {
            line: pos.line,
            column: pos.column,
            step: None,
            message: format!(
                "nested deeper than {} levels of mappings and lists: a runbook is not that deep",
                crate::spans::MAX_DEPTH
            ),
        }]));
    }
    let raw: RawRunbook = match serde_yaml::from_str(source) {
        Ok(raw) => raw,
        Err(e) => return Err(fail(vec![structure_problem(&e, &spans, source)])),
    };
    let mut v = Validator {
        spans: &spans,
        problems: Vec::new(),
        templates: Templates::new(),
        refs: Vec::new(),
        history_used: false,
    };
    let runbook = v.runbook(raw, source, origin, registry);
    if v.problems.is_empty() {
        Ok(runbook)
    } else {
        v.problems.sort_by_key(|p| (p.line, p.column));
        Err(fail(v.problems))
    }
}

fn structure_problem(e: &serde_yaml::Error, spans: &Spans, source: &str) -> Problem {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    let mut message = e.to_string();
    if let Some(cut) = message.rfind(" at line ") {
        message.truncate(cut);
    }
    let step = spans.step_at_line(line).and_then(|i| step_id_at(source, i));
    Problem {
        line,
        column,
        step,
        message,
    }
}

/// The id of step `index`, read leniently from a text that failed to deserialise.
fn step_id_at(source: &str, index: usize) -> Option<String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(source).ok()?;
    doc.get("steps")?
        .get(index)?
        .get("id")?
        .as_str()
        .map(str::to_string)
}

struct Validator<'a> {
    spans: &'a Spans,
    problems: Vec<Problem>,
    templates: Templates,
    /// Every reference seen in the step being validated.
    refs: Vec<String>,
    /// Whether any template reads `history`.
    history_used: bool,
}

/// Names a template may start with, and where.
#[derive(Clone, Copy)]
struct Scope<'s> {
    has_item: bool,
    has_site: bool,
    has_observation: bool,
    earlier: &'s [(String, String)],
    registry: &'s Registry,
}

fn param_accepts(kind: ParamType, v: &Json) -> bool {
    match kind {
        ParamType::String => v.is_string(),
        ParamType::Int => v.is_i64() || v.is_u64(),
        ParamType::Bool => v.is_boolean(),
        ParamType::List => v.is_array(),
        ParamType::Duration => v
            .as_str()
            .is_some_and(|s| humantime::parse_duration(s).is_ok()),
    }
}

/// Step ids may contain `-`, which a template cannot write after a dot: templates
/// may use `_` instead (`steps.scale_down` for step `scale-down`).
use crate::model::template_name;

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

impl Validator<'_> {
    /// A `with:` mapping as JSON; `None` when absent or not convertible (a problem).
    fn with_json(
        &mut self,
        path: &str,
        step: Option<&str>,
        with: Option<&serde_yaml::Mapping>,
    ) -> Option<Json> {
        match yaml_to_json(&serde_yaml::Value::Mapping(with?.clone())) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(path, step, e);
                None
            }
        }
    }

    fn problem(&mut self, path: &str, step: Option<&str>, message: impl Into<String>) {
        let pos = self.spans.find(path);
        self.problems.push(Problem {
            line: pos.line,
            column: pos.column,
            step: step.map(str::to_string),
            message: message.into(),
        });
    }

    fn runbook(
        &mut self,
        raw: RawRunbook,
        source: &str,
        origin: &str,
        registry: &Registry,
    ) -> Runbook {
        if !valid_id(&raw.name) {
            self.problem(
                "name",
                None,
                format!("runbook name `{}` must start with a letter and use only letters, digits, `-` and `_`", raw.name),
            );
        }
        let mut params = IndexMap::new();
        for (name, p) in raw.params {
            let path = format!("params.{name}");
            if let Some(param) = self.param(&path, name.clone(), p) {
                params.insert(name, param);
            }
        }
        if raw.steps.is_empty() {
            self.problem("steps", None, "a runbook needs at least one step");
        }
        let mut seen: HashSet<String> = HashSet::new();
        let mut earlier: Vec<(String, String)> = Vec::new();
        let mut steps = Vec::new();
        for (index, rs) in raw.steps.into_iter().enumerate() {
            let path = format!("steps.{index}");
            let id = rs.id.clone();
            if !valid_id(&id) {
                self.problem(
                    &format!("{path}.id"),
                    Some(&id),
                    format!("step id `{id}` must start with a letter and use only letters, digits, `-` and `_`"),
                );
            }
            if !seen.insert(template_name(&id)) {
                self.problem(
                    &format!("{path}.id"),
                    Some(&id),
                    format!("duplicate step id `{id}`"),
                );
            }
            let step = self.step(&path, rs, &params, &earlier, registry);
            earlier.push((id, step.action.clone()));
            steps.push(step);
        }
        for (name, p) in &params {
            if let Some(other) = &p.differs_from {
                if !params.contains_key(other) || other == name {
                    self.problem(
                        &format!("params.{name}.differs_from"),
                        None,
                        format!("parameter `{name}` must differ from `{other}`, which is not another parameter of this runbook"),
                    );
                }
            }
        }
        let declared = self.guards(raw.guards, &params, &steps, registry);
        // The built-in guards come first: a site proves which site it is before any
        // other guard reads it.
        let mut guards = registry.builtin_guards(&steps, &declared, &params);
        guards.extend(declared);
        // The actions' invariants follow: a runbook's own guard saying the same thing
        // in the procedure's words refuses first.
        guards.extend(registry.builtin_guards_after(&steps, &params));
        // A built-in guard may read the journal's facts (an invariant of an action
        // that puts a site back into traffic reads `history.deployment`).
        let builtin_history = guards
            .iter()
            .any(|g| g.id.starts_with("builtin-") && g.with.to_string().contains("history."));
        Runbook {
            title: raw.title.unwrap_or_else(|| raw.name.clone()),
            name: raw.name,
            description: raw.description,
            params,
            steps,
            guards,
            uses_history: self.history_used || builtin_history,
            origin: origin.to_string(),
            pack: None,
            source: source.to_string(),
            source_hash: sha256_hex(source),
        }
    }

    fn step(
        &mut self,
        path: &str,
        rs: RawStep,
        params: &IndexMap<String, Param>,
        earlier: &[(String, String)],
        registry: &Registry,
    ) -> Step {
        let id = rs.id.clone();
        let sid = Some(id.as_str());
        let line = self.spans.find(path).line;
        self.refs.clear();
        let scope = Scope {
            has_item: rs.for_each.is_some(),
            has_site: rs.site.is_some(),
            has_observation: false,
            earlier,
            registry,
        };
        let with = self.step_with(path, &id, &rs, scope, params);
        if let Some(site) = &rs.site {
            self.site_template(
                &format!("{path}.site"),
                &id,
                site,
                Scope {
                    has_site: false,
                    ..scope
                },
                params,
            );
        }
        let when = self.step_when(path, &id, rs.when.as_ref(), scope, params);
        let require = self.conditions(
            &format!("{path}.require"),
            &id,
            rs.require,
            scope,
            params,
            &rs.action,
        );
        let verify = self.conditions(
            &format!("{path}.verify"),
            &id,
            rs.verify,
            scope,
            params,
            &rs.action,
        );
        let timeout = self.step_timeout(path, sid, rs.timeout.as_deref());
        let retry = self.step_retry(path, sid, rs.retry);
        let for_each = rs
            .for_each
            .map(|fe| self.step_for_each(path, &id, fe, scope, params));
        let step_refs = self.step_refs(earlier);
        Step {
            step_refs,
            title: rs.title.unwrap_or_else(|| id.clone()),
            id,
            action: rs.action,
            site: rs.site,
            with,
            when,
            require,
            verify,
            retry,
            timeout,
            for_each,
            line,
        }
    }

    /// The step's action exists, and its arguments fit it.
    fn step_with(
        &mut self,
        path: &str,
        id: &str,
        rs: &RawStep,
        scope: Scope<'_>,
        params: &IndexMap<String, Param>,
    ) -> Json {
        let registry = scope.registry;
        let action = registry.get(&rs.action).cloned();
        if action.is_none() {
            let known: Vec<&str> = registry.names().collect();
            self.problem(
                &format!("{path}.action"),
                Some(id),
                format!(
                    "unknown action `{}` (known: {})",
                    rs.action,
                    known.join(", ")
                ),
            );
        }
        let with = self
            .with_json(&format!("{path}.with"), Some(id), rs.with.as_ref())
            .unwrap_or_else(|| Json::Object(Default::default()));
        if let Some(action) = &action {
            self.check_args(&format!("{path}.with"), id, action.name(), &with, registry);
        }
        self.check_templates(&format!("{path}.with"), id, &with, scope, params);
        with
    }

    fn step_when(
        &mut self,
        path: &str,
        id: &str,
        when: Option<&serde_yaml::Value>,
        scope: Scope<'_>,
        params: &IndexMap<String, Param>,
    ) -> Option<String> {
        match when {
            None => None,
            Some(serde_yaml::Value::Bool(b)) => Some(b.to_string()),
            Some(serde_yaml::Value::String(s)) => {
                self.check_expression(&format!("{path}.when"), id, s, scope, params);
                Some(s.clone())
            }
            Some(_) => {
                self.problem(
                    &format!("{path}.when"),
                    Some(id),
                    "`when` must be an expression (a string) or true/false",
                );
                None
            }
        }
    }

    fn step_timeout(&mut self, path: &str, sid: Option<&str>, t: Option<&str>) -> Option<Duration> {
        let t = t?;
        match humantime::parse_duration(t) {
            Ok(d) if d > Duration::ZERO => Some(d),
            Ok(_) => {
                self.problem(
                    &format!("{path}.timeout"),
                    sid,
                    "timeout must be more than zero",
                );
                None
            }
            Err(e) => {
                self.problem(
                    &format!("{path}.timeout"),
                    sid,
                    format!("bad duration `{t}`: {e} (write e.g. `30s`, `5m`, `250ms`)"),
                );
                None
            }
        }
    }

    fn step_retry(
        &mut self,
        path: &str,
        sid: Option<&str>,
        retry: Option<RetryPolicy>,
    ) -> RetryPolicy {
        let retry = retry.unwrap_or(RetryPolicy::None);
        if matches!(
            retry,
            RetryPolicy::Fixed {
                max_attempts: 0,
                ..
            } | RetryPolicy::Exponential {
                max_attempts: 0,
                ..
            }
        ) {
            self.problem(
                &format!("{path}.retry"),
                sid,
                "max_attempts must be at least 1",
            );
        }
        retry
    }

    fn step_for_each(
        &mut self,
        path: &str,
        id: &str,
        fe: RawForEach,
        scope: Scope<'_>,
        params: &IndexMap<String, Param>,
    ) -> ForEach {
        let items = match yaml_to_json(&fe.items) {
            Ok(v) => v,
            Err(e) => {
                self.problem(&format!("{path}.for_each.items"), Some(id), e);
                Json::Array(vec![])
            }
        };
        match &items {
            Json::Array(_) => {}
            Json::String(s) if s.contains("{{") => {}
            _ => self.problem(
                &format!("{path}.for_each.items"),
                Some(id),
                "for_each.items must be a list or a `{{ expression }}` giving a list",
            ),
        }
        self.check_templates(
            &format!("{path}.for_each.items"),
            id,
            &items,
            Scope {
                has_item: false,
                ..scope
            },
            params,
        );
        let concurrency = fe.concurrency.unwrap_or(4);
        if concurrency == 0 {
            self.problem(
                &format!("{path}.for_each.concurrency"),
                Some(id),
                "concurrency must be at least 1",
            );
        }
        ForEach {
            items,
            concurrency: concurrency.max(1),
        }
    }

    /// Which earlier steps the templates read: the executor builds only those into
    /// the template data (a context of every earlier step grows with the run).
    fn step_refs(&self, earlier: &[(String, String)]) -> Option<Vec<String>> {
        if self.refs.iter().any(|r| r == "steps") {
            return None;
        }
        let mut ids: Vec<String> = self
            .refs
            .iter()
            .filter_map(|r| {
                let name = r.strip_prefix("steps.")?.split('.').next()?;
                earlier
                    .iter()
                    .find(|(id, _)| template_name(id) == name)
                    .map(|(id, _)| id.clone())
            })
            .collect();
        ids.sort();
        ids.dedup();
        Some(ids)
    }

    fn conditions(
        &mut self,
        path: &str,
        id: &str,
        raw: Vec<RawCondition>,
        scope: Scope<'_>,
        params: &IndexMap<String, Param>,
        step_action: &str,
    ) -> Vec<Condition> {
        let registry = scope.registry;
        let mut out = Vec::new();
        for (i, rc) in raw.into_iter().enumerate() {
            let cpath = format!("{path}.{i}");
            let probe_name = rc.probe.clone().unwrap_or_else(|| step_action.to_string());
            if rc.probe.is_some() && registry.get(&probe_name).is_none() {
                let known: Vec<&str> = registry.names().collect();
                self.problem(
                    &format!("{cpath}.probe"),
                    Some(id),
                    format!(
                        "unknown probe action `{probe_name}` (known: {})",
                        known.join(", ")
                    ),
                );
            }
            let with = self.with_json(&format!("{cpath}.with"), Some(id), rc.with.as_ref());
            if let Some(w) = &with {
                self.check_args(&format!("{cpath}.with"), id, &probe_name, w, registry);
                self.check_templates(&format!("{cpath}.with"), id, w, scope, params);
            }
            if let Some(site) = &rc.site {
                self.site_template(&format!("{cpath}.site"), id, site, scope, params);
            }
            let cond_scope = Scope {
                has_observation: true,
                has_site: scope.has_site || rc.site.is_some(),
                ..scope
            };
            self.check_expression(
                &format!("{cpath}.expect"),
                id,
                &rc.expect,
                cond_scope,
                params,
            );
            out.push(Condition {
                probe: rc.probe,
                site: rc.site,
                with,
                expect: rc.expect,
                message: rc.message,
            });
        }
        out
    }

    fn check_args(
        &mut self,
        path: &str,
        id: &str,
        action_name: &str,
        with: &Json,
        registry: &Registry,
    ) {
        let Some(action) = registry.get(action_name) else {
            return;
        };
        let specs = action.args();
        let Some(map) = with.as_object() else {
            return;
        };
        for (k, v) in map {
            match specs.iter().find(|s| s.name == k) {
                None => {
                    let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
                    self.problem(
                        &format!("{path}.{k}"),
                        Some(id),
                        format!(
                            "unknown argument `{k}` for action `{action_name}` (it takes: {})",
                            if known.is_empty() {
                                "no arguments".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                }
                Some(spec) => {
                    let templated = contains_template(v);
                    if !templated && !spec.kind.accepts(v) {
                        let extra = if spec.kind == ArgKind::Duration {
                            " (write e.g. `30s`, `5m`, `250ms`)"
                        } else {
                            ""
                        };
                        self.problem(
                            &format!("{path}.{k}"),
                            Some(id),
                            format!(
                                "argument `{k}` of `{action_name}` must be a {}, got {v}{extra}",
                                spec.kind.as_str()
                            ),
                        );
                    }
                }
            }
        }
        for spec in specs.iter().filter(|s| s.required) {
            if !map.contains_key(spec.name) {
                self.problem(
                    path,
                    Some(id),
                    format!(
                        "action `{action_name}` needs argument `{}` ({})",
                        spec.name, spec.help
                    ),
                );
            }
        }
    }

    /// A `site:` template: checked as any template, and it may read only what the run
    /// knows when it starts (parameters, the environment). Its sites are locked then:
    /// a site named by an earlier step's output, or by a fan-out's item, could not be,
    /// and would be acted on unlocked.
    fn site_template(
        &mut self,
        path: &str,
        id: &str,
        site: &str,
        scope: Scope<'_>,
        params: &IndexMap<String, Param>,
    ) {
        self.check_templates(path, id, &Json::String(site.to_string()), scope, params);
        let Ok(refs) = self.templates.references_in_text(site) else {
            return;
        };
        for r in refs {
            let root = r.split(['.', '[']).next().unwrap_or_default();
            if matches!(root, "steps" | "item" | "observation") {
                self.problem(
                    path,
                    Some(id),
                    format!(
                        "`site` reads `{r}`, which the run does not know when it starts: a run's sites are locked before its first step, so `site` may read only parameters and the environment (e.g. `{{{{ params.secondary }}}}`)"
                    ),
                );
            }
        }
    }

    fn check_templates(
        &mut self,
        path: &str,
        id: &str,
        value: &Json,
        scope: Scope<'_>,
        params: &IndexMap<String, Param>,
    ) {
        match value {
            Json::String(s) => match self.templates.references_in_text(s) {
                Ok(refs) => self.check_refs(path, id, &refs, scope, params),
                Err(e) => self.problem(path, Some(id), format!("template error: {e}")),
            },
            Json::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.check_templates(&format!("{path}.{i}"), id, v, scope, params);
                }
            }
            Json::Object(map) => {
                for (k, v) in map {
                    self.check_templates(&format!("{path}.{k}"), id, v, scope, params);
                }
            }
            _ => {}
        }
    }

    fn check_expression(
        &mut self,
        path: &str,
        id: &str,
        expr: &str,
        scope: Scope<'_>,
        params: &IndexMap<String, Param>,
    ) {
        match self.templates.references_in_expression(expr) {
            Ok(refs) => self.check_refs(path, id, &refs, scope, params),
            Err(e) => self.problem(path, Some(id), format!("expression error: {e}")),
        }
    }

    fn check_refs(
        &mut self,
        path: &str,
        id: &str,
        refs: &[String],
        scope: Scope<'_>,
        params: &IndexMap<String, Param>,
    ) {
        self.refs.extend(refs.iter().cloned());
        if refs
            .iter()
            .any(|r| r == "history" || r.starts_with("history."))
        {
            self.history_used = true;
        }
        for r in refs {
            if let Some(msg) = unresolved(r, scope, params) {
                self.problem(path, Some(id), msg);
            }
        }
    }
}

fn contains_template(v: &Json) -> bool {
    match v {
        Json::String(s) => s.contains("{{") || s.contains("{%"),
        Json::Array(a) => a.iter().any(contains_template),
        Json::Object(m) => m.values().any(contains_template),
        _ => false,
    }
}

/// Why reference `r` cannot resolve in `scope`, if it cannot.
fn unresolved(r: &str, scope: Scope<'_>, params: &IndexMap<String, Param>) -> Option<String> {
    let mut parts = r.split('.');
    let root = parts.next().unwrap_or_default();
    match root {
        "params" => {
            let name = parts.next()?;
            (!params.contains_key(name)).then(|| {
                let known: Vec<&str> = params.keys().map(String::as_str).collect();
                format!(
                    "unresolved reference `{r}`: no parameter `{name}` (declared: {})",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )
            })
        }
        "sites" | "run" | "history" => None,
        "site" => (!scope.has_site).then(|| format!("unresolved reference `{r}`: the step has no `site:`")),
        "item" => (!scope.has_item).then(|| format!("unresolved reference `{r}`: `item` exists only in a step with `for_each`")),
        "observation" => (!scope.has_observation)
            .then(|| format!("unresolved reference `{r}`: `observation` exists only in `require`/`verify` expectations")),
        "steps" => {
            let step = parts.next()?;
            let Some((id, action)) = scope.earlier.iter().find(|(id, _)| template_name(id) == step) else {
                return Some(format!("unresolved reference `{r}`: no step `{step}` runs before this one"));
            };
            match parts.next() {
                Some("outputs") => {
                    let name = parts.next()?;
                    let declared = scope.registry.get(action).and_then(|a| a.outputs())?;
                    (!declared.contains(&name)).then(|| {
                        format!(
                            "unresolved reference `{r}`: step `{id}` (`{action}`) has no output `{name}` (it records: {})",
                            if declared.is_empty() { "nothing".to_string() } else { declared.join(", ") }
                        )
                    })
                }
                None | Some("skipped") => None,
                Some(other) => Some(format!(
                    "unresolved reference `{r}`: a step has `outputs` and `skipped`, not `{other}`"
                )),
            }
        }
        other => Some(format!(
            "unresolved reference `{other}`: templates can use params, sites, site, steps, item, run, history{}",
            if scope.has_observation { ", observation" } else { "" }
        )),
    }
}

mod declared;
#[cfg(test)]
mod tests;
