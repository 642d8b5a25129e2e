//! Changes between gateways on one PostgreSQL store, on any machine: every change the
//! store commits sends `NOTIFY tollgate_changes, '<origin> <words>'` in its own
//! transaction (`store::pg`), and each gateway holds one LISTEN connection of its own
//! ([`subscribe`]) whose notices it applies like the control socket's. The connection
//! is re-made with a backoff when it drops, and everything is re-read once it is back
//! (a notice sent meanwhile is lost); the periodic refresh stays the safety net.

use std::future::poll_fn;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::{Changes, Notice, Subscription};
use crate::store::pg::{PgOptions, CHANNEL};
use crate::store::Store;

/// Longest pause between two attempts to re-make the LISTEN connection.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Notices waiting for the gateway; past this, the oldest wait in the sender (the
/// listening task), not in memory without bound.
const QUEUE: usize = 64;

/// The changes other processes announce on the store; `None` for a SQLite store.
/// Starts listening at once, on the store's runtime; stops when dropped.
pub fn subscribe(store: &Store) -> Option<PgSubscription> {
    let pg = store.pg()?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let listener = Listener {
        options: pg.options().clone(),
        origin: pg.origin().to_owned(),
        tx,
    };
    pg.runtime().spawn(listener.run());
    Some(PgSubscription { rx })
}

/// The gateway's end: each notice, to apply (nobody waits for its acknowledgement).
pub struct PgSubscription {
    rx: mpsc::Receiver<Changes>,
}

#[async_trait]
impl Subscription for PgSubscription {
    async fn next(&mut self) -> Option<Notice> {
        let changes = self.rx.recv().await?;
        Some(Notice::new(changes).0)
    }
}

struct Listener {
    options: PgOptions,
    /// This process's own notices are skipped: its admin API applied them already.
    origin: String,
    tx: mpsc::Sender<Changes>,
}

