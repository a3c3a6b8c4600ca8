//! The files a running lab writes for its clients: `env.yaml` (the environment file
//! `runbook` reads) and the Infinispan password (referenced by path, never inlined).

use std::path::PathBuf;

use crate::{Endpoints, LabConfig, LabError};

fn write_file(path: PathBuf, text: &str) -> Result<PathBuf, LabError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|error| LabError::Write {
            path: dir.to_path_buf(),
            error,
        })?;
    }
    std::fs::write(&path, text).map_err(|error| LabError::Write {
        path: path.clone(),
        error,
    })?;
    Ok(path)
}

#[cfg(unix)]
fn private(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

/// Write env.yaml and the password file into the lab's directory.
///
/// # Errors
/// A file cannot be written.
pub fn write(
    config: &LabConfig,
    ep: &Endpoints,
    ca_pem: Option<&str>,
) -> Result<PathBuf, LabError> {
    let ca_file = match ca_pem {
        Some(pem) => Some(write_file(config.dir.join("ca.pem"), pem)?),
        None => None,
    };
    let scheme = if ca_file.is_some() { "https" } else { "http" };
    let secret = write_file(
        config.dir.join("secrets").join("infinispan-password"),
        &config.password,
    )?;
    #[cfg(unix)]
    private(&secret);
    let kubeconfig = write_file(
        config.dir.join("kubeconfig"),
        &kubeconfig(config, ep, ca_file.as_deref()),
    )?;
    #[cfg(unix)]
    private(&kubeconfig);
    let mut y = String::new();
    y.push_str("# Written by `runbook lab`: a simulated two-site deployment on 127.0.0.1.\n");
    y.push_str(&format!(
        "lab:\n  admin_url: http://{}\n  time_scale: {}\n",
        ep.admin, config.shape.scale
    ));
    // The lab's own journal: rehearsal runs never enter a real deployment's history
    // or hold its locks (--journal and RUNBOOK_JOURNAL still choose another).
    y.push_str(&format!(
        "journal: {}\n",
        config.dir.join("journal").display()
    ));
    y.push_str(&format!(
        "aws:\n  region: eu-west-1\n  endpoint_url: http://{}\n  # the lab accepts any credentials: AWS_ACCESS_KEY_ID=lab AWS_SECRET_ACCESS_KEY=lab\n",
        ep.aws,
    ));
    y.push_str("sites:\n");
    for (i, site) in config.shape.sites.iter().enumerate() {
        y.push_str(&format!(
            "  {site}:\n    \
               kubernetes: {{ kubeconfig: {kubeconfig}, context: {site}, namespace: {ns} }}\n    \
               keycloak: {{ name: keycloak }}\n    \
               {infinispan}database:\n      \
                 {database}\n    \
               traffic:\n      \
                 {traffic}\n    \
               lb_check_url: http://{kc}/lb-check\n",
            infinispan = if config.shape.stateless {
                String::new()
            } else {
                format!(
                    "infinispan:\n      url: {scheme}://{}\n      transport: rest\n      cluster: infinispan\n      auth: {{ username: {}, password_file: {} }}\n{}    ",
                    ep.infinispan[site],
                    config.username,
                    secret.display(),
                    ca_file
                        .as_ref()
                        .map(|f| format!("      tls: {{ ca_file: {} }}\n", f.display()))
                        .unwrap_or_default(),
                )
            },
            kc = ep.keycloak[site],
            kubeconfig = kubeconfig.display(),
            ns = crate::kube::NAMESPACE,
            database = match ep.postgres.get(site) {
                Some(addr) if config.shape.database == crate::world::Database::Cnpg => format!(
                    "cnpg: {{ cluster: {}, address: \"{addr}\" }}",
                    crate::cnpg::cluster_name(site)
                ),
                Some(addr) => format!(
                    // Without `--tls` the lab's servers take no TLS (PGO's always do):
                    // said, not hidden.
                    "pgo: {{ cluster: {}, user: {}, address: \"{addr}\", {} }}",
                    crate::pgo::CLUSTER,
                    crate::pgo::USER,
                    match &ca_file {
                        Some(f) => format!("ca_file: {}", f.display()),
                        None => "tls: false".to_string(),
                    }
                ),
                None => format!(
                    "aurora: {{ cluster: keycloak-aurora, instance: keycloak-aurora-instance-{}, zone: {} }}",
                    i + 1,
                    crate::world::aurora_zone(i)
                ),
            },
            traffic = match (ep.nlbs.get(site), ep.haproxy) {
                (_, Some((_, admin))) => format!(
                    "haproxy: {{ admin_socket: \"{admin}\", backend: {} }}",
                    crate::haproxy::BACKEND
                ),
                (Some(nlb), None) => format!(
                    "accelerator: {{ name: {}, load_balancer: {nlb} }}",
                    crate::accelerator::NAME
                ),
                (None, None) => format!(
                    "route53: {{ health_check_id: hc-{site}, target: {}, hosted_zone_id: {}, client_domain: {} }}",
                    crate::world::lb_host(i),
                    crate::aws::ZONE_ID,
                    crate::aws::CLIENT_DOMAIN
                ),
            },
        ));
    }
    write_file(config.dir.join("env.yaml"), &y)
}

/// A kubeconfig with one context per site, each pointing at that site's API server.
/// With TLS: https, the lab's CA, and the bearer token the servers then require (a
/// Kubernetes client sends no token over plain http).
fn kubeconfig(config: &LabConfig, ep: &Endpoints, ca_file: Option<&std::path::Path>) -> String {
    let mut clusters = String::new();
    let mut contexts = String::new();
    for site in &config.shape.sites {
        match ca_file {
            Some(ca) => clusters.push_str(&format!(
                "- name: {site}\n  cluster:\n    server: https://{}\n    certificate-authority: {}\n",
                ep.kube[site],
                ca.display()
            )),
            None => clusters.push_str(&format!(
                "- name: {site}\n  cluster:\n    server: http://{}\n",
                ep.kube[site]
            )),
        }
        contexts.push_str(&format!(
            "- name: {site}\n  context:\n    cluster: {site}\n    user: lab\n    namespace: {}\n",
            crate::kube::NAMESPACE
        ));
    }
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{clusters}contexts:\n{contexts}current-context: {}\nusers:\n- name: lab\n  user:\n    token: {}\n",
        config.shape.sites[0],
        config.kube_token
    )
}
