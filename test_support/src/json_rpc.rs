//! A minimal JSON-RPC-over-HTTP/1.1 call, for the matchmaker's `bevy_remote` endpoint on loopback.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// POSTs `{"jsonrpc":"2.0","id":1,"method":method,"params":params}` to `127.0.0.1:port` and
/// returns the reply's JSON body, or `None` when the call fails or times out.
pub async fn json_rpc(
    port: u16,
    method: &str,
    params: serde_json::Value,
) -> Option<serde_json::Value> {
    json_rpc_with_headers(port, method, params, &[])
        .await
        .map(|(_, body)| body)
}

/// Like [`json_rpc`], with extra request headers (`("Origin", "https://x.test")`), returning the
/// HTTP status with the JSON body.
pub async fn json_rpc_with_headers(
    port: u16,
    method: &str,
    params: serde_json::Value,
    headers: &[(&str, &str)],
) -> Option<(u16, serde_json::Value)> {
    let body = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params })
        .to_string();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let call = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let request = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response);
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let json = text.split("\r\n\r\n").nth(1)?;
        // Chunked or not, the JSON object is the outermost braces.
        let (start, end) = (json.find('{')?, json.rfind('}')?);
        Some((status, serde_json::from_str(&json[start..=end]).ok()?))
    };
    tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .ok()
        .flatten()
}
