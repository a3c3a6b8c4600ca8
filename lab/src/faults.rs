//! Faults the lab can be told to inject, at start (`--fault SPEC`) or at runtime
//! (`POST /admin/faults`). Each fault is one line of text:
//!
//! | spec | effect |
//! |---|---|
//! | `offline-not-sticking:SITE[:NODE[:ROUNDS]]` | take-offline on SITE is refused by NODE (default: its last node), which stays online (status `mixed`; the answer is Infinispan's `Could not take the site offline on nodes:[NODE]`); with ROUNDS, only for that many take-offline requests, then it complies |
//! | `push-error:CACHE[:TIMES]` | push-state of CACHE ends in `ERROR` (TIMES times, default always) |
//! | `cache-error:CACHE` | x-site actions on CACHE fail: `ISPN012047` (500 per cache, an error value inside a container answer) |
//! | `http-5xx:SHARE[:SITE]` | a share (0..1) of Infinispan REST requests answer 503 (all sites, or SITE) |
//! | `http-5xx-burst:COUNT[:SITE[:PATH]]` | the next COUNT Infinispan REST requests answer 503 (all sites, or SITE; only those whose path contains PATH) |
//! | `answer-lost:COUNT[:SITE]` | the next COUNT Infinispan REST requests that change state (not GETs; all sites, or SITE) are carried out, then their connection is closed without an answer: the client cannot tell whether they were applied |
//! | `latency:DURATION` | every lab request waits this long first |
//! | `slow-scale-down:DURATION` | Keycloak takes this much longer per instance to scale down |
//! | `partition` | the sites cannot reach each other: no replication, push-state fails |
//! | `batch-stuck` | Infinispan Batch CRs stay in `Initializing` |
//! | `site-down:SITE` | SITE's Infinispan does not answer and its Keycloak is not ready |
//! | `pg-secret-differs:SITE` | (PGO lab) SITE's pguser secret holds another password than the other site's |
//! | `nlb-unhealthy:SITE` | (accelerator lab) SITE's NLB health check of its targets fails (its Keycloak is fine): its endpoint turns `UNHEALTHY` after the threshold |
//! | `nlb-site-tag:SITE[:VALUE]` | (accelerator lab) SITE's NLB carries `site=VALUE` instead of its own name; without VALUE, no `site` tag at all |
//! | `accelerator-writer:SITE[:READS]` | (accelerator lab) another writer (the fencing Lambda, a colleague) removes SITE's endpoint from the group right after the READS-th read of the group from now is answered (default 1); once |
//! | `accelerator-busy:COUNT` | (accelerator lab) the next COUNT `AddEndpoints`/`RemoveEndpoints` answer `TransactionInProgressException` |
//! | `pg-replay-delay:DURATION` | (PGO lab) each standby replays WAL this long after it was written (`recovery_min_apply_delay`): the replay lag grows |

use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    OfflineNotSticking {
        site: String,
        node: Option<String>,
        /// How many more take-offline requests the node refuses; `None`: all.
        rounds: Option<u32>,
    },
    PushError {
        cache: String,
        times: Option<u32>,
    },
    CacheError {
        cache: String,
    },
    Http5xx {
        share: f64,
        site: Option<String>,
    },
    Http5xxBurst {
        remaining: u32,
        site: Option<String>,
        /// Only requests whose path contains this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    AnswerLost {
        remaining: u32,
        site: Option<String>,
    },
    Latency {
        #[serde(with = "dur")]
        delay: Duration,
    },
    SlowScaleDown {
        #[serde(with = "dur")]
        extra: Duration,
    },
    Partition,
    BatchStuck,
    SiteDown {
        site: String,
    },
    /// CloudNativePG #11074: a demotion token is wiped from the status a second after
    /// it was written.
    CnpgTokenVanishes,
    PgReplayDelay {
        #[serde(with = "dur")]
        delay: Duration,
    },
    PgSecretDiffers {
        site: String,
    },
    NlbUnhealthy {
        site: String,
    },
    NlbSiteTag {
        site: String,
        value: Option<String>,
    },
    AcceleratorWriter {
        site: String,
        /// Reads of the group still to answer before it acts.
        after: u32,
    },
    AcceleratorBusy {
        remaining: u32,
    },
}

