//! The lake on the local stack: DynamoDB Local holds a generated campaign, LocalStack's S3
//! the snapshot; DataFusion reads it back through object_store.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Float64Type;
use restitute::snapshot::{self, SnapshotKind};
use restitute::{Lake, lake};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tdb_aws::accounts::AccountsTable;
use tdb_aws::dynamo::CampaignTable;
use tdb_domain::accounts::StructureRecord;
use tdb_domain::campaign::{CampaignYear, QuestionnaireStatus};
use tdb_domain::generator::{GeneratorConfig, generate};
use tdb_domain::ports::{AccountStore, QuestionnaireStore, StoredQuestionnaire};
use tdb_domain::questionnaire::CampaignDefinitions;
use tdb_domain::restitution::{MIN_GROUP, QUANTILES, quantile_cont};

fn year() -> CampaignYear {
    CampaignYear::new(2025).unwrap()
}

fn definitions() -> &'static CampaignDefinitions {
    static CAMPAIGNS: std::sync::OnceLock<BTreeMap<CampaignYear, CampaignDefinitions>> =
        std::sync::OnceLock::new();
    &CAMPAIGNS.get_or_init(|| tdb_api::shipped_campaigns().unwrap())[&year()]
}

struct World {
    campaign: CampaignTable,
    accounts: AccountsTable,
    lake: Lake,
    /// The generated questionnaires, as stored.
    stored: Vec<StoredQuestionnaire>,
    structures: Vec<StructureRecord>,
}

/// A generated campaign of `establishments`, every questionnaire validated but one in
/// ten left in progress.
async fn world(establishments: usize) -> World {
    tdb_testkit::local_endpoint();
    let config = tdb_aws::load_config().await;
    let tag = tdb_testkit::unique_name("lake");
    let provisioned = tdb_aws::provision::provision_stack(&config, &tag, "lake@tdb-esms.test")
        .await
        .expect("the local stack answers: is it started?");
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let campaign = CampaignTable::new(dynamo.clone(), &provisioned.environment["CAMPAIGN_TABLE"]);
    let accounts = AccountsTable::new(dynamo, &provisioned.environment["ACCOUNTS_TABLE"]);
    let generated = generate(
        definitions(),
        &GeneratorConfig {
            establishments,
            seed: 11,
            incomplete_share: 0.0,
            incoherent_share: 0.0,
        },
        |_, _| {},
    );
    let structures = StructureRecord::from_referential(&generated.referential);
    accounts.create_structures(&structures).await.unwrap();
    // Nine in ten validated, one in ten left in progress.
    let stored = generated.stored(definitions(), year(), |n| {
        Some(if n % 10 == 9 {
            QuestionnaireStatus::InProgress
        } else {
            QuestionnaireStatus::Validated
        })
    });
    campaign.create(&stored).await.unwrap();
    World {
        campaign,
        accounts,
        lake: Lake::from_env(&provisioned.environment["LAKE_BUCKET"]).unwrap(),
        stored,
        structures,
    }
}

impl World {
    async fn snapshot(&self, at: i64) -> snapshot::SnapshotOutcome {
        self.snapshot_of(year(), at).await
    }

    async fn snapshot_of(&self, campaign: CampaignYear, at: i64) -> snapshot::SnapshotOutcome {
        snapshot::take(
            &self.campaign,
            &self.accounts,
            definitions(),
            &self.lake,
            campaign,
            SnapshotKind::Final,
            at,
        )
        .await
        .unwrap()
    }

    /// The same structures' questionnaires in an earlier campaign, with 5 % fewer days
    /// delivered, then its snapshot.
    async fn earlier_campaign(&self, campaign: CampaignYear) {
        let earlier: Vec<StoredQuestionnaire> = self
            .stored
            .iter()
            .map(|q| {
                let mut q = q.clone();
                q.campaign = campaign;
                if let Some(days) = q.answers.get("journees_perm").and_then(|v| v.as_f64()) {
                    q.answers.insert(
                        "journees_perm".into(),
                        serde_json::json!((days * 0.95) as i64),
                    );
                }
                q
            })
            .collect();
        self.campaign.create(&earlier).await.unwrap();
        self.snapshot_of(campaign, 1_700_000_000).await;
    }

