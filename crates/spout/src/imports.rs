//! The crate's modules import one another without a circle: a module that needs another's
//! definitions never also gives that module what it needs, directly or through others. A circle
//! means a definition sits in the wrong place; this test names the circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid pattern")
}

static TESTS: LazyLock<Regex> = LazyLock::new(|| regex(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod \w+\s*\{"));
static COMMENT: LazyLock<Regex> = LazyLock::new(|| regex(r"(?s)//[^\n]*|/\*.*?\*/"));
static PATH: LazyLock<Regex> = LazyLock::new(|| regex(r"\b(crate|super|self)((?:::\w+)+)"));
static LIST: LazyLock<Regex> = LazyLock::new(|| regex(r"\b(crate|super|self)((?:::\w+)*)::\{"));
static CHILD: LazyLock<Regex> = LazyLock::new(|| regex(r"(?:^|[^:\w])(\w+)::\w"));

/// A module by its path from the crate's root: `["docker", "files", "follow"]`.
type Module = Vec<String>;

/// Every module of the crate under `src` (the binary's `main.rs` aside), with its source.
fn modules(src: &Path) -> BTreeMap<Module, String> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read the source directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("under src").with_extension("");
            let mut module: Module = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if module == ["main"] {
                continue;
            }
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            found.insert(module, std::fs::read_to_string(&path).expect("read a source file"));
        }
    }
    found
}

/// The source without its comments and its test module (the last thing in a file, here).
fn code(source: &str) -> String {
    let source = TESTS.find(source).map_or(source, |m| &source[..m.start()]);
    COMMENT.replace_all(source, "").into_owned()
}

/// The modules `module` names in `source`: `crate::…`, `super::…` and `self::…` paths (with
/// `{…}` lists), and paths that start with one of its own child modules.
fn imports(module: &Module, source: &str, all: &BTreeMap<Module, String>) -> BTreeSet<Module> {
    let resolve = |mut path: Module| {
        while !path.is_empty() && !all.contains_key(&path) {
            path.pop();
        }
        path
    };
    let base = |anchor: &str| match anchor {
        "crate" => Vec::new(),
        "super" => module[..module.len().saturating_sub(1)].to_vec(),
        _ => module.clone(),
    };
    let words = |path: &str| path.split("::").filter(|w| !w.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    let mut named = BTreeSet::new();
    for c in PATH.captures_iter(source) {
        named.insert(resolve([base(&c[1]), words(&c[2])].concat()));
    }
    for c in LIST.captures_iter(source) {
        let prefix = [base(&c[1]), words(&c[2])].concat();
        let open = c.get(0).map_or(0, |m| m.end());
        let mut paths = Vec::new();
        use_list(&prefix, &source[open..open + list_len(&source[open..])], &mut paths);
        named.extend(paths.into_iter().map(resolve));
    }
    for c in CHILD.captures_iter(source) {
        let child = [module.clone(), vec![c[1].to_owned()]].concat();
        if all.contains_key(&child) {
            named.insert(child);
        }
    }
    // Itself, and the crate's root (which declares every module), are no imports.
    named.retain(|m| m != module && !m.is_empty());
    named
}

/// How far into `text` (just after a `{`) its matching `}` is.
fn list_len(text: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

/// The paths a use tree's `{…}` list names (`list`, inside its braces), nested lists included,
/// each after `prefix`.
fn use_list(prefix: &[String], list: &str, out: &mut Vec<Module>) {
    let words = |path: &str| -> Vec<String> {
        path.split("::").map(str::trim).filter(|w| !w.is_empty()).map(str::to_owned).collect()
    };
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in list.char_indices().chain([(list.len(), ',')]) {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                let item = list[start..i].trim();
                start = i + 1;
                match item.split_once('{') {
                    Some((head, inner)) => {
                        let nested: Module = prefix.iter().cloned().chain(words(head)).collect();
                        use_list(&nested, inner.strip_suffix('}').unwrap_or(inner), out);
                    }
                    None => {
                        let item = item.split(" as ").next().unwrap_or_default().trim();
                        if !item.is_empty() && item != "self" {
                            out.push(prefix.iter().cloned().chain(words(item)).collect());
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// A circle in `edges`, if there is one, as the modules along it.
fn circle(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Seen {
        Not,
        OnPath,
        Done,
    }
    fn visit(
        at: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        seen: &mut BTreeMap<Module, Seen>,
        path: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        seen.insert(at.clone(), Seen::OnPath);
        path.push(at.clone());
        for next in edges.get(at).into_iter().flatten() {
            match seen.get(next).copied().unwrap_or(Seen::Not) {
                Seen::OnPath => {
                    let from = path.iter().position(|m| m == next).unwrap_or(0);
                    return Some([&path[from..], std::slice::from_ref(next)].concat());
                }
                Seen::Not => {
                    if let Some(found) = visit(next, edges, seen, path) {
                        return Some(found);
                    }
                }
                Seen::Done => {}
            }
        }
        path.pop();
        seen.insert(at.clone(), Seen::Done);
        None
    }
    let mut seen = BTreeMap::new();
    for start in edges.keys() {
        if seen.get(start).copied().unwrap_or(Seen::Not) == Seen::Not {
            if let Some(found) = visit(start, edges, &mut seen, &mut Vec::new()) {
                return Some(found);
            }
        }
    }
    None
}

fn name(module: &Module) -> String {
    module.join("::")
}

#[test]
fn no_two_modules_import_each_other_directly_or_through_others() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let all = modules(&src);
    assert!(all.len() > 50, "the crate's modules were found: {}", all.len());
    let edges: BTreeMap<Module, BTreeSet<Module>> =
        all.iter().map(|(m, source)| (m.clone(), imports(m, &code(source), &all))).collect();
    if let Some(found) = circle(&edges) {
        let names: Vec<String> = found.iter().map(name).collect();
        panic!("modules import each other in a circle: {}", names.join(" -> "));
    }
}

#[test]
fn a_circle_is_found() {
    let all: BTreeMap<Module, String> = [
        (vec!["a".to_owned()], "use crate::{e::Q, b::{X, Y}};".to_owned()),
        (vec!["b".to_owned()], "/* crate::d::no */ fn f() { crate::c::go() }".to_owned()),
        (vec!["c".to_owned()], "use super::a::Z;".to_owned()),
        (vec!["d".to_owned()], "use crate::a::Z; // crate::d::no".to_owned()),
        (vec!["e".to_owned()], String::new()),
    ]
    .into_iter()
    .collect();
    let edges: BTreeMap<Module, BTreeSet<Module>> =
        all.iter().map(|(m, s)| (m.clone(), imports(m, &code(s), &all))).collect();
    let of = |m: &str| edges[&vec![m.to_owned()]].iter().map(name).collect::<Vec<_>>();
    assert_eq!(of("a"), ["b", "e"], "both of a nested use list");
    assert_eq!(of("b"), ["c"], "no comment counts");
    let found = circle(&edges).expect("a -> b -> c -> a");
    assert_eq!(found.iter().map(name).collect::<Vec<_>>(), ["a", "b", "c", "a"]);
    let mut without = edges;
    without.insert(vec!["c".to_owned()], BTreeSet::new());
    assert_eq!(circle(&without), None);
}
