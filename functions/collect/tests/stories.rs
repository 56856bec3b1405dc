//! The collect stories through the function's router, with the real adapters on the local
//! stack: DynamoDB Local for the campaign and accounts tables. Each test provisions its own
//! copy of the template's resources. A stopped stack makes these tests fail, never skip.

use accounts::{TokenSigner, generate_signing_key};
use axum::Router;
use axum::body::Body;
use axum::http::{self, Method};
use collect::App;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use tdb_api::TokenVerifier;
use tdb_aws::accounts::AccountsTable;
use tdb_aws::dynamo::CampaignTable;
use tdb_domain::accounts::{Account, AccountId, Person, StructureRecord};
use tdb_domain::campaign::{CampaignYear, QuestionnaireStatus};
use tdb_domain::email::EmailAddress;
use tdb_domain::ports::{AccountStore, QuestionnaireStore};
use tdb_domain::rights::{Profile, Role};
use tdb_domain::workflow::Transition;
use tdb_domain::{Category, Finess, Region, RespondentKind};
use tower::ServiceExt;

const ISSUER: &str = "https://api.tdb-esms.test";
const AUDIENCE: &str = "tdb-esms";
/// 20 May 2025: the 2025 collection is open.
const IN_COLLECTION: i64 = 1_747_699_200;
/// 15 September 2025: closed.
const AFTER_FIABILISATION: i64 = 1_757_894_400;

fn signer() -> &'static TokenSigner {
    static SIGNER: OnceLock<TokenSigner> = OnceLock::new();
    SIGNER.get_or_init(|| TokenSigner::from_pem(&generate_signing_key(), ISSUER, AUDIENCE).unwrap())
}

fn f(first_eight: &str) -> Finess {
    Finess::with_key(first_eight).unwrap()
}

// An OG in the Rhône managing EHPAD A and IME B; B has a secondary B2. EHPAD C elsewhere.
fn og() -> Finess {
    f("69000100")
}
fn ehpad_a() -> Finess {
    f("69001001")
}
fn ime_b() -> Finess {
    f("69001002")
}
fn secondary_b2() -> Finess {
    f("69001012")
}
fn ehpad_c() -> Finess {
    f("38001004")
}

fn structures() -> Vec<StructureRecord> {
    let esms = |finess: Finess, category, og: Option<Finess>, principal| StructureRecord {
        finess,
        kind: RespondentKind::Esms(category),
        name: format!("ESMS {finess}"),
        legal_entity: og.unwrap_or(finess),
        og,
        principal,
        ape: None,
    };
    vec![
        StructureRecord {
            finess: og(),
            kind: RespondentKind::Og,
            name: "OG".into(),
            legal_entity: og(),
            og: None,
            principal: None,
            ape: None,
        },
        esms(ehpad_a(), Category::Ehpad, Some(og()), None),
        esms(ime_b(), Category::Ime, Some(og()), None),
        esms(secondary_b2(), Category::Ime, Some(og()), Some(ime_b())),
        esms(ehpad_c(), Category::Ehpad, None, None),
    ]
}

struct World {
    router: Router,
    campaign: CampaignTable,
    accounts: AccountsTable,
    now: Arc<AtomicI64>,
    tag: String,
}

async fn world() -> World {
    tdb_testkit::local_endpoint();
    let tag = tdb_testkit::unique_name("c");
    let config = tdb_aws::load_config().await;
    let provisioned = tdb_aws::provision::provision_stack(&config, &tag, "collect@tdb-esms.test")
        .await
        .expect("the local stack answers: is it started?");
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let campaign = CampaignTable::new(dynamo.clone(), &provisioned.environment["CAMPAIGN_TABLE"])
        .guarded_by(&provisioned.environment["ACCOUNTS_TABLE"]);
    let accounts = AccountsTable::new(dynamo, &provisioned.environment["ACCOUNTS_TABLE"]);
    accounts.create_structures(&structures()).await.unwrap();
    let now = Arc::new(AtomicI64::new(IN_COLLECTION));
    let clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let verifier = TokenVerifier::from_jwks(&signer().jwks_json(), ISSUER, AUDIENCE).unwrap();
    let year = CampaignYear::new(2025).unwrap();
    let definitions = tdb_domain::questionnaire::builtin::load(2025)
        .unwrap()
        .unwrap();
    let app = App::new(
        campaign.clone(),
        campaign.clone(),
        accounts.clone(),
        BTreeMap::from([(year, definitions)]),
        verifier,
        clock,
    );
    World {
        router: collect::router(app),
        campaign,
        accounts,
        now,
        tag,
    }
}

