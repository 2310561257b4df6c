//! One process-wide rustls crypto provider (ring), installed before any TLS client is built: the
//! SDK's, so the service, the SDK and the executor agree on it.

pub use inngest_axum::install_crypto_provider;
