//! Test helpers: temporary folders, sample events, a test PKI (rcgen) and TLS server configs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use protocol::bounded::{MetaValue, Name, Text};
use protocol::messages::{
    Action, Alert, Detection, Direction, FlowRef, IpProto, Mac, MetaPair, Signature, UnixMs,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// A folder under the system temp folder, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "mimamori-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An outbound alert whose sid is `2_000_000 + i`.
pub fn sample_alert(i: u32) -> Alert {
    Alert {
        time: UnixMs(1_700_000_000_000 + u64::from(i)),
        flow: FlowRef {
            proto: IpProto::Tcp,
            direction: Direction::Outbound,
            internal_ip: IpAddr::from([192, 168, 1, 10]),
            internal_port: Some(50_000),
            internal_mac: Mac([2, 0, 0, 0, 0, 1]),
            external_ip: IpAddr::from([203, 0, 113, 9]),
            external_port: Some(443),
        },
        detection: Detection::Signature(Signature {
            gid: 1,
            sid: 2_000_000 + i,
            rev: 1,
            msg: Text::truncated("ET MALWARE test"),
            classtype: Some(Name::truncated("trojan-activity")),
            severity: 1,
            metadata: vec![MetaPair {
                key: Name::truncated("signature_severity"),
                value: MetaValue::truncated("Major"),
            }],
        }),
        url: None,
        sni: None,
        dns_name: None,
        action: Action::Allowed,
    }
}

/// One CA that signs the cloud's server certificate and the device certificates.
pub struct TestPki {
    ca_params: CertificateParams,
    ca_key: KeyPair,
    ca_pem: String,
}

impl TestPki {
    pub fn new() -> TestPki {
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Mimamori test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = ca_params.self_signed(&ca_key).expect("ca").pem();
        TestPki {
            ca_params,
            ca_key,
            ca_pem,
        }
    }

    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.ca_params, &self.ca_key)
    }

    /// Signs a CSR for `device` (what the cloud does at activation).
    pub fn sign_csr(&self, csr_pem: &str, device: &str) -> String {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).expect("valid CSR");
        csr.params
            .distinguished_name
            .push(DnType::CommonName, device);
        csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        csr.signed_by(&self.issuer()).expect("sign").pem()
    }

    /// A device key and certificate, PEM.
    pub fn device_cert(&self, device: &str) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, device);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer()).expect("sign");
        (key.serialize_pem(), cert.pem())
    }

    /// A TLS 1.3 server for `localhost` and 127.0.0.1; client certificates optional but
    /// checked against the CA when presented.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let key = KeyPair::generate().expect("key");
        let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("params");
        let cert = params.signed_by(&key, &self.issuer()).expect("sign");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("ca der"))
            .expect("root");
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .allow_unauthenticated()
                .build()
                .expect("verifier");
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls13")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key der"),
            )
            .expect("server config");
        Arc::new(config)
    }
}