    /// Runs `sql` over the tables of the current snapshot.
    async fn query(&self, sql: &str) -> Vec<datafusion::arrow::array::RecordBatch> {
        let manifest = self.lake.manifest(year()).await.unwrap().unwrap();
        let context = self.lake.session().unwrap();
        for (table, files) in &manifest.tables {
            if !files.files.is_empty() {
                self.lake
                    .register(&context, table, &files.files)
                    .await
                    .unwrap();
            }
        }
        context.sql(sql).await.unwrap().collect().await.unwrap()
    }
}

fn floats(batches: &[datafusion::arrow::array::RecordBatch], column: usize) -> Vec<Option<f64>> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column(column).as_primitive::<Float64Type>();
            (0..c.len())
                .map(|i| (!c.is_null(i)).then(|| c.value(i)))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_holds_every_questionnaire_and_statistics_matching_an_independent_computation() {
    let w = world(300).await;
    let outcome = w.snapshot(1_760_000_000).await;
    let manifest = outcome.manifest;
    assert_eq!(manifest.kind, "final");
    let rows = |t: &str| manifest.tables[t].rows;
    assert_eq!(
        rows(lake::QUESTIONNAIRES_GENERIC) + rows(lake::QUESTIONNAIRES_SAD),
        w.stored.len(),
        "one row per questionnaire"
    );
    assert!(rows(lake::INDICATORS) > w.stored.len());
    assert!(rows(lake::BENCHMARKS) > 0);
    for table in manifest.tables.values() {
        for file in &table.files {
            assert!(
                file.starts_with("lake/") && file.contains("/campaign=2025/snapshot="),
                "{file}"
            );
        }
    }

    // A structure's indicator in the lake is the definition's value for its answers.
    let ehpad = w
        .stored
        .iter()
        .find(|q| q.respondent.kind.key() == "EHPAD")
        .unwrap();
    let definition = definitions().for_kind(ehpad.respondent.kind);
    let answers = definition.carry_over(ehpad.respondent.kind, &ehpad.answers);
    let expected = definition
        .evaluate(ehpad.respondent.kind, &answers, None)
        .indicators
        .into_iter()
        .find(|i| i.indicator == "taux_occupation_permanent")
        .unwrap();
    // By hand: (days delivered + absences under 72 h) / (authorised places × opening days).
    let number = |id: &str| ehpad.answers[id].as_f64().unwrap();
    let by_hand = (number("journees_perm") + number("journees_absence_72h"))
        / (number("cap_auth_perm") * number("jours_ouverture"));
    assert!(
        matches!(expected.value, tdb_domain::questionnaire::IndicatorValue::Value(v) if (v - by_hand).abs() < 1e-12)
    );
    let lake_value = floats(
        &w.query(&format!(
            "SELECT value FROM indicators WHERE finess = '{}' AND indicator = 'taux_occupation_permanent'",
            ehpad.respondent.finess
        ))
        .await,
        0,
    );
    assert_eq!(lake_value.len(), 1);
    assert!((lake_value[0].unwrap() - by_hand).abs() < 1e-12);
    let wide = floats(
        &w.query(&format!(
            "SELECT indicator_taux_occupation_permanent, cap_auth_perm FROM questionnaires_generic WHERE finess = '{}'",
            ehpad.respondent.finess
        ))
        .await,
        0,
    );
    assert!((wide[0].unwrap() - by_hand).abs() < 1e-12);

    // The national quantiles of EHPAD occupancy, against the same values sorted here.
    let mut values: Vec<f64> = w
        .stored
        .iter()
        .filter(|q| {
            q.respondent.kind.key() == "EHPAD" && q.status == QuestionnaireStatus::Validated
        })
        .filter_map(|q| {
            let a = |id: &str| q.answers.get(id).and_then(|v| v.as_f64());
            Some(
                (a("journees_perm")? + a("journees_absence_72h")?)
                    / (a("cap_auth_perm")? * a("jours_ouverture")?),
            )
        })
        .filter(|v| v.is_finite())
        .collect();
    values.sort_by(f64::total_cmp);
    assert!(values.len() >= MIN_GROUP, "{} EHPAD", values.len());
    let names: Vec<&str> = QUANTILES.iter().map(|(n, _)| *n).collect();
    let row = w
        .query(&format!(
            "SELECT n, min, {}, max FROM benchmarks WHERE indicator = 'taux_occupation_permanent' \
             AND category = 'EHPAD' AND scope = 'national'",
            names.join(", ")
        ))
        .await;
    assert_eq!(row.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let n = row[0]
        .column(0)
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
        .value(0);
    assert_eq!(n as usize, values.len());
    for (i, (name, p)) in QUANTILES.iter().enumerate() {
        let lake = floats(&row, 2 + i)[0].unwrap();
        let here = quantile_cont(&values, *p).unwrap();
        assert!((lake - here).abs() < 1e-9, "{name}: {lake} against {here}");
    }
    assert_eq!(floats(&row, 1)[0], values.first().copied());
    assert_eq!(floats(&row, 2 + QUANTILES.len())[0], values.last().copied());

    // No group under five: not in the statistics, and no position in it.
    let small = w
        .query(&format!(
            "SELECT count(*) FROM benchmarks WHERE n < {MIN_GROUP}"
        ))
        .await;
    assert_eq!(
        small[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0),
        0
    );
    let groups = w
        .query(&format!(
            "SELECT count(*) FROM (SELECT indicator, category, region, count(value) AS n FROM indicators \
             WHERE counted AND value IS NOT NULL GROUP BY indicator, category, region) WHERE n < {MIN_GROUP}"
        ))
        .await;
    let small_groups = groups[0]
        .column(0)
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
        .value(0);
    assert!(small_groups > 0, "the test needs small regional groups");
    let revealed = w
        .query(&format!(
            "SELECT count(*) FROM positions p JOIN (SELECT indicator, category, region, count(value) AS n \
             FROM indicators WHERE counted AND value IS NOT NULL GROUP BY indicator, category, region) g \
             ON p.indicator = g.indicator AND p.category = g.category AND p.region = g.region \
             WHERE g.n < {MIN_GROUP} AND (p.rank_region IS NOT NULL OR p.n_region IS NOT NULL)"
        ))
        .await;
    assert_eq!(
        revealed[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0),
        0,
        "no position in a group under five"
    );
    // Questionnaires not validated count in no statistic.
    let positions = w
        .query("SELECT count(*) FROM positions p JOIN indicators i ON p.finess = i.finess AND p.indicator = i.indicator WHERE NOT i.counted")
        .await;
    assert_eq!(
        positions[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_during_a_new_snapshot_sees_one_whole_snapshot_and_old_ones_are_removed() {
    let w = Arc::new(world(120).await);
    let first = w.snapshot(1_760_000_000).await.manifest;
    // A reader reads the current snapshot again and again while two more are taken: each
    // read finds every row the manifest it followed promises.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (w, stop) = (w.clone(), stop.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(Ordering::SeqCst) || reads == 0 {
                let manifest = w.lake.manifest(year()).await.unwrap().unwrap();
                let context = w.lake.session().unwrap();
                let files = &manifest.tables[lake::INDICATORS];
                w.lake
                    .register(&context, lake::INDICATORS, &files.files)
                    .await
                    .unwrap();
                let counted = context
                    .sql("SELECT count(*) FROM indicators")
                    .await
                    .unwrap()
                    .collect()
                    .await
                    .unwrap();
                let rows = counted[0]
                    .column(0)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(0);
                assert_eq!(rows as usize, files.rows, "snapshot {}", manifest.snapshot);
                seen.insert(manifest.snapshot);
                reads += 1;
            }
            (reads, seen)
        })
    };
    let second = w.snapshot(1_760_000_100).await.manifest;
    let third = w.snapshot(1_760_000_200).await;
    stop.store(true, Ordering::SeqCst);
    let (reads, seen) = reader.await.unwrap();
    assert!(reads > 1, "{reads} reads");
    assert!(seen.len() >= 2, "the reader crossed a switch: {seen:?}");
    assert_eq!(
        third.manifest.tables[lake::INDICATORS].rows,
        first.tables[lake::INDICATORS].rows
    );
    // The first snapshot's files are gone; the previous one stays for readers in flight.
    assert!(third.removed > 0);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&tdb_aws::load_config().await)
            .force_path_style(true)
            .build(),
    );
    let keys: Vec<String> = s3
        .list_objects_v2()
        .bucket(w.lake.bucket())
        .prefix("lake/indicators/campaign=2025/")
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    assert!(
        keys.iter().all(|k| !k.contains(&first.snapshot)),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.contains(&second.snapshot)),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.contains(&third.manifest.snapshot)),
        "{keys:?}"
    );
}

