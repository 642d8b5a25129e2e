//! Figures about the store itself, for the dashboard's system page.

use super::{Store, StoreError};

impl Store {
    /// The database's size in bytes (pages in use and free; the WAL not counted); on
    /// PostgreSQL, the database's as the server counts it.
    pub fn size_bytes(&self) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.size_bytes();
        }
        let conn = self.conn()?;
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok((pages.max(0) as u64).saturating_mul(size.max(0) as u64))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::temp_store;

    #[test]
    fn the_size_is_the_file_size() {
        let (dir, s) = temp_store();
        let size = s.size_bytes().unwrap();
        s.conn()
            .unwrap()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        let on_disk = std::fs::metadata(dir.path().join("t.db")).unwrap().len();
        assert!(size > 0);
        assert_eq!(size, on_disk);
    }
}
