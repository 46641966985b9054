//! Activation: redeem a one-time code for a device certificate (see
//! `protocol::messages::activation`).
//!
//! ```text
//! appliance                                  cloud
//!   TLS 1.3, server checked against --ca, no client certificate
//!   Hello { device: "activation" }     →
//!                                      ←     HelloAck | Refused
//!   Activate { code, csr_pem }         →
//!                                      ←     Activated { device, cert_pem, ca_pem } | Refused
//! ```
//!
//! The key pair (ECDSA P-256) is made here and never leaves the appliance; only the CSR does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use protocol::bounded::{Name, Text};
use protocol::messages::{
    ACTIVATION_DEVICE, Activate, Activated, DeviceId, Hello, Pem, RefuseReason,
};
use protocol::{DownMsg, HandshakeError, UpMsg, check_reply};

use super::conn::{self, ConnError, FrameReader};
use super::identity::{IdentityError, StateDir, StoredIdentity};
use super::tls::{self, CloudAddr, TlsError};

/// Time limit of each step (connect, handshake, each answer).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// What an activation needs.
#[derive(Debug, Clone)]
pub struct ActivateOptions {
    /// The cloud, `host:port`.
    pub cloud: CloudAddr,
    /// The one-time activation code.
    pub code: String,
    /// Where the identity is stored.
    pub state_dir: PathBuf,
    /// PEM file of the CA that signed the cloud's server certificate.
    pub ca_file: PathBuf,
    /// Replace an existing identity.
    pub force: bool,
    /// Firmware version announced in `Hello`.
    pub firmware: String,
    /// Rule-bundle version announced in `Hello`.
    pub rules_version: String,
    /// Kernel sockets or the management stack.
    pub transport: tls::Transport,
}

/// Activation failed; nothing was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivateError {
    /// The state folder, the CA file or the stored files.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The CA file or the certificate received.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The connection failed.
    #[error(transparent)]
    Conn(#[from] ConnError),
    /// The cloud refused the activation.
    #[error("the cloud at {cloud} refused the activation: {reason}")]
    Refused {
        /// The cloud address.
        cloud: String,
        /// Its reason.
        reason: RefuseReason,
    },
    /// The version handshake failed.
    #[error("activation at {cloud}: {cause}")]
    Handshake {
        /// The cloud address.
        cloud: String,
        /// The fault.
        cause: HandshakeError,
    },
    /// The cloud answered something other than `Activated` or `Refused`.
    #[error("activation at {cloud}: the cloud sent {got} instead of Activated")]
    Unexpected {
        /// The cloud address.
        cloud: String,
        /// What it sent.
        got: &'static str,
    },
    /// A value does not fit the protocol (code too long, bad firmware string).
    #[error("{0}")]
    Invalid(String),
    /// The key pair or CSR could not be made.
    #[error("cannot create the key pair or CSR: {0}")]
    Key(rcgen::Error),
    /// The certificate the cloud sent does not match the key or cannot be used.
    #[error("the device certificate from {cloud} is unusable: {cause}")]
    BadCertificate {
        /// The cloud address.
        cloud: String,
        /// Why.
        cause: TlsError,
    },
}

/// A fresh key pair and its certificate signing request, PEM.
pub struct KeyAndCsr {
    /// PKCS#8 private key.
    pub key_pem: String,
    /// PKCS#10 request (empty subject; the cloud decides the identity).
    pub csr_pem: String,
}

/// Makes an ECDSA P-256 key pair and a CSR for it.
pub fn key_and_csr() -> Result<KeyAndCsr, rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key)?;
    Ok(KeyAndCsr {
        key_pem: key.serialize_pem(),
        csr_pem: csr.pem()?,
    })
}

/// Name of a cloud message kind, for errors.
pub fn down_name(msg: &DownMsg) -> &'static str {
    match msg {
        DownMsg::HelloAck(_) => "HelloAck",
        DownMsg::Refused(_) => "Refused",
        DownMsg::Ack(_) => "Ack",
        DownMsg::Command(_) => "Command",
        DownMsg::Activated(_) => "Activated",
        DownMsg::BundleChunk(_) => "BundleChunk",
    }
}