const ISSUER: &str = "https://api.tdb-esms.test";

fn signer() -> &'static accounts::TokenSigner {
    static SIGNER: std::sync::OnceLock<accounts::TokenSigner> = std::sync::OnceLock::new();
    SIGNER.get_or_init(|| {
        accounts::TokenSigner::from_pem(&accounts::generate_signing_key(), ISSUER, "tdb-esms")
            .unwrap()
    })
}

fn token(n: u8, role: tdb_domain::rights::Role) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    signer().sign(
        &tdb_domain::accounts::AccountId::from_random([n; 16]),
        vec![role],
        None,
        now,
    )
}

/// A GET's status, content type and body.
async fn fetch(router: &axum::Router, token: &str, uri: &str) -> (u16, String, Vec<u8>) {
    use tower::ServiceExt;
    let response = router
        .clone()
        .oneshot(
            axum::http::Request::get(uri)
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, content_type, bytes.to_vec())
}

async fn get(router: &axum::Router, token: &str, uri: &str) -> (u16, serde_json::Value) {
    let (status, _, bytes) = fetch(router, token, uri).await;
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

/// A CSV download's lines, split at `;` (no field of these tests holds a quoted `;`).
fn csv_lines(body: &[u8]) -> Vec<Vec<String>> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    text.trim_start_matches('\u{feff}')
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| l.split(';').map(str::to_string).collect())
        .collect()
}

