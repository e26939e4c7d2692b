//! Finding the request number and the `*message*` keyword in a subject.

use crate::reason::Reason;

/// The keyword that marks a mail as a message for a request.
const KEYWORD: &str = "*message*";

/// The request number a CatchMail subject names.
///
/// The subject is split on any whitespace (spaces, tabs, runs of them, and
/// no-break spaces, which some mail clients insert). Then:
///
/// - a *number token* is a whole token `#` followed by ASCII digits only:
///   `#23010203`, or `#0023010203` (leading zeros allowed, same request);
///   `#123,`, `abc#123`, `[#123]` and `#` are not number tokens;
/// - a *keyword token* is a whole token equal to `*message*`, any letter case;
/// - tokens may come in any order and other words may surround them.
///
/// # Errors
///
/// Checked in this order: [`Reason::SubjectSeveralNumbers`] when number
/// tokens name different requests (the same number twice is fine; refusing
/// is safer than guessing which request was meant),
/// [`Reason::SubjectMissingNumber`] when there is no number token,
/// [`Reason::SubjectMissingKeyword`] when there is no keyword token, and
/// [`Reason::RequestNotFound`] when the number is too large for any request
/// to have it.
pub fn parse_subject(subject: &str) -> Result<u64, Reason> {
    let mut number: Option<&str> = None;
    let mut several = false;
    let mut keyword = false;
    for token in subject.split_whitespace() {
        if token.eq_ignore_ascii_case(KEYWORD) {
            keyword = true;
        } else if let Some(digits) = number_token(token) {
            match number {
                None => number = Some(digits),
                Some(seen) if seen != digits => several = true,
                Some(_) => {}
            }
        }
    }
    if several {
        return Err(Reason::SubjectSeveralNumbers);
    }
    let digits = number.ok_or(Reason::SubjectMissingNumber)?;
    if !keyword {
        return Err(Reason::SubjectMissingKeyword);
    }
    digits.parse().map_err(|_| Reason::RequestNotFound)
}

/// The digits of a number token without leading zeros (`"0"` for all
/// zeros), so that `#023` and `#23` compare equal.
fn number_token(token: &str) -> Option<&str> {
    let digits = token.strip_prefix('#')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    Some(if significant.is_empty() {
        "0"
    } else {
        significant
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_examples_are_valid() {
        for subject in [
            "#23010203 *message*",
            "*message* #23010203",
            "Validation qualité #23010203 *message*",
            "#23010203 *MESSAGE* Retour",
        ] {
            assert_eq!(parse_subject(subject), Ok(23010203), "{subject}");
        }
    }

    #[test]
    fn any_whitespace_separates_tokens() {
        assert_eq!(parse_subject("#23010203\t*message*"), Ok(23010203));
        assert_eq!(
            parse_subject("  Re:   #23010203    *Message*  "),
            Ok(23010203)
        );
        assert_eq!(parse_subject("#23010203\u{a0}*message*"), Ok(23010203));
        assert_eq!(parse_subject("#23010203\r\n *message*"), Ok(23010203));
    }

    #[test]
    fn leading_zeros_name_the_same_request() {
        assert_eq!(parse_subject("#0023010203 *message*"), Ok(23010203));
        assert_eq!(
            parse_subject("#23010203 *message* #0023010203"),
            Ok(23010203)
        );
        assert_eq!(parse_subject("#000 *message*"), Ok(0));
    }

    #[test]
    fn the_same_number_twice_is_fine_but_two_numbers_are_refused() {
        assert_eq!(parse_subject("#23010203 *message* #23010203"), Ok(23010203));
        assert_eq!(
            parse_subject("#23010203 #23010204 *message*"),
            Err(Reason::SubjectSeveralNumbers)
        );
        // Refused even without the keyword: the number is checked first.
        assert_eq!(parse_subject("#1 #2"), Err(Reason::SubjectSeveralNumbers));
    }

    #[test]
    fn number_must_be_a_whole_token() {
        for subject in [
            "#123, *message*",
            "abc#123 *message*",
            "[#123] *message*",
            "# 123 *message*",
            "#12a3 *message*",
            "#-123 *message*",
            "#23010203*message*",
            "#١٢٣ *message*",
            "*message*",
            "",
        ] {
            assert_eq!(
                parse_subject(subject),
                Err(Reason::SubjectMissingNumber),
                "{subject}"
            );
        }
    }

    #[test]
    fn keyword_must_be_a_whole_token() {
        for subject in [
            "#23010203",
            "#23010203 message",
            "#23010203 *message*:",
            "#23010203 *messages*",
            "#23010203 x*message*",
            "#23010203 * message *",
        ] {
            assert_eq!(
                parse_subject(subject),
                Err(Reason::SubjectMissingKeyword),
                "{subject}"
            );
        }
    }

    #[test]
    fn a_number_no_request_can_have_is_not_found() {
        assert_eq!(
            parse_subject("#99999999999999999999999 *message*"),
            Err(Reason::RequestNotFound)
        );
        assert_eq!(
            parse_subject("#18446744073709551615 *message*"),
            Ok(u64::MAX)
        );
    }
}