mod dur {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("bad fault `{spec}`: {why} (see `runbook lab --help` for the list)")]
pub struct FaultError {
    pub spec: String,
    pub why: String,
}

/// The faults of the databases and the traffic (PGO, Global Accelerator, NLBs).
fn parse_platform<'a>(
    kind: &str,
    arg: &dyn Fn(usize) -> Option<&'a str>,
    err: &dyn Fn(&str) -> FaultError,
) -> Result<Fault, FaultError> {
    Ok(match kind {
        "pg-replay-delay" => Fault::PgReplayDelay {
            delay: humantime::parse_duration(
                arg(1).ok_or_else(|| err("needs a duration: pg-replay-delay:5s"))?,
            )
            .map_err(|e| err(&e.to_string()))?,
        },
        "pg-secret-differs" => Fault::PgSecretDiffers {
            site: arg(1)
                .ok_or_else(|| err("needs a site: pg-secret-differs:site-b"))?
                .to_string(),
        },
        "nlb-unhealthy" => Fault::NlbUnhealthy {
            site: arg(1)
                .ok_or_else(|| err("needs a site: nlb-unhealthy:site-b"))?
                .to_string(),
        },
        "nlb-site-tag" => Fault::NlbSiteTag {
            site: arg(1)
                .ok_or_else(|| err("needs a site: nlb-site-tag:site-b[:site-a]"))?
                .to_string(),
            value: arg(2).map(str::to_string),
        },
        "accelerator-writer" => Fault::AcceleratorWriter {
            site: arg(1)
                .ok_or_else(|| err("needs a site: accelerator-writer:site-a[:READS]"))?
                .to_string(),
            after: match arg(2) {
                None => 1,
                Some(n) => n
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| err("reads must be a number above 0"))?,
            },
        },
        "accelerator-busy" => Fault::AcceleratorBusy {
            remaining: arg(1)
                .ok_or_else(|| err("needs a count: accelerator-busy:2"))?
                .parse()
                .map_err(|_| err("count must be a number"))?,
        },
        _ => return Err(err("unknown fault kind")),
    })
}

impl Fault {
    /// Parse one fault spec.
    ///
    /// # Errors
    /// An unknown kind or a bad argument, naming the spec.
    pub fn parse(spec: &str) -> Result<Fault, FaultError> {
        let err = |why: &str| FaultError {
            spec: spec.to_string(),
            why: why.to_string(),
        };
        let parts: Vec<&str> = spec.trim().split(':').collect();
        let arg = |i: usize| parts.get(i).map(|s| s.trim()).filter(|s| !s.is_empty());
        let fault = match parts[0].trim() {
            "offline-not-sticking" => Fault::OfflineNotSticking {
                site: arg(1)
                    .ok_or_else(|| err("needs a site: offline-not-sticking:site-b"))?
                    .to_string(),
                node: arg(2).map(str::to_string),
                rounds: match arg(3) {
                    None => None,
                    Some(t) => Some(t.parse().map_err(|_| err("rounds must be a number"))?),
                },
            },
            "push-error" => Fault::PushError {
                cache: arg(1)
                    .ok_or_else(|| err("needs a cache: push-error:sessions[:times]"))?
                    .to_string(),
                times: match arg(2) {
                    None => None,
                    Some(t) => Some(t.parse().map_err(|_| err("times must be a number"))?),
                },
            },
            "cache-error" => Fault::CacheError {
                cache: arg(1)
                    .ok_or_else(|| err("needs a cache: cache-error:work"))?
                    .to_string(),
            },
            "http-5xx" => {
                let share: f64 = arg(1)
                    .ok_or_else(|| err("needs a share: http-5xx:0.3"))?
                    .parse()
                    .map_err(|_| err("share must be a number between 0 and 1"))?;
                if !(0.0..=1.0).contains(&share) {
                    return Err(err("share must be between 0 and 1"));
                }
                Fault::Http5xx {
                    share,
                    site: arg(2).map(str::to_string),
                }
            }
            "http-5xx-burst" => Fault::Http5xxBurst {
                remaining: arg(1)
                    .ok_or_else(|| err("needs a count: http-5xx-burst:5"))?
                    .parse()
                    .map_err(|_| err("count must be a number"))?,
                site: arg(2).map(str::to_string).filter(|s| !s.is_empty()),
                path: arg(3).map(str::to_string),
            },
            "answer-lost" => Fault::AnswerLost {
                remaining: arg(1)
                    .ok_or_else(|| err("needs a count: answer-lost:5"))?
                    .parse()
                    .map_err(|_| err("count must be a number"))?,
                site: arg(2).map(str::to_string).filter(|s| !s.is_empty()),
            },
            "latency" => Fault::Latency {
                delay: humantime::parse_duration(
                    arg(1).ok_or_else(|| err("needs a duration: latency:50ms"))?,
                )
                .map_err(|e| err(&e.to_string()))?,
            },
            "slow-scale-down" => Fault::SlowScaleDown {
                extra: humantime::parse_duration(
                    arg(1).ok_or_else(|| err("needs a duration: slow-scale-down:30s"))?,
                )
                .map_err(|e| err(&e.to_string()))?,
            },
            "partition" => Fault::Partition,
            "batch-stuck" => Fault::BatchStuck,
            "cnpg-token-vanishes" => Fault::CnpgTokenVanishes,
            "site-down" => Fault::SiteDown {
                site: arg(1)
                    .ok_or_else(|| err("needs a site: site-down:site-a"))?
                    .to_string(),
            },
            other => return parse_platform(other, &arg, &err),
        };
        Ok(fault)
    }

