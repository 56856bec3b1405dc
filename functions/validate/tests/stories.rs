//! The validate stories through the functions' routers (collect for saves, validate for the
//! rest), with the real adapters on the local stack: DynamoDB Local for the tables,
//! LocalStack for the lake and SES. Each test provisions its own copy of the template's
//! resources over a generated referential. A stopped stack makes these tests fail.

use accounts::{TokenSigner, generate_signing_key};
use axum::Router;
use axum::body::Body;
use axum::http::{self, Method};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use tdb_api::TokenVerifier;
use tdb_aws::accounts::AccountsTable;
use tdb_aws::dynamo::CampaignTable;
use tdb_aws::s3::S3Lake;
use tdb_aws::ses::SesMailer;
use tdb_domain::accounts::{Account, AccountId, Person, StructureRecord};
use tdb_domain::campaign::CampaignYear;
use tdb_domain::email::EmailAddress;
use tdb_domain::generator::{GeneratedCampaign, GeneratorConfig, Quality};
use tdb_domain::ports::{AccountStore, Lake, QuestionnaireStore};
use tdb_domain::questionnaire::CampaignDefinitions;
use tdb_domain::rights::{Profile, Role};
use tdb_domain::{Category, Finess, Region, RespondentKind};
use tower::ServiceExt;

const ISSUER: &str = "https://api.tdb-esms.test";
const AUDIENCE: &str = "tdb-esms";
const SENDER: &str = "tdb-esms@campagne.test";
/// 20 May 2025: the 2025 collection is open.
const IN_COLLECTION: i64 = 1_747_699_200;
/// 15 July 2025: fiabilisation (after the 30 June deadline).
const IN_FIABILISATION: i64 = 1_752_537_600;
/// 15 September 2025: fiabilisation is over.
const AFTER_FIABILISATION: i64 = 1_757_894_400;

fn signer() -> &'static TokenSigner {
    static SIGNER: OnceLock<TokenSigner> = OnceLock::new();
    SIGNER.get_or_init(|| TokenSigner::from_pem(&generate_signing_key(), ISSUER, AUDIENCE).unwrap())
}

fn definitions() -> &'static CampaignDefinitions {
    static DEFINITIONS: OnceLock<CampaignDefinitions> = OnceLock::new();
    DEFINITIONS.get_or_init(|| {
        tdb_domain::questionnaire::builtin::load(2025)
            .unwrap()
            .unwrap()
    })
}

/// A generated campaign whose questionnaires are complete and coherent.
fn generated() -> &'static GeneratedCampaign {
    static CAMPAIGN: OnceLock<GeneratedCampaign> = OnceLock::new();
    CAMPAIGN.get_or_init(|| {
        let config = GeneratorConfig {
            establishments: 300,
            seed: 7,
            incomplete_share: 0.0,
            incoherent_share: 0.0,
        };
        tdb_domain::generator::generate(definitions(), &config, |_, _| {})
    })
}

/// The generated answers of a structure, as a save sends them.
fn answers_of(finess: Finess) -> serde_json::Map<String, Value> {
    let q = generated()
        .questionnaires
        .iter()
        .find(|q| q.respondent.finess == finess)
        .unwrap();
    assert_eq!(q.quality, Quality::Complete);
    definitions()
        .for_kind(q.respondent.kind)
        .answers_to_json(&q.answers)
}

/// A respondent of `category` managed by an OG (and that OG).
fn managed(category: Category) -> (Finess, Finess) {
    let referential = &generated().referential;
    referential
        .establishments()
        .filter(|e| e.category == category && e.gets_questionnaire())
        .find_map(|e| referential.og_of(&e.finess).map(|og| (e.finess, og.finess)))
        .unwrap_or_else(|| panic!("the generated referential has a managed {category:?}"))
}

fn fxhash(s: &str) -> u128 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325_u128, |h, b| {
        (h ^ u128::from(b)).wrapping_mul(0x1000_0000_01b3)
    })
}

struct World {
    collect: Router,
    validate: Router,
    campaign: CampaignTable,
    accounts: AccountsTable,
    lake: S3Lake,
    now: Arc<AtomicI64>,
    tag: String,
}

