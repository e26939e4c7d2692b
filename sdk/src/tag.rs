//! Ticket tags in mail subjects, and the reply and forward prefixes that
//! mail programs put before a subject.
//!
//! The host writes the tag into every mail it sends about a ticket; the
//! ticket linking plugin reads it back from replies. Both go through
//! [`TicketTag`], so the two sides can never disagree on the format.

/// The ticket tag format unless the desk sets another (`ticket-tag`).
pub const DEFAULT_TICKET_TAG: &str = "[#{number}]";

/// The placeholder of the number in a tag format.
const PLACEHOLDER: &str = "{number}";

/// A ticket tag format such as `[#{number}]`: literal text before and after
/// the number. The literal parts are matched without regard to letter case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketTag {
    prefix: String,
    suffix: String,
}

/// Brackets that may enclose a tag and be left out of its bare form.
const BRACKETS: [(char, char); 4] = [('[', ']'), ('(', ')'), ('{', '}'), ('<', '>')];

impl TicketTag {
    /// Reads a format: `{number}` exactly once, after at least one
    /// character of literal text (so that a bare number in a subject is
    /// never taken for a tag), on one line, at most 40 characters.
    pub fn parse(format: &str) -> Result<TicketTag, String> {
        let problem = |why: &str| Err(format!("ticket tag `{format}`: {why}"));
        if format.matches(PLACEHOLDER).count() != 1 {
            return problem("must contain `{number}` exactly once");
        }
        if format.chars().count() > 40 {
            return problem("must be at most 40 characters");
        }
        if format.chars().any(char::is_control) {
            return problem("must be on one line, without control characters");
        }
        let (prefix, suffix) = format.split_once(PLACEHOLDER).unwrap_or((format, ""));
        if prefix.trim().is_empty() {
            return problem("needs some text before `{number}`, such as `[#`");
        }
        if prefix.ends_with(|c: char| c.is_ascii_digit()) {
            return problem("the text before `{number}` must not end with a digit");
        }
        Ok(TicketTag {
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
        })
    }

    /// The tag of ticket `number`, e.g. `[#23010203]`.
    pub fn render(&self, number: u64) -> String {
        format!("{}{number}{}", self.prefix, self.suffix)
    }

    /// The same tag without its enclosing brackets (`#{number}` for
    /// `[#{number}]`), when it has a pair of them and some text is left
    /// before the number.
    pub fn bare(&self) -> Option<TicketTag> {
        let first = self.prefix.chars().next()?;
        let (_, close) = BRACKETS.iter().find(|(open, _)| *open == first)?;
        let suffix = self.suffix.strip_suffix(*close)?;
        let prefix = &self.prefix[first.len_utf8()..];
        if prefix.trim().is_empty() {
            return None;
        }
        Some(TicketTag {
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
        })
    }

    /// Whether `subject` carries the tag of `number`.
    pub fn is_in(&self, subject: &str, number: u64) -> bool {
        self.find(subject).contains(&number)
    }

    /// The ticket numbers tagged in `subject`, in order of appearance, each
    /// once. A tag counts only where it stands on its own: not glued to a
    /// letter or digit before it, and its number not followed by another
    /// digit (or, without suffix, by a letter).
    pub fn find(&self, subject: &str) -> Vec<u64> {
        let mut found = Vec::new();
        for (_, number) in self.spans(subject) {
            if !found.contains(&number) {
                found.push(number);
            }
        }
        found
    }

    /// `subject` without any of its tags, its white space made single.
    pub fn remove(&self, subject: &str) -> String {
        let mut kept = String::with_capacity(subject.len());
        let mut from = 0;
        for (span, _) in self.spans(subject) {
            kept.push_str(&subject[from..span.start]);
            kept.push(' ');
            from = span.end;
        }
        kept.push_str(&subject[from..]);
        kept.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Where each tag stands in `subject` (byte range) and its number.
    fn spans(&self, subject: &str) -> Vec<(std::ops::Range<usize>, u64)> {
        let lower = subject.to_lowercase();
        // Lowercasing may change byte lengths (rare letters): then offsets
        // in the lowercase text would not be offsets in `subject`, and the
        // subject is searched as written.
        if lower.len() == subject.len() {
            self.spans_in(&lower)
        } else {
            self.spans_in(subject)
        }
    }

    fn spans_in(&self, haystack: &str) -> Vec<(std::ops::Range<usize>, u64)> {
        let prefix = self.prefix.to_lowercase();
        let suffix = self.suffix.to_lowercase();
        let mut spans = Vec::new();
        let mut from = 0;
        while let Some(offset) = haystack[from..].find(&prefix) {
            let start = from + offset;
            from = start + prefix.len().max(1);
            let glued_before = haystack[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric())
                && prefix.starts_with(|c: char| c.is_alphanumeric());
            if glued_before {
                continue;
            }
            let after = &haystack[start + prefix.len()..];
            let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                continue;
            }
            let rest = &after[digits..];
            let ends_well = if suffix.is_empty() {
                !rest.starts_with(|c: char| c.is_alphanumeric())
            } else {
                rest.starts_with(&suffix)
            };
            if !ends_well {
                continue;
            }
            if let Ok(number) = after[..digits].parse::<u64>() {
                let end = start + prefix.len() + digits + suffix.len();
                spans.push((start..end, number));
                from = end;
            }
        }
        spans
    }

