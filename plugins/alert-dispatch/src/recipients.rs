//! Who gets an alert, for which kind, and at which address.

use relais_sdk::{
    ChangeKind, ContractDetails, Customer, Host, Level, Reception, Recipient, Request,
};

use crate::config::{Config, FAX_PLACEHOLDER};

/// The alert kinds from most to least important. A recipient gets one mail
/// per save, for the first kind of this list that the save carries, the
/// contract enables and the recipient subscribed to: closing a request
/// says more than resolving it, resolving more than opening, and any of
/// them more than the state change that comes with it.
pub const PRIORITY: [ChangeKind; 4] = [
    ChangeKind::Closed,
    ChangeKind::Resolved,
    ChangeKind::Opened,
    ChangeKind::StateChanged,
];

/// The only group whose members must be contacts of the request's customer
/// on its main site (the vendor's rule for customer contacts).
pub const CUSTOMER_CONTACTS: &str = "customer-contacts";

/// A recipient kept for an alert.
#[derive(Debug)]
pub struct Chosen<'a> {
    /// The member as its first group lists it.
    pub member: &'a Recipient,
    /// The alert kind it gets.
    pub kind: ChangeKind,
    /// Every group it was kept in, in the contract's order.
    pub groups: Vec<&'a str>,
}

/// The change kinds of the save that the contract enables, in [`PRIORITY`]
/// order; logs each kind of the save it does not enable.
pub fn eligible_kinds(
    changes: &[ChangeKind],
    contract: &ContractDetails,
    host: &(impl Host + ?Sized),
) -> Vec<ChangeKind> {
    let mut eligible = Vec::new();
    for kind in PRIORITY.into_iter().filter(|kind| changes.contains(kind)) {
        if contract.alerts.contains(&kind) {
            eligible.push(kind);
        } else {
            host.log(
                Level::Info,
                &format!(
                    "contract {} does not enable `{}` alerts",
                    contract.code,
                    kind.as_str()
                ),
            );
        }
    }
    eligible
}

/// The contract's recipients of this save, each once, in the order they
/// are first found walking the groups and their members. Logs why each
/// member left out is left out.
pub fn choose<'a>(
    contract: &'a ContractDetails,
    eligible: &[ChangeKind],
    request: &Request,
    customer: &Customer,
    host: &(impl Host + ?Sized),
) -> Vec<Chosen<'a>> {
    let mut chosen: Vec<Chosen<'a>> = Vec::new();
    for group in &contract.recipients {
        for member in &group.members {
            let kind = if group.group == CUSTOMER_CONTACTS {
                on_main_site(member, request, customer).and_then(|()| kind_for(member, eligible))
            } else {
                kind_for(member, eligible)
            };
            let kind = match kind {
                Ok(kind) => kind,
                Err(why) => {
                    host.log(
                        Level::Info,
                        &format!("{} left out of {}: {why}", member.id, group.group),
                    );
                    continue;
                }
            };
            // A contact and a collaborator may share an id: both count.
            match chosen
                .iter_mut()
                .find(|c| c.member.kind == member.kind && c.member.id == member.id)
            {
                Some(already) => already.groups.push(&group.group),
                None => chosen.push(Chosen {
                    member,
                    kind,
                    groups: vec![&group.group],
                }),
            }
        }
    }
    chosen
}

/// The kind `member` gets: the most important eligible kind it subscribed
/// to. `eligible` is in [`PRIORITY`] order.
fn kind_for(member: &Recipient, eligible: &[ChangeKind]) -> Result<ChangeKind, String> {
    if member.reception == Reception::None {
        return Err("reception mode none".to_string());
    }
    eligible
        .iter()
        .copied()
        .find(|kind| member.alerts.contains(kind))
        .ok_or_else(|| {
            let names: Vec<String> = eligible
                .iter()
                .map(|kind| format!("`{}`", kind.as_str()))
                .collect();
            format!("subscribed to none of {}", names.join(", "))
        })
}

/// Whether a member of `customer-contacts` may have the alert: a contact of
/// the request's customer, on that customer's main site.
fn on_main_site(member: &Recipient, request: &Request, customer: &Customer) -> Result<(), String> {
    let not_on_main_site = "not on the customer's main site";
    if member.customer.as_deref() != Some(request.customer.as_str()) {
        let whose = match &member.customer {
            Some(other) => format!("a contact of customer {other}, not {}", request.customer),
            None => "not a contact of a customer".to_string(),
        };
        return Err(format!("{not_on_main_site} ({whose})"));
    }
    let Some(main_site) = &customer.main_site else {
        return Err(format!(
            "{not_on_main_site} (customer {} has no main site)",
            request.customer
        ));
    };
    match &member.site {
        Some(site) if site == main_site => Ok(()),
        Some(site) => Err(format!(
            "{not_on_main_site} (site {site}, main site {main_site})"
        )),
        None => Err(format!(
            "{not_on_main_site} (no site, main site {main_site})"
        )),
    }
}

/// Where `member`'s alert goes, by its reception mode; `None`, with a
/// warning, when it cannot be delivered.
pub fn address(member: &Recipient, config: &Config, host: &(impl Host + ?Sized)) -> Option<String> {
    let found = match member.reception {
        Reception::Email => member
            .email
            .as_deref()
            .map(str::trim)
            .filter(|email| !email.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("{} has no email address: undeliverable", member.id)),
        Reception::Fax => fax_address(member, config),
        Reception::None => Err(format!("{} has reception mode none", member.id)),
    };
    found.map_err(|why| host.log(Level::Warn, &why)).ok()
}

/// The gateway address of `member`'s fax: `{fax}` replaced by the number's
/// digits, so that `+33 1 23 45 67 89` becomes `33123456789`.
fn fax_address(member: &Recipient, config: &Config) -> Result<String, String> {
    let Some(gateway) = &config.fax_gateway else {
        return Err(format!(
            "{} receives alerts by fax and no fax-gateway is configured: undeliverable",
            member.id
        ));
    };
    let digits: String = member
        .fax
        .iter()
        .flat_map(|fax| fax.chars())
        .filter(char::is_ascii_digit)
        .collect();
    if digits.is_empty() {
        return Err(format!(
            "{} receives alerts by fax and has no fax number: undeliverable",
            member.id
        ));
    }
    Ok(gateway.replace(FAX_PLACEHOLDER, &digits).trim().to_string())
}
