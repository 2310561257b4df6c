//! Notification templates. Each message is described once (heading, paragraphs, facts, a
//! button) and rendered to both plain text and HTML; every value is escaped in the HTML part.
//! Links point at `{APP_URL}/tickets/{id}`, and account links at `{APP_URL}/reset?token=…` and
//! `{APP_URL}/verify?token=…`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::domain::triage::{Category, Priority, clamp_chars, clean_line};

mod render;

pub use render::escape_html;
use render::{Doc, encode_path_segment};

/// Subject, plain-text body and HTML body of one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailContent {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What the templates need to know about a ticket.
#[derive(Clone, Copy, Debug)]
pub struct TicketInfo<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub priority: Option<Priority>,
    pub category: Option<Category>,
    /// The triage summary, if there is one.
    pub summary: Option<&'a str>,
}

impl<'a> TicketInfo<'a> {
    pub fn new(id: &'a str, title: &'a str) -> Self {
        TicketInfo {
            id,
            title,
            priority: None,
            category: None,
            summary: None,
        }
    }
}

/// Renders the messages for one deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Templates {
    app_url: String,
    product: String,
}

/// Longest ticket title in a subject line.
const SUBJECT_TITLE_CHARS: usize = 100;
/// Longest reply excerpt quoted in a notification.
const EXCERPT_CHARS: usize = 600;

impl Templates {
    /// `app_url` is the public base URL of the web app (`APP_URL`); `product` names the service
    /// in greetings and footers.
    pub fn new(app_url: &str, product: &str) -> Self {
        Templates {
            app_url: app_url.trim().trim_end_matches('/').to_string(),
            product: clean_line(product),
        }
    }

    pub fn ticket_url(&self, id: &str) -> String {
        format!("{}/tickets/{}", self.app_url, encode_path_segment(id))
    }

    pub fn tickets_url(&self) -> String {
        format!("{}/tickets", self.app_url)
    }

    /// The page where a mailed reset token sets a new password.
    pub fn reset_url(&self, token: &str) -> String {
        format!(
            "{}/reset?token={}",
            self.app_url,
            encode_path_segment(token)
        )
    }

    /// The page where a mailed verification token confirms the address.
    pub fn verify_url(&self, token: &str) -> String {
        format!(
            "{}/verify?token={}",
            self.app_url,
            encode_path_segment(token)
        )
    }

    /// To someone who asked for a password reset. `url` carries the one-time token.
    pub fn password_reset(
        &self,
        name: Option<&str>,
        url: &str,
        valid_for: Duration,
    ) -> MailContent {
        Doc {
            subject: format!("Reset your {} password", self.product),
            heading: greeting(name, "Hello"),
            paragraphs: vec![
                format!(
                    "Someone, hopefully you, asked to reset the password of your {} account. \
                     Follow the link below to choose a new one. It works once, within {}, and \
                     signs you out on every device.",
                    self.product,
                    human_duration(valid_for)
                ),
                "If you did not ask for this, ignore this e-mail: your password stays as it is."
                    .to_string(),
            ],
            facts: vec![],
            quote: None,
            files: vec![],
            action: ("Choose a new password".to_string(), url.to_string()),
        }
        .render(&self.product)
    }

    /// To a new account whose address must be confirmed before it can open tickets.
    pub fn verify_email(&self, name: Option<&str>, url: &str, valid_for: Duration) -> MailContent {
        Doc {
            subject: format!("Confirm your e-mail address for {}", self.product),
            heading: greeting(name, "Welcome"),
            paragraphs: vec![
                format!(
                    "Your {} account is almost ready: confirm that this address is yours, and \
                     you can open tickets right away. The link works within {}.",
                    self.product,
                    human_duration(valid_for)
                ),
                "If you did not sign up, ignore this e-mail: without the confirmation the \
                 account stays unusable."
                    .to_string(),
            ],
            facts: vec![],
            quote: None,
            files: vec![],
            action: ("Confirm my address".to_string(), url.to_string()),
        }
        .render(&self.product)
    }

