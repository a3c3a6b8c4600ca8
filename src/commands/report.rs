//! `runbook report RUN`: the run as a post-incident review reads it.

use std::io::Write;

use crate::cli::ReportArgs;
use crate::config::Config;
use crate::exit::{failed, CliResult, Code};

pub fn run(config: &Config, args: &ReportArgs) -> CliResult<Code> {
    let id = super::run_id(&args.run_id)?;
    let review = crate::review::load(config, id)?;
    let text = match args.format.as_str() {
        "html" => crate::review::html::render(&review),
        "json" => serde_json::to_string_pretty(&review).map_err(failed)? + "\n",
        _ => crate::review::md::render(&review),
    };
    match &args.output {
        Some(path) => {
            // The report names people, hosts and parameters: the owner's only.
            let mut file = std::fs::OpenOptions::new();
            file.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                file.mode(0o600);
            }
            file.open(path)
                .and_then(|mut f| f.write_all(text.as_bytes()))
                .map_err(|e| failed(anyhow::anyhow!("cannot write `{}`: {e}", path.display())))?;
            if !config.quiet {
                eprintln!("wrote {} ({})", path.display(), args.format);
            }
        }
        // A closed pipe (`| head`) is the reader's choice, not an error; control
        // characters are shown escaped (the print macros).
        None => print!("{text}"),
    }
    Ok(Code::Ok)
}
