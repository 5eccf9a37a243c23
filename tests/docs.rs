//! The docs name only what exists: every repository path written in
//! backticks (`src/lib.rs`, `tests/slow_disk.rs:40`), every relative link,
//! and every configuration key (`cache.dir`) in the README and under
//! `docs/` must be a file, a folder or a key of `conf/edgeslice.toml` (which
//! lists every key, and which `tests/conf_files.rs` parses with unknown
//! keys refused). A page that outlives what it describes fails here.

use std::path::{Path, PathBuf};

/// The folders a path in the docs may start with.
const ROOTS: &[&str] = &[
    ".ci", "benches", "conf", "debian", "docs", "examples", "src", "tests", "tools",
];

/// The configuration sections, as keys are written in the docs.
const SECTIONS: &[&str] = &[
    "server", "origin", "slice", "cache", "admin", "log", "cluster",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// What the text holds between single backticks, outside fenced blocks.
fn code_spans(text: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let (Some(inside), Some(_)) = (parts.next(), parts.next()) {
            spans.push(inside.to_string());
        }
    }
    spans
}

/// The targets of `[text](target)` links.
fn links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(str::to_string)
        .collect()
}

/// `span` as a repository path (a line number after `:` dropped), if it is one.
fn as_path(span: &str) -> Option<&str> {
    let path = span.split(':').next()?;
    let first = path.split('/').next()?;
    let plain = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c));
    (path.contains('/') && ROOTS.contains(&first) && plain).then_some(path)
}

/// `span` as `(section, key)`, if it names a configuration key.
fn as_key(span: &str) -> Option<(&str, &str)> {
    let (section, key) = span.split_once('.')?;
    let plain = key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    let file = ["rs", "md", "toml", "json", "html", "service"].contains(&key);
    (SECTIONS.contains(&section) && plain && !file).then_some((section, key))
}

/// The text of each section of `conf/edgeslice.toml`, commented-out
/// sections (`# [cluster]`) included.
fn conf_sections() -> Vec<(String, String)> {
    let conf = std::fs::read_to_string(root().join("conf/edgeslice.toml")).unwrap();
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in conf.lines() {
        let bare = line.trim_start_matches('#').trim();
        let header = bare
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .map(|h| h.trim_matches(|c| c == '[' || c == ']'));
        match header {
            Some(name) if name.chars().all(|c| c.is_ascii_lowercase() || c == '_') => {
                sections.push((name.to_string(), String::new()))
            }
            _ => {
                if let Some((_, text)) = sections.last_mut() {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    sections
}

fn conf_has(sections: &[(String, String)], section: &str, key: &str) -> bool {
    sections
        .iter()
        .filter(|(name, _)| name == section)
        .any(|(_, text)| {
            text.match_indices(key).any(|(at, _)| {
                let before = text[..at].chars().next_back();
                let after = text[at + key.len()..].trim_start();
                !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                    && after.starts_with('=')
            })
        })
}

#[test]
fn every_file_link_and_key_the_docs_name_exists() {
    let sections = conf_sections();
    assert!(
        sections.iter().any(|(name, _)| name == "cluster"),
        "conf/edgeslice.toml lost its [cluster] section"
    );
    let mut missing = Vec::new();
    let mut named = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let name = page.strip_prefix(root()).unwrap().display().to_string();
        for span in code_spans(&text) {
            if let Some(path) = as_path(&span) {
                named += 1;
                if !root().join(path).exists() {
                    missing.push(format!("{name}: file `{path}`"));
                }
            } else if let Some((section, key)) = as_key(&span) {
                named += 1;
                if !conf_has(&sections, section, key) {
                    missing.push(format!(
                        "{name}: key `{section}.{key}` (not in conf/edgeslice.toml)"
                    ));
                }
            }
        }
        for target in links(&text) {
            if target.starts_with("http")
                || target.starts_with('#')
                || target.starts_with("mailto:")
            {
                continue;
            }
            let file = target.split('#').next().unwrap();
            named += 1;
            let dir = page.parent().unwrap_or(Path::new("."));
            if !dir.join(file).exists() {
                missing.push(format!("{name}: link `{target}`"));
            }
        }
    }
    assert!(
        named > 100,
        "only {named} names found: is the parser broken?"
    );
    assert!(
        missing.is_empty(),
        "named in the docs, not in the repository:\n{}",
        missing.join("\n")
    );
}

/// The README's minimal configuration is one edgeslice accepts.
#[test]
fn the_readme_s_minimal_configuration_is_valid() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let block = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README shows a configuration in a toml block");
    if let Err(e) = edgeslice::config::Config::from_toml(block) {
        panic!("the README's configuration is refused: {e}\n{block}");
    }
}

#[test]
fn the_checks_catch_what_is_not_there() {
    let sections = conf_sections();
    assert!(conf_has(&sections, "cache", "dir"));
    assert!(conf_has(&sections, "cluster", "token"));
    assert!(
        conf_has(&sections, "admin", "token"),
        "admin's token is named in a comment"
    );
    assert!(!conf_has(&sections, "cache", "no_such_key"));
    assert!(
        !conf_has(&sections, "server", "dir"),
        "a key of another section"
    );
    assert_eq!(as_path("src/disk.rs:40"), Some("src/disk.rs"));
    assert_eq!(as_path("tests/*.rs"), None);
    assert_eq!(as_key("cache.dir"), Some(("cache", "dir")));
    assert_eq!(as_key("cluster.rs"), None);
    assert_eq!(code_spans("a `b` c `d`\n```\n`e`\n```"), ["b", "d"]);
    assert_eq!(links("[x](docs/a.md) [y](b.md#z)"), ["docs/a.md", "b.md#z"]);
}
