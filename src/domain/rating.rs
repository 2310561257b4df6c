//! Satisfaction ratings: a score from 1 to 5 and an optional comment, given once by the ticket's
//! creator after it was resolved.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RatingParseError {
    #[error("score must be a whole number from {min} to {max}")]
    Score { min: u8, max: u8 },
    #[error("comment must be at most {max} characters")]
    CommentTooLong { max: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Score(u8);

impl Score {
    pub const MIN: u8 = 1;
    pub const MAX: u8 = 5;

    pub fn parse(raw: i64) -> Result<Self, RatingParseError> {
        u8::try_from(raw)
            .ok()
            .filter(|s| (Self::MIN..=Self::MAX).contains(s))
            .map(Self)
            .ok_or(RatingParseError::Score {
                min: Self::MIN,
                max: Self::MAX,
            })
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

pub const COMMENT_MAX: usize = 2000;

/// Trimmed, control characters dropped (newlines kept); blank means no comment.
pub fn parse_comment(raw: Option<&str>) -> Result<Option<String>, RatingParseError> {
    let Some(raw) = raw else { return Ok(None) };
    let text: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect();
    if text.chars().count() > COMMENT_MAX {
        return Err(RatingParseError::CommentTooLong { max: COMMENT_MAX });
    }
    Ok(Some(text).filter(|t| !t.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_run_from_one_to_five() {
        assert_eq!(Score::parse(1).unwrap().get(), 1);
        assert_eq!(Score::parse(5).unwrap().get(), 5);
        for bad in [0, 6, -1, 256, i64::MAX] {
            assert!(Score::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn comments_are_bounded_and_blank_means_none() {
        assert_eq!(parse_comment(None), Ok(None));
        assert_eq!(parse_comment(Some("  \n ")), Ok(None));
        assert_eq!(
            parse_comment(Some(" Quick\u{7} fix\nthanks ")),
            Ok(Some("Quick fix\nthanks".into()))
        );
        assert!(parse_comment(Some(&"é".repeat(COMMENT_MAX))).is_ok());
        assert!(parse_comment(Some(&"é".repeat(COMMENT_MAX + 1))).is_err());
    }
}
