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
    /// A database vendor: each replication link from the writer to a standby, with
    /// how far the standby replays behind (`None`: it cannot tell).
    async fn links(&self, _ctx: &StepCtx) -> Option<Vec<Link>> {
        None
    }
}

/// One replication link: what losing the writer's site would cost now.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Link {
    /// The writer's site.
    pub from: String,
    /// The standby's site.
    pub to: String,
    /// WAL bytes written at `from` and not yet replayed at `to` (`None`: unknown).
    pub lag_bytes: Option<u64>,
    /// How long ago the last transaction `to` replayed was committed, while it is
    /// behind (0 when it has replayed everything; `None`: unknown).
    pub lag_seconds: Option<f64>,
    /// Every commit at `from` waits for `to` (synchronous across the sites, as the
    /// multi-site guides require): nothing is lost with `from` (`None`: unknown).
    pub synchronous: Option<bool>,
}

impl Link {
    /// A link between a writer and a standby read from the databases themselves:
    /// their WAL positions in bytes, and the standby's `pg_last_xact_replay_timestamp()`
    /// as PostgreSQL prints it.
    pub fn of(
        from: &str,
        to: &str,
        writer_lsn: u64,
        standby_lsn: u64,
        replayed_at: Option<&str>,
    ) -> Link {
        let lag = writer_lsn.saturating_sub(standby_lsn);
        Link {
            from: from.to_string(),
            to: to.to_string(),
            lag_bytes: Some(lag),
            lag_seconds: if lag == 0 {
                Some(0.0)
            } else {
                replayed_at.and_then(seconds_since)
            },
            synchronous: None,
        }
    }
}

/// Seconds since a PostgreSQL `timestamptz` printed in UTC (`2026-12-07
/// 20:31:02.123456+00`, a session in UTC as the servers here run); `None` for another
/// zone or a text that does not read.
pub fn seconds_since(text: &str) -> Option<f64> {
    let utc = text.trim().strip_suffix("+00")?;
    let at = humantime::parse_rfc3339_weak(utc).ok()?;
    Some(
        std::time::SystemTime::now()
            .duration_since(at)
            .map_or(0.0, |d| d.as_secs_f64()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_says_the_bytes_and_the_time_behind_and_nothing_it_cannot_read() {
        let caught_up = Link::of("site-a", "site-b", 100, 100, Some("2020-01-01 00:00:00+00"));
        assert_eq!(
            (caught_up.lag_bytes, caught_up.lag_seconds),
            (Some(0), Some(0.0))
        );
        let behind = Link::of(
            "site-a",
            "site-b",
            300,
            100,
            Some("2020-01-01 00:00:00.5+00"),
        );
        assert_eq!(behind.lag_bytes, Some(200));
        assert!(behind.lag_seconds.unwrap() > 3600.0 * 24.0 * 365.0);
        let elsewhere = Link::of("a", "b", 300, 100, Some("2020-01-01 00:00:00+02"));
        assert_eq!(elsewhere.lag_seconds, None);
        assert_eq!(seconds_since("yesterday"), None);
    }
}
