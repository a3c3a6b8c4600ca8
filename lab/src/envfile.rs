//! The files a running lab writes for its clients: `env.yaml` (the environment file
//! `runbook` reads) and the Infinispan password (referenced by path, never inlined).

use std::path::PathBuf;

use crate::{Endpoints, LabConfig, LabError};

fn write_file(path: PathBuf, text: &str) -> Result<PathBuf, LabError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| LabError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(&path, text).map_err(|source| LabError::Write {
        path: path.clone(),
        source,
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
pub fn write(config: &LabConfig, ep: &Endpoints) -> Result<PathBuf, LabError> {
    let secret = write_file(
        config.dir.join("secrets").join("infinispan-password"),
        &config.password,
    )?;
    #[cfg(unix)]
    private(&secret);
    let mut y = String::new();
    y.push_str("# Written by `runbook lab`: a simulated two-site deployment on 127.0.0.1.\n");
    y.push_str(&format!("lab:\n  admin_url: http://{}\n", ep.admin));
    y.push_str("sites:\n");
    for site in &config.shape.sites {
        y.push_str(&format!(
            "  {site}:\n    \
               keycloak: {{ name: keycloak }}\n    \
               infinispan:\n      \
                 url: http://{ispn}\n      \
                 api: v15\n      \
                 transport: rest\n      \
                 cluster: infinispan\n      \
                 auth: {{ username: {user}, password_file: {secret} }}\n    \
               lb_check_url: http://{kc}/lb-check\n",
            ispn = ep.infinispan[site],
            kc = ep.keycloak[site],
            user = config.username,
            secret = secret.display(),
        ));
    }
    write_file(config.dir.join("env.yaml"), &y)
}
