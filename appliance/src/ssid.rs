//! Wi-Fi SSIDs served by hostapd (SPEC §3.1): the appliance renders one `hostapd.conf` per
//! SSID (`ssid1` primary, `ssid2` secondary) from its own TOML configuration.
//!
//! Only what the appliance supports is rendered: 2.4 GHz, 802.11b/g/n, and one of
//! WPA-PSK, WPA2-PSK, WPA/WPA2-PSK or 802.1X (EAP against a RADIUS server), each with TKIP
//! or AES (CCMP). Anything else is rejected by [`render`] with an [`SsidError`] that names
//! the field, the bad value and what is allowed. Error texts never contain the passphrase
//! or the RADIUS secret, and neither does the `Debug` output of the configuration.
//!
//! The rendered text contains the passphrase (or PSK) and the RADIUS secret in clear: the
//! caller must write it to a file readable by root only (mode 0600).

use std::fmt;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Longest SSID in bytes (IEEE 802.11).
const SSID_MAX_BYTES: usize = 32;
/// Longest Linux interface name (`IFNAMSIZ` - 1).
const IFNAME_MAX_BYTES: usize = 15;
/// Default 2.4 GHz channel.
const DEFAULT_CHANNEL: u8 = 6;
/// Default regulatory domain.
const DEFAULT_COUNTRY: &str = "JP";
/// Default RADIUS authentication port.
const DEFAULT_RADIUS_PORT: u16 = 1812;

const SECURITY_VALUES: &str = "wpa-psk, wpa2-psk, wpa-wpa2-psk, 802.1x";
const PASSPHRASE_RULE: &str =
    "use 8..=63 printable ASCII characters, or exactly 64 hex digits for a raw PSK";

/// One SSID's settings, as in the appliance TOML (`[ssid1]`, `[ssid2]` tables).
///
/// `Debug` is written by hand so that the passphrase is never printed.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SsidConfig {
    /// Network name: 1..=32 bytes of UTF-8, no control characters.
    pub ssid: String,
    /// Wireless interface for hostapd; default `wlan0` for `ssid1`, `wlan1` for `ssid2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// `wpa-psk`, `wpa2-psk`, `wpa-wpa2-psk` (or `wpa/wpa2-psk`) or `802.1x`, any case.
    pub security: String,
    /// `tkip` or `aes` (`ccmp` is read as `aes`), any case; default `aes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    /// Required for the `*-psk` modes, forbidden for `802.1x`: 8..=63 printable ASCII
    /// characters, or exactly 64 hex digits (a raw PSK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<String>,
    /// 2.4 GHz channel 1..=13; default 6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u8>,
    /// Only `g` (802.11b/g); default `g`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hw_mode: Option<String>,
    /// 802.11n (HT); default true. Turned off in the output when the cipher is TKIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ieee80211n: Option<bool>,
    /// Two uppercase letters (ISO 3166-1 alpha-2); default `JP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Hide the SSID from beacons (`ignore_broadcast_ssid`); default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    /// RADIUS server: required for `802.1x`, forbidden otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radius: Option<RadiusConfig>,
}

/// The RADIUS server of an 802.1X SSID (`[ssidN.radius]`).
///
/// `Debug` is written by hand so that the secret is never printed.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RadiusConfig {
    /// Unicast address of the RADIUS server.
    pub server: IpAddr,
    /// Authentication port; default 1812.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Shared secret: non-empty, one line, no control characters.
    pub secret: String,
    /// The appliance's own address sent as NAS-IP-Address (`own_ip_addr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_ip: Option<IpAddr>,
}

/// Placeholder printed instead of secrets.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Debug for SsidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsidConfig")
            .field("ssid", &self.ssid)
            .field("interface", &self.interface)
            .field("security", &self.security)
            .field("cipher", &self.cipher)
            .field("passphrase", &self.passphrase.as_ref().map(|_| Redacted))
            .field("channel", &self.channel)
            .field("hw_mode", &self.hw_mode)
            .field("ieee80211n", &self.ieee80211n)
            .field("country", &self.country)
            .field("hidden", &self.hidden)
            .field("radius", &self.radius)
            .finish()
    }
}

impl fmt::Debug for RadiusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RadiusConfig")
            .field("server", &self.server)
            .field("port", &self.port)
            .field("secret", &Redacted)
            .field("own_ip", &self.own_ip)
            .finish()
    }
}

/// Which SSID: `ssid1` (primary) or `ssid2` (secondary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SsidRole {
    Ssid1,
    Ssid2,
}

impl SsidRole {
    /// The role's name, as in the TOML table and the port roles: `ssid1`, `ssid2`.
    pub fn as_str(self) -> &'static str {
        match self {
            SsidRole::Ssid1 => "ssid1",
            SsidRole::Ssid2 => "ssid2",
        }
    }

    /// Wireless interface used when the configuration names none.
    pub fn default_interface(self) -> &'static str {
        match self {
            SsidRole::Ssid1 => "wlan0",
            SsidRole::Ssid2 => "wlan1",
        }
    }
}

impl fmt::Display for SsidRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Supported security modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Security {
    WpaPsk,
    Wpa2Psk,
    WpaWpa2Psk,
    Ieee8021x,
}

