//! A real headless Chromium for browser tests, driven over the DevTools protocol: open a page,
//! read values out of it with JavaScript, take a screenshot.
//!
//! Debian's `chromium` (installed by `ci/setup.sh`) is found on `PATH` or through
//! `BEVYGAP_CHROMIUM`. [`Chromium::find`] returns `None` when it is not installed, so a test can
//! print why it skips; everything after that fails loudly.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket, stream::MaybeTlsStream};

use crate::{HarnessError, wait_until};

/// The Chromium binary to use, if one is installed.
#[derive(Debug, Clone)]
pub struct Chromium {
    binary: PathBuf,
}

impl Chromium {
    /// `BEVYGAP_CHROMIUM`, or `chromium` / `chromium-browser` on `PATH`; `None` when none runs.
    pub fn find() -> Option<Self> {
        let candidates: Vec<PathBuf> = std::env::var_os("BEVYGAP_CHROMIUM")
            .map(|p| vec![PathBuf::from(p)])
            .unwrap_or_else(|| vec!["chromium".into(), "chromium-browser".into()]);
        candidates
            .into_iter()
            .find(|binary| {
                Command::new(binary)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .map(|binary| Self { binary })
    }

    /// Starts a headless browser showing `url` in a `width`×`height` window.
    pub fn open(&self, url: &str, width: u32, height: u32) -> Result<BrowserPage, HarnessError> {
        let profile = tempfile::tempdir()?;
        let log = profile.path().join("chromium.log");
        let child = Command::new(&self.binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let mut page = BrowserPage {
            child,
            socket: None,
            next_id: 0,
            log,
            profile,
        };
        let port = page.devtools_port()?;
        let target = wait_until(
            "the page's DevTools target",
            Duration::from_secs(20),
            || page_target(port),
        );
        let (socket, _) = tungstenite::connect(target.as_str())
            .map_err(|e| HarnessError::StartFailed(format!("DevTools websocket: {e}")))?;
        page.socket = Some(socket);
        Ok(page)
    }
}

/// One page in a running headless Chromium; the browser stops when this is dropped.
pub struct BrowserPage {
    child: Child,
    socket: Option<WebSocket<MaybeTlsStream<TcpStream>>>,
    next_id: u64,
    log: PathBuf,
    profile: tempfile::TempDir,
}

impl BrowserPage {
    /// The DevTools port Chromium chose, from `DevToolsActivePort` in its profile.
    fn devtools_port(&mut self) -> Result<u16, HarnessError> {
        let file = self.profile.path().join("DevToolsActivePort");
        let child = &mut self.child;
        let log = self.log.clone();
        let port = wait_until("Chromium's DevTools port", Duration::from_secs(30), || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(HarnessError::StartFailed(format!(
                    "chromium exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ))));
            }
            std::fs::read_to_string(&file)
                .ok()
                .and_then(|text| text.lines().next()?.trim().parse::<u16>().ok())
                .map(Ok)
        })?;
        Ok(port)
    }

    /// Calls a DevTools method on the page and returns its `result`.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, HarnessError> {
        self.next_id += 1;
        let id = self.next_id;
        let socket = self
            .socket
            .as_mut()
            .ok_or_else(|| HarnessError::StartFailed("no DevTools connection".into()))?;
        let request = json!({ "id": id, "method": method, "params": params }).to_string();
        socket
            .send(Message::text(request))
            .map_err(|e| HarnessError::StartFailed(format!("DevTools send: {e}")))?;
        loop {
            let message = socket
                .read()
                .map_err(|e| HarnessError::StartFailed(format!("DevTools read: {e}")))?;
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(answer) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if answer["id"].as_u64() != Some(id) {
                continue; // an event
            }
            if let Some(error) = answer.get("error") {
                return Err(HarnessError::StartFailed(format!(
                    "DevTools {method}: {error}"
                )));
            }
            return Ok(answer["result"].clone());
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value (JSON).
    pub fn eval(&mut self, expression: &str) -> Result<Value, HarnessError> {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        )?;
        Ok(result["result"]["value"].clone())
    }

    /// The text of the element with this id (empty when it is missing).
    pub fn text_of(&mut self, id: &str) -> Result<String, HarnessError> {
        let value = self.eval(&format!(
            "(document.getElementById({}) || {{}}).textContent || ''",
            json!(id)
        ))?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// An attribute of the element with this id (`None` when it or the attribute is missing).
    pub fn attribute_of(&mut self, id: &str, name: &str) -> Result<Option<String>, HarnessError> {
        let value = self.eval(&format!(
            "(() => {{ const e = document.getElementById({}); return e ? e.getAttribute({}) : null; }})()",
            json!(id),
            json!(name)
        ))?;
        Ok(value.as_str().map(str::to_owned))
    }

    /// Saves a PNG screenshot of the page.
    pub fn screenshot(&mut self, path: &Path) -> Result<(), HarnessError> {
        let result = self.call("Page.captureScreenshot", json!({ "format": "png" }))?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(result["data"].as_str().unwrap_or_default())
            .map_err(|e| HarnessError::StartFailed(format!("screenshot data: {e}")))?;
        std::fs::write(path, data)?;
        Ok(())
    }

    /// What Chromium wrote to its standard error (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for BrowserPage {
    fn drop(&mut self) {
        if let Some(mut socket) = self.socket.take() {
            let _ = socket.close(None);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DevTools websocket of the browser's page, from `/json/list`.
fn page_target(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .ok()?;
    // DevTools keeps the connection open: read the head, then exactly Content-Length bytes.
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_len, body_len) = loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        response.extend_from_slice(&chunk[..n]);
        if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))?
                .trim()
                .parse::<usize>()
                .ok()?;
            break (end + 4, length);
        }
    };
    while response.len() < head_len + body_len {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        response.extend_from_slice(&chunk[..n]);
    }
    let targets: Value = serde_json::from_slice(&response[head_len..head_len + body_len]).ok()?;
    targets.as_array()?.iter().find_map(|t| {
        (t["type"] == "page")
            .then(|| t["webSocketDebuggerUrl"].as_str().map(str::to_owned))
            .flatten()
    })
}