/// An SVG drawn to pixels: how many are the mark's pure black.
fn mark_pixels(svg: &[u8], png: &std::path::Path) -> usize {
    // The machine's fonts, when it has some, so that the PNG shows the labels too (the
    // text is grey: no pixel of it is the mark's pure black).
    let mut options = resvg::usvg::Options::default();
    options.fontdb_mut().load_system_fonts();
    let tree = resvg::usvg::Tree::from_data(svg, &options).unwrap();
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
    resvg::render(&tree, Default::default(), &mut pixmap.as_mut());
    pixmap.save_png(png).unwrap();
    pixmap
        .pixels()
        .iter()
        .filter(|p| p.red() == 0 && p.green() == 0 && p.blue() == 0 && p.alpha() == 255)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restitutions_open_at_closure_to_whom_rights_allow_and_hide_small_groups() {
    use tdb_domain::rights::{Profile, Role};
    let w = world(300).await;
    let verifier =
        tdb_api::TokenVerifier::from_jwks(&signer().jwks_json(), ISSUER, "tdb-esms").unwrap();
    let app = restitute::App::new(
        w.campaign.clone(),
        w.accounts.clone(),
        tdb_api::Campaigns::new(tdb_api::shipped_campaigns().unwrap()),
        w.lake.clone(),
        verifier,
        Arc::new(|| 1_760_000_000),
    )
    .unwrap();
    let router = restitute::router(app);
    // Last campaign's snapshot, for the previous values and the series.
    w.earlier_campaign(CampaignYear::new(2024).unwrap()).await;
    // A validated EHPAD managed by an OG, and its region.
    let ehpad = w
        .stored
        .iter()
        .find(|q| {
            q.respondent.kind.key() == "EHPAD"
                && q.status == QuestionnaireStatus::Validated
                && q.og.is_some()
        })
        .unwrap();
    let finess = ehpad.respondent.finess;
    let region = ehpad.departement.region().unwrap();
    let other_region =
        tdb_domain::Region::from_code(if region.code() == 84 { 11 } else { 84 }).unwrap();
    // A name a spreadsheet would read as a formula, for the export.
    let record = w.structures.iter().find(|s| s.finess == finess).unwrap();
    w.accounts
        .update_structure(&StructureRecord {
            name: "=HYPERLINK(\"http://x\")".into(),
            ..record.clone()
        })
        .await
        .unwrap();
    let uri = format!("/restitutions/2025/{finess}");
    let own = token(
        1,
        Role::Member {
            structure: finess,
            profile: Profile::Lecteur,
        },
    );

    // Before closure, nothing: no restitution, no export.
    let (status, answer) = get(&router, &own, &uri).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("not_closed")),
        "{answer}"
    );
    let export = format!("/restitutions/2025/export?region={}", region.code());
    let (status, answer) = get(&router, &token(3, Role::RegionalAdmin { region }), &export).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("not_closed")),
        "{answer}"
    );

    // Closure of the generic platform, then its event in the lake, as validate writes it.
    w.campaign
        .close(
            year(),
            tdb_domain::campaign::Platform::Generic,
            &tdb_domain::workflow::Closure {
                by: "test".into(),
                at: 1_760_000_000,
                counts: Default::default(),
            },
        )
        .await
        .unwrap();
    // Closed, with only a preview of the fiabilisation in the lake: the structure waits for
    // the final snapshot, which the closure's event is taking.
    snapshot::take(
        &w.campaign,
        &w.accounts,
        definitions(),
        &w.lake,
        year(),
        SnapshotKind::Preview,
        1_759_000_000,
    )
    .await
    .unwrap();
    let (status, answer) = get(&router, &own, &uri).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("snapshot_pending")),
        "{answer}"
    );
    let manifest = restitute::api::on_event(
        &w.campaign,
        &w.accounts,
        &tdb_api::Campaigns::new(tdb_api::shipped_campaigns().unwrap()),
        &w.lake,
        "events/closure/2025-generic.json",
        1_760_000_000,
    )
    .await
    .unwrap()
    .expect("a closure takes a snapshot");
    assert_eq!(manifest.kind, "final");

    let (status, mine) = get(&router, &own, &uri).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["category"], "EHPAD");
    assert_eq!(mine["snapshot"], manifest.snapshot.as_str());
    // A structure that came into the referential after the snapshot has no restitution:
    // 404, not an empty one.
    let newcomer = StructureRecord {
        finess: tdb_domain::Finess::with_key(&format!("{}8888", &finess.as_str()[..4])).unwrap(),
        ..record.clone()
    };
    assert!(
        w.stored
            .iter()
            .all(|q| q.respondent.finess != newcomer.finess)
    );
    w.accounts
        .create_structures(std::slice::from_ref(&newcomer))
        .await
        .unwrap();
    let (status, answer) = get(
        &router,
        &token(9, Role::NationalAdmin),
        &format!("/restitutions/2025/{}", newcomer.finess),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("not_in_snapshot")),
        "{answer}"
    );
    let occupancy = mine["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "taux_occupation_permanent")
        .unwrap();
    assert_eq!(occupancy["unit"], "ratio");
    let value = occupancy["value"].as_f64().unwrap();
    let national = &occupancy["national"];
    assert!(national["n"].as_i64().unwrap() >= MIN_GROUP as i64);
    let (min, max) = (
        national["min"].as_f64().unwrap(),
        national["max"].as_f64().unwrap(),
    );
    assert!(min <= value && value <= max);
    let median = national["quantiles"]["median"].as_f64().unwrap();
    assert!(min <= median && median <= max);
    let rank = occupancy["rank_national"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&rank));
    // 5 % fewer days delivered last campaign: the previous value is 95 % of this one.
    let previous = occupancy["previous"].as_f64().unwrap();
    assert!(
        (previous / value - 0.95).abs() < 0.01,
        "{previous} against {value}"
    );
    let series: Vec<(i64, f64)> = occupancy["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["campaign"].as_i64().unwrap(),
                p["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(series, [(2024, previous), (2025, value)]);
    // Groups under five show nothing: every group shown counts five or more, and a
    // regional group too small has no statistics and no rank.
    for indicator in mine["indicators"].as_array().unwrap() {
        for scope in ["national", "regional", "peer_group"] {
            if let Some(n) = indicator[scope]["n"].as_i64() {
                assert!(n >= MIN_GROUP as i64, "{indicator}");
            }
        }
        if indicator["regional"].is_null() {
            assert!(indicator["rank_region"].is_null(), "{indicator}");
        }
    }

    // Its OG, its region's ARS and the national administrator see it; another region's
    // ARS and another structure's Gestionnaire do not.
    let allowed = [
        token(
            2,
            Role::Member {
                structure: ehpad.og.unwrap(),
                profile: Profile::Gestionnaire,
            },
        ),
        token(3, Role::RegionalAdmin { region }),
        token(4, Role::NationalAdmin),
    ];
    for t in &allowed {
        let (status, answer) = get(&router, t, &uri).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["indicators"], mine["indicators"]);
    }
    let stranger = w
        .stored
        .iter()
        .find(|q| q.respondent.finess != finess && q.og != ehpad.og && q.og.is_some())
        .unwrap();
    let refused = [
        token(
            5,
            Role::RegionalAdmin {
                region: other_region,
            },
        ),
        token(
            6,
            Role::Member {
                structure: stranger.respondent.finess,
                profile: Profile::Gestionnaire,
            },
        ),
    ];
    for t in &refused {
        let (status, answer) = get(&router, t, &uri).await;
        assert_eq!(status, 403, "{answer}");
        assert!(answer.get("indicators").is_none());
    }
    // A FINESS of no structure, and a malformed one.
    let (status, _) = get(&router, &allowed[2], "/restitutions/2025/690009999").await;
    assert!(status == 404 || status == 400, "{status}");
    let (status, answer) = get(&router, &allowed[2], "/restitutions/2025/x'--").await;
    assert_eq!(status, 400, "{answer}");

    // The restitution as CSV: one line per indicator, the same values, nothing for the
    // groups the JSON leaves out.
    let (status, content_type, body) = fetch(&router, &own, &format!("{uri}?format=csv")).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/csv; charset=utf-8")
    );
    let lines = csv_lines(&body);
    let column = |name: &str| lines[0].iter().position(|h| h == name).unwrap();
    let indicators = mine["indicators"].as_array().unwrap();
    assert_eq!(lines.len(), indicators.len() + 1);
    for (line, indicator) in lines[1..].iter().zip(indicators) {
        assert_eq!(
            line[column("indicateur")],
            indicator["id"].as_str().unwrap()
        );
        // Every number reads back as the JSON's (to the last bit but one: serde_json's
        // default parser may miss the nearest double by one).
        let exact = |cell: &str, v: &serde_json::Value| match v.as_f64() {
            Some(v) => {
                let read = cell.replace(',', ".").parse::<f64>().unwrap();
                assert!((read - v).abs() <= v.abs() * 1e-15, "{read} against {v}");
            }
            None => assert_eq!(cell, ""),
        };
        exact(&line[column("valeur")], &indicator["value"]);
        exact(
            &line[column("median_france")],
            &indicator["national"]["quantiles"]["median"],
        );
        exact(&line[column("rang_national")], &indicator["rank_national"]);
        assert_eq!(line[column("nature")], "final");
        assert_eq!(line[column("finess")], finess.to_string());
        assert_eq!(
            line[column("n_region")].is_empty(),
            indicator["regional"].is_null()
        );
    }
    let (status, answer) = get(&router, &own, &format!("{uri}?format=xml")).await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("format"))
    );

    // The chart: drawn, the structure marked, small groups named and not drawn.
    let chart = format!("{uri}/charts/taux_occupation_permanent");
    let (status, content_type, svg) = fetch(&router, &own, &chart).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "image/svg+xml; charset=utf-8")
    );
    let text = String::from_utf8(svg.clone()).unwrap();
    assert!(
        text.contains(&format!(
            "Votre valeur : {}",
            restitute::chart::french(value, "ratio")
        )),
        "{text}"
    );
    let png = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("restitution-chart.png");
    assert!(
        mark_pixels(&svg, &png) > 50,
        "the structure's mark is drawn"
    );
    {
        let small = indicators
            .iter()
            .find(|i| i["regional"].is_null())
            .expect("a regional group under five in this campaign");
        let (_, _, svg) = fetch(
            &router,
            &own,
            &format!("{uri}/charts/{}", small["id"].as_str().unwrap()),
        )
        .await;
        assert!(
            String::from_utf8(svg)
                .unwrap()
                .contains("Région : moins de 5 structures, non diffusé.")
        );
    }
    for t in &refused {
        let (status, _, body) = fetch(&router, t, &chart).await;
        assert_eq!(status, 403);
        assert!(!String::from_utf8(body).unwrap().contains("<svg"));
        let (status, _, body) = fetch(&router, t, &format!("{uri}?format=csv")).await;
        assert_eq!(status, 403);
        assert!(!String::from_utf8(body).unwrap().contains("indicateur"));
    }
    let (status, answer) = get(&router, &own, &format!("{uri}/charts/no_such_indicator")).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    // The regional export: the region's ARS gets every generic questionnaire of its
    // region, one row each, in the national format; a formula is text.
    let ars = &allowed[1];
    let (status, ready) = get(&router, ars, &export).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(
        ready["file"],
        format!("export-tdbesms-2025-region-{}-generic.csv", region.code())
    );
    assert_eq!(ready["expires_in"], 300);
    // The link needs no token, and reads the file with its type and name.
    let url = ready["url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Expires=300") && url.contains("X-Amz-Signature="));
    let download = reqwest::get(url).await.unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(ready["file"].as_str().unwrap())
    );
    let body = download.bytes().await.unwrap().to_vec();
    // A tampered link reads nothing.
    let tampered = url.replace("X-Amz-Expires=300", "X-Amz-Expires=3000");
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 403);
    assert_eq!(
        (&ready["snapshot"], &ready["kind"]),
        (&json!(manifest.snapshot), &json!("final"))
    );
    assert!(
        url.contains(&format!("/snapshot%3D{}/", manifest.snapshot)),
        "{url}"
    );
    // Asked again, a link to the same file of the same snapshot.
    let (status, again) = get(&router, ars, &export).await;
    let path = |u: &str| u.split('?').next().unwrap().to_string();
    assert_eq!(
        (status, path(again["url"].as_str().unwrap())),
        (200, path(url))
    );
    let text = String::from_utf8(body.clone()).unwrap();
    let lines = csv_lines(&body);
    assert_eq!(
        lines[0][..13],
        restitute::export::IDENTIFICATION.map(String::from)
    );
    let expected = w
        .stored
        .iter()
        .filter(|q| {
            q.departement.region() == Some(region)
                && q.respondent.kind.platform() == tdb_domain::campaign::Platform::Generic
        })
        .count();
    assert_eq!(lines.len(), expected + 1);
    let row = text
        .split("\r\n")
        .find(|l| l.contains(&finess.to_string()))
        .unwrap();
    assert!(
        row.contains(";\"'=HYPERLINK(\"\"http://x\"\")\";"),
        "the name is text, not a formula: {row}"
    );
    let generic = definitions().platform(tdb_domain::campaign::Platform::Generic);
    // The header as written, a label read as a formula (`- dont ...`) made text.
    let header: Vec<String> = restitute::export::header(generic)
        .into_iter()
        .map(|h| {
            if h.starts_with('-') {
                format!("'{h}")
            } else {
                h
            }
        })
        .collect();
    assert_eq!(lines[0], header);
    assert_eq!(
        header
            .iter()
            .filter(|h| h.starts_with("Statut juridique"))
            .count(),
        1,
        "the legal status once"
    );
    // The structure's row, cell by cell (its name is quoted: no `;` in it).
    let cells: Vec<&str> = row.split(';').collect();
    let cell = |name: &str| cells[header.iter().position(|h| h == name).unwrap()];
    let og = w
        .structures
        .iter()
        .find(|s| Some(s.finess) == ehpad.og)
        .unwrap();
    assert_eq!(cell("FINESS géographique"), finess.to_string());
    assert_eq!(cell("FINESS juridique"), record.legal_entity.to_string());
    assert_eq!(cell("Raison sociale juridique"), og.name);
    assert_eq!(cell("Structuration"), "ESMS rattaché à un OG");
    assert_eq!(cell("Niveau de validation"), "Validé par la structure");
    assert_eq!(cell("Catégorie"), "EHPAD");
    assert!(cell("Région").starts_with(&format!("{:02} - ", region.code())));
    assert_eq!(
        cell("Etat d'avancement")
            .replace(',', ".")
            .parse::<f64>()
            .unwrap(),
        ehpad.fill_rate
    );
    let status_code = ehpad.answers["statut_juridique"].as_str().unwrap();
    let status_label = &generic
        .items()
        .iter()
        .find(|i| i.id == "statut_juridique")
        .unwrap()
        .choices
        .iter()
        .find(|c| c.code == status_code)
        .unwrap()
        .label;
    assert_eq!(cell("Statut juridique"), status_label);
    let occupancy = &generic
        .indicators()
        .iter()
        .find(|i| i.id == "taux_occupation_permanent")
        .unwrap()
        .label;
    let exported: f64 = cell(occupancy).replace(',', ".").parse().unwrap();
    assert!((exported - value).abs() <= value.abs() * 1e-15);

    // The département's CD gets its département; another département's CD does not.
    let departement = ehpad.departement;
    let other = tdb_domain::Departement::all()
        .find(|d| *d != departement)
        .unwrap();
    let by_departement = format!("/restitutions/2025/export?departement={departement}");
    let (status, ready) = get(
        &router,
        &token(7, Role::DepartementalAdmin { departement }),
        &by_departement,
    )
    .await;
    assert_eq!(status, 200, "{ready}");
    let body = reqwest::get(ready["url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let expected = w
        .stored
        .iter()
        .filter(|q| {
            q.departement == departement
                && q.respondent.kind.platform() == tdb_domain::campaign::Platform::Generic
        })
        .count();
    assert_eq!(csv_lines(&body).len(), expected + 1);
    let (status, _) = get(
        &router,
        &token(8, Role::DepartementalAdmin { departement: other }),
        &by_departement,
    )
    .await;
    assert_eq!(status, 403);
    // Another region's ARS, a structure's Gestionnaire, the whole country, a bad platform.
    for (t, uri, status) in [
        (&refused[0], export.clone(), 403),
        (&allowed[0], export.clone(), 403),
        (&allowed[2], "/restitutions/2025/export".to_string(), 400),
        (&allowed[2], format!("{export}&platform=x"), 400),
    ] {
        let (got, answer) = get(&router, t, &uri).await;
        assert_eq!(got, status, "{uri}: {answer}");
    }
}

/// The DuckDB the analysts use (lake/install.sh installs it; scripts/test.sh exports it).
fn duckdb_python() -> std::path::PathBuf {
    let python = std::env::var("TDB_DUCKDB_PYTHON")
        .map(Into::into)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/tdb-esms/duckdb/bin/python")
        });
    assert!(
        python.exists(),
        "DuckDB is not installed: run `bash lake/install.sh` (scripts/test.sh does) or set TDB_DUCKDB_PYTHON"
    );
    python
}

