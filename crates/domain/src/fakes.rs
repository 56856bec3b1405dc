//! In-memory implementations of the ports, for handler tests, contract tests and benchmarks.
//! Compiled only with the `fakes` feature: production code never contains them.

use crate::accounts::{Account, AccountId, AccountRecord, ImportJob, StructureRecord, TokenRecord};
use crate::campaign::{CampaignYear, QuestionnaireStatus};
use crate::email::EmailAddress;
use crate::finess::Finess;
use crate::geo::Departement;
use crate::ports::*;
use crate::rights::Role;
use std::collections::BTreeMap;
use std::sync::Mutex;

fn page_of<T: Clone>(all: Vec<T>, page: Option<String>, limit: u32) -> Result<Page<T>, StoreError> {
    let start: usize = match page {
        None => 0,
        Some(token) => token.parse().map_err(|_| StoreError::BadPageToken)?,
    };
    let end = (start + limit.max(1) as usize).min(all.len());
    let next = (end < all.len()).then(|| end.to_string());
    Ok(Page {
        items: all.get(start..end).unwrap_or_default().to_vec(),
        next,
    })
}

#[derive(Default)]
pub struct MemoryQuestionnaireStore {
    rows: Mutex<BTreeMap<(CampaignYear, Finess), StoredQuestionnaire>>,
    closures: Mutex<BTreeMap<(CampaignYear, crate::campaign::Platform), crate::workflow::Closure>>,
    /// The trail lines written with `put_audited`.
    pub audit: MemoryAuditLog,
    /// Where `put_audited` checks that a writer still holds its role.
    accounts: Option<std::sync::Arc<MemoryAccountStore>>,
}

impl MemoryQuestionnaireStore {
    /// A store whose guarded writes check roles in `accounts`.
    pub fn guarded_by(accounts: std::sync::Arc<MemoryAccountStore>) -> MemoryQuestionnaireStore {
        MemoryQuestionnaireStore {
            accounts: Some(accounts),
            ..Default::default()
        }
    }
}

impl QuestionnaireStore for MemoryQuestionnaireStore {
    async fn get(
        &self,
        campaign: CampaignYear,
        finess: Finess,
    ) -> Result<Option<StoredQuestionnaire>, StoreError> {
        Ok(self
            .rows
            .lock()
            .expect("lock")
            .get(&(campaign, finess))
            .cloned())
    }

    async fn get_with_previous(
        &self,
        campaign: CampaignYear,
        finess: Finess,
    ) -> Result<Previous, StoreError> {
        let last = CampaignYear::new(campaign.value() - 1).ok();
        Ok(Previous {
            current: self.get(campaign, finess).await?,
            previous: match last {
                Some(last) => self.get(last, finess).await?,
                None => None,
            },
        })
    }

    async fn put_audited(&self, write: AuditedWrite<'_>) -> Result<(), StoreError> {
        if let Some(held) = write.held {
            let accounts = self
                .accounts
                .as_ref()
                .ok_or_else(|| StoreError::Backend("no account store to check roles in".into()))?;
            let holds = accounts
                .account(held.account)
                .await?
                .is_some_and(|a| a.roles.contains(held.role));
            if !holds {
                return Err(StoreError::RoleWithdrawn);
            }
        }
        let q = write.after;
        {
            let mut rows = self.rows.lock().expect("lock");
            let key = (q.campaign, q.respondent.finess);
            let expected = write.before.version;
            let current = rows.get(&key).map_or(0, |r| r.version);
            if current != expected || q.version != expected + 1 {
                return Err(StoreError::Conflict { expected });
            }
            rows.insert(key, q.clone());
        }
        self.audit
            .append(q.campaign, q.respondent.finess, write.entry)
            .await
    }

    async fn opened(
        &self,
        campaign: CampaignYear,
        finess: &[Finess],
    ) -> Result<std::collections::BTreeSet<Finess>, StoreError> {
        let rows = self.rows.lock().expect("lock");
        Ok(finess
            .iter()
            .filter(|f| rows.contains_key(&(campaign, **f)))
            .copied()
            .collect())
    }

