//! The pipeline flows one way (README "Layout"): every import of a library module names a
//! module of the same stage or of an earlier one, and no two files import each other, even
//! within a stage (no import circles of any length).
//!
//! Imports are read from the source text: `crate::…` paths (in `use` items and inline) and
//! `super::…` paths in code, not in comments and not in a file's `#[cfg(test)]` tail. A path
//! is attributed to the longest module with its own file that it starts with. A module and
//! its own submodules are exempt from each other (a folder's `mod.rs` declares and
//! re-exports its children).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The stages in pipeline order: a module may import only from its own stage or an earlier
/// one.
const STAGES: &[&str] = &[
    "syntax",
    "check",
    "render",
    "symbolic",
    "derive",
    "numeric",
    "generated",
    "data",
    "plot",
    "solve",
    "simulate",
    "finite_width",
    "report",
    "cli",
];

/// Module path (`numeric::kernel_map::chain`) → source text, for every file under `src/`.
fn modules() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    let root = stack[0].clone();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).expect("under src");
            let mut parts: Vec<String> = relative
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["main"] {
                continue;
            }
            if parts == ["lib"] {
                parts.clear();
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            out.insert(parts.join("::"), text);
        }
    }
    out
}

/// The code of a file: comment lines dropped, and an inline `#[cfg(test)] mod … { … }` block
/// skipped to its closing brace (`#[cfg(test)] mod name;` declares a child, which is read as
/// a file of its own).
fn code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut kept = Vec::new();
    let mut depth = 0i64;
    let mut in_tests = false;
    for (i, line) in lines.iter().enumerate() {
        if in_tests {
            depth += line.matches('{').count() as i64 - line.matches('}').count() as i64;
            in_tests = depth > 0;
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed == "#[cfg(test)]"
            && lines
                .get(i + 1)
                .is_some_and(|next| next.trim_start().starts_with("mod ") && next.ends_with('{'))
        {
            in_tests = true;
            depth = 0;
            continue;
        }
        kept.push(*line);
    }
    kept.join("\n")
}

/// The module paths a file names after `crate::` or `super::`, expanded through `{…}` groups.
fn named_paths(module: &str, code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (anchor, base) in [("crate::", String::new()), ("super::", parent(module))] {
        let mut rest = code;
        while let Some(at) = rest.find(anchor) {
            let boundary = rest[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            rest = &rest[at + anchor.len()..];
            if !boundary {
                continue;
            }
            let prefix = if base.is_empty() {
                String::new()
            } else {
                format!("{base}::")
            };
            expand(&format!("{prefix}{}", take_path(rest)), &mut out);
        }
    }
    out
}

/// The parent module of `module` (`a::b` → `a`; a top-level module → the crate root "").
fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map_or(String::new(), |(p, _)| p.to_string())
}

/// The path at the start of `text`: identifiers, `::` and one balanced `{…}` group.
fn take_path(text: &str) -> String {
    let mut depth = 0usize;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            c if c.is_alphanumeric() || c == '_' || c == ':' => {}
            _ => break,
        }
        end = i + c.len_utf8();
        if depth == 0 && c == '}' {
            break;
        }
    }
    text[..end].to_string()
}

/// `a::{b::c, d}` → `a::b::c`, `a::d`.
fn expand(path: &str, out: &mut Vec<String>) {
    let Some(open) = path.find('{') else {
        out.push(path.trim_end_matches(':').to_string());
        return;
    };
    let head = &path[..open];
    let inner = path[open + 1..].trim_end_matches('}');
    let mut depth = 0usize;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    for item in items {
        let item = item.trim();
        if item.is_empty() || item == "self" {
            out.push(head.trim_end_matches(':').to_string());
        } else {
            expand(&format!("{head}{item}"), out);
        }
    }
}

/// What a module's own code says about names: the items it defines, the names it imports
/// (`use` and `pub use`, resolved to full paths inside the crate) and the modules it
/// glob-imports.
#[derive(Default)]
struct Names {
    defined: BTreeSet<String>,
    imported: BTreeMap<String, String>,
    globbed: Vec<String>,
}

