//! `runbook lab`: start the lab in the foreground and say how to use it; stop on
//! Ctrl-C. Also the in-process lab behind `runbook run --lab`.

use std::path::{Path, PathBuf};

use crate::cli::{LabArgs, LabOptions};
use crate::config::Config;
use crate::exit::{failed, invalid, CliResult, Code};

/// A lab configuration: the shape the pack's lab plays, then the command line's
/// choices.
pub fn lab_config(
    dir: &Path,
    o: &LabOptions,
    pack: &crate::packs::Pack,
) -> CliResult<lab::LabConfig> {
    let mut config = lab::LabConfig::new(dir);
    config.shape = (pack.lab)();
    if !(o.time_scale >= 0.0 && o.time_scale.is_finite()) {
        return Err(invalid(anyhow::anyhow!(
            "--time-scale must be a number >= 0"
        )));
    }
    config.shape.scale = o.time_scale;
    if o.caches.as_deref() == Some("kc25") {
        config.shape.caches = [
            "actionTokens",
            "authenticationSessions",
            "loginFailures",
            "work",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
    }
    let mut config = config.with_faults(&o.faults).map_err(invalid)?;
    if o.caches.as_deref() == Some("kc24") {
        config.shape.caches = lab::Shape::default().caches;
    }
    match o.database.as_deref() {
        Some("pgo") => config.shape.database = lab::world::Database::Pgo,
        Some("cnpg") => config.shape.database = lab::world::Database::Cnpg,
        _ => {}
    }
    if let Some(t) = o.traffic.as_deref().and_then(lab::world::Traffic::named) {
        config.shape.traffic = t;
    }
    config.shape.stateless |= o.stateless;
    config.shape.asynchronous = o.replication == "async";
    match o.infinispan.as_deref() {
        Some("15") => config.shape.infinispan_version = 15,
        Some("16") => config.shape.infinispan_version = 16,
        Some(_) => config.shape.infinispan_version = 14,
        None => {}
    }
    config.workload_per_sec = o.workload;
    config.tls = o.tls;
    Ok(config)
}

pub fn default_dir() -> CliResult<PathBuf> {
    dirs::data_dir()
        .map(|d| d.join("runbook").join("lab"))
        .ok_or_else(|| {
            invalid(anyhow::anyhow!(
                "no per-user data directory here: give --dir DIR"
            ))
        })
}

/// What the lab serves and how to use it, as the operator reads it at its start.
fn banner(lab: &lab::RunningLab, dir: &std::path::Path, options: &LabOptions) {
    let env = lab.env_file.display();
    let admin = lab.admin_url();
    let site_a = lab
        .endpoints
        .infinispan
        .values()
        .next()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let pw = dir.join("secrets").join("infinispan-password");
    // The container's route as this lab's Infinispan serves it (14: the cache
    // manager's; 15 on: `container`).
    let container = if lab.config.shape.infinispan_version >= 15 {
        "container"
    } else {
        "cache-managers/default"
    };
    println!(
        "The lab is running on 127.0.0.1 (time scale {}, Infinispan {}).",
        options.time_scale, lab.config.shape.infinispan_version
    );
    println!();
    println!("  environment file: {env}");
    println!("  admin API:        {admin}/admin/state");
    let (scheme, tls_note) = if lab.config.tls {
        ("https", format!(", CA {}", dir.join("ca.pem").display()))
    } else {
        ("http", String::new())
    };
    for (site, addr) in &lab.endpoints.infinispan {
        println!(
            "  {site} Infinispan: {scheme}://{addr}/rest/v2  (user admin, password in {}{tls_note})",
            pw.display()
        );
        println!(
            "  {site} lb-check:   http://{}/lb-check",
            lab.endpoints.keycloak[site]
        );
    }
    for (site, addr) in &lab.endpoints.kube {
        println!(
            "  {site} Kubernetes: {scheme}://{addr}  (kubeconfig {}, context {site}{})",
            dir.join("kubeconfig").display(),
            if lab.config.tls {
                ", a bearer token"
            } else {
                ""
            }
        );
    }
    if let Some((frontend, admin)) = lab.endpoints.haproxy {
        println!("  load balancer:    http://{frontend}/realms/master  (a real HAProxy; runtime API on {admin}, config {})", dir.join("haproxy.cfg").display());
    }
    let accelerator = !lab.endpoints.nlbs.is_empty();
    println!(
        "  AWS ({}): http://{}  (any credentials)",
        if accelerator {
            "RDS, Global Accelerator in us-west-2, ELBv2"
        } else {
            "RDS, Route53"
        },
        lab.endpoints.aws
    );
    println!();
    println!("Use it:");
    println!("  export RUNBOOK_ENV={env}");
    println!("  runbook plan <runbook> --live");
    println!(
        "  curl -su admin:$(cat {}) {}{scheme}://{site_a}/rest/v2/{container}/x-site/backups/",
        pw.display(),
        if lab.config.tls {
            format!("--cacert {} ", dir.join("ca.pem").display())
        } else {
            String::new()
        }
    );
    println!(
        "  kubectl --kubeconfig {} --context site-b -n keycloak get keycloaks",
        dir.join("kubeconfig").display()
    );
    if accelerator {
        println!(
            "  AWS_ACCESS_KEY_ID=lab AWS_SECRET_ACCESS_KEY=lab aws globalaccelerator list-accelerators --region us-west-2 --endpoint-url http://{}",
            lab.endpoints.aws
        );
    }
    if let Some((frontend, admin_socket)) = lab.endpoints.haproxy {
        println!("  curl -s http://{frontend}/realms/master                  # which site answers");
        println!(
            "  echo 'show servers state' | nc 127.0.0.1 {}",
            admin_socket.port()
        );
    }
    println!("  curl -s {admin}/admin/state");
    println!(
        "  curl -s -X POST {admin}/admin/faults -d offline-not-sticking:site-b   # inject a fault"
    );
    println!(
        "  curl -s -X DELETE {admin}/admin/faults                                # lift all faults"
    );
}

pub async fn run(config: &Config, args: &LabArgs) -> CliResult<Code> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => default_dir()?,
    };
    let lab = lab::start(lab_config(&dir, &args.options, config.pack)?)
        .await
        .map_err(failed)?;
    banner(&lab, &dir, &args.options);
    println!();
    println!("Ctrl-C stops the lab.");
    // Ctrl-C or a plain `kill` (SIGTERM): either way the lab stops its servers (the
    // PGO lab's PostgreSQL processes included) before it exits.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(failed)?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(failed)?,
        _ = term.recv() => {}
    }
    eprintln!("lab stopped");
    drop(lab);
    Ok(Code::Ok)
}
