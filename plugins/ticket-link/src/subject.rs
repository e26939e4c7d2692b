//! Ticket tags in the mail's subject, and the subject a new ticket takes.

use relais_sdk::{Host, Level, PluginError, SubjectPrefixes, TicketTag};

/// The ticket tags read from subjects: the desk's format (`ticket-tag`
/// setting) and, with `bare-tag`, its form without brackets.
#[derive(Debug)]
pub(crate) struct Tags {
    full: TicketTag,
    bare: Option<TicketTag>,
}

impl Tags {
    /// Reads the desk's tag format.
    ///
    /// # Errors
    ///
    /// [`PluginError::Plugin`] when the format is not a valid tag: reading
    /// no tag at all would put replies on new tickets without a word.
    pub fn new(
        format: &str,
        bare_tag: bool,
        host: &(impl Host + ?Sized),
    ) -> Result<Tags, PluginError> {
        let full = TicketTag::parse(format)
            .map_err(|why| PluginError::Plugin(format!("invalid desk setting: {why}")))?;
        let bare = if bare_tag {
            let bare = full.bare();
            if bare.is_none() {
                host.log(
                    Level::Info,
                    &format!(
                        "bare-tag: the ticket tag `{format}` has no enclosing brackets to leave out; \
                         only the full tag is read"
                    ),
                );
            }
            bare
        } else {
            None
        };
        Ok(Tags { full, bare })
    }

    /// The ticket numbers tagged in `subject`, each with the tag as the
    /// trace shows it: the full tags first, in order of appearance, then
    /// the bare ones that name another number.
    pub fn find(&self, subject: &str) -> Vec<(u64, String)> {
        let mut found: Vec<(u64, String)> = Vec::new();
        for tag in std::iter::once(&self.full).chain(&self.bare) {
            for number in tag.find(subject) {
                if !found.iter().any(|(n, _)| *n == number) {
                    found.push((number, tag.render(number)));
                }
            }
        }
        found
    }

    /// `subject` without any of the ticket tags it carries.
    ///
    /// A new ticket's subject must carry no other ticket's tag: the host
    /// adds the new ticket's own tag after it, and replies would then name
    /// the old ticket first and land there (or, on a closed ticket with
    /// `closed-ticket: new-ticket`, open one more ticket per reply).
    pub fn remove(&self, subject: &str) -> String {
        let mut subject = subject.to_string();
        for tag in std::iter::once(&self.full).chain(&self.bare) {
            for number in tag.find(&subject) {
                subject = without(&subject, tag, number);
            }
        }
        subject
    }
}

/// `subject` with each occurrence of the tag of `number` replaced by a
/// space. An occurrence counts when `tag` itself finds it with the
/// character on each side, so that the rules of
/// [`TicketTag::find`] (a tag stands on its own) hold here too.
fn without(subject: &str, tag: &TicketTag, number: u64) -> String {
    let rendered = tag.render(number).to_lowercase();
    let mut kept = String::with_capacity(subject.len());
    let mut copied = 0;
    let mut at = 0;
    while at < subject.len() {
        let end = at + rendered.len();
        let is_tag = subject
            .get(at..end)
            .is_some_and(|candidate| candidate.to_lowercase() == rendered)
            && stands_alone(subject, at, end, tag, number);
        if is_tag {
            kept.push_str(&subject[copied..at]);
            kept.push(' ');
            copied = end;
            at = end;
        } else {
            at += subject[at..].chars().next().map_or(1, char::len_utf8);
        }
    }
    kept.push_str(&subject[copied..]);
    kept
}

/// Whether the tag at `start..end` is one `tag` finds, judged with one
/// character of context on each side (all that its rules look at).
fn stands_alone(subject: &str, start: usize, end: usize, tag: &TicketTag, number: u64) -> bool {
    let before = subject[..start]
        .chars()
        .next_back()
        .map_or(0, char::len_utf8);
    let after = subject[end..].chars().next().map_or(0, char::len_utf8);
    tag.is_in(&subject[start - before..end + after], number)
}

/// The subject of a ticket created for a mail: the mail's subject without
/// ticket tags, reply and forward prefixes and gateway markers, with its
/// white space made single; `None` when nothing is left.
pub(crate) fn ticket_subject(
    subject: &str,
    tags: &Tags,
    prefixes: &SubjectPrefixes,
) -> Option<String> {
    let subject = prefixes.strip(&tags.remove(subject));
    (!subject.is_empty()).then_some(subject)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn tags(format: &str, bare: bool) -> Tags {
        let full = TicketTag::parse(format).unwrap();
        let bare = if bare { full.bare() } else { None };
        Tags { full, bare }
    }

    #[test]
    fn finds_full_tags_then_new_bare_ones() {
        let subject = "#7 Re: [#23010203] and #23010203 and [#8]";
        assert_eq!(
            tags("[#{number}]", false).find(subject),
            [
                (23010203, "[#23010203]".to_string()),
                (8, "[#8]".to_string())
            ]
        );
        assert_eq!(
            tags("[#{number}]", true).find(subject),
            [
                (23010203, "[#23010203]".to_string()),
                (8, "[#8]".to_string()),
                (7, "#7".to_string()),
            ]
        );
    }

    #[test]
    fn removes_every_tag_that_stands_on_its_own() {
        let default = tags("[#{number}]", true);
        assert_eq!(
            default.remove("RE: [#23010203] Printer down"),
            "RE:   Printer down"
        );
        assert_eq!(default.remove("#1 and #12 and #1a"), "  and   and #1a");
        assert_eq!(default.remove("[#1][#2] x"), "   x");
        let word = tags("Ticket#{number}", false);
        assert_eq!(word.remove("TICKET#42: MyTicket#42"), " : MyTicket#42");
    }

    #[test]
    fn ticket_subject_strips_tags_prefixes_and_markers() {
        let prefixes = SubjectPrefixes::default();
        let default = tags("[#{number}]", false);
        assert_eq!(
            ticket_subject(
                "RE : AW: [EXTERNAL] Fwd: Re[3]: Imprimante en panne",
                &default,
                &prefixes
            )
            .as_deref(),
            Some("Imprimante en panne")
        );
        assert_eq!(
            ticket_subject(
                "Re: [#5] TR: Imprimante  en panne [#6]",
                &default,
                &prefixes
            )
            .as_deref(),
            Some("Imprimante en panne")
        );
        assert_eq!(ticket_subject("Re: [#5]", &default, &prefixes), None);
        assert_eq!(ticket_subject("", &default, &prefixes), None);
    }
}
