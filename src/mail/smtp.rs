//! SMTP delivery through a pooled lettre transport.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::sync::Semaphore;

use super::settings::{SmtpSettings, SmtpTls};
use super::{Email, MailError, Mailer, message};

#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// lettre's pool bounds only the idle connections it keeps, not the ones it opens: a burst
    /// of sends would open one connection each, more than servers allow per client (the extra
    /// ones are left unanswered until the timeout). Sends beyond the pool size wait instead.
    permits: Arc<Semaphore>,
    from: Mailbox,
    server: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl SmtpMailer {
    /// Builds the transport; connections are opened lazily, on the first send.
    pub fn new(settings: &SmtpSettings, from: Mailbox) -> Result<Self, MailError> {
        let tls = match settings.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Opportunistic => Tls::Opportunistic(tls_parameters(settings)?),
            SmtpTls::Required => Tls::Required(tls_parameters(settings)?),
            SmtpTls::Wrapper => Tls::Wrapper(tls_parameters(settings)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(tls)
            .timeout(Some(settings.timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(settings.pool_max_size.max(1))
                    .idle_timeout(Duration::from_secs(60)),
            );
        if let Some(c) = &settings.credentials {
            builder = builder.credentials(Credentials::new(c.username.clone(), c.password.clone()));
        }
        if let Some(name) = &settings.hello_name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        Ok(SmtpMailer {
            transport: builder.build(),
            permits: Arc::new(Semaphore::new(settings.pool_max_size.max(1) as usize)),
            from,
            server: format!("{}:{}", settings.host, settings.port),
        })
    }

    /// Opens (or reuses) a connection and issues NOOP: a readiness check.
    pub async fn test_connection(&self) -> Result<(), MailError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| MailError::Transient(format!("{}: {e}", self.server)))?;
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(MailError::Transient(format!(
                "SMTP server {} did not answer NOOP",
                self.server
            ))),
            Err(e) => Err(classify(&self.server, &e)),
        }
    }
}

fn tls_parameters(settings: &SmtpSettings) -> Result<TlsParameters, MailError> {
    let mut builder = TlsParameters::builder(settings.host.clone())
        .dangerous_accept_invalid_certs(settings.accept_invalid_certs);
    if let Some(pem) = &settings.extra_root_cert_pem {
        let cert = Certificate::from_pem(pem.as_bytes())
            .map_err(|e| MailError::Build(format!("invalid SMTP root certificate: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build_rustls()
        .map_err(|e| MailError::Build(format!("invalid SMTP TLS settings: {e}")))
}

fn classify(server: &str, e: &lettre::transport::smtp::Error) -> MailError {
    let text = format!("{server}: {e}");
    if e.is_permanent() {
        MailError::Rejected(text)
    } else {
        MailError::Transient(text)
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, msg: &Email) -> Result<(), MailError> {
        let message = message::build(&self.from, msg)?;
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| MailError::Transient(format!("{}: {e}", self.server)))?;
        self.transport
            .send(message)
            .await
            .map_err(|e| classify(&self.server, &e))?;
        tracing::info!(server = %self.server, recipients = msg.to.len(), "mail sent");
        Ok(())
    }
}
