//! DynamoDB adapters over the campaign table (docs/data-model.md):
//!
//! | item | pk | sk | gsi1 (by-og) | gsi2 (by-territory) |
//! |---|---|---|---|---|
//! | questionnaire | `Q#<year>#<finess>` | `QUESTIONNAIRE` | `OG#<year>#<og>` / `<finess>` | `DEP#<year>#<dep>` / `<status>#<finess>` |
//! | audit entry | `Q#<year>#<finess>` | `AUDIT#<millis>#<n>` | | |
//! | reminder sent | `Q#<year>#<finess>` | `SENT#<date>#<kind>` | | |
//! | idempotent request | `IDEM#<key>` | `IDEM` | | |

use crate::accounts::{account_pk, role_sk};
use crate::backend;
use crate::item::{
    ATTEMPTS, Item, backoff, batch_get, batch_write_once, corrupt, created, decode_index_token,
    encode_token, get_n, get_s, n, opt_s, put_request, query_all, s, write_all,
};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use tdb_domain::campaign::{CampaignYear, Platform, QuestionnaireStatus, iso_date};
use tdb_domain::workflow::Closure;

use tdb_domain::ports::{
    AuditEntry, AuditLog, AuditedWrite, Claim, IdempotencyStore, Page, Previous, ProgressEntry,
    QuestionnaireStore, Replay, SendKey, SendLog, SendOutcome, SendRecord, StoreError,
    StoredQuestionnaire,
};
use tdb_domain::progress::{Counts, ProgressKey};
use tdb_domain::{Departement, Finess};

/// The campaign table: questionnaires, audit trail and send log share the questionnaire's
/// partition, so one query reads a questionnaire's whole history.
#[derive(Clone)]
pub struct CampaignTable {
    client: Client,
    table: String,
    /// The accounts table, where guarded writes check the writer's role.
    accounts: Option<String>,
}

impl CampaignTable {
    pub fn new(client: Client, table: impl Into<String>) -> CampaignTable {
        CampaignTable {
            client,
            table: table.into(),
            accounts: None,
        }
    }

    /// The same table, whose guarded writes check roles in the accounts table `accounts`.
    pub fn guarded_by(self, accounts: impl Into<String>) -> CampaignTable {
        CampaignTable {
            accounts: Some(accounts.into()),
            ..self
        }
    }
}

fn pk(campaign: CampaignYear, finess: Finess) -> String {
    format!("Q#{campaign}#{finess}")
}

/// `AUDIT#<15 digits>#<up to 20 digits>`, the sort key of a trail line.
fn is_audit_sk(sk: &str) -> bool {
    sk.strip_prefix("AUDIT#")
        .and_then(|rest| rest.split_once('#'))
        .is_some_and(|(at, n)| {
            at.len() == 15
                && (1..=20).contains(&n.len())
                && at.bytes().chain(n.bytes()).all(|b| b.is_ascii_digit())
        })
}

fn status_of(key: &str) -> Result<QuestionnaireStatus, StoreError> {
    serde_json::from_value(serde_json::Value::String(key.to_string())).map_err(corrupt)
}