async fn world() -> World {
    tdb_testkit::local_endpoint();
    let tag = tdb_testkit::unique_name("v");
    let config = tdb_aws::load_config().await;
    let provisioned = tdb_aws::provision::provision_stack(&config, &tag, SENDER)
        .await
        .expect("the local stack answers: is it started?");
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let accounts_table = &provisioned.environment["ACCOUNTS_TABLE"];
    let campaign = CampaignTable::new(dynamo.clone(), &provisioned.environment["CAMPAIGN_TABLE"])
        .guarded_by(accounts_table);
    let accounts = AccountsTable::new(dynamo, accounts_table);
    accounts
        .create_structures(&StructureRecord::from_referential(&generated().referential))
        .await
        .unwrap();
    let lake = S3Lake::new(&config, &provisioned.environment["LAKE_BUCKET"]);
    let now = Arc::new(AtomicI64::new(IN_COLLECTION));
    let clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let verifier = || TokenVerifier::from_jwks(&signer().jwks_json(), ISSUER, AUDIENCE).unwrap();
    let year = CampaignYear::new(2025).unwrap();
    let collect = collect::App::new(
        campaign.clone(),
        campaign.clone(),
        accounts.clone(),
        BTreeMap::from([(year, definitions().clone())]),
        verifier(),
        clock.clone(),
    );
    let validate = validate::App::new(
        campaign.clone(),
        accounts.clone(),
        SesMailer::new(aws_sdk_ses::Client::new(&config), SENDER),
        lake.clone(),
        BTreeMap::from([(year, definitions().clone())]),
        verifier(),
        clock,
    );
    World {
        collect: collect::router(collect),
        validate: validate::router(validate),
        campaign,
        accounts,
        lake,
        now,
        tag,
    }
}

impl World {
    fn id(&self, who: &str) -> AccountId {
        AccountId::from_random(fxhash(&format!("{}{who}", self.tag)).to_le_bytes())
    }

    fn email(&self, who: &str) -> String {
        format!("{who}.{}@exemple.fr", self.tag)
    }

