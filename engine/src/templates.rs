//! Mail templates: the `*.jinja` files of the templates directory, rendered
//! with minijinja for the plugins that declare the `templates` capability.
//!
//! A file is `NAME.jinja` or `NAME.LANG.jinja` (`alert-opened.fr.jinja`).
//! Rendering `NAME` in language `LANG` takes `NAME.LANG` when it exists,
//! else `NAME`. A template whose first line reads `Subject: ...` gives the
//! mail's subject; the rest, after an optional blank line, is the body.
//!
//! Every problem is found when the templates load (at start-up, on reload
//! and by `relais check`), never at send time: a syntax error, and a
//! variable or field that neither alert nor reminder templates have, found
//! by rendering each template with [`AlertContext::sample`] and
//! [`ReminderContext::sample`] with undefined values refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use relais_sdk::{AlertContext, ReminderContext, Rendered};

use crate::store::prelude::*;
use crate::yaml::Diagnostic;

/// The extension of template files.
pub const EXTENSION: &str = "jinja";

/// How much work one rendering may do (minijinja's fuel: about one unit per
/// instruction). A mail template renders in a few thousand; a hostile one
/// (nested `range(100000)` loops) must fail fast at `relais check` and on
/// reload instead of hanging them and eating memory.
pub const FUEL: u64 = 2_000_000;

/// The longest rendered mail kept: a template that stays within its fuel
/// may still build a huge text.
pub const MAX_RENDERED: usize = 1024 * 1024;

/// The notices the engine writes itself (not a plugin), by template name,
/// with the text each has when the templates directory has no version of
/// its own: `mail-too-large` knows `limit` (the size limit, readable).
pub const NOTICES: &[(&str, &str)] = &[(
    "mail-too-large",
    include_str!("../../templates/mail-too-large.jinja"),
)];

/// A context of the engine's notices, for checking templates.
fn notice_sample() -> serde_json::Value {
    serde_json::json!({ "limit": "25.0 MiB" })
}

/// The loaded templates, by name and language.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    /// `NAME` or `NAME.LANG` → the file it came from.
    files: BTreeMap<String, PathBuf>,
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

impl Templates {
    /// No templates.
    pub fn new() -> Templates {
        let mut env = Environment::new();
        // Values a plugin leaves out (an optional field) render empty; a
        // name no alert context has was refused when the template loaded.
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_keep_trailing_newline(true);
        env.set_fuel(Some(FUEL));
        Templates {
            env,
            files: BTreeMap::new(),
        }
    }

