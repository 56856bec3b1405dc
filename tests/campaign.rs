//! A whole campaign through the local gateway, over HTTP only, as its people live it: the
//! national referential imported in the background, APE activated from the e-mail read back
//! from LocalStack, users created by an APE, data entered by ESMS and by their OG
//! (subsidiarity, a bulk upload), the financial prefill and a correction, reminders over
//! the collection window walked day by day, validation with an acknowledged warning, an ARS
//! reopening and its e-mail, closure, the snapshot, restitutions, the regional export and an
//! analyst's query of the lake.
//!
//! The gateway is the one `tdb-gateway` serves (`tdb_gateway::local::start`), over a freshly
//! provisioned stack, with one difference: the campaign functions' clock is this test's, so
//! that the 2025 calendar can be walked. The numbers asserted at the end (progress, a few
//! indicators, national and regional medians) are recomputed here from the answers the test
//! entered, without the domain's evaluation.
//!
//! Needs the local stack: run through `scripts/test.sh`, or `bash localstack/start.sh;
//! source localstack/.run/env` first.

use reqwest::Method;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use tdb_domain::accounts::Person;
use tdb_domain::email::EmailAddress;
use tdb_domain::generator::{GeneratorConfig, Quality};
use tdb_domain::questionnaire::CampaignDefinitions;
use tdb_domain::rights::Role;
use tdb_domain::{Category, Finess, Region, RespondentKind};
use time::Date;
use time::macros::date;

const SENDER: &str = "tdb-esms@campagne.test";
const PASSWORD: &str = "une longue phrase de passe";
const ACTIVATION: &str = "Tableau de bord de la performance ESMS : activez votre compte";
const OPENING: &str = "Tableau de bord de la performance ESMS : la campagne 2025 est ouverte";

/// The financial items the national administrator prefills from the financial statements.
const PREFILLED: [&str; 7] = [
    "charges_personnel",
    "compte_6111",
    "compte_6112",
    "compte_621_soins",
    "compte_6223",
    "compte_6226",
    "produits_classe_7",
];

/// A site of the referential: its key in this test, its FINESS and its legal entity's
/// (first eight digits, the key is computed), its name and FINESS category.
struct Site {
    key: &'static str,
    finess: &'static str,
    legal_entity: &'static str,
    name: &'static str,
    category: u16,
}

/// The legal entity managing A, B, C and a hospital: an OG.
const OG_ENTITY: &str = "69000100";

/// Auvergne-Rhône-Alpes (Rhône, Isère) and three EHPAD in Paris.
const SITES: [Site; 18] = [
    site("a", "69001001", OG_ENTITY, "EHPAD Les Tilleuls", 500),
    site("b", "69001002", OG_ENTITY, "EHPAD Le Verger", 500),
    site("c", "69001003", OG_ENTITY, "IME Les Coquelicots", 183),
    // Out of scope: counts in the OG rule, gets no questionnaire.
    site("hospital", "69001009", OG_ENTITY, "CH de la Saône", 355),
    site("d", "69001004", "69000204", "EHPAD La Roseraie", 500),
    site("e", "69001005", "69000205", "EHPAD Les Glycines", 500),
    site("f", "69001006", "69000206", "EHPAD Le Belvédère", 500),
    site("g", "69001007", "69000207", "SSIAD du Val de Saône", 354),
    site("h", "69001008", "69000208", "ESAT du Rhône", 246),
    site("i", "38001001", "38000201", "EHPAD Les Edelweiss", 500),
    site("j", "38001002", "38000202", "EHPAD Le Vercors", 500),
    site("k", "38001003", "38000203", "EHPAD La Chartreuse", 500),
    site("l", "38001004", "38000204", "MAS Belledonne", 255),
    site("m", "38001005", "38000205", "EHPAD Les Écrins", 500),
    site("n", "38001006", "38000206", "EHPAD Le Grésivaudan", 500),
    site("p", "75001001", "75000201", "EHPAD Montsouris", 500),
    site("q", "75001002", "75000202", "EHPAD Buttes-Chaumont", 500),
    site("r", "75001003", "75000203", "EHPAD Monceau", 500),
];

const fn site(
    key: &'static str,
    finess: &'static str,
    legal_entity: &'static str,
    name: &'static str,
    category: u16,
) -> Site {
    Site {
        key,
        finess,
        legal_entity,
        name,
        category,
    }
}

/// What happens to each questionnaire, which the final numbers are recomputed from.
/// Validated on 20 May (on time), J and K on 20 June; E then checked by the ARS; C and M
/// left in progress; G, H, L and N never started.
const VALIDATED_IN_MAY: [&str; 10] = ["og", "a", "b", "d", "e", "f", "i", "p", "q", "r"];
const VALIDATED_IN_JUNE: [&str; 2] = ["j", "k"];
const CHECKED: &str = "e";
const IN_PROGRESS: [&str; 2] = ["c", "m"];

/// A questionnaire of the campaign, as this test knows it.
#[derive(Debug, Clone)]
struct Respondent {
    key: &'static str,
    finess: Finess,
    name: String,
    /// `OG` or the category's key, as listings name it.
    category: &'static str,
    kind: RespondentKind,
}

impl Respondent {
    fn id(&self) -> String {
        self.finess.to_string()
    }

    fn departement(&self) -> String {
        self.finess.departement().to_string()
    }

    fn region(&self) -> String {
        format!(
            "{:02}",
            self.finess.departement().region().expect("a region").code()
        )
    }

    /// The status it ends the campaign with (before closure freezes it).
    fn status(&self) -> &'static str {
        if self.key == CHECKED {
            "checked"
        } else if VALIDATED_IN_MAY.contains(&self.key) || VALIDATED_IN_JUNE.contains(&self.key) {
            "validated"
        } else if IN_PROGRESS.contains(&self.key) {
            "in_progress"
        } else {
            "not_started"
        }
    }

    fn counted(&self) -> bool {
        matches!(self.status(), "validated" | "checked")
    }
}

fn f(first_eight: &str) -> Finess {
    Finess::with_key(first_eight).unwrap()
}

/// The referential's respondents: each ESMS in scope and the OG.
fn respondents() -> Vec<Respondent> {
    let mut all: Vec<Respondent> = SITES
        .iter()
        .filter(|s| s.key != "hospital")
        .map(|s| {
            let category = Category::from_finess_code(s.category).unwrap();
            Respondent {
                key: s.key,
                finess: f(s.finess),
                name: s.name.to_string(),
                category: category.key(),
                kind: RespondentKind::Esms(category),
            }
        })
        .collect();
    all.push(Respondent {
        key: "og",
        finess: f(OG_ENTITY),
        // The extract has no legal-entity names: read from the accounts function later.
        name: String::new(),
        category: "OG",
        kind: RespondentKind::Og,
    });
    all
}

/// The Etalab extract (`etalab-cs1100502-stock-<date>.csv`), fields by position.
fn etalab_extract() -> Vec<u8> {
    let mut lines = vec!["finess;etalab;1.2;2025-01-06".to_string()];
    for s in &SITES {
        let (et, ej) = (f(s.finess), f(s.legal_entity));
        let mut fields = vec![String::new(); 32];
        fields[0] = "structureet".into();
        fields[1] = et.to_string();
        fields[2] = ej.to_string();
        fields[3] = s.name.to_uppercase();
        fields[4] = s.name.into();
        fields[13] = et.departement().to_string();
        fields[18] = s.category.to_string();
        lines.push(fields.join(";"));
    }
    lines.join("\n").into_bytes()
}

