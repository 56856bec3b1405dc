//! Contract tests: the same assertions against the in-memory fakes and the real adapters on
//! the local stack (DynamoDB Local, LocalStack). The local resources are created from
//! `infra/template.yaml` with a stack name unique to each test.
//!
//! A stopped stack makes these tests fail, never skip: run them through `scripts/test.sh`.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use tdb_aws::accounts::AccountsTable;
use tdb_aws::dynamo::CampaignTable;
use tdb_aws::provision::{Provisioned, Resources, StackContext, TEMPLATE};
use tdb_aws::s3::S3Lake;
use tdb_aws::ses::SesMailer;
use tdb_domain::accounts::{
    Account, AccountId, ImportJob, JobStatus, Person, StructureRecord, TokenPurpose, TokenRecord,
};
use tdb_domain::campaign::{CampaignYear, QuestionnaireStatus};
use tdb_domain::email::EmailAddress;
use tdb_domain::fakes::{
    MemoryAccountStore, MemoryAuditLog, MemoryLake, MemoryMailer, MemoryQuestionnaireStore,
    MemorySendLog,
};
use tdb_domain::ports::*;
use tdb_domain::rights::{Profile, Role};
use tdb_domain::{Category, Departement, Finess, Respondent, RespondentKind};
use time::macros::date;

const SENDER: &str = "tdb-esms@campagne.test";

struct Stack {
    config: aws_config::SdkConfig,
    provisioned: Provisioned,
}

/// Provisions a fresh copy of the template's resources on the local stack.
async fn local_stack() -> Stack {
    tdb_testkit::local_endpoint();
    let stack_name = tdb_testkit::unique_name("t");
    let config = tdb_aws::load_config().await;
    let provisioned = tdb_aws::provision::provision_stack(&config, &stack_name, SENDER)
        .await
        .expect("the local stack answers: is it started?");
    Stack {
        config,
        provisioned,
    }
}

impl Stack {
    fn campaign_table(&self) -> CampaignTable {
        CampaignTable::new(
            aws_sdk_dynamodb::Client::new(&self.config),
            &self.provisioned.environment["CAMPAIGN_TABLE"],
        )
    }

    fn accounts_table(&self) -> AccountsTable {
        AccountsTable::new(
            aws_sdk_dynamodb::Client::new(&self.config),
            &self.provisioned.environment["ACCOUNTS_TABLE"],
        )
    }
}

fn year() -> CampaignYear {
    CampaignYear::new(2025).unwrap()
}

fn finess(n: u32) -> Finess {
    Finess::with_key(&format!("69{n:06}")).unwrap()
}

fn questionnaire(
    n: u32,
    og: Option<Finess>,
    dep: &str,
    status: QuestionnaireStatus,
) -> StoredQuestionnaire {
    StoredQuestionnaire {
        campaign: year(),
        respondent: Respondent {
            finess: finess(n),
            kind: RespondentKind::Esms(Category::Ehpad),
        },
        departement: Departement::from_code(dep).unwrap(),
        og,
        status,
        answers: serde_json::json!({ "cap_auth_perm": n, "etp_total": 12.5 })
            .as_object()
            .unwrap()
            .clone(),
        items: Default::default(),
        prefilled: Default::default(),
        fill_rate: 0.5,
        blocking: 1,
        acknowledged: 0,
        outliers: 0,
        workflow: Default::default(),
        version: 1,
        updated_at: 1_750_000_000,
    }
}

fn entry(version: u64) -> AuditEntry {
    AuditEntry {
        at: 1_750_000_000_000 + version as i64,
        actor: "account-42".into(),
        action: "save".into(),
        detail: serde_json::json!({ "version": version }),
    }
}

/// The stored progress counters, next to a recount of `questionnaires`.
async fn progress_and_recount<'a>(
    store: &impl QuestionnaireStore,
    questionnaires: impl IntoIterator<Item = &'a StoredQuestionnaire>,
) -> (
    BTreeMap<tdb_domain::progress::ProgressKey, tdb_domain::progress::Counts>,
    BTreeMap<tdb_domain::progress::ProgressKey, tdb_domain::progress::Counts>,
) {
    let stored = store.progress(year()).await.unwrap().into_iter().collect();
    (stored, tdb_domain::progress::recount(questionnaires))
}

