//! The notices the engine writes itself rather than a plugin (a mail too
//! large to process).

use relais_sdk::Effect;

use crate::effects::MailIdentity;

/// The reason code of the notice a too-large mail's sender gets.
pub const MAIL_TOO_LARGE: &str = "mail-too-large";

/// A failure notice for a mail over the size limit, unless the mail is
/// automatic (then a warning says why no one is told).
pub(super) fn too_large_notice(
    mail: &relais_sdk::Mail,
    identity: &MailIdentity,
    limit: u64,
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
        message: format!(
            "Votre message dépasse la taille maximale acceptée ({limit}) : il a été conservé mais n'a pas été traité.\n\n\
             Your message is larger than the accepted maximum ({limit}): it was kept but not processed."
        ),
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
