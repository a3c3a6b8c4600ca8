//! The Keycloak 24 pack's verdict: a pure function of what `observe` read, naming the
//! procedure of the guide that fixes the state (failover, recover-passive-site,
//! switchback), or why nothing is recommended. Tested on its own.

use std::collections::BTreeMap;

use steps::check::{is_configuration, Health, Invocation, Verdict};

use super::observe::{Observations, SiteView};

/// The entries of every cache, or `None` when any count (or all) could not be read:
/// a count not read is never 0.
fn sum(entries: &BTreeMap<String, Option<u64>>) -> Option<u64> {
    if entries.is_empty() {
        return None;
    }
    entries.values().copied().sum()
}
fn differing(a: &SiteView, b: &SiteView) -> Vec<String> {
    a.entries
        .iter()
        .filter(|(c, n)| {
            n.is_some()
                && b.entries.get(*c).copied().flatten().is_some()
                && b.entries.get(*c) != Some(n)
        })
        .map(|(c, n)| {
            format!(
                "{c}: {} vs {}",
                n.unwrap_or(0),
                b.entries.get(c).copied().flatten().unwrap_or(0)
            )
        })
        .collect()
}

/// The verdict for a set of observations.
pub fn verdict(o: &Observations, down_path: &str) -> Verdict {
    let (p, s) = (&o.primary, &o.secondary);
    // Two writable primaries come before everything: every write may be lost.
    if let Some(d) = &o.pgo {
        let db = steps::pgo::diagnosis(d);
        if db.reason.starts_with("TWO WRITABLE PRIMARIES") {
            return db;
        }
        // The database decides the next step: a former primary that is no standby is
        // recreated before any switchback or resync could bring traffic back to it.
        if db
            .runbook
            .as_ref()
            .is_some_and(|i| i.runbook == "pgo/recreate-standby")
        {
            return Verdict {
                reason: format!("the database first: {}", db.reason),
                ..db
            };
        }
    }
    if let Some(v) = misconfigured(p, s) {
        return v;
    }
    let primary_down = p.replication.is_err()
        || matches!(p.keycloak_instances, Ok(0) | Err(_)) && p.lb_check != Some(200);
    let secondary_down = s.replication.is_err() || s.lb_check.is_some_and(|c| c != 200);
    if primary_down && secondary_down {
        return neither_answers(p, s);
    }
    let notes = context_notes(o);
    if primary_down {
        return primary_is_down(p, s, down_path, notes);
    }
    let serving = o.serving.clone().unwrap_or_else(|| p.name.clone());
    if serving == s.name {
        return secondary_serves(p, s, notes);
    }
    primary_serves(p, s, notes)
}

fn degraded(runbook: Option<Invocation>, reason: String, notes: Vec<String>) -> Verdict {
    Verdict {
        health: Health::Degraded,
        runbook,
        reason,
        notes,
    }
}

/// The servers answered, and refused: the environment file or its credentials.
fn misconfigured(p: &SiteView, s: &SiteView) -> Option<Verdict> {
    let config: Vec<String> = [p, s]
        .iter()
        .filter_map(|v| match &v.replication {
            Err(e) if is_configuration(e) => Some(format!("{}: {e}", v.name)),
            _ => None,
        })
        .collect();
    (!config.is_empty()).then(|| Verdict {
        health: Health::Misconfigured,
        runbook: None,
        reason: format!(
            "the environment file or its credentials are wrong (the servers answered, and refused): {}",
            config.join("; ")
        ),
        notes: vec![],
    })
}

fn neither_answers(p: &SiteView, s: &SiteView) -> Verdict {
    Verdict {
        health: Health::Unreachable,
        runbook: None,
        reason: format!(
            "neither site answers: {} ({}), {} ({})",
            p.name,
            p.replication
                .clone()
                .err()
                .unwrap_or_else(|| "Keycloak has no ready instance".into()),
            s.name,
            s.replication
                .clone()
                .err()
                .unwrap_or_else(|| "lb-check does not answer 200".into())
        ),
        notes: vec![],
    }
}

/// What is worth saying whatever the verdict: serving unknown, a cross-site view not
/// formed, the serving site's Keycloak CR not Ready, the Aurora writer elsewhere.
fn context_notes(o: &Observations) -> Vec<String> {
    let (p, s) = (&o.primary, &o.secondary);
    let mut notes = Vec::new();
    if o.serving.is_none() {
        notes.push(format!(
            "which site serves could not be read: {}",
            o.serving_how
        ));
    }
    for v in [p, s] {
        if let Some((false, why)) = &v.cross_site_view {
            notes.push(format!(
                "{why}: the sites do not see each other; a resync (recover-passive-site, switchback) refuses until it is formed"
            ));
        }
    }
    if let Some(serving) = &o.serving {
        for v in [p, s].into_iter().filter(|v| &v.name == serving) {
            if v.keycloak_ready == Some(false) && matches!(v.keycloak_instances, Ok(n) if n > 0) {
                notes.push(format!(
                    "the Keycloak CR on {} (serving) is not Ready",
                    v.name
                ));
            }
        }
    }
    let serving = o.serving.clone().unwrap_or_else(|| p.name.clone());
    if let Some(d) = &o.pgo {
        let db = steps::pgo::diagnosis(d);
        if db.health != Health::Healthy {
            notes.push(format!("database (PGO): {}", db.reason));
        }
        if let [w] = d["writable"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if w.as_str() != Some(serving.as_str()) {
                notes.push(format!(
                    "PGO's writer is at {} while {serving} serves (its Keycloak writes across sites)",
                    w.as_str().unwrap_or_default()
                ));
            }
        }
    }
    if let Some(w) = &o.aurora_writer_site {
        if *w != serving {
            notes.push(format!(
                "the Aurora writer is in {w}'s zone while {serving} serves"
            ));
        }
    }
    notes
}

