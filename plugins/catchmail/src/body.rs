//! Turning a mail's text into the message posted on the request.

/// The message to post, taken from a mail's text body.
///
/// What is removed, in this order:
///
/// 1. Line endings: CRLF and lone CR become LF.
/// 2. Everything from the first of these lines to the end:
///    - the signature delimiter, a line that is exactly `-- ` or `--`;
///    - Outlook's separator, a line that is, once trimmed,
///      `-----Original Message-----` or `-----Message d'origine-----`;
///    - Outlook's header block of the quoted mail: a line starting with
///      `From:`, `De :` or `De:` directly followed by a line starting with
///      `Sent:`, `Date:`, `Envoyé :`, `Envoyé:` or `Date :`; a line of
///      underscores just above it (Outlook's rule) goes too.
///      A lone `From:` line in the text stays: it takes the next header to
///      tell a quoted mail from a sentence.
/// 3. The quoted reply history at the end: the trailing block of lines that
///    start with `>` (blank lines inside it included), then, if the last
///    line before it ends with `wrote:`, `a écrit :` or `a écrit:`, that
///    attribution line (`On Mon, 3 Jan 2026, Jeanne wrote:`,
///    `Le lun. 3 janv. 2026 à 10:00, Jeanne a écrit :`), together with the
///    line above when a mail client wrapped it in two and that line starts
///    with `On ` or `Le `. Quotes followed by the sender's own text
///    (interleaved replies) are kept: that text answers them.
/// 4. Leading and trailing whitespace of the whole message.
///
/// Nothing else changes: inner blank lines and indentation are the
/// sender's.
pub fn message_body(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines: Vec<&str> = text.split('\n').collect();
    if let Some(cut) = first_cut(&lines) {
        lines.truncate(cut);
    }
    strip_trailing_quote(&mut lines);
    lines.join("\n").trim().to_string()
}

/// Index of the first line from which everything is signature or history.
fn first_cut(lines: &[&str]) -> Option<usize> {
    for (index, line) in lines.iter().enumerate() {
        if *line == "-- " || *line == "--" {
            return Some(index);
        }
        let trimmed = line.trim();
        if trimmed.eq_ignore_ascii_case("-----Original Message-----")
            || trimmed.eq_ignore_ascii_case("-----Message d'origine-----")
        {
            return Some(index);
        }
        let next = lines.get(index + 1).map(|next| next.trim_start());
        if starts_with_any(trimmed, &["From:", "De :", "De:"])
            && next.is_some_and(|next| {
                starts_with_any(next, &["Sent:", "Date:", "Envoyé :", "Envoyé:", "Date :"])
            })
        {
            let above = index.checked_sub(1).and_then(|above| lines.get(above));
            let rule = above.is_some_and(|above| {
                let above = above.trim();
                above.len() >= 3 && above.chars().all(|c| c == '_')
            });
            return Some(if rule { index - 1 } else { index });
        }
    }
    None
}

/// Removes the trailing `>` block and the attribution line above it.
fn strip_trailing_quote(lines: &mut Vec<&str>) {
    let is_blank = |line: &str| line.trim().is_empty();
    let is_quote = |line: &str| line.trim_start().starts_with('>');
    while lines.last().is_some_and(|line| is_blank(line)) {
        lines.pop();
    }
    if !lines.last().is_some_and(|line| is_quote(line)) {
        return;
    }
    while lines
        .last()
        .is_some_and(|line| is_quote(line) || is_blank(line))
    {
        lines.pop();
    }
    let Some(last) = lines.last() else { return };
    let last = last.trim_end();
    if !["wrote:", "a écrit :", "a écrit:"]
        .iter()
        .any(|end| last.ends_with(end))
    {
        return;
    }
    let opens = |line: &str| starts_with_any(line.trim_start(), &["On ", "Le "]);
    let whole = opens(last);
    lines.pop();
    if !whole && lines.last().is_some_and(|line| opens(line)) {
        lines.pop();
    }
}