/// Complete, coherent answers from the platform's generator, handed out by kind: the
/// answers this test enters, and recomputes its numbers from.
fn generated_answers(
    definitions: &CampaignDefinitions,
) -> BTreeMap<&'static str, Map<String, Value>> {
    let config = GeneratorConfig {
        establishments: 120,
        seed: 15,
        incomplete_share: 0.0,
        incoherent_share: 0.0,
    };
    let campaign = tdb_domain::generator::generate(definitions, &config, |_, _| {});
    let mut pool: Vec<_> = campaign
        .questionnaires
        .iter()
        .filter(|q| q.quality == Quality::Complete)
        .collect();
    let mut answers = BTreeMap::new();
    for r in respondents() {
        if matches!(r.key, "g" | "h" | "l") {
            continue;
        }
        let at = pool
            .iter()
            .position(|q| q.respondent.kind == r.kind)
            .unwrap_or_else(|| panic!("the generator made no {} questionnaire", r.category));
        let q = pool.remove(at);
        answers.insert(
            r.key,
            definitions
                .for_kind(q.respondent.kind)
                .answers_to_json(&q.answers),
        );
    }
    answers
}

fn number(answers: &Map<String, Value>, item: &str) -> Option<f64> {
    answers.get(item).and_then(Value::as_f64)
}

/// Permanent occupancy, as the 2025 definition writes it (domain §9): days delivered plus
/// absences under 72 h, over authorised places times the opening days.
fn occupancy(answers: &Map<String, Value>) -> Option<f64> {
    let numerator = number(answers, "journees_perm")? + number(answers, "journees_absence_72h")?;
    let denominator = number(answers, "cap_auth_perm")? * number(answers, "jours_ouverture")?;
    (denominator != 0.0).then_some(numerator / denominator)
}

/// The file active: people at 31/12 plus definitive exits.
fn file_active(answers: &Map<String, Value>) -> Option<f64> {
    Some(number(answers, "personnes_31_12")? + number(answers, "sorties_definitives")?)
}

/// External services over direct ones (accounts 6111, 6112, 621, 6223, 6226).
fn external_services(answers: &Map<String, Value>) -> Option<f64> {
    let n = |item| number(answers, item);
    let external = n("compte_6111")?
        + n("compte_6112")?
        + n("compte_621_soins")?
        + n("compte_6223")?
        + n("compte_6226")?;
    let direct = n("charges_personnel")? + n("compte_6111")? + n("compte_6112")?;
    (direct != 0.0).then_some(external / direct)
}

/// The quantile `p` of `values` with linear interpolation between the closest ranks
/// (Hyndman and Fan's type 7, DuckDB's `quantile_cont`).
fn quantile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let h = (sorted.len() - 1) as f64 * p;
    let below = h.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    sorted[below] + (h - below as f64) * (sorted[above] - sorted[below])
}

/// The band of authorised places of an EHPAD's peer group (every mode).
fn capacity_band(answers: &Map<String, Value>) -> u32 {
    let places: f64 = ["cap_auth_perm", "cap_auth_temp", "cap_auth_aj"]
        .iter()
        .filter_map(|item| number(answers, item))
        .sum();
    match places.round() as u32 {
        0..40 => 0,
        40..80 => 1,
        80..120 => 2,
        _ => 3,
    }
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0)
}

/// A JSON number as a French CSV writes it.
fn french(value: &Value) -> String {
    value.to_string().replace('.', ",")
}

/// The campaign functions' clock: midday (UTC) of the day the test is at.
struct Calendar(Arc<AtomicI64>);

impl Calendar {
    fn set(&self, day: Date) {
        let midday = day.midnight().assume_utc().unix_timestamp() + 12 * 3600;
        self.0.store(midday, Ordering::SeqCst);
    }
}

