//! The dashboard's reads of the rollups, summed in Rust in one pass over the rows of a
//! day range. SQLite answers a `GROUP BY` by sorting every row it reads into a
//! temporary B-tree, and the overflow-proof sums (`super::super::usage::wide_sum`) are
//! two expressions per figure: on 1,000,000 events (177,000 rollup rows over 90 days)
//! that made each report 100-200 ms, and the overview five of them. Here the rows come
//! in primary-key order for the days asked (`day` leads the key), each figure is added
//! exactly in 128 bits (negatives as 0, as `wide_sum` does) and saturated at `u64::MAX`
//! at the end: the figures the SQL gives, for the same groups in the same order.
//! (SQLite's own `SUM(MAX(col, 0))` per (day, key, user), a prefix of the key and so
//! without a sort, was tried: its aggregate steps cost more than Rust reading the
//! columns.)

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection};

use super::super::usage::UsageRow;
use super::super::{GroupBy, StoreError};
use super::{DayRange, KeySpend, OverviewSums, Totals};

/// The figure columns, in the order of [`Totals`]' sums.
const FIGURES: [&str; 9] = [
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "estimated",
    "cost_nanos",
    "errors",
];
/// The cost's place among the figures.
const COST: usize = 7;

/// The columns a read needs besides the figures: each column read costs every row a
/// decode in SQLite and a call through rusqlite, so a read asks for no more.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Need {
    pub day: bool,
    pub key: bool,
    pub user: bool,
    pub upstream: bool,
    pub model: bool,
    /// Only this figure (its place in [`FIGURES`]; the others read as 0).
    pub only: Option<usize>,
}

impl Need {
    fn of(by: GroupBy) -> Need {
        let mut need = Need::default();
        match by {
            GroupBy::Key => need.key = true,
            GroupBy::User => need.user = true,
            GroupBy::Model => need.model = true,
            GroupBy::Upstream => need.upstream = true,
            GroupBy::Day => need.day = true,
        }
        need
    }

