//! DynamoDB adapter of the account store, over the accounts table (docs/data-model.md):
//!
//! | item | pk | sk | gsi1 | gsi2 (by-og) |
//! |---|---|---|---|---|
//! | structure | `S#<finess>` | `STRUCTURE` | `DEP#<dep>` / `<0 no APE, 1 APE>#<finess>` | `OG#<og>` / same |
//! | account | `A#<id>` | `ACCOUNT` | | |
//! | role | `A#<id>` | `ROLE#S#<finess>`, `ROLE#NATIONAL`, `ROLE#REGION#<r>`, `ROLE#DEP#<d>` | `MEMBERS#<finess>` or `ADMINS#REGION#<r>` / `ADMINS#DEP#<d>` / `<id>` | |
//! | e-mail | `E#<email>` | `EMAIL` | | |
//! | token | `T#<sha256>` | `TOKEN` | `TOKENS#<id>` / `<sha256>` | |
//! | import job | `J#<id>` | `JOB` | | |
//! | lock | `L#<name>` | `LOCK` | | |
//!
//! One query on `A#<id>` reads an account with all its roles (login). The e-mail item makes
//! addresses unique through a conditional write in the same transaction as the account.

use crate::backend;
use crate::item::{
    Item, batch_get, batch_write_once, corrupt, get_n, get_s, n, opt_s, put_request, query_all, s,
    transaction_error, write_all,
};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Delete, Put, ReturnValue, TransactWriteItem, Update};
use tdb_domain::accounts::{
    Account, AccountId, AccountRecord, ImportJob, StructureRecord, TokenRecord, role_structure,
};
use tdb_domain::email::EmailAddress;
use tdb_domain::ports::{AccountStore, StoreError};
use tdb_domain::rights::{Role, Territory};
use tdb_domain::{Departement, Finess};

/// The accounts table.
#[derive(Clone)]
pub struct AccountsTable {
    client: Client,
    table: String,
}

impl AccountsTable {
    pub fn new(client: Client, table: impl Into<String>) -> AccountsTable {
        AccountsTable {
            client,
            table: table.into(),
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }
}

fn structure_pk(f: Finess) -> String {
    format!("S#{f}")
}

pub(crate) fn account_pk(id: &AccountId) -> String {
    format!("A#{id}")
}

fn email_pk(e: &EmailAddress) -> String {
    format!("E#{}", e.as_str())
}

fn job_pk(id: &str) -> String {
    format!("J#{id}")
}

fn lock_pk(name: &str) -> String {
    format!("L#{name}")
}

/// How long a finished import job is kept, in seconds (DynamoDB's TTL removes it).
const JOB_RETENTION: i64 = 90 * 24 * 3600;

fn conditional_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    e.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

fn token_pk(hash: &str) -> String {
    format!("T#{hash}")
}

pub(crate) fn role_sk(role: &Role) -> String {
    match role {
        Role::NationalAdmin => "ROLE#NATIONAL".into(),
        Role::RegionalAdmin { region } => format!("ROLE#REGION#{}", region.code()),
        Role::DepartementalAdmin { departement } => format!("ROLE#DEP#{departement}"),
        Role::Ape { structure } | Role::Member { structure, .. } => format!("ROLE#S#{structure}"),
    }
}

/// The sort key that lists structures without an APE first.
fn listing_sk(f: Finess, has_ape: bool) -> String {
    format!("{}#{f}", u8::from(has_ape))
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(corrupt)
}

fn structure_item(st: &StructureRecord) -> Result<Item, StoreError> {
    let sk = listing_sk(st.finess, st.ape.is_some());
    let mut item = Item::from([
        ("pk".into(), s(structure_pk(st.finess))),
        ("sk".into(), s("STRUCTURE")),
        ("gsi1pk".into(), s(format!("DEP#{}", st.departement()))),
        ("gsi1sk".into(), s(&sk)),
        ("gsi2sk".into(), s(sk)),
        (
            "record".into(),
            s(json(&StructureRecord {
                ape: None,
                ..st.clone()
            })?),
        ),
    ]);
    if let Some(og) = st.og {
        item.insert("gsi2pk".into(), s(format!("OG#{og}")));
    }
    if let Some(ape) = &st.ape {
        item.insert("ape".into(), s(ape.as_str()));
    }
    Ok(item)
}

fn structure_of(item: &Item) -> Result<StructureRecord, StoreError> {
    let record: StructureRecord = serde_json::from_str(get_s(item, "record")?).map_err(corrupt)?;
    Ok(StructureRecord {
        ape: opt_s(item, "ape")
            .map(AccountId::parse)
            .transpose()
            .map_err(corrupt)?,
        ..record
    })
}

fn account_of(item: &Item) -> Result<Account, StoreError> {
    serde_json::from_str(get_s(item, "account")?).map_err(corrupt)
}

/// The attribute of the account item that counts changes to its set of roles.
const ROLES_REV: &str = "roles_rev";

/// The condition that the roles revision is still `seen`. Accounts written before the
/// revision existed have none, which reads as 0.
fn rev_condition(seen: u64) -> &'static str {
    if seen == 0 {
        "attribute_exists(pk) AND (attribute_not_exists(#rev) OR #rev = :seen)"
    } else {
        "#rev = :seen"
    }
}

