//! The `tollgate` binary: parses the command line and runs one command. Exit codes: 0
//! success, 1 a user error (one clear line per problem on stderr), 2 a usage error.
//!
//! `main` reads top to bottom: parse, log, run one command, print. Each command loads
//! the config (and opens the store when it needs it), then calls the library: `serve`
//! in [`tollgate::server`], the store commands in [`tollgate::commands`].

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use tollgate::changes::local::ControlDir;
use tollgate::changes::{Announce, Changes};
use tollgate::cli::UserCommand;
use tollgate::cli::{
    Cli, Command, KeyCommand, PriceCommand, ProviderKeyCommand, UsageArgs, UsageCommand,
};
use tollgate::commands::provider_keys::{MasterKeySource, NewMasterKey};
use tollgate::commands::{self, CommandError};
use tollgate::config::{self, Fixed, Runtime};
use tollgate::keys::Keyring;
use tollgate::server::{self, ServeOptions};
use tollgate::store::secrets::{KeyHasher, MasterKey};
use tollgate::store::{GroupBy, KeyCreate, KeyUpdate, Store};
use tollgate_filters::Secret;

/// mimalloc instead of glibc's malloc: a proxy allocates and frees many small buffers per
/// request (headers, body chunks, futures), and glibc's free lists and consolidation
/// were ~10% of the proxy core's time under load (load-tests/RESULTS.md). Built without
/// transparent huge pages (`no_thp`): with them, 1,000 open streams took 214 MiB of RSS
/// instead of 93 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match run(cli) {
        Ok(out) => {
            if !out.is_empty() {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(out.as_bytes());
                let _ = stdout.flush();
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("tollgate: {message}");
            ExitCode::from(1)
        }
    }
}

