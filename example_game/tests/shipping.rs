//! The shipping files stay true without building an image: every path a Containerfile copies is
//! one `ci/images.sh` stages, every port it exposes is one its binary listens on, and the compose
//! file runs images `ci/images.sh` builds with settings the binaries read and files that exist (or
//! that its header tells the operator to make).

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap()
}

fn binary(name: &str) -> PathBuf {
    bevygap_test_support::workspace_binary(env!("CARGO_BIN_EXE_example_server"), name)
}

fn help(name: &str) -> String {
    help_of(name, &[])
}

fn help_of(name: &str, args: &[&str]) -> String {
    let out = Command::new(binary(name))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (image name, Containerfile text) for every file in `images/`.
fn containerfiles() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(repo().join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "Containerfile"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn containerfiles_copy_what_images_sh_stages_and_expose_what_their_binary_listens_on() {
    let images_sh = read("ci/images.sh");
    let files = containerfiles();
    assert_eq!(files.len(), 3, "matchmaker, game server and replica images");
    for (name, text) in &files {
        assert!(
            images_sh.contains(&format!("[{name}]=")),
            "ci/images.sh does not build {name}"
        );
        assert!(
            text.lines().any(|l| l.trim() == "FROM scratch"),
            "{name}: FROM scratch"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("USER ") && !l.contains(" 0")),
            "{name}: runs as a non-root user"
        );
        let entry = text
            .lines()
            .find_map(|l| l.strip_prefix("ENTRYPOINT [\"/"))
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("{name}: no ENTRYPOINT"));
        let binary_help = help(entry);
        for line in text.lines().filter(|l| l.starts_with("COPY ")) {
            let source = line.split_whitespace().nth(1).unwrap();
            match source.strip_prefix("bin/") {
                Some(bin) => {
                    binary(bin);
                    assert!(
                        images_sh.contains(&format!("\"$bin_dir/{bin}\"")),
                        "{name}: {source} not staged"
                    );
                }
                None => assert!(
                    images_sh.contains(&format!(
                        "\"$stage/{}",
                        Path::new(source).parent().unwrap().display()
                    )),
                    "{name}: {source} not staged by ci/images.sh"
                ),
            }
        }
        for port in text
            .lines()
            .filter_map(|l| l.strip_prefix("EXPOSE "))
            .flat_map(str::split_whitespace)
            .map(|p| p.split('/').next().unwrap())
        {
            let in_file = text
                .lines()
                .filter(|l| l.starts_with("ENV ") || l.starts_with("CMD "))
                .any(|l| l.contains(&format!(":{port}")));
            let default = binary_help.contains(&format!("[default: {port}]"))
                || binary_help.contains(&format!(":{port}]"));
            // The game server's port is the one the Edgegap version maps (`create-version`).
            let game_port = name == "gameserver"
                && help_of("bevygap_edgegap", &["create-version"])
                    .contains(&format!("[default: {port}]"));
            assert!(
                in_file || default || game_port,
                "{name}: EXPOSE {port} is neither set in the file nor a default of /{entry}"
            );
        }
    }
}

#[test]
fn the_compose_file_runs_built_images_with_real_settings_and_files_that_exist() {
    let compose = read("compose.yaml");
    let images_sh = read("ci/images.sh");
    let matchmaker_help = help("bevygap_matchmaker");
    let nats_conf = read("deploy/nats.conf") + &read("assets/nats-auth.conf");
    let mut section = "";
    for line in compose.lines() {
        let trimmed = line.trim();
        if line.starts_with("  ") && !line.starts_with("   ") && trimmed.ends_with(':') {
            section = trimmed.trim_end_matches(':');
        }
        if let Some(image) = trimmed.strip_prefix("image: localhost/bevygap-") {
            let name = image.split(':').next().unwrap().replace('-', "_");
            assert!(
                repo()
                    .join(format!("images/{name}.Containerfile"))
                    .is_file(),
                "compose runs localhost/bevygap-{image}, which ci/images.sh does not build"
            );
            assert!(images_sh.contains("localhost/bevygap-"));
        }
        if let Some(volume) = trimmed.strip_prefix("- ./") {
            let source = volume.split(':').next().unwrap();
            let exists = repo().join(source).exists();
            let explained = compose
                .lines()
                .take_while(|l| l.starts_with('#'))
                .any(|l| l.contains(source));
            assert!(
                exists || explained,
                "{source}: neither in the repository nor in the header"
            );
        }
        let Some((key, _)) = trimmed.split_once(": ") else {
            continue;
        };
        if !key.chars().all(|c| c.is_ascii_uppercase() || c == '_') || key.len() < 4 {
            continue;
        }
        match section {
            "matchmaker" => assert!(
                bevygap_test_support::help_names_env(&matchmaker_help, key),
                "matchmaker: {key} is not a setting"
            ),
            "nats" => assert!(
                nats_conf.contains(&format!("${key}")),
                "nats: {key} is not read by the configuration"
            ),
            _ => {}
        }
    }
}
