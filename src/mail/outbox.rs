//! Writes each message as an `.eml` file (RFC 5322, both parts) into a folder: the default when
//! no SMTP server is configured. Files appear atomically (written to a hidden temporary file,
//! synced, then renamed), so a reader never sees half a message.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::Utc;
use lettre::message::Mailbox;

use super::{Email, MailError, Mailer, message};

#[derive(Debug, Clone)]
pub struct OutboxMailer {
    dir: PathBuf,
    from: Mailbox,
}

impl OutboxMailer {
    /// The folder is created on first use.
    pub fn new(dir: impl Into<PathBuf>, from: Mailbox) -> Self {
        OutboxMailer {
            dir: dir.into(),
            from,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the message and returns the path of the new file.
    pub async fn write(&self, msg: &Email) -> Result<PathBuf, MailError> {
        let bytes = message::build(&self.from, msg)?.formatted();
        let name = format!(
            "{}-{}.eml",
            Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
            uuid::Uuid::now_v7().simple()
        );
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &bytes))
            .await
            .map_err(|e| MailError::Io(format!("outbox writer panicked: {e}")))?
    }
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, MailError> {
    let io = |what: &str, path: &Path, e: std::io::Error| {
        MailError::Io(format!("{what} {}: {e}", path.display()))
    };
    crate::private_fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    let result = (|| {
        let mut file =
            crate::private_fs::create_file(&tmp).map_err(|e| io("cannot create", &tmp, e))?;
        file.write_all(bytes)
            .map_err(|e| io("cannot write", &tmp, e))?;
        file.sync_all().map_err(|e| io("cannot sync", &tmp, e))?;
        std::fs::rename(&tmp, &target).map_err(|e| io("cannot rename to", &target, e))
    })();
    if result.is_err() {
        // Best effort: the error being returned is the one that matters.
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| target)
}

#[async_trait::async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, msg: &Email) -> Result<(), MailError> {
        let path = self.write(msg).await?;
        tracing::info!(path = %path.display(), recipients = msg.to.len(), "mail written to the outbox");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(subject: &str) -> Email {
        Email {
            to: vec!["ann@example.com".into()],
            subject: subject.into(),
            text: "Hello Ann, see http://app/tickets/1".into(),
            html: "<p>Hello Ann</p>".into(),
            idempotency_key: None,
        }
    }

    #[tokio::test]
    async fn writes_complete_eml_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("outbox");
        let m = OutboxMailer::new(&dir, "Support <support@localhost>".parse().unwrap());
        m.send(&email("First")).await.unwrap();
        m.send(&email("Second")).await.unwrap();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert_eq!(files.len(), 2, "{files:?}");
        for f in &files {
            assert_eq!(f.extension().unwrap(), "eml");
            assert!(!f.file_name().unwrap().to_string_lossy().starts_with('.'));
        }
        let first = std::fs::read_to_string(&files[0]).unwrap();
        assert!(first.contains("Subject: First"));
        assert!(first.contains("To: ann@example.com"));
        assert!(first.contains("From: Support <support@localhost>"));
        assert!(first.contains("text/plain") && first.contains("text/html"));
        assert!(first.contains("Date: "));
        assert!(
            std::fs::read_to_string(&files[1])
                .unwrap()
                .contains("Subject: Second")
        );
    }

    #[tokio::test]
    async fn unwritable_outbox_is_an_io_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let m = OutboxMailer::new(&file, "a@example.com".parse().unwrap());
        let err = m.send(&email("x")).await.unwrap_err();
        assert!(matches!(err, MailError::Io(_)), "{err:?}");
        assert!(!err.is_permanent());
    }

    #[tokio::test]
    async fn invalid_messages_are_not_written() {
        let tmp = tempfile::tempdir().unwrap();
        let m = OutboxMailer::new(tmp.path(), "a@example.com".parse().unwrap());
        let mut e = email("x");
        e.to = vec!["bad".into()];
        assert!(matches!(
            m.send(&e).await,
            Err(MailError::InvalidAddress { .. })
        ));
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
