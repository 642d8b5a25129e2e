//! The `tollgate` binary: parses the command line and runs one command. Exit codes: 0
//! success, 1 a user error (one clear line per problem on stderr), 2 a usage error.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::Parser;
use tollgate::cli::{Cli, Command, KeyCommand, ProviderKeyCommand, UsageCommand, UserCommand};
use tollgate::commands::provider_keys::{MasterKeySource, NewMasterKey};
use tollgate::commands::{self, CommandError};
use tollgate::config::{self, Runtime};
use tollgate::keys::Keyring;
use tollgate::server::{self, ServeOptions};
use tollgate::store::secrets::{KeyHasher, MasterKey};
use tollgate::store::{GroupBy, Store};
use tollgate_filters::{Role, Secret};

/// mimalloc instead of glibc's malloc: a proxy allocates and frees many small buffers per
/// request (headers, body chunks, futures), and glibc's free lists and consolidation
/// were ~10% of the proxy core's time under load (load-tests/RESULTS.md). Built without
/// transparent huge pages (`no_thp`): with them, 1,000 open streams took 214 MiB of RSS
/// instead of 93 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
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

fn load(cli: &Cli) -> Result<Runtime, String> {
    config::load(&cli.config_path()).map_err(|e| e.to_string())
}

fn open_store(rt: &Runtime) -> Result<Store, String> {
    Store::open(&rt.fixed.storage_path)
        .map_err(|e| format!("store {}: {e}", rt.fixed.storage_path.display()))
}

fn master_key(rt: &Runtime) -> Result<MasterKey, String> {
    MasterKey::load_or_create(&rt.fixed.master_key, &rt.fixed.storage_dir)
        .map_err(|e| e.to_string())
}

fn keyring(rt: &Runtime, store: &Store) -> Result<Keyring, String> {
    Keyring::load_or_init(store, &master_key(rt)?, now()).map_err(|e| e.to_string())
}