    /// Loads and checks every template of `dir`; a missing directory holds
    /// none. Every problem is returned, each with its file and line.
    pub fn load(dir: &Path) -> Result<Templates, Vec<Diagnostic>> {
        let mut templates = Templates::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(templates),
            Err(error) => {
                return Err(vec![Diagnostic::file(
                    dir,
                    format!("cannot read the templates directory: {error}"),
                )]);
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == EXTENSION))
            .filter(|p| {
                !p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        files.sort();
        let mut errors = Vec::new();
        for path in files {
            let key = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            match std::fs::read_to_string(&path) {
                Ok(source) => {
                    if let Err(error) = templates.add(&key, source, &path) {
                        errors.push(error);
                    }
                }
                Err(error) => errors.push(Diagnostic::file(&path, format!("cannot read: {error}"))),
            }
        }
        if errors.is_empty() {
            Ok(templates)
        } else {
            Err(errors)
        }
    }

    /// Adds template `key` (`NAME` or `NAME.LANG`) from `source`, after
    /// checking it compiles and renders the sample alert context or the
    /// sample reminder context with no undefined value.
    pub fn add(&mut self, key: &str, source: String, path: &Path) -> Result<(), Diagnostic> {
        let located = |error: &minijinja::Error| {
            let mut message = describe(error);
            // Name what is undefined: the expression the error points at.
            if error.kind() == minijinja::ErrorKind::UndefinedError
                && let Some(expression) = error.range().and_then(|r| source.get(r))
            {
                message = format!(
                    "undefined value `{expression}`: alert templates know request, customer, contract, change and recipient; reminder templates know request, customer, contact and reminder; notice templates know limit"
                );
            }
            Diagnostic {
                file: path.to_path_buf(),
                line: error.line().unwrap_or(1),
                column: 1,
                message,
            }
        };
        let mut strict = Environment::new();
        strict.set_undefined_behavior(UndefinedBehavior::Strict);
        strict.set_fuel(Some(FUEL));
        strict.add_template(key, &source).map_err(|e| located(&e))?;
        let template = strict.get_template(key).map_err(|e| located(&e))?;
        // A template serves one of the shipped plugins' contexts; when it
        // fits neither, the error shown is the one found furthest in, that
        // of the context it was most likely written for.
        let alert = template.render(AlertContext::sample());
        if let Err(alert) = alert {
            let reminder = template.render(ReminderContext::sample());
            if let Err(reminder) = reminder
                && template.render(notice_sample()).is_err()
            {
                let error = if reminder.line() > alert.line() {
                    reminder
                } else {
                    alert
                };
                return Err(located(&error));
            }
        }
        self.env
            .add_template_owned(key.to_string(), source.clone())
            .map_err(|e| located(&e))?;
        self.files.insert(key.to_string(), path.to_path_buf());
        Ok(())
    }

    /// Renders the engine's own notice `name` (see [`NOTICES`]): the
    /// templates directory's version when it has one and it renders, else
    /// the built-in one, so that a broken template never keeps a notice
    /// from going out. Why the built-in text was used goes to `warnings`.
    pub fn render_notice(
        &self,
        name: &str,
        context: &serde_json::Value,
        warnings: &mut Vec<String>,
    ) -> Result<Rendered, String> {
        if self.exists(name) {
            match self.render(name, None, context) {
                Ok(rendered) => return Ok(rendered),
                Err(error) => warnings.push(format!("{error}; the built-in text was sent")),
            }
        }
        let (_, source) = NOTICES
            .iter()
            .find(|(notice, _)| *notice == name)
            .ok_or_else(|| format!("no built-in notice `{name}`"))?;
        let mut built_in = Templates::new();
        built_in
            .add(name, source.to_string(), Path::new("(built-in)"))
            .map_err(|error| error.to_string())?;
        built_in.render(name, None, context)
    }

    /// The key of the template rendering `name` in `language`: `NAME.LANG`
    /// when it exists, else `NAME`.
    pub fn resolve(&self, name: &str, language: Option<&str>) -> Option<&str> {
        language
            .map(|language| format!("{name}.{language}"))
            .and_then(|key| self.files.get_key_value(&key))
            .or_else(|| self.files.get_key_value(name))
            .map(|(key, _)| key.as_str())
    }

    /// Whether some version of template `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.files.keys().any(|key| base_name(key) == name)
    }

    /// Every template key (`NAME` or `NAME.LANG`) and its file.
    pub fn files(&self) -> &BTreeMap<String, PathBuf> {
        &self.files
    }

    /// Renders `name` in `language` with `context`.
    pub fn render(
        &self,
        name: &str,
        language: Option<&str>,
        context: &serde_json::Value,
    ) -> Result<Rendered, String> {
        let Some(key) = self.resolve(name, language) else {
            let mut message = format!("no template `{name}`");
            if let Some(language) = language {
                message.push_str(&format!(" (looked for `{name}.{language}` and `{name}`)"));
            }
            return Err(message);
        };
        let text = self
            .env
            .get_template(key)
            .and_then(|template| template.render(context))
            .map_err(|error| format!("template `{key}`: {}", describe(&error)))?;
        if text.len() > MAX_RENDERED {
            return Err(format!(
                "template `{key}`: renders {} bytes, more than the {MAX_RENDERED} a mail may hold",
                text.len()
            ));
        }
        Ok(split_subject(&text))
    }
}

/// The alert formats of the stored customers that name a template that
/// does not exist (in the customer's language, or at all), one line each.
pub fn unknown_alert_templates(
    store: &crate::Store,
    templates: &Templates,
) -> Result<Vec<String>, crate::store::StoreError> {
    let mut problems = Vec::new();
    for (customer, language, template) in store.alert_templates()? {
        let found = match &language {
            Some(language) => templates.resolve(&template, Some(language)).is_some(),
            None => templates.exists(&template),
        };
        if !found {
            let language = language
                .map(|l| format!(" in language `{l}`"))
                .unwrap_or_default();
            problems.push(format!(
                "customer `{customer}`: alert template `{template}`{language} does not exist"
            ));
        }
    }
    Ok(problems)
}