impl World {
    /// Changes a stored questionnaire as another function would (one version more, a
    /// trail line, the counters).
    async fn change(
        &self,
        year: CampaignYear,
        finess: Finess,
        f: impl FnOnce(&mut tdb_domain::ports::StoredQuestionnaire),
    ) {
        let before = self.campaign.get(year, finess).await.unwrap().unwrap();
        let mut after = before.clone();
        f(&mut after);
        after.version += 1;
        let entry = tdb_domain::ports::AuditEntry {
            at: IN_COLLECTION * 1000,
            actor: "test".into(),
            action: "test".into(),
            detail: json!({}),
        };
        self.campaign
            .put_audited(tdb_domain::ports::AuditedWrite {
                before: &before,
                after: &after,
                entry: &entry,
                held: None,
            })
            .await
            .unwrap();
    }

    fn id(&self, who: &str) -> AccountId {
        AccountId::from_random(fxhash(&format!("{}{who}", self.tag)).to_le_bytes())
    }

    /// An account holding `role`, and an access token for it.
    async fn token(&self, who: &str, role: Role) -> String {
        let id = self.id(who);
        let account = Account::new(
            id.clone(),
            EmailAddress::parse(&format!("{who}.{}@exemple.fr", self.tag)).unwrap(),
            Person {
                last_name: "Martin".into(),
                first_name: who.into(),
                phone: None,
            },
            IN_COLLECTION,
        );
        self.accounts.create_account(&account, &role).await.unwrap();
        // Tokens are checked against the real time; the campaign's clock is the test's.
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
        let (status, _, body) = self.call_with(method, path, token, None, body).await;
        (status, body)
    }

    /// A request with an optional `Idempotency-Key`; the answer and whether it was a replay.
    async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, bool, Value) {
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, replayed, value)
    }

    async fn open(&self, national: &str) {
        let (status, body) = self
            .call(Method::POST, "/questionnaires/2025/opening", national, None)
            .await;
        assert_eq!(status, 200, "{body}");
    }

    async fn save(&self, token: &str, finess: Finess, base: u64, answers: Value) -> (u16, Value) {
        self.call(
            Method::PATCH,
            &format!("/questionnaires/2025/{finess}"),
            token,
            Some(json!({ "base_version": base, "answers": answers })),
        )
        .await
    }

    async fn read(&self, token: &str, finess: Finess) -> (u16, Value) {
        self.call(
            Method::GET,
            &format!("/questionnaires/2025/{finess}"),
            token,
            None,
        )
        .await
    }
}

/// A small stable hash, for account ids unique to each test and person.
fn fxhash(text: &str) -> u128 {
    text.bytes().fold(0xcbf29ce484222325u128, |h, b| {
        (h ^ b as u128).wrapping_mul(0x100000001b3)
    })
}

fn member(structure: Finess, profile: Profile) -> Role {
    Role::Member { structure, profile }
}

fn item<'a>(view: &'a Value, id: &str) -> &'a Value {
    view["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no item {id}"))
}