    async fn create(&self, qs: &[StoredQuestionnaire]) -> Result<usize, StoreError> {
        let mut rows = self.rows.lock().expect("lock");
        let mut created = 0;
        for q in qs {
            if let std::collections::btree_map::Entry::Vacant(slot) =
                rows.entry((q.campaign, q.respondent.finess))
            {
                slot.insert(q.clone());
                created += 1;
            }
        }
        Ok(created)
    }

    async fn close(
        &self,
        campaign: CampaignYear,
        platform: crate::campaign::Platform,
        closure: &crate::workflow::Closure,
    ) -> Result<bool, StoreError> {
        let mut closures = self.closures.lock().expect("lock");
        if closures.contains_key(&(campaign, platform)) {
            return Ok(false);
        }
        closures.insert((campaign, platform), closure.clone());
        Ok(true)
    }

    async fn closure(
        &self,
        campaign: CampaignYear,
        platform: crate::campaign::Platform,
    ) -> Result<Option<crate::workflow::Closure>, StoreError> {
        Ok(self
            .closures
            .lock()
            .expect("lock")
            .get(&(campaign, platform))
            .cloned())
    }

    async fn scan(
        &self,
        campaign: CampaignYear,
        page: Option<String>,
    ) -> Result<Page<StoredQuestionnaire>, StoreError> {
        let all = self
            .rows
            .lock()
            .expect("lock")
            .values()
            .filter(|q| q.campaign == campaign)
            .cloned()
            .collect();
        page_of(all, page, 100)
    }

    async fn replace_progress(
        &self,
        _campaign: CampaignYear,
        _counts: &BTreeMap<crate::progress::ProgressKey, crate::progress::Counts>,
    ) -> Result<(), StoreError> {
        // This store's counters are a recount of its questionnaires at every read.
        Ok(())
    }

    async fn progress(
        &self,
        campaign: CampaignYear,
    ) -> Result<Vec<(crate::progress::ProgressKey, crate::progress::Counts)>, StoreError> {
        let rows = self.rows.lock().expect("lock");
        Ok(
            crate::progress::recount(rows.values().filter(|q| q.campaign == campaign))
                .into_iter()
                .collect(),
        )
    }

    async fn list_by_og(
        &self,
        campaign: CampaignYear,
        og: Finess,
        page: Option<String>,
        limit: u32,
    ) -> Result<Page<ProgressEntry>, StoreError> {
        let all = self
            .rows
            .lock()
            .expect("lock")
            .values()
            .filter(|q| q.campaign == campaign && q.og == Some(og))
            .map(ProgressEntry::of)
            .collect();
        page_of(all, page, limit)
    }

    async fn list_by_departement(
        &self,
        campaign: CampaignYear,
        departement: Departement,
        status: Option<QuestionnaireStatus>,
        page: Option<String>,
        limit: u32,
    ) -> Result<Page<ProgressEntry>, StoreError> {
        let mut all: Vec<_> = self
            .rows
            .lock()
            .expect("lock")
            .values()
            .filter(|q| {
                q.campaign == campaign
                    && q.departement == departement
                    && status.is_none_or(|s| s == q.status)
            })
            .map(ProgressEntry::of)
            .collect();
        // The same order as the DynamoDB index: by status name, then FINESS.
        all.sort_by(|a, b| (a.status.key(), a.finess).cmp(&(b.status.key(), b.finess)));
        page_of(all, page, limit)
    }
}

#[derive(Default)]
pub struct MemoryAuditLog {
    entries: Mutex<BTreeMap<(CampaignYear, Finess), Vec<AuditEntry>>>,
}

impl AuditLog for MemoryAuditLog {
    async fn append(
        &self,
        campaign: CampaignYear,
        finess: Finess,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut entries = self.entries.lock().expect("lock");
        let list = entries.entry((campaign, finess)).or_default();
        list.push(entry.clone());
        list.sort_by_key(|e| e.at);
        Ok(())
    }

    async fn list(
        &self,
        campaign: CampaignYear,
        finess: Finess,
        page: Option<String>,
        limit: u32,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let mut all = self
            .entries
            .lock()
            .expect("lock")
            .get(&(campaign, finess))
            .cloned()
            .unwrap_or_default();
        all.reverse();
        page_of(all, page, limit)
    }
}

