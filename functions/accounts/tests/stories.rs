//! The accounts stories, end to end through the function's router (the one Lambda runs) with
//! the real adapters: DynamoDB Local for the accounts table, LocalStack's SES for e-mail
//! (read back from `/_aws/ses`).
//! Each test provisions its own copy of the template's resources.
//!
//! A stopped stack makes these tests fail, never skip: run them through `scripts/test.sh`.

use accounts::secrets::hash_password;
use accounts::{App, Settings, TokenSigner, generate_signing_key};
use axum::Router;
use axum::body::Body;
use axum::http::{self, Method};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use tdb_api::TokenVerifier;
use tdb_aws::accounts::AccountsTable;
use tdb_aws::s3::S3Lake;
use tdb_aws::ses::SesMailer;
use tdb_domain::accounts::{Account, AccountId, Person};
use tdb_domain::email::EmailAddress;
use tdb_domain::ports::AccountStore;
use tdb_domain::rights::Role;
use tdb_domain::{Departement, Finess, Region};
use tower::ServiceExt;

const SENDER: &str = "plage@tdb-esms.test";
const ISSUER: &str = "https://comptes.tdb-esms.test";
const AUDIENCE: &str = "tdb-esms";
const PASSWORD: &str = "une longue phrase de passe";

/// One RSA key per test process: generating one takes a noticeable moment.
fn signing_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(generate_signing_key)
}

struct World {
    router: Router,
    /// The upload worker, which S3 events trigger, over the same table and bucket.
    uploads: accounts::jobs::Uploads<AccountsTable, S3Lake>,
    /// Passwords the function verified against an account's hash.
    password_checks: Arc<std::sync::atomic::AtomicU64>,
    /// The same table the router's function writes to, for checks the API does not show.
    store: AccountsTable,
    now: Arc<AtomicI64>,
    /// Makes e-mail addresses unique to this test: LocalStack keeps every message it got.
    tag: String,
}

async fn world() -> World {
    tdb_testkit::local_endpoint();
    let tag = tdb_testkit::unique_name("a");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let config = tdb_aws::load_config().await;
    let provisioned = tdb_aws::provision::provision_stack(&config, &tag, SENDER)
        .await
        .expect("the local stack answers: is it started?");
    let signer = TokenSigner::from_pem(signing_key(), ISSUER, AUDIENCE).unwrap();
    let verifier = TokenVerifier::from_jwks(&signer.jwks_json(), ISSUER, AUDIENCE).unwrap();
    let now = Arc::new(AtomicI64::new(nanos.as_secs() as i64));
    let clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let table = || {
        AccountsTable::new(
            aws_sdk_dynamodb::Client::new(&config),
            &provisioned.environment["ACCOUNTS_TABLE"],
        )
    };
    let app = App::new(
        table(),
        SesMailer::new(aws_sdk_ses::Client::new(&config), SENDER),
        S3Lake::new(&config, &provisioned.names["LakeBucket"]),
        signer,
        verifier,
        clock.clone(),
        Settings {
            import_lock_wait: std::time::Duration::from_millis(300),
            ..Settings::new("https://tdb-esms.test")
        },
    );
    let password_checks = app.password_checks();
    let uploads = accounts::jobs::Uploads::new(
        table(),
        S3Lake::new(&config, &provisioned.names["LakeBucket"]),
        clock.clone(),
    );
    World {
        password_checks,
        router: accounts::router(app),
        uploads,
        store: table(),
        now,
        tag,
    }
}

fn f(first_eight: &str) -> Finess {
    Finess::with_key(first_eight).unwrap()
}

// The referential of these stories. Auvergne-Rhône-Alpes (84): in the Rhône an OG (a
// hospital managing EHPAD A, IME B and an out-of-scope site) and a CCAS with one EHPAD C;
// in the Isère an EHPAD D. Île-de-France: an EHPAD E in Paris.
fn og() -> Finess {
    f("69000100")
}
fn esms_a() -> Finess {
    f("69001001")
}
fn esms_b() -> Finess {
    f("69001002")
}
fn esms_c() -> Finess {
    f("69001003")
}
fn esms_d() -> Finess {
    f("38001004")
}
fn esms_e() -> Finess {
    f("75001005")
}

fn etalab_row(et: Finess, ej: Finess, name: &str, category: u16) -> String {
    let mut fields = vec![String::new(); 32];
    fields[0] = "structureet".into();
    fields[1] = et.to_string();
    fields[2] = ej.to_string();
    fields[3] = name.to_uppercase();
    fields[4] = name.into();
    fields[13] = et.departement().to_string();
    fields[18] = category.to_string();
    fields.join(";")
}

/// The FINESS with its last digit, the key, changed.
fn with_wrong_key(finess: Finess) -> String {
    let mut wrong = finess.to_string();
    let last = wrong.pop().unwrap().to_digit(10).unwrap();
    wrong.push(char::from_digit((last + 1) % 10, 10).unwrap());
    wrong
}

/// The extract in Latin-1, as the FINESS files are, with one line whose key is wrong.
fn etalab_file() -> Vec<u8> {
    let wrong = with_wrong_key(f("69001009"));
    let lines = [
        "finess;etalab;1.2;2025-01-06".to_string(),
        etalab_row(esms_a(), og(), "EHPAD Les Chênes", 500),
        etalab_row(esms_b(), og(), "IME Le Tilleul", 183),
        etalab_row(f("69001006"), og(), "Centre hospitalier", 355),
        etalab_row(esms_c(), f("69000200"), "EHPAD du CCAS", 500),
        etalab_row(esms_d(), f("38000300"), "EHPAD de l'Isère", 500),
        etalab_row(esms_e(), f("75000400"), "EHPAD de Paris", 500),
        etalab_row(f("69001009"), f("69000200"), "EHPAD faux", 500).replacen(
            &f("69001009").to_string(),
            &wrong,
            1,
        ),
    ];
    encoding_rs::WINDOWS_1252
        .encode(&lines.join("\r\n"))
        .0
        .into_owned()
}

