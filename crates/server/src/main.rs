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
use gatehouse_core::oauth::clients::{Actor, ClientType, GrantType, NewClient};
use gatehouse_core::platform::db;
use gatehouse_core::{RequestMeta, Role, SystemClock};
use gatehouse_server::app::{self, StartupError};
use gatehouse_server::config::Config;
use gatehouse_server::migrations;
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
    /// Manage OAuth clients (apps and services that obtain tokens).
    Client {
        #[command(subcommand)]
        action: ClientAction,
    },
    /// Inspect and rotate the keys that sign access tokens.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Check outgoing mail.
    Mail {
        #[command(subcommand)]
        action: MailAction,
    },
    /// Measure argon2id on this machine and propose `[password]` parameters for a target
    /// time per hash. Prints TOML (or JSON with --json); needs no database.
    Calibrate {
        /// How long one hash (one login) should take, e.g. 50ms or 0.25s.
        #[arg(long, default_value = "50ms", value_parser = parse_duration)]
        target: std::time::Duration,
        /// Most memory per hash to propose, in KiB [default: 65536, or the configured
        /// password.argon2_memory_kib when larger].
        #[arg(long, value_name = "KIB")]
        max_memory_kib: Option<u32>,
        /// Print one JSON object: "configured" and "proposed" (m_cost_kib, t_cost, p_cost,
        /// hash_ms, hashes_per_second_per_core, hashes_per_second_all_cores), "cores", ...
        #[arg(long)]
        json: bool,
    },
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    match humantime_serde::re::humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than zero".to_owned()),
        Err(e) => Err(format!("{e} (write it like 50ms or 1s)")),
    }
}

#[derive(Subcommand)]
enum ClientAction {
    /// Register a client. Prints {"client_id": ..., "client_secret": ...} on stdout; the
    /// secret of a confidential client is shown this once.
    Create {
        /// A name people recognise the client by.
        #[arg(long)]
        name: String,
        /// `confidential` (can keep a secret: a backend) or `public` (an app in a browser or on a device).
        #[arg(long = "type", value_parser = parse_client_type)]
        client_type: ClientType,
        /// An allowed grant: client_credentials, refresh_token, authorization_code. Repeat for several.
        #[arg(long = "grant", value_parser = parse_grant)]
        grants: Vec<GrantType>,
        /// An allowed scope. Repeat for several.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// The `aud` of tokens issued to this client (default: the client id for code-flow
        /// tokens, tokens.default_audience for service tokens).
        #[arg(long)]
        audience: Option<String>,
        /// A redirect URI (for the authorization code flow). Repeat for several.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A trusted first-party app: no consent screen.
        #[arg(long)]
        first_party: bool,
        /// Where RP-initiated logout may return the user. Repeat for several.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Where back-channel logout tokens are posted (OpenID Connect Back-Channel Logout).
        #[arg(long)]
        backchannel_logout_uri: Option<String>,
        /// Issue a refresh token on every code exchange, not only with `offline_access`.
        #[arg(long)]
        always_issue_refresh_token: bool,
    },
    /// List clients, one JSON object per line.
    List,
    /// Delete a client; its refresh tokens stop working.
    Delete {
        /// The client_id.
        client_id: String,
    },
    /// Give a confidential client a new secret; running servers refuse the old one within read_cache.ttl.
    RotateSecret {
        /// The client_id.
        client_id: String,
    },
}

#[derive(Subcommand)]
enum MailAction {
    /// Send a test message now through the configured transport (not the outbox) and
    /// print the outcome: the SMTP server's answer, or the error (and exit non-zero).
    Test {
        /// The address to send the test message to.
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// List signing keys with their state (next, active, retired, expired), one JSON object per line.
    List,
    /// Add a key that starts signing after keys.publish_ahead; the current key retires then.
    Rotate,
}

fn parse_client_type(s: &str) -> Result<ClientType, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| "expected `confidential` or `public`".to_owned())
}