/// Raises the account's roles revision if it is still `seen`; fails its condition otherwise
/// (a concurrent grant or revoke, or a deleted account).
fn bump_roles_rev(table: &str, id: &AccountId, seen: u64) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name(table)
                .key("pk", s(account_pk(id)))
                .key("sk", s("ACCOUNT"))
                .update_expression("SET #rev = :next")
                .condition_expression(rev_condition(seen))
                .expression_attribute_names("#rev", ROLES_REV)
                .expression_attribute_values(":seen", n(seen))
                .expression_attribute_values(":next", n(seen + 1))
                .build()
                .map_err(backend)?,
        )
        .build())
}

fn token_of(item: &Item) -> Result<TokenRecord, StoreError> {
    serde_json::from_str(get_s(item, "token")?).map_err(corrupt)
}

/// The listing of a territory's administrators.
fn admins_pk(territory: Territory) -> String {
    match territory {
        Territory::Region(r) => format!("ADMINS#REGION#{}", r.code()),
        Territory::Departement(d) => format!("ADMINS#DEP#{d}"),
    }
}

fn role_item(id: &AccountId, role: &Role) -> Result<Item, StoreError> {
    let mut item = Item::from([
        ("pk".into(), s(account_pk(id))),
        ("sk".into(), s(role_sk(role))),
        ("role".into(), s(json(role)?)),
    ]);
    let listing = match (role_structure(role), Territory::of(role)) {
        (Some(f), _) => Some(format!("MEMBERS#{f}")),
        (None, Some(territory)) => Some(admins_pk(territory)),
        (None, None) => None,
    };
    if let Some(pk) = listing {
        item.insert("gsi1pk".into(), s(pk));
        item.insert("gsi1sk".into(), s(id.as_str()));
    }
    Ok(item)
}

fn put(table: &str, item: Item, condition: Option<&str>) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .set_condition_expression(condition.map(str::to_string))
                .build()
                .map_err(backend)?,
        )
        .build())
}

fn delete(table: &str, pk: String, sk: &str) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder()
        .delete(
            Delete::builder()
                .table_name(table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .build()
                .map_err(backend)?,
        )
        .build())
}

