//! The step contract: what every action (Infinispan, Keycloak, AWS, HTTP, ...) provides
//! to the engine, and the registry the loader validates action names against.
//!
//! An action never decides control flow: it describes, probes, prepares and applies.
//! The executor decides when, how often, and what gets journaled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value as Json;

use crate::env::Environment;
use crate::model::Effect;
pub use crate::model::{Args, Outputs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    String,
    Int,
    Bool,
    /// A humantime string such as `30s`.
    Duration,
    List,
    Object,
    Any,
}

impl ArgKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArgKind::String => "string",
            ArgKind::Int => "integer",
            ArgKind::Bool => "boolean",
            ArgKind::Duration => "duration",
            ArgKind::List => "list",
            ArgKind::Object => "mapping",
            ArgKind::Any => "any value",
        }
    }

    /// Whether a concrete (already rendered) value has this kind.
    pub fn accepts(self, value: &Json) -> bool {
        match self {
            ArgKind::String => value.is_string(),
            ArgKind::Int => value.is_i64() || value.is_u64(),
            ArgKind::Bool => value.is_boolean(),
            ArgKind::Duration => value
                .as_str()
                .is_some_and(|s| humantime::parse_duration(s).is_ok()),
            ArgKind::List => value.is_array(),
            ArgKind::Object => value.is_object(),
            ArgKind::Any => true,
        }
    }
}

/// One argument an action accepts under `with:`.
#[derive(Debug, Clone, Copy)]
pub struct ArgSpec {
    pub name: &'static str,
    pub kind: ArgKind,
    pub required: bool,
    pub help: &'static str,
}

impl ArgSpec {
    pub const fn required(name: &'static str, kind: ArgKind, help: &'static str) -> ArgSpec {
        ArgSpec {
            name,
            kind,
            required: true,
            help,
        }
    }
    pub const fn optional(name: &'static str, kind: ArgKind, help: &'static str) -> ArgSpec {
        ArgSpec {
            name,
            kind,
            required: false,
            help,
        }
    }
}

/// The site a step acts on: its name and its section of the environment file.
#[derive(Debug, Clone)]
pub struct Site {
    pub name: String,
    pub config: Json,
}

/// What an action sees of the run while it works.
#[derive(Debug, Clone)]
pub struct StepCtx {
    pub run_id: String,
    pub step_id: String,
    pub item: Option<Json>,
    pub site: Option<Site>,
    pub env: Arc<Environment>,
    /// The time budget of this attempt (apply and verify together).
    pub timeout: Duration,
    /// Ctrl-C: long waits inside an action should end early when it is set.
    pub interrupt: crate::report::Interrupt,
    /// Where an action journals a fact in the middle of its effect (`record_progress`).
    pub progress: ProgressSink,
}

/// One fact to journal, and where its journaling is confirmed.
pub type ProgressItem = (Outputs, tokio::sync::oneshot::Sender<Result<(), String>>);

/// The executor's end of [`StepCtx::record_progress`]: each fact with the channel its
/// journaling is confirmed on. Empty outside a run (a plan, a probe).
#[derive(Debug, Clone, Default)]
pub struct ProgressSink(pub Option<tokio::sync::mpsc::UnboundedSender<ProgressItem>>);

impl StepCtx {
    /// Journal `outputs` now, in the middle of the effect, and return once they are
    /// durable: a crash after this keeps them, and every later attempt of the step
    /// finds them in what was prepared. Outside a run there is no journal: nothing is
    /// kept, and that is said by the error.
    ///
    /// # Errors
    /// No journal to keep them (a plan, a probe), or the journal could not write them.
    pub async fn record_progress(&self, outputs: Outputs) -> Result<(), StepError> {
        let Some(tx) = &self.progress.0 else {
            return Err(StepError::permanent(
                "this step runs outside a run: nothing can be journaled in the middle of it",
            ));
        };
        let (ack, done) = tokio::sync::oneshot::channel();
        tx.send((outputs, ack))
            .map_err(|_| StepError::permanent("the run's journal is gone"))?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StepError::permanent(format!("cannot journal: {e}"))),
            Err(_) => Err(StepError::permanent("the run's journal is gone")),
        }
    }

    /// `step` or `step[item]`, for messages.
    pub fn label(&self) -> String {
        match &self.item {
            Some(item) => format!("{}[{}]", self.step_id, crate::model::item_key(item)),
            None => self.step_id.clone(),
        }
    }

    /// The site's name, or an empty string when the step has none (for messages).
    pub fn site_name(&self) -> String {
        self.site
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default()
    }

    /// The site, or an error naming the step when the runbook gave none.
    ///
    /// # Errors
    /// When the step has no `site:`.
    pub fn require_site(&self) -> Result<&Site, StepError> {
        self.site
            .as_ref()
            .ok_or_else(|| StepError::permanent(format!("step `{}` needs a `site:`", self.step_id)))
    }
}