/// `sql`'s rows from DuckDB reading the lake in S3 as an analyst does.
fn duckdb(bucket: &str, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lake/duckdb_lake.py");
    let out = std::process::Command::new(duckdb_python())
        .arg(script)
        .arg("--bucket")
        .arg(bucket)
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "DuckDB failed on {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `sql`'s rows from DataFusion over the same lake, as `tdb lake sql` reads it.
async fn datafusion(lake: &Lake, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    use datafusion::common::ScalarValue;
    let context = lake.session().unwrap();
    lake.attach(&context).await.unwrap();
    let batches = context.sql(sql).await.unwrap().collect().await.unwrap();
    let mut rows = Vec::new();
    for batch in &batches {
        for row in 0..batch.num_rows() {
            let mut map = serde_json::Map::new();
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                let value = match ScalarValue::try_from_array(column, row).unwrap() {
                    v if v.is_null() => serde_json::Value::Null,
                    ScalarValue::Float64(Some(f)) => serde_json::json!(f),
                    ScalarValue::Int64(Some(i)) => serde_json::json!(i),
                    ScalarValue::UInt64(Some(i)) => serde_json::json!(i),
                    ScalarValue::Boolean(Some(b)) => serde_json::json!(b),
                    ScalarValue::Utf8(Some(t))
                    | ScalarValue::Utf8View(Some(t))
                    | ScalarValue::LargeUtf8(Some(t)) => serde_json::json!(t),
                    other => panic!("{}: {other:?}", field.name()),
                };
                map.insert(field.name().clone(), value);
            }
            rows.push(map);
        }
    }
    rows
}

