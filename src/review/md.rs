//! The report as Markdown: pasted into a ticket or a wiki page, it reads as a review.

use std::fmt::Write;

use engine::review::{Review, StepView};

use super::{duration, offset, utc};

/// Markdown table cells: no pipes or line breaks inside.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn step_line(out: &mut String, n: &str, s: &StepView) {
    let _ = writeln!(
        out,
        "| {n} | `{}` | {} | {} | {} | {} |",
        s.id,
        cell(s.title.as_deref().unwrap_or("")),
        format!("{:?}", s.status).to_lowercase(),
        s.attempts,
        s.duration_ms.map(duration).unwrap_or_else(|| "—".into())
    );
}

fn step_detail(out: &mut String, s: &StepView) {
    let interesting = !s.calls.is_empty()
        || !s.waited.is_empty()
        || !s.failures.is_empty()
        || s.note.is_some()
        || s.error.is_some();
    if !interesting {
        return;
    }
    let _ = writeln!(out, "\n**`{}`**\n", s.id);
    for c in &s.calls {
        let _ = writeln!(out, "- call: `{}`", c.replace('`', "'"));
    }
    for w in &s.waited {
        let _ = writeln!(
            out,
            "- waited {} for {} ({} checks)",
            duration(w.ms),
            w.what,
            w.checks
        );
    }
    for f in &s.failures {
        let _ = writeln!(out, "- failed: {f}");
    }
    if let Some(n) = &s.note {
        let _ = writeln!(out, "- note: {n}");
    }
    if let Some(e) = &s.error {
        let _ = writeln!(out, "- error: {e}");
    }
}

pub fn render(r: &Review) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Run {}: {} — {}\n", r.run_id, r.title, r.status);
    for line in &r.summary {
        let _ = writeln!(out, "- {line}");
    }
    if !r.summary.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| runbook | `{}` ({}) |", r.runbook, cell(&r.origin));
    let _ = writeln!(out, "| pinned text | sha256 `{}` |", r.source_hash);
    let _ = writeln!(out, "| started | {} |", utc(r.started_at));
    let _ = writeln!(
        out,
        "| last event | {} ({} in all) |",
        utc(r.updated_at),
        duration(r.duration_ms)
    );
    if let Some(c) = &r.current {
        let _ = writeln!(out, "| current step | `{c}` |");
    }
    for w in &r.waiting {
        let _ = writeln!(out, "| waiting | {} |", cell(w));
    }
    if let Some(h) = &r.halt {
        let _ = writeln!(out, "| stopped | {} |", cell(&h.reason));
        if !h.resume.is_empty() {
            let _ = writeln!(out, "| to continue | `{}` |", h.resume);
        }
    }
    let _ = writeln!(out, "\n## Parameters\n");
    if r.params.is_empty() {
        let _ = writeln!(out, "none");
    } else {
        let _ = writeln!(out, "| name | value |\n|---|---|");
        for (k, v) in &r.params {
            let _ = writeln!(out, "| `{k}` | `{}` |", cell(&v.to_string()));
        }
    }
    let _ = writeln!(out, "\n## People\n");
    let _ = writeln!(
        out,
        "| what | who | host | pid | UTC | detail |\n|---|---|---|---|---|---|"
    );
    for p in &r.people {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            p.what,
            p.operator,
            p.host,
            p.pid,
            utc(p.at),
            cell(p.detail.as_deref().unwrap_or(""))
        );
    }
    let _ = writeln!(out, "\n## Steps\n");
    let _ = writeln!(
        out,
        "| # | step | title | status | attempts | duration |\n|---|---|---|---|---|---|"
    );
    for (i, s) in r.steps.iter().enumerate() {
        step_line(&mut out, &(i + 1).to_string(), s);
        for (j, item) in s.items.iter().enumerate() {
            step_line(&mut out, &format!("{}.{}", i + 1, j + 1), item);
        }
    }
    for s in &r.steps {
        step_detail(&mut out, s);
        for item in &s.items {
            step_detail(&mut out, item);
        }
    }
    let _ = writeln!(out, "\n## Timeline\n");
    if r.timeline.is_empty() {
        let _ = writeln!(
            out,
            "(the run's process holds the journal: its events are shown once it lets go)"
        );
    } else {
        let _ = writeln!(out, "| UTC | since start | event | |\n|---|---|---|---|");
        for m in &r.timeline {
            let _ = writeln!(
                out,
                "| {} | {} | {}{} | {} |",
                utc(m.at),
                offset(m.offset_ms),
                m.event,
                m.mark.map(|k| format!(" ({k})")).unwrap_or_default(),
                cell(&m.text)
            );
        }
    }
    no_html(&out)
}

/// The Markdown with HTML made inert: `<`, `>` and `&` outside code spans become
/// entities, so a server's answer carrying `<script>` renders as text wherever the
/// report is pasted (inside backticks Markdown shows HTML as text already).
fn no_html(md: &str) -> String {
    let mut out = String::with_capacity(md.len());
    let mut in_code = false;
    for c in md.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '\n' => {
                in_code = false;
                out.push(c);
            }
            '<' if !in_code => out.push_str("&lt;"),
            '>' if !in_code => out.push_str("&gt;"),
            '&' if !in_code => out.push_str("&amp;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn html_outside_code_spans_is_inert() {
        assert_eq!(
            super::no_html("| error: <script>alert(1)</script> & co | `a<b>` |\n"),
            "| error: &lt;script&gt;alert(1)&lt;/script&gt; &amp; co | `a<b>` |\n"
        );
    }
}
