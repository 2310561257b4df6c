//! The Vercel function entry: the router of `ticketing serve`, served by `vercel_runtime`, which
//! keeps one process alive across requests (so the store client and state are built once).

use std::process::ExitCode;
use ticketing::app::{Service, vercel_preflight};
use ticketing::config::Config;
use tower::ServiceBuilder;
use vercel_runtime::axum::VercelLayer;

fn main() -> ExitCode {
    // Before the runtime's threads exist.
    ticketing::memory::limit_arenas();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(serve()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(message) = vercel_preflight(&config) {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    ticketing::telemetry::init(config.log_format);
    let service = match Service::build(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let app = ServiceBuilder::new()
        .layer(VercelLayer::new())
        .service(service.router.clone());
    let result = vercel_runtime::run(app).await;
    service.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