/// `RUST_LOG` or a default level (`info` for `serve`, `warn` for the other commands),
/// as text or as one JSON object per line (`--log-format json`).
fn init_logging(cli: &Cli) {
    let default_level = if matches!(cli.command, Command::Serve { .. }) {
        "info"
    } else {
        "warn"
    };
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level));
    if cli.log_format == "json" {
        logger.format(|buf, record| {
            let line = serde_json::json!({
                "ts": buf.timestamp_millis().to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    logger.init();
}

/// Runs one command: the text to print, or the error line.
fn run(cli: Cli) -> Result<String, String> {
    let config = cli.config_path();
    match cli.command {
        Command::Serve { daemon, upgrade } => {
            server::serve(&config, ServeOptions { daemon, upgrade }).map_err(|e| e.to_string())?;
            Ok(String::new())
        }
        Command::Check => check(&config),
        Command::Reload => reload(&config),
        Command::User(c) => user(&config, c),
        Command::Key(c) => key(&config, c),
        Command::ProviderKey(c) => provider_key(&config, c),
        Command::Price(c) => price(&config, c),
        Command::RotateMasterKey { generate } => rotate_master_key(&config, generate),
        Command::Usage(u) => usage(&config, u),
        Command::Backup { file, force } => backup(&config, &file, force),
    }
}

/// `tollgate backup FILE [--force]`: the store is read as it is (not migrated).
fn backup(config: &Path, file: &Path, force: bool) -> Result<String, String> {
    let rt = config::load(config).map_err(|e| e.to_string())?;
    if let Some(pg) = &rt.fixed.storage_url {
        return Err(format!(
            "the store is PostgreSQL ({}): back it up with pg_dump (e.g. pg_dump --format=custom --file={} ...), not tollgate backup",
            pg.redacted(),
            file.display()
        ));
    }
    let db = &rt.fixed.storage_path;
    let size =
        tollgate::store::backup::backup_to_file(db, file, force).map_err(|e| e.to_string())?;
    Ok(format!(
        "wrote a snapshot of {} to {} ({size} bytes)\n",
        db.display(),
        file.display()
    ))
}

/// `tollgate user add|list|update|delete`.
fn user(config: &Path, c: UserCommand) -> Result<String, String> {
    let (rt, store) = open(config)?;
    match c {
        UserCommand::Add {
            mut user,
            password_stdin,
        } => {
            if password_stdin {
                user.password = Some(read_password()?);
            }
            cmd(commands::users::user_add(&store, &user, now()))
        }
        UserCommand::List { json } => cmd(commands::users::user_list(&store, json)),
        UserCommand::Update {
            name,
            mut update,
            password_stdin,
        } => {
            if password_stdin {
                update.password = Some(read_password()?);
            }
            announced(
                &rt.fixed,
                Changes::KEYS,
                commands::users::user_update(&store, &name, &update, now()),
            )
        }
        UserCommand::Delete { name } => announced(
            &rt.fixed,
            Changes::KEYS,
            commands::users::user_delete(&store, &name, now()),
        ),
    }
}

/// `tollgate key create|list|revoke|update`.
fn key(config: &Path, c: KeyCommand) -> Result<String, String> {
    let (rt, store) = open(config)?;
    match c {
        KeyCommand::Create(new) => {
            let new = KeyCreate {
                models: trimmed(new.models),
                ..new
            };
            let hasher = hasher(&rt.fixed, &store)?;
            cmd(commands::keys::key_create(&store, &hasher, &new, now()))
        }
        KeyCommand::List { user, json } => {
            cmd(commands::keys::key_list(&store, user.as_deref(), json))
        }
        KeyCommand::Revoke { id } => announced(
            &rt.fixed,
            Changes::KEYS,
            commands::keys::key_revoke(&store, &id, now()),
        ),
        KeyCommand::Update { id, update } => {
            let update = KeyUpdate {
                models: update.models.map(trimmed),
                ..update
            };
            announced(
                &rt.fixed,
                Changes::KEYS,
                commands::keys::key_update(&store, &id, &update, now()),
            )
        }
    }
}

/// `tollgate price list|set|delete`.
fn price(config: &Path, c: PriceCommand) -> Result<String, String> {
    let (rt, store) = open(config)?;
    match c {
        PriceCommand::List { json } => {
            let overrides = store.price_overrides().map_err(|e| e.to_string())?;
            let rows = tollgate::config::prices::effective(&rt.reloadable.pricing, &overrides);
            Ok(commands::prices::price_list(&rows, json))
        }
        PriceCommand::Set { pattern, price } => announced(
            &rt.fixed,
            Changes::PRICES,
            commands::prices::price_set(&store, &pattern, &price, now()),
        ),
        PriceCommand::Delete { pattern } => announced(
            &rt.fixed,
            Changes::PRICES,
            commands::prices::price_delete(&store, &pattern, now()),
        ),
    }
}

/// `tollgate provider-key set|delete`.
fn provider_key(config: &Path, c: ProviderKeyCommand) -> Result<String, String> {
    let (rt, store) = open(config)?;
    match c {
        ProviderKeyCommand::Set { upstream, user } => {
            let crypto = keyring(&rt.fixed, &store)?.crypto();
            let known = rt.reloadable.upstream_names();
            let input = read_stdin("the provider key")?;
            let set = commands::provider_keys::provider_key_set(
                &store,
                &crypto,
                &known,
                &upstream,
                user.as_deref(),
                &input,
                now(),
            );
            announced(&rt.fixed, Changes::PROVIDER_KEYS, set)
        }
        ProviderKeyCommand::Delete { upstream, user } => announced(
            &rt.fixed,
            Changes::PROVIDER_KEYS,
            commands::provider_keys::provider_key_delete(&store, &upstream, user.as_deref()),
        ),
    }
}

/// `tollgate rotate-master-key [--generate]`.
fn rotate_master_key(config: &Path, generate: bool) -> Result<String, String> {
    let (rt, store) = open(config)?;
    let current = master_key(&rt.fixed, &store)?;
    let input;
    let new = if generate {
        NewMasterKey::Generate
    } else {
        input = read_stdin("the new master key")?;
        NewMasterKey::Given(&input)
    };
    let source = if rt.fixed.master_key.trim().is_empty() {
        MasterKeySource::File {
            storage_dir: &rt.fixed.storage_dir,
        }
    } else {
        MasterKeySource::Configured { config }
    };
    cmd(commands::provider_keys::rotate_master_key(
        &store,
        &current,
        new,
        source,
        now(),
    ))
}

/// `tollgate usage [--by ...]` and `tollgate usage prune`.
fn usage(config: &Path, u: UsageArgs) -> Result<String, String> {
    let (_, store) = open(config)?;
    match &u.command {
        Some(UsageCommand::Prune { older_than }) => {
            cmd(commands::usage::prune(&store, older_than, now()))
        }
        None => {
            let by = GroupBy::parse(&u.by).ok_or_else(|| format!("invalid --by '{}'", u.by))?;
            cmd(commands::usage::usage(
                &store,
                by,
                u.since.as_deref(),
                u.until.as_deref(),
                u.json,
            ))
        }
    }
}

/// `tollgate reload`: checks the config first (so a broken file is reported here, not
/// only in the gateway's log), then sends SIGHUP to the pid in `server.pid_file`.
fn reload(path: &Path) -> Result<String, String> {
    let rt =
        config::load(path).map_err(|e| format!("config has problems, nothing reloaded:\n{e}"))?;
    let pid_file = &rt.fixed.pid_file;
    let pid_text = std::fs::read_to_string(pid_file).map_err(|e| {
        format!("cannot read the pid file {pid_file}: {e} (is the gateway running?)")
    })?;
    let pid: u32 = pid_text
        .trim()
        .parse()
        .map_err(|_| format!("{pid_file} does not hold a process id"))?;
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if !status.success() {
        return Err(format!("could not signal process {pid} (from {pid_file})"));
    }
    Ok(format!(
        "{}sent SIGHUP to tollgate (pid {pid}); it reloads {}\n",
        warning_lines(path, &rt),
        path.display()
    ))
}

/// `tollgate check`: every problem on stderr (exit 1), or the summary; warnings on
/// stdout either way.
fn check(path: &Path) -> Result<String, String> {
    let report = commands::check::check(path)?;
    let warnings: String = report.warnings.iter().map(|w| format!("{w}\n")).collect();
    if report.problems.is_empty() {
        return Ok(format!("{warnings}{}\n", report.summary));
    }
    print!("{warnings}");
    Err(report.problems.join("\ntollgate: "))
}

/// `warning: FILE: PATH: MESSAGE` lines (an expired certificate), each ending in a newline.
fn warning_lines(path: &Path, rt: &Runtime) -> String {
    config::render_lines(path, &rt.warnings)
        .iter()
        .map(|line| format!("warning: {line}\n"))
        .collect()
}

/// The config, and the store it names.
fn open(config: &Path) -> Result<(Runtime, Store), String> {
    let rt = config::load(config).map_err(|e| e.to_string())?;
    let store = open_store(&rt.fixed)?;
    Ok((rt, store))
}

fn open_store(fixed: &Fixed) -> Result<Store, String> {
    Store::open_configured(fixed).map_err(|e| format!("store {}: {e}", store_name(fixed)))
}

/// The store as messages name it: the SQLite file, or the PostgreSQL URL without its
/// password.
fn store_name(fixed: &Fixed) -> String {
    match &fixed.storage_url {
        Some(pg) => pg.redacted(),
        None => fixed.storage_path.display().to_string(),
    }
}

/// The master key; never a new one for a store whose data keys need the old one.
fn master_key(fixed: &Fixed, store: &Store) -> Result<MasterKey, String> {
    let has_data_keys = !store.data_keys().map_err(|e| e.to_string())?.is_empty();
    MasterKey::for_store(&fixed.master_key, &fixed.storage_dir, has_data_keys)
        .map_err(|e| e.to_string())
}

fn keyring(fixed: &Fixed, store: &Store) -> Result<Keyring, String> {
    Keyring::load_or_init(store, &master_key(fixed, store)?, now()).map_err(|e| e.to_string())
}

fn hasher(fixed: &Fixed, store: &Store) -> Result<KeyHasher, String> {
    Ok(keyring(fixed, store)?.hasher())
}

/// `--models a, b,,c` as typed on a command line: each pattern trimmed, empty ones
/// dropped.
fn trimmed(models: Vec<String>) -> Vec<String> {
    models
        .iter()
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The password of `user add --password-stdin`: all of stdin, without its line end.
fn read_password() -> Result<Secret, String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    Ok(Secret::new(s.trim_end_matches(['\r', '\n'])))
}

/// All of stdin, for secrets piped in; bounded, so a wrong file piped in whole is
/// refused instead of read into memory.
fn read_stdin(what: &str) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .take(1 << 16)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {what} from stdin: {e}"))?;
    Ok(buf)
}

fn now() -> i64 {
    tollgate_filters::clock::system_clock()
}

fn cmd(r: Result<String, CommandError>) -> Result<String, String> {
    r.map_err(|e| e.to_string())
}

/// A command that changed the store, followed by telling every gateway running on it
/// (README "Users and keys"): once this returns, each has applied the change. No
/// gateway running is fine; one that is alive and did not acknowledge is reported
/// (exit 1), after the command's own output, since the change itself is stored.
fn announced(
    fixed: &Fixed,
    changes: Changes,
    r: Result<String, CommandError>,
) -> Result<String, String> {
    let out = cmd(r)?;
    let delivery = ControlDir::new(&fixed.storage_dir).announce(changes);
    if delivery.failed.is_empty() {
        return Ok(out);
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    Err(delivery.failed.join("\ntollgate: "))
}
