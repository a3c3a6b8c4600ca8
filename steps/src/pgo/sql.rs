//! PGO's databases as the app reads them: recovery state, WAL positions, timeline,
//! over TLS verified against PGO's CA (or plain, for a lab without --tls).

use super::*;

pub(super) async fn sql_state(
    cfg: &PgoDatabase,
    user: &str,
    password: &str,
) -> Result<Sql, String> {
    let (host, port) = cfg
        .address
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("database.pgo.address `{}` is not host:port", cfg.address))?;
    let mut pc = tokio_postgres::Config::new();
    pc.host(&host)
        .port(port)
        .user(user)
        .password(password)
        .dbname(user)
        .connect_timeout(Duration::from_secs(5));
    let query = "SELECT pg_is_in_recovery(),
        (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text,
        pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, '0/0')::bigint,
        pg_last_xact_replay_timestamp()::text,
        CASE WHEN pg_is_in_recovery() THEN NULL
             ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END";
    let row = if cfg.tls.unwrap_or(true) {
        let tls = tls_config(cfg.ca_file.as_deref())?;
        pc.ssl_mode(tokio_postgres::config::SslMode::Require);
        let (client, conn) = pc
            .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            .await
            .map_err(|e| pg_error(&cfg.address, &e))?;
        tokio::spawn(conn);
        client.query_one(query, &[]).await
    } else {
        let (client, conn) = pc
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| pg_error(&cfg.address, &e))?;
        tokio::spawn(conn);
        client.query_one(query, &[]).await
    }
    .map_err(|e| pg_error(&cfg.address, &e))?;
    Ok(Sql {
        in_recovery: row.get(0),
        lsn: row.get(1),
        lsn_bytes: row.get::<_, i64>(2).max(0) as u64,
        replayed_at: row.get(3),
        timeline: row.get(4),
    })
}

fn pg_error(addr: &str, e: &tokio_postgres::Error) -> String {
    let why = e
        .as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_string());
    format!("{addr}: {why}")
}

fn tls_config(ca: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let mut store = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("ca_file `{path}`: {e}"))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| format!("ca_file `{path}`: {e}"))?;
                store
                    .add(cert)
                    .map_err(|e| format!("ca_file `{path}`: {e}"))?;
            }
        }
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(store).with_no_client_auth())
}
