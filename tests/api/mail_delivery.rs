//! Mail delivery through a real SMTP server (plain, and STARTTLS with authentication) and into
//! the outbox folder, with the real templates.

use std::path::Path;
use std::time::Duration;

use ticketing::domain::triage::{Category, Priority};
use ticketing::mail::{
    Email, MailError, MailSettings, MailTransportSettings, Mailer, RawMailEnv, SmtpMailer,
    SmtpSettings, SmtpTls, Templates, TicketInfo,
};

use crate::support::mime;
use crate::support::smtp_peer::SmtpPeer;

const APP_URL: &str = "http://app.test:3000";
const TICKET_ID: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

fn ticket(title: &str) -> TicketInfo<'_> {
    TicketInfo {
        id: TICKET_ID,
        title,
        priority: Some(Priority::High),
        category: Some(Category::Bug),
        summary: Some("Checkout fails for everyone."),
    }
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn smtp_url_mailer_delivers_templated_mail() {
    let peer = SmtpPeer::start();
    let raw = RawMailEnv {
        smtp_url: Some(peer.smtp_url()),
        mail_from: Some("Acme Help <help@acme.test>".into()),
        ..RawMailEnv::default()
    };
    let settings = MailSettings::parse(&raw, Path::new("unused")).unwrap();
    assert!(matches!(settings.transport, MailTransportSettings::Smtp(_)));
    let mailer = settings.build().unwrap();
    let templates = Templates::new(APP_URL, "Acme Help");

    let title = "Checkout <b>broken</b> & café";
    let assigned = Email::new(
        "Mo Derator <mod@acme.test>",
        templates.ticket_assigned(
            &ticket(title),
            Some("Moderator matches 1 of 1 required skill: Billing."),
        ),
    )
    .with_idempotency_key(format!("ticket-assigned:{TICKET_ID}"));
    mailer.send(&assigned).await.unwrap();
    mailer
        .send(&Email::new(
            "new.user@acme.test",
            templates.welcome(Some("Ann")),
        ))
        .await
        .unwrap();

    let mails = peer.wait_for(2, WAIT).await;
    assert_eq!(mails.len(), 2);

    let m = &mails[0];
    assert_eq!(m.from, "help@acme.test");
    assert_eq!(m.to, vec!["mod@acme.test"]);
    let parsed = m.parsed();
    assert_eq!(
        parsed.header("From"),
        Some("\"Acme Help\" <help@acme.test>")
    );
    assert_eq!(parsed.header("To"), Some("\"Mo Derator\" <mod@acme.test>"));
    assert_eq!(
        m.subject(),
        "[High] Ticket assigned to you: Checkout <b>broken</b> & café"
    );
    let link = format!("{APP_URL}/tickets/{TICKET_ID}");
    assert!(m.text().contains(&link), "{}", m.text());
    assert!(
        m.text()
            .contains("Why you: Moderator matches 1 of 1 required skill: Billing.")
    );
    assert!(
        m.html().contains(&format!("href=\"{link}\"")),
        "{}",
        m.html()
    );
    assert!(
        m.html()
            .contains("Checkout &lt;b&gt;broken&lt;/b&gt; &amp; café")
    );
    assert!(!m.html().contains("<b>broken"));
    let message_id = parsed.header("Message-ID").unwrap().to_string();
    assert!(message_id.ends_with("@acme.test>"), "{message_id}");

    let w = &mails[1];
    assert_eq!(w.to, vec!["new.user@acme.test"]);
    assert_eq!(w.subject(), "Welcome to Acme Help");
    assert!(w.text().contains("Welcome, Ann!"));
    assert!(w.text().contains(&format!("{APP_URL}/tickets")));
    assert_ne!(w.parsed().header("Message-ID"), Some(message_id.as_str()));

    // Same idempotency key, same Message-ID: a replayed send is recognisable.
    mailer.send(&assigned).await.unwrap();
    let mails = peer.wait_for(3, WAIT).await;
    assert_eq!(
        mails[2].parsed().header("Message-ID"),
        Some(message_id.as_str())
    );
}

