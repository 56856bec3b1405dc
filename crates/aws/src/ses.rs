//! E-mail through SES v1 `SendEmail`, one message per recipient (LocalStack's community
//! edition emulates v1 only, and its bulk call answers incompletely).

use aws_sdk_ses::Client;
use aws_sdk_ses::types::{Body, Content, Destination, Message};
use tdb_domain::ports::{Email, MailError, Mailer};

#[derive(Clone)]
pub struct SesMailer {
    client: Client,
    sender: String,
    /// The configuration set whose event destination publishes bounces and complaints to
    /// the feedback topic (`SES_CONFIGURATION_SET`); without one, SES reports nothing back.
    configuration_set: Option<String>,
}

impl SesMailer {
    pub fn new(client: Client, sender: impl Into<String>) -> SesMailer {
        SesMailer {
            client,
            sender: sender.into(),
            configuration_set: None,
        }
    }

    /// Sends through `configuration_set`, whose bounces and complaints come back.
    pub fn reporting_to(self, configuration_set: Option<String>) -> SesMailer {
        SesMailer {
            configuration_set,
            ..self
        }
    }
}

fn utf8(text: &str) -> Result<Content, MailError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| MailError::Backend(Box::new(e)))
}

impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<String, MailError> {
        let mut body = Body::builder().text(utf8(&email.text)?);
        if let Some(html) = &email.html {
            body = body.html(utf8(html)?);
        }
        let message = Message::builder()
            .subject(utf8(&email.subject)?)
            .body(body.build())
            .build();
        let out = self
            .client
            .send_email()
            .source(&self.sender)
            .destination(
                Destination::builder()
                    .to_addresses(email.to.as_str())
                    .build(),
            )
            .message(message)
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await;
        use aws_sdk_ses::error::SdkError;
        match out {
            Ok(out) => Ok(out.message_id().to_string()),
            // SES answered with a refusal, or the request could not be built: certainly
            // not sent.
            Err(e @ (SdkError::ServiceError(_) | SdkError::ConstructionFailure(_))) => {
                Err(MailError::Rejected(e.to_string()))
            }
            // No answer (a connection lost, a timeout; the SDK has already retried): it may
            // have been sent.
            Err(e) => Err(MailError::Backend(Box::new(e))),
        }
    }

    async fn max_send_rate(&self) -> Result<f64, MailError> {
        let quota = self
            .client
            .get_send_quota()
            .send()
            .await
            .map_err(|e| MailError::Backend(Box::new(e)))?;
        Ok(quota.max_send_rate())
    }
}
