//! Small value types shared by several messages: identities, times, addresses, hashes, modes.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::bounded::Name;
use crate::error::FrameError;
use crate::validate::ensure;

/// Identity of one appliance, as written in its device certificate (e.g. `MM-000123`).
///
/// 1 to [`MAX_NAME_LEN`](crate::limits::MAX_NAME_LEN) characters of `A-Z a-z 0-9 . _ : -`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(Name);

impl DeviceId {
    /// Checks and wraps a device id.
    pub fn new(id: &str) -> Result<Self, FrameError> {
        let name = Name::new(id).map_err(|e| e.in_field("device"))?;
        let id = DeviceId(name);
        id.check("device")?;
        Ok(id)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Checks bound and alphabet after decoding.
    pub(crate) fn check(&self, field: &'static str) -> Result<(), FrameError> {
        self.0.check(field)?;
        ensure(!self.0.is_empty(), field, "device id is empty")?;
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
        ensure(
            self.0.chars().all(allowed),
            field,
            "device id has characters outside A-Za-z0-9._:-",
        )
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.as_str())
    }
}

/// A point in time: milliseconds since the Unix epoch, UTC, from the appliance clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMs(pub u64);

/// A point in time: seconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixSecs(pub u64);

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl std::str::FromStr for Mac {
    type Err = String;

    /// `aa:bb:cc:dd:ee:ff` (or with `-`), two hex digits per byte.
    fn from_str(s: &str) -> Result<Mac, String> {
        let bad = || format!("`{s}` is not a MAC address (aa:bb:cc:dd:ee:ff)");
        let parts: Vec<&str> = s.trim().split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut m = [0u8; 6];
        for (b, p) in m.iter_mut().zip(&parts) {
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        Ok(Mac(m))
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

/// A SHA-256 digest (of a file, or of a rule bundle).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sha256(pub [u8; 32]);

impl fmt::Display for Sha256 {
    /// Lower-case hex, 64 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

/// Inspection mode of an appliance (SPEC §3.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// IPS: blocking actions are carried out. The default.
    #[default]
    Prevent,
    /// IDS: never blocks, still alerts.
    Detect,
}

/// What the appliance did with the traffic an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Let through (detect mode, or an alert-only rule).
    Allowed,
    /// Dropped.
    Blocked,
    /// A file was held back and never arrived whole (SPEC §3.2 "disarm").
    Disarmed,
    /// The connection was reset both ways (or answered with a block page).
    Reset,
}

/// IP protocol of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IpProto {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMP (1).
    Icmp,
    /// ICMPv6 (58).
    Icmpv6,
    /// Any other protocol number.
    Other(u8),
}

/// One internal host, by MAC or by IP address (commands and exceptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HostRef {
    /// By Ethernet address: survives DHCP renumbering.
    Mac(Mac),
    /// By IP address (v4 or v6).
    Ip(IpAddr),
}

/// An internal host as seen on the bridged segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InternalHost {
    /// Its IP address.
    pub ip: IpAddr,
    /// Its Ethernet address.
    pub mac: Mac,
}
