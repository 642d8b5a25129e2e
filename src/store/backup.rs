//! Online backups of the SQLite store, for `tollgate backup FILE` and `GET /admin/backup`:
//! SQLite's backup API copies every page in one step, inside one read transaction on a
//! connection of its own, so the copy is a consistent snapshot; in WAL mode that reader
//! never blocks the gateway's writer (nor the writer it). A snapshot is written to a
//! temporary file (mode 0600) beside its destination and only then put in place, so a
//! failed backup never leaves a partial file under the destination's name nor destroys
//! an earlier backup there.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::Rng;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

/// How often a step the source's locks refused is tried again, and how long apart.
const BUSY_RETRIES: u32 = 100;
const BUSY_PAUSE: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("store {0} does not exist")]
    NoStore(String),
    #[error(
        "{0} exists; refusing to overwrite it (choose a new file, or pass --force to replace it)"
    )]
    Exists(String),
    #[error("{0} is the store itself (or one of its files)")]
    IsTheStore(String),
    #[error("cannot write {0}: {1}")]
    Io(String, std::io::Error),
    #[error("backup of {0} failed: {1}")]
    Sqlite(String, rusqlite::Error),
    #[error("backup of {0} failed: the store stayed locked")]
    Busy(String),
}

/// Writes a snapshot of the store at `db` to `dest` (mode 0600); its size in bytes. An
/// existing `dest` is refused unless `replace`, and then replaced in one rename.
pub fn backup_to_file(db: &Path, dest: &Path, replace: bool) -> Result<u64, BackupError> {
    if is_the_store(db, dest) {
        return Err(BackupError::IsTheStore(dest.display().to_string()));
    }
    if !replace && dest.exists() {
        return Err(BackupError::Exists(dest.display().to_string()));
    }
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let (tmp, file) = private_temp_file(dir)?;
    let placed = snapshot_into(db, &tmp, file).and_then(|size| {
        let io = |e| BackupError::Io(dest.display().to_string(), e);
        if replace {
            std::fs::rename(&tmp, dest).map_err(io)?;
        } else {
            // A hard link, unlike a rename, fails when the destination appeared meanwhile.
            std::fs::hard_link(&tmp, dest).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    BackupError::Exists(dest.display().to_string())
                }
                _ => io(e),
            })?;
        }
        Ok(size)
    });
    let _ = std::fs::remove_file(&tmp);
    if placed.is_ok() {
        // Make the new directory entry durable too; failure is not worth failing for.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    placed
}

/// A snapshot of the store at `db` in an unnamed file in `dir` (created there and
/// unlinked at once, so nothing is left behind whatever happens next), rewound, with
/// its size: for streaming it out.
pub fn backup_to_unnamed_file(db: &Path, dir: &Path) -> Result<(File, u64), BackupError> {
    let (tmp, file) = private_temp_file(dir)?;
    let taken = snapshot_into(db, &tmp, file);
    let opened = taken.and_then(|size| {
        File::open(&tmp)
            .map(|f| (f, size))
            .map_err(|e| BackupError::Io(tmp.display().to_string(), e))
    });
    let _ = std::fs::remove_file(&tmp);
    opened
}

/// A new empty file in `dir`, readable only by its owner from the start.
fn private_temp_file(dir: &Path) -> Result<(PathBuf, File), BackupError> {
    let path = dir.join(format!(
        ".tollgate-backup.{}.{:016x}.tmp",
        std::process::id(),
        rand::thread_rng().gen::<u64>()
    ));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map(|f| (path.clone(), f))
        .map_err(|e| BackupError::Io(path.display().to_string(), e))
}

