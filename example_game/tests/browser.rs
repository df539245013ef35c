//! The browser client in real headless Chromium: the example page (the client plugin compiled to
//! WebAssembly) gets a session from the matchmaker over its websocket and connects to a local
//! WebTransport game server; a refused request shows its error on the page; and the seed book's
//! plain-JavaScript `WebSocket` snippet gets a session from the JSON endpoint.
//!
//! The page is built by `bash ci/web.sh` (ci/test.sh runs it first). The tests say they are
//! skipped only when Chromium is not installed, or when ci/test.sh found that the wasm tools
//! cannot install (`BEVYGAP_WEB_SKIP`).

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use bevygap_example_game::demo::{DemoEnv, DemoFleet};
use bevygap_example_game::web_page::{built_page_dir, serve_page};
use bevygap_test_support::{BrowserPage, Chromium, wait_until};
use support::{WAIT, demo_config};

/// Chromium and the built page, or `None` (with the reason printed) when the test must skip.
fn chromium_and_page() -> Option<(Chromium, PathBuf)> {
    if let Ok(reason) = std::env::var("BEVYGAP_WEB_SKIP") {
        println!("skipped: {reason}");
        return None;
    }
    let Some(chromium) = Chromium::find() else {
        println!("skipped: chromium not found (ci/setup.sh installs Debian's chromium)");
        return None;
    };
    let dir = built_page_dir(Path::new(env!("CARGO_BIN_EXE_example_server")))
        .unwrap_or_else(|error| panic!("{error}"));
    Some((chromium, dir))
}

/// The page's static file server on a free loopback port, for as long as it lives.
struct PageServer {
    port: u16,
    _runtime: tokio::runtime::Runtime,
}

impl PageServer {
    fn start(dir: PathBuf) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        runtime.spawn(serve_page(dir, listener));
        Self {
            port,
            _runtime: runtime,
        }
    }

    fn url(&self, page: &str, query: &str) -> String {
        format!("http://127.0.0.1:{}/{page}?{query}", self.port)
    }
}

/// Waits until the page's client state is `want` or `Failed`; returns the state and its detail.
fn wait_for_state(page: &mut BrowserPage, want: &str) -> (String, String) {
    wait_until(&format!("the page's client state {want}"), WAIT, || {
        let state = page.attribute_of("state", "data-state").unwrap()?;
        (state == want || state == "Failed").then(|| (state, page.text_of("detail").unwrap()))
    })
}

/// Page time (ms) at which the client reached `Connected`.
fn connected_ms(page: &mut BrowserPage) -> f64 {
    let value = page.eval("document.body.dataset.connectedMs").unwrap();
    value.as_str().unwrap().parse().unwrap()
}

/// An environment with WebTransport game servers of `seats` seats.
fn webtransport_env(seats: u32) -> DemoEnv {
    let mut config = demo_config(DemoFleet::Local);
    config.transport = "webtransport".into();
    config.seats_per_server = seats;
    DemoEnv::start(&config).unwrap()
}

/// Waits until the page shows `count` players, this one marked "you".
fn wait_for_players(page: &mut BrowserPage, count: usize) {
    wait_until(&format!("{count} players on the page"), WAIT, || {
        let shown = page.attribute_of("players", "data-count").unwrap();
        (shown == Some(count.to_string())).then_some(())
    });
    assert!(page.text_of("players").unwrap().contains("(you)"));
}

#[test]
fn a_browser_gets_a_session_connects_over_webtransport_and_the_server_counts_it() {
    let Some((chromium, dir)) = chromium_and_page() else {
        return;
    };
    // Two seats per server: the second browser joins the first one's server.
    let env = webtransport_env(2);
    let pages = PageServer::start(dir);
    let url = pages.url("index.html", &format!("matchmaker={}", env.simplenet_url()));
    let mut page = chromium.open(&url, 900, 640).unwrap();

    let (state, detail) = wait_for_state(&mut page, "Connected");
    assert_eq!(
        state,
        "Connected",
        "the page failed: {detail}\nhistory: {}\nchromium: {}",
        page.text_of("history").unwrap(),
        page.log()
    );
    let history = page.text_of("history").unwrap();
    for step in ["Requesting", "Connecting", "Connected"] {
        assert!(history.contains(step), "{step} in {history}");
    }

    // The server counted the player: its connection record is in KV, and it told the page.
    wait_until("the server's connection record", WAIT, || {
        (env.observed(|o| o.connections_now.len()) == 1).then_some(())
    });
    wait_for_players(&mut page, 1);

    let mut second = chromium.open(&url, 900, 640).unwrap();
    let (state, detail) = wait_for_state(&mut second, "Connected");
    assert_eq!(state, "Connected", "the second page failed: {detail}");
    wait_until("both connection records", WAIT, || {
        (env.observed(|o| o.connections_now.len()) == 2).then_some(())
    });
    assert_eq!(env.observed(|o| o.leases.len()), 1, "one server for both");
    wait_for_players(&mut page, 2);
    wait_for_players(&mut second, 2);

    // The README's figures: the first page waited for a server to start, the second did not.
    println!(
        "page load -> Connected: {:.0} ms with a server start, {:.0} ms to a running server",
        connected_ms(&mut page),
        connected_ms(&mut second)
    );

    let screenshot =
        std::env::temp_dir().join(format!("bevygap-browser-{}.png", std::process::id()));
    page.screenshot(&screenshot).unwrap();
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    // The README shows this page; `BEVYGAP_BROWSER_SCREENSHOT_TO` keeps a copy where it is wanted.
    if let Some(to) = std::env::var_os("BEVYGAP_BROWSER_SCREENSHOT_TO") {
        std::fs::copy(&screenshot, to).unwrap();
    }
    let _ = std::fs::remove_file(&screenshot);
}

