//! The `tidings` command: `serve` runs the server; `user add` creates a user; `plugin`
//! manages a running server's plugins and checks a component offline.

use std::io::Read;

use anyhow::Context;
use clap::{Parser, Subcommand};
use host::client::AdminClient;
use host::clock::Clock;
use host::config::{Config, ServeArgs};
use host::db::Db;
use host::sessions::{self, NewUser, Role};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "tidings", version, about = "A realtime record server with WebAssembly plugins")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Check the database: integrity and the notification log's bookkeeping. Exits 1 on a
    /// problem.
    Check {
        #[arg(long, env = "TIDINGS_DATA_DIR", default_value = "./data")]
        data_dir: std::path::PathBuf,
        #[arg(long, env = "TIDINGS_DATABASE_URL")]
        database_url: Option<String>,
    },
    /// Manage the plugins of a running server (signs in with TIDINGS_EMAIL and
    /// TIDINGS_PASSWORD, or TIDINGS_ADMIN_EMAIL and TIDINGS_ADMIN_PASSWORD).
    Plugin {
        /// The server's base URL.
        #[arg(long, env = "TIDINGS_SERVER", default_value = "http://127.0.0.1:3002", global = true)]
        server: String,
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Install a component (`.wasm`); it serves once it has passed the checks.
    Install {
        file: std::path::PathBuf,
        /// Allow grants wider than the running version's.
        #[arg(long)]
        approve_grants: bool,
    },
    /// List the plugins with their versions, state and counters.
    List,
    /// Serve a plugin's previous version again.
    Rollback { name: String },
    /// Show a plugin's journal on the server: its log lines, what it printed, and the reason
    /// behind each `errorId` its clients got.
    Logs {
        name: String,
        /// Only the fault a client was answered with this `errorId` for.
        #[arg(long)]
        error_id: Option<String>,
        /// Keep printing new entries as they come.
        #[arg(long, short)]
        follow: bool,
    },
    /// Write a new plugin project: an owner-scoped collection NAME + "s" of records of type
    /// NAME in upper case, ready to build.
    New {
        name: String,
        #[arg(long, value_enum, default_value = "rust")]
        lang: host::scaffold::Lang,
        /// Where to write it (default: ./NAME); must not exist or be empty.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Build a plugin project into a component; the last line printed is the `.wasm`'s path.
    Build {
        #[arg(default_value = ".")]
        dir: std::path::PathBuf,
    },
    /// Build a plugin project and run its fixtures (`DIR/tests/*.json`) on the real runtime
    /// with an in-memory database, offline. Exits 1 if one fails, showing what differed.
    Test {
        #[arg(default_value = ".")]
        dir: std::path::PathBuf,
    },
    /// Make every check an install makes, offline (no server, no sign-in), and show the
    /// plugin as a server would serve it. Exits 1 with the reason if an install would refuse it.
    Check {
        file: std::path::PathBuf,
        /// Check it as a server started with --no-bundled-plugins would.
        #[arg(long)]
        no_bundled_plugins: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        email: String,
        #[arg(long, value_enum, default_value = "user")]
        role: RoleArg,
        #[arg(long, env = "TIDINGS_DATA_DIR", default_value = "./data")]
        data_dir: std::path::PathBuf,
        #[arg(long, env = "TIDINGS_DATABASE_URL")]
        database_url: Option<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    User,
    Admin,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The author's and operator's plugin commands print their results on stdout: the log goes
    // to stderr, and only warnings (a fixture's 502 is a result, not an error of the command).
    let (default_filter, to_stderr) = match cli.command {
        Command::Plugin { .. } => ("warn,host::http::error=off", true),
        _ => ("info", false),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    if to_stderr {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    match cli.command {
        Command::Serve(args) => {
            let mut server = host::Server::start(Config::try_from(args)?).await?;
            let shutdown = server.take_shutdown();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutting down");
                if let Some(tx) = shutdown {
                    let _ = tx.send(());
                }
            });
            server.wait().await
        }
        Command::Check { data_dir, database_url } => {
            let db = Db::connect(database_url.as_deref().filter(|u| !u.is_empty()), &data_dir).await?;
            let check = db.check().await?;
            println!("{}", serde_json::to_string_pretty(&check)?);
            let healthy = check.integrity == "ok" || check.integrity == "n/a";
            if !(healthy && check.offsets_consistent && check.offsets_gapless) {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Plugin { server, command } => plugin_command(&server, command).await,
        Command::User { command: UserCommand::Add { email, role, data_dir, database_url } } => {
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password).context("reading the password from stdin")?;
            let db = Db::connect(database_url.as_deref().filter(|u| !u.is_empty()), &data_dir).await?;
            let role = match role {
                RoleArg::User => Role::User,
                RoleArg::Admin => Role::Admin,
            };
            let new = NewUser {
                email,
                password: password.trim_end_matches(['\r', '\n']).to_owned(),
                role,
                first_name: String::new(),
                last_name: String::new(),
            };
            let user = sessions::create_user(&db, &Clock::default(), new).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("created {} {} ({})", user.role.as_str(), user.email, user.id);
            Ok(())
        }
    }
}

async fn plugin_command(server: &str, command: PluginCommand) -> anyhow::Result<()> {
    let answer = match command {
        // The author's commands work offline, without a server.
        PluginCommand::Check { file, no_bundled_plugins } => return check_plugin(&file, no_bundled_plugins).await,
        PluginCommand::New { name, lang, dir } => {
            let dir = dir.unwrap_or_else(|| std::path::PathBuf::from(&name));
            host::scaffold::new_project(&name, lang, &dir)?;
            println!("wrote the {name} plugin project to {}", dir.display());
            println!("next: cd {} && tidings plugin test", dir.display());
            return Ok(());
        }
        PluginCommand::Build { dir } => {
            let wasm = tokio::task::spawn_blocking(move || host::scaffold::build(&dir)).await??;
            println!("{}", wasm.display());
            return Ok(());
        }
        PluginCommand::Test { dir } => return test_plugin(dir).await,
        PluginCommand::Logs { name, error_id, follow } => {
            let client = sign_in(server).await?;
            let mut since = None;
            loop {
                let entries = client.logs(&name, since, error_id.as_deref()).await?;
                for entry in entries.as_array().into_iter().flatten() {
                    println!("{}", log_line(entry));
                    since = entry["seq"].as_u64().or(since);
                }
                if !follow {
                    return Ok(());
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
        PluginCommand::Install { file, approve_grants } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            // Check the component here first: a refusal is clearer before an upload, and the
            // install route is addressed by the plugin's own name.
            let runtime =
                host::plugin::Runtime::new(Default::default(), host::db::Dialect::Sqlite, Default::default(), None)
                    .map_err(|e| anyhow::anyhow!("{e:#}"))?;
            let plugin = runtime.load(bytes.clone()).await.with_context(|| format!("checking {}", file.display()))?;
            sign_in(server).await?.install(&plugin.descriptor.name, bytes, approve_grants).await?
        }
        PluginCommand::List => sign_in(server).await?.list().await?,
        PluginCommand::Rollback { name } => sign_in(server).await?.rollback(&name).await?,
    };
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

/// Sign in to `server` as the ADMIN named by the environment.
async fn sign_in(server: &str) -> anyhow::Result<AdminClient> {
    let var = |names: [&str; 2]| names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()));
    let email = var(["TIDINGS_EMAIL", "TIDINGS_ADMIN_EMAIL"]).context("set TIDINGS_EMAIL (an ADMIN's e-mail)")?;
    let password = var(["TIDINGS_PASSWORD", "TIDINGS_ADMIN_PASSWORD"]).context("set TIDINGS_PASSWORD")?;
    AdminClient::sign_in(server, &email, &password).await
}

/// One journal entry as text: `2026-12-06T17:00:00.000Z warn   0.1.0    message`; a fault's
/// `errorId` before its reason, and the lines of a long message (a backtrace) indented.
fn log_line(entry: &serde_json::Value) -> String {
    let text = |field: &str| entry[field].as_str().unwrap_or_default().to_owned();
    let message = match entry["errorId"].as_str() {
        Some(id) => format!("[errorId {id}] {}", text("message")),
        None => text("message"),
    };
    format!("{} {:<6} {:<8} {}", text("at"), text("level"), text("version"), message.replace('\n', "\n    "))
}

/// `tidings plugin test DIR`: build, check, run the fixtures; exit 1 unless all pass.
async fn test_plugin(dir: std::path::PathBuf) -> anyhow::Result<()> {
    let files = host::fixtures::files(&dir)?;
    let wasm = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || host::scaffold::build(&dir)
    })
    .await??;
    let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let harness = host::fixtures::Harness::load(bytes, host::bundled::PLUGINS).await?;
    let (report, passed) = host::fixtures::run_all(&harness, &files).await;
    println!("{report}");
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}

async fn check_plugin(file: &std::path::Path, no_bundled_plugins: bool) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let bundled = if no_bundled_plugins { &[][..] } else { host::bundled::PLUGINS };
    match host::authoring::check(bytes, bundled).await {
        Ok(checked) => {
            println!("{}", checked.report());
            Ok(())
        }
        Err(refusal) => {
            eprintln!("{}: an install would refuse it: {refusal}", file.display());
            std::process::exit(1);
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
