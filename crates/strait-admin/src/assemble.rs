//! The documents admin writes store (pure): the running tree with the user's body placed verbatim, and a map from each position back to what the user wrote, so errors and warnings point into the body (`routes/api:2:13: ...`) or name the item they are about (`routes/web: unknown upstream ...`), never a line of a document the user never saw.

use serde_json::{Map, Value};
use strait_config::{Diagnostic, Pos};

/// The resource kinds addressable one by one, as their config section names.
pub(crate) const KINDS: [&str; 3] = ["routes", "upstreams", "listeners"];

/// A document text and where its lines came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assembled {
    /// The YAML text to validate and store.
    pub text: String,
    /// Lines of the text that hold one item or section written by Strait, by name.
    spans: Vec<Span>,
    /// The user's body, when placed verbatim.
    body: Option<Body>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    /// `routes/api`, or a section name such as `server`.
    origin: String,
    /// 1-based first line, and the number of lines.
    start: u64,
    lines: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Body {
    /// How the body is named in diagnostics (`admin` for a whole document, `routes/api`).
    source: String,
    /// 1-based line of the text where the body's first line is.
    start: u64,
    lines: u64,
    /// Columns added in front of each of the body's lines.
    indent: u64,
    /// A `name:` line was added before the body.
    name_line: bool,
    /// Text inserted into the body's line `.0` (1-based, in the body) after column `.1`, `.2`
    /// characters long (a field added to a flow mapping).
    inserted: Option<(u64, u64, u64)>,
}

/// Why a body cannot be placed.
pub(crate) type BodyError = (Pos, String);

/// One item written by the user.
struct Edit<'a> {
    kind: &'a str,
    name: &'a str,
    body: &'a str,
    has_name: bool,
}

impl Assembled {
    /// The whole document `body` (source `admin`), with `field: value` added when it lacks it:
    /// appended as a section to a block mapping, inserted into a flow mapping (JSON).
    pub(crate) fn document(body: &str, field: &str, value: Option<&Value>) -> Self {
        let mut text = body.to_string();
        let mut inserted = None;
        if let Some(value) = value {
            let pair = format!("\"{field}\": {value}");
            match insert_into_flow(body, &pair) {
                Some((t, at)) => {
                    text = t;
                    inserted = Some(at);
                }
                None => {
                    if !text.is_empty() && !text.ends_with('\n') {
                        text.push('\n');
                    }
                    // Appended, so positions in the body stay as the user wrote them.
                    let mut section = Map::new();
                    section.insert(field.to_string(), value.clone());
                    text.push_str(&strait_config::to_yaml(&Value::Object(section)));
                }
            }
        }
        Assembled {
            spans: Vec::new(),
            body: Some(Body {
                source: "admin".into(),
                start: 1,
                lines: u64::MAX / 2,
                indent: 0,
                name_line: false,
                inserted,
            }),
            text,
        }
    }

    /// `text` as it is, its positions told against `source` (a version's text, for a rollback).
    pub(crate) fn named(text: &str, source: &str) -> Self {
        let mut a = Assembled::document(text, "", None);
        if let Some(b) = a.body.as_mut() {
            b.source = source.to_string();
        }
        a
    }

    /// `tree` with item `kind/name` replaced by (or added as) `body`, placed verbatim; the
    /// body's `name`, when absent, is filled in from the URL.
    pub(crate) fn item(
        tree: &Value,
        kind: &str,
        name: &str,
        body: &str,
        has_name: bool,
    ) -> Result<Self, BodyError> {
        for (i, line) in body.lines().enumerate() {
            if line.starts_with("---") || line.starts_with("...") {
                return Err((
                    (i as u64 + 1, 1),
                    "the body is one YAML or JSON mapping: document markers (--- or ...) are not allowed".into(),
                ));
            }
        }
        let mut out = Assembled::empty();
        out.sections(
            tree,
            Some(&Edit {
                kind,
                name,
                body,
                has_name,
            }),
        );
        Ok(out)
    }

    /// `tree` as a document, each item and section mapped by name (for a delete).
    pub(crate) fn tree(tree: &Value) -> Self {
        let mut out = Assembled::empty();
        out.sections(tree, None);
        out
    }

    fn empty() -> Self {
        Assembled {
            text: String::new(),
            spans: Vec::new(),
            body: None,
        }
    }

    fn line(&self) -> u64 {
        self.text.lines().count() as u64 + 1
    }