#[tokio::test]
async fn starttls_with_authentication() {
    let peer = SmtpPeer::start_tls("mailer", "s3cret pass");
    let from = "Support <support@acme.test>".parse().unwrap();
    let mailer = SmtpMailer::new(&peer.settings(), from).unwrap();
    mailer.test_connection().await.unwrap();
    let templates = Templates::new(APP_URL, "Acme Help");
    mailer
        .send(&Email::new(
            "customer@acme.test",
            templates.status_changed(&ticket("Login loop"), "open", "resolved"),
        ))
        .await
        .unwrap();
    let mails = peer.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].authenticated_as.as_deref(), Some("mailer"));
    assert_eq!(
        mails[0].subject(),
        "Your ticket is now resolved: Login loop"
    );
    assert!(mails[0].text().contains("changed from open to resolved"));
}

#[tokio::test]
async fn wrong_credentials_are_a_permanent_failure() {
    let peer = SmtpPeer::start_tls("mailer", "right");
    let mut settings = peer.settings();
    settings.credentials.as_mut().unwrap().password = "wrong".into();
    let mailer = SmtpMailer::new(&settings, "a@acme.test".parse().unwrap()).unwrap();
    let err = mailer
        .send(&Email::new(
            "customer@acme.test",
            Templates::new(APP_URL, "X").welcome(None),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Rejected(_)), "{err:?}");
    assert!(err.is_permanent());
    assert!(peer.messages().is_empty());
}

#[tokio::test]
async fn untrusted_certificate_is_refused() {
    let peer = SmtpPeer::start_tls("mailer", "pw");
    let mut settings = peer.settings();
    settings.extra_root_cert_pem = None;
    let mailer = SmtpMailer::new(&settings, "a@acme.test".parse().unwrap()).unwrap();
    let err = mailer
        .send(&Email::new(
            "customer@acme.test",
            Templates::new(APP_URL, "X").welcome(None),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err:?}");
    assert!(peer.messages().is_empty());
}

#[tokio::test]
async fn required_tls_against_a_server_without_starttls_fails() {
    let peer = SmtpPeer::start();
    let settings = SmtpSettings::new("127.0.0.1", peer.port(), SmtpTls::Required);
    let mailer = SmtpMailer::new(&settings, "a@acme.test".parse().unwrap()).unwrap();
    let result = mailer
        .send(&Email::new(
            "customer@acme.test",
            Templates::new(APP_URL, "X").welcome(None),
        ))
        .await;
    assert!(result.is_err(), "must not fall back to plain text");
    assert!(peer.messages().is_empty());
}

#[tokio::test]
async fn recipient_rejections_are_classified() {
    let peer = SmtpPeer::start();
    let mailer = SmtpMailer::new(&peer.settings(), "a@acme.test".parse().unwrap()).unwrap();
    let content = Templates::new(APP_URL, "X").welcome(None);

    let err = mailer
        .send(&Email::new("nobody@reject.example", content.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Rejected(_)), "{err:?}");

    let err = mailer
        .send(&Email::new("someone@busy.example", content.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err:?}");
    assert!(!err.is_permanent());

    // The pooled transport recovers and delivers the next message.
    mailer
        .send(&Email::new("ok@acme.test", content))
        .await
        .unwrap();
    let mails = peer.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["ok@acme.test"]);
}

#[tokio::test]
async fn unreachable_server_is_transient() {
    let port = crate::support::free_port();
    let mailer = SmtpMailer::new(
        &SmtpSettings::new("127.0.0.1", port, SmtpTls::None),
        "a@acme.test".parse().unwrap(),
    )
    .unwrap();
    let err = mailer.test_connection().await.unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn without_smtp_mail_goes_to_the_outbox_folder() {
    let data_dir = tempfile::tempdir().unwrap();
    let settings = MailSettings::parse(&RawMailEnv::default(), data_dir.path()).unwrap();
    let mailer = settings.build().unwrap();
    let templates = Templates::new(APP_URL, "Acme Help");
    mailer
        .send(&Email::new(
            "customer@acme.test",
            templates.ticket_received(&ticket("Invoice <missing>"), &[]),
        ))
        .await
        .unwrap();

    let outbox = data_dir.path().join("outbox");
    let files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let parsed = mime::parse(&std::fs::read_to_string(&files[0]).unwrap());
    assert_eq!(parsed.header("To"), Some("customer@acme.test"));
    assert_eq!(
        parsed.subject(),
        Some("We received your ticket: Invoice <missing>")
    );
    let link = format!("{APP_URL}/tickets/{TICKET_ID}");
    assert!(parsed.text.as_deref().unwrap().contains(&link));
    let html = parsed.html.unwrap();
    assert!(html.contains(&format!("href=\"{link}\"")));
    assert!(html.contains("Invoice &lt;missing&gt;"));
}
