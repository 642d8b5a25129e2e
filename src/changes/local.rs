//! Changes pushed to the gateways on this machine: each serving process listens on a
//! Unix socket of its own in `<storage dir>/control/` (directory mode 0700, socket
//! 0600), named `<pid>-<random>.sock`. An announcer lists the directory, connects to
//! every socket at once, sends one line (`tollgate-changes keys prices`) and waits for
//! the answer (`ok`, or `error <why>`) at most [`ACK_TIMEOUT`]. A socket nobody listens
//! on any more (a gateway killed without its clean exit) refuses the connection: it is
//! removed and skipped. Several gateways on one store (a graceful upgrade runs the old
//! and the new side by side) each have their own socket, so each is told.
//!
//! The line carries no secret: it only says which part of the store to read again.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc as async_mpsc;
use tokio::task::JoinHandle;

use super::{Announce, Changes, Delivery, Notice, Subscription, ACK_TIMEOUT};

/// The first word of every notice line.
const MAGIC: &str = "tollgate-changes";
/// The longest notice line read.
const MAX_LINE: u64 = 256;
/// Notices received and not yet taken by the listener.
const QUEUE: usize = 64;

/// The control directory of a store whose files live in `storage_dir`.
pub fn control_dir(storage_dir: &Path) -> PathBuf {
    storage_dir.join("control")
}

/// The gateways of one store on this machine, as an announcer sees them.
#[derive(Debug, Clone)]
pub struct ControlDir {
    dir: PathBuf,
    /// This process's own socket (a gateway announcing its admin API's changes has
    /// applied them already).
    own: Option<PathBuf>,
}

impl ControlDir {
    /// The announcer of a process that serves nothing (the CLI).
    pub fn new(storage_dir: &Path) -> Self {
        ControlDir {
            dir: control_dir(storage_dir),
            own: None,
        }
    }

    /// The sockets to tell, this process's own left out.
    fn sockets(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let is_socket = path.extension().is_some_and(|e| e == "sock");
            if is_socket && Some(&path) != self.own.as_ref() {
                found.push(path);
            }
        }
        Ok(found)
    }
}

/// What telling one socket came to.
enum Told {
    Applied,
    /// Nobody listens there any more (the socket was removed) or it is gone.
    NotRunning,
    Failed(String),
}

/// Sends `line` to the gateway listening at `path` and waits for its answer.
fn tell(path: &Path, line: &str) -> Told {
    let stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            // A socket file left by a process that did not exit cleanly.
            let _ = std::fs::remove_file(path);
            return Told::NotRunning;
        }
        Err(e) if e.kind() == ErrorKind::NotFound => return Told::NotRunning,
        Err(e) => return Told::Failed(format!("cannot reach it: {e}")),
    };
    let exchange = || -> std::io::Result<String> {
        stream.set_write_timeout(Some(ACK_TIMEOUT))?;
        stream.set_read_timeout(Some(ACK_TIMEOUT))?;
        (&stream).write_all(line.as_bytes())?;
        let mut answer = String::new();
        BufReader::new((&stream).take(MAX_LINE)).read_line(&mut answer)?;
        Ok(answer)
    };
    match exchange() {
        Ok(a) if a.trim_end() == "ok" => Told::Applied,
        Ok(a) => match a.trim_end().strip_prefix("error ") {
            Some(why) => Told::Failed(format!("it could not apply the change: {why}")),
            None => Told::Failed("it did not acknowledge the change".to_owned()),
        },
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Told::Failed(
            format!("it did not acknowledge within {} s", ACK_TIMEOUT.as_secs()),
        ),
        Err(e) => Told::Failed(format!("it did not acknowledge: {e}")),
    }
}

impl Announce for ControlDir {
    fn announce(&self, changes: Changes) -> Delivery {
        let mut delivery = Delivery::default();
        let sockets = match self.sockets() {
            Ok(s) => s,
            // No gateway ever ran on this store: nobody to tell.
            Err(e) if e.kind() == ErrorKind::NotFound => return delivery,
            Err(e) => {
                delivery.failed.push(format!(
                    "cannot list the running gateways in {}: {e}",
                    self.dir.display()
                ));
                return delivery;
            }
        };
        let line = format!("{MAGIC} {}\n", changes.words().join(" "));
        // All at once, each on a thread: a connect to a stopped process can block, and
        // the bound is for the whole announcement, not per gateway.
        let (tx, rx) = mpsc::channel();
        for path in &sockets {
            let (tx, path, line) = (tx.clone(), path.clone(), line.clone());
            std::thread::spawn(move || {
                let told = tell(&path, &line);
                let _ = tx.send((path, told));
            });
        }
        drop(tx);
        let deadline = Instant::now() + ACK_TIMEOUT + std::time::Duration::from_millis(500);
        let mut answered = Vec::new();
        while answered.len() < sockets.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok((path, told)) = rx.recv_timeout(left) else {
                break;
            };
            match told {
                Told::Applied => delivery.applied += 1,
                Told::NotRunning => {}
                Told::Failed(why) => delivery.failed.push(unapplied(&path, &why)),
            }
            answered.push(path);
        }
        for path in sockets.iter().filter(|p| !answered.contains(p)) {
            let why = format!("it did not acknowledge within {} s", ACK_TIMEOUT.as_secs());
            delivery.failed.push(unapplied(path, &why));
        }
        delivery
    }
}