    /// `subject` with the tag of `number` added at its end when it does not
    /// carry it already.
    pub fn apply(&self, subject: &str, number: u64) -> String {
        if self.is_in(subject, number) {
            return subject.to_string();
        }
        let subject = subject.trim_end();
        if subject.is_empty() {
            self.render(number)
        } else {
            format!("{subject} {}", self.render(number))
        }
    }
}

impl Default for TicketTag {
    fn default() -> Self {
        TicketTag {
            prefix: "[#".to_string(),
            suffix: "]".to_string(),
        }
    }
}

/// Reply and forward prefixes in the languages mail programs write them:
/// English, French, German, Dutch, the Nordic languages, Italian, Spanish,
/// Portuguese, Polish, Turkish, Czech and more.
pub const REPLY_PREFIXES: &[&str] = &[
    "re",
    "aw",
    "antw",
    "antwort",
    "sv",
    "vs",
    "r",
    "rif",
    "ref",
    "réf",
    "res",
    "rv",
    "odp",
    "ynt",
    "ilt",
    "vá",
    "atb",
    "fwd",
    "fw",
    "tr",
    "wg",
    "enc",
    "fs",
    "vb",
    "vl",
    "doorst",
    "pd",
    "i",
    "továbbítás",
    "πρθ",
    "σχετ",
    "回复",
    "转发",
    "答复",
];

/// Markers that mail gateways put before a subject.
pub const SUBJECT_MARKERS: &[&str] = &[
    "[external]",
    "[ext]",
    "[externe]",
    "[extern]",
    "[caution]",
    "[external sender]",
    "[external email]",
    "*external*",
    "external:",
];

/// Strips reply and forward prefixes from subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPrefixes {
    words: Vec<String>,
    markers: Vec<String>,
}

impl Default for SubjectPrefixes {
    fn default() -> Self {
        SubjectPrefixes::new(&[], &[])
    }
}

impl SubjectPrefixes {
    /// The built-in prefixes and markers, plus `words` (prefixes written
    /// without their colon, e.g. `antw`) and `markers` (literal text, e.g.
    /// `[SECURE]`), compared without regard to letter case.
    pub fn new(words: &[String], markers: &[String]) -> SubjectPrefixes {
        let lower = |s: &str| fold(s.trim());
        SubjectPrefixes {
            words: REPLY_PREFIXES
                .iter()
                .map(|w| lower(w))
                .chain(words.iter().map(|w| lower(w.trim_end_matches(':'))))
                .filter(|w| !w.is_empty())
                .collect(),
            markers: SUBJECT_MARKERS
                .iter()
                .map(|m| lower(m))
                .chain(markers.iter().map(|m| lower(m)))
                .filter(|m| !m.is_empty())
                .collect(),
        }
    }

    /// `subject` without any leading run of prefixes and markers, in any
    /// combination (`RE : AW: [EXTERNAL] Fwd: Re[3]: Printer down` gives
    /// `Printer down`), and with its runs of white space made single.
    pub fn strip(&self, subject: &str) -> String {
        let mut rest = subject.trim_start();
        loop {
            let before = rest.len();
            rest = self.strip_one(rest).trim_start();
            if rest.len() == before {
                break;
            }
        }
        rest.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn strip_one<'a>(&self, subject: &'a str) -> &'a str {
        // Only the text compared is lowercased: lowercasing the whole
        // subject could change its byte length (`İ`), and offsets with it.
        for marker in &self.markers {
            let len = marker.chars().count();
            let end = subject
                .char_indices()
                .nth(len)
                .map_or(subject.len(), |(at, _)| at);
            if subject.chars().count() >= len && fold(&subject[..end]) == *marker {
                return &subject[end..];
            }
        }
        let word_end = subject
            .char_indices()
            .find(|(_, c)| !c.is_alphabetic())
            .map_or(subject.len(), |(at, _)| at);
        let word = fold(&subject[..word_end]);
        if word.is_empty() || !self.words.contains(&word) {
            return subject;
        }
        let mut rest = &subject[word_end..];
        rest = rest.strip_prefix('.').unwrap_or(rest);
        rest = skip_counter(rest);
        rest = rest.trim_start();
        rest.strip_prefix(':')
            .or_else(|| rest.strip_prefix('：'))
            .unwrap_or(subject)
    }
}