/// Copies the store at `db` into the empty file `tmp` (whose handle is `file`), synced;
/// its size in bytes.
fn snapshot_into(db: &Path, tmp: &Path, file: File) -> Result<u64, BackupError> {
    let shown = db.display().to_string();
    let sql = |e| BackupError::Sqlite(shown.clone(), e);
    if !db.exists() {
        return Err(BackupError::NoStore(shown));
    }
    // Never created here, and never migrated: a backup copies what is there.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let src = Connection::open_with_flags(db, flags).map_err(sql)?;
    src.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
    let mut dst = Connection::open(tmp).map_err(sql)?;
    copy_pages(&src, &mut dst, &shown)?;
    dst.close().map_err(|(_, e)| sql(e))?;
    src.close().map_err(|(_, e)| sql(e))?;
    let io = |e| BackupError::Io(tmp.display().to_string(), e);
    file.sync_all().map_err(io)?;
    Ok(file.metadata().map_err(io)?.len())
}

/// All pages in one step: one read transaction, so one consistent state of the store.
/// Stepping in slices would restart the copy whenever the gateway wrote in between,
/// which under traffic may be forever.
fn copy_pages(src: &Connection, dst: &mut Connection, shown: &str) -> Result<(), BackupError> {
    let sql = |e| BackupError::Sqlite(shown.to_owned(), e);
    let backup = Backup::new(src, dst).map_err(sql)?;
    for _ in 0..BUSY_RETRIES {
        match backup.step(-1).map_err(sql)? {
            StepResult::Done => return Ok(()),
            // Busy, Locked (and More, which a step of every page never answers).
            _ => std::thread::sleep(BUSY_PAUSE),
        }
    }
    Err(BackupError::Busy(shown.to_owned()))
}

/// Whether `dest` names the store's file or its `-wal`/`-shm`/`-journal` files.
fn is_the_store(db: &Path, dest: &Path) -> bool {
    let (Ok(db), Some(name), Some(dir)) = (
        db.canonicalize(),
        dest.file_name(),
        dest.parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .and_then(|d| d.canonicalize().ok()),
    ) else {
        return false;
    };
    let dest = dir.join(name).display().to_string();
    let db = db.display().to_string();
    dest == db
        || ["-wal", "-shm", "-journal"]
            .iter()
            .any(|s| dest == format!("{db}{s}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use std::os::unix::fs::PermissionsExt;

    fn store_with_rows(dir: &Path, n: i64) -> PathBuf {
        let db = dir.join("t.db");
        let s = Store::open(&db).unwrap();
        let conn = s.conn().unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        for i in 0..n {
            conn.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
        }
        db
    }

    fn rows(db: &Path) -> i64 {
        Connection::open(db)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn snapshots_are_private_complete_and_never_overwrite_by_accident() {
        let dir = tempfile::tempdir().unwrap();
        let db = store_with_rows(dir.path(), 3);
        let dest = dir.path().join("b.db");
        let size = backup_to_file(&db, &dest, false).unwrap();
        assert_eq!(size, std::fs::metadata(&dest).unwrap().len());
        assert_eq!(
            std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(rows(&dest), 3);
        let e = backup_to_file(&db, &dest, false).unwrap_err();
        assert!(matches!(e, BackupError::Exists(_)), "{e}");
        std::fs::write(&dest, "previous").unwrap();
        backup_to_file(&db, &dest, true).unwrap();
        assert_eq!(rows(&dest), 3);
        for own in ["t.db", "t.db-wal"] {
            let e = backup_to_file(&db, &dir.path().join(own), true).unwrap_err();
            assert!(matches!(e, BackupError::IsTheStore(_)), "{e}");
        }
        let e = backup_to_file(&dir.path().join("none.db"), &dir.path().join("x.db"), false)
            .unwrap_err();
        assert!(matches!(e, BackupError::NoStore(_)), "{e}");
        // Only the store's files and the backup: no temporary file left behind.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("t.db"))
            .collect();
        names.sort();
        assert_eq!(names, ["b.db"]);
    }

    #[test]
    fn an_unnamed_snapshot_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let db = store_with_rows(dir.path(), 5);
        let (mut file, size) = backup_to_unnamed_file(&db, dir.path()).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
        assert_eq!(bytes.len() as u64, size);
        assert!(bytes.starts_with(b"SQLite format 3\0"));
        let copy = dir.path().join("copy.db");
        std::fs::write(&copy, &bytes).unwrap();
        assert_eq!(rows(&copy), 5);
        assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("backup")));
    }
}
