//! Validation of the `wasm` policy: the module file (resolved, allowed, present and not too large), the failure mode and the sandbox limits; compiling the module is the control plane's check.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::{pos, Ctx};
use crate::paths::Access;
use crate::policy::WasmPolicy;
use crate::raw::RawWasm;

/// Largest module file read (the module is compiled, so it is far larger than a key file).
pub const MAX_MODULE_BYTES: u64 = 64 << 20;

/// Largest `memory_limit` (the engine's instance slots are this large).
const MAX_MEMORY: u64 = 256 << 20;

pub(super) fn wasm(cx: &mut Ctx, raw: &Spanned<RawWasm>) -> WasmPolicy {
    let r = &raw.value;
    let (module, module_at) = match &r.module {
        Some(m) => (module_file(cx, m), pos(m)),
        None => {
            cx.err(pos(raw), "wasm needs a `module` (the plugin's .wasm file)");
            (Default::default(), pos(raw))
        }
    };
    let fail_open = match r.fail.as_ref().map(|f| (f, f.value.as_str())) {
        None | Some((_, "closed")) => false,
        Some((_, "open")) => true,
        Some((f, other)) => {
            cx.err(
                pos(f),
                format!("wasm.fail must be `closed` or `open`, not `{other}`"),
            );
            false
        }
    };
    let memory_limit = cx.size(r.memory_limit.as_ref(), "wasm.memory_limit", 64 << 20);
    if let Some(m) = &r.memory_limit {
        if !(1 << 20..=MAX_MEMORY).contains(&memory_limit) {
            cx.err(pos(m), "wasm.memory_limit must be from 1MiB to 256MiB");
        }
    }
    let cpu_limit = cx.duration(
        r.cpu_limit.as_ref(),
        "wasm.cpu_limit",
        Duration::from_millis(10),
        false,
    );
    if let Some(c) = &r.cpu_limit {
        if cpu_limit > Duration::from_secs(1) {
            cx.err(
                pos(c),
                "wasm.cpu_limit must be at most 1s (it holds a worker thread)",
            );
        }
    }
    let max_body = cx.size(r.max_body.as_ref(), "wasm.max_body", 1 << 20);
    if let Some(b) = &r.max_body {
        if max_body > 64 << 20 {
            cx.err(pos(b), "wasm.max_body must be at most 64MiB");
        }
    }
    WasmPolicy {
        module,
        module_at,
        config: r.config.as_ref().map(|c| c.value.clone()),
        fail_open,
        memory_limit,
        cpu_limit,
        max_body,
        root_id: r
            .root_id
            .as_ref()
            .map(|s| s.value.clone())
            .unwrap_or_default(),
    }
}

/// The module path, resolved and checked like other input files but with a larger cap.
fn module_file(cx: &mut Ctx, s: &crate::raw::S) -> std::path::PathBuf {
    if s.value.is_empty() {
        cx.err(pos(s), "wasm.module: empty file path");
        return Default::default();
    }
    let path = cx.resolve_path(&s.value);
    if !cx.allowed_path(pos(s), "wasm.module", &path, Access::Read) || !cx.checks_files() {
        return path;
    }
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() && m.len() > MAX_MODULE_BYTES => cx.err(
            pos(s),
            format!("wasm.module: file `{}` is larger than 64 MiB", s.value),
        ),
        Ok(m) if m.is_file() => {}
        _ => cx.err(
            pos(s),
            format!(
                "wasm.module: file `{}` not found (looked for {})",
                s.value,
                path.display()
            ),
        ),
    }
    path
}

#[cfg(test)]
mod tests {
    use crate::*;

    const HEAD: &str = "listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n\
                        routes:\n  - name: r\n    upstream: app\n    policies: [p]\n\
                        upstreams:\n  - name: app\n    endpoints: [\"127.0.0.1:9001\"]\n\
                        policies:\n  - name: p\n";

    fn parsed(policy: &str) -> Result<Loaded, String> {
        parse("t.yaml", &format!("{HEAD}{policy}"), None).map_err(|e| e.to_string())
    }

    fn spec(policy: &str) -> WasmPolicy {
        let l = parsed(policy).unwrap_or_else(|e| panic!("{e}"));
        match &l.config.policies[0].spec {
            PolicySpec::Wasm(w) => (**w).clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_config_as_json_bytes() {
        let w = spec("    wasm:\n      module: p.wasm\n      config: { a: 1, b: [x, true] }\n");
        assert!(!w.fail_open);
        assert_eq!(w.memory_limit, 64 << 20);
        assert_eq!(w.cpu_limit, std::time::Duration::from_millis(10));
        let json: serde_json::Value = serde_json::from_slice(&w.config_bytes()).unwrap();
        assert_eq!(json["b"][1], serde_json::Value::Bool(true));
        let s = spec("    wasm: { module: p.wasm, config: \"raw text\", fail: open }\n");
        assert_eq!(s.config_bytes(), b"raw text");
        assert!(s.fail_open);
        assert!(spec("    wasm: { module: p.wasm }\n")
            .config_bytes()
            .is_empty());
    }

    #[test]
    fn bad_settings_are_reported_at_their_positions() {
        let e = parsed(
            "    wasm:\n      module: p.wasm\n      fail: maybe\n      memory_limit: 1GiB\n      cpu_limit: 5s\n",
        )
        .unwrap_err();
        assert!(
            e.contains("t.yaml:15:13: wasm.fail must be `closed` or `open`"),
            "{e}"
        );
        assert!(e.contains("t.yaml:16:21: wasm.memory_limit"), "{e}");
        assert!(e.contains("t.yaml:17:18: wasm.cpu_limit"), "{e}");
        let e = parsed("    wasm: { config: 1 }\n").unwrap_err();
        assert!(e.contains("needs a `module`"), "{e}");
    }
}