/// `alert-opened` of `alert-opened.fr`.
fn base_name(key: &str) -> &str {
    key.split_once('.').map(|(name, _)| name).unwrap_or(key)
}

/// A minijinja error in one line, with what it says of the cause.
fn describe(error: &minijinja::Error) -> String {
    if error.kind() == minijinja::ErrorKind::OutOfFuel {
        return format!(
            "the template does too much work (over {FUEL} steps in one rendering): a loop too large?"
        );
    }
    let mut message = error.kind().to_string();
    if let Some(detail) = error.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    message
}

/// Takes a first `Subject:` line off the rendered text.
fn split_subject(text: &str) -> Rendered {
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    match first.strip_prefix("Subject:") {
        Some(subject) => Rendered {
            subject: Some(subject.trim().to_string()),
            body: rest.strip_prefix('\n').unwrap_or(rest).to_string(),
        },
        None => Rendered {
            subject: None,
            body: text.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: &[(&str, &str)]) -> Result<Templates, Vec<Diagnostic>> {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        Templates::load(dir.path())
    }

    #[test]
    fn renders_the_language_version_then_the_default() {
        let templates = load(&[
            (
                "alert.fr.jinja",
                "Subject: Demande {{ request.number }}\n\nBonjour {{ recipient.name }}",
            ),
            ("alert.jinja", "Hello {{ recipient.name }}"),
        ])
        .expect("valid");
        let context = serde_json::to_value(AlertContext::sample()).expect("json");
        let fr = templates
            .render("alert", Some("fr"), &context)
            .expect("renders");
        assert_eq!(fr.subject.as_deref(), Some("Demande 23010203"));
        assert_eq!(fr.body, "Bonjour Jeanne Martin");
        let de = templates
            .render("alert", Some("de"), &context)
            .expect("renders");
        assert_eq!(de.subject, None);
        assert_eq!(de.body, "Hello Jeanne Martin");
        assert!(templates.exists("alert"));
        let missing = templates.render("other", Some("fr"), &context);
        assert_eq!(
            missing,
            Err("no template `other` (looked for `other.fr` and `other`)".to_string())
        );
    }

    #[test]
    fn an_unknown_field_is_refused_with_its_line() {
        let errors = load(&[(
            "alert-opened.jinja",
            "Subject: x\n\nHello\n{{ request.numbr }}\n",
        )])
        .expect_err("unknown field");
        assert_eq!(errors.len(), 1);
        let text = errors[0].to_string();
        assert!(
            text.contains("alert-opened.jinja:4:1: undefined value"),
            "{text}"
        );
    }

    #[test]
    fn a_syntax_error_is_refused_with_its_line() {
        let errors = load(&[("a.jinja", "line one\n{% if x %}\nno end\n")]).expect_err("syntax");
        let text = errors[0].to_string();
        assert!(text.contains("a.jinja:"), "{text}");
        assert!(text.contains("syntax error"), "{text}");
    }

    #[test]
    fn a_template_that_works_without_end_is_refused_on_load() {
        let errors = load(&[(
            "bomb.jinja",
            "Subject: x\n\n{% for a in range(100000) %}{% for b in range(100000) %}{{ a }}{% endfor %}{% endfor %}\n",
        )])
        .expect_err("refused");
        let text = errors[0].to_string();
        assert!(text.contains("bomb.jinja:3:1: "), "{text}");
        assert!(text.contains("too much work"), "{text}");
        let wide = load(&[(
            "wide.jinja",
            "{% for a in range(90000) %}{{ request.subject }}{% endfor %}",
        )]);
        let text = match wide {
            Ok(templates) => {
                let context = serde_json::to_value(AlertContext::sample()).expect("json");
                templates
                    .render("wide", None, &context)
                    .expect_err("too big")
            }
            Err(errors) => errors[0].to_string(),
        };
        assert!(
            text.contains("too much work") || text.contains("more than"),
            "{text}"
        );
    }
}