    /// Writes every section of `tree`, the item lists last and the edited kind at the very
    /// end, where a new item is appended (so a new route is tried after the existing ones).
    fn sections(&mut self, tree: &Value, edit: Option<&Edit<'_>>) {
        let empty = Map::new();
        let doc = tree.as_object().unwrap_or(&empty);
        for (key, value) in doc {
            if KINDS.contains(&key.as_str()) && value.is_array() {
                continue;
            }
            let start = self.line();
            let mut one = Map::new();
            one.insert(key.clone(), value.clone());
            self.text
                .push_str(&strait_config::to_yaml(&Value::Object(one)));
            self.spans.push(Span {
                origin: key.clone(),
                start,
                lines: self.line() - start,
            });
        }
        let edited = edit.map(|e| e.kind);
        let mut kinds: Vec<&str> = KINDS
            .into_iter()
            .filter(|k| doc.get(*k).is_some_and(Value::is_array) || Some(*k) == edited)
            .collect();
        kinds.sort_by_key(|k| Some(*k) == edited);
        for kind in kinds {
            self.text.push_str(kind);
            self.text.push_str(":\n");
            let mut placed = false;
            for item in doc
                .get(kind)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(e) = edit.filter(|e| e.kind == kind && item_name(item) == Some(e.name))
                {
                    self.place_body(e);
                    placed = true;
                    continue;
                }
                let start = self.line();
                self.push_lines(&strait_config::to_yaml(item), None);
                let origin = match item_name(item) {
                    Some(n) => format!("{kind}/{n}"),
                    None => kind.to_string(),
                };
                self.spans.push(Span {
                    origin,
                    start,
                    lines: self.line() - start,
                });
            }
            if let Some(e) = edit.filter(|e| e.kind == kind && !placed) {
                self.place_body(e);
            }
        }
    }

    /// Writes `text`'s lines as one list item: `  - ` before the first, four spaces before the rest.
    fn push_lines(&mut self, text: &str, first: Option<&str>) {
        for (i, line) in first.into_iter().chain(text.lines()).enumerate() {
            if i == 0 {
                self.text.push_str("  - ");
            } else if !line.is_empty() {
                self.text.push_str("    ");
            }
            self.text.push_str(line);
            self.text.push('\n');
        }
    }

    fn place_body(&mut self, e: &Edit<'_>) {
        let start = self.line();
        let quoted = Value::String(e.name.to_string()).to_string();
        let mut inserted = None;
        let mut name_line = false;
        let mut text = e.body.trim_end().to_string();
        if !e.has_name {
            match insert_into_flow(&text, &format!("\"name\": {quoted}")) {
                Some((t, at)) => {
                    text = t;
                    inserted = Some(at);
                }
                None => name_line = true,
            }
        }
        let name_text = format!("name: {quoted}");
        self.push_lines(&text, name_line.then_some(name_text.as_str()));
        self.body = Some(Body {
            source: format!("{}/{}", e.kind, e.name),
            start,
            lines: self.line() - start,
            indent: 4,
            name_line,
            inserted,
        });
    }

    /// Where a position of the text came from: the body (at its own position) or an item.
    fn locate(&self, (line, col): Pos) -> (String, Pos) {
        if let Some(b) = &self.body {
            if line >= b.start && line < b.start.saturating_add(b.lines) {
                let first = u64::from(b.name_line);
                if line < b.start + first {
                    return (b.source.clone(), (0, 0));
                }
                let rel = line - b.start + 1 - first;
                let mut col = col.saturating_sub(b.indent);
                if let Some((l, at, len)) = b.inserted {
                    if rel == l && col > at {
                        col = if col > at + len { col - len } else { at };
                    }
                }
                return (b.source.clone(), (rel, col.max(1)));
            }
        }
        for s in &self.spans {
            if line >= s.start && line < s.start + s.lines {
                return (s.origin.clone(), (0, 0));
            }
        }
        (String::new(), (0, 0))
    }

    /// A diagnostic about the text, told as the user wrote it: `SOURCE:LINE:COL: reason` for
    /// the body, `ITEM: reason` for an item Strait wrote, with line references in the reason
    /// (`route `all` (line 8)`) rewritten the same way.
    pub(crate) fn describe(&self, d: &Diagnostic) -> String {
        let message = self.rewrite_line_refs(&d.message);
        match self.locate((d.line, d.column)) {
            (source, _) if source.is_empty() => message,
            (source, (0, _)) => format!("{source}: {message}"),
            (source, (l, c)) => format!("{source}:{l}:{c}: {message}"),
        }
    }

    fn rewrite_line_refs(&self, message: &str) -> String {
        let mut out = String::with_capacity(message.len());
        let mut rest = message;
        while let Some(i) = rest.find("line ") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 5..];
            let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            match after[..digits].parse::<u64>() {
                Ok(n) => {
                    let whole = self.body.as_ref().is_some_and(|b| b.indent == 0);
                    match self.locate((n, 1)) {
                        (_, (l, _)) if l > 0 && whole => out.push_str(&format!("line {l}")),
                        (s, (l, _)) if l > 0 => out.push_str(&format!("{s} line {l}")),
                        (s, _) if !s.is_empty() => out.push_str(&s),
                        _ => out.push_str(&rest[i..i + 5 + digits]),
                    }
                    rest = &after[digits..];
                }
                Err(_) => {
                    out.push_str("line ");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

fn item_name(item: &Value) -> Option<&str> {
    item.get("name").and_then(Value::as_str)
}

/// `text` with `pair` inserted right after the opening `{` of a flow mapping (JSON), and where:
/// `(line, column of the brace, inserted length)`; `None` for a block mapping.
fn insert_into_flow(text: &str, pair: &str) -> Option<(String, (u64, u64, u64))> {
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            offset += line.len();
            continue;
        }
        if !trimmed.starts_with('{') {
            return None;
        }
        let brace = offset + (line.len() - trimmed.len());
        let after = text[brace + 1..].trim_start();
        let insert = if after.starts_with('}') {
            format!(" {pair} ")
        } else {
            format!(" {pair}, ")
        };
        let col = line[..line.len() - trimmed.len()].chars().count() as u64 + 1;
        let mut out = String::with_capacity(text.len() + insert.len());
        out.push_str(&text[..=brace]);
        out.push_str(&insert);
        out.push_str(&text[brace + 1..]);
        return Some((out, (i as u64 + 1, col, insert.chars().count() as u64)));
    }
    None
}

#[cfg(test)]
mod tests;
