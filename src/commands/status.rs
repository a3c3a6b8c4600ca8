//! `runbook status`: a run's state, from the journal, or from the live snapshot that
//! the driving process publishes while it holds the journal (a second terminal).

use std::time::Duration;

use engine::journal::JournalError;
use engine::state::{RunState, RunStatus};

use crate::cli::StatusArgs;
use crate::config::Config;
use crate::exit::{failed, from_journal_error, invalid, CliResult, Code};
use crate::output::run_text;
use crate::progress::Style;

/// Where a state came from.
struct Seen {
    state: RunState,
    order: Vec<String>,
    live: bool,
}

fn look(config: &Config, wanted: Option<&str>) -> CliResult<Seen> {
    let Some(opened) = config.try_journal() else {
        return Err(invalid(anyhow::anyhow!(
            "no runs yet in `{}`",
            config.journal
        )));
    };
    match opened {
        Ok(journal) => {
            let id = match wanted {
                Some(w) => super::run_id(w)?,
                None => journal
                    .runs()
                    .map_err(from_journal_error)?
                    .last()
                    .map(|r| r.run_id)
                    .ok_or_else(|| {
                        invalid(anyhow::anyhow!("no runs yet in `{}`", config.journal))
                    })?,
            };
            let mut state =
                engine::runner::run_state(&journal, id).map_err(crate::exit::from_run_error)?;
            // What a running step waits for is not journaled: a database journal
            // carries the driver's live snapshot.
            if state.status == RunStatus::Running {
                if let Some(live) = journal.live_state(id) {
                    state.waiting = live.waiting;
                }
            }
            let order = super::drive::pinned_order(&journal, id);
            Ok(Seen {
                state,
                order,
                live: false,
            })
        }
        Err(JournalError::Busy { holders, .. }) => {
            let state = match wanted {
                Some(w) => {
                    let id = super::run_id(w)?.to_string();
                    config.live().and_then(|l| l.read(&id)).ok_or_else(|| {
                        from_journal_error(JournalError::Busy {
                            dir: config.journal.to_string().into(),
                            holders: holders.clone(),
                        })
                    })?
                }
                None => holders.last().cloned().ok_or_else(|| {
                    from_journal_error(JournalError::Busy {
                        dir: config.journal.to_string().into(),
                        holders: vec![],
                    })
                })?,
            };
            let order = state.steps.keys().cloned().collect();
            Ok(Seen {
                state,
                order,
                live: true,
            })
        }
        Err(e) => Err(from_journal_error(e)),
    }
}

/// `status --json`, format 1 (docs/json.md): the run's state with `format` first and
/// `live` (read from the driver's snapshot rather than the journal).
fn status_json(seen: &Seen) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    out.insert("format".into(), STATUS_FORMAT.into());
    out.insert("live".into(), seen.live.into());
    if let Ok(serde_json::Value::Object(state)) = serde_json::to_value(&seen.state) {
        out.extend(state);
    }
    serde_json::Value::Object(out)
}

/// The version of `status --json`'s shape.
pub const STATUS_FORMAT: u32 = 1;

pub async fn run(config: &Config, args: &StatusArgs) -> CliResult<Code> {
    // A database journal announces each event: the page is redrawn when one arrives
    // (or every 2 s, the tables being the truth); a sled journal is read every 500 ms.
    let hints = match (&config.journal_db, args.watch) {
        (Some(db), true) => Some(std::sync::Arc::new(std::sync::Mutex::new(pgstore::listen(
            db,
        )))),
        _ => None,
    };
    let mut last = String::new();
    // Consecutive looks that found the journal busy with no snapshot to show.
    let mut waited = 0u32;
    loop {
        let seen = match look(config, args.run_id.as_deref()) {
            Ok(seen) => seen,
            // Watching, a sled journal another process just took (a resume starting,
            // before it publishes its live snapshot) is a moment to wait, not an end.
            Err(e) if args.watch && e.code == Code::Busy && waited < 100 => {
                waited += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        waited = 0;
        if args.json {
            let line = serde_json::to_string(&status_json(&seen)).map_err(failed)?;
            // Watching, a line per change: a halted run waiting for hours is one line.
            if !args.watch || line != last {
                println!("{line}");
            }
            last = line;
        } else {
            if args.watch && Style::stdout().bold("x") != "x" {
                clear_screen();
            }
            print!(
                "{}",
                run_text(&seen.state, &seen.order, Style::stdout(), seen.live)
            );
            if args.watch
                && !seen.state.status.is_final()
                && seen.state.status != RunStatus::Running
            {
                println!(
                    "(watching: it goes on here when the run is resumed; Ctrl-C stops watching)"
                );
            }
        }
        // Watching follows the run until it is over: a halted or failed run may be
        // resumed, from a terminal or the page, and is followed on.
        let done = if args.watch {
            seen.state.status.is_final()
        } else {
            true
        };
        if done {
            // Like `kubectl wait`: the exit code is the run's state, for scripts.
            return Ok(match seen.state.status {
                RunStatus::Running => Code::Running,
                other => Code::of_status(other),
            });
        }
        match &hints {
            Some(rx) => {
                let rx = std::sync::Arc::clone(rx);
                let _ = tokio::task::spawn_blocking(move || {
                    let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = rx.recv_timeout(Duration::from_secs(2));
                    // Take whatever else arrived with it: one redraw for a burst.
                    while rx.try_recv().is_ok() {}
                })
                .await;
            }
            None => tokio::time::sleep(Duration::from_millis(500)).await,
        }
        let redrawn = args.watch && Style::stdout().bold("x") != "x";
        if !args.json && !redrawn {
            println!();
        }
    }
}

/// Clear a terminal's screen and home the cursor: written raw, not through `print!`,
/// which shows every escape sequence but colours escaped.
fn clear_screen() {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(b"\x1b[2J\x1b[H");
    let _ = out.flush();
}
