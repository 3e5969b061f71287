//! ARCHITECTURE.md's invariants. The crates', read from `cargo metadata`: the engine serves
//! no HTTP, reads no command line and names no adapter; only the server (and these tests)
//! depend on adapter crates; core does no I/O. The engine's modules', read from its sources
//! (`support::module_rules`): only `router.rs` implements the `Router` front and only it and
//! `lib.rs` name it; no two engine files import each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::support::module_rules::{Sources, Violation};

/// The engine crate's package name.
const ENGINE: &str = "switchboard-router";
/// The crates allowed to name adapter crates: the binary's wiring, and the tests.
const ADAPTER_USERS: &[&str] = &["switchboard-server", "switchboard-tests"];
/// What the engine must not depend on, directly or through another workspace crate: the
/// HTTP server, the command line, and the crates that wrap them.
const NOT_IN_ENGINE: &[&str] = &[
    "axum",
    "axum-core",
    "clap",
    "hyper",
    "hyper-util",
    "tower-http",
    "switchboard-http",
    "switchboard-server",
];
/// I/O crates core must not depend on (tokio only as an optional dependency of its
/// `testing` feature, for the fake adapter).
const NOT_IN_CORE: &[&str] = &[
    "reqwest",
    "sqlx",
    "sea-orm",
    "sea-orm-migration",
    "axum",
    "hyper",
    "hyper-util",
    "switchboard-router",
    "switchboard-migrations",
];

/// A workspace crate: its name, where it lives, and its dependencies (name, kind,
/// optional).
struct Crate {
    dir: String,
    deps: Vec<Dep>,
}

struct Dep {
    name: String,
    /// `None` for a normal dependency, `Some("dev")` or `Some("build")`.
    kind: Option<String>,
    optional: bool,
}

impl Dep {
    fn is_dev(&self) -> bool {
        self.kind.as_deref() == Some("dev")
    }
}

fn workspace() -> BTreeMap<String, Crate> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
    let mut crates = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name").to_owned();
        let manifest = Path::new(package["manifest_path"].as_str().expect("manifest path"));
        let dir = manifest
            .parent()
            .expect("crate dir")
            .strip_prefix(root)
            .expect("a workspace member under the root")
            .to_string_lossy()
            .into_owned();
        let deps = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .map(|d| Dep {
                name: d["name"].as_str().expect("dependency name").to_owned(),
                kind: d["kind"].as_str().map(str::to_owned),
                optional: d["optional"].as_bool().unwrap_or(false),
            })
            // An adapter's dev-dependency on itself (with its `testing` feature).
            .filter(|d| d.name != name)
            .collect();
        crates.insert(name, Crate { dir, deps });
    }
    crates
}

/// The normal and build dependencies of `name`, and those of every workspace crate it
/// reaches through them.
fn reachable(crates: &BTreeMap<String, Crate>, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_owned()];
    while let Some(next) = todo.pop() {
        let Some(krate) = crates.get(&next) else {
            continue;
        };
        for dep in krate.deps.iter().filter(|d| !d.is_dev()) {
            if seen.insert(dep.name.clone()) {
                todo.push(dep.name.clone());
            }
        }
    }
    seen
}

fn adapter_crates(crates: &BTreeMap<String, Crate>) -> BTreeSet<&str> {
    crates
        .iter()
        .filter(|(_, c)| c.dir.starts_with("adapters"))
        .map(|(name, _)| name.as_str())
        .collect()
}

#[test]
fn the_workspace_has_the_crates_the_architecture_names() {
    let crates = workspace();
    for (name, dir) in [
        ("switchboard-core", "core"),
        ("switchboard-router", "router/engine"),
        ("switchboard-http", "router/http"),
        ("switchboard-server", "router/server"),
        ("switchboard-tests", "tests"),
    ] {
        let krate = crates
            .get(name)
            .unwrap_or_else(|| panic!("{name} is missing"));
        assert_eq!(krate.dir, dir, "{name} lives in {dir}");
    }
    assert!(
        adapter_crates(&crates).len() >= 2,
        "the scan found the adapter crates"
    );
}

