//! Accounts (the Plage part, domain §6): the structures of the referential as the account
//! platform keeps them, people and the roles they hold, and the rules for passwords and for
//! repeated login failures. Storage is behind `ports::AccountStore`; hashing, signing and
//! randomness happen in the functions, which pass their results in.

use crate::category::RespondentKind;
use crate::email::EmailAddress;
use crate::finess::Finess;
use crate::geo::Departement;
use crate::rights::{Role, StructureKind, StructureTarget};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The opaque identifier of an account: 128 random bits in hex. Tokens and audit trails
/// carry it instead of a name or an e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an account id (32 lowercase hexadecimal digits)")]
pub struct AccountIdError;

impl AccountId {
    /// Builds an id from random bytes the caller drew from the operating system.
    pub fn from_random(bytes: [u8; 16]) -> AccountId {
        AccountId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn parse(s: &str) -> Result<AccountId, AccountIdError> {
        let ok = s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok {
            Ok(AccountId(s.to_string()))
        } else {
            Err(AccountIdError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = AccountIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        AccountId::parse(&s)
    }
}

impl From<AccountId> for String {
    fn from(id: AccountId) -> String {
        id.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a person is, as the APE or the ARS entered it. Personal data: never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub last_name: String,
    pub first_name: String,
    pub phone: Option<String>,
}

impl fmt::Debug for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Person(<redacted>)")
    }
}

/// One person's account: one login, whatever the number of structures they act for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub email: EmailAddress,
    pub person: Person,
    /// The PHC string of an argon2id hash; `None` until the person chose a password.
    pub password_hash: Option<String>,
    /// Consecutive failed logins since the last success.
    pub failed_logins: u32,
    /// Unix seconds before which no login is attempted.
    pub locked_until: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Incremented by each save: two concurrent logins cannot lose a failure count.
    pub version: u64,
    /// Raised when every session must end (a new password): a refresh token started under
    /// an older epoch is refused, including one written while the password was changing.
    #[serde(default)]
    pub sessions_epoch: u64,
    /// When the last activation or reset link was e-mailed (Unix seconds): links are sent
    /// again only after a cooldown, and the claim is a conditional write, so concurrent
    /// requests send one e-mail.
    #[serde(default)]
    pub link_sent_at: Option<i64>,
    /// Set when SES reported that mail to the address bounced for good or that its owner
    /// complained: reminders stop going to it, and the structures left without a reachable
    /// address show in their ARS's view. Cleared when a link e-mailed to it is used.
    #[serde(default)]
    pub undeliverable: Option<Undeliverable>,
}

/// Why mail to an address stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undeliverable {
    pub reason: UndeliverableReason,
    /// Unix seconds of SES's notification.
    pub at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UndeliverableReason {
    /// A permanent bounce: the address does not exist or refuses mail.
    Bounce,
    /// The recipient marked a message as spam.
    Complaint,
}

impl UndeliverableReason {
    pub fn key(self) -> &'static str {
        match self {
            UndeliverableReason::Bounce => "bounce",
            UndeliverableReason::Complaint => "complaint",
        }
    }
}

impl Account {
    /// A new account: no password yet, no failed login, version 1.
    pub fn new(id: AccountId, email: EmailAddress, person: Person, created_at: i64) -> Account {
        Account {
            id,
            email,
            person,
            password_hash: None,
            failed_logins: 0,
            locked_until: None,
            created_at,
            version: 1,
            sessions_epoch: 0,
            link_sent_at: None,
            undeliverable: None,
        }
    }

    /// Whether the person chose a password (through the activation link).
    pub fn is_active(&self) -> bool {
        self.password_hash.is_some()
    }

    /// Whether reminders go to this person: an active account whose address SES has not
    /// reported as bouncing or complaining.
    pub fn receives_reminders(&self) -> bool {
        self.is_active() && self.undeliverable.is_none()
    }
}

/// An account with every role it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRecord {
    pub account: Account,
    pub roles: Vec<Role>,
}

/// The structure a role is held on, if any (territorial roles have none).
pub fn role_structure(role: &Role) -> Option<Finess> {
    match role {
        Role::Ape { structure } | Role::Member { structure, .. } => Some(*structure),
        Role::NationalAdmin | Role::RegionalAdmin { .. } | Role::DepartementalAdmin { .. } => None,
    }
}

/// A structure as the account platform keeps it: what the referential import wrote, and the
/// account of its APE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StructureRecord {
    pub finess: Finess,
    pub kind: RespondentKind,
    pub name: String,
    /// The FINESS juridique; an OG's is its own.
    pub legal_entity: Finess,
    /// For an ESMS: its legal entity, when that entity counts as an OG (manages ≥ 2 FINESS).
    pub og: Option<Finess>,
    /// For a secondary establishment: the principal its data go into. A secondary has no
    /// questionnaire and no APE.
    pub principal: Option<Finess>,
    pub ape: Option<AccountId>,
}