#[derive(Default)]
pub struct MemorySendLog {
    sends: Mutex<BTreeMap<SendKey, (SendOutcome, i64)>>,
}

impl SendLog for MemorySendLog {
    async fn claim(&self, key: &SendKey, now: i64) -> Result<Claim, StoreError> {
        let mut sends = self.sends.lock().expect("lock");
        match sends.get(key).map(|(o, _)| o) {
            Some(SendOutcome::Sent { .. }) => Ok(Claim::Sent),
            Some(SendOutcome::Sending) => Ok(Claim::Sending),
            None | Some(SendOutcome::Failed { .. }) => {
                sends.insert(key.clone(), (SendOutcome::Sending, now));
                Ok(Claim::Claimed)
            }
        }
    }

    async fn settle(
        &self,
        key: &SendKey,
        outcome: &SendOutcome,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut sends = self.sends.lock().expect("lock");
        match sends.get(key) {
            Some((SendOutcome::Sending, _)) => {
                sends.insert(key.clone(), (outcome.clone(), now));
                Ok(())
            }
            _ => Err(StoreError::Conflict { expected: 0 }),
        }
    }

    async fn sends(
        &self,
        campaign: CampaignYear,
        subject: &str,
    ) -> Result<Vec<SendRecord>, StoreError> {
        Ok(self
            .sends
            .lock()
            .expect("lock")
            .iter()
            .filter(|(k, _)| k.campaign == campaign && k.subject == subject)
            .map(|(k, (outcome, at))| SendRecord {
                key: k.clone(),
                outcome: outcome.clone(),
                at: *at,
            })
            .collect())
    }
}

#[derive(Default)]
struct Accounts {
    structures: BTreeMap<Finess, StructureRecord>,
    accounts: BTreeMap<AccountId, Account>,
    roles: BTreeMap<AccountId, Vec<Role>>,
    tokens: BTreeMap<String, TokenRecord>,
    jobs: BTreeMap<String, ImportJob>,
    /// Lock name → (owner, until).
    locks: BTreeMap<String, (String, i64)>,
}

impl Accounts {
    fn record(&self, id: &AccountId) -> Option<AccountRecord> {
        Some(AccountRecord {
            account: self.accounts.get(id)?.clone(),
            roles: self.roles.get(id).cloned().unwrap_or_default(),
        })
    }

    /// The checks an APE role needs before it is written.
    fn check_ape(&self, role: &Role, holder: &AccountId) -> Result<(), StoreError> {
        if let Role::Ape { structure } = role {
            let s = self
                .structures
                .get(structure)
                .ok_or(StoreError::NotFound("structure"))?;
            if s.ape.as_ref().is_some_and(|a| a != holder) {
                return Err(StoreError::Duplicate("ape"));
            }
        }
        Ok(())
    }

    fn set_role(&mut self, id: &AccountId, role: &Role) {
        let roles = self.roles.entry(id.clone()).or_default();
        let on = crate::accounts::role_structure(role);
        let replaced: Vec<Role> = roles
            .iter()
            .filter(|r| on.is_some() && crate::accounts::role_structure(r) == on)
            .copied()
            .collect();
        roles.retain(|r| !replaced.contains(r) && r != role);
        roles.push(*role);
        for r in replaced {
            if let Role::Ape { structure } = r
                && let Some(s) = self.structures.get_mut(&structure)
            {
                s.ape = None;
            }
        }
        if let Role::Ape { structure } = role
            && let Some(s) = self.structures.get_mut(structure)
        {
            s.ape = Some(id.clone());
        }
    }
}

/// Sorts like the DynamoDB indexes: structures without an APE first, then by FINESS.
fn ape_first(mut v: Vec<StructureRecord>) -> Vec<StructureRecord> {
    v.sort_by_key(|s| (s.ape.is_some(), s.finess));
    v
}

#[derive(Default)]
pub struct MemoryAccountStore {
    inner: Mutex<Accounts>,
}

impl AccountStore for MemoryAccountStore {
    async fn structures(&self, finess: &[Finess]) -> Result<Vec<StructureRecord>, StoreError> {
        let inner = self.inner.lock().expect("lock");
        let unique: std::collections::BTreeSet<_> = finess.iter().collect();
        Ok(unique
            .into_iter()
            .filter_map(|f| inner.structures.get(f).cloned())
            .collect())
    }

