//! Serving the browser page that `bash ci/web.sh` builds (`index.html`, the WebAssembly client and
//! its JavaScript glue, and `seed.html`) over plain HTTP on loopback, for `demo --browser` and the
//! browser tests.

use std::io;
use std::path::{Component, Path, PathBuf};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// Where `ci/web.sh` puts the page, relative to the cargo target directory.
pub const PAGE_DIR: &str = "web";

/// Why the page cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum WebPageError {
    /// `ci/web.sh` has not been run (or `BEVYGAP_WEB_DIR` points elsewhere).
    #[error(
        "the browser page is not built (no {PAGE_DIR}/index.html beside {0}); build it with `bash ci/web.sh` (ci/test.sh and `ci/demo.sh --browser` do), or point BEVYGAP_WEB_DIR at it"
    )]
    NotBuilt(String),
    /// The listener failed.
    #[error("the page server stopped: {0}")]
    Io(#[from] io::Error),
}

/// The built page: `BEVYGAP_WEB_DIR`, or `web/` in the cargo target directory that holds `exe`
/// (a binary or a test of this workspace).
pub fn built_page_dir(exe: &Path) -> Result<PathBuf, WebPageError> {
    if let Some(dir) = std::env::var_os("BEVYGAP_WEB_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.join("index.html").is_file() {
            Ok(dir)
        } else {
            Err(WebPageError::NotBuilt(dir.display().to_string()))
        };
    }
    exe.ancestors()
        .map(|dir| dir.join(PAGE_DIR))
        .find(|dir| dir.join("index.html").is_file())
        .ok_or_else(|| WebPageError::NotBuilt(exe.display().to_string()))
}

/// Serves the files of `dir` on `listener` until the task is dropped. Only files inside `dir`
/// are served; `/` is `index.html`.
pub async fn serve_page(
    dir: PathBuf,
    listener: tokio::net::TcpListener,
) -> Result<(), WebPageError> {
    let router = axum::Router::new().fallback(file).with_state(dir);
    axum::serve(listener, router).await?;
    Ok(())
}

/// One file of the page, with its content type; never cached, so a rebuilt page shows at once.
async fn file(State(dir): State<PathBuf>, uri: Uri) -> Response {
    let Some(relative) = page_path(uri.path()) else {
        return (StatusCode::NOT_FOUND, "not a file of the page").into_response();
    };
    let path = dir.join(&relative);
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mut response = bytes.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&relative)),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(_) => (StatusCode::NOT_FOUND, "no such file in the page").into_response(),
    }
}

/// The file a request path names inside the page directory, or `None` for a path that would
/// leave it (`..`, absolute parts, backslashes).
fn page_path(path: &str) -> Option<PathBuf> {
    let path = path.trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    if path.contains('\\') {
        return None;
    }
    let relative = PathBuf::from(path);
    relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(relative)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_inside_the_page_are_named() {
        assert_eq!(page_path("/"), Some(PathBuf::from("index.html")));
        assert_eq!(
            page_path("/bevygap_example_web_bg.wasm"),
            Some(PathBuf::from("bevygap_example_web_bg.wasm"))
        );
        assert_eq!(page_path("/../secret"), None);
        assert_eq!(page_path("/a/../../secret"), None);
        assert_eq!(page_path("/a\\..\\secret"), None);
        assert_eq!(page_path("//etc/passwd"), Some(PathBuf::from("etc/passwd")));
    }

    #[test]
    fn wasm_is_served_as_wasm() {
        assert_eq!(content_type(Path::new("x.wasm")), "application/wasm");
        assert_eq!(
            content_type(Path::new("x.js")),
            "text/javascript; charset=utf-8"
        );
    }
}
