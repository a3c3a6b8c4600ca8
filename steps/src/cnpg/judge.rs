//! Whether CloudNativePG's writer may move to a site now: pure, table-tested.

use serde_json::{json, Value as Json};

use super::read::Site;

/// The replay lag a planned move accepts unless the environment file says otherwise.
pub const DEFAULT_MAX_LAG: u64 = 16 * 1024 * 1024;

/// Judge a move of the writer to `to` (planned) or a promotion there (unplanned).
pub fn judge(views: &[Result<Site, (String, String)>], to: &str, unplanned: bool) -> Json {
    let mut reasons: Vec<String> = Vec::new();
    let ok: Vec<&Site> = views.iter().filter_map(|v| v.as_ref().ok()).collect();
    let writable: Vec<String> = ok
        .iter()
        .filter(|s| s.writable())
        .map(|s| s.site.clone())
        .collect();
    let others_writable: Vec<&String> = writable.iter().filter(|s| *s != to).collect();
    for (site, e) in views.iter().filter_map(|v| v.as_ref().err()) {
        if !unplanned {
            reasons.push(format!("{site} cannot be read ({e})"));
        }
    }
    let target = ok.iter().find(|s| s.site == to);
    match target {
        None => reasons.push(format!("{to}'s cluster cannot be read")),
        Some(t) if t.cluster.is_none() => {
            reasons.push(format!("{to} has no Cluster `{}`", t.cfg.cluster))
        }
        Some(t) => {
            if t.status("phase")
                .as_str()
                .is_some_and(|p| p.contains("unrecoverable"))
            {
                reasons.push(format!(
                    "{to}'s cluster is unrecoverable: {}",
                    t.status("phaseReason")
                ));
            }
            if let Err(e) = &t.sql {
                reasons.push(format!("{to}'s database does not answer ({e})"));
            }
        }
    }
    stopped_on_purpose(&ok, to, unplanned, &mut reasons);
    if unplanned {
        if !others_writable.is_empty() {
            reasons.push(format!(
                "{} still answers as a writable primary: it is not lost (move the writer as a planned operation, or fence it first)",
                others_writable.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
    } else {
        planned(&ok, to, &writable, &mut reasons);
    }
    if writable.len() > 1 {
        reasons.insert(
            0,
            format!(
                "TWO WRITABLE PRIMARIES: {} (read from the databases)",
                writable.join(" and ")
            ),
        );
    }
    let safe = reasons.is_empty();
    let loss = loss_window(&ok, to, unplanned);
    let (synchronous, replication) = replication(&ok, to, unplanned);
    let summary = if safe {
        format!(
            "the writer may move to {to} (writable now: {}); {loss}",
            if writable.is_empty() {
                "none".into()
            } else {
                writable.join(", ")
            }
        )
    } else {
        format!("the writer must not move to {to}: {}", reasons.join("; "))
    };
    json!({"safe": safe, "to": to, "writable": writable, "unplanned": unplanned,
           "reasons": reasons, "summary": summary, "loss_window": loss,
           "synchronous": synchronous, "replication": replication,
           "sites": ok.iter().map(|s| s.json()).collect::<Vec<_>>()})
}

/// What a move to `to` can lose, read from the databases: with the writer's server
/// waiting on `to` for every commit (synchronous), nothing; else a planned move loses
/// nothing only because it waits for `to` to catch up, and a promotion without the
/// writer loses whatever `to` had not received (its last replayed position and time
/// are what it holds).
fn loss_window(ok: &[&Site], to: &str, unplanned: bool) -> String {
    let Some(t) = ok.iter().find(|s| s.site == to) else {
        return "the loss window cannot be told".into();
    };
    let writer = ok.iter().find(|s| s.writable() && s.site != to);
    if writer.is_some_and(|w| w.waits_for(&t.cfg.cluster)) {
        return format!(
            "replication to {to} is SYNCHRONOUS: every commit waited for it, nothing is lost"
        );
    }
    let held = match &t.sql {
        Ok(q) => format!(
            "{to} holds WAL up to {}{}",
            q.lsn,
            q.replayed_at
                .as_ref()
                .map(|at| format!(", last transaction replayed at {at}"))
                .unwrap_or_default()
        ),
        Err(_) => format!("what {to} holds cannot be read"),
    };
    match (writer, unplanned) {
        (Some(_), false) => format!("replication to {to} is ASYNCHRONOUS: the move loses nothing only because it waits for {to} to catch up ({held})"),
        (None, _) | (_, true) => format!("replication to {to} is ASYNCHRONOUS (or cannot be read from a writer that does not answer): what {to} had not received is LOST; {held}"),
    }
}

/// Whether replication to `to` is synchronous across the sites, as Keycloak's guide
/// requires, and what was read, with the loss window when it is not. Planned: the
/// writer's server waits for `to` on every commit (its `synchronous_standby_names`).
/// Unplanned: the lost writer cannot be asked, so its Cluster's synchronous stanza
/// names `to`, or, where its API does not answer either, `to`'s own names the writer
/// (the guide puts the symmetric stanza on both). A writer already at `to` (the move
/// done, a resumed run) has nothing left to judge.
fn replication(ok: &[&Site], to: &str, unplanned: bool) -> (bool, String) {
    let Some(t) = ok.iter().find(|s| s.site == to) else {
        return (false, format!("{to}'s cluster cannot be read"));
    };
    let writers: Vec<&&Site> = ok.iter().filter(|s| s.writable()).collect();
    if let [only] = writers.as_slice() {
        if only.site == to {
            return (
                true,
                format!("{to} already holds the only writable primary"),
            );
        }
    }
    let asynchronous = |how: String| {
        (false, format!(
            "replication to {to} is ASYNCHRONOUS ({how}): Keycloak's multi-site guide requires every commit to wait for the other site; {}. Configure `spec.postgresql.synchronous` (method: first, number: 1, standbyNamesPre: [the other Cluster]) on both Clusters, or override with -p force=true -p force_reason=...",
            loss_window(ok, to, unplanned)
        ))
    };
    if !unplanned {
        return match writers.iter().find(|w| w.site != to) {
            Some(w) if w.waits_for(&t.cfg.cluster) => (true, format!(
                "replication to {to} is SYNCHRONOUS: {}'s synchronous_standby_names `{}` waits for `{}` on every commit",
                w.site, w.sql.as_ref().map(|q| q.sync_standby_names.as_str()).unwrap_or_default(), t.cfg.cluster
            )),
            Some(w) => asynchronous(format!(
                "{}'s synchronous_standby_names is `{}`",
                w.site,
                w.sql.as_ref().map(|q| q.sync_standby_names.as_str()).unwrap_or_default()
            )),
            None => (false, format!("no writer at another site answers: replication to {to} cannot be read")),
        };
    }
    let former = t
        .cluster
        .as_ref()
        .and_then(|c| c["spec"]["replica"]["primary"].as_str())
        .filter(|p| *p != t.cfg.cluster)
        .unwrap_or_default()
        .to_string();
    if let Some(f) = ok
        .iter()
        .find(|s| s.cfg.cluster == former && s.cluster.is_some())
    {
        return if f.configured_to_wait_for(&t.cfg.cluster) {
            (true, format!("replication to {to} is SYNCHRONOUS: the lost primary's Cluster `{former}` waits for `{}` (its spec.postgresql.synchronous)", t.cfg.cluster))
        } else {
            asynchronous(format!(
                "the lost primary's Cluster `{former}` has no synchronous stanza naming `{}`",
                t.cfg.cluster
            ))
        };
    }
    if !former.is_empty() && t.configured_to_wait_for(&former) {
        (true, format!("replication to {to} is SYNCHRONOUS: the lost primary's Cluster `{former}` cannot be read; {to}'s own names `{former}` (the guide's symmetric spec.postgresql.synchronous)"))
    } else {
        asynchronous(format!("neither the lost primary's Cluster nor {to}'s names the other in spec.postgresql.synchronous"))
    }
}

/// A cluster someone hibernated or fenced is stopped on purpose: the target never
/// takes the writer so; in a planned move no other site may be either (the writer to
/// demote, or the replica that must follow). A lost site fenced on purpose is what an
/// unplanned promotion wants, so there only the target counts.
fn stopped_on_purpose(ok: &[&Site], to: &str, unplanned: bool, reasons: &mut Vec<String>) {
    for s in ok.iter().filter(|s| s.site == to || !unplanned) {
        if s.hibernated() {
            reasons.push(format!(
                "{}'s Cluster `{}` is HIBERNATED (cnpg.io/hibernation): no instance runs although its phase says healthy; rehydrate it (annotation `cnpg.io/hibernation: off`) if that is meant, else find out who hibernated it",
                s.site, s.cfg.cluster
            ));
        }
        if let Some(list) = s.fenced_by_someone() {
            reasons.push(format!(
                "{}'s Cluster `{}` is FENCED (cnpg.io/fencedInstances: {}): its PostgreSQL is stopped and CloudNativePG will not fail it over; unfence it (`kubectl cnpg fencing off {} \"*\"`) once you know who fenced it and why",
                s.site, s.cfg.cluster, list.join(", "), s.cfg.cluster
            ));
        }
    }
}

/// `check --pack cnpg`: the verdict on every CloudNativePG site as read now, and what
/// was read (each site with a one-line `summary`). Two writable primaries first; then
/// no writer; then a site that does not follow the writer (a forked timeline after a
/// tokenless promotion, a replica that does not stream, a Cluster missing or stopped on
/// purpose): `cnpg/cnpg-rejoin` for it.
pub fn diagnosis(views: &[Result<Site, (String, String)>]) -> (crate::check::Verdict, Json) {
    use crate::check::{Health, Invocation, Verdict};
    let ok: Vec<&Site> = views.iter().filter_map(|v| v.as_ref().ok()).collect();
    let writable: Vec<String> = ok
        .iter()
        .filter(|s| s.writable())
        .map(|s| s.site.clone())
        .collect();
    let unreadable: Vec<String> = views
        .iter()
        .filter_map(|v| v.as_ref().err().map(|(s, e)| format!("{s} ({e})")))
        .collect();
    let mut sites: Vec<Json> = ok
        .iter()
        .map(|s| {
            let mut j = s.json();
            j["summary"] = json!(summary(s));
            j
        })
        .collect();
    for (s, e) in views.iter().filter_map(|v| v.as_ref().err()) {
        sites.push(json!({"site": s, "error": e, "summary": format!("{s}: cannot be read ({e})")}));
    }
    let degraded = |runbook: Option<Invocation>, reason: String| Verdict {
        health: Health::Degraded,
        runbook,
        reason,
        notes: vec![],
    };
    let verdict = match writable.as_slice() {
        [_, _, ..] => degraded(None, format!(
            "TWO WRITABLE PRIMARIES (split-brain): {} all accept writes. Fence all but one now (`kubectl cnpg fencing on CLUSTER \"*\"`), then rebuild them with cnpg-rejoin (it discards their writes since)",
            writable.join(" and ")
        )),
        [] if !unreadable.is_empty() => Verdict {
            health: Health::Unreachable,
            runbook: None,
            reason: format!("no writable primary answers, and {} cannot be read", unreadable.join(", ")),
            notes: vec![],
        },
        [] => degraded(None, "no site has a writable primary: Keycloak cannot write. If the writer's site is lost, fail over: runbook run keycloak-26/site-failover".into()),
        [one] => {
            let w = ok.iter().find(|w| w.site == *one).copied();
            let behind = ok
                .iter()
                .filter(|s| s.site != *one)
                .map(|s| (s, why_not_following(s, w)))
                .find(|(_, why)| !why.is_empty());
            match behind {
                Some((s, why)) => degraded(
                    Some(Invocation::new("cnpg/cnpg-rejoin", &[("site", s.site.as_str())])),
                    format!("{one} holds the writer and {} does not follow it ({why}): rebuild it from {one} with cnpg-rejoin (it discards {}'s data)", s.site, s.site),
                ),
                None => Verdict {
                    health: Health::Healthy,
                    runbook: None,
                    reason: format!("{one} holds the only writable primary; every other site streams from it"),
                    notes: vec![],
                },
            }
        }
    };
    let mut verdict = verdict;
    for s in ok.iter().filter(|s| s.writable()) {
        if let Some(stanza) = s.suspended() {
            verdict.notes.push(format!(
                "{}'s synchronous replication is SUSPENDED since a failover (its Cluster's annotation {}: {stanza}): its commits wait for no other site, so losing {} now loses what it wrote since; cnpg-rejoin of the lost site puts it back",
                s.site,
                super::read::SUSPENDED,
                s.site
            ));
        }
    }
    if let [one] = writable.as_slice() {
        for s in ok.iter().filter(|s| s.site != *one) {
            verdict.notes.push(
                loss_window(&ok, &s.site, true)
                    .replace("what ", &format!("on the loss of {one}'s site, what ")),
            );
        }
    }
    (verdict, json!({"writable": writable, "sites": sites}))
}

fn summary(s: &Site) -> String {
    match &s.sql {
        Ok(q) if !q.in_recovery => format!(
            "{}: writes (Cluster `{}`, WAL at {}, timeline {})",
            s.site,
            s.cfg.cluster,
            q.lsn,
            s.status("timelineID")
        ),
        Ok(q) => format!(
            "{}: replays at {} (Cluster `{}`, timeline {}, WAL receiver: {})",
            s.site,
            q.lsn,
            s.cfg.cluster,
            s.status("timelineID"),
            q.receiver.as_deref().unwrap_or(if q.receiving {
                "receiving"
            } else {
                "nothing received"
            })
        ),
        Err(e) => format!("{}: its database does not answer ({e})", s.site),
    }
}

/// Why a site does not follow the writer `w`; empty when it does.
pub(super) fn why_not_following(s: &Site, w: Option<&Site>) -> String {
    if s.cluster.is_none() {
        return format!("no Cluster `{}`", s.cfg.cluster);
    }
    if s.hibernated() || s.fenced_by_someone().is_some() {
        return "hibernated or fenced".into();
    }
    let Ok(q) = &s.sql else {
        return "its database does not answer".into();
    };
    if let Some(w) = w {
        let (mine, theirs) = (
            s.status("timelineID").as_i64(),
            w.status("timelineID").as_i64(),
        );
        if let (Some(m), Some(t)) = (mine, theirs) {
            if m < t && q.receiver.as_deref() != Some("streaming") {
                return format!("it is on timeline {m}, the writer on {t}: its history forked");
            }
        }
    }
    match q.receiver.as_deref() {
        Some("streaming") => String::new(),
        Some(other) => format!("WAL receiver {other}"),
        None if q.receiving => String::new(),
        None => "it receives no WAL".into(),
    }
}

fn planned(ok: &[&Site], to: &str, writable: &[String], reasons: &mut Vec<String>) {
    let Some(t) = ok.iter().find(|s| s.site == to) else {
        return;
    };
    if writable.iter().any(|w| w == to) {
        return; // already there: nothing moves
    }
    let Some(from) = ok.iter().find(|s| s.writable()) else {
        reasons.push("no site answers as a writable primary to demote".into());
        return;
    };
    if let Ok(ts) = &t.sql {
        let streaming = match ts.receiver.as_deref() {
            Some(status) => status == "streaming",
            None => ts.receiving,
        };
        if !streaming {
            reasons.push(format!(
                "{to} is not streaming from the primary (WAL receiver: {})",
                ts.receiver.as_deref().unwrap_or("no WAL received")
            ));
        }
        if let Ok(fs) = &from.sql {
            let lag = fs.lsn_bytes.saturating_sub(ts.lsn_bytes);
            let bound = t.cfg.max_lag_bytes.unwrap_or(DEFAULT_MAX_LAG);
            if lag > bound {
                reasons.push(format!("{to} replays {lag} bytes behind {}, over the bound of {bound} (database.cnpg.max_lag_bytes)", from.site));
            }
        }
    }
    if t.secret_digest.is_some()
        && from.secret_digest.is_some()
        && t.secret_digest != from.secret_digest
    {
        reasons.push(format!(
            "the app secrets of {} and {to} hold different passwords (compared by SHA-256, never shown): after promotion CloudNativePG applies the promoted cluster's own, and Keycloak with the other fails",
            from.site
        ));
    }
    if t.cfg.cluster == from.cfg.cluster {
        reasons.push("both sites name the same Cluster".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cnpg::config::CnpgDatabase;
    use crate::cnpg::read::Sql;

    fn site(
        name: &str,
        writable: bool,
        lsn: u64,
        receiver: Option<&str>,
        secret: &str,
    ) -> Result<Site, (String, String)> {
        Ok(Site {
            site: name.into(),
            cfg: CnpgDatabase {
                cluster: format!("pg-{name}"),
                address: "h:1".into(),
                ..CnpgDatabase::default()
            },
            namespace: "k".into(),
            cluster: Some(json!({"spec": {}, "status": {"phase": "Cluster in healthy state"}})),
            sql: Ok(Sql {
                in_recovery: !writable,
                lsn_bytes: lsn,
                receiver: receiver.map(str::to_string),
                ..Sql::default()
            }),
            secret_digest: Some(secret.into()),
        })
    }

    #[test]
    fn a_caught_up_streaming_replica_may_take_the_writer() {
        let v = [
            site("a", true, 100, None, "s"),
            site("b", false, 100, Some("streaming"), "s"),
        ];
        let j = judge(&v, "b", false);
        assert_eq!(j["safe"], true);
        assert!(
            j["loss_window"]
                .as_str()
                .unwrap()
                .contains("ASYNCHRONOUS: the move loses nothing only because it waits"),
            "{j}"
        );
    }

    #[test]
    fn the_loss_window_is_read_from_the_writers_synchronous_standby_names() {
        let mut a = site("a", true, 100, None, "s");
        if let Ok(s) = a.as_mut() {
            if let Ok(q) = s.sql.as_mut() {
                q.sync_standby_names = "FIRST 1 (\"pg-b\")".into();
            }
        }
        let v = [a, site("b", false, 100, Some("streaming"), "s")];
        assert!(judge(&v, "b", false)["loss_window"]
            .as_str()
            .unwrap()
            .contains("SYNCHRONOUS: every commit waited"));
        // The writer lost: what b holds is what is kept.
        let v = [
            Err(("a".into(), "refused".into())),
            site("b", false, 90, Some("waiting"), "s"),
        ];
        assert!(judge(&v, "b", true)["loss_window"]
            .as_str()
            .unwrap()
            .contains("is LOST"));
    }

    fn with_sync_names(
        mut s: Result<Site, (String, String)>,
        names: &str,
    ) -> Result<Site, (String, String)> {
        if let Ok(Ok(q)) = s.as_mut().map(|s| s.sql.as_mut()) {
            q.sync_standby_names = names.into();
        }
        s
    }

    #[test]
    fn a_move_is_synchronous_only_when_every_commit_must_wait_for_the_target() {
        let b = || site("b", false, 100, Some("streaming"), "s");
        let sync = |names: &str| {
            let v = [with_sync_names(site("a", true, 100, None, "s"), names), b()];
            judge(&v, "b", false)["synchronous"] == true
        };
        // What CloudNativePG writes for the guide's stanza (cnpg.md 3.14).
        assert!(sync("FIRST 1 (\"pg-b\")"));
        // A bare list is FIRST 1.
        assert!(sync("pg-b"));
        assert!(sync("ANY 2 (\"pg-b\", \"pg-a-2\")"));
        // A local standby may answer instead: not cross-site durable.
        assert!(!sync("ANY 1 (\"pg-b\", \"pg-a-2\")"));
        assert!(!sync("FIRST 1 (\"pg-a-2\", \"pg-b\")"));
        assert!(!sync("FIRST 1 (*)"));
        assert!(!sync(""));
        let v = [with_sync_names(site("a", true, 100, None, "s"), ""), b()];
        let j = judge(&v, "b", false);
        let said = j["replication"].as_str().unwrap();
        assert!(
            said.contains("ASYNCHRONOUS (a's synchronous_standby_names is ``)"),
            "{said}"
        );
        assert!(said.contains("force_reason"), "{said}");
        // The safety of the move itself is another guard's: only `synchronous` says no.
        assert_eq!(j["safe"], true);
    }

    #[test]
    fn an_unplanned_promotion_reads_the_lost_primarys_stanza_else_the_targets() {
        let stanza =
            |other: &str| json!({"method": "first", "number": 1, "standbyNamesPre": [other]});
        let cluster = |primary: &str, sync: serde_json::Value| {
            json!({"spec": {
            "replica": {"self": "pg-b", "primary": primary}, "postgresql": {"synchronous": sync}},
            "status": {"phase": "Cluster in healthy state"}})
        };
        let lost = || Err(("a".to_string(), "refused".to_string()));
        let b = |sync| {
            with_cluster(
                site("b", false, 90, Some("waiting"), "s"),
                cluster("pg-a", sync),
            )
        };
        let v = [lost(), b(stanza("pg-a"))];
        let j = judge(&v, "b", true);
        assert_eq!(j["synchronous"], true, "{j}");
        assert!(j["replication"]
            .as_str()
            .unwrap()
            .contains("b's own names `pg-a`"));
        let v = [lost(), b(serde_json::Value::Null)];
        let j = judge(&v, "b", true);
        assert_eq!(j["synchronous"], false);
        assert!(
            j["replication"].as_str().unwrap().contains("is LOST"),
            "{j}"
        );
        // The lost primary's Cluster answers (its database does not): its stanza decides.
        let mut a = with_cluster(
            site("a", true, 100, None, "s"),
            json!({"spec": {"postgresql": {}}}),
        );
        if let Ok(s) = a.as_mut() {
            s.sql = Err("refused".into());
        }
        let v = [a, b(stanza("pg-a"))];
        let j = judge(&v, "b", true);
        assert_eq!(j["synchronous"], false, "{j}");
        assert!(j["replication"]
            .as_str()
            .unwrap()
            .contains("the lost primary's Cluster `pg-a` has no synchronous stanza"));
        // Already moved (a resumed run): nothing left to judge.
        let v = [
            lost(),
            with_cluster(
                site("b", true, 90, None, "s"),
                cluster("pg-b", serde_json::Value::Null),
            ),
        ];
        assert_eq!(judge(&v, "b", true)["synchronous"], true);
    }

    #[test]
    fn standby_names_read_as_postgresql_reads_them() {
        use crate::cnpg::read::standby_names;
        let n = |t: &str| standby_names(t).map(|(k, v)| (k, v.join("|")));
        assert_eq!(n("FIRST 1 (\"pg-b\")"), Some((1, "pg-b".into())));
        assert_eq!(n("ANY 2 (s1, \"S2\",s3)"), Some((2, "s1|S2|s3".into())));
        assert_eq!(n("2 (a, b)"), Some((2, "a|b".into())));
        assert_eq!(n("A, b"), Some((1, "a|b".into())));
        assert_eq!(n("\"a\"\"b\""), Some((1, "a\"b".into())));
        assert_eq!(n("  "), None);
        assert_eq!(n("FIRST x (a)"), None);
    }

    #[test]
    fn two_writers_lag_secrets_and_a_replica_not_streaming_refuse() {
        let v = [
            site("a", true, 100, None, "s"),
            site("b", true, 100, None, "s"),
        ];
        let j = judge(&v, "b", false);
        assert_eq!(j["safe"], false);
        assert!(j["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("TWO WRITABLE PRIMARIES"));
        let v = [
            site("a", true, 100 << 30, None, "s"),
            site("b", false, 0, Some("streaming"), "s"),
        ];
        assert!(judge(&v, "b", false)["summary"]
            .as_str()
            .unwrap()
            .contains("over the bound"));
        let v = [
            site("a", true, 100, None, "s"),
            site("b", false, 100, Some("streaming"), "t"),
        ];
        let s = judge(&v, "b", false)["summary"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            s.contains("different passwords") && !s.contains(" t "),
            "{s}"
        );
        let v = [
            site("a", true, 100, None, "s"),
            site("b", false, 100, Some("waiting"), "s"),
        ];
        assert!(judge(&v, "b", false)["summary"]
            .as_str()
            .unwrap()
            .contains("not streaming"));
    }

    fn with_cluster(
        mut s: Result<Site, (String, String)>,
        c: serde_json::Value,
    ) -> Result<Site, (String, String)> {
        if let Ok(site) = s.as_mut() {
            site.cluster = Some(c);
        }
        s
    }

    #[test]
    fn a_hibernated_or_fenced_cluster_refuses_unless_it_is_the_lost_one() {
        // The trap: hibernated, the phase still says healthy.
        let hibernated = json!({"metadata": {"annotations": {"cnpg.io/hibernation": "on"}},
            "spec": {}, "status": {"phase": "Cluster in healthy state"}});
        let v = [
            site("a", true, 100, None, "s"),
            with_cluster(
                site("b", false, 100, Some("streaming"), "s"),
                hibernated.clone(),
            ),
        ];
        let j = judge(&v, "b", false);
        assert!(
            j["summary"]
                .as_str()
                .unwrap()
                .contains("b's Cluster `pg-b` is HIBERNATED"),
            "{j}"
        );
        let fenced = json!({"metadata": {"annotations": {"cnpg.io/fencedInstances": "[\"*\"]"}},
            "spec": {}, "status": {"phase": "Cluster in healthy state"}});
        let v = [
            with_cluster(site("a", true, 100, None, "s"), fenced.clone()),
            site("b", false, 100, Some("streaming"), "s"),
        ];
        let j = judge(&v, "b", false);
        assert!(
            j["summary"]
                .as_str()
                .unwrap()
                .contains("a's Cluster `pg-a` is FENCED (cnpg.io/fencedInstances: *)"),
            "{j}"
        );
        // CloudNativePG's own fence in the middle of a demotion is not someone's.
        let demoting = json!({"metadata": {"annotations": {"cnpg.io/fencedInstances": "[\"*\"]"}},
            "spec": {}, "status": {"phase": "Cluster in healthy state",
            "conditions": [{"type": "ReplicaClusterFencing", "status": "True"}]}});
        let v = [
            with_cluster(site("a", true, 100, None, "s"), demoting),
            site("b", false, 100, Some("streaming"), "s"),
        ];
        assert_eq!(judge(&v, "b", false)["safe"], true);
        // Unplanned: the lost site fenced is what is wanted; the survivor is not.
        let v = [
            Err(("a".into(), "connection refused".into())),
            with_cluster(site("b", false, 90, Some("waiting"), "s"), hibernated),
        ];
        assert_eq!(judge(&v, "b", true)["safe"], false);
    }

    #[test]
    fn an_unplanned_promotion_refuses_while_the_lost_site_answers_writable() {
        let v = [
            site("a", true, 100, None, "s"),
            site("b", false, 90, Some("streaming"), "s"),
        ];
        assert_eq!(judge(&v, "b", true)["safe"], false);
        let v = [
            Err(("a".into(), "connection refused".into())),
            site("b", false, 90, Some("waiting"), "s"),
        ];
        assert_eq!(judge(&v, "b", true)["safe"], true);
    }
}