fn to_item(q: &StoredQuestionnaire) -> Result<Item, StoreError> {
    let finess = q.respondent.finess;
    let mut item = Item::from([
        ("pk".into(), s(pk(q.campaign, finess))),
        ("sk".into(), s("QUESTIONNAIRE")),
        (
            "gsi2pk".into(),
            s(format!("DEP#{}#{}", q.campaign, q.departement)),
        ),
        ("gsi2sk".into(), s(format!("{}#{finess}", q.status.key()))),
        ("campaign".into(), n(q.campaign.value())),
        ("finess".into(), s(finess.as_str())),
        (
            "respondent".into(),
            s(serde_json::to_string(&q.respondent.kind).map_err(corrupt)?),
        ),
        ("departement".into(), s(q.departement.insee_code())),
        ("status".into(), s(q.status.key())),
        // One JSON string rather than a map: answers are read and written whole, and a
        // string keeps the item compact, far under DynamoDB's 400 KB.
        (
            "answers".into(),
            s(serde_json::to_string(&q.answers).map_err(corrupt)?),
        ),
        (
            "items".into(),
            s(serde_json::to_string(&q.items).map_err(corrupt)?),
        ),
        (
            "prefilled".into(),
            s(serde_json::to_string(&q.prefilled).map_err(corrupt)?),
        ),
        ("fill_rate".into(), n(q.fill_rate)),
        ("blocking".into(), n(q.blocking)),
        ("acknowledged".into(), n(q.acknowledged)),
        ("outliers".into(), n(q.outliers)),
        // What listings show of the workflow, projected by the indexes.
        (
            "parts".into(),
            s(serde_json::to_string(&q.part_statuses()).map_err(corrupt)?),
        ),
        (
            "workflow".into(),
            s(serde_json::to_string(&q.workflow).map_err(corrupt)?),
        ),
        ("version".into(), n(q.version)),
        ("updated_at".into(), n(q.updated_at)),
    ]);
    if let Some(og) = q.og {
        item.insert("og".into(), s(og.as_str()));
        item.insert("gsi1pk".into(), s(format!("OG#{}#{og}", q.campaign)));
        item.insert("gsi1sk".into(), s(finess.as_str()));
    }
    Ok(item)
}

fn from_item(item: &Item) -> Result<StoredQuestionnaire, StoreError> {
    let finess = Finess::parse(get_s(item, "finess")?).map_err(corrupt)?;
    Ok(StoredQuestionnaire {
        campaign: CampaignYear::new(get_n(item, "campaign")?).map_err(corrupt)?,
        respondent: tdb_domain::Respondent {
            finess,
            kind: serde_json::from_str(get_s(item, "respondent")?).map_err(corrupt)?,
        },
        departement: Departement::from_code(get_s(item, "departement")?)
            .ok_or_else(|| corrupt("unknown département"))?,
        og: item
            .get("og")
            .and_then(|v| v.as_s().ok())
            .map(|v| Finess::parse(v))
            .transpose()
            .map_err(corrupt)?,
        status: status_of(get_s(item, "status")?)?,
        answers: serde_json::from_str(get_s(item, "answers")?).map_err(corrupt)?,
        // Questionnaires written before item metadata existed have none.
        items: match item.get("items").and_then(|v| v.as_s().ok()) {
            Some(text) => serde_json::from_str(text).map_err(corrupt)?,
            None => Default::default(),
        },
        prefilled: match item.get("prefilled").and_then(|v| v.as_s().ok()) {
            Some(text) => serde_json::from_str(text).map_err(corrupt)?,
            None => Default::default(),
        },
        fill_rate: get_n(item, "fill_rate")?,
        blocking: get_n(item, "blocking").unwrap_or(0),
        acknowledged: get_n(item, "acknowledged").unwrap_or(0),
        outliers: get_n(item, "outliers").unwrap_or(0),
        workflow: match item.get("workflow").and_then(|v| v.as_s().ok()) {
            Some(text) => serde_json::from_str(text).map_err(corrupt)?,
            None => Default::default(),
        },
        version: get_n(item, "version")?,
        updated_at: get_n(item, "updated_at")?,
    })
}

/// A questionnaire as the item DynamoDB stores (for benchmarks writing it with the raw SDK).
pub fn questionnaire_item(q: &StoredQuestionnaire) -> Result<Item, StoreError> {
    to_item(q)
}

