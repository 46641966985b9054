//! Rule bundles: arbitrary bytes are refused cleanly, and arbitrary bodies signed with the
//! trusted key (as a compromised or buggy publisher could make) are decoded and checked
//! without panicking; whatever opens has only safe paths.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mimamori_protocol::bundle::{self, MAGIC};
use ring::signature::Ed25519KeyPair;

fn key() -> &'static (Ed25519KeyPair, [u8; 32]) {
    static K: OnceLock<(Ed25519KeyPair, [u8; 32])> = OnceLock::new();
    K.get_or_init(|| {
        let pkcs8 = bundle::generate_key().expect("key");
        let pk = bundle::public_key(&pkcs8).expect("public key");
        (Ed25519KeyPair::from_pkcs8(&pkcs8).expect("key pair"), pk)
    })
}

fuzz_target!(|data: &[u8]| {
    let (kp, pk) = key();
    // as received
    let _ = bundle::open(data, pk);
    // as signed by the trusted key
    let mut file = MAGIC.to_vec();
    file.extend_from_slice(data);
    let sig = kp.sign(&file);
    file.extend_from_slice(sig.as_ref());
    if let Ok(b) = bundle::open(&file, pk) {
        for f in &b.files {
            assert!(!f.path.starts_with('/') && !f.path.split('/').any(|p| p == ".."));
        }
        assert!(bundle::valid_version(&b.version).is_ok());
    }
});
