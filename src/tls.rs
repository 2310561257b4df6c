//! One process-wide rustls crypto provider (ring), installed before any TLS client is built.

pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
