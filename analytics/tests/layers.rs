//! The layers of each crate point one way: no cycle between the top-level modules of the
//! analytics crate, the collector or the SDK (ARCHITECTURE.md, *Invariants*). A module uses
//! another when its source names `crate::that` (in a path or a `use crate::{…}` group);
//! comments do not count.

#![allow(clippy::unwrap_used)] // Test helpers: an unreadable source should stop the test loudly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// The top-level modules `text` names through `crate::`.
fn named(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = group.split('}').next().unwrap_or_default();
                for part in group.split(',') {
                    out.insert(ident(part.trim()));
                }
            } else {
                out.insert(ident(rest));
            }
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The module graph of the crate whose sources are in `src`: each top-level module (a file
/// or a folder) and the others it names.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        if ["lib", "main", "bin"].contains(&name.as_str()) {
            continue;
        }
        let files = if p.is_dir() { sources(&p) } else { vec![p] };
        modules.insert(name, files);
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(m, files)| {
            let mut uses = BTreeSet::new();
            for f in files {
                uses.extend(named(&std::fs::read_to_string(f).unwrap()));
            }
            uses.retain(|u| u != m && names.contains(u));
            (m.clone(), uses)
        })
        .collect()
}

/// A cycle of `graph` as the modules along it, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut c = path[at..].to_vec();
            c.push(m.to_string());
            return Some(c);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_cycle_between_the_top_level_modules_of_any_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for krate in CRATES {
        let g = graph(&root.join(krate).join("src"));
        assert!(
            g.len() > 1 || ["testkit", "wire", "client"].contains(&krate),
            "{krate}: {g:?}"
        );
        if let Some(c) = cycle(&g) {
            panic!("{krate}: the modules {} import each other", c.join(" → "));
        }
    }
}

/// Every crate's folder in the workspace, lowest layer first.
const CRATES: [&str; 10] = [
    "wire",
    "core",
    "store",
    "analytics",
    "client",
    "collector",
    "cli",
    "sdk-wasm",
    "testkit",
    "bench",
];

/// The `[dependencies]` of the crate in `dir` (names only).
fn dependencies(dir: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let mut out = BTreeSet::new();
    let mut on = false;
    for line in text.lines() {
        if line.starts_with('[') {
            on = line == "[dependencies]";
        } else if on && !line.trim().is_empty() && !line.starts_with('#') {
            out.insert(ident_of(line));
        }
    }
    out
}

fn ident_of(line: &str) -> String {
    line.split(['.', '=', ' '])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Cargo forbids cycles between crates; this says which way they point: each crate names only
/// crates of lower layers, and the core and the wire crate do no I/O (no runtime, database,
/// network or file format crate).
#[test]
fn crates_point_down_and_the_core_does_no_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let layer = |name: &str| {
        CRATES.iter().position(|c| {
            name == format!("maidian-{c}") || (*c == "sdk-wasm" && name == "maidian-sdk")
        })
    };
    for (at, krate) in CRATES.iter().enumerate() {
        for dep in dependencies(&root.join(krate)) {
            if let Some(below) = layer(&dep) {
                assert!(
                    below < at,
                    "{krate} depends on {dep}, a crate of a higher layer"
                );
            }
        }
    }
    for krate in ["wire", "core"] {
        let deps = dependencies(&root.join(krate));
        for io in [
            "tokio",
            "mongodb",
            "redb",
            "hyper",
            "warp",
            "futures-util",
            "tracing",
        ] {
            assert!(
                !deps.contains(io),
                "{krate} depends on {io}: it must do no I/O"
            );
        }
    }
    assert!(
        dependencies(&root.join("wire")).is_empty(),
        "the wire crate has no dependency"
    );
}

#[test]
fn a_cycle_is_found() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(m, u)| (m.to_string(), u.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let text = "use crate::{rollup::Field, site};\n// crate::store in a comment\nlet x = crate::event::Day::today();";
    assert_eq!(
        named(text),
        ["event", "rollup", "site"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}