    /// The `SELECT` list: the group columns asked for, then the figures.
    fn columns(&self) -> String {
        let groups = [
            (self.day, "day"),
            (self.key, "key_id"),
            (self.user, "user_id"),
            (self.upstream, "upstream"),
            (self.model, "model"),
        ];
        let figures: &[&str] = match self.only {
            Some(i) => &FIGURES[i..=i],
            None => &FIGURES,
        };
        groups
            .iter()
            .filter(|g| g.0)
            .map(|g| g.1)
            .chain(figures.iter().copied())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One group's figures summed so far: requests, the five token buckets, estimated
/// requests, cost, errors.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Acc([u128; 9]);

impl Acc {
    fn add(&mut self, figures: &[i64; 9]) {
        for (sum, v) in self.0.iter_mut().zip(figures) {
            *sum += (*v).max(0) as u128;
        }
    }

    fn merge(&mut self, other: &Acc) {
        for (sum, v) in self.0.iter_mut().zip(other.0) {
            *sum += v;
        }
    }

    pub(super) fn totals(&self, group: String) -> Totals {
        let n = |i: usize| u64::try_from(self.0[i]).unwrap_or(u64::MAX);
        Totals {
            usage: UsageRow {
                group,
                requests: n(0),
                input_tokens: n(1),
                output_tokens: n(2),
                cache_read_tokens: n(3),
                cache_write_tokens: n(4),
                reasoning_tokens: n(5),
                estimated_requests: n(6),
                cost_nanos: n(7),
            },
            errors: n(8),
        }
    }
}

/// One rollup row as read: the group's columns borrowed from the statement.
pub(super) struct Rolled<'r> {
    pub day: i64,
    pub key_id: &'r str,
    pub user_id: i64,
    pub upstream: &'r str,
    pub model: &'r str,
    pub figures: [i64; 9],
}

/// Calls `each` with every rollup row of `days` (of `user`'s events when given), its
/// columns that `need` does not ask for left empty.
pub(super) fn scan(
    conn: &Connection,
    days: DayRange,
    user: Option<i64>,
    need: Need,
    mut each: impl FnMut(&Rolled<'_>),
) -> rusqlite::Result<()> {
    // A range on `day` (not `?1 IS NULL OR ...`, which no index can serve).
    let filter = match user {
        None => "day BETWEEN ?1 AND ?2",
        Some(_) => "user_id = ?3 AND day BETWEEN ?1 AND ?2",
    };
    let sql = format!("SELECT {} FROM usage_daily WHERE {filter}", need.columns());
    let mut st = conn.prepare_cached(&sql)?;
    let mut rows = match user {
        None => st.query(params![days.first(), days.last()])?,
        Some(u) => st.query(params![days.first(), days.last(), u])?,
    };
    while let Some(r) = rows.next()? {
        let mut at = 0;
        let mut next = |wanted: bool| {
            let i = at;
            at += usize::from(wanted);
            wanted.then_some(i)
        };
        let (day, key, uid, upstream, model) = (
            next(need.day),
            next(need.key),
            next(need.user),
            next(need.upstream),
            next(need.model),
        );
        let mut figures = [0i64; 9];
        match need.only {
            Some(i) => figures[i] = r.get(at)?,
            None => {
                for (i, f) in figures.iter_mut().enumerate() {
                    *f = r.get(at + i)?;
                }
            }
        }
        let text = |i: Option<usize>| match i {
            Some(i) => r.get_ref(i)?.as_str().map_err(rusqlite::Error::from),
            None => Ok(""),
        };
        each(&Rolled {
            day: day.map(|i| r.get(i)).transpose()?.unwrap_or(0),
            key_id: text(key)?,
            user_id: uid.map(|i| r.get(i)).transpose()?.unwrap_or(0),
            upstream: text(upstream)?,
            model: text(model)?,
            figures,
        });
    }
    Ok(())
}

/// User names by id (a group of a user no longer stored is `-`, as the reports say).
pub(super) fn user_names(conn: &Connection) -> rusqlite::Result<HashMap<i64, String>> {
    let mut st = conn.prepare_cached("SELECT id, username FROM users")?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Sums per group, keyed the cheap way while reading (by id for users, by day number
/// for days), labelled once at the end.
#[derive(Default)]
pub(super) struct Groups {
    by_text: HashMap<String, Acc>,
    by_number: HashMap<i64, Acc>,
}

impl Groups {
    /// Adds `row` to its group of `by`.
    pub(super) fn add(&mut self, by: GroupBy, row: &Rolled<'_>) {
        let text = match by {
            GroupBy::Key => row.key_id,
            GroupBy::Model => row.model,
            GroupBy::Upstream => row.upstream,
            GroupBy::User => return self.number(row.user_id).add(&row.figures),
            GroupBy::Day => return self.number(row.day).add(&row.figures),
        };
        match self.by_text.get_mut(text) {
            Some(acc) => acc.add(&row.figures),
            None => {
                let mut acc = Acc::default();
                acc.add(&row.figures);
                self.by_text.insert(text.to_owned(), acc);
            }
        }
    }

    fn number(&mut self, n: i64) -> &mut Acc {
        self.by_number.entry(n).or_default()
    }

    /// The groups' totals, labelled as the reports label them, ordered by label.
    pub(super) fn totals(self, by: GroupBy, names: &HashMap<i64, String>) -> Vec<Totals> {
        let mut labelled: BTreeMap<String, Acc> = self.by_text.into_iter().collect();
        for (n, acc) in self.by_number {
            let label = match by {
                GroupBy::Day => date(n),
                _ => names.get(&n).cloned().unwrap_or_else(|| "-".to_owned()),
            };
            labelled.entry(label).or_default().merge(&acc);
        }
        labelled
            .into_iter()
            .map(|(label, acc)| acc.totals(label))
            .collect()
    }
}

/// A day number as SQLite's `date(day * 86400, 'unixepoch')` writes it.
fn date(day: i64) -> String {
    let (y, m, d) = tollgate_filters::clock::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Totals grouped by `by` over `days` ([`super::Store::rollup_report`]).
pub(super) fn report(
    conn: &Connection,
    by: GroupBy,
    days: DayRange,
    user: Option<i64>,
) -> Result<Vec<Totals>, StoreError> {
    let mut groups = Groups::default();
    scan(conn, days, user, Need::of(by), |row| groups.add(by, row))?;
    let names = match by {
        GroupBy::User => user_names(conn)?,
        _ => HashMap::new(),
    };
    Ok(groups.totals(by, &names))
}

/// The requests over `days` ([`super::Store::rollup_requests`]).
pub(super) fn requests(conn: &Connection, days: DayRange) -> Result<u64, StoreError> {
    let mut acc = Acc::default();
    let need = Need {
        only: Some(0),
        ..Need::default()
    };
    scan(conn, days, None, need, |row| acc.add(&row.figures))?;
    Ok(acc.totals(String::new()).usage.requests)
}

/// All totals over `days` ([`super::Store::rollup_totals`]).
pub(super) fn totals(
    conn: &Connection,
    days: DayRange,
    user: Option<i64>,
) -> Result<Totals, StoreError> {
    let mut acc = Acc::default();
    scan(conn, days, user, Need::default(), |row| {
        acc.add(&row.figures)
    })?;
    Ok(acc.totals(String::new()))
}

/// Cost per key and user over today, the month and (`all_time`) all time
/// ([`super::Store::rollup_spend`]), ordered by key id and user id.
pub(super) fn spend(
    conn: &Connection,
    (day_from, month_from, today): (i64, i64, i64),
    all_time: bool,
    user: Option<i64>,
) -> Result<Vec<KeySpend>, StoreError> {
    let mut by_key: BTreeMap<(String, i64), [u128; 3]> = BTreeMap::new();
    let mut last: Option<((String, i64), [u128; 3])> = None;
    let need = Need {
        day: true,
        key: true,
        user: true,
        only: Some(COST),
        ..Need::default()
    };
    let days = match all_time {
        true => DayRange::all(),
        false => DayRange::days(day_from.min(month_from), today),
    };
    scan(conn, days, user, need, |row| {
        // Rows come ordered by day first: a key's rows are not together, but a run of
        // one key's rows (one day, several models) is common; keep the current one.
        let same = last
            .as_ref()
            .is_some_and(|(k, _)| k.0 == row.key_id && k.1 == row.user_id);
        if !same {
            if let Some((k, v)) = last.take() {
                add_spans(by_key.entry(k).or_default(), &v);
            }
            last = Some(((row.key_id.to_owned(), row.user_id), [0; 3]));
        }
        if let Some((_, spans)) = last.as_mut() {
            let cost = row.figures[COST].max(0) as u128;
            if (day_from..=today).contains(&row.day) {
                spans[0] += cost;
            }
            if (month_from..=today).contains(&row.day) {
                spans[1] += cost;
            }
            if all_time {
                spans[2] += cost;
            }
        }
    })?;
    if let Some((k, v)) = last {
        add_spans(by_key.entry(k).or_default(), &v);
    }
    let names = user_names(conn)?;
    let sat = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
    Ok(by_key
        .into_iter()
        .map(|((key_id, user_id), s)| KeySpend {
            key_id,
            user: names
                .get(&user_id)
                .cloned()
                .unwrap_or_else(|| "-".to_owned()),
            day: sat(s[0]),
            month: sat(s[1]),
            total: sat(s[2]),
        })
        .collect())
}

fn add_spans(into: &mut [u128; 3], v: &[u128; 3]) {
    for (a, b) in into.iter_mut().zip(v) {
        *a += b;
    }
}

/// The overview's figures in one pass ([`super::Store::rollup_overview`]).
pub(super) fn overview(
    conn: &Connection,
    today: i64,
    month_from: i64,
    series_from: i64,
    user: Option<i64>,
) -> Result<OverviewSums, StoreError> {
    let (mut day, mut month) = (Acc::default(), Acc::default());
    let (mut models, mut users, mut keys) =
        (Groups::default(), Groups::default(), Groups::default());
    let mut series = vec![0u128; usize::try_from(today - series_from + 1).unwrap_or(0)];
    let days = DayRange::days(month_from.min(series_from), today);
    let need = Need {
        day: true,
        key: true,
        user: true,
        model: true,
        ..Need::default()
    };
    scan(conn, days, user, need, |row| {
        if row.day == today {
            day.add(&row.figures);
        }
        if row.day >= month_from {
            month.add(&row.figures);
            models.add(GroupBy::Model, row);
            users.add(GroupBy::User, row);
            keys.add(GroupBy::Key, row);
        }
        if let Some(cost) = usize::try_from(row.day - series_from)
            .ok()
            .and_then(|i| series.get_mut(i))
        {
            *cost += row.figures[COST].max(0) as u128;
        }
    })?;
    let names = user_names(conn)?;
    Ok(OverviewSums {
        today: day.totals(String::new()),
        month: month.totals(String::new()),
        models: models.totals(GroupBy::Model, &names),
        users: users.totals(GroupBy::User, &names),
        keys: keys.totals(GroupBy::Key, &names),
        series: (series_from..)
            .zip(series)
            .map(|(d, c)| (d, u64::try_from(c).unwrap_or(u64::MAX)))
            .collect(),
    })
}
