//! `tollgate check`: everything `serve` would trip over, found before it starts (systemd
//! runs it as `ExecStartPre`). The config first (every problem at once); then, when the
//! config is valid, the store and the master key: the schema, a store this user cannot
//! write, a master key that does not open the store's data keys or that is missing for
//! a store that has them. Problems fail the check; warnings (a config that routes
//! nothing, legacy shared keys accepted) do not. Check never creates the store or the master key.

use std::path::Path;

use crate::config::{self, Fixed, Runtime};
use crate::keys::Keyring;
use crate::store::pg::{self, PgOptions};
use crate::store::secrets::{master_key_path, MasterKey, SecretsError};
use crate::store::Store;

/// What the check found, once the config itself is valid.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Each one line; any of them fails the check (exit 1).
    pub problems: Vec<String>,
    /// Each one line starting with `warning: `.
    pub warnings: Vec<String>,
    /// `<config>: OK (N upstreams, M routes)` when there is no problem.
    pub summary: String,
}

/// Checks the config at `path`; `Err` holds the config's problems, one per line.
pub fn check(path: &Path) -> Result<CheckReport, String> {
    let rt = config::load(path).map_err(|e| format!("config has problems:\n{e}"))?;
    let mut report = CheckReport::default();
    let connections = check_store(&rt.fixed, &mut report.problems);
    report.warnings.extend(routing_warning(&rt));
    report.warnings.extend(legacy_keys_warning(&rt.fixed));
    // Warnings the config itself carries (a certificate past its end date).
    report.warnings.extend(
        config::render_lines(path, &rt.warnings)
            .iter()
            .map(|line| format!("warning: {line}")),
    );
    report.summary = format!(
        "{}: OK ({} upstreams, {} routes{})",
        path.display(),
        rt.reloadable.upstreams.len(),
        rt.reloadable.router.route_count(),
        connections.map_or(String::new(), |c| format!("; {c}"))
    );
    Ok(report)
}

/// A config without routes starts and answers every proxied request 404. Only a
/// warning: an instance may be brought up first (users, keys, admin logins) and given
/// upstreams later by `tollgate reload`, and the CLI's commands read the same file.
fn routing_warning(rt: &Runtime) -> Option<String> {
    if rt.reloadable.router.route_count() > 0 {
        return None;
    }
    Some(format!(
        "warning: no routes ({} upstreams): every proxied request would be answered 404 until upstreams and routes are added (then tollgate reload)",
        rt.reloadable.upstreams.len()
    ))
}

/// The proxy accepts static shared keys (`auth.mode: legacy | both`): meant for a
/// migration, so a reminder that it is still on.
fn legacy_keys_warning(fixed: &Fixed) -> Option<String> {
    fixed.auth_mode.accepts_legacy().then(|| {
        format!(
            "warning: auth.mode is {}: the static keys of auth.legacy_keys are accepted (recorded as user \"legacy\"); move their callers to gateway keys and set auth.mode: keys",
            fixed.auth_mode.as_str()
        )
    })
}

/// The store and the master key, as `serve` will use them; on PostgreSQL, the
/// connection budget, for the summary.
fn check_store(fixed: &Fixed, problems: &mut Vec<String>) -> Option<String> {
    if let Some(pg) = &fixed.storage_url {
        return check_pg_store(fixed, pg, problems);
    }
    check_sqlite_store(fixed, problems);
    None
}

/// The SQLite store: creatable or open, its schema, writable, opened by the master key.
fn check_sqlite_store(fixed: &Fixed, problems: &mut Vec<String>) {
    let db = fixed.storage_path.display();
    if !fixed.storage_path.exists() {
        if let Some(why) = cannot_create(&fixed.storage_path) {
            problems.push(format!(
                "store {db} does not exist and cannot be created ({why}): serve would exit on start"
            ));
        }
        // A store without data keys yet: the master key (given, or generated on the
        // first start) only needs to be well-formed.
        let file = master_key_path(&fixed.storage_dir);
        if !fixed.master_key.trim().is_empty() || file.exists() {
            if let Err(e) = MasterKey::for_store(&fixed.master_key, &fixed.storage_dir, false) {
                problems.push(e.to_string());
            }
        }
        return;
    }
    let store = match Store::open(&fixed.storage_path) {
        Ok(s) => s,
        Err(e) => return problems.push(format!("store {db}: {e}")),
    };
    if let Err(e) = store.check() {
        problems.push(format!("store {db}: {e}"));
    }
    if let Err(e) = store.probe_writable() {
        problems.push(format!(
            "store {db} is read-only for this user ({e}): serve would exit on start, as it writes the store (usage, keys, sessions); fix the owner or mode of the file and its directory, or the mount"
        ));
    }
    if let Some(p) = master_key_problem(fixed, &store) {
        problems.push(p);
    }
}

