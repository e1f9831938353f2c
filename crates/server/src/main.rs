//! `gatehouse`: the identity server and its administration commands.
#![expect(
    clippy::print_stdout,
    reason = "the command line prints its results on standard output"
)]

use std::io::{BufRead, IsTerminal};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use gatehouse_core::{Role, SystemClock, db};
use gatehouse_server::app::{self, StartupError};
use gatehouse_server::config::Config;
use gatehouse_server::telemetry;
use secrecy::SecretString;

/// Gatehouse: sign-up, login, email verification, password reset and revocable sessions.
///
/// Settings come from config/default.toml (compiled in), then the file given with
/// --config, then GATEHOUSE__SECTION__KEY environment variables.
#[derive(Parser)]
#[command(name = "gatehouse", version)]
struct Cli {
    /// A TOML file overriding the defaults.
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run pending migrations (unless database.auto_migrate = false) and serve HTTP. The default.
    Serve,
    /// Apply or inspect database migrations.
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply every pending migration (the default).
    Up,
    /// List migrations and whether each is applied.
    Status,
}

#[derive(Subcommand)]
enum UserAction {
    /// Create an account. The password is read from standard input, never from arguments.
    Create {
        /// The account's email address.
        #[arg(long)]
        email: String,
        /// `user` or `admin`.
        #[arg(long, default_value = "user")]
        role: Role,
        /// Mark the address as verified.
        #[arg(long)]
        verified: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("gatehouse: refusing to start:\n{e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("gatehouse: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Migrate { action } => {
                migrate(config, action.unwrap_or(MigrateAction::Up)).await
            }
            Command::User {
                action:
                    UserAction::Create {
                        email,
                        role,
                        verified,
                    },
            } => create_user(config, &email, role, verified).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), StartupError> {
    let gatehouse = app::build_gatehouse(&config, Arc::new(SystemClock)).await?;
    let listener = TcpListener::bind(config.server.bind)?;
    tracing::info!(address = %listener.local_addr()?, issuer = %config.issuer, "gatehouse listening");
    let maintenance = app::spawn_maintenance(gatehouse.clone(), &config);
    let result = app::http_server(&config, gatehouse, listener)?.await;
    maintenance.abort();
    Ok(result?)
}

async fn migrate(config: Config, action: MigrateAction) -> Result<(), StartupError> {
    let db = db::connect(&app::database_options(&config)).await?;
    match action {
        MigrateAction::Up => {
            db::migrate(&db).await?;
            eprintln!("migrations applied");
        }
        MigrateAction::Status => {
            for (name, applied) in db::migration_status(&db).await? {
                let state = if applied { "applied" } else { "pending" };
                println!("{state}\t{name}");
            }
        }
    }
    Ok(())
}

async fn create_user(
    config: Config,
    email: &str,
    role: Role,
    verified: bool,
) -> Result<(), StartupError> {
    let password = read_password()?;
    let gatehouse = app::build_gatehouse(&config, Arc::new(SystemClock)).await?;
    let user = gatehouse
        .create_user(email, password, role, verified)
        .await?;
    let json =
        serde_json::to_string(&user).map_err(|e| StartupError::Io(std::io::Error::other(e)))?;
    println!("{json}");
    Ok(())
}

/// One line from standard input; without echo when it is a terminal.
fn read_password() -> Result<SecretString, StartupError> {
    if std::io::stdin().is_terminal() {
        eprint!("password: ");
        return Ok(SecretString::from(rpassword::read_password()?));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(SecretString::from(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}
