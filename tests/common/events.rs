//! The usage events a gateway stored, read from its SQLite store as JSON objects (one per
//! row of `usage_events`, keyed by column name): [`Gateway::usage_events`] for what is
//! there now, [`Gateway::usage_events_after`] to wait (bounded) until the writer stored
//! at least so many. For assertions on single requests (endpoint, dialect, status,
//! tokens) that the grouped `usage` report cannot show.

use std::time::Duration;

use serde_json::{Map, Value};

use super::gateway::Gateway;
use super::wait::eventually;

impl Gateway {
    /// Every stored usage event, oldest first.
    pub fn usage_events(&self) -> Vec<Value> {
        let conn = rusqlite::Connection::open(self.db_path()).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let mut stmt = conn
            .prepare("SELECT * FROM usage_events ORDER BY ts, rowid")
            .unwrap();
        let names: Vec<String> = stmt.column_names().iter().map(|n| n.to_string()).collect();
        stmt.query_map([], |row| {
            let mut obj = Map::new();
            for (i, name) in names.iter().enumerate() {
                let v = match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(n) => Value::from(n),
                    rusqlite::types::ValueRef::Real(f) => Value::from(f),
                    rusqlite::types::ValueRef::Text(t) => {
                        Value::from(String::from_utf8_lossy(t).into_owned())
                    }
                    rusqlite::types::ValueRef::Blob(b) => Value::from(b.len()),
                };
                obj.insert(name.clone(), v);
            }
            Ok(Value::Object(obj))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    /// Waits (bounded) until at least `n` usage events are stored; returns them all.
    pub async fn usage_events_after(&self, n: usize) -> Vec<Value> {
        eventually(
            &format!("{n} usage events to be stored"),
            Duration::from_secs(10),
            async || {
                let events = self.usage_events();
                if events.len() >= n {
                    Ok(events)
                } else {
                    Err(format!("{} stored", events.len()))
                }
            },
        )
        .await
    }
}