/// Why an action could not do its part. The message carries the site, the call and
/// the server's answer; the executor adds the step.
/// What kind of failure a step met, with what it carries from its source: whether
/// trying again may help is decided from it ([`ErrorKind::retryable`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ErrorKind {
    /// A server answered with this HTTP status.
    Http { status: u16 },
    /// An AWS API error, by its code.
    Aws { code: String },
    /// The Kubernetes API refused the call (its status's code and reason).
    Kubernetes { code: u16, reason: String },
    /// No answer within the time allowed.
    Timeout,
    /// The connection could not be made, or was lost.
    Transport,
    /// The environment file, a credential or an argument is wrong: nothing changes by
    /// trying again until a person fixes it.
    Configuration,
    /// A state only a person should move the system out of.
    Operator,
    /// Anything else that will not change by trying again.
    Other,
}

/// AWS error codes that trying again cannot fix, whatever the service: a refused
/// identity. Each service's own (a missing resource, a refused request) are registered
/// by the step library's vendors ([`register_permanent_codes`]).
const AWS_PERMANENT: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
];

static REGISTERED_PERMANENT: std::sync::RwLock<Vec<&'static str>> =
    std::sync::RwLock::new(Vec::new());

/// Add AWS error codes that trying again cannot fix (a vendor's missing resource or
/// refused request): the retry decision reads them with the built-in ones.
pub fn register_permanent_codes(codes: &[&'static str]) {
    let mut r = REGISTERED_PERMANENT
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for c in codes {
        if !r.contains(c) {
            r.push(c);
        }
    }
}

fn permanent_aws(code: &str) -> bool {
    AWS_PERMANENT.contains(&code)
        || REGISTERED_PERMANENT
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&code)
}

impl ErrorKind {
    /// Whether trying again may help: 5xx, 429 and 408 answers, AWS codes other than
    /// the ones that name a missing resource or a refusal, Kubernetes answers other
    /// than 401/403/404/422, timeouts and lost connections.
    pub fn retryable(&self) -> bool {
        match self {
            ErrorKind::Http { status } => *status >= 500 || *status == 429 || *status == 408,
            ErrorKind::Aws { code } => !permanent_aws(code),
            ErrorKind::Kubernetes { code, .. } => !matches!(code, 401 | 403 | 404 | 422),
            ErrorKind::Timeout | ErrorKind::Transport => true,
            ErrorKind::Configuration | ErrorKind::Operator | ErrorKind::Other => false,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    pub message: String,
    /// What failed, from its source.
    pub kind: ErrorKind,
    /// Whether trying again may help (5xx, timeouts) as opposed to bad arguments or a
    /// 4xx answer that will not change: the kind's.
    pub retryable: bool,
    /// The system is in a state only a person should move it out of (e.g. a push-state
    /// an operator cancelled): the run halts for the operator instead of failing.
    pub needs_operator: bool,
    /// The request may have reached the server and its answer was lost (no answer in
    /// time, the connection dropped after the request was sent): whether it took
    /// effect is unknown. A destructive call in this state is in doubt, never a
    /// failure to send again; an idempotent one checks its postcondition first.
    pub outcome_unknown: bool,
}

impl StepError {
    /// An error of `kind`: retried if the kind says trying again may help.
    pub fn of(kind: ErrorKind, message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            retryable: kind.retryable(),
            needs_operator: kind == ErrorKind::Operator,
            outcome_unknown: false,
            kind,
        }
    }
    /// A server answered `status`.
    pub fn http(status: u16, message: impl Into<String>) -> StepError {
        StepError::of(ErrorKind::Http { status }, message)
    }
    /// An AWS API error with its code.
    pub fn aws(code: &str, message: impl Into<String>) -> StepError {
        StepError::of(
            ErrorKind::Aws {
                code: code.to_string(),
            },
            message,
        )
    }
    /// The Kubernetes API refused the call.
    pub fn kubernetes(code: u16, reason: &str, message: impl Into<String>) -> StepError {
        StepError::of(
            ErrorKind::Kubernetes {
                code,
                reason: reason.to_string(),
            },
            message,
        )
    }
    /// The environment file, a credential or an argument is wrong.
    pub fn configuration(message: impl Into<String>) -> StepError {
        StepError::of(ErrorKind::Configuration, message)
    }
    /// The connection could not be made or was lost before the request was sent
    /// (trying again is safe).
    pub fn transient(message: impl Into<String>) -> StepError {
        StepError::of(ErrorKind::Transport, message)
    }
    /// The request may have been applied: its answer never came back.
    pub fn outcome_unknown(message: impl Into<String>) -> StepError {
        StepError {
            outcome_unknown: true,
            ..StepError::of(ErrorKind::Timeout, message)
        }
    }
    /// Anything else that will not change by trying again.
    pub fn permanent(message: impl Into<String>) -> StepError {
        StepError::of(ErrorKind::Other, message)
    }
    /// A state an operator must decide about: the run halts (never retried).
    pub fn needs_operator(message: impl Into<String>) -> StepError {
        StepError::of(ErrorKind::Operator, message)
    }
}

/// What an effect does to the deployment, for the operator's confirmation: the kinds
/// a run asks about before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImpactKind {
    MovesTraffic,
    MovesWriter,
    RemovesCapacity,
    RemovesData,
}

