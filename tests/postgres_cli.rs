//! The CLI on a PostgreSQL store (`storage.url`, CONTRACT sections 1, 2 and 8): `check`
//! validates the URL and inspects the database without changing it, `backup` points at
//! `pg_dump`, `serve -d` is refused, and no message shows the URL's password. Needs the PostgreSQL server
//! `.ci/setup` starts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::{GatewayBuilder, MockUpstream, Upstream};
use tollgate::store::pg::test_db::TestDatabase;

fn on_postgres(mock: &MockUpstream, url: &str) -> GatewayBuilder {
    GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", mock).keys(&["sk"]))
        .postgres(url)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn check_inspects_without_migrating_and_backup_points_at_pg_dump() {
    let db = TestDatabase::create();
    let mock = MockUpstream::start().await;
    let gw = on_postgres(&mock, db.url()).build();
    let out = gw.cli(&["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        db.execute("SELECT 1 FROM schema_migrations").is_err(),
        "check created the schema"
    );
    // The connection budget: instances x (pool_size + 1 to listen) against the server.
    let max: u64 = db
        .query_text("SHOW max_connections")
        .unwrap()
        .parse()
        .unwrap();
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(
        summary.contains(&format!(
            "PostgreSQL max_connections {max}: room for {} instances of storage.pool_size 8 + 1",
            max / 9
        )),
        "{summary}"
    );
    // The first command that opens the store creates it; check then still passes.
    gw.cli_ok(&["user", "add", "alice"]);
    assert_eq!(db.execute("SELECT 1 FROM users").unwrap(), 1);
    let out = gw.cli(&["check"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = gw.cli(&["backup", "snapshot.db"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("pg_dump") && !e.contains(":tollgate@"), "{e}");
    assert!(!gw.dir().join("snapshot.db").exists());

    // A daemon would fork away the store's runtime threads: refused, before listening.
    let out = gw.cli(&["serve", "-d"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("serve -d (daemon) is not supported with storage.url"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_bad_url_or_an_unreachable_server_is_one_line_without_the_password() {
    let mock = MockUpstream::start().await;
    let gw = on_postgres(&mock, "mysql://tollgate:s3cret-pw@127.0.0.1/tollgate").build();
    let out = gw.cli(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("storage.url: must start with postgres:// or postgresql://"),
        "{e}"
    );
    assert!(!e.contains("s3cret-pw"), "{e}");

    // Nothing listens on port 1.
    let gw = on_postgres(&mock, "postgres://tollgate:s3cret-pw@127.0.0.1:1/tollgate").build();
    for args in [&["check"][..], &["user", "list"][..]] {
        let out = gw.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let e = stderr(&out);
        assert!(
            e.contains("store postgres://tollgate@127.0.0.1:1/tollgate: PostgreSQL: "),
            "{args:?}: {e}"
        );
        assert!(!e.contains("s3cret-pw"), "{e}");
    }
}
