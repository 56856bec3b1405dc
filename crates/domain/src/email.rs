//! E-mail addresses: parsed once, compared lowercased, never shown in logs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An e-mail address, checked for shape when parsed. Never logged.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an e-mail address")]
pub struct EmailAddressError;

impl EmailAddress {
    pub fn parse(s: &str) -> Result<EmailAddress, EmailAddressError> {
        let s = s.trim();
        let (local, domain) = s.split_once('@').ok_or(EmailAddressError)?;
        let ok = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(EmailAddress(s.to_lowercase()))
        } else {
            Err(EmailAddressError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = EmailAddressError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        EmailAddress::parse(&s)
    }
}

impl From<EmailAddress> for String {
    fn from(e: EmailAddress) -> String {
        e.0
    }
}

/// Debug output hides the address: personal data stays out of logs.
impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailAddress(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_are_checked_and_never_shown_in_debug_output() {
        let e = EmailAddress::parse(" Direction.EHPAD@exemple.fr ").unwrap();
        assert_eq!(e.as_str(), "direction.ehpad@exemple.fr");
        assert!(!format!("{e:?}").contains("exemple"));
        for bad in ["", "no-at", "a@b", "a@@b.fr", "a b@c.fr", "@c.fr", "a@.fr"] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