impl StructureRecord {
    pub fn departement(&self) -> Departement {
        self.finess.departement()
    }

    /// What the rights decision needs to know of this structure.
    pub fn target(&self) -> StructureTarget {
        StructureTarget {
            finess: self.finess,
            kind: match self.kind {
                RespondentKind::Og => StructureKind::Og,
                RespondentKind::Esms(_) => StructureKind::Esms,
            },
            departement: self.departement(),
            managing_og: self.og,
        }
    }

    /// The structures of a referential as the account platform keeps them: every
    /// establishment, and every legal entity that counts as an OG. No APE yet.
    pub fn from_referential(referential: &crate::Referential) -> Vec<StructureRecord> {
        let ogs = referential.ogs().map(|og| StructureRecord {
            finess: og.finess,
            kind: RespondentKind::Og,
            name: og.name.clone(),
            legal_entity: og.finess,
            og: None,
            principal: None,
            ape: None,
        });
        let establishments = referential.establishments().map(|e| StructureRecord {
            finess: e.finess,
            kind: RespondentKind::Esms(e.category),
            name: e.name.clone(),
            legal_entity: e.legal_entity,
            og: referential.og_of(&e.finess).map(|og| og.finess),
            principal: e.principal,
            ape: None,
        });
        ogs.chain(establishments).collect()
    }

    /// Whether the referential data (everything but the APE link) differ.
    pub fn same_referential_data(&self, other: &StructureRecord) -> bool {
        StructureRecord {
            ape: None,
            ..self.clone()
        } == StructureRecord {
            ape: None,
            ..other.clone()
        }
    }
}

/// What a single-use or refresh token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenPurpose {
    /// First password of a new account.
    Activation,
    /// A forgotten password.
    PasswordReset,
    /// A refresh token: exchanged for a new access token and a new refresh token.
    Refresh,
}

/// A token as stored: only the SHA-256 of the secret the user holds, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Hex SHA-256 of the token.
    pub hash: String,
    pub purpose: TokenPurpose,
    pub account: AccountId,
    /// Unix seconds.
    pub expires_at: i64,
    /// For refresh tokens: the structure the user chose to act for, if any.
    pub acting_for: Option<Finess>,
    /// For refresh tokens: the account's sessions epoch when the session began.
    #[serde(default)]
    pub epoch: u64,
    /// For refresh tokens: when the session began (the login), in Unix seconds, kept
    /// through every rotation so that a session has an absolute maximum age.
    #[serde(default)]
    pub session_started: i64,
}

/// Password rules. Current guidance (ANSSI, NIST SP 800-63B) favours length over
/// composition rules and rejects known-weak passwords; no forced periodic change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    pub max_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        // 12 characters: ANSSI's recommendation for a password alone; 128 keeps argon2's
        // input bounded.
        PasswordPolicy {
            min_chars: 12,
            max_chars: 128,
        }
    }
}

/// Why a password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must have at least {0} characters")]
    TooShort(usize),
    #[error("the password must have at most {0} characters")]
    TooLong(usize),
    #[error("the password is too common or too easy to guess")]
    Weak,
    #[error("the password must not contain the e-mail address")]
    ContainsEmail,
}

/// Frequent passwords and the words they are built from (French and English), compared
/// after lowercasing and removing digits and punctuation around them.
const WEAK: &[&str] = &[
    "password",
    "motdepasse",
    "azerty",
    "azertyuiop",
    "qwerty",
    "qwertyuiop",
    "soleil",
    "bonjour",
    "doudou",
    "chouchou",
    "loulou",
    "marseille",
    "paris",
    "france",
    "admin",
    "administrateur",
    "welcome",
    "bienvenue",
    "iloveyou",
    "jetaime",
    "changeme",
    "secret",
    "letmein",
    "dragon",
    "football",
    "princesse",
    "nicolas",
    "camille",
    "tableaudebord",
    "ehpad",
    "esms",
    "atih",
    "plage",
];

