//! Where the journal's database is, read the way libpq reads it: a `postgres://` URL,
//! the password from the URL, `PGPASSWORD` or the password file (`PGPASSFILE`, else
//! `~/.pgpass`), and TLS from `sslmode` (`disable`, `prefer`, `require`, `verify-ca`,
//! `verify-full`) with `sslrootcert`. The password is never shown: [`Target::shown`]
//! leaves it out.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use engine::journal::JournalError;

/// How the connection is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    Off,
    /// `prefer`: TLS when the server offers it.
    Prefer {
        roots: Option<PathBuf>,
    },
    /// `require`, `verify-ca`, `verify-full`: TLS or no connection, the server's
    /// certificate verified against `roots` (else the public web roots) and its name.
    /// (libpq's `require` without a root certificate does not verify; here it does.)
    Require {
        roots: Option<PathBuf>,
    },
}

/// A parsed journal URL.
#[derive(Clone)]
pub struct Target {
    pub config: postgres::Config,
    pub tls: Tls,
    shown: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("at", &self.shown)
            .field("tls", &self.tls)
            .finish()
    }
}

fn bad(url_shown: &str, why: impl std::fmt::Display) -> JournalError {
    JournalError::BadUrl {
        shown: url_shown.to_string(),
        message: why.to_string(),
    }
}

impl Target {
    /// Whether `text` names a database journal.
    pub fn is_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// Read a journal URL.
    ///
    /// # Errors
    /// Not a URL this store reads, or an `sslmode` it does not know.
    pub fn parse(url: &str) -> Result<Target, JournalError> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let shown = without_password(base);
        let mut kept = Vec::new();
        let mut mode = "prefer".to_string();
        let mut roots = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", v)) => mode = v.to_string(),
                Some(("sslrootcert", v)) => roots = Some(PathBuf::from(v)),
                _ => kept.push(pair),
            }
        }
        let tls = match mode.as_str() {
            "disable" => Tls::Off,
            "prefer" | "allow" => Tls::Prefer { roots },
            "require" | "verify-ca" | "verify-full" => Tls::Require { roots },
            other => {
                return Err(bad(
                    &shown,
                    format!(
                    "unknown sslmode `{other}` (disable, prefer, require, verify-ca, verify-full)"
                ),
                ))
            }
        };
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config = postgres::Config::from_str(&rest).map_err(|e| bad(&shown, e))?;
        if config.get_hosts().is_empty() {
            return Err(bad(
                &shown,
                "it names no host (write postgres://USER@HOST:PORT/DATABASE)",
            ));
        }
        config.ssl_mode(match tls {
            Tls::Off => postgres::config::SslMode::Disable,
            Tls::Prefer { .. } => postgres::config::SslMode::Prefer,
            Tls::Require { .. } => postgres::config::SslMode::Require,
        });
        config.application_name("runbook");
        config.connect_timeout(std::time::Duration::from_secs(5));
        if config.get_password().is_none() {
            if let Some(p) = password_from_env_or_file(&config) {
                config.password(p);
            }
        }
        Ok(Target { config, tls, shown })
    }

    /// The URL as people may see it: no password.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// `postgres://user:secret@host/db` → `postgres://user@host/db`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((cred, host)) => {
            let user = cred.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_string(),
    }
}

fn password_from_env_or_file(config: &postgres::Config) -> Option<Vec<u8>> {
    if let Ok(p) = std::env::var("PGPASSWORD") {
        return Some(p.into_bytes());
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|h| h.join(".pgpass")))?;
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        #[allow(unreachable_patterns)]
        _ => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or_default()
        .to_string();
    let user = config.get_user().unwrap_or_default().to_string();
    pgpass_lookup(&file, [&host, &port, &db, &user]).map(String::into_bytes)
}

/// The password file's entry for host, port, database, user (`*` matches anything,
/// `\:` and `\\` are escapes), as libpq reads it.
pub fn pgpass_lookup(file: &Path, want: [&str; 4]) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => cur.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() == 5
            && fields[..4]
                .iter()
                .zip(want)
                .all(|(f, w)| f == "*" || f == w)
        {
            return fields.pop();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown_and_libpq_settings_are_read() {
        let t = Target::parse("postgres://ops:s3cret@db.example:6543/journal?sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=3").unwrap();
        assert_eq!(t.shown(), "postgres://ops@db.example:6543/journal");
        assert!(!format!("{t:?}").contains("s3cret"));
        assert_eq!(
            t.tls,
            Tls::Require {
                roots: Some("/etc/ca.pem".into())
            }
        );
        assert_eq!(t.config.get_password(), Some(&b"s3cret"[..]));
        let e = Target::parse("postgres://ops:s3cret@h/db?sslmode=maybe")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown sslmode `maybe`") && !e.contains("s3cret"),
            "{e}"
        );
        assert_eq!(
            Target::parse("postgres://h/db?sslmode=disable")
                .unwrap()
                .tls,
            Tls::Off
        );
    }

    #[test]
    fn the_password_file_is_read_as_libpq_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgpass");
        std::fs::write(
            &f,
            "# comment\nother:5432:*:*:no\n127.0.0.1:*:journal:ops:pa\\:ss\n",
        )
        .unwrap();
        assert_eq!(
            pgpass_lookup(&f, ["127.0.0.1", "6000", "journal", "ops"]).as_deref(),
            Some("pa:ss")
        );
        assert_eq!(
            pgpass_lookup(&f, ["127.0.0.1", "6000", "other", "ops"]),
            None
        );
    }
}
