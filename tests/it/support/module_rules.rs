//! The engine's module rules (ARCHITECTURE.md), read from its sources as text: which files
//! implement `Router`, which refer to the `Router` front, and which import each other.
//!
//! The reading is deliberately simple: comments and string literals are blanked out, then
//! every `crate::`, `self::` and `super::` path (grouped `use` trees included) and every path
//! through a child module or an imported module is resolved to the deepest source file it
//! names. Macros that build paths and glob re-exports are not followed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A crate's sources: each file (by its path below `src/`, `/`-separated) with its module
/// path and its code without comments and literals.
pub struct Sources {
    files: BTreeMap<String, SourceFile>,
}

struct SourceFile {
    /// The module the file defines, below the crate root (`[]` for `lib.rs`).
    module: Vec<String>,
    /// The text with comments and the insides of string and char literals blanked out
    /// (line breaks kept, so line numbers stay right).
    code: String,
}

/// One place a rule is broken: `file:line: what`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub file: String,
    pub line: usize,
    pub what: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

/// A reference from one file to another: the first place it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub line: usize,
    pub path: String,
}

/// Files that reach each other through their imports, with the references between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub files: Vec<String>,
    /// (from, to, first reference) for every edge inside the cycle.
    pub edges: Vec<(String, String, Reference)>,
}

impl std::fmt::Display for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.files.join(", "))?;
        let mutual: Vec<String> = self
            .edges
            .iter()
            .filter(|(from, to, _)| {
                from < to && self.edges.iter().any(|(a, b, _)| a == to && b == from)
            })
            .map(|(from, to, _)| format!("{from} <-> {to}"))
            .collect();
        if !mutual.is_empty() {
            writeln!(
                f,
                "    importing each other directly: {}",
                mutual.join(", ")
            )?;
        }
        for (from, to, r) in &self.edges {
            writeln!(f, "    {from} -> {to} ({from}:{}: {})", r.line, r.path)?;
        }
        Ok(())
    }
}

impl Sources {
    /// Reads every `.rs` file below `src` (a crate's `src` directory).
    pub fn read(src: &Path) -> Self {
        let mut files = BTreeMap::new();
        let mut dirs = vec![src.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let entries =
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
            for entry in entries {
                let path = entry.expect("directory entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let rel = path
                        .strip_prefix(src)
                        .expect("below src")
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/");
                    let text = std::fs::read_to_string(&path)
                        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                    files.insert(
                        rel.clone(),
                        SourceFile {
                            module: module_of(&rel),
                            code: blank_comments_and_literals(&text),
                        },
                    );
                }
            }
        }
        Self { files }
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// `impl` blocks whose type is one of `types` (by its last path segment, inherent or
    /// trait impls) in any file but `home`.
    pub fn impls_outside(&self, home: &str, types: &[&str]) -> Vec<Violation> {
        let mut out = Vec::new();
        for (name, file) in self.files.iter().filter(|(n, _)| *n != home) {
            for (line, ty) in impl_types(&file.code) {
                if types.contains(&ty.as_str()) {
                    out.push(Violation {
                        file: name.clone(),
                        line,
                        what: format!("impl {ty}"),
                    });
                }
            }
        }
        out
    }

    /// References to the front: to anything in `front_file`, or to one of `front_items` at
    /// the crate root (its re-exports), from any file not in `allowed`.
    pub fn references_to(
        &self,
        front_file: &str,
        front_items: &[&str],
        allowed: &[&str],
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        for (name, file) in self
            .files
            .iter()
            .filter(|(n, _)| !allowed.contains(&n.as_str()))
        {
            for r in self.paths_of(file) {
                let at_root =
                    r.segments.len() == 1 && front_items.contains(&r.segments[0].as_str());
                if at_root || self.resolve(&r.segments) == front_file {
                    out.push(Violation {
                        file: name.clone(),
                        line: r.line,
                        what: r.text,
                    });
                }
            }
        }
        out
    }

    /// Each file → the other files it refers to (not the crate root `lib.rs`, not itself),
    /// with the first reference.
    pub fn graph(&self) -> BTreeMap<String, BTreeMap<String, Reference>> {
        let mut graph = BTreeMap::new();
        for (name, file) in &self.files {
            let mut edges: BTreeMap<String, Reference> = BTreeMap::new();
            for r in self.paths_of(file) {
                let to = self.resolve(&r.segments);
                if to != *name && to != "lib.rs" {
                    edges.entry(to).or_insert(Reference {
                        line: r.line,
                        path: r.text,
                    });
                }
            }
            graph.insert(name.clone(), edges);
        }
        graph
    }

    /// Every set of files that reach each other (strongly connected components of more than
    /// one file), with the edges inside each.
    pub fn import_cycles(&self) -> Vec<Cycle> {
        let graph = self.graph();
        strongly_connected(&graph)
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|files| {
                let set: BTreeSet<&String> = files.iter().collect();
                let mut edges = Vec::new();
                for from in &files {
                    for (to, r) in &graph[from] {
                        if set.contains(to) {
                            edges.push((from.clone(), to.clone(), r.clone()));
                        }
                    }
                }
                Cycle { files, edges }
            })
            .collect()
    }