impl Security {
    /// Parses a configuration value, case-insensitively; `None` when unsupported.
    pub fn parse(value: &str) -> Option<Security> {
        match value.to_ascii_lowercase().as_str() {
            "wpa-psk" => Some(Security::WpaPsk),
            "wpa2-psk" => Some(Security::Wpa2Psk),
            "wpa-wpa2-psk" | "wpa/wpa2-psk" => Some(Security::WpaWpa2Psk),
            "802.1x" => Some(Security::Ieee8021x),
            _ => None,
        }
    }

    /// Canonical configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Security::WpaPsk => "wpa-psk",
            Security::Wpa2Psk => "wpa2-psk",
            Security::WpaWpa2Psk => "wpa-wpa2-psk",
            Security::Ieee8021x => "802.1x",
        }
    }

    fn is_psk(self) -> bool {
        !matches!(self, Security::Ieee8021x)
    }

    /// hostapd `wpa=` bit field: 1 = WPA, 2 = WPA2 (RSN), 3 = both.
    fn wpa_bits(self) -> u8 {
        match self {
            Security::WpaPsk => 1,
            Security::Wpa2Psk | Security::Ieee8021x => 2,
            Security::WpaWpa2Psk => 3,
        }
    }
}

impl fmt::Display for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Supported pairwise ciphers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    Tkip,
    Aes,
}

impl Cipher {
    /// Parses a configuration value, case-insensitively (`ccmp` is `aes`); `None` when
    /// unsupported.
    pub fn parse(value: &str) -> Option<Cipher> {
        match value.to_ascii_lowercase().as_str() {
            "tkip" => Some(Cipher::Tkip),
            "aes" | "ccmp" => Some(Cipher::Aes),
            _ => None,
        }
    }

    fn hostapd(self) -> &'static str {
        match self {
            Cipher::Tkip => "TKIP",
            Cipher::Aes => "CCMP",
        }
    }
}

/// A problem in one SSID's configuration. Every message starts with `<role>.<field>:`,
/// shows the bad value (never the passphrase or the RADIUS secret) and says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsidError {
    #[error("{role}.ssid: must not be empty; use 1..=32 bytes of UTF-8")]
    SsidEmpty { role: SsidRole },
    #[error("{role}.ssid: `{ssid}` is {len} bytes long; at most 32 bytes of UTF-8 are allowed")]
    SsidTooLong {
        role: SsidRole,
        ssid: String,
        len: usize,
    },
    #[error(
        "{role}.ssid: `{}` contains a newline or other control character; use printable characters only",
        .ssid.escape_debug()
    )]
    SsidControlCharacter { role: SsidRole, ssid: String },
    #[error(
        "{role}.interface: `{}` is not a valid interface name; use 1..=15 characters without '/', ':', whitespace or control characters",
        .interface.escape_debug()
    )]
    InterfaceInvalid { role: SsidRole, interface: String },
    #[error(
        "{role}.security: `{}` is not supported; use one of {SECURITY_VALUES}",
        .value.escape_debug()
    )]
    SecurityUnsupported { role: SsidRole, value: String },
    #[error("{role}.cipher: `{}` is not supported; use one of tkip, aes (or ccmp)", .value.escape_debug())]
    CipherUnsupported { role: SsidRole, value: String },
    #[error("{role}.passphrase: missing, required for {security}; {PASSPHRASE_RULE}")]
    PassphraseMissing { role: SsidRole, security: Security },
    #[error(
        "{role}.passphrase: not allowed with 802.1x (clients authenticate against the RADIUS server); remove it"
    )]
    PassphraseForbidden { role: SsidRole },
    #[error("{role}.passphrase: character {position} is not printable ASCII; {PASSPHRASE_RULE}")]
    PassphraseCharacter { role: SsidRole, position: usize },
    #[error("{role}.passphrase: {len} characters is too short; {PASSPHRASE_RULE}")]
    PassphraseTooShort { role: SsidRole, len: usize },
    #[error("{role}.passphrase: {len} characters is too long; {PASSPHRASE_RULE}")]
    PassphraseTooLong { role: SsidRole, len: usize },
    #[error(
        "{role}.passphrase: 64 characters is read as a raw PSK but not all are hex digits; {PASSPHRASE_RULE}"
    )]
    PassphraseNotHex { role: SsidRole },
    #[error(
        "{role}.channel: `0` (automatic channel selection) is not supported; use a fixed 2.4 GHz channel 1..=13"
    )]
    ChannelAutomatic { role: SsidRole },
    #[error("{role}.channel: `14` is 802.11b-only and not supported; use a 2.4 GHz channel 1..=13")]
    Channel14 { role: SsidRole },
    #[error(
        "{role}.channel: `{channel}` is not a 2.4 GHz channel; the appliance serves 2.4 GHz only, use 1..=13"
    )]
    ChannelNot24Ghz { role: SsidRole, channel: u8 },
    #[error(
        "{role}.hw_mode: `{}` is not supported; the appliance serves 2.4 GHz only (802.11b/g/n), use `g`",
        .value.escape_debug()
    )]
    HwModeUnsupported { role: SsidRole, value: String },
    #[error(
        "{role}.country: `{}` is not a country code; use two uppercase letters such as JP",
        .value.escape_debug()
    )]
    CountryInvalid { role: SsidRole, value: String },
    #[error(
        "{role}.radius: missing, required for 802.1x; add a [{role}.radius] table with server and secret"
    )]
    RadiusMissing { role: SsidRole },
    #[error(
        "{role}.radius: only used with 802.1x, not with {security}; remove it or use security = \"802.1x\""
    )]
    RadiusForbidden { role: SsidRole, security: Security },
    #[error(
        "{role}.radius.server: `{server}` is not a usable RADIUS server address; use a unicast IP address"
    )]
    RadiusServerInvalid { role: SsidRole, server: IpAddr },
    #[error("{role}.radius.port: `0` is not a port; use 1..=65535 (default 1812)")]
    RadiusPortZero { role: SsidRole },
    #[error("{role}.radius.secret: must not be empty; use a non-empty single-line secret")]
    RadiusSecretEmpty { role: SsidRole },
    #[error(
        "{role}.radius.secret: contains a newline or other control character; use a non-empty single-line secret"
    )]
    RadiusSecretInvalid { role: SsidRole },
    #[error(
        "{role}.radius.own_ip: `{own_ip}` is not a usable own address; use the appliance's unicast IP address"
    )]
    RadiusOwnIpInvalid { role: SsidRole, own_ip: IpAddr },
}

