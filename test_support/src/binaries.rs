//! The workspace's binaries, from the tests of another package.

/// Another binary of the workspace, found next to `beside` (a `CARGO_BIN_EXE_*` path): tests of
/// one package run the binaries of others that `cargo test --workspace` built.
pub fn workspace_binary(beside: &str, name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(beside).with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace first (`cargo test --workspace` does)",
        path.display()
    );
    path
}
