//! Management addressing as the config file states it: `dhcp`, or a static address with an
//! optional gateway and DNS servers.

use std::net::Ipv4Addr;

use smoltcp::wire::Ipv4Cidr;

/// At most this many DNS servers are used (smoltcp's `dns-max-server-count-4`).
pub const MAX_DNS_SERVERS: usize = 4;

/// What the management stack needs to start.
#[derive(Debug, Clone)]
pub struct MgmtConfig {
    /// The appliance's own MAC on the bridged segment (unicast).
    pub mac: [u8; 6],
    pub addressing: Addressing,
    /// Sent to the DHCP server (option 12), so the appliance shows up by name in its leases.
    pub hostname: Option<String>,
}

/// How the management IPv4 address is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressing {
    /// DHCPv4: address, gateway and DNS servers from the lease, renewed and re-acquired.
    Dhcp,
    /// A fixed address; without a gateway only the local subnet is reachable.
    Static {
        cidr: Ipv4Cidr,
        gateway: Option<Ipv4Addr>,
        dns: Vec<Ipv4Addr>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    #[error(
        "management address `{0}`: expected `dhcp` or a unicast IPv4 address with its prefix length, like `198.18.0.5/24`"
    )]
    Address(String),
    #[error("management gateway `{0}` is not an IPv4 address")]
    Gateway(String),
    #[error("management gateway {gateway} is outside the subnet of {cidr}")]
    GatewayOutside { gateway: Ipv4Addr, cidr: Ipv4Cidr },
    #[error("management DNS server `{0}` is not an IPv4 address")]
    Dns(String),
    #[error("at most {MAX_DNS_SERVERS} management DNS servers, {0} given")]
    TooManyDns(usize),
    #[error("with `dhcp`, gateway and DNS servers come from the DHCP server: remove them")]
    DhcpWithStatic,
}

fn unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast())
}

fn ipv4(text: &str) -> Option<Ipv4Addr> {
    text.trim().parse().ok().filter(|a| unicast(*a))
}

impl Addressing {
    /// Parses the config text: `address` is `dhcp` or `a.b.c.d/len`; `gateway` and `dns`
    /// (empty strings ignored) belong to a static address only.
    pub fn parse<S: AsRef<str>>(
        address: &str,
        gateway: Option<&str>,
        dns: &[S],
    ) -> Result<Addressing, ConfigError> {
        let gateway = gateway.map(str::trim).filter(|g| !g.is_empty());
        let dns: Vec<&str> = dns
            .iter()
            .map(|d| d.as_ref().trim())
            .filter(|d| !d.is_empty())
            .collect();
        if address.trim().eq_ignore_ascii_case("dhcp") {
            if gateway.is_some() || !dns.is_empty() {
                return Err(ConfigError::DhcpWithStatic);
            }
            return Ok(Addressing::Dhcp);
        }
        let bad = || ConfigError::Address(address.into());
        let (addr, len) = address.trim().split_once('/').ok_or_else(bad)?;
        let addr = ipv4(addr).ok_or_else(bad)?;
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| (1..=32).contains(l))
            .ok_or_else(bad)?;
        let cidr = Ipv4Cidr::new(addr, len);
        let gateway = match gateway {
            None => None,
            Some(g) => {
                let g = ipv4(g).ok_or_else(|| ConfigError::Gateway(g.into()))?;
                if !cidr.contains_addr(&g) {
                    return Err(ConfigError::GatewayOutside { gateway: g, cidr });
                }
                Some(g)
            }
        };
        if dns.len() > MAX_DNS_SERVERS {
            return Err(ConfigError::TooManyDns(dns.len()));
        }
        let dns = dns
            .iter()
            .map(|d| ipv4(d).ok_or_else(|| ConfigError::Dns((*d).into())))
            .collect::<Result<_, _>>()?;
        Ok(Addressing::Static { cidr, gateway, dns })
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const NONE: &[&str] = &[];

    #[test]
    fn parse_dhcp_and_static() {
        assert_eq!(
            Addressing::parse(" DHCP ", None, NONE),
            Ok(Addressing::Dhcp)
        );
        let a = Addressing::parse(
            "198.18.0.5/24",
            Some("198.18.0.1"),
            &["198.18.0.1", " 198.18.0.2"],
        );
        assert_eq!(
            a,
            Ok(Addressing::Static {
                cidr: Ipv4Cidr::new(Ipv4Addr::new(198, 18, 0, 5), 24),
                gateway: Some(Ipv4Addr::new(198, 18, 0, 1)),
                dns: vec![Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2)],
            })
        );
        let a = Addressing::parse("198.18.0.5/32", Some(""), &[""]);
        assert!(
            matches!(a, Ok(Addressing::Static { gateway: None, ref dns, .. }) if dns.is_empty())
        );
    }

    #[test]
    fn parse_errors_name_the_fault() {
        for bad in [
            "198.18.0.5",
            "198.18.0.5/0",
            "198.18.0.5/33",
            "nope/24",
            "255.255.255.255/24",
            "",
        ] {
            assert_eq!(
                Addressing::parse(bad, None, NONE),
                Err(ConfigError::Address(bad.into()))
            );
        }
        let e = Addressing::parse("198.18.0.5/24", Some("198.19.0.1"), NONE).unwrap_err();
        assert_eq!(
            e.to_string(),
            "management gateway 198.19.0.1 is outside the subnet of 198.18.0.5/24"
        );
        assert_eq!(
            Addressing::parse("198.18.0.5/24", Some("gw"), NONE),
            Err(ConfigError::Gateway("gw".into()))
        );
        assert_eq!(
            Addressing::parse("198.18.0.5/24", None, &["1.2.3"]),
            Err(ConfigError::Dns("1.2.3".into()))
        );
        assert_eq!(
            Addressing::parse("198.18.0.5/24", None, &["198.18.0.1"; 5]),
            Err(ConfigError::TooManyDns(5))
        );
        assert_eq!(
            Addressing::parse("dhcp", Some("198.18.0.1"), NONE),
            Err(ConfigError::DhcpWithStatic)
        );
    }
}