    /// An account holding `role`, and an access token for it.
    async fn token(&self, who: &str, role: Role) -> String {
        let id = self.id(who);
        let mut account = Account::new(
            id.clone(),
            EmailAddress::parse(&self.email(who)).unwrap(),
            Person {
                last_name: "Martin".into(),
                first_name: who.into(),
                phone: None,
            },
            IN_COLLECTION,
        );
        // Activated: it has chosen a password.
        account.password_hash = Some("argon2-hash-of-a-chosen-password".into());
        self.accounts.create_account(&account, &role).await.unwrap();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        signer().sign(&id, vec![role], None, wall)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, _, text) = self.call_text(method, path, token, body).await;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    async fn call_text(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, String, String) {
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
            .unwrap();
        let router = if path.starts_with("/validation") {
            &self.validate
        } else {
            &self.collect
        };
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            content_type,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    async fn open(&self) {
        let national = self.token("national", Role::NationalAdmin).await;
        let (status, body) = self
            .call(
                Method::POST,
                "/questionnaires/2025/opening",
                &national,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    async fn version(&self, finess: Finess) -> u64 {
        self.campaign
            .get(CampaignYear::new(2025).unwrap(), finess)
            .await
            .unwrap()
            .unwrap()
            .version
    }

    /// Saves answers on the current version; the answer's status and body.
    async fn save(&self, token: &str, finess: Finess, answers: Value) -> (u16, Value) {
        let base = self.version(finess).await;
        self.call(
            Method::PATCH,
            &format!("/questionnaires/2025/{finess}"),
            token,
            Some(json!({ "base_version": base, "answers": answers })),
        )
        .await
    }

    async fn step(&self, token: &str, finess: Finess, body: Value) -> (u16, Value) {
        self.call(
            Method::POST,
            &format!("/validation/2025/{finess}/transitions"),
            token,
            Some(body),
        )
        .await
    }

    async fn checks(&self, token: &str, finess: Finess) -> Value {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/validation/2025/{finess}"),
                token,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

fn member(structure: Finess, profile: Profile) -> Role {
    Role::Member { structure, profile }
}

fn obstacle_kinds(refused: &Value) -> Vec<String> {
    refused["error"]["obstacles"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|o| {
            format!(
                "{}:{}",
                o["kind"].as_str().unwrap(),
                o["rule"].as_str().or(o["item"].as_str()).unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test]
async fn validation_needs_the_threshold_no_blocking_rule_and_every_warning_acknowledged() {
    let w = world().await;
    w.open().await;
    let (ehpad, _) = managed(Category::Ehpad);
    let gestionnaire = w.token("gest", member(ehpad, Profile::Gestionnaire)).await;
    let validate = json!({ "step": "validate" });

    // A few values: far under the threshold.
    let answers = answers_of(ehpad);
    let few: serde_json::Map<_, _> = answers
        .iter()
        .take(5)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        w.save(&gestionnaire, ehpad, Value::Object(few)).await.0,
        200
    );
    let (status, refused) = w.step(&gestionnaire, ehpad, validate.clone()).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("cannot_validate"))
    );
    assert!(
        obstacle_kinds(&refused).contains(&"below_threshold:".to_string()),
        "{refused}"
    );

    // Everything, but more places installed than authorised (blocking) and origins adding
    // up to 120 % (a warning).
    let mut broken = answers.clone();
    let authorised = broken["cap_auth_perm"].as_f64().unwrap();
    broken.insert("cap_inst_perm".into(), json!(authorised as i64 + 10));
    for (item, share) in [
        ("provenance_domicile", 50),
        ("provenance_sante", 30),
        ("provenance_medico_social", 10),
        ("provenance_inconnue", 30),
    ] {
        broken.insert(item.into(), json!(share));
    }
    let (status, saved) = w.save(&gestionnaire, ehpad, Value::Object(broken)).await;
    assert_eq!(status, 200, "{saved}");
    let (status, refused) = w.step(&gestionnaire, ehpad, validate.clone()).await;
    assert_eq!(status, 409);
    let kinds = obstacle_kinds(&refused);
    assert!(
        kinds.contains(&"blocking:capacite_permanente_installee".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"unacknowledged:provenance_100".to_string()),
        "{kinds:?}"
    );
    assert!(
        !kinds.iter().any(|k| k.starts_with("below_threshold")),
        "{kinds:?}"
    );

    // The blocking rule fixed, the warning still unacknowledged.
    let (status, _) = w
        .save(
            &gestionnaire,
            ehpad,
            json!({ "cap_inst_perm": authorised as i64 }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, refused) = w.step(&gestionnaire, ehpad, validate.clone()).await;
    assert_eq!(status, 409);
    assert_eq!(obstacle_kinds(&refused), ["unacknowledged:provenance_100"]);

    // Acknowledgements: a known warning, with a real comment.
    let ack = |rule: &str, comment: &str| json!({ "rule": rule, "comment": comment });
    let path = format!("/validation/2025/{ehpad}/acknowledgements");
    for (body, field) in [
        (ack("inconnue", "un commentaire"), "rule"),
        (
            ack("capacite_permanente_installee", "un commentaire"),
            "rule",
        ),
        (ack("provenance_100", " x "), "comment"),
    ] {
        let (status, refused) = w.call(Method::POST, &path, &gestionnaire, Some(body)).await;
        assert_eq!(
            (status, &refused["error"]["field"]),
            (400, &json!(field)),
            "{refused}"
        );
    }
    let (status, checks) = w
        .call(
            Method::POST,
            &path,
            &gestionnaire,
            Some(ack(
                "provenance_100",
                "Des résidents comptés deux fois : origine double déclarée.",
            )),
        )
        .await;
    assert_eq!(status, 200, "{checks}");
    let rule = checks["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "provenance_100")
        .unwrap();
    assert!(
        rule["acknowledgement"]["comment"]
            .as_str()
            .unwrap()
            .starts_with("Des résidents")
    );

    // A new value under the acknowledged rule needs a new look.
    let (status, _) = w
        .save(&gestionnaire, ehpad, json!({ "provenance_domicile": 55 }))
        .await;
    assert_eq!(status, 200);
    let (status, refused) = w.step(&gestionnaire, ehpad, validate.clone()).await;
    assert_eq!(status, 409);
    assert_eq!(obstacle_kinds(&refused), ["unacknowledged:provenance_100"]);
    let (status, _) = w
        .call(
            Method::POST,
            &path,
            &gestionnaire,
            Some(ack(
                "provenance_100",
                "Toujours des résidents comptés deux fois.",
            )),
        )
        .await;
    assert_eq!(status, 200);

    // Now it validates, on time, and nothing changes any more.
    let (status, result) = w.step(&gestionnaire, ehpad, validate.clone()).await;
    assert_eq!(status, 200, "{result}");
    let part = &result["checks"]["parts"][0];
    assert_eq!(part["status"], "validated");
    assert_eq!(part["validation"]["on_time"], true);
    assert_eq!(part["validation"]["by"], w.id("gest").to_string());
    assert!(part["validation"]["fill_rate"].as_f64().unwrap() >= 0.9);
    assert_eq!(result["checks"]["status"], "validated");
    let (status, refused) = w.save(&gestionnaire, ehpad, json!({ "entrees": 3 })).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("questionnaire_validated"))
    );
    let (status, _) = w
        .call(
            Method::POST,
            &path,
            &gestionnaire,
            Some(ack("provenance_100", "encore")),
        )
        .await;
    assert_eq!(status, 409, "validated data are read-only");
    let (status, refused) = w.step(&gestionnaire, ehpad, validate.clone()).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("invalid_transition"))
    );

    // The structure withdraws its validation, corrects, validates again.
    let (status, _) = w
        .step(&gestionnaire, ehpad, json!({ "step": "unvalidate" }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        w.save(&gestionnaire, ehpad, json!({ "entrees": 3 }))
            .await
            .0,
        200
    );
    assert_eq!(w.step(&gestionnaire, ehpad, validate).await.0, 200);

    // Every step is in the trail.
    let (_, trail) = w
        .call(
            Method::GET,
            &format!("/questionnaires/2025/{ehpad}/audit"),
            &gestionnaire,
            None,
        )
        .await;
    let actions: Vec<&str> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        &actions[..4],
        ["validate", "save", "unvalidate", "validate"]
    );
    assert!(actions.contains(&"acknowledge"));
}

#[tokio::test]
async fn each_role_territory_and_phase_takes_only_its_steps() {
    let w = world().await;
    w.open().await;
    let (ehpad, og) = managed(Category::Ehpad);
    let region = ehpad.departement().region().unwrap();
    let other_region = Region::all().find(|r| *r != region).unwrap();
    let gestionnaire = w.token("gest", member(ehpad, Profile::Gestionnaire)).await;
    let lecteur = w.token("lect", member(ehpad, Profile::Lecteur)).await;
    let og_gest = w.token("oggest", member(og, Profile::Gestionnaire)).await;
    let ars = w.token("ars", Role::RegionalAdmin { region }).await;
    let ars_elsewhere = w
        .token(
            "ars2",
            Role::RegionalAdmin {
                region: other_region,
            },
        )
        .await;
    let cd = w
        .token(
            "cd",
            Role::DepartementalAdmin {
                departement: ehpad.departement(),
            },
        )
        .await;
    let validate = json!({ "step": "validate" });
    assert_eq!(
        w.save(&gestionnaire, ehpad, Value::Object(answers_of(ehpad)))
            .await
            .0,
        200
    );

    for token in [&lecteur, &og_gest, &ars] {
        let (status, refused) = w.step(token, ehpad, validate.clone()).await;
        assert_eq!(status, 403, "{refused}");
    }
    assert_eq!(
        w.checks(&lecteur, ehpad).await["parts"][0]["status"],
        "in_progress"
    );
    let (status, refused) = w
        .step(
            &gestionnaire,
            ehpad,
            json!({ "step": "validate", "part": "soins" }),
        )
        .await;
    assert_eq!((status, &refused["error"]["field"]), (400, &json!("part")));
    assert_eq!(w.step(&gestionnaire, ehpad, validate.clone()).await.0, 200);

    // Reopening: in fiabilisation only, within the territory, with a reason, by ARS or CD.
    let reopen =
        json!({ "step": "reopen", "reason": "Les effectifs semblent inversés avec l'an dernier." });
    let (status, refused) = w.step(&ars, ehpad, reopen.clone()).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("outside_fiabilisation"))
    );
    w.now.store(IN_FIABILISATION, Ordering::SeqCst);
    let (status, refused) = w.step(&ars_elsewhere, ehpad, reopen.clone()).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (403, &json!("outside_territory"))
    );
    assert_eq!(w.step(&gestionnaire, ehpad, reopen.clone()).await.0, 403);
    let (status, refused) = w.step(&ars, ehpad, json!({ "step": "reopen" })).await;
    assert_eq!(
        (status, &refused["error"]["field"]),
        (400, &json!("reason"))
    );

