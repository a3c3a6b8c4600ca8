//! The second stage of argument parsing: checked settings every verb shares.

use std::path::PathBuf;
use std::sync::Arc;

use engine::catalog::Catalog;
use engine::env::Environment;
use engine::Registry;

use crate::cli::Global;
use crate::exit::{invalid, CliResult};

pub struct Config {
    pub journal_dir: PathBuf,
    /// The journal was chosen with --journal / RUNBOOK_JOURNAL (not the default).
    pub journal_given: bool,
    pub env_file: Option<PathBuf>,
    pub catalog: Catalog,
    pub registry: Arc<Registry>,
    pub quiet: bool,
}

impl Config {
    pub fn from_global(g: &Global) -> CliResult<Config> {
        let journal_dir = match &g.journal {
            Some(d) => d.clone(),
            None => dirs::data_dir()
                .map(|d| d.join("runbook").join("journal"))
                .ok_or_else(|| {
                    invalid(anyhow::anyhow!(
                        "no per-user data directory here: give --journal DIR"
                    ))
                })?,
        };
        if let Some(dir) = &g.runbooks {
            if !dir.is_dir() {
                return Err(invalid(anyhow::anyhow!(
                    "--runbooks `{}` is not a directory",
                    dir.display()
                )));
            }
        }
        Ok(Config {
            journal_given: g.journal.is_some(),
            journal_dir,
            env_file: g.env_file.clone(),
            catalog: Catalog::new(crate::builtin::runbooks(), g.runbooks.clone()),
            registry: Arc::new(steps::registry()),
            quiet: g.quiet,
        })
    }

    /// The same settings pointed at a lab: its environment file, and its own journal
    /// unless one was given.
    pub fn for_lab(&self, env_file: &std::path::Path) -> CliResult<Config> {
        let journal_dir = if self.journal_given {
            self.journal_dir.clone()
        } else {
            dirs::data_dir()
                .map(|d| d.join("runbook").join("lab-journal"))
                .ok_or_else(|| {
                    invalid(anyhow::anyhow!(
                        "no per-user data directory here: give --journal DIR"
                    ))
                })?
        };
        Ok(Config {
            journal_dir,
            journal_given: self.journal_given,
            env_file: Some(env_file.to_path_buf()),
            catalog: self.catalog.clone(),
            registry: Arc::clone(&self.registry),
            quiet: self.quiet,
        })
    }

    /// The environment file, or the empty environment when none was given.
    pub fn environment(&self) -> CliResult<Environment> {
        match &self.env_file {
            Some(p) => Environment::load(p).map_err(invalid),
            None => Ok(Environment::empty()),
        }
    }
}
