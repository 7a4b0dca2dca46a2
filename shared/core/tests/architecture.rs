//! The core's dependency rules, checked on its source: modules depend on each other one way (no
//! circles), pure modules do no I/O, and the storage adapters stay behind the port.
//!
//! The check reads `src/` and collects, for every top-level module, the other top-level modules
//! its non-test code names through `crate::…`. Test code (`#[cfg(test)] mod …`) may reach
//! anything and is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that decide and compute only: no store, queue, HTTP or AWS.
const PURE: [&str; 6] = [
    "domain",
    "error_class",
    "clock",
    "mapping",
    "filters",
    "decide",
];
/// Crates and modules a pure module may not name.
const IO: [&str; 13] = [
    "aws_sdk",
    "aws_config",
    "reqwest",
    "tokio",
    "crate::store",
    "crate::queue",
    "crate::runtime",
    "crate::oauth",
    "crate::http",
    "crate::qbo",
    "crate::hubspot",
    "crate::connection",
    "crate::ledger::store",
];

fn source_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            source_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The file's text without its test modules.
fn production_code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut kept = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let next = lines.get(i + 1).map(|l| l.trim_start()).unwrap_or("");
        if lines[i].trim() == "#[cfg(test)]"
            && (next.starts_with("mod ") || next.starts_with("pub(crate) mod "))
            && next.ends_with('{')
        {
            // Skip the module up to its closing brace at the same indentation.
            let indent = lines[i + 1].len() - next.len();
            i += 2;
            while i < lines.len() {
                let line = lines[i];
                let closing = line.trim() == "}" && line.len() - line.trim_start().len() == indent;
                i += 1;
                if closing {
                    break;
                }
            }
            continue;
        }
        kept.push(lines[i]);
        i += 1;
    }
    kept.join("\n")
}

/// Top-level modules named as `crate::<module>` or inside `crate::{<module>, …}`.
fn referenced_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // A grouped import: the first identifier of every top-level entry.
            let mut depth = 0;
            let mut entry_start = true;
            for (index, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => entry_start = true,
                    c if entry_start && (c.is_alphanumeric() || c == '_') => {
                        let name: String = group[index..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        found.insert(name);
                        entry_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
    code: BTreeMap<String, String>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.strip_prefix(&src).ok())
        .filter_map(|f| f.components().next())
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned()
        })
        .filter(|m| m != "lib")
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut code: BTreeMap<String, String> = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("inside src");
        let module = relative
            .components()
            .next()
            .map(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_owned()
            })
            .unwrap_or_default();
        if module == "lib" {
            continue;
        }
        let text = production_code(&std::fs::read_to_string(file).expect("readable"));
        let targets = edges.entry(module.clone()).or_default();
        for target in referenced_modules(&text) {
            if target != module && modules.contains(&target) {
                targets.insert(target);
            }
        }
        code.entry(module).or_default().push_str(&text);
    }
    Graph { edges, code }
}

/// A circle through `start`, if there is one.
fn circle_from(edges: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        edges: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in edges.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(edges, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(edges, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn modules_depend_on_each_other_one_way() {
    let graph = graph();
    assert!(
        graph.edges.len() > 10,
        "the source was read: {:?}",
        graph.edges.keys()
    );
    let circles: Vec<String> = graph
        .edges
        .keys()
        .filter_map(|module| circle_from(&graph.edges, module))
        .map(|circle| circle.join(" → "))
        .collect();
    assert!(circles.is_empty(), "dependency circles: {circles:#?}");
}

#[test]
fn pure_modules_do_no_io() {
    let graph = graph();
    for module in PURE {
        let code = graph
            .code
            .get(module)
            .unwrap_or_else(|| panic!("module {module} exists"));
        for io in IO {
            assert!(!code.contains(io), "pure module {module} names {io}");
        }
    }
}

#[test]
fn only_the_runtime_and_the_adapters_build_aws_clients() {
    let graph = graph();
    for (module, code) in &graph.code {
        if ["runtime", "store", "queue", "crypto"].contains(&module.as_str()) {
            continue;
        }
        assert!(
            !code.contains("aws_sdk_"),
            "{module} reaches the AWS SDK directly instead of through a port"
        );
    }
}

#[test]
fn the_checker_sees_grouped_imports_and_skips_tests() {
    let code = "use crate::{store::{Item, Store}, queue::Queue};\nuse crate::domain::Money;\n\
                #[cfg(test)]\nmod tests {\n    use crate::poll::x;\n}\n";
    let production = production_code(code);
    assert!(!production.contains("poll"), "{production}");
    assert_eq!(
        referenced_modules(&production),
        ["domain", "queue", "store"].map(String::from).into()
    );
}
