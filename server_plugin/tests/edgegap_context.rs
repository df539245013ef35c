//! The Edgegap context path: the context API (served here on loopback) gives the public IP,
//! external port, FQDN and location; without it the `ARBITRIUM_*` variables are used.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use bevygap_server_plugin::edgegap_context::{EdgegapSettings, resolve};

fn settings() -> EdgegapSettings {
    EdgegapSettings {
        port_name: "gameport".into(),
        app_name: "spaceships".into(),
        app_version: "1".into(),
        capacity: 8,
    }
}

async fn context_api() -> String {
    let app = axum::Router::new().route(
        "/context",
        get(|headers: HeaderMap| async move {
            if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("ctx-token") {
                return (StatusCode::UNAUTHORIZED, String::new());
            }
            (
                StatusCode::OK,
                r#"{"request_id":"9f3a1c2b7d4e","public_ip":"198.51.100.4","fqdn":"9f3a1c2b7d4e.pr.edgegap.net",
                    "ports":{"gameport":{"name":"gameport","internal":6420,"external":30777,"protocol":"UDP"}},
                    "location":{"city":"Frankfurt","country":"Germany","continent":"Europe","latitude":50.1,"longitude":8.7}}"#
                    .to_owned(),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/context")
}

#[tokio::test]
async fn the_context_api_gives_address_fqdn_and_location() {
    let url = context_api().await;
    let env = move |k: &str| match k {
        "ARBITRIUM_REQUEST_ID" => Some("9f3a1c2b7d4e".to_owned()),
        "ARBITRIUM_CONTEXT_URL" => Some(url.clone()),
        "ARBITRIUM_CONTEXT_TOKEN" => Some("ctx-token".to_owned()),
        _ => None,
    };
    let ctx = resolve(env, &settings()).await.unwrap();
    assert_eq!(ctx.public_addr, "198.51.100.4:30777".parse().unwrap());
    assert_eq!(ctx.bind_addr, "0.0.0.0:6420".parse().unwrap());
    assert_eq!(ctx.fqdn.as_deref(), Some("9f3a1c2b7d4e.pr.edgegap.net"));
    assert_eq!(ctx.location.unwrap().region, "Frankfurt");
}

#[tokio::test]
async fn a_refused_context_api_falls_back_to_the_variables() {
    let url = context_api().await;
    let env = move |k: &str| match k {
        "ARBITRIUM_REQUEST_ID" => Some("9f3a1c2b7d4e".to_owned()),
        "ARBITRIUM_PUBLIC_IP" => Some("198.51.100.5".to_owned()),
        "ARBITRIUM_PORTS_MAPPING" => Some(
            r#"{"ports":{"gameport":{"internal":6420,"external":30888,"protocol":"UDP"}}}"#
                .to_owned(),
        ),
        "ARBITRIUM_CONTEXT_URL" => Some(url.clone()),
        "ARBITRIUM_CONTEXT_TOKEN" => Some("wrong-token".to_owned()),
        _ => None,
    };
    let ctx = resolve(env, &settings()).await.unwrap();
    assert_eq!(ctx.public_addr, "198.51.100.5:30888".parse().unwrap());
    assert!(ctx.fqdn.is_none());
}
