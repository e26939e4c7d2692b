//! Who sent a mail: the verdict of the receiving server, read from its
//! `Authentication-Results` headers (RFC 8601).
//!
//! A `From` header is whatever the sender wrote. What the receiving server
//! checked (DMARC, DKIM, SPF, SMTP authentication) it writes in an
//! `Authentication-Results` header under its own authserv-id; anyone can
//! write such a header too, so only those of the authserv-ids `relais.yaml`
//! trusts (`authentication.trusted-authserv-ids`) count. RFC 8601 §5 asks
//! the server to remove headers carrying its own id from incoming mail; in
//! case it does not, a failure in any trusted header wins over a pass.

use relais_sdk::{AuthResult, SenderAuthentication};

/// One `method=result` of a header, with its properties
/// (`header.from=dupont.example`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct MethodResult {
    method: String,
    result: String,
    properties: Vec<(String, String)>,
}

impl MethodResult {
    fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A parsed header: who wrote it and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Results {
    authserv_id: String,
    methods: Vec<MethodResult>,
}

/// Longest header value read: an `Authentication-Results` is a few lines;
/// a longer one is not a server's.
const MAX_VALUE: usize = 16 * 1024;

/// The value without its comments (`(...)`, nested) and with quoted
/// strings kept as they are.
fn strip_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Parses one header value; `None` when it is not one.
fn parse(value: &str) -> Option<Results> {
    if value.len() > MAX_VALUE {
        return None;
    }
    let value = strip_comments(value);
    let mut parts = value.split(';');
    // `authserv-id [version]`
    let authserv_id = parts.next()?.split_whitespace().next()?.to_string();
    let mut methods = Vec::new();
    for part in parts {
        let mut tokens = part.split_whitespace();
        let Some(first) = tokens.next() else {
            continue;
        };
        let Some((method, result)) = first.split_once('=') else {
            // `none`: nothing was checked.
            continue;
        };
        let method = method.split('/').next().unwrap_or(method);
        let mut properties = Vec::new();
        for token in tokens {
            if let Some((key, value)) = token.split_once('=')
                && key.contains('.')
            {
                properties.push((key.to_string(), value.trim_matches('"').to_string()));
            }
        }
        methods.push(MethodResult {
            method: method.to_ascii_lowercase(),
            result: result.to_ascii_lowercase(),
            properties,
        });
    }
    Some(Results {
        authserv_id,
        methods,
    })
}

/// The domain of an address or of `@domain`, lowercase.
fn domain_of(address: &str) -> Option<String> {
    let domain = address.trim().trim_matches(['<', '>']).rsplit('@').next()?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

/// Relaxed alignment (DMARC): one domain is the other or below it. A
/// signer cannot hold the key of a public suffix, so this never aligns two
/// customers' domains.
fn aligned(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}"))
}

/// The verdict on a mail whose `From` is `from`, from Relais's own
/// results (`own`, see [`super::verify`]) and its `Authentication-Results`
/// header values in header order, counting only those of `trusted`
/// authserv-ids.
pub fn verdict(
    own: Option<&str>,
    headers: &[String],
    trusted: &[String],
    from: Option<&str>,
) -> SenderAuthentication {
    let none = |reason: String| SenderAuthentication {
        result: AuthResult::None,
        reason,
        ..SenderAuthentication::default()
    };
    let Some(from_domain) = from.and_then(domain_of) else {
        return none("no From address".to_string());
    };
    if trusted.is_empty() && own.is_none() {
        return none(
            "no trusted authserv-id is configured (authentication.trusted-authserv-ids)"
                .to_string(),
        );
    }
    // Our own results come first and are ours whatever id they carry; a
    // header in the mail is a server's only under a trusted id.
    let results: Vec<Results> = own
        .and_then(parse)
        .into_iter()
        .chain(headers.iter().filter_map(|value| parse(value)).filter(|r| {
            trusted
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&r.authserv_id))
        }))
        .collect();
    if results.is_empty() {
        let others = headers.len();
        return none(if others == 0 {
            "no Authentication-Results header".to_string()
        } else {
            format!("no Authentication-Results of a trusted server ({others} from others, ignored)")
        });
    }
    let verdict = |result, method: &str, authority: &str, reason: String| SenderAuthentication {
        result,
        domain: Some(from_domain.clone()),
        method: Some(method.to_string()),
        authority: Some(authority.to_string()),
        reason,
    };
    // What each result says about the From domain.
    let mut passes = Vec::new();
    for header in &results {
        let by = header.authserv_id.as_str();
        for m in &header.methods {
            match m.method.as_str() {
                "dmarc" => {
                    let about = m.property("header.from").and_then(domain_of);
                    if about.as_deref().is_some_and(|d| !aligned(d, &from_domain)) {
                        continue;
                    }
                    match m.result.as_str() {
                        "pass" => passes.push((0, "dmarc", by)),
                        "fail" => {
                            return verdict(
                                AuthResult::Fail,
                                "dmarc",
                                by,
                                format!("{by}: dmarc=fail for {from_domain}"),
                            );
                        }
                        _ => {}
                    }
                }
                "dkim" if m.result == "pass" => {
                    let signer = m
                        .property("header.d")
                        .map(str::to_string)
                        .or_else(|| m.property("header.i").and_then(domain_of));
                    if signer.is_some_and(|d| aligned(&d, &from_domain)) {
                        passes.push((1, "dkim", by));
                    }
                }
                "spf" if m.result == "pass" => {
                    let envelope = m
                        .property("smtp.mailfrom")
                        .and_then(domain_of)
                        .or_else(|| m.property("smtp.helo").and_then(domain_of));
                    if envelope.is_some_and(|d| aligned(&d, &from_domain)) {
                        passes.push((2, "spf", by));
                    }
                }
                // The sender logged in to the receiving server's submission
                // service as the From address's domain.
                "auth"
                    if m.result == "pass"
                        && m.property("smtp.auth")
                            .and_then(domain_of)
                            .is_some_and(|d| aligned(&d, &from_domain)) =>
                {
                    passes.push((3, "auth", by));
                }
                _ => {}
            }
        }
    }
    passes.sort();
    match passes.first() {
        Some((_, method, by)) => verdict(
            AuthResult::Pass,
            method,
            by,
            format!("{by}: {method}=pass for {from_domain}"),
        ),
        None => SenderAuthentication {
            domain: Some(from_domain.clone()),
            authority: Some(results[0].authserv_id.clone()),
            ..none(format!(
                "{}: nothing authenticates {from_domain} (no aligned dmarc, dkim, spf or auth pass)",
                results[0].authserv_id
            ))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted() -> Vec<String> {
        vec!["mx.acme.example".to_string()]
    }

    fn check(headers: &[&str], from: &str) -> SenderAuthentication {
        let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        verdict(None, &headers, &trusted(), Some(from))
    }

    #[test]
    fn a_trusted_dmarc_pass_authenticates_the_from_domain() {
        let auth = check(
            &[
                "mx.acme.example; spf=pass smtp.mailfrom=dupont.example; dkim=pass header.d=dupont.example; dmarc=pass (p=reject) header.from=dupont.example",
            ],
            "jeanne@dupont.example",
        );
        assert_eq!(auth.result, AuthResult::Pass);
        assert_eq!(auth.method.as_deref(), Some("dmarc"));
        assert_eq!(auth.authority.as_deref(), Some("mx.acme.example"));
    }

    #[test]
    fn a_dmarc_failure_is_a_failure_even_beside_a_pass() {
        let auth = check(
            &[
                "mx.acme.example; dmarc=pass header.from=dupont.example",
                "MX.ACME.EXAMPLE 1; dmarc=fail (p=reject dis=none) header.from=dupont.example",
            ],
            "jeanne@dupont.example",
        );
        assert_eq!(auth.result, AuthResult::Fail, "{auth:?}");
    }

    #[test]
    fn headers_of_untrusted_servers_are_ignored() {
        let auth = check(
            &["evil.example; dmarc=pass header.from=dupont.example"],
            "jeanne@dupont.example",
        );
        assert_eq!(auth.result, AuthResult::None);
        assert!(auth.reason.contains("1 from others, ignored"), "{auth:?}");
        let headers = vec!["mx.acme.example; dmarc=pass".to_string()];
        let nothing = verdict(None, &headers, &[], Some("jeanne@dupont.example"));
        assert_eq!(nothing.result, AuthResult::None);
        assert!(nothing.reason.contains("trusted-authserv-ids"));
    }

    #[test]
    fn a_pass_for_another_domain_does_not_count() {
        let auth = check(
            &[
                "mx.acme.example; dkim=pass header.d=evil.example; spf=pass smtp.mailfrom=attacker@evil.example; dmarc=pass header.from=evil.example",
            ],
            "jeanne@dupont.example",
        );
        assert_eq!(auth.result, AuthResult::None, "{auth:?}");
    }

    #[test]
    fn aligned_dkim_spf_or_login_pass_without_dmarc() {
        let dkim = check(
            &["mx.acme.example; dkim=pass (2048-bit key) header.d=mail.dupont.example header.s=s1"],
            "jeanne@dupont.example",
        );
        assert_eq!(
            (dkim.result, dkim.method.as_deref()),
            (AuthResult::Pass, Some("dkim"))
        );
        let spf = check(
            &["mx.acme.example; spf=pass smtp.mailfrom=bounces@dupont.example"],
            "jeanne@dupont.example",
        );
        assert_eq!(spf.method.as_deref(), Some("spf"));
        let login = check(
            &["mx.acme.example; auth=pass smtp.auth=paul@acme.example"],
            "paul@acme.example",
        );
        assert_eq!(login.method.as_deref(), Some("auth"));
    }

    #[test]
    fn comments_quotes_and_odd_headers_are_read_safely() {
        let auth = check(
            &[
                "mx.acme.example (a (nested) comment); dmarc=pass (reason \"x; y\") header.from=\"dupont.example\"",
            ],
            "Jeanne@Dupont.Example",
        );
        assert_eq!(auth.result, AuthResult::Pass, "{auth:?}");
        for odd in ["", ";;;", "mx.acme.example", "mx.acme.example; none", "((("] {
            assert_ne!(check(&[odd], "j@dupont.example").result, AuthResult::Pass);
        }
        let huge = format!("mx.acme.example; dmarc=pass {}", "x".repeat(MAX_VALUE));
        assert_eq!(check(&[&huge], "j@dupont.example").result, AuthResult::None);
    }
}