fn hasher(rt: &Runtime, store: &Store) -> Result<KeyHasher, String> {
    Ok(keyring(rt, store)?.hasher())
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

fn run(cli: Cli) -> Result<String, String> {
    match &cli.command {
        Command::Serve { daemon, upgrade } => {
            server::serve(
                &cli.config_path(),
                ServeOptions {
                    daemon: *daemon,
                    upgrade: *upgrade,
                },
            )
            .map_err(|e| e.to_string())?;
            Ok(String::new())
        }
        Command::Check => check(&cli),
        Command::Reload => reload(&cli),
        Command::User(UserCommand::Add {
            name,
            role,
            password_stdin,
            budget_usd,
            budget_period,
        }) => {
            let rt = load(&cli)?;
            let store = open_store(&rt)?;
            let role = Role::parse(role).ok_or_else(|| format!("unknown role '{role}'"))?;
            let password = if *password_stdin {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
                Some(Secret::new(s.trim_end_matches(['\r', '\n'])))
            } else {
                None
            };
            let budget = commands::keys::parse_budget(budget_usd.as_deref(), budget_period.clone())
                .map_err(|e| e.to_string())?;
            cmd(commands::users::user_add(
                &store,
                name,
                role,
                password,
                budget,
                now(),
            ))
        }
        Command::User(UserCommand::List { json }) => {
            let rt = load(&cli)?;
            cmd(commands::users::user_list(&open_store(&rt)?, *json))
        }
        Command::Key(KeyCommand::Create(k)) => {
            let rt = load(&cli)?;
            let store = open_store(&rt)?;
            let args = commands::keys::KeyCreateArgs {
                user: k.user.clone(),
                name: k.name.clone(),
                models: k
                    .models
                    .iter()
                    .map(|m| m.trim().to_owned())
                    .filter(|m| !m.is_empty())
                    .collect(),
                budget_usd: k.budget_usd.clone(),
                budget_period: k.budget_period.clone(),
                rpm: k.rpm,
                tpm: k.tpm,
                expires_in: k.expires_in.clone(),
            };
            cmd(commands::keys::key_create(
                &store,
                &hasher(&rt, &store)?,
                args,
                now(),
            ))
        }
        Command::Key(KeyCommand::List { user, json }) => {
            let rt = load(&cli)?;
            cmd(commands::keys::key_list(
                &open_store(&rt)?,
                user.as_deref(),
                *json,
            ))
        }
        Command::Key(KeyCommand::Revoke { id }) => {
            let rt = load(&cli)?;
            cmd(commands::keys::key_revoke(&open_store(&rt)?, id, now()))
        }
        Command::ProviderKey(ProviderKeyCommand::Set { upstream, user }) => {
            let rt = load(&cli)?;
            let store = open_store(&rt)?;
            let crypto = keyring(&rt, &store)?.crypto();
            let known: Vec<&str> = rt
                .reloadable
                .upstreams
                .iter()
                .map(|u| u.name.as_str())
                .collect();
            let input = read_stdin("the provider key")?;
            cmd(commands::provider_keys::provider_key_set(
                &store,
                &crypto,
                &known,
                upstream,
                user.as_deref(),
                &input,
                now(),
            ))
        }
        Command::ProviderKey(ProviderKeyCommand::Delete { upstream, user }) => {
            let rt = load(&cli)?;
            cmd(commands::provider_keys::provider_key_delete(
                &open_store(&rt)?,
                upstream,
                user.as_deref(),
            ))
        }
        Command::RotateMasterKey { generate } => {
            let rt = load(&cli)?;
            let store = open_store(&rt)?;
            let current = master_key(&rt)?;
            let input;
            let new = if *generate {
                NewMasterKey::Generate
            } else {
                input = read_stdin("the new master key")?;
                NewMasterKey::Given(&input)
            };
            let config = cli.config_path();
            let source = if rt.fixed.master_key.trim().is_empty() {
                MasterKeySource::File {
                    storage_dir: &rt.fixed.storage_dir,
                }
            } else {
                MasterKeySource::Configured { config: &config }
            };
            cmd(commands::provider_keys::rotate_master_key(
                &store,
                &current,
                new,
                source,
                now(),
            ))
        }
        Command::Usage(u) => {
            let rt = load(&cli)?;
            let store = open_store(&rt)?;
            match &u.command {
                Some(UsageCommand::Prune { older_than }) => {
                    cmd(commands::usage::prune(&store, older_than, now()))
                }
                None => {
                    let by =
                        GroupBy::parse(&u.by).ok_or_else(|| format!("invalid --by '{}'", u.by))?;
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
    }
}

/// `tollgate reload`: checks the config first (so a broken file is reported here, not
/// only in the gateway's log), then sends SIGHUP to the pid in `server.pid_file`.
fn reload(cli: &Cli) -> Result<String, String> {
    let path = cli.config_path();
    let rt =
        config::load(&path).map_err(|e| format!("config has problems, nothing reloaded:\n{e}"))?;
    let pid_text = std::fs::read_to_string(&rt.fixed.pid_file).map_err(|e| {
        format!(
            "cannot read the pid file {}: {e} (is the gateway running?)",
            rt.fixed.pid_file
        )
    })?;
    let pid: u32 = pid_text
        .trim()
        .parse()
        .map_err(|_| format!("{} does not hold a process id", rt.fixed.pid_file))?;
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if !status.success() {
        return Err(format!(
            "could not signal process {pid} (from {})",
            rt.fixed.pid_file
        ));
    }
    Ok(format!(
        "sent SIGHUP to tollgate (pid {pid}); it reloads {}\n",
        path.display()
    ))
}

/// `tollgate check`: every config problem, then the store if it exists (check never
/// creates one).
fn check(cli: &Cli) -> Result<String, String> {
    let path = cli.config_path();
    let rt = config::load(&path).map_err(|e| format!("config has problems:\n{e}"))?;
    let store = if rt.fixed.storage_path.exists() {
        let store = open_store(&rt)?;
        store
            .check()
            .map_err(|e| format!("store {}: {e}", rt.fixed.storage_path.display()))?;
        Some(store)
    } else {
        None
    };
    if !rt.fixed.master_key.is_empty() || rt.fixed.storage_dir.join("master.key").exists() {
        let master = MasterKey::load_or_create(&rt.fixed.master_key, &rt.fixed.storage_dir)
            .map_err(|e| e.to_string())?;
        // A wrong master key would leave every gateway key and stored provider key
        // unusable: say so before a start or an upgrade, not after.
        if let Some(store) = &store {
            Keyring::verify(store, &master)
                .map_err(|e| format!("store {}: {e}", rt.fixed.storage_path.display()))?;
        }
    }
    Ok(format!(
        "{}: OK ({} upstreams, {} routes)\n",
        path.display(),
        rt.reloadable.upstreams.len(),
        rt.reloadable.router.route_count()
    ))
}
