//! The national referential import on the local stack: a generated Etalab extract of
//! 100,000 establishments (about a third in the campaign's scope, as in FINESS) uploaded
//! through a presigned URL and imported by the upload worker, then the same file again
//! (nothing to write). The reference, measured in the same run: the raw SDK writing as many
//! structure items with `BatchWriteItem`, 25 at a time, which is the floor of what the
//! import writes. Prints both times, the ratio, and the process's peak memory.
//!
//! `cargo bench -p accounts --bench referential` (the local stack must be started:
//! `bash localstack/start.sh; source localstack/.run/env`). Under `cargo test` it runs on
//! 2,000 establishments, to prove it still works.

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tdb_aws::accounts::AccountsTable;
use tdb_aws::s3::S3Lake;
use tdb_domain::accounts::{ImportJob, JobStatus};
use tdb_domain::ports::{AccountStore, Lake};
use tdb_domain::{Category, Finess};

/// A deterministic pseudo-random sequence (the same extract on every run).
struct Sequence(u64);

impl Sequence {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// An Etalab extract: `rows` establishments over the mainland départements; legal entities
/// manage one establishment (most) up to dozens; about a third in the campaign's scope.
fn extract(rows: usize) -> (Vec<u8>, usize) {
    let in_scope: Vec<u16> = (1..1000)
        .filter(|c| Category::from_finess_code(*c).is_some())
        .collect();
    let out_of_scope = [355u16, 620, 124, 365, 698];
    let departements: Vec<String> = (1..=95)
        .filter(|d| *d != 20)
        .map(|d| format!("{d:02}"))
        .collect();
    let mut random = Sequence(2025);
    let mut lines = vec!["finess;etalab;1.2;2025-01-06".to_string()];
    let mut entity = Finess::with_key("01900000").unwrap();
    let mut scope = 0;
    for n in 0..rows {
        let dep = &departements[n % departements.len()];
        let et = Finess::with_key(&format!("{dep}{:06}", n / departements.len())).unwrap();
        // Four in ten establishments open a new legal entity; the others join a recent one.
        if n == 0 || random.next(10) < 4 {
            entity = Finess::with_key(&format!("{dep}9{:05}", n / departements.len())).unwrap();
        }
        let category = if random.next(3) == 0 {
            scope += 1;
            in_scope[random.next(in_scope.len() as u64) as usize]
        } else {
            out_of_scope[random.next(out_of_scope.len() as u64) as usize]
        };
        let mut fields = vec![String::new(); 32];
        fields[0] = "structureet".into();
        fields[1] = et.to_string();
        fields[2] = entity.to_string();
        fields[3] = format!("ETABLISSEMENT {n}");
        fields[4] = format!("Établissement numéro {n}");
        fields[13] = dep.clone();
        fields[18] = category.to_string();
        lines.push(fields.join(";"));
    }
    (lines.join("\n").into_bytes(), scope)
}

/// The floor: `count` items the size of a structure item, written with the raw SDK.
async fn raw_batch_writes(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    count: usize,
) -> Duration {
    let started = Instant::now();
    let items: Vec<WriteRequest> = (0..count)
        .map(|i| {
            let item = HashMap::from([
                ("pk".to_string(), AttributeValue::S(format!("RAW#{i}"))),
                ("sk".to_string(), AttributeValue::S("STRUCTURE".into())),
                ("gsi1pk".to_string(), AttributeValue::S("DEP#69".into())),
                ("gsi1sk".to_string(), AttributeValue::S(format!("0#{i:09}"))),
                ("gsi2sk".to_string(), AttributeValue::S(format!("0#{i:09}"))),
                (
                    "record".to_string(),
                    AttributeValue::S(format!(
                        r#"{{"finess":"69{i:07}","kind":{{"esms":"EHPAD"}},"name":"Établissement numéro {i}","legal_entity":"699{i:06}","og":null,"principal":null}}"#
                    )),
                ),
            ]);
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        })
        .collect();
    for batch in items.chunks(25) {
        let mut pending = batch.to_vec();
        while !pending.is_empty() {
            let out = client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .unwrap();
            pending = out
                .unprocessed_items()
                .and_then(|u| u.get(table))
                .cloned()
                .unwrap_or_default();
        }
    }
    started.elapsed()
}

fn peak_memory_mb() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or("?".into(), |kb| format!("{:.0}", kb as f64 / 1024.0))
}

