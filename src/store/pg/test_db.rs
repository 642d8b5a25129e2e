//! For tests (the crate's and `tests/`): a fresh PostgreSQL database per test, created
//! on the server at `TOLLGATE_TEST_POSTGRES_URL` (default: the one `.ci/setup` runs)
//! and dropped when the handle goes, so that tests run in parallel without sharing
//! rows. An unreachable server is a failure that says how to start one, never a skip.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::NoTls;

/// The server `.ci/setup` starts, with the role it creates.
pub const DEFAULT_URL: &str = "postgres://tollgate:tollgate@127.0.0.1:5432/postgres";

/// A database of its own for one test; dropped (connections and all) on drop.
pub struct TestDatabase {
    name: String,
    admin_url: String,
    url: String,
}

impl TestDatabase {
    /// Creates `tollgate_t_<random>`. Panics with the way out when the server cannot
    /// be reached: a test that needs PostgreSQL must fail without it, not pass.
    pub fn create() -> TestDatabase {
        let admin_url =
            std::env::var("TOLLGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.into());
        let name = format!("tollgate_t_{:016x}", rand::random::<u64>());
        let sql = format!("CREATE DATABASE {name}");
        if let Err(e) = admin(&admin_url, &sql) {
            panic!(
                "PostgreSQL for the tests is unreachable at TOLLGATE_TEST_POSTGRES_URL or {DEFAULT_URL} ({e}): run `bash .ci/setup`, which installs and starts it"
            );
        }
        let url = with_dbname(&admin_url, &name);
        TestDatabase {
            name,
            admin_url,
            url,
        }
    }

    /// The database's URL (with the test role's password).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs one statement on the test database (as the test role), e.g. to set up or
    /// inspect rows that no store method reaches.
    pub fn execute(&self, sql: &str) -> Result<u64, String> {
        on_own_runtime(self.url.clone(), sql.to_owned(), Statement::Execute).map(|(n, _)| n)
    }

    /// The first column of the first row `sql` selects, as text.
    pub fn query_text(&self, sql: &str) -> Result<String, String> {
        on_own_runtime(self.url.clone(), sql.to_owned(), Statement::FirstText).map(|(_, t)| t)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = admin(&self.admin_url, &sql) {
            eprintln!("cannot drop test database {}: {e}", self.name);
        }
    }
}

fn admin(url: &str, sql: &str) -> Result<u64, String> {
    on_own_runtime(url.to_owned(), sql.to_owned(), Statement::Batch).map(|(n, _)| n)
}

/// How [`on_own_runtime`] runs its statement.
#[derive(Clone, Copy)]
enum Statement {
    /// Without parameters (CREATE/DROP DATABASE cannot be prepared).
    Batch,
    /// Prepared: the rows it touched.
    Execute,
    /// Prepared: the first column of its first row, as text (`SHOW`, `SELECT`).
    FirstText,
}

/// `url` with its database replaced by `db`.
fn with_dbname(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// One statement on a connection of its own, on a runtime of its own in a thread of
/// its own (callable from a test's async code too).
fn on_own_runtime(url: String, sql: String, how: Statement) -> Result<(u64, String), String> {
    let work = move || -> Result<(u64, String), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| e.to_string())?;
            config.connect_timeout(Duration::from_secs(5));
            let (client, conn) = config
                .connect(NoTls)
                .await
                .map_err(|e| super::message(&e))?;
            let driver = tokio::spawn(conn);
            let r = match how {
                Statement::Batch => client
                    .batch_execute(&sql)
                    .await
                    .map(|()| (0, String::new())),
                Statement::Execute => client
                    .execute(sql.as_str(), &[])
                    .await
                    .map(|n| (n, String::new())),
                Statement::FirstText => client
                    .simple_query(&sql)
                    .await
                    .map(|msgs| (0, first_text(&msgs))),
            };
            drop(client);
            let _ = driver.await;
            r.map_err(|e| super::message(&e))
        })
    };
    std::thread::spawn(work)
        .join()
        .unwrap_or_else(|_| Err("the database thread panicked".into()))
}

/// The first column of the first row of a simple query's answer.
fn first_text(msgs: &[tokio_postgres::SimpleQueryMessage]) -> String {
    msgs.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_replaces_the_url_path() {
        assert_eq!(
            with_dbname("postgres://u:p@h:5432/postgres", "x"),
            "postgres://u:p@h:5432/x"
        );
        assert_eq!(with_dbname("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_dbname("postgresql://u@h/db?sslmode=disable", "x"),
            "postgresql://u@h/x?sslmode=disable"
        );
    }
}
