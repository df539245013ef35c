//! A UDP relay from a deployment's external port to its internal one, as Edgegap's port mapping
//! does: players dial the external port, the game server binds the internal one and sees the
//! relay's addresses, so tokens must name the public address the server does not bind.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::task::{JoinHandle, JoinSet};
use tracing::debug;

/// Players one relay serves at most (each gets its own upstream socket).
const MAX_PEERS: usize = 1024;

/// Largest datagram relayed.
const MAX_DATAGRAM: usize = 65_536;

/// A running relay; stops when dropped.
#[derive(Debug)]
pub struct Relay {
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relays datagrams arriving at `front` to `internal`, and answers back to each sender.
pub fn start(front: std::net::UdpSocket, internal: SocketAddr) -> std::io::Result<Relay> {
    front.set_nonblocking(true)?;
    let front = Arc::new(UdpSocket::from_std(front)?);
    Ok(Relay {
        task: tokio::spawn(run(front, internal)),
    })
}

async fn run(front: Arc<UdpSocket>, internal: SocketAddr) {
    let mut peers: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    // Dropping the set (when the relay is aborted) stops every return path.
    let mut returns = JoinSet::new();
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((len, player)) = front.recv_from(&mut buffer).await else {
            continue;
        };
        let upstream = match peers.get(&player) {
            Some(socket) => socket.clone(),
            None if peers.len() >= MAX_PEERS => continue,
            None => {
                let Ok(socket) = UdpSocket::bind((internal.ip(), 0)).await else {
                    continue;
                };
                if socket.connect(internal).await.is_err() {
                    continue;
                }
                let socket = Arc::new(socket);
                debug!("relay to {internal}: new player {player}");
                returns.spawn(relay_back(socket.clone(), front.clone(), player));
                peers.insert(player, socket.clone());
                socket
            }
        };
        let _ = upstream.send(&buffer[..len]).await;
    }
}

async fn relay_back(upstream: Arc<UdpSocket>, front: Arc<UdpSocket>, player: SocketAddr) {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        match upstream.recv(&mut buffer).await {
            Ok(len) => {
                let _ = front.send_to(&buffer[..len], player).await;
            }
            // ICMP port unreachable while the server starts: keep listening.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}