    async fn create_structures(&self, structures: &[StructureRecord]) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().expect("lock");
        for s in structures {
            inner.structures.insert(
                s.finess,
                StructureRecord {
                    ape: None,
                    ..s.clone()
                },
            );
        }
        Ok(())
    }

    async fn update_structure(&self, structure: &StructureRecord) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().expect("lock");
        let stored = inner
            .structures
            .get_mut(&structure.finess)
            .ok_or(StoreError::NotFound("structure"))?;
        *stored = StructureRecord {
            ape: stored.ape.clone(),
            ..structure.clone()
        };
        Ok(())
    }

    async fn structures_of_departement(
        &self,
        departement: Departement,
    ) -> Result<Vec<StructureRecord>, StoreError> {
        let inner = self.inner.lock().expect("lock");
        Ok(ape_first(
            inner
                .structures
                .values()
                .filter(|s| s.departement() == departement)
                .cloned()
                .collect(),
        ))
    }

    async fn structures_of_og(&self, og: Finess) -> Result<Vec<StructureRecord>, StoreError> {
        let inner = self.inner.lock().expect("lock");
        Ok(ape_first(
            inner
                .structures
                .values()
                .filter(|s| s.og == Some(og))
                .cloned()
                .collect(),
        ))
    }

    async fn account(&self, id: &AccountId) -> Result<Option<AccountRecord>, StoreError> {
        Ok(self.inner.lock().expect("lock").record(id))
    }

    async fn account_by_email(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let inner = self.inner.lock().expect("lock");
        let id = inner
            .accounts
            .values()
            .find(|a| &a.email == email)
            .map(|a| a.id.clone());
        Ok(id.and_then(|id| inner.record(&id)))
    }

    async fn accounts(&self, ids: &[AccountId]) -> Result<Vec<Account>, StoreError> {
        let inner = self.inner.lock().expect("lock");
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        Ok(unique
            .into_iter()
            .filter_map(|id| inner.accounts.get(id).cloned())
            .collect())
    }

    async fn create_account(&self, account: &Account, role: &Role) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().expect("lock");
        if inner.accounts.values().any(|a| a.email == account.email) {
            return Err(StoreError::Duplicate("email"));
        }
        inner.check_ape(role, &account.id)?;
        inner.accounts.insert(account.id.clone(), account.clone());
        inner.set_role(&account.id, role);
        Ok(())
    }

    async fn save_account(&self, account: &Account) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().expect("lock");
        let expected = account.version.saturating_sub(1);
        let stored = inner
            .accounts
            .get_mut(&account.id)
            .ok_or(StoreError::NotFound("account"))?;
        if stored.version != expected {
            return Err(StoreError::Conflict { expected });
        }
        *stored = Account {
            email: stored.email.clone(),
            ..account.clone()
        };
        Ok(())
    }

    async fn grant(&self, id: &AccountId, role: &Role) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().expect("lock");
        if !inner.accounts.contains_key(id) {
            return Err(StoreError::NotFound("account"));
        }
        let on = crate::accounts::role_structure(role);
        let replaces_ape = inner.roles.get(id).is_some_and(|roles| {
            roles.iter().any(|r| {
                matches!(r, Role::Ape { .. })
                    && on.is_some()
                    && crate::accounts::role_structure(r) == on
            })
        });
        if replaces_ape && !matches!(role, Role::Ape { .. }) {
            return Err(StoreError::Conflict { expected: 0 });
        }
        inner.check_ape(role, id)?;
        inner.set_role(id, role);
        Ok(())
    }

    async fn revoke(&self, id: &AccountId, role: &Role) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().expect("lock");
        let roles = inner.roles.entry(id.clone()).or_default();
        if !roles.contains(role) {
            return Err(StoreError::NotFound("role"));
        }
        roles.retain(|r| r != role);
        let now_empty = roles.is_empty();
        if let Role::Ape { structure } = role
            && let Some(s) = inner.structures.get_mut(structure)
        {
            s.ape = None;
        }
        if now_empty {
            inner.roles.remove(id);
            inner.accounts.remove(id);
            inner.tokens.retain(|_, t| &t.account != id);
        }
        Ok(())
    }

    async fn members(&self, structure: Finess) -> Result<Vec<(Account, Role)>, StoreError> {
        let inner = self.inner.lock().expect("lock");
        Ok(inner
            .roles
            .iter()
            .flat_map(|(id, roles)| roles.iter().map(move |r| (id, r)))
            .filter(|(_, r)| crate::accounts::role_structure(r) == Some(structure))
            .filter_map(|(id, r)| Some((inner.accounts.get(id)?.clone(), *r)))
            .collect())
    }

    async fn administrators(
        &self,
        territory: crate::rights::Territory,
    ) -> Result<Vec<(Account, Role)>, StoreError> {
        let inner = self.inner.lock().expect("lock");
        let role = territory.role();
        Ok(inner
            .roles
            .iter()
            .filter(|(_, roles)| roles.contains(&role))
            .filter_map(|(id, _)| Some((inner.accounts.get(id)?.clone(), role)))
            .collect())
    }

    async fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        self.inner
            .lock()
            .expect("lock")
            .tokens
            .insert(token.hash.clone(), token.clone());
        Ok(())
    }

    async fn take_token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.inner.lock().expect("lock").tokens.remove(hash))
    }

    async fn tokens_of(&self, id: &AccountId) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(self
            .inner
            .lock()
            .expect("lock")
            .tokens
            .values()
            .filter(|t| &t.account == id)
            .cloned()
            .collect())
    }

    async fn revoke_tokens(&self, id: &AccountId) -> Result<(), StoreError> {
        self.inner
            .lock()
            .expect("lock")
            .tokens
            .retain(|_, t| &t.account != id);
        Ok(())
    }

    async fn create_job(&self, job: &ImportJob) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().expect("lock");
        if inner.jobs.contains_key(&job.id) {
            return Err(StoreError::Duplicate("job"));
        }
        inner.jobs.insert(job.id.clone(), job.clone());
        Ok(())
    }

    async fn job(&self, id: &str) -> Result<Option<ImportJob>, StoreError> {
        Ok(self.inner.lock().expect("lock").jobs.get(id).cloned())
    }

    async fn save_job(&self, job: &ImportJob) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().expect("lock");
        let expected = job.version.saturating_sub(1);
        match inner.jobs.get_mut(&job.id) {
            Some(stored) if stored.version == expected => {
                *stored = job.clone();
                Ok(())
            }
            Some(_) => Err(StoreError::Conflict { expected }),
            None => Err(StoreError::NotFound("job")),
        }
    }

    async fn lock(
        &self,
        name: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock().expect("lock");
        match inner.locks.get(name) {
            Some((holder, expires)) if holder != owner && *expires > now => Ok(false),
            _ => {
                inner
                    .locks
                    .insert(name.to_string(), (owner.to_string(), until));
                Ok(true)
            }
        }
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().expect("lock");
        if inner
            .locks
            .get(name)
            .is_some_and(|(holder, _)| holder == owner)
        {
            inner.locks.remove(name);
        }
        Ok(())
    }
}

/// Keeps every message it is given.
#[derive(Default)]
pub struct MemoryMailer {
    pub outbox: Mutex<Vec<Email>>,
}

impl Mailer for MemoryMailer {
    async fn send(&self, email: &Email) -> Result<String, MailError> {
        let mut outbox = self.outbox.lock().expect("lock");
        outbox.push(email.clone());
        Ok(format!("memory-{}", outbox.len()))
    }

    async fn max_send_rate(&self) -> Result<f64, MailError> {
        Ok(1000.0)
    }
}

#[derive(Default)]
pub struct MemoryLake {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Lake for MemoryLake {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.objects
            .lock()
            .expect("lock")
            .insert(key.to_string(), bytes);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.objects.lock().expect("lock").get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .objects
            .lock()
            .expect("lock")
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .objects
            .lock()
            .expect("lock")
            .get(key)
            .map(|bytes| bytes.len() as u64))
    }

    /// A `memory:` address: nothing can be uploaded to it; tests `put` the object instead.
    async fn upload_url(
        &self,
        key: &str,
        _expires_in: std::time::Duration,
    ) -> Result<String, StoreError> {
        Ok(format!("memory:{key}"))
    }
}