/// Links a structure to its APE (or unlinks it), keeping both listing sort keys in step.
/// Fails its condition when the structure is missing or held by another APE.
fn set_ape(
    table: &str,
    f: Finess,
    ape: Option<&AccountId>,
    previous: &AccountId,
) -> Result<TransactWriteItem, StoreError> {
    let sk = listing_sk(f, ape.is_some());
    let update = Update::builder()
        .table_name(table)
        .key("pk", s(structure_pk(f)))
        .key("sk", s("STRUCTURE"))
        .expression_attribute_values(":sk", s(sk))
        .expression_attribute_values(":me", s(previous.as_str()));
    let update = match ape {
        Some(id) => update
            .update_expression("SET ape = :ape, gsi1sk = :sk, gsi2sk = :sk")
            .expression_attribute_values(":ape", s(id.as_str()))
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(ape) OR ape = :me)",
            ),
        None => update
            .update_expression("REMOVE ape SET gsi1sk = :sk, gsi2sk = :sk")
            .condition_expression("attribute_exists(pk) AND ape = :me"),
    };
    Ok(TransactWriteItem::builder()
        .update(update.build().map_err(backend)?)
        .build())
}

/// Which operations of a cancelled transaction failed their condition.
fn failed_conditions(e: &SdkError<TransactWriteItemsError>) -> Option<Vec<bool>> {
    match e.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(c) => Some(
            c.cancellation_reasons()
                .iter()
                .map(|r| r.code() == Some("ConditionalCheckFailed"))
                .collect(),
        ),
        _ => None,
    }
}

impl AccountsTable {
    async fn transact(
        &self,
        ops: Vec<TransactWriteItem>,
    ) -> Result<(), SdkError<TransactWriteItemsError>> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(ops))
            .send()
            .await
            .map(|_| ())
    }

    /// An account with its roles, read consistently in one query, and the revision of its
    /// set of roles: every grant and revoke is conditioned on the revision it read and raises
    /// it, so a revoke that deletes a "last" role cannot race a grant of another.
    async fn account_and_roles_rev(
        &self,
        id: &AccountId,
    ) -> Result<Option<(AccountRecord, u64)>, StoreError> {
        let items = self.query_all(None, "pk", account_pk(id)).await?;
        let mut account = None;
        let mut roles = Vec::new();
        for item in &items {
            match get_s(item, "sk")? {
                "ACCOUNT" => {
                    let rev = match item.get(ROLES_REV) {
                        None => 0,
                        Some(_) => get_n(item, ROLES_REV)?,
                    };
                    account = Some((account_of(item)?, rev));
                }
                _ => roles.push(serde_json::from_str(get_s(item, "role")?).map_err(corrupt)?),
            }
        }
        Ok(account.map(|(account, rev)| (AccountRecord { account, roles }, rev)))
    }

    /// Why an APE link could not be written: the structure is missing or taken.
    async fn ape_refusal(&self, f: Finess) -> StoreError {
        match self.structures(&[f]).await {
            Ok(found) if found.is_empty() => StoreError::NotFound("structure"),
            Ok(_) => StoreError::Duplicate("ape"),
            Err(e) => e,
        }
    }

    async fn query_all(
        &self,
        index: Option<&str>,
        key: &str,
        value: String,
    ) -> Result<Vec<Item>, StoreError> {
        query_all(
            self.client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_string))
                .key_condition_expression(format!("{key} = :v"))
                .expression_attribute_values(":v", s(&value))
                .set_consistent_read(index.is_none().then_some(true)),
        )
        .await
    }

    /// The accounts whose role items a listing of the `gsi1` index names, with those roles.
    async fn holders(&self, listing: String) -> Result<Vec<(Account, Role)>, StoreError> {
        let role_items = self.query_all(Some("gsi1"), "gsi1pk", listing).await?;
        let keys = role_items
            .iter()
            .map(|i| Ok((get_s(i, "pk")?.to_string(), "ACCOUNT")))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let accounts = batch_get(&self.client, &self.table, keys, None).await?;
        let mut members = Vec::new();
        for item in &role_items {
            let role: Role = serde_json::from_str(get_s(item, "role")?).map_err(corrupt)?;
            let pk = get_s(item, "pk")?;
            if let Some(account) = accounts.iter().find(|a| get_s(a, "pk").ok() == Some(pk)) {
                members.push((account_of(account)?, role));
            }
        }
        members.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        Ok(members)
    }
}