    // Checked by the CD; a checked part is no longer the structure's to withdraw.
    assert_eq!(
        w.step(&gestionnaire, ehpad, json!({ "step": "check" }))
            .await
            .0,
        403
    );
    let (status, checked) = w.step(&cd, ehpad, json!({ "step": "check" })).await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["checks"]["parts"][0]["status"], "checked");
    let (status, refused) = w
        .step(&gestionnaire, ehpad, json!({ "step": "unvalidate" }))
        .await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("invalid_transition"))
    );
    let (status, refused) = w.step(&cd, ehpad, json!({ "step": "check" })).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("invalid_transition"))
    );

    // Reopened from checked, validated again (late now), and the phase ends.
    let (status, reopened) = w.step(&ars, ehpad, reopen).await;
    assert_eq!(status, 200, "{reopened}");
    assert_eq!(reopened["checks"]["parts"][0]["status"], "reopened");
    assert_eq!(
        w.save(&gestionnaire, ehpad, json!({ "entrees": 4 }))
            .await
            .0,
        200
    );
    assert_eq!(
        w.checks(&gestionnaire, ehpad).await["status"],
        "reopened",
        "a save keeps it reopened"
    );
    let (status, result) = w.step(&gestionnaire, ehpad, validate.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(
        result["checks"]["parts"][0]["validation"]["on_time"], true,
        "a correction the ARS asked for after the deadline keeps the first validation's timeliness"
    );
    // Withdrawn and validated again by the structure itself after the deadline: late.
    assert_eq!(
        w.step(&gestionnaire, ehpad, json!({ "step": "unvalidate" }))
            .await
            .0,
        200
    );
    let (_, result) = w.step(&gestionnaire, ehpad, validate.clone()).await;
    assert_eq!(result["checks"]["parts"][0]["validation"]["on_time"], false);
    w.now.store(AFTER_FIABILISATION, Ordering::SeqCst);
    let (status, refused) = w.step(&cd, ehpad, json!({ "step": "check" })).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("campaign_closed"))
    );
}

