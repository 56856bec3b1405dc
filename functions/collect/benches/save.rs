//! The save path on the local stack (DynamoDB Local): `clients` concurrent Gestionnaires,
//! each saving items of its own EHPAD's questionnaire through the function's router (token
//! check, rights, current roles, read, checks, evaluation, conditional write, audit
//! entry), against the raw SDK writing the same questionnaire items at the same
//! concurrency in the same run. Also: opening a campaign of `structures` structures, and
//! the largest stored questionnaire.
//!
//! `cargo bench -p collect --bench save` (50 clients, 30,000 structures; the local stack
//! must be started). Under `cargo test` it runs small, to prove it still works.

use accounts::{TokenSigner, generate_signing_key};
use axum::body::Body;
use axum::http::Request;
use collect::App;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tdb_api::TokenVerifier;
use tdb_aws::accounts::AccountsTable;
use tdb_aws::dynamo::CampaignTable;
use tdb_domain::accounts::{Account, AccountId, Person, StructureRecord};
use tdb_domain::campaign::CampaignYear;
use tdb_domain::email::EmailAddress;
use tdb_domain::ports::{AccountStore, QuestionnaireStore};
use tdb_domain::rights::{Profile, Role};
use tdb_domain::{Category, Finess, RespondentKind};
use tower::ServiceExt;

const ISSUER: &str = "https://api.tdb-esms.test";
/// 20 May 2025: collection is open.
const IN_COLLECTION: i64 = 1_747_699_200;

/// CPU time (user + system) a process has used, from `/proc/<pid>/stat`, if readable.
fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel's USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// DynamoDB Local's process id, as the project's start script records it.
fn dynamodb_pid() -> Option<String> {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../localstack/.run/dynamodb.pid"
    );
    Some(std::fs::read_to_string(file).ok()?.trim().to_string())
}

/// CPU used by this process and by DynamoDB Local during `f`, per operation, in µs.
struct CpuShare {
    ours: Option<Duration>,
    dynamodb: Option<Duration>,
}

impl CpuShare {
    fn start() -> CpuShare {
        CpuShare {
            ours: cpu_time("self"),
            dynamodb: dynamodb_pid().and_then(|p| cpu_time(&p)),
        }
    }

