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
/// Largest frame read (a jumbo frame or a glued one that slipped through).
pub const MAX_FRAME: usize = 65_600;

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
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            (libc::ETH_P_ALL as u16).to_be() as libc::c_int,
        )
    };
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
        read_buffer_size: if rx { MAX_FRAME } else { 64 },
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

/// A receive channel on a port (it can send too, on the same port).
pub fn open_rx(
    name: &str,
) -> Result<(Box<dyn DataLinkSender>, Box<dyn DataLinkReceiver>), PortError> {
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
    disable_offloads(name);
    channel(&iface, fd, true)
}

/// A send-only channel on a port: receives nothing.
pub fn open_tx(name: &str) -> Result<Box<dyn DataLinkSender>, PortError> {
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
    Ok(channel(&iface, fd, false)?.0)
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