#[tokio::test]
async fn a_reopening_is_emailed_to_the_structure_in_french() {
    let w = world().await;
    w.open().await;
    let (ehpad, _) = managed(Category::Ehpad);
    let gestionnaire = w.token("gest", member(ehpad, Profile::Gestionnaire)).await;
    w.token("ape", Role::Ape { structure: ehpad }).await;
    w.token("lect", member(ehpad, Profile::Lecteur)).await;
    let cd = w
        .token(
            "cd",
            Role::DepartementalAdmin {
                departement: ehpad.departement(),
            },
        )
        .await;
    assert_eq!(
        w.save(&gestionnaire, ehpad, Value::Object(answers_of(ehpad)))
            .await
            .0,
        200
    );
    assert_eq!(
        w.step(&gestionnaire, ehpad, json!({ "step": "validate" }))
            .await
            .0,
        200
    );
    w.now.store(IN_FIABILISATION, Ordering::SeqCst);
    let reason = "Le nombre de journées dépasse la capacité installée.";
    let (status, result) = w
        .step(&cd, ehpad, json!({ "step": "reopen", "reason": reason }))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(
        (result["notified"].as_u64(), result["not_notified"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(result["checks"]["parts"][0]["reopening"]["reason"], reason);
    for who in ["gest", "ape"] {
        let messages = tdb_testkit::messages_to(&w.email(who)).await;
        let message = messages
            .last()
            .unwrap_or_else(|| panic!("no e-mail to {who}"));
        let text = message["Body"]["text_part"].as_str().unwrap();
        assert!(message["Subject"].as_str().unwrap().contains("rouvert"));
        assert!(
            text.contains(reason) && text.contains(&ehpad.display().to_string()),
            "{text}"
        );
        assert!(text.contains("Bonjour"), "{text}");
        // An EHPAD's questionnaire has one part: no part is named.
        assert!(!text.contains("partie"), "{text}");
    }
    assert!(
        tdb_testkit::messages_to(&w.email("lect")).await.is_empty(),
        "a Lecteur is not asked to correct"
    );
}

#[tokio::test]
async fn the_og_validates_its_subsidiarity_items_which_then_freeze() {
    let w = world().await;
    w.open().await;
    let (ehpad, og) = managed(Category::Ehpad);
    let og_gest = w.token("oggest", member(og, Profile::Gestionnaire)).await;
    let og_lect = w.token("oglect", member(og, Profile::Lecteur)).await;
    let gestionnaire = w.token("gest", member(ehpad, Profile::Gestionnaire)).await;
    let answers = answers_of(ehpad);
    let subsidiarity: serde_json::Map<_, _> = answers
        .iter()
        .filter(|(id, _)| {
            definitions()
                .for_kind(RespondentKind::Esms(Category::Ehpad))
                .item(id)
                .is_some_and(|i| i.subsidiarity)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (status, saved) = w
        .save(&og_gest, ehpad, Value::Object(subsidiarity.clone()))
        .await;
    assert_eq!(status, 200, "{saved}");

    let sign = json!({ "step": "validate_subsidiarity" });
    assert_eq!(w.step(&og_lect, ehpad, sign.clone()).await.0, 403);
    assert_eq!(
        w.step(&gestionnaire, ehpad, sign.clone()).await.0,
        403,
        "the OG's own validation"
    );
    let (status, result) = w.step(&og_gest, ehpad, sign.clone()).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(
        result["checks"]["subsidiarity"]["validated"]["by"],
        w.id("oggest").to_string()
    );
    let item = subsidiarity.keys().next().unwrap();
    for token in [&og_gest, &gestionnaire] {
        let (status, refused) = w.save(token, ehpad, json!({ item.clone(): 1 })).await;
        assert_eq!(
            (status, &refused["error"]["code"]),
            (409, &json!("subsidiarity_validated"))
        );
        assert_eq!(refused["error"]["field"], json!(item));
    }
    assert_eq!(
        w.save(&gestionnaire, ehpad, json!({ "entrees": 12 }))
            .await
            .0,
        200,
        "its own items stay open"
    );
    assert_eq!(w.step(&og_gest, ehpad, sign.clone()).await.0, 409);
    assert_eq!(
        w.step(&og_gest, ehpad, json!({ "step": "withdraw_subsidiarity" }))
            .await
            .0,
        200
    );
    assert_eq!(
        w.save(&og_gest, ehpad, json!({ item.clone(): 1 })).await.0,
        200
    );

    // Its own OG questionnaire is its to validate as any structure's.
    let (status, saved) = w.save(&og_gest, og, Value::Object(answers_of(og))).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(
        w.step(&og_lect, og, json!({ "step": "validate" })).await.0,
        403
    );
    let (status, result) = w.step(&og_gest, og, json!({ "step": "validate" })).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["checks"]["status"], "validated");
}

#[tokio::test]
async fn a_sad_questionnaire_validates_its_parts_separately() {
    let w = world().await;
    w.open().await;
    let saa = generated()
        .referential
        .establishments()
        .find(|e| e.category == Category::Spasad && e.gets_questionnaire())
        .expect("the generated referential has a SPASAD")
        .finess;
    let gestionnaire = w.token("gest", member(saa, Profile::Gestionnaire)).await;
    let (status, saved) = w
        .save(&gestionnaire, saa, Value::Object(answers_of(saa)))
        .await;
    assert_eq!(status, 200, "{saved}");
    let (status, refused) = w
        .step(&gestionnaire, saa, json!({ "step": "validate" }))
        .await;
    assert_eq!((status, &refused["error"]["field"]), (400, &json!("part")));
    let (status, result) = w
        .step(
            &gestionnaire,
            saa,
            json!({ "step": "validate", "part": "soins" }),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    let parts = result["checks"]["parts"].as_array().unwrap();
    let status_of = |id: &str| parts.iter().find(|p| p["id"] == id).unwrap()["status"].clone();
    assert_eq!(
        (status_of("soins"), status_of("aide")),
        (json!("validated"), json!("in_progress"))
    );
    assert_eq!(
        result["checks"]["status"], "in_progress",
        "validated only when both parts are"
    );
    assert_eq!(
        w.step(
            &gestionnaire,
            saa,
            json!({ "step": "validate", "part": "aide" })
        )
        .await
        .0,
        200
    );
    assert_eq!(w.checks(&gestionnaire, saa).await["status"], "validated");
}

#[tokio::test]
async fn closing_a_platform_freezes_it_and_announces_the_restitution() {
    let w = world().await;
    w.open().await;
    let (ehpad, _) = managed(Category::Ehpad);
    let gestionnaire = w.token("gest", member(ehpad, Profile::Gestionnaire)).await;
    let national = w.token("national2", Role::NationalAdmin).await;
    let ars = w
        .token(
            "ars",
            Role::RegionalAdmin {
                region: ehpad.departement().region().unwrap(),
            },
        )
        .await;
    assert_eq!(
        w.save(&gestionnaire, ehpad, Value::Object(answers_of(ehpad)))
            .await
            .0,
        200
    );
    assert_eq!(
        w.step(&gestionnaire, ehpad, json!({ "step": "validate" }))
            .await
            .0,
        200
    );
    let close = |platform: &str| json!({ "platform": platform });
    let (status, refused) = w
        .call(
            Method::POST,
            "/validation/2025/closure",
            &national,
            Some(close("generic")),
        )
        .await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("campaign_not_over"))
    );
    w.now.store(AFTER_FIABILISATION, Ordering::SeqCst);
    assert_eq!(
        w.call(
            Method::POST,
            "/validation/2025/closure",
            &ars,
            Some(close("generic"))
        )
        .await
        .0,
        403
    );
    let (status, refused) = w
        .call(
            Method::POST,
            "/validation/2025/closure",
            &national,
            Some(close("autre")),
        )
        .await;
    assert_eq!(
        (status, &refused["error"]["field"]),
        (400, &json!("platform"))
    );
    let (status, closed) = w
        .call(
            Method::POST,
            "/validation/2025/closure",
            &national,
            Some(close("generic")),
        )
        .await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["already_closed"], false);
    assert_eq!(closed["counts"]["validated"], 1);
    let expected = closed["counts"]["expected"].as_i64().unwrap();
    assert_eq!(
        closed["counts"]["not_started"].as_i64().unwrap(),
        expected - 1,
        "never started stays visible"
    );
    let (_, again) = w
        .call(
            Method::POST,
            "/validation/2025/closure",
            &national,
            Some(close("generic")),
        )
        .await;
    assert_eq!(
        (again["already_closed"].clone(), again["closed_at"].clone()),
        (json!(true), closed["closed_at"].clone())
    );

    let checks = w.checks(&gestionnaire, ehpad).await;
    assert_eq!(
        (checks["status"].clone(), checks["final_status"].clone()),
        (json!("closed"), json!("validated"))
    );
    let (status, refused) = w.save(&gestionnaire, ehpad, json!({ "entrees": 1 })).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("campaign_closed"))
    );
    let (status, refused) = w
        .step(&gestionnaire, ehpad, json!({ "step": "unvalidate" }))
        .await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("campaign_closed"))
    );
    let event = w
        .lake
        .get(&validate::closure_event_key(
            CampaignYear::new(2025).unwrap(),
            tdb_domain::campaign::Platform::Generic,
        ))
        .await
        .unwrap()
        .expect("the closure event for restitute");
    let event: Value = serde_json::from_slice(&event).unwrap();
    assert_eq!(event["counts"]["validated"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn progress_equals_a_recount_after_a_burst_of_saves_and_validations() {
    let w = Arc::new(world().await);
    w.open().await;
    let year = CampaignYear::new(2025).unwrap();
    // Thirty ESMS of the generic platform, each with its Gestionnaire.
    let chosen: Vec<Finess> = generated()
        .questionnaires
        .iter()
        .filter(|q| matches!(q.respondent.kind, RespondentKind::Esms(c) if !c.uses_sad_platform()))
        .map(|q| q.respondent.finess)
        .take(30)
        .collect();
    let mut tokens = Vec::new();
    for (n, finess) in chosen.iter().enumerate() {
        tokens.push((
            *finess,
            w.token(&format!("g{n}"), member(*finess, Profile::Gestionnaire))
                .await,
        ));
    }
    // A burst: everyone saves, two of three validate at once, and a late save races each
    // validation.
    let tasks = tokens
        .iter()
        .cloned()
        .enumerate()
        .map(|(n, (finess, token))| {
            let w = w.clone();
            tokio::spawn(async move {
                let (status, body) = w
                    .save(&token, finess, Value::Object(answers_of(finess)))
                    .await;
                assert_eq!(status, 200, "{body}");
                if n % 3 != 0 {
                    let (validation, late) = futures_util::join!(
                        w.step(&token, finess, json!({ "step": "validate" })),
                        w.save(&token, finess, json!({ "entrees": n }))
                    );
                    // Either order is fine; neither may fail with a 5xx.
                    assert!(matches!(validation.0, 200 | 409), "{validation:?}");
                    assert!(matches!(late.0, 200 | 409), "{late:?}");
                }
            })
        });
    for task in futures_util::future::join_all(tasks).await {
        task.unwrap();
    }
    let mut all = Vec::new();
    let mut page = None;
    loop {
        let p = w.campaign.scan(year, page).await.unwrap();
        all.extend(p.items);
        match p.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    let recount = tdb_domain::progress::recount(&all);
    let stored: BTreeMap<_, _> = w
        .campaign
        .progress(year)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(stored, recount);
    let validated = all
        .iter()
        .filter(|q| q.status == tdb_domain::QuestionnaireStatus::Validated)
        .count();
    assert!(
        validated >= 10,
        "most validations went through: {validated}"
    );

    // The views read those counters: the country, a region, the OG.
    let national = w.token("nat", Role::NationalAdmin).await;
    let (status, country) = w
        .call(Method::GET, "/validation/2025/progress", &national, None)
        .await;
    assert_eq!(status, 200, "{country}");
    assert_eq!(
        country["total"]["expected"].as_u64().unwrap() as usize,
        all.len()
    );
    assert_eq!(
        country["total"]["validated"].as_u64().unwrap() as usize,
        validated
    );
    let region = chosen[0].departement().region().unwrap();
    let ars = w.token("arsp", Role::RegionalAdmin { region }).await;
    let in_region = all
        .iter()
        .filter(|q| q.departement.region() == Some(region))
        .count();
    let (_, summary) = w
        .call(
            Method::GET,
            &format!("/validation/2025/progress?region={}", region.code()),
            &ars,
            None,
        )
        .await;
    assert_eq!(
        summary["total"]["expected"].as_u64().unwrap() as usize,
        in_region
    );
    assert_eq!(
        w.call(Method::GET, "/validation/2025/progress", &ars, None)
            .await
            .0,
        403,
        "the country is the national administrator's"
    );
    // The region's structures, page by page, then as one CSV.
    let mut listed = 0;
    let mut page: Option<String> = None;
    let mut first_token = None;
    loop {
        let path = match &page {
            None => format!(
                "/validation/2025/progress/structures?region={}",
                region.code()
            ),
            Some(p) => format!(
                "/validation/2025/progress/structures?region={}&page={}",
                region.code(),
                p.bytes().map(|b| format!("%{b:02X}")).collect::<String>()
            ),
        };
        let (status, body) = w.call(Method::GET, &path, &ars, None).await;
        assert_eq!(status, 200, "{body}");
        listed += body["structures"].as_array().unwrap().len();
        match body["next"].as_str() {
            Some(next) => {
                first_token.get_or_insert_with(|| next.to_string());
                page = Some(next.to_string())
            }
            None => break,
        }
    }
    assert_eq!(listed, in_region);
    // A token of the whole listing reused on one status's is bad input, not a 5xx.
    if let Some(token) = first_token {
        let (status, refused) = w
            .call(
                Method::GET,
                &format!(
                    "/validation/2025/progress/structures?region={}&status=validated&page={}",
                    region.code(),
                    token
                        .bytes()
                        .map(|b| format!("%{b:02X}"))
                        .collect::<String>()
                ),
                &ars,
                None,
            )
            .await;
        assert_eq!(
            (status, &refused["error"]["field"]),
            (400, &json!("page")),
            "{refused}"
        );
    }
    let (status, content_type, csv) = w
        .call_text(
            Method::GET,
            &format!(
                "/validation/2025/progress/structures?region={}&format=csv",
                region.code()
            ),
            &ars,
            None,
        )
        .await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/csv; charset=utf-8")
    );
    assert!(csv.starts_with("\u{feff}finess;categorie;etat;taux_remplissage"));
    assert_eq!(csv.lines().count(), in_region + 1);
    let (_, _, summary_csv) = w
        .call_text(
            Method::GET,
            &format!(
                "/validation/2025/progress?region={}&format=csv",
                region.code()
            ),
            &ars,
            None,
        )
        .await;
    assert!(summary_csv.contains("total;total;"), "{summary_csv}");

    // The OG of the first structure sees it with its status.
    if let Some(og) = generated().referential.og_of(&chosen[0]) {
        let og_lect = w.token("ogl", member(og.finess, Profile::Lecteur)).await;
        let (status, progress) = w
            .call(
                Method::GET,
                &format!("/validation/2025/progress/og/{}", og.finess),
                &og_lect,
                None,
            )
            .await;
        assert_eq!(status, 200, "{progress}");
        assert!(
            progress["structures"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["finess"] == chosen[0].to_string())
        );
        assert_eq!(progress["og"]["category"], "OG");
    }
}