/// Text as prefixes are compared: lowercase, without the combining dot
/// that lowercasing a Turkish `İ` leaves.
fn fold(text: &str) -> String {
    text.to_lowercase().replace('\u{307}', "")
}

/// Skips a reply counter: `[3]`, `(3)` or `^3`.
fn skip_counter(text: &str) -> &str {
    let (open, close) = match text.chars().next() {
        Some('[') => ('[', Some(']')),
        Some('(') => ('(', Some(')')),
        Some('^') => ('^', None),
        _ => return text,
    };
    let after = &text[open.len_utf8()..];
    let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return text;
    }
    let after = &after[digits..];
    match close {
        Some(close) => after.strip_prefix(close).unwrap_or(text),
        None => after,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn formats_are_checked() {
        assert!(TicketTag::parse("[#{number}]").is_ok());
        assert!(TicketTag::parse("Ticket#{number}").is_ok());
        for bad in [
            "#",
            "{number}",
            "[#{number}][{number}]",
            "x\n{number}",
            "a1{number}",
        ] {
            assert!(TicketTag::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_tags_where_they_stand_on_their_own() {
        let tag = TicketTag::default();
        assert_eq!(tag.find("Re: [#23010203] Printer down"), [23010203]);
        assert_eq!(tag.find("RE: Printer down [#23010203]"), [23010203]);
        assert_eq!(tag.find("[#1] and [#2] and [#1]"), [1, 2]);
        assert!(tag.find("[#12a] [#] [#123").is_empty());
        assert!(tag.find("#23010203 without brackets").is_empty());
        let bare = tag.bare().unwrap();
        assert_eq!(bare.render(7), "#7");
        assert_eq!(bare.find("#23010203 *message*"), [23010203]);
        assert_eq!(bare.find("Re: [#23010203]"), [23010203]);
        assert!(bare.find("#2301020x").is_empty());
        let word = TicketTag::parse("Ticket#{number}").unwrap();
        assert_eq!(word.find("RE: ticket#42: help"), [42]);
        assert!(word.find("MyTicket#42").is_empty());
        assert!(word.bare().is_none());
    }

    #[test]
    fn apply_adds_the_tag_once() {
        let tag = TicketTag::default();
        assert_eq!(tag.apply("Printer down", 5), "Printer down [#5]");
        assert_eq!(tag.apply("[#5] Printer down", 5), "[#5] Printer down");
        assert_eq!(tag.apply("  ", 5), "[#5]");
        assert_eq!(
            tag.remove("Re: [#5] Printer [#6]  down"),
            "Re: Printer down"
        );
    }

    #[test]
    fn strips_prefixes_in_any_combination_and_language() {
        let prefixes = SubjectPrefixes::default();
        let cases = [
            ("Re: Printer down", "Printer down"),
            ("RE : Printer down", "Printer down"),
            ("AW: WG: Printer down", "Printer down"),
            ("Fwd: TR: SV: VS: Printer down", "Printer down"),
            ("Réf. : Printer down", "Printer down"),
            ("Re[3]: Printer down", "Printer down"),
            ("Re(2): Re^4: Printer down", "Printer down"),
            ("[EXTERNAL] Re: Printer down", "Printer down"),
            ("RE: [External] FW: Printer   down", "Printer down"),
            ("Re：Printer down", "Printer down"),
            ("Printer down: again", "Printer down: again"),
            ("Reboot: Printer down", "Reboot: Printer down"),
            ("Re: ", ""),
            (
                "YNT: İstanbul ofisinde yazıcı arızası",
                "İstanbul ofisinde yazıcı arızası",
            ),
            ("İLT: YNT: Ödeme", "Ödeme"),
            ("[EXTERNAL] İade", "İade"),
        ];
        for (subject, stripped) in cases {
            assert_eq!(prefixes.strip(subject), stripped, "{subject}");
        }
        let custom = SubjectPrefixes::new(&["Odg".to_string()], &["[SECURE]".to_string()]);
        assert_eq!(custom.strip("[secure] ODG: Printer down"), "Printer down");
    }
}
