//! A TCP forwarder that can be cut and restored: a backend outage without stopping the shared backend.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

pub struct TcpProxy {
    address: SocketAddr,
    target: SocketAddr,
    forwarding: Option<JoinHandle<()>>,
}

async fn forward(listener: TcpListener, target: SocketAddr) {
    // Owned by this task: aborting it drops the set, which aborts every connection and closes its sockets.
    let mut connections = JoinSet::new();
    while let Ok((mut inbound, _)) = listener.accept().await {
        connections.spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

impl TcpProxy {
    /// Forwards a fresh port on 127.0.0.1 to `target`.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a proxy port");
        let address = listener.local_addr().expect("proxy address");
        TcpProxy { address, target, forwarding: Some(tokio::spawn(forward(listener, target))) }
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Closes the port and every connection through it.
    pub async fn cut(&mut self) {
        if let Some(forwarding) = self.forwarding.take() {
            forwarding.abort();
            let _ = forwarding.await;
        }
    }

    /// Forwards the same port again.
    pub async fn restore(&mut self) {
        let listener = TcpListener::bind(self.address).await.expect("rebind the proxy port");
        self.forwarding = Some(tokio::spawn(forward(listener, self.target)));
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(forwarding) = &self.forwarding {
            forwarding.abort();
        }
    }
}
