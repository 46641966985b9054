//! Rule bundles on the cloud side: the Ed25519 signing key, publishing (sign, store,
//! offer to every appliance) and serving the file in chunks over the uplink.
//!
//! The key is `bundle-signing.pk8` in the data folder (created at first use, mode 0600);
//! appliances trust its public key (`admin rules key`, the appliance's `uplink.bundle_key`).
//! Published files are `bundles/<version>.bundle`; the current one is named in the store's
//! meta table.

use std::path::{Path, PathBuf};

use protocol::bounded::Name;
use protocol::bundle::{self, BundleBody};
use protocol::messages::{BundleChunk, CommandKind, Sha256};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::App;
use crate::store::{Store, StoreError};

const CURRENT: &str = "bundle.current";
const KEY_FILE: &str = "bundle-signing.pk8";

/// The bundle appliances should run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Published {
    pub version: String,
    pub size: u64,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    pub created_ms: i64,
    pub files: usize,
    /// Rules of its `.rules` files added to the cloud's rule catalogue (scoring).
    #[serde(default)]
    pub rules_catalogued: usize,
    /// Rules that did not parse (not catalogued; alerts for them are rated 調査中).
    #[serde(default)]
    pub rules_failed: usize,
}

impl Published {
    /// The `BundleAvailable` command announcing it.
    pub fn command(&self) -> Result<CommandKind, StoreError> {
        let mut sha = [0u8; 32];
        hex::decode_to_slice(&self.sha256, &mut sha)
            .map_err(|e| StoreError::Refused(format!("stored bundle hash: {e}")))?;
        Ok(CommandKind::BundleAvailable {
            version: Name::new(&self.version)
                .map_err(|e| StoreError::Refused(format!("bundle version: {e}")))?,
            size: self.size,
            sha256: Sha256(sha),
        })
    }
}

fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

fn bundle_path(data_dir: &Path, version: &str) -> PathBuf {
    data_dir.join("bundles").join(format!("{version}.bundle"))
}

/// The signing key, created on first use.
pub fn signing_key(data_dir: &Path) -> Result<Vec<u8>, StoreError> {
    let p = key_path(data_dir);
    match std::fs::read(&p) {
        Ok(k) => return Ok(k),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::Refused(format!("{}: {e}", p.display()))),
    }
    let key = bundle::generate_key().map_err(|e| StoreError::Refused(e.to_string()))?;
    crate::identity::write_secret(&p, &key)
        .map_err(|e| StoreError::Refused(format!("{}: {e}", p.display())))?;
    tracing::info!(path = %p.display(), "created the rule-bundle signing key");
    Ok(key)
}

/// The public key appliances trust, hex.
pub fn public_key_hex(data_dir: &Path) -> Result<String, StoreError> {
    let key = signing_key(data_dir)?;
    bundle::public_key(&key)
        .map(hex::encode)
        .map_err(|e| StoreError::Refused(e.to_string()))
}

/// A version name that is a safe folder name (`protocol::bundle::valid_version`).
pub fn valid_version(v: &str) -> Result<(), StoreError> {
    bundle::valid_version(v).map_err(|e| StoreError::Refused(e.to_string()))
}

/// Signs `body`, stores the file and makes it current: every appliance is offered it on
/// its connection (woken now). A version can be published once.
pub fn publish(
    app: &App,
    mut body: BundleBody,
    actor: &crate::audit::Actor,
) -> Result<Published, StoreError> {
    let now = app.now();
    if body.version.is_empty() {
        let t = time::OffsetDateTime::from_unix_timestamp(now / 1000)
            .map_err(|e| StoreError::Refused(e.to_string()))?;
        body.version = format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
    }
    valid_version(&body.version)?;
    body.created = (now / 1000).max(0) as u64;
    let dir = &app.cfg.data_dir;
    let path = bundle_path(dir, &body.version);
    if path.exists() {
        return Err(StoreError::Refused(format!(
            "bundle version {} was already published",
            body.version
        )));
    }
    let key = signing_key(dir)?;
    let file = bundle::seal(&body, &key).map_err(|e| StoreError::Refused(e.to_string()))?;
    let err = |e: std::io::Error| StoreError::Refused(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(dir.join("bundles")).map_err(err)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &file).map_err(err)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    let p = Published {
        version: body.version.clone(),
        size: file.len() as u64,
        sha256: hex::encode(sha2::Sha256::digest(&file)),
        created_ms: now,
        files: body.files.len(),
        rules_catalogued: 0,
        rules_failed: 0,
    };
    // the cloud scores alerts from its own copy of the rules it publishes
    let (entries, report) =
        crate::score::catalog::parse_files(&body.files, &format!("bundle {}", p.version), now);
    let p = Published {
        rules_catalogued: report.rules,
        rules_failed: report.failed,
        ..p
    };
    let json = serde_json::to_vec(&p).map_err(|e| StoreError::Refused(e.to_string()))?;
    app.store.write(|tx| {
        for e in &entries {
            tx.put_catalog_rule(e)?;
        }
        let before = tx
            .meta(CURRENT)?
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        tx.set_meta(CURRENT, &json)?;
        crate::audit::record(
            tx,
            actor,
            None,
            "rules.publish",
            &format!("bundle {}", p.version),
            before.unwrap_or_default(),
            crate::audit::json(&p),
        )?;
        Ok(())
    })?;
    if report.failed > 0 {
        tracing::warn!(version = %p.version, failed = report.failed, first = ?report.errors.first(), "rules of the bundle that did not parse are not catalogued");
    }
    tracing::info!(version = %p.version, size = p.size, files = p.files, rules = p.rules_catalogued, "rule bundle published");
    app.commands_changed(None);
    Ok(p)
}

/// The current bundle, if one was published.
pub fn current(store: &Store) -> Result<Option<Published>, StoreError> {
    match store.read(|rx| rx.meta(CURRENT))? {
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                table: "meta",
                reason: e.to_string(),
            }),
        None => Ok(None),
    }
}

/// Part of a published bundle, or `None` for an unknown version or an offset past the end.
pub async fn chunk(
    app: &App,
    version: &Name,
    offset: u64,
) -> Result<Option<BundleChunk>, StoreError> {
    if valid_version(version.as_str()).is_err() {
        return Ok(None);
    }
    let path = bundle_path(&app.cfg.data_dir, version.as_str());
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Option<(u64, Vec<u8>)>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let total = f.metadata()?.len();
        if offset > total {
            return Ok(None);
        }
        f.seek(SeekFrom::Start(offset))?;
        let mut data = Vec::new();
        f.take(protocol::limits::MAX_BUNDLE_CHUNK as u64)
            .read_to_end(&mut data)?;
        Ok(Some((total, data)))
    })
    .await
    .map_err(|e| StoreError::Refused(e.to_string()))?
    .map_err(|e| StoreError::Refused(format!("reading bundle {}: {e}", version.as_str())))?;
    Ok(read.map(|(total, data)| BundleChunk {
        version: version.clone(),
        offset,
        total,
        data,
    }))
}
