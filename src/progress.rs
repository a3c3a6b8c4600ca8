//! Progress a person can follow, on stderr: which step, how long, what it waits for,
//! the last observation. Also the yes/no prompt of manual gates and destructive runs.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use engine::redact::Redactor;
use engine::report::{Notice, Observer, Prompt};
use engine::Effect;

/// ANSI styling, only when stderr is a terminal and NO_COLOR is unset.
#[derive(Clone, Copy)]
pub struct Style {
    on: bool,
}

impl Style {
    pub fn stderr() -> Style {
        Style {
            on: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }
    /// No styling (text for a file or a scraper).
    pub fn plain() -> Style {
        Style { on: false }
    }
    pub fn stdout() -> Style {
        Style {
            on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }
    fn wrap(self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    pub fn bold(self, t: &str) -> String {
        self.wrap("1", t)
    }
    pub fn red(self, t: &str) -> String {
        self.wrap("1;31", t)
    }
    pub fn green(self, t: &str) -> String {
        self.wrap("32", t)
    }
    pub fn yellow(self, t: &str) -> String {
        self.wrap("33", t)
    }
    pub fn dim(self, t: &str) -> String {
        self.wrap("2", t)
    }
    pub fn effect(self, e: Effect) -> String {
        match e {
            Effect::Destructive => self.red("DESTRUCTIVE"),
            Effect::Idempotent => self.yellow("idempotent"),
            Effect::ReadOnly => self.dim("read-only"),
        }
    }
}

pub fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Prints notices on stderr; waiting lines at most once a second per step.
pub struct StderrObserver {
    style: Style,
    quiet: bool,
    redactor: Redactor,
    last_wait: Mutex<HashMap<String, Instant>>,
    /// Guards already shown holding before a step: a fan-out's next items say it in
    /// one line, not each guard again.
    guards_shown: Mutex<std::collections::HashSet<(String, String)>>,
}

impl StderrObserver {
    pub fn new(quiet: bool, redactor: Redactor) -> StderrObserver {
        StderrObserver {
            style: Style::stderr(),
            quiet,
            redactor,
            last_wait: Mutex::new(HashMap::new()),
            guards_shown: Mutex::new(Default::default()),
        }
    }

    /// One progress line: secrets masked, and control characters shown escaped (a
    /// parameter or a server's error body is hostile text; the style's own colours
    /// pass only on a terminal).
    fn line(&self, text: String) {
        let masked = self.redactor.text(&text);
        let shown = harmless(&masked, self.style.on);
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{shown}");
    }
}

impl Observer for StderrObserver {
    fn notice(&self, notice: Notice) {
        let s = self.style;
        if self.quiet && !matches!(notice, Notice::Halted { .. } | Notice::Refused { .. }) {
            return;
        }
        if let Notice::Guard {
            at: Some(at),
            text,
            ok: true,
        } = &notice
        {
            // `step[item]`: the step's guard held for an earlier item already.
            let step = at.split('[').next().unwrap_or(at).to_string();
            let guard = text.split(':').next().unwrap_or(text).to_string();
            let mut shown = self.guards_shown.lock().unwrap_or_else(|p| p.into_inner());
            if at.contains('[') && !shown.insert((step, guard)) {
                return;
            }
        }
        match notice {
            Notice::Attempt {
                label,
                attempt,
                calls,
            } => {
                let again = if attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                for c in calls {
                    self.line(format!("      {} {c}{again}", s.dim(&format!("{label}:"))));
                }
            }
            Notice::Waiting {
                label,
                what,
                elapsed,
                last,
            } => self.waiting(label, what, elapsed, last),
            other => {
                if let Some(line) = line_of(s, other) {
                    self.line(line);
                }
            }
        }
    }
}

impl StderrObserver {
    /// A step's wait, said at most once a second per step.
    fn waiting(&self, label: String, what: String, elapsed: Duration, last: Option<String>) {
        let s = self.style;
        let mut map = self.last_wait.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map
            .get(&label)
            .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1))
        {
            return;
        }
        map.insert(label.clone(), now);
        let last = last.map(|v| format!(" — now: {v}")).unwrap_or_default();
        self.line(format!(
            "      {} waiting {} for {what}{last}",
            s.dim(&format!("{label}:")),
            secs(elapsed)
        ));
    }
}

/// The one line a notice prints (`None`: the ones [`StderrObserver::notice`] prints
/// itself).
fn line_of(s: Style, notice: Notice) -> Option<String> {
    Some(match notice {
        Notice::StepStarting {
            index,
            total,
            step,
            title,
            site,
            effect,
            items,
        } => {
            let mut meta = vec![s.effect(effect)];
            if let Some(site) = site {
                meta.insert(0, site);
            }
            if let Some(n) = items {
                meta.push(format!("{n} items"));
            }
            format!(
                "{} {} {}  {}",
                s.bold(&format!("[{index}/{total}]")),
                s.bold(&step),
                title,
                s.dim(&format!("({})", meta.join(", ")))
            )
        }
        Notice::Done {
            label,
            elapsed,
            note,
        } => {
            let note = note.map(|n| format!(" — {n}")).unwrap_or_default();
            format!(
                "   {} {label} {}{note}",
                s.green("✓"),
                s.dim(&secs(elapsed))
            )
        }
        Notice::Skipped { label, reason } => {
            format!("   {} {label} skipped: {reason}", s.dim("–"))
        }
        Notice::Failed {
            label,
            attempt,
            error,
            retry_in,
        } => {
            let next = match retry_in {
                Some(d) => format!("; trying again in {}", secs(d)),
                None => String::new(),
            };
            format!(
                "   {} {label} attempt {attempt} failed: {error}{next}",
                s.red("✗")
            )
        }
        Notice::InDoubt { label, decision } => {
            format!("   {} {label} in doubt: {decision}", s.yellow("?"))
        }
        Notice::Halted {
            label,
            kind,
            reason,
        } => {
            let at = label.map(|l| format!(" at {l}")).unwrap_or_default();
            format!(
                "   {} halted{at} ({}): {reason}",
                s.yellow("■"),
                kind.as_str()
            )
        }
        Notice::Guard { at, text, ok } => {
            let at = at.map(|a| format!(" (before {a})")).unwrap_or_default();
            if ok {
                format!("   {} {text}{at}", s.green("⛨"))
            } else {
                format!("   {} {text}{at}", s.red("⛨ !"))
            }
        }
        Notice::Refused { reason } => {
            format!("   {} REFUSED: {reason}", s.red("■"))
        }
        Notice::Note(text) => format!("   {} {text}", s.yellow("note:")),
        Notice::Attempt { .. } | Notice::Waiting { .. } => return None,
    })
}

/// Asks on the terminal; used only when stdin is one.
pub struct TerminalPrompt;

impl TerminalPrompt {
    pub fn available() -> bool {
        std::io::stdin().is_terminal()
    }
}

impl TerminalPrompt {
    /// Ask the operator to type `word`; true only when exactly that was typed.
    pub fn type_to_confirm(&self, question: &str, word: &str) -> bool {
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "{}\ntype `{}` to go on (anything else stops): ",
            harmless(question, false),
            harmless(word, false)
        );
        let _ = err.flush();
        drop(err);
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err() {
            return false;
        }
        answer.trim() == word
    }
}