    /// The deepest file a crate-absolute path names: `a/b.rs` or `a/b/mod.rs` before `a.rs`
    /// or `a/mod.rs`; `lib.rs` when none.
    fn resolve(&self, segments: &[String]) -> String {
        for k in (1..=segments.len()).rev() {
            let stem = segments[..k].join("/");
            for candidate in [format!("{stem}.rs"), format!("{stem}/mod.rs")] {
                if self.files.contains_key(&candidate) {
                    return candidate;
                }
            }
        }
        "lib.rs".to_owned()
    }

    fn is_module(&self, segments: &[String]) -> bool {
        let stem = segments.join("/");
        !segments.is_empty()
            && (self.files.contains_key(&format!("{stem}.rs"))
                || self.files.contains_key(&format!("{stem}/mod.rs")))
    }

    /// Every path in `file` into this crate, made crate-absolute.
    fn paths_of(&self, file: &SourceFile) -> Vec<CratePath> {
        let code: Vec<char> = file.code.chars().collect();
        let scopes = module_scopes(&code, &file.module);
        // The modules `use` declarations bring in by name (`use crate::store::{self, entity}`),
        // so that `entity::messages` later in the file is read through them.
        let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (at, trees) in use_declarations(&code) {
            let module = scopes.module_at(at);
            for (segments, alias) in trees {
                if let Some(abs) = self.root(&segments, module, &BTreeMap::new())
                    && self.is_module(&abs)
                {
                    let name = alias.unwrap_or_else(|| abs.last().cloned().unwrap_or_default());
                    aliases.insert(name, abs);
                }
            }
        }
        let mut out = Vec::new();
        let mut i = 0;
        while i < code.len() {
            if !starts_path(&code, i) {
                i += 1;
                continue;
            }
            let (word, len) = ident_at(&code, i);
            let module = scopes.module_at(i);
            let line = line_of(&code, i);
            let is_use = word == "use" && code.get(i + len).is_some_and(|c| c.is_whitespace());
            let is_path = at_path_sep(&code, i + len) && !after_path_sep_or_dot(&code, i);
            if !(is_use || is_path) {
                i += len.max(1);
                continue;
            }
            let from = if is_use { skip_ws(&code, i + len) } else { i };
            let (trees, end) = parse_tree(&code, from);
            for (segments, _) in trees {
                if let Some(abs) = self.root(&segments, module, &aliases) {
                    out.push(CratePath {
                        line,
                        text: segments.join("::"),
                        segments: abs,
                    });
                }
            }
            i = end.max(i + len.max(1));
        }
        out
    }

