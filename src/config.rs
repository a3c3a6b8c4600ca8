//! The second stage of argument parsing: checked settings every verb shares.

use std::path::PathBuf;
use std::sync::Arc;

use engine::catalog::Catalog;
use engine::env::Environment;
use engine::journal::{Journal, JournalError, Location};
use engine::Registry;

use crate::cli::Global;
use crate::exit::{from_journal_error, invalid, CliResult};

pub struct Config {
    /// Where the journal is: every verb opens it through [`Config::open_journal`] or
    /// [`Config::try_journal`], nowhere else.
    pub journal: Location,
    /// The database, when the journal is a postgres:// URL.
    pub journal_db: Option<pgstore::Target>,
    /// A driver's lease on its sites (PostgreSQL journal).
    pub lease_ttl: std::time::Duration,
    /// The journal was chosen with --journal / RUNBOOK_JOURNAL (not the default).
    pub journal_given: bool,
    pub env_file: Option<PathBuf>,
    pub catalog: Catalog,
    pub registry: Arc<Registry>,
    pub quiet: bool,
    /// The procedure pack in use, and why (`--pack`, the environment file, ...).
    pub pack: &'static crate::packs::Pack,
    pub pack_chosen: crate::packs::Chosen,
    /// The named context in use (`runbook context`), if any.
    pub context: Option<crate::context::InUse>,
    /// How long a writer waits for a journal another process holds.
    pub lock_timeout: std::time::Duration,
    /// `-v` given (once or more).
    pub verbose: u8,
}

impl Config {
    pub fn from_global(g: &Global) -> CliResult<Config> {
        let context = crate::context::resolve(
            g.context.as_deref(),
            g.env_file.is_some(),
            g.journal.is_some(),
        )
        .map_err(|e| invalid(anyhow::anyhow!(e)))?;
        let ctx = context.as_ref().map(|c| &c.context);
        let env_file = g.env_file.clone().or_else(|| ctx.map(|c| c.env.clone()));
        let given = match (&g.journal, ctx.and_then(|c| c.journal.clone())) {
            (Some(d), _) => Some(d.to_string_lossy().into_owned()),
            (None, Some(j)) => Some(j),
            (None, None) => env_file.as_deref().and_then(journal_in_env_file),
        };
        let (journal, journal_db) = match &given {
            Some(text) => locate(text)?,
            None => (
                Location::Dir(
                    dirs::data_dir()
                        .map(|d| d.join("runbook").join("journal"))
                        .ok_or_else(|| {
                            invalid(anyhow::anyhow!(
                                "no per-user data directory here: give --journal DIR"
                            ))
                        })?,
                ),
                None,
            ),
        };
        if let Some(dir) = &g.runbooks {
            if !dir.is_dir() {
                return Err(invalid(anyhow::anyhow!(
                    "--runbooks `{}` is not a directory",
                    dir.display()
                )));
            }
        }
        let top = env_file.as_deref().and_then(env_file_top);
        let pack_named = g.pack.as_deref().or(ctx.and_then(|c| c.pack.as_deref()));
        let (pack, pack_chosen) = crate::packs::choose(pack_named, top.as_ref())
            .map_err(|e| invalid(anyhow::anyhow!(e)))?;
        Ok(Config {
            pack,
            pack_chosen,
            journal_given: given.is_some(),
            journal,
            journal_db,
            lease_ttl: g.lease_ttl,
            env_file,
            context,
            lock_timeout: g.lock_timeout,
            verbose: g.verbose,
            catalog: Catalog::of_packs(
                crate::packs::PACKS
                    .iter()
                    .map(|p| engine::catalog::BuiltinPack {
                        name: p.name,
                        runbooks: p.runbooks.to_vec(),
                    })
                    .collect(),
                pack.name,
                g.runbooks.clone(),
            ),
            registry: Arc::new({
                let mut r = steps::registry();
                for p in crate::packs::PACKS {
                    r.set_history((p.history)());
                }
                r
            }),
            quiet: g.quiet,
        })
    }

    /// The same settings pointed at a lab: its environment file, and its own journal
    /// unless one was given.
    pub fn for_lab(&self, env_file: &std::path::Path) -> CliResult<Config> {
        let journal = if self.journal_given {
            self.journal.clone()
        } else {
            Location::Dir(
                dirs::data_dir()
                    .map(|d| d.join("runbook").join("lab-journal"))
                    .ok_or_else(|| {
                        invalid(anyhow::anyhow!(
                            "no per-user data directory here: give --journal DIR"
                        ))
                    })?,
            )
        };
        Ok(Config {
            journal,
            journal_db: if self.journal_given {
                self.journal_db.clone()
            } else {
                None
            },
            lease_ttl: self.lease_ttl,
            journal_given: self.journal_given,
            env_file: Some(env_file.to_path_buf()),
            catalog: self.catalog.clone(),
            registry: Arc::clone(&self.registry),
            quiet: self.quiet,
            pack: self.pack,
            pack_chosen: self.pack_chosen,
            // A lab is its own deployment: no context's name belongs on its plans.
            context: None,
            lock_timeout: self.lock_timeout,
            verbose: self.verbose,
        })
    }

    /// The environment file, or the empty environment when none was given.
    pub fn environment(&self) -> CliResult<Environment> {
        let env = match &self.env_file {
            Some(p) => Environment::load(p, self.registry.env_schema()).map_err(invalid)?,
            None => Environment::empty(),
        };
        // Keys written the old way still work; say so once per process.
        static SAID: std::sync::Once = std::sync::Once::new();
        let old = &steps::config::of(&env).deprecated;
        if !old.is_empty() && !self.quiet {
            SAID.call_once(|| {
                for n in old {
                    eprintln!("note: deprecated in the environment file: {n} (the old key still works in this release)");
                }
            });
        }
        Ok(env)
    }

