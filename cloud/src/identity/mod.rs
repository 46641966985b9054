//! Device identity: the cloud's CA (rcgen), the ingest server certificate, device
//! certificates issued from activation requests, and activation codes.
//!
//! Files in the data directory: `ca.key`, `ca.crt` (the CA appliances trust and that signs
//! device certificates), `server.key`, `server.crt` (re-issued at each start for the
//! configured names).

use std::path::Path;
use std::sync::Arc;

use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use sha2::{Digest, Sha256};

/// Why identity material could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("the certificate signing request is not valid: {0}")]
    BadCsr(String),
}

/// The CA and the server's TLS configuration.
pub struct Identity {
    ca_key: KeyPair,
    ca_params: CertificateParams,
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

fn read(p: &Path) -> Result<Option<String>, IdentityError> {
    match std::fs::read_to_string(p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IdentityError::Io {
            path: p.display().to_string(),
            source: e,
        }),
    }
}

fn write_private(p: &Path, s: &str) -> Result<(), IdentityError> {
    write_secret(p, s.as_bytes()).map_err(|e| IdentityError::Io {
        path: p.display().to_string(),
        source: e,
    })
}

/// Writes a secret file readable by the owner only (mode 0600), synced to disk.
pub(crate) fn write_secret(p: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(p)?;
    f.write_all(data)?;
    f.sync_all()
}

fn ca_params() -> Result<CertificateParams, IdentityError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Mimamori device CA");
    dn.push(DnType::OrganizationName, "Mimamori");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365 * 20);
    Ok(p)
}

fn serial() -> SerialNumber {
    let mut b = [0u8; 16];
    rand::rng().fill(&mut b);
    // positive and without a leading zero byte, so the DER encoding (and so the serial the
    // TLS layer reports) is exactly these 16 bytes
    b[0] = (b[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&b)
}

impl Identity {
    /// Load the CA from the data directory (creating it on first start) and issue the
    /// server certificate for `names`.
    pub fn load_or_create(data_dir: &Path, names: &[String]) -> Result<Identity, IdentityError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let key_path = data_dir.join("ca.key");
        let crt_path = data_dir.join("ca.crt");
        let (ca_key, ca_pem) = match (read(&key_path)?, read(&crt_path)?) {
            (Some(k), Some(c)) => (KeyPair::from_pem(&k)?, c),
            _ => {
                let key = KeyPair::generate()?;
                let cert = ca_params()?.self_signed(&key)?;
                write_private(&key_path, &key.serialize_pem())?;
                std::fs::write(&crt_path, cert.pem()).map_err(|e| IdentityError::Io {
                    path: crt_path.display().to_string(),
                    source: e,
                })?;
                (key, cert.pem())
            }
        };
        let issuer_params = ca_params_from_pem(&ca_pem)?;
        // server certificate
        let mut all: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        for n in names {
            if !all.contains(n) {
                all.push(n.clone());
            }
        }
        let mut sp = CertificateParams::new(all)?;
        sp.distinguished_name
            .push(DnType::CommonName, "Mimamori ingest");
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        sp.serial_number = Some(serial());
        sp.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        sp.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(825);
        let server_key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&issuer_params, &ca_key);
        let server_cert = sp.signed_by(&server_key, &issuer)?;
        write_private(&data_dir.join("server.key"), &server_key.serialize_pem())?;
        std::fs::write(data_dir.join("server.crt"), server_cert.pem()).map_err(|e| {
            IdentityError::Io {
                path: "server.crt".into(),
                source: e,
            }
        })?;
        // TLS: server authenticated; client certificates optional at the TLS layer
        // (activation comes without one) and checked against the CA when present.
        let ca_der = rustls_pemfile::certs(&mut ca_pem.as_bytes())
            .next()
            .ok_or_else(|| IdentityError::Tls("ca.crt holds no certificate".into()))?
            .map_err(|e| IdentityError::Tls(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(ca_der.clone())
            .map_err(|e| IdentityError::Tls(e.to_string()))?;
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .allow_unauthenticated()
            .build()
            .map_err(|e| IdentityError::Tls(e.to_string()))?;
        let key_der = rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der())
            .map_err(|e| IdentityError::Tls(e.to_string()))?;
        let mut cfg =
            rustls::ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
                .with_client_cert_verifier(verifier)
                .with_single_cert(vec![server_cert.der().clone(), ca_der], key_der)
                .map_err(|e| IdentityError::Tls(e.to_string()))?;
        cfg.alpn_protocols = vec![b"mimamori/1".to_vec()];
        Ok(Identity {
            ca_key,
            ca_params: issuer_params,
            ca_pem,
            server_config: Arc::new(cfg),
        })
    }

    /// Issue a device certificate for a CSR. Only the CSR's public key is used: the name,
    /// validity and usages are the cloud's. Returns (certificate PEM, serial hex).
    pub fn issue_device_cert(
        &self,
        device_id: &str,
        csr_pem: &str,
    ) -> Result<(String, String), IdentityError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| IdentityError::BadCsr(e.to_string()))?;
        let mut p = CertificateParams::new(vec![device_id.to_string()])?;
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, device_id);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let sn = serial();
        let hex = hex::encode(sn.as_ref());
        p.serial_number = Some(sn);
        p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365 * 10);
        csr.params = p;
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = csr.signed_by(&issuer)?;
        Ok((cert.pem(), hex))
    }
}

