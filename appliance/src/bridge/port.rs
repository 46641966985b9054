//! Ports: AF_PACKET sockets on the bridged interfaces, through pnet's datalink channel.
//!
//! The sockets are made here and handed to pnet (`socket_fd`) so they can be set up the
//! way a bridge needs before they are bound: receive sockets ignore the frames the
//! appliance itself sends (`PACKET_IGNORE_OUTGOING`, or we would loop), transmit-only
//! sockets carry a drop-everything filter (no copy of every frame for a socket that only
//! sends) and skip the qdisc. Receive offloads that glue frames together (GRO/LRO) are
//! switched off on the ports: a glued frame is larger than the link's MTU and could not be
//! sent on.

use std::io;
use std::time::Duration;

use pnet_datalink::{self as dl, Channel, DataLinkReceiver, DataLinkSender, NetworkInterface};

const PACKET_QDISC_BYPASS: libc::c_int = 20;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("network interface `{0}` not found (ip link show lists the interfaces)")]
    NoSuchInterface(String),
    #[error("interface `{0}` is down; bring it up with `ip link set {0} up`")]
    Down(String),
    #[error("opening a packet socket on `{name}` (needs root or CAP_NET_RAW): {source}")]
    Socket { name: String, source: io::Error },
    #[error("`{0}`: pnet gave no Ethernet channel")]
    NotEthernet(String),
}

pub fn find(name: &str) -> Result<NetworkInterface, PortError> {
    dl::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| PortError::NoSuchInterface(name.into()))
}

fn setopt(fd: i32, level: libc::c_int, opt: libc::c_int, val: libc::c_int) -> io::Result<()> {
    // SAFETY: fd is a socket we own; the value is a plain int of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&val as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn raw_socket(name: &str) -> Result<i32, PortError> {
    // SAFETY: plain socket(2) call.
    // protocol 0: nothing is captured until pnet binds the socket to its interface (with
    // ETH_P_ALL); a socket made with ETH_P_ALL would capture every interface until then
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd == -1 {
        return Err(PortError::Socket {
            name: name.into(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(fd)
}

fn close(fd: i32) {
    // SAFETY: closing a descriptor we created and did not hand on.
    unsafe { libc::close(fd) };
}

fn channel(
    iface: &NetworkInterface,
    fd: i32,
    rx: bool,
) -> Result<(Box<dyn DataLinkSender>, Box<dyn DataLinkReceiver>), PortError> {
    let cfg = dl::Config {
        read_buffer_size: 64,
        write_buffer_size: 64,
        read_timeout: Some(Duration::from_millis(50)),
        write_timeout: Some(Duration::from_millis(20)),
        promiscuous: rx,
        socket_fd: Some(fd),
        ..dl::Config::default()
    };
    match dl::channel(iface, cfg) {
        Ok(Channel::Ethernet(tx, rx)) => Ok((tx, rx)),
        Ok(_) => Err(PortError::NotEthernet(iface.name.clone())),
        Err(source) => Err(PortError::Socket {
            name: iface.name.clone(),
            source,
        }),
    }
}

/// A port's receive socket, bound by pnet, read in batches with `recvmmsg`. The pnet
/// channel is kept: it owns the descriptor.
pub struct RxPort {
    fd: i32,
    _chan: (Box<dyn DataLinkSender>, Box<dyn DataLinkReceiver>),
}

/// A send-only socket, bound by pnet, written in batches with `sendmmsg`.
pub struct TxPort {
    fd: i32,
    _chan: Box<dyn DataLinkSender>,
}

/// Open a port for receiving.
pub fn open_rx(name: &str) -> Result<RxPort, PortError> {
    let iface = find(name)?;
    if !iface.is_up() {
        return Err(PortError::Down(name.into()));
    }
    let fd = raw_socket(name)?;
    if let Err(e) = setopt(fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1) {
        close(fd);
        return Err(PortError::Socket {
            name: name.into(),
            source: io::Error::new(
                e.kind(),
                format!("PACKET_IGNORE_OUTGOING (Linux 4.20+): {e}"),
            ),
        });
    }
    // room for bursts while a worker is busy
    let _ = setopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20)
        .or_else(|_| setopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 8 << 20));
    // VLAN tags the kernel strips on receive come back as auxiliary data
    if let Err(e) = setopt(fd, libc::SOL_PACKET, PACKET_AUXDATA, 1) {
        close(fd);
        return Err(PortError::Socket {
            name: name.into(),
            source: e,
        });
    }
    disable_offloads(name);
    Ok(RxPort {
        fd,
        _chan: channel(&iface, fd, true)?,
    })
}

/// Open a port for sending only: the socket receives nothing.
pub fn open_tx(name: &str) -> Result<TxPort, PortError> {
    let iface = find(name)?;
    let fd = raw_socket(name)?;
    let mut drop_all = [libc::sock_filter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: drop_all.as_mut_ptr(),
    };
    // SAFETY: prog points at a one-instruction classic BPF program alive for the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r == -1 {
        let e = io::Error::last_os_error();
        close(fd);
        return Err(PortError::Socket {
            name: name.into(),
            source: e,
        });
    }
    let _ = setopt(fd, libc::SOL_PACKET, PACKET_QDISC_BYPASS, 1);
    let _ = setopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, 4 << 20);
    Ok(TxPort {
        fd,
        _chan: channel(&iface, fd, false)?.0,
    })
}

