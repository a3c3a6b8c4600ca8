//! What a vendor says about itself ([`Vendor`]); the rows of this build's vendors are
//! in `vendors.rs`. (Apart, so that a vendor's folder names the trait without
//! reaching the list that names it.)

use std::sync::Arc;

use async_trait::async_trait;
use engine::model::{Guard, Step};
use engine::{Action, StepCtx};

use crate::config::VendorSection;
use crate::identity::Proof;

/// Everything a vendor says about itself.
#[async_trait]
pub trait Vendor: VendorSection {
    /// One line for the reference: what it is and what it drives.
    fn summary(&self) -> &'static str;
    /// Its actions, as the engine registers them.
    fn actions(&self) -> Vec<Arc<dyn Action>>;
    /// The roles it plays, each with its action for it.
    fn plays(&self) -> Vec<(&'static str, Arc<dyn Action>)>;
    /// Whether `action` talks to this vendor at its step's site, so that the identity
    /// guard proves the vendor's endpoint there: its own actions, by their family.
    fn touches(&self, action: &str) -> bool {
        action
            .split_once('.')
            .is_some_and(|(family, _)| family == self.vendor())
    }
    /// What its identity proof asks, as the plan shows it.
    fn proof_plan(&self, site: &str) -> String;
    /// Which site its endpoint at `site` is.
    async fn prove(&self, ctx: &StepCtx, site: &str) -> Proof;
    /// Its API's error codes that trying again cannot fix (a missing resource, a
    /// refused request).
    fn permanent_codes(&self) -> &'static [&'static str] {
        &[]
    }
    /// Guards it adds before the steps that use it (built in, shown in the plan).
    fn guards(&self, _steps: &[Step]) -> Vec<Guard> {
        Vec::new()
    }
    /// A database vendor: the sites whose database runs as a standby now, with how it
    /// was read (`None`: it cannot tell).
    async fn standbys(&self, _ctx: &StepCtx) -> Option<(Vec<String>, String)> {
        None
    }
    /// A database vendor: the sites whose database answers writable now, read from the
    /// databases themselves, with how it was read (`None`: it cannot tell).
    async fn writers(&self, _ctx: &StepCtx) -> Option<(Vec<String>, String)> {
        None
    }
}