#[tokio::test]
async fn opening_the_campaign_creates_each_questionnaire_once() {
    let w = world().await;
    let national = w.token("national", Role::NationalAdmin).await;
    let (status, first) = w
        .call(
            Method::POST,
            "/questionnaires/2025/opening",
            &national,
            None,
        )
        .await;
    assert_eq!(status, 200, "{first}");
    // The OG, EHPAD A, IME B and EHPAD C: the secondary has no questionnaire of its own.
    assert_eq!(first["created"], 4, "{first}");
    let (_, again) = w
        .call(
            Method::POST,
            "/questionnaires/2025/opening",
            &national,
            None,
        )
        .await;
    assert_eq!(
        (again["created"].as_u64(), again["already_open"].as_u64()),
        (Some(0), Some(4))
    );
    let gestionnaire = w
        .token("gest", member(ehpad_a(), Profile::Gestionnaire))
        .await;
    let (status, _) = w
        .call(
            Method::POST,
            "/questionnaires/2025/opening",
            &gestionnaire,
            None,
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openings_at_once_or_again_never_erase_a_save() {
    let w = world().await;
    let national = w.token("national", Role::NationalAdmin).await;
    w.open(&national).await;
    let gestionnaire = w
        .token("gest", member(ehpad_a(), Profile::Gestionnaire))
        .await;
    let (status, saved) = w
        .save(&gestionnaire, ehpad_a(), 1, json!({ "cap_auth_perm": 80 }))
        .await;
    assert_eq!(status, 200, "{saved}");

    // A new structure joins the referential; four openings are sent at once.
    let newcomer = Finess::with_key("69000050").unwrap();
    w.accounts
        .create_structures(&[StructureRecord {
            finess: newcomer,
            kind: RespondentKind::Esms(Category::Ehpad),
            name: "EHPAD nouveau".into(),
            legal_entity: newcomer,
            og: None,
            principal: None,
            ape: None,
        }])
        .await
        .unwrap();
    let openings = (0..4).map(|_| {
        w.call(
            Method::POST,
            "/questionnaires/2025/opening",
            &national,
            None,
        )
    });
    let mut created = 0;
    for (status, body) in futures_util::future::join_all(openings).await {
        match status {
            200 => created += body["created"].as_u64().unwrap(),
            409 => assert_eq!(body["error"]["code"], "opening_running"),
            other => panic!("{other} {body}"),
        }
    }
    assert_eq!(created, 1, "the newcomer's questionnaire is created once");
    let (_, view) = w.read(&gestionnaire, ehpad_a()).await;
    assert_eq!(
        item(&view, "cap_auth_perm")["value"],
        80,
        "the save survives"
    );
    assert_eq!(view["version"], 2);
    let newcomer_view = w
        .campaign
        .get(CampaignYear::new(2025).unwrap(), newcomer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(newcomer_view.status, QuestionnaireStatus::NotStarted);
}

#[tokio::test]
async fn a_gestionnaire_saves_part_of_its_questionnaire_and_keeps_its_valid_values() {
    let w = world().await;
    w.open(&w.token("national", Role::NationalAdmin).await)
        .await;
    let gestionnaire = w
        .token("gest", member(ehpad_a(), Profile::Gestionnaire))
        .await;
    let (status, view) = w.read(&gestionnaire, ehpad_a()).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (
            view["platform"].as_str(),
            view["version"].as_u64(),
            view["writable"].as_bool()
        ),
        (Some("generic"), Some(1), Some(true))
    );
    assert_eq!(item(&view, "etp_total")["computed"], true);
    assert_eq!(item(&view, "etp_total")["editable"], false);
    assert_eq!(item(&view, "cap_auth_perm")["editable"], true);
    assert!(view["fill"]["parts"][0]["threshold"].as_f64() == Some(0.9));

    let (status, saved) = w
        .save(
            &gestionnaire,
            ehpad_a(),
            1,
            json!({ "cap_auth_perm": 80, "cap_inst_perm": 90, "jours_ouverture": 500 }),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 2);
    assert_eq!(saved["saved"], json!(["cap_auth_perm", "cap_inst_perm"]));
    assert_eq!(saved["rejected"][0]["item"], "jours_ouverture");
    assert!(
        saved["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("366")
    );
    // The mistake shows at once.
    assert!(
        saved["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["rule"] == "capacite_permanente_installee" && v["severity"] == "blocking")
    );
    let (_, view) = w.read(&gestionnaire, ehpad_a()).await;
    assert_eq!(item(&view, "cap_auth_perm")["value"], 80);
    assert_eq!(item(&view, "cap_auth_perm")["origin"], "structure");
    assert!(item(&view, "jours_ouverture")["value"].is_null());
    assert_eq!(view["status"], "in_progress");
    // A value that fails its item is refused with its id and reason; a computed one too.
    let (status, saved) = w
        .save(&gestionnaire, ehpad_a(), 2, json!({ "etp_total": 12 }))
        .await;
    assert_eq!(
        (status, saved["saved"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    assert_eq!(saved["rejected"][0]["item"], "etp_total");
}

#[tokio::test]
async fn a_stale_save_is_refused_with_the_current_values_and_other_items_go_through() {
    let w = world().await;
    w.open(&w.token("national", Role::NationalAdmin).await)
        .await;
    let alice = w
        .token("alice", member(ehpad_a(), Profile::Gestionnaire))
        .await;
    let bob = w
        .token("bob", member(ehpad_a(), Profile::Gestionnaire))
        .await;
    let (status, _) = w
        .save(&alice, ehpad_a(), 1, json!({ "cap_auth_perm": 80 }))
        .await;
    assert_eq!(status, 200);
    // Bob read version 1 too and changes the same item: refused, with what it holds now.
    let (status, stale) = w
        .save(&bob, ehpad_a(), 1, json!({ "cap_auth_perm": 75 }))
        .await;
    assert_eq!(status, 409, "{stale}");
    assert_eq!(stale["error"]["code"], "stale_version");
    assert_eq!(stale["error"]["current"]["cap_auth_perm"], 80);
    assert_eq!(stale["error"]["version"], 2);
    // Alice's autosave still in flight from version 1: her own change does not make it
    // stale.
    let (status, mine) = w
        .save(&alice, ehpad_a(), 1, json!({ "cap_auth_perm": 81 }))
        .await;
    assert_eq!(status, 200, "{mine}");
    // Another section, from the same old version: no reason to refuse it.
    let (status, saved) = w
        .save(&bob, ehpad_a(), 1, json!({ "jours_ouverture": 365 }))
        .await;
    assert_eq!(
        (status, saved["version"].as_u64()),
        (200, Some(4)),
        "{saved}"
    );
    let (_, view) = w.read(&alice, ehpad_a()).await;
    assert_eq!(item(&view, "cap_auth_perm")["value"], 81);
    assert_eq!(item(&view, "jours_ouverture")["value"], 365);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_writers_lose_no_accepted_write() {
    let w = Arc::new(world().await);
    w.open(&w.token("national", Role::NationalAdmin).await)
        .await;
    let gestionnaire = w
        .token("gest", member(ehpad_a(), Profile::Gestionnaire))
        .await;
    let ids: [&'static str; 20] = [
        "age_60_74",
        "age_75_84",
        "age_85_95",
        "age_96_plus",
        "gir_1",
        "gir_2",
        "gir_3",
        "gir_4",
        "gir_5",
        "gir_6",
        "entrees",
        "sorties_definitives",
        "personnes_absentes",
        "journees_absence",
        "recrutements",
        "departs",
        "effectif_debut",
        "effectif_fin",
        "chambres_doubles",
        "chambres_plus_deux",
    ];
    let saves = ids.into_iter().enumerate().map(|(n, id)| {
        let (w, token) = (w.clone(), gestionnaire.clone());
        tokio::spawn(async move { w.save(&token, ehpad_a(), 1, json!({ id: n + 1 })).await })
    });
    let mut versions = Vec::new();
    for save in saves {
        let (status, body) = save.await.unwrap();
        assert_eq!(status, 200, "{body}");
        versions.push(body["version"].as_u64().unwrap());
    }
    versions.sort_unstable();
    assert_eq!(
        versions,
        (2..=21).collect::<Vec<_>>(),
        "each save its own version"
    );
    let (_, view) = w.read(&gestionnaire, ehpad_a()).await;
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(item(&view, id)["value"], n + 1, "{id}");
    }
    let (_, trail) = w
        .call(
            Method::GET,
            &format!("/questionnaires/2025/{}/audit", ehpad_a()),
            &gestionnaire,
            None,
        )
        .await;
    assert_eq!(trail["entries"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn each_role_reads_and_writes_what_it_may() {
    let w = world().await;
    w.open(&w.token("national", Role::NationalAdmin).await)
        .await;
    let lecteur = w
        .token("lecteur", member(ehpad_a(), Profile::Lecteur))
        .await;
    let og_gest = w.token("oggest", member(og(), Profile::Gestionnaire)).await;
    let og_lect = w.token("oglect", member(og(), Profile::Lecteur)).await;
    let other = w
        .token("other", member(ehpad_c(), Profile::Gestionnaire))
        .await;
    let ars = w
        .token(
            "ars",
            Role::RegionalAdmin {
                region: Region::from_code(84).unwrap(),
            },
        )
        .await;
    let ars_idf = w
        .token(
            "arsidf",
            Role::RegionalAdmin {
                region: Region::from_code(11).unwrap(),
            },
        )
        .await;

    let (status, view) = w.read(&lecteur, ehpad_a()).await;
    assert_eq!((status, view["writable"].as_bool()), (200, Some(false)));
    assert_eq!(
        w.save(&lecteur, ehpad_a(), 1, json!({ "cap_auth_perm": 1 }))
            .await
            .0,
        403
    );

    // The OG enters staff, IS and finance for its ESMS; nothing else.
    let (_, view) = w.read(&og_gest, ehpad_a()).await;
    assert_eq!(item(&view, "etp_direction")["editable"], true);
    assert_eq!(item(&view, "cap_auth_perm")["editable"], false);
    let (status, saved) = w
        .save(&og_gest, ehpad_a(), 1, json!({ "etp_direction": 2.5 }))
        .await;
    assert_eq!(status, 200, "{saved}");
    let (status, refused) = w
        .save(
            &og_gest,
            ehpad_a(),
            2,
            json!({ "etp_direction": 3, "cap_auth_perm": 80 }),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(refused["error"]["field"], "cap_auth_perm");
    let (_, view) = w.read(&og_gest, ehpad_a()).await;
    assert_eq!(item(&view, "etp_direction")["origin"], "og");
    assert_eq!(
        item(&view, "etp_direction")["value"],
        2.5,
        "the refused save wrote nothing"
    );
    // Its own OG questionnaire.
    let (status, _) = w
        .save(&og_gest, og(), 1, json!({ "og_nombre_esms": 2 }))
        .await;
    assert_eq!(status, 200);

    assert_eq!(
        w.save(&og_lect, ehpad_a(), 2, json!({ "etp_direction": 3 }))
            .await
            .0,
        403
    );
    assert_eq!(w.read(&other, ehpad_a()).await.0, 403);
    assert_eq!(
        w.save(&other, ehpad_a(), 2, json!({ "etp_direction": 3 }))
            .await
            .0,
        403
    );
    assert_eq!(w.read(&ars, ehpad_a()).await.0, 200);
    assert_eq!(
        w.save(&ars, ehpad_a(), 2, json!({ "etp_direction": 3 }))
            .await
            .0,
        403
    );
    assert_eq!(
        w.read(&ars_idf, ehpad_a()).await.0,
        403,
        "outside its region"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_role_withdrawn_after_sign_in_writes_nothing() {
    let w = world().await;
    w.open(&w.token("national", Role::NationalAdmin).await)
        .await;
    let token = w
        .token("directrice", member(ehpad_a(), Profile::Gestionnaire))
        .await;
    let (status, saved) = w
        .save(&token, ehpad_a(), 1, json!({ "cap_auth_perm": 80 }))
        .await;
    assert_eq!(status, 200, "{saved}");

    // Made Lecteur while her token still says Gestionnaire: ten saves at once, all refused.
    w.accounts
        .grant(&w.id("directrice"), &member(ehpad_a(), Profile::Lecteur))
        .await
        .unwrap();
    let saves = (0..10).map(|n| w.save(&token, ehpad_a(), 2, json!({ "cap_auth_perm": 90 + n })));
    for (status, refused) in futures_util::future::join_all(saves).await {
        assert_eq!(status, 403, "{refused}");
        assert_eq!(refused["error"]["code"], "role_withdrawn");
    }
    let (_, view) = w.read(&token, ehpad_a()).await;
    assert_eq!(item(&view, "cap_auth_perm")["value"], 80, "nothing written");
    assert_eq!(view["version"], 2);

    // An OG Gestionnaire whose role is revoked writes nothing either.
    let og_gest = w.token("oggest", member(og(), Profile::Gestionnaire)).await;
    w.accounts
        .grant(&w.id("oggest"), &member(ehpad_c(), Profile::Gestionnaire))
        .await
        .unwrap();
    w.accounts
        .revoke(&w.id("oggest"), &member(og(), Profile::Gestionnaire))
        .await
        .unwrap();
    let (status, refused) = w
        .save(&og_gest, ehpad_a(), 2, json!({ "etp_direction": 2.5 }))
        .await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (403, &json!("role_withdrawn"))
    );
}

#[tokio::test]
async fn a_secondary_finess_points_to_its_principal() {
    let w = world().await;
    w.open(&w.token("national", Role::NationalAdmin).await)
        .await;
    let gestionnaire = w
        .token("gest", member(ime_b(), Profile::Gestionnaire))
        .await;
    let (status, body) = w.read(&gestionnaire, secondary_b2()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("secondary_structure"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&ime_b().to_string())
    );
    let (_, view) = w.read(&gestionnaire, ime_b()).await;
    assert_eq!(view["covers"], json!([secondary_b2()]));
}

#[tokio::test]
async fn writes_wait_for_collection_and_stop_at_validation() {
    let w = world().await;
    w.open(&w.token("national", Role::NationalAdmin).await)
        .await;
    let gestionnaire = w
        .token("gest", member(ehpad_a(), Profile::Gestionnaire))
        .await;
    let year = CampaignYear::new(2025).unwrap();
    // Validated, as the validate function records it.
    w.change(year, ehpad_a(), |q| {
        for transition in [Transition::Save, Transition::Validate] {
            q.workflow.apply("generique", transition).unwrap();
        }
        q.status = QuestionnaireStatus::Validated;
    })
    .await;
    let (status, body) = w
        .save(&gestionnaire, ehpad_a(), 2, json!({ "cap_auth_perm": 1 }))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("questionnaire_validated"))
    );
    let (_, view) = w.read(&gestionnaire, ehpad_a()).await;
    assert_eq!(view["writable"], false);
    w.now.store(AFTER_FIABILISATION, Ordering::SeqCst);
    let (status, body) = w
        .save(&gestionnaire, ehpad_c(), 1, json!({ "cap_auth_perm": 1 }))
        .await;
    assert_eq!(status, 403, "{body}");
    let other = w
        .token("gestc", member(ehpad_c(), Profile::Gestionnaire))
        .await;
    let (status, body) = w
        .save(&other, ehpad_c(), 1, json!({ "cap_auth_perm": 1 }))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("campaign_closed"))
    );
}

#[tokio::test]
async fn the_audit_trail_says_who_changed_what_newest_first() {
    let w = world().await;
    w.open(&w.token("national", Role::NationalAdmin).await)
        .await;
    let gestionnaire = w
        .token("gest", member(ehpad_a(), Profile::Gestionnaire))
        .await;
    w.save(&gestionnaire, ehpad_a(), 1, json!({ "cap_auth_perm": 80 }))
        .await;
    w.now.fetch_add(5, Ordering::SeqCst);
    w.save(&gestionnaire, ehpad_a(), 2, json!({ "cap_auth_perm": 82 }))
        .await;
    let (status, trail) = w
        .call(
            Method::GET,
            &format!("/questionnaires/2025/{}/audit", ehpad_a()),
            &gestionnaire,
            None,
        )
        .await;
    assert_eq!(status, 200, "{trail}");
    let entries = trail["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let newest = &entries[0];
    assert_eq!(
        newest["detail"]["changes"]["cap_auth_perm"],
        json!({ "old": 80, "new": 82 })
    );
    assert_eq!(newest["detail"]["origin"], "structure");
    assert_eq!(newest["detail"]["version"], 3);
    // The actor is an account id: no name, no address.
    let actor = newest["actor"].as_str().unwrap();
    assert!(actor.len() == 32 && actor.bytes().all(|b| b.is_ascii_hexdigit()));
    let lecteur = w
        .token("lecteur", member(ehpad_a(), Profile::Lecteur))
        .await;
    let (status, _) = w
        .call(
            Method::GET,
            &format!("/questionnaires/2025/{}/audit", ehpad_a()),
            &lecteur,
            None,
        )
        .await;
    assert_eq!(status, 200);

    // Fifty more saves: the trail comes 50 lines a page, newest first, and the pages join.
    for n in 0..50 {
        w.now.fetch_add(1, Ordering::SeqCst);
        let (status, body) = w
            .save(
                &gestionnaire,
                ehpad_a(),
                3 + n,
                json!({ "cap_auth_perm": 83 + n }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let path = format!("/questionnaires/2025/{}/audit", ehpad_a());
    let (_, first) = w.call(Method::GET, &path, &gestionnaire, None).await;
    assert_eq!(first["entries"].as_array().unwrap().len(), 50);
    assert_eq!(first["entries"][0]["detail"]["version"], 53);
    let next = first["next"].as_str().expect("a second page");
    let (status, second) = w
        .call(
            Method::GET,
            &format!("{path}?page={}", urlencode(next)),
            &gestionnaire,
            None,
        )
        .await;
    assert_eq!(status, 200, "{second}");
    let versions: Vec<_> = second["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"]["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [3, 2]);
    assert_eq!(second["next"], Value::Null);
    // A forged page token is bad input, not another questionnaire's trail.
    let (status, refused) = w
        .call(
            Method::GET,
            &format!("{path}?page=Q%232025%23690000018"),
            &gestionnaire,
            None,
        )
        .await;
    assert_eq!((status, &refused["error"]["field"]), (400, &json!("page")));
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_save_resent_with_its_idempotency_key_has_one_effect() {
    let w = Arc::new(world().await);
    w.open(&w.token("national", Role::NationalAdmin).await)
        .await;
    let gestionnaire = w
        .token("gest", member(ehpad_a(), Profile::Gestionnaire))
        .await;
    let path = format!("/questionnaires/2025/{}", ehpad_a());
    let body = json!({ "base_version": 1, "answers": { "cap_auth_perm": 80 } });
    // A phone on a bad connection sends the same save ten times at once.
    let sends = (0..10).map(|_| {
        let (w, token, path, body) = (w.clone(), gestionnaire.clone(), path.clone(), body.clone());
        tokio::spawn(async move {
            w.call_with(Method::PATCH, &path, &token, Some("save-42"), Some(body))
                .await
        })
    });
    let mut first = None;
    for send in sends {
        let (status, _, answer) = send.await.unwrap();
        match status {
            200 => {
                assert_eq!(answer["version"], 2, "one effect: {answer}");
                first.get_or_insert(answer);
            }
            409 => assert_eq!(answer["error"]["code"], "request_in_progress"),
            other => panic!("{other}: {answer}"),
        }
    }
    let first = first.expect("at least one save answered");
    // Resent later: the first answer again, marked as a replay, and still one version.
    let (status, replayed, again) = w
        .call_with(
            Method::PATCH,
            &path,
            &gestionnaire,
            Some("save-42"),
            Some(body),
        )
        .await;
    assert_eq!((status, replayed), (200, true));
    assert_eq!(again, first);
    let (_, view) = w.read(&gestionnaire, ehpad_a()).await;
    assert_eq!(view["version"], 2);
    let (_, trail) = w
        .call(Method::GET, &format!("{path}/audit"), &gestionnaire, None)
        .await;
    assert_eq!(trail["entries"].as_array().unwrap().len(), 1);
    // The same key for another request is a mistake, not a replay.
    let (status, _, refused) = w
        .call_with(
            Method::PATCH,
            &path,
            &gestionnaire,
            Some("save-42"),
            Some(json!({ "base_version": 2, "answers": { "cap_auth_perm": 81 } })),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    // Another person's key of the same name is theirs.
    let other = w
        .token("other", member(ehpad_a(), Profile::Gestionnaire))
        .await;
    let (status, replayed, _) = w
        .call_with(
            Method::PATCH,
            &path,
            &other,
            Some("save-42"),
            Some(json!({ "base_version": 2, "answers": { "cap_inst_perm": 80 } })),
        )
        .await;
    assert_eq!((status, replayed), (200, false));
}

impl World {
    /// A file posted to `/questionnaires/2025/<what><query>` (prefill, bulk entry).
    async fn post_file(&self, what: &str, token: &str, query: &str, body: &str) -> (u16, Value) {
        let request = http::Request::builder()
            .method(Method::POST)
            .uri(format!("/questionnaires/2025/{what}{query}"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "text/csv")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    async fn prefill(&self, token: &str, query: &str, csv: &str) -> (u16, Value) {
        self.post_file("prefill", token, query, csv).await
    }

    async fn bulk(&self, token: &str, query: &str, body: &str) -> (u16, Value) {
        self.post_file("bulk", token, query, body).await
    }
}

#[tokio::test]
async fn a_prefill_fills_what_nobody_entered_and_never_overwrites_a_correction() {
    let w = world().await;
    let national = w.token("national", Role::NationalAdmin).await;
    w.open(&national).await;
    let file = format!(
        "finess;charges_personnel;produits_classe_7\n{};1200000,50;2000000\n{};1;2\n{};abc;5\n",
        ehpad_a(),
        f("75000001"),
        ehpad_c()
    );
    let (status, dry) = w.prefill(&national, "?dry_run=true", &file).await;
    assert_eq!(
        (status, dry["values_set"].as_u64()),
        (200, Some(3)),
        "{dry}"
    );
    let gestionnaire = w
        .token("gest", member(ehpad_a(), Profile::Gestionnaire))
        .await;
    let (_, view) = w.read(&gestionnaire, ehpad_a()).await;
    assert!(
        item(&view, "charges_personnel")["value"].is_null(),
        "a dry run writes nothing"
    );

    let (status, summary) = w.prefill(&national, "", &file).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["values_set"], 3);
    let rejected: Vec<(u64, &str)> = summary["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["field"].as_str().unwrap()))
        .collect();
    assert_eq!(rejected, [(3, "finess"), (4, "charges_personnel")]);
    let (_, view) = w.read(&gestionnaire, ehpad_a()).await;
    assert_eq!(item(&view, "charges_personnel")["value"], 1200000.5);
    assert_eq!(item(&view, "charges_personnel")["origin"], "prefill");

    // The structure corrects it; a later import brings another figure.
    let version = view["version"].as_u64().unwrap();
    let (status, _) = w
        .save(
            &gestionnaire,
            ehpad_a(),
            version,
            json!({ "charges_personnel": 1250000 }),
        )
        .await;
    assert_eq!(status, 200);
    let again = format!(
        "finess;charges_personnel;produits_classe_7\n{};1300000;2000000\n",
        ehpad_a()
    );
    let (_, summary) = w.prefill(&national, "", &again).await;
    assert_eq!(
        (
            summary["values_set"].as_u64(),
            summary["corrections_kept"].as_u64(),
            summary["unchanged"].as_u64()
        ),
        (Some(0), Some(1), Some(1)),
        "{summary}"
    );
    let (_, view) = w.read(&gestionnaire, ehpad_a()).await;
    let charges = item(&view, "charges_personnel");
    assert_eq!(charges["value"], 1250000, "the correction stays");
    assert_eq!(charges["origin"], "structure");
    assert_eq!(
        charges["prefilled"], 1300000,
        "the imported figure stays visible"
    );
    assert_eq!(item(&view, "produits_classe_7")["origin"], "prefill");

    let (status, body) = w
        .prefill(
            &national,
            "",
            &format!("finess;cap_auth_perm\n{};80\n", ehpad_a()),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("line 1"))
    );
    let ars = w
        .token(
            "ars",
            Role::RegionalAdmin {
                region: Region::from_code(84).unwrap(),
            },
        )
        .await;
    assert_eq!(w.prefill(&ars, "", &again).await.0, 403);
}

#[tokio::test]
async fn last_years_values_are_shown_and_compared() {
    let w = world().await;
    w.open(&w.token("national", Role::NationalAdmin).await)
        .await;
    let last = w
        .campaign
        .get(CampaignYear::new(2025).unwrap(), ehpad_a())
        .await
        .unwrap()
        .unwrap();
    w.campaign
        .create(&[tdb_domain::ports::StoredQuestionnaire {
            campaign: CampaignYear::new(2024).unwrap(),
            answers: json!({ "cap_auth_perm": 50, "etp_direction": 2 })
                .as_object()
                .unwrap()
                .clone(),
            ..last
        }])
        .await
        .unwrap();
    let gestionnaire = w
        .token("gest", member(ehpad_a(), Profile::Gestionnaire))
        .await;
    let (status, saved) = w
        .save(&gestionnaire, ehpad_a(), 1, json!({ "cap_auth_perm": 80 }))
        .await;
    assert_eq!(status, 200);
    assert!(
        saved["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["rule"] == "evolution_cap_auth_perm" && v["severity"] == "warning"),
        "{saved}"
    );
    let (_, view) = w.read(&gestionnaire, ehpad_a()).await;
    assert_eq!(item(&view, "cap_auth_perm")["previous"], 50);
    assert!(
        item(&view, "etp_direction")["previous"].is_null(),
        "not a compared item"
    );
}

#[tokio::test]
async fn an_og_enters_several_esms_at_once_each_row_whole_or_not_at_all() {
    let w = world().await;
    w.open(&w.token("national", Role::NationalAdmin).await)
        .await;
    let og_gest = w.token("oggest", member(og(), Profile::Gestionnaire)).await;
    let csv = format!(
        "finess;etp_direction;etp_administration;si_ins\n{};2,5;3;oui\n{};abc;4;non\n{};1;1;oui\n{};1;1;oui\n",
        ehpad_a(),
        ime_b(),
        ehpad_c(),
        f("75000001")
    );
    let (status, dry) = w.bulk(&og_gest, "?dry_run=true", &csv).await;
    assert_eq!((status, dry["saved"].as_u64()), (200, Some(1)), "{dry}");
    assert_eq!(dry["rows"][0]["outcome"], "would_save");
    let (_, view) = w.read(&og_gest, ehpad_a()).await;
    assert!(
        item(&view, "etp_direction")["value"].is_null(),
        "a dry run writes nothing"
    );

    let (status, summary) = w.bulk(&og_gest, "", &csv).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(
        (summary["saved"].as_u64(), summary["refused"].as_u64()),
        (Some(1), Some(3))
    );
    let rows = summary["rows"].as_array().unwrap();
    assert_eq!(
        rows[0]["saved"],
        json!(["etp_administration", "etp_direction", "si_ins"])
    );
    assert_eq!(rows[1]["rejected"][0][0], "etp_direction", "{}", rows[1]);
    assert!(
        rows[2]["error"].as_str().is_some(),
        "not the OG's structure"
    );
    assert!(rows[3]["error"].as_str().is_some(), "unknown FINESS");
    let (_, view) = w.read(&og_gest, ehpad_a()).await;
    assert_eq!(item(&view, "etp_direction")["value"], 2.5);
    assert_eq!(item(&view, "si_ins")["value"], true);
    assert_eq!(item(&view, "etp_direction")["origin"], "import");
    let (_, b) = w.read(&og_gest, ime_b()).await;
    assert!(
        item(&b, "etp_administration")["value"].is_null(),
        "a refused row writes none of its values"
    );
    // JSON, with an item subsidiarity does not give the OG: the row is refused whole.
    let json_body = json!({ ehpad_a().to_string(): { "cap_auth_perm": 80, "etp_ash": 4 } });
    let (status, summary) = w.bulk(&og_gest, "", &json_body.to_string()).await;
    assert_eq!(
        (status, summary["refused"].as_u64()),
        (200, Some(1)),
        "{summary}"
    );
    assert!(
        summary["rows"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("cap_auth_perm")
    );
    let (_, view) = w.read(&og_gest, ehpad_a()).await;
    assert!(item(&view, "etp_ash")["value"].is_null());
}

#[tokio::test]
async fn a_save_rewrites_only_its_own_items() {
    let w = world().await;
    w.open(&w.token("national", Role::NationalAdmin).await)
        .await;
    let year = CampaignYear::new(2025).unwrap();
    // An answer the definition no longer reads (an item renamed since it was stored).
    w.change(year, ehpad_a(), |q| {
        q.answers.insert("ancien_item".into(), json!(5));
    })
    .await;
    let og_gest = w.token("oggest", member(og(), Profile::Gestionnaire)).await;
    let (status, _) = w
        .save(&og_gest, ehpad_a(), 2, json!({ "etp_direction": 2 }))
        .await;
    assert_eq!(status, 200);
    let after = w.campaign.get(year, ehpad_a()).await.unwrap().unwrap();
    assert_eq!(
        after.answers["ancien_item"], 5,
        "nothing but the saved item is rewritten"
    );
    // A base version from the future is a client bug, not a licence to overwrite.
    let (status, body) = w
        .save(&og_gest, ehpad_a(), 99, json!({ "etp_direction": 3 }))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("base_version"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prefill_racing_saves_loses_nothing() {
    let w = Arc::new(world().await);
    let national = w.token("national", Role::NationalAdmin).await;
    w.open(&national).await;
    let gestionnaire = w
        .token("gest", member(ehpad_a(), Profile::Gestionnaire))
        .await;
    let file = format!(
        "finess;charges_personnel;produits_classe_7\n{};1200000;2000000\n",
        ehpad_a()
    );
    let prefill = {
        let (w, national, file) = (w.clone(), national.clone(), file.clone());
        tokio::spawn(async move { w.prefill(&national, "", &file).await })
    };
    let saves: Vec<_> = [
        "cap_auth_perm",
        "cap_inst_perm",
        "entrees",
        "gir_1",
        "gir_2",
    ]
    .into_iter()
    .map(|id| {
        let (w, token) = (w.clone(), gestionnaire.clone());
        tokio::spawn(async move { w.save(&token, ehpad_a(), 1, json!({ id: 7 })).await })
    })
    .collect();
    let (status, summary) = prefill.await.unwrap();
    assert_eq!(
        (status, summary["values_set"].as_u64()),
        (200, Some(2)),
        "{summary}"
    );
    for save in saves {
        let (status, body) = save.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (_, view) = w.read(&gestionnaire, ehpad_a()).await;
    for id in [
        "cap_auth_perm",
        "cap_inst_perm",
        "entrees",
        "gir_1",
        "gir_2",
    ] {
        assert_eq!(item(&view, id)["value"], 7, "{id}");
    }
    assert_eq!(item(&view, "charges_personnel")["value"], 1200000);
    assert_eq!(view["version"], 7, "five saves and one prefill");
}
