//! YAML documents that remember where each value came from, so that errors
//! found after parsing (a dangling reference, an unknown plugin, a duplicate
//! id) still point at `file:line:col`.
//!
//! serde_yaml stops at the first error of a document and knows nothing of
//! meaning; this module parses once into a `serde_yaml::Value` for the data
//! and once with yaml-rust2's event parser for positions, then deserialises
//! each part on its own (so one bad rule does not hide the next) and maps
//! serde's error paths back to positions.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use yaml_rust2::parser::{Event, Parser};

/// The deepest nesting a file may have. Rule, config and import files are
/// a few levels deep; a hostile file nested hundreds of thousands deep
/// would cost the parser time and stack for nothing.
pub const MAX_DEPTH: usize = 64;

/// Where `text` first nests deeper than [`MAX_DEPTH`], counting flow
/// brackets (`[`, `{`) and block indentation levels, without parsing it.
fn too_deep(text: &str) -> Option<(usize, usize)> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (index, line) in text.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        if flow == 0 && !content.is_empty() && !content.starts_with('#') {
            while indents.last().is_some_and(|&top| top >= indent) {
                indents.pop();
            }
            indents.push(indent);
            // `- - - x`: each dash opens a level too.
            let dashes = content.split(' ').take_while(|token| *token == "-").count();
            if indents.len() + dashes > MAX_DEPTH {
                return Some((index + 1, indent + 1));
            }
        }
        let mut quote: Option<char> = None;
        for (column, c) in content.char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '#') => break,
                (None, '[' | '{') => {
                    flow += 1;
                    if flow + indents.len() > MAX_DEPTH {
                        return Some((index + 1, indent + column + 1));
                    }
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

/// One problem in a file, printed as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
    /// What is wrong, and how to fix it where we can tell.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl Diagnostic {
    /// A diagnostic for a whole file (line 1, column 1).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            line: 1,
            column: 1,
            message: message.into(),
        }
    }
}

/// A step in a path from the document's root to a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A path from the document's root: `rules[2].when.subject`.
pub type YamlPath = Vec<Segment>;

/// Renders a path the way users write it: `rules[2].when.subject`.
pub fn display_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

#[derive(Debug, Clone, Copy, Default)]
struct Position {
    line: usize,
    column: usize,
}

#[derive(Debug, Default)]
struct Spans {
    values: HashMap<YamlPath, Position>,
    keys: HashMap<YamlPath, Position>,
}

/// A parsed YAML file: its data and where each part of it sits.
#[derive(Debug)]
pub struct Document {
    file: PathBuf,
    value: serde_yaml::Value,
    spans: Spans,
}

