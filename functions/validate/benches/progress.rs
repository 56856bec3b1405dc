//! Progress and checks against the local stack (DynamoDB Local), through the validate
//! function's router:
//!
//! - a region's summary and its structures (CSV, every page) and the country's, for a
//!   generated campaign of `establishments`, against the raw SDK making the same queries
//!   (the progress counters' partition; the by-territory index, page by page);
//! - the checks of one full questionnaire, against the domain's evaluation of the same
//!   answers alone.
//!
//! `cargo bench -p validate --bench progress` (30,000 establishments; the local stack must
//! be started). Under `cargo test` it runs small, to prove it still works.

use accounts::{TokenSigner, generate_signing_key};
use axum::body::Body;
use axum::http::Request;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tdb_api::TokenVerifier;
use tdb_aws::accounts::AccountsTable;
use tdb_aws::dynamo::CampaignTable;
use tdb_domain::accounts::{Account, AccountId, Person, StructureRecord};
use tdb_domain::campaign::CampaignYear;
use tdb_domain::email::EmailAddress;
use tdb_domain::generator::{GeneratorConfig, Quality, generate};
use tdb_domain::ports::{AccountStore, QuestionnaireStore};
use tdb_domain::rights::{Profile, Role};
use tdb_domain::{Category, Departement, Region, RespondentKind};
use tower::ServiceExt;

