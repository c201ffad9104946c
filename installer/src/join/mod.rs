//! Joining nodes to a master: the token that pins the master's CA, the TLS material, the
//! join channel's protocol, and the node-side flow (`--join <master> --token <t>`).

pub mod acceptor;
pub mod client;
pub mod node;
pub mod pki;
pub mod protocol;
pub mod server;
pub mod tls;
pub mod token;
