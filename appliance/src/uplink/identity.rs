//! The device identity in the state folder, written once by activation:
//!
//! | file | content |
//! |---|---|
//! | `device.key` | the device's private key, PEM (PKCS#8), mode 0600 |
//! | `device.crt` | the device certificate the cloud signed, PEM |
//! | `cloud-ca.crt` | the CA the cloud's server certificate is checked against |
//! | `device-ca.crt` | the cloud's device CA (informational) |
//! | `identity.toml` | device id and cloud address; written last, so its presence means activated |
//! | `spool.redb` | the spool (see [`spool`](super::spool)) |

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use serde::{Deserialize, Serialize};

use protocol::messages::DeviceId;

use super::tls::{self, CloudAddr, TlsError};

/// File names inside the state folder.
pub const KEY_FILE: &str = "device.key";
/// The device certificate.
pub const CERT_FILE: &str = "device.crt";
/// The trusted cloud CA.
pub const CLOUD_CA_FILE: &str = "cloud-ca.crt";
/// The cloud's device CA, as sent at activation.
pub const DEVICE_CA_FILE: &str = "device-ca.crt";
/// Device id and cloud address.
pub const IDENTITY_FILE: &str = "identity.toml";

/// `identity.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    /// The device id the cloud assigned (it is also in the certificate).
    pub device: String,
    /// The cloud address used at activation, `host:port`.
    pub cloud: String,
    /// When the appliance was activated, Unix seconds.
    #[serde(default)]
    pub activated_at: u64,
}

/// The identity could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The folder has no identity yet.
    #[error(
        "{dir} holds no device identity; run `mimamori-appliance activate --state-dir {dir}` first"
    )]
    NotActivated {
        /// The state folder.
        dir: PathBuf,
    },
    /// An identity exists and would be overwritten.
    #[error("{dir} already holds the identity of device {device}; pass --force to replace it")]
    AlreadyActivated {
        /// The state folder.
        dir: PathBuf,
        /// The existing device id.
        device: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// `identity.toml` is damaged.
    #[error("{path}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A loaded identity, ready to connect.
#[derive(Clone)]
pub struct Identity {
    /// The device id.
    pub device: DeviceId,
    /// The cloud address stored at activation.
    pub cloud: CloudAddr,
    /// TLS 1.3 config with the client certificate, trusting the cloud CA.
    pub tls: Arc<ClientConfig>,
}

/// The state folder of one appliance.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The folder (not created).
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A file inside the folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Whether an identity was stored.
    pub fn is_activated(&self) -> bool {
        self.file(IDENTITY_FILE).is_file()
    }

    /// Reads `identity.toml`.
    pub fn read_identity_file(&self) -> Result<IdentityFile, IdentityError> {
        let path = self.file(IDENTITY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IdentityError::NotActivated {
                    dir: self.root.clone(),
                });
            }
            r => r.map_err(|cause| IdentityError::Io {
                path: path.clone(),
                cause,
            })?,
        };
        toml::from_str(&text).map_err(|e| IdentityError::Invalid {
            path,
            problem: e.to_string(),
        })
    }

    /// Fails if an identity exists (unless `force`).
    pub fn check_overwrite(&self, force: bool) -> Result<(), IdentityError> {
        if force || !self.is_activated() {
            return Ok(());
        }
        let device = self
            .read_identity_file()
            .map(|f| f.device)
            .unwrap_or_else(|_| "?".into());
        Err(IdentityError::AlreadyActivated {
            dir: self.root.clone(),
            device,
        })
    }

    /// Loads the identity; `cloud` overrides the stored address.
    pub fn load(&self, cloud: Option<&str>) -> Result<Identity, IdentityError> {
        let file = self.read_identity_file()?;
        let id_path = self.file(IDENTITY_FILE);
        let invalid = |problem: String| IdentityError::Invalid {
            path: id_path.clone(),
            problem,
        };
        let device = DeviceId::new(&file.device).map_err(|e| invalid(format!("device: {e}")))?;
        let cloud = match cloud {
            Some(c) => CloudAddr::parse(c).map_err(|e| invalid(format!("cloud override: {e}")))?,
            None => CloudAddr::parse(&file.cloud).map_err(|e| invalid(format!("cloud: {e}")))?,
        };
        let ca_path = self.file(CLOUD_CA_FILE);
        let roots = tls::roots_from_pem(&tls::read_file(&ca_path)?, &ca_path)?;
        let (cert_path, key_path) = (self.file(CERT_FILE), self.file(KEY_FILE));
        let client = tls::client_identity(
            &tls::read_file(&cert_path)?,
            &tls::read_file(&key_path)?,
            &cert_path,
            &key_path,
        )?;
        let tls = tls::client_config(roots, Some(client))?;
        Ok(Identity { device, cloud, tls })
    }

    /// Writes everything activation produced; `identity.toml` last.
    pub fn store(&self, stored: &StoredIdentity<'_>) -> Result<(), IdentityError> {
        crate::perms::create_dir_private(&self.root).map_err(|cause| IdentityError::Io {
            path: self.root.clone(),
            cause,
        })?;
        self.write(KEY_FILE, stored.key_pem.as_bytes())?;
        self.write(CERT_FILE, stored.cert_pem.as_bytes())?;
        self.write(CLOUD_CA_FILE, stored.cloud_ca_pem)?;
        self.write(DEVICE_CA_FILE, stored.device_ca_pem.as_bytes())?;
        let file = IdentityFile {
            device: stored.device.to_string(),
            cloud: stored.cloud.to_string(),
            activated_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let text = toml::to_string(&file).map_err(|e| IdentityError::Invalid {
            path: self.file(IDENTITY_FILE),
            problem: e.to_string(),
        })?;
        let text = format!("# Written by `mimamori-appliance activate`.\n{text}");
        self.write(IDENTITY_FILE, text.as_bytes())
    }

    /// Writes a file atomically (temporary file, fsync, rename), mode 0600: the key, and
    /// the files that name the device and its cloud.
    fn write(&self, name: &str, data: &[u8]) -> Result<(), IdentityError> {
        let path = self.file(name);
        let tmp = self.file(&format!(".{name}.tmp"));
        let io = |cause| IdentityError::Io {
            path: path.clone(),
            cause,
        };
        let _ = std::fs::remove_file(&tmp);
        let mut f = crate::perms::create_private(&tmp).map_err(io)?;
        f.write_all(data).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io)
    }
}