/// Frames read per `recvmmsg`.
pub const RX_BATCH: usize = 32;
/// Largest frame a receive slot holds (jumbo); longer ones are counted and dropped.
pub const SLOT: usize = 9_216;

/// Receive buffers for one port: up to [`RX_BATCH`] frames per call.
pub struct RxBatch {
    bufs: Box<[u8]>,
    /// Frame i is `bufs[i * SLOT + starts[i]..][..lens[i]]`: frames are read
    /// [`HEADROOM`] bytes into their slot so a VLAN tag the kernel took off can be put back.
    starts: [usize; RX_BATCH],
    lens: [usize; RX_BATCH],
    truncated: [bool; RX_BATCH],
    /// The sender left the TCP/UDP checksum to offload (a veth peer in this host).
    csum_partial: [bool; RX_BATCH],
    /// Control messages (`PACKET_AUXDATA`) per frame.
    ctrl: Box<[[u64; 8]; RX_BATCH]>,
}

/// Room before each received frame for a VLAN tag.
const HEADROOM: usize = 4;
const PACKET_AUXDATA: libc::c_int = 8;
const TP_STATUS_VLAN_VALID: u32 = 0x10;
const TP_STATUS_VLAN_TPID_VALID: u32 = 0x40;
const TP_STATUS_CSUMNOTREADY: u32 = 0x8;

impl Default for RxBatch {
    fn default() -> Self {
        RxBatch {
            bufs: vec![0u8; SLOT * RX_BATCH].into_boxed_slice(),
            starts: [HEADROOM; RX_BATCH],
            lens: [0; RX_BATCH],
            truncated: [false; RX_BATCH],
            csum_partial: [false; RX_BATCH],
            ctrl: Box::new([[0u64; 8]; RX_BATCH]),
        }
    }
}

impl RxBatch {
    /// Frame `i` of the last read, `None` if it was longer than a slot.
    pub fn frame(&self, i: usize) -> Option<&[u8]> {
        let s = i * SLOT + self.starts[i];
        (!self.truncated[i]).then(|| &self.bufs[s..s + self.lens[i]])
    }

    /// Whether frame `i`'s transport checksum is not filled in yet (checksum offload of a
    /// sender on this host); the management stack must complete it before checking.
    pub fn checksum_partial(&self, i: usize) -> bool {
        self.csum_partial[i]
    }
}

impl RxPort {
    /// Wait up to `timeout_ms` for frames, then read every frame queued (up to a batch).
    pub fn recv(&self, batch: &mut RxBatch, timeout_ms: i32) -> io::Result<usize> {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        if r == 0 {
            return Ok(0);
        }
        // the headers point into `batch.bufs`, which outlives the call
        let mut iov: [libc::iovec; RX_BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; RX_BATCH];
        // SAFETY: mmsghdr is plain data; zeroed is a valid empty header.
        let mut msgs: [libc::mmsghdr; RX_BATCH] = unsafe { std::mem::zeroed() };
        let base = batch.bufs.as_mut_ptr();
        for i in 0..RX_BATCH {
            // SAFETY: slot i lies inside bufs (SLOT * RX_BATCH bytes).
            iov[i] = libc::iovec {
                iov_base: unsafe { base.add(i * SLOT + HEADROOM) }.cast(),
                iov_len: SLOT - HEADROOM,
            };
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = batch.ctrl[i].as_mut_ptr().cast();
            msgs[i].msg_hdr.msg_controllen = std::mem::size_of::<[u64; 8]>() as _;
        }
        // SAFETY: RX_BATCH headers, each with one iovec into a live buffer.
        let n = unsafe {
            libc::recvmmsg(
                self.fd,
                msgs.as_mut_ptr(),
                RX_BATCH as u32,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) {
                Ok(0)
            } else {
                Err(e)
            };
        }
        let n = n as usize;
        for i in 0..n {
            let len = msgs[i].msg_len as usize;
            batch.truncated[i] =
                len > SLOT - HEADROOM || msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            batch.lens[i] = len.min(SLOT - HEADROOM);
            batch.starts[i] = HEADROOM;
            let (vlan, status) = aux_of(&msgs[i].msg_hdr);
            batch.csum_partial[i] = status & TP_STATUS_CSUMNOTREADY != 0;
            // the kernel may have taken the outer VLAN tag off into the auxiliary data
            if let Some((tpid, tci)) = vlan {
                if batch.lens[i] >= 12 && !batch.truncated[i] {
                    let s = i * SLOT;
                    batch.bufs.copy_within(s + HEADROOM..s + HEADROOM + 12, s);
                    batch.bufs[s + 12..s + 14].copy_from_slice(&tpid.to_be_bytes());
                    batch.bufs[s + 14..s + 16].copy_from_slice(&tci.to_be_bytes());
                    batch.starts[i] = 0;
                    batch.lens[i] += HEADROOM;
                }
            }
        }
        Ok(n)
    }
}