    /// To the owner of an address someone tried to sign up with. `reset_url` carries a
    /// one-time token, for the owner who forgot they had an account and its password.
    pub fn signup_attempted(
        &self,
        name: Option<&str>,
        reset_url: &str,
        valid_for: Duration,
    ) -> MailContent {
        Doc {
            subject: format!(
                "Someone tried to sign up to {} with your address",
                self.product
            ),
            heading: greeting(name, "Hello"),
            paragraphs: vec![
                format!(
                    "Someone tried to create a {} account with this e-mail address, which \
                     already has one. No new account was made.",
                    self.product
                ),
                format!(
                    "If it was you, sign in with your password. Forgot it? The link below sets \
                     a new one; it works once, within {}.",
                    human_duration(valid_for)
                ),
                "If it was not you, ignore this e-mail: nothing changed.".to_string(),
            ],
            facts: vec![],
            quote: None,
            files: vec![],
            action: ("Choose a new password".to_string(), reset_url.to_string()),
        }
        .render(&self.product)
    }

    /// To a new user.
    pub fn welcome(&self, name: Option<&str>) -> MailContent {
        let greeting = match name.map(clean_line).filter(|n| !n.is_empty()) {
            Some(n) => format!("Welcome, {n}!"),
            None => "Welcome!".to_string(),
        };
        Doc {
            subject: format!("Welcome to {}", self.product),
            heading: greeting,
            paragraphs: vec![
                format!("Your {} account is ready.", self.product),
                "Whenever you need help, open a ticket: we will triage it right away and keep \
                 you posted by e-mail as it progresses."
                    .to_string(),
            ],
            facts: vec![],
            quote: None,
            files: vec![],
            action: ("Go to your tickets".to_string(), self.tickets_url()),
        }
        .render(&self.product)
    }

    /// To the creator, after a ticket was opened. `files` are the names of the files attached
    /// so far; they are named with a link to the ticket, never attached to the mail.
    pub fn ticket_received(&self, t: &TicketInfo<'_>, files: &[&str]) -> MailContent {
        Doc {
            subject: format!("We received your ticket: {}", subject_title(t.title)),
            heading: "We received your ticket".to_string(),
            paragraphs: vec![format!(
                "Thanks for reaching out. Your ticket \u{201c}{}\u{201d} is in our queue, and \
                 you will hear from us as soon as someone picks it up.",
                clean_line(t.title)
            )],
            facts: ticket_facts(t, false),
            quote: None,
            files: file_names(files),
            action: ("View your ticket".to_string(), self.ticket_url(t.id)),
        }
        .render(&self.product)
    }

    /// To the moderator or admin a ticket was assigned to. `reason` is the routing explanation.
    pub fn ticket_assigned(&self, t: &TicketInfo<'_>, reason: Option<&str>) -> MailContent {
        let mut paragraphs = vec![format!(
            "The ticket \u{201c}{}\u{201d} was assigned to you.",
            clean_line(t.title)
        )];
        if let Some(r) = reason.map(clean_line).filter(|r| !r.is_empty()) {
            paragraphs.push(format!("Why you: {r}"));
        }
        Doc {
            subject: format!(
                "{}Ticket assigned to you: {}",
                if t.priority == Some(Priority::High) {
                    "[High] "
                } else {
                    ""
                },
                subject_title(t.title)
            ),
            heading: "A ticket was assigned to you".to_string(),
            paragraphs,
            facts: ticket_facts(t, true),
            quote: None,
            files: vec![],
            action: ("Open the ticket".to_string(), self.ticket_url(t.id)),
        }
        .render(&self.product)
    }

    /// To the creator (or the people involved) when the status changes. Statuses are the wire
    /// names (`in_progress`); they are shown in words.
    pub fn status_changed(&self, t: &TicketInfo<'_>, from: &str, to: &str) -> MailContent {
        let (from, to) = (humanize(from), humanize(to));
        Doc {
            subject: format!("Your ticket is now {to}: {}", subject_title(t.title)),
            heading: format!("Ticket status: {to}"),
            paragraphs: vec![format!(
                "The status of your ticket \u{201c}{}\u{201d} changed from {from} to {to}.",
                clean_line(t.title)
            )],
            facts: ticket_facts(t, false),
            quote: None,
            files: vec![],
            action: ("View the ticket".to_string(), self.ticket_url(t.id)),
        }
        .render(&self.product)
    }

