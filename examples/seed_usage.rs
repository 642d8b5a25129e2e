//! Seeds a Tollgate store with usage events for the dashboard's page-time benchmark
//! (`load-tests/dashboard.sh`): `cargo run --release --example seed_usage -- DB EVENTS
//! DAYS`. The events are spread evenly over the last DAYS days, over the store's users
//! and keys (make them first with `tollgate user add` / `key create`), a dozen models,
//! three upstreams, and a few errors, streams and estimates; they go in through the
//! usage writer's own `Store::insert_usage`, so the per-day rollups are kept exactly as
//! a running gateway keeps them. Deterministic: the same arguments give the same events.

use std::path::PathBuf;

use tollgate::store::Store;
use tollgate_filters::metering::UsageEvent;
use tollgate_filters::usage::Usage;

const MODELS: [&str; 12] = [
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "o3-mini",
    "claude-sonnet-4",
    "claude-haiku-3.5",
    "claude-opus-4",
    "gemini-2.0-flash",
    "gemini-2.5-pro",
    "llama-3.3-70b",
    "mistral-large",
    "unpriced-model",
];
const UPSTREAMS: [&str; 3] = ["openai", "anthropic", "gemini"];
/// Events per `insert_usage` call (the writer's batches are smaller; larger is faster).
const BATCH: usize = 5_000;

/// A linear congruential generator: numbers below `m`, the same every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, m: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % m
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, events, days] = args.as_slice() else {
        return Err("usage: seed_usage DB EVENTS DAYS".into());
    };
    let (events, days): (usize, i64) = (events.parse()?, days.parse()?);
    let store = Store::open(&PathBuf::from(db))?;
    let users = store.list_users()?;
    let keys: Vec<(String, i64)> = store
        .list_keys(None)?
        .into_iter()
        .filter_map(|k| {
            let id = users.iter().find(|u| u.username == k.user)?.id;
            Some((k.id, id))
        })
        .collect();
    if keys.is_empty() {
        return Err("the store has no keys: create users and keys first".into());
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let start_ms = now_ms - days * 86_400_000;
    let step_ms = (days * 86_400_000 / events.max(1) as i64).max(1);
    let mut rng = Lcg(42);
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..events {
        // A few keys carry most traffic, as in real deployments.
        let k = (rng.below(keys.len() as u64) * rng.below(keys.len() as u64)) as usize / keys.len();
        let (key_id, user_id) = &keys[k];
        let m = rng.below(MODELS.len() as u64) as usize;
        let status =
            [200, 200, 200, 200, 200, 200, 200, 200, 200, 429, 500, 400][rng.below(12) as usize];
        let ok = status == 200;
        let input = if ok { 50 + rng.below(8_000) } else { 0 };
        let output = if ok { rng.below(2_000) } else { 0 };
        batch.push(UsageEvent {
            request_id: format!("seed-{i}"),
            ts_ms: start_ms + i as i64 * step_ms,
            key_id: Some(key_id.clone()),
            user_id: Some(*user_id),
            upstream: Some(UPSTREAMS[m % 3].to_owned()),
            model_requested: Some(MODELS[m].to_owned()),
            model_served: ok.then(|| MODELS[m].to_owned()),
            dialect: "openai",
            upstream_kind: Some("openai"),
            endpoint: "chat_completions",
            streamed: rng.below(2) == 0,
            status,
            usage: Usage {
                input,
                output,
                cache_read: if ok { rng.below(input / 2 + 1) } else { 0 },
                cache_write: if ok { rng.below(200) } else { 0 },
                reasoning: if ok && m == 3 {
                    rng.below(output + 1)
                } else {
                    0
                },
            },
            estimated: rng.below(20) == 0,
            cost_nanos: input * 150 + output * 600,
            priced: m != 11,
            ttfb_ms: ok.then(|| 100 + rng.below(1_500)),
            total_ms: 200 + rng.below(20_000),
            overhead_us: 0,
            error: None,
            attempts: 1 + u32::from(rng.below(10) == 0),
        });
        if batch.len() == BATCH {
            store.insert_usage(&batch)?;
            batch.clear();
        }
    }
    store.insert_usage(&batch)?;
    println!("{events} events over {days} days, {} keys", keys.len());
    Ok(())
}
