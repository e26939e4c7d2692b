//! Attachments apart from their mail, as the mail store of the seed keeps
//! them: an attachment's content is stored once, content-addressed, and
//! its encoded body is cut out of the raw message stored with the mail.
//! The raw message comes back byte for byte: each body is written again
//! from its content, at its place, in the layout it had (base64 line
//! length and line ending). A body that cannot be written again exactly
//! (quoted-printable, an odd layout) stays in the raw message.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// How an attachment's body is written from its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// As it is (7bit, 8bit, binary).
    Plain,
    /// Base64 in lines of `line` characters, ending in CRLF or LF, with
    /// one after the last line when `end`.
    Base64 {
        /// Characters per line.
        line: usize,
        /// CRLF, else LF.
        crlf: bool,
        /// A line ending after the last line.
        end: bool,
    },
}

impl Layout {
    /// The body `content` is written as.
    pub fn write(&self, content: &[u8]) -> Vec<u8> {
        match *self {
            Layout::Plain => content.to_vec(),
            Layout::Base64 { line, crlf, end } => {
                let text = STANDARD.encode(content);
                let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
                let mut body = Vec::with_capacity(text.len() + text.len() / line.max(1) * 2 + 2);
                for (index, chunk) in text.as_bytes().chunks(line.max(1)).enumerate() {
                    if index > 0 {
                        body.extend_from_slice(eol);
                    }
                    body.extend_from_slice(chunk);
                }
                if end {
                    body.extend_from_slice(eol);
                }
                body
            }
        }
    }

    /// The layout that writes `content` as exactly `encoded`, if one does.
    /// Compared line by line: nothing the size of the body is allocated.
    pub fn of(encoded: &[u8], content: &[u8], base64: bool) -> Option<Layout> {
        if !base64 {
            return (encoded == content).then_some(Layout::Plain);
        }
        let crlf = encoded.windows(2).any(|w| w == b"\r\n");
        let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let line = encoded
            .windows(eol.len())
            .position(|w| w == eol)
            .unwrap_or(encoded.len());
        // A line of whole base64 groups, so that each encodes on its own.
        if line == 0 || line % 4 != 0 {
            return None;
        }
        let per_line = line / 4 * 3;
        let mut rest = encoded;
        let mut buffer = String::with_capacity(line);
        let lines = content.len().div_ceil(per_line).max(1);
        for (index, chunk) in content.chunks(per_line).enumerate() {
            buffer.clear();
            STANDARD.encode_string(chunk, &mut buffer);
            rest = rest.strip_prefix(buffer.as_bytes())?;
            if index + 1 < lines {
                rest = rest.strip_prefix(eol)?;
            }
        }
        let end = match rest {
            [] => false,
            _ if rest == eol => true,
            _ => return None,
        };
        Some(Layout::Base64 { line, crlf, end })
    }

    /// As stored: `plain` or `base64:LINE:crlf|lf:end|open`.
    pub fn as_text(&self) -> String {
        match *self {
            Layout::Plain => "plain".to_string(),
            Layout::Base64 { line, crlf, end } => format!(
                "base64:{line}:{}:{}",
                if crlf { "crlf" } else { "lf" },
                if end { "end" } else { "open" }
            ),
        }
    }

    /// Read back from [`Layout::as_text`].
    pub fn parse(text: &str) -> Option<Layout> {
        if text == "plain" {
            return Some(Layout::Plain);
        }
        let mut parts = text.strip_prefix("base64:")?.split(':');
        let line = parts.next()?.parse().ok()?;
        let crlf = match parts.next()? {
            "crlf" => true,
            "lf" => false,
            _ => return None,
        };
        let end = match parts.next()? {
            "end" => true,
            "open" => false,
            _ => return None,
        };
        Some(Layout::Base64 { line, crlf, end })
    }
}

/// Where an attachment's encoded body lies in the raw message, and how it
/// is written from its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Its first byte.
    pub start: usize,
    /// Past its last byte.
    pub end: usize,
    /// How it is written.
    pub layout: Layout,
}

/// `raw` without the bodies `cuts` name (in order, apart), and where each
/// goes back in what is left.
pub fn cut(raw: &[u8], cuts: &[Cut]) -> Option<(Vec<u8>, Vec<usize>)> {
    let mut kept = Vec::with_capacity(raw.len());
    let mut at = Vec::with_capacity(cuts.len());
    let mut from = 0;
    for cut in cuts {
        if cut.start < from || cut.end < cut.start || cut.end > raw.len() {
            return None;
        }
        kept.extend_from_slice(&raw[from..cut.start]);
        at.push(kept.len());
        from = cut.end;
    }
    kept.extend_from_slice(&raw[from..]);
    Some((kept, at))
}

/// The raw message: `kept` with each body written back at its place
/// (`(place, layout, content)`, in order).
pub fn rebuild(kept: &[u8], bodies: &[(usize, Layout, Vec<u8>)]) -> Vec<u8> {
    let mut raw =
        Vec::with_capacity(kept.len() + bodies.iter().map(|b| b.2.len() * 2).sum::<usize>());
    let mut from = 0;
    for (place, layout, content) in bodies {
        let place = (*place).clamp(from, kept.len());
        raw.extend_from_slice(&kept[from..place]);
        raw.extend_from_slice(&layout.write(content));
        from = place;
    }
    raw.extend_from_slice(&kept[from..]);
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_bodies_are_written_again_exactly_in_their_layout() {
        let content: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 256) as u8).collect();
        for (line, eol, end) in [
            (76, "\r\n", true),
            (76, "\r\n", false),
            (72, "\n", true),
            (64, "\n", false),
        ] {
            let text = STANDARD.encode(&content);
            let lines: Vec<&str> = text
                .as_bytes()
                .chunks(line)
                .map(|c| std::str::from_utf8(c).expect("ascii"))
                .collect();
            let mut encoded = lines.join(eol);
            if end {
                encoded.push_str(eol);
            }
            let layout = Layout::of(encoded.as_bytes(), &content, true).expect("a layout");
            assert_eq!(layout.write(&content), encoded.as_bytes());
            assert_eq!(Layout::parse(&layout.as_text()), Some(layout));
        }
        // Lines of uneven length: no layout writes them; the body stays.
        let odd = format!(
            "{}\r\n{}\r\n",
            &STANDARD.encode(&content)[..70],
            &STANDARD.encode(&content)[70..]
        );
        assert_eq!(Layout::of(odd.as_bytes(), &content, true), None);
    }

    #[test]
    fn a_raw_message_cut_and_rebuilt_is_the_same_bytes() {
        let raw = b"head\r\n\r\nAAAA\r\nBBBB\r\nmiddle\r\nCCCC\r\ntail".to_vec();
        let cuts = [
            Cut {
                start: 8,
                end: 20,
                layout: Layout::Plain,
            },
            Cut {
                start: 28,
                end: 34,
                layout: Layout::Plain,
            },
        ];
        let (kept, at) = cut(&raw, &cuts).expect("cut");
        assert_eq!(kept, b"head\r\n\r\nmiddle\r\ntail");
        let bodies = vec![
            (at[0], Layout::Plain, raw[8..20].to_vec()),
            (at[1], Layout::Plain, raw[28..34].to_vec()),
        ];
        assert_eq!(rebuild(&kept, &bodies), raw);
    }
}