fn starts_with_any(line: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|prefix| line.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_trimmed_only() {
        assert_eq!(
            message_body("  \n Bonjour,\n\n  merci.  \n\n"),
            "Bonjour,\n\n  merci."
        );
        assert_eq!(message_body(""), "");
        assert_eq!(message_body(" \r\n\t "), "");
    }

    #[test]
    fn crlf_and_cr_become_lf() {
        assert_eq!(message_body("a\r\nb\rc"), "a\nb\nc");
    }

    #[test]
    fn signature_is_cut_from_its_delimiter() {
        assert_eq!(message_body("Hello\n-- \nPaul\nAcme"), "Hello");
        assert_eq!(message_body("Hello\r\n--\r\nPaul"), "Hello");
        // Only an exact delimiter line counts.
        assert_eq!(
            message_body("a -- b\n--- \n---\n> -- x\ny"),
            "a -- b\n--- \n---\n> -- x\ny"
        );
    }

    #[test]
    fn trailing_quote_and_english_attribution_are_cut() {
        let text =
            "Thanks, fixed.\n\nOn Mon, 3 Jan 2026, Jeanne wrote:\n> It broke.\n>\n> Jeanne\n";
        assert_eq!(message_body(text), "Thanks, fixed.");
    }

    #[test]
    fn trailing_quote_and_french_attribution_are_cut() {
        let text = "Merci.\n\nLe lun. 3 janv. 2026 à 10:00, Jeanne <jeanne@dupont.example> a \
                    écrit :\n> Ça ne marche pas.\n\n> Vraiment.\n\n";
        assert_eq!(message_body(text), "Merci.");
        let wrapped = "Merci.\nLe lun. 3 janv. 2026 à 10:00, Jeanne Martin <\njeanne@dupont.example> \
                       a écrit :\n> Ça ne marche pas.";
        assert_eq!(message_body(wrapped), "Merci.");
    }

    #[test]
    fn quote_without_attribution_is_cut_alone() {
        assert_eq!(
            message_body("Yes.\nAs you said:\n> it broke"),
            "Yes.\nAs you said:"
        );
    }

    #[test]
    fn interleaved_quotes_are_kept() {
        let text = "> Does it work?\nYes.\n> And the other one?\nNo.";
        assert_eq!(message_body(text), text);
    }

    #[test]
    fn outlook_history_is_cut() {
        let en = "Fixed.\n\n-----Original Message-----\nFrom: Jeanne\nSent: Monday\nBroken.";
        assert_eq!(message_body(en), "Fixed.");
        let fr = "Corrigé.\n\n-----Message d'origine-----\nDe : Jeanne\nEnvoyé : lundi\nCassé.";
        assert_eq!(message_body(fr), "Corrigé.");
        let block = "Corrigé.\n\n________________________________\nDe : Jeanne Martin \
                     <jeanne@dupont.example>\nEnvoyé : lundi 3 janvier 2026 10:00\nÀ : \
                     Support\nObjet : Panne\n\nCassé.";
        assert_eq!(message_body(block), "Corrigé.");
        let headers = "Done.\nFrom: Jeanne <jeanne@dupont.example>\nDate: Mon, 3 Jan 2026\n\nOld.";
        assert_eq!(message_body(headers), "Done.");
    }

    #[test]
    fn a_from_line_in_the_text_stays() {
        let text = "From: the team\nWe fixed it.";
        assert_eq!(message_body(text), text);
    }

    #[test]
    fn signature_then_history_are_both_cut() {
        let text = "Done.\r\n-- \r\nPaul\r\n\r\nOn Mon, Jeanne wrote:\r\n> Broken.\r\n";
        assert_eq!(message_body(text), "Done.");
    }

    #[test]
    fn only_a_quote_leaves_nothing() {
        assert_eq!(message_body("On Mon, Jeanne wrote:\n> Broken."), "");
    }
}
