//! The etcd key layout (pure): keys under the prefix become one config document, and a document becomes keys.
//!
//! Layout, relative to the prefix:
//! - `server`: the `server:` section;
//! - `listeners/NAME`, `upstreams/NAME`, `policies/NAME`, `routes/NAME`, `rollouts/NAME`: one
//!   item each, as YAML or JSON; its `name` is implied by the key and, if written, must equal it;
//! - `route_order`: a list of route names, the order routes are tried in (after `priority`).
//!   Routes it does not list come after the listed ones, in name order; names it lists that
//!   have no key are ignored. This keeps the config contract's "first match in written order"
//!   without encoding order in key names.
//!
//! `policies:` and `rollouts:` may instead stay in each instance's bootstrap file (as before
//! they had keys), but not both: a section the bootstrap file holds and that has keys too is an
//! error naming the keys, and admin writes leave such a section to the bootstrap file.
//!
//! The assembled document is the bootstrap file's text followed by the sections built from
//! the keys, each value re-indented verbatim. [`Assembled::locate`] maps a position in it
//! back to the key (and the line and column inside the key's value) or to the bootstrap file.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;
use strait_config::{Diagnostic, Pos};

/// Values under the prefix, by key relative to the prefix.
pub type Values = BTreeMap<String, String>;

/// The key holding the order routes are tried in.
pub const ROUTE_ORDER: &str = "route_order";
/// The key holding the `server:` section.
pub const SERVER: &str = "server";
/// The sections stored one item per key, in the order they are assembled.
pub const SECTIONS: [&str; 5] = ["listeners", "upstreams", "policies", "routes", "rollouts"];

/// The item sections a bootstrap file may hold instead of etcd (they were local before etcd
/// had keys for them).
pub const BOOTSTRAP_SECTIONS: [&str; 2] = ["policies", "rollouts"];

/// What a key (relative to the prefix) holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key<'a> {
    /// `server`.
    Server,
    /// `route_order`.
    RouteOrder,
    /// `SECTION/NAME`.
    Item(&'static str, &'a str),
}

/// Classifies a relative key; `None` for keys outside the layout.
pub fn classify(rel: &str) -> Option<Key<'_>> {
    match rel {
        SERVER => return Some(Key::Server),
        ROUTE_ORDER => return Some(Key::RouteOrder),
        _ => {}
    }
    let (section, name) = rel.split_once('/')?;
    let section = SECTIONS.into_iter().find(|s| *s == section)?;
    (!name.is_empty() && !name.contains('/')).then_some(Key::Item(section, name))
}

/// A document assembled from keys, with the map back to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    /// The YAML text: bootstrap first, then the sections from etcd.
    pub text: String,
    bootstrap_lines: u64,
    spans: Vec<Span>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    key: String,
    /// 1-based line of the document where the value's first line is.
    start: u64,
    lines: u64,
    /// Columns added in front of each line of the value.
    indent: u64,
    /// A `name:` line was added before the value (the name was implied by the key).
    name_line: bool,
    /// The value was rewritten (a flow mapping given its name), so columns do not map.
    rewritten: bool,
}

/// Where a position in an assembled document came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The bootstrap file, at this position.
    Bootstrap(Pos),
    /// The key (relative to the prefix), at this position inside its value.
    Key(String, Pos),
    /// Lines added while assembling (section headers).
    Assembly,
}

impl Assembled {
    /// Maps a position in [`Assembled::text`] back to its origin.
    pub fn locate(&self, (line, col): Pos) -> Origin {
        if line == 0 {
            return Origin::Assembly;
        }
        if line <= self.bootstrap_lines {
            return Origin::Bootstrap((line, col));
        }
        for s in &self.spans {
            if line < s.start || line >= s.start + s.lines {
                continue;
            }
            if s.rewritten || (s.name_line && line == s.start) {
                return Origin::Key(s.key.clone(), (0, 0));
            }
            let rel = line - s.start + 1 - u64::from(s.name_line);
            let col = col.saturating_sub(s.indent);
            return Origin::Key(s.key.clone(), (rel, col));
        }
        Origin::Assembly
    }