/// How clients authenticate, after validation.
enum Auth<'a> {
    Passphrase(&'a str),
    Psk(&'a str),
    Radius {
        server: IpAddr,
        port: u16,
        secret: &'a str,
        own_ip: Option<IpAddr>,
    },
}

/// A configuration that passed every check, with defaults applied.
struct Checked<'a> {
    ssid: &'a str,
    interface: &'a str,
    security: Security,
    cipher: Cipher,
    auth: Auth<'a>,
    channel: u8,
    ieee80211n: bool,
    country: &'a str,
    hidden: bool,
}

fn check_ssid(role: SsidRole, ssid: &str) -> Result<(), SsidError> {
    if ssid.is_empty() {
        return Err(SsidError::SsidEmpty { role });
    }
    // hostapd reads `ssid=` up to the end of the line: a newline would end the name early
    // and turn the rest into another (unchecked) setting.
    if ssid.chars().any(char::is_control) {
        return Err(SsidError::SsidControlCharacter {
            role,
            ssid: ssid.to_owned(),
        });
    }
    if ssid.len() > SSID_MAX_BYTES {
        return Err(SsidError::SsidTooLong {
            role,
            ssid: ssid.to_owned(),
            len: ssid.len(),
        });
    }
    Ok(())
}

/// Linux `dev_valid_name`: 1..IFNAMSIZ bytes, not `.`/`..`, no `/`, `:` or whitespace.
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= IFNAME_MAX_BYTES
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

fn check_passphrase(role: SsidRole, passphrase: &str) -> Result<Auth<'_>, SsidError> {
    if let Some(index) = passphrase.chars().position(|c| !(' '..='~').contains(&c)) {
        return Err(SsidError::PassphraseCharacter {
            role,
            position: index + 1,
        });
    }
    match passphrase.len() {
        len @ 0..8 => Err(SsidError::PassphraseTooShort { role, len }),
        8..=63 => Ok(Auth::Passphrase(passphrase)),
        64 if passphrase.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(Auth::Psk(passphrase)),
        64 => Err(SsidError::PassphraseNotHex { role }),
        len => Err(SsidError::PassphraseTooLong { role, len }),
    }
}

fn usable_unicast(addr: IpAddr) -> bool {
    let broadcast = matches!(addr, IpAddr::V4(v4) if v4.is_broadcast());
    !(addr.is_unspecified() || addr.is_multicast() || broadcast)
}

fn check_radius(role: SsidRole, radius: &RadiusConfig) -> Result<Auth<'_>, SsidError> {
    if !usable_unicast(radius.server) {
        return Err(SsidError::RadiusServerInvalid {
            role,
            server: radius.server,
        });
    }
    let port = radius.port.unwrap_or(DEFAULT_RADIUS_PORT);
    if port == 0 {
        return Err(SsidError::RadiusPortZero { role });
    }
    if radius.secret.is_empty() {
        return Err(SsidError::RadiusSecretEmpty { role });
    }
    if radius.secret.chars().any(char::is_control) {
        return Err(SsidError::RadiusSecretInvalid { role });
    }
    if let Some(own_ip) = radius.own_ip
        && !usable_unicast(own_ip)
    {
        return Err(SsidError::RadiusOwnIpInvalid { role, own_ip });
    }
    Ok(Auth::Radius {
        server: radius.server,
        port,
        secret: &radius.secret,
        own_ip: radius.own_ip,
    })
}