    /// Open the journal for a verb that writes (run, resume, abort) or must read all
    /// of it (plan's `from_run` and history facts): a reader holding it for
    /// milliseconds is waited out, for up to 5 s; a process driving a run is waited
    /// for only up to `--lock-timeout` (none by default), and is named.
    pub fn open_journal(&self) -> CliResult<Journal> {
        let deadline = std::time::Instant::now() + self.lock_timeout;
        let mut said = false;
        loop {
            match self.journal_now(true) {
                Err(JournalError::Busy { .. }) if std::time::Instant::now() < deadline => {
                    if !said && !self.quiet {
                        eprintln!(
                            "the journal at `{}` is in use by another runbook process; waiting up to {} (--lock-timeout)",
                            self.journal,
                            humantime::format_duration(self.lock_timeout)
                        );
                        said = true;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                Err(e @ JournalError::Busy { .. }) if !self.lock_timeout.is_zero() => {
                    return Err(crate::exit::CliError {
                        code: crate::exit::Code::Busy,
                        error: anyhow::anyhow!(
                            "{e} (waited {}: --lock-timeout)",
                            humantime::format_duration(self.lock_timeout)
                        ),
                    })
                }
                other => return other.map_err(from_journal_error),
            }
        }
    }

    /// What to say when a verb needs the deployment and nothing names it.
    pub const NO_ENV: &'static str = "no environment file was given: give --env FILE (or RUNBOOK_ENV), name the deployment once with `runbook context use NAME --env FILE` (to rehearse: `runbook lab`, or `runbook run NAME --lab`)";

    /// Where a journal came from, when nothing named it: said beside "no runs yet",
    /// so that a forgotten --env is not read as an empty history.
    pub fn journal_origin(&self) -> &'static str {
        match (&self.context, self.journal_given, &self.env_file) {
            (Some(_), _, _) => " (the context's)",
            (None, true, _) => "",
            (None, false, Some(_)) => {
                " (the per-user default: the environment file names no journal)"
            }
            (None, false, None) => {
                " (the per-user default: no --env, --journal or context names another)"
            }
        }
    }

    /// The pack and context a plan is read in.
    pub fn in_use(&self) -> crate::output::InUse<'_> {
        crate::output::InUse {
            pack: self.pack.name,
            chosen: self.pack_chosen,
            context: self.context_line(),
        }
    }

    /// The line every plan and confirmation starts with when contexts are in use:
    /// which one, and what it names.
    pub fn context_line(&self) -> Option<String> {
        let c = self.context.as_ref()?;
        Some(format!(
            "context `{}`{} (env {}; journal {})",
            c.name,
            if c.named { " (--context)" } else { "" },
            c.context.env.display(),
            self.journal
        ))
    }

    fn journal_now(&self, patient: bool) -> Result<Journal, JournalError> {
        match &self.journal_db {
            Some(db) => {
                let store = pgstore::PgStore::open(db, self.lease_ttl)?;
                Ok(Journal::over(Arc::new(store), self.journal.clone()))
            }
            None if patient => {
                Journal::open_patiently(&self.journal, std::time::Duration::from_secs(5))
            }
            None => Journal::open_at(&self.journal),
        }
    }

    /// Open the journal for a verb that can fall back on live snapshots when it is
    /// busy (status, history): `None` when no journal was ever created there.
    pub fn try_journal(&self) -> Option<Result<Journal, JournalError>> {
        if let Location::Dir(d) = &self.journal {
            // A file where the journal should be is a mistake, not an empty journal.
            if d.is_file() {
                return Some(Err(JournalError::Open {
                    dir: d.clone(),
                    message: "it is a file, not a journal directory (give the directory a journal was written to, or a postgres:// URL)".into(),
                }));
            }
        }
        if !self.journal.exists() {
            return None;
        }
        Some(self.journal_now(false))
    }

    /// A sled journal's side door: the live snapshots and abort requests its store
    /// keeps beside the database, readable while another process holds it (`Busy`).
    /// A PostgreSQL journal is never busy: its readers go through the store.
    pub fn live(&self) -> Option<engine::live::LiveDir> {
        self.journal
            .live_dir()
            .map(|d| engine::live::LiveDir::new(&d))
    }
}

/// A journal as the operator wrote it: a postgres:// URL or a directory.
pub fn locate(text: &str) -> CliResult<(Location, Option<pgstore::Target>)> {
    if pgstore::Target::is_url(text) {
        let t = pgstore::Target::parse(text).map_err(invalid)?;
        return Ok((Location::Remote(t.shown().to_string()), Some(t)));
    }
    Ok((Location::parse(text).map_err(invalid)?, None))
}

/// The environment file's top-level `journal:`, if it has one (the file is read in full,
/// and checked, later).
/// The environment file as the step library types it, read before anything else (the
/// pack to use); a file that does not parse says so later, where it is loaded.
fn env_file_top(path: &std::path::Path) -> Option<steps::config::EnvFile> {
    let text = engine::env::read_input(path).ok()?;
    serde_yaml::from_str(&text).ok()
}

pub(crate) fn journal_in_env_file(path: &std::path::Path) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Top {
        journal: Option<String>,
    }
    let text = engine::env::read_input(path).ok()?;
    serde_yaml::from_str::<Top>(&text).ok()?.journal
}
