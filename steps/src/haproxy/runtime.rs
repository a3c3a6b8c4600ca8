//! HAProxy's runtime API: one command per connection on the admin socket (TCP or a
//! UNIX path), read until HAProxy closes it (`hap:doc/management.txt@v2.6.0` §9.3,
//! "non-interactive mode"). A write succeeds only when the answer is empty (HAProxy
//! prints nothing but a newline on success, a sentence on failure: observed on 2.6.12,
//! `../shared/docs/haproxy.md` §4.2). `show servers state` and `show stat` are parsed
//! by their header's names, never by position: 2.6.12 has `show stat` columns the
//! 2.6.0 documentation does not list (§4.1).

use std::collections::BTreeMap;
use std::time::Duration;

use engine::StepError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `srv_admin_state` bits (`include/haproxy/server-t.h@v2.6.0`): forced, inherited
/// and resolution maintenance.
pub const ADMIN_MAINT: u32 = 0x01 | 0x02 | 0x20;
/// Forced and inherited drain.
pub const ADMIN_DRAIN: u32 = 0x08 | 0x10;
/// Configured `disabled` (also maintenance).
pub const ADMIN_CMAINT: u32 = 0x04;

/// How long a command may take before its answer counts as lost.
const ANSWER: Duration = Duration::from_secs(10);

/// One server as the runtime API reports it: `show servers state` joined with its
/// `show stat` row.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Server {
    pub backend: String,
    pub name: String,
    pub addr: String,
    pub port: String,
    /// `srv_op_state`: 0 stopped, 1 starting, 2 running, 3 stopping.
    pub op_state: u32,
    /// `srv_admin_state`, a bit mask (decimal in the dump).
    pub admin_state: u32,
    /// `srv_uweight`: the weight an operator set.
    pub uweight: u32,
    /// `show stat`'s `status` (`UP`, `DOWN`, `DRAIN`, `MAINT`, `UP 1/3`, `no check`, …).
    pub status: String,
    /// `show stat`'s `check_status` (`L7OK`, `L7STS`, `L4CON`, … or empty in MAINT).
    pub check_status: String,
    /// `show stat`'s `check_code` (the HTTP status of the last check).
    pub check_code: String,
    /// Current sessions (`scur`) and sessions so far (`stot`).
    pub scur: u64,
    pub stot: u64,
}

impl Server {
    /// `host:port` the server points at.
    pub fn address(&self) -> String {
        format!("{}:{}", self.addr, self.port)
    }

    pub fn in_maint(&self) -> bool {
        self.admin_state & (ADMIN_MAINT | ADMIN_CMAINT) != 0
    }

    pub fn in_drain(&self) -> bool {
        !self.in_maint() && self.admin_state & ADMIN_DRAIN != 0
    }

    /// Takes new traffic: running (or starting), neither in maintenance nor drained,
    /// a weight above 0 (`../shared/docs/haproxy.md` §4.5).
    pub fn serving(&self) -> bool {
        matches!(self.op_state, 1 | 2)
            && self.admin_state & (ADMIN_MAINT | ADMIN_CMAINT | ADMIN_DRAIN) == 0
            && self.uweight > 0
    }

    /// Up after its checks passed: `UP` exactly (not the transitional `UP 1/3`) with
    /// a layer-7 pass, or `no check` configured.
    pub fn healthy(&self) -> bool {
        self.serving()
            && (self.status == "UP"
                && self
                    .check_status
                    .trim_start_matches("* ")
                    .starts_with("L7OK")
                || self.status == "no check")
    }

    /// The administrative state as a word.
    pub fn admin_word(&self) -> &'static str {
        if self.in_maint() {
            "MAINT"
        } else if self.in_drain() {
            "DRAIN"
        } else {
            "READY"
        }
    }
}

/// Where the admin socket is: `host:port` (TCP) or an absolute path (UNIX).
#[derive(Debug, Clone, PartialEq)]
pub enum Socket {
    Tcp(String),
    Unix(String),
}

impl Socket {
    /// Read from the environment file's value.
    ///
    /// # Errors
    /// Neither an absolute path nor `host:port`.
    pub fn parse(s: &str) -> Result<Socket, RuntimeError> {
        let s = s.trim();
        if s.starts_with('/') {
            return Ok(Socket::Unix(s.to_string()));
        }
        let tcp = s.strip_prefix("ipv4@").unwrap_or(s);
        match tcp.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|n| n > 0) => {
                Ok(Socket::Tcp(tcp.to_string()))
            }
            _ => Err(RuntimeError::BadSocket(s.to_string())),
        }
    }
}

