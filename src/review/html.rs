//! The report as one self-contained HTML page: styles inline, no script, no external
//! asset of any kind, a Gantt-style SVG chart of the steps and fan-out items with halts
//! and operator decisions marked, and print styles. `runbook serve` wraps the same body
//! in its live page.

use std::fmt::Write;

use engine::review::{Review, StepView};
use engine::state::StepStatus;

use super::{duration, offset, utc};

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em auto;max-width:1360px;color:#1b1f24;padding:0 1em}
form.inline{display:inline}.act form{margin:.5em 0}.act input{font:inherit;padding:2px 4px}button{font:inherit;padding:2px 10px;cursor:pointer}button.danger{color:#a40e26}.refusal{color:#a40e26;font-weight:600}.whoami{text-align:right}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;width:100%;margin:.4em 0}td,th{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top;overflow-wrap:break-word}
table.steps,table.events{table-layout:fixed}table.events col.utc{width:15em}table.events col.off{width:6.5em}table.events col.ev{width:11em}table.steps col.n{width:3.2em}table.steps col.id{width:24%}table.steps col.st{width:8.6em}table.steps col.at{width:6.6em}table.steps col.du{width:8em}
th{background:#f6f8fa}code{font:12px ui-monospace,Menlo,monospace;background:#f6f8fa;padding:0 3px;border-radius:3px;overflow-wrap:anywhere;word-break:break-word}
.status{display:inline-block;white-space:nowrap;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600}
.completed,.succeeded{background:#1a7f37}.running{background:#0969da}.interrupted{background:#bc4c00}.halted{background:#9a6700}.pending{background:#afb8c1}
.failed,.aborted{background:#cf222e}.refused{background:#8250df}.skipped{background:#6e7781}
tr.is-pending td{color:#8c959f}tr.is-pending code{color:#8c959f}
.forced{color:#cf222e;font-weight:600}.muted{color:#57606a}
.stop{border-left:4px solid #cf222e;background:#fff5f5;padding:.5em .8em;margin:.8em 0}
.wait{border-left:4px solid #0969da;background:#f3f8ff;padding:.5em .8em;margin:.8em 0}
.story{border-left:4px solid #8c959f;background:#f6f8fa;padding:.4em .8em .4em 2em;margin:.8em 0}
svg text{font:11px system-ui,sans-serif}
@media print{body{max-width:none;margin:0}h2{break-after:avoid}tr,svg{break-inside:avoid}.noprint{display:none}}
";

/// A step's class as shown: one that was running when its run stopped (halted,
/// aborted, its driver gone) is interrupted, not running.
fn shown_class(s: StepStatus, run_live: bool) -> &'static str {
    if s == StepStatus::Running && !run_live {
        "interrupted"
    } else {
        status_class(s)
    }
}

fn status_class(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Pending => "pending",
        StepStatus::Running => "running",
        StepStatus::Succeeded => "succeeded",
        StepStatus::Failed => "failed",
        StepStatus::Skipped => "skipped",
    }
}

/// A duration that keeps counting on the live page while the run is in progress (its
/// script advances every `.tick` from the value it was served with).
fn ticking(ms: u64, live: bool) -> String {
    if live {
        format!(
            r#"<span class="tick" data-ms="{ms}">{}</span>"#,
            esc(&duration(ms))
        )
    } else {
        esc(&duration(ms))
    }
}

fn bar_color(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Succeeded => "#1a7f37",
        StepStatus::Running => "#0969da",
        StepStatus::Failed => "#cf222e",
        StepStatus::Skipped => "#8c959f",
        StepStatus::Pending => "#d4a72c",
    }
}

/// The Gantt chart: a row per step and per fan-out item, bars from start to end (to
/// the last event for a step in progress), halts (red) and decisions (blue) marked.
pub fn gantt(r: &Review) -> String {
    let rows: Vec<(&StepView, bool)> = r
        .steps
        .iter()
        .flat_map(|s| std::iter::once((s, false)).chain(s.items.iter().map(|i| (i, true))))
        .collect();
    let (label_w, chart_w, row_h, top) = (230.0, 700.0, 20.0, 24.0);
    let height = top + row_h * rows.len() as f64 + 8.0;
    let span = r.duration_ms.max(1) as f64;
    let running = r.status == "running";
    let x = |ms: u64| label_w + chart_w * (ms.saturating_sub(r.started_at) as f64 / span).min(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg role="img" aria-label="timeline of the steps" viewBox="0 0 {} {height}" width="100%">"#,
        label_w + chart_w + 10.0
    );
    let _ = write!(
        svg,
        r##"<text x="{label_w}" y="14">0</text><text x="{}" y="14" text-anchor="end">{}</text>"##,
        label_w + chart_w,
        esc(&duration(r.duration_ms))
    );
    for (i, (s, item)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let name = if *item {
            format!("  {}", s.id)
        } else {
            s.id.clone()
        };
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" fill="{}">{}</text>"#,
            if *item { 16.0 } else { 4.0 },
            y + 14.0,
            if *item { "#57606a" } else { "#1b1f24" },
            esc(&name)
        );
        if let Some(start) = s.started_at {
            let end = match s.ended_at {
                Some(e) => e,
                None if running && s.status == StepStatus::Running => r.as_of,
                None => r.updated_at,
            }
            .max(start);
            let tip = esc(&format!(
                "{}: {} {}",
                s.id,
                shown_class(s.status, running),
                s.duration_ms
                    .map(duration)
                    .unwrap_or_else(|| "in progress".into())
            ));
            // One bar per stretch the step was active: never over the time the run
            // sat halted.
            for (a, b) in active_stretches(start, end, &r.halted) {
                let (x0, x1) = (x(a), x(b));
                let _ = write!(
                    svg,
                    r#"<rect x="{x0:.1}" y="{}" width="{:.1}" height="{}" rx="2" fill="{}"><title>{tip}</title></rect>"#,
                    y + 3.0,
                    (x1 - x0).max(2.0),
                    row_h - 6.0,
                    bar_color(s.status),
                );
            }
        }
    }
    for h in &r.halted {
        let (x0, x1) = (x(h.from), x(h.to));
        let _ = write!(
            svg,
            r##"<g class="halted"><title>halted {}: waiting for a person</title><rect x="{x0:.1}" y="{top}" width="{:.1}" height="{}" fill="#cf222e" fill-opacity="0.08"/></g>"##,
            esc(&duration(h.to - h.from)),
            (x1 - x0).max(1.0),
            height - top
        );
    }
    for m in r.timeline.iter().filter(|m| m.mark.is_some()) {
        let color = if m.mark == Some("halt") {
            "#cf222e"
        } else {
            "#0969da"
        };
        let mx = x(m.at);
        let _ = write!(
            svg,
            r#"<g><title>{}</title><line x1="{mx:.1}" y1="{top}" x2="{mx:.1}" y2="{height}" stroke="{color}" stroke-dasharray="3 2"/><path d="M{:.1} {} l5 -8 h-10 z" fill="{color}"/></g>"#,
            esc(&m.text),
            mx,
            top
        );
    }
    svg.push_str("</svg>");
    svg
}

/// `[a, b)` less the halted stretches.
fn active_stretches(a: u64, b: u64, halted: &[engine::review::Span]) -> Vec<(u64, u64)> {
    let mut out = vec![(a, b)];
    for h in halted {
        out = out
            .into_iter()
            .flat_map(|(x, y)| {
                if h.to <= x || h.from >= y {
                    vec![(x, y)]
                } else {
                    [(x, h.from.max(x)), (h.to.min(y), y)]
                        .into_iter()
                        .filter(|(p, q)| q > p)
                        .collect()
                }
            })
            .collect();
    }
    out
}

fn steps_table(out: &mut String, r: &Review) {
    out.push_str(r#"<table class="steps"><colgroup><col class="n"><col class="id"><col class="st"><col class="at"><col class="du"><col></colgroup><tr><th>#</th><th>step</th><th>status</th><th>attempts</th><th>duration</th><th>calls, waits, failures</th></tr>"#);
    let live = r.status == "running";
    for (i, s) in r.steps.iter().enumerate() {
        step_row(out, &(i + 1).to_string(), s, live);
        for (j, item) in s.items.iter().enumerate() {
            step_row(out, &format!("{}.{}", i + 1, j + 1), item, live);
        }
    }
    out.push_str("</table>");
}

fn step_row(out: &mut String, n: &str, s: &StepView, live: bool) {
    let mut detail = String::new();
    for c in &s.calls {
        let _ = write!(detail, "<div><code>{}</code></div>", esc(c));
    }
    for w in &s.waited {
        let _ = write!(
            detail,
            "<div>waited {} for {} ({} checks)</div>",
            esc(&duration(w.ms)),
            esc(&w.what),
            w.checks
        );
    }
    for f in &s.failures {
        let _ = write!(detail, "<div>failed: {}</div>", esc(f));
    }
    if let Some(nt) = &s.note {
        let _ = write!(detail, "<div>{}</div>", esc(nt));
    }
    let running = s.status == StepStatus::Running;
    let took = match s.duration_ms {
        Some(ms) => {
            let t = ticking(ms, live && running);
            match (running, s.timeout_ms) {
                (true, Some(limit)) => format!(
                    "{t}<div class=\"muted\">timeout {}</div>",
                    esc(&duration(limit))
                ),
                _ => t,
            }
        }
        None => "—".into(),
    };
    let _ = write!(
        out,
        r#"<tr class="is-{cls}"><td>{n}</td><td><code>{}</code>{}</td><td><span class="status {cls}">{cls}</span></td><td>{}</td><td>{took}</td><td>{detail}</td></tr>"#,
        esc(&s.id),
        s.title
            .as_ref()
            .map(|t| format!("<br>{}", esc(t)))
            .unwrap_or_default(),
        s.attempts,
        cls = shown_class(s.status, live),
    );
}

/// The live part: status, what the run waits for or why it stopped, the chart and
/// the steps.
pub fn live(r: &Review) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<h1>Run {} — {} <span class="status {st}" id="run-status">{st}</span></h1>"#,
        esc(&r.run_id),
        esc(&r.title),
        st = esc(&r.status)
    );
    let live = r.status == "running";
    let _ = write!(
        out,
        "<p>started {} · last event {} · {} in all</p>",
        esc(&utc(r.started_at)),
        esc(&utc(r.updated_at)),
        ticking(r.duration_ms, live)
    );
    out.push_str(r#"<ul class="story" id="summary">"#);
    for line in &r.summary {
        let _ = write!(out, "<li>{}</li>", esc(line));
    }
    out.push_str("</ul>");
    if let Some(c) = &r.current {
        let step = r.steps.iter().find(|s| &s.id == c);
        let waited = step
            .and_then(|s| s.duration_ms)
            .map(|ms| format!(" · running for {}", ticking(ms, live)))
            .unwrap_or_default();
        let limit = step
            .and_then(|s| s.timeout_ms)
            .map(|t| format!(" of its timeout {}", esc(&duration(t))))
            .unwrap_or_default();
        let _ = write!(
            out,
            r#"<div class="wait" id="current">current step: <code>{}</code>{waited}{limit}"#,
            esc(c)
        );
        for w in &r.waiting {
            let _ = write!(out, "<div>{}</div>", esc(w));
        }
        out.push_str("</div>");
    }
    if let Some(h) = &r.halt {
        let _ = write!(
            out,
            r#"<div class="stop" id="halt"><strong>{}</strong>"#,
            esc(&h.reason)
        );
        if !h.resume.is_empty() {
            let _ = write!(
                out,
                r#"<div>to continue: <code id="resume">{}</code></div>"#,
                esc(&h.resume)
            );
        }
        out.push_str("</div>");
    }
    out.push_str("<h2>Timeline</h2>");
    out.push_str(&gantt(r));
    out.push_str("<h2>Steps</h2>");
    steps_table(&mut out, r);
    out
}

/// The rest: the runbook, parameters, people, every event.
pub fn record(r: &Review) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<h2>Runbook</h2><p><code>{}</code> from {} · pinned text sha256 <code>{}</code></p>",
        esc(&r.runbook),
        esc(&r.origin),
        esc(&r.source_hash)
    );
    out.push_str("<h2>Parameters</h2><table>");
    for (k, v) in &r.params {
        let _ = write!(
            out,
            "<tr><th><code>{}</code></th><td><code>{}</code></td></tr>",
            esc(k),
            esc(&v.to_string())
        );
    }
    out.push_str("</table><h2>People</h2><table><tr><th>what</th><th>who</th><th>host</th><th>pid</th><th>UTC</th><th>detail</th></tr>");
    for p in &r.people {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.what),
            esc(&p.operator),
            esc(&p.host),
            p.pid,
            esc(&utc(p.at)),
            esc(p.detail.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table><h2>Every event</h2>");
    if r.timeline.is_empty() {
        out.push_str(
            "<p>The run's process holds the journal: its events are shown once it lets go.</p>",
        );
    } else {
        out.push_str(r#"<table class="events"><colgroup><col class="utc"><col class="off"><col class="ev"><col></colgroup><tr><th>UTC</th><th>since start</th><th>event</th><th></th></tr>"#);
        for m in &r.timeline {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>",
                esc(&utc(m.at)),
                esc(&offset(m.offset_ms)),
                m.event,
                m.mark
                    .map(|k| format!(" <strong>({k})</strong>"))
                    .unwrap_or_default(),
                esc(&m.text)
            );
        }
        out.push_str("</table>");
    }
    out
}

/// The whole report as one file.
pub fn render(r: &Review) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Run {} — {}</title><style>{STYLE}</style></head><body>{}{}</body></html>\n",
        esc(&r.run_id),
        esc(&r.title),
        live(r),
        record(r)
    )
}
