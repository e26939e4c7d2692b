//! Why a mail was refused: stable codes and the sentences sent back.

use crate::config::Language;

/// Why CatchMail refused a mail. Each reason has a stable kebab-case
/// [`code`](Reason::code), used in failure mails, run traces and the CLI's
/// JSON output; scripts may act on it, so a code never changes meaning.
///
/// The variants are listed in the order the checks run (see the crate docs):
/// the first rule a mail breaks is the one reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// `subject-missing-number`: no whitespace-separated `#DIGITS` token.
    SubjectMissingNumber,
    /// `subject-missing-keyword`: no `*message*` token (any letter case).
    SubjectMissingKeyword,
    /// `subject-several-numbers`: `#DIGITS` tokens naming different requests.
    SubjectSeveralNumbers,
    /// `request-not-found`: no request with that number.
    RequestNotFound,
    /// `messages-disabled`: the global "direct messages on requests" switch
    /// is off.
    MessagesDisabled,
    /// `request-type-not-enabled`: the request's type is unknown or not set
    /// up for CatchMail.
    RequestTypeNotEnabled,
    /// `request-not-publishable`: the request is not publishable.
    RequestNotPublishable,
    /// `conversation-locked`: the request's conversation is locked.
    ConversationLocked,
    /// `body-empty`: nothing is left of the body once the signature and the
    /// quoted history are removed.
    BodyEmpty,
    /// `body-too-long`: the body is longer than `max-body-chars` characters.
    BodyTooLong,
    /// `unknown-sender`: no `From` address, or it is on no collaborator and
    /// no contact.
    UnknownSender,
    /// `sender-not-authenticated`: the receiving server did not establish
    /// that the mail comes from its `From` domain (no trusted
    /// `Authentication-Results` pass, or a DMARC failure), and the rule
    /// asks for it (`sender-authentication: required`, the default).
    SenderNotAuthenticated,
    /// `sender-not-authorized`: no user linked to the address has the rights
    /// and the CatchMail flag.
    SenderNotAuthorized,
    /// `sender-ambiguous`: more than one user linked to the address has the
    /// rights and the CatchMail flag, so the author is not known.
    SenderAmbiguous,
    /// `company-not-accessible`: the internal user's partitioning does not
    /// include the request's company.
    CompanyNotAccessible,
    /// `not-requester`: the extranet user may not post on this request (it
    /// belongs to another customer, or another contact requested it and the
    /// user lacks right 147001).
    NotRequester,
}

impl Reason {
    /// Every reason, in the order the checks run.
    pub const ALL: [Reason; 16] = [
        Reason::SubjectMissingNumber,
        Reason::SubjectMissingKeyword,
        Reason::SubjectSeveralNumbers,
        Reason::SenderNotAuthenticated,
        Reason::UnknownSender,
        Reason::SenderNotAuthorized,
        Reason::SenderAmbiguous,
        Reason::RequestNotFound,
        Reason::MessagesDisabled,
        Reason::RequestTypeNotEnabled,
        Reason::RequestNotPublishable,
        Reason::ConversationLocked,
        Reason::BodyEmpty,
        Reason::BodyTooLong,
        Reason::CompanyNotAccessible,
        Reason::NotRequester,
    ];

