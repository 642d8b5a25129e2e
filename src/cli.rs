//! The command line (README "Users and keys", "Provider keys per user, and the master
//! key", "Usage and cost", "Operating it"): clap definitions only; `main.rs` runs them.
//! A new key's and a new user's options are the store's input types ([`KeyCreate`],
//! [`UserCreate`]), which the admin API's bodies are too.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::store::{KeyCreate, KeyUpdate, PriceSet, UserCreate, UserUpdate};

#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about = "An LLM API gateway on Pingora")]
pub struct Cli {
    /// Config file [default: $TOLLGATE_CONFIG, else conf/tollgate.yaml]
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log lines as text, or as one JSON object per line
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The config path: `-c`, else `$TOLLGATE_CONFIG`, else `conf/tollgate.yaml`.
    pub fn config_path(&self) -> PathBuf {
        self.config
            .clone()
            .or_else(|| {
                std::env::var_os("TOLLGATE_CONFIG")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from("conf/tollgate.yaml"))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy and admin listeners
    Serve {
        /// Run in the background (Pingora daemon mode)
        #[arg(short = 'd', long)]
        daemon: bool,
        /// Take over the listening sockets of a running instance (graceful upgrade)
        #[arg(short = 'u', long)]
        upgrade: bool,
    },
    /// Validate the config and the store, printing every problem
    Check,
    /// Make the running gateway re-read routes, aliases, upstreams and prices (SIGHUP)
    Reload,
    /// Manage users
    #[command(subcommand)]
    User(UserCommand),
    /// Manage gateway API keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Price overrides kept in the store, over the config file's pricing
    #[command(subcommand)]
    Price(PriceCommand),
    /// Usage and cost totals from the store
    Usage(UsageArgs),
    /// Manage provider keys stored in the gateway, encrypted
    #[command(subcommand)]
    ProviderKey(ProviderKeyCommand),
    /// Write a consistent snapshot of the store to FILE (mode 0600), also while serving
    Backup {
        /// The snapshot's path; an existing file is refused unless --force
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Replace FILE if it exists (the new snapshot takes its place in one rename)
        #[arg(long)]
        force: bool,
    },
    /// Re-wrap the store's data keys under a new master key (read as base64 from stdin)
    RotateMasterKey {
        /// Generate the new master key instead of reading it, and print it once
        #[arg(long)]
        generate: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PriceCommand {
    /// The prices in force, in the order models are matched, and where each comes from
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set the price of a model pattern (USD per million tokens, at most 3 decimals);
    /// in force on every running gateway when the command returns
    Set {
        #[arg(value_name = "PATTERN")]
        pattern: String,
        #[command(flatten)]
        price: PriceSet,
    },
    /// Delete a price override (the config file's price of the pattern, if any,
    /// applies again)
    Delete {
        #[arg(value_name = "PATTERN")]
        pattern: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProviderKeyCommand {
    /// Store a provider key read from stdin; with --user, only that user's requests
    /// to the upstream use it
    Set {
        /// An upstream name from the config
        #[arg(long)]
        upstream: String,
        #[arg(long)]
        user: Option<String>,
    },
    /// Delete a stored provider key (succeeds when there is none)
    Delete {
        #[arg(long)]
        upstream: String,
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct UsageArgs {
    #[command(subcommand)]
    pub command: Option<UsageCommand>,
    /// Group by
    #[arg(long, default_value = "model", value_parser = ["key", "user", "model", "upstream", "day"])]
    pub by: String,
    /// From this time on (RFC 3339)
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (RFC 3339)
    #[arg(long)]
    pub until: Option<String>,
    /// Print the JSON document of GET /admin/usage
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Delete usage events older than a duration
    Prune {
        #[arg(long, value_name = "DURATION")]
        older_than: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user
    Add {
        #[command(flatten)]
        user: UserCreate,
        /// Read a password for signing in (admin API, dashboard) from stdin
        #[arg(long, display_order = 2)]
        password_stdin: bool,
    },
    /// List users
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change a user's role, budget or password; in force on every running gateway
    /// when the command returns
    Update {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        update: UserUpdate,
        /// Read a new password for admin login from stdin (ends the user's sessions)
        #[arg(long, display_order = 2)]
        password_stdin: bool,
    },
    /// Delete a user, revoking its keys and sessions (not the last admin); in force on
    /// every running gateway when the command returns
    Delete {
        #[arg(value_name = "NAME")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key and print it (only the key, once)
    Create(KeyCreate),
    /// List keys (never their secrets)
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; once the command returns, no running gateway accepts it
    Revoke {
        #[arg(value_name = "KEY_ID")]
        id: String,
    },
    /// Change a key's label, scopes and limits in place; in force on every running
    /// gateway when the command returns
    Update {
        #[arg(value_name = "KEY_ID")]
        id: String,
        #[command(flatten)]
        update: KeyUpdate,
    },
}
