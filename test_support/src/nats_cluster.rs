//! A JetStream cluster of real `nats-server` processes on loopback, for tests that need
//! replicated buckets and a node that goes down.

use crate::ports::free_tcp_port;
use crate::{HarnessError, NatsServer, NatsServerOptions};

/// `size` nodes, routed to each other on loopback ports, each with its own store.
#[derive(Debug)]
pub struct NatsCluster {
    /// The nodes, `n0`, `n1`, …
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts the nodes (JetStream elects its leaders a moment later: open buckets with a
    /// deadline-bounded retry).
    pub fn start(size: usize) -> Result<Self, HarnessError> {
        let cluster_ports = (0..size)
            .map(|_| free_tcp_port())
            .collect::<Result<Vec<u16>, _>>()?;
        let routes = cluster_ports
            .iter()
            .map(|port| format!("\"nats://127.0.0.1:{port}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let nodes = cluster_ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                NatsServer::start_with(NatsServerOptions {
                    extra_config: Some(format!(
                        "server_name: n{i}\ncluster {{\n  name: bevygap-test\n  listen: \"127.0.0.1:{port}\"\n  routes: [{routes}]\n}}"
                    )),
                    ..NatsServerOptions::default()
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { nodes })
    }

    /// The client address of node `i`.
    pub fn address(&self, i: usize) -> String {
        self.nodes[i].address()
    }
}