    /// A path as written in a file in `module`, made crate-absolute, if it is into this
    /// crate: from `crate`, `self`, `super`, a child module of `module`, or an imported
    /// module.
    fn root(
        &self,
        segments: &[String],
        module: &[String],
        aliases: &BTreeMap<String, Vec<String>>,
    ) -> Option<Vec<String>> {
        let first = segments.first()?;
        if matches!(first.as_str(), "crate" | "self" | "super") {
            return absolute(segments, module);
        }
        let mut child = module.to_vec();
        child.push(first.clone());
        let base = if self.is_module(&child) {
            child
        } else {
            aliases.get(first)?.clone()
        };
        let mut abs = base;
        abs.extend(
            segments[1..]
                .iter()
                .filter(|s| *s != "self" && *s != "*")
                .cloned(),
        );
        Some(abs)
    }
}

/// Every `use` declaration in `code`: where it is, and the paths it names.
fn use_declarations(code: &[char]) -> Vec<(usize, Vec<UsePath>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < code.len() {
        if !starts_path(code, i) {
            i += 1;
            continue;
        }
        let (word, len) = ident_at(code, i);
        if word == "use" && code.get(i + len).is_some_and(|c| c.is_whitespace()) {
            let (trees, end) = parse_tree(code, skip_ws(code, i + len));
            out.push((i, trees));
            i = end.max(i + len);
        } else {
            i += len.max(1);
        }
    }
    out
}

/// A path as written (its segments) and the name it is imported as (`as name`), if any.
type UsePath = (Vec<String>, Option<String>);

struct CratePath {
    line: usize,
    text: String,
    segments: Vec<String>,
}

/// `a/b.rs` and `a/b/mod.rs` → `[a, b]`; `lib.rs`, `main.rs` → `[]`.
fn module_of(rel: &str) -> Vec<String> {
    let stem = rel.strip_suffix(".rs").unwrap_or(rel);
    let stem = stem.strip_suffix("/mod").unwrap_or(stem);
    if matches!(stem, "lib" | "main" | "mod") {
        return Vec::new();
    }
    stem.split('/').map(str::to_owned).collect()
}