impl Prompt for TerminalPrompt {
    fn confirm(&self, question: &str) -> bool {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{} [y/N] ", harmless(question, false));
        let _ = err.flush();
        drop(err);
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    }
}

/// Text made harmless for a terminal: control characters (C0 but newline and tab, DEL,
/// C1) are shown escaped (`\x1b`), so an answer carrying `ESC]0;…BEL`, OSC 8/52 or a
/// cursor move cannot act on the operator's terminal. With `keep_colours`, the
/// SGR colour sequences this program writes on a terminal (`ESC[…m`) pass; every other
/// escape sequence is shown escaped.
pub fn harmless(text: &str, keep_colours: bool) -> std::borrow::Cow<'_, str> {
    let bad =
        |c: char| (c.is_control() && c != '\n' && c != '\t') || ('\u{80}'..='\u{9f}').contains(&c);
    if !text.chars().any(bad) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\u{1b}' && keep_colours && chars.get(i + 1) == Some(&'[') {
            let mut j = i + 2;
            while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == ';') {
                j += 1;
            }
            if chars.get(j) == Some(&'m') {
                out.extend(&chars[i..=j]);
                i = j + 1;
                continue;
            }
        }
        if bad(c) {
            let n = c as u32;
            if n < 0x100 {
                out.push_str(&format!("\\x{n:02x}"));
            } else {
                out.push_str(&format!("\\u{{{n:x}}}"));
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}