    /// To the other side of the conversation when a reply is added. `files` are the names of
    /// the files that came with the reply (see `on-ticket-updated`), linked, never attached.
    pub fn reply_added(
        &self,
        t: &TicketInfo<'_>,
        author: &str,
        body: &str,
        files: &[&str],
    ) -> MailContent {
        let author = clean_line(author);
        let author = if author.is_empty() {
            "Someone".to_string()
        } else {
            author
        };
        Doc {
            subject: format!("New reply on: {}", subject_title(t.title)),
            heading: "New reply on your ticket".to_string(),
            paragraphs: vec![format!(
                "{author} replied to the ticket \u{201c}{}\u{201d}:",
                clean_line(t.title)
            )],
            facts: vec![],
            quote: Some(clamp_chars(body.trim(), EXCERPT_CHARS)),
            files: file_names(files),
            action: ("Read and reply".to_string(), self.ticket_url(t.id)),
        }
        .render(&self.product)
    }

    /// To admins when a ticket missed its SLA deadline.
    pub fn sla_escalation(
        &self,
        t: &TicketInfo<'_>,
        deadline: DateTime<Utc>,
        assignee: Option<&str>,
    ) -> MailContent {
        let mut facts = ticket_facts(t, true);
        facts.push((
            "Deadline",
            deadline.format("%Y-%m-%d %H:%M UTC").to_string(),
        ));
        facts.push((
            "Assigned to",
            assignee
                .map(clean_line)
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| "nobody".to_string()),
        ));
        Doc {
            subject: format!("SLA breached: {}", subject_title(t.title)),
            heading: "A ticket missed its SLA".to_string(),
            paragraphs: vec![format!(
                "The ticket \u{201c}{}\u{201d} was not resolved by its deadline. Please check \
                 who is working on it, reassign it if needed, and update the customer.",
                clean_line(t.title)
            )],
            facts,
            quote: None,
            files: vec![],
            action: ("Review the ticket".to_string(), self.ticket_url(t.id)),
        }
        .render(&self.product)
    }

    /// To admins when a ticket's automatic processing failed for good.
    /// `triage_failed`: the ticket was left untriaged (and is marked so); otherwise triage had
    /// finished and a later step (routing, notifications, SLA follow-up) gave up.
    pub fn processing_failed(
        &self,
        t: &TicketInfo<'_>,
        reason: &str,
        triage_failed: bool,
    ) -> MailContent {
        let mut facts = ticket_facts(t, false);
        facts.push(("Error", clamp_chars(&clean_line(reason), 300)));
        Doc {
            subject: format!("Needs attention: {}", subject_title(t.title)),
            heading: "A ticket could not be processed automatically".to_string(),
            paragraphs: vec![if triage_failed {
                format!(
                    "Triage of the ticket \u{201c}{}\u{201d} failed after every retry. \
                     It is marked as failed and waits for a person to triage and assign it.",
                    clean_line(t.title)
                )
            } else {
                format!(
                    "The ticket \u{201c}{}\u{201d} was triaged, but a later step (routing, \
                     notifications or the SLA follow-up) failed after every retry. Check its \
                     assignee and follow it up by hand.",
                    clean_line(t.title)
                )
            }],
            facts,
            quote: None,
            files: vec![],
            action: ("Open the ticket".to_string(), self.ticket_url(t.id)),
        }
        .render(&self.product)
    }
}

/// Longest file name shown in a mail.
const FILE_NAME_CHARS: usize = 120;

fn file_names(files: &[&str]) -> Vec<String> {
    files
        .iter()
        .map(|f| clamp_chars(&clean_line(f), FILE_NAME_CHARS))
        .filter(|f| !f.is_empty())
        .collect()
}

/// "Hello, Ann!" or "Hello!".
fn greeting(name: Option<&str>, word: &str) -> String {
    match name.map(clean_line).filter(|n| !n.is_empty()) {
        Some(n) => format!("{word}, {n}!"),
        None => format!("{word}!"),
    }
}

/// "1 hour", "30 minutes", "2 days": the largest unit that divides it evenly.
fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = [(86_400, "day"), (3600, "hour"), (60, "minute")]
        .into_iter()
        .find(|(size, _)| secs >= *size && secs.is_multiple_of(*size))
        .map_or((secs, "second"), |(size, unit)| (secs / size, unit));
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn subject_title(title: &str) -> String {
    clamp_chars(&clean_line(title), SUBJECT_TITLE_CHARS)
}

fn humanize(status: &str) -> String {
    clean_line(&status.replace(['_', '-'], " ")).to_lowercase()
}