/// The same rows, numbers equal to the ninth significant digit (the engines add in
/// different orders).
fn assert_same(
    sql: &str,
    ours: &[serde_json::Map<String, serde_json::Value>],
    theirs: &[serde_json::Map<String, serde_json::Value>],
) {
    assert_eq!(ours.len(), theirs.len(), "row count of {sql}");
    for (a, b) in ours.iter().zip(theirs) {
        for (column, x) in a {
            let y = b
                .get(column)
                .unwrap_or_else(|| panic!("DuckDB has no {column} in {sql}"));
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => assert!(
                    (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-3),
                    "{column}: {x} (DataFusion) against {y} (DuckDB) in {sql}"
                ),
                _ => assert_eq!(x, y, "{column} in {sql}"),
            }
        }
    }
}

/// The SQL blocks of docs/lake.md's example queries.
fn examples() -> Vec<String> {
    let doc = include_str!("../../../docs/lake.md");
    let section = doc.split("## Example queries").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    section
        .split("```sql")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().trim().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analysts_examples_and_the_statistics_agree_on_datafusion_and_duckdb() {
    let w = world(300).await;
    w.earlier_campaign(CampaignYear::new(2024).unwrap()).await;
    w.snapshot(1_760_000_000).await;
    let examples = examples();
    assert!(examples.len() >= 5, "{} examples", examples.len());
    for sql in &examples {
        let ours = datafusion(&w.lake, sql).await;
        assert!(!ours.is_empty(), "no row from {sql}");
        assert_same(sql, &ours, &duckdb(w.lake.bucket(), sql));
    }
    // The statistics, computed by DuckDB from the same indicators: the quantiles are
    // DuckDB's own `quantile_cont`.
    let sql = restitute::stats::benchmarks_sql().replace("FROM indicators", "FROM indicators_2025");
    let theirs = duckdb(w.lake.bucket(), &sql);
    let ours = datafusion(
        &w.lake,
        "SELECT indicator, category, scope, code, n, mean, min, d1, d2, q1, d3, d4, median, d6, d7, q3, d8, d9, max \
         FROM benchmarks_2025 ORDER BY indicator, category, scope, code",
    )
    .await;
    assert!(ours.len() > 100, "{} groups", ours.len());
    assert_same("the statistics", &ours, &theirs);
}
