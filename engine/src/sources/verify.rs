//! Relais's own check of a sender: the mail's DKIM signatures and its From
//! domain's DMARC policy, verified with mail-auth against DNS, for a desk
//! whose receiving server writes no `Authentication-Results` it can trust
//! (`authentication.verify: true`).
//!
//! The outcome is written as an `Authentication-Results` value of its own,
//! under the authserv-id [`AUTHSERV_ID`], and read by
//! [`super::auth::verdict`] beside the trusted servers' ones. It is kept
//! apart from the mail's headers: a header a sender wrote under that id is
//! never taken for it.
//!
//! SPF is not checked: it is about the client that connected to the
//! receiving server, which only that server saw. DMARC therefore passes on
//! an aligned DKIM signature.

use std::net::SocketAddr;

use mail_auth::dmarc::Policy;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::{AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, SpfOutput};

/// The authserv-id of Relais's own results.
pub const AUTHSERV_ID: &str = "relais";

/// Checks senders against DNS.
#[derive(Clone)]
pub struct Verifier {
    authenticator: std::sync::Arc<MessageAuthenticator>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl Verifier {
    /// A verifier asking `nameservers` (UDP and TCP), or the system's
    /// resolvers when there are none.
    pub fn new(nameservers: &[SocketAddr]) -> Result<Verifier, String> {
        let authenticator = if nameservers.is_empty() {
            MessageAuthenticator::new_system_conf()
        } else {
            let servers = nameservers
                .iter()
                .map(|address| {
                    let mut server = NameServerConfig::udp_and_tcp(address.ip());
                    for connection in &mut server.connections {
                        connection.port = address.port();
                    }
                    server
                })
                .collect();
            let config = ResolverConfig::from_name_servers(servers);
            let mut options = ResolverOpts::default();
            options.timeout = std::time::Duration::from_secs(3);
            options.attempts = 1;
            MessageAuthenticator::new(config, options)
        }
        .map_err(|e| format!("cannot set up the DNS resolver: {e}"))?;
        Ok(Verifier {
            authenticator: std::sync::Arc::new(authenticator),
        })
    }

    /// The `Authentication-Results` value of Relais's own checks of `raw`
    /// (`relais; dkim=...; dmarc=...`), or `None` when it is no message.
    pub async fn check(&self, raw: &[u8]) -> Option<String> {
        let message = AuthenticatedMessage::parse(raw)?;
        let from = message
            .from()
            .rsplit_once('@')
            .map(|(_, d)| d.to_lowercase())?;
        let dkim = self.authenticator.verify_dkim(&message).await;
        let spf = SpfOutput::default();
        let dmarc = self
            .authenticator
            .verify_dmarc(mail_auth::dmarc::verify::DmarcParameters::new(
                &message, &dkim, &from, &spf,
            ))
            .await;
        // Written here rather than by mail-auth's writer: without an
        // aligned pass, mail-auth leaves DMARC's results at `none`; with a
        // published policy that is a DMARC failure.
        let mut results = String::from(AUTHSERV_ID);
        for output in &dkim {
            let verdict = match output.result() {
                DkimResult::Pass => "pass",
                DkimResult::Fail(_) => "fail",
                DkimResult::Neutral(_) => "neutral",
                DkimResult::PermError(_) => "permerror",
                DkimResult::TempError(_) => "temperror",
                DkimResult::None => "none",
            };
            match output.signature() {
                Some(signature) => {
                    results.push_str(&format!("; dkim={verdict} header.d={}", signature.d))
                }
                None => results.push_str(&format!("; dkim={verdict}")),
            }
        }
        let passed = [dmarc.dkim_result(), dmarc.spf_result()]
            .iter()
            .any(|r| **r == DmarcResult::Pass);
        let dmarc_verdict = match dmarc.policy() {
            _ if passed => "pass",
            Policy::Unspecified => "none",
            _ => "fail",
        };
        results.push_str(&format!("; dmarc={dmarc_verdict} header.from={from}"));
        Some(results)
    }
}

/// Parses `raw` received on `account` and, with a verifier, adds Relais's
/// own verdict on its sender ([`ParsedMail::own_results`]).
pub async fn parse_checked(
    raw: &[u8],
    account: &str,
    verifier: Option<&Verifier>,
) -> Result<super::mail::ParsedMail, super::mail::MailError> {
    let mut parsed = super::mail::parse(raw, account);
    if let (Ok(mail), Some(verifier)) = (&mut parsed, verifier) {
        mail.own_results = verifier.check(raw).await;
    }
    parsed
}