fn primary_is_down(p: &SiteView, s: &SiteView, down_path: &str, notes: Vec<String>) -> Verdict {
    if p.health_check_path.as_deref() != Some(down_path) {
        return degraded(
            Some(Invocation::new("failover", &[("primary", &p.name), ("secondary", &s.name)])),
            format!(
                "{} does not answer ({}) and its health check still probes `{}`: run failover so Route53 does not fall back on its own",
                p.name,
                p.replication.clone().err().unwrap_or_else(|| "Keycloak has no ready instance".into()),
                p.health_check_path.clone().unwrap_or_default()
            ),
            notes,
        );
    }
    degraded(
        None,
        format!(
            "{} is down and failed over to {}: repair it, then run recover-passive-site and switchback",
            p.name, s.name
        ),
        notes,
    )
}

/// The secondary serves (after failover or switchover); the primary answers.
fn secondary_serves(p: &SiteView, s: &SiteView, notes: Vec<String>) -> Verdict {
    let d = differing(s, p);
    let stale = s.replication.as_deref() != Ok("online") || !d.is_empty();
    if !stale {
        return Verdict {
            health: Health::OnSecondary,
            runbook: Some(Invocation::new("switchback", &[])),
            reason: format!(
                "{} serves and {} is back and in sync: run switchback",
                s.name, p.name
            ),
            notes,
        };
    }
    degraded(
        Some(Invocation::new(
            "recover-passive-site",
            &[("primary", &s.name), ("secondary", &p.name)],
        )),
        format!(
            "{} serves and {} is back but stale (replication {}→{} is {}{}): resync it with recover-passive-site, then switchback",
            s.name,
            p.name,
            s.name,
            p.name,
            s.replication.clone().unwrap_or_else(|e| e),
            if d.is_empty() { String::new() } else { format!("; entries differ: {}", d.join(", ")) }
        ),
        notes,
    )
}

/// The primary serves: the secondary is in sync, diverged, partitioned or unread.
fn primary_serves(p: &SiteView, s: &SiteView, mut notes: Vec<String>) -> Verdict {
    if let Err(e) = &s.replication {
        // Not read is not diverged: nothing is recommended on a state not seen.
        return degraded(
            None,
            format!(
                "{} serves; {}'s Data Grid cannot be read ({e}): its state is unknown, so nothing is recommended until it answers",
                p.name, s.name
            ),
            notes,
        );
    }
    let diff = differing(s, p);
    let s_to_p = s.replication.clone().unwrap_or_else(|e| e);
    let p_to_s = p.replication.clone().unwrap_or_else(|e| e);
    if s_to_p != "online" || p_to_s != "online" || !diff.is_empty() {
        return diverged(p, s, (&s_to_p, &p_to_s), &diff, notes);
    }
    if let Ok(0) = s.keycloak_instances {
        notes.push(format!("Keycloak on {} has no ready instance", s.name));
    }
    if !notes.is_empty() {
        let reason = notes.join("; ");
        return degraded(None, reason, notes);
    }
    Verdict {
        health: Health::Healthy,
        runbook: None,
        reason: format!(
            "{} serves, replication is online both ways, the sites hold the same entries",
            p.name
        ),
        notes,
    }
}

