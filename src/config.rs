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
            journal_dir,
            env_file: g.env_file.clone(),
            catalog: Catalog::new(crate::builtin::runbooks(), g.runbooks.clone()),
            registry: Arc::new(steps::registry()),
            quiet: g.quiet,
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