const ISSUER: &str = "https://api.tdb-esms.test";
/// 20 May 2025: collection is open.
const IN_COLLECTION: i64 = 1_747_699_200;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * p) as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50 and p99 of `runs` timings of `f`.
async fn timed<F, Fut>(runs: usize, mut f: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f().await;
        samples.push(t.elapsed());
    }
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
    )
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (establishments, runs) = if full { (30_000, 20) } else { (600, 2) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        tdb_testkit::local_endpoint();
        let config = tdb_aws::load_config().await;
        let stack = tdb_testkit::unique_name("vbench");
        let provisioned = tdb_aws::provision::provision_stack(&config, &stack, "bench@tdb-esms.test")
            .await
            .expect("the local stack answers: is it started?");
        let dynamo = aws_sdk_dynamodb::Client::new(&config);
        let accounts_table = provisioned.environment["ACCOUNTS_TABLE"].clone();
        let campaign_table = provisioned.environment["CAMPAIGN_TABLE"].clone();
        let campaign = CampaignTable::new(dynamo.clone(), &campaign_table).guarded_by(&accounts_table);
        let accounts = AccountsTable::new(dynamo.clone(), &accounts_table);
        let year = CampaignYear::new(2025).unwrap();
        let definitions = tdb_domain::questionnaire::builtin::load(2025).unwrap().unwrap();

        let generated = generate(
            &definitions,
            &GeneratorConfig { establishments, seed: 2025, ..Default::default() },
            |_, _| {},
        );
        let structures = StructureRecord::from_referential(&generated.referential);
        accounts.create_structures(&structures).await.unwrap();
        let started = Instant::now();
        let opened = collect::open_campaign(&campaign, &accounts, year, IN_COLLECTION, "bench")
            .await
            .unwrap()
            .unwrap();
        println!(
            "campaign of {establishments} establishments: {} questionnaires opened in {:.1} s",
            opened.created,
            started.elapsed().as_secs_f64()
        );

        let signer = TokenSigner::from_pem(&generate_signing_key(), ISSUER, "tdb-esms").unwrap();
        let verifier = || TokenVerifier::from_jwks(&signer.jwks_json(), ISSUER, "tdb-esms").unwrap();
        let clock: collect::Clock = std::sync::Arc::new(|| IN_COLLECTION);
        let validate = validate::router(validate::App::new(
            campaign.clone(),
            accounts.clone(),
            tdb_aws::ses::SesMailer::new(aws_sdk_ses::Client::new(&config), "bench@tdb-esms.test"),
            tdb_aws::s3::S3Lake::new(&config, &provisioned.environment["LAKE_BUCKET"]),
            BTreeMap::from([(year, definitions.clone())]),
            verifier(),
            clock.clone(),
        ));
        let collect = collect::router(collect::App::new(
            campaign.clone(),
            campaign.clone(),
            accounts.clone(),
            BTreeMap::from([(year, definitions.clone())]),
            verifier(),
            clock,
        ));
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let token = |n: u8, role: Role| {
            let accounts = accounts.clone();
            let signer = &signer;
            async move {
                let id = AccountId::from_random([n; 16]);
                let account = Account::new(
                    id.clone(),
                    EmailAddress::parse(&format!("b{n}@bench.test")).unwrap(),
                    Person { last_name: "B".into(), first_name: "B".into(), phone: None },
                    wall,
                );
                accounts.create_account(&account, &role).await.unwrap();
                signer.sign(&id, vec![role], None, wall)
            }
        };

        // The region with the most structures.
        let mut by_region: BTreeMap<u8, usize> = BTreeMap::new();
        for s in &structures {
            if s.principal.is_none()
                && let Some(region) = s.departement().region()
            {
                *by_region.entry(region.code()).or_default() += 1;
            }
        }
        let (&code, &in_region) = by_region.iter().max_by_key(|(_, n)| **n).unwrap();
        let region = Region::from_code(code).unwrap();
        let national = token(1, Role::NationalAdmin).await;
        let ars = token(2, Role::RegionalAdmin { region }).await;

        let get = |path: String, token: String| {
            let router = validate.clone();
            async move {
                let response = router
                    .oneshot(
                        Request::get(path)
                            .header("authorization", format!("Bearer {token}"))
                            .body(Body::empty())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap()
            }
        };

        println!("progress views, {runs} runs each (p50 / p99):");
        let summary = format!("/validation/2025/progress?region={code}");
        let (p50, p99) = timed(runs, || { let f = get(summary.clone(), ars.clone()); async { f.await; } }).await;
        let (raw50, _) = timed(runs, || {
            let campaign = campaign.clone();
            async move { campaign.progress(year).await.unwrap(); }
        })
        .await;
        println!(
            "  region {code} summary ({in_region} structures): {:.1} / {:.1} ms; raw query of the counters {:.1} ms (ratio {:.2})",
            ms(p50), ms(p99), ms(raw50), p50.as_secs_f64() / raw50.as_secs_f64()
        );
        let listing = format!("/validation/2025/progress/structures?region={code}&format=csv");
        let (p50, p99) = timed(runs, || { let f = get(listing.clone(), ars.clone()); async { f.await; } }).await;
        let departements: Vec<Departement> = Departement::all().filter(|d| d.region() == Some(region)).collect();
        let raw_listing = |departements: Vec<Departement>| {
            let campaign = campaign.clone();
            async move {
                for d in departements {
                    let mut page = None;
                    loop {
                        let p = campaign.list_by_departement(year, d, None, page, 100).await.unwrap();
                        match p.next {
                            Some(next) => page = Some(next),
                            None => break,
                        }
                    }
                }
            }
        };
        let (raw50, _) = timed(runs, || raw_listing(departements.clone())).await;
        println!(
            "  region {code} structures as CSV: {:.1} / {:.1} ms; raw paged queries of the index {:.1} ms (ratio {:.2})",
            ms(p50), ms(p99), ms(raw50), p50.as_secs_f64() / raw50.as_secs_f64()
        );
        let (p50, p99) = timed(runs, || { let f = get("/validation/2025/progress".into(), national.clone()); async { f.await; } }).await;
        println!("  country summary ({} questionnaires): {:.1} / {:.1} ms", opened.created, ms(p50), ms(p99));
        let country_runs = runs.min(3);
        let (p50, _) = timed(country_runs, || {
            let f = get("/validation/2025/progress/structures?format=csv".into(), national.clone());
            async { f.await; }
        })
        .await;
        let (raw50, _) = timed(country_runs, || raw_listing(Departement::all().collect())).await;
        println!(
            "  country structures as CSV: {:.0} ms; raw paged queries {:.0} ms (ratio {:.2})",
            ms(p50), ms(raw50), p50.as_secs_f64() / raw50.as_secs_f64()
        );

        // The checks of one full EHPAD questionnaire.
        let ehpad = generated
            .questionnaires
            .iter()
            .find(|q| q.respondent.kind == RespondentKind::Esms(Category::Ehpad) && q.quality == Quality::Complete)
            .unwrap();
        let finess = ehpad.respondent.finess;
        let definition = definitions.for_kind(ehpad.respondent.kind);
        let gestionnaire = token(3, Role::Member { structure: finess, profile: Profile::Gestionnaire }).await;
        let body = serde_json::json!({ "base_version": 1, "answers": definition.answers_to_json(&ehpad.answers) });
        let response = collect
            .oneshot(
                Request::patch(format!("/questionnaires/2025/{finess}"))
                    .header("authorization", format!("Bearer {gestionnaire}"))
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let checks_runs = runs * 5;
        let (p50, p99) = timed(checks_runs, || {
            let f = get(format!("/validation/2025/{finess}"), gestionnaire.clone());
            async { f.await; }
        })
        .await;
        let stored = campaign.get(year, finess).await.unwrap().unwrap();
        let (eval50, _) = timed(checks_runs, || {
            let answers = definition.carry_over(ehpad.respondent.kind, &stored.answers);
            std::hint::black_box(definition.evaluate(ehpad.respondent.kind, &answers, None));
            async {}
        })
        .await;
        println!(
            "checks of one full EHPAD questionnaire ({} answers) through the API: {:.2} / {:.2} ms; the domain's evaluation alone {:.3} ms",
            stored.answers.len(), ms(p50), ms(p99), ms(eval50)
        );
    });
}
