//! The `ticketing` command line.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use ticketing::config::Config;
use ticketing::domain::user::{Email, Password, Role, parse_skill_list};
use ticketing::inngest::executor::RunFilter;
use ticketing::runs::{RunStatusName, RunSummaryView, RunView, render_list, render_run};

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
    /// Inspect and operate durable-function runs of the embedded executor.
    ///
    /// Works on the store directly (the SQLite file in the data directory, or the MongoDB
    /// database of DATABASE_URL), with or without a server running on it; a running server
    /// picks up re-runs and cancellations within a second. Under Inngest (INNGEST_*
    /// set) runs are managed in the Inngest dashboard instead.
    #[command(subcommand)]
    Runs(RunsCommand),
}

#[derive(Subcommand)]
enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only runs of this function, e.g. on-ticket-created.
        #[arg(long)]
        function: Option<String>,
        /// Only runs in this state.
        #[arg(long, value_enum)]
        status: Option<RunStatusName>,
        /// How many runs to show.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
    },
    /// Show one run: its event, each step with attempts, timings and errors, and its history.
    Show {
        /// The run id (from `runs list`).
        id: String,
    },
    /// Start a new run of the same function with the same event, and print its id.
    Rerun {
        /// The run to run again.
        id: String,
    },
    /// Cancel a run that has not finished; its pending steps, timers and waits are dropped.
    Cancel {
        /// The run to cancel.
        id: String,
    },
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
    ticketing::memory::limit_arenas();
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
    let command = cli.command.unwrap_or(Command::Serve);
    if matches!(command, Command::Serve) {
        ticketing::telemetry::init(config.log_format);
    } else {
        // Commands print their own results; only problems are logged.
        ticketing::telemetry::init_quiet(config.log_format);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
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
            Command::Runs(command) => runs(config, command).await,
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

async fn runs(config: Config, command: RunsCommand) -> anyhow::Result<()> {
    let executor = ticketing::app::operations_executor(&config).await?;
    let id_arg = |id: &str| {
        ticketing::domain::parse_id(id.trim())
            .ok_or_else(|| anyhow::anyhow!("{id:?} is not a run id (see `ticketing runs list`)"))
    };
    match command {
        RunsCommand::List {
            function,
            status,
            limit,
        } => {
            let function_id = function
                .as_deref()
                .map(|f| ticketing::runs::resolve_function(&executor, f))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--function: {e}"))?;
            let runs = executor
                .list_runs(RunFilter {
                    function_id,
                    status: status.map(Into::into),
                    before: None,
                    limit: usize::from(limit),
                })
                .await?;
            let rows: Vec<RunSummaryView> = runs.iter().map(RunSummaryView::from).collect();
            print!("{}", render_list(&rows));
        }
        RunsCommand::Show { id } => {
            let id = id_arg(&id)?;
            let run = executor
                .get_run(&id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("run {id} not found"))?;
            print!("{}", render_run(&RunView::from(&run)));
        }
        RunsCommand::Rerun { id } => {
            let new_id = executor.rerun(&id_arg(&id)?).await?;
            println!("started run {new_id} (a re-run of {id})");
        }
        RunsCommand::Cancel { id } => {
            let run = executor.cancel(&id_arg(&id)?).await?;
            println!("cancelled run {} ({})", run.id, run.function_id);
        }
    }
    Ok(())
}