/// Runs the activation and stores the identity; returns the device id.
pub async fn activate(opts: &ActivateOptions) -> Result<DeviceId, ActivateError> {
    let state = StateDir::new(&opts.state_dir);
    state.check_overwrite(opts.force)?;
    let ca_pem = tls::read_file(&opts.ca_file)?;
    let roots = tls::roots_from_pem(&ca_pem, &opts.ca_file)?;
    let config = tls::client_config(roots.clone(), None)?;
    let code = Text::new(opts.code.trim())
        .map_err(|e| ActivateError::Invalid(format!("activation code: {e}")))?;
    let hello = Hello::new(
        DeviceId::new(ACTIVATION_DEVICE).map_err(|e| ActivateError::Invalid(e.to_string()))?,
        Name::new(opts.firmware.as_str())
            .map_err(|e| ActivateError::Invalid(format!("firmware version: {e}")))?,
        Name::new(opts.rules_version.as_str())
            .map_err(|e| ActivateError::Invalid(format!("rules version: {e}")))?,
    );
    let fresh = key_and_csr().map_err(ActivateError::Key)?;
    let csr_pem = Pem::new(fresh.csr_pem.as_str())
        .map_err(|e| ActivateError::Invalid(format!("CSR: {e}")))?;

    let activated = exchange(
        &opts.cloud,
        &opts.transport,
        config,
        hello,
        Activate { code, csr_pem },
    )
    .await?;
    let cloud = opts.cloud.to_string();
    // the key must match the certificate, or every later connection would fail
    let client = tls::client_identity(
        activated.cert_pem.as_bytes(),
        fresh.key_pem.as_bytes(),
        Path::new("device certificate"),
        Path::new("device key"),
    )
    .map_err(|cause| ActivateError::BadCertificate {
        cloud: cloud.clone(),
        cause,
    })?;
    tls::client_config(roots, Some(client))
        .map_err(|cause| ActivateError::BadCertificate { cloud, cause })?;
    state.store(&StoredIdentity {
        device: &activated.device,
        cloud: &opts.cloud,
        key_pem: &fresh.key_pem,
        cert_pem: &activated.cert_pem,
        cloud_ca_pem: &ca_pem,
        device_ca_pem: &activated.ca_pem,
    })?;
    tracing::info!(device = %activated.device, cloud = %opts.cloud, dir = %opts.state_dir.display(), "activated");
    Ok(activated.device)
}

/// The network part: Hello, Activate, and the answers.
async fn exchange(
    addr: &CloudAddr,
    transport: &tls::Transport,
    config: std::sync::Arc<rustls::ClientConfig>,
    hello: Hello,
    activate: Activate,
) -> Result<Activated, ActivateError> {
    let cloud = addr.to_string();
    let mut stream = tls::connect(addr, transport, config, STEP_TIMEOUT).await?;
    conn::send(&mut stream, &UpMsg::Hello(hello), &cloud).await?;
    let mut reader = FrameReader::new(stream, &cloud);
    let reply = answer(&mut reader, &cloud, "waiting for HelloAck").await?;
    check_reply(&reply).map_err(|cause| match cause {
        HandshakeError::Refused(reason) => ActivateError::Refused {
            cloud: cloud.clone(),
            reason,
        },
        cause => ActivateError::Handshake {
            cloud: cloud.clone(),
            cause,
        },
    })?;
    let mut stream = reader.into_inner();
    conn::send(&mut stream, &UpMsg::Activate(activate), &cloud).await?;
    let mut reader = FrameReader::new(stream, &cloud);
    match answer(&mut reader, &cloud, "waiting for Activated").await? {
        DownMsg::Activated(activated) => Ok(activated),
        DownMsg::Refused(refused) => Err(ActivateError::Refused {
            cloud,
            reason: refused.reason,
        }),
        other => Err(ActivateError::Unexpected {
            cloud,
            got: down_name(&other),
        }),
    }
}

async fn answer<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    cloud: &str,
    what: &'static str,
) -> Result<DownMsg, ConnError> {
    tokio::time::timeout(STEP_TIMEOUT, reader.next())
        .await
        .map_err(|_| ConnError::Timeout {
            addr: cloud.to_string(),
            what,
            secs: STEP_TIMEOUT.as_secs(),
        })?
}
