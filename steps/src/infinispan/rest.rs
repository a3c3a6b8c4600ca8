//! The Infinispan REST transport: the v14 or v15 container paths, BASIC or DIGEST
//! (digest_auth computes the answer to the server's challenge), TLS with a CA file or,
//! for rehearsals, an explicit insecure switch. Errors carry the site, the call and the
//! server's answer.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use crate::config::{AuthScheme, InfinispanConfig, IspnApi};
use engine::{StepCtx, StepError};

use crate::clients::{credentials, env_path, install_crypto};
use crate::text::{error_chain, excerpt};

/// How many times an idempotent call is tried again after a transient failure.
pub const RETRIES: u32 = 5;

/// The pause before retry `attempt` (0-based): 100 ms doubling, capped at 1.6 s, with
/// jitter (between half and all of it) so that clients do not retry in step.
pub fn backoff(attempt: u32) -> Duration {
    let full = Duration::from_millis(100 * (1u64 << attempt.min(4)));
    full.mul_f64(0.5 + fastrand::f64() * 0.5)
}

/// Whether an error is one a retry can cure: no connection, no answer in time, or an
/// answer of 502, 503, 504 or 429.
fn transient(e: &StepError) -> bool {
    let m = &e.message;
    m.contains(": cannot connect:")
        || m.contains(": no answer in time:")
        || m.contains(": request failed:")
        || [
            " answered 502",
            " answered 503",
            " answered 504",
            " answered 429",
        ]
        .iter()
        .any(|c| m.contains(c))
}

/// Servers that did not answer a connection within the connect timeout, by base URL,
/// and when: for a while, a call to them fails at once instead of waiting again (a dead
/// endpoint costs its timeout once, not once per call).
static SILENT: LazyLock<Mutex<HashMap<String, std::time::Instant>>> = LazyLock::new(Mutex::default);

/// How long a silent server is not asked again.
const SILENT_FOR: Duration = Duration::from_secs(30);

/// The routes each server has, read once per process (per run) by base URL.
static VERSIONS: LazyLock<Mutex<HashMap<String, (IspnApi, String)>>> =
    LazyLock::new(Mutex::default);

/// Which routes a server's `GET /rest/v2/server` answer means, and why.
///
/// The answer is `{"version": Version.printVersion()}` (ServerResource.ServerInfo,
/// 14.0.x and 15.0.x), that is `BRAND 'CODENAME' VERSION`: `Infinispan 'Flying
/// Saucer' 14.0.35.Final`, `Infinispan 'I'm Still Standing' 15.0.22.Final`, or Red Hat
/// Data Grid's brand and version (`8.4.x` is Infinispan 14, `8.5` and later 15+).
/// Infinispan 14 serves the container-level calls only under
/// `/rest/v2/cache-managers/{name}` (XSiteResource at 14.0.35.Final); 15 under
/// `/rest/v2/container`.
///
/// # Errors
/// An answer that names no version this can map: never guessed.
pub fn api_of_server(body: &str) -> Result<(IspnApi, String), VersionError> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|_| VersionError::NotJson(excerpt(body.trim(), 120)))?;
    let text = v["version"]
        .as_str()
        .ok_or_else(|| VersionError::NoVersion(excerpt(body.trim(), 120)))?;
    let version = text.split_whitespace().last().unwrap_or_default();
    let mut nums = version.split('.').map(|n| n.parse::<u32>().ok());
    let (Some(Some(major)), Some(Some(minor))) = (nums.next(), nums.next()) else {
        return Err(VersionError::Unreadable(text.to_string()));
    };
    let data_grid = text.contains("Data Grid");
    let api = match (data_grid, major, minor) {
        (true, 8, m) if m <= 4 => IspnApi::V14,
        (true, 8, _) => IspnApi::V15,
        (true, m, _) if m > 8 => IspnApi::V15,
        (false, 13 | 14, _) => IspnApi::V14,
        (false, m, _) if m >= 15 => IspnApi::V15,
        _ => return Err(VersionError::TooOld(text.to_string())),
    };
    Ok((api, text.to_string()))
}

