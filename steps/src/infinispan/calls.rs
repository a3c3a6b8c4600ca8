//! One description of every Infinispan call: the REST method and path (for a
//! container prefix), and the CLI command a Batch runs. The transports make the calls
//! from it and the plan shows it (`Action::describe`), so a plan cannot show a call the
//! run does not make, or miss one it does.
//!
//! Paths from XSiteResource and CacheResourceV2 at 14.0.35.Final and 15.0.22.Final;
//! commands from cli/commands/rest/Site.java, ClearCache.java and Ls.java.

use reqwest::Method;

/// One Infinispan operation.
#[derive(Debug, Clone, Copy)]
pub enum Op<'a> {
    /// `take-offline`, `bring-online`, `start-push-state`, `cancel-push-state` on every cache.
    ContainerAction {
        backup: &'a str,
        action: &'a str,
    },
    /// The same on one cache.
    CacheAction {
        cache: &'a str,
        backup: &'a str,
        action: &'a str,
    },
    ContainerStatus {
        backup: &'a str,
    },
    CacheStatus {
        cache: &'a str,
        backup: &'a str,
    },
    PushStatus {
        cache: &'a str,
    },
    ClearPushStatus {
        cache: &'a str,
    },
    /// Destructive: sent once, never retried by the transport.
    Clear {
        cache: &'a str,
    },
    Keys {
        cache: &'a str,
        limit: usize,
    },
    Size {
        cache: &'a str,
    },
    CacheNames,
    /// The cache manager's information (`local_site`, `cluster_members`, ...):
    /// CacheManagerResource/ContainerResource `getInfo`.
    ContainerInfo,
    /// Every backup site of one cache and its status (XSiteResource `backupStatus`).
    CacheBackups {
        cache: &'a str,
    },
}

/// The CLI verb of a REST action name.
pub fn cli_verb(action: &str) -> &str {
    match action {
        "start-push-state" => "push-site-state",
        other => other,
    }
}

impl Op<'_> {
    /// The REST call, given the container-level prefix (`/rest/v2/container` or
    /// `/rest/v2/cache-managers/NAME`).
    pub fn rest(&self, container: &str) -> (Method, String) {
        match *self {
            Op::ContainerAction { backup, action } => (
                Method::POST,
                format!("{container}/x-site/backups/{backup}?action={action}"),
            ),
            Op::CacheAction {
                cache,
                backup,
                action,
            } => (
                Method::POST,
                format!("/rest/v2/caches/{cache}/x-site/backups/{backup}?action={action}"),
            ),
            Op::ContainerStatus { backup } => {
                (Method::GET, format!("{container}/x-site/backups/{backup}"))
            }
            Op::CacheStatus { cache, backup } => (
                Method::GET,
                format!("/rest/v2/caches/{cache}/x-site/backups/{backup}"),
            ),
            Op::PushStatus { cache } => (
                Method::GET,
                format!("/rest/v2/caches/{cache}/x-site/backups?action=push-state-status"),
            ),
            Op::ClearPushStatus { cache } => (
                Method::POST,
                format!("/rest/v2/caches/{cache}/x-site/local?action=clear-push-state-status"),
            ),
            Op::Clear { cache } => (
                Method::POST,
                format!("/rest/v2/caches/{cache}?action=clear"),
            ),
            Op::Keys { cache, limit } => (
                Method::GET,
                format!("/rest/v2/caches/{cache}?action=keys&limit={limit}"),
            ),
            Op::Size { cache } => (Method::GET, format!("/rest/v2/caches/{cache}?action=size")),
            Op::CacheNames => (Method::GET, "/rest/v2/caches".to_string()),
            Op::ContainerInfo => (Method::GET, container.to_string()),
            Op::CacheBackups { cache } => (
                Method::GET,
                format!("/rest/v2/caches/{cache}/x-site/backups"),
            ),
        }
    }

    /// The CLI command inside a Batch; `None` where the Batch transport has none.
    pub fn cli(&self) -> Option<String> {
        Some(match *self {
            Op::ContainerAction { backup, action } => {
                format!("site {} --all-caches --site={backup}", cli_verb(action))
            }
            Op::CacheAction {
                cache,
                backup,
                action,
            } => format!("site {} --cache={cache} --site={backup}", cli_verb(action)),
            Op::ContainerStatus { backup } => format!("site status --all-caches --site={backup}"),
            Op::CacheStatus { cache, backup } => {
                format!("site status --cache={cache} --site={backup}")
            }
            Op::PushStatus { cache } => format!("site push-site-status --cache={cache}"),
            Op::ClearPushStatus { cache } => format!("site clear-push-site-status --cache={cache}"),
            Op::Clear { cache } => format!("clearcache {cache}"),
            Op::Keys { cache, limit } => {
                format!("ls caches/{cache} --pretty-print=JSON --max-items={limit}")
            }
            Op::Size { .. } | Op::CacheNames | Op::ContainerInfo | Op::CacheBackups { .. } => {
                return None
            }
        })
    }

    /// The REST call as the plan shows it.
    pub fn rest_line(&self, base: &str, container: &str) -> String {
        let (m, p) = self.rest(container);
        format!("{m} {base}{p}")
    }
}
