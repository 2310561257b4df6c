//! Accounts: e-mail, password, name, role and skills, each parsed once at the edge.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserParseError {
    #[error("email is not a valid address")]
    InvalidEmail,
    #[error("password must be between {min} and {max} characters")]
    PasswordLength { min: usize, max: usize },
    #[error("name must be at most {max} characters")]
    NameTooLong { max: usize },
    #[error("skills: {0}")]
    InvalidSkill(String),
    #[error("role must be one of user, moderator, admin")]
    InvalidRole,
}

/// A normalized e-mail address: trimmed and lower-cased, so `A@x.io` and `a@x.io ` are one account.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, UserParseError> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= Self::MAX_LEN
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && match email.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && local.len() <= 64
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains("..")
                        && !domain.starts_with('-')
                }
                None => false,
            };
        if valid {
            Ok(Self(email))
        } else {
            Err(UserParseError::InvalidEmail)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A plain-text password on its way to the hasher. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_LEN: usize = 8;
    /// Argon2 cost grows with input; a cap keeps one request from burning a core.
    pub const MAX_LEN: usize = 256;

    pub fn parse(raw: &str) -> Result<Self, UserParseError> {
        let len = raw.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(UserParseError::PasswordLength {
                min: Self::MIN_LEN,
                max: Self::MAX_LEN,
            });
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

pub fn parse_name(raw: Option<&str>) -> Result<String, UserParseError> {
    const MAX: usize = 100;
    let name = raw.unwrap_or("").trim();
    if name.chars().count() > MAX {
        return Err(UserParseError::NameTooLong { max: MAX });
    }
    Ok(name.chars().filter(|c| !c.is_control()).collect())
}

/// Skills are free text chosen by people ("SQL", "React"), trimmed, de-duplicated
/// case-insensitively, and bounded so routing stays cheap.
pub fn parse_skills<S: AsRef<str>>(raw: &[S]) -> Result<Vec<String>, UserParseError> {
    const MAX_SKILLS: usize = 50;
    const MAX_LEN: usize = 60;
    let mut out: Vec<String> = Vec::new();
    for skill in raw {
        let skill = skill.as_ref().trim();
        if skill.is_empty() {
            continue;
        }
        if skill.chars().count() > MAX_LEN || skill.chars().any(char::is_control) {
            return Err(UserParseError::InvalidSkill(format!(
                "each skill must be 1 to {MAX_LEN} printable characters"
            )));
        }
        if !out.iter().any(|s| s.eq_ignore_ascii_case(skill)) {
            out.push(skill.to_owned());
        }
    }
    if out.len() > MAX_SKILLS {
        return Err(UserParseError::InvalidSkill(format!(
            "at most {MAX_SKILLS} skills"
        )));
    }
    Ok(out)
}

/// Splits the CLI's comma-separated form ("SQL, React").
pub fn parse_skill_list(raw: &str) -> Result<Vec<String>, UserParseError> {
    parse_skills(&raw.split(',').collect::<Vec<_>>())
}

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Moderator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, UserParseError> {
        match raw {
            "user" => Ok(Role::User),
            "moderator" => Ok(Role::Moderator),
            "admin" => Ok(Role::Admin),
            _ => Err(UserParseError::InvalidRole),
        }
    }

    pub fn is_staff(self) -> bool {
        matches!(self, Role::Moderator | Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a person is named to others (in mail, on a ticket): their name, or else the part of
/// their e-mail address before the `@`, so the address itself is never shown.
pub fn display_name(name: &str, email: &str) -> String {
    let name = name.trim();
    if !name.is_empty() {
        return name.to_owned();
    }
    email.split('@').next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
    }

    #[test]
    fn bad_emails_are_rejected() {
        for bad in [
            "",
            "ann",
            "@x.io",
            "ann@",
            "ann@x",
            "a b@x.io",
            "ann@@x.io",
            "ann@.x.io",
            "ann@x..io",
            "ann@x.io.",
        ] {
            assert_eq!(
                Email::parse(bad),
                Err(UserParseError::InvalidEmail),
                "{bad:?}"
            );
        }
        let long = format!("{}@x.io", "a".repeat(300));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn password_length_is_enforced_and_hidden() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(257)).is_err());
        let p = Password::parse("correct horse").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
    }

    #[test]
    fn skills_are_trimmed_and_deduplicated() {
        let skills = parse_skill_list(" SQL, React ,sql,, ").unwrap();
        assert_eq!(skills, vec!["SQL", "React"]);
        assert!(parse_skills(&["x".repeat(61)]).is_err());
        assert!(parse_skills(&["a\u{0}b"]).is_err());
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::User, Role::Moderator, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert!(Role::parse("root").is_err());
    }

    #[test]
    fn display_names_never_show_the_address() {
        assert_eq!(
            display_name("Dana Scully", "dana@example.com"),
            "Dana Scully"
        );
        assert_eq!(display_name("  ", "dana.s@example.com"), "dana.s");
        assert_eq!(display_name("", "nobody"), "nobody");
    }
}
