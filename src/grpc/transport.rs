//! The accepted TCP connections, as hyper's HTTP/2 (h2) and HTTP/1 writers should see them.
//!
//! h2 decides how to write a DATA frame by whether the connection has vectored writes: with
//! them, any payload of 256 bytes or more is not copied into its write buffer but sent by a
//! `writev` of its own before the next frame can be buffered; without them, payloads below
//! 1 KiB are copied and the frames of many streams leave in one write. Most answers here are a
//! few hundred bytes (a Locate answer is about 430), so with vectored writes every such answer
//! costs a system call of its own, which measured as much server CPU as everything gridcase
//! does for the call (BENCHMARKS.md, "Cost per request"). [`CoalescedWrites`] says "no vectored
//! writes": small answers are batched; each DATA frame of 1 KiB or more (frames are at most
//! 16 KiB) costs one more write than before (the buffered frames with the start of its
//! payload, then the rest), beside the copy hyper's HTTP/1 makes of bodies (gRPC-Web and the
//! console) into its buffer instead of queueing them. Frames still leave at the end of each
//! turn of the connection's task, as before: h2 flushes whenever it has nothing more to send.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// A TCP connection whose writes are not vectored (see the module's documentation).
#[derive(Debug)]
pub struct CoalescedWrites(pub TcpStream);

impl AsyncRead for CoalescedWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for CoalescedWrites {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

impl Connected for CoalescedWrites {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn says_no_vectored_writes_and_passes_bytes_and_the_peer_through() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (accepted, peer) = listener.accept().await.unwrap();
        assert!(
            accepted.is_write_vectored(),
            "tokio's TCP stream writes vectored"
        );
        let mut server = CoalescedWrites(accepted);
        assert!(!server.is_write_vectored());
        assert_eq!(server.connect_info().remote_addr(), Some(peer));
        assert_eq!(server.connect_info().local_addr(), Some(addr));

        client.write_all(b"request").await.unwrap();
        let mut got = [0u8; 7];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"request");

        server.write_all(b"answer").await.unwrap();
        server.flush().await.unwrap();
        server.shutdown().await.unwrap();
        let mut all = Vec::new();
        client.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"answer");
    }
}