fn check(role: SsidRole, cfg: &SsidConfig) -> Result<Checked<'_>, SsidError> {
    check_ssid(role, &cfg.ssid)?;

    let interface = cfg.interface.as_deref().unwrap_or(role.default_interface());
    if !valid_ifname(interface) {
        return Err(SsidError::InterfaceInvalid {
            role,
            interface: interface.to_owned(),
        });
    }

    let security =
        Security::parse(&cfg.security).ok_or_else(|| SsidError::SecurityUnsupported {
            role,
            value: cfg.security.clone(),
        })?;

    let cipher = match &cfg.cipher {
        None => Cipher::Aes,
        Some(value) => Cipher::parse(value).ok_or_else(|| SsidError::CipherUnsupported {
            role,
            value: value.clone(),
        })?,
    };

    let auth = if security.is_psk() {
        if cfg.radius.is_some() {
            return Err(SsidError::RadiusForbidden { role, security });
        }
        let passphrase = cfg
            .passphrase
            .as_deref()
            .ok_or(SsidError::PassphraseMissing { role, security })?;
        check_passphrase(role, passphrase)?
    } else {
        if cfg.passphrase.is_some() {
            return Err(SsidError::PassphraseForbidden { role });
        }
        let radius = cfg
            .radius
            .as_ref()
            .ok_or(SsidError::RadiusMissing { role })?;
        check_radius(role, radius)?
    };

    let channel = match cfg.channel.unwrap_or(DEFAULT_CHANNEL) {
        0 => return Err(SsidError::ChannelAutomatic { role }),
        14 => return Err(SsidError::Channel14 { role }),
        channel @ 1..=13 => channel,
        channel => return Err(SsidError::ChannelNot24Ghz { role, channel }),
    };

    if let Some(hw_mode) = &cfg.hw_mode
        && !hw_mode.eq_ignore_ascii_case("g")
    {
        return Err(SsidError::HwModeUnsupported {
            role,
            value: hw_mode.clone(),
        });
    }

    let country = cfg.country.as_deref().unwrap_or(DEFAULT_COUNTRY);
    if !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase())) {
        return Err(SsidError::CountryInvalid {
            role,
            value: country.to_owned(),
        });
    }

    Ok(Checked {
        ssid: &cfg.ssid,
        interface,
        security,
        cipher,
        auth,
        channel,
        ieee80211n: cfg.ieee80211n.unwrap_or(true),
        country,
        hidden: cfg.hidden.unwrap_or(false),
    })
}

