//! How a step reaches a site: its typed section of the environment file, a Kubernetes
//! client for its context (cached per process), the AWS configuration (cached), and
//! credentials resolved from their references at the moment of use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, Once};

use engine::env::Environment;

use crate::config::{IspnAuth, SiteConfig};
use engine::{StepCtx, StepError};

/// ring and aws-lc-rs are both linked (the AWS SDK brings the latter): pick ring for
/// every rustls user in the process, once.
pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The step's site and its typed configuration.
///
/// # Errors
/// The step has no site, or the environment file does not describe it.
pub fn site_config(ctx: &StepCtx) -> Result<(String, SiteConfig), StepError> {
    let site = ctx.require_site()?;
    let cfg = crate::config::sites(&ctx.env)
        .get(&site.name)
        .cloned()
        .ok_or_else(|| {
            StepError::permanent(format!(
                "site `{}` is not described in the environment file",
                site.name
            ))
        })?;
    Ok((site.name.clone(), cfg))
}

/// A path from the environment file, relative to the file's directory.
pub fn env_path(env: &Environment, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    env.file
        .as_ref()
        .and_then(|f| f.parent())
        .map(|d| d.join(path))
        .unwrap_or_else(|| path.to_path_buf())
}

fn missing(site: &str, what: &str) -> StepError {
    StepError::configuration(format!(
        "site `{site}` has no `{what}` in the environment file"
    ))
}

static KUBE: LazyLock<Mutex<HashMap<String, kube::Client>>> = LazyLock::new(Mutex::default);

/// A Kubernetes client for the site's context, and its namespace.
///
/// # Errors
/// No `kubernetes` section, or the kubeconfig cannot be read or used.
pub async fn kube_client(ctx: &StepCtx) -> Result<(kube::Client, String), StepError> {
    install_crypto();
    let (site, cfg) = site_config(ctx)?;
    let k = cfg.kubernetes.ok_or_else(|| missing(&site, "kubernetes"))?;
    let key = format!("{}|{:?}|{:?}", ctx.env.digest, k.kubeconfig, k.context);
    if let Some(c) = KUBE.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok((c.clone(), k.namespace));
    }
    let config = kube_config(ctx, &site, &k).await?;
    let client = kube::Client::try_from(config)
        .map_err(|e| StepError::permanent(format!("site `{site}`: Kubernetes client: {e}")))?;
    KUBE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, client.clone());
    Ok((client, k.namespace))
}

/// The site's kubeconfig context resolved: the API server it names, and the context
/// (as declared, or the kubeconfig's current one when the site names none).
///
/// # Errors
/// No `kubernetes` section, or a kubeconfig that cannot be read or used.
pub async fn kube_target(ctx: &StepCtx) -> Result<(String, Option<String>), StepError> {
    install_crypto();
    let (site, cfg) = site_config(ctx)?;
    let k = cfg.kubernetes.ok_or_else(|| missing(&site, "kubernetes"))?;
    let config = kube_config(ctx, &site, &k).await?;
    Ok((config.cluster_url.to_string(), k.context.clone()))
}

async fn kube_config(
    ctx: &StepCtx,
    site: &str,
    k: &crate::config::KubernetesConfig,
) -> Result<kube::Config, StepError> {
    let opts = kube::config::KubeConfigOptions {
        context: k.context.clone(),
        ..Default::default()
    };
    match &k.kubeconfig {
        Some(path) => {
            let path = env_path(&ctx.env, path);
            let kc = kube::config::Kubeconfig::read_from(&path).map_err(|e| {
                StepError::permanent(format!(
                    "site `{site}`: cannot read kubeconfig `{}`: {e}",
                    path.display()
                ))
            })?;
            kube::Config::from_custom_kubeconfig(kc, &opts).await
        }
        None => kube::Config::from_kubeconfig(&opts).await,
    }
    .map_err(|e| {
        StepError::permanent(format!(
            "site `{site}`: kubeconfig context {:?}: {e}",
            k.context
        ))
    })
}

static AWS: LazyLock<Mutex<HashMap<String, aws_config::SdkConfig>>> = LazyLock::new(Mutex::default);

/// The AWS SDK configuration of the environment: region and endpoint from the file,
/// credentials from the SDK's standard chain (the lab accepts any, so a lab
/// environment gets placeholder ones when the chain has none).
///
/// # Errors
/// No `aws` section.
pub async fn aws_config(env: &Environment) -> Result<aws_config::SdkConfig, StepError> {
    install_crypto();
    let aws = crate::config::aws(env).cloned().ok_or_else(|| {
        StepError::configuration(
            "the environment file has no `aws` section (region, endpoint_url, aurora_cluster)",
        )
    })?;
    if aws.region.is_empty() {
        return Err(StepError::configuration(
            "the environment file's `aws:` section gives no `region` (the AWS connection: region, and endpoint_url for an emulator)",
        ));
    }
    if let Some(c) = AWS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&env.digest)
    {
        return Ok(c.clone());
    }
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(aws_https_client())
        .region(aws_config::Region::new(aws.region.clone()));
    if let Some(url) = &aws.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if env.lab.is_some() && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader = loader.credentials_provider(aws_sdk_rds::config::Credentials::new(
            "lab",
            "lab",
            None,
            None,
            "runbook-lab",
        ));
    }
    let config = loader.load().await;
    AWS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(env.digest.clone(), config.clone());
    Ok(config)
}

