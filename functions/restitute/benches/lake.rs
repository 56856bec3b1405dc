//! The lake on a generated national campaign, against the local stack (docs/lake.md):
//! the snapshot's time and size; the peer statistics with our DataFusion path against the
//! same SQL in DuckDB (lake/duckdb_lake.py, pinned) on the same Parquet files in S3, in the
//! same run; one restitution's warm latency through the API.
//!
//! `cargo bench -p restitute --bench lake` (30,000 establishments; the local stack started,
//! DuckDB installed by `lake/install.sh` or named by TDB_DUCKDB_PYTHON). Under `cargo test`
//! it runs small, to prove it still works.

use std::time::{Duration, Instant};
use tdb_aws::accounts::AccountsTable;
use tdb_aws::dynamo::CampaignTable;
use tdb_domain::accounts::StructureRecord;
use tdb_domain::campaign::{CampaignYear, Platform, QuestionnaireStatus};
use tdb_domain::generator::{GeneratorConfig, generate};
use tdb_domain::ports::{AccountStore, QuestionnaireStore};

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let establishments = if full { 30_000 } else { 300 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(establishments));
}

async fn run(establishments: usize) {
    tdb_testkit::local_endpoint();
    let config = tdb_aws::load_config().await;
    let stack = tdb_testkit::unique_name("lbench");
    let provisioned = tdb_aws::provision::provision_stack(&config, &stack, "bench@tdb-esms.test")
        .await
        .expect("the local stack answers: is it started?");
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let campaign = CampaignTable::new(dynamo.clone(), &provisioned.environment["CAMPAIGN_TABLE"]);
    let accounts = AccountsTable::new(dynamo, &provisioned.environment["ACCOUNTS_TABLE"]);
    let bucket = provisioned.environment["LAKE_BUCKET"].clone();
    let campaigns = tdb_api::shipped_campaigns().unwrap();
    let year = CampaignYear::new(2025).unwrap();
    let definitions = &campaigns[&year];
    let generated = generate(
        definitions,
        &GeneratorConfig {
            establishments,
            seed: 2025,
            ..Default::default()
        },
        |_, _| {},
    );
    accounts
        .create_structures(&StructureRecord::from_referential(&generated.referential))
        .await
        .unwrap();
    // Nine in ten validated, as at a closure.
    let stored = generated.stored(definitions, year, |n| {
        (n % 10 != 9).then_some(QuestionnaireStatus::Validated)
    });
    let started = Instant::now();
    for chunk in stored.chunks(2000) {
        campaign.create(chunk).await.unwrap();
    }
    println!(
        "{} questionnaires written to DynamoDB Local in {:.0} s",
        stored.len(),
        started.elapsed().as_secs_f64()
    );
    let questionnaires = stored.len();
    // The region with the most generic questionnaires, for the export.
    let mut by_region = std::collections::BTreeMap::new();
    for q in &stored {
        if q.respondent.kind.platform() == Platform::Generic
            && let Some(region) = q.departement.region()
        {
            *by_region.entry(region.code()).or_insert(0usize) += 1;
        }
    }
    let (largest_region, largest_count) = by_region.into_iter().max_by_key(|(_, n)| *n).unwrap();
    drop(stored);
    drop(generated);
    let lake = restitute::Lake::from_env(&bucket).unwrap();

    // The reference: the same pages read from DynamoDB Local, and nothing else.
    let started = Instant::now();
    let (mut page, mut read) = (None, 0);
    loop {
        let listed = campaign.scan(year, page).await.unwrap();
        read += listed.items.len();
        match listed.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    assert_eq!(read, questionnaires);
    let raw_scan = started.elapsed();

    // The snapshot.
    let started = Instant::now();
    let outcome = restitute::snapshot::take(
        &campaign,
        &accounts,
        definitions,
        &lake,
        year,
        restitute::SnapshotKind::Final,
        1_760_000_000,
    )
    .await
    .unwrap();
    let snapshot_time = started.elapsed();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let mut sizes = Vec::new();
    for (table, files) in &outcome.manifest.tables {
        let mut bytes = 0;
        for file in &files.files {
            let head = s3
                .head_object()
                .bucket(&bucket)
                .key(file)
                .send()
                .await
                .unwrap();
            bytes += head.content_length().unwrap_or(0);
        }
        sizes.push(format!(
            "{table} {} rows {:.1} MB",
            files.rows,
            bytes as f64 / 1e6
        ));
    }
    println!(
        "snapshot of {questionnaires} questionnaires ({establishments} establishments): {:.1} s, \
         read from DynamoDB Local, evaluated and written to LocalStack's S3, against {:.1} s for \
         reading the same pages alone (ratio {:.2}); {}",
        snapshot_time.as_secs_f64(),
        raw_scan.as_secs_f64(),
        snapshot_time.as_secs_f64() / raw_scan.as_secs_f64(),
        sizes.join(", ")
    );

    // The statistics: the same SQL over the same indicators file, on both engines.
    let sql = restitute::stats::benchmarks_sql().replace("FROM indicators", "FROM indicators_2025");
    // Both engines attach the lake first (a view per table), then run the query 5 times.
    let context = lake.session().unwrap();
    lake.attach(&context).await.unwrap();
    let mut ours = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let rows: usize = context
            .sql(&sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert!(rows > 0);
        ours.push(started.elapsed());
    }
    let ours = median(ours);
    let python = std::env::var("TDB_DUCKDB_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/tdb-esms/duckdb/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lake/duckdb_lake.py");
    let out = std::process::Command::new(&python)
        .arg(script)
        .args(["--bucket", &bucket, "--repeat", "5"])
        .arg(&sql)
        .output()
        .expect("DuckDB: run lake/install.sh or set TDB_DUCKDB_PYTHON");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let timings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let theirs = median(
        timings["seconds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Duration::from_secs_f64(s.as_f64().unwrap()))
            .collect(),
    );
    println!(
        "peer statistics (every indicator × category × national, region, département, peer group; \
         11 quantiles each), median of 5 runs of the query over the same files in S3: \
         DataFusion {:.0} ms, DuckDB 1.4.4 {:.0} ms: ratio {:.2}",
        ours.as_secs_f64() * 1e3,
        theirs.as_secs_f64() * 1e3,
        ours.as_secs_f64() / theirs.as_secs_f64()
    );

    // One restitution, warm, through the API.
    campaign
        .close(
            year,
            Platform::Generic,
            &tdb_domain::workflow::Closure {
                by: "bench".into(),
                at: 1_760_000_000,
                counts: Default::default(),
            },
        )
        .await
        .unwrap();
    let key = accounts::generate_signing_key();
    let signer = accounts::TokenSigner::from_pem(&key, "https://bench", "tdb-esms").unwrap();
    let verifier =
        tdb_api::TokenVerifier::from_jwks(&signer.jwks_json(), "https://bench", "tdb-esms")
            .unwrap();
    let app = restitute::App::new(
        campaign.clone(),
        accounts.clone(),
        tdb_api::Campaigns::new(tdb_api::shipped_campaigns().unwrap()),
        lake.clone(),
        verifier,
        tdb_api::system_clock(),
    )
    .unwrap();
    let router = restitute::router(app);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token = signer.sign(
        &tdb_domain::accounts::AccountId::from_random([9; 16]),
        vec![tdb_domain::rights::Role::NationalAdmin],
        None,
        now,
    );
    // Forty EHPAD, from as many pages (one département at a time) as it takes.
    let (mut ehpad, mut page) = (Vec::new(), None);
    while ehpad.len() < 40 {
        let listed = campaign.scan(year, page).await.unwrap();
        ehpad.extend(
            listed
                .items
                .iter()
                .filter(|q| q.respondent.kind.key() == "EHPAD")
                .map(|q| q.respondent.finess.to_string()),
        );
        match listed.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    ehpad.truncate(40);
    assert!(!ehpad.is_empty(), "the campaign has EHPAD");
    let mut latencies = Vec::new();
    for (n, finess) in ehpad.iter().cycle().take(ehpad.len() * 2).enumerate() {
        use tower::ServiceExt;
        let started = Instant::now();
        let response = router
            .clone()
            .oneshot(
                axum::http::Request::get(format!("/restitutions/2025/{finess}"))
                    .header("authorization", format!("Bearer {token}"))
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        // The first request registers the snapshot's tables: not a warm one.
        if n > 0 {
            latencies.push(started.elapsed());
        }
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!(
        "one restitution, warm, through the API ({} requests over {} EHPAD): p50 {:.1} ms, p99 {:.1} ms (target p50 under 150 ms)",
        latencies.len(),
        ehpad.len(),
        p(0.5),
        p(0.99)
    );

    // The largest region's export, as its ARS downloads it (Lambda answers at most 6 MB).
    let started = Instant::now();
    let response = {
        use tower::ServiceExt;
        router
            .clone()
            .oneshot(
                axum::http::Request::get(format!(
                    "/restitutions/2025/export?region={largest_region}"
                ))
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap(),
            )
            .await
            .unwrap()
    };
    assert_eq!(response.status(), 200);
    let ready: serde_json::Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    let written = started.elapsed();
    let file = reqwest::get(ready["url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    println!(
        "the largest region's export (region {largest_region}, {largest_count} generic questionnaires): \
         {:.1} MB, written to S3 and linked in {:.0} ms, downloaded in {:.0} ms",
        file.len() as f64 / 1e6,
        written.as_secs_f64() * 1e3,
        (started.elapsed() - written).as_secs_f64() * 1e3
    );
}
