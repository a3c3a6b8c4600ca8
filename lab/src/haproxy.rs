//! The lab's global load balancer: Debian's real `haproxy`, run in the foreground on
//! loopback in front of both sites' Keycloak, health-checking each site's
//! `/lb-check`, with an admin socket on TCP loopback (`../shared/docs/haproxy.md`
//! §4.7: `-db`, no daemon, user, chroot or syslog; the config is exactly the one run
//! there, with this lab's ports). The lab does not imitate HAProxy: it starts it.
//!
//! Servers are named as the sites (the mapping the `haproxy` vendor reads, the
//! analogue of Global Accelerator's `site` tag). Runtime state is HAProxy's own and
//! lives as long as the process.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::LabError;

impl Drop for Haproxy {
    fn drop(&mut self) {
        // A hard stop (SIGKILL): the lab's process, recorded, and no one else's.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The backend whose servers are the sites.
pub const BACKEND: &str = "keycloak_sites";

/// A running HAProxy: killed when dropped.
#[derive(Debug)]
pub struct Haproxy {
    pub child: std::process::Child,
    /// Where clients send requests.
    pub frontend: SocketAddr,
    /// The runtime API (`level admin`).
    pub admin: SocketAddr,
    pub config: PathBuf,
}

/// The haproxy binary: `RUNBOOK_HAPROXY`, else `haproxy` on the PATH, else Debian's
/// `/usr/sbin/haproxy`.
///
/// # Errors
/// None of them exists: what to install.
pub fn binary() -> Result<PathBuf, LabError> {
    if let Some(p) = std::env::var_os("RUNBOOK_HAPROXY") {
        return Ok(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("haproxy"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/haproxy")])
        .find(|p| p.is_file())
        .ok_or_else(|| {
            LabError::Haproxy(
                "the lab's load balancer is a real HAProxy, and no `haproxy` was found on the PATH or at /usr/sbin/haproxy: install it (Debian: apt-get install haproxy) or set RUNBOOK_HAPROXY to its path".into(),
            )
        })
}

/// A free port on loopback (bound, then released for HAProxy to bind).
fn free_port() -> Result<u16, LabError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(LabError::Bind)?;
    Ok(l.local_addr().map_err(LabError::Bind)?.port())
}

/// The config HAProxy runs with: `mode http`, checks every second (fall 3, rise 2),
/// one server per site named as the site.
pub fn config_text(frontend: u16, admin: u16, sites: &BTreeMap<String, SocketAddr>) -> String {
    let mut c = format!(
        "global\n    stats socket ipv4@127.0.0.1:{admin} level admin\n    stats timeout 2m\n\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend global_lb\n    bind 127.0.0.1:{frontend}\n    default_backend {BACKEND}\n\n\
         backend {BACKEND}\n    balance roundrobin\n    option httpchk GET /lb-check\n    http-check expect status 200\n    default-server inter 1s fall 3 rise 2\n"
    );
    for (site, addr) in sites {
        c.push_str(&format!("    server {site} {addr} check\n"));
    }
    c
}

async fn ask(admin: SocketAddr, command: &str) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(admin).await?;
    s.write_all(format!("{command}\n").as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

/// Start HAProxy in front of `sites` (each site's Keycloak), its config in `dir`, and
/// wait until its admin socket answers and every server has been checked once.
///
/// # Errors
/// No binary, a config HAProxy refuses (its own words), or no answer in 10 s.
pub async fn start(dir: &Path, sites: &BTreeMap<String, SocketAddr>) -> Result<Haproxy, LabError> {
    let bin = binary()?;
    let (frontend, admin) = (free_port()?, free_port()?);
    let config = dir.join("haproxy.cfg");
    std::fs::create_dir_all(dir).map_err(|error| LabError::Write {
        path: dir.to_path_buf(),
        error,
    })?;
    std::fs::write(&config, config_text(frontend, admin, sites)).map_err(|error| {
        LabError::Write {
            path: config.clone(),
            error,
        }
    })?;
    let log = std::fs::File::create(dir.join("haproxy.log")).map_err(|error| LabError::Write {
        path: dir.join("haproxy.log"),
        error,
    })?;
    let child = std::process::Command::new(&bin)
        .arg("-f")
        .arg(&config)
        .arg("-db")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| LabError::Haproxy(format!("cannot start {}: {e}", bin.display())))?;
    let mut h = Haproxy {
        child,
        frontend: SocketAddr::from(([127, 0, 0, 1], frontend)),
        admin: SocketAddr::from(([127, 0, 0, 1], admin)),
        config,
    };
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = h.child.try_wait() {
            let said = std::fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default();
            return Err(LabError::Haproxy(format!(
                "haproxy exited ({status}): {}",
                said.trim()
            )));
        }
        if let Ok(stat) = ask(h.admin, "show stat").await {
            // Every server checked at least once (no `INI`/empty check status).
            let checked = sites.keys().all(|s| {
                stat.lines().any(|l| {
                    l.starts_with(&format!("{BACKEND},{s},"))
                        && (l.contains(",UP,") || l.contains(",DOWN,") || l.contains(",UP 1/"))
                })
            });
            if checked {
                return Ok(h);
            }
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err(LabError::Haproxy(
                "haproxy did not answer on its admin socket in 10s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
