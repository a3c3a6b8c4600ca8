//! The runbook engine: the runbook model and its loader, templating, plans, the sled
//! journal, the run state fold, the executor, resume and locks. Step actions live in
//! the `steps` crate and plug in through [`action::Action`].

pub mod action;
pub mod catalog;
pub mod chain;
pub mod condition;
pub mod decide;
pub mod depth;
pub mod digest;
pub mod env;
pub mod event;
pub mod executor;
pub mod failpoint;
pub mod guard;
pub mod history;
pub mod id;
pub mod journal;
pub mod load;
pub mod model;
pub mod params;
pub mod plan;
pub mod recorder;
pub mod redact;
pub mod report;
pub mod resume;
pub mod review;
pub mod runner;
pub mod scope;
pub mod spans;
pub mod state;
pub mod store;
pub mod suggest;
// Site locks and live snapshots belong to storage; their old paths still work.
pub use store::{live, lock};
pub mod template;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

pub use action::{Action, ArgKind, ArgSpec, Args, Outputs, Registry, Site, StepCtx, StepError};
pub use model::Effect;
