//! The docs book (`docs/`) stays true: every flag and environment variable it names exists in a
//! Bevygap binary's `--help` (or is named by something else, listed below with why), and every
//! link between its pages resolves, anchors included.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Variables the book names that no Bevygap binary reads as a flag's variable.
const NOT_FLAGS: &[(&str, &str)] = &[
    (
        "BEVYGAP_MATCHMAKER_PASSWORD",
        "nats-server's environment (assets/nats-auth.conf)",
    ),
    (
        "BEVYGAP_GAMESERVER_PASSWORD",
        "nats-server's environment (assets/nats-auth.conf)",
    ),
    (
        "BEVYGAP_CALLOUT_ISSUER",
        "nats-server's environment (assets/nats-auth.conf)",
    ),
    (
        "BEVYGAP_DEPLOYMENT_ID",
        "set by the local fleet (bevygap_shared::context_env)",
    ),
    (
        "BEVYGAP_PORT",
        "set by the local fleet (bevygap_shared::context_env)",
    ),
    (
        "BEVYGAP_PUBLIC_IP",
        "set by the local fleet (bevygap_shared::context_env)",
    ),
    ("APP_NAME", "replaced in assets/nats-auth.conf"),
];

/// Flags of other tools the book shows, with the tool.
const OTHER_TOOLS_FLAGS: &[(&str, &str)] = &[
    ("--target", "wasm-bindgen (docs/src/browser.md)"),
    ("--out-dir", "wasm-bindgen (docs/src/browser.md)"),
    (
        "--cfg",
        "rustc, in .cargo/config.toml (docs/src/browser.md)",
    ),
];

fn book() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src")
}

fn pages() -> Vec<(String, String)> {
    let mut pages: Vec<(String, String)> = std::fs::read_dir(book())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&path).unwrap(),
            )
        })
        .collect();
    pages.sort();
    pages
}

/// Inline code spans outside fenced blocks.
fn code_spans(text: &str) -> Vec<&str> {
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
        while let (Some(span), Some(_)) = (parts.next(), parts.next()) {
            spans.push(span);
        }
    }
    spans
}

/// `--flags` anywhere in the book (code blocks included).
fn flags(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("--") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '-') {
            continue;
        }
        let name: String = text[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if name.len() > 1 && name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
            found.insert(format!("--{name}"));
        }
    }
    found
}

/// Environment variables named in code spans (`NAME` or `NAME=value`).
fn variables(text: &str) -> BTreeSet<String> {
    code_spans(text)
        .into_iter()
        .flat_map(|span| span.split_whitespace())
        .map(|word| word.split('=').next().unwrap_or_default())
        .filter(|name| {
            name.len() > 3
                && name.contains('_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

fn help(binary: &Path, args: &[&str]) -> String {
    let out = Command::new(binary)
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} --help: {out:?}",
        binary.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `--help` of every binary and subcommand the book talks about.
fn all_help() -> String {
    let mut text = String::new();
    let commands: &[(&str, &[&[&str]])] = &[
        ("bevygap_matchmaker", &[&[]]),
        (
            "bevygap_edgegap",
            &[
                &[],
                &["check"],
                &["set-arguments"],
                &["set-ca-argument"],
                &["deployments"],
                &["stop"],
            ],
        ),
        (
            "bevygap_gameserver_auth",
            &[&[], &["new-key"], &["credentials"]],
        ),
        ("example_server", &[&[]]),
        ("example_client", &[&[]]),
        ("demo", &[&[]]),
        ("edgegap_replica", &[&[]]),
    ];
    for (binary, subcommands) in commands {
        let path =
            bevygap_test_support::workspace_binary(env!("CARGO_BIN_EXE_example_server"), binary);
        for args in *subcommands {
            text.push_str(&help(&path, args));
        }
    }
    text
}

#[test]
fn every_flag_and_variable_the_book_names_exists() {
    let help = all_help();
    let mut missing = Vec::new();
    let (mut checked_flags, mut checked_variables) = (0, 0);
    for (page, text) in pages() {
        checked_flags += flags(&text).len();
        checked_variables += variables(&text).len();
        for flag in flags(&text) {
            let other_tool = OTHER_TOOLS_FLAGS.iter().any(|(f, _)| *f == flag);
            if !other_tool
                && !help.contains(&format!("{flag} "))
                && !help.contains(&format!("{flag}\n"))
            {
                missing.push(format!("{page}: flag {flag}"));
            }
        }
        for name in variables(&text) {
            let elsewhere =
                name.starts_with("ARBITRIUM_") || NOT_FLAGS.iter().any(|(n, _)| *n == name);
            if !elsewhere && !bevygap_test_support::help_names_env(&help, &name) {
                missing.push(format!("{page}: variable {name}"));
            }
        }
    }
    assert!(
        checked_flags >= 30 && checked_variables >= 15,
        "the book names settings ({checked_flags} flags, {checked_variables} variables found)"
    );
    assert!(
        missing.is_empty(),
        "named in the book but not a setting:\n{}",
        missing.join("\n")
    );
}

/// mdBook's anchor for a heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_link_between_pages_resolves() {
    let pages = pages();
    let anchors = |file: &str| -> BTreeSet<String> {
        pages
            .iter()
            .find(|(name, _)| name == file)
            .map(|(_, text)| {
                text.lines()
                    .filter_map(|l| l.strip_prefix('#'))
                    .map(|h| slug(h.trim_start_matches('#')))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut broken = Vec::new();
    let mut linked = 0;
    for (page, text) in &pages {
        for (at, _) in text.match_indices("](") {
            let target: String = text[at + 2..].chars().take_while(|c| *c != ')').collect();
            if target.contains("://") {
                continue;
            }
            linked += 1;
            let (file, anchor) = target.split_once('#').unwrap_or((target.as_str(), ""));
            let file = if file.is_empty() { page.as_str() } else { file };
            if !pages.iter().any(|(name, _)| name == file) {
                broken.push(format!("{page}: {target} (no such page)"));
            } else if !anchor.is_empty() && !anchors(file).contains(anchor) {
                broken.push(format!("{page}: {target} (no such heading)"));
            }
        }
    }
    assert!(
        linked >= 8,
        "the book links its pages ({linked} links found)"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    // Every page is in the summary.
    let summary = &pages.iter().find(|(n, _)| n == "SUMMARY.md").unwrap().1;
    for (page, _) in &pages {
        assert!(
            page == "SUMMARY.md" || summary.contains(&format!("({page})")),
            "{page} is not in SUMMARY.md"
        );
    }
}