impl ImpactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImpactKind::MovesTraffic => "moves traffic",
            ImpactKind::MovesWriter => "moves the database writer",
            ImpactKind::RemovesCapacity => "removes capacity",
            ImpactKind::RemovesData => "removes data",
        }
    }
}

/// The contract every step action fulfils.
#[async_trait]
pub trait Action: Send + Sync {
    /// The name runbooks use, e.g. `infinispan.take-offline`.
    fn name(&self) -> &'static str;
    /// One line for `runbook show` and the docs.
    fn summary(&self) -> &'static str;
    /// The arguments accepted under `with:`; anything else is a load-time error.
    fn args(&self) -> &'static [ArgSpec];
    /// The outputs it records; `None` when they depend on the call (any name allowed).
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&[])
    }
    /// The effect class for these arguments.
    fn effect(&self, args: &Args) -> Effect;
    /// The time budget of one attempt when the runbook gives no `timeout:`.
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(300)
    }
    /// The longest pause between two polls of the postcondition.
    fn poll_interval(&self, _args: &Args) -> Duration {
        Duration::from_secs(2)
    }
    /// Exactly what `apply` would call, one line per call, for the plan.
    fn describe(&self, ctx: &StepCtx, args: &Args) -> Vec<String>;
    /// What the effect does to the deployment, in plain words (`fails Aurora over to
    /// keycloak-aurora-instance-2, about 30 s without a writer`), for the confirmation
    /// a run asks before it starts; `None` for effects that move or remove nothing.
    fn impact(&self, _ctx: &StepCtx, _args: &Args) -> Option<(ImpactKind, String)> {
        None
    }
    /// For a manual gate: the instructions a person must confirm before it passes.
    fn gate(&self, _args: &Args) -> Option<String> {
        None
    }
    /// Read current state. Never writes.
    ///
    /// # Errors
    /// When the state cannot be read.
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError>;
    /// Read what must be remembered before the effect (e.g. the instance count before
    /// a scale-down). Journaled with the intent, so a resumed run reuses it and never
    /// reads it again after the effect changed it.
    ///
    /// # Errors
    /// When the state cannot be read.
    async fn prepare(&self, _ctx: &StepCtx, _args: &Args) -> Result<Outputs, StepError> {
        Ok(Outputs::new())
    }
    /// The effect. Returns outputs to journal (merged over the prepared ones).
    ///
    /// # Errors
    /// When the call fails; `retryable` says whether the retry policy applies.
    async fn apply(
        &self,
        ctx: &StepCtx,
        args: &Args,
        prepared: &Outputs,
    ) -> Result<Outputs, StepError>;
    /// The action's own postcondition, as a person reads it (`status of site-b's backup
    /// to site-a is offline`), or `None` when it has none beyond the runbook's `verify:`.
    fn postcondition(&self, _ctx: &StepCtx, _args: &Args) -> Option<String> {
        None
    }
    /// Whether the action's own postcondition holds, judged on a probe result. Called
    /// only when [`Action::postcondition`] is `Some`.
    fn satisfied(&self, _args: &Args, _observation: &Json) -> bool {
        true
    }
    /// Whether the effect is issued again on each poll round while the postcondition
    /// does not hold (within the step's timeout): for effects a server applies per node
    /// and may apply partly, like Infinispan's take-offline. Only for idempotent
    /// actions.
    fn reissue(&self) -> bool {
        false
    }
    /// The safety invariants this action carries, whatever runbook holds it (a pack's,
    /// a user's file): names the step library turns into built-in guards before every
    /// step that uses the action, shown in the plan, judged live right before its
    /// effect, journaled, overridden only with `force` and a reason.
    fn invariants(&self) -> &'static [&'static str] {
        &[]
    }
    /// What in `observation` keeps the action's own postcondition from holding, as a
    /// person reads it (`site-b-infinispan-2 is still online for sessions, work`), for
    /// observations too large to quote. `None`: the observation is quoted instead.
    fn explain(&self, _args: &Args, _observation: &Json) -> Option<String> {
        None
    }
}