/// The line telling an operator that the gateway at `path` may not have the change.
fn unapplied(path: &Path, why: &str) -> String {
    format!(
        "the gateway listening on {} has not applied the change: {why}; it will at its next periodic refresh (within a second) unless it is stuck",
        path.display()
    )
}

/// A gateway's control socket: its notices, and the announcer for its own changes
/// (which leaves it out).
pub struct Control {
    pub announcer: ControlDir,
    pub subscription: LocalSubscription,
}

/// Creates this process's control socket. Call it before the keys are first read, so
/// that no change committed after that read can miss this process: a notice sent
/// before the listener runs waits in the socket's backlog.
pub fn listen(storage_dir: &Path) -> std::io::Result<Control> {
    let dir = control_dir(storage_dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let path = dir.join(format!(
        "{}-{:016x}.sock",
        std::process::id(),
        rand::random::<u64>()
    ));
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(Control {
        announcer: ControlDir {
            dir,
            own: Some(path.clone()),
        },
        subscription: LocalSubscription {
            listener: Some(listener),
            path,
            notices: None,
            accepting: None,
        },
    })
}

/// The notices sent to this process's control socket. Dropping it closes the socket
/// and removes its file (a clean exit); a file left by a crash is removed by the next
/// announcer that finds nobody listening.
pub struct LocalSubscription {
    /// The socket as bound, until the listener's runtime takes it over.
    listener: Option<UnixListener>,
    path: PathBuf,
    notices: Option<async_mpsc::Receiver<Notice>>,
    accepting: Option<JoinHandle<()>>,
}

impl Drop for LocalSubscription {
    fn drop(&mut self) {
        if let Some(task) = self.accepting.take() {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[async_trait]
impl Subscription for LocalSubscription {
    async fn next(&mut self) -> Option<Notice> {
        if let Some(std_listener) = self.listener.take() {
            let listener = match tokio::net::UnixListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => {
                    log::error!("control socket {}: {e}", self.path.display());
                    return None;
                }
            };
            let (tx, rx) = async_mpsc::channel(QUEUE);
            self.notices = Some(rx);
            self.accepting = Some(tokio::spawn(accept(listener, tx)));
        }
        self.notices.as_mut()?.recv().await
    }
}

/// Accepts announcers, each served by a task of its own.
async fn accept(listener: tokio::net::UnixListener, tx: async_mpsc::Sender<Notice>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, tx.clone()));
            }
            Err(e) => {
                // Out of file descriptors, say: try again in a moment.
                log::warn!("control socket: cannot accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one notice, hands it to the listener, and answers once it is applied.
async fn answer(stream: tokio::net::UnixStream, tx: async_mpsc::Sender<Notice>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_LINE));
    let read = tokio::time::timeout(ACK_TIMEOUT, reader.read_line(&mut line)).await;
    let mut words = line.split_whitespace();
    if !matches!(read, Ok(Ok(_))) || words.next() != Some(MAGIC) {
        return;
    }
    let (notice, applied) = Notice::new(Changes::from_words(words));
    if tx.send(notice).await.is_err() {
        return;
    }
    let reply = match applied.await {
        Ok(Ok(())) => "ok\n".to_owned(),
        Ok(Err(why)) => format!("error {}\n", why.replace('\n', " ")),
        Err(_) => "error the gateway is stopping\n".to_owned(),
    };
    let _ = write.write_all(reply.as_bytes()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_to_tell_is_no_failure() {
        let dir = tempfile::tempdir().unwrap();
        let d = ControlDir::new(dir.path()).announce(Changes::KEYS);
        assert_eq!((d.applied, d.failed.len()), (0, 0));
        // A socket left by a crashed gateway is removed.
        std::fs::create_dir_all(control_dir(dir.path())).unwrap();
        let stale = control_dir(dir.path()).join("1-0.sock");
        drop(UnixListener::bind(&stale).unwrap());
        assert!(stale.exists());
        let d = ControlDir::new(dir.path()).announce(Changes::KEYS);
        assert_eq!((d.applied, d.failed.len()), (0, 0));
        assert!(!stale.exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_notice_is_answered_once_applied() {
        let dir = tempfile::tempdir().unwrap();
        let Control {
            announcer,
            mut subscription,
        } = listen(dir.path()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&control_dir(dir.path())), 0o700);
        assert_eq!(mode(&subscription.path), 0o600);
        // The process's own announcer leaves its own socket out; another one reaches it.
        assert_eq!(announcer.announce(Changes::KEYS).applied, 0);
        let cli = ControlDir::new(dir.path());
        let sent = tokio::task::spawn_blocking(move || cli.announce(Changes::PRICES));
        let notice = subscription.next().await.unwrap();
        assert_eq!(notice.changes, Changes::PRICES);
        notice.ack(Ok(()));
        let d = sent.await.unwrap();
        assert_eq!((d.applied, d.failed.len()), (1, 0));
        // A failure to apply is reported with its reason.
        let cli = ControlDir::new(dir.path());
        let sent = tokio::task::spawn_blocking(move || cli.announce(Changes::ALL));
        let notice = subscription.next().await.unwrap();
        assert_eq!(notice.changes, Changes::ALL);
        notice.ack(Err("store: disk I/O error".into()));
        let d = sent.await.unwrap();
        assert_eq!(d.applied, 0);
        assert!(d.failed[0].contains("could not apply the change: store: disk I/O error"));
        // A clean exit removes the socket.
        let path = subscription.path.clone();
        drop(subscription);
        assert!(!path.exists());
    }
}