/// The SDK's HTTPS client (also its credential providers': IMDS, STS, ECS) over rustls
/// with ring, the crypto provider `install_crypto` installs for every other client.
pub fn aws_https_client() -> aws_sdk_route53::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Username and password from their references. Errors name the reference, never a value.
///
/// # Errors
/// A reference that cannot be resolved.
pub async fn credentials(
    ctx: &StepCtx,
    site: &str,
    auth: &IspnAuth,
) -> Result<(String, String), StepError> {
    let env_var = |name: &str, what: &str| {
        std::env::var(name).map_err(|_| {
            StepError::permanent(format!(
                "site `{site}`: the Infinispan {what} is read from ${name}, which is not set"
            ))
        })
    };
    let mut user = match (&auth.username, &auth.username_env) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(var)) => Some(env_var(var, "username")?),
        _ => None,
    };
    let mut password = None;
    if let Some(var) = &auth.password_env {
        password = Some(env_var(var, "password")?);
    } else if let Some(file) = &auth.password_file {
        let path = env_path(&ctx.env, file);
        let text = engine::env::read_input(&path).map_err(|e| {
            StepError::permanent(format!(
                "site `{site}`: cannot read the Infinispan password file `{}`: {e}",
                path.display()
            ))
        })?;
        password = Some(text.trim_end_matches(['\n', '\r']).to_string());
    } else if let Some(secret) = &auth.secret {
        let (client, ns) = kube_client(ctx).await?;
        let api: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client, &ns);
        let s = api.get(secret).await.map_err(|e| {
            StepError::transient(format!(
                "site `{site}`: cannot read secret `{ns}/{secret}`: {e}"
            ))
        })?;
        let data = s.data.unwrap_or_default();
        let field = |k: &str| {
            data.get(k)
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        };
        if user.is_none() {
            user = field("username");
        }
        password = field("password");
        if password.is_none() {
            return Err(StepError::permanent(format!(
                "site `{site}`: secret `{ns}/{secret}` has no key `password`"
            )));
        }
    }
    match (user, password) {
        (Some(u), Some(p)) => {
            // Masked everywhere from now on, as given and in its Basic form.
            engine::redact::learn(&p);
            engine::redact::learn(&base64_basic(&u, &p));
            Ok((u, p))
        }
        (None, _) => Err(StepError::permanent(format!("site `{site}`: infinispan.auth gives no username (username, username_env or secret)"))),
        (_, None) => Err(StepError::permanent(format!(
            "site `{site}`: infinispan.auth gives no password (password_env, password_file or secret)"
        ))),
    }
}

/// The SDK found no credentials (its error context says so): what to do, in place of
/// the SDK's error chain.
pub fn no_credentials(context: &str) -> Option<String> {
    let c = context.to_ascii_lowercase();
    (c.contains("no credentials")
        || c.contains("credentialsnotloaded")
        || c.contains("loading credentials")
        || c.contains("provided credentials")
        || c.contains("failed to load credentials")
        || c.contains("the credential provider was not enabled"))
    .then(|| {
        "no AWS credentials: the SDK's chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the default profile, `aws sso login --profile NAME` for SSO, an instance or pod role) found none; configuration, not an outage".to_string()
    })
}

/// `user:password` in Base64, as an HTTP Basic `Authorization` header carries it.
fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// The context of one step moved to `site` (its section of the environment file).
///
/// # Errors
/// A configuration error: the site is not in the environment file.
pub fn ctx_for(ctx: &StepCtx, site: &str) -> Result<StepCtx, StepError> {
    let config = ctx.env.sites.get(site).cloned().ok_or_else(|| {
        let known: Vec<&str> = ctx.env.sites.keys().map(String::as_str).collect();
        StepError::configuration(format!(
            "site `{site}` is not in the environment file (it has: {})",
            known.join(", ")
        ))
    })?;
    let mut c = ctx.clone();
    c.site = Some(engine::Site {
        name: site.to_string(),
        config,
    });
    Ok(c)
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_is_base64_of_user_colon_password() {
        // RFC 7617, section 2: "Aladdin" / "open sesame".
        assert_eq!(
            super::base64_basic("Aladdin", "open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(super::base64_basic("a", "b"), "YTpi");
        assert_eq!(super::base64_basic("ab", "c"), "YWI6Yw==");
    }
}
