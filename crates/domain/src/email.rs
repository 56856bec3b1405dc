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
    /// Accepts what a mail service sends to without quoting: an ASCII dot-atom local part
    /// (no spaces, quotes, angle brackets or commas, which would also let one field name
    /// several recipients) and a domain whose international labels are stored in punycode
    /// (`xn--crche-soleil-ydb.fr` for `crèche-soleil.fr`).
    pub fn parse(s: &str) -> Result<EmailAddress, EmailAddressError> {
        let s = s.trim();
        let (local, domain) = s.rsplit_once('@').ok_or(EmailAddressError)?;
        let atom = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
        let local_ok = (1..=64).contains(&local.len())
            && local
                .split('.')
                .all(|part| !part.is_empty() && part.chars().all(atom));
        if !local_ok {
            return Err(EmailAddressError);
        }
        let domain = idna::domain_to_ascii(domain).map_err(|_| EmailAddressError)?;
        let label_ok = |label: &str| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 || !labels.iter().all(|l| label_ok(l)) {
            return Err(EmailAddressError);
        }
        let address = format!("{local}@{domain}").to_ascii_lowercase();
        if address.len() > 254 {
            return Err(EmailAddressError);
        }
        Ok(EmailAddress(address))
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

    #[test]
    fn addresses_a_mail_service_would_refuse_are_refused_and_idn_is_stored_in_punycode() {
        for bad in [
            "josé@exemple.fr",
            "<a@exemple.fr>",
            "\"a\"@exemple.fr",
            "a,b@exemple.fr",
            "a@exemple.fr,b@exemple.fr",
            "a..b@exemple.fr",
            ".a@exemple.fr",
            "a@-exemple.fr",
            "a@exem ple.fr",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            EmailAddress::parse("Direction@Crèche-Soleil.fr")
                .unwrap()
                .as_str(),
            "direction@xn--crche-soleil-ydb.fr"
        );
        assert_eq!(
            EmailAddress::parse("o'neil+tdb@exemple.fr")
                .unwrap()
                .as_str(),
            "o'neil+tdb@exemple.fr"
        );
    }
}