    /// The stable code, e.g. `request-not-found`.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::SubjectMissingNumber => "subject-missing-number",
            Reason::SubjectMissingKeyword => "subject-missing-keyword",
            Reason::SubjectSeveralNumbers => "subject-several-numbers",
            Reason::RequestNotFound => "request-not-found",
            Reason::MessagesDisabled => "messages-disabled",
            Reason::RequestTypeNotEnabled => "request-type-not-enabled",
            Reason::RequestNotPublishable => "request-not-publishable",
            Reason::ConversationLocked => "conversation-locked",
            Reason::BodyEmpty => "body-empty",
            Reason::BodyTooLong => "body-too-long",
            Reason::UnknownSender => "unknown-sender",
            Reason::SenderNotAuthenticated => "sender-not-authenticated",
            Reason::SenderNotAuthorized => "sender-not-authorized",
            Reason::SenderAmbiguous => "sender-ambiguous",
            Reason::CompanyNotAccessible => "company-not-accessible",
            Reason::NotRequester => "not-requester",
        }
    }

    /// The reason with this code, if any.
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|reason| reason.code() == code)
    }

    /// A sentence telling the sender what was wrong, in `language`. It names
    /// no request and no figure, so that it can be shown on its own; the
    /// failure mail puts it after a line naming the request (see
    /// [`decide`](crate::decide)).
    pub fn sentence(&self, language: Language) -> &'static str {
        match language {
            Language::Fr => self.sentence_fr(),
            Language::En => self.sentence_en(),
        }
    }

    fn sentence_fr(&self) -> &'static str {
        match self {
            Reason::SubjectMissingNumber => {
                "L'objet du mail doit contenir le numéro de la demande au format #NUMERODEMANDE \
                 (par exemple #23010203), séparé des autres mots par une espace."
            }
            Reason::SubjectMissingKeyword => {
                "L'objet du mail doit contenir l'expression *message* (en minuscules ou en \
                 majuscules), séparée des autres mots par une espace."
            }
            Reason::SubjectSeveralNumbers => {
                "L'objet du mail contient plusieurs numéros de demande différents ; il ne doit en \
                 contenir qu'un."
            }
            Reason::RequestNotFound => "Aucune demande ne porte ce numéro.",
            Reason::MessagesDisabled => "Les messages sur demandes ne sont pas activés.",
            Reason::RequestTypeNotEnabled => {
                "Le type de la demande n'est pas paramétré pour le CatchMail."
            }
            Reason::RequestNotPublishable => "La demande n'est pas diffusable.",
            Reason::ConversationLocked => "La conversation de la demande est bloquée.",
            Reason::BodyEmpty => {
                "Le corps du mail est vide (une fois retirés la signature et l'historique cité)."
            }
            Reason::BodyTooLong => "Le corps du mail dépasse la longueur autorisée.",
            Reason::UnknownSender => {
                "L'adresse de l'expéditeur n'est renseignée sur aucun collaborateur ni aucun \
                 contact."
            }
            Reason::SenderNotAuthenticated => {
                "Le serveur de réception n'a pas pu vérifier que ce mail vient bien de l'adresse \
                 de son expéditeur (DMARC, DKIM ou SPF) ; il n'est pas publié."
            }
            Reason::SenderNotAuthorized => {
                "Aucun utilisateur lié à l'adresse de l'expéditeur ne possède les droits requis \
                 et l'option Utilisateur CatchMail."
            }
            Reason::SenderAmbiguous => {
                "Plusieurs utilisateurs liés à l'adresse de l'expéditeur possèdent les droits \
                 requis ; un seul doit les posséder pour que l'auteur du message soit connu."
            }
            Reason::CompanyNotAccessible => {
                "Le cloisonnement de l'utilisateur ne lui donne pas accès à la société de la \
                 demande."
            }
            Reason::NotRequester => {
                "L'utilisateur extranet n'est pas le demandeur de cette demande et n'a pas le \
                 droit de saisir pour un autre demandeur de son client."
            }
        }
    }

    fn sentence_en(&self) -> &'static str {
        match self {
            Reason::SubjectMissingNumber => {
                "The subject must contain the request number as #NUMBER (for example #23010203), \
                 separated from other words by a space."
            }
            Reason::SubjectMissingKeyword => {
                "The subject must contain the word *message* (in any letter case), separated \
                 from other words by a space."
            }
            Reason::SubjectSeveralNumbers => {
                "The subject contains several different request numbers; it must contain only one."
            }
            Reason::RequestNotFound => "There is no request with this number.",
            Reason::MessagesDisabled => "Messages on requests are not enabled.",
            Reason::RequestTypeNotEnabled => "The request's type is not set up for CatchMail.",
            Reason::RequestNotPublishable => "The request is not publishable.",
            Reason::ConversationLocked => "The request's conversation is locked.",
            Reason::BodyEmpty => {
                "The mail body is empty (once the signature and the quoted history are removed)."
            }
            Reason::BodyTooLong => "The mail body is longer than allowed.",
            Reason::UnknownSender => "The sender's address is on no collaborator and no contact.",
            Reason::SenderNotAuthenticated => {
                "The receiving server could not verify that this mail comes from its sender's \
                 address (DMARC, DKIM or SPF); it is not posted."
            }
            Reason::SenderNotAuthorized => {
                "No user linked to the sender's address has the required rights and the \
                 CatchMail user option."
            }
            Reason::SenderAmbiguous => {
                "Several users linked to the sender's address have the required rights; only one \
                 may have them, so that the author of the message is known."
            }
            Reason::CompanyNotAccessible => {
                "The user's partitioning does not give access to the request's company."
            }
            Reason::NotRequester => {
                "The extranet user is not this request's requester and may not post for another \
                 requester of their customer."
            }
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A refusal as the failure mail reports it: the reason and what is known
/// about the request, so that the sentence can say which request it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) reason: Reason,
    /// The request number, once the subject named one.
    pub(crate) request: Option<u64>,
    /// For `body-too-long`: the body's length and the limit, in characters.
    pub(crate) too_long: Option<(usize, usize)>,
    /// The request the notice is about, when it exists and the sender may
    /// post there: the notice then carries its tag.
    pub(crate) ticket: Option<u64>,
}

