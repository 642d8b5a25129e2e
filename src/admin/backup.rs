//! `GET /admin/backup`: the snapshot `tollgate backup` writes, as a download. It is taken
//! into an unnamed file in the storage directory (same file system as the store, never
//! a possibly small tmpfs) and streamed from there, so neither memory nor the disk
//! keeps a copy once the download ends; audited with its size. A PostgreSQL store is
//! answered 501, pointing at `pg_dump`.

use http::Response;

use super::auth::Caller;
use super::serve::file_response;
use super::{blocking, AdminApp, ApiError, Req};
use crate::commands::format_rfc3339;
use crate::store::backup::backup_to_unnamed_file;

impl AdminApp {
    pub(crate) async fn backup(
        &self,
        req: &Req,
        caller: &Caller,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let Some(db) = self.store.path().map(|p| p.to_path_buf()) else {
            return Err(ApiError::new(
                501,
                "the store is PostgreSQL: back it up with pg_dump",
            ));
        };
        let dir = match db.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let (file, size) = blocking(move || {
            backup_to_unnamed_file(&db, &dir).map_err(|e| ApiError::internal(&e.to_string()))
        })
        .await?;
        self.audit(
            req,
            &caller.username,
            "backup",
            None,
            serde_json::json!({ "bytes": size }),
        )
        .await;
        let now = tollgate_filters::clock::system_clock();
        let name = format!("tollgate-{}.db", format_rfc3339(now).replace(':', ""));
        Ok(file_response(file, size, &name))
    }
}