impl Identity {
    /// A device certificate for `device_id` (DER) and its serial (hex), made here with a
    /// fresh key: what a session sees after mutual TLS, for tests and the `ingest` fuzz
    /// target.
    pub fn device_cert_der(&self, device_id: &str) -> Result<(Vec<u8>, String), IdentityError> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(vec![device_id.to_string()])?;
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, device_id);
        let csr = p
            .serialize_request(&key)?
            .pem()
            .map_err(|e| IdentityError::BadCsr(e.to_string()))?;
        let (pem, serial) = self.issue_device_cert(device_id, &csr)?;
        let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| IdentityError::BadCsr(e.to_string()))?
            .1
            .contents;
        Ok((der, serial))
    }
}

fn ca_params_from_pem(_pem: &str) -> Result<CertificateParams, IdentityError> {
    // The issuer needs the CA's distinguished name and key identifier method; both are
    // fixed by `ca_params`, so rebuilding them is exact.
    ca_params()
}

/// A fresh activation code: 16 characters from an unambiguous alphabet, in groups of 4.
pub fn new_activation_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let mut s = String::with_capacity(19);
    for i in 0..16 {
        if i > 0 && i % 4 == 0 {
            s.push('-');
        }
        s.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    s
}

/// How codes are stored: only their hash.
pub fn code_hash(code: &str) -> String {
    let norm: String = code
        .trim()
        .to_ascii_uppercase()
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .collect();
    hex::encode(Sha256::digest(norm.as_bytes()))
}

/// Device id and serial (hex) of a client certificate.
pub fn peer_identity(der: &[u8]) -> Option<(String, String)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let serial = hex::encode(cert.raw_serial());
    Some((cn, serial))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn issues_device_certs_from_csrs() {
        let dir = std::env::temp_dir().join(format!("mimamori-id-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let id = Identity::load_or_create(&dir, &["ingest.example".into()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "someone-else");
        let csr = p.serialize_request(&key).unwrap().pem().unwrap();
        let (pem, serial) = id.issue_device_cert("dev-0007", &csr).unwrap();
        let der = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        // the name is the cloud's, not the one the CSR asked for
        assert_eq!(peer_identity(&der), Some(("dev-0007".to_string(), serial)));
        assert!(id.issue_device_cert("dev-0008", "not a csr").is_err());
        // the CA survives a restart
        let again = Identity::load_or_create(&dir, &[]).unwrap();
        assert_eq!(again.ca_pem, id.ca_pem);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn codes() {
        let c = new_activation_code();
        assert_eq!(c.len(), 19);
        assert_eq!(code_hash(&c), code_hash(&c.to_lowercase().replace('-', "")));
        assert_ne!(code_hash(&c), code_hash(&new_activation_code()));
    }
}