impl AccountStore for AccountsTable {
    async fn structures(&self, finess: &[Finess]) -> Result<Vec<StructureRecord>, StoreError> {
        let keys = finess
            .iter()
            .map(|f| (structure_pk(*f), "STRUCTURE"))
            .collect();
        batch_get(&self.client, &self.table, keys, None)
            .await?
            .iter()
            .map(structure_of)
            .collect()
    }

    async fn create_structures(&self, structures: &[StructureRecord]) -> Result<(), StoreError> {
        let requests = structures
            .iter()
            .map(|st| {
                put_request(structure_item(&StructureRecord {
                    ape: None,
                    ..st.clone()
                })?)
            })
            .collect::<Result<_, _>>()?;
        write_all(requests, |batch| {
            batch_write_once(&self.client, &self.table, batch)
        })
        .await
    }

    async fn update_structure(&self, st: &StructureRecord) -> Result<(), StoreError> {
        // Only the referential data: the APE link and the listing sort keys that depend on
        // it stay as they are.
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(structure_pk(st.finess)))
            .key("sk", s("STRUCTURE"))
            .expression_attribute_values(
                ":record",
                s(json(&StructureRecord {
                    ape: None,
                    ..st.clone()
                })?),
            )
            .condition_expression("attribute_exists(pk)");
        update = match st.og {
            Some(og) => update
                .update_expression("SET #record = :record, gsi2pk = :og")
                .expression_attribute_values(":og", s(format!("OG#{og}"))),
            None => update.update_expression("SET #record = :record REMOVE gsi2pk"),
        };
        match update
            .expression_attribute_names("#record", "record")
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::NotFound("structure"))
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn structures_of_departement(
        &self,
        departement: Departement,
    ) -> Result<Vec<StructureRecord>, StoreError> {
        self.query_all(Some("gsi1"), "gsi1pk", format!("DEP#{departement}"))
            .await?
            .iter()
            .map(structure_of)
            .collect()
    }

    async fn structures_of_og(&self, og: Finess) -> Result<Vec<StructureRecord>, StoreError> {
        self.query_all(Some("by-og"), "gsi2pk", format!("OG#{og}"))
            .await?
            .iter()
            .map(structure_of)
            .collect()
    }

    async fn account(&self, id: &AccountId) -> Result<Option<AccountRecord>, StoreError> {
        Ok(self
            .account_and_roles_rev(id)
            .await?
            .map(|(record, _)| record))
    }

    async fn account_by_email(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(email_pk(email)))
            .key("sk", s("EMAIL"))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        match out.item() {
            None => Ok(None),
            Some(item) => {
                let id = AccountId::parse(get_s(item, "account")?).map_err(corrupt)?;
                self.account(&id).await
            }
        }
    }

    async fn accounts(&self, ids: &[AccountId]) -> Result<Vec<Account>, StoreError> {
        let keys = ids.iter().map(|id| (account_pk(id), "ACCOUNT")).collect();
        batch_get(&self.client, &self.table, keys, None)
            .await?
            .iter()
            .map(account_of)
            .collect()
    }

    async fn create_account(&self, account: &Account, role: &Role) -> Result<(), StoreError> {
        let t = &self.table;
        let mut ops = vec![
            put(
                t,
                Item::from([
                    ("pk".into(), s(email_pk(&account.email))),
                    ("sk".into(), s("EMAIL")),
                    ("account".into(), s(account.id.as_str())),
                ]),
                Some("attribute_not_exists(pk)"),
            )?,
            put(
                t,
                Item::from([
                    ("pk".into(), s(account_pk(&account.id))),
                    ("sk".into(), s("ACCOUNT")),
                    ("account".into(), s(json(account)?)),
                    ("version".into(), n(account.version)),
                    (ROLES_REV.into(), n(0)),
                ]),
                Some("attribute_not_exists(pk)"),
            )?,
            put(t, role_item(&account.id, role)?, None)?,
        ];
        if let Role::Ape { structure } = role {
            ops.push(set_ape(t, *structure, Some(&account.id), &account.id)?);
        }
        match self.transact(ops).await {
            Ok(()) => Ok(()),
            Err(e) => match failed_conditions(&e).as_deref() {
                Some([true, ..]) => Err(StoreError::Duplicate("email")),
                Some([_, _, _, true]) => {
                    Err(self.ape_refusal(role_structure(role).expect("ape")).await)
                }
                _ => Err(transaction_error(e)),
            },
        }
    }

    async fn save_account(&self, account: &Account) -> Result<(), StoreError> {
        let expected = account.version.saturating_sub(1);
        let stored = self
            .account(&account.id)
            .await?
            .ok_or(StoreError::NotFound("account"))?;
        // The e-mail address is the key of the uniqueness item: it never changes here.
        let account = Account {
            email: stored.account.email,
            ..account.clone()
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(account_pk(&account.id)))
            .key("sk", s("ACCOUNT"))
            .update_expression("SET #account = :account, version = :version")
            .condition_expression("version = :expected")
            .expression_attribute_names("#account", "account")
            .expression_attribute_values(":account", s(json(&account)?))
            .expression_attribute_values(":version", n(account.version))
            .expression_attribute_values(":expected", n(expected))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict { expected })
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn grant(&self, id: &AccountId, role: &Role) -> Result<(), StoreError> {
        let t = &self.table;
        let (current, rev) = self
            .account_and_roles_rev(id)
            .await?
            .ok_or(StoreError::NotFound("account"))?;
        if current.roles.contains(role) {
            return Ok(());
        }
        // Roles on one structure share a sort key: the put replaces the previous one. The
        // structure's APE link follows in the same transaction.
        let on = role_structure(role);
        let replaced = current
            .roles
            .iter()
            .find(|r| on.is_some() && role_structure(r) == on);
        // An APE stays APE until its APE role is revoked: a profile written over it (a
        // request that read the account before the appointment) would leave the structure
        // without its APE.
        if matches!(replaced, Some(Role::Ape { .. })) && !matches!(role, Role::Ape { .. }) {
            return Err(StoreError::Conflict { expected: rev });
        }
        let mut ops = vec![
            bump_roles_rev(t, id, rev)?,
            put(t, role_item(id, role)?, None)?,
        ];
        match (replaced, role) {
            (_, Role::Ape { structure }) => ops.push(set_ape(t, *structure, Some(id), id)?),
            (Some(Role::Ape { structure }), _) => ops.push(set_ape(t, *structure, None, id)?),
            _ => {}
        }
        match self.transact(ops).await {
            Ok(()) => Ok(()),
            Err(e) => match failed_conditions(&e).as_deref() {
                // The account was deleted, or its roles changed, since it was read.
                Some([true, ..]) => match self.account(id).await? {
                    None => Err(StoreError::NotFound("account")),
                    Some(_) => Err(StoreError::Conflict { expected: rev }),
                },
                Some([_, _, true]) => match role {
                    Role::Ape { structure } => Err(self.ape_refusal(*structure).await),
                    _ => Err(StoreError::Conflict { expected: rev }),
                },
                _ => Err(transaction_error(e)),
            },
        }
    }

    async fn revoke(&self, id: &AccountId, role: &Role) -> Result<(), StoreError> {
        let t = &self.table;
        let (current, rev) = self
            .account_and_roles_rev(id)
            .await?
            .ok_or(StoreError::NotFound("role"))?;
        if !current.roles.contains(role) {
            return Err(StoreError::NotFound("role"));
        }
        let mut ops = vec![delete(t, account_pk(id), &role_sk(role))?];
        if let Role::Ape { structure } = role {
            ops.push(set_ape(t, *structure, None, id)?);
        }
        let last = current.roles.len() == 1;
        if last {
            // Deleted only if no role was granted since the read: otherwise the new role and
            // its structure's APE link would point at a deleted account.
            ops.push(
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(t)
                            .key("pk", s(account_pk(id)))
                            .key("sk", s("ACCOUNT"))
                            .condition_expression(rev_condition(rev))
                            .expression_attribute_names("#rev", ROLES_REV)
                            .expression_attribute_values(":seen", n(rev))
                            .build()
                            .map_err(backend)?,
                    )
                    .build(),
            );
            ops.push(delete(t, email_pk(&current.account.email), "EMAIL")?);
        } else {
            ops.push(bump_roles_rev(t, id, rev)?);
        }
        self.transact(ops).await.map_err(transaction_error)?;
        if last {
            self.revoke_tokens(id).await?;
        }
        Ok(())
    }

    async fn members(&self, structure: Finess) -> Result<Vec<(Account, Role)>, StoreError> {
        self.holders(format!("MEMBERS#{structure}")).await
    }

    async fn administrators(
        &self,
        territory: Territory,
    ) -> Result<Vec<(Account, Role)>, StoreError> {
        self.holders(admins_pk(territory)).await
    }

    async fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(token_pk(&token.hash)))
            .item("sk", s("TOKEN"))
            .item("token", s(json(token)?))
            // DynamoDB's TTL removes expired tokens eventually; readers check the expiry.
            .item("expires_at", n(token.expires_at))
            .item("gsi1pk", s(format!("TOKENS#{}", token.account)))
            .item("gsi1sk", s(&token.hash))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn take_token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(token_pk(hash)))
            .key("sk", s("TOKEN"))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(backend)?;
        out.attributes().map(token_of).transpose()
    }

    async fn tokens_of(&self, id: &AccountId) -> Result<Vec<TokenRecord>, StoreError> {
        self.query_all(Some("gsi1"), "gsi1pk", format!("TOKENS#{id}"))
            .await?
            .iter()
            .map(token_of)
            .collect()
    }

    async fn revoke_tokens(&self, id: &AccountId) -> Result<(), StoreError> {
        let items = self
            .query_all(Some("gsi1"), "gsi1pk", format!("TOKENS#{id}"))
            .await?;
        for item in items {
            self.take_token(get_s(&item, "gsi1sk")?).await?;
        }
        Ok(())
    }

    async fn create_job(&self, job: &ImportJob) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(job_pk(&job.id)))
            .item("sk", s("JOB"))
            .item("job", s(json(job)?))
            .item("version", n(job.version))
            .item("expires_at", n(job.created_at + JOB_RETENTION))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if conditional_failed(&e) => Err(StoreError::Duplicate("job")),
            Err(e) => Err(backend(e)),
        }
    }

    async fn job(&self, id: &str) -> Result<Option<ImportJob>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("JOB"))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        out.item()
            .map(|item| serde_json::from_str(get_s(item, "job")?).map_err(corrupt))
            .transpose()
    }

    async fn save_job(&self, job: &ImportJob) -> Result<(), StoreError> {
        let expected = job.version.saturating_sub(1);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(&job.id)))
            .key("sk", s("JOB"))
            .update_expression("SET #job = :job, version = :version")
            .condition_expression("version = :expected")
            .expression_attribute_names("#job", "job")
            .expression_attribute_values(":job", s(json(job)?))
            .expression_attribute_values(":version", n(job.version))
            .expression_attribute_values(":expected", n(expected))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if conditional_failed(&e) => Err(StoreError::Conflict { expected }),
            Err(e) => Err(backend(e)),
        }
    }

    async fn lock(
        &self,
        name: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(lock_pk(name)))
            .item("sk", s("LOCK"))
            .item("owner", s(owner))
            .item("until", n(until))
            .condition_expression("attribute_not_exists(pk) OR #owner = :owner OR #until <= :now")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#until", "until")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if conditional_failed(&e) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(lock_pk(name)))
            .key("sk", s("LOCK"))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Another owner took it after it expired: theirs now.
            Err(e) if conditional_failed(&e) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}
