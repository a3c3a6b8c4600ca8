//! `infinispan.sync-state`: whether two sites hold the same keys in every cache, with
//! replication online both ways.

use super::*;

/// `infinispan.sync-state`: whether the step's site and `other` are in sync: both
/// directions of replication online and the same *keys* in every cache (entry counts
/// say nothing about contents: two session caches of one size can hold different
/// sessions). A cache with more than `max_keys` keys is "not proven equal". Read-only;
/// it reads both sites.
/// `caches` and every other cache either site backs up to the other (the added ones
/// named apart).
async fn every_backed_up(
    ctx: &StepCtx,
    (here, there): (&Transport, &Transport),
    other: &str,
    mut caches: Vec<String>,
) -> Result<(Vec<String>, Vec<String>), StepError> {
    let mut added = Vec::new();
    for (t, remote) in [
        (here, super::super::xsite_name(ctx, other)),
        (there, super::super::xsite_name(ctx, here.site())),
    ] {
        for c in t.backed_up(&remote).await?.unwrap_or_default() {
            if !caches.contains(&c) {
                caches.push(c.clone());
                added.push(c);
            }
        }
    }
    Ok((caches, added))
}

/// Every cache's keys on both sites, compared: per cache `equal (N keys)` or why not,
/// the caches that differ, and the keys counted.
async fn compare_every_cache(
    ctx: &StepCtx,
    (here, there): (&Transport, &Transport),
    other: &str,
    caches: &[String],
    bound: usize,
) -> Result<(serde_json::Map<String, Json>, Vec<String>, usize), StepError> {
    let mut keys = serde_json::Map::new();
    let mut differing = Vec::new();
    let mut total = 0;
    // One read of every cache's keys per site (over Batch: one Batch per site and
    // round), and a second round only for the caches that differed.
    let a1 = here.keys_all(caches, bound + 1).await?;
    let b1 = there.keys_all(caches, bound + 1).await?;
    let differ: Vec<bool> = a1
        .iter()
        .zip(&b1)
        .map(|(a, b)| match (a, b) {
            (Some(a), Some(b)) => {
                let sa: std::collections::BTreeSet<&String> = a.iter().collect();
                sa != b.iter().collect()
            }
            _ => false,
        })
        .collect();
    let (mut a2, mut b2) = (vec![None; caches.len()], vec![None; caches.len()]);
    if differ.iter().any(|d| *d) {
        // Writes in flight between the two reads: read those caches again.
        tokio::time::sleep(ctx.env.scaled_pause(Duration::from_secs(2))).await;
        let again: Vec<String> = caches
            .iter()
            .zip(&differ)
            .filter(|(_, d)| **d)
            .map(|(c, _)| c.clone())
            .collect();
        let ra = here.keys_all(&again, bound + 1).await?;
        let rb = there.keys_all(&again, bound + 1).await?;
        let mut k = 0;
        for (i, d) in differ.iter().enumerate() {
            if *d {
                a2[i] = Some(ra[k].clone());
                b2[i] = Some(rb[k].clone());
                k += 1;
            }
        }
    }
    for (i, c) in caches.iter().enumerate() {
        let first = (a1[i].clone(), b1[i].clone());
        let again = match (a2[i].take(), b2[i].take()) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        };
        match compare_keys(here.site(), other, first, again, bound) {
            Ok(n) => {
                total += n;
                keys.insert(c.clone(), json!(format!("equal ({n} keys)")));
            }
            Err(why) => {
                differing.push(format!("{c}: {why}"));
                keys.insert(c.clone(), json!(why.to_string()));
            }
        }
    }
    Ok((keys, differing, total))
}

#[derive(Debug)]
pub struct SyncState;

async fn sizes(
    t: &Transport,
    caches: &[String],
) -> Result<BTreeMap<String, Option<u64>>, StepError> {
    let mut out = BTreeMap::new();
    for c in caches {
        out.insert(c.clone(), t.size(c).await?);
    }
    Ok(out)
}

/// The default bound on the keys compared per cache.
pub const MAX_KEYS: usize = 10_000;

/// Keys of one cache on both sites, read once (`None`: cannot be listed).
pub type KeyRead = (Option<Vec<String>>, Option<Vec<String>>);

/// How the keys of one cache compare on two sites: `Ok(n)` equal (n keys), or why the
/// contents are not proven equal.
///
/// With live traffic a key written between the two reads shows on one side only for a
/// moment, so a difference in the first read is read again (`again`): a key counts as
/// missing on a site only when the other site held it in both reads and this site in
/// neither. Keys removed meanwhile (an expired session) count on neither side.
pub fn compare_keys(
    here: &str,
    there: &str,
    first: KeyRead,
    again: Option<KeyRead>,
    bound: usize,
) -> Result<usize, KeysDiffer> {
    use std::collections::BTreeSet;
    let (Some(a1), Some(b1)) = first else {
        return Err(KeysDiffer::Unlisted);
    };
    if a1.len() > bound || b1.len() > bound {
        return Err(KeysDiffer::OverBound(bound));
    }
    let sa1: BTreeSet<&String> = a1.iter().collect();
    let sb1: BTreeSet<&String> = b1.iter().collect();
    if sa1 == sb1 {
        return Ok(sa1.len());
    }
    let Some((Some(a2), Some(b2))) = again else {
        let only_a = sa1.difference(&sb1).count();
        let only_b = sb1.difference(&sa1).count();
        return Err(KeysDiffer::Differ {
            only_here: only_a,
            here: here.to_string(),
            only_there: only_b,
            there: there.to_string(),
        });
    };
    if a2.len() > bound || b2.len() > bound {
        return Err(KeysDiffer::OverBound(bound));
    }
    let sa2: BTreeSet<&String> = a2.iter().collect();
    let sb2: BTreeSet<&String> = b2.iter().collect();
    let stable_a: BTreeSet<&&String> = sa1.intersection(&sa2).collect();
    let stable_b: BTreeSet<&&String> = sb1.intersection(&sb2).collect();
    let only_a = stable_a
        .iter()
        .filter(|k| !sb1.contains(**k) && !sb2.contains(**k))
        .count();
    let only_b = stable_b
        .iter()
        .filter(|k| !sa1.contains(**k) && !sa2.contains(**k))
        .count();
    if only_a == 0 && only_b == 0 {
        return Ok(stable_a.len());
    }
    Err(KeysDiffer::Differ {
        only_here: only_a,
        here: here.to_string(),
        only_there: only_b,
        there: there.to_string(),
    })
}