fn names(module: &str, code: &str, known: &BTreeMap<String, String>) -> Names {
    let mut out = Names::default();
    let item = |line: &str| -> Option<String> {
        let mut words = line.split_whitespace().peekable();
        while words
            .peek()
            .is_some_and(|w| w.starts_with("pub") || *w == "unsafe")
        {
            words.next();
        }
        match words.next()? {
            "fn" | "struct" | "enum" | "trait" | "type" | "const" | "static" | "mod" => {
                words.next().map(|n| {
                    n.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect()
                })
            }
            "macro_rules!" => words.next().map(str::to_string),
            _ => None,
        }
    };
    for line in code.lines().filter(|l| !l.starts_with(char::is_whitespace)) {
        if let Some(name) = item(line) {
            out.defined.insert(name);
        }
    }
    let mut statements = Vec::new();
    let mut current: Option<String> = None;
    for line in code.lines() {
        let trimmed = line.trim();
        let text = match current.take() {
            Some(open) => open + " " + trimmed,
            None => {
                let unqualified = match trimmed.strip_prefix("pub(") {
                    Some(rest) => rest.split_once(") ").map_or("", |(_, r)| r),
                    None => trimmed.strip_prefix("pub ").unwrap_or(trimmed),
                };
                match unqualified.strip_prefix("use ") {
                    Some(tree) => tree.to_string(),
                    None => continue,
                }
            }
        };
        match text.split_once(';') {
            Some((tree, _)) => statements.push(tree.to_string()),
            None => current = Some(text),
        }
    }
    for tree in statements {
        let mut paths = Vec::new();
        expand(
            &tree.replace(" as ", "@").replace(char::is_whitespace, ""),
            &mut paths,
        );
        for path in paths {
            let (path, alias) = match path.split_once('@') {
                Some((p, a)) => (p.to_string(), Some(a.to_string())),
                None => (path, None),
            };
            let absolute = if let Some(rest) = path.strip_prefix("crate::") {
                rest.to_string()
            } else if let Some(rest) = path.strip_prefix("super::") {
                join(&parent(module), rest)
            } else if let Some(rest) = path.strip_prefix("self::") {
                join(module, rest)
            } else {
                let first = path.split("::").next().unwrap_or("");
                let child = join(module, first);
                if !known.contains_key(&child) {
                    continue; // another crate
                }
                join(module, &path)
            };
            if let Some(globbed) = absolute.strip_suffix("::*") {
                out.globbed.push(globbed.to_string());
            } else {
                let name = alias.unwrap_or_else(|| {
                    absolute.rsplit("::").next().unwrap_or_default().to_string()
                });
                out.imported.insert(name, absolute);
            }
        }
    }
    out
}

fn join(module: &str, rest: &str) -> String {
    if module.is_empty() {
        rest.to_string()
    } else {
        format!("{module}::{rest}")
    }
}

/// The file that defines what `path` names: the longest module it starts with, followed
/// through that module's imports and glob imports when it does not define the next segment
/// itself (a `pub use` of a child's item leads to the child). The crate root ("") when
/// nothing else matches.
fn resolve(path: &str, known: &BTreeMap<String, Names>, depth: usize) -> String {
    let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let n = (0..=segments.len())
        .rev()
        .find(|&n| known.contains_key(&segments[..n].join("::")))
        .unwrap_or(0);
    let module = segments[..n].join("::");
    let Some(name) = segments.get(n) else {
        return module;
    };
    let here = &known[&module];
    if depth > 8 || here.defined.contains(*name) {
        return module;
    }
    if let Some(target) = here.imported.get(*name) {
        let rest = segments[n + 1..].join("::");
        let target = if rest.is_empty() {
            target.clone()
        } else {
            format!("{target}::{rest}")
        };
        return resolve(&target, known, depth + 1);
    }
    for glob in &here.globbed {
        if let Some(names) = known.get(glob)
            && (names.defined.contains(*name) || names.imported.contains_key(*name))
        {
            return resolve(
                &format!("{glob}::{}", segments[n..].join("::")),
                known,
                depth + 1,
            );
        }
    }
    module
}