/// A listing line, from the attributes the indexes project.
fn entry_of(item: &Item) -> Result<ProgressEntry, StoreError> {
    Ok(ProgressEntry {
        finess: Finess::parse(get_s(item, "finess")?).map_err(corrupt)?,
        kind: serde_json::from_str(get_s(item, "respondent")?).map_err(corrupt)?,
        status: status_of(get_s(item, "status")?)?,
        fill_rate: get_n(item, "fill_rate")?,
        blocking: get_n(item, "blocking").unwrap_or(0),
        acknowledged: get_n(item, "acknowledged").unwrap_or(0),
        outliers: get_n(item, "outliers").unwrap_or(0),
        updated_at: get_n(item, "updated_at")?,
        parts: match opt_s(item, "parts") {
            Some(text) => serde_json::from_str(text).map_err(corrupt)?,
            None => Default::default(),
        },
        og: opt_s(item, "og")
            .map(Finess::parse)
            .transpose()
            .map_err(corrupt)?,
    })
}

fn progress_pk(campaign: CampaignYear) -> String {
    format!("PROGRESS#{campaign}")
}

/// The update adding `change` to a progress counter, if it changes anything.
fn progress_update(
    table: &str,
    campaign: CampaignYear,
    key: ProgressKey,
    change: Counts,
) -> Result<Option<aws_sdk_dynamodb::types::Update>, StoreError> {
    if change.is_zero() {
        return Ok(None);
    }
    let mut update = aws_sdk_dynamodb::types::Update::builder()
        .table_name(table)
        .key("pk", s(progress_pk(campaign)))
        .key("sk", s(key.encode()));
    let mut adds = Vec::new();
    for (name, value) in Counts::NAMES.iter().zip(change.values()) {
        if value != 0 {
            adds.push(format!("{name} :{name}"));
            update = update.expression_attribute_values(format!(":{name}"), n(value));
        }
    }
    update
        .update_expression(format!("ADD {}", adds.join(", ")))
        .build()
        .map(Some)
        .map_err(backend)
}

/// How a transaction failed: which operation's condition, or a conflict with another
/// transaction on the same items (worth sending again as it is).
enum Cancelled {
    Condition(usize),
    Busy,
    Other(StoreError),
}

fn cancelled(
    e: aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
    >,
) -> Cancelled {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    if let Some(TransactWriteItemsError::TransactionCanceledException(c)) = e.as_service_error() {
        let reasons = c.cancellation_reasons();
        if let Some(i) = reasons
            .iter()
            .position(|r| r.code() == Some("ConditionalCheckFailed"))
        {
            return Cancelled::Condition(i);
        }
        if reasons
            .iter()
            .any(|r| r.code() == Some("TransactionConflict"))
        {
            return Cancelled::Busy;
        }
    }
    if e.as_service_error()
        .is_some_and(|e| e.is_transaction_in_progress_exception())
    {
        return Cancelled::Busy;
    }
    Cancelled::Other(backend(e))
}

/// Sends a transaction, again while it only conflicts with other transactions on the same
/// items (a progress counter two saves update at once), with a growing pause.
async fn transact(
    client: &Client,
    items: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
) -> Result<(), Cancelled> {
    let mut attempt = 0;
    loop {
        match client
            .transact_write_items()
            .set_transact_items(Some(items.clone()))
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) => match cancelled(e) {
                Cancelled::Busy if attempt < ATTEMPTS => {
                    attempt += 1;
                    backoff(attempt).await;
                }
                other => return Err(other),
            },
        }
    }
}

