//! Who is asking `runbook serve`: a users file (`--users`) with each person's password
//! hash (Argon2id, PHC string: `runbook serve --hash-password`), bearer tokens (their
//! SHA-256: `runbook serve --new-token`) and roles:
//!
//! | role | may |
//! |---|---|
//! | `viewer` | read the pages, reports and streams |
//! | `operator` | also abort a run, skip or retry a step, resume a run |
//! | `approver` | also approve a manual gate (under four eyes: not their own run's) |
//!
//! A login sets a session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` over TLS)
//! that expires after `session_ttl` (default 8 h) whatever is done with it; every
//! write from a session carries the session's CSRF token, and a request whose
//! `Origin` names another host is refused. A bearer token (`Authorization: Bearer`)
//! is for scripts: no cookie, so no CSRF. Only hashes are kept, in the file and in
//! memory (a session id is kept as its hash too).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Deserialize;

/// What a person may do on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Approver,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    /// How long a login lasts (`8h`, `30m`).
    #[serde(default)]
    session_ttl: Option<String>,
    users: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// Argon2id in PHC form.
    #[serde(default)]
    password: Option<String>,
    /// `sha256:<hex>` of each bearer token.
    #[serde(default)]
    tokens: Vec<String>,
    roles: Vec<Role>,
}

/// One person, as the file says.
#[derive(Debug, Clone)]
struct User {
    password: Option<String>,
    tokens: Vec<String>,
    roles: Vec<Role>,
}

/// Who made a request, once authenticated.
#[derive(Debug, Clone)]
pub struct Who {
    pub name: String,
    pub roles: Vec<Role>,
    /// The session's CSRF token; `None` for a bearer token.
    pub csrf: Option<String>,
}

impl Who {
    /// Whether this person has `role` (an operator may view, an approver may view;
    /// approving does not include aborting, nor the other way round).
    pub fn may(&self, role: Role) -> bool {
        role == Role::Viewer || self.roles.contains(&role)
    }
}

struct Session {
    user: String,
    csrf: String,
    expires: Instant,
}

/// The users and their open sessions.
pub struct Auth {
    users: BTreeMap<String, User>,
    ttl: Duration,
    sessions: Mutex<HashMap<String, Session>>,
    /// Failed logins per name: how many, since when.
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    /// A hash that no password matches, verified against for an unknown name so that
    /// a wrong name takes as long as a wrong password.
    decoy: String,
}

pub const COOKIE: &str = "runbook_session";

/// Failed logins for one name before it is locked out, and for how long.
const MAX_FAILURES: u32 = 5;
const LOCKOUT: Duration = Duration::from_secs(300);

/// Why a login was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Wrong,
    /// Too many failures for this name: locked for this long still.
    Locked(Duration),
}

