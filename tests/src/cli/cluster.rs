//! Several `kith-relay serve` nodes sharing one fresh PostgreSQL database, as behind a load
//! balancer.

use std::net::SocketAddr;
use std::sync::Arc;

use super::RelayProcess;
use crate::TestDatabase;
use crate::connection::tls_config;

/// Relay nodes on one database ([`RelayProcess::postgres_nodes`]); the nodes stop before the
/// database is dropped.
pub struct Cluster {
    // Dropped first: the nodes are killed before their database is dropped.
    nodes: Vec<RelayProcess>,
    database: TestDatabase,
}

impl Cluster {
    /// `n` nodes on a new database, or `None` when PostgreSQL tests are skipped (see
    /// [`TestDatabase::create`]). Call it outside a Tokio runtime.
    #[track_caller]
    pub fn start(test: &str, n: usize) -> Option<Self> {
        let database = TestDatabase::create(test)?;
        let nodes = RelayProcess::postgres_nodes(database.url(), n);
        Some(Self { nodes, database })
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &RelayProcess {
        &self.nodes[i]
    }

    /// Node `i`, to stop or kill it.
    pub fn node_mut(&mut self, i: usize) -> &mut RelayProcess {
        &mut self.nodes[i]
    }

    /// The database the nodes share.
    pub fn database(&self) -> &TestDatabase {
        &self.database
    }

    /// Node `i`'s client address, for [`Connection::connect`](crate::Connection::connect).
    pub fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.nodes[i].port()))
    }

    /// A TLS client configuration that trusts every node (they share one certificate).
    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        let pem = std::fs::read_to_string(self.nodes[0].ca_path()).expect("the certificate");
        tls_config(&pem).expect("a TLS client configuration")
    }
}