impl CampaignTable {
    /// Creates the absent ones of `pending` in one transaction with their counters; again
    /// without those found to exist if a condition fails.
    async fn create_batch(
        &self,
        mut pending: Vec<&StoredQuestionnaire>,
    ) -> Result<usize, StoreError> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
        while !pending.is_empty() {
            let mut items = Vec::with_capacity(pending.len() + 8);
            let mut counters: std::collections::BTreeMap<(CampaignYear, ProgressKey), Counts> =
                Default::default();
            for q in &pending {
                counters
                    .entry((q.campaign, ProgressKey::of(q)))
                    .or_default()
                    .add(Counts::of(q));
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(to_item(q)?))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .map_err(backend)?;
                items.push(TransactWriteItem::builder().put(put).build());
            }
            for ((campaign, key), counts) in counters {
                if let Some(update) = progress_update(&self.table, campaign, key, counts)? {
                    items.push(TransactWriteItem::builder().update(update).build());
                }
            }
            match transact(&self.client, items).await {
                Ok(()) => return Ok(pending.len()),
                // Some exist already: create the others.
                Err(Cancelled::Condition(_)) => {
                    let mut existing = std::collections::BTreeSet::new();
                    let years: std::collections::BTreeSet<CampaignYear> =
                        pending.iter().map(|q| q.campaign).collect();
                    for year in years {
                        let finess: Vec<Finess> = pending
                            .iter()
                            .filter(|q| q.campaign == year)
                            .map(|q| q.respondent.finess)
                            .collect();
                        for f in self.opened(year, &finess).await? {
                            existing.insert((year, f));
                        }
                    }
                    let before = pending.len();
                    pending.retain(|q| !existing.contains(&(q.campaign, q.respondent.finess)));
                    if pending.len() == before {
                        // A condition failed on nothing that exists: do not loop.
                        return Err(StoreError::Conflict { expected: 0 });
                    }
                }
                Err(Cancelled::Busy) => return Err(StoreError::Conflict { expected: 0 }),
                Err(Cancelled::Other(e)) => return Err(e),
            }
        }
        Ok(0)
    }
}