    /// Rewrites diagnostics about the assembled text to name the key or the bootstrap file.
    pub fn map_diagnostic(
        &self,
        d: Diagnostic,
        prefix: &str,
        bootstrap_source: &str,
    ) -> Diagnostic {
        match self.locate((d.line, d.column)) {
            Origin::Bootstrap(at) => Diagnostic::new(bootstrap_source, at, d.message),
            Origin::Key(key, at) => Diagnostic::new(key_source(prefix, &key), at, d.message),
            Origin::Assembly => Diagnostic::new(format!("etcd:{prefix}"), (0, 0), d.message),
        }
    }
}

/// How a key is named in diagnostics: `etcd:/strait/routes/api`.
pub fn key_source(prefix: &str, rel: &str) -> String {
    format!("etcd:{prefix}{rel}")
}

/// Builds the document: `bootstrap` then the sections from `values`. Errors name the key
/// (values that are not one YAML/JSON mapping, names that contradict the key, unknown keys).
pub fn assemble(
    prefix: &str,
    bootstrap: &str,
    values: &Values,
) -> Result<Assembled, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut out = Assembled {
        text: String::with_capacity(
            bootstrap.len() + values.values().map(|v| v.len() + 16).sum::<usize>() + 64,
        ),
        bootstrap_lines: 0,
        spans: Vec::new(),
    };
    out.text.push_str(bootstrap);
    if !out.text.is_empty() && !out.text.ends_with('\n') {
        out.text.push('\n');
    }
    out.bootstrap_lines = out.text.lines().count() as u64;
    out.text.push_str(&format!(
        "# The sections below are assembled from etcd keys under {prefix}\n"
    ));

    let mut items: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    let mut server = None;
    let mut order = Vec::new();
    for (rel, value) in values {
        let source = key_source(prefix, rel);
        match classify(rel) {
            Some(Key::Server) => server = Some((rel.as_str(), value.as_str())),
            Some(Key::RouteOrder) => match route_order(value) {
                Ok(names) => order = names,
                Err(d) => errors.push(Diagnostic::new(source, d.0, d.1)),
            },
            Some(Key::Item(section, name)) => items.entry(section).or_default().push((name, value)),
            None => errors.push(Diagnostic::new(
                source,
                (0, 0),
                "unknown key: expected server, route_order, listeners/NAME, upstreams/NAME, policies/NAME, routes/NAME or rollouts/NAME",
            )),
        }
    }
    if items.get("listeners").is_none_or(|l| l.is_empty()) {
        errors.push(Diagnostic::new(
            format!("etcd:{prefix}"),
            (0, 0),
            format!("no listeners under {prefix}listeners/: seed etcd with `strait config push -c FILE --etcd URL`"),
        ));
    }
    for section in held_by(bootstrap) {
        for (name, _) in items.get(section).into_iter().flatten() {
            errors.push(Diagnostic::new(
                key_source(prefix, &format!("{section}/{name}")),
                (0, 0),
                format!("`{section}` is also in the bootstrap file: keep it in one place (remove it from the bootstrap file, or delete the {section}/ keys)"),
            ));
        }
    }
    if let Some((rel, value)) = server {
        match checked(value, None) {
            Ok(v) => {
                out.text.push_str("server:\n");
                out.push_value(rel, &v, 2, "  ");
            }
            Err((at, msg)) => errors.push(Diagnostic::new(key_source(prefix, rel), at, msg)),
        }
    }
    for section in SECTIONS {
        let Some(list) = items.get_mut(section) else {
            continue;
        };
        if section == "routes" {
            sort_routes(list, &order);
        }
        out.text.push_str(section);
        out.text.push_str(":\n");
        for (name, value) in list.iter() {
            let rel = format!("{section}/{name}");
            match checked(value, Some(name)) {
                Ok(v) => out.push_value(&rel, &v, 4, "  - "),
                Err((at, msg)) => errors.push(Diagnostic::new(key_source(prefix, &rel), at, msg)),
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// A value ready to be placed in the document.
struct Checked {
    lines: Vec<String>,
    name_line: bool,
    rewritten: bool,
}

impl Assembled {
    fn push_value(&mut self, key: &str, v: &Checked, indent: u64, first: &str) {
        let start = self.text.lines().count() as u64 + 1;
        let pad = " ".repeat(indent as usize);
        for (i, line) in v.lines.iter().enumerate() {
            if i == 0 {
                self.text.push_str(first);
            } else if !line.is_empty() {
                self.text.push_str(&pad);
            }
            self.text.push_str(line);
            self.text.push('\n');
        }
        self.spans.push(Span {
            key: key.to_owned(),
            start,
            lines: v.lines.len() as u64,
            indent,
            name_line: v.name_line,
            rewritten: v.rewritten,
        });
    }
}

/// Checks one value (a mapping; its `name`, if any, equals `name`) and prepares its lines.
fn checked(value: &str, name: Option<&str>) -> Result<Checked, (Pos, String)> {
    let value = value.trim_end();
    for (i, line) in value.lines().enumerate() {
        if line.starts_with("---") || line.starts_with("...") {
            return Err(((i as u64 + 1, 1), "a value is one YAML or JSON mapping: document markers (--- or ...) are not allowed".into()));
        }
    }
    let parsed = parse_value(value)?;
    let Value::Object(mut map) = parsed else {
        return Err((
            (1, 1),
            "the value must be a mapping (the YAML or JSON of one item)".into(),
        ));
    };
    let Some(name) = name else {
        return Ok(Checked {
            lines: value.lines().map(str::to_owned).collect(),
            name_line: false,
            rewritten: false,
        });
    };
    match map.get("name") {
        Some(Value::String(n)) if n == name => Ok(Checked {
            lines: value.lines().map(str::to_owned).collect(),
            name_line: false,
            rewritten: false,
        }),
        Some(other) => {
            let line = value
                .lines()
                .position(|l| l.contains("name"))
                .map_or(1, |i| i as u64 + 1);
            Err(((line, 1), format!("`name: {other}` does not match the key's name `{name}` (leave `name` out, or make them equal)")))
        }
        None if first_content(value).starts_with('{') => {
            // A flow mapping cannot take an extra line; write it again as JSON with its name.
            map.insert("name".into(), Value::String(name.to_owned()));
            Ok(Checked {
                lines: vec![Value::Object(map).to_string()],
                name_line: false,
                rewritten: true,
            })
        }
        None => {
            let mut lines = vec![format!("name: {}", Value::String(name.to_owned()))];
            lines.extend(value.lines().map(str::to_owned));
            Ok(Checked {
                lines,
                name_line: true,
                rewritten: false,
            })
        }
    }
}

/// The first line that is not blank or a comment.
fn first_content(value: &str) -> &str {
    value
        .lines()
        .map(str::trim_start)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or_default()
}

/// Reads one YAML/JSON value with the options config files are read with.
fn parse_value(text: &str) -> Result<Value, (Pos, String)> {
    if text.trim().is_empty() {
        return Err((
            (1, 1),
            "the value is empty: it must be the YAML or JSON of one item".into(),
        ));
    }
    serde_saphyr::from_str_with_options::<Value>(text, strait_config::yaml_options()).map_err(|e| {
        let at = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        (at, strait_config::yaml_message(&e))
    })
}

fn route_order(value: &str) -> Result<Vec<String>, (Pos, String)> {
    match parse_value(value)? {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err((
                    (1, 1),
                    format!("route_order lists route names (strings), not `{other}`"),
                )),
            })
            .collect(),
        _ => Err((
            (1, 1),
            "route_order must be a list of route names, e.g. [api, web]".into(),
        )),
    }
}

/// Listed routes first in `order`, the rest after them in name order (`list` is in name order).
fn sort_routes(list: &mut [(&str, &str)], order: &[String]) {
    let rank = |name: &str| order.iter().position(|o| o == name).unwrap_or(usize::MAX);
    // Stable: unlisted routes keep their name order.
    list.sort_by_key(|(name, _)| rank(name));
}

/// Splits a whole config document into values by relative key (for admin writes and
/// `strait config push`). Items are stored as JSON; local sections (`admin`, `config`, ...) are left out.
pub fn split(text: &str) -> Result<Values, String> {
    let doc = parse_value(text).map_err(|((l, c), m)| format!("{l}:{c}: {m}"))?;
    let Value::Object(doc) = doc else {
        return Err("the document is not a mapping".into());
    };
    let mut out = Values::new();
    if let Some(server) = doc.get("server") {
        if !server.is_object() {
            return Err("`server` must be a mapping".into());
        }
        out.insert(SERVER.into(), server.to_string());
    }
    for section in SECTIONS {
        let Some(list) = doc.get(section) else {
            continue;
        };
        let Value::Array(list) = list else {
            return Err(format!("`{section}` must be a list"));
        };
        let mut names = Vec::new();
        let mut seen = HashSet::new();
        for (i, item) in list.iter().enumerate() {
            let name = match item.get("name") {
                Some(Value::String(n)) if classify(&format!("{section}/{n}")).is_some() => {
                    n.clone()
                }
                _ => {
                    return Err(format!(
                        "{section}[{i}] needs a `name` (it becomes the key {section}/NAME)"
                    ))
                }
            };
            if !seen.insert(name.clone()) {
                return Err(format!("duplicate {section} name `{name}`"));
            }
            out.insert(format!("{section}/{name}"), item.to_string());
            names.push(Value::String(name));
        }
        if section == "routes" && !names.is_empty() {
            out.insert(ROUTE_ORDER.into(), Value::Array(names).to_string());
        }
    }
    Ok(out)
}

/// The sections of [`BOOTSTRAP_SECTIONS`] that `bootstrap` (a bootstrap file's text) holds.
pub fn held_by(bootstrap: &str) -> Vec<&'static str> {
    // A bootstrap file is block style (checked when it is read), so a section is a line that
    // starts with its key.
    BOOTSTRAP_SECTIONS
        .into_iter()
        .filter(|s| {
            bootstrap.lines().any(|l| {
                l.strip_prefix(s)
                    .is_some_and(|rest| rest.trim_start().starts_with(':'))
            })
        })
        .collect()
}

