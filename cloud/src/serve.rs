//! `mimamori-cloud serve`: open the store and the CA, start every task.

use std::sync::Arc;

use anyhow::Context;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::identity::Identity;
use crate::score::Scorer;
use crate::store::Store;
use crate::{App, admin, heartbeat, ingest, notify};

/// Build the shared state (also used by tests with their own clock).
pub fn build(cfg: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<App>> {
    let store = Arc::new(
        Store::open_with(&cfg.data_dir, &cfg.secrets_key_path())
            .with_context(|| format!("opening the store in {}", cfg.data_dir.display()))?,
    );
    let identity = Identity::load_or_create(&cfg.data_dir, &cfg.ingest.server_names)
        .context("device CA and server certificate")?;
    let scorer = match &cfg.scoring_policy {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Scorer::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => Scorer::default_policy(),
    };
    let token = if cfg.admin.token.is_empty() {
        let p = cfg.data_dir.join("admin.token");
        match std::fs::read_to_string(&p) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                use std::io::Write;
                let t = hex::encode(rand::random::<[u8; 24]>());
                crate::store::datadir::create_private(&p)
                    .and_then(|mut f| f.write_all(t.as_bytes()).and_then(|_| f.sync_all()))
                    .with_context(|| format!("writing {}", p.display()))?;
                t
            }
        }
    } else {
        cfg.admin.token.clone()
    };
    let writer = ingest::writer::spawn(
        Arc::clone(&store),
        scorer.clone(),
        cfg.timing.clone(),
        Arc::clone(&clock),
        Default::default(),
    );
    let started_ms = clock.now_ms();
    Ok(Arc::new(App {
        cfg,
        store,
        identity,
        scorer,
        clock,
        started_ms,
        liveness: Default::default(),
        connections: Default::default(),
        mail_queued: tokio::sync::Notify::new(),
        writer,
        admin_token: token,
        command_wakers: Default::default(),
        health: Default::default(),
        session_stops: Default::default(),
        ingest_stats: Default::default(),
    }))
}

/// Run the service until interrupted.
///
/// Fails (the binary exits non-zero, for its supervisor — systemd `Restart=on-failure` —
/// to start it again) when a task stops, when the store writer thread stops (a panic), or
/// when the database file fails (disk full, I/O error): redb latches the first I/O error,
/// so nothing could be written again until the database is re-opened, and re-opening it
/// is what a restart does (redb recovers the last commit; appliances send again what was
/// not acknowledged). The service is not left running with a store that refuses writes.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    // every file the service creates is the owner's only (the store and the key files are
    // also opened with mode 0600 explicitly)
    // SAFETY: umask has no preconditions and cannot fail
    unsafe { libc::umask(0o077) };
    match ingest::admit::raise_fd_limit() {
        Ok(n) => {
            let want = cfg.ingest.max_connections as u64 + 256;
            if n < want {
                tracing::warn!(
                    open_files = n,
                    max_connections = cfg.ingest.max_connections,
                    "the open-file limit is below ingest's max_connections; raise it (LimitNOFILE=)"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "raising the open-file limit failed"),
    }
    let app = build(cfg, Arc::new(SystemClock))?;
    let ingest_l = tokio::net::TcpListener::bind(app.cfg.ingest.listen)
        .await
        .with_context(|| format!("binding ingest {}", app.cfg.ingest.listen))?;
    let admin_l = tokio::net::TcpListener::bind(app.cfg.admin.listen)
        .await
        .with_context(|| format!("binding admin API {}", app.cfg.admin.listen))?;
    let portal_l = tokio::net::TcpListener::bind(app.cfg.portal.listen)
        .await
        .with_context(|| format!("binding the portal {}", app.cfg.portal.listen))?;
    tracing::info!(ingest = %ingest_l.local_addr()?, admin = %admin_l.local_addr()?, portal = %portal_l.local_addr()?, data = %app.cfg.data_dir.display(), "mimamori-cloud serving");
    eprintln!(
        "mimamori-cloud: ingest on {}, admin API on http://{}, portal on http://{}",
        ingest_l.local_addr()?,
        admin_l.local_addr()?,
        portal_l.local_addr()?
    );
    let force_daily = Arc::new(tokio::sync::Notify::new());
    let router = admin::api::router(admin::api::Api {
        app: Arc::clone(&app),
        force_daily: Arc::clone(&force_daily),
    });
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(ingest::serve(Arc::clone(&app), ingest_l));
    tasks.spawn(notify::sender::run(Arc::clone(&app), Default::default()));
    tasks.spawn(heartbeat::run(Arc::clone(&app), force_daily));
    tasks.spawn(async move {
        if let Err(e) = axum::serve(
            admin_l,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        {
            tracing::error!(error = %e, "admin API stopped");
        }
    });
    let portal = crate::portal::router(Arc::clone(&app));
    tasks.spawn(async move {
        if let Err(e) = axum::serve(
            portal_l,
            portal.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        {
            tracing::error!(error = %e, "portal stopped");
        }
    });
    let store_failed = async {
        loop {
            if let Some(e) = app.store.failure() {
                return e;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted; stopping");
            Ok(())
        }
        r = tasks.join_next() => {
            tracing::error!(result = ?r, "a service task stopped; exiting for the supervisor to restart the service");
            Err(anyhow::anyhow!("a service task stopped: {r:?}"))
        }
        _ = app.writer.stopped() => {
            tracing::error!("the store writer stopped (panic?); exiting for the supervisor to restart the service");
            Err(anyhow::anyhow!("the store writer stopped; ingest cannot continue"))
        }
        e = store_failed => {
            tracing::error!(error = %e, "the database failed (disk full or I/O error); exiting for the supervisor to restart the service");
            Err(anyhow::anyhow!("the database failed ({e}); exiting so that the service is restarted and the database re-opened"))
        }
    }
}
