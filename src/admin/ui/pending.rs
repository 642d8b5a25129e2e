//! What the dashboard needs from work on other branches, behind one small interface:
//! price overrides in the store (`GET/PUT/DELETE /admin/prices`), key and user updates
//! in place (`PATCH /admin/keys/{id}`, `PATCH /admin/users/{id}`). The pages (tables, forms, links) are built against these
//! methods; until those branches are merged each answers [`Pending::NotAvailable`] and
//! [`available`] is false, so the forms show disabled with a note. Wiring one up is
//! replacing its body with a call to the function the branch's admin endpoint uses
//! (the store change, its audit entry, telling running gateways) and flipping its line
//! in [`available`]. They take what such a function needs: the request (for the audit
//! entry's source) and the caller.

use tollgate_filters::Secret;

use crate::admin::auth::Caller;
use crate::admin::{AdminApp, ApiError, Req};
use crate::store::{KeyRow, StoreError, UserRow};

/// A capability that waits on another branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Price overrides kept in the store.
    Prices,
    /// `PATCH /admin/keys/{id}`'s store function.
    KeyUpdate,
    /// `PATCH /admin/users/{id}`'s store function.
    UserUpdate,
}

impl Feature {
    fn what(self) -> &'static str {
        match self {
            Feature::Prices => "Price overrides",
            Feature::KeyUpdate => "Editing a key in place",
            Feature::UserUpdate => "Editing a user in place",
        }
    }
}

/// Whether `feature` is in this build.
pub fn available(feature: Feature) -> bool {
    match feature {
        Feature::Prices | Feature::KeyUpdate | Feature::UserUpdate => false,
    }
}

/// Why a pending action did not happen.
#[derive(Debug)]
pub enum Pending {
    NotAvailable(Feature),
    Store(StoreError),
}

impl From<StoreError> for Pending {
    fn from(e: StoreError) -> Self {
        Pending::Store(e)
    }
}

impl From<Pending> for ApiError {
    fn from(p: Pending) -> Self {
        match p {
            Pending::NotAvailable(f) => {
                ApiError::new(501, format!("{} is not in this build yet.", f.what()))
            }
            Pending::Store(e) => e.into(),
        }
    }
}

/// A price as typed in the pricing form: USD per million tokens, as text (checked by
/// the branch's function, like the CLI's and the API's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceEdit {
    pub pattern: String,
    pub input: String,
    pub output: String,
    pub cache_read: Option<String>,
    pub cache_write: Option<String>,
}

/// A key's changes as typed in its edit form; `None` leaves a field as it is, and
/// `budget_usd`/`rpm`/`tpm` `"none"` or `expires_in` `"never"` clears one (as
/// `tollgate key update` takes them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyEdit {
    pub name: Option<String>,
    pub models: Option<Vec<String>>,
    pub budget_usd: Option<String>,
    pub budget_period: Option<String>,
    pub rpm: Option<String>,
    pub tpm: Option<String>,
    pub expires_in: Option<String>,
}

/// A user's changes as typed in its edit form (`budget_usd` `"none"` clears it).
#[derive(Debug, Default)]
// Read once wired to the user-update branch's function.
#[allow(dead_code)]
pub struct UserEdit {
    pub role: Option<String>,
    pub budget_usd: Option<String>,
    pub budget_period: Option<String>,
    pub password: Option<Secret>,
}

impl AdminApp {
    /// Sets an override (wire to `PUT /admin/prices/{pattern}`'s function).
    pub(crate) async fn set_price_as(
        &self,
        _req: &Req,
        _caller: &Caller,
        _edit: &PriceEdit,
    ) -> Result<(), Pending> {
        Err(Pending::NotAvailable(Feature::Prices))
    }

    /// Deletes an override; whether there was one (wire to `DELETE
    /// /admin/prices/{pattern}`'s function).
    pub(crate) async fn delete_price_as(
        &self,
        _req: &Req,
        _caller: &Caller,
        _pattern: &str,
    ) -> Result<bool, Pending> {
        Err(Pending::NotAvailable(Feature::Prices))
    }

    /// Changes key `id` in place (wire to `PATCH /admin/keys/{id}`'s function).
    pub(crate) async fn update_key_as(
        &self,
        _req: &Req,
        _caller: &Caller,
        _id: &str,
        _edit: &KeyEdit,
    ) -> Result<KeyRow, Pending> {
        Err(Pending::NotAvailable(Feature::KeyUpdate))
    }

    /// Changes user `id` in place (wire to `PATCH /admin/users/{id}`'s function).
    pub(crate) async fn update_user_as(
        &self,
        _req: &Req,
        _caller: &Caller,
        _id: i64,
        _edit: &UserEdit,
    ) -> Result<UserRow, Pending> {
        Err(Pending::NotAvailable(Feature::UserUpdate))
    }
}