fn ticket_facts(t: &TicketInfo<'_>, with_summary: bool) -> Vec<(&'static str, String)> {
    let mut facts = vec![("Ticket", t.id.to_string())];
    if let Some(p) = t.priority {
        facts.push(("Priority", p.as_str().to_string()));
    }
    if let Some(c) = t.category {
        facts.push(("Category", c.label().to_string()));
    }
    if with_summary && let Some(s) = t.summary.map(clean_line).filter(|s| !s.is_empty()) {
        facts.push(("Summary", s));
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const EVIL: &str = "<script>alert('x')</script> & \"quotes\"";

    fn templates() -> Templates {
        Templates::new("https://help.example.com/", "Acme Support")
    }

    fn ticket<'a>(title: &'a str) -> TicketInfo<'a> {
        TicketInfo {
            id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            title,
            priority: Some(Priority::High),
            category: Some(Category::TechnicalIssue),
            summary: Some("Dashboard returns 503 for all users."),
        }
    }

    fn all(t: &Templates, tk: &TicketInfo<'_>) -> Vec<MailContent> {
        vec![
            t.welcome(Some(EVIL)),
            t.ticket_received(tk, &[EVIL]),
            t.ticket_assigned(tk, Some(EVIL)),
            t.status_changed(tk, "open", "in_progress"),
            t.reply_added(tk, EVIL, EVIL, &[EVIL]),
            t.sla_escalation(
                tk,
                Utc.with_ymd_and_hms(2026, 11, 23, 9, 30, 0).unwrap(),
                Some(EVIL),
            ),
        ]
    }

    #[test]
    fn html_is_escaped_everywhere() {
        let t = templates();
        for m in all(&t, &ticket(EVIL)) {
            assert!(!m.html.contains("<script>"), "{}", m.html);
            assert!(!m.html.contains("\"quotes\""), "{}", m.html);
            assert!(m.html.contains("&lt;script&gt;"), "{}", m.subject);
            assert!(m.html.contains("&amp;"));
            // the plain-text part carries the text as written
            assert!(m.text.contains("<script>alert('x')</script>"), "{}", m.text);
        }
    }

    #[test]
    fn ticket_links_use_app_url_and_id() {
        let t = templates();
        let tk = ticket("Dashboard down");
        let url = "https://help.example.com/tickets/0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        for m in all(&t, &tk).into_iter().skip(1) {
            assert!(m.text.contains(url), "{}", m.text);
            assert!(m.html.contains(&format!("href=\"{url}\"")), "{}", m.html);
        }
        let w = t.welcome(None);
        assert!(w.text.contains("https://help.example.com/tickets"));
        assert_eq!(w.subject, "Welcome to Acme Support");
        assert!(w.text.starts_with("Welcome!"));
    }

    #[test]
    fn account_links_carry_the_token_and_say_how_long_they_work() {
        let t = templates();
        let token = "AbC-_123";
        let reset = t.password_reset(Some("Ann"), &t.reset_url(token), Duration::from_secs(3600));
        assert_eq!(reset.subject, "Reset your Acme Support password");
        assert!(reset.text.starts_with("Hello, Ann!"), "{}", reset.text);
        assert!(
            reset
                .text
                .contains("https://help.example.com/reset?token=AbC-_123")
        );
        assert!(
            reset
                .html
                .contains("href=\"https://help.example.com/reset?token=AbC-_123\"")
        );
        assert!(reset.text.contains("within 1 hour"), "{}", reset.text);

        let verify = t.verify_email(None, &t.verify_url(token), Duration::from_secs(86_400));
        assert_eq!(
            verify.subject,
            "Confirm your e-mail address for Acme Support"
        );
        assert!(verify.text.starts_with("Welcome!"));
        assert!(
            verify
                .text
                .contains("https://help.example.com/verify?token=AbC-_123")
        );
        assert!(verify.text.contains("within 1 day"));

        let attempt = t.signup_attempted(Some(EVIL), &t.reset_url(token), Duration::from_secs(90));
        assert!(attempt.text.contains("already has one"));
        assert!(
            attempt
                .text
                .contains("https://help.example.com/reset?token=AbC-_123")
        );
        assert!(attempt.text.contains("within 90 seconds"));
        assert!(!attempt.html.contains("<script>"));
        assert_eq!(
            t.reset_url("a&b=c"),
            "https://help.example.com/reset?token=a%26b%3Dc"
        );
    }

    #[test]
    fn durations_read_in_the_largest_even_unit() {
        assert_eq!(human_duration(Duration::from_secs(1)), "1 second");
        assert_eq!(human_duration(Duration::from_secs(2)), "2 seconds");
        assert_eq!(human_duration(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(human_duration(Duration::from_secs(5400)), "90 minutes");
        assert_eq!(human_duration(Duration::from_secs(7200)), "2 hours");
        assert_eq!(human_duration(Duration::from_secs(172_800)), "2 days");
    }

    #[test]
    fn ids_cannot_change_the_link() {
        let t = templates();
        assert_eq!(
            t.ticket_url("../admin?x=\"1\""),
            "https://help.example.com/tickets/..%2Fadmin%3Fx%3D%221%22"
        );
    }

    #[test]
    fn subjects_are_single_line_and_bounded() {
        let t = templates();
        let long = format!("Line one\r\nBcc: x@example.com {}", "y".repeat(300));
        for m in all(&t, &ticket(&long)) {
            assert!(
                !m.subject.contains('\n') && !m.subject.contains('\r'),
                "{}",
                m.subject
            );
            assert!(m.subject.chars().count() < 150, "{}", m.subject);
        }
    }

    #[test]
    fn content_of_each_template() {
        let t = templates();
        let tk = ticket("Dashboard down");
        let m = t.ticket_received(&tk, &[]);
        assert_eq!(m.subject, "We received your ticket: Dashboard down");
        assert!(m.text.contains("Priority: high"));

        let m = t.ticket_assigned(
            &tk,
            Some("Moderator matches 1 of 1 required skill: DevOps."),
        );
        assert_eq!(m.subject, "[High] Ticket assigned to you: Dashboard down");
        assert!(
            m.text
                .contains("Why you: Moderator matches 1 of 1 required skill: DevOps.")
        );
        assert!(
            m.text
                .contains("Summary: Dashboard returns 503 for all users.")
        );
        assert!(m.text.contains("Category: technical issue"));

        let m = t.status_changed(&tk, "open", "in_progress");
        assert_eq!(m.subject, "Your ticket is now in progress: Dashboard down");
        assert!(m.text.contains("changed from open to in progress"));

        let m = t.reply_added(&tk, "Sam (support)", "First line\nSecond line", &[]);
        assert!(m.text.contains("> First line\n> Second line"), "{}", m.text);
        assert!(m.html.contains("First line<br>Second line"));

        let deadline = Utc.with_ymd_and_hms(2026, 11, 23, 9, 30, 0).unwrap();
        let m = t.sla_escalation(&tk, deadline, None);
        assert_eq!(m.subject, "SLA breached: Dashboard down");
        assert!(m.text.contains("Deadline: 2026-11-23 09:30 UTC"));
        assert!(m.text.contains("Assigned to: nobody"));
    }

    #[test]
    fn attached_files_are_named_with_a_link_to_the_ticket() {
        let t = templates();
        let tk = ticket("Dashboard down");
        let url = "https://help.example.com/tickets/0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        let files = ["screenshot.png", "../../etc/passwd\r\nBcc: x@example.com"];
        for m in [
            t.ticket_received(&tk, &files),
            t.reply_added(&tk, "Sam", "See the log.", &files),
        ] {
            assert!(
                m.text.contains(&format!(
                    "Attached files (open them on the ticket: {url}):\n- screenshot.png\n- ../../etc/passwd Bcc: x@example.com\n"
                )),
                "{}",
                m.text
            );
            assert!(
                m.html
                    .contains(&format!("<li><a href=\"{url}\">screenshot.png</a></li>")),
                "{}",
                m.html
            );
        }
        let none = t.reply_added(&tk, "Sam", "No files.", &[]);
        assert!(!none.text.contains("Attached files"));
        assert!(!none.html.contains("Attached files"));
    }

    #[test]
    fn processing_failed_says_what_was_left_undone() {
        let t = TicketInfo::new("t-1", "Printer <on fire>");
        let untriaged = templates().processing_failed(&t, "AI down", true);
        let later = templates().processing_failed(&t, "SMTP down", false);
        assert!(untriaged.text.contains("marked as failed"));
        assert!(!later.text.contains("marked as failed"));
        assert!(later.text.contains("follow it up by hand"));
        assert!(untriaged.html.contains("Printer &lt;on fire&gt;"));
        assert!(
            untriaged
                .text
                .contains("https://help.example.com/tickets/t-1")
        );
    }
}
