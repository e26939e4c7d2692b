//! `relais thread` and `relais link`: a mail's thread, and linking a mail
//! to a ticket by hand.

use std::process::ExitCode;

use anyhow::{Context, Result};
use relais::app::CallError;
use relais::app::links::Target;
use relais::app::links::{Candidate, candidates};
use relais::app::manual::{Context as WriteContext, Via, Write, Written};
use relais::sources::mail::typed_id;
use relais::store::{Direction, ThreadNode};
use relais_sdk::SubjectPrefixes;

use super::{Paths, open_store};
use relais::store::prelude::*;

/// Prints the thread of `message_id` as a tree.
pub fn thread(paths: &Paths, message_id: &str, json: bool) -> Result<ExitCode> {
    let store = open_store(&paths.db)?;
    let message_id = &typed_id(message_id);
    let tree = store
        .thread_tree(message_id)?
        .with_context(|| format!("no stored mail in the thread of <{message_id}>"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&tree)?);
    } else {
        for root in &tree {
            print_node(root, message_id, "", "");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_node(node: &ThreadNode, asked: &str, lead: &str, branch: &str) {
    let mark = if node.message_id == asked { "*" } else { " " };
    let who = match node.direction {
        Direction::Received => format!(
            "from {} on {}",
            node.sender.as_deref().unwrap_or("?"),
            node.account.as_deref().unwrap_or("?")
        ),
        Direction::Sent => format!("sent to {}", node.to.join(", ")),
    };
    let ticket = node
        .ticket
        .map(|t| format!("  ticket {t}"))
        .unwrap_or_else(|| "  no ticket".to_string());
    let receipt = node
        .receipt
        .as_deref()
        .map(|r| format!("  receipt ({r})"))
        .unwrap_or_default();
    println!(
        "{mark} {lead}{branch}<{}>  {}  {who}  {:?}{ticket}{receipt}  [{}]",
        node.message_id,
        node.at.get(..16).unwrap_or(&node.at).replace('T', " "),
        node.subject,
        node.status
    );
    let inner = format!(
        "{lead}{}",
        match branch {
            "" => "",
            "├─ " => "│  ",
            _ => "   ",
        }
    );
    for (i, reply) in node.replies.iter().enumerate() {
        let last = i + 1 == node.replies.len();
        print_node(reply, asked, &inner, if last { "└─ " } else { "├─ " });
    }
}

/// What `relais link` was asked to do.
#[derive(Debug)]
pub enum LinkRequest {
    /// Link to a ticket or a new one.
    Link(Target, bool),
    /// List the candidate tickets.
    Candidates,
}

/// Links a mail by hand, or lists the open tickets it could go to.
pub fn link(paths: &Paths, message_id: &str, request: LinkRequest, json: bool) -> Result<ExitCode> {
    let mut store = open_store(&paths.db)?;
    let message_id = &typed_id(message_id);
    match request {
        LinkRequest::Candidates => {
            let config = &paths.config;
            let candidates = candidates(
                &store,
                message_id,
                &config.requests.closed_states,
                &SubjectPrefixes::default(),
            )?
            .with_context(|| format!("no stored mail <{message_id}>"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&candidates)?);
            } else {
                print_candidates(&candidates);
            }
            Ok(ExitCode::SUCCESS)
        }
        LinkRequest::Link(target, replace) => {
            let options = paths.options();
            let context = WriteContext {
                identity: &options.identity,
                templates: None,
                via: Via::Cli,
            };
            let link = Write::LinkMail {
                message_id: message_id.clone(),
                target,
                replace,
            };
            match link.run(&mut store, &context) {
                Ok(Written::Linked(linked)) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&linked)?);
                    } else {
                        let how = if linked.created {
                            "new ticket"
                        } else {
                            "ticket"
                        };
                        let moved = linked
                            .previous
                            .map(|p| format!(" (moved from ticket {p})"))
                            .unwrap_or_default();
                        println!("<{message_id}> is on {how} {}{moved}", linked.ticket);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Ok(_) => unreachable!("a link answers where the mail is"),
                Err(CallError::Internal(error)) => Err(anyhow::anyhow!("{error}")),
                Err(refused) => {
                    eprintln!("error: {refused}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

fn print_candidates(candidates: &[Candidate]) {
    if candidates.is_empty() {
        println!("no open ticket of the sender or of its customer");
        return;
    }
    println!(
        "{:<10} {:<10} {:<10} {:<12} {:<16} subject",
        "ticket", "why", "state", "customer", "updated"
    );
    for c in candidates {
        let subject = c.subject.as_deref().unwrap_or("");
        let same = if c.same_subject {
            "  (same subject)"
        } else {
            ""
        };
        println!(
            "{:<10} {:<10} {:<10} {:<12} {:<16} {subject}{same}",
            c.number,
            c.why,
            c.state,
            c.customer,
            c.updated_at
                .get(..16)
                .unwrap_or(&c.updated_at)
                .replace('T', " ")
        );
    }
}
