//! The `ticketing` command line.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use ticketing::config::Config;
use ticketing::domain::user::{Email, Password, Role, parse_skill_list};

#[derive(Parser)]
#[command(name = "ticketing", version, about = "AI-powered support-ticket service", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP server (the default) and, in embedded mode, the durable executor.
    Serve,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account with any role (this is how the first admin can be made).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
        #[arg(long, value_parser = ["user", "moderator", "admin"], default_value = "user")]
        role: String,
        /// Comma-separated, e.g. "SQL, React".
        #[arg(long)]
        skills: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A missing .env is normal; a malformed one is worth saying.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("error: .env: {e}");
        return ExitCode::from(2);
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    ticketing::telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => {
                ticketing::App::build(config)
                    .await?
                    .run_until_stopped()
                    .await
            }
            Command::User(UserCommand::Create {
                email,
                password,
                role,
                skills,
            }) => create_user(config, &email, &password, &role, skills.as_deref()).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn create_user(
    config: Config,
    email: &str,
    password: &str,
    role: &str,
    skills: Option<&str>,
) -> anyhow::Result<()> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    let password = Password::parse(password).map_err(|e| anyhow::anyhow!("--password: {e}"))?;
    let role = Role::parse(role).map_err(|e| anyhow::anyhow!("--role: {e}"))?;
    let skills =
        parse_skill_list(skills.unwrap_or("")).map_err(|e| anyhow::anyhow!("--skills: {e}"))?;
    ticketing::tls::install_crypto_provider();
    let store = ticketing::app::open_store(&config).await?;
    match ticketing::app::create_user(&store, email.clone(), password, role, skills).await {
        Ok(user) => {
            println!("created {} {} ({})", user.role, user.email, user.id);
            Ok(())
        }
        Err(ticketing::store::StoreError::Conflict { .. }) => {
            anyhow::bail!("an account with email {email} already exists")
        }
        Err(e) => Err(e.into()),
    }
}