/// The actions a runbook may name.
#[derive(Default, Clone)]
pub struct Registry {
    actions: BTreeMap<&'static str, Arc<dyn Action>>,
    /// The environment file's schema, from the step library that registered the
    /// actions (each family owns its part); `None`: any section is accepted.
    env_schema: Option<Arc<dyn crate::env::EnvSchema>>,
    /// Each procedure pack's reading of the journal (`history` in templates).
    history: Vec<Arc<dyn crate::history::HistoryFacts>>,
    /// The guards every runbook gets from the step library (site identity, the
    /// preflight), which no runbook author can forget.
    builtin_guards: Option<Arc<dyn BuiltinGuards>>,
    /// The step library's reading of every run (what its actions did to the sites,
    /// whatever runbook held them), given to templates as `history.deployment`.
    ledger: Option<Arc<dyn crate::history::HistoryFacts>>,
}

/// Guards the step library adds to every runbook, from what its steps and guards
/// touch: built in, shown by the plan, checked before the first effect and journaled
/// like the runbook's own. Their ids start with `builtin-`.
pub trait BuiltinGuards: Send + Sync {
    fn guards(
        &self,
        steps: &[crate::model::Step],
        guards: &[crate::model::Guard],
        params: &indexmap::IndexMap<String, crate::model::Param>,
    ) -> Vec<crate::model::Guard>;

    /// Built-in guards placed after the runbook's own (which say the same thing in the
    /// procedure's words, so they refuse first): the actions' invariants.
    fn after_declared(
        &self,
        _steps: &[crate::model::Step],
        _params: &indexmap::IndexMap<String, crate::model::Param>,
    ) -> Vec<crate::model::Guard> {
        Vec::new()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.actions.keys()).finish()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    pub fn register(&mut self, action: impl Action + 'static) -> &mut Registry {
        self.actions.insert(action.name(), Arc::new(action));
        self
    }

