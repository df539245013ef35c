//! `demo --serve` (what `bash ci/serve.sh` runs): the stack comes up and prints where to connect,
//! a bot joins with the printed command, and Ctrl-C leaves no process behind.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Whether a process with this pid is alive (and not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .trim_start()
            .starts_with('Z')
    })
}

/// Game servers whose parent (`BEVYGAP_PARENT_PID`) is `parent`.
fn game_servers_of(parent: u32) -> Vec<u32> {
    let needle = format!("BEVYGAP_PARENT_PID={parent}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
                && alive(*pid)
        })
        .collect()
}

#[test]
fn the_stack_stays_up_serves_a_bot_and_ctrl_c_leaves_nothing_running() {
    let mut serve = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--serve", "--empty-ttl-secs", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let demo_pid = serve.id();
    let mut printed = std::collections::HashMap::new();
    let mut lines = BufReader::new(serve.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("[serve] up") {
            break;
        }
        if let Some(rest) = line.strip_prefix("[serve] ") {
            let (key, value) = rest.split_at(16.min(rest.len()));
            printed.insert(key.trim().to_owned(), value.trim().to_owned());
        }
    }
    for key in [
        "simplenet",
        "seed JSON",
        "status page",
        "inspection",
        "join as a bot",
    ] {
        assert!(printed.contains_key(key), "{key} not printed: {printed:?}");
    }

    // The printed command joins.
    let command = &printed["join as a bot"];
    let mut words = command.split_whitespace();
    let bot = Command::new(words.next().unwrap())
        .args(words)
        .args(["--play-secs", "1"])
        .output()
        .unwrap();
    assert!(bot.status.success(), "{bot:?}");
    assert!(String::from_utf8_lossy(&bot.stdout).contains("played"));
    let servers = game_servers_of(demo_pid);
    assert!(
        !servers.is_empty(),
        "a game server runs (empty servers live 60 s)"
    );
    let nats: u32 = printed["NATS pid"].parse().unwrap();
    assert!(alive(nats));

    // Ctrl-C stops everything it started.
    let interrupted = Command::new("kill")
        .args(["-INT", &demo_pid.to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let exit = serve.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    bevygap_test_support::wait_until(
        "NATS and the game servers to be gone",
        Duration::from_secs(30),
        || (!alive(nats) && servers.iter().all(|pid| !alive(*pid))).then_some(()),
    );
}
