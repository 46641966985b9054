//! Activation: the one exchange that happens without a client certificate.
//!
//! A new appliance connects with TLS (server authenticated by the cloud's CA, no client
//! certificate), sends `Hello` with the placeholder device id [`ACTIVATION_DEVICE`], then
//! [`Activate`] carrying the one-time code and a PEM certificate signing request for the
//! key pair it just created. The cloud answers [`Activated`] (its device id and
//! certificate) or `Refused`, and closes. Every later connection uses mutual TLS.

use serde::{Deserialize, Serialize};

use super::common::DeviceId;
use crate::bounded::{BoundedString, Text};
use crate::error::FrameError;
use crate::validate::Validate;

/// Device id an appliance announces in `Hello` before it has one.
pub const ACTIVATION_DEVICE: &str = "activation";

/// Longest PEM document carried (a certificate or a CSR).
pub const MAX_PEM_LEN: usize = 8192;

/// A PEM document.
pub type Pem = BoundedString<MAX_PEM_LEN>;

/// Appliance → cloud: redeem an activation code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activate {
    /// The one-time code the operator handed out.
    pub code: Text,
    /// PKCS#10 certificate signing request, PEM.
    pub csr_pem: Pem,
}

impl Validate for Activate {
    fn validate(&self) -> Result<(), FrameError> {
        self.code.check("activate.code")?;
        self.csr_pem.check("activate.csr_pem")
    }
}

/// Cloud → appliance: the device certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activated {
    /// The identity the certificate carries.
    pub device: DeviceId,
    /// Device certificate, PEM.
    pub cert_pem: Pem,
    /// The device CA, PEM (the cloud checks client certificates against it).
    pub ca_pem: Pem,
}

impl Validate for Activated {
    fn validate(&self) -> Result<(), FrameError> {
        self.device.check("activated.device")?;
        self.cert_pem.check("activated.cert_pem")?;
        self.ca_pem.check("activated.ca_pem")
    }
}