impl Document {
    /// Parses `text`, read from `file`. A syntax error is returned with its
    /// position.
    pub fn parse(file: &Path, text: &str) -> Result<Document, Diagnostic> {
        if let Some((line, column)) = too_deep(text) {
            return Err(Diagnostic {
                file: file.to_path_buf(),
                line,
                column,
                message: format!(
                    "nesting deeper than {MAX_DEPTH} levels: no Relais file is that deep (refused before parsing)"
                ),
            });
        }
        let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|error| {
            let (line, column) = error
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            Diagnostic {
                file: file.to_path_buf(),
                line,
                column,
                message: format!("invalid YAML: {}", strip_location(&error.to_string())),
            }
        })?;
        let spans = scan_spans(text);
        Ok(Document {
            file: file.to_path_buf(),
            value,
            spans,
        })
    }

    /// The file this document was read from.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The whole document's data.
    pub fn value(&self) -> &serde_yaml::Value {
        &self.value
    }

    /// The value at `path`, if there is one.
    pub fn get(&self, path: &[Segment]) -> Option<&serde_yaml::Value> {
        let mut value = &self.value;
        for segment in path {
            value = match segment {
                Segment::Key(key) => value.get(key.as_str())?,
                Segment::Index(index) => value.get(*index)?,
            };
        }
        Some(value)
    }

    /// Deserialises the value at `path` into `T`. Errors point at the
    /// offending key or value and suggest the closest known name.
    pub fn deserialize_at<T: DeserializeOwned>(&self, path: &[Segment]) -> Result<T, Diagnostic> {
        let value = self.get(path).cloned().unwrap_or(serde_yaml::Value::Null);
        serde_path_to_error::deserialize::<_, T>(value).map_err(|error| {
            let mut full: YamlPath = path.to_vec();
            for segment in error.path().iter() {
                match segment {
                    serde_path_to_error::Segment::Seq { index } => {
                        full.push(Segment::Index(*index));
                    }
                    serde_path_to_error::Segment::Map { key } => {
                        full.push(Segment::Key(key.clone()));
                    }
                    serde_path_to_error::Segment::Enum { .. }
                    | serde_path_to_error::Segment::Unknown => {}
                }
            }
            let message = with_suggestion(&strip_location(&error.into_inner().to_string()));
            match unknown_name(&message) {
                // The error is about a key: point at the key itself.
                Some(name) if full.last() == Some(&Segment::Key(name.clone())) => {
                    self.key_diagnostic(&full, message)
                }
                Some(name) if self.key_position(&full, &name).is_some() => {
                    let mut at = full.clone();
                    at.push(Segment::Key(name));
                    self.key_diagnostic(&at, message)
                }
                _ => self.diagnostic(&full, message),
            }
        })
    }

    fn key_position(&self, parent: &[Segment], key: &str) -> Option<Position> {
        let mut path = parent.to_vec();
        path.push(Segment::Key(key.to_string()));
        self.spans.keys.get(&path).copied()
    }

    /// A diagnostic at the value found at `path`, or at its nearest parent.
    pub fn diagnostic(&self, path: &[Segment], message: impl Into<String>) -> Diagnostic {
        let position = self.position(path, &self.spans.values);
        self.at(position, message.into())
    }

    /// A diagnostic at the key that ends `path` (`rules[0].when.acount`).
    pub fn key_diagnostic(&self, path: &[Segment], message: impl Into<String>) -> Diagnostic {
        let position = match self.spans.keys.get(path) {
            Some(position) => *position,
            None => self.position(path, &self.spans.values),
        };
        self.at(position, message.into())
    }

    fn position(&self, path: &[Segment], table: &HashMap<YamlPath, Position>) -> Position {
        let mut path = path.to_vec();
        loop {
            if let Some(position) = table.get(&path) {
                return *position;
            }
            if path.pop().is_none() {
                return Position { line: 1, column: 1 };
            }
        }
    }

    fn at(&self, position: Position, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line: position.line.max(1),
            column: position.column.max(1),
            message,
        }
    }
}

enum Frame {
    Mapping {
        path: YamlPath,
        key: Option<String>,
    },
    Sequence {
        path: YamlPath,
        next: usize,
    },
    /// A complex key (a mapping or sequence used as a key): not addressable.
    Ignored,
}

/// Walks the event stream and records where every key and value starts.
/// Runs only after serde_yaml accepted the text, so scan errors just end
/// the walk early.
fn scan_spans(text: &str) -> Spans {
    let mut spans = Spans::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut parser = Parser::new_from_str(text);
    // yaml-rust2 counts columns from 0 and lines from 1.
    let position = |marker: yaml_rust2::scanner::Marker| Position {
        line: marker.line(),
        column: marker.col() + 1,
    };
    while let Ok((event, marker)) = parser.next_token() {
        let is_node = matches!(
            event,
            Event::Scalar(..)
                | Event::SequenceStart(..)
                | Event::MappingStart(..)
                | Event::Alias(..)
        );
        if is_node {
            // Where is this node: a key, a value under a key, or an item?
            let mut node_path: Option<YamlPath> = None;
            let mut is_key = false;
            match stack.last_mut() {
                Some(Frame::Mapping { path, key }) => match key.take() {
                    None => {
                        is_key = true;
                        let name = match &event {
                            Event::Scalar(value, ..) => value.clone(),
                            _ => String::from("?"),
                        };
                        let mut key_path = path.clone();
                        key_path.push(Segment::Key(name.clone()));
                        spans.keys.insert(key_path, position(marker));
                        *key = Some(name);
                    }
                    Some(name) => {
                        let mut value_path = path.clone();
                        value_path.push(Segment::Key(name));
                        node_path = Some(value_path);
                    }
                },
                Some(Frame::Sequence { path, next }) => {
                    let mut item_path = path.clone();
                    item_path.push(Segment::Index(*next));
                    *next += 1;
                    node_path = Some(item_path);
                }
                Some(Frame::Ignored) => {}
                None => node_path = Some(Vec::new()),
            }
            if let Some(path) = &node_path {
                spans.values.insert(path.clone(), position(marker));
            }
            match event {
                Event::MappingStart(..) => stack.push(match node_path {
                    Some(path) if !is_key => Frame::Mapping { path, key: None },
                    _ => Frame::Ignored,
                }),
                Event::SequenceStart(..) => stack.push(match node_path {
                    Some(path) if !is_key => Frame::Sequence { path, next: 0 },
                    _ => Frame::Ignored,
                }),
                _ => {}
            }
        } else {
            match event {
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                Event::StreamEnd => break,
                _ => {}
            }
        }
    }
    spans
}