    fn per_operation(&self, operations: usize) -> String {
        let now = CpuShare::start();
        let per = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => {
                format!("{:.0} µs", (b - a).as_secs_f64() * 1e6 / operations as f64)
            }
            _ => "unknown".into(),
        };
        format!(
            "CPU per operation: bench process {}, DynamoDB Local {}",
            per(self.ours, now.ours),
            per(self.dynamodb, now.dynamodb)
        )
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * p) as usize]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (clients, saves_per_client, structures) = if full { (50, 40, 30_000) } else { (4, 3, 200) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        tdb_testkit::local_endpoint();
        let config = tdb_aws::load_config().await;
        let stack = tdb_testkit::unique_name("bench");
        let provisioned = tdb_aws::provision::provision_stack(&config, &stack, "bench@tdb-esms.test")
            .await
            .expect("the local stack answers: is it started?");
        let dynamo = aws_sdk_dynamodb::Client::new(&config);
        let campaign_table = provisioned.environment["CAMPAIGN_TABLE"].clone();
        let campaign = CampaignTable::new(dynamo.clone(), &campaign_table)
            .guarded_by(&provisioned.environment["ACCOUNTS_TABLE"]);
        let accounts = AccountsTable::new(dynamo.clone(), &provisioned.environment["ACCOUNTS_TABLE"]);

        // The referential: `structures` EHPAD over the départements of the mainland.
        let deps: Vec<String> = (1..=95).filter(|d| *d != 20).map(|d| format!("{d:02}")).collect();
        let records: Vec<StructureRecord> = (0..structures)
            .map(|n| {
                let finess = Finess::with_key(&format!("{}{:06}", deps[n % deps.len()], n / deps.len()))
                    .unwrap();
                StructureRecord {
                    finess,
                    kind: RespondentKind::Esms(Category::Ehpad),
                    name: format!("EHPAD {n}"),
                    legal_entity: finess,
                    og: None,
                    principal: None,
                    ape: None,
                }
            })
            .collect();
        accounts.create_structures(&records).await.unwrap();

        let signer = TokenSigner::from_pem(&generate_signing_key(), ISSUER, "tdb-esms").unwrap();
        let verifier = TokenVerifier::from_jwks(&signer.jwks_json(), ISSUER, "tdb-esms").unwrap();
        let year = CampaignYear::new(2025).unwrap();
        let definitions = tdb_domain::questionnaire::builtin::load(2025).unwrap().unwrap();
        let largest = Category::ALL
            .iter()
            .map(|c| RespondentKind::Esms(*c))
            .chain([RespondentKind::Og])
            .map(|k| collect::largest_stored_size(definitions.for_kind(k), k))
            .max()
            .unwrap();
        let app = Arc::new(App::new(
            campaign.clone(),
            campaign.clone(),
            accounts.clone(),
            BTreeMap::from([(year, definitions)]),
            verifier,
            Arc::new(|| IN_COLLECTION),
        ));
        let router = collect::router(app);
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let national = AccountId::from_random([255; 16]);
        accounts
            .create_account(
                &Account::new(
                    national.clone(),
                    EmailAddress::parse("national@bench.test").unwrap(),
                    Person { last_name: "B".into(), first_name: "N".into(), phone: None },
                    wall,
                ),
                &Role::NationalAdmin,
            )
            .await
            .unwrap();
        let national = signer.sign(&national, vec![Role::NationalAdmin], None, wall);

        // Opening the campaign.
        let started = Instant::now();
        let response = router
            .clone()
            .oneshot(
                Request::post("/questionnaires/2025/opening")
                    .header("authorization", format!("Bearer {national}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let opening = started.elapsed();

        // One Gestionnaire per client, each on its own EHPAD.
        let mut tokens = Vec::new();
        for (n, record) in records.iter().take(clients).enumerate() {
            let id = AccountId::from_random([n as u8 + 1; 16]);
            let role = Role::Member { structure: record.finess, profile: Profile::Gestionnaire };
            accounts
                .create_account(
                    &Account::new(
                        id.clone(),
                        EmailAddress::parse(&format!("g{n}@bench.test")).unwrap(),
                        Person { last_name: "B".into(), first_name: "G".into(), phone: None },
                        wall,
                    ),
                    &role,
                )
                .await
                .unwrap();
            tokens.push((record.finess, signer.sign(&id, vec![role], None, wall)));
        }
        let items = ["cap_auth_perm", "cap_inst_perm", "journees_perm", "personnes_31_12", "entrees"];

        // Our saves.
        let cpu = CpuShare::start();
        let started = Instant::now();
        let tasks = tokens.iter().cloned().map(|(finess, token)| {
            let router = router.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for n in 0..saves_per_client {
                    let body = serde_json::json!({
                        "base_version": n + 1,
                        "answers": { items[n % items.len()]: 80 + n },
                    });
                    let t = Instant::now();
                    let response = router
                        .clone()
                        .oneshot(
                            Request::patch(format!("/questionnaires/2025/{finess}"))
                                .header("authorization", format!("Bearer {token}"))
                                .header("content-type", "application/json")
                                .body(Body::from(body.to_string()))
                                .unwrap(),
                        )
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                    latencies.push(t.elapsed());
                }
                latencies
            })
        });
        let mut ours = Vec::new();
        for task in tasks {
            ours.extend(task.await.unwrap());
        }
        let ours_time = started.elapsed();
        let ours_cpu = cpu.per_operation(clients * saves_per_client);

        // The reference: the raw SDK writing the same questionnaire items, same concurrency.
        let cpu = CpuShare::start();
        let started = Instant::now();
        let tasks = tokens.iter().map(|(finess, _)| {
            let (campaign, finess, dynamo) = (campaign.clone(), *finess, dynamo.clone());
            let table = campaign_table.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut q = campaign.get(year, finess).await.unwrap().unwrap();
                for _ in 0..saves_per_client {
                    q.version += 1;
                    let t = Instant::now();
                    dynamo
                        .put_item()
                        .table_name(&table)
                        .set_item(Some(tdb_aws::dynamo::questionnaire_item(&q).unwrap()))
                        .condition_expression("version = :expected")
                        .expression_attribute_values(
                            ":expected",
                            aws_sdk_dynamodb::types::AttributeValue::N((q.version - 1).to_string()),
                        )
                        .send()
                        .await
                        .unwrap();
                    latencies.push(t.elapsed());
                }
                latencies
            })
        });
        let mut raw = Vec::new();
        for task in tasks {
            raw.extend(task.await.unwrap());
        }
        let raw_time = started.elapsed();
        let raw_cpu = cpu.per_operation(clients * saves_per_client);

        // Second reference: the two store requests a save makes (the questionnaire read with
        // last year's, then the answers, the trail line and the role check in one
        // transaction), without the function around them.
        let cpu = CpuShare::start();
        let started = Instant::now();
        let tasks = tokens.iter().enumerate().map(|(n, (finess, _))| {
            let (campaign, finess) = (campaign.clone(), *finess);
            tokio::spawn(async move {
                let id = AccountId::from_random([n as u8 + 1; 16]);
                let role = Role::Member { structure: finess, profile: Profile::Gestionnaire };
                let mut latencies = Vec::new();
                for _ in 0..saves_per_client {
                    let t = Instant::now();
                    let before = campaign.get_with_previous(year, finess).await.unwrap().current.unwrap();
                    let mut q = before.clone();
                    q.version += 1;
                    let entry = tdb_domain::ports::AuditEntry {
                        at: q.version as i64,
                        actor: id.to_string(),
                        action: "save".into(),
                        detail: serde_json::json!({ "version": q.version }),
                    };
                    let held = tdb_domain::ports::HeldRole { account: &id, role: &role };
                    let write = tdb_domain::ports::AuditedWrite {
                        before: &before,
                        after: &q,
                        entry: &entry,
                        held: Some(held),
                    };
                    campaign.put_audited(write).await.unwrap();
                    latencies.push(t.elapsed());
                }
                latencies
            })
        });
        let mut requests = Vec::new();
        for task in tasks {
            requests.extend(task.await.unwrap());
        }
        let requests_time = started.elapsed();
        let requests_cpu = cpu.per_operation(clients * saves_per_client);

        let total = (clients * saves_per_client) as f64;
        let (ours_rate, raw_rate) = (total / ours_time.as_secs_f64(), total / raw_time.as_secs_f64());
        println!("collect save path, {clients} concurrent clients × {saves_per_client} saves (DynamoDB Local)");
        println!(
            "  saves through the router: {ours_rate:.0}/s, p50 {:.1} ms, p99 {:.1} ms",
            percentile(&mut ours, 0.5).as_secs_f64() * 1e3,
            percentile(&mut ours, 0.99).as_secs_f64() * 1e3
        );
        println!(
            "  reference, raw conditional PutItem of the same items: {raw_rate:.0}/s, p50 {:.1} ms, p99 {:.1} ms",
            percentile(&mut raw, 0.5).as_secs_f64() * 1e3,
            percentile(&mut raw, 0.99).as_secs_f64() * 1e3
        );
        println!("  ratio saves / raw writes: {:.2}", ours_rate / raw_rate);
        let requests_rate = total / requests_time.as_secs_f64();
        println!(
            "  the save's own two store requests without the function: {requests_rate:.0}/s, p50 {:.1} ms, p99 {:.1} ms (ratio saves / these: {:.2})",
            percentile(&mut requests, 0.5).as_secs_f64() * 1e3,
            percentile(&mut requests, 0.99).as_secs_f64() * 1e3,
            ours_rate / requests_rate
        );
        println!("  saves: {ours_cpu}");
        println!("  raw writes: {raw_cpu}");
        println!("  the save's store requests: {requests_cpu}");
        println!(
            "opening a campaign of {structures} structures: {:.1} s",
            opening.as_secs_f64()
        );
        println!("largest stored questionnaire (every item at its longest): {largest} bytes (DynamoDB limit 400 KB)");
    });
}