/// The gateway's HTTP API, as a client on the network sees it.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request.send().await.expect("the gateway answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("a whole answer");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("{path}: not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, body)
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        let body = Some(("application/json", body.to_string().into_bytes()));
        self.call(method, path, token, body).await
    }

    async fn upload(&self, path: &str, token: &str, csv: String) -> (u16, Value) {
        self.call(
            Method::POST,
            path,
            Some(token),
            Some(("text/csv", csv.into_bytes())),
        )
        .await
    }

    async fn login(&self, email: &str) -> String {
        let (status, body) = self
            .send(
                Method::POST,
                "/auth/login",
                None,
                json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// Saves `answers` on the questionnaire's current version.
    async fn save(&self, token: &str, finess: Finess, answers: Map<String, Value>) -> (u16, Value) {
        let path = format!("/questionnaires/2025/{finess}");
        let (status, view) = self.get(&path, token).await;
        assert_eq!(status, 200, "{view}");
        let body = json!({ "base_version": view["version"], "answers": answers });
        self.send(Method::PATCH, &path, Some(token), body).await
    }

    /// Saves and checks that every value was kept.
    async fn save_all(&self, token: &str, finess: Finess, answers: Map<String, Value>) {
        let (status, saved) = self.save(token, finess, answers).await;
        assert_eq!(status, 200, "{saved}");
        assert_eq!(saved["rejected"], json!([]), "{finess}");
    }

    async fn step(&self, token: &str, finess: Finess, step: Value) -> (u16, Value) {
        let path = format!("/validation/2025/{finess}/transitions");
        self.send(Method::POST, &path, Some(token), step).await
    }

    async fn validate(&self, token: &str, finess: Finess) -> Value {
        let (status, result) = self
            .step(token, finess, json!({ "step": "validate" }))
            .await;
        assert_eq!(status, 200, "{finess}: {result}");
        assert_eq!(result["checks"]["parts"][0]["status"], "validated");
        result
    }
}

/// What LocalStack's SES received for `to`, oldest first: subject and text.
fn inbox(messages: &[Value], to: &str) -> Vec<(String, String)> {
    messages
        .iter()
        .filter(|m| m["Destination"]["ToAddresses"][0] == to)
        .map(|m| {
            (
                m["Subject"].as_str().unwrap_or_default().to_string(),
                m["Body"]["text_part"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// The subjects of the e-mails to `to` other than account activations.
fn reminders(messages: &[Value], to: &str) -> Vec<String> {
    inbox(messages, to)
        .into_iter()
        .map(|(subject, _)| subject)
        .filter(|subject| subject != ACTIVATION)
        .collect()
}

/// The campaign's people and their tokens.
struct World {
    api: Api,
    calendar: Calendar,
    tag: String,
    respondents: Vec<Respondent>,
    /// Access tokens by person (`national`, `ars`, `ape-a`, `gest-og`...).
    tokens: BTreeMap<String, String>,
    /// The answers entered, by respondent: what the numbers are recomputed from.
    answers: BTreeMap<&'static str, Map<String, Value>>,
    definitions: CampaignDefinitions,
}

impl World {
    fn email(&self, who: &str) -> String {
        format!("{who}.{}@exemple.fr", self.tag)
    }

    fn respondent(&self, key: &str) -> &Respondent {
        self.respondents.iter().find(|r| r.key == key).unwrap()
    }

    fn finess(&self, key: &str) -> Finess {
        self.respondent(key).finess
    }

    fn token(&self, who: &str) -> &str {
        self.tokens
            .get(who)
            .unwrap_or_else(|| panic!("no token for {who}"))
    }

    /// Reads the activation link e-mailed to `who`, chooses a password on it and logs in.
    async fn activate(&mut self, messages: &[Value], who: &str) {
        let email = self.email(who);
        let received = inbox(messages, &email);
        let (subject, text) = received
            .last()
            .unwrap_or_else(|| panic!("no e-mail to {who}"));
        assert_eq!(subject, ACTIVATION);
        let link = text
            .split_whitespace()
            .find(|w| w.contains("/mot-de-passe#jeton="))
            .unwrap_or_else(|| panic!("no link in {who}'s e-mail"));
        assert!(link.starts_with(&format!("{}/mot-de-passe#jeton=", self.api.base)));
        let token = link.split("#jeton=").nth(1).unwrap();
        let (status, body) = self
            .api
            .send(
                Method::POST,
                "/auth/password",
                None,
                json!({ "token": token, "password": PASSWORD }),
            )
            .await;
        assert_eq!(status, 204, "{who}: {body}");
        let token = self.api.login(&email).await;
        self.tokens.insert(who.to_string(), token);
    }

    /// Creates an administrator as `tdb admin` does (no HTTP route creates one: the account
    /// and its activation e-mail, through the same configuration the gateway gives the
    /// accounts function), then activates it over HTTP.
    async fn administrator(
        &mut self,
        aws: &aws_config::SdkConfig,
        environment: &BTreeMap<String, String>,
        who: &str,
        role: Role,
    ) {
        let app = accounts::Config::from_lookup(|name| environment.get(name).cloned())
            .unwrap()
            .app(aws)
            .await
            .unwrap();
        let person = Person {
            last_name: "Administrateur".into(),
            first_name: who.into(),
            phone: None,
        };
        app.add_administrator(
            &EmailAddress::parse(&self.email(who)).unwrap(),
            person,
            role,
        )
        .await
        .unwrap();
        let messages = tdb_testkit::ses_messages().await;
        self.activate(&messages, who).await;
    }

    /// The items of `key`'s answers that its OG may enter (subsidiarity), minus the
    /// prefilled ones, as CSV cells.
    fn subsidiarity_cells(&self, key: &str) -> BTreeMap<String, String> {
        let kind = self.respondent(key).kind;
        let definition = self.definitions.for_kind(kind);
        self.answers[key]
            .iter()
            .filter(|(item, _)| {
                !PREFILLED.contains(&item.as_str())
                    && definition.item(item).is_some_and(|i| i.subsidiarity)
            })
            .filter_map(|(item, value)| {
                let cell = match value {
                    Value::Number(_) => french(value),
                    Value::Bool(true) => "oui".into(),
                    Value::Bool(false) => "non".into(),
                    Value::String(s) => s.clone(),
                    Value::Array(choices) => choices
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("|"),
                    // `{"status": "not_applicable"}` has no CSV form: the ESMS enters it.
                    _ => return None,
                };
                (!cell.contains([';', '\n', '\r'])).then(|| (item.clone(), cell))
            })
            .collect()
    }

    /// `key`'s answers other than `except`.
    fn answers_but(&self, key: &str, except: &BTreeSet<String>) -> Map<String, Value> {
        self.answers[key]
            .iter()
            .filter(|(item, _)| !except.contains(*item))
            .map(|(item, value)| (item.clone(), value.clone()))
            .collect()
    }

    async fn run_reminders(&self, day: Date) -> Value {
        self.calendar.set(day);
        let (status, summary) = self
            .api
            .call(
                Method::POST,
                "/reminders/2025/run",
                Some(self.token("national")),
                None,
            )
            .await;
        assert_eq!(status, 200, "{day}: {summary}");
        assert_eq!(summary["day"], day.to_string());
        for field in ["failed", "in_flight", "remaining"] {
            assert_eq!(summary[field], 0, "{day}: {summary}");
        }
        summary
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_campaign_runs_through_the_gateway_over_http() {
    tdb_testkit::local_endpoint();
    let started = Instant::now();
    let tag = tdb_testkit::unique_name("e2e");
    let aws = tdb_aws::load_config().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let calendar = Calendar(Arc::new(AtomicI64::new(0)));
    // Preparation: accounts and referential before collection opens.
    calendar.set(date!(2025 - 04 - 14));
    let clock = calendar.0.clone();
    let local = tdb_gateway::local::start(
        &aws,
        tdb_gateway::local::Options {
            stack_name: &tag,
            sender: SENDER,
            signing_key: &accounts::generate_signing_key(),
            base: &base,
            web_origins: &["http://localhost:8080".to_string()],
            campaign_clock: Arc::new(move || clock.load(Ordering::SeqCst)),
        },
    )
    .await
    .expect("the local stack answers: is it started?");
    assert!(local.missing.is_empty(), "every function is served");
    let environment = local.environment.clone();
    tokio::spawn(async move { axum::serve(listener, local.router).await.unwrap() });
    let definitions = tdb_domain::questionnaire::builtin::load(2025)
        .unwrap()
        .unwrap();
    let mut w = World {
        api: Api {
            http: reqwest::Client::new(),
            base,
        },
        calendar,
        tag,
        respondents: respondents(),
        tokens: BTreeMap::new(),
        answers: generated_answers(&definitions),
        definitions,
    };

    accounts_and_referential(&mut w, &aws, &environment).await;
    opening_and_prefill(&w).await;
    collection_walked_day_by_day(&mut w).await;
    fiabilisation(&mut w).await;
    closure_and_restitutions(&w, &environment).await;
    println!("the campaign took {:.1} s", started.elapsed().as_secs_f64());
}

/// Administrators (as `tdb admin`), the national extract through an upload job, APE from
/// the ARS's contacts and from the OG, users created by an APE.
async fn accounts_and_referential(
    w: &mut World,
    aws: &aws_config::SdkConfig,
    environment: &BTreeMap<String, String>,
) {
    let ara = Region::from_code(84).unwrap();
    w.administrator(aws, environment, "national", Role::NationalAdmin)
        .await;
    w.administrator(aws, environment, "ars", Role::RegionalAdmin { region: ara })
        .await;
    // The page the links open is served by the gateway, in French.
    let page = w
        .api
        .http
        .get(format!("{}/mot-de-passe", w.api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("lang=\"fr\""));

    // The national extract is too large for a request: an upload job, S3's event relayed.
    let national = w.token("national").to_string();
    let (status, created) = w
        .api
        .call(
            Method::POST,
            "/accounts/imports/referential/uploads",
            Some(&national),
            None,
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["job"]["status"], "awaiting_upload");
    let put = w
        .api
        .http
        .put(created["upload"]["url"].as_str().unwrap())
        .body(etalab_extract())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let job_path = format!(
        "/accounts/imports/jobs/{}",
        created["job"]["id"].as_str().unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let (status, job) = w.api.get(&job_path, &national).await;
        assert_eq!(status, 200, "{job}");
        if job["status"] == "done" || job["status"] == "failed" {
            break job;
        }
        assert!(Instant::now() < deadline, "the import never ended: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job["status"], "done", "{job}");
    let summary = &job["summary"];
    assert_eq!(
        (summary["created"].as_u64(), summary["ignored"].as_u64()),
        (Some(w.respondents.len() as u64), Some(1)),
        "every ESMS in scope and the OG; the hospital is out of scope: {summary}"
    );
    assert_eq!(summary["rejected"], json!([]));
    let og = w.finess("og");
    let (_, a) = w
        .api
        .get(
            &format!("/accounts/structures/{}", w.finess("a")),
            &national,
        )
        .await;
    assert_eq!(a["og"], og.to_string(), "A's entity manages four FINESS");
    let (_, d) = w
        .api
        .get(
            &format!("/accounts/structures/{}", w.finess("d")),
            &national,
        )
        .await;
    assert_eq!(d["og"], Value::Null, "D's entity manages only D");
    let (status, og_record) = w
        .api
        .get(&format!("/accounts/structures/{og}"), &national)
        .await;
    assert_eq!(status, 200, "{og_record}");
    let og_name = og_record["name"].as_str().unwrap().to_string();
    w.respondents
        .iter_mut()
        .find(|r| r.key == "og")
        .unwrap()
        .name = og_name;

    // The ARS sends its region's APE contacts: the OG's, not those of its ESMS.
    let contact = |w: &World, key: &str| {
        format!(
            "{};Martin;Ape{};04 72 00 00 00;{}\n",
            w.finess(key),
            key.to_uppercase(),
            w.email(&format!("ape-{key}"))
        )
    };
    let header = "finess;nom;prenom;telephone;email\n";
    let region_keys = ["og", "b", "d", "e", "f", "i", "j", "k", "m", "n"];
    let mut contacts: String = header.to_string();
    for key in region_keys {
        contacts.push_str(&contact(w, key));
    }
    contacts.push_str(&contact(w, "p"));
    let (status, imported) = w
        .api
        .upload("/accounts/imports/ape-contacts", w.token("ars"), contacts)
        .await;
    assert_eq!(status, 200, "{imported}");
    assert_eq!(imported["created"], region_keys.len(), "{imported}");
    assert_eq!(
        (
            imported["rejected"][0]["line"].as_u64(),
            imported["rejected"][0]["field"].as_str()
        ),
        (Some(region_keys.len() as u64 + 2), Some("finess")),
        "Paris is outside the ARS's region: {imported}"
    );
    let mut contacts = header.to_string();
    for key in ["p", "q", "r"] {
        contacts.push_str(&contact(w, key));
    }
    let (status, imported) = w
        .api
        .upload("/accounts/imports/ape-contacts", &national, contacts)
        .await;
    assert_eq!(
        (status, imported["created"].as_u64()),
        (200, Some(3)),
        "{imported}"
    );

    // Each APE chooses a password from the e-mailed link, except N's, who never does.
    let messages = tdb_testkit::ses_messages().await;
    for key in region_keys.iter().chain(&["p", "q", "r"]) {
        let who = format!("ape-{key}");
        let received = inbox(&messages, &w.email(&who));
        assert_eq!(received.len(), 1, "{who}: one activation e-mail");
        let name = &w.respondent(key).name;
        assert!(
            received[0]
                .1
                .contains(&format!("pour {name} (FINESS {})", w.finess(key).display())),
            "{who}: {}",
            received[0].1
        );
        if *key != "n" {
            w.activate(&messages, &who).await;
        }
    }

    // The OG's APE lists its ESMS, appoints A's APE and creates the OG's Gestionnaire.
    let ape_og = w.token("ape-og").to_string();
    let (status, listed) = w
        .api
        .get(&format!("/accounts/structures?og={og}"), &ape_og)
        .await;
    assert_eq!(
        (status, listed["total"].as_u64()),
        (200, Some(3)),
        "{listed}"
    );
    let person = |w: &World, who: &str| json!({ "email": w.email(who), "last_name": "Bernard", "first_name": who.replace('-', " ") });
    let a = w.finess("a");
    let (status, appointed) = w
        .api
        .send(
            Method::PUT,
            &format!("/accounts/structures/{a}/ape"),
            Some(&ape_og),
            person(w, "ape-a"),
        )
        .await;
    assert_eq!(status, 201, "{appointed}");
    let (status, refused) = w
        .api
        .send(
            Method::PUT,
            &format!("/accounts/structures/{}/ape", w.finess("d")),
            Some(&ape_og),
            person(w, "intrus"),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("outside_structure")),
        "D is not the OG's"
    );
    let mut gest_og = person(w, "gest-og");
    gest_og["profile"] = json!("gestionnaire");
    let (status, added) = w
        .api
        .send(
            Method::POST,
            &format!("/accounts/structures/{og}/users"),
            Some(&ape_og),
            gest_og,
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let messages = tdb_testkit::ses_messages().await;
    w.activate(&messages, "ape-a").await;
    w.activate(&messages, "gest-og").await;

    // A's APE creates its users: a Gestionnaire and a Lecteur.
    let ape_a = w.token("ape-a").to_string();
    for (who, profile) in [("gest-a", "gestionnaire"), ("lect-a", "lecteur")] {
        let mut user = person(w, who);
        user["profile"] = json!(profile);
        let (status, added) = w
            .api
            .send(
                Method::POST,
                &format!("/accounts/structures/{a}/users"),
                Some(&ape_a),
                user,
            )
            .await;
        assert_eq!(status, 201, "{added}");
    }
    let (status, users) = w
        .api
        .get(&format!("/accounts/structures/{a}/users"), &ape_a)
        .await;
    assert_eq!(status, 200, "{users}");
    assert_eq!(
        users["users"].as_array().unwrap().len(),
        3,
        "APE, Gestionnaire, Lecteur"
    );
    let messages = tdb_testkit::ses_messages().await;
    w.activate(&messages, "gest-a").await;
    w.activate(&messages, "lect-a").await;
    let (_, me) = w.api.get("/accounts/me", w.token("gest-a")).await;
    assert_eq!(me["profiles"][0]["role"]["profile"], "gestionnaire", "{me}");
}

/// The campaign opened, then the national administrator's financial prefill.
async fn opening_and_prefill(w: &World) {
    let national = w.token("national").to_string();
    let (status, opened) = w
        .api
        .call(
            Method::POST,
            "/questionnaires/2025/opening",
            Some(&national),
            None,
        )
        .await;
    assert_eq!(status, 200, "{opened}");
    assert_eq!(opened["created"], w.respondents.len(), "{opened}");
    let (_, again) = w
        .api
        .call(
            Method::POST,
            "/questionnaires/2025/opening",
            Some(&national),
            None,
        )
        .await;
    assert_eq!(
        (again["created"].as_u64(), again["already_open"].as_u64()),
        (Some(0), Some(w.respondents.len() as u64))
    );
    let a = w.finess("a");
    let (status, refused) = w
        .api
        .save(
            w.token("gest-a"),
            a,
            json!({ "jours_ouverture": 365 })
                .as_object()
                .unwrap()
                .clone(),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("outside_collection")),
        "nothing is entered before collection opens"
    );

    // The financial statements' values for every EHPAD, and a line for the hospital, which
    // has no questionnaire.
    w.calendar.set(date!(2025 - 04 - 30));
    let ehpad: Vec<&str> = w
        .respondents
        .iter()
        .filter(|r| r.category == "EHPAD")
        .map(|r| r.key)
        .collect();
    let mut csv = format!("finess;{}\n", PREFILLED.join(";"));
    let mut cells = 0;
    for key in &ehpad {
        let row: Vec<String> = PREFILLED
            .iter()
            .map(|item| w.answers[key].get(*item).map(french).unwrap_or_default())
            .collect();
        cells += row.iter().filter(|c| !c.is_empty()).count();
        csv.push_str(&format!("{};{}\n", w.finess(key), row.join(";")));
    }
    let hospital = SITES.iter().find(|s| s.key == "hospital").unwrap();
    csv.push_str(&format!(
        "{};1000{}\n",
        f(hospital.finess),
        ";".repeat(PREFILLED.len() - 1)
    ));
    let (status, summary) = w
        .api
        .upload("/questionnaires/2025/prefill", &national, csv)
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["structures"], ehpad.len(), "{summary}");
    assert_eq!(summary["values_set"], cells, "{summary}");
    assert_eq!(summary["rejected_total"], 1, "{summary}");
    assert_eq!(summary["rejected"][0]["line"], ehpad.len() + 2, "{summary}");
    let (_, view) = w
        .api
        .get(&format!("/questionnaires/2025/{a}"), w.token("gest-a"))
        .await;
    let item = view["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "charges_personnel")
        .unwrap();
    assert_eq!(
        (&item["value"], item["origin"].as_str()),
        (&w.answers["a"]["charges_personnel"], Some("prefill"))
    );
    assert_eq!(
        view["status"], "not_started",
        "a prefill is not the structure's entry"
    );
}

/// Collection, day by day from its opening to the first weekly reminder after the
/// deadline: the reminders' daily run each day, the data entered on 20 May, two late
/// validations on 20 June.
async fn collection_walked_day_by_day(w: &mut World) {
    let mut day = date!(2025 - 05 - 05);
    while day <= date!(2025 - 07 - 07) {
        w.calendar.set(day);
        if day == date!(2025 - 05 - 20) {
            data_entry(w).await;
        }
        if day == date!(2025 - 06 - 20) {
            for key in VALIDATED_IN_JUNE {
                let token = w.token(&format!("ape-{key}")).to_string();
                w.api.validate(&token, w.finess(key)).await;
            }
        }
        let summary = w.run_reminders(day).await;
        if day == date!(2025 - 05 - 05) {
            assert!(
                summary["occasions"]["generic"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("opening")),
                "{summary}"
            );
            assert_eq!(summary["structures"], w.respondents.len(), "{summary}");
            let unreachable: BTreeSet<String> = summary["unreachable"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect();
            let nobody: BTreeSet<String> = ["c", "g", "h", "l", "n"]
                .iter()
                .map(|k| w.finess(k).to_string())
                .collect();
            assert_eq!(
                unreachable, nobody,
                "without an APE, or whose APE never activated the account"
            );
        }
        day = day.next_day().unwrap();
    }

    let messages = tdb_testkit::ses_messages().await;
    let name = |key: &str| w.respondent(key).name.clone();
    let before = |days: u16, key: &str| {
        format!(
            "Tableau de bord de la performance ESMS : plus que {days} jours pour {}",
            name(key)
        )
    };
    let after = |key: &str| {
        format!(
            "Tableau de bord de la performance ESMS : données de {} à valider",
            name(key)
        )
    };
    // Validated on 20 May: the opening's e-mail and nothing after.
    for who in [
        "gest-a", "ape-a", "ape-b", "ape-d", "ape-e", "ape-f", "ape-i", "ape-p", "ape-q", "ape-r",
    ] {
        assert_eq!(reminders(&messages, &w.email(who)), [OPENING], "{who}");
    }
    // Validated on 20 June: reminded 15 days before the deadline, not 7.
    for key in VALIDATED_IN_JUNE {
        assert_eq!(
            reminders(&messages, &w.email(&format!("ape-{key}"))),
            [OPENING.to_string(), before(15, key)],
            "{key}"
        );
    }
    // M never validates: 15, 7 and 2 days before 30 June, then a week after.
    let ape_m = w.email("ape-m");
    assert_eq!(
        reminders(&messages, &ape_m),
        [
            OPENING.to_string(),
            before(15, "m"),
            before(7, "m"),
            before(2, "m"),
            after("m")
        ]
    );
    let (_, last) = inbox(&messages, &ape_m).pop().unwrap();
    let m = w.finess("m");
    assert!(
        last.contains(&format!("{}/questionnaires/2025/{m}", w.api.base))
            && last.contains(&name("m")),
        "the e-mail says where to go: {last}"
    );
    // The OG, validated itself, gets a digest of its late ESMS on each chasing day: C.
    let digest = format!(
        "Tableau de bord de la performance ESMS : 1 établissement de {} à relancer",
        name("og")
    );
    for who in ["ape-og", "gest-og"] {
        let mut expected = vec![OPENING.to_string()];
        expected.extend(std::iter::repeat_n(digest.clone(), 4));
        assert_eq!(reminders(&messages, &w.email(who)), expected, "{who}");
    }
    let (_, text) = inbox(&messages, &w.email("gest-og")).pop().unwrap();
    assert!(text.contains(&name("c")), "{text}");
    assert!(!text.contains(&name("a")), "A validated: {text}");
    // Nobody chases a Lecteur, an account never activated or the national administrator.
    for who in ["lect-a", "ape-n", "national"] {
        assert_eq!(
            reminders(&messages, &w.email(who)),
            Vec::<String>::new(),
            "{who}"
        );
    }
    // The ARS's weekly digest of its region: the ten Mondays from 5 May to 7 July.
    let weekly = reminders(&messages, &w.email("ars"));
    assert_eq!(weekly.len(), 10, "{weekly:?}");
    assert!(
        weekly.iter().all(|s| s.starts_with(
            "Tableau de bord de la performance ESMS : avancement de la campagne 2025"
        )),
        "{weekly:?}"
    );
}

/// 20 May: the OG's bulk upload and subsidiarity save, the structures' own entries, a
/// correction of a prefilled value, a warning acknowledged, validations.
async fn data_entry(w: &mut World) {
    let gest_og = w.token("gest-og").to_string();
    // The OG uploads its ESMS' HR, staffing, finance and IS items in one file; a row for
    // an ESMS it does not manage is refused whole.
    let managed = ["a", "b", "c"];
    let cells: BTreeMap<&str, BTreeMap<String, String>> = managed
        .iter()
        .map(|key| (*key, w.subsidiarity_cells(key)))
        .collect();
    let columns: BTreeSet<&String> = cells.values().flat_map(|c| c.keys()).collect();
    let mut csv = format!(
        "finess;{}\n",
        columns
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(";")
    );
    let outsider = w.subsidiarity_cells("d");
    for (finess, row) in managed
        .iter()
        .map(|key| (w.finess(key), &cells[key]))
        .chain([(w.finess("d"), &outsider)])
    {
        let line: Vec<&str> = columns
            .iter()
            .map(|c| row.get(*c).map_or("", String::as_str))
            .collect();
        csv.push_str(&format!("{finess};{}\n", line.join(";")));
    }
    let (status, bulk) = w
        .api
        .upload("/questionnaires/2025/bulk", &gest_og, csv)
        .await;
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(
        (bulk["saved"].as_u64(), bulk["refused"].as_u64()),
        (Some(3), Some(1)),
        "{bulk}"
    );
    for (n, key) in managed.iter().enumerate() {
        let row = &bulk["rows"][n];
        assert_eq!(row["finess"], w.finess(key).to_string());
        assert_eq!(row["outcome"], "saved", "{row}");
        assert_eq!(
            row["saved"].as_array().unwrap().len(),
            cells[key].len(),
            "{row}"
        );
    }
    assert_eq!(bulk["rows"][3]["outcome"], "refused");
    assert!(bulk["rows"][3]["error"].is_string(), "{bulk}");
    let mut entered_by_og: BTreeMap<&str, BTreeSet<String>> = cells
        .iter()
        .map(|(key, c)| (*key, c.keys().cloned().collect()))
        .collect();

    // One more subsidiarity item on A by a single save; an item of the ESMS's own is
    // refused to the OG, and anything to A's Lecteur.
    let a = w.finess("a");
    let item = "cdd_remplacement";
    let replacements = number(&w.answers["a"], item).unwrap_or(0.0) as i64 + 2;
    let one = |item: &str, value: Value| {
        let mut answers = Map::new();
        answers.insert(item.to_string(), value);
        answers
    };
    let (status, saved) = w
        .api
        .save(&gest_og, a, one(item, json!(replacements)))
        .await;
    assert_eq!((status, &saved["saved"]), (200, &json!([item])), "{saved}");
    w.answers
        .get_mut("a")
        .unwrap()
        .insert(item.into(), json!(replacements));
    entered_by_og.get_mut("a").unwrap().insert(item.into());
    let (status, refused) = w
        .api
        .save(&gest_og, a, one("journees_perm", json!(1)))
        .await;
    assert_eq!(
        (
            status,
            refused["error"]["code"].as_str(),
            refused["error"]["field"].as_str()
        ),
        (403, Some("not_subsidiarity"), Some("journees_perm"))
    );
    let (status, _) = w
        .api
        .save(w.token("lect-a"), a, one("journees_perm", json!(1)))
        .await;
    assert_eq!(status, 403, "a Lecteur enters nothing");

    let prefilled: BTreeSet<String> = PREFILLED.iter().map(|s| s.to_string()).collect();
    // A's Gestionnaire and B's APE enter the rest and validate.
    for (key, who) in [("a", "gest-a"), ("b", "ape-b")] {
        let except: BTreeSet<String> = prefilled.union(&entered_by_og[key]).cloned().collect();
        let token = w.token(who).to_string();
        w.api
            .save_all(&token, w.finess(key), w.answers_but(key, &except))
            .await;
        let result = w.api.validate(&token, w.finess(key)).await;
        assert_eq!(result["checks"]["parts"][0]["validation"]["on_time"], true);
    }

    // D corrects a prefilled value and declares origins adding up to 120 %: a warning,
    // which it must acknowledge before validating.
    let d = w.finess("d");
    let ape_d = w.token("ape-d").to_string();
    let original = w.answers["d"]["charges_personnel"].clone();
    let cents = (original.as_f64().unwrap() * 100.0).round() as i64 + 150_000;
    let corrected = json!(cents as f64 / 100.0);
    let changes = [
        ("charges_personnel", corrected.clone()),
        ("provenance_domicile", json!(50)),
        ("provenance_sante", json!(30)),
        ("provenance_medico_social", json!(10)),
        ("provenance_inconnue", json!(30)),
    ];
    let answers = w.answers.get_mut("d").unwrap();
    for (item, value) in &changes {
        answers.insert(item.to_string(), value.clone());
    }
    let mut except = prefilled.clone();
    except.remove("charges_personnel");
    w.api.save_all(&ape_d, d, w.answers_but("d", &except)).await;
    let (status, refused) = w.api.step(&ape_d, d, json!({ "step": "validate" })).await;
    assert_eq!(status, 409, "{refused}");
    let obstacles: Vec<String> = refused["error"]["obstacles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{}:{}",
                o["kind"].as_str().unwrap(),
                o["rule"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(obstacles, ["unacknowledged:provenance_100"], "{refused}");
    let comment = "Des résidents venus de deux provenances sont comptés deux fois.";
    let (status, checks) = w
        .api
        .send(
            Method::POST,
            &format!("/validation/2025/{d}/acknowledgements"),
            Some(&ape_d),
            json!({ "rule": "provenance_100", "comment": comment }),
        )
        .await;
    assert_eq!(status, 200, "{checks}");
    w.api.validate(&ape_d, d).await;
    let (_, view) = w
        .api
        .get(&format!("/questionnaires/2025/{d}"), &ape_d)
        .await;
    let item = view["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "charges_personnel")
        .unwrap();
    assert_eq!(
        (
            item["value"].as_f64(),
            item["origin"].as_str(),
            item["prefilled"].as_f64()
        ),
        (corrected.as_f64(), Some("structure"), original.as_f64()),
        "the correction, with the imported value beside it"
    );

    // The other APE enter everything but the prefilled values; most validate now.
    for key in ["e", "f", "i", "p", "q", "r", "j", "k"] {
        let token = w.token(&format!("ape-{key}")).to_string();
        w.api
            .save_all(&token, w.finess(key), w.answers_but(key, &prefilled))
            .await;
        if VALIDATED_IN_MAY.contains(&key) {
            w.api.validate(&token, w.finess(key)).await;
        }
    }
    // M enters ten values and stops there.
    let m = w.finess("m");
    let started: Map<String, Value> = w
        .answers_but("m", &prefilled)
        .into_iter()
        .take(10)
        .collect();
    w.api.save_all(w.token("ape-m"), m, started.clone()).await;
    let kept: BTreeSet<String> = started
        .keys()
        .cloned()
        .chain(prefilled.iter().cloned())
        .collect();
    w.answers
        .get_mut("m")
        .unwrap()
        .retain(|item, _| kept.contains(item));
    // The OG's own questionnaire, by its Gestionnaire.
    let og = w.finess("og");
    w.api
        .save_all(&gest_og, og, w.answers_but("og", &BTreeSet::new()))
        .await;
    w.api.validate(&gest_og, og).await;
}

/// Fiabilisation: the ARS reopens D, which corrects and validates again, and checks E;
/// progress and the unreachable structures as the ARS and the country see them.
async fn fiabilisation(w: &mut World) {
    w.calendar.set(date!(2025 - 07 - 15));
    let ars = w.token("ars").to_string();
    let d = w.finess("d");
    let reason = "Les absences de moins de 72 heures semblent comptées deux fois.";
    let (status, reopened) = w
        .api
        .step(&ars, d, json!({ "step": "reopen", "reason": reason }))
        .await;
    assert_eq!(status, 200, "{reopened}");
    assert_eq!(reopened["checks"]["parts"][0]["status"], "reopened");
    assert_eq!(
        reopened["checks"]["parts"][0]["reopening"]["reason"],
        reason
    );
    assert_eq!(
        (
            reopened["notified"].as_u64(),
            reopened["not_notified"].as_u64()
        ),
        (Some(1), Some(0)),
        "D's APE, its only member"
    );
    let messages = tdb_testkit::ses_messages().await;
    let (subject, text) = inbox(&messages, &w.email("ape-d")).pop().unwrap();
    assert_eq!(
        subject,
        format!(
            "Tableau de bord de la performance ESMS : questionnaire de {} rouvert",
            w.respondent("d").name
        )
    );
    assert!(
        text.contains(reason) && text.contains(&d.display().to_string()),
        "{text}"
    );

    let ape_d = w.token("ape-d").to_string();
    let halved = number(&w.answers["d"], "journees_absence_72h").unwrap() as i64 / 2;
    let mut correction = Map::new();
    correction.insert("journees_absence_72h".into(), json!(halved));
    w.api.save_all(&ape_d, d, correction).await;
    w.answers
        .get_mut("d")
        .unwrap()
        .insert("journees_absence_72h".into(), json!(halved));
    let (_, checks) = w.api.get(&format!("/validation/2025/{d}"), &ape_d).await;
    assert_eq!(checks["status"], "reopened", "a save keeps it reopened");
    let result = w.api.validate(&ape_d, d).await;
    assert_eq!(
        result["checks"]["parts"][0]["validation"]["on_time"], true,
        "a correction the ARS asked for keeps the first validation's timeliness"
    );
    let (status, checked) = w
        .api
        .step(&ars, w.finess(CHECKED), json!({ "step": "check" }))
        .await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["checks"]["parts"][0]["status"], "checked");

    let (status, unreachable) = w.api.get("/reminders/unreachable?region=84", &ars).await;
    assert_eq!(status, 200, "{unreachable}");
    let listed: BTreeSet<(String, String)> = unreachable["structures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["finess"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("c", "no_ape"),
        ("g", "no_ape"),
        ("h", "no_ape"),
        ("l", "no_ape"),
        ("n", "no_active_account"),
    ]
    .iter()
    // Displayed as people read FINESS numbers.
    .map(|(key, reason)| (w.finess(key).display(), reason.to_string()))
    .collect();
    assert_eq!(listed, expected);

    progress(w).await;
}

/// Counts of a group of respondents, recomputed from what the test did to each.
fn assert_row(row: &Value, group: &[&Respondent], what: &str) {
    let expected = group.len() as i64;
    let started = group.iter().filter(|r| r.status() != "not_started").count() as i64;
    // Every validation came before the 30 June deadline.
    let validated = group.iter().filter(|r| r.counted()).count() as i64;
    assert_eq!(
        (
            row["expected"].as_i64(),
            row["started"].as_i64(),
            row["validated"].as_i64(),
            row["validated_on_time"].as_i64()
        ),
        (
            Some(expected),
            Some(started),
            Some(validated),
            Some(validated)
        ),
        "{what}: {row}"
    );
    for (rate, count) in [
        ("started_rate", started),
        ("validated_rate", validated),
        ("on_time_rate", validated),
    ] {
        let actual = row[rate].as_f64().unwrap();
        assert!(
            close(actual, count as f64 / expected as f64),
            "{what} {rate}: {row}"
        );
    }
}

fn row<'v>(rows: &'v Value, group: &str) -> &'v Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == group)
        .unwrap_or_else(|| panic!("no row {group} in {rows}"))
}

/// The ARS's and the country's progress, against the statuses the test brought about.
async fn progress(w: &World) {
    let in_region = |code: &str| -> Vec<&Respondent> {
        w.respondents
            .iter()
            .filter(|r| r.region() == code)
            .collect()
    };
    let ars = w.token("ars");
    let (status, region) = w.api.get("/validation/2025/progress?region=84", ars).await;
    assert_eq!(status, 200, "{region}");
    assert_eq!(region["territory"], "region:84");
    let ara = in_region("84");
    assert_row(&region["total"], &ara, "region 84");
    let ehpad: Vec<&Respondent> = ara
        .iter()
        .copied()
        .filter(|r| r.category == "EHPAD")
        .collect();
    assert_row(
        row(&region["by_category"], "EHPAD"),
        &ehpad,
        "EHPAD of region 84",
    );
    for departement in ["69", "38"] {
        let group: Vec<&Respondent> = ara
            .iter()
            .copied()
            .filter(|r| r.departement() == departement)
            .collect();
        assert_row(
            row(&region["by_departement"], departement),
            &group,
            departement,
        );
    }
    let (status, country) = w
        .api
        .get("/validation/2025/progress", w.token("national"))
        .await;
    assert_eq!(status, 200, "{country}");
    let all: Vec<&Respondent> = w.respondents.iter().collect();
    assert_row(&country["total"], &all, "the country");
    for code in ["84", "11"] {
        assert_row(row(&country["by_region"], code), &in_region(code), code);
    }

    // The structures one by one: each status, and the mean fill rate the counters keep.
    let (status, listing) = w
        .api
        .get("/validation/2025/progress/structures?region=84", ars)
        .await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["next"], Value::Null, "one page");
    let lines = listing["structures"].as_array().unwrap();
    let statuses: BTreeMap<String, String> = lines
        .iter()
        .map(|l| {
            (
                l["finess"].as_str().unwrap().to_string(),
                l["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = ara
        .iter()
        .map(|r| (r.id(), r.status().to_string()))
        .collect();
    assert_eq!(statuses, expected);
    let mean = lines
        .iter()
        .map(|l| l["fill_rate"].as_f64().unwrap())
        .sum::<f64>()
        / lines.len() as f64;
    let counted = region["total"]["mean_fill_rate"].as_f64().unwrap();
    assert!((mean - counted).abs() < 1e-4, "{mean} against {counted}");
}

/// Closure, the snapshot it triggers, restitutions, the regional export and an analyst's
/// query of the lake.
async fn closure_and_restitutions(w: &World, environment: &BTreeMap<String, String>) {
    w.calendar.set(date!(2025 - 09 - 15));
    let national = w.token("national").to_string();
    let (status, closed) = w
        .api
        .send(
            Method::POST,
            "/validation/2025/closure",
            Some(&national),
            json!({ "platform": "generic" }),
        )
        .await;
    assert_eq!(status, 200, "{closed}");
    let count = |status: &str| {
        w.respondents
            .iter()
            .filter(|r| r.status() == status)
            .count()
    };
    let counts = &closed["counts"];
    assert_eq!(counts["expected"], w.respondents.len(), "{closed}");
    for status in [
        "not_started",
        "in_progress",
        "validated",
        "checked",
        "reopened",
    ] {
        assert_eq!(counts[status], count(status), "{status}: {closed}");
    }
    let a = w.finess("a");
    let gest_a = w.token("gest-a").to_string();
    let (_, checks) = w.api.get(&format!("/validation/2025/{a}"), &gest_a).await;
    assert_eq!(
        (checks["status"].as_str(), checks["final_status"].as_str()),
        (Some("closed"), Some("validated"))
    );

    // The closure's event reaches the snapshot function (relayed as S3 would invoke it);
    // the restitution opens once its snapshot is written.
    let path = format!("/restitutions/2025/{a}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let restitution = loop {
        let (status, body) = w.api.get(&path, &gest_a).await;
        if status == 200 {
            break body;
        }
        // Until the final snapshot's manifest is written: the platform is closed.
        assert_eq!(status, 409, "{body}");
        assert!(
            ["snapshot_pending", "no_snapshot"].contains(&body["error"]["code"].as_str().unwrap()),
            "{body}"
        );
        assert!(Instant::now() < deadline, "no snapshot after the closure");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(restitution["kind"], "final");
    // The same restitution for its OG and its ARS; not for another structure.
    for who in ["gest-og", "ars"] {
        let (status, seen) = w.api.get(&path, w.token(who)).await;
        assert_eq!((status, &seen), (200, &restitution), "{who}");
    }
    let (status, _) = w.api.get(&path, w.token("ape-d")).await;
    assert_eq!(status, 403, "D's APE does not see A's restitution");

    // A's indicators and its peers', recomputed from the answers entered.
    let counted: Vec<&Respondent> = w
        .respondents
        .iter()
        .filter(|r| r.category == "EHPAD" && r.counted())
        .collect();
    let occupancy_of = |key: &str| occupancy(&w.answers[key]).unwrap();
    let national_values: Vec<f64> = counted.iter().map(|r| occupancy_of(r.key)).collect();
    let regional: Vec<f64> = counted
        .iter()
        .filter(|r| r.region() == "84")
        .map(|r| occupancy_of(r.key))
        .collect();
    let indicator = |restitution: &Value, id: &str| {
        restitution["indicators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap_or_else(|| panic!("no {id}"))
            .clone()
    };
    let occupancy_a = indicator(&restitution, "taux_occupation_permanent");
    let value = occupancy_of("a");
    assert!(
        close(occupancy_a["value"].as_f64().unwrap(), value),
        "{occupancy_a}"
    );
    for (scope, values) in [("national", &national_values), ("regional", &regional)] {
        let stats = &occupancy_a[scope];
        assert_eq!(stats["n"], values.len(), "{scope}: {stats}");
        for (quantile_id, p) in [("q1", 0.25), ("median", 0.5), ("q3", 0.75), ("d9", 0.9)] {
            let actual = stats["quantiles"][quantile_id].as_f64().unwrap();
            let expected = quantile(values, p);
            assert!(
                close(actual, expected),
                "{scope} {quantile_id}: {actual} against {expected}"
            );
        }
    }
    // Each counted EHPAD's value, rank (SQL's percent_rank among the category nationally)
    // and peer group (the same band of places, shown from five structures), as the
    // national administrator reads them.
    let mut groups_shown = 0;
    for r in &counted {
        let (status, of) = w
            .api
            .get(&format!("/restitutions/2025/{}", r.finess), &national)
            .await;
        assert_eq!(status, 200, "{of}");
        let occupancy = indicator(&of, "taux_occupation_permanent");
        let value = occupancy_of(r.key);
        assert!(
            close(occupancy["value"].as_f64().unwrap(), value),
            "{occupancy}"
        );
        let below = national_values.iter().filter(|v| **v < value).count();
        let rank = below as f64 / (national_values.len() - 1) as f64;
        assert!(
            close(occupancy["rank_national"].as_f64().unwrap(), rank),
            "{occupancy}"
        );
        let band = capacity_band(&w.answers[r.key]);
        let peers: Vec<f64> = counted
            .iter()
            .filter(|p| capacity_band(&w.answers[p.key]) == band)
            .map(|p| occupancy_of(p.key))
            .collect();
        let group = &occupancy["peer_group"];
        if peers.len() >= 5 {
            groups_shown += 1;
            assert_eq!(group["n"], peers.len(), "{group}");
            let median = group["quantiles"]["median"].as_f64().unwrap();
            assert!(close(median, quantile(&peers, 0.5)), "{group}");
        } else {
            assert_eq!(group, &Value::Null, "{} peers: nothing shown", peers.len());
        }
    }
    assert!(groups_shown > 0, "a peer group of five or more");
    let active = indicator(&restitution, "file_active");
    assert!(close(
        active["value"].as_f64().unwrap(),
        file_active(&w.answers["a"]).unwrap()
    ));

    // D's external services count its corrected staff costs, its occupancy the absences it
    // corrected after the reopening.
    let d = w.finess("d");
    let (status, of_d) = w
        .api
        .get(&format!("/restitutions/2025/{d}"), w.token("ape-d"))
        .await;
    assert_eq!(status, 200, "{of_d}");
    let external = indicator(&of_d, "taux_prestations_externes");
    let expected = external_services(&w.answers["d"]).unwrap();
    assert!(
        close(external["value"].as_f64().unwrap(), expected),
        "{external} against {expected}"
    );
    let occupancy_d = indicator(&of_d, "taux_occupation_permanent");
    assert!(close(
        occupancy_d["value"].as_f64().unwrap(),
        occupancy_of("d")
    ));
    // The OG's own restitution, for its Gestionnaire: the generic definition gives the
    // OG's questionnaire no indicator.
    let og = w.finess("og");
    let (status, of_og) = w
        .api
        .get(&format!("/restitutions/2025/{og}"), w.token("gest-og"))
        .await;
    assert_eq!(
        (
            status,
            of_og["finess"].as_str(),
            of_og["category"].as_str(),
            of_og["region"].as_str(),
            &of_og["indicators"]
        ),
        (
            200,
            Some(og.display().as_str()),
            Some("OG"),
            Some("84"),
            &json!([])
        ),
        "{of_og}"
    );

    regional_export(w, value).await;
    analyst_query(w, environment, &national_values, &regional).await;
}

/// The ARS downloads its region in the national export's format.
async fn regional_export(w: &World, occupancy_a: f64) {
    let (status, ready) = w
        .api
        .get("/restitutions/2025/export?region=84", w.token("ars"))
        .await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(
        (ready["file"].as_str(), ready["kind"].as_str()),
        (
            Some("export-tdbesms-2025-region-84-generic.csv"),
            Some("final")
        )
    );
    // A signed link, without a token.
    let file = w
        .api
        .http
        .get(ready["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    let bytes = file.bytes().await.unwrap();
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut reader = csv::ReaderBuilder::new().delimiter(b';').from_reader(bytes);
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let (finess, level) = (
        column("FINESS géographique"),
        column("Niveau de validation"),
    );
    let occupancy =
        column("Taux d'occupation des lits ou places autorisés en accompagnement permanent");
    let rows: BTreeMap<String, csv::StringRecord> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[finess].to_string(), r)
        })
        .collect();
    let expected: BTreeSet<String> = w
        .respondents
        .iter()
        .filter(|r| r.region() == "84")
        .map(Respondent::id)
        .collect();
    assert_eq!(
        rows.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "the region's structures, no other"
    );
    for (key, label) in [
        ("a", "Validé par la structure"),
        ("e", "Contrôlé"),
        ("m", "En cours de saisie"),
        ("n", "Non commencé"),
    ] {
        assert_eq!(&rows[&w.finess(key).to_string()][level], label, "{key}");
    }
    let cell = &rows[&w.finess("a").to_string()][occupancy];
    let exported: f64 = cell.replace(',', ".").parse().unwrap();
    assert!(close(exported, occupancy_a), "{cell}");
}

/// What an analyst's `tdb lake sql` runs: DataFusion SQL over every table of the lake's
/// current snapshots, through the restitute function's library (the same `Lake::attach`
/// as `crates/cli`; a test cannot run another package's binary).
async fn analyst_query(
    w: &World,
    environment: &BTreeMap<String, String>,
    national: &[f64],
    regional: &[f64],
) {
    use restitute::datafusion::arrow::array::AsArray;
    use restitute::datafusion::arrow::compute::cast;
    use restitute::datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
    let lake = restitute::Lake::from_env(&environment["LAKE_BUCKET"]).unwrap();
    let context = lake.session().unwrap();
    lake.attach(&context).await.unwrap();
    let batches = context
        .sql(
            "SELECT region, count(*) AS ehpad, quantile_cont(value, 0.5) AS median_occupancy \
             FROM indicators \
             WHERE campaign = 2025 AND indicator = 'taux_occupation_permanent' \
               AND category = 'EHPAD' AND counted AND value IS NOT NULL \
             GROUP BY region ORDER BY region",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut medians = BTreeMap::new();
    for batch in &batches {
        let region = cast(batch.column(0), &DataType::Utf8).unwrap();
        let count = cast(batch.column(1), &DataType::Int64).unwrap();
        let median = cast(batch.column(2), &DataType::Float64).unwrap();
        for row in 0..batch.num_rows() {
            medians.insert(
                region.as_string::<i32>().value(row).to_string(),
                (
                    count.as_primitive::<Int64Type>().value(row),
                    median.as_primitive::<Float64Type>().value(row),
                ),
            );
        }
    }
    let paris: Vec<f64> = w
        .respondents
        .iter()
        .filter(|r| r.region() == "11" && r.counted())
        .map(|r| occupancy(&w.answers[r.key]).unwrap())
        .collect();
    assert_eq!(paris.len() + regional.len(), national.len());
    assert_eq!(
        medians.keys().collect::<Vec<_>>(),
        ["11", "84"],
        "{medians:?}"
    );
    for (code, values) in [("11", &paris[..]), ("84", regional)] {
        let (n, median) = medians[code];
        assert_eq!(n, values.len() as i64, "{code}");
        assert!(close(median, quantile(values, 0.5)), "{code}: {median}");
    }
}