fn parse_grant(s: &str) -> Result<GrantType, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| "expected client_credentials, refresh_token or authorization_code".to_owned())
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
    let serving = matches!(cli.command, None | Some(Command::Serve));
    telemetry::init(&config.log, !serving);
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
            Command::Client { action } => manage_clients(config, action).await,
            Command::Keys { action } => manage_keys(config, action).await,
            Command::Mail {
                action: MailAction::Test { to },
            } => mail_test(config, &to).await,
            Command::Calibrate {
                target,
                max_memory_kib,
                json,
            } => calibrate(&config, target, max_memory_kib, json),
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
    let background = app::spawn_background(gatehouse.clone(), &config)?;
    log_hashing_cost(&config, &gatehouse);
    if let Some(bind) = config.metrics.listener() {
        let metrics_listener = TcpListener::bind(bind)?;
        tracing::info!(address = %metrics_listener.local_addr()?, "metrics listening");
        let metrics = gatehouse_server::metrics::metrics_server(
            &config,
            gatehouse.clone(),
            metrics_listener,
        )?;
        tokio::spawn(metrics);
    }
    let result = app::http_server(&config, gatehouse, listener)?.await;
    background.iter().for_each(|task| task.abort());
    Ok(result?)
}

async fn migrate(config: Config, action: MigrateAction) -> Result<(), StartupError> {
    let database = db::connect(&app::database_options(&config)).await?;
    let db = database.writes();
    match action {
        MigrateAction::Up => {
            migrations::migrate(db).await?;
            eprintln!("migrations applied");
        }
        MigrateAction::Status => {
            for (name, applied) in migrations::migration_status(db).await? {
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

async fn manage_clients(config: Config, action: ClientAction) -> Result<(), StartupError> {
    let gatehouse = app::build_gatehouse(&config, Arc::new(SystemClock)).await?;
    let meta = RequestMeta::command_line();
    match action {
        ClientAction::Create {
            name,
            client_type,
            grants,
            scopes,
            audience,
            redirect_uris,
            first_party,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            always_issue_refresh_token,
        } => {
            let new = NewClient {
                name,
                client_type,
                grant_types: grants,
                scopes,
                audience,
                redirect_uris,
                first_party,
                post_logout_redirect_uris,
                backchannel_logout_uri,
                always_issue_refresh_token,
            };
            let created = gatehouse
                .create_client(Actor::CommandLine, new, &meta)
                .await?;
            print_json(&serde_json::json!({
                "client_id": created.client.client_id,
                "client_secret": created.client_secret,
            }))
        }
        ClientAction::List => {
            for client in gatehouse.list_clients(Actor::CommandLine).await? {
                print_json(&client)?;
            }
            Ok(())
        }
        ClientAction::Delete { client_id } => {
            gatehouse
                .delete_client(Actor::CommandLine, &client_id, &meta)
                .await?;
            eprintln!("client {client_id} deleted");
            Ok(())
        }
        ClientAction::RotateSecret { client_id } => {
            let rotated = gatehouse
                .rotate_client_secret(Actor::CommandLine, &client_id, &meta)
                .await?;
            print_json(&serde_json::json!({
                "client_id": rotated.client.client_id,
                "client_secret": rotated.client_secret,
            }))
        }
    }
}

async fn manage_keys(config: Config, action: KeysAction) -> Result<(), StartupError> {
    let gatehouse = app::build_gatehouse(&config, Arc::new(SystemClock)).await?;
    let keys = gatehouse.access_tokens().keys();
    match action {
        KeysAction::List => {
            for key in keys.list().await? {
                print_json(&key)?;
            }
        }
        KeysAction::Rotate => match keys.rotate().await? {
            Some(key) => print_json(&key)?,
            None => {
                eprintln!(
                    "a rotation is already pending (a key waits to activate); see `gatehouse keys list`"
                )
            }
        },
    }
    Ok(())
}

async fn mail_test(config: Config, to: &str) -> Result<(), StartupError> {
    use gatehouse_core::Clock as _;
    let transport = format!("{:?}", config.mail.transport).to_lowercase();
    match gatehouse_core::mail::send_test_message(
        &config.mail,
        &config.issuer,
        to,
        SystemClock.now(),
    )
    .await
    {
        Ok(response) => print_json(&serde_json::json!({
            "sent": true,
            "transport": transport,
            "to": to,
            "response": response,
        })),
        Err(e) => Err(StartupError::Io(std::io::Error::other(format!(
            "mail test: sending to {to} through the {transport} transport failed: {e}"
        )))),
    }
}

/// Logs the argon2id parameters in use and the logins per second they allow, from the
/// time of the decoy hash the hasher made at start (no hash of its own: a hash timed on
/// another thread would leave its 19 MiB in that thread's allocator arena, and in the
/// idle RSS).
fn log_hashing_cost(config: &Config, gatehouse: &gatehouse_core::Gatehouse) {
    let password = &config.password;
    let hasher = gatehouse.hasher();
    let time = hasher.startup_hash_time();
    let per_core = 1.0 / time.as_secs_f64().max(f64::MIN_POSITIVE);
    let tenths = |x: f64| (x * 10.0).round() / 10.0;
    tracing::info!(
        m_cost_kib = password.argon2_memory_kib,
        t_cost = password.argon2_iterations,
        p_cost = password.argon2_parallelism,
        hash_ms = tenths(time.as_secs_f64() * 1000.0),
        logins_per_second_per_core = tenths(per_core),
        hashing_slots = hasher.slot_count(),
        logins_per_second = (per_core * hasher.slot_count() as f64).round(),
        "argon2id password hashing (`gatehouse calibrate` proposes parameters for this machine)"
    );
}

fn calibrate(
    config: &Config,
    target: std::time::Duration,
    max_memory_kib: Option<u32>,
    json: bool,
) -> Result<(), StartupError> {
    use gatehouse_core::identity::calibrate;
    let budget =
        max_memory_kib.unwrap_or_else(|| calibrate::default_max_memory_kib(&config.password));
    let found = calibrate::calibrate(&config.password, target, budget)?;
    if json {
        return print_json(&found);
    }
    let slots = match config.password.max_concurrent_hashes {
        0 => found.cores,
        n => n,
    };
    let line = |name: &str, m: &calibrate::Measured| {
        format!(
            "# {name}: m = {} KiB, t = {}, p = {}: {:.1} ms per hash, {:.1} hashes/s on one core, {:.1} hashes/s on all {} cores",
            m.m_cost_kib,
            m.t_cost,
            m.p_cost,
            m.hash_ms,
            m.hashes_per_second_per_core,
            m.hashes_per_second_all_cores,
            found.cores
        )
    };
    let proposed = &found.proposed;
    println!(
        "# gatehouse calibrate: argon2id for {:.0} ms per hash, at most {} KiB of memory per hash",
        found.target_ms, found.max_memory_kib
    );
    println!("{}", line("configured", &found.configured));
    println!("{}", line("proposed  ", proposed));
    println!(
        "# hashing memory at most {} MiB ({slots} hashes at once, password.max_concurrent_hashes)",
        u64::from(proposed.m_cost_kib) * slots as u64 / 1024
    );
    println!("[password]");
    println!("argon2_memory_kib = {}", proposed.m_cost_kib);
    println!("argon2_iterations = {}", proposed.t_cost);
    println!("argon2_parallelism = {}", proposed.p_cost);
    Ok(())
}

fn print_json(value: &impl serde::Serialize) -> Result<(), StartupError> {
    let json =
        serde_json::to_string(value).map_err(|e| StartupError::Io(std::io::Error::other(e)))?;
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
