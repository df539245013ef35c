//! The client listener and `/ws` hold against clients that misbehave: a per-address cap, cut
//! trickled headers and silent connections, clients that never authenticate, oversized or foreign
//! frames; browsers' text pings are answered; many requests at once are each answered once.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use std::time::Duration;

use bevy_simplenet::AuthRequest;
use bevygap_matchmaker::app::FleetChoice;
use bevygap_matchmaker::intake::limits::Limits;
use bevygap_matchmaker::intake::listener::ListenerTimeouts;
use bevygap_matchmaker::intake::simplenet::{ClientAuth, ToClient, ToServer};
use bevygap_shared::protocol::channel::{
    CHANNEL_PROTOCOL_VERSION, ClientHello, MatchRequest, MatchResult,
};
use bevygap_shared::protocol::{ErrorCode, GameRef};
use bincode::Options;
use futures::{SinkExt, StreamExt};
use support::app_harness::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn ws_url(h: &AppHarness, client_type: u8) -> String {
    format!(
        "ws://{}/ws?v={CHANNEL_PROTOCOL_VERSION}&t={client_type}",
        h.mm().client_addr
    )
}

fn frame(message: &ToServer) -> Message {
    Message::Binary(
        bincode::DefaultOptions::new()
            .serialize(message)
            .unwrap()
            .into(),
    )
}

fn authenticate(game: GameRef) -> Message {
    frame(&ToServer::Authenticate(ClientAuth {
        auth: AuthRequest::None { client_id: 1 },
        msg: ClientHello {
            game,
            client_build: "raw".into(),
        },
    }))
}

/// A `/ws` connection (client type `t`) that has authenticated as a client of `game`.
async fn authenticated(h: &AppHarness, client_type: u8, game: &str) -> Socket {
    let (mut socket, _) = connect_async(ws_url(h, client_type)).await.unwrap();
    socket
        .send(authenticate(GameRef::new(game, "1")))
        .await
        .unwrap();
    socket
}

/// Reads until the server closes; returns the close code (`None`: dropped without one).
async fn closed_with(socket: &mut Socket) -> Option<CloseCode> {
    tokio::time::timeout(WAIT, async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame.map(|f| f.code),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the server closes the socket")
}

/// Whether the server has closed a raw TCP connection (reads until end of stream).
async fn server_closes(mut tcp: TcpStream) -> bool {
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(WAIT, async {
        loop {
            match tcp.read(&mut buffer).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    })
    .await
    .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_cap_of_ws_connections() {
    let limits = Limits {
        max_connections_per_ip: 3,
        ..Limits::default()
    };
    let h = AppHarness::start_with(limits).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let socket = authenticated(&h, 0, "g").await;
        open.push(socket);
    }
    let refused = connect_async(ws_url(&h, 0)).await.unwrap_err();
    assert!(refused.to_string().contains("429"), "{refused}");

    // A closed connection gives its place back.
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    bevygap_test_support::wait_until_async("a place is free again", WAIT, || {
        let url = ws_url(&h, 0);
        async move { connect_async(url).await.ok().map(|_| ()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_headers_and_silent_connections_are_cut() {
    let h = AppHarness::start_adjusted(Limits::default(), FleetChoice::Static, |config| {
        config.intake.timeouts = ListenerTimeouts {
            headers: Duration::from_secs(1),
            ..ListenerTimeouts::default()
        };
    })
    .await;
    let address = h.mm().client_addr;

    // Slowloris: a byte of the request head every 300 ms never completes it.
    let mut trickle = TcpStream::connect(address).await.unwrap();
    let head = b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaa";
    let mut cut = false;
    for byte in head {
        if trickle.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        let mut probe = [0u8; 256];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(300), trickle.read(&mut probe)).await
        {
            cut = true;
            break;
        }
    }
    assert!(cut, "a head trickled over 15 s was still being read");

    // A connection that sends nothing is closed too.
    let silent = TcpStream::connect(address).await.unwrap();
    assert!(server_closes(silent).await);

    // Well-behaved clients are served meanwhile.
    let ok = reqwest::get(format!("http://{address}/healthz"))
        .await
        .unwrap();
    assert!(ok.status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_authenticates_is_closed() {
    let h = AppHarness::start().await;
    let (mut socket, _) = connect_async(ws_url(&h, 0)).await.unwrap();
    assert_eq!(closed_with(&mut socket).await, Some(CloseCode::Policy));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_foreign_frames_close_the_connection() {
    let h = AppHarness::start().await;
    let mut socket = authenticated(&h, 0, "g").await;
    socket
        .send(Message::Binary(vec![0u8; 64 * 1024].into()))
        .await
        .unwrap();
    assert_ne!(closed_with(&mut socket).await, Some(CloseCode::Normal));

    let mut socket = authenticated(&h, 0, "g").await;
    socket
        .send(Message::Binary(vec![9u8, 9, 9].into()))
        .await
        .unwrap();
    assert_eq!(closed_with(&mut socket).await, Some(CloseCode::Policy));

    // A wrong protocol version is refused at the upgrade, with what to do.
    let old = format!("ws://{}/ws?v=bevygap-1&t=0", h.mm().client_addr);
    let refused = connect_async(old).await.unwrap_err();
    assert!(refused.to_string().contains("400"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_client_keeps_alive_with_text_pings() {
    let h = AppHarness::start().await;
    let mut socket = authenticated(&h, 1, "g").await;
    socket
        .send(Message::Text("ping:1234".into()))
        .await
        .unwrap();
    let answer = tokio::time::timeout(WAIT, socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(answer, Message::Text("pong:1234".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_at_once_are_each_answered_once() {
    const CLIENTS: u64 = 300;
    let limits = Limits {
        max_connections_per_ip: 1000,
        ..Limits::default()
    };
    let h = AppHarness::start_with(limits).await;
    let mut sockets = Vec::new();
    for i in 0..CLIENTS {
        let mut socket = authenticated(&h, 0, "tetris").await;
        socket
            .send(frame(&ToServer::Request(MatchRequest::default(), i)))
            .await
            .unwrap();
        sockets.push(socket);
    }
    for (i, socket) in sockets.iter_mut().enumerate() {
        let mut answers = Vec::new();
        // The answer, then nothing more for this request.
        while answers.is_empty() {
            let message = tokio::time::timeout(WAIT, socket.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Message::Binary(bytes) = message {
                let decoded: ToClient = bincode::DefaultOptions::new().deserialize(&bytes).unwrap();
                if let ToClient::Response(result, id) = decoded {
                    answers.push((result, id));
                }
            }
        }
        let (result, id) = answers.remove(0);
        assert_eq!(id, i as u64);
        assert!(
            matches!(result, MatchResult::Failed(ref e) if e.code == ErrorCode::UnknownGame),
            "{result:?}"
        );
    }
}