/// Why two sites' keys of a cache are not known to be equal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysDiffer {
    #[error("its keys cannot be listed over this transport")]
    Unlisted,
    #[error("more than {0} keys (the bound on what is compared)")]
    OverBound(usize),
    #[error("{only_here} keys only on {here}, {only_there} only on {there}")]
    Differ {
        only_here: usize,
        here: String,
        only_there: usize,
        there: String,
    },
}

#[async_trait]
impl Action for SyncState {
    fn name(&self) -> &'static str {
        "infinispan.sync-state"
    }
    fn summary(&self) -> &'static str {
        "compare two sites: both directions of replication online and the same keys in every cache"
    }
    fn args(&self) -> &'static [ArgSpec] {
        const A: &[ArgSpec] = &[
            ArgSpec::required("other", ArgKind::String, "the other site"),
            ArgSpec::required("caches", ArgKind::List, "the caches to compare"),
            ArgSpec::optional(
                "max_keys",
                ArgKind::Int,
                "a cache with more keys is not proven equal (default 10000)",
            ),
        ];
        A
    }
    fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "in_sync", "forward", "backward", "sizes", "keys", "reason", "summary",
        ])
    }
    fn effect(&self, _: &Args) -> Effect {
        Effect::ReadOnly
    }
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(300)
    }
    fn describe(&self, ctx: &StepCtx, args: &Args) -> Vec<String> {
        let other = req_str(args, "other").unwrap_or("?");
        let site = ctx.site_name();
        vec![format!("read x-site status {site}→{other} and {other}→{site}, and every cache's keys on both sites (GET /rest/v2/caches/{{cache}}?action=keys&limit=N)")]
    }
    async fn probe(&self, ctx: &StepCtx, args: &Args) -> Result<Json, StepError> {
        let a: SyncArgs = typed(self.name(), args)?;
        let (other, caches) = (a.other.as_str(), a.caches);
        let bound = a.max_keys.map_or(MAX_KEYS, |n| n.max(0) as usize);
        let here = Transport::for_step(ctx).await?;
        let mut other_ctx = ctx.clone();
        other_ctx.site = Some(engine::Site {
            name: other.to_string(),
            config: ctx.env.sites.get(other).cloned().ok_or_else(|| {
                StepError::permanent(format!("site `{other}` is not in the environment file"))
            })?,
        });
        let there = Transport::for_step(&other_ctx).await?;
        // The whole deployment, whatever `caches` says: every cache either server
        // backs up to the other is compared too (a guard is never narrowed by a
        // parameter).
        let (caches, added) = every_backed_up(ctx, (&here, &there), other, caches).await?;
        // Infinispan's names for the two sites (`infinispan.site_name`).
        let forward = here
            .status(&super::super::xsite_name(ctx, other), Some(&caches))
            .await?
            .overall;
        let backward = there
            .status(&super::super::xsite_name(ctx, here.site()), Some(&caches))
            .await?
            .overall;
        let a = sizes(&here, &caches).await?;
        let b = sizes(&there, &caches).await?;
        let (keys, differing, total) =
            compare_every_cache(ctx, (&here, &there), other, &caches, bound).await?;
        let mut reasons = Vec::new();
        if forward != "online" {
            reasons.push(format!("replication {}→{other} is {forward}", here.site()));
        }
        if backward != "online" {
            reasons.push(format!("replication {other}→{} is {backward}", here.site()));
        }
        if !differing.is_empty() {
            reasons.push(format!(
                "contents not proven equal: {}",
                differing.join("; ")
            ));
        }
        let in_sync = reasons.is_empty();
        let mut reason = if in_sync {
            format!(
                "both directions online and the same keys in all {} caches ({total} keys)",
                caches.len()
            )
        } else {
            reasons.join("; ")
        };
        if !added.is_empty() {
            reason.push_str(&format!(
                " (compared too, backed up but not in `caches`: {})",
                added.join(", ")
            ));
        }
        Ok(json!({
            "in_sync": in_sync,
            "forward": forward,
            "backward": backward,
            "sizes": {here.site(): a, other: b},
            "keys": keys,
            "reason": reason,
            "summary": format!("{} and {other} {}: {reason}", here.site(), if in_sync { "are in sync" } else { "are not proven in sync" }),
        }))
    }
    async fn apply(&self, ctx: &StepCtx, args: &Args, _: &Outputs) -> Result<Outputs, StepError> {
        let mut out = self
            .probe(ctx, args)
            .await?
            .as_object()
            .cloned()
            .unwrap_or_default();
        // Proven equal, both ways online: each site counts as synchronized.
        if out.get("in_sync") == Some(&Json::Bool(true)) {
            if let (Ok(site), Some(other)) =
                (ctx.require_site(), args.get("other").and_then(Json::as_str))
            {
                crate::ledger::record(&mut out, &site.name.clone(), crate::ledger::SYNCHRONIZED);
                crate::ledger::record(&mut out, other, crate::ledger::SYNCHRONIZED);
            }
        }
        Ok(out)
    }
}