/// Uploads `file` for a new job as the administrator's client would, processes it as the
/// S3 event would, and returns the job and the time from upload to done.
async fn import(
    uploads: &accounts::jobs::Uploads<AccountsTable, S3Lake>,
    store: &AccountsTable,
    lake: &S3Lake,
    id: &str,
    file: Vec<u8>,
) -> (ImportJob, Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    store
        .create_job(&ImportJob {
            id: id.to_string(),
            status: JobStatus::AwaitingUpload,
            dry_run: false,
            created_by: tdb_domain::accounts::AccountId::from_random([1; 16]),
            created_at: now,
            updated_at: now,
            summary: None,
            error: None,
            version: 1,
        })
        .await
        .unwrap();
    let key = format!("{}{id}.csv", accounts::jobs::UPLOAD_PREFIX);
    let url = lake
        .upload_url(&key, Duration::from_secs(900))
        .await
        .unwrap();
    let started = Instant::now();
    let put = reqwest::Client::new()
        .put(url)
        .body(file)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    uploads.process_upload(&key).await.unwrap();
    let elapsed = started.elapsed();
    (store.job(id).await.unwrap().unwrap(), elapsed)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rows = if full { 100_000 } else { 2_000 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        tdb_testkit::local_endpoint();
        let config = tdb_aws::load_config().await;
        let stack = tdb_testkit::unique_name("bench");
        let provisioned =
            tdb_aws::provision::provision_stack(&config, &stack, "bench@tdb-esms.test")
                .await
                .expect("the local stack answers: is it started?");
        let table_name = &provisioned.environment["ACCOUNTS_TABLE"];
        let dynamo = aws_sdk_dynamodb::Client::new(&config);
        let store = AccountsTable::new(dynamo.clone(), table_name);
        let lake = S3Lake::new(&config, &provisioned.names["LakeBucket"]);
        let uploads =
            accounts::jobs::Uploads::new(store.clone(), lake.clone(), accounts::system_clock());

        let (file, in_scope) = extract(rows);
        let megabytes = file.len() as f64 / 1e6;
        let (first, first_time) = import(
            &uploads,
            &store,
            &lake,
            "00000000000000000000000000000001",
            file.clone(),
        )
        .await;
        assert_eq!(first.status, JobStatus::Done, "{:?}", first.error);
        let summary = first.summary.unwrap();
        let written = summary["created"].as_u64().unwrap() as usize;
        assert!(written >= in_scope, "{summary}");
        let (second, second_time) = import(
            &uploads,
            &store,
            &lake,
            "00000000000000000000000000000002",
            file,
        )
        .await;
        let again = second.summary.unwrap();
        assert_eq!(again["created"], 0, "{again}");
        assert_eq!(again["updated"], 0, "{again}");
        let raw = raw_batch_writes(&dynamo, table_name, written).await;

        println!(
            "referential import, {rows} establishments ({megabytes:.1} MB), {in_scope} in scope"
        );
        println!(
            "  first import (upload, parse, merge, {written} structures written): {:.1} s",
            first_time.as_secs_f64()
        );
        println!(
            "  reference, raw BatchWriteItem of {written} items: {:.1} s; import / raw = {:.2}",
            raw.as_secs_f64(),
            first_time.as_secs_f64() / raw.as_secs_f64()
        );
        println!(
            "  same file again (all unchanged, nothing written): {:.1} s",
            second_time.as_secs_f64()
        );
        println!("  peak memory of the process: {} MB", peak_memory_mb());
    });
}