/// `crate::…`, `self::…` (relative to `module`), `super::…` made crate-absolute; `None` when
/// `super` climbs above the crate root.
fn absolute(segments: &[String], module: &[String]) -> Option<Vec<String>> {
    let mut out: Vec<String>;
    let mut rest = segments;
    match segments.first().map(String::as_str) {
        Some("crate") => {
            out = Vec::new();
            rest = &segments[1..];
        }
        Some("self") => {
            out = module.to_vec();
            rest = &segments[1..];
        }
        Some("super") => {
            out = module.to_vec();
            while rest.first().map(String::as_str) == Some("super") {
                out.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    out.extend(rest.iter().filter(|s| *s != "self" && *s != "*").cloned());
    Some(out)
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether an identifier starts at `i` (not in the middle of one, nor after `$`).
fn starts_path(code: &[char], i: usize) -> bool {
    is_ident_char(code[i])
        && !code[i].is_ascii_digit()
        && (i == 0 || !(is_ident_char(code[i - 1]) || code[i - 1] == '$'))
        || (code[i] == '$' && code[i..].starts_with(&['$', 'c', 'r', 'a', 't', 'e']))
}

fn ident_at(code: &[char], i: usize) -> (String, usize) {
    // `$crate` reads as `crate`.
    let start = if code[i] == '$' { i + 1 } else { i };
    let mut j = start;
    while j < code.len() && is_ident_char(code[j]) {
        j += 1;
    }
    (code[start..j].iter().collect(), j - i)
}

fn at_path_sep(code: &[char], i: usize) -> bool {
    code.get(i) == Some(&':') && code.get(i + 1) == Some(&':')
}

/// Whether the identifier at `i` continues a path (`a::b`) or names a method (`x.collect::<…>`).
fn after_path_sep_or_dot(code: &[char], i: usize) -> bool {
    let mut j = i;
    while j > 0 && code[j - 1].is_whitespace() {
        j -= 1;
    }
    (j >= 2 && code[j - 1] == ':' && code[j - 2] == ':') || (j >= 1 && code[j - 1] == '.')
}

fn line_of(code: &[char], i: usize) -> usize {
    code[..i].iter().filter(|c| **c == '\n').count() + 1
}

/// Reads a path or `use` tree starting at `i`: every full path it names (with its `as`
/// alias) and where it ends.
fn parse_tree(code: &[char], i: usize) -> (Vec<UsePath>, usize) {
    let mut out = Vec::new();
    let end = tree(code, i, Vec::new(), &mut out);
    (out, end)
}

fn skip_ws(code: &[char], mut i: usize) -> usize {
    while i < code.len() && code[i].is_whitespace() {
        i += 1;
    }
    i
}

fn tree(code: &[char], mut i: usize, mut prefix: Vec<String>, out: &mut Vec<UsePath>) -> usize {
    loop {
        i = skip_ws(code, i);
        if code.get(i) == Some(&'{') {
            i += 1;
            loop {
                i = skip_ws(code, i);
                match code.get(i) {
                    None => return i,
                    Some('}') => return i + 1,
                    Some(',') => i += 1,
                    Some(_) => {
                        let before = i;
                        i = tree(code, i, prefix.clone(), out);
                        if i == before {
                            i += 1;
                        }
                    }
                }
            }
        }
        if code.get(i) == Some(&'*') {
            out.push((prefix, None));
            return i + 1;
        }
        let start = i;
        let (word, len) = if i < code.len() && (is_ident_char(code[i]) || code[i] == '$') {
            ident_at(code, i)
        } else {
            (String::new(), 0)
        };
        if len == 0 {
            if !prefix.is_empty() {
                out.push((prefix, None));
            }
            return start;
        }
        i += len;
        prefix.push(word);
        if at_path_sep(code, i) {
            i += 2;
            continue;
        }
        // `path as name`
        let j = skip_ws(code, i);
        let mut alias = None;
        if code[j..].starts_with(&['a', 's']) && code.get(j + 2).is_some_and(|c| c.is_whitespace())
        {
            let k = skip_ws(code, j + 2);
            let (name, len) = ident_at(code, k);
            if len > 0 {
                alias = Some(name);
                i = k + len;
            }
        }
        out.push((prefix, alias));
        return i;
    }
}

/// Where inline `mod name { … }` blocks begin and end, so a path inside one is read
/// relative to it (`super::` in a file's `mod tests` is the file itself).
struct Scopes {
    /// (start, end, module path) of each inline module, outermost first.
    spans: Vec<(usize, usize, Vec<String>)>,
    file: Vec<String>,
}

impl Scopes {
    fn module_at(&self, i: usize) -> &[String] {
        self.spans
            .iter()
            .rev()
            .find(|(s, e, _)| *s <= i && i < *e)
            .map_or(&self.file[..], |(_, _, m)| &m[..])
    }
}

fn module_scopes(code: &[char], file: &[String]) -> Scopes {
    let mut spans = Vec::new();
    let mut open: Vec<(usize, i32, Vec<String>)> = Vec::new();
    let mut depth = 0i32;
    let mut i = 0;
    while i < code.len() {
        match code[i] {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if open.last().is_some_and(|(_, d, _)| *d == depth) {
                    let (start, _, module) = open.pop().expect("open module");
                    spans.push((start, i + 1, module));
                }
            }
            'm' if starts_path(code, i) && code[i..].starts_with(&['m', 'o', 'd', ' ']) => {
                let k = skip_ws(code, i + 3);
                let (name, len) = ident_at(code, k);
                let after = skip_ws(code, k + len);
                if len > 0 && code.get(after) == Some(&'{') {
                    let mut module = open
                        .last()
                        .map_or_else(|| file.to_vec(), |(_, _, m)| m.clone());
                    module.push(name);
                    open.push((i, depth, module));
                    i = after;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    Scopes {
        spans,
        file: file.to_vec(),
    }
}

/// The self type of every `impl` header in `code`, by its last path segment: (line, name).
fn impl_types(code: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if starts_path(&chars, i) {
            let (word, len) = ident_at(&chars, i);
            if word == "impl"
                && chars
                    .get(i + len)
                    .is_some_and(|c| c.is_whitespace() || *c == '<')
            {
                let mut j = i + len;
                let header_end = (j..chars.len())
                    .find(|&k| chars[k] == '{' || chars[k] == ';')
                    .unwrap_or(chars.len());
                let header: String = chars[j..header_end].iter().collect();
                out.push((line_of(&chars, i), self_type(&header)));
                j = header_end;
                i = j;
                continue;
            }
            i += len.max(1);
            continue;
        }
        i += 1;
    }
    out
}

/// `<T> Trait<U> for a::Type<T> where …` → `Type`; `<T> Type<T>` → `Type`.
fn self_type(header: &str) -> String {
    let header = header.split(" where").next().unwrap_or(header);
    // Drop the impl's own generics and every other `<…>`.
    let mut flat = String::new();
    let mut depth = 0;
    for c in header.chars() {
        match c {
            '<' => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => flat.push(c),
            _ => {}
        }
    }
    let ty = match flat.rsplit_once(" for ") {
        Some((_, ty)) => ty,
        None => flat.as_str(),
    };
    let ty = ty
        .trim()
        .trim_start_matches('&')
        .trim_start_matches("mut ")
        .trim();
    ty.rsplit("::").next().unwrap_or(ty).trim().to_owned()
}

/// `text` with comments and the insides of string, byte-string, raw-string and char
/// literals replaced by spaces; line breaks are kept.
pub fn blank_comments_and_literals(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < c.len() {
        // Line comment.
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
            continue;
        }
        // Block comment (nested).
        if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
            continue;
        }
        // Raw string: r"…", r#"…"#, br#"…"#.
        if c[i] == 'r'
            && (i == 0
                || !is_ident_char(c[i - 1])
                || (c[i - 1] == 'b' && (i < 2 || !is_ident_char(c[i - 2]))))
        {
            let mut j = i + 1;
            while c.get(j) == Some(&'#') {
                j += 1;
            }
            if c.get(j) == Some(&'"') {
                let hashes = j - i - 1;
                out.extend(c[i..=j].iter());
                j += 1;
                loop {
                    match c.get(j) {
                        None => break,
                        Some('"')
                            if c[j + 1..]
                                .iter()
                                .take(hashes)
                                .filter(|h| **h == '#')
                                .count()
                                == hashes =>
                        {
                            out.push('"');
                            out.extend(std::iter::repeat_n('#', hashes));
                            j += 1 + hashes;
                            break;
                        }
                        Some(&ch) => {
                            out.push(blank(ch));
                            j += 1;
                        }
                    }
                }
                i = j;
                continue;
            }
        }
        // String.
        if c[i] == '"' {
            out.push('"');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' && i + 1 < c.len() {
                    out.push(' ');
                    out.push(blank(c[i + 1]));
                    i += 2;
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
            if i < c.len() {
                out.push('"');
                i += 1;
            }
            continue;
        }
        // Char literal (a lifetime has no closing quote right after one character).
        if c[i] == '\'' {
            if c.get(i + 1) == Some(&'\\') {
                let mut j = i + 2;
                while j < c.len() && c[j] != '\'' && c[j] != '\n' {
                    j += 1;
                }
                out.push('\'');
                out.extend(std::iter::repeat_n(' ', j.saturating_sub(i + 1)));
                if j < c.len() && c[j] == '\'' {
                    out.push('\'');
                    j += 1;
                }
                i = j;
                continue;
            }
            if c.get(i + 2) == Some(&'\'') {
                out.push_str("' '");
                i += 3;
                continue;
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

/// Tarjan's strongly connected components.
fn strongly_connected<V>(graph: &BTreeMap<String, BTreeMap<String, V>>) -> Vec<Vec<String>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a, V>(g: &'a BTreeMap<String, BTreeMap<String, V>>, v: &'a str, s: &mut State<'a>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in g.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(g, w, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            component.sort();
            s.out.push(component);
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(graph, v, &mut s);
        }
    }
    s.out.sort();
    s.out
}