impl Refusal {
    pub(crate) fn new(reason: Reason) -> Refusal {
        Refusal {
            reason,
            request: None,
            too_long: None,
            ticket: None,
        }
    }

    pub(crate) fn on(reason: Reason, request: u64) -> Refusal {
        Refusal {
            reason,
            request: Some(request),
            too_long: None,
            ticket: None,
        }
    }

    /// The text of the failure mail: which request, then why.
    pub(crate) fn message(&self, language: Language) -> String {
        let sentence = self.reason.sentence(language);
        let mut message = match (language, self.request) {
            (Language::Fr, Some(number)) => {
                format!("Votre message n'a pas été publié sur la demande #{number}. {sentence}")
            }
            (Language::Fr, None) => format!("Votre message n'a pas été publié. {sentence}"),
            (Language::En, Some(number)) => {
                format!("Your message was not posted on request #{number}. {sentence}")
            }
            (Language::En, None) => format!("Your message was not posted. {sentence}"),
        };
        if let Some((chars, max)) = self.too_long {
            message.push_str(&match language {
                Language::Fr => {
                    format!(" Il compte {chars} caractères pour {max} au plus.")
                }
                Language::En => format!(" It has {chars} characters, at most {max} are allowed."),
            });
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_kebab_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            let code = reason.code();
            assert!(seen.insert(code), "duplicate code {code}");
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{code}"
            );
            assert_eq!(Reason::from_code(code), Some(reason));
            assert_eq!(reason.to_string(), code);
        }
        assert_eq!(Reason::from_code("nope"), None);
    }

    #[test]
    fn every_reason_has_a_sentence_in_each_language() {
        for reason in Reason::ALL {
            let fr = reason.sentence(Language::Fr);
            let en = reason.sentence(Language::En);
            assert!(fr.ends_with('.') && en.ends_with('.'), "{reason}");
            assert_ne!(fr, en, "{reason}");
        }
    }

    #[test]
    fn message_names_the_request_and_the_limit() {
        let refusal = Refusal {
            reason: Reason::BodyTooLong,
            request: Some(23010203),
            too_long: Some((4001, 4000)),
            ticket: None,
        };
        assert_eq!(
            refusal.message(Language::En),
            "Your message was not posted on request #23010203. The mail body is longer than \
             allowed. It has 4001 characters, at most 4000 are allowed."
        );
        assert_eq!(
            refusal.message(Language::Fr),
            "Votre message n'a pas été publié sur la demande #23010203. Le corps du mail dépasse \
             la longueur autorisée. Il compte 4001 caractères pour 4000 au plus."
        );
        assert_eq!(
            Refusal::new(Reason::SubjectMissingNumber).message(Language::En),
            format!(
                "Your message was not posted. {}",
                Reason::SubjectMissingNumber.sentence(Language::En)
            )
        );
    }
}
