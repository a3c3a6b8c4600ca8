//! How deep a YAML text nests, checked before any YAML library reads it. Shared by
//! the runbook loader (`spans.rs`) and the environment file (`env.rs`), so neither
//! reaches into the other.

/// The deepest nesting of mappings and lists a runbook or an environment file may
/// have.
pub const MAX_DEPTH: usize = 64;

/// Where (line, column) a YAML text first nests deeper than [`MAX_DEPTH`], found in
/// one pass over the
/// characters, before any YAML library reads it (serde_yaml takes time quadratic in the
/// depth before it reports its recursion limit: 24 s for 100,000 brackets). Counts flow
/// brackets outside quotes and comments, plus block levels (each deeper indentation,
/// each `- ` of a sequence entry). An estimate on the safe side: it may count a level
/// that YAML would not, never fewer.
pub fn too_deep(source: &str) -> Option<(usize, usize)> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (l, line) in source.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        if flow == 0 && !body.is_empty() && !body.starts_with('#') {
            while indents.last().is_some_and(|i| *i >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        let mut dashes = 0;
        let mut rest = body;
        while let Some(r) = rest.strip_prefix("- ") {
            dashes += 1;
            rest = r.trim_start_matches(' ');
        }
        let (mut single, mut double) = (false, false);
        let mut prev = ' ';
        for (c, ch) in line.char_indices() {
            match ch {
                '\'' if !double => single = !single,
                '"' if !single && prev != '\\' => double = !double,
                '#' if !single && !double && (prev == ' ' || c == 0) => break,
                '[' | '{' if !single && !double => flow += 1,
                ']' | '}' if !single && !double => flow = flow.saturating_sub(1),
                _ => {}
            }
            prev = ch;
            if indents.len() + dashes + flow > MAX_DEPTH {
                return Some((l + 1, line[..c].chars().count() + 1));
            }
        }
    }
    None
}