async fn questionnaire_store_contract(store: impl QuestionnaireStore) {
    let mut q = questionnaire(1, None, "69", QuestionnaireStatus::InProgress);
    assert_eq!(store.get(year(), q.respondent.finess).await.unwrap(), None);
    assert_eq!(store.create(std::slice::from_ref(&q)).await.unwrap(), 1);
    assert_eq!(
        store.get(year(), q.respondent.finess).await.unwrap(),
        Some(q.clone())
    );
    let twin = StoredQuestionnaire {
        fill_rate: 0.9,
        ..q.clone()
    };
    assert_eq!(
        store.create(&[twin]).await.unwrap(),
        0,
        "creating twice creates nothing and overwrites nothing"
    );

    let before = q.clone();
    q.version = 2;
    q.status = QuestionnaireStatus::Validated;
    store
        .put_audited(AuditedWrite {
            before: &before,
            after: &q,
            entry: &entry(2),
            held: None,
        })
        .await
        .unwrap();
    let stale = StoredQuestionnaire {
        fill_rate: 0.1,
        ..q.clone()
    };
    assert!(
        matches!(
            store
                .put_audited(AuditedWrite {
                    before: &before,
                    after: &stale,
                    entry: &entry(2),
                    held: None,
                })
                .await,
            Err(StoreError::Conflict { expected: 1 })
        ),
        "a stale writer loses"
    );
    assert_eq!(
        store
            .get(year(), q.respondent.finess)
            .await
            .unwrap()
            .unwrap()
            .fill_rate,
        0.5,
        "nothing saved is lost"
    );
    let (stored, recount) = progress_and_recount(&store, [&q]).await;
    assert_eq!(stored, recount, "the counters follow each write");

    // 60 questionnaires, created by groups of one counter and at most 25.
    let og = finess(900_000);
    let many: Vec<_> = (100..160)
        .map(|n| {
            questionnaire(
                n,
                (n % 2 == 0).then_some(og),
                if n % 3 == 0 { "38" } else { "69" },
                if n % 4 == 0 {
                    QuestionnaireStatus::Validated
                } else {
                    QuestionnaireStatus::InProgress
                },
            )
        })
        .collect();
    assert_eq!(store.create(&many).await.unwrap(), 60);
    let (stored, recount) = progress_and_recount(&store, many.iter().chain([&q])).await;
    assert_eq!(stored, recount);
    // A recount written back leaves the counters as they are.
    store.replace_progress(year(), &recount).await.unwrap();
    let (stored, _) = progress_and_recount(&store, many.iter().chain([&q])).await;
    assert_eq!(stored, recount);

    let mut by_og = Vec::new();
    let mut page = None;
    loop {
        let p = store.list_by_og(year(), og, page, 7).await.unwrap();
        assert!(p.items.len() <= 7);
        by_og.extend(p.items.iter().map(|e| e.finess));
        page = p.next;
        if page.is_none() {
            break;
        }
    }
    by_og.sort();
    let expected: Vec<_> = many
        .iter()
        .filter(|q| q.og == Some(og))
        .map(|q| q.respondent.finess)
        .collect();
    assert_eq!(by_og, expected);

    let isere = Departement::from_code("38").unwrap();
    let validated = store
        .list_by_departement(
            year(),
            isere,
            Some(QuestionnaireStatus::Validated),
            None,
            100,
        )
        .await
        .unwrap();
    let expected: Vec<_> = many
        .iter()
        .filter(|q| q.departement == isere && q.status == QuestionnaireStatus::Validated)
        .map(|q| q.respondent.finess)
        .collect();
    assert_eq!(
        validated.items.iter().map(|e| e.finess).collect::<Vec<_>>(),
        expected
    );
    assert!(
        validated
            .items
            .iter()
            .all(|e| e.status == QuestionnaireStatus::Validated && e.fill_rate == 0.5)
    );
    let all = store
        .list_by_departement(year(), isere, None, None, 100)
        .await
        .unwrap();
    assert_eq!(
        all.items.len(),
        many.iter().filter(|q| q.departement == isere).count()
    );
    assert!(matches!(
        store
            .list_by_og(year(), og, Some("not a token".into()), 5)
            .await,
        Err(StoreError::BadPageToken)
    ));

    // The whole campaign, page by page: every questionnaire once, another campaign's none
    // (more than a page in one département).
    let crowd: Vec<_> = (200..330)
        .map(|n| questionnaire(n, None, "2A", QuestionnaireStatus::InProgress))
        .collect();
    store.create(&crowd).await.unwrap();
    let elsewhere = StoredQuestionnaire {
        campaign: CampaignYear::new(2024).unwrap(),
        ..questionnaire(400, None, "69", QuestionnaireStatus::Validated)
    };
    store.create(&[elsewhere]).await.unwrap();
    let (mut seen, mut page) = (Vec::new(), None);
    loop {
        let listed = store.scan(year(), page).await.unwrap();
        assert!(listed.items.iter().all(|q| q.campaign == year()));
        seen.extend(listed.items.iter().map(|q| q.respondent.finess));
        match listed.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    let unique: std::collections::BTreeSet<_> = seen.iter().copied().collect();
    assert_eq!(seen.len(), unique.len(), "each questionnaire once");
    for q in many.iter().chain(&crowd) {
        assert!(unique.contains(&q.respondent.finess));
    }
    assert!(!unique.contains(&finess(400)));
    for token in ["not a token", "x|", "3|{\"pk\":\"a\"}"] {
        assert!(
            matches!(
                store.scan(year(), Some(token.into())).await,
                Err(StoreError::BadPageToken)
            ),
            "{token}"
        );
    }
}

async fn audit_log_contract(log: impl AuditLog) {
    let f = finess(1);
    for (at, action) in [(3, "validate"), (1, "save"), (2, "save")] {
        log.append(
            year(),
            f,
            &AuditEntry {
                at,
                actor: "account-42".into(),
                action: action.into(),
                detail: serde_json::json!({ "items": 3 }),
            },
        )
        .await
        .unwrap();
    }
    let first = log.list(year(), f, None, 2).await.unwrap();
    assert_eq!(
        first.items.iter().map(|e| e.at).collect::<Vec<_>>(),
        [3, 2],
        "newest first"
    );
    assert_eq!(first.items[0].action, "validate");
    let second = log.list(year(), f, first.next, 2).await.unwrap();
    assert_eq!(second.items.iter().map(|e| e.at).collect::<Vec<_>>(), [1]);
    assert_eq!(second.next, None);
    let other = log.list(year(), finess(2), None, 2).await.unwrap();
    assert!(other.items.is_empty() && other.next.is_none());
    for forged in ["not-a-token", "{\"pk\":\"Q#2025#690000018\"}", "AUDIT#1#2"] {
        assert!(
            matches!(
                log.list(year(), f, Some(forged.into()), 2).await,
                Err(StoreError::BadPageToken)
            ),
            "{forged}"
        );
    }
}

async fn send_log_contract(log: impl SendLog + 'static) {
    let key = |occasion: &str, recipient: &str| SendKey {
        campaign: year(),
        subject: finess(1).to_string(),
        day: date!(2025 - 06 - 15),
        occasion: occasion.into(),
        recipient: recipient.into(),
    };
    let first = key("before-15d-generique", "account-1");
    assert_eq!(log.claim(&first, 10).await.unwrap(), Claim::Claimed);
    assert_eq!(
        log.claim(&first, 11).await.unwrap(),
        Claim::Sending,
        "a send in flight is not claimed twice"
    );
    // A failed attempt may be claimed again; a sent one never.
    let failed = SendOutcome::Failed {
        reason: "Throttling".into(),
    };
    log.settle(&first, &failed, 12).await.unwrap();
    assert_eq!(log.claim(&first, 13).await.unwrap(), Claim::Claimed);
    let sent = SendOutcome::Sent {
        message_id: "m-1".into(),
    };
    log.settle(&first, &sent, 14).await.unwrap();
    assert_eq!(log.claim(&first, 15).await.unwrap(), Claim::Sent);
    assert!(
        log.settle(&first, &failed, 16).await.is_err(),
        "only a claimed send is settled"
    );
    // Another recipient, another occasion: other sends.
    assert_eq!(
        log.claim(&key("before-15d-generique", "account-2"), 20)
            .await
            .unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        log.claim(&key("opening", "account-1"), 21).await.unwrap(),
        Claim::Claimed
    );
    let records = log.sends(year(), &finess(1).to_string()).await.unwrap();
    assert_eq!(records.len(), 3);
    let record = records.iter().find(|r| r.key == first).unwrap();
    assert_eq!((record.outcome.clone(), record.at), (sent, 14));

    // Twenty runs claiming the same send at once: one sends.
    let log = std::sync::Arc::new(log);
    let contested = key("after-generique", "account-9");
    let claims = (0..20).map(|n| {
        let (log, contested) = (log.clone(), contested.clone());
        tokio::spawn(async move { log.claim(&contested, 100 + n).await.unwrap() })
    });
    let claims: Vec<Claim> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .map(|c| c.unwrap())
        .collect();
    assert_eq!(
        claims.iter().filter(|c| **c == Claim::Claimed).count(),
        1,
        "{claims:?}"
    );
}

async fn lake_contract(lake: impl Lake) {
    lake.put("campaign=2025/answers/part-0.parquet", b"PAR1 one".to_vec())
        .await
        .unwrap();
    lake.put("campaign=2025/answers/part-1.parquet", b"PAR1 two".to_vec())
        .await
        .unwrap();
    lake.put("campaign=2024/answers/part-0.parquet", b"PAR1 old".to_vec())
        .await
        .unwrap();
    assert_eq!(
        lake.get("campaign=2025/answers/part-1.parquet")
            .await
            .unwrap()
            .unwrap(),
        b"PAR1 two"
    );
    assert_eq!(lake.get("campaign=2025/missing").await.unwrap(), None);
    assert_eq!(
        lake.list("campaign=2025/").await.unwrap(),
        [
            "campaign=2025/answers/part-0.parquet",
            "campaign=2025/answers/part-1.parquet"
        ]
    );
    assert_eq!(
        lake.size("campaign=2025/answers/part-1.parquet")
            .await
            .unwrap(),
        Some(8)
    );
    assert_eq!(lake.size("campaign=2025/missing").await.unwrap(), None);
    let url = lake
        .upload_url("imports/x.csv", std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert!(url.contains("imports/x.csv"), "{url}");
}

fn reminder(to: &str) -> Email {
    Email {
        to: EmailAddress::parse(to).unwrap(),
        subject: "Tableau de bord : campagne 2025".into(),
        text: "Il reste 15 jours pour saisir et valider vos données.".into(),
        html: None,
    }
}

/// A save reads a questionnaire with last campaign's in one request, and writes only while
/// its writer holds the role it writes under.
async fn guarded_write_contract(store: impl QuestionnaireStore, accounts: &impl AccountStore) {
    let mut q = questionnaire(7, None, "69", QuestionnaireStatus::InProgress);
    let finess = q.respondent.finess;
    assert_eq!(
        store.get_with_previous(year(), finess).await.unwrap(),
        Previous::default()
    );
    let last = StoredQuestionnaire {
        campaign: CampaignYear::new(2024).unwrap(),
        ..q.clone()
    };
    store.create(&[last.clone(), q.clone()]).await.unwrap();
    assert_eq!(
        store.get_with_previous(year(), finess).await.unwrap(),
        Previous {
            current: Some(q.clone()),
            previous: Some(last)
        }
    );

    let writer = account(7, "gestionnaire.e7@example.fr");
    let gestionnaire = Role::Member {
        structure: finess,
        profile: Profile::Gestionnaire,
    };
    accounts
        .create_account(&writer, &gestionnaire)
        .await
        .unwrap();
    let held = |role| HeldRole {
        account: &writer.id,
        role,
    };
    let (e2, e3) = (entry(2), entry(3));
    fn write<'a>(
        before: &'a StoredQuestionnaire,
        after: &'a StoredQuestionnaire,
        entry: &'a AuditEntry,
        held: HeldRole<'a>,
    ) -> AuditedWrite<'a> {
        AuditedWrite {
            before,
            after,
            entry,
            held: Some(held),
        }
    }
    let v1 = q.clone();
    q.version = 2;
    let v2 = q.clone();
    store
        .put_audited(write(&v1, &v2, &e2, held(&gestionnaire)))
        .await
        .unwrap();

    // Made Lecteur: a write under the Gestionnaire role its token still states is refused.
    let lecteur = Role::Member {
        structure: finess,
        profile: Profile::Lecteur,
    };
    accounts.grant(&writer.id, &lecteur).await.unwrap();
    q.version = 3;
    assert!(matches!(
        store
            .put_audited(write(&v2, &q, &e3, held(&gestionnaire)))
            .await,
        Err(StoreError::RoleWithdrawn)
    ));
    assert_eq!(
        store.get(year(), finess).await.unwrap().unwrap().version,
        2,
        "nothing written"
    );
    // The role it holds now passes the check (what it may do is the function's decision).
    store
        .put_audited(write(&v2, &q, &e3, held(&lecteur)))
        .await
        .unwrap();
    // A stale version is still a conflict, not a withdrawn role.
    assert!(matches!(
        store.put_audited(write(&v2, &q, &e3, held(&lecteur))).await,
        Err(StoreError::Conflict { expected: 2 })
    ));
}