impl Listener {
    async fn run(self) {
        let mut backoff = FIRST_BACKOFF;
        let mut failing = false;
        while !self.tx.is_closed() {
            match self.listen(&mut backoff, &mut failing).await {
                Ok(()) => return,
                Err(e) => {
                    if !failing {
                        log::warn!(
                            "changes: the LISTEN connection to {} is down ({e}); re-trying, and re-reading everything every second meanwhile",
                            self.options.redacted()
                        );
                        failing = true;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection's life: LISTEN, everything re-read (what changed before it was
    /// listening), then each notice forwarded. `Ok` once the gateway stops listening.
    async fn listen(&self, backoff: &mut Duration, failing: &mut bool) -> Result<(), String> {
        let mut config = self.options.connect_config().map_err(|e| e.to_string())?;
        let tls = self.options.tls().map_err(|e| e.to_string())?;
        crate::store::pg::tcp_timeouts(&mut config)
            .connect_timeout(Duration::from_secs(5))
            .application_name("tollgate-listen");
        let (client, mut conn) = config
            .connect(tls)
            .await
            .map_err(|e| crate::store::pg::message(&e))?;
        let (payloads, mut incoming) = mpsc::unbounded_channel::<String>();
        let driver = tokio::spawn(async move {
            loop {
                match poll_fn(|cx| conn.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if payloads.send(n.payload().to_owned()).is_err() {
                            return Ok(());
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(crate::store::pg::message(&e)),
                    None => return Ok(()),
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(|e| crate::store::pg::message(&e))?;
        if *failing {
            log::info!("changes: listening on {} again", self.options.redacted());
            *failing = false;
        }
        *backoff = FIRST_BACKOFF;
        if self.tx.send(Changes::ALL).await.is_err() {
            return Ok(());
        }
        while let Some(payload) = incoming.recv().await {
            let Some(changes) = parse(&payload, &self.origin) else {
                continue;
            };
            if self.tx.send(changes).await.is_err() {
                return Ok(());
            }
        }
        drop(client);
        match driver.await {
            Ok(Err(e)) => Err(e),
            _ => Err("the server closed the connection".into()),
        }
    }
}

/// The changes a payload names, unless `own` sent it.
fn parse(payload: &str, own: &str) -> Option<Changes> {
    let mut words = payload.split_ascii_whitespace();
    let origin = words.next()?;
    (origin != own).then(|| Changes::from_words(words))
}

/// Two subscriptions as one (the control socket's and PostgreSQL's): whichever has a
/// notice first; ends when both have ended.
pub struct Both(
    pub Option<Box<dyn Subscription>>,
    pub Option<Box<dyn Subscription>>,
);

async fn next_of(sub: &mut Option<Box<dyn Subscription>>) -> Option<Notice> {
    match sub {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

#[async_trait]
impl Subscription for Both {
    async fn next(&mut self) -> Option<Notice> {
        while self.0.is_some() || self.1.is_some() {
            // Both ends' `next` only wait on a channel: dropping the one not chosen
            // loses nothing.
            tokio::select! {
                n = next_of(&mut self.0) => match n {
                    Some(n) => return Some(n),
                    None => self.0 = None,
                },
                n = next_of(&mut self.1) => match n {
                    Some(n) => return Some(n),
                    None => self.1 = None,
                },
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::input::Amount;
    use crate::store::pg::test_db::TestDatabase;
    use crate::store::testing::add_user;
    use crate::store::{KeyCreate, PriceSet};
    use tollgate_filters::Role;

    #[test]
    fn payloads_name_their_origin_and_parts() {
        assert_eq!(
            parse("abc keys prices", "me"),
            Some(Changes::KEYS.union(Changes::PRICES))
        );
        assert_eq!(parse("me keys", "me"), None);
        assert_eq!(parse("abc routes", "me"), Some(Changes::ALL));
        assert_eq!(parse("", "me"), None);
    }

    async fn heard(sub: &mut PgSubscription) -> Changes {
        tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap()
            .changes
    }

    /// A change committed by one store handle (another process) reaches the other's
    /// subscription, after the first "everything" notice; its own do not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_elsewhere_is_heard_here() {
        let db = TestDatabase::create();
        let options = PgOptions::parse(db.url(), 2).unwrap();
        let here = Store::open_postgres(&options).unwrap();
        let there = Store::open_postgres(&options).unwrap();
        let mut sub = subscribe(&here).unwrap();
        assert_eq!(heard(&mut sub).await, Changes::ALL);
        // The LISTEN connection takes `storage.url`'s TLS as the pool's do (the test
        // server offers TLS; the URL leaves sslmode at libpq's prefer).
        assert_eq!(
            db.query_text(
                "SELECT string_agg(s.ssl::text, ',') FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'tollgate-listen' AND a.datname = current_database()",
            )
            .unwrap(),
            "true"
        );
        // Our own change is skipped: the next notice heard is the other process's.
        add_user(&here, "alice", Role::Member, 0);
        let h = crate::store::testing::hasher_in(tempfile::tempdir().unwrap().path());
        here.create_key(&h, &KeyCreate::for_user("alice"), 0)
            .unwrap();
        there
            .set_price(
                "gpt-*",
                &PriceSet {
                    input: Amount::Text("1".into()),
                    output: Amount::Text("2".into()),
                    cache_read: None,
                    cache_write: None,
                },
                0,
            )
            .unwrap();
        assert_eq!(heard(&mut sub).await, Changes::PRICES);
        let (row, _) = there
            .create_key(&h, &KeyCreate::for_user("alice"), 0)
            .unwrap();
        assert_eq!(heard(&mut sub).await, Changes::KEYS);
        there.revoke_key(&row.id, 1).unwrap();
        assert_eq!(heard(&mut sub).await, Changes::KEYS);
        // The LISTEN connection dropped (a server restart, a failover): it is re-made,
        // everything is re-read once, and notices are heard again.
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tollgate-listen' AND datname = current_database()",
        )
        .unwrap();
        assert_eq!(heard(&mut sub).await, Changes::ALL);
        there.delete_price("gpt-*").unwrap();
        assert_eq!(heard(&mut sub).await, Changes::PRICES);
    }
}
