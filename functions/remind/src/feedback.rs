//! What SES reports back about the e-mails (docs/reminders.md, "Bounces and complaints"):
//! its configuration set publishes each bounce and complaint to an SNS topic, which invokes
//! the `remind-feedback` Lambda (locally, the gateway relays the topic's queue). A
//! permanent bounce or a complaint marks the account holding the address: reminders stop
//! going to it, and a structure left with no reachable address shows in its ARS's view.

use serde::Deserialize;
use tdb_domain::accounts::{Account, Undeliverable, UndeliverableReason};
use tdb_domain::email::EmailAddress;
use tdb_domain::ports::{AccountStore, StoreError};

/// The addresses one SES notification says to stop writing to.
#[derive(Debug, PartialEq)]
pub struct Feedback {
    pub reason: UndeliverableReason,
    pub addresses: Vec<EmailAddress>,
    /// When SES saw the bounce or complaint (Unix seconds), if it said.
    pub at: Option<i64>,
}

/// SES's notification, in either of its shapes: an event destination's (`eventType`) or
/// an identity's notification topic (`notificationType`). Only the fields read here.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    event_type: Option<String>,
    notification_type: Option<String>,
    bounce: Option<Bounce>,
    complaint: Option<Complaint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bounce {
    bounce_type: String,
    #[serde(default)]
    bounced_recipients: Vec<Recipient>,
    timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Complaint {
    #[serde(default)]
    complained_recipients: Vec<Recipient>,
    timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    email_address: String,
}

/// Reads one SNS message from SES. `None` for what does not stop mail: sends, deliveries,
/// transient bounces (a full mailbox), SES's test message, anything else on the topic.
pub fn parse(message: &str) -> Option<Feedback> {
    let notification: Notification = serde_json::from_str(message).ok()?;
    let kind = notification.event_type.or(notification.notification_type)?;
    let (reason, recipients, timestamp) = match kind.as_str() {
        "Bounce" => {
            let bounce = notification.bounce?;
            // Transient and undetermined bounces may succeed later: SES retries them.
            if bounce.bounce_type != "Permanent" {
                return None;
            }
            (
                UndeliverableReason::Bounce,
                bounce.bounced_recipients,
                bounce.timestamp,
            )
        }
        "Complaint" => {
            let complaint = notification.complaint?;
            (
                UndeliverableReason::Complaint,
                complaint.complained_recipients,
                complaint.timestamp,
            )
        }
        _ => return None,
    };
    let addresses = recipients
        .iter()
        .filter_map(|r| EmailAddress::parse(&r.email_address).ok())
        .collect();
    let at = timestamp.and_then(|t| {
        time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| t.unix_timestamp())
    });
    Some(Feedback {
        reason,
        addresses,
        at,
    })
}

/// The SES notifications of a Lambda's SNS event: each record's `Sns.Message`.
pub fn sns_messages(event: &serde_json::Value) -> Vec<&str> {
    event["Records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["Sns"]["Message"].as_str())
        .collect()
}

/// Records one SNS message of the feedback topic: a permanent bounce or a complaint marks
/// the accounts of its addresses (dated by SES, else `now`, Unix seconds); anything else
/// changes nothing.
pub async fn receive<S: AccountStore>(
    accounts: &S,
    message: &str,
    now: i64,
) -> Result<FeedbackOutcome, StoreError> {
    let Some(feedback) = parse(message) else {
        return Ok(FeedbackOutcome::default());
    };
    let outcome = record(accounts, &feedback, feedback.at.unwrap_or(now)).await?;
    // Counts only: the addresses are personal data.
    tracing::info!(
        reason = feedback.reason.key(),
        marked = outcome.marked,
        already = outcome.already,
        unknown = outcome.unknown,
        "mail feedback"
    );
    Ok(outcome)
}

/// What one notification changed.
#[derive(Debug, Default, PartialEq)]
pub struct FeedbackOutcome {
    /// Accounts marked now.
    pub marked: usize,
    /// Addresses already marked (SES repeats, the topic delivers at least once).
    pub already: usize,
    /// Addresses of no account (deleted since, or someone else's).
    pub unknown: usize,
}

/// Marks each account of `feedback`'s addresses, once: a conditional save on the
/// account's version, read again when a login or another notification saved it meanwhile.
pub async fn record<S: AccountStore>(
    accounts: &S,
    feedback: &Feedback,
    at: i64,
) -> Result<FeedbackOutcome, StoreError> {
    let mut outcome = FeedbackOutcome::default();
    for address in &feedback.addresses {
        let mut attempts = 0;
        loop {
            let Some(record) = accounts.account_by_email(address).await? else {
                outcome.unknown += 1;
                break;
            };
            let account = record.account;
            if account.undeliverable.is_some() {
                outcome.already += 1;
                break;
            }
            let marked = Account {
                undeliverable: Some(Undeliverable {
                    reason: feedback.reason,
                    at,
                }),
                version: account.version + 1,
                ..account
            };
            match accounts.save_account(&marked).await {
                Ok(()) => {
                    outcome.marked += 1;
                    break;
                }
                Err(StoreError::Conflict { .. }) if attempts < 10 => attempts += 1,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounce(kind: &str) -> String {
        serde_json::json!({
            "eventType": "Bounce",
            "bounce": {
                "bounceType": kind,
                "bounceSubType": "General",
                "bouncedRecipients": [{"emailAddress": "Jean.Dupont@Exemple.fr"}],
                "timestamp": "2025-06-10T08:00:00.000Z",
            },
            "mail": {"messageId": "m-1", "destination": ["jean.dupont@exemple.fr"]},
        })
        .to_string()
    }

    #[test]
    fn a_permanent_bounce_names_its_addresses() {
        let feedback = parse(&bounce("Permanent")).unwrap();
        assert_eq!(feedback.reason, UndeliverableReason::Bounce);
        assert_eq!(
            feedback.addresses,
            vec![EmailAddress::parse("jean.dupont@exemple.fr").unwrap()]
        );
    }

    #[test]
    fn a_bounce_is_dated_by_ses() {
        let feedback = parse(&bounce("Permanent")).unwrap();
        // 2025-06-10T08:00:00Z
        assert_eq!(feedback.at, Some(1_749_542_400));
    }

    #[test]
    fn a_lambda_sns_event_yields_each_message() {
        let event = serde_json::json!({"Records": [
            {"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": "one"}},
            {"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": "two"}},
        ]});
        assert_eq!(sns_messages(&event), ["one", "two"]);
        assert!(sns_messages(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn a_complaint_in_the_notification_shape_names_its_addresses() {
        let message = serde_json::json!({
            "notificationType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": "a@exemple.fr"}, {"emailAddress": "not an address"}]},
        })
        .to_string();
        let feedback = parse(&message).unwrap();
        assert_eq!(feedback.reason, UndeliverableReason::Complaint);
        assert_eq!(feedback.addresses.len(), 1);
    }

    #[test]
    fn what_does_not_stop_mail_is_ignored() {
        assert_eq!(parse(&bounce("Transient")), None);
        assert_eq!(parse(&bounce("Undetermined")), None);
        assert_eq!(
            parse("Successfully validated SNS topic for Amazon SES event publishing."),
            None
        );
        let delivery = serde_json::json!({"eventType": "Delivery", "mail": {}, "delivery": {}});
        assert_eq!(parse(&delivery.to_string()), None);
        assert_eq!(parse(r#"{"eventType": "Bounce"}"#), None);
    }
}
