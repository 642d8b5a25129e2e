//! The PostgreSQL backend's own behaviour: migrations once under the lock, a newer
//! schema refused, the bridge usable from inside another runtime, errors without the
//! URL's password. (The table families' checks run on both backends in their files.)

use super::test_db::TestDatabase;
use super::*;
use crate::store::Store;

fn options(db: &TestDatabase) -> PgOptions {
    PgOptions::parse(db.url(), 2).unwrap()
}

#[test]
fn migrates_once_even_when_instances_start_together() {
    let db = TestDatabase::create();
    let opts = options(&db);
    let stores: Vec<Store> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| Store::open_postgres(&opts).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for s in &stores {
        s.check().unwrap();
        assert_eq!(s.pg_schema_version().unwrap(), known_version());
    }
    let rows = db.execute("SELECT 1 FROM schema_migrations").unwrap();
    assert_eq!(rows, u64::from(known_version()));
}

#[test]
fn a_newer_schema_is_refused() {
    let db = TestDatabase::create();
    let s = Store::open_postgres(&options(&db)).unwrap();
    db.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)",
    )
    .unwrap();
    assert!(matches!(
        s.check(),
        Err(StoreError::Schema { found: 99, known }) if known == known_version()
    ));
    drop(s);
    let e = Store::open_postgres(&options(&db)).err().unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "the store's schema is at migration 99, this binary knows up to {}",
            known_version()
        )
    );
}

