//! A message rendered twice: as plain text and as HTML, every value escaped in the HTML.

use super::MailContent;
use crate::domain::triage::clean_line;

/// Percent-encodes everything but unreserved characters, so an id cannot change the link.
pub(super) fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A message before rendering. All strings are plain text.
pub(super) struct Doc {
    pub(super) subject: String,
    pub(super) heading: String,
    pub(super) paragraphs: Vec<String>,
    pub(super) facts: Vec<(&'static str, String)>,
    pub(super) quote: Option<String>,
    /// Names of attached files, each linked to the action's page, where they can be opened.
    pub(super) files: Vec<String>,
    pub(super) action: (String, String),
}

impl Doc {
    pub(super) fn render(self, product: &str) -> MailContent {
        let footer = format!("You receive this e-mail because you use {product}.");
        let (label, url) = &self.action;

        let mut text = format!("{}\n\n", self.heading);
        for p in &self.paragraphs {
            text.push_str(p);
            text.push_str("\n\n");
        }
        if let Some(q) = &self.quote {
            for line in q.lines() {
                text.push_str("> ");
                text.push_str(line);
                text.push('\n');
            }
            text.push('\n');
        }
        if !self.files.is_empty() {
            text.push_str(&format!(
                "Attached files (open them on the ticket: {url}):\n"
            ));
            for f in &self.files {
                text.push_str(&format!("- {f}\n"));
            }
            text.push('\n');
        }
        for (k, v) in &self.facts {
            text.push_str(&format!("{k}: {v}\n"));
        }
        if !self.facts.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("{label}: {url}\n\n-- \n{footer}\n"));

        let mut html = String::from(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\
             <body style=\"margin:0;padding:0;background:#f4f5f7\">\
             <div style=\"max-width:560px;margin:0 auto;padding:24px;font-family:Arial,Helvetica,sans-serif;\
             color:#1f2933;line-height:1.5;background:#ffffff\">",
        );
        html.push_str(&format!(
            "<h2 style=\"margin-top:0\">{}</h2>",
            escape_html(&self.heading)
        ));
        for p in &self.paragraphs {
            html.push_str(&format!("<p>{}</p>", escape_html(p)));
        }
        if let Some(q) = &self.quote {
            let lines: Vec<String> = q.lines().map(escape_html).collect();
            html.push_str(&format!(
                "<blockquote style=\"margin:0 0 16px;padding:8px 12px;border-left:3px solid #cbd2d9;\
                 color:#52606d\">{}</blockquote>",
                lines.join("<br>")
            ));
        }
        if !self.files.is_empty() {
            html.push_str(
                "<p style=\"margin-bottom:4px\">Attached files:</p><ul style=\"margin-top:0\">",
            );
            for f in &self.files {
                html.push_str(&format!(
                    "<li><a href=\"{}\">{}</a></li>",
                    escape_html(url),
                    escape_html(f)
                ));
            }
            html.push_str("</ul>");
        }
        if !self.facts.is_empty() {
            html.push_str("<table style=\"border-collapse:collapse;margin-bottom:16px\">");
            for (k, v) in &self.facts {
                html.push_str(&format!(
                    "<tr><td style=\"padding:2px 12px 2px 0;color:#52606d\">{}</td><td>{}</td></tr>",
                    escape_html(k),
                    escape_html(v)
                ));
            }
            html.push_str("</table>");
        }
        html.push_str(&format!(
            "<p><a href=\"{}\" style=\"display:inline-block;padding:10px 16px;background:#2563eb;\
             color:#ffffff;text-decoration:none;border-radius:6px\">{}</a></p>",
            escape_html(url),
            escape_html(label)
        ));
        html.push_str(&format!(
            "<p style=\"color:#7b8794;font-size:12px\">{}</p></div></body></html>\n",
            escape_html(&footer)
        ));

        MailContent {
            subject: clean_line(&self.subject),
            text,
            html,
        }
    }
}