impl QuestionnaireStore for CampaignTable {
    async fn get(
        &self,
        campaign: CampaignYear,
        finess: Finess,
    ) -> Result<Option<StoredQuestionnaire>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk(campaign, finess)))
            .key("sk", s("QUESTIONNAIRE"))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        out.item().map(from_item).transpose()
    }

    async fn get_with_previous(
        &self,
        campaign: CampaignYear,
        finess: Finess,
    ) -> Result<Previous, StoreError> {
        let last = CampaignYear::new(campaign.value() - 1).ok();
        let keys = [Some(campaign), last]
            .into_iter()
            .flatten()
            .map(|year| (pk(year, finess), "QUESTIONNAIRE"))
            .collect();
        let mut found = Previous::default();
        for item in batch_get(&self.client, &self.table, keys, None).await? {
            let q = from_item(&item)?;
            if q.campaign == campaign {
                found.current = Some(q);
            } else {
                found.previous = Some(q);
            }
        }
        Ok(found)
    }

    async fn put_audited(&self, write: AuditedWrite<'_>) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem};
        let (q, expected) = (write.after, write.before.version);
        if q.version != expected + 1 {
            return Err(StoreError::Conflict { expected });
        }
        let questionnaire = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(q)?))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", n(expected))
            .build()
            .map_err(backend)?;
        // Ordered by time, unique by version: two saves never share a line.
        let line = Put::builder()
            .table_name(&self.table)
            .item("pk", s(pk(q.campaign, q.respondent.finess)))
            .item(
                "sk",
                s(format!("AUDIT#{:015}#{:020}", write.entry.at, q.version)),
            )
            .item(
                "entry",
                s(serde_json::to_string(write.entry).map_err(corrupt)?),
            )
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(backend)?;
        let mut items = vec![
            TransactWriteItem::builder().put(questionnaire).build(),
            TransactWriteItem::builder().put(line).build(),
        ];
        let role_check = if let Some(held) = write.held {
            let accounts = self.accounts.as_deref().ok_or_else(|| {
                backend(std::io::Error::other("no accounts table to check roles in"))
            })?;
            // The role item as the accounts adapter writes it: same key, same role.
            let check = ConditionCheck::builder()
                .table_name(accounts)
                .key("pk", s(account_pk(held.account)))
                .key("sk", s(role_sk(held.role)))
                .condition_expression("#role = :role")
                .expression_attribute_names("#role", "role")
                .expression_attribute_values(
                    ":role",
                    s(serde_json::to_string(held.role).map_err(corrupt)?),
                )
                .build()
                .map_err(backend)?;
            items.push(TransactWriteItem::builder().condition_check(check).build());
            Some(items.len() - 1)
        } else {
            None
        };
        if let Some(update) = progress_update(
            &self.table,
            q.campaign,
            ProgressKey::of(q),
            Counts::change(Some(write.before), q),
        )? {
            items.push(TransactWriteItem::builder().update(update).build());
        }
        match transact(&self.client, items).await {
            Ok(()) => Ok(()),
            Err(Cancelled::Condition(i)) if Some(i) == role_check => Err(StoreError::RoleWithdrawn),
            Err(Cancelled::Condition(_) | Cancelled::Busy) => {
                Err(StoreError::Conflict { expected })
            }
            Err(Cancelled::Other(e)) => Err(e),
        }
    }

    async fn opened(
        &self,
        campaign: CampaignYear,
        finess: &[Finess],
    ) -> Result<std::collections::BTreeSet<Finess>, StoreError> {
        let keys = finess
            .iter()
            .map(|f| (pk(campaign, *f), "QUESTIONNAIRE"))
            .collect();
        // The FINESS only: a questionnaire in progress weighs up to 40 KB.
        batch_get(&self.client, &self.table, keys, Some("finess"))
            .await?
            .iter()
            .map(|item| Finess::parse(get_s(item, "finess")?).map_err(corrupt))
            .collect()
    }

    async fn create(&self, qs: &[StoredQuestionnaire]) -> Result<usize, StoreError> {
        // Transactions of up to 100 actions and about 3 MB (DynamoDB allows 100 and 4 MB):
        // each questionnaire is created only if absent, and its counter, updated once per
        // transaction, counts it in the same transaction.
        const ACTIONS: usize = 100;
        const BYTES: usize = 3_000_000;
        let mut sorted: Vec<&StoredQuestionnaire> = qs.iter().collect();
        sorted.sort_by_key(|q| (q.campaign, ProgressKey::of(q)));
        let mut created = 0;
        let mut batch: Vec<&StoredQuestionnaire> = Vec::new();
        let (mut keys, mut bytes) = (std::collections::BTreeSet::new(), 0);
        for q in sorted {
            let size = serde_json::to_string(q).map_err(corrupt)?.len();
            let key = (q.campaign, ProgressKey::of(q));
            let new_key = usize::from(!keys.contains(&key));
            if !batch.is_empty()
                && (batch.len() + keys.len() + 1 + new_key > ACTIONS || bytes + size > BYTES)
            {
                created += self.create_batch(std::mem::take(&mut batch)).await?;
                keys.clear();
                bytes = 0;
            }
            keys.insert(key);
            bytes += size;
            batch.push(q);
        }
        if !batch.is_empty() {
            created += self.create_batch(batch).await?;
        }
        Ok(created)
    }

    async fn close(
        &self,
        campaign: CampaignYear,
        platform: Platform,
        closure: &Closure,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("CAMPAIGN#{campaign}")))
            .item("sk", s(format!("CLOSURE#{}", platform.key())))
            .item(
                "closure",
                s(serde_json::to_string(closure).map_err(corrupt)?),
            )
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        created(result)
    }

    async fn closure(
        &self,
        campaign: CampaignYear,
        platform: Platform,
    ) -> Result<Option<Closure>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("CAMPAIGN#{campaign}")))
            .key("sk", s(format!("CLOSURE#{}", platform.key())))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        out.item()
            .map(|item| serde_json::from_str(get_s(item, "closure")?).map_err(corrupt))
            .transpose()
    }

    /// Département by département through the territory index, each page's questionnaires
    /// then read whole by key: a table scan would read every trail line and counter too,
    /// and DynamoDB Local scans a large table very slowly. The page token is
    /// `<département's rank>|<the index's token>`.
    async fn scan(
        &self,
        campaign: CampaignYear,
        page: Option<String>,
    ) -> Result<Page<StoredQuestionnaire>, StoreError> {
        let departements: Vec<Departement> = Departement::all().collect();
        let (mut rank, mut inner) = match page {
            None => (0, None),
            Some(token) => {
                let (rank, rest) = token.split_once('|').ok_or(StoreError::BadPageToken)?;
                let rank: usize = rank.parse().map_err(|_| StoreError::BadPageToken)?;
                (rank, (!rest.is_empty()).then(|| rest.to_string()))
            }
        };
        loop {
            let Some(departement) = departements.get(rank) else {
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                });
            };
            let partition = format!("DEP#{campaign}#{departement}");
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("by-territory")
                .key_condition_expression("gsi2pk = :pk")
                .expression_attribute_values(":pk", s(&partition))
                .projection_expression("pk")
                .set_exclusive_start_key(decode_index_token(
                    inner.take(),
                    ("gsi2pk", &partition),
                    ("gsi2sk", ""),
                )?)
                .limit(100)
                .send()
                .await
                .map_err(backend)?;
            // Where the next page starts: further in this département, or the next one.
            let (next_rank, next_inner) = match encode_token(out.last_evaluated_key()) {
                Some(token) => (rank, Some(token)),
                None => (rank + 1, None),
            };
            let next = (next_rank < departements.len())
                .then(|| format!("{next_rank}|{}", next_inner.as_deref().unwrap_or("")));
            let keys: Vec<(String, &str)> = out
                .items()
                .iter()
                .map(|item| Ok((get_s(item, "pk")?.to_string(), "QUESTIONNAIRE")))
                .collect::<Result<_, StoreError>>()?;
            if keys.is_empty() && next.is_some() {
                // An empty département: go on to the next without an empty page.
                (rank, inner) = (next_rank, next_inner);
                continue;
            }
            let items = batch_get(&self.client, &self.table, keys, None)
                .await?
                .iter()
                .map(from_item)
                .collect::<Result<_, _>>()?;
            return Ok(Page { items, next });
        }
    }

    async fn replace_progress(
        &self,
        campaign: CampaignYear,
        counts: &std::collections::BTreeMap<ProgressKey, Counts>,
    ) -> Result<(), StoreError> {
        let stale: Vec<WriteRequest> = self
            .progress(campaign)
            .await?
            .into_iter()
            .filter(|(key, _)| !counts.contains_key(key))
            .map(|(key, _)| {
                let delete = DeleteRequest::builder()
                    .key("pk", s(progress_pk(campaign)))
                    .key("sk", s(key.encode()))
                    .build()
                    .map_err(backend)?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<_, StoreError>>()?;
        let fresh: Vec<WriteRequest> = counts
            .iter()
            .map(|(key, c)| {
                let mut item = Item::from([
                    ("pk".to_string(), s(progress_pk(campaign))),
                    ("sk".to_string(), s(key.encode())),
                ]);
                for (name, value) in Counts::NAMES.iter().zip(c.values()) {
                    item.insert(name.to_string(), n(value));
                }
                put_request(item)
            })
            .collect::<Result<_, _>>()?;
        let mut requests = stale;
        requests.extend(fresh);
        write_all(requests, |batch| {
            batch_write_once(&self.client, &self.table, batch)
        })
        .await
    }

    async fn progress(
        &self,
        campaign: CampaignYear,
    ) -> Result<Vec<(ProgressKey, Counts)>, StoreError> {
        let items = query_all(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(progress_pk(campaign)))
                .consistent_read(true),
        )
        .await?;
        items
            .iter()
            .map(|item| {
                let key = ProgressKey::decode(get_s(item, "sk")?)
                    .ok_or_else(|| corrupt("progress key"))?;
                let values = Counts::NAMES.map(|name| get_n(item, name).unwrap_or(0));
                Ok((key, Counts::from_values(values)))
            })
            .collect()
    }

    async fn list_by_og(
        &self,
        campaign: CampaignYear,
        og: Finess,
        page: Option<String>,
        limit: u32,
    ) -> Result<Page<ProgressEntry>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("by-og")
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(format!("OG#{campaign}#{og}")))
            .set_exclusive_start_key(decode_index_token(
                page,
                ("gsi1pk", &format!("OG#{campaign}#{og}")),
                ("gsi1sk", ""),
            )?)
            .limit(limit.max(1) as i32)
            .send()
            .await
            .map_err(backend)?;
        let items = out.items().iter().map(entry_of).collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            next: encode_token(out.last_evaluated_key()),
        })
    }

    async fn list_by_departement(
        &self,
        campaign: CampaignYear,
        departement: Departement,
        status: Option<QuestionnaireStatus>,
        page: Option<String>,
        limit: u32,
    ) -> Result<Page<ProgressEntry>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("by-territory")
            .expression_attribute_values(":pk", s(format!("DEP#{campaign}#{departement}")))
            .set_exclusive_start_key(decode_index_token(
                page,
                ("gsi2pk", &format!("DEP#{campaign}#{departement}")),
                (
                    "gsi2sk",
                    &status
                        .map(|st| format!("{}#", st.key()))
                        .unwrap_or_default(),
                ),
            )?)
            .limit(limit.max(1) as i32);
        query = match status {
            Some(st) => query
                .key_condition_expression("gsi2pk = :pk AND begins_with(gsi2sk, :status)")
                .expression_attribute_values(":status", s(format!("{}#", st.key()))),
            None => query.key_condition_expression("gsi2pk = :pk"),
        };
        let out = query.send().await.map_err(backend)?;
        let items = out
            .items()
            .iter()
            .map(entry_of)
            .collect::<Result<_, StoreError>>()?;
        Ok(Page {
            items,
            next: encode_token(out.last_evaluated_key()),
        })
    }
}

