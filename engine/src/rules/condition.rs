//! Conditions compiled from a rule's `when`, and their evaluation against
//! an event. A failed evaluation says which condition failed, for traces.

use std::fmt;

use regex::{Regex, RegexBuilder};
use relais_sdk::{ChangeKind, Event};

use super::schema::{Case, Matcher, When};
use crate::triggers::{self, Field, Trigger};
use crate::yaml::{Diagnostic, Document, Segment, YamlPath};

/// A compiled test on a field's value.
#[derive(Debug, Clone)]
pub enum Test {
    /// Equal to the value.
    Equals(String, Case),
    /// Contains the value.
    Contains(String, Case),
    /// Matches the regex (case already compiled in).
    Matches(Regex),
    /// Equal to one of the values.
    AnyOf(Vec<String>, Case),
}

fn same(a: &str, b: &str, case: Case) -> bool {
    match case {
        Case::Sensitive => a == b,
        Case::Insensitive => a.to_lowercase() == b.to_lowercase(),
    }
}

impl Test {
    fn holds(&self, value: &str) -> bool {
        match self {
            Test::Equals(expected, case) => same(value, expected, *case),
            Test::Contains(part, Case::Sensitive) => value.contains(part.as_str()),
            Test::Contains(part, Case::Insensitive) => {
                value.to_lowercase().contains(&part.to_lowercase())
            }
            Test::Matches(regex) => regex.is_match(value),
            Test::AnyOf(options, case) => options.iter().any(|o| same(value, o, *case)),
        }
    }
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let case = |case: &Case| {
            if *case == Case::Insensitive {
                " (any case)"
            } else {
                ""
            }
        };
        match self {
            Test::Equals(v, c) => write!(f, "equals {v:?}{}", case(c)),
            Test::Contains(v, c) => write!(f, "contains {v:?}{}", case(c)),
            Test::Matches(r) => write!(f, "matches /{}/", r.as_str()),
            Test::AnyOf(v, c) => write!(f, "is one of {v:?}{}", case(c)),
        }
    }
}

/// A compiled `when`.
#[derive(Debug, Clone)]
pub enum Condition {
    /// A test on a field.
    Field(Field, Test),
    /// The save carries one of these change kinds.
    Change(Vec<ChangeKind>),
    /// Every one holds.
    All(Vec<Condition>),
    /// At least one holds.
    Any(Vec<Condition>),
    /// Does not hold.
    Not(Box<Condition>),
}

impl Condition {
    /// Whether the condition holds for `event`: what [`Condition::check`]
    /// says, without building the reason, and copying nothing.
    pub fn holds(&self, event: &Event) -> bool {
        match self {
            Condition::Field(field, test) => {
                triggers::any(event, *field, |value| test.holds(value))
            }
            Condition::Change(kinds) => match event {
                Event::RequestSaved(saved) => saved.changes.iter().any(|c| kinds.contains(c)),
                _ => false,
            },
            Condition::All(all) => all.iter().all(|c| c.holds(event)),
            Condition::Any(any) => any.iter().any(|c| c.holds(event)),
            Condition::Not(inner) => !inner.holds(event),
        }
    }

    /// The exact values one of which a field must have for the condition
    /// to hold, when the condition says so (an `equals` or `any-of` at its
    /// top, or in its top `all`), lowercased: what rules are indexed by.
    pub fn required(&self) -> Option<(Field, Vec<String>)> {
        match self {
            Condition::Field(field, Test::Equals(value, _)) => {
                Some((*field, vec![value.to_lowercase()]))
            }
            Condition::Field(field, Test::AnyOf(values, _)) => {
                Some((*field, values.iter().map(|v| v.to_lowercase()).collect()))
            }
            Condition::All(all) => all.iter().find_map(Condition::required),
            _ => None,
        }
    }

    /// `Ok` when the condition holds for `event`, else why not.
    pub fn check(&self, event: &Event) -> Result<(), String> {
        match self {
            Condition::Field(field, test) => {
                let values = triggers::values(event, *field);
                if values.iter().any(|v| test.holds(v)) {
                    Ok(())
                } else if values.is_empty() {
                    Err(format!("{}: (none) {}", field.name(), negate(test)))
                } else {
                    let shown: Vec<String> = values.iter().map(|v| short(v)).collect();
                    Err(format!(
                        "{}: {} {}",
                        field.name(),
                        shown.join(", "),
                        negate(test)
                    ))
                }
            }
            Condition::Change(kinds) => {
                let Event::RequestSaved(saved) = event else {
                    return Err("change: not a request save".to_string());
                };
                if saved.changes.iter().any(|c| kinds.contains(c)) {
                    Ok(())
                } else {
                    let carried: Vec<&str> = saved.changes.iter().map(|c| c.as_str()).collect();
                    let wanted: Vec<&str> = kinds.iter().map(|c| c.as_str()).collect();
                    Err(format!(
                        "change: [{}] has none of [{}]",
                        carried.join(", "),
                        wanted.join(", ")
                    ))
                }
            }
            Condition::All(all) => all.iter().try_for_each(|c| c.check(event)),
            Condition::Any(any) => {
                let mut reasons = Vec::new();
                for condition in any {
                    match condition.check(event) {
                        Ok(()) => return Ok(()),
                        Err(reason) => reasons.push(reason),
                    }
                }
                Err(format!("any: none held ({})", reasons.join("; ")))
            }
            Condition::Not(inner) => match inner.check(event) {
                Ok(()) => Err("not: the inner condition held".to_string()),
                Err(_) => Ok(()),
            },
        }
    }
}

