//! The pool's layout as a test: every module of `pool/src` has a layer, and imports only
//! run to its own layer or below (a share's way from the socket to PostgreSQL reads down
//! the folders), with no circle among the modules of one layer either.
//!
//! The layers, lowest first, as `src/lib.rs` draws them:
//!
//! 0. `clock`, `config`, `net`, `memory`: the wall clock, the settings, socket helpers,
//!    freed memory given back
//! 1. `observe::{stats, live, latency, best, notify}`: counters every task records into,
//!    and the notifications any task may send
//! 2. `chain::{node, template, jobs}`: the node and the work made from its templates
//! 3. `shares`, `accounting::pplns`: what both protocols share; the pure PPLNS split
//! 4. `store`: rows, writes and queries
//! 5. `chain::{feed, zmq, blocks}`: the tasks that fetch templates and submit blocks
//! 6. `stratum`: listeners, connections and sessions
//! 7. `accounting`: the back office (tracker, payments, leader)
//! 8. `observe::api`: the HTTP API, metrics and dashboard
//! 9. `run`: the wiring

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path prefixes and their layers; the longest matching prefix wins.
const LAYERS: &[(&str, u8)] = &[
    ("clock", 0),
    ("config", 0),
    ("net", 0),
    ("memory", 0),
    ("observe::stats", 1),
    ("observe::live", 1),
    ("observe::latency", 1),
    ("observe::best", 1),
    ("observe::notify", 1),
    ("chain::node", 2),
    ("chain::template", 2),
    ("chain::jobs", 2),
    ("shares", 3),
    ("accounting::pplns", 3),
    ("accounting::coinbase_plan", 3),
    ("store", 4),
    ("chain::feed", 5),
    ("chain::blocks", 5),
    ("chain::zmq", 5),
    ("chain", 5),
    ("stratum", 6),
    ("accounting", 7),
    ("observe::api", 8),
    ("observe", 8),
    ("run", 9),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS
        .iter()
        .filter(|(prefix, _)| module == *prefix || module.starts_with(&format!("{prefix}::")))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every module of the crate (by path, "" for the root) and its source, tests excluded.
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .filter(|f| {
            f.file_name()
                .is_some_and(|n| n != "main.rs" && n != "tests.rs")
        })
        .map(|f| {
            let rel = f.strip_prefix(&src).unwrap().with_extension("");
            let mut path = rel.to_string_lossy().replace('/', "::");
            for root in ["lib", "mod"] {
                if path == root {
                    path.clear();
                } else if let Some(p) = path.strip_suffix(&format!("::{root}")) {
                    path = p.to_string();
                }
            }
            let text = std::fs::read_to_string(&f).unwrap();
            // A module's unit tests may reach anywhere.
            let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            (path, code)
        })
        .collect()
}

/// The modules `code` names through `crate::` paths (the longest existing prefix of each).
fn imports(code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        if let Some(found) = (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|m| known.contains(m))
        {
            out.insert(found);
        }
    }
    out
}

#[test]
fn imports_run_down_the_layers_and_never_in_a_circle() {
    let modules = modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    let mut graph: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    for (module, code) in &modules {
        if module.is_empty() {
            continue; // lib.rs only declares the modules
        }
        let mine = layer(module).unwrap_or_else(|| panic!("module {module} has no layer"));
        let deps: BTreeSet<String> = imports(code, &known)
            .into_iter()
            // A parent's items (`mod.rs`) and a module's own children are its own.
            .filter(|d| d != module && !d.is_empty() && !module.starts_with(&format!("{d}::")))
            .collect();
        for d in &deps {
            let theirs = layer(d).unwrap_or_else(|| panic!("module {d} has no layer"));
            if theirs > mine {
                upward.push(format!(
                    "{module} (layer {mine}) imports {d} (layer {theirs})"
                ));
            }
        }
        graph.insert(module, deps);
    }
    assert!(
        upward.is_empty(),
        "imports running back up:\n{}",
        upward.join("\n")
    );
    // No circle: remove modules without dependencies left until none remain.
    let mut left: BTreeMap<&str, BTreeSet<String>> = graph.clone();
    loop {
        let free: Vec<&str> = left
            .iter()
            .filter(|(_, deps)| deps.iter().all(|d| !left.contains_key(d.as_str())))
            .map(|(m, _)| *m)
            .collect();
        if free.is_empty() {
            break;
        }
        for m in free {
            left.remove(m);
        }
    }
    assert!(
        left.is_empty(),
        "modules in an import circle: {:?}",
        left.keys()
    );
    assert!(
        graph.len() > 30,
        "the scan found the modules ({})",
        graph.len()
    );
}

#[test]
fn the_layer_table_knows_every_top_level_module() {
    for module in modules().keys().filter(|m| !m.is_empty()) {
        assert!(layer(module).is_some(), "{module}");
    }
    assert_eq!(layer("chain::feed"), Some(5));
    assert_eq!(layer("chain::jobs"), Some(2));
    assert_eq!(layer("observe::api::metrics"), Some(8));
    assert_eq!(layer("nowhere"), None);
}
