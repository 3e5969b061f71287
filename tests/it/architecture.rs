//! ARCHITECTURE.md's crate invariants, read from `cargo metadata`: the engine serves no
//! HTTP, reads no command line and names no adapter; only the server (and these tests)
//! depend on adapter crates; core does no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

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