#[test]
fn a_refused_request_shows_its_error_on_the_page() {
    let Some((chromium, dir)) = chromium_and_page() else {
        return;
    };
    let env = webtransport_env(1);
    let pages = PageServer::start(dir);
    let url = pages.url(
        "index.html",
        &format!("matchmaker={}&version=999", env.simplenet_url()),
    );
    let mut page = chromium.open(&url, 900, 640).unwrap();
    let (state, detail) = wait_for_state(&mut page, "Failed");
    assert_eq!(state, "Failed");
    assert!(
        detail.contains("999"),
        "the reason names the version: {detail}"
    );
    assert_eq!(
        page.attribute_of("play", "disabled").unwrap(),
        None,
        "Play is offered again"
    );
    assert_eq!(env.observed(|o| o.connections_seen.len()), 0);
}

#[test]
fn the_seed_books_plain_javascript_websocket_snippet_gets_a_session() {
    let Some((chromium, dir)) = chromium_and_page() else {
        return;
    };
    let env = webtransport_env(1);
    let pages = PageServer::start(dir);
    let status = |page: &mut BrowserPage, want: &str| {
        wait_until(&format!("the snippet's status {want}"), WAIT, || {
            let status = page.attribute_of("status", "data-status").unwrap()?;
            (status == want || status == "error" || status == "session").then_some(status)
        })
    };

    let mut page = chromium
        .open(
            &pages.url("seed.html", &format!("matchmaker={}", env.seed_url())),
            900,
            600,
        )
        .unwrap();
    let reached = status(&mut page, "session");
    let log = page.text_of("log").unwrap();
    assert_eq!(reached, "session", "{log}");
    assert!(log.contains(r#""Acknowledged""#), "{log}");
    assert!(
        log.contains("SessionReady") && log.contains("cert_digest"),
        "{log}"
    );

    let mut refused = chromium
        .open(
            &pages.url(
                "seed.html",
                &format!("matchmaker={}&version=999", env.seed_url()),
            ),
            900,
            600,
        )
        .unwrap();
    let reached = status(&mut refused, "error");
    let log = refused.text_of("log").unwrap();
    assert_eq!(reached, "error", "{log}");
    assert!(log.contains(r#"{"Error":["#), "{log}");
}

#[test]
fn demo_browser_prints_a_url_that_plays_and_ctrl_c_stops_it() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let Some((chromium, _)) = chromium_and_page() else {
        return;
    };
    let web_port = bevygap_test_support::free_tcp_port().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--browser", "--web-port", &web_port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = None;
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("[serve] up") {
            break;
        }
        if let Some(rest) = line.strip_prefix("[serve] browser client") {
            url = Some(rest.trim().to_owned());
        }
    }
    let url = url.expect("the browser URL is printed");
    assert!(url.starts_with(&format!("http://127.0.0.1:{web_port}/?matchmaker=ws://")));

    let mut page = chromium.open(&url, 900, 640).unwrap();
    let (state, detail) = wait_for_state(&mut page, "Connected");
    assert_eq!(state, "Connected", "{detail}");
    drop(page);

    let interrupted = Command::new("kill")
        .args(["-INT", &demo.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    // It says what it stops (and ends its output) before it exits.
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(rest.iter().any(|l| l == "[serve] stopped"), "{rest:?}");
    let status = wait_until("the demo to stop on Ctrl-C", WAIT, || {
        demo.try_wait().unwrap()
    });
    assert!(status.success(), "{status:?}");
}