/// Why `GET /rest/v2/server`'s answer names no version runbook can map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("no `version` in {0}")]
    NoVersion(String),
    #[error("cannot read a version number in `{0}`")]
    Unreadable(String),
    #[error("`{0}` is older than the versions runbook knows (Infinispan 14, Data Grid 8.4)")]
    TooOld(String),
}

/// The container-level prefix for a site as far as known without a call: declared,
/// or already read from the server in this process; else `None`.
pub fn known_api(cfg: &InfinispanConfig) -> Option<(IspnApi, String)> {
    if let Some(api) = cfg.api {
        return Some((api, "declared in the environment file".into()));
    }
    let base = cfg.url.as_deref()?.trim_end_matches('/');
    VERSIONS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(base)
        .map(|(api, v)| (*api, format!("the server says `{v}`")))
}

/// The container-level prefix of an API version.
pub fn container_prefix(api: IspnApi, cfg: &InfinispanConfig) -> String {
    match api {
        IspnApi::V15 => "/rest/v2/container".to_string(),
        IspnApi::V14 => format!(
            "/rest/v2/cache-managers/{}",
            cfg.container.as_deref().unwrap_or("default")
        ),
    }
}

pub struct Rest {
    pub site: String,
    pub base: String,
    api: IspnApi,
    /// How the routes were chosen: declared, or the server's version.
    pub api_source: String,
    container_name: String,
    client: reqwest::Client,
    creds: Option<(AuthScheme, String, String)>,
    /// The last digest challenge, reused with an incremented nonce count.
    prompt: Mutex<Option<digest_auth::WwwAuthenticateHeader>>,
}