#[test]
fn the_engine_has_no_http_server_command_line_or_adapter() {
    let crates = workspace();
    let reached = reachable(&crates, ENGINE);
    assert!(
        reached.contains("switchboard-core"),
        "the scan works: {reached:?}"
    );
    for forbidden in NOT_IN_ENGINE.iter().copied().chain(adapter_crates(&crates)) {
        assert!(
            !reached.contains(forbidden),
            "{ENGINE} depends on {forbidden}"
        );
    }
    // Not even for its own tests and benches: the engine is tested without adapters.
    for dep in &crates[ENGINE].deps {
        assert!(
            !adapter_crates(&crates).contains(dep.name.as_str()),
            "{ENGINE} has a {:?} dependency on {}",
            dep.kind,
            dep.name
        );
    }
}

#[test]
fn only_the_server_and_the_tests_name_adapter_crates() {
    let crates = workspace();
    let adapters = adapter_crates(&crates);
    for (name, krate) in &crates {
        if ADAPTER_USERS.contains(&name.as_str()) {
            continue;
        }
        for dep in &krate.deps {
            assert!(
                !adapters.contains(dep.name.as_str()),
                "{name} depends on the adapter crate {}; only {ADAPTER_USERS:?} may",
                dep.name
            );
        }
    }
    assert!(
        crates["switchboard-server"]
            .deps
            .iter()
            .any(|d| adapters.contains(d.name.as_str())),
        "the server wires the adapters"
    );
}

#[test]
fn core_does_no_io() {
    let crates = workspace();
    let core = &crates["switchboard-core"];
    for dep in core.deps.iter().filter(|d| !d.is_dev()) {
        assert!(
            !NOT_IN_CORE.contains(&dep.name.as_str()),
            "switchboard-core depends on {}",
            dep.name
        );
        if dep.name == "tokio" {
            assert!(
                dep.optional,
                "switchboard-core needs tokio only for its `testing` feature"
            );
        }
    }
    assert!(
        reachable(&crates, "switchboard-core")
            .iter()
            .all(|d| !d.starts_with("switchboard-")),
        "core depends on no other workspace crate"
    );
}

/// The `Router` front: its file, and the types it defines there.
const FRONT_FILE: &str = "router.rs";
const FRONT_TYPES: &[&str] = &["Router", "RouterBuilder"];
/// The files that may name the front: its own, and the crate root that re-exports it.
const FRONT_USERS: &[&str] = &["router.rs", "lib.rs"];

fn engine_sources() -> Sources {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../router/engine/src");
    let sources = Sources::read(&src);
    assert!(
        sources.len() > 1,
        "read the engine's sources in {}",
        src.display()
    );
    sources
}

fn listed(violations: &[Violation]) -> String {
    violations.iter().map(|v| format!("  {v}\n")).collect()
}

#[test]
fn only_router_rs_implements_the_router_front() {
    let found = engine_sources().impls_outside(FRONT_FILE, FRONT_TYPES);
    assert!(
        found.is_empty(),
        "{} impl block(s) of {FRONT_TYPES:?} outside router/engine/src/{FRONT_FILE} (the front \
         composes the components; their behaviour lives in them):\n{}",
        found.len(),
        listed(&found)
    );
}

#[test]
fn no_engine_module_refers_to_the_router_front() {
    let found = engine_sources().references_to(FRONT_FILE, FRONT_TYPES, FRONT_USERS);
    let files: BTreeSet<&str> = found.iter().map(|v| v.file.as_str()).collect();
    assert!(
        found.is_empty(),
        "{} engine file(s) besides {FRONT_USERS:?} refer to the Router front: {files:?}\n{}",
        files.len(),
        listed(&found)
    );
}

#[test]
fn no_two_engine_files_import_each_other() {
    let cycles = engine_sources().import_cycles();
    assert!(
        cycles.is_empty(),
        "{} import cycle(s) among the engine's files (each: the files, then the references \
         that close it):\n{}",
        cycles.len(),
        cycles.iter().map(|c| format!("  {c}")).collect::<String>()
    );
}

/// Writes `files` (path below `src/`, text) into a temporary crate and reads it.
fn synthetic(files: &[(&str, &str)]) -> (tempfile::TempDir, Sources) {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let sources = Sources::read(dir.path());
    (dir, sources)
}