/// What activation stores.
pub struct StoredIdentity<'a> {
    /// The device id the cloud assigned.
    pub device: &'a DeviceId,
    /// The cloud address used.
    pub cloud: &'a CloudAddr,
    /// The private key, PEM.
    pub key_pem: &'a str,
    /// The device certificate, PEM.
    pub cert_pem: &'a str,
    /// The cloud CA given by the operator, as read.
    pub cloud_ca_pem: &'a [u8],
    /// The device CA the cloud sent.
    pub device_ca_pem: &'a str,
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::uplink::testutil::{TempDir, TestPki};

    #[test]
    fn store_then_load() {
        let dir = TempDir::new("identity");
        let state = StateDir::new(dir.path().join("state"));
        assert!(matches!(
            state.load(None),
            Err(IdentityError::NotActivated { .. })
        ));
        let pki = TestPki::new();
        let (key_pem, cert_pem) = pki.device_cert("MM-000007");
        let device = DeviceId::new("MM-000007").unwrap();
        let cloud = CloudAddr::parse("127.0.0.1:7443").unwrap();
        state
            .store(&StoredIdentity {
                device: &device,
                cloud: &cloud,
                key_pem: &key_pem,
                cert_pem: &cert_pem,
                cloud_ca_pem: pki.ca_pem().as_bytes(),
                device_ca_pem: &pki.ca_pem(),
            })
            .unwrap();
        let id = state.load(None).unwrap();
        assert_eq!(
            (id.device.as_str(), id.cloud.to_string()),
            ("MM-000007", "127.0.0.1:7443".to_string())
        );
        let id = state.load(Some("localhost:9")).unwrap();
        assert_eq!(id.cloud.to_string(), "localhost:9");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(state.file(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let e = state.check_overwrite(false).unwrap_err().to_string();
        assert!(
            e.contains("already holds the identity of device MM-000007"),
            "{e}"
        );
        state.check_overwrite(true).unwrap();
    }
}
