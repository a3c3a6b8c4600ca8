//! What a runbook declares before its steps: its parameters and its guards, checked
//! as the loader checks everything (every problem with its place, all at once).

#[allow(unused_imports)]
use super::*;

impl Validator<'_> {
    pub(super) fn param(&mut self, path: &str, name: String, p: RawParam) -> Option<Param> {
        if !valid_id(&name) || name.contains('-') {
            self.problem(
                path,
                None,
                format!("parameter name `{name}` must be letters, digits and `_`"),
            );
        }
        let mut ok = true;
        let default = match p.default.as_ref().map(yaml_to_json) {
            Some(Ok(v)) => {
                if !param_accepts(p.kind, &v) {
                    self.problem(
                        &format!("{path}.default"),
                        None,
                        format!(
                            "default of parameter `{name}` is {v}, not of type {}",
                            p.kind.as_str()
                        ),
                    );
                    ok = false;
                }
                Some(v)
            }
            Some(Err(e)) => {
                self.problem(&format!("{path}.default"), None, e);
                None
            }
            None => None,
        };
        if let Some(f) = &p.from_deployment {
            if !crate::model::FROM_DEPLOYMENT.contains(&f.as_str()) || p.kind != ParamType::String {
                self.problem(
                    &format!("{path}.from_deployment"),
                    None,
                    format!(
                        "parameter `{name}`: from_deployment `{f}` must be one of {} on a string parameter",
                        crate::model::FROM_DEPLOYMENT.join(", ")
                    ),
                );
            }
        }
        if p.secret && p.from_run.is_some() {
            self.problem(
                &format!("{path}.from_run"),
                None,
                format!("secret parameter `{name}` cannot come from a recorded output"),
            );
        }
        if p.secret && default.is_some() {
            self.problem(
                &format!("{path}.default"),
                None,
                format!("secret parameter `{name}` cannot have a default: give it at run time"),
            );
        }
        let mut allowed = Vec::new();
        for (i, a) in p.allowed.iter().enumerate() {
            match yaml_to_json(a) {
                Ok(v) if param_accepts(p.kind, &v) => allowed.push(v),
                Ok(v) => self.problem(
                    &format!("{path}.allowed.{i}"),
                    None,
                    format!(
                        "allowed value {v} of parameter `{name}` is not of type {}",
                        p.kind.as_str()
                    ),
                ),
                Err(e) => self.problem(&format!("{path}.allowed.{i}"), None, e),
            }
        }
        if let Some(d) = &default {
            if ok && !allowed.is_empty() && !allowed.contains(d) {
                self.problem(
                    &format!("{path}.default"),
                    None,
                    format!("default {d} of parameter `{name}` is not one of the allowed values"),
                );
            }
        }
        Some(Param {
            name,
            kind: p.kind,
            default,
            description: p.description,
            allowed,
            secret: p.secret,
            from_run: p.from_run,
            from_deployment: p.from_deployment,
            differs_from: p.differs_from,
            non_empty: p.non_empty,
            unique: p.unique,
        })
    }

    pub(super) fn guards(
        &mut self,
        raw: Vec<RawGuard>,
        params: &IndexMap<String, Param>,
        steps: &[Step],
        registry: &Registry,
    ) -> Vec<Guard> {
        if raw.is_empty() {
            return Vec::new();
        }
        self.guard_override(params);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, g) in raw.into_iter().enumerate() {
            let path = format!("guards.{i}");
            if !seen.insert(g.id.clone()) {
                self.problem(
                    &format!("{path}.id"),
                    None,
                    format!("duplicate guard id `{}`", g.id),
                );
            }
            out.push(self.guard(&path, g, params, steps, registry));
        }
        out
    }

    /// A runbook with guards declares the override, `force` defaulting to false.
    pub(super) fn guard_override(&mut self, params: &IndexMap<String, Param>) {
        let typed = |name: &str, kind: ParamType| params.get(name).is_some_and(|p| p.kind == kind);
        if !typed("force", ParamType::Bool) || !typed("force_reason", ParamType::String) {
            self.problem(
                "guards",
                None,
                "a runbook with guards declares the override: `force` (bool, default false) and `force_reason` (string) parameters",
            );
        }
        if params
            .get("force")
            .and_then(|p| p.default.as_ref())
            .is_some_and(|d| d != &Json::Bool(false))
        {
            self.problem(
                "params.force.default",
                None,
                "`force` must default to false: overriding a guard is never the default",
            );
        }
    }

    pub(super) fn guard(
        &mut self,
        path: &str,
        g: RawGuard,
        params: &IndexMap<String, Param>,
        steps: &[Step],
        registry: &Registry,
    ) -> Guard {
        let line = self.spans.find(path).line;
        let label = format!("guard {}", g.id);
        if !valid_id(&g.id) {
            self.problem(&format!("{path}.id"), None, format!("guard id `{}` must start with a letter and use only letters, digits, `-` and `_`", g.id));
        }
        let scope = Scope {
            has_item: false,
            has_site: false,
            has_observation: false,
            earlier: &[],
            registry,
        };
        let with = self
            .with_json(&format!("{path}.with"), None, g.with.as_ref())
            .unwrap_or_else(|| Json::Object(Default::default()));
        self.guard_probe(path, &g, &with, registry);
        self.check_templates(&format!("{path}.with"), &label, &with, scope, params);
        if let Some(site) = &g.site {
            let site = Json::String(site.clone());
            self.check_templates(&format!("{path}.site"), &label, &site, scope, params);
        }
        let observed = Scope {
            has_observation: g.probe.is_some(),
            ..scope
        };
        self.check_expression(
            &format!("{path}.expect"),
            &label,
            &g.expect,
            observed,
            params,
        );
        if let Some(w) = &g.when {
            self.check_expression(&format!("{path}.when"), &label, w, scope, params);
        }
        if let Some(r) = &g.refusal {
            let r = Json::String(r.clone());
            self.check_templates(&format!("{path}.refusal"), &label, &r, observed, params);
        }
        for (j, b) in g.before.iter().enumerate() {
            if !steps.iter().any(|s| &s.id == b) {
                let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
                self.problem(&format!("{path}.before.{j}"), None, format!("guard `{}` names step `{b}` in `before`, which is not a step of this runbook (steps: {})", g.id, ids.join(", ")));
            }
        }
        Guard {
            title: g.title.unwrap_or_else(|| g.id.clone()),
            id: g.id,
            probe: g.probe,
            site: g.site,
            with,
            expect: g.expect,
            when: g.when,
            refusal: g.refusal,
            before: g.before,
            unchecked: g.unchecked,
            deferred: None,
            line,
        }
    }

    /// A guard's probe exists and only reads; `site`/`with` need a probe.
    pub(super) fn guard_probe(
        &mut self,
        path: &str,
        g: &RawGuard,
        with: &Json,
        registry: &Registry,
    ) {
        let label = format!("guard {}", g.id);
        let Some(probe) = &g.probe else {
            if g.site.is_some() || g.with.is_some() {
                self.problem(
                    path,
                    None,
                    format!("guard `{}` has `site`/`with` but no `probe`", g.id),
                );
            }
            return;
        };
        let Some(action) = registry.get(probe) else {
            let known: Vec<&str> = registry.names().collect();
            self.problem(
                &format!("{path}.probe"),
                None,
                format!(
                    "unknown probe action `{probe}` (known: {})",
                    known.join(", ")
                ),
            );
            return;
        };
        if let Some(m) = with.as_object() {
            if !contains_template(with) && action.effect(m) != crate::model::Effect::ReadOnly {
                self.problem(&format!("{path}.probe"), None, format!("guard `{}` probes with `{probe}`, which is not read-only: a guard only reads", g.id));
            }
        }
        self.check_args(&format!("{path}.with"), &label, probe, with, registry);
    }
}
