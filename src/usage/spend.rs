//! Seeding the in-memory budget tracker from the store at start-up, so that a restart
//! does not forget what keys and users already spent in their current periods.

use std::collections::HashMap;

use tollgate_filters::context::BudgetPeriod;
use tollgate_filters::limits::{period_start, SpendTracker};

use crate::store::{Store, StoreError};

/// Loads each budgeted key's and user's spend in its current period.
pub fn seed(store: &Store, tracker: &SpendTracker, now: i64) -> Result<(), StoreError> {
    let periods = [BudgetPeriod::Day, BudgetPeriod::Month, BudgetPeriod::Total];
    let mut spent = HashMap::new();
    for p in periods {
        let (keys, users) = store.spend_since(period_start(p, now) * 1000)?;
        let keys: HashMap<String, u64> = keys.into_iter().collect();
        let users: HashMap<i64, u64> = users.into_iter().collect();
        spent.insert(p.as_str(), (keys, users));
    }
    let mut users_seeded = std::collections::HashSet::new();
    for k in store.all_keys_for_auth()? {
        if let Some((_, period)) = &k.budget {
            if let (Some(p), Some((keys, _))) =
                (BudgetPeriod::parse(period), spent.get(period.as_str()))
            {
                tracker.seed_key(
                    &k.id,
                    period_start(p, now),
                    keys.get(&k.id).copied().unwrap_or(0),
                );
            }
        }
        if let Some((_, period)) = &k.user_budget {
            if let (Some(p), Some((_, users))) =
                (BudgetPeriod::parse(period), spent.get(period.as_str()))
            {
                if users_seeded.insert(k.user_id) {
                    tracker.seed_user(
                        k.user_id,
                        period_start(p, now),
                        users.get(&k.user_id).copied().unwrap_or(0),
                    );
                }
            }
        }
    }
    Ok(())
}