/// Validates `cfg` and renders a complete `hostapd.conf` for the SSID of `role`.
///
/// The text contains the passphrase (or PSK) or the RADIUS secret: write it with mode 0600.
pub fn render(role: SsidRole, cfg: &SsidConfig) -> Result<String, SsidError> {
    let c = check(role, cfg)?;
    let mut out = String::with_capacity(1024);
    // `fmt::Write` for `String` cannot fail.
    let mut line = |text: std::fmt::Arguments<'_>| {
        let _ = out.write_fmt(text);
        out.push('\n');
    };

    line(format_args!(
        "# hostapd.conf for {role}, generated by mimamori-appliance."
    ));
    line(format_args!(
        "# Do not edit: it is rewritten from the appliance configuration."
    ));
    line(format_args!(""));
    line(format_args!("interface={}", c.interface));
    line(format_args!("driver=nl80211"));
    line(format_args!("ctrl_interface=/var/run/hostapd"));
    line(format_args!(""));
    line(format_args!("ssid={}", c.ssid));
    line(format_args!("utf8_ssid=1"));
    line(format_args!("ignore_broadcast_ssid={}", u8::from(c.hidden)));
    line(format_args!("country_code={}", c.country));
    line(format_args!("ieee80211d=1"));
    line(format_args!(""));
    line(format_args!(
        "# 2.4 GHz only: 802.11b/g, with 802.11n (HT) when enabled."
    ));
    line(format_args!("hw_mode=g"));
    line(format_args!("channel={}", c.channel));
    if c.ieee80211n && c.cipher == Cipher::Tkip {
        line(format_args!(
            "# 802.11n is off: 802.11n does not allow TKIP-only security (hostapd would disable HT)."
        ));
        line(format_args!("# Use cipher = \"aes\" for 802.11n rates."));
        line(format_args!("ieee80211n=0"));
    } else if c.ieee80211n {
        line(format_args!("ieee80211n=1"));
        line(format_args!("wmm_enabled=1"));
    } else {
        line(format_args!("ieee80211n=0"));
    }
    line(format_args!(""));
    line(format_args!(
        "# Security: {}, {}.",
        c.security,
        c.cipher.hostapd()
    ));
    line(format_args!("auth_algs=1"));
    line(format_args!("macaddr_acl=0"));
    let wpa = c.security.wpa_bits();
    if c.security == Security::Ieee8021x {
        line(format_args!("ieee8021x=1"));
    }
    line(format_args!("wpa={wpa}"));
    let key_mgmt = if c.security.is_psk() {
        "WPA-PSK"
    } else {
        "WPA-EAP"
    };
    line(format_args!("wpa_key_mgmt={key_mgmt}"));
    if wpa & 1 != 0 {
        line(format_args!("wpa_pairwise={}", c.cipher.hostapd()));
    }
    if wpa & 2 != 0 {
        line(format_args!("rsn_pairwise={}", c.cipher.hostapd()));
    }
    match c.auth {
        Auth::Passphrase(passphrase) => line(format_args!("wpa_passphrase={passphrase}")),
        Auth::Psk(psk) => line(format_args!("wpa_psk={psk}")),
        Auth::Radius {
            server,
            port,
            secret,
            own_ip,
        } => {
            line(format_args!("auth_server_addr={server}"));
            line(format_args!("auth_server_port={port}"));
            line(format_args!("auth_server_shared_secret={secret}"));
            if let Some(own_ip) = own_ip {
                line(format_args!("own_ip_addr={own_ip}"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const PASS: &str = "correct horse battery";
    const SECRET: &str = "radius-secret-42";

    fn psk(security: &str) -> SsidConfig {
        SsidConfig {
            ssid: "Office".into(),
            interface: None,
            security: security.into(),
            cipher: None,
            passphrase: Some(PASS.into()),
            channel: None,
            hw_mode: None,
            ieee80211n: None,
            country: None,
            hidden: None,
            radius: None,
        }
    }

    fn eap() -> SsidConfig {
        SsidConfig {
            passphrase: None,
            radius: Some(RadiusConfig {
                server: "192.0.2.10".parse().unwrap(),
                port: None,
                secret: SECRET.into(),
                own_ip: None,
            }),
            ..psk("802.1x")
        }
    }

    /// Parses hostapd.conf into key=value pairs, asserting no key appears twice.
    fn keys(text: &str) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not key=value: {line}"));
            assert!(
                map.insert(k.to_owned(), v.to_owned()).is_none(),
                "duplicate key {k}"
            );
        }
        map
    }

    fn rendered(role: SsidRole, cfg: &SsidConfig) -> BTreeMap<String, String> {
        keys(&render(role, cfg).expect("renders"))
    }

    fn err(cfg: &SsidConfig) -> SsidError {
        let e = render(SsidRole::Ssid1, cfg).expect_err("must be rejected");
        let text = e.to_string();
        assert!(text.starts_with("ssid1."), "{text}");
        if let Some(p) = cfg.passphrase.as_deref().filter(|p| !p.is_empty()) {
            assert!(!text.contains(p), "passphrase leaked: {text}");
        }
        if let Some(secret) = cfg.radius.as_ref().map(|r| r.secret.as_str()) {
            assert!(
                secret.is_empty() || !text.contains(secret),
                "secret leaked: {text}"
            );
        }
        e
    }

    fn assert_common(m: &BTreeMap<String, String>, interface: &str) {
        assert_eq!(m["interface"], interface);
        assert_eq!(m["driver"], "nl80211");
        assert_eq!(m["ctrl_interface"], "/var/run/hostapd");
        assert_eq!(m["ssid"], "Office");
        assert_eq!(m["utf8_ssid"], "1");
        assert_eq!(m["country_code"], "JP");
        assert_eq!(m["ieee80211d"], "1");
        assert_eq!(m["hw_mode"], "g");
        assert_eq!(m["channel"], "6");
        assert_eq!(m["auth_algs"], "1");
        assert_eq!(m["ignore_broadcast_ssid"], "0");
        assert_eq!(m["macaddr_acl"], "0");
    }

    #[test]
    fn header_says_generated() {
        let text = render(SsidRole::Ssid1, &psk("wpa2-psk")).unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.starts_with('#') && first.contains("generated by mimamori-appliance"));
        assert!(
            text.lines()
                .take(3)
                .any(|l| l.starts_with('#') && l.contains("Do not edit"))
        );
    }

    #[test]
    fn wpa_psk() {
        let m = rendered(SsidRole::Ssid1, &psk("wpa-psk"));
        assert_common(&m, "wlan0");
        assert_eq!(m["wpa"], "1");
        assert_eq!(m["wpa_key_mgmt"], "WPA-PSK");
        assert_eq!(m["wpa_pairwise"], "CCMP");
        assert!(!m.contains_key("rsn_pairwise"));
        assert_eq!(m["wpa_passphrase"], PASS);
        assert!(!m.contains_key("wpa_psk"));
        assert!(!m.contains_key("ieee8021x"));
        assert_eq!(m["ieee80211n"], "1");
        assert_eq!(m["wmm_enabled"], "1");
    }

    #[test]
    fn wpa2_psk() {
        let m = rendered(SsidRole::Ssid2, &psk("WPA2-PSK"));
        assert_common(&m, "wlan1");
        assert_eq!(m["wpa"], "2");
        assert_eq!(m["wpa_key_mgmt"], "WPA-PSK");
        assert_eq!(m["rsn_pairwise"], "CCMP");
        assert!(!m.contains_key("wpa_pairwise"));
        assert_eq!(m["wpa_passphrase"], PASS);
    }

    #[test]
    fn wpa_wpa2_psk_both_spellings() {
        for spelling in ["wpa-wpa2-psk", "WPA/WPA2-PSK"] {
            let m = rendered(SsidRole::Ssid1, &psk(spelling));
            assert_common(&m, "wlan0");
            assert_eq!(m["wpa"], "3");
            assert_eq!(m["wpa_key_mgmt"], "WPA-PSK");
            assert_eq!(m["wpa_pairwise"], "CCMP");
            assert_eq!(m["rsn_pairwise"], "CCMP");
        }
    }

    #[test]
    fn ieee8021x() {
        let mut cfg = eap();
        let m = rendered(SsidRole::Ssid1, &cfg);
        assert_common(&m, "wlan0");
        assert_eq!(m["ieee8021x"], "1");
        assert_eq!(m["wpa"], "2");
        assert_eq!(m["wpa_key_mgmt"], "WPA-EAP");
        assert_eq!(m["rsn_pairwise"], "CCMP");
        assert_eq!(m["auth_server_addr"], "192.0.2.10");
        assert_eq!(m["auth_server_port"], "1812");
        assert_eq!(m["auth_server_shared_secret"], SECRET);
        assert!(!m.contains_key("own_ip_addr"));
        assert!(!m.contains_key("wpa_passphrase") && !m.contains_key("wpa_psk"));

        let radius = cfg.radius.as_mut().unwrap();
        radius.port = Some(11812);
        radius.own_ip = Some("192.0.2.1".parse().unwrap());
        cfg.cipher = Some("TKIP".into());
        let m = rendered(SsidRole::Ssid1, &cfg);
        assert_eq!(m["auth_server_port"], "11812");
        assert_eq!(m["own_ip_addr"], "192.0.2.1");
        assert_eq!(m["rsn_pairwise"], "TKIP");
    }

    #[test]
    fn tkip_turns_off_11n_with_a_comment() {
        for (security, wpa_key, rsn_key) in [
            ("wpa-psk", true, false),
            ("wpa2-psk", false, true),
            ("wpa-wpa2-psk", true, true),
        ] {
            let cfg = SsidConfig {
                cipher: Some("tkip".into()),
                ..psk(security)
            };
            let text = render(SsidRole::Ssid1, &cfg).unwrap();
            let m = keys(&text);
            assert_eq!(
                m.get("wpa_pairwise").map(String::as_str),
                wpa_key.then_some("TKIP")
            );
            assert_eq!(
                m.get("rsn_pairwise").map(String::as_str),
                rsn_key.then_some("TKIP")
            );
            assert_eq!(m["ieee80211n"], "0");
            assert!(
                text.lines()
                    .any(|l| l.starts_with('#') && l.contains("TKIP"))
            );
        }
    }

    #[test]
    fn ccmp_is_aes_and_options_apply() {
        let cfg = SsidConfig {
            interface: Some("wlp2s0".into()),
            cipher: Some("CCMP".into()),
            channel: Some(13),
            hw_mode: Some("g".into()),
            ieee80211n: Some(false),
            country: Some("US".into()),
            hidden: Some(true),
            ssid: "見守り Wi-Fi".into(),
            ..psk("wpa2-psk")
        };
        let m = rendered(SsidRole::Ssid2, &cfg);
        assert_eq!(m["interface"], "wlp2s0");
        assert_eq!(m["rsn_pairwise"], "CCMP");
        assert_eq!(m["channel"], "13");
        assert_eq!(m["ieee80211n"], "0");
        assert!(!m.contains_key("wmm_enabled"));
        assert_eq!(m["country_code"], "US");
        assert_eq!(m["ignore_broadcast_ssid"], "1");
        assert_eq!(m["ssid"], "見守り Wi-Fi");
    }

    #[test]
    fn psk_64_hex_is_raw_psk() {
        let hex = "0123456789abcdefABCDEF0123456789abcdef0123456789abcdef0123456789";
        assert_eq!(hex.len(), 64);
        let cfg = SsidConfig {
            passphrase: Some(hex.into()),
            ..psk("wpa2-psk")
        };
        let m = rendered(SsidRole::Ssid1, &cfg);
        assert_eq!(m["wpa_psk"], hex);
        assert!(!m.contains_key("wpa_passphrase"));

        let not_hex = "g".repeat(64);
        let cfg = SsidConfig {
            passphrase: Some(not_hex),
            ..psk("wpa2-psk")
        };
        assert!(matches!(err(&cfg), SsidError::PassphraseNotHex { .. }));
    }

    #[test]
    fn unsupported_security_names_allowed_values() {
        for bad in ["wep", "open", "wpa3-sae", "none", ""] {
            let e = err(&psk(bad));
            assert!(
                matches!(e, SsidError::SecurityUnsupported { .. }),
                "{bad}: {e:?}"
            );
            let text = e.to_string();
            assert!(
                text.contains("wpa-psk, wpa2-psk, wpa-wpa2-psk, 802.1x"),
                "{text}"
            );
        }
        assert_eq!(
            err(&psk("wep")).to_string(),
            "ssid1.security: `wep` is not supported; use one of wpa-psk, wpa2-psk, wpa-wpa2-psk, 802.1x"
        );
    }

    #[test]
    fn bad_cipher() {
        let cfg = SsidConfig {
            cipher: Some("tkip+aes".into()),
            ..psk("wpa2-psk")
        };
        let e = err(&cfg);
        assert!(matches!(e, SsidError::CipherUnsupported { .. }));
        assert!(e.to_string().contains("`tkip+aes`"));
    }

    #[test]
    fn channels() {
        let with = |ch| SsidConfig {
            channel: Some(ch),
            ..psk("wpa2-psk")
        };
        let e = err(&with(14));
        assert!(matches!(e, SsidError::Channel14 { .. }));
        assert!(e.to_string().contains("1..=13"));
        let e = err(&with(36));
        assert!(matches!(e, SsidError::ChannelNot24Ghz { channel: 36, .. }));
        assert!(e.to_string().contains("`36`") && e.to_string().contains("2.4 GHz only"));
        assert!(matches!(err(&with(0)), SsidError::ChannelAutomatic { .. }));
        for ok in [1, 11, 13] {
            assert_eq!(
                rendered(SsidRole::Ssid1, &with(ok))["channel"],
                ok.to_string()
            );
        }
    }

    #[test]
    fn hw_mode_a_is_rejected() {
        for bad in ["a", "ad", "b"] {
            let cfg = SsidConfig {
                hw_mode: Some(bad.into()),
                ..psk("wpa2-psk")
            };
            let e = err(&cfg);
            assert!(matches!(e, SsidError::HwModeUnsupported { .. }), "{bad}");
            assert!(e.to_string().contains("2.4 GHz only"));
            assert!(e.to_string().contains(&format!("`{bad}`")));
        }
    }

    #[test]
    fn passphrase_length_and_characters() {
        let with = |p: &str| SsidConfig {
            passphrase: Some(p.into()),
            ..psk("wpa-psk")
        };
        let e = err(&with("short12"));
        assert_eq!(
            e,
            SsidError::PassphraseTooShort {
                role: SsidRole::Ssid1,
                len: 7
            }
        );
        assert!(e.to_string().contains("8..=63"));
        let long = "x".repeat(65);
        assert!(matches!(
            err(&with(&long)),
            SsidError::PassphraseTooLong { len: 65, .. }
        ));
        let long = "y".repeat(100);
        assert!(matches!(
            err(&with(&long)),
            SsidError::PassphraseTooLong { len: 100, .. }
        ));
        assert!(matches!(
            err(&with("secret\npassword")),
            SsidError::PassphraseCharacter { position: 7, .. }
        ));
        assert!(matches!(
            err(&with("pässword")),
            SsidError::PassphraseCharacter { .. }
        ));
        // The limits themselves are accepted.
        assert_eq!(
            rendered(SsidRole::Ssid1, &with("12345678"))["wpa_passphrase"],
            "12345678"
        );
        let max = "~".repeat(63);
        assert_eq!(
            rendered(SsidRole::Ssid1, &with(&max))["wpa_passphrase"],
            max
        );
    }

    #[test]
    fn passphrase_and_radius_rules() {
        let missing = SsidConfig {
            passphrase: None,
            ..psk("wpa2-psk")
        };
        let e = err(&missing);
        assert!(matches!(
            e,
            SsidError::PassphraseMissing {
                security: Security::Wpa2Psk,
                ..
            }
        ));
        assert!(e.to_string().contains("wpa2-psk"));

        let no_radius = SsidConfig {
            radius: None,
            ..eap()
        };
        assert!(matches!(err(&no_radius), SsidError::RadiusMissing { .. }));

        let with_pass = SsidConfig {
            passphrase: Some(PASS.into()),
            ..eap()
        };
        let e = err(&with_pass);
        assert!(matches!(e, SsidError::PassphraseForbidden { .. }));
        assert!(e.to_string().contains("802.1x"));

        let radius_on_psk = SsidConfig {
            radius: eap().radius,
            ..psk("wpa2-psk")
        };
        assert!(matches!(
            err(&radius_on_psk),
            SsidError::RadiusForbidden { .. }
        ));
    }

    #[test]
    fn radius_values() {
        let with = |f: &dyn Fn(&mut RadiusConfig)| {
            let mut cfg = eap();
            f(cfg.radius.as_mut().unwrap());
            cfg
        };
        assert!(matches!(
            err(&with(&|r| r.secret.clear())),
            SsidError::RadiusSecretEmpty { .. }
        ));
        let e = err(&with(&|r| r.secret = format!("{SECRET}\nwpa=0")));
        assert!(matches!(e, SsidError::RadiusSecretInvalid { .. }));
        assert!(matches!(
            err(&with(&|r| r.port = Some(0))),
            SsidError::RadiusPortZero { .. }
        ));
        let e = err(&with(&|r| r.server = "0.0.0.0".parse().unwrap()));
        assert!(matches!(e, SsidError::RadiusServerInvalid { .. }));
        let e = err(&with(&|r| r.own_ip = Some("224.0.0.1".parse().unwrap())));
        assert!(matches!(e, SsidError::RadiusOwnIpInvalid { .. }));
        let m = rendered(
            SsidRole::Ssid1,
            &with(&|r| r.server = "2001:db8::1".parse().unwrap()),
        );
        assert_eq!(m["auth_server_addr"], "2001:db8::1");
    }

    #[test]
    fn ssid_rules() {
        let with = |s: &str| SsidConfig {
            ssid: s.into(),
            ..psk("wpa2-psk")
        };
        let long = "a".repeat(33);
        let e = err(&with(&long));
        assert!(matches!(e, SsidError::SsidTooLong { len: 33, .. }));
        assert!(e.to_string().contains("32"));
        // 11 three-byte characters = 33 bytes.
        assert!(matches!(
            err(&with(&"見".repeat(11))),
            SsidError::SsidTooLong { len: 33, .. }
        ));
        assert_eq!(
            rendered(SsidRole::Ssid1, &with(&"a".repeat(32)))["ssid"],
            "a".repeat(32)
        );

        let e = err(&with("Office\nwpa=0"));
        assert!(matches!(e, SsidError::SsidControlCharacter { .. }));
        assert!(!e.to_string().contains('\n'), "error text is one line");
        assert!(e.to_string().contains(r"Office\nwpa=0"));
        assert!(matches!(
            err(&with("tab\there")),
            SsidError::SsidControlCharacter { .. }
        ));
        assert!(matches!(err(&with("")), SsidError::SsidEmpty { .. }));
    }

    #[test]
    fn interface_and_country() {
        for bad in ["", "wlan0:1", "a/b", "wl an", "sixteen-chars-xx", ".."] {
            let cfg = SsidConfig {
                interface: Some(bad.into()),
                ..psk("wpa2-psk")
            };
            assert!(
                matches!(err(&cfg), SsidError::InterfaceInvalid { .. }),
                "{bad:?}"
            );
        }
        for bad in ["jp", "JPN", "J", "", "1A"] {
            let cfg = SsidConfig {
                country: Some(bad.into()),
                ..psk("wpa2-psk")
            };
            assert!(
                matches!(err(&cfg), SsidError::CountryInvalid { .. }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn errors_never_contain_the_passphrase() {
        let pass = "TopSecretPass";
        let cases = [
            SsidConfig {
                security: "wep".into(),
                ..psk("")
            },
            SsidConfig {
                channel: Some(14),
                ..psk("wpa2-psk")
            },
            SsidConfig {
                hw_mode: Some("a".into()),
                ..psk("wpa2-psk")
            },
            SsidConfig {
                ssid: "x".repeat(33),
                ..psk("wpa2-psk")
            },
            SsidConfig {
                security: "802.1x".into(),
                ..psk("")
            },
            SsidConfig {
                passphrase: Some(format!("{pass}\u{7f}")),
                ..psk("wpa2-psk")
            },
        ];
        for mut cfg in cases {
            if cfg.passphrase.as_deref() == Some(PASS) {
                cfg.passphrase = Some(pass.into());
            }
            let e = err(&cfg);
            assert!(!e.to_string().contains(pass), "{e}");
            assert!(!format!("{e:?}").contains(pass), "{e:?}");
            assert!(!format!("{cfg:?}").contains(pass), "{cfg:?}");
        }
        assert!(!format!("{:?}", eap()).contains(SECRET));
        let short = SsidConfig {
            passphrase: Some("hunter2".into()),
            ..psk("wpa2-psk")
        };
        assert!(!err(&short).to_string().contains("hunter2"));
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        ssid1: SsidConfig,
        ssid2: Option<SsidConfig>,
    }

    const EXAMPLE: &str = r#"
[ssid1]
ssid = "Office"
security = "wpa2-psk"
cipher = "aes"
passphrase = "correct horse battery"
channel = 11
hw_mode = "g"
ieee80211n = true
country = "JP"
hidden = false
interface = "wlan0"

[ssid2]
ssid = "Office-EAP"
security = "802.1X"

[ssid2.radius]
server = "192.0.2.10"
port = 1812
secret = "radius-secret-42"
own_ip = "192.0.2.1"
"#;

    #[test]
    fn toml_shape() {
        let doc: Doc = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(doc.ssid1.channel, Some(11));
        assert_eq!(doc.ssid1.passphrase.as_deref(), Some(PASS));
        let ssid2 = doc.ssid2.unwrap();
        let radius = ssid2.radius.as_ref().unwrap();
        assert_eq!(radius.server, "192.0.2.10".parse::<IpAddr>().unwrap());
        assert_eq!(radius.port, Some(1812));
        assert_eq!(radius.own_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(ssid2.cipher, None);

        let m = rendered(SsidRole::Ssid1, &doc.ssid1);
        assert_eq!(m["channel"], "11");
        let m = rendered(SsidRole::Ssid2, &ssid2);
        assert_eq!(m["wpa_key_mgmt"], "WPA-EAP");
        assert_eq!(m["interface"], "wlan1");

        // Minimal table: every optional key may be left out.
        let min: SsidConfig =
            toml::from_str("ssid = \"Shop\"\nsecurity = \"wpa-psk\"\npassphrase = \"12345678\"\n")
                .unwrap();
        assert_eq!(min.channel, None);
        assert_eq!(rendered(SsidRole::Ssid1, &min)["wpa"], "1");

        // Round trip through serialization.
        let text = toml::to_string(&ssid2).unwrap();
        assert_eq!(toml::from_str::<SsidConfig>(&text).unwrap(), ssid2);
    }

    #[test]
    fn toml_rejects_unknown_keys() {
        let typo = EXAMPLE.replace("hidden = false", "hiden = false");
        let e = toml::from_str::<Doc>(&typo).unwrap_err().to_string();
        assert!(e.contains("hiden"), "{e}");
        let radius_typo = EXAMPLE.replace("own_ip =", "own_addr =");
        let e = toml::from_str::<Doc>(&radius_typo).unwrap_err().to_string();
        assert!(e.contains("own_addr"), "{e}");
        // Types are checked too: a channel is a small number, not "auto".
        let auto = EXAMPLE.replace("channel = 11", "channel = \"auto\"");
        assert!(toml::from_str::<Doc>(&auto).is_err());
    }
}