impl std::fmt::Display for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Socket::Tcp(a) | Socket::Unix(a) => f.write_str(a),
        }
    }
}

async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    command: &str,
) -> std::io::Result<String> {
    s.write_all(format!("{command}\n").as_bytes()).await?;
    s.flush().await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

/// Send one command and read the whole answer. A write whose answer is lost may have
/// taken effect: `write` says which this is.
///
/// # Errors
/// The socket cannot be reached (transient), or the answer is lost (a write: outcome
/// unknown).
pub async fn command(socket: &Socket, command: &str, write: bool) -> Result<String, StepError> {
    let connect = async {
        match socket {
            Socket::Tcp(a) => exchange(tokio::net::TcpStream::connect(a).await?, command).await,
            #[cfg(unix)]
            Socket::Unix(p) => exchange(tokio::net::UnixStream::connect(p).await?, command).await,
            #[cfg(not(unix))]
            Socket::Unix(p) => Err(std::io::Error::other(format!("no UNIX sockets here: {p}"))),
        }
    };
    match tokio::time::timeout(ANSWER, connect).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(StepError::transient(format!(
                "HAProxy's admin socket {socket}: cannot connect ({e}) for `{command}`"
            )))
        }
        Ok(Err(e)) if write => Err(StepError::outcome_unknown(format!(
            "HAProxy's admin socket {socket}: `{command}` sent, answer lost ({e})"
        ))),
        Ok(Err(e)) => Err(StepError::transient(format!(
            "HAProxy's admin socket {socket}: `{command}`: {e}"
        ))),
        Err(_) if write => Err(StepError::outcome_unknown(format!(
            "HAProxy's admin socket {socket}: `{command}` gave no answer in {}s",
            ANSWER.as_secs()
        ))),
        Err(_) => Err(StepError::transient(format!(
            "HAProxy's admin socket {socket}: `{command}` gave no answer in {}s",
            ANSWER.as_secs()
        ))),
    }
}

/// A write command: done only when HAProxy answered nothing but an empty line.
///
/// # Errors
/// Any text in the answer (`No such server.`, `Permission denied`, …), named.
pub async fn write(socket: &Socket, cmd: &str) -> Result<(), StepError> {
    let answer = command(socket, cmd, true).await?;
    let said = answer.trim();
    if said.is_empty() {
        return Ok(());
    }
    let message = format!("HAProxy refused `{cmd}`: {said}");
    Err(if said.contains("Permission denied") {
        StepError::configuration(format!(
            "{message} (the admin socket must be `level admin`: {socket} is not)"
        ))
    } else {
        StepError::permanent(message)
    })
}

/// Rows of a header-named table: `show servers state` (space-separated, header after
/// `# ` on the line after the format version) or `show stat` (CSV, header after `# `
/// on the first line).
fn table(text: &str, sep: char) -> Vec<BTreeMap<String, String>> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with("# "));
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let names: Vec<&str> = header[2..].split(sep).map(str::trim).collect();
    lines
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            names
                .iter()
                .zip(l.split(sep))
                .map(|(n, v)| (n.to_string(), v.trim().to_string()))
                .collect()
        })
        .collect()
}

/// Parse `show servers state <backend>` and `show stat` into the backend's servers.
///
/// # Errors
/// HAProxy answered an error (`Can't find backend.`), or the dump has no server
/// table.
pub fn servers(state: &str, stat: &str, backend: &str) -> Result<Vec<Server>, RuntimeError> {
    let said = state.trim();
    if !said.is_empty() && !said.starts_with('1') {
        return Err(RuntimeError::Answered {
            backend: backend.to_string(),
            said: said.to_string(),
        });
    }
    let stats = table(stat, ',');
    let num = |r: &BTreeMap<String, String>, k: &str| -> u32 {
        r.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let mut out = Vec::new();
    for r in table(state, ' ') {
        if r.get("be_name").map(String::as_str) != Some(backend) {
            continue;
        }
        let name = r.get("srv_name").cloned().unwrap_or_default();
        let s = stats.iter().find(|s| {
            s.get("pxname").map(String::as_str) == Some(backend) && s.get("svname") == Some(&name)
        });
        let text = |k: &str| s.and_then(|s| s.get(k)).cloned().unwrap_or_default();
        let count = |k: &str| text(k).parse::<u64>().unwrap_or(0);
        out.push(Server {
            backend: backend.to_string(),
            addr: r.get("srv_addr").cloned().unwrap_or_default(),
            port: r.get("srv_port").cloned().unwrap_or_default(),
            op_state: num(&r, "srv_op_state"),
            admin_state: num(&r, "srv_admin_state"),
            uweight: num(&r, "srv_uweight"),
            status: text("status"),
            check_status: text("check_status"),
            check_code: text("check_code"),
            scur: count("scur"),
            stot: count("stot"),
            name,
        });
    }
    if out.is_empty() && !said.lines().any(|l| l.starts_with("# ")) {
        return Err(RuntimeError::NoServerTable {
            backend: backend.to_string(),
            said: said.to_string(),
        });
    }
    Ok(out)
}

/// What the environment file or HAProxy's answer says that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("admin_socket `{0}` is neither host:port nor an absolute path (HAProxy's `stats socket … level admin`, e.g. 127.0.0.1:9999 or /run/haproxy/admin.sock)")]
    BadSocket(String),
    #[error("`show servers state {backend}` answered: {said}")]
    Answered { backend: String, said: String },
    #[error("`show servers state {backend}` has no server table: {said}")]
    NoServerTable { backend: String, said: String },
}

