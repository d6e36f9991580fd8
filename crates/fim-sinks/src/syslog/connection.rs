//! One connection to the receiver: TCP, TLS over TCP, or a connected UDP
//! socket. Receivers never send on a syslog stream, so a read that returns
//! reports that the peer closed or reset the connection.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;

use super::config::Transport;

/// A byte stream (plain TCP or TLS).
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// An open connection.
pub enum Connection {
    Stream {
        /// Read only to notice that the peer closed the connection.
        reader: ReadHalf<Box<dyn Stream>>,
        writer: WriteHalf<Box<dyn Stream>>,
    },
    Datagram(UdpSocket),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Connection::Stream { .. } => formatter.write_str("Connection::Stream"),
            Connection::Datagram(socket) => write!(formatter, "Connection::Datagram({socket:?})"),
        }
    }
}

/// How to reach the receiver.
#[derive(Debug, Clone)]
pub struct Connector {
    pub address: String,
    pub transport: Transport,
    pub timeout: Duration,
    pub tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl Connector {
    /// Opens a connection, handshake included, within the connect timeout.
    pub async fn connect(&self) -> std::io::Result<Connection> {
        match tokio::time::timeout(self.timeout, self.open()).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "connecting to {} timed out after {:?}",
                    self.address, self.timeout
                ),
            )),
        }
    }

    async fn open(&self) -> std::io::Result<Connection> {
        if self.transport == Transport::Udp {
            let target = tokio::net::lookup_host(&self.address)
                .await?
                .next()
                .ok_or_else(|| {
                    std::io::Error::other(format!("{} resolves to no address", self.address))
                })?;
            let local = if target.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let socket = UdpSocket::bind(local).await?;
            socket.connect(target).await?;
            return Ok(Connection::Datagram(socket));
        }

        let tcp = TcpStream::connect(&self.address).await?;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Stream> = match &self.tls {
            Some((config, server_name)) => {
                let connector = TlsConnector::from(config.clone());
                Box::new(connector.connect(server_name.clone(), tcp).await?)
            }
            None => Box::new(tcp),
        };
        let (reader, writer) = tokio::io::split(stream);
        Ok(Connection::Stream { reader, writer })
    }
}

impl Connection {
    /// Writes `bytes` and flushes them. UDP sends each range of `frames`
    /// as one datagram instead.
    pub async fn write(
        &mut self,
        bytes: &[u8],
        frames: &[std::ops::Range<usize>],
    ) -> std::io::Result<()> {
        match self {
            Connection::Stream { writer, .. } => {
                writer.write_all(bytes).await?;
                writer.flush().await
            }
            Connection::Datagram(socket) => {
                for range in frames {
                    socket.send(&bytes[range.clone()]).await?;
                }
                Ok(())
            }
        }
    }

    /// Completes when the peer closes or resets a stream connection; never
    /// for UDP.
    pub async fn closed(&mut self) -> std::io::Error {
        match self {
            Connection::Stream { reader, .. } => {
                let mut buffer = [0u8; 512];
                loop {
                    match reader.read(&mut buffer).await {
                        Ok(0) => {
                            return std::io::Error::new(
                                std::io::ErrorKind::ConnectionAborted,
                                "the receiver closed the connection",
                            );
                        }
                        // Data from a syslog receiver is unexpected; ignore it.
                        Ok(_) => continue,
                        Err(err) => return err,
                    }
                }
            }
            Connection::Datagram(_) => std::future::pending().await,
        }
    }

    /// Closes a stream cleanly (TLS close_notify, then FIN).
    pub async fn shutdown(&mut self) {
        if let Connection::Stream { writer, .. } = self {
            let _ = writer.shutdown().await;
        }
    }
}