impl World {
    fn email(&self, who: &str) -> String {
        format!("{who}.{}@exemple.fr", self.tag)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Body,
    ) -> (u16, Value) {
        let mut request = http::Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(body).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::GET, path, Some(token), Body::empty())
            .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        self.call(method, path, token, Body::from(body.to_string()))
            .await
    }

    async fn upload(&self, path: &str, token: &str, file: Vec<u8>) -> (u16, Value) {
        self.call(Method::POST, path, Some(token), Body::from(file))
            .await
    }

    async fn login(&self, email: &str, password: &str) -> (u16, Value) {
        self.send(
            Method::POST,
            "/auth/login",
            None,
            json!({ "email": email, "password": password }),
        )
        .await
    }

    async fn token_of(&self, email: &str) -> String {
        let (status, body) = self.login(email, PASSWORD).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// An administrator account with a password, as `tdb` would create it; its token.
    async fn admin(&self, who: &str, role: Role) -> String {
        let email = self.email(who);
        let account = Account {
            password_hash: Some(hash_password(PASSWORD)),
            ..Account::new(
                AccountId::from_random(accounts::secrets::random_bytes()),
                EmailAddress::parse(&email).unwrap(),
                Person {
                    last_name: "Admin".into(),
                    first_name: who.into(),
                    phone: None,
                },
                0,
            )
        };
        self.store.create_account(&account, &role).await.unwrap();
        self.token_of(&email).await
    }

    async fn import_referential(&self, national: &str) {
        let (status, summary) = self
            .upload("/accounts/imports/referential", national, etalab_file())
            .await;
        assert_eq!(status, 200, "{summary}");
    }

    /// The token of the last link e-mailed to `to`, read back from LocalStack's SES.
    async fn last_link_to(&self, to: &str) -> Option<String> {
        let link = tdb_testkit::last_link_to(to).await?;
        let message = tdb_testkit::messages_to(to).await.pop()?;
        assert_eq!(message["Source"], SENDER);
        Some(link.split("#jeton=").nth(1)?.to_string())
    }

    /// Follows the activation link e-mailed to `to` and sets the stories' password.
    async fn activate(&self, to: &str) {
        let token = self.last_link_to(to).await.expect("an activation e-mail");
        let (status, body) = self
            .send(
                Method::POST,
                "/auth/password",
                None,
                json!({ "token": token, "password": PASSWORD }),
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }

    /// Makes `who` the APE of `structure` through the API, activates the account, logs in.
    async fn ape(&self, by: &str, structure: Finess, who: &str) -> String {
        let email = self.email(who);
        let (status, body) = self
            .send(
                Method::PUT,
                &format!("/accounts/structures/{structure}/ape"),
                Some(by),
                json!({ "email": email, "last_name": "Durand", "first_name": who }),
            )
            .await;
        assert!(status == 201 || status == 200, "{status} {body}");
        self.activate(&email).await;
        self.token_of(&email).await
    }

    fn advance(&self, seconds: i64) {
        self.now.fetch_add(seconds, Ordering::SeqCst);
    }
}

fn ara() -> Role {
    Role::RegionalAdmin {
        region: Region::from_code(84).unwrap(),
    }
}

#[tokio::test]
async fn national_admin_imports_the_referential_with_a_dry_run_and_idempotently() {
    let w = world().await;
    let national = w.admin("national", Role::NationalAdmin).await;

    let (status, dry) = w
        .upload(
            "/accounts/imports/referential?dry_run=true",
            &national,
            etalab_file(),
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    // Five ESMS in scope and one OG; the hospital site is out of scope.
    assert_eq!(
        (dry["dry_run"].as_bool(), dry["created"].as_u64()),
        (Some(true), Some(6))
    );
    assert_eq!(dry["ignored"], 1);
    assert_eq!(dry["rejected"][0]["line"], 8);
    assert_eq!(dry["rejected"][0]["field"], "nofinesset");
    let (status, _) = w
        .get(&format!("/accounts/structures/{}", esms_a()), &national)
        .await;
    assert_eq!(status, 404, "a dry run writes nothing");

    let (_, first) = w
        .upload("/accounts/imports/referential", &national, etalab_file())
        .await;
    assert_eq!(
        (first["created"].as_u64(), first["unchanged"].as_u64()),
        (Some(6), Some(0))
    );
    let (_, again) = w
        .upload("/accounts/imports/referential", &national, etalab_file())
        .await;
    assert_eq!(
        (again["created"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(6))
    );

    let (status, a) = w
        .get(&format!("/accounts/structures/{}", esms_a()), &national)
        .await;
    assert_eq!(status, 200);
    assert_eq!(a["name"], "EHPAD Les Chênes", "Latin-1 decoded");
    assert_eq!(
        a["og"],
        og().to_string(),
        "the hospital manages two FINESS: an OG"
    );
    let (_, c) = w
        .get(&format!("/accounts/structures/{}", esms_c()), &national)
        .await;
    assert_eq!(c["og"], Value::Null, "a CCAS with one EHPAD is not an OG");

    // Secondary links, then a changed name: the link survives a new referential import.
    let links = format!(
        "finess_secondaire;finess_principal\n{};{}\n{};{}\n",
        esms_b(),
        esms_a(),
        esms_c(),
        esms_a()
    );
    let (_, summary) = w
        .upload(
            "/accounts/imports/secondaries",
            &national,
            links.into_bytes(),
        )
        .await;
    assert_eq!(summary["created"], 1, "{summary}");
    assert_eq!(
        summary["rejected"][0]["line"], 3,
        "C has another legal entity"
    );
    let (_, b) = w
        .get(&format!("/accounts/structures/{}", esms_b()), &national)
        .await;
    assert_eq!(b["principal"], esms_a().to_string());
    let latin1 = encoding_rs::WINDOWS_1252;
    let renamed = latin1
        .decode(&etalab_file())
        .0
        .replace("IME Le Tilleul", "IME Le Grand Tilleul");
    let renamed = latin1.encode(&renamed).0.into_owned();
    let (_, summary) = w
        .upload("/accounts/imports/referential", &national, renamed)
        .await;
    assert_eq!(summary["updated"], 1, "{summary}");
    let (_, b) = w
        .get(&format!("/accounts/structures/{}", esms_b()), &national)
        .await;
    assert_eq!(
        (b["name"].as_str(), b["principal"].as_str()),
        (Some("IME Le Grand Tilleul"), Some(esms_a().as_str()))
    );

    // Refusals: not an extract, not a national administrator.
    let (status, e) = w
        .upload(
            "/accounts/imports/referential",
            &national,
            b"nofinesset;rs\n".to_vec(),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("line 1"))
    );
    let ars = w.admin("ars", ara()).await;
    let (status, _) = w
        .upload("/accounts/imports/referential", &ars, etalab_file())
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn ape_contacts_create_accounts_whose_activation_link_works_once() {
    let w = world().await;
    let national = w.admin("national", Role::NationalAdmin).await;
    w.import_referential(&national).await;
    let (ape_a, ape_og) = (w.email("ape-a"), w.email("ape-og"));
    let contacts = format!(
        "finess;nom;prenom;telephone;email\n\
         {};Martin;Claire;04 72 00 00 01;{ape_a}\n\
         {};Bernard;Luc;04 72 00 00 02;{ape_og}\n\
         6900100;Petit;Anne;;anne@exemple.fr\n\
         {};Petit;Anne;;pas-une-adresse\n\
         {};Moreau;Jean;;{}\n",
        esms_a(),
        og(),
        esms_c(),
        f("69009999"),
        w.email("inconnu"),
    );
    let (status, dry) = w
        .upload(
            "/accounts/imports/ape-contacts?dry_run=true",
            &national,
            contacts.clone().into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["created"], 2);
    assert!(
        w.last_link_to(&ape_a).await.is_none(),
        "a dry run sends nothing"
    );

    let (_, summary) = w
        .upload(
            "/accounts/imports/ape-contacts",
            &national,
            contacts.clone().into_bytes(),
        )
        .await;
    assert_eq!(summary["created"], 2, "{summary}");
    let rejected: Vec<_> = summary["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (4, "finess".into()),
            (5, "email".into()),
            (6, "finess".into())
        ]
    );
    let (_, again) = w
        .upload(
            "/accounts/imports/ape-contacts",
            &national,
            contacts.into_bytes(),
        )
        .await;
    assert_eq!(
        (again["created"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(2))
    );

    // The activation e-mail, read back from LocalStack: a link, never a password.
    let token = w.last_link_to(&ape_a).await.expect("activation e-mail");
    // Say SES had reported a bounce of this address: the link arriving proves it takes mail.
    let address = tdb_domain::email::EmailAddress::parse(&ape_a).unwrap();
    let record = w.store.account_by_email(&address).await.unwrap().unwrap();
    w.store
        .save_account(&Account {
            undeliverable: Some(tdb_domain::accounts::Undeliverable {
                reason: tdb_domain::accounts::UndeliverableReason::Bounce,
                at: 0,
            }),
            version: record.account.version + 1,
            ..record.account
        })
        .await
        .unwrap();
    let (status, e) = w
        .send(
            Method::POST,
            "/auth/password",
            None,
            json!({ "token": token, "password": "azerty123456" }),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("password"))
    );
    let (status, _) = w
        .send(
            Method::POST,
            "/auth/password",
            None,
            json!({ "token": token, "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 204, "a refused password leaves the link usable");
    let record = w.store.account_by_email(&address).await.unwrap().unwrap();
    assert_eq!(
        record.account.undeliverable, None,
        "a used link lifts the bounce"
    );
    let (status, _) = w
        .send(
            Method::POST,
            "/auth/password",
            None,
            json!({ "token": token, "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 401, "single use");

    let access = w.token_of(&ape_a).await;
    let (_, me) = w.get("/accounts/me", &access).await;
    assert_eq!(me["profiles"][0]["role"]["role"], "ape");
    assert_eq!(me["profiles"][0]["structure"]["name"], "EHPAD Les Chênes");

    // An activation link expires after 72 hours.
    w.advance(73 * 3600);
    let expired = w.last_link_to(&ape_og).await.unwrap();
    let (status, e) = w
        .send(
            Method::POST,
            "/auth/password",
            None,
            json!({ "token": expired, "password": PASSWORD }),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (401, Some("invalid_link"))
    );
}

#[tokio::test]
async fn territorial_admins_manage_ape_in_their_territory_only() {
    let w = world().await;
    let national = w.admin("national", Role::NationalAdmin).await;
    w.import_referential(&national).await;
    let ars = w.admin("ars", ara()).await;

    let (status, list) = w.get("/accounts/structures?region=84", &ars).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 5, "A, B, C, the OG and D; not Paris");
    let ape_d = w.email("ape-d");
    let (status, _) = w
        .send(
            Method::PUT,
            &format!("/accounts/structures/{}/ape", esms_d()),
            Some(&ars),
            json!({ "email": ape_d, "last_name": "Roux", "first_name": "Léa", "phone": "04 76 00 00 00" }),
        )
        .await;
    assert_eq!(status, 201);
    let (_, list) = w.get("/accounts/structures?region=84", &ars).await;
    let order: Vec<_> = list["structures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["finess"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        order.last().unwrap(),
        esms_d().as_str(),
        "structures without an APE first"
    );
    assert_eq!(list["structures"][4]["ape"]["email"], ape_d.as_str());
    let (_, found) = w
        .get("/accounts/structures?region=84&q=is%C3%A8re", &ars)
        .await;
    assert_eq!(found["total"], 1);

    // Modify, then delete.
    let (status, _) = w
        .send(
            Method::PUT,
            &format!("/accounts/structures/{}/ape", esms_d()),
            Some(&ars),
            json!({ "email": ape_d, "last_name": "Roux", "first_name": "Léa", "phone": "04 76 11 11 11" }),
        )
        .await;
    assert_eq!(status, 200);
    let (_, d) = w
        .get(&format!("/accounts/structures/{}", esms_d()), &ars)
        .await;
    assert_eq!(
        d["ape"]["phone"], "04 76 00 00 00",
        "a person's stored details are theirs: the same address with other details changes nothing"
    );
    let (status, _) = w
        .call(
            Method::DELETE,
            &format!("/accounts/structures/{}/ape", esms_d()),
            Some(&ars),
            Body::empty(),
        )
        .await;
    assert_eq!(status, 204);
    let (_, d) = w
        .get(&format!("/accounts/structures/{}", esms_d()), &ars)
        .await;
    assert_eq!(d["ape"], Value::Null);

    // Outside the region, and a CD outside its département.
    let (status, e) = w
        .send(
            Method::PUT,
            &format!("/accounts/structures/{}/ape", esms_e()),
            Some(&ars),
            json!({ "email": w.email("x"), "last_name": "X", "first_name": "Y" }),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (403, Some("outside_territory"))
    );
    let (status, _) = w.get("/accounts/structures?region=11", &ars).await;
    assert_eq!(status, 403);
    let cd = w
        .admin(
            "cd69",
            Role::DepartementalAdmin {
                departement: Departement::from_code("69").unwrap(),
            },
        )
        .await;
    let (status, _) = w
        .send(
            Method::PUT,
            &format!("/accounts/structures/{}/ape", esms_d()),
            Some(&cd),
            json!({ "email": w.email("y"), "last_name": "X", "first_name": "Y" }),
        )
        .await;
    assert_eq!(status, 403);
    let (status, list) = w.get("/accounts/structures?departement=69", &cd).await;
    assert_eq!((status, list["total"].as_u64()), (200, Some(4)));
}

#[tokio::test]
async fn an_og_ape_appoints_the_ape_of_its_esms_and_an_ape_manages_its_users() {
    let w = world().await;
    let national = w.admin("national", Role::NationalAdmin).await;
    w.import_referential(&national).await;
    let og_ape = w.ape(&national, og(), "ape-og").await;

    // The OG's APE lists its ESMS and appoints their APE, not anyone else's.
    let (status, list) = w
        .get(&format!("/accounts/structures?og={}", og()), &og_ape)
        .await;
    assert_eq!((status, list["total"].as_u64()), (200, Some(2)));
    let ape_a = w.ape(&og_ape, esms_a(), "ape-a").await;
    let (status, e) = w
        .send(
            Method::PUT,
            &format!("/accounts/structures/{}/ape", esms_c()),
            Some(&og_ape),
            json!({ "email": w.email("z"), "last_name": "Z", "first_name": "Z" }),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (403, Some("outside_structure"))
    );

    // The APE of A adds a Gestionnaire and a Lecteur.
    let users = format!("/accounts/structures/{}/users", esms_a());
    let (gest, lect) = (w.email("gestionnaire"), w.email("lecteur"));
    for (email, profile) in [(&gest, "gestionnaire"), (&lect, "lecteur")] {
        let (status, body) = w
            .send(Method::POST, &users, Some(&ape_a), json!({ "email": email, "last_name": "Blanc", "first_name": "Eve", "profile": profile }))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, e) = w
        .send(Method::POST, &users, Some(&ape_a), json!({ "email": gest, "last_name": "Blanc", "first_name": "Eve", "profile": "lecteur" }))
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("already_member"))
    );
    let (status, e) = w
        .send(Method::POST, &users, Some(&ape_a), json!({ "email": w.email("n"), "last_name": "N", "first_name": "N", "profile": "directeur" }))
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("profile"))
    );
    let (_, listed) = w.get(&users, &ape_a).await;
    assert_eq!(
        listed["users"].as_array().unwrap().len(),
        3,
        "APE, Gestionnaire, Lecteur"
    );

    // Refusals: a Lecteur cannot create users; an ESMS APE cannot touch another ESMS.
    w.activate(&lect).await;
    let lecteur = w.token_of(&lect).await;
    let (status, e) = w
        .send(Method::POST, &users, Some(&lecteur), json!({ "email": w.email("m"), "last_name": "M", "first_name": "M", "profile": "lecteur" }))
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (403, Some("action_not_allowed"))
    );
    let (status, _) = w
        .send(Method::POST, &format!("/accounts/structures/{}/users", esms_c()), Some(&ape_a), json!({ "email": w.email("m"), "last_name": "M", "first_name": "M", "profile": "lecteur" }))
        .await;
    assert_eq!(status, 403);
    let (status, _) = w
        .get(&format!("/accounts/structures/{}/users", esms_b()), &ape_a)
        .await;
    assert_eq!(status, 403);

    // One person, two structures, one login: C's APE adds the same Lecteur as Gestionnaire.
    let ape_c = w.ape(&national, esms_c(), "ape-c").await;
    let (status, _) = w
        .send(Method::POST, &format!("/accounts/structures/{}/users", esms_c()), Some(&ape_c), json!({ "email": lect, "last_name": "Blanc", "first_name": "Eve", "profile": "gestionnaire" }))
        .await;
    assert_eq!(status, 201);
    let (_, me) = w.get("/accounts/me", &w.token_of(&lect).await).await;
    assert_eq!(me["profiles"].as_array().unwrap().len(), 2);
    let (status, acting) = w
        .send(
            Method::POST,
            "/auth/login",
            None,
            json!({ "email": lect, "password": PASSWORD, "structure": esms_c().to_string() }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        acting["roles"],
        json!([{ "role": "member", "structure": esms_c().to_string(), "profile": "gestionnaire" }])
    );

    // Change a profile, then delete the user on A: the account lives on with C.
    let id = me["id"].as_str().unwrap();
    let (status, changed) = w
        .send(
            Method::PATCH,
            &format!("{users}/{id}"),
            Some(&ape_a),
            json!({ "profile": "gestionnaire" }),
        )
        .await;
    assert_eq!(
        (status, changed["role"]["profile"].as_str()),
        (200, Some("gestionnaire"))
    );
    // A person's phone and name are theirs to change, not the APE's.
    let (status, e) = w
        .send(
            Method::PATCH,
            &format!("{users}/{id}"),
            Some(&ape_a),
            json!({ "profile": "lecteur", "phone": "06 00 00 00 00" }),
        )
        .await;
    assert_eq!((status, e["error"]["field"].as_str()), (400, Some("phone")));
    let (status, _) = w
        .call(
            Method::DELETE,
            &format!("{users}/{id}"),
            Some(&ape_a),
            Body::empty(),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = w
        .call(
            Method::DELETE,
            &format!("{users}/{id}"),
            Some(&ape_a),
            Body::empty(),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = w.login(&lect, PASSWORD).await;
    assert_eq!(status, 200, "still a user of C");
}

#[tokio::test]
async fn failed_logins_slow_down_then_lock_and_never_reveal_an_address() {
    let w = world().await;
    let national_email = w.email("national");
    w.admin("national", Role::NationalAdmin).await;

    let (status, unknown) = w.login(&w.email("personne"), PASSWORD).await;
    let (_, wrong) = w.login(&national_email, "pas le bon mot de passe").await;
    assert_eq!(status, 401);
    assert_eq!(
        unknown, wrong,
        "the same answer for an unknown address and a wrong password"
    );

    // A pause from the 4th failure: even the right password is refused during it.
    for _ in 0..3 {
        w.login(&national_email, "pas le bon mot de passe").await;
    }
    let (status, _) = w.login(&national_email, PASSWORD).await;
    assert_eq!(status, 401, "slowed down");
    w.advance(60);
    let (status, _) = w.login(&national_email, PASSWORD).await;
    assert_eq!(status, 200, "success resets the count");

    // Ten failures lock the account for 15 minutes.
    for _ in 0..10 {
        w.advance(70);
        w.login(&national_email, "pas le bon mot de passe").await;
    }
    w.advance(60);
    let (status, locked) = w.login(&national_email, PASSWORD).await;
    assert_eq!((status, &locked), (401, &unknown));
    w.advance(15 * 60);
    let (status, _) = w.login(&national_email, PASSWORD).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_expired_revoked_or_forged_tokens_are_refused() {
    let w = world().await;
    let email = w.email("national");
    w.admin("national", Role::NationalAdmin).await;
    let (_, tokens) = w.login(&email, PASSWORD).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();

    let (status, rotated) = w
        .send(
            Method::POST,
            "/auth/refresh",
            None,
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = w
        .send(
            Method::POST,
            "/auth/refresh",
            None,
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_eq!(status, 401, "a refresh token is used once");
    let newer = rotated["refresh_token"].as_str().unwrap();
    let (status, _) = w
        .send(
            Method::POST,
            "/auth/logout",
            None,
            json!({ "refresh_token": newer }),
        )
        .await;
    assert_eq!(status, 204);
    let (status, e) = w
        .send(
            Method::POST,
            "/auth/refresh",
            None,
            json!({ "refresh_token": newer }),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (401, Some("invalid_token")),
        "revoked"
    );

    // An access token issued two hours ago has expired (10 minutes of life).
    w.advance(-2 * 3600);
    let (_, old) = w.login(&email, PASSWORD).await;
    w.advance(2 * 3600);
    let (status, e) = w
        .get("/accounts/me", old["access_token"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (401, Some("token_expired"))
    );

    // Signed by another key, tampered with, or absent.
    let other = TokenSigner::from_pem(&generate_signing_key(), ISSUER, AUDIENCE).unwrap();
    let forged = other.sign(
        &AccountId::from_random([7; 16]),
        vec![Role::NationalAdmin],
        None,
        w.now.load(Ordering::SeqCst),
    );
    let (status, _) = w.get("/accounts/me", &forged).await;
    assert_eq!(status, 401);
    let good = rotated["access_token"].as_str().unwrap();
    let mut parts: Vec<&str> = good.split('.').collect();
    let evil_claims = base64_url(&json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": "00000000000000000000000000000000", "iat": 0, "exp": 9_999_999_999i64, "roles": [{ "role": "national_admin" }] }).to_string());
    parts[1] = &evil_claims;
    let (status, _) = w.get("/accounts/me", &parts.join(".")).await;
    assert_eq!(status, 401);
    let (status, e) = w
        .call(Method::GET, "/accounts/me", None, Body::empty())
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (401, Some("missing_token"))
    );

    // Password reset: the same answer for any address; the link works; old sessions end.
    let (status, _) = w
        .send(
            Method::POST,
            "/auth/password-reset",
            None,
            json!({ "email": w.email("personne") }),
        )
        .await;
    assert_eq!(status, 202);
    assert!(w.last_link_to(&w.email("personne")).await.is_none());
    let (_, session) = w.login(&email, PASSWORD).await;
    let (status, _) = w
        .send(
            Method::POST,
            "/auth/password-reset",
            None,
            json!({ "email": email }),
        )
        .await;
    assert_eq!(status, 202);
    let link = w.last_link_to(&email).await.expect("reset e-mail");
    let (status, _) = w
        .send(
            Method::POST,
            "/auth/password",
            None,
            json!({ "token": link, "password": "une autre phrase de passe" }),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = w.login(&email, PASSWORD).await;
    assert_eq!(status, 401);
    let (status, _) = w.login(&email, "une autre phrase de passe").await;
    assert_eq!(status, 200);
    let (status, _) = w
        .send(
            Method::POST,
            "/auth/refresh",
            None,
            json!({ "refresh_token": session["refresh_token"] }),
        )
        .await;
    assert_eq!(status, 401, "a new password ends the other sessions");
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn bad_input_names_the_field_and_saves_nothing() {
    let w = world().await;
    let national = w.admin("national", Role::NationalAdmin).await;
    w.import_referential(&national).await;
    let ape = format!("/accounts/structures/{}/ape", esms_a());

    let (status, e) = w
        .send(
            Method::PUT,
            &ape,
            Some(&national),
            json!({ "email": w.email("a"), "first_name": "A" }),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("last_name"))
    );
    let (status, e) = w
        .send(
            Method::PUT,
            &ape,
            Some(&national),
            json!({ "email": "nope", "last_name": "A", "first_name": "A" }),
        )
        .await;
    assert_eq!((status, e["error"]["field"].as_str()), (400, Some("email")));
    let (status, e) = w
        .send(
            Method::PUT,
            &ape,
            Some(&national),
            json!({ "email": w.email("a"), "last_name": "A", "first_name": "A", "role": "x" }),
        )
        .await;
    assert_eq!((status, e["error"]["field"].as_str()), (400, Some("role")));
    let (status, e) = w
        .call(Method::PUT, &ape, Some(&national), Body::from("{not json"))
        .await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = w
        .get(
            &format!("/accounts/structures/{}", with_wrong_key(esms_a())),
            &national,
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("finess"))
    );
    assert!(
        e["error"]["message"].as_str().unwrap().contains("key"),
        "{e}"
    );
    let (status, _) = w
        .call(
            Method::PUT,
            &ape,
            Some(&national),
            Body::from(" ".repeat(accounts::MAX_JSON_BODY + 1)),
        )
        .await;
    assert_eq!(status, 413);
    let (status, _) = w
        .upload(
            "/accounts/imports/referential",
            &national,
            vec![b'x'; accounts::MAX_FILE_BODY + 1],
        )
        .await;
    assert_eq!(status, 413);
    let (_, a) = w
        .get(&format!("/accounts/structures/{}", esms_a()), &national)
        .await;
    assert_eq!(a["ape"], Value::Null, "nothing was saved");

    // A duplicate e-mail cannot become a second account.
    let email = w.email("ape-a");
    w.send(
        Method::PUT,
        &ape,
        Some(&national),
        json!({ "email": email, "last_name": "A", "first_name": "A" }),
    )
    .await;
    let store = &w.store;
    let before = store
        .account_by_email(&EmailAddress::parse(&email).unwrap())
        .await
        .unwrap()
        .unwrap();
    let (status, _) = w
        .send(
            Method::PUT,
            &format!("/accounts/structures/{}/ape", esms_c()),
            Some(&national),
            json!({ "email": email.to_uppercase(), "last_name": "A", "first_name": "A" }),
        )
        .await;
    assert_eq!(
        status, 200,
        "the same person becomes APE of C too, with one account"
    );
    let after = store
        .account_by_email(&EmailAddress::parse(&email).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.account.id, before.account.id);
    assert_eq!(after.roles.len(), 2);
}

/// The served OpenAPI description lists every route, each protected route refuses a
/// request without a token, and every answer carries the shared security headers.
#[tokio::test]
async fn the_openapi_description_is_served_and_no_protected_route_answers_without_a_token() {
    let w = world().await;
    let (status, spec) = w
        .call(Method::GET, accounts::OPENAPI_PATH, None, Body::empty())
        .await;
    assert_eq!(status, 200);
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    let mut documented = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = op["security"].as_array().is_some_and(|s| {
                s.iter()
                    .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            documented.push((method.to_uppercase(), path.clone(), public));
        }
    }
    documented.sort();
    let public: Vec<String> = documented
        .iter()
        .filter(|(_, _, public)| *public)
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    assert_eq!(
        public,
        [
            "GET /.well-known/jwks.json",
            "GET /.well-known/openid-configuration",
            "POST /auth/login",
            "POST /auth/logout",
            "POST /auth/password",
            "POST /auth/password-reset",
            "POST /auth/refresh",
        ]
    );
    assert_eq!(documented.len(), 22, "{documented:?}");
    for (method, path, public) in &documented {
        if *public {
            continue;
        }
        let path = path
            .replace("{finess}", &esms_a().to_string())
            .replace("{id}", "0")
            .replace("{job}", "0");
        let request = http::Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(&path)
            .body(Body::empty())
            .unwrap();
        let response = w.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    // Unknown paths and methods get the JSON error body too.
    let (status, e) = w
        .call(Method::GET, "/accounts/nothing", None, Body::empty())
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, e) = w
        .call(Method::DELETE, "/auth/login", None, Body::empty())
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

/// API Gateway's JWT authorizer finds the keys through the discovery document: its
/// `jwks_uri` is the issuer's `/.well-known/jwks.json`, and that key set verifies the tokens
/// the function signs.
#[tokio::test]
async fn the_discovery_document_leads_to_the_keys_that_verify_access_tokens() {
    let w = world().await;
    let (status, discovery) = w
        .call(
            Method::GET,
            "/.well-known/openid-configuration",
            None,
            Body::empty(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(discovery["issuer"], ISSUER);
    assert_eq!(
        discovery["jwks_uri"],
        format!("{ISSUER}/.well-known/jwks.json")
    );
    let jwks_path = discovery["jwks_uri"]
        .as_str()
        .unwrap()
        .strip_prefix(ISSUER)
        .unwrap();
    let (status, jwks) = w.call(Method::GET, jwks_path, None, Body::empty()).await;
    assert_eq!(status, 200);
    let national = w.admin("national", Role::NationalAdmin).await;
    let verifier = TokenVerifier::from_jwks(&jwks.to_string(), ISSUER, AUDIENCE).unwrap();
    let claims = verifier.verify(&national).unwrap();
    assert_eq!(claims.iss, ISSUER);
}

/// The function as Lambda runs it: an API Gateway HTTP API (v2) event, converted by
/// lambda_http, answered by the router.
#[tokio::test]
async fn an_api_gateway_event_reaches_the_router() {
    let w = world().await;
    let event = include_str!("fixtures/apigw-v2-jwks.json");
    let request = lambda_http::request::from_str(event).unwrap();
    let response = w.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let jwks: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    assert!(
        jwks["keys"][0]["kid"]
            .as_str()
            .is_some_and(|k| !k.is_empty())
    );
}

impl World {
    /// Sends the same kind of request from `n` spawned tasks at once, through clones of the
    /// router: real parallelism on the multi-threaded runtime, as Lambda's concurrent
    /// instances would race on the same items.
    async fn in_parallel(&self, bodies: Vec<(&'static str, Value)>) -> Vec<(u16, Value)> {
        let tasks: Vec<_> = bodies
            .into_iter()
            .map(|(path, body)| {
                let router = self.router.clone();
                tokio::spawn(async move {
                    let request = http::Request::builder()
                        .method(Method::POST)
                        .uri(path)
                        .header("content-type", "application/json")
                        .body(Body::from(body.to_string()))
                        .unwrap();
                    let response = router.oneshot(request).await.unwrap();
                    let status = response.status().as_u16();
                    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                        .await
                        .unwrap();
                    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    (status, value)
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    }

    async fn refresh(&self, token: &str) -> (u16, Value) {
        self.send(
            Method::POST,
            "/auth/refresh",
            None,
            json!({ "refresh_token": token }),
        )
        .await
    }

    async fn failed_logins(&self, email: &str) -> (u32, Option<i64>) {
        let account = self
            .store
            .account_by_email(&EmailAddress::parse(email).unwrap())
            .await
            .unwrap()
            .unwrap()
            .account;
        (account.failed_logins, account.locked_until)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_wrong_passwords_get_no_more_verifications_than_the_throttle_allows() {
    let w = world().await;
    w.admin("cible", Role::NationalAdmin).await;
    let email = w.email("cible");
    let attempts = (0..50)
        .map(|i| {
            (
                "/auth/login",
                json!({ "email": email, "password": format!("mauvais essai numéro {i}") }),
            )
        })
        .collect();
    let answers = w.in_parallel(attempts).await;
    for (status, body) in &answers {
        assert_eq!(
            (*status, body["error"]["code"].as_str()),
            (401, Some("invalid_credentials")),
            "only 401, never a 409 or a 5xx"
        );
    }
    // Every verification needs its own reservation, counted before the password is looked
    // at; the clock does not move, so after the 3 free failures the 4th reservation pauses
    // the account and nothing more is verified.
    let throttle = tdb_domain::accounts::LoginThrottle::default();
    let (failures, paused_until) = w.failed_logins(&email).await;
    assert_eq!(failures, throttle.free_failures + 1, "failures counted");
    // One check was the administrator's own login when the test set it up.
    assert_eq!(
        w.password_checks.load(Ordering::SeqCst),
        1 + u64::from(throttle.free_failures + 1),
        "passwords verified"
    );
    assert!(paused_until.is_some());
    let (status, _) = w.login(&email, PASSWORD).await;
    assert_eq!(status, 401, "paused: even the right password is not tried");
    w.advance(3);
    let (status, body) = w.login(&email, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        w.failed_logins(&email).await,
        (0, None),
        "a success clears them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_password_ends_the_sessions_even_a_refresh_racing_it() {
    let w = world().await;
    w.admin("session", Role::NationalAdmin).await;
    let email = w.email("session");
    let cooldown = Settings::new("https://tdb-esms.test").link_cooldown;
    for round in 0..6 {
        // One reset link per cooldown: let it pass so that each round gets a fresh link.
        w.advance(cooldown);
        let (_, tokens) = w.login(&email, PASSWORD).await;
        let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
        let (status, _) = w
            .send(
                Method::POST,
                "/auth/password-reset",
                None,
                json!({ "email": email }),
            )
            .await;
        assert_eq!(status, 202);
        let link = w.last_link_to(&email).await.expect("a reset e-mail");
        let answers = w
            .in_parallel(vec![
                ("/auth/refresh", json!({ "refresh_token": refresh })),
                (
                    "/auth/password",
                    json!({ "token": link, "password": PASSWORD }),
                ),
            ])
            .await;
        assert_eq!(answers[1].0, 204, "round {round}: {}", answers[1].1);
        if answers[0].0 == 200 {
            let rotated = answers[0].1["refresh_token"].as_str().unwrap();
            assert_eq!(
                w.refresh(rotated).await.0,
                401,
                "round {round}: the session refreshed during the change is over"
            );
        }
        assert_eq!(w.refresh(&refresh).await.0, 401, "round {round}");
    }

    // The race made certain: a refresh token written after the change, for a session begun
    // before it (what a refresh reading the account just before the change writes).
    w.advance(cooldown);
    let (_, tokens) = w.login(&email, PASSWORD).await;
    let account = w
        .store
        .account_by_email(&EmailAddress::parse(&email).unwrap())
        .await
        .unwrap()
        .unwrap()
        .account;
    w.send(
        Method::POST,
        "/auth/password-reset",
        None,
        json!({ "email": email }),
    )
    .await;
    let link = w.last_link_to(&email).await.unwrap();
    let (status, _) = w
        .send(
            Method::POST,
            "/auth/password",
            None,
            json!({ "token": link, "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 204);
    let late = "jeton-ecrit-pendant-le-changement";
    w.store
        .put_token(&tdb_domain::accounts::TokenRecord {
            hash: accounts::secrets::token_hash(late),
            purpose: tdb_domain::accounts::TokenPurpose::Refresh,
            account: account.id.clone(),
            expires_at: w.now.load(Ordering::SeqCst) + 3600,
            acting_for: None,
            epoch: account.sessions_epoch,
            session_started: w.now.load(Ordering::SeqCst),
        })
        .await
        .unwrap();
    assert_eq!(w.refresh(late).await.0, 401, "an older session's token");
    assert_eq!(
        w.refresh(tokens["refresh_token"].as_str().unwrap()).await.0,
        401
    );
}

#[tokio::test]
async fn sessions_have_an_absolute_age_and_a_refused_refresh_keeps_its_token() {
    let w = world().await;
    w.admin("duree", Role::NationalAdmin).await;
    let email = w.email("duree");
    let (_, tokens) = w.login(&email, PASSWORD).await;
    let mut refresh = tokens["refresh_token"].as_str().unwrap().to_string();

    // A structure the account has no role on: 403, and the token is not used up.
    let (status, _) = w
        .send(
            Method::POST,
            "/auth/refresh",
            None,
            json!({ "refresh_token": refresh, "structure": esms_a().to_string() }),
        )
        .await;
    assert_eq!(status, 403);

    // Refreshed every 6 days (a refresh token lives 7 unused), the session still ends 30
    // days after its login.
    let settings = Settings::new("https://tdb-esms.test");
    let day = 24 * 3600;
    let mut age = 0;
    loop {
        w.advance(6 * day);
        age += 6 * day;
        let (status, body) = w.refresh(&refresh).await;
        if age >= settings.session_max_age {
            assert_eq!(
                status,
                401,
                "day {}: past the session's maximum age",
                age / day
            );
            break;
        }
        assert_eq!(status, 200, "day {}: {body}", age / day);
        refresh = body["refresh_token"].as_str().unwrap().to_string();
    }
}

#[tokio::test]
async fn imports_check_rights_first_cap_their_rejections_and_ignore_stray_quotes() {
    let w = world().await;
    let national = w.admin("national", Role::NationalAdmin).await;

    // The Etalab extract has no CSV quoting: a stray quote in a name must not swallow the
    // lines after it.
    let mut lines = vec!["finess;etalab;1.2;2025-01-06".to_string()];
    lines.push(etalab_row(esms_a(), og(), "\"Les Chênes", 500));
    lines.push(etalab_row(esms_b(), og(), "IME Le Tilleul", 183));
    lines.push(etalab_row(esms_c(), f("69000200"), "EHPAD du CCAS", 500));
    // 1,500 lines with a wrong FINESS key.
    for n in 0..1500u32 {
        let wrong = with_wrong_key(f(&format!("6910{n:04}")));
        lines.push(
            etalab_row(f("69200000"), f("69000300"), "Faux", 500).replacen(
                &f("69200000").to_string(),
                &wrong,
                1,
            ),
        );
    }
    let (status, summary) = w
        .upload(
            "/accounts/imports/referential",
            &national,
            lines.join("\n").into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(
        summary["created"], 4,
        "3 ESMS and their OG; first rejection: {}",
        summary["rejected"][0]
    );
    assert_eq!(summary["rejected_total"], 1500);
    assert_eq!(summary["rejected"].as_array().unwrap().len(), 1000);
    assert_eq!(summary["rejected"][0]["line"], 5);
    let (_, a) = w
        .get(&format!("/accounts/structures/{}", esms_a()), &national)
        .await;
    assert_eq!(a["name"], "\"Les Chênes");

    // Someone with only a structure role is refused before the file is even read.
    let ape = w.ape(&national, esms_a(), "ape-a").await;
    let (status, e) = w
        .upload(
            "/accounts/imports/ape-contacts",
            &ape,
            b"not;a;contacts;file".to_vec(),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (403, Some("action_not_allowed"))
    );

    // Names that would go into official e-mails: no web address, no invisible characters;
    // addresses a mail service would refuse are refused before anything is created.
    let put = format!("/accounts/structures/{}/ape", esms_b());
    for (body, field) in [
        (
            json!({ "email": w.email("b"), "last_name": "www.arnaque.fr", "first_name": "A" }),
            "last_name",
        ),
        (
            json!({ "email": w.email("b"), "last_name": "Durand", "first_name": "Jean\u{202E}nimda" }),
            "first_name",
        ),
        (
            json!({ "email": "josé@exemple.fr", "last_name": "Durand", "first_name": "Jean" }),
            "email",
        ),
        (
            json!({ "email": "a@exemple.fr, b@exemple.fr", "last_name": "Durand", "first_name": "Jean" }),
            "email",
        ),
    ] {
        let (status, e) = w.send(Method::PUT, &put, Some(&national), body).await;
        assert_eq!(
            (status, e["error"]["field"].as_str()),
            (400, Some(field)),
            "{e}"
        );
    }
    let (_, b) = w
        .get(&format!("/accounts/structures/{}", esms_b()), &national)
        .await;
    assert_eq!(b["ape"], Value::Null, "nothing was created");
}

#[tokio::test]
async fn scope_holds_administrators_apart_people_own_their_details_and_removed_roles_write_nothing()
{
    let w = world().await;
    let national = w.admin("national", Role::NationalAdmin).await;
    // The OG has an ESMS in the Isère too: the CD of the Rhône, where the OG sits, must not
    // see it.
    let isere = f("38001007");
    let mut file = etalab_file();
    file.extend_from_slice(
        format!("\r\n{}", etalab_row(isere, og(), "EHPAD du groupe", 500)).as_bytes(),
    );
    let (status, _) = w
        .upload("/accounts/imports/referential", &national, file)
        .await;
    assert_eq!(status, 200);
    let cd69 = w
        .admin(
            "cd69",
            Role::DepartementalAdmin {
                departement: Departement::from_code("69").unwrap(),
            },
        )
        .await;
    let (status, list) = w
        .get(&format!("/accounts/structures?og={}", og()), &cd69)
        .await;
    assert_eq!(status, 200);
    let listed: Vec<&str> = list["structures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["finess"].as_str().unwrap())
        .collect();
    assert!(!listed.contains(&isere.as_str()), "{listed:?}");
    assert!(listed.contains(&esms_a().as_str()), "{listed:?}");

    // Nobody appoints themselves; an administrator's account holds no structure role.
    let (status, e) = w
        .send(
            Method::PUT,
            &format!("/accounts/structures/{}/ape", esms_a()),
            Some(&national),
            json!({ "email": w.email("national"), "last_name": "Moi", "first_name": "Moi" }),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (403, Some("self_appointment"))
    );
    let (status, e) = w
        .send(
            Method::PUT,
            &format!("/accounts/structures/{}/ape", esms_a()),
            Some(&national),
            json!({ "email": w.email("cd69"), "last_name": "CD", "first_name": "Rhône" }),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("administrator_account"))
    );

    // An APE adding someone who already has an account changes nothing of what they stored.
    let ape_a = w.ape(&national, esms_a(), "ape-a").await;
    let ape_c = w.ape(&national, esms_c(), "ape-c").await;
    let person = w.email("claire");
    let users = |f: Finess| format!("/accounts/structures/{f}/users");
    let (status, _) = w
        .send(
            Method::POST,
            &users(esms_a()),
            Some(&ape_a),
            json!({ "email": person, "last_name": "Martin", "first_name": "Claire",
                    "phone": "04 72 00 00 00", "profile": "gestionnaire" }),
        )
        .await;
    assert_eq!(status, 201);
    let (status, added) = w
        .send(
            Method::POST,
            &users(esms_c()),
            Some(&ape_c),
            json!({ "email": person, "last_name": "Autre", "first_name": "Nom",
                    "phone": "06 99 99 99 99", "profile": "lecteur" }),
        )
        .await;
    assert_eq!(status, 201);
    assert!(
        added.get("phone").is_none() && added.get("last_name").is_none(),
        "{added}"
    );
    let stored = w
        .store
        .account_by_email(&EmailAddress::parse(&person).unwrap())
        .await
        .unwrap()
        .unwrap()
        .account
        .person;
    assert_eq!(
        (stored.last_name.as_str(), stored.phone.as_deref()),
        ("Martin", Some("04 72 00 00 00"))
    );
    // The person changes their own details.
    w.activate(&person).await;
    let own = w.token_of(&person).await;
    let (status, me) = w
        .send(
            Method::PATCH,
            "/accounts/me",
            Some(&own),
            json!({ "phone": "04 72 12 34 56" }),
        )
        .await;
    assert_eq!(
        (status, me["phone"].as_str()),
        (200, Some("04 72 12 34 56"))
    );
    assert_eq!(me["last_name"], "Martin");

    // A token whose role was removed since it was issued cannot make lasting changes (the
    // account lives on through another role).
    let (status, _) = w
        .send(
            Method::POST,
            &users(esms_a()),
            Some(&ape_a),
            json!({ "email": w.email("ape-c"), "last_name": "Durand", "first_name": "C",
                    "profile": "lecteur" }),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = w
        .call(
            Method::DELETE,
            &format!("/accounts/structures/{}/ape", esms_c()),
            Some(&national),
            Body::empty(),
        )
        .await;
    assert_eq!(status, 204);
    let (status, e) = w
        .send(
            Method::POST,
            &users(esms_c()),
            Some(&ape_c),
            json!({ "email": w.email("zoe"), "last_name": "Z", "first_name": "Zoé",
                    "profile": "lecteur" }),
        )
        .await;
    assert_eq!(status, 403, "{e}");
    let zoe = EmailAddress::parse(&w.email("zoe")).unwrap();
    assert!(
        w.store.account_by_email(&zoe).await.unwrap().is_none(),
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_resets_answer_alike_for_any_address_and_send_once_per_cooldown() {
    let w = world().await;
    w.admin("oubli", Role::NationalAdmin).await;
    let known = w.email("oubli");
    let unknown = w.email("personne");
    let settings = Settings::new("https://tdb-esms.test");
    let before = tdb_testkit::messages_to(&known).await.len();

    let started = std::time::Instant::now();
    let answers = w
        .in_parallel(
            (0..5)
                .map(|_| ("/auth/password-reset", json!({ "email": known })))
                .chain([("/auth/password-reset", json!({ "email": unknown }))])
                .collect(),
        )
        .await;
    assert!(started.elapsed() >= settings.reset_answer_floor);
    let expected = answers[5].clone();
    assert_eq!(expected.0, 202);
    for answer in &answers {
        assert_eq!(
            answer, &expected,
            "the same answer for known and unknown addresses"
        );
    }
    assert_eq!(
        tdb_testkit::messages_to(&known).await.len(),
        before + 1,
        "five requests, one e-mail"
    );
    assert_eq!(tdb_testkit::messages_to(&unknown).await.len(), 0);

    // Within the cooldown nothing more is sent; after it, a new link is.
    w.advance(settings.link_cooldown - 10);
    w.send(
        Method::POST,
        "/auth/password-reset",
        None,
        json!({ "email": known }),
    )
    .await;
    assert_eq!(tdb_testkit::messages_to(&known).await.len(), before + 1);
    w.advance(20);
    w.send(
        Method::POST,
        "/auth/password-reset",
        None,
        json!({ "email": known }),
    )
    .await;
    assert_eq!(tdb_testkit::messages_to(&known).await.len(), before + 2);
}

#[tokio::test]
async fn an_ape_not_yet_activated_gets_the_link_again_on_a_later_import() {
    let w = world().await;
    let national = w.admin("national", Role::NationalAdmin).await;
    w.import_referential(&national).await;
    let contact = w.email("contact-a");
    let file = format!(
        "finess;nom;prenom;telephone;email\n{};Durand;Paul;04 72 00 00 00;{contact}\n",
        esms_a()
    );
    let (status, first) = w
        .upload(
            "/accounts/imports/ape-contacts",
            &national,
            file.clone().into_bytes(),
        )
        .await;
    assert_eq!((status, first["created"].as_u64()), (200, Some(1)));
    assert_eq!(tdb_testkit::messages_to(&contact).await.len(), 1);
    // Imported again at once: unchanged, and no second e-mail within the cooldown.
    let (_, again) = w
        .upload(
            "/accounts/imports/ape-contacts",
            &national,
            file.clone().into_bytes(),
        )
        .await;
    assert_eq!(
        (again["unchanged"].as_u64(), again["links_resent"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(tdb_testkit::messages_to(&contact).await.len(), 1);
    // Later, still not activated (the e-mail was lost, or SES failed): the link goes again.
    w.advance(Settings::new("https://tdb-esms.test").link_cooldown + 1);
    let (_, later) = w
        .upload(
            "/accounts/imports/ape-contacts",
            &national,
            file.clone().into_bytes(),
        )
        .await;
    assert_eq!(later["links_resent"].as_u64(), Some(1));
    assert_eq!(tdb_testkit::messages_to(&contact).await.len(), 2);
    // Once activated, never again.
    w.activate(&contact).await;
    w.advance(Settings::new("https://tdb-esms.test").link_cooldown + 1);
    let (_, active) = w
        .upload(
            "/accounts/imports/ape-contacts",
            &national,
            file.clone().into_bytes(),
        )
        .await;
    assert_eq!(active["links_resent"].as_u64(), Some(0));
    assert_eq!(tdb_testkit::messages_to(&contact).await.len(), 2);
}

/// The signing key is read from Secrets Manager at cold start: the function's configuration
/// holds only the secret's name, and a missing secret stops the start with its name.
#[tokio::test]
async fn the_signing_key_is_read_from_secrets_manager_and_never_configured() {
    let w = world().await;
    let config = tdb_aws::load_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let name = format!("{}-jwt-signing-key", w.tag);
    tdb_aws::secrets::put_secret_string(&secrets, &name, signing_key())
        .await
        .unwrap();
    let table = w.store.table_name().to_string();
    let lookup = |secret: String| {
        let table = table.clone();
        move |var: &str| match var {
            "ACCOUNTS_TABLE" => Some(table.clone()),
            "LAKE_BUCKET" => Some("unused-here".to_string()),
            "SENDER_EMAIL" => Some(SENDER.to_string()),
            "JWT_SIGNING_KEY_SECRET" => Some(secret.clone()),
            "JWT_ISSUER" => Some(ISSUER.to_string()),
            "JWT_AUDIENCE" => Some(AUDIENCE.to_string()),
            "PUBLIC_URL" => Some("https://tdb-esms.test".to_string()),
            _ => None,
        }
    };
    let router = accounts::Config::from_lookup(lookup(name.clone()))
        .unwrap()
        .router(&config)
        .await
        .unwrap();
    let request = http::Request::get("/.well-known/jwks.json")
        .body(Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let served: Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    let expected = TokenSigner::from_pem(signing_key(), ISSUER, AUDIENCE).unwrap();
    let expected: Value = serde_json::from_str(&expected.jwks_json()).unwrap();
    assert_eq!(served, expected, "the key from the secret signs");

    let missing = format!("{}-absent", w.tag);
    let error = match accounts::Config::from_lookup(lookup(missing.clone()))
        .unwrap()
        .router(&config)
        .await
    {
        Ok(_) => panic!("a missing secret must stop the start"),
        Err(e) => format!(
            "{e}: {}",
            std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default()
        ),
    };
    assert!(error.contains(&missing), "{error}");
    // No configuration variable carries a key.
    assert!(
        accounts::Config::from_lookup(|var| (var != "JWT_SIGNING_KEY_SECRET").then(|| "x".into()))
            .is_err()
    );
}

#[tokio::test]
async fn an_account_keeps_at_most_its_allowed_sessions_and_loses_the_oldest() {
    let w = world().await;
    w.admin("sessions", Role::NationalAdmin).await;
    let email = w.email("sessions");
    let max = Settings::new("https://tdb-esms.test").max_sessions;
    let mut refresh_tokens = Vec::new();
    for _ in 0..max + 2 {
        w.advance(1);
        let (_, tokens) = w.login(&email, PASSWORD).await;
        refresh_tokens.push(tokens["refresh_token"].as_str().unwrap().to_string());
    }
    // The administrator's own login when the test set it up was the oldest of all.
    let (dead, alive) = refresh_tokens.split_at(2);
    for token in dead {
        assert_eq!(w.refresh(token).await.0, 401, "an oldest session ended");
    }
    for token in alive {
        assert_eq!(w.refresh(token).await.0, 200);
    }
}

#[tokio::test]
async fn links_die_with_a_password_change_and_tokens_sent_to_the_wrong_route_survive() {
    let w = world().await;
    let national = w.admin("national", Role::NationalAdmin).await;
    w.import_referential(&national).await;
    let cooldown = Settings::new("https://tdb-esms.test").link_cooldown;

    // An activation link sent to the refresh route by mistake still activates afterwards.
    let email = w.email("ape-a");
    let (status, _) = w
        .send(
            Method::PUT,
            &format!("/accounts/structures/{}/ape", esms_a()),
            Some(&national),
            json!({ "email": email, "last_name": "Durand", "first_name": "Paul" }),
        )
        .await;
    assert_eq!(status, 201);
    let activation = w.last_link_to(&email).await.unwrap();
    assert_eq!(w.refresh(&activation).await.0, 401);
    w.activate(&email).await;
    let (_, tokens) = w.login(&email, PASSWORD).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    // And a refresh token sent to the password route still refreshes afterwards.
    let (status, _) = w
        .send(
            Method::POST,
            "/auth/password",
            None,
            json!({ "token": refresh, "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(w.refresh(&refresh).await.0, 200);

    // Two reset links; the second sets a password; the first is then dead.
    let reset = || {
        w.send(
            Method::POST,
            "/auth/password-reset",
            None,
            json!({ "email": email }),
        )
    };
    w.advance(cooldown);
    reset().await;
    let first = w.last_link_to(&email).await.unwrap();
    w.advance(cooldown);
    reset().await;
    let second = w.last_link_to(&email).await.unwrap();
    assert_ne!(first, second);
    let set = |token: String| {
        w.send(
            Method::POST,
            "/auth/password",
            None,
            json!({ "token": token, "password": PASSWORD }),
        )
    };
    assert_eq!(set(second).await.0, 204);
    let (status, e) = set(first).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (401, Some("invalid_link"))
    );

    // Appointing an administrator's address is refused before the current APE is removed.
    let (status, _) = w
        .send(
            Method::PUT,
            &format!("/accounts/structures/{}/ape", esms_a()),
            Some(&national),
            json!({ "email": w.email("national"), "last_name": "N", "first_name": "N" }),
        )
        .await;
    assert!(status == 403 || status == 409, "{status}");
    let cd = w
        .admin(
            "cd",
            Role::DepartementalAdmin {
                departement: Departement::from_code("69").unwrap(),
            },
        )
        .await;
    let (status, e) = w
        .send(
            Method::PUT,
            &format!("/accounts/structures/{}/ape", esms_a()),
            Some(&national),
            json!({ "email": w.email("cd"), "last_name": "C", "first_name": "D" }),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("administrator_account"))
    );
    let (_, a) = w
        .get(&format!("/accounts/structures/{}", esms_a()), &cd)
        .await;
    assert_eq!(a["ape"]["email"], email.as_str(), "the APE is still there");

    // A huge page number is an empty page, not a failure.
    let (status, page) = w
        .get(
            "/accounts/structures?departement=69&page=1000000000000000000",
            &cd,
        )
        .await;
    assert_eq!(
        (status, page["structures"].as_array().map(Vec::len)),
        (200, Some(0))
    );

    // Readers following an OG's progress do not get its ESMS' APE contact details.
    let ape_og = w.ape(&national, og(), "ape-og").await;
    let (status, _) = w
        .send(
            Method::POST,
            &format!("/accounts/structures/{}/users", og()),
            Some(&ape_og),
            json!({ "email": w.email("lecteur-og"), "last_name": "L", "first_name": "O",
                    "profile": "lecteur" }),
        )
        .await;
    assert_eq!(status, 201);
    w.activate(&w.email("lecteur-og")).await;
    let reader = w.token_of(&w.email("lecteur-og")).await;
    let (status, list) = w
        .get(&format!("/accounts/structures?og={}", og()), &reader)
        .await;
    assert_eq!(status, 200);
    let row_a = list["structures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["finess"] == esms_a().as_str())
        .unwrap();
    assert_eq!(row_a["ape"], Value::Null, "{row_a}");
    let (_, list) = w
        .get(&format!("/accounts/structures?og={}", og()), &ape_og)
        .await;
    assert!(list.to_string().contains(&email), "the OG's APE sees them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_changes_of_ones_own_details_lose_nothing_and_never_fail_with_5xx() {
    let w = world().await;
    let token = w.admin("moi", Role::NationalAdmin).await;
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let router = w.router.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let request = http::Request::builder()
                    .method(Method::PATCH)
                    .uri("/accounts/me")
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(Body::from(
                        json!({ "phone": format!("04 72 00 00 0{i}") }).to_string(),
                    ))
                    .unwrap();
                router.oneshot(request).await.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200));
    let stored = w
        .store
        .account_by_email(&EmailAddress::parse(&w.email("moi")).unwrap())
        .await
        .unwrap()
        .unwrap()
        .account;
    // The last successful save is what is stored: one of the numbers sent, whole.
    let phone = stored.person.phone.unwrap();
    assert!(phone.starts_with("04 72 00 00 0"), "{phone}");
    assert_eq!(
        stored.person.last_name, "Admin",
        "the other details are untouched"
    );
}

impl World {
    /// Creates an upload job, `PUT`s `file` to its presigned address on LocalStack's S3, and
    /// lets the function process it as the S3 event would: the job as polled afterwards.
    async fn import_by_upload(&self, national: &str, file: Vec<u8>) -> Value {
        let id = self.upload_file(national, file).await;
        self.uploads
            .process_upload(&format!("{}{id}.csv", accounts::jobs::UPLOAD_PREFIX))
            .await
            .unwrap();
        let (status, job) = self
            .get(&format!("/accounts/imports/jobs/{id}"), national)
            .await;
        assert_eq!(status, 200, "{job}");
        job
    }

    /// Creates an upload job and uploads `file` to it; the job's id.
    async fn upload_file(&self, national: &str, file: Vec<u8>) -> String {
        let (status, created) = self
            .call(
                Method::POST,
                "/accounts/imports/referential/uploads",
                Some(national),
                Body::empty(),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["job"]["status"], "awaiting_upload");
        assert_eq!(created["upload"]["method"], "PUT");
        let put = reqwest::Client::new()
            .put(created["upload"]["url"].as_str().unwrap())
            .body(file)
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success(), "{}", put.status());
        created["job"]["id"].as_str().unwrap().to_string()
    }

    async fn stored(&self, finess: Finess) -> tdb_domain::accounts::StructureRecord {
        self.store
            .structures(&[finess])
            .await
            .unwrap()
            .pop()
            .expect("the structure exists")
    }
}

#[tokio::test]
async fn the_national_extract_is_uploaded_then_imported_in_the_background_idempotently() {
    let w = world().await;
    let national = w.admin("national", Role::NationalAdmin).await;

    let job = w.import_by_upload(&national, etalab_file()).await;
    assert_eq!(job["status"], "done", "{job}");
    let summary = &job["summary"];
    assert_eq!(
        (summary["created"].as_u64(), summary["unchanged"].as_u64()),
        (Some(6), Some(0)),
        "{summary}"
    );
    assert_eq!(summary["rejected"][0]["line"], 8);
    assert_eq!(w.stored(esms_a()).await.og, Some(og()));

    // S3 delivers events at least once: a repeated event leaves the finished job as it is.
    let id = job["id"].as_str().unwrap();
    w.uploads
        .process_upload(&format!("{}{id}.csv", accounts::jobs::UPLOAD_PREFIX))
        .await
        .unwrap();
    let (_, again) = w
        .get(&format!("/accounts/imports/jobs/{id}"), &national)
        .await;
    assert_eq!(again, job, "a repeated event changes nothing");

    // The same file uploaded again: the same referential, nothing written.
    let second = w.import_by_upload(&national, etalab_file()).await;
    assert_eq!(
        (
            second["summary"]["created"].as_u64(),
            second["summary"]["updated"].as_u64(),
            second["summary"]["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(6)),
        "{second}"
    );
}

#[tokio::test]
async fn a_dry_run_upload_reports_and_writes_nothing() {
    let w = world().await;
    let national = w.admin("national", Role::NationalAdmin).await;
    let (status, created) = w
        .call(
            Method::POST,
            "/accounts/imports/referential/uploads?dry_run=true",
            Some(&national),
            Body::empty(),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["job"]["dry_run"], true);
    let id = created["job"]["id"].as_str().unwrap();
    reqwest::Client::new()
        .put(created["upload"]["url"].as_str().unwrap())
        .body(etalab_file())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    w.uploads
        .process_upload(&format!("{}{id}.csv", accounts::jobs::UPLOAD_PREFIX))
        .await
        .unwrap();
    let (_, job) = w
        .get(&format!("/accounts/imports/jobs/{id}"), &national)
        .await;
    assert_eq!(job["summary"]["created"], 6, "{job}");
    assert!(w.store.structures(&[esms_a()]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_file_that_is_not_an_extract_fails_its_job_with_the_reason() {
    let w = world().await;
    let national = w.admin("national", Role::NationalAdmin).await;
    let job = w
        .import_by_upload(&national, b"nofinesset;nofinessej\n123;456\n".to_vec())
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.starts_with("line 1: not an Etalab FINESS extract"),
        "{error}"
    );
    assert!(job["summary"].is_null());
}

#[tokio::test]
async fn only_a_national_administrator_starts_or_reads_an_import_job() {
    let w = world().await;
    let national = w.admin("national", Role::NationalAdmin).await;
    let ars = w.admin("ars", ara()).await;
    let (status, _) = w
        .call(
            Method::POST,
            "/accounts/imports/referential/uploads",
            Some(&ars),
            Body::empty(),
        )
        .await;
    assert_eq!(status, 403);
    let id = w.upload_file(&national, etalab_file()).await;
    let (status, _) = w.get(&format!("/accounts/imports/jobs/{id}"), &ars).await;
    assert_eq!(status, 403);
    let (status, _) = w
        .get(
            "/accounts/imports/jobs/0123456789abcdef0123456789abcdef",
            &national,
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = w.get("/accounts/imports/jobs/nope", &national).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("job"))
    );
    // An object that is not a job's upload is left alone.
    w.uploads
        .process_upload("imports/referential/nope.csv")
        .await
        .unwrap();
    w.uploads.process_upload("elsewhere/x.csv").await.unwrap();
}

/// A legal entity's two sites in two files: the OG rule counts both, whichever file
/// brought them.
fn one_site_file(et: Finess, ej: Finess, name: &str, category: u16) -> Vec<u8> {
    [
        "finess;etalab;1.2;2025-01-06".to_string(),
        etalab_row(et, ej, name, category),
    ]
    .join("\n")
    .into_bytes()
}

#[tokio::test]
async fn the_og_rule_holds_over_the_whole_stored_referential_not_one_file() {
    let w = world().await;
    let national = w.admin("national", Role::NationalAdmin).await;
    let ej = f("69000700");
    let (status, _) = w
        .upload(
            "/accounts/imports/referential",
            &national,
            one_site_file(f("69007001"), ej, "EHPAD du Rhône", 500),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        w.stored(f("69007001")).await.og,
        None,
        "one FINESS: not an OG"
    );
    // The entity's hospital in the Isère, in another file.
    let (status, summary) = w
        .upload(
            "/accounts/imports/referential",
            &national,
            one_site_file(f("38007002"), ej, "Centre hospitalier", 355),
        )
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(
        w.stored(f("69007001")).await.og,
        Some(ej),
        "the EHPAD of the first file now belongs to an OG"
    );
    assert_eq!(w.stored(ej).await.kind, tdb_domain::RespondentKind::Og);
    assert_eq!(
        (summary["created"].as_u64(), summary["updated"].as_u64()),
        (Some(1), Some(1)),
        "the OG created, the EHPAD updated: {summary}"
    );
}

#[tokio::test]
async fn parallel_imports_take_turns_and_lose_no_establishment() {
    let w = world().await;
    let national = w.admin("national", Role::NationalAdmin).await;
    let ej = f("69000800");
    let first = w
        .upload_file(
            &national,
            one_site_file(f("69008001"), ej, "EHPAD Nord", 500),
        )
        .await;
    let second = w
        .upload_file(
            &national,
            one_site_file(f("69008002"), ej, "EHPAD Sud", 500),
        )
        .await;
    let key = |id: &str| format!("{}{id}.csv", accounts::jobs::UPLOAD_PREFIX);
    let (key_a, key_b) = (key(&first), key(&second));
    let (a, b) = tokio::join!(
        w.uploads.process_upload(&key_a),
        w.uploads.process_upload(&key_b)
    );
    a.unwrap();
    b.unwrap();
    for id in [&first, &second] {
        let (_, job) = w
            .get(&format!("/accounts/imports/jobs/{id}"), &national)
            .await;
        assert_eq!(job["status"], "done", "{job}");
    }
    // Had the two merged the stored referential at once, one site would be lost and the
    // entity, with a single FINESS, would not be an OG.
    assert_eq!(w.stored(f("69008001")).await.og, Some(ej));
    assert_eq!(w.stored(f("69008002")).await.og, Some(ej));
}

#[tokio::test]
async fn a_direct_import_while_another_holds_the_referential_answers_409_and_writes_nothing() {
    let w = world().await;
    let national = w.admin("national", Role::NationalAdmin).await;
    let now = w.now.load(Ordering::SeqCst);
    // An upload job's worker holds the referential.
    assert!(
        w.store
            .lock("referential", "a-job", now, now + 900)
            .await
            .unwrap()
    );
    let (status, body) = w
        .upload("/accounts/imports/referential", &national, etalab_file())
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("import_running"))
    );
    assert!(w.store.structures(&[esms_a()]).await.unwrap().is_empty());
    w.store.unlock("referential", "a-job").await.unwrap();
    let (status, _) = w
        .upload("/accounts/imports/referential", &national, etalab_file())
        .await;
    assert_eq!(status, 200);
}