/// [`split`] for an admin write to an instance whose bootstrap file holds some sections
/// ([`held_by`]): those are left out, and a write that changes one is refused, since the
/// provider cannot store it.
pub fn split_shared(text: &str, bootstrap: &str) -> Result<Values, String> {
    let mut out = split(text)?;
    let local = held_by(bootstrap);
    if local.is_empty() {
        return Ok(out);
    }
    let doc = parse_value(text).map_err(|((l, c), m)| format!("{l}:{c}: {m}"))?;
    let boot = parse_value(bootstrap).map_err(|((l, c), m)| format!("bootstrap {l}:{c}: {m}"))?;
    for section in local {
        if doc.get(section) != boot.get(section) {
            return Err(format!("`{section}` comes from this instance's bootstrap file, not etcd: edit it there and restart (or move it to etcd's {section}/ keys)"));
        }
        out.retain(|k, _| !matches!(classify(k), Some(Key::Item(s, _)) if s == section));
    }
    Ok(out)
}

/// A value in comparable form (the implied name filled in), or `None` when it does not parse.
pub fn normalize(rel: &str, value: &str) -> Option<Value> {
    let mut v = parse_value(value).ok()?;
    if let (Some(Key::Item(_, name)), Value::Object(map)) = (classify(rel), &mut v) {
        map.entry("name")
            .or_insert_with(|| Value::String(name.to_owned()));
    }
    Some(v)
}

/// True when two values of key `rel` say the same thing (spelling, order of fields and
/// an implied name aside).
pub fn same(rel: &str, a: &str, b: &str) -> bool {
    a == b || matches!((normalize(rel, a), normalize(rel, b)), (Some(x), Some(y)) if x == y)
}