#[tokio::test]
async fn guarded_writes_in_memory_honour_the_contract() {
    let accounts = std::sync::Arc::new(MemoryAccountStore::default());
    guarded_write_contract(
        MemoryQuestionnaireStore::guarded_by(accounts.clone()),
        &*accounts,
    )
    .await;
}

#[tokio::test]
async fn guarded_writes_on_dynamodb_honour_the_contract() {
    let stack = local_stack().await;
    let campaign = stack
        .campaign_table()
        .guarded_by(&stack.provisioned.environment["ACCOUNTS_TABLE"]);
    guarded_write_contract(campaign, &stack.accounts_table()).await;
}

#[tokio::test]
async fn questionnaire_store_fake_honours_the_contract() {
    questionnaire_store_contract(MemoryQuestionnaireStore::default()).await;
}

#[tokio::test]
async fn questionnaire_store_on_dynamodb_honours_the_contract() {
    questionnaire_store_contract(local_stack().await.campaign_table()).await;
}

#[tokio::test]
async fn audit_log_fake_honours_the_contract() {
    audit_log_contract(MemoryAuditLog::default()).await;
}

#[tokio::test]
async fn audit_log_on_dynamodb_honours_the_contract() {
    audit_log_contract(local_stack().await.campaign_table()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn send_log_fake_honours_the_contract() {
    send_log_contract(MemorySendLog::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn send_log_on_dynamodb_honours_the_contract() {
    send_log_contract(local_stack().await.campaign_table()).await;
}

#[tokio::test]
async fn lake_fake_honours_the_contract() {
    lake_contract(MemoryLake::default()).await;
}

#[tokio::test]
async fn lake_on_s3_honours_the_contract() {
    let stack = local_stack().await;
    lake_contract(S3Lake::new(
        &stack.config,
        &stack.provisioned.environment["LAKE_BUCKET"],
    ))
    .await;
}

#[tokio::test]
async fn fake_mailer_keeps_what_it_sends() {
    let mailer = MemoryMailer::default();
    mailer
        .send(&reminder("direction@ehpad-exemple.fr"))
        .await
        .unwrap();
    assert_eq!(
        mailer.outbox.lock().unwrap()[0].to.as_str(),
        "direction@ehpad-exemple.fr"
    );
}

#[tokio::test]
async fn ses_mailer_sends_a_message_that_localstack_received() {
    let stack = local_stack().await;
    let mailer = SesMailer::new(aws_sdk_ses::Client::new(&stack.config), SENDER);
    let unique = format!(
        "ape-{}@ehpad-exemple.fr",
        stack.provisioned.names["CampaignTable"].replace('-', "")
    );
    let id = mailer.send(&reminder(&unique)).await.unwrap();
    assert!(!id.is_empty());
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let sent: serde_json::Value = reqwest::get(format!("{endpoint}/_aws/ses"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let message = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"]["ToAddresses"][0] == unique.as_str())
        .expect("the message reached LocalStack");
    assert_eq!(message["Source"], SENDER);
    assert_eq!(message["Subject"], "Tableau de bord : campagne 2025");
    assert!(
        message["Body"]["text_part"]
            .as_str()
            .unwrap()
            .contains("15 jours")
    );
}

#[tokio::test]
async fn provisioning_twice_is_harmless_and_reads_the_environment_from_the_template() {
    let stack = local_stack().await;
    let env = &stack.provisioned.environment;
    assert!(env["CAMPAIGN_TABLE"].ends_with("-campaign"));
    assert!(env["ACCOUNTS_TABLE"].ends_with("-accounts"));
    assert!(env["LAKE_BUCKET"].contains("-lake-"));
    assert_eq!(env["SENDER_EMAIL"], SENDER);
    let again = Resources::from_template(
        TEMPLATE,
        StackContext {
            stack_name: env["CAMPAIGN_TABLE"]
                .trim_end_matches("-campaign")
                .to_string(),
            account_id: "000000000000".into(),
            region: "eu-west-3".into(),
            parameters: BTreeMap::from([("SenderEmail".to_string(), SENDER.to_string())]),
        },
    )
    .unwrap()
    .provision(&stack.config)
    .await
    .unwrap();
    assert_eq!(again.environment, stack.provisioned.environment);
    // S3 invokes the upload and snapshot functions and SNS the feedback one in a
    // deployment; locally their events go to a queue each.
    assert_eq!(
        again.event_queues.keys().collect::<Vec<_>>(),
        [
            "AccountsUploadsFunction",
            "RemindFeedbackFunction",
            "RestituteSnapshotFunction"
        ]
    );
    assert!(env["SES_CONFIGURATION_SET"].ends_with("-mail"));
    assert_eq!(again.event_queues, stack.provisioned.event_queues);
    let table = aws_sdk_dynamodb::Client::new(&stack.config)
        .describe_table()
        .table_name(&env["CAMPAIGN_TABLE"])
        .send()
        .await
        .unwrap();
    let indexes: Vec<_> = table
        .table()
        .unwrap()
        .global_secondary_indexes()
        .iter()
        .filter_map(|g| g.index_name())
        .collect();
    assert_eq!(indexes.len(), 2, "{indexes:?}");
}

fn structure(n: u32, dep: &str, og: Option<Finess>) -> StructureRecord {
    let f = Finess::with_key(&format!("{dep}{n:06}")).unwrap();
    StructureRecord {
        finess: f,
        kind: if n >= 900_000 {
            RespondentKind::Og
        } else {
            RespondentKind::Esms(Category::Ehpad)
        },
        name: format!("Structure {n}"),
        legal_entity: og.unwrap_or(f),
        og,
        principal: None,
        ape: None,
    }
}

fn account(byte: u8, email: &str) -> Account {
    Account::new(
        AccountId::from_random([byte; 16]),
        EmailAddress::parse(email).unwrap(),
        Person {
            last_name: "Martin".into(),
            first_name: "Claire".into(),
            phone: None,
        },
        1_750_000_000,
    )
}

async fn account_store_contract(store: impl AccountStore) {
    let og = structure(900_001, "69", None);
    let e1 = structure(1, "69", Some(og.finess));
    let e2 = structure(2, "69", Some(og.finess));
    let e3 = structure(3, "69", None);
    let paris = structure(4, "75", None);
    store
        .create_structures(&[
            og.clone(),
            e1.clone(),
            e2.clone(),
            e3.clone(),
            paris.clone(),
        ])
        .await
        .unwrap();
    let missing = structure(5, "69", None).finess;
    let found = store
        .structures(&[e1.finess, missing, e1.finess])
        .await
        .unwrap();
    assert_eq!(found, std::slice::from_ref(&e1));
    let rhone = Departement::from_code("69").unwrap();
    let ids = |v: Vec<StructureRecord>| v.into_iter().map(|s| s.finess).collect::<Vec<_>>();
    let mut sorted = vec![e1.finess, e2.finess, e3.finess, og.finess];
    sorted.sort();
    assert_eq!(
        ids(store.structures_of_departement(rhone).await.unwrap()),
        sorted
    );

    // An APE for e1: it moves after the structures that still have none.
    let alice = account(1, "ape.e1@example.fr");
    store
        .create_account(
            &alice,
            &Role::Ape {
                structure: e1.finess,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        ids(store.structures_of_og(og.finess).await.unwrap()),
        [e2.finess, e1.finess]
    );
    let listed = store.structures_of_departement(rhone).await.unwrap();
    assert_eq!(listed.last().unwrap().finess, e1.finess);
    assert_eq!(listed.last().unwrap().ape, Some(alice.id.clone()));

    // Refusals leave nothing behind.
    let twin = account(2, "APE.e1@example.fr");
    assert!(matches!(
        store
            .create_account(
                &twin,
                &Role::Ape {
                    structure: e2.finess
                }
            )
            .await,
        Err(StoreError::Duplicate("email"))
    ));
    let bob = account(3, "bob@example.fr");
    assert!(matches!(
        store
            .create_account(
                &bob,
                &Role::Ape {
                    structure: e1.finess
                }
            )
            .await,
        Err(StoreError::Duplicate("ape"))
    ));
    assert!(matches!(
        store
            .create_account(&bob, &Role::Ape { structure: missing })
            .await,
        Err(StoreError::NotFound("structure"))
    ));
    assert_eq!(store.account_by_email(&bob.email).await.unwrap(), None);
    assert_eq!(store.account(&bob.id).await.unwrap(), None);

    // One person, two structures, one login.
    let gestionnaire = Role::Member {
        structure: e1.finess,
        profile: Profile::Gestionnaire,
    };
    store.create_account(&bob, &gestionnaire).await.unwrap();
    let lecteur_e3 = Role::Member {
        structure: e3.finess,
        profile: Profile::Lecteur,
    };
    store.grant(&bob.id, &lecteur_e3).await.unwrap();
    let record = store.account_by_email(&bob.email).await.unwrap().unwrap();
    assert_eq!(record.account, bob);
    assert_eq!(record.roles.len(), 2);
    assert!(record.roles.contains(&gestionnaire) && record.roles.contains(&lecteur_e3));
    // Territorial administrators are listed by territory.
    let rhone = Departement::from_code("69").unwrap();
    let cd = account(40, "cd69@example.fr");
    store
        .create_account(&cd, &Role::DepartementalAdmin { departement: rhone })
        .await
        .unwrap();
    let ars = account(41, "ars84@example.fr");
    let ara = tdb_domain::Region::from_code(84).unwrap();
    store
        .create_account(&ars, &Role::RegionalAdmin { region: ara })
        .await
        .unwrap();
    use tdb_domain::rights::Territory;
    let ids = |list: Vec<(Account, Role)>| list.into_iter().map(|(a, _)| a.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .administrators(Territory::Departement(rhone))
            .await
            .unwrap()),
        std::slice::from_ref(&cd.id)
    );
    assert_eq!(
        ids(store.administrators(Territory::Region(ara)).await.unwrap()),
        std::slice::from_ref(&ars.id)
    );
    assert!(
        store
            .administrators(Territory::Region(
                tdb_domain::Region::from_code(11).unwrap()
            ))
            .await
            .unwrap()
            .is_empty()
    );
    let members = store.members(e1.finess).await.unwrap();
    assert_eq!(
        members
            .iter()
            .map(|(a, r)| (a.id.clone(), *r))
            .collect::<Vec<_>>(),
        [
            (
                alice.id.clone(),
                Role::Ape {
                    structure: e1.finess
                }
            ),
            (bob.id.clone(), gestionnaire)
        ]
    );
    assert!(matches!(
        store
            .grant(
                &bob.id,
                &Role::Ape {
                    structure: e1.finess
                }
            )
            .await,
        Err(StoreError::Duplicate("ape"))
    ));

    // A new role on a structure replaces the previous one, APE link included.
    store
        .grant(
            &bob.id,
            &Role::Ape {
                structure: e3.finess,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.structures(&[e3.finess]).await.unwrap()[0].ape,
        Some(bob.id.clone())
    );
    let roles = store.account(&bob.id).await.unwrap().unwrap().roles;
    assert!(!roles.contains(&lecteur_e3) && roles.len() == 2);
    // But a profile is never written over an APE role: the APE role is revoked first.
    assert!(matches!(
        store.grant(&bob.id, &lecteur_e3).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store.structures(&[e3.finess]).await.unwrap()[0].ape,
        Some(bob.id.clone())
    );
    store
        .revoke(
            &bob.id,
            &Role::Ape {
                structure: e3.finess,
            },
        )
        .await
        .unwrap();
    store.grant(&bob.id, &lecteur_e3).await.unwrap();
    assert_eq!(store.structures(&[e3.finess]).await.unwrap()[0].ape, None);

    // The referential update keeps the APE link.
    let renamed = StructureRecord {
        name: "EHPAD Les Tilleuls".into(),
        ..e1.clone()
    };
    store.update_structure(&renamed).await.unwrap();
    let stored = store.structures(&[e1.finess]).await.unwrap().remove(0);
    assert_eq!(stored.name, "EHPAD Les Tilleuls");
    assert_eq!(stored.ape, Some(alice.id.clone()));
    assert!(matches!(
        store.update_structure(&structure(6, "69", None)).await,
        Err(StoreError::NotFound("structure"))
    ));

    // Optimistic concurrency on the account; the e-mail address never changes.
    let saved = Account {
        failed_logins: 1,
        version: 2,
        email: EmailAddress::parse("other@example.fr").unwrap(),
        ..bob.clone()
    };
    store.save_account(&saved).await.unwrap();
    assert!(matches!(
        store.save_account(&saved).await,
        Err(StoreError::Conflict { expected: 1 })
    ));
    let reread = store.account(&bob.id).await.unwrap().unwrap().account;
    assert_eq!((reread.failed_logins, reread.email), (1, bob.email.clone()));

    // Tokens are single use; revoking an account's tokens removes them all.
    let token = |hash: &str| TokenRecord {
        hash: hash.into(),
        purpose: TokenPurpose::Refresh,
        account: bob.id.clone(),
        expires_at: 1_750_000_000,
        acting_for: Some(e1.finess),
        epoch: 2,
        session_started: 1_749_000_000,
    };
    store.put_token(&token("aa")).await.unwrap();
    store.put_token(&token("bb")).await.unwrap();
    let mut listed: Vec<String> = store
        .tokens_of(&bob.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.hash)
        .collect();
    listed.sort();
    assert_eq!(listed, ["aa", "bb"]);
    assert_eq!(store.take_token("aa").await.unwrap(), Some(token("aa")));
    assert_eq!(store.take_token("aa").await.unwrap(), None);
    store.revoke_tokens(&bob.id).await.unwrap();
    assert_eq!(store.take_token("bb").await.unwrap(), None);

    // Revoking the last role deletes the account and frees its e-mail address.
    assert!(matches!(
        store.revoke(&alice.id, &gestionnaire).await,
        Err(StoreError::NotFound("role"))
    ));
    store
        .put_token(&TokenRecord {
            account: alice.id.clone(),
            ..token("cc")
        })
        .await
        .unwrap();
    store
        .revoke(
            &alice.id,
            &Role::Ape {
                structure: e1.finess,
            },
        )
        .await
        .unwrap();
    assert_eq!(store.structures(&[e1.finess]).await.unwrap()[0].ape, None);
    assert_eq!(store.account(&alice.id).await.unwrap(), None);
    assert_eq!(store.account_by_email(&alice.email).await.unwrap(), None);
    assert_eq!(store.take_token("cc").await.unwrap(), None);
    store
        .create_account(
            &alice,
            &Role::Ape {
                structure: e1.finess,
            },
        )
        .await
        .unwrap();
    store.revoke(&bob.id, &lecteur_e3).await.unwrap();
    assert_eq!(
        store.account(&bob.id).await.unwrap().unwrap().roles,
        [gestionnaire]
    );
}

fn job(id: &str) -> ImportJob {
    ImportJob {
        id: id.to_string(),
        status: JobStatus::AwaitingUpload,
        dry_run: false,
        created_by: account(1, "admin@exemple.fr").id,
        created_at: 1_750_000_000,
        updated_at: 1_750_000_000,
        summary: None,
        error: None,
        version: 1,
    }
}

async fn jobs_and_locks_contract(store: impl AccountStore) {
    let id = "0123456789abcdef0123456789abcdef";
    assert_eq!(store.job(id).await.unwrap(), None);
    store.create_job(&job(id)).await.unwrap();
    assert!(matches!(
        store.create_job(&job(id)).await,
        Err(StoreError::Duplicate("job"))
    ));
    let done = ImportJob {
        status: JobStatus::Done,
        summary: Some(serde_json::json!({ "created": 3 })),
        version: 2,
        ..job(id)
    };
    store.save_job(&done).await.unwrap();
    assert_eq!(store.job(id).await.unwrap(), Some(done.clone()));
    assert!(matches!(
        store.save_job(&done).await,
        Err(StoreError::Conflict { expected: 1 })
    ));

    assert!(store.lock("referential", "a", 100, 200).await.unwrap());
    assert!(!store.lock("referential", "b", 150, 250).await.unwrap());
    assert!(
        store.lock("referential", "a", 150, 300).await.unwrap(),
        "extended"
    );
    assert!(!store.lock("referential", "b", 250, 350).await.unwrap());
    assert!(
        store.lock("other", "b", 250, 350).await.unwrap(),
        "locks are by name"
    );
    store.unlock("referential", "b").await.unwrap();
    assert!(
        !store.lock("referential", "b", 250, 350).await.unwrap(),
        "not b's to give back"
    );
    assert!(
        store.lock("referential", "b", 300, 400).await.unwrap(),
        "a's expired"
    );
    store.unlock("referential", "b").await.unwrap();
    assert!(store.lock("referential", "c", 301, 400).await.unwrap());
}

#[tokio::test]
async fn jobs_and_locks_fake_honour_the_contract() {
    jobs_and_locks_contract(MemoryAccountStore::default()).await;
}

#[tokio::test]
async fn jobs_and_locks_on_dynamodb_honour_the_contract() {
    jobs_and_locks_contract(local_stack().await.accounts_table()).await;
}

/// Twenty workers try the same free lock at once: exactly one holds it.
#[tokio::test]
async fn one_of_many_parallel_claims_takes_a_lock() {
    let table = local_stack().await.accounts_table();
    let claims = (0..20).map(|i| {
        let table = table.clone();
        tokio::spawn(async move { table.lock("referential", &format!("w{i}"), 100, 200).await })
    });
    let mut won = 0;
    for claim in claims {
        won += usize::from(claim.await.unwrap().unwrap());
    }
    assert_eq!(won, 1);
    // The same for claims of one job: one save on version 1 succeeds.
    let id = "fedcba9876543210fedcba9876543210";
    table.create_job(&job(id)).await.unwrap();
    let saves = (0..20).map(|_| {
        let table = table.clone();
        tokio::spawn(async move {
            table
                .save_job(&ImportJob {
                    status: JobStatus::Queued,
                    version: 2,
                    ..job(id)
                })
                .await
        })
    });
    let mut saved = 0;
    for save in saves {
        saved += usize::from(save.await.unwrap().is_ok());
    }
    assert_eq!(saved, 1);
}

#[tokio::test]
async fn account_store_fake_honours_the_contract() {
    account_store_contract(MemoryAccountStore::default()).await;
}

#[tokio::test]
async fn account_store_on_dynamodb_honours_the_contract() {
    account_store_contract(local_stack().await.accounts_table()).await;
}

/// DynamoDB Local never throttles, so the sender here really writes only the first half of
/// each batch and hands the rest back as unprocessed, as DynamoDB does under load.
#[tokio::test]
async fn batch_writes_resend_what_dynamodb_left_unprocessed() {
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    let stack = local_stack().await;
    let client = aws_sdk_dynamodb::Client::new(&stack.config);
    let table = stack.provisioned.environment["CAMPAIGN_TABLE"].clone();
    let requests: Vec<WriteRequest> = (0..60)
        .map(|i| {
            let put = PutRequest::builder()
                .item("pk", AttributeValue::S(format!("TEST#{i}")))
                .item("sk", AttributeValue::S("X".into()))
                .build()
                .unwrap();
            WriteRequest::builder().put_request(put).build()
        })
        .collect();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let sizes = std::sync::Mutex::new(Vec::new());
    tdb_aws::item::write_all(requests, |mut batch| {
        calls.fetch_add(1, Ordering::SeqCst);
        sizes.lock().unwrap().push(batch.len());
        let rest = batch.split_off(batch.len().div_ceil(2));
        let (client, table) = (client.clone(), table.clone());
        async move {
            let unprocessed = tdb_aws::item::batch_write_once(&client, &table, batch).await?;
            assert!(unprocessed.is_empty());
            Ok(rest)
        }
    })
    .await
    .unwrap();
    // 25 → 13 written, 12 back → 6, 6 back → 3, 3 → 2, 1 → 1, 0: each batch needs 5 calls.
    assert_eq!(sizes.lock().unwrap()[..6], [25, 12, 6, 3, 1, 25]);
    assert!(calls.load(Ordering::SeqCst) >= 13);
    for i in 0..60 {
        let out = client
            .get_item()
            .table_name(&table)
            .key("pk", AttributeValue::S(format!("TEST#{i}")))
            .key("sk", AttributeValue::S("X".into()))
            .send()
            .await
            .unwrap();
        assert!(out.item().is_some(), "item {i} was written");
    }
}

/// A revoke of someone's last role racing a grant of another role to them: whichever wins,
/// the structure's APE link and the accounts agree. Without the roles revision, the revoke
/// (which read one role) deletes the account just after the grant wrote an APE role and
/// link, leaving the structure pointing at an account that no longer exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoke_racing_a_grant_leaves_accounts_and_ape_links_consistent() {
    let stack = local_stack().await;
    let store = std::sync::Arc::new(stack.accounts_table());
    let rounds = 12u8;
    let structures: Vec<StructureRecord> = (0..rounds)
        .map(|i| structure(100 + u32::from(i), "69", None))
        .collect();
    store.create_structures(&structures).await.unwrap();
    let esms = structure(1, "69", None);
    store
        .create_structures(std::slice::from_ref(&esms))
        .await
        .unwrap();
    let member = Role::Member {
        structure: esms.finess,
        profile: Profile::Gestionnaire,
    };
    let mut outcomes = std::collections::BTreeMap::new();
    for (i, target) in structures.iter().enumerate() {
        let person = account(40 + i as u8, &format!("course{i}@exemple.fr"));
        store.create_account(&person, &member).await.unwrap();
        let ape = Role::Ape {
            structure: target.finess,
        };
        let (revoke, grant) = tokio::join!(
            {
                let store = store.clone();
                let id = person.id.clone();
                tokio::spawn(async move { store.revoke(&id, &member).await })
            },
            {
                let store = store.clone();
                let id = person.id.clone();
                tokio::spawn(async move { store.grant(&id, &ape).await })
            }
        );
        let (revoke, grant) = (revoke.unwrap(), grant.unwrap());
        for result in [&revoke, &grant] {
            assert!(
                matches!(
                    result,
                    Ok(()) | Err(StoreError::Conflict { .. } | StoreError::NotFound(_))
                ),
                "round {i}: {result:?}"
            );
        }
        *outcomes
            .entry(format!(
                "revoke {:?} / grant {:?}",
                revoke.is_ok(),
                grant.is_ok()
            ))
            .or_insert(0) += 1;

        let linked = store.structures(&[target.finess]).await.unwrap()[0]
            .ape
            .clone();
        let stored = store.account(&person.id).await.unwrap();
        match (&linked, &stored) {
            (Some(id), Some(record)) => {
                assert_eq!(id, &person.id);
                assert!(record.roles.contains(&ape), "round {i}");
            }
            (Some(_), None) => panic!("round {i}: the APE link points at a deleted account"),
            (None, Some(record)) => assert!(!record.roles.contains(&ape), "round {i}"),
            (None, None) => {}
        }
        // The e-mail item and the account live and die together.
        let by_email = store.account_by_email(&person.email).await.unwrap();
        assert_eq!(
            by_email.map(|r| r.account.id),
            stored.map(|r| r.account.id),
            "round {i}"
        );
    }
    println!("outcomes over {rounds} rounds: {outcomes:?}");
}

/// Accounts written before the roles revision existed have no `roles_rev`: they load, and
/// grants and revokes work on them (the missing revision reads as 0).
#[tokio::test]
async fn accounts_written_before_the_roles_revision_still_load_and_change() {
    let stack = local_stack().await;
    let store = stack.accounts_table();
    let e1 = structure(1, "69", None);
    let e2 = structure(2, "69", None);
    store
        .create_structures(&[e1.clone(), e2.clone()])
        .await
        .unwrap();
    let person = account(77, "ancien@exemple.fr");
    let member = Role::Member {
        structure: e1.finess,
        profile: Profile::Lecteur,
    };
    store.create_account(&person, &member).await.unwrap();
    aws_sdk_dynamodb::Client::new(&stack.config)
        .update_item()
        .table_name(&stack.provisioned.environment["ACCOUNTS_TABLE"])
        .key("pk", AttributeValue::S(format!("A#{}", person.id)))
        .key("sk", AttributeValue::S("ACCOUNT".into()))
        .update_expression("REMOVE roles_rev")
        .send()
        .await
        .unwrap();
    assert!(store.account(&person.id).await.unwrap().is_some());
    let ape = Role::Ape {
        structure: e2.finess,
    };
    store.grant(&person.id, &ape).await.unwrap();
    store.revoke(&person.id, &member).await.unwrap();
    let record = store.account(&person.id).await.unwrap().unwrap();
    assert_eq!(record.roles, vec![ape]);
    // An APE role is not overwritten by a profile on the same structure.
    assert!(matches!(
        store
            .grant(
                &person.id,
                &Role::Member {
                    structure: e2.finess,
                    profile: Profile::Gestionnaire
                }
            )
            .await,
        Err(StoreError::Conflict { .. })
    ));
}