    /// The kind, as written in a spec (used to lift a fault).
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::OfflineNotSticking { .. } => "offline-not-sticking",
            Fault::PushError { .. } => "push-error",
            Fault::CacheError { .. } => "cache-error",
            Fault::Http5xx { .. } => "http-5xx",
            Fault::Http5xxBurst { .. } => "http-5xx-burst",
            Fault::AnswerLost { .. } => "answer-lost",
            Fault::Latency { .. } => "latency",
            Fault::SlowScaleDown { .. } => "slow-scale-down",
            Fault::Partition => "partition",
            Fault::BatchStuck => "batch-stuck",
            Fault::SiteDown { .. } => "site-down",
            Fault::CnpgTokenVanishes => "cnpg-token-vanishes",
            Fault::PgReplayDelay { .. } => "pg-replay-delay",
            Fault::PgSecretDiffers { .. } => "pg-secret-differs",
            Fault::NlbUnhealthy { .. } => "nlb-unhealthy",
            Fault::NlbSiteTag { .. } => "nlb-site-tag",
            Fault::AcceleratorWriter { .. } => "accelerator-writer",
            Fault::AcceleratorBusy { .. } => "accelerator-busy",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            Fault::parse("answer-lost:3:site-b").unwrap(),
            Fault::AnswerLost {
                remaining: 3,
                site: Some("site-b".into())
            }
        );
        assert!(Fault::parse("answer-lost").is_err());
        assert_eq!(
            Fault::parse("offline-not-sticking:site-b").unwrap(),
            Fault::OfflineNotSticking {
                site: "site-b".into(),
                node: None,
                rounds: None
            }
        );
        assert_eq!(
            Fault::parse("offline-not-sticking:site-b::3").unwrap(),
            Fault::OfflineNotSticking {
                site: "site-b".into(),
                node: None,
                rounds: Some(3)
            }
        );
        assert_eq!(
            Fault::parse("http-5xx-burst:4:site-a").unwrap(),
            Fault::Http5xxBurst {
                remaining: 4,
                site: Some("site-a".into()),
                path: None,
            }
        );
        assert_eq!(
            Fault::parse("push-error:sessions:2").unwrap(),
            Fault::PushError {
                cache: "sessions".into(),
                times: Some(2)
            }
        );
        assert_eq!(
            Fault::parse("latency:50ms").unwrap(),
            Fault::Latency {
                delay: Duration::from_millis(50)
            }
        );
        assert_eq!(Fault::parse("partition").unwrap(), Fault::Partition);
        assert!(Fault::parse("http-5xx:2").is_err());
        assert!(Fault::parse("bogus")
            .unwrap_err()
            .to_string()
            .contains("unknown fault kind"));
    }
}