/// The secondary is out of sync: resync it, unless the sites cannot see each other yet.
fn diverged(
    p: &SiteView,
    s: &SiteView,
    (s_to_p, p_to_s): (&str, &str),
    diff: &[String],
    notes: Vec<String>,
) -> Verdict {
    let partition: Vec<&str> = [p, s]
        .iter()
        .filter_map(|v| match &v.cross_site_view {
            Some((false, why)) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    if !partition.is_empty() {
        return degraded(
            None,
            format!(
                "the sites are partitioned (the cross-site view is not formed: {}): {} serves; once the view forms, resync {} with recover-passive-site (it refuses before that)",
                partition.join("; "),
                p.name,
                s.name
            ),
            notes,
        );
    }
    let totals = format!(
        "{} vs {}",
        sum(&s.entries).map(|n| n.to_string()).unwrap_or("?".into()),
        sum(&p.entries).map(|n| n.to_string()).unwrap_or("?".into())
    );
    degraded(
        Some(Invocation::new("recover-passive-site", &[("primary", &p.name), ("secondary", &s.name)])),
        format!(
            "{} diverged from {} (entries: {totals}{}) and replication {}→{} is {s_to_p}, {}→{} is {p_to_s}: run recover-passive-site",
            s.name,
            p.name,
            if diff.is_empty() { String::new() } else { format!("; {}", diff.join(", ")) },
            s.name,
            p.name,
            p.name,
            s.name
        ),
        notes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packs::keycloak_24::observe::*;

    fn site(name: &str, repl: &str, sessions: u64) -> SiteView {
        SiteView {
            name: name.into(),
            replication: Ok(repl.into()),
            entries: [("sessions".to_string(), Some(sessions))]
                .into_iter()
                .collect(),
            keycloak_instances: Ok(3),
            health_check_path: Some("/lb-check".into()),
            health_check_healthy: Some(true),
            lb_check: Some(200),
            cross_site_view: Some((true, String::new())),
            keycloak_ready: Some(true),
        }
    }

    fn obs(p: SiteView, s: SiteView, serving: &str) -> Observations {
        Observations {
            primary: p,
            secondary: s,
            serving: Some(serving.into()),
            serving_how: "test".into(),
            roles_from: "route53".into(),
            aurora_writer_site: Some("site-a".into()),
            pgo: None,
        }
    }

    #[test]
    fn healthy() {
        let v = verdict(
            &obs(
                site("site-a", "online", 5),
                site("site-b", "online", 5),
                "site-a",
            ),
            "/health/down",
        );
        assert_eq!(v.health, Health::Healthy);
        assert!(v.runbook.is_none());
    }

    #[test]
    fn diverged_after_a_partition() {
        let v = verdict(
            &obs(
                site("site-a", "online", 120),
                site("site-b", "offline", 87),
                "site-a",
            ),
            "/health/down",
        );
        assert_eq!(v.health, Health::Degraded);
        assert_eq!(
            v.runbook.as_ref().map(ToString::to_string).as_deref(),
            Some("recover-passive-site -p primary=site-a -p secondary=site-b")
        );
        assert!(
            v.reason
                .contains("site-b diverged from site-a (entries: 87 vs 120"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn after_switchover() {
        let mut p = site("site-a", "online", 5);
        p.health_check_path = Some("/health/down".into());
        let v = verdict(
            &obs(p, site("site-b", "offline", 9), "site-b"),
            "/health/down",
        );
        assert_eq!(
            v.runbook.as_ref().map(ToString::to_string).as_deref(),
            Some("recover-passive-site -p primary=site-b -p secondary=site-a")
        );
    }

    #[test]
    fn switched_over_and_in_sync_is_its_own_state() {
        let mut p = site("site-a", "online", 5);
        p.health_check_path = Some("/health/down".into());
        let v = verdict(
            &obs(p, site("site-b", "online", 5), "site-b"),
            "/health/down",
        );
        assert_eq!(v.health, Health::OnSecondary);
        assert_eq!(
            v.runbook.as_ref().map(ToString::to_string).as_deref(),
            Some("switchback")
        );
    }

    #[test]
    fn refused_credentials_are_a_configuration_error_not_an_outage() {
        let mut s = site("site-b", "online", 5);
        s.replication = Err("site `site-b`: GET http://x/rest/v2/server answered 401: the credentials were refused (user `admin`, Basic)".into());
        let v = verdict(
            &obs(site("site-a", "online", 5), s, "site-a"),
            "/health/down",
        );
        assert_eq!(v.health, Health::Misconfigured, "{}", v.reason);
        assert!(v.runbook.is_none());
    }

    #[test]
    fn an_unreadable_passive_site_is_not_counted_as_empty() {
        let mut s = site("site-b", "online", 5);
        s.replication = Err("site `site-b`: cannot connect".into());
        s.entries.clear();
        let v = verdict(
            &obs(site("site-a", "online", 5), s, "site-a"),
            "/health/down",
        );
        assert_eq!(v.health, Health::Degraded);
        assert!(
            v.runbook.is_none(),
            "no cache-clearing procedure on a state not seen"
        );
        assert!(v.reason.contains("cannot be read"), "{}", v.reason);
        assert!(!v.reason.contains("diverged"), "{}", v.reason);
    }

    #[test]
    fn a_partition_is_not_diverged_contents() {
        let mut s = site("site-b", "offline", 87);
        s.cross_site_view = Some((false, "Site 'site-a' not ready".into()));
        let v = verdict(
            &obs(site("site-a", "online", 120), s, "site-a"),
            "/health/down",
        );
        assert_eq!(v.health, Health::Degraded);
        assert!(v.reason.contains("partitioned"), "{}", v.reason);
        assert!(v.runbook.is_none());
    }

    #[test]
    fn primary_down() {
        let mut p = site("site-a", "online", 5);
        p.replication = Err("503".into());
        p.keycloak_instances = Ok(0);
        p.lb_check = Some(503);
        let v = verdict(
            &obs(p, site("site-b", "online", 5), "site-b"),
            "/health/down",
        );
        assert_eq!(
            v.runbook.as_ref().map(ToString::to_string).as_deref(),
            Some("failover -p primary=site-a -p secondary=site-b")
        );
    }
}
