//! The documentation's links lead somewhere. Pages rustdoc renders (the crates' front
//! pages and the tour) are read on docs.rs, away from the repository: their links to
//! files are absolute, and name files that exist. README.md is read on GitHub beside the
//! files: its relative links name files that exist. An anchor (`file.md#heading`) names
//! a heading of that file. docs/soundness.md lists every kernel file that holds `unsafe`.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The repository's address, from the workspace's Cargo.toml.
fn repository() -> String {
    let manifest = read("Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.starts_with("repository = "))
        .expect("Cargo.toml names the repository");
    line["repository = ".len()..].trim_matches('"').to_string()
}

/// The crate-level docs of a Rust file: its `//!` lines without the marker.
fn front_page(path: &str) -> String {
    read(path)
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every markdown link and image target `](target)` outside code blocks, with whether it
/// is an image.
fn targets(markdown: &str) -> Vec<(String, bool)> {
    let mut found = Vec::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let image = rest[..at]
                .rfind("![")
                .is_some_and(|i| !rest[i..at].contains(']'));
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            found.push((after[..end].to_string(), image));
            rest = &after[end..];
        }
    }
    found
}

/// GitHub's (and rustdoc's) anchor for each heading of a markdown file.
fn anchors(markdown: &str) -> HashSet<String> {
    let mut in_code = false;
    let mut set = HashSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        set.insert(slug);
    }
    set
}

/// Checks that `path#anchor` (relative to the repository root) exists.
fn check_file(path: &str, anchor: Option<&str>, from: &str, problems: &mut Vec<String>) {
    let file = root().join(path);
    if !file.exists() {
        problems.push(format!("{from}: links to {path}, which does not exist"));
        return;
    }
    if let Some(anchor) = anchor.filter(|a| !a.is_empty()) {
        if path.ends_with(".md") && !anchors(&read(path)).contains(anchor) {
            problems.push(format!(
                "{from}: links to {path}#{anchor}, which has no such heading"
            ));
        }
    }
}

/// A page rustdoc renders: file links are absolute addresses in this repository.
fn check_rendered(page: &str, markdown: &str, problems: &mut Vec<String>) {
    let repo = repository();
    let blob = format!("{repo}/blob/main/");
    let raw = format!(
        "{}/main/",
        repo.replace("https://github.com/", "https://raw.githubusercontent.com/")
    );
    for (target, image) in targets(markdown) {
        let (path, anchor) = match target.split_once('#') {
            Some((p, a)) => (p.to_string(), Some(a.to_string())),
            None => (target.clone(), None),
        };
        if path.is_empty() {
            if let Some(a) = &anchor {
                if !anchors(markdown).contains(a) {
                    problems.push(format!("{page}: #{a} names no heading of the page"));
                }
            }
            continue;
        }
        if let Some(file) = path.strip_prefix(&blob) {
            check_file(file, anchor.as_deref(), page, problems);
        } else if let Some(file) = path.strip_prefix(&raw) {
            check_file(file, None, page, problems);
        } else if path == format!("{repo}#readme") || path == repo {
        } else if path.contains('/') || path.contains(".md") || image {
            problems.push(format!(
                "{page}: `{target}` does not resolve on docs.rs; link {blob}... or {raw}..."
            ));
        }
        // Anything else is an intra-doc link, which `cargo doc -D warnings` resolves.
    }
}

#[test]
fn pages_rustdoc_renders_link_to_files_by_absolute_addresses_that_exist() {
    let mut problems = Vec::new();
    for path in ["src/lib.rs", "autodiff/src/lib.rs", "nn/src/lib.rs"] {
        let page = front_page(path);
        assert!(page.lines().count() > 5, "{path} has a front page");
        check_rendered(path, &page, &mut problems);
    }
    check_rendered("docs/tour.md", &read("docs/tour.md"), &mut problems);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_root_front_page_is_written_for_rustdoc_not_the_readme() {
    let lib = read("src/lib.rs");
    let crate_docs: Vec<&str> = lib.lines().filter(|l| l.starts_with("#![doc")).collect();
    assert!(
        crate_docs.is_empty(),
        "src/lib.rs takes its front page from {crate_docs:?}"
    );
}

#[test]
fn readme_and_docs_link_to_files_that_exist() {
    let mut problems = Vec::new();
    let mut pages = vec![PathBuf::from("README.md")];
    for entry in fs::read_dir(root().join("docs")).expect("docs/") {
        let path = entry.expect("docs/ entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(
                path.strip_prefix(root())
                    .expect("under the root")
                    .to_path_buf(),
            );
        }
    }
    for page in &pages {
        let name = page.to_string_lossy().to_string();
        let text = read(&name);
        let dir = page.parent().unwrap_or(Path::new(""));
        for (target, _) in targets(&text) {
            if target.starts_with("http") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            if path.is_empty() {
                if !anchor.is_empty() && !anchors(&text).contains(anchor) {
                    problems.push(format!("{name}: #{anchor} names no heading of the page"));
                }
                continue;
            }
            let joined = dir.join(path).to_string_lossy().to_string();
            check_file(&joined, Some(anchor), &name, &mut problems);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn soundness_lists_every_kernel_file_that_holds_unsafe() {
    let soundness = read("docs/soundness.md");
    let mut missing = Vec::new();
    let kernels = root().join("autodiff/src/kernels");
    for entry in fs::read_dir(&kernels).expect("kernels/") {
        let path = entry.expect("kernels/ entry").path();
        let name = path
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .to_string();
        let code = fs::read_to_string(&path).expect("a kernel file");
        let holds_unsafe = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .any(|l| l.contains("unsafe ") || l.contains("unsafe{"));
        if holds_unsafe && !soundness.contains(&format!("| `{name}` |")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/soundness.md's table lacks {missing:?}"
    );
}