/// The VLAN tag the kernel stripped from a received frame, if any (TPID, TCI), and the
/// frame's `tp_status`.
fn aux_of(h: &libc::msghdr) -> (Option<(u16, u16)>, u32) {
    // SAFETY: the header's control buffer was filled by recvmmsg; the CMSG macros walk
    // it within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                let aux =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::tpacket_auxdata>());
                if aux.tp_status & TP_STATUS_VLAN_VALID != 0 {
                    let tpid = if aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                        aux.tp_vlan_tpid
                    } else {
                        0x8100
                    };
                    return (Some((tpid, aux.tp_vlan_tci)), aux.tp_status);
                }
                return (None, aux.tp_status);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    (None, 0)
}

/// Frames waiting to be sent on one port (pointers into buffers the caller keeps alive
/// until [`TxPort::flush`]).
#[derive(Default)]
pub struct TxQueue {
    iov: Vec<libc::iovec>,
}

// SAFETY: the queue only holds pointers between `push` and `flush` on the same thread.
unsafe impl Send for TxQueue {}

impl TxQueue {
    /// Queue a frame; it must stay alive and unchanged until the next `flush`.
    pub fn push(&mut self, frame: &[u8]) {
        self.iov.push(libc::iovec {
            iov_base: frame.as_ptr() as *mut libc::c_void,
            iov_len: frame.len(),
        });
    }
    pub fn is_empty(&self) -> bool {
        self.iov.is_empty()
    }
    /// Forget the queued frames unsent.
    pub fn clear(&mut self) {
        self.iov.clear();
    }
}

impl TxPort {
    /// Send one frame now.
    pub fn send(&self, frame: &[u8]) -> bool {
        // SAFETY: a live buffer of the given length.
        let r = unsafe { libc::send(self.fd, frame.as_ptr().cast(), frame.len(), 0) };
        r == frame.len() as isize
    }

    /// Send every queued frame (`sendmmsg`, in batches); returns the frames not sent.
    pub fn flush(&self, q: &mut TxQueue) -> u64 {
        let mut failed = 0u64;
        let mut msgs: [libc::mmsghdr; 64] = unsafe { std::mem::zeroed() };
        let mut i = 0;
        while i < q.iov.len() {
            let n = (q.iov.len() - i).min(64);
            for k in 0..n {
                msgs[k].msg_hdr.msg_iov = &mut q.iov[i + k];
                msgs[k].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: n headers, each with one iovec into a buffer the caller keeps alive.
            let r = unsafe { libc::sendmmsg(self.fd, msgs.as_mut_ptr(), n as u32, 0) };
            if r <= 0 {
                // one frame refused (too long, buffer full): skip it, keep the rest
                failed += 1;
                i += 1;
            } else {
                i += r as usize;
            }
        }
        q.iov.clear();
        failed
    }
}

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// Switch off GRO and LRO on a port (best effort: virtual links may not have them).
fn disable_offloads(name: &str) {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_SGRO: u32 = 0x2c;
    const ETHTOOL_GFLAGS: u32 = 0x25;
    const ETHTOOL_SFLAGS: u32 = 0x26;
    const ETH_FLAG_LRO: u32 = 1 << 15;
    // SAFETY: an ordinary datagram socket used only for the ioctl, closed below.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if s < 0 {
        return;
    }
    let ioctl = |v: &mut EthtoolValue| -> bool {
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            data: (v as *mut EthtoolValue).cast(),
            _pad: [0; 16],
        };
        for (d, b) in req
            .name
            .iter_mut()
            .zip(name.bytes().take(libc::IFNAMSIZ - 1))
        {
            *d = b as libc::c_char;
        }
        // SAFETY: req names the interface and points at a live ethtool_value.
        unsafe { libc::ioctl(s, SIOCETHTOOL as _, &mut req) == 0 }
    };
    if !ioctl(&mut EthtoolValue {
        cmd: ETHTOOL_SGRO,
        data: 0,
    }) {
        tracing::debug!(port = name, "GRO could not be switched off");
    }
    let mut flags = EthtoolValue {
        cmd: ETHTOOL_GFLAGS,
        data: 0,
    };
    if ioctl(&mut flags) && flags.data & ETH_FLAG_LRO != 0 {
        let _ = ioctl(&mut EthtoolValue {
            cmd: ETHTOOL_SFLAGS,
            data: flags.data & !ETH_FLAG_LRO,
        });
    }
    close(s);
}
