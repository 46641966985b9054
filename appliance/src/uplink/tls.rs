//! TLS 1.3 client setup (rustls, ring): the cloud address, the trusted cloud CA, the client
//! certificate, and opening a connection.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::conn::ConnError;

/// A cloud address that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{addr}` is not host:port ({problem})")]
pub struct AddrError {
    addr: String,
    problem: &'static str,
}

/// The cloud's `host:port`; the host is also the name its certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudAddr {
    host: String,
    port: u16,
    name: ServerName<'static>,
}

impl CloudAddr {
    /// Parses `host:port`, `1.2.3.4:port` or `[v6]:port`.
    pub fn parse(s: &str) -> Result<CloudAddr, AddrError> {
        let err = |problem| AddrError {
            addr: s.to_string(),
            problem,
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, port) = rest.split_once(']').ok_or_else(|| err("missing `]`"))?;
            (
                host,
                port.strip_prefix(':').ok_or_else(|| err("missing port"))?,
            )
        } else {
            s.rsplit_once(':').ok_or_else(|| err("missing port"))?
        };
        if host.is_empty() {
            return Err(err("missing host"));
        }
        if host.contains(':') && !s.starts_with('[') {
            return Err(err("an IPv6 address needs brackets: [addr]:port"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| err("port is not a number 0-65535"))?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| err("host is not a valid DNS name or IP address"))?;
        Ok(CloudAddr {
            host: host.to_string(),
            port,
            name,
        })
    }

    /// DNS name or IP literal (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The name checked against the cloud's certificate.
    pub fn server_name(&self) -> ServerName<'static> {
        self.name.clone()
    }
}

impl fmt::Display for CloudAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Certificates or keys could not be loaded or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// A file holds no usable PEM certificate or key.
    #[error("{path}: {problem}")]
    Pem {
        /// The file (or what the PEM text is).
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error(transparent)]
    Config(#[from] rustls::Error),
}

/// Installs the ring provider as the process default (idempotent); configs built here name
/// the provider explicitly, so this only serves other users of rustls in the process.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads a file for TLS setup.
pub fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|cause| TlsError::Read {
        path: path.into(),
        cause,
    })
}

/// Trust anchors from PEM text (every certificate in it); `what` names the source in errors.
pub fn roots_from_pem(pem: &[u8], what: &Path) -> Result<RootCertStore, TlsError> {
    let bad = |problem: String| TlsError::Pem {
        path: what.into(),
        problem,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| bad(format!("bad PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("no CERTIFICATE in the file".into()));
    }
    Ok(roots)
}

/// The client certificate chain and key from PEM text.
pub fn client_identity(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert_path.into(),
            problem: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: cert_path.into(),
            problem: "no CERTIFICATE in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Pem {
        path: key_path.into(),
        problem: format!("no usable private key: {e}"),
    })?;
    Ok((certs, key))
}

/// A TLS 1.3-only client config trusting `roots`, with a client certificate if given.
pub fn client_config(
    roots: RootCertStore,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots);
    let config = match client {
        Some((certs, key)) => builder.with_client_auth_cert(certs, key)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A byte stream to the cloud: a kernel socket or a connection of the management stack.
pub trait CloudStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> CloudStream for T {}

/// The TCP connection under TLS, whichever stack carries it.
pub type BoxStream = Box<dyn CloudStream>;

/// How the appliance reaches the cloud (SPEC §3.4).
#[derive(Clone, Default)]
pub enum Transport {
    /// Kernel sockets: development, `replay --uplink`, boxes with a management NIC
    /// (`uplink.mode = "host"`).
    #[default]
    Host,
    /// The appliance's own address on the bridged segment, through smoltcp
    /// (`uplink.mode = "inband"`): names are resolved with the DNS server DHCP gave.
    InBand(crate::mgmt::Mgmt),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Host => "Host",
            Transport::InBand(_) => "InBand",
        })
    }
}

impl Transport {
    /// Opens a TCP connection to `addr` (resolving its name first).
    pub async fn dial(&self, addr: &CloudAddr) -> std::io::Result<BoxStream> {
        match self {
            Transport::Host => {
                let tcp = TcpStream::connect((addr.host.as_str(), addr.port)).await?;
                tcp.set_nodelay(true).ok();
                Ok(Box::new(tcp))
            }
            Transport::InBand(m) => {
                let io = |e: crate::mgmt::MgmtError| std::io::Error::other(e.to_string());
                let ips = m.resolve(&addr.host).await.map_err(io)?;
                let mut last = std::io::Error::other(format!("{} has no address", addr.host));
                for ip in ips {
                    match m.connect(std::net::SocketAddr::new(ip, addr.port)).await {
                        Ok(s) => return Ok(Box::new(s)),
                        Err(e) => last = io(e),
                    }
                }
                Err(last)
            }
        }
    }
}

/// Opens TCP and runs the TLS handshake, each bounded by `timeout`.
pub async fn connect(
    addr: &CloudAddr,
    transport: &Transport,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<TlsStream<BoxStream>, ConnError> {
    let name = addr.to_string();
    let tcp = tokio::time::timeout(timeout, transport.dial(addr))
        .await
        .map_err(|_| ConnError::Timeout {
            addr: name.clone(),
            what: "connecting",
            secs: timeout.as_secs(),
        })?
        .map_err(|cause| ConnError::Connect {
            addr: name.clone(),
            cause,
        })?;
    let connector = TlsConnector::from(config);
    tokio::time::timeout(timeout, connector.connect(addr.server_name(), tcp))
        .await
        .map_err(|_| ConnError::Timeout {
            addr: name.clone(),
            what: "in the TLS handshake",
            secs: timeout.as_secs(),
        })?
        .map_err(|cause| ConnError::Tls { addr: name, cause })
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn cloud_addresses() {
        let a = CloudAddr::parse("127.0.0.1:7443").unwrap();
        assert_eq!((a.host(), a.port()), ("127.0.0.1", 7443));
        assert!(matches!(a.server_name(), ServerName::IpAddress(_)));
        let a = CloudAddr::parse("[::1]:443").unwrap();
        assert_eq!((a.host(), a.to_string()), ("::1", "[::1]:443".to_string()));
        assert!(matches!(
            CloudAddr::parse("localhost:1").unwrap().server_name(),
            ServerName::DnsName(_)
        ));
        for bad in [
            "localhost",
            ":443",
            "host:x",
            "::1:443",
            "[::1]443",
            "a b:1",
        ] {
            assert!(CloudAddr::parse(bad).is_err(), "{bad}");
        }
    }
}
