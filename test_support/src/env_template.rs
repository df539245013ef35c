//! Reading the `NAME=value` lines of the env templates in `assets/`.

/// The variable names an env template sets, commented out (`# NAME=…`) or not.
pub fn env_template_names(text: &str) -> Vec<&str> {
    text.lines()
        .map(|line| line.trim_start_matches('#').trim())
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect()
}

/// Whether clap's `--help` text documents the environment variable `name` (with its value shown
/// or hidden).
pub fn help_names_env(help: &str, name: &str) -> bool {
    help.contains(&format!("env: {name}=")) || help.contains(&format!("env: {name}]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_set_and_commented_lines_but_not_prose() {
        let text = "# A comment = prose\nAPP_NAME=g\n# NATS_PASSWORD=<secret>\n\nRUST_LOG=info";
        assert_eq!(
            env_template_names(text),
            ["APP_NAME", "NATS_PASSWORD", "RUST_LOG"]
        );
        assert!(help_names_env("[env: NATS_PASSWORD]", "NATS_PASSWORD"));
        assert!(help_names_env("[env: APP_NAME=]", "APP_NAME"));
        assert!(!help_names_env("[env: APP_NAMES=]", "APP_NAME"));
    }
}
