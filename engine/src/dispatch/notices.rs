//! The notices the engine writes itself rather than a plugin (a mail too
//! large to process).

use relais_sdk::Effect;

use crate::effects::MailIdentity;
use crate::templates::Templates;

/// The reason code of the notice a too-large mail's sender gets.
pub const MAIL_TOO_LARGE: &str = "mail-too-large";

/// A failure notice for a mail over the size limit, unless the mail is
/// automatic (then a warning says why no one is told).
pub(super) fn too_large_notice(
    mail: &relais_sdk::Mail,
    identity: &MailIdentity,
    limit: u64,
    templates: &Templates,
    warnings: &mut Vec<String>,
) -> Option<Effect> {
    if let Some(why) = mail.automatic_reason(&identity.own_addresses()) {
        warnings.push(format!("sender not told: automatic mail ({why})"));
        return None;
    }
    let sender = mail.reply_address()?;
    let limit = human_size(limit);
    Some(Effect::ReplyFailure {
        to: sender.to_string(),
        reason: MAIL_TOO_LARGE.to_string(),
        message: templates
            .render_notice(
                MAIL_TOO_LARGE,
                &serde_json::json!({ "limit": limit }),
                warnings,
            )
            .map(|rendered| rendered.body.trim_end().to_string())
            .unwrap_or_else(|error| {
                warnings.push(error);
                format!("{MAIL_TOO_LARGE}: {limit}")
            }),
        in_reply_to: mail.message_id.clone(),
        request: None,
    })
}

pub(super) fn human_size(bytes: u64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    if bytes as f64 >= MB {
        format!("{:.1} MiB", bytes as f64 / MB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(templates: &Templates, limit: u64) -> (String, Vec<String>) {
        let mail = relais_sdk::Mail {
            message_id: "big@x".into(),
            from: Some(relais_sdk::Address {
                name: None,
                email: "jeanne@dupont.example".into(),
            }),
            ..Default::default()
        };
        let identity = MailIdentity::default();
        let mut warnings = Vec::new();
        let effect = too_large_notice(&mail, &identity, limit, templates, &mut warnings);
        let Some(Effect::ReplyFailure { message, .. }) = effect else {
            panic!("no notice: {effect:?}");
        };
        (message, warnings)
    }

    fn templates(source: &str) -> Templates {
        let mut templates = Templates::new();
        templates
            .add(
                MAIL_TOO_LARGE,
                source.to_string(),
                std::path::Path::new("t.jinja"),
            )
            .expect("valid");
        templates
    }

    #[test]
    fn the_too_large_notice_is_the_desks_template_else_the_built_in_one() {
        let (built_in, warnings) = notice(&Templates::new(), 25 << 20);
        assert!(
            built_in.starts_with("Votre message dépasse la taille maximale acceptée (25.0 MiB)"),
            "{built_in}"
        );
        assert!(
            built_in.contains("larger than the accepted maximum (25.0 MiB)"),
            "{built_in}"
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let (own, warnings) = notice(&templates("Trop gros : {{ limit }} au plus.\n"), 25 << 20);
        assert_eq!(own, "Trop gros : 25.0 MiB au plus.");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn a_template_that_fails_to_render_falls_back_to_the_built_in_text() {
        // Loads (checked with a sample limit of 25.0 MiB), and on the real
        // limit runs out of fuel in a loop over a huge range.
        let (message, warnings) = notice(
            &templates(
                "{% if limit == '30.0 MiB' %}{% for i in range(100000000) %}x{% endfor %}{% endif %}",
            ),
            30 << 20,
        );
        assert!(message.starts_with("Votre message dépasse"), "{message}");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("the built-in text was sent"),
            "{warnings:?}"
        );
    }
}