/// An answer: status and body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Rest {
    /// # Errors
    /// No URL, an unreadable CA file, or credentials that cannot be resolved.
    pub async fn new(ctx: &StepCtx, site: &str, cfg: &InfinispanConfig) -> Result<Rest, StepError> {
        install_crypto();
        let base = cfg.url.clone().ok_or_else(|| {
            StepError::permanent(format!(
                "site `{site}`: infinispan.url is needed for the REST transport"
            ))
        })?;
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        if let Some(tls) = &cfg.tls {
            if let Some(ca) = &tls.ca_file {
                let path = env_path(&ctx.env, ca);
                let pem = std::fs::read(&path).map_err(|e| {
                    StepError::permanent(format!(
                        "site `{site}`: cannot read CA file `{}`: {e}",
                        path.display()
                    ))
                })?;
                let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                    StepError::permanent(format!(
                        "site `{site}`: CA file `{}` is not PEM: {e}",
                        path.display()
                    ))
                })?;
                builder = builder.add_root_certificate(cert);
            }
            if tls.insecure {
                tracing::warn!(
                    "site `{site}`: TLS certificates are NOT verified (infinispan.tls.insecure)"
                );
                builder = builder.danger_accept_invalid_certs(true);
            }
        }
        let client = builder
            .build()
            .map_err(|e| StepError::permanent(format!("site `{site}`: HTTP client: {e}")))?;
        let creds = match &cfg.auth {
            Some(auth) => {
                let (u, p) = credentials(ctx, site, auth).await?;
                Some((auth.scheme, u, p))
            }
            None => None,
        };
        let mut rest = Rest {
            site: site.to_string(),
            base: base.trim_end_matches('/').to_string(),
            api: cfg.api.unwrap_or(IspnApi::V15),
            api_source: String::new(),
            container_name: cfg.container.clone().unwrap_or_else(|| "default".into()),
            client,
            creds,
            prompt: Mutex::new(None),
        };
        match known_api(cfg) {
            Some((api, why)) => {
                rest.api = api;
                rest.api_source = why;
            }
            None => {
                let a = rest
                    .call(reqwest::Method::GET, "/rest/v2/server", Duration::from_secs(30))
                    .await
                    .map_err(|e| {
                        // The hint only where the server answered without a version
                        // (no such route), not for refused credentials or silence.
                        if e.message.contains(" answered 404") {
                            StepError { message: format!("{} — which Infinispan version (and so which routes) cannot be read; declare `infinispan.api: v14` or `v15` for site `{site}` if the server does not answer it", e.message), ..e }
                        } else {
                            e
                        }
                    })?;
                let (api, text) = api_of_server(&a.body).map_err(|e| {
                    StepError::permanent(format!(
                        "site `{site}`: GET {}/rest/v2/server: {e}; declare `infinispan.api: v14` or `v15` in the environment file",
                        rest.base
                    ))
                })?;
                VERSIONS
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(rest.base.clone(), (api, text.clone()));
                tracing::info!(site = %site, version = %text, ?api, "Infinispan version read from the server");
                rest.api = api;
                rest.api_source = format!("the server says `{text}`");
            }
        }
        Ok(rest)
    }

    /// The container-level prefix for this server version.
    pub fn container(&self) -> String {
        match self.api {
            IspnApi::V15 => "/rest/v2/container".to_string(),
            IspnApi::V14 => format!("/rest/v2/cache-managers/{}", self.container_name),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn digest_header(&self, method: &str, path: &str) -> Option<String> {
        let (_, user, pw) = self.creds.as_ref()?;
        let mut guard = self.prompt.lock().unwrap_or_else(|p| p.into_inner());
        let prompt = guard.as_mut()?;
        let ctx = digest_auth::AuthContext::new_with_method(
            user,
            pw,
            path,
            Option::<&[u8]>::None,
            digest_auth::HttpMethod::from(method.to_string()),
        );
        prompt.respond(&ctx).ok().map(|h| h.to_header_string())
    }

    async fn send(
        &self,
        method: &reqwest::Method,
        path: &str,
        timeout: Duration,
    ) -> Result<reqwest::Response, StepError> {
        let mut req = self
            .client
            .request(method.clone(), self.url(path))
            .timeout(timeout);
        match &self.creds {
            Some((AuthScheme::Basic, u, p)) => req = req.basic_auth(u, Some(p)),
            Some((AuthScheme::Digest, _, _)) => {
                if let Some(h) = self.digest_header(method.as_str(), path) {
                    req = req.header("authorization", h);
                }
            }
            None => {}
        }
        let silent_since = SILENT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.base)
            .copied()
            .filter(|at| at.elapsed() < SILENT_FOR);
        if let Some(at) = silent_since {
            return Err(StepError::transient(format!(
                "site `{}`: {method} {}: cannot connect: no connection within the connect timeout {} s ago; not asked again for {} s",
                self.site,
                self.url(path),
                at.elapsed().as_secs(),
                SILENT_FOR.as_secs()
            )));
        }
        req.send().await.map_err(|e| {
            let chain = error_chain(&e);
            if e.is_connect() && e.is_timeout() {
                SILENT
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(self.base.clone(), std::time::Instant::now());
            }
            if chain.to_lowercase().contains("certificate") {
                // A certificate the client does not trust will not be trusted on retry.
                return StepError::permanent(format!(
                    "site `{}`: {method} {}: TLS: {chain} (give the site's CA with infinispan.tls.ca_file)",
                    self.site,
                    self.url(path)
                ));
            }
            let what = if e.is_connect() {
                "cannot connect"
            } else if e.is_timeout() {
                "no answer in time"
            } else {
                "request failed"
            };
            let message = format!(
                "site `{}`: {method} {}: {what}: {}",
                self.site,
                self.url(path),
                chain
            );
            // Not connected: the request never left. Otherwise it may have reached
            // the server and only its answer was lost.
            if e.is_connect() {
                StepError::transient(message)
            } else {
                StepError::outcome_unknown(message)
            }
        })
    }

    /// An idempotent call (reads, take-offline, bring-online, push-state and its
    /// status): transient failures (no connection, no answer in time, 502, 503, 504,
    /// 429) are tried again with jittered exponential backoff, up to
    /// [`RETRIES`] more times (about 3 s in all). A 500 is the server's verdict on the
    /// operation, not a transient failure: it is returned at once. A write whose answer
    /// was lost after it was sent is returned at once too (outcome unknown): the
    /// executor checks its postcondition before anything sends it again.
    ///
    /// # Errors
    /// As [`Rest::call_once`], once the retries are spent.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        timeout: Duration,
    ) -> Result<Answer, StepError> {
        let mut attempt = 0u32;
        loop {
            match self.call_once(method.clone(), path, timeout).await {
                // A write whose answer was lost (it may have been applied) is not sent
                // again here: the step checks its postcondition first, and only sends
                // it again when that does not hold. Reads are asked again.
                Err(e)
                    if e.retryable
                        && attempt < RETRIES
                        && transient(&e)
                        && !(e.outcome_unknown && method != reqwest::Method::GET)
                        && !e.message.contains("not asked again") =>
                {
                    let pause = backoff(attempt);
                    tracing::debug!(site = %self.site, %path, attempt, ?pause, "transient failure, trying again: {}", e.message);
                    attempt += 1;
                    tokio::time::sleep(pause).await;
                }
                Err(mut e) if attempt > 0 => {
                    e.message = format!("{} (after {} attempts)", e.message, attempt + 1);
                    return Err(e);
                }
                other => return other,
            }
        }
    }

    /// One call, never repeated (for destructive calls: a clear). A 401 with a digest
    /// challenge is answered once. Non-2xx answers are errors: 5xx transient, others
    /// permanent.
    ///
    /// # Errors
    /// Connection failures and non-2xx answers, with site, call and answer.
    pub async fn call_once(
        &self,
        method: reqwest::Method,
        path: &str,
        timeout: Duration,
    ) -> Result<Answer, StepError> {
        let mut resp = self.send(&method, path, timeout).await?;
        if resp.status().as_u16() == 401 && matches!(self.creds, Some((AuthScheme::Digest, _, _))) {
            let challenge = resp
                .headers()
                .get_all("www-authenticate")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.starts_with("Digest"))
                .map(str::to_string);
            if let Some(c) = challenge {
                if let Ok(p) = digest_auth::parse(&c) {
                    *self.prompt.lock().unwrap_or_else(|p| p.into_inner()) = Some(p);
                    resp = self.send(&method, path, timeout).await?;
                }
            }
        }
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(Answer { status, body });
        }
        let call = format!("site `{}`: {method} {}", self.site, self.url(path));
        Err(match status {
            401 | 403 => StepError::http(
                status,
                format!(
                    "{call} answered {status}: the credentials were refused{} ({}): {}",
                    match &self.creds {
                        Some((scheme, user, _)) => format!(" (user `{user}`, {scheme:?})"),
                        None => " (no infinispan.auth in the environment file)".into(),
                    },
                    // 401: not authenticated (a wrong user or password); 403: authenticated
                    // without the permission (the x-site calls need ADMIN).
                    if status == 401 {
                        "the user or password is wrong: check infinispan.auth in the environment file"
                    } else {
                        "the user is known but lacks the permission: x-site calls need ADMIN"
                    },
                    excerpt(body.trim(), 300)
                ),
            ),
            s => StepError::http(
                s,
                format!("{call} answered {status}: {}", excerpt(body.trim(), 300)),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_version_chooses_the_routes() {
        // ServerResource.ServerInfo: {"version": Version.printVersion()} at 14.0.35.Final
        // and 15.0.22.Final; the codenames from build/configuration/pom.xml.
        let v14 = r#"{"version":"Infinispan 'Flying Saucer' 14.0.35.Final"}"#;
        assert_eq!(api_of_server(v14).unwrap().0, IspnApi::V14);
        let v15 = r#"{"version":"Infinispan 'I'm Still Standing' 15.0.22.Final"}"#;
        assert_eq!(api_of_server(v15).unwrap().0, IspnApi::V15);
        let dg84 = r#"{"version":"Red Hat Data Grid 'Flying Saucer' 8.4.6.GA"}"#;
        assert_eq!(api_of_server(dg84).unwrap().0, IspnApi::V14);
        let dg85 = r#"{"version":"Red Hat Data Grid 'I'm Still Standing' 8.5.1.GA"}"#;
        assert_eq!(api_of_server(dg85).unwrap().0, IspnApi::V15);
        assert!(api_of_server(r#"{"version":"Infinispan 'x' 12.1.0.Final"}"#).is_err());
        assert!(api_of_server("<html>").is_err());
        assert!(api_of_server(r#"{"name":"x"}"#).is_err());
    }
}