/// Read the backend's servers now.
///
/// # Errors
/// The socket cannot be reached, or HAProxy does not know the backend.
pub async fn read(socket: &Socket, backend: &str) -> Result<Vec<Server>, StepError> {
    let state = command(socket, &format!("show servers state {backend}"), false).await?;
    let stat = command(socket, "show stat", false).await?;
    servers(&state, &stat, backend).map_err(|e| {
        StepError::configuration(format!("HAProxy at {socket}: {e} (is `backend` right?)"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `show servers state` as HAProxy 2.6.12 printed it, verbatim
    /// (`../shared/docs/haproxy.md` §4.3, observed): site-a drained (admin 8).
    const STATE: &str = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n3 keycloak_sites 1 site-a 127.0.0.1 2 8 1 1 0 15 3 4 6 0 0 0 - 18081 - 0 0 - - 0\n3 keycloak_sites 2 site-b 127.0.0.1 2 0 1 1 4 15 3 4 6 0 0 0 - 18082 - 0 0 - - 0\n\n";

    /// A `show stat` whose columns are in an order no code may rely on, with 2.6.12's
    /// extra columns (§4.1), every line ending with a comma as HAProxy writes it.
    const STAT: &str = "# pxname,svname,qcur,scur,stot,status,weight,agg_server_status,uweight,check_status,check_code,\nglobal_lb,FRONTEND,,0,12,OPEN,,,,,,\nkeycloak_sites,site-a,0,1,7,DRAIN,1,,1,L7OK,200,\nkeycloak_sites,site-b,0,0,5,UP,1,,1,L7OK,200,\nkeycloak_sites,BACKEND,0,1,12,UP,1,,1,,,\n\n";

    #[test]
    fn servers_are_read_by_the_headers_names() {
        let s = servers(STATE, STAT, "keycloak_sites").unwrap();
        assert_eq!(s.len(), 2);
        let a = &s[0];
        assert_eq!(
            (a.name.as_str(), a.address().as_str()),
            ("site-a", "127.0.0.1:18081")
        );
        assert!(a.in_drain() && !a.serving() && !a.in_maint());
        assert_eq!((a.scur, a.stot, a.status.as_str()), (1, 7, "DRAIN"));
        let b = &s[1];
        assert!(b.serving() && b.healthy());
        assert_eq!(b.admin_word(), "READY");
    }

    #[test]
    fn transitional_and_maintenance_states_are_not_healthy_or_serving() {
        let mut s = servers(STATE, STAT, "keycloak_sites").unwrap();
        let b = &mut s[1];
        b.status = "UP 1/3".into();
        assert!(b.serving() && !b.healthy(), "UP 1/3 is not yet up");
        b.admin_state = 1;
        assert!(b.in_maint() && !b.serving());
        b.admin_state = 0;
        b.uweight = 0;
        assert!(
            !b.serving(),
            "weight 0 takes no traffic though its status says UP"
        );
    }

    #[test]
    fn an_unknown_backend_and_a_bad_socket_are_said() {
        let e = servers("Can't find backend.\n\n", STAT, "nope").unwrap_err();
        assert!(
            matches!(&e, RuntimeError::Answered { said, .. } if said == "Can't find backend."),
            "{e}"
        );
        assert!(Socket::parse("localhost").is_err());
        assert_eq!(
            Socket::parse("ipv4@127.0.0.1:9999").unwrap(),
            Socket::Tcp("127.0.0.1:9999".into())
        );
        assert_eq!(
            Socket::parse("/run/haproxy/admin.sock").unwrap(),
            Socket::Unix("/run/haproxy/admin.sock".into())
        );
    }
}