/// The PostgreSQL store: reachable, its schema not newer than this binary's (an older
/// one, or none yet, is what `serve` migrates: check changes nothing), writable, and
/// opened by the master key; and how many instances its `max_connections` leaves room
/// for, each holding `storage.pool_size` connections and one to listen.
fn check_pg_store(fixed: &Fixed, pg: &PgOptions, problems: &mut Vec<String>) -> Option<String> {
    let db = pg.redacted();
    let store = match Store::inspect_postgres(pg) {
        Ok(s) => s,
        Err(e) => {
            problems.push(format!("store {db}: {e}"));
            return None;
        }
    };
    let budget = match store.pg_max_connections() {
        Ok(max) => format!(
            "PostgreSQL max_connections {max}: room for {} instances of storage.pool_size {} + 1",
            max / (pg.pool_size as u64 + 1),
            pg.pool_size
        ),
        Err(e) => {
            problems.push(format!("store {db}: {e}"));
            return None;
        }
    };
    match store.pg_schema_version() {
        Err(e) => problems.push(format!("store {db}: {e}")),
        // No schema yet: the first `serve` creates it; the master key was checked
        // with the config.
        Ok(0) => {}
        Ok(found) if found > pg::known_version() => {
            let known = pg::known_version();
            let e = crate::store::StoreError::Schema { found, known };
            problems.push(format!("store {db}: {e}"));
        }
        Ok(_) => check_pg_contents(fixed, &store, &db, problems),
    }
    Some(budget)
}

/// A PostgreSQL store with a schema: writable, opened by the master key.
fn check_pg_contents(fixed: &Fixed, store: &Store, db: &str, problems: &mut Vec<String>) {
    if let Err(e) = store.probe_writable() {
        problems.push(format!(
            "store {db} cannot be written by this role ({e}): serve would fail on its first write"
        ));
    }
    if let Some(p) = master_key_problem(fixed, store) {
        problems.push(p);
    }
}

/// Whether the master key opens the store's data keys; never writes a key file.
fn master_key_problem(fixed: &Fixed, store: &Store) -> Option<String> {
    let db = match &fixed.storage_url {
        Some(pg) => pg.redacted(),
        None => fixed.storage_path.display().to_string(),
    };
    let has_data_keys = match store.data_keys() {
        Ok(rows) => !rows.is_empty(),
        Err(e) => return Some(format!("store {db}: {e}")),
    };
    let file = master_key_path(&fixed.storage_dir);
    if fixed.master_key.trim().is_empty() && !file.exists() {
        // Generated on the first start, unless the store already depends on one.
        return has_data_keys
            .then(|| SecretsError::Missing(file.display().to_string()).to_string());
    }
    let master = match MasterKey::for_store(&fixed.master_key, &fixed.storage_dir, has_data_keys) {
        Ok(m) => m,
        Err(e) => return Some(e.to_string()),
    };
    // A wrong master key would leave every gateway key and stored provider key
    // unusable: say so before a start or an upgrade, not after.
    Keyring::verify(store, &master)
        .err()
        .map(|e| format!("store {db}: {e}"))
}

/// Why the store at `path` could not be created by this user, if it could not: its
/// nearest existing ancestor must be a writable directory.
fn cannot_create(path: &Path) -> Option<String> {
    let mut dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    while let Some(d) = dir {
        if d.exists() {
            if !d.is_dir() {
                return Some(format!("{} is not a directory", d.display()));
            }
            return rustix::fs::access(d, rustix::fs::Access::WRITE_OK)
                .err()
                .map(|e| format!("{} is not writable: {e}", d.display()));
        }
        dir = d.parent().filter(|d| !d.as_os_str().is_empty());
    }
    rustix::fs::access(".", rustix::fs::Access::WRITE_OK)
        .err()
        .map(|e| format!("the working directory is not writable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_parent_is_judged_by_the_nearest_existing_one() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(cannot_create(&dir.path().join("a/b/t.db")), None);
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(cannot_create(&file.join("t.db"))
            .unwrap()
            .contains("not a directory"));
    }
}