impl PasswordPolicy {
    pub fn check(&self, password: &str, email: &EmailAddress) -> Result<(), PasswordError> {
        let chars = password.chars().count();
        if chars < self.min_chars {
            return Err(PasswordError::TooShort(self.min_chars));
        }
        if chars > self.max_chars {
            return Err(PasswordError::TooLong(self.max_chars));
        }
        let lower = password.to_lowercase();
        let local = email.as_str().split('@').next().unwrap_or_default();
        if local.len() >= 4 && lower.contains(local) {
            return Err(PasswordError::ContainsEmail);
        }
        let core: String = lower.chars().filter(|c| c.is_alphabetic()).collect();
        let distinct = {
            let mut seen: Vec<char> = lower.chars().collect();
            seen.sort_unstable();
            seen.dedup();
            seen.len()
        };
        let repeated_word = WEAK.iter().any(|w| {
            !core.is_empty()
                && core.len().is_multiple_of(w.len())
                && core == w.repeat(core.len() / w.len())
        });
        if distinct <= 3 || repeated_word || is_sequence(&lower) {
            return Err(PasswordError::Weak);
        }
        Ok(())
    }
}

/// `123456789012`, `abcdefghijkl`, `987654321098`: each character next to the previous one,
/// digits wrapping from 9 to 0.
fn is_sequence(s: &str) -> bool {
    let next = |a: char, b: char| u32::from(b) == u32::from(a) + 1 || (a == '9' && b == '0');
    let chars: Vec<char> = s.chars().collect();
    chars.windows(2).all(|w| next(w[0], w[1])) || chars.windows(2).all(|w| next(w[1], w[0]))
}

/// What repeated login failures do: a growing pause first, then a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    /// Failures allowed without any pause.
    pub free_failures: u32,
    /// From this many consecutive failures the account is locked for `lock_seconds`.
    pub lock_after: u32,
    pub lock_seconds: i64,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            free_failures: 3,
            lock_after: 10,
            lock_seconds: 15 * 60,
        }
    }
}

impl LoginThrottle {
    /// Until when logins are refused after the `failures`-th consecutive failure at `now`.
    pub fn locked_until(&self, failures: u32, now: i64) -> Option<i64> {
        if failures >= self.lock_after {
            Some(now + self.lock_seconds)
        } else if failures > self.free_failures {
            // 2, 4, 8 ... seconds: slows a guesser down without bothering a person.
            Some(now + (1i64 << (failures - self.free_failures).min(10)))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> EmailAddress {
        EmailAddress::parse("direction.ehpad@example.fr").unwrap()
    }

    #[test]
    fn long_passphrases_pass_and_short_or_common_ones_do_not() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.check("cheval agrafe pile correcte", &email()),
            Ok(())
        );
        assert_eq!(
            policy.check("Tr0ub4dor&3", &email()),
            Err(PasswordError::TooShort(12))
        );
        assert_eq!(
            policy.check("motdepassemotdepasse", &email()),
            Err(PasswordError::Weak)
        );
        assert_eq!(
            policy.check("Azerty123456!!", &email()),
            Err(PasswordError::Weak)
        );
        assert_eq!(
            policy.check("aaaaaaaaaaaaaaaa", &email()),
            Err(PasswordError::Weak)
        );
        assert_eq!(
            policy.check("123456789012", &email()),
            Err(PasswordError::Weak)
        );
        assert_eq!(
            policy.check("Direction.Ehpad-2025", &email()),
            Err(PasswordError::ContainsEmail)
        );
        assert_eq!(
            policy.check(&"x1y2".repeat(40), &email()),
            Err(PasswordError::TooLong(128))
        );
    }

    #[test]
    fn failures_first_slow_down_then_lock() {
        let t = LoginThrottle::default();
        assert_eq!(t.locked_until(1, 1000), None);
        assert_eq!(t.locked_until(3, 1000), None);
        assert_eq!(t.locked_until(4, 1000), Some(1002));
        assert_eq!(t.locked_until(5, 1000), Some(1004));
        assert_eq!(t.locked_until(10, 1000), Some(1000 + 900));
    }

    #[test]
    fn account_ids_are_hex_of_random_bytes() {
        let id = AccountId::from_random([0xab; 16]);
        assert_eq!(id.as_str().len(), 32);
        assert_eq!(AccountId::parse(id.as_str()), Ok(id));
        assert!(AccountId::parse("not-an-id").is_err());
    }
}

/// Where an import job stands. A job waits for its file, is queued while another import
/// holds the referential, runs, and ends done (with a summary) or failed (with a reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    AwaitingUpload,
    Queued,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    /// Done or failed: nothing more happens to the job.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Failed)
    }
}

/// The import of a file too large for a request: uploaded to the lake bucket under the
/// job's key, then processed in the background while its creator polls the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportJob {
    /// 128 random bits in hex; also the name of the uploaded object.
    pub id: String,
    pub status: JobStatus,
    /// Checked and summarised, nothing written.
    pub dry_run: bool,
    pub created_by: AccountId,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// The import's summary, once done.
    pub summary: Option<serde_json::Value>,
    /// Why the job failed, in words for the administrator (never personal data).
    pub error: Option<String>,
    /// Incremented by each write: two workers never both claim a job.
    pub version: u64,
}