impl AuditLog for CampaignTable {
    async fn append(
        &self,
        campaign: CampaignYear,
        finess: Finess,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        // Two entries in the same millisecond must not overwrite each other.
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pk(campaign, finess)))
            .item("sk", s(format!("AUDIT#{:015}#{unique:09}", entry.at)))
            .item("entry", s(serde_json::to_string(entry).map_err(corrupt)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list(
        &self,
        campaign: CampaignYear,
        finess: Finess,
        page: Option<String>,
        limit: u32,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let pk = pk(campaign, finess);
        // The token is the sort key of the last line shown: the page goes on in this
        // partition's trail only, whatever a client sends.
        let start = match page {
            None => None,
            Some(sk) if is_audit_sk(&sk) => Some(Item::from([
                ("pk".to_string(), s(&pk)),
                ("sk".to_string(), s(sk)),
            ])),
            Some(_) => return Err(StoreError::BadPageToken),
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :audit)")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":audit", s("AUDIT#"))
            .scan_index_forward(false)
            .set_exclusive_start_key(start)
            .limit(limit.max(1) as i32)
            .send()
            .await
            .map_err(backend)?;
        let items = out
            .items()
            .iter()
            .map(|item| serde_json::from_str(get_s(item, "entry")?).map_err(corrupt))
            .collect::<Result<_, _>>()?;
        let next = match out.last_evaluated_key() {
            Some(key) => Some(get_s(key, "sk")?.to_string()),
            None => None,
        };
        Ok(Page { items, next })
    }
}

fn send_pk(campaign: CampaignYear, subject: &str) -> String {
    format!("SEND#{campaign}#{subject}")
}

fn send_sk(key: &SendKey) -> String {
    format!(
        "{}#{}#{}",
        iso_date::format(key.day),
        key.occasion,
        key.recipient
    )
}

impl SendLog for CampaignTable {
    async fn claim(&self, key: &SendKey, now: i64) -> Result<Claim, StoreError> {
        let pk = send_pk(key.campaign, &key.subject);
        let sk = send_sk(key);
        // Claimed if absent, or if the last attempt failed; never while sending or sent.
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&pk))
            .item("sk", s(&sk))
            .item(
                "outcome",
                s(serde_json::to_string(&SendOutcome::Sending).map_err(corrupt)?),
            )
            .item("state", s("sending"))
            .item("at", n(now))
            .condition_expression("attribute_not_exists(pk) OR #state = :failed")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":failed", s("failed"))
            .send()
            .await;
        if created(result)? {
            return Ok(Claim::Claimed);
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        Ok(match out.item().and_then(|i| opt_s(i, "state")) {
            Some("sent") => Claim::Sent,
            _ => Claim::Sending,
        })
    }

    async fn settle(
        &self,
        key: &SendKey,
        outcome: &SendOutcome,
        now: i64,
    ) -> Result<(), StoreError> {
        let state = match outcome {
            SendOutcome::Sending => "sending",
            SendOutcome::Sent { .. } => "sent",
            SendOutcome::Failed { .. } => "failed",
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(send_pk(key.campaign, &key.subject)))
            .key("sk", s(send_sk(key)))
            .update_expression("SET #state = :state, outcome = :outcome, #at = :at")
            .condition_expression("#state = :sending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":state", s(state))
            .expression_attribute_values(
                ":outcome",
                s(serde_json::to_string(outcome).map_err(corrupt)?),
            )
            .expression_attribute_values(":at", n(now))
            .expression_attribute_values(":sending", s("sending"))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict { expected: 0 })
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn sends(
        &self,
        campaign: CampaignYear,
        subject: &str,
    ) -> Result<Vec<SendRecord>, StoreError> {
        let items = query_all(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(send_pk(campaign, subject)))
                .consistent_read(true),
        )
        .await?;
        items
            .iter()
            .map(|i| {
                let sk = get_s(i, "sk")?;
                let mut parts = sk.splitn(3, '#');
                let (Some(day), Some(occasion), Some(recipient)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(corrupt("send sk"));
                };
                Ok(SendRecord {
                    key: SendKey {
                        campaign,
                        subject: subject.to_string(),
                        day: iso_date::parse(day).map_err(corrupt)?,
                        occasion: occasion.to_string(),
                        recipient: recipient.to_string(),
                    },
                    outcome: serde_json::from_str(get_s(i, "outcome")?).map_err(corrupt)?,
                    at: get_n(i, "at")?,
                })
            })
            .collect()
    }
}

