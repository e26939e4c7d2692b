//! Who sent the mail, as far as the directory knows, and which tickets
//! that lets the mail reach.

use relais_sdk::{AddressOwner, Host, HostError, Mail, PartyKind, Request};

/// The mail's sender: its `From` address and the collaborators and
/// contacts that own it.
#[derive(Debug)]
pub(crate) struct Sender {
    /// The `From` address, trimmed; `None` when the mail has none.
    pub email: Option<String>,
    /// The owners of the address (as `email` or `email2`; the host compares
    /// without regard to letter case), each once.
    pub owners: Vec<AddressOwner>,
}

impl Sender {
    /// Asks the host who owns the mail's `From` address.
    pub fn identify(mail: &Mail, host: &(impl Host + ?Sized)) -> Result<Sender, HostError> {
        let email = mail
            .from
            .as_ref()
            .map(|from| from.email.trim())
            .filter(|email| !email.is_empty());
        let mut owners: Vec<AddressOwner> = Vec::new();
        if let Some(email) = email {
            for owner in host.address_owners(email)? {
                // A host listing the same owner twice must not make one
                // person look like two contacts sharing the address.
                if !owners
                    .iter()
                    .any(|o| o.kind == owner.kind && o.id == owner.id)
                {
                    owners.push(owner);
                }
            }
        }
        Ok(Sender {
            email: email.map(str::to_string),
            owners,
        })
    }

    /// The address as logs show it.
    pub fn address(&self) -> &str {
        self.email.as_deref().unwrap_or("(no From)")
    }

    /// Whether no collaborator and no contact owns the address (or the mail
    /// has no `From` at all).
    pub fn is_unknown(&self) -> bool {
        self.owners.is_empty()
    }

    /// Whether a collaborator owns the address: staff may reach every
    /// ticket.
    pub fn is_staff(&self) -> bool {
        self.owners
            .iter()
            .any(|owner| owner.kind == PartyKind::Collaborator)
    }

    /// The contacts that own the address, in the host's order.
    pub fn contacts(&self) -> Vec<&AddressOwner> {
        self.owners
            .iter()
            .filter(|owner| owner.kind == PartyKind::Contact)
            .collect()
    }

    /// The customers of those contacts, each once.
    pub fn customers(&self) -> Vec<&str> {
        let mut customers: Vec<&str> = Vec::new();
        for customer in self.contacts().iter().filter_map(|c| c.customer.as_deref()) {
            if !customers.contains(&customer) {
                customers.push(customer);
            }
        }
        customers
    }

    /// Why the mail may not be put on `request`, or `None` when it may.
    ///
    /// A known contact that is not also staff reaches only the tickets of
    /// its own customers: a tag typed into a subject, or a References
    /// header, must not put one customer's mail on another customer's
    /// ticket. Staff reach every ticket. An unknown sender reaches every
    /// ticket too: linking publishes nothing to it, and the staff who
    /// read the ticket see who wrote.
    pub fn refusal(&self, request: &Request) -> Option<String> {
        let customers = self.customers();
        if self.is_staff() || customers.is_empty() || customers.contains(&request.customer.as_str())
        {
            return None;
        }
        Some(format!(
            "of customer {}; the sender is a contact of {}",
            request.customer,
            customers.join(", ")
        ))
    }

    /// One line on who the sender is, for the trace.
    pub fn describe(&self) -> String {
        let Some(email) = &self.email else {
            return "the mail has no From address: unknown sender".to_string();
        };
        if self.owners.is_empty() {
            return format!("sender {email} is unknown: no collaborator or contact has it");
        }
        let owners: Vec<String> = self
            .owners
            .iter()
            .map(|owner| match (owner.kind, &owner.customer) {
                (PartyKind::Collaborator, _) => format!("collaborator {}", owner.id),
                (PartyKind::Contact, Some(customer)) => {
                    format!("contact {} of customer {customer}", owner.id)
                }
                (PartyKind::Contact, None) => format!("contact {} (no customer)", owner.id),
            })
            .collect();
        format!("sender {email} is {}", owners.join(", "))
    }
}