#[test]
fn inspecting_changes_nothing() {
    let db = TestDatabase::create();
    let s = Store::inspect_postgres(&options(&db)).unwrap();
    assert_eq!(s.pg_schema_version().unwrap(), 0);
    assert!(matches!(
        s.check(),
        Err(StoreError::Schema { found: 0, .. })
    ));
    assert_eq!(s.pg_schema_version().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usable_from_inside_another_runtime() {
    let db = TestDatabase::create();
    let s = Store::open_postgres(&options(&db)).unwrap();
    // Called on this runtime's worker: must neither panic nor deadlock.
    s.check().unwrap();
    s.probe_writable().unwrap();
    // And dropped here too, last handle included.
    drop(s);
}

#[test]
fn closing_refuses_later_use() {
    let db = TestDatabase::create();
    let s = Store::open_postgres(&options(&db)).unwrap();
    let other = s.clone();
    s.close().unwrap();
    assert!(matches!(other.check(), Err(StoreError::Closed)));
}

#[test]
fn errors_and_debug_never_show_the_password() {
    let opts = PgOptions::parse("postgres://tollgate:s3cret-pw@127.0.0.1:1/nowhere", 1).unwrap();
    assert_eq!(opts.redacted(), "postgres://tollgate@127.0.0.1:1/nowhere");
    assert!(!format!("{opts:?}").contains("s3cret-pw"));
    let e = Store::open_postgres(&opts).err().unwrap().to_string();
    assert!(e.starts_with("PostgreSQL: "), "{e}");
    assert!(!e.contains("s3cret-pw"), "{e}");
}

#[test]
fn urls_are_checked() {
    for (url, why) in [
        (
            "mysql://u@h/db",
            "must start with postgres:// or postgresql://",
        ),
        (
            "data/tollgate.db",
            "must start with postgres:// or postgresql://",
        ),
        ("postgres://h/db", "names no user"),
    ] {
        assert_eq!(PgOptions::parse(url, 1).unwrap_err(), why, "{url}");
    }
    assert!(PgOptions::parse("postgres://u@h:99999/db", 1)
        .unwrap_err()
        .starts_with("is not a PostgreSQL URL"));
    assert!(PgOptions::parse("postgresql://u:p@db.internal:5432/tollgate", 1).is_ok());
}

/// `SHOW statement_timeout` on one of `store`'s pooled connections.
fn statement_timeout(store: &PgStore) -> String {
    store
        .run(|pool| async move {
            let row = client(&pool)
                .await?
                .query_one("SHOW statement_timeout", &[])
                .await?;
            Ok(row.get::<_, String>(0))
        })
        .unwrap()
}

#[test]
fn pooled_connections_carry_tcp_timeouts_and_a_statement_timeout() {
    let db = TestDatabase::create();
    let store = PgStore::connect(&options(&db)).unwrap();
    assert_eq!(statement_timeout(&store), "1min");
    let config = pool_config(&options(&db)).unwrap();
    assert_eq!(config.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
    assert!(config.get_keepalives());
    assert_eq!(config.get_keepalives_idle(), KEEPALIVE_IDLE);
    assert_eq!(config.get_keepalives_retries(), Some(KEEPALIVE_RETRIES));
    // The URL's own setting wins.
    let url = url_with(&db, "options=-c%20statement_timeout%3D5s");
    let own = PgStore::connect(&PgOptions::parse(&url, 1).unwrap()).unwrap();
    assert_eq!(statement_timeout(&own), "5s");
}

/// `db`'s URL with `params` added to its query.
fn url_with(db: &TestDatabase, params: &str) -> String {
    let sep = if db.url().contains('?') { '&' } else { '?' };
    format!("{}{sep}{params}", db.url())
}

/// Whether `store`'s pooled connection is encrypted, as the server sees it.
fn encrypted(store: &PgStore) -> bool {
    store
        .run(|pool| async move {
            let row = client(&pool)
                .await?
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await?;
            Ok(row.get::<_, bool>(0))
        })
        .unwrap()
}

/// The test server's TLS must be on (Debian's clusters have it, with the machine's
/// snake-oil certificate): these tests are about what the client makes of it.
fn server_offers_tls(db: &TestDatabase) {
    let ssl = db.query_text("SHOW ssl").unwrap();
    assert_eq!(
        ssl, "on",
        "the test server offers no TLS: set ssl = on (Debian's pg_createcluster does)"
    );
}

#[test]
fn connections_are_encrypted_unless_sslmode_disables_it() {
    let db = TestDatabase::create();
    server_offers_tls(&db);
    for (params, want) in [
        ("", true), // libpq's default, prefer
        ("sslmode=prefer", true),
        ("sslmode=require", true),
        ("sslmode=disable", false),
    ] {
        let url = url_with(&db, params);
        let store = PgStore::connect(&PgOptions::parse(&url, 1).unwrap()).unwrap();
        assert_eq!(encrypted(&store), want, "{params:?}");
    }
}

#[test]
fn scram_is_bound_to_the_tls_channel_when_asked() {
    let db = TestDatabase::create();
    server_offers_tls(&db);
    // The test role signs in with SCRAM over TCP (Debian's pg_hba.conf): with
    // channel_binding=require the server checks the hash of its certificate that the
    // client sends, so a wrong one is refused.
    let url = url_with(&db, "sslmode=require&channel_binding=require");
    let store = PgStore::connect(&PgOptions::parse(&url, 1).unwrap())
        .unwrap_or_else(|e| panic!("SCRAM-SHA-256-PLUS refused: {e}"));
    assert!(encrypted(&store));
    // Without TLS there is no channel to bind to: refused, not silently unbound.
    let url = url_with(&db, "sslmode=disable&channel_binding=require");
    assert!(PgStore::connect(&PgOptions::parse(&url, 1).unwrap()).is_err());
}

#[test]
fn verify_modes_check_the_servers_certificate() {
    let db = TestDatabase::create();
    server_offers_tls(&db);
    // The server's own certificate (self-signed) as the one trusted root.
    let own = db
        .query_text("SELECT pg_read_file(current_setting('ssl_cert_file'))")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let own_pem = dir.path().join("server.pem");
    std::fs::write(&own_pem, own).unwrap();
    let own_pem = own_pem.display().to_string();
    let other_ca = crate::config::tls::TEST_CA;
    let connect =
        |params: String| PgStore::connect(&PgOptions::parse(&url_with(&db, &params), 1).unwrap());

    for mode in ["verify-ca", "require"] {
        let store = connect(format!("sslmode={mode}&sslrootcert={own_pem}"))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(encrypted(&store), "{mode}");
    }
    // A root that did not sign it: refused, and said so, in every checking mode.
    for mode in ["verify-ca", "verify-full", "require"] {
        let e = connect(format!("sslmode={mode}&sslrootcert={other_ca}"))
            .err()
            .unwrap_or_else(|| panic!("{mode}: a certificate from another CA was taken"))
            .to_string();
        assert!(e.contains("invalid peer certificate"), "{mode}: {e}");
        assert!(!e.contains("tollgate:tollgate"), "{e}");
    }
    // verify-full also wants the host's name in it: the tests connect to 127.0.0.1,
    // which a certificate for a host name does not list.
    let e = connect(format!("sslmode=verify-full&sslrootcert={own_pem}"))
        .err()
        .expect("verify-full took a certificate that does not name 127.0.0.1")
        .to_string();
    assert!(e.contains("invalid peer certificate"), "{e}");
    assert!(e.contains("name"), "{e}");
}

#[test]
fn tls_parameters_are_checked_with_the_url() {
    assert_eq!(
        PgOptions::parse("postgres://u@h/db?sslmode=verify", 1).unwrap_err(),
        "has sslmode=verify: it must be disable, prefer, require, verify-ca or verify-full"
    );
    let e = PgOptions::parse(
        "postgres://u@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem",
        1,
    )
    .unwrap_err();
    assert!(
        e.starts_with("cannot read sslrootcert /nonexistent/ca.pem: "),
        "{e}"
    );
    // Client certificates are not supported, and not ignored.
    assert_eq!(
        PgOptions::parse("postgres://u@h/db?sslcert=/c.pem", 1).unwrap_err(),
        "is not a PostgreSQL URL (invalid connection string: unknown option `sslcert`)"
    );
    // The redacted form still names the server.
    let ca = crate::config::tls::TEST_CA;
    let opts = PgOptions::parse(
        &format!("postgres://u:pw@db.internal:6432/t?sslmode=verify-full&sslrootcert={ca}"),
        1,
    )
    .unwrap();
    assert_eq!(opts.redacted(), "postgres://u@db.internal:6432/t");
}
