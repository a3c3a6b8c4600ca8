//! One connection to the journal's database, on a thread of its own: the engine's
//! storage interface is synchronous and is called from inside the async runtime,
//! where the `postgres` client (tokio-postgres under its own small runtime) cannot run.
//! Calls are closures sent to that thread. A call that fails because the connection is
//! gone is tried again, on a new connection, with backoff, for as long as the caller's
//! patience allows.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::journal::JournalError;

use crate::target::{Target, Tls};

/// Why a call failed.
pub enum Failure {
    Db(postgres::Error),
    Journal(JournalError),
}

impl From<postgres::Error> for Failure {
    fn from(e: postgres::Error) -> Failure {
        Failure::Db(e)
    }
}

impl From<JournalError> for Failure {
    fn from(e: JournalError) -> Failure {
        Failure::Journal(e)
    }
}

type Job = Box<dyn FnOnce(&mut Slot) + Send>;

/// The worker's connection, made on first use and again after it is lost.
pub struct Slot {
    client: Option<postgres::Client>,
    target: Target,
}

impl Slot {
    fn client(&mut self) -> Result<&mut postgres::Client, postgres::Error> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = Some(connect(&self.target)?);
        }
        Ok(self.client.as_mut().expect("just connected"))
    }
}

fn tls_config(roots: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("sslrootcert `{}`: {e}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| format!("sslrootcert `{}`: {e}", path.display()))?;
                store
                    .add(cert)
                    .map_err(|e| format!("sslrootcert `{}`: {e}", path.display()))?;
            }
        }
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(store).with_no_client_auth())
}

fn connect(target: &Target) -> Result<postgres::Client, postgres::Error> {
    match &target.tls {
        Tls::Off => target.config.connect(postgres::NoTls),
        Tls::Prefer { roots } | Tls::Require { roots } => match tls_config(roots.as_deref()) {
            Ok(cfg) => target
                .config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(cfg)),
            // A root file that cannot be read: connecting without it would not be
            // what the operator asked for; let the connection fail saying so.
            Err(why) => {
                tracing::error!("{why}");
                let mut c = target.config.clone();
                c.ssl_mode(postgres::config::SslMode::Require);
                c.connect(postgres::NoTls)
            }
        },
    }
}

/// A connection of its own (for LISTEN), protected as the target says.
///
/// # Errors
/// It cannot be made.
pub fn connect_for_listen(target: &Target) -> Result<postgres::Client, postgres::Error> {
    connect(target)
}

/// Whether TLS refused the server (its certificate, its name), anywhere in the chain.
fn tls_refused(e: &postgres::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = src {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return true;
            }
        }
        if err.to_string().contains("invalid peer certificate") {
            return true;
        }
        src = err.source();
    }
    false
}

/// Whether a failure is the connection's (the server went away, restarted, or cannot
/// be reached), as opposed to an answer.
fn connection_lost(e: &postgres::Error) -> bool {
    if tls_refused(e) {
        // A certificate that does not verify will not verify on the next try.
        return false;
    }
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        None => true,
        // 08: connection exception; 57P: operator intervention (shutdown, restart).
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || code.starts_with("57P")
        }
    }
}

/// A database error as people read it: the server's message and SQLSTATE, not just
/// "db error".
pub fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}

/// The handle the store calls through.
pub struct Conn {
    jobs: mpsc::Sender<Job>,
}

impl Conn {
    /// Start the worker (it connects on the first call).
    pub fn start(target: Target) -> Conn {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("runbook-journal".into())
            .spawn(move || {
                let mut slot = Slot {
                    client: None,
                    target,
                };
                while let Ok(job) = rx.recv() {
                    job(&mut slot);
                }
            })
            .expect("a thread starts");
        Conn { jobs }
    }

    /// Run `f` on the connection; a lost connection is retried with backoff for up to
    /// `patience`, then the call fails as `Unreachable`.
    ///
    /// # Errors
    /// `f`'s own journal errors, storage errors, or `Unreachable`.
    pub fn call<T, F>(&self, patience: Duration, f: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: Fn(&mut postgres::Client) -> Result<T, Failure> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let start = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let (tx, rx) = mpsc::channel();
            let g = Arc::clone(&f);
            let job: Job = Box::new(move |slot: &mut Slot| {
                let r = match slot.client() {
                    Ok(c) => g(c),
                    Err(e) => Err(Failure::Db(e)),
                };
                if let Err(Failure::Db(e)) = &r {
                    if connection_lost(e) {
                        slot.client = None;
                    }
                }
                let _ = tx.send(r);
            });
            self.jobs.send(job).map_err(|_| {
                JournalError::Storage("the journal's connection thread is gone".into())
            })?;
            let answer = rx.recv().map_err(|_| {
                JournalError::Storage("the journal's connection thread is gone".into())
            })?;
            match answer {
                Ok(v) => return Ok(v),
                Err(Failure::Journal(e)) => return Err(e),
                Err(Failure::Db(e)) if connection_lost(&e) => {
                    if start.elapsed() >= patience {
                        return Err(JournalError::Unreachable {
                            waited: start.elapsed(),
                            last: describe(&e),
                        });
                    }
                    tracing::warn!(
                        "journal database: {}; trying again in {pause:?}",
                        describe(&e)
                    );
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(Failure::Db(e)) => return Err(JournalError::Storage(describe(&e))),
            }
        }
    }
}