    /// Register an action already shared (a vendor's list of its actions).
    pub fn register_arc(&mut self, action: Arc<dyn Action>) -> &mut Registry {
        self.actions.insert(action.name(), action);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Action>> {
        self.actions.get(name)
    }

    /// Set the environment file's schema (the step library does, with its actions).
    pub fn set_env_schema(&mut self, schema: Arc<dyn crate::env::EnvSchema>) {
        self.env_schema = Some(schema);
    }

    /// The schema environment files are checked against.
    pub fn env_schema(&self) -> &dyn crate::env::EnvSchema {
        match &self.env_schema {
            Some(s) => s.as_ref(),
            None => &crate::env::Untyped,
        }
    }

    /// Add a procedure pack's reading of the journal (one per pack).
    pub fn set_history(&mut self, facts: Arc<dyn crate::history::HistoryFacts>) {
        self.history.retain(|h| h.pack() != facts.pack());
        self.history.push(facts);
    }

    /// The reading of the journal that runbooks of `pack` get as `history`: that
    /// pack's; for a runbook of no pack (a file), the pack of unmarked runs.
    pub fn history(&self, pack: Option<&str>) -> &dyn crate::history::HistoryFacts {
        self.history
            .iter()
            .find(|h| match pack {
                Some(p) => h.pack() == p,
                None => h.reads_unmarked(),
            })
            .map_or(
                &crate::history::NoFacts as &dyn crate::history::HistoryFacts,
                |h| h.as_ref(),
            )
    }

    /// Set the reading of every run that templates get as `history.deployment`.
    pub fn set_ledger(&mut self, ledger: Arc<dyn crate::history::HistoryFacts>) {
        self.ledger = Some(ledger);
    }

    /// The reading of every run (`history.deployment`), when the step library set one.
    pub fn ledger(&self) -> Option<&dyn crate::history::HistoryFacts> {
        self.ledger.as_deref()
    }

    /// Set the guards every runbook gets.
    pub fn set_builtin_guards(&mut self, g: Arc<dyn BuiltinGuards>) {
        self.builtin_guards = Some(g);
    }

    /// The built-in guards for a runbook's steps, guards and parameters.
    pub fn builtin_guards(
        &self,
        steps: &[crate::model::Step],
        guards: &[crate::model::Guard],
        params: &indexmap::IndexMap<String, crate::model::Param>,
    ) -> Vec<crate::model::Guard> {
        self.builtin_guards
            .as_ref()
            .map(|b| b.guards(steps, guards, params))
            .unwrap_or_default()
    }

    /// The built-in guards that follow the runbook's own.
    pub fn builtin_guards_after(
        &self,
        steps: &[crate::model::Step],
        params: &indexmap::IndexMap<String, crate::model::Param>,
    ) -> Vec<crate::model::Guard> {
        self.builtin_guards
            .as_ref()
            .map(|b| b.after_declared(steps, params))
            .unwrap_or_default()
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.actions.keys().copied()
    }

    /// The action of each step of `runbook`, in step order: resolved once, so that
    /// nothing looks an action up by name while a run is driven.
    ///
    /// # Errors
    /// A step names an action this registry does not have (the loader refuses such a
    /// runbook, so only a runbook built by hand gets here).
    pub fn bind(
        &self,
        runbook: &crate::model::Runbook,
    ) -> Result<Vec<Arc<dyn Action>>, UnknownAction> {
        runbook
            .steps
            .iter()
            .map(|s| {
                self.get(&s.action).cloned().ok_or_else(|| UnknownAction {
                    step: s.id.clone(),
                    action: s.action.clone(),
                })
            })
            .collect()
    }
}

/// A step names an action the registry does not have.
#[derive(Debug, Clone, thiserror::Error)]
#[error("step `{step}`: unknown action `{action}`")]
pub struct UnknownAction {
    pub step: String,
    pub action: String,
}

#[cfg(test)]
mod error_kind_tests {
    use super::{ErrorKind, StepError};

    #[test]
    fn whether_a_step_error_is_retried_is_decided_by_its_kind() {
        for (e, retried) in [
            (StepError::http(503, "x"), true),
            (StepError::http(429, "x"), true),
            (StepError::http(408, "x"), true),
            (StepError::http(401, "x"), false),
            (StepError::http(404, "x"), false),
            (StepError::aws("Throttling", "x"), true),
            (StepError::aws("InvalidDBClusterStateFault", "x"), true),
            (StepError::aws("AccessDenied", "x"), false),
            (StepError::kubernetes(409, "Conflict", "x"), true),
            (StepError::kubernetes(404, "NotFound", "x"), false),
            (StepError::configuration("x"), false),
            (StepError::transient("x"), true),
            (StepError::permanent("x"), false),
        ] {
            assert_eq!(e.retryable, retried, "{:?}", e.kind);
            assert_eq!(e.retryable, e.kind.retryable());
        }
        assert!(StepError::aws("TestOnlyNotFound", "x").retryable);
        super::register_permanent_codes(&["TestOnlyNotFound"]);
        assert!(!StepError::aws("TestOnlyNotFound", "x").retryable);
        let lost = StepError::outcome_unknown("no answer");
        assert!(lost.outcome_unknown && lost.retryable && lost.kind == ErrorKind::Timeout);
        let person = StepError::needs_operator("cancelled");
        assert!(person.needs_operator && !person.retryable && person.kind == ErrorKind::Operator);
    }
}
