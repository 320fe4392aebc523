//! QUIC plumbing shared by the peer protocol and the admin API: endpoints, and exactly one
//! length-prefixed frame each way on a bidirectional stream.
//!
//! A frame's length is checked against the cap before anything is allocated, and reading it
//! is bounded in time, so a peer that announces 4 GiB or sends one byte a second holds
//! nothing for long.

use std::time::Duration;

use prost::Message;
use trm_proto::frame::{self, FrameError};

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameIoError {
    /// The frame broke the protocol.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream ended or was reset.
    #[error("stream: {0}")]
    Read(#[from] quinn::ReadExactError),
    /// Writing failed.
    #[error("stream: {0}")]
    Write(#[from] quinn::WriteError),
    /// The stream was closed.
    #[error("stream closed: {0}")]
    Closed(#[from] quinn::ClosedStream),
    /// The frame did not arrive in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Reads one frame's bytes (without the prefix), enforcing `cap` and `timeout`.
pub async fn read_frame(
    recv: &mut quinn::RecvStream,
    cap: usize,
    timeout: Duration,
) -> Result<Vec<u8>, FrameIoError> {
    tokio::time::timeout(timeout, async {
        let mut prefix = [0u8; 4];
        recv.read_exact(&mut prefix).await?;
        let len = frame::check_len(prefix, cap)?;
        let mut buf = vec![0u8; len];
        recv.read_exact(&mut buf).await?;
        Ok(buf)
    })
    .await
    .map_err(|_| FrameIoError::Timeout(timeout))?
}

/// Reads and decodes one frame.
pub async fn read_message<M: Message + Default>(
    recv: &mut quinn::RecvStream,
    cap: usize,
    timeout: Duration,
) -> Result<M, FrameIoError> {
    let bytes = read_frame(recv, cap, timeout).await?;
    Ok(M::decode(bytes.as_slice()).map_err(FrameError::from)?)
}

/// Writes one frame and finishes the stream.
pub async fn write_message<M: Message>(
    send: &mut quinn::SendStream,
    msg: &M,
) -> Result<(), FrameIoError> {
    send.write_all(&frame::encode(msg)).await?;
    send.finish()?;
    Ok(())
}

/// Opens a stream on `conn`, sends `req`, and reads one answer.
pub async fn request<Req: Message, Resp: Message + Default>(
    conn: &quinn::Connection,
    req: &Req,
    cap: usize,
    timeout: Duration,
) -> Result<Resp, RequestError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    write_message(&mut send, req).await?;
    Ok(read_message(&mut recv, cap, timeout).await?)
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The connection failed.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Connecting failed.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The frame exchange failed.
    #[error(transparent)]
    Frame(#[from] FrameIoError),
}

/// Binds a QUIC endpoint on an existing UDP socket (tests pass sockets bound to port 0).
pub fn endpoint(
    socket: std::net::UdpSocket,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for QUIC"))?;
    quinn::Endpoint::new(quinn::EndpointConfig::default(), server, socket, runtime)
}
