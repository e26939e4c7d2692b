//! The decision for one event: the alert mails a request save sends.

use relais_sdk::{
    AlertChange, AlertContext, Contract, Customer, Effect, Event, Host, Level, PluginError,
    RequestSaved,
};
use serde_json::Value;

use crate::config::Config;
use crate::recipients::{Chosen, address, choose, eligible_kinds};

/// Decides what to do with one event, given the rule's config.
///
/// Returns no effect for events other than a request save; otherwise one
/// [`Effect::SendMail`] per recipient that gets an alert, in the order the
/// recipients were first found. See the crate docs for who gets what.
///
/// `host` is generic (a `&dyn Host` will do) so that the WebAssembly
/// component only imports the queries called here; see
/// [`Plugin::handle`](relais_sdk::Plugin::handle).
///
/// # Errors
///
/// [`PluginError::Plugin`] when `config` is invalid;
/// [`PluginError::Host`] when a host query or a template fails.
pub fn decide(
    event: &Event,
    config: &Value,
    host: &(impl Host + ?Sized),
) -> Result<Vec<Effect>, PluginError> {
    let config = Config::from_value(config)?;
    let Event::RequestSaved(saved) = event else {
        host.log(
            Level::Debug,
            &format!(
                "ignored a {} event: alert dispatch only handles request-saved",
                event.trigger()
            ),
        );
        return Ok(Vec::new());
    };
    let request = &saved.after;
    if saved.changes.is_empty() {
        host.log(Level::Info, "no change kind: no alert");
        return Ok(Vec::new());
    }
    let Some(code) = &request.contract else {
        host.log(
            Level::Info,
            &format!("request {} has no contract: no alert", request.number),
        );
        return Ok(Vec::new());
    };
    let Some(contract) = host.contract(code)? else {
        host.log(
            Level::Warn,
            &format!(
                "contract {code} not found: no alert for request {}",
                request.number
            ),
        );
        return Ok(Vec::new());
    };
    let Some(customer) = host.customer(&request.customer)? else {
        host.log(
            Level::Warn,
            &format!(
                "customer {} not found: no alert for request {}",
                request.customer, request.number
            ),
        );
        return Ok(Vec::new());
    };
    let eligible = eligible_kinds(&saved.changes, &contract, host);
    if eligible.is_empty() {
        host.log(
            Level::Info,
            &format!("contract {code} enables none of the save's change kinds: no alert"),
        );
        return Ok(Vec::new());
    }
    let contract_ref = Contract {
        code: contract.code.clone(),
        customer: contract.customer.clone(),
    };
    let mut effects = Vec::new();
    for chosen in choose(&contract, &eligible, request, &customer, host) {
        let Some(to) = address(chosen.member, &config, host) else {
            continue;
        };
        effects.push(alert(
            saved,
            &customer,
            &contract_ref,
            &chosen,
            to,
            &config,
            host,
        )?);
    }
    Ok(effects)
}

/// Renders the alert of one recipient into its mail.
fn alert(
    saved: &RequestSaved,
    customer: &Customer,
    contract: &Contract,
    chosen: &Chosen<'_>,
    to: String,
    config: &Config,
    host: &(impl Host + ?Sized),
) -> Result<Effect, PluginError> {
    let request = &saved.after;
    let (keyword, template) = match customer
        .alert_formats
        .iter()
        .find(|format| format.kind == chosen.kind)
    {
        Some(format) => (&format.keyword, &format.template),
        None => {
            let format = config.defaults.of(chosen.kind);
            (&format.keyword, &format.template)
        }
    };
    let language = customer
        .language
        .as_deref()
        .map(str::trim)
        .filter(|language| !language.is_empty())
        .unwrap_or(&config.language);
    let context = AlertContext {
        request: request.clone(),
        customer: customer.clone(),
        contract: contract.clone(),
        change: AlertChange {
            kind: chosen.kind,
            keyword: keyword.clone(),
            previous_state: saved.before.as_ref().map(|before| before.state.clone()),
            state: request.state.clone(),
        },
        recipient: chosen.member.clone(),
    };
    let context = serde_json::to_value(&context).map_err(|error| {
        PluginError::Plugin(format!("could not serialise the alert context: {error}"))
    })?;
    let rendered = host.render(template, Some(language), &context)?;
    let subject = match rendered.subject.as_deref().map(str::trim) {
        Some(subject) if !subject.is_empty() => subject.to_string(),
        _ => match request.subject.as_deref().map(str::trim) {
            Some(subject) if !subject.is_empty() => format!("[#{}] {subject}", request.number),
            _ => format!("[#{}]", request.number),
        },
    };
    let subject = if keyword.trim().is_empty() {
        subject
    } else {
        format!("{} {subject}", keyword.trim())
    };
    host.log(
        Level::Info,
        &format!(
            "alert `{}` to {} <{to}> ({})",
            chosen.kind.as_str(),
            chosen.member.id,
            chosen.groups.join(", ")
        ),
    );
    Ok(Effect::SendMail {
        to: vec![to],
        subject,
        body: rendered.body,
        request: Some(request.number),
        exchange: None,
    })
}