/// How long a claimed key waits for its request's answer before another request may take
/// it over (a Lambda that died mid-request), in seconds: longer than a request may last.
const IDEMPOTENCY_LEASE: i64 = 60;

fn idem_pk(key: &str) -> String {
    format!("IDEM#{key}")
}

impl IdempotencyStore for CampaignTable {
    async fn begin(
        &self,
        key: &str,
        fingerprint: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<Replay, StoreError> {
        let claimed = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(idem_pk(key)))
            .item("sk", s("IDEM"))
            .item("fingerprint", s(fingerprint))
            .item("expires_at", n(expires_at))
            .item("running_until", n(now + IDEMPOTENCY_LEASE))
            // Free again: a record expired (TTL removes it lazily), or a claim whose request
            // died before answering (its lease is over).
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now \
                 OR (attribute_not_exists(#status) AND running_until < :now)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match claimed {
            Ok(_) => return Ok(Replay::New),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
            Err(e) => return Err(backend(e)),
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(idem_pk(key)))
            .key("sk", s("IDEM"))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        let Some(item) = out.item() else {
            // Given up between the two reads: the caller may try again.
            return Ok(Replay::Running);
        };
        if get_s(item, "fingerprint")? != fingerprint {
            return Ok(Replay::Mismatch);
        }
        match (item.get("status"), item.get("body")) {
            (Some(_), Some(_)) => Ok(Replay::Done {
                status: get_n(item, "status")?,
                body: get_s(item, "body")?.to_string(),
            }),
            _ => Ok(Replay::Running),
        }
    }

    async fn finish(&self, key: &str, status: u16, body: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(idem_pk(key)))
            .key("sk", s("IDEM"))
            .update_expression("SET #status = :status, body = :body")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", n(status))
            .expression_attribute_values(":body", s(body))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn abandon(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(idem_pk(key)))
            .key("sk", s("IDEM"))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }
}
