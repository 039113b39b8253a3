//! The `[dependencies]` lines the READMEs and the crates' front pages tell a user to
//! write name packages that exist, under the library names the examples `use`: a line
//! such as `autodiff = { path = ".." }` (no such package) or a renamed key would fail
//! in the user's first build, not here.

use std::fs;
use std::path::Path;

/// A workspace member's package name, library name and version, from its Cargo.toml.
struct Member {
    dir: &'static str,
    package: String,
    lib: String,
}

/// The value of `key = "..."` in the `[section]` of a Cargo.toml.
fn value(toml: &str, section: &str, key: &str) -> Option<String> {
    let mut inside = false;
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == section;
        } else if inside {
            if let Some(rest) = line.strip_prefix(key).map(str::trim_start) {
                if let Some(v) = rest.strip_prefix('=') {
                    return Some(v.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    None
}

fn members() -> Vec<Member> {
    ["autodiff", "nn"]
        .into_iter()
        .map(|dir| {
            let toml = fs::read_to_string(Path::new(dir).join("Cargo.toml")).unwrap();
            Member {
                dir,
                package: value(&toml, "[package]", "name").expect("a package name"),
                lib: value(&toml, "[lib]", "name").expect("a library name"),
            }
        })
        .collect()
}

/// `"X"` after `key = ` in a dependency line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!("{key} = \""))? + key.len() + 4;
    line[at..].split('"').next()
}

#[test]
fn documented_dependency_lines_name_the_packages_and_their_libraries() {
    let members = members();
    let version = value(
        &fs::read_to_string("Cargo.toml").unwrap(),
        "[workspace.package]",
        "version",
    )
    .expect("a workspace version");
    let files = [
        "README.md",
        "autodiff/README.md",
        "nn/README.md",
        "src/lib.rs",
        "autodiff/src/lib.rs",
        "nn/src/lib.rs",
        "tests/new_user/Cargo.toml",
    ];
    for file in files {
        let text = fs::read_to_string(file).unwrap();
        let mut seen = 0;
        for raw in text.lines() {
            // Doc comments and commented-out alternatives count as well.
            let line = raw
                .trim_start_matches("//!")
                .trim()
                .trim_start_matches("# ");
            if let Some(name) = line
                .strip_prefix("[profile.dev.package.")
                .and_then(|l| l.strip_suffix(']'))
            {
                assert!(
                    members.iter().any(|m| m.package == name),
                    "{file}: profile for {name}, which is no package here"
                );
                continue;
            }
            let Some(package) = field(line, "package") else {
                // `autodiff = { path = ".." }` looks for a package named `autodiff`.
                assert!(
                    !members
                        .iter()
                        .any(|m| line.starts_with(&format!("{} = {{", m.lib))),
                    "{file}: `{line}` needs `package = ` (the packages are named backprop-*)"
                );
                continue;
            };
            seen += 1;
            let key = line.split('=').next().unwrap().trim();
            let member = members
                .iter()
                .find(|m| m.package == package)
                .unwrap_or_else(|| panic!("{file}: `{line}` names no package of this workspace"));
            assert_eq!(
                key, member.lib,
                "{file}: `{line}`: the key should be the library's name, which the examples `use`"
            );
            if let Some(v) = field(line, "version") {
                assert!(
                    version.starts_with(v),
                    "{file}: `{line}` asks for {v}, the packages are {version}"
                );
            }
            if let Some(path) = field(line, "path") {
                assert!(
                    path.ends_with(member.dir),
                    "{file}: `{line}`: {package} lives in {}/",
                    member.dir
                );
            }
        }
        assert!(seen > 0, "{file} shows no [dependencies] line");
    }
}