/// serde_yaml appends ` at line L column C` to its messages; we print the
/// position in front instead.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(index) => message[..index].to_string(),
        None => message.to_string(),
    }
}

/// The name serde complained about in `unknown field `x`` or
/// `unknown variant `x``, wherever it sits in the message.
pub fn unknown_name(message: &str) -> Option<String> {
    let start = ["unknown field `", "unknown variant `"]
        .iter()
        .find_map(|prefix| message.find(prefix).map(|at| at + prefix.len()))?;
    let rest = &message[start..];
    Some(rest[..rest.find('`')?].to_string())
}

/// Adds "did you mean `y`?" to serde's unknown field/variant messages.
pub fn with_suggestion(message: &str) -> String {
    let Some(name) = unknown_name(message) else {
        return message.to_string();
    };
    let expected: Vec<&str> = message
        .split("expected")
        .nth(1)
        .map(|list| list.split('`').skip(1).step_by(2).collect())
        .unwrap_or_default();
    match did_you_mean(&name, expected.iter().copied()) {
        Some(best) => format!("{message}; did you mean `{best}`?"),
        None => message.to_string(),
    }
}

/// The closest candidate to `name`, when one is close enough to be a typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(name, candidate), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Segment {
        Segment::Key(name.to_string())
    }

    #[test]
    fn positions_of_keys_and_values() {
        let text = "rules:\n  - id: a\n    when:\n      subject: x\n  - id: b\n";
        let doc = Document::parse(Path::new("r.yaml"), text).expect("parses");
        let at = doc.diagnostic(&[key("rules"), Segment::Index(1), key("id")], "m");
        assert_eq!((at.line, at.column), (5, 9));
        let at = doc.key_diagnostic(
            &[key("rules"), Segment::Index(0), key("when"), key("subject")],
            "m",
        );
        assert_eq!((at.line, at.column), (4, 7));
    }

    #[test]
    fn unknown_field_points_at_the_key_and_suggests() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Rule {
            id: String,
            account: Option<String>,
        }
        let text = "rules:\n  - id: a\n    acount: x\n";
        let doc = Document::parse(Path::new("r.yaml"), text).expect("parses");
        let error = doc
            .deserialize_at::<Rule>(&[key("rules"), Segment::Index(0)])
            .expect_err("unknown field");
        assert_eq!(
            error.to_string(),
            "r.yaml:3:5: unknown field `acount`, expected `id` or `account`; did you mean `account`?"
        );
    }

    #[test]
    fn syntax_error_has_a_position() {
        let error = Document::parse(Path::new("r.yaml"), "rules:\n  - id: [a\n").expect_err("bad");
        assert!(error.to_string().starts_with("r.yaml:"), "{error}");
        assert!(error.message.starts_with("invalid YAML"), "{error}");
    }

    #[test]
    fn suggestion_needs_a_close_name() {
        assert_eq!(
            did_you_mean("acount", ["account", "subject"]),
            Some("account")
        );
        assert_eq!(did_you_mean("zzz", ["account", "subject"]), None);
    }
}