fn negate(test: &Test) -> String {
    format!("does not satisfy: {test}")
}

fn short(value: &str) -> String {
    let mut shown: String = value.chars().take(60).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// Compiles a `when` found at `path` of `doc`, for a rule on `trigger`.
/// Problems are pushed to `errors` with their position.
pub fn compile(
    when: &When,
    trigger: Trigger,
    doc: &Document,
    path: &YamlPath,
    errors: &mut Vec<Diagnostic>,
) -> Condition {
    let mut all = Vec::new();
    let at = |key: &str| {
        let mut p = path.clone();
        p.push(Segment::Key(key.to_string()));
        p
    };
    let fields: [(&str, Field, &Option<Matcher>); 13] = [
        ("account", Field::Account, &when.account),
        ("from", Field::From, &when.from),
        ("to", Field::To, &when.to),
        ("cc", Field::Cc, &when.cc),
        ("recipient", Field::Recipient, &when.recipient),
        ("subject", Field::Subject, &when.subject),
        ("body", Field::Body, &when.body),
        ("state", Field::State, &when.state),
        ("type", Field::Type, &when.request_type),
        ("company", Field::Company, &when.company),
        ("customer", Field::Customer, &when.customer),
        ("contract", Field::Contract, &when.contract),
        ("kind", Field::Kind, &when.kind),
    ];
    for (key, field, matcher) in fields {
        let Some(Matcher(spec)) = matcher else {
            continue;
        };
        if !trigger.fields().contains(&field) {
            let usable: Vec<&str> = trigger.fields().iter().map(|f| f.name()).collect();
            let message = if usable.is_empty() {
                format!(
                    "`{key}` does not apply to `{}` rules, which take no field conditions",
                    trigger.as_str()
                )
            } else {
                format!(
                    "`{key}` does not apply to `{}` rules; their fields are: {}",
                    trigger.as_str(),
                    usable.join(", ")
                )
            };
            errors.push(doc.key_diagnostic(&at(key), message));
            continue;
        }
        let test = if let Some(value) = &spec.equals {
            Test::Equals(value.clone(), spec.case)
        } else if let Some(value) = &spec.contains {
            Test::Contains(value.clone(), spec.case)
        } else if let Some(values) = &spec.any_of {
            Test::AnyOf(values.clone(), spec.case)
        } else if let Some(pattern) = &spec.matches {
            match RegexBuilder::new(pattern)
                .case_insensitive(spec.case == Case::Insensitive)
                .build()
            {
                Ok(regex) => Test::Matches(regex),
                Err(error) => {
                    let mut p = at(key);
                    p.push(Segment::Key("matches".to_string()));
                    let last = error
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim()
                        .to_string();
                    let first = last.trim_start_matches("error: ").to_string();
                    errors.push(
                        doc.diagnostic(&p, format!("invalid regex in `{key}.matches`: {first}")),
                    );
                    continue;
                }
            }
        } else {
            continue;
        };
        all.push(Condition::Field(field, test));
    }
    if let Some(changes) = &when.change {
        if trigger.takes_changes() {
            all.push(Condition::Change(changes.0.clone()));
        } else {
            errors.push(doc.key_diagnostic(
                &at("change"),
                format!(
                    "`change` applies only to `request-saved` rules, not `{}`",
                    trigger.as_str()
                ),
            ));
        }
    }
    let mut nested = |key: &str, list: &[When]| -> Vec<Condition> {
        list.iter()
            .enumerate()
            .map(|(index, inner)| {
                let mut p = at(key);
                p.push(Segment::Index(index));
                compile(inner, trigger, doc, &p, errors)
            })
            .collect()
    };
    if let Some(list) = &when.all {
        let inner = nested("all", list);
        all.push(Condition::All(inner));
    }
    if let Some(list) = &when.any {
        let inner = nested("any", list);
        all.push(Condition::Any(inner));
    }
    if let Some(inner) = &when.not {
        let compiled = compile(inner, trigger, doc, &at("not"), errors);
        all.push(Condition::Not(Box::new(compiled)));
    }
    if all.len() == 1 {
        all.pop().unwrap_or(Condition::All(Vec::new()))
    } else {
        Condition::All(all)
    }
}