impl Auth {
    /// Read and check a users file: every problem names the file, and the line where
    /// the YAML says it.
    ///
    /// # Errors
    /// An unreadable file, bad YAML, an unknown key or role, a password that is not an
    /// Argon2 PHC string, a token that is not `sha256:` and 64 hex digits, a user with
    /// no way to log in or no role.
    pub fn load(path: &Path) -> Result<Auth, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
        let file: UsersFile = serde_yaml::from_str(&text).map_err(|e| match e.location() {
            Some(l) => format!("{shown}:{}:{}: {e}", l.line(), l.column()),
            None => format!("{shown}: {e}"),
        })?;
        let ttl = match &file.session_ttl {
            Some(t) => humantime::parse_duration(t)
                .map_err(|e| format!("{shown}: session_ttl `{t}`: {e}"))?,
            None => Duration::from_secs(8 * 3600),
        };
        let mut users = BTreeMap::new();
        for (name, e) in file.users {
            let at = format!("{shown}: users.{name}");
            if let Some(p) = &e.password {
                PasswordHash::new(p).map_err(|err| {
                    format!("{at}.password is not an Argon2 hash in PHC form ({err}): make one with `runbook serve --hash-password`")
                })?;
            }
            for t in &e.tokens {
                let hex = t.strip_prefix("sha256:").unwrap_or_default();
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("{at}.tokens: `{t}` is not `sha256:` and 64 hex digits (the token's hash, never the token: `runbook serve --new-token` prints both)"));
                }
            }
            if e.password.is_none() && e.tokens.is_empty() {
                return Err(format!(
                    "{at}: neither a password nor a token: this person cannot log in"
                ));
            }
            if e.roles.is_empty() {
                return Err(format!(
                    "{at}.roles is empty: give viewer, operator or approver"
                ));
            }
            users.insert(
                name,
                User {
                    password: e.password,
                    tokens: e.tokens.iter().map(|t| t.to_ascii_lowercase()).collect(),
                    roles: e.roles,
                },
            );
        }
        if users.is_empty() {
            return Err(format!("{shown}: no users: nobody could log in"));
        }
        Ok(Auth {
            users,
            ttl,
            sessions: Mutex::default(),
            failures: Mutex::default(),
            decoy: hash_password("not a password anyone has")?,
        })
    }

    /// Check a name and password; on success open a session: (cookie value, CSRF).
    /// After `MAX_FAILURES` failed logins for one name within `LOCKOUT`, that name is
    /// refused without its password being checked until the window has passed (a page
    /// on the network is not a password oracle); a success clears the count.
    ///
    /// # Errors
    /// `Refused::Wrong` for a wrong name or password, `Refused::Locked` with the time
    /// left while the name is locked out.
    pub fn login(&self, name: &str, password: &str) -> Result<(String, String), Refused> {
        if let Some(left) = self.locked(name) {
            return Err(Refused::Locked(left));
        }
        let Some(opened) = self.check(name, password) else {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            failures.retain(|_, (_, since)| now.duration_since(*since) < LOCKOUT);
            failures.entry(name.to_string()).or_insert((0, now)).0 += 1;
            return Err(Refused::Wrong);
        };
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        Ok(opened)
    }

    /// How long `name` stays locked out, if it is.
    fn locked(&self, name: &str) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (n, since) = failures.get(name)?;
        let left = LOCKOUT.checked_sub(since.elapsed())?;
        (*n >= MAX_FAILURES).then_some(left)
    }

    fn check(&self, name: &str, password: &str) -> Option<(String, String)> {
        let stored = self
            .users
            .get(name)
            .and_then(|u| u.password.clone())
            .unwrap_or_else(|| self.decoy.clone());
        let hash = PasswordHash::new(&stored).ok()?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok();
        if !ok || !self.users.contains_key(name) {
            return None;
        }
        let id = random_token();
        let csrf = random_token();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            digest(&id),
            Session {
                user: name.to_string(),
                csrf: csrf.clone(),
                expires: now + self.ttl,
            },
        );
        Some((id, csrf))
    }

    /// End the session a cookie names.
    pub fn logout(&self, headers: &axum::http::HeaderMap) {
        if let Some(id) = cookie(headers) {
            self.sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&digest(&id));
        }
    }

    /// Who sent these headers: a bearer token, or a session cookie that has not
    /// expired.
    pub fn who(&self, headers: &axum::http::HeaderMap) -> Option<Who> {
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let Some(token) = bearer {
            let want = format!("sha256:{}", digest(token.trim()));
            return self.users.iter().find_map(|(name, u)| {
                u.tokens.contains(&want).then(|| Who {
                    name: name.clone(),
                    roles: u.roles.clone(),
                    csrf: None,
                })
            });
        }
        let id = cookie(headers)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let key = digest(&id);
        let s = sessions.get(&key)?;
        if s.expires <= Instant::now() {
            sessions.remove(&key);
            return None;
        }
        let u = self.users.get(&s.user)?;
        Some(Who {
            name: s.user.clone(),
            roles: u.roles.clone(),
            csrf: Some(s.csrf.clone()),
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// The session cookie's value, if sent.
fn cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Hex SHA-256.
fn digest(text: &str) -> String {
    engine::digest::sha256_hex(text)
}

/// 32 random bytes, URL-safe base64.
pub fn random_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's random source works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An Argon2id hash of `password`, in PHC form.
///
/// # Errors
/// Only if the hasher fails (it does not for any input).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A new bearer token and the line the users file keeps of it.
pub fn new_token() -> (String, String) {
    let token = random_token();
    let kept = format!("sha256:{}", digest(&token));
    (token, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<Auth, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users.yaml");
        std::fs::write(&p, text).unwrap();
        Auth::load(&p)
    }

    #[test]
    fn a_login_opens_a_session_a_token_authenticates_and_mistakes_are_placed() {
        let hash = hash_password("correct horse").unwrap();
        let (token, kept) = new_token();
        let auth = file(&format!(
            "session_ttl: 1h\nusers:\n  alice:\n    password: \"{hash}\"\n    roles: [operator, approver]\n  bot:\n    tokens: [\"{kept}\"]\n    roles: [viewer]\n"
        ))
        .unwrap();
        assert_eq!(auth.login("alice", "wrong"), Err(Refused::Wrong));
        assert_eq!(auth.login("mallory", "correct horse"), Err(Refused::Wrong));
        let (id, csrf) = auth.login("alice", "correct horse").unwrap();
        let mut h = axum::http::HeaderMap::new();
        h.insert("cookie", format!("x=1; {COOKIE}={id}").parse().unwrap());
        let who = auth.who(&h).unwrap();
        assert_eq!(
            (who.name.as_str(), who.csrf.as_deref()),
            ("alice", Some(csrf.as_str()))
        );
        assert!(who.may(Role::Approver) && who.may(Role::Viewer));
        auth.logout(&h);
        assert!(auth.who(&h).is_none());
        let mut b = axum::http::HeaderMap::new();
        b.insert("authorization", format!("Bearer {token}").parse().unwrap());
        let bot = auth.who(&b).unwrap();
        assert_eq!(bot.name, "bot");
        assert!(!bot.may(Role::Operator) && bot.csrf.is_none());
        b.insert("authorization", "Bearer nope".parse().unwrap());
        assert!(auth.who(&b).is_none());

        let e = file("users:\n  bob:\n    password: hunter2\n    roles: [viewer]\n")
            .err()
            .unwrap();
        assert!(
            e.contains("users.bob.password is not an Argon2 hash"),
            "{e}"
        );
        let e = file("users:\n  bob:\n    tokens: [abc]\n    roles: [viewer]\n")
            .err()
            .unwrap();
        assert!(e.contains("never the token"), "{e}");
        let e = file(&format!(
            "users:\n  bob:\n    password: \"{hash}\"\n    roles: [admin]\n"
        ))
        .err()
        .unwrap();
        assert!(e.contains(":4:") && e.contains("admin"), "{e}");
        let e = file(&format!(
            "users:\n  bob:\n    password: \"{hash}\"\n    roles: []\n"
        ))
        .err()
        .unwrap();
        assert!(e.contains("roles is empty"), "{e}");
    }

    #[test]
    fn a_session_ends_when_its_time_is_up() {
        let hash = hash_password("pw").unwrap();
        let auth = file(&format!(
            "session_ttl: 1s\nusers:\n  alice:\n    password: \"{hash}\"\n    roles: [viewer]\n"
        ))
        .unwrap();
        let (id, _) = auth.login("alice", "pw").unwrap();
        let mut h = axum::http::HeaderMap::new();
        h.insert("cookie", format!("{COOKIE}={id}").parse().unwrap());
        assert!(auth.who(&h).is_some());
        std::thread::sleep(Duration::from_millis(1100));
        assert!(auth.who(&h).is_none());
    }

    #[test]
    fn a_name_guessed_at_is_locked_out_and_a_success_clears_the_count() {
        let hash = hash_password("pw").unwrap();
        let auth = file(&format!(
            "users:\n  alice:\n    password: \"{hash}\"\n    roles: [viewer]\n  bob:\n    password: \"{hash}\"\n    roles: [viewer]\n"
        ))
        .unwrap();
        // Four failures, then a success: the count starts again.
        for _ in 0..4 {
            assert_eq!(auth.login("alice", "guess"), Err(Refused::Wrong));
        }
        assert!(auth.login("alice", "pw").is_ok());
        for _ in 0..MAX_FAILURES {
            assert_eq!(auth.login("alice", "guess"), Err(Refused::Wrong));
        }
        // Locked: even the right password is not checked; another name is not.
        assert!(matches!(auth.login("alice", "pw"), Err(Refused::Locked(left)) if left <= LOCKOUT));
        assert!(auth.login("bob", "pw").is_ok());
    }
}
