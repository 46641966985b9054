//! TCP streams over the management stack, as tokio `AsyncRead + AsyncWrite`.
//!
//! A stream is a handle to a smoltcp socket inside the shared stack. Reads and writes copy
//! between the caller and the socket's fixed buffers under the stack's mutex, then kick the
//! stack thread (a read may open the window, a write has bytes to send); when a buffer is
//! empty (or full) the task registers its waker with smoltcp, which wakes it when the
//! thread's poll moves data. The buffers never grow: a slow reader closes the TCP window.

use std::io;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::{icmp, tcp};
use smoltcp::storage::PacketMetadata;
use smoltcp::wire::IpListenEndpoint;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::MgmtError;
use super::stack::{Shared, Stack};

/// Local ports for outgoing connections (IANA dynamic range).
pub(super) const EPHEMERAL: RangeInclusive<u16> = 49152..=65535;
/// Receive and send buffer of every connection: the most a connection holds in memory
/// each way, and its largest window.
pub const TCP_BUFFER: usize = 64 * 1024;
/// Room for one ICMP error quoting our SYN (Linux quotes up to 576 bytes).
const ICMP_BUFFER: usize = 576;

/// A TCP connection from the appliance's management address. `shutdown` sends FIN after
/// the queued bytes; dropping the stream closes it too, and resets it if the close has not
/// finished within a few seconds.
pub struct TcpStream {
    shared: Arc<Shared>,
    handle: SocketHandle,
    /// During the handshake: ICMP errors about our local port (unreachable, TTL exceeded).
    icmp: Option<SocketHandle>,
    peer: SocketAddr,
}

fn free_port(st: &mut Stack) -> Option<u16> {
    let in_use: Vec<u16> = st
        .sockets
        .iter()
        .filter_map(|(_, s)| match s {
            smoltcp::socket::Socket::Tcp(t) => Some(
                t.local_endpoint()
                    .map_or(t.listen_endpoint().port, |e| e.port),
            ),
            _ => None,
        })
        .collect();
    let span = (EPHEMERAL.end() - EPHEMERAL.start()) as u32 + 1;
    (0..span).find_map(|_| {
        let p = st.next_port;
        st.next_port = if p == *EPHEMERAL.end() {
            *EPHEMERAL.start()
        } else {
            p + 1
        };
        (!in_use.contains(&p)).then_some(p)
    })
}

fn new_socket() -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
    );
    s.set_nagle_enabled(false); // TLS records are written whole
    s
}

impl TcpStream {
    /// Starts a connection (SYN sent at the next poll); await `opened` for the handshake.
    pub(super) fn connect(shared: &Arc<Shared>, peer: SocketAddr) -> Result<TcpStream, MgmtError> {
        let mut st = shared.lock();
        if st.stopped {
            return Err(MgmtError::Stopped);
        }
        let port = free_port(&mut st).ok_or(MgmtError::NoFreePort)?;
        let mut socket = new_socket();
        let Stack { iface, sockets, .. } = &mut *st;
        socket
            .connect(iface.context(), peer, port)
            .map_err(|_| MgmtError::NoRoute(peer))?;
        let mut icmp = icmp::Socket::new(
            icmp::PacketBuffer::new(vec![PacketMetadata::EMPTY; 1], vec![0; ICMP_BUFFER]),
            icmp::PacketBuffer::new(vec![], vec![]),
        );
        let _ = icmp.bind(icmp::Endpoint::Tcp(IpListenEndpoint { addr: None, port }));
        let stream = TcpStream {
            shared: shared.clone(),
            handle: sockets.add(socket),
            icmp: Some(sockets.add(icmp)),
            peer,
        };
        drop(st);
        shared.kick();
        Ok(stream)
    }

    /// Listens on `port` for one connection; await `opened` for it to arrive.
    #[cfg(test)]
    pub(super) fn listen(shared: &Arc<Shared>, port: u16) -> TcpStream {
        let mut socket = new_socket();
        let _ = socket.listen(port);
        let handle = shared.lock().sockets.add(socket);
        let peer = SocketAddr::from(([0, 0, 0, 0], port));
        TcpStream {
            shared: shared.clone(),
            handle,
            icmp: None,
            peer,
        }
    }

    /// Waits for the handshake: a reset is `Refused`, an ICMP error `Unreachable`.
    pub(super) async fn opened(mut self) -> Result<TcpStream, MgmtError> {
        std::future::poll_fn(|cx| self.poll_opened(cx)).await?;
        Ok(self)
    }

    fn poll_opened(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), MgmtError>> {
        let mut st = self.shared.lock();
        if st.stopped {
            return Poll::Ready(Err(MgmtError::Stopped));
        }
        if let Some(h) = self.icmp {
            let icmp = st.sockets.get_mut::<icmp::Socket>(h);
            if icmp.can_recv() {
                return Poll::Ready(Err(MgmtError::Unreachable(self.peer)));
            }
            icmp.register_recv_waker(cx.waker());
        }
        let socket = st.sockets.get_mut::<tcp::Socket>(self.handle);
        match socket.state() {
            tcp::State::Closed => Poll::Ready(Err(MgmtError::Refused(self.peer))),
            tcp::State::Listen | tcp::State::SynSent | tcp::State::SynReceived => {
                socket.register_recv_waker(cx.waker());
                Poll::Pending
            }
            _ => {
                if let Some(r) = socket.remote_endpoint() {
                    self.peer = SocketAddr::new(r.addr.into(), r.port);
                }
                if let Some(h) = self.icmp.take() {
                    st.sockets.remove(h);
                }
                Poll::Ready(Ok(()))
            }
        }
    }

    /// The remote end.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

fn reset() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "management TCP connection reset",
    )
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut st = self.shared.lock();
        let socket = st.sockets.get_mut::<tcp::Socket>(self.handle);
        match socket.recv_slice(buf.initialize_unfilled()) {
            // a stopped stack has reset every socket: no read waits for it
            Ok(0) => {
                socket.register_recv_waker(cx.waker());
                Poll::Pending
            }
            Ok(n) => {
                buf.advance(n);
                drop(st);
                self.shared.kick(); // the window may open
                Poll::Ready(Ok(()))
            }
            Err(tcp::RecvError::Finished) => Poll::Ready(Ok(())), // FIN: end of stream
            Err(tcp::RecvError::InvalidState) => Poll::Ready(Err(reset())),
        }
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut st = self.shared.lock();
        let socket = st.sockets.get_mut::<tcp::Socket>(self.handle);
        if socket.state() == tcp::State::Closed {
            return Poll::Ready(Err(reset()));
        }
        match socket.send_slice(buf) {
            Ok(0) => {
                socket.register_send_waker(cx.waker());
                Poll::Pending
            }
            Ok(n) => {
                drop(st);
                self.shared.kick();
                Poll::Ready(Ok(n))
            }
            Err(tcp::SendError::InvalidState) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(())) // written bytes are with the stack, which sends them on its own
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared
            .lock()
            .sockets
            .get_mut::<tcp::Socket>(self.handle)
            .close();
        self.shared.kick();
        Poll::Ready(Ok(()))
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        if let Some(h) = self.icmp.take() {
            st.sockets.remove(h);
        }
        let socket = st.sockets.get_mut::<tcp::Socket>(self.handle);
        socket.close();
        if socket.state() == tcp::State::Closed {
            st.sockets.remove(self.handle);
        } else {
            st.orphan(self.handle);
        }
        drop(st);
        self.shared.kick();
    }
}