/// A tree that keeps the rules, in every spelling the reader must understand.
const CLEAN: &[(&str, &str)] = &[
    (
        "lib.rs",
        "mod a;\nmod b;\nmod router;\npub use router::{Router, RouterBuilder};\n",
    ),
    (
        "router.rs",
        "use crate::a::f;\nuse crate::{\n    b::{g, h as hh},\n    a,\n};\n\
         pub struct Router;\npub struct RouterBuilder;\n\
         impl Router {\n    fn x(&self) { crate::a::f(); a::f(); }\n}\n\
         impl Clone for Router { fn clone(&self) -> Self { Router } }\n\
         impl RouterBuilder {}\n",
    ),
    (
        "a.rs",
        "//! Calls [`crate::router::Router`] nothing: a comment.\n\
         use crate::b::g;\n\
         pub fn f() { let _ = \"crate::router::Router\"; let _ = '{'; let _ = r#\"super::a\"#; }\n\
         impl<'a> From<&'a str> for Wrapper<'a> { fn from(_: &'a str) -> Self { Wrapper(None) } }\n\
         #[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::a::f;\n}\n",
    ),
    (
        "b/mod.rs",
        "mod c;\npub fn g() {}\npub fn h() {}\npub struct RouterEvent;\nimpl RouterEvent {}\n",
    ),
    (
        "b/c.rs",
        "use super::g;\npub fn k() { super::super::a::f(); $crate::a::f(); }\n",
    ),
];

#[test]
fn the_module_rules_pass_a_tree_that_keeps_them() {
    let (_dir, sources) = synthetic(CLEAN);
    assert_eq!(sources.len(), 5);
    assert_eq!(sources.impls_outside(FRONT_FILE, FRONT_TYPES), vec![]);
    assert_eq!(
        sources.references_to(FRONT_FILE, FRONT_TYPES, FRONT_USERS),
        vec![]
    );
    assert_eq!(sources.import_cycles(), vec![]);
    let graph: BTreeMap<String, Vec<String>> = sources
        .graph()
        .into_iter()
        .map(|(file, edges)| (file, edges.into_keys().collect()))
        .collect();
    let expected: BTreeMap<String, Vec<String>> = [
        ("a.rs", vec!["b/mod.rs"]),
        ("b/c.rs", vec!["a.rs", "b/mod.rs"]),
        ("b/mod.rs", vec![]),
        ("lib.rs", vec!["router.rs"]),
        ("router.rs", vec!["a.rs", "b/mod.rs"]),
    ]
    .into_iter()
    .map(|(f, e)| (f.to_owned(), e.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(graph, expected);
}

#[test]
fn the_module_rules_name_every_file_that_breaks_them() {
    let mut files = CLEAN.to_vec();
    files.extend([
        // Implements and names the front, and is in a cycle with e.rs and f.rs.
        (
            "d.rs",
            "use crate::router::Router;\nimpl Router {\n    fn more(&self) { crate::e::w(); }\n}\n",
        ),
        (
            "e.rs",
            "use crate::{\n    d::x,\n    f::{self, y},\n};\npub fn w() {}\n",
        ),
        ("f.rs", "pub fn y() { super::d::x(); }\n"),
        // Names the front through the crate root, implements the builder, and imports its
        // child module, which imports it back through `super`.
        (
            "g/mod.rs",
            "mod h;\nuse super::Router;\nuse h::m;\npub fn n() {}\n\
             impl<T> Default for crate::RouterBuilder<T> {}\n",
        ),
        ("g/h.rs", "use super::n;\npub fn m() {}\n"),
    ]);
    let (_dir, sources) = synthetic(&files);

    let impls: Vec<String> = sources
        .impls_outside(FRONT_FILE, FRONT_TYPES)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        impls,
        ["d.rs:2: impl Router", "g/mod.rs:5: impl RouterBuilder"]
    );

    let refs: Vec<String> = sources
        .references_to(FRONT_FILE, FRONT_TYPES, FRONT_USERS)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        refs,
        [
            "d.rs:1: crate::router::Router",
            "g/mod.rs:2: super::Router",
            "g/mod.rs:5: crate::RouterBuilder",
        ]
    );

    let cycles: Vec<Vec<String>> = sources
        .import_cycles()
        .into_iter()
        .map(|c| c.files)
        .collect();
    assert_eq!(
        cycles,
        [vec!["d.rs", "e.rs", "f.rs"], vec!["g/h.rs", "g/mod.rs"]]
    );
    let message = sources.import_cycles()[0].to_string();
    assert!(
        message.contains("d.rs -> e.rs (d.rs:3: crate::e::w)")
            && message.contains("e.rs -> d.rs (e.rs:1: crate::d::x)"),
        "{message}"
    );
}