/// `a` is `b` or lies inside it.
fn within(a: &str, b: &str) -> bool {
    b.is_empty() || a == b || a.starts_with(&format!("{b}::"))
}

/// Module → the modules its code imports. A module's imports of its own ancestors (a child's
/// `use super::*`) and of the crate root are not counted; a folder's `mod.rs` importing its
/// children is, so that two siblings that import each other through it are a circle.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let sources = modules();
    let codes: BTreeMap<String, String> =
        sources.iter().map(|(m, t)| (m.clone(), code(t))).collect();
    let known: BTreeMap<String, Names> = codes
        .iter()
        .map(|(m, c)| (m.clone(), names(m, c, &sources)))
        .collect();
    codes
        .iter()
        .filter(|(module, _)| !module.is_empty())
        .map(|(module, code)| {
            let targets = named_paths(module, code)
                .iter()
                .map(|p| resolve(p, &known, 0))
                .filter(|t| !t.is_empty() && !within(module, t))
                .collect();
            (module.clone(), targets)
        })
        .collect()
}

fn stage(module: &str) -> usize {
    let top = module.split("::").next().unwrap_or(module);
    STAGES
        .iter()
        .position(|s| *s == top)
        .unwrap_or_else(|| panic!("module `{module}` is in no stage: add it to STAGES"))
}

#[test]
fn no_import_runs_against_the_pipeline() {
    let mut against = Vec::new();
    for (module, targets) in imports() {
        for target in targets {
            if stage(&target) > stage(&module) {
                against.push(format!("{module} → {target}"));
            }
        }
    }
    assert!(
        against.is_empty(),
        "imports against the pipeline order {STAGES:?}:\n{}",
        against.join("\n")
    );
}

#[test]
fn no_file_imports_one_that_imports_it_back() {
    let graph = imports();
    // Tarjan's strongly connected components: any with two or more files is a circle.
    struct Search<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        circles: Vec<Vec<&'g str>>,
    }
    impl<'g> Search<'g> {
        fn visit(&mut self, v: &'g str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort_unstable();
                    self.circles.push(component);
                }
            }
        }
    }
    let mut search = Search {
        graph: &graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        circles: Vec::new(),
    };
    for module in graph.keys() {
        if !search.index.contains_key(module.as_str()) {
            search.visit(module);
        }
    }
    assert!(
        search.circles.is_empty(),
        "import circles: {:?}",
        search.circles
    );
}

/// The reader itself: groups, `self`, nested groups and `super::` resolve as written.
#[test]
fn import_paths_are_read_as_rust_resolves_them() {
    let source = "use crate::numeric::{kernel_map::{self, PairSet}, jet};\n\
                  use super::ops::Program;\nlet x = crate::solve::nngp::f(1);";
    let mut paths = named_paths("numeric::program::eval", source);
    paths.sort();
    assert_eq!(
        paths,
        [
            "numeric::jet",
            "numeric::kernel_map",
            "numeric::kernel_map::PairSet",
            "numeric::program::ops::Program",
            "solve::nngp::f",
        ]
    );
    // and on the real tree: a few imports that exist, one that must not be seen
    let graph = imports();
    let of = |m: &str| graph.get(m).cloned().unwrap_or_default();
    assert!(of("numeric::kernel_map::chain").contains("numeric::kernel_map::pair_map"));
    assert!(of("finite_width::map").contains("simulate::network"));
    assert!(of("cli::solve").contains("cli::finite_width"));
    assert!(!of("cli::finite_width").contains("cli::solve"));
    // a re-exported item leads to the file that defines it, through `pub use` and globs
    assert!(of("solve::nngp").contains("numeric::kernel_map::pair_set"));
    assert!(of("finite_width::map::sweep").contains("finite_width::tilted"));
    // code after an inline test module is still read
    assert_eq!(
        code("a\n#[cfg(test)]\nmod tests {\n    fn t() {}\n}\nb"),
        "a\nb"
    );
    assert_eq!(code("a\n// crate::x\n#[cfg(test)]\nmod tests {\n}"), "a");
    assert_eq!(
        code("#[cfg(test)]\nmod split;\nb"),
        "#[cfg(test)]\nmod split;\nb"
    );
}
