//! The gateway as a person meets it: an activation e-mail read back from LocalStack, its link
//! opened in a real headless Chromium (Debian's package, driven over the DevTools protocol),
//! a refused then an accepted password on the French page, then a login through the API.
//! Also the template's CORS rules as a browser on another origin sees them, and a national
//! extract uploaded to S3 and imported in the background as S3's event is relayed.
//!
//! Needs the local stack and Chromium: run through `scripts/test.sh`, which installs both.

use accounts::generate_signing_key;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tdb_domain::accounts::Person;
use tdb_domain::email::EmailAddress;
use tdb_domain::rights::Role;
use tokio_tungstenite::tungstenite::Message;

const SENDER: &str = "plage@tdb-esms.test";
const WEB_ORIGIN: &str = "http://localhost:8080";

/// The gateway as `tdb-gateway` serves it, over a freshly provisioned stack, on a free port.
struct Served {
    base: String,
    config: accounts::Config,
    aws: aws_config::SdkConfig,
    tag: String,
}

async fn serve() -> Served {
    tdb_testkit::local_endpoint();
    let tag = tdb_testkit::unique_name("g");
    let aws = tdb_aws::load_config().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let local = tdb_gateway::local::start(
        &aws,
        tdb_gateway::local::Options {
            stack_name: &tag,
            sender: SENDER,
            signing_key: &generate_signing_key(),
            base: &base,
            web_origins: &[WEB_ORIGIN.to_string()],
            campaign_clock: tdb_api::system_clock(),
        },
    )
    .await
    .expect("the local stack answers");
    let config =
        accounts::Config::from_lookup(|name| local.environment.get(name).cloned()).unwrap();
    tokio::spawn(async move { axum::serve(listener, local.router).await.unwrap() });
    Served {
        base,
        config,
        aws,
        tag,
    }
}

impl Served {
    /// Creates a national administrator as `tdb admin` does: the account, and its activation
    /// e-mail sent through SES.
    async fn administrator(&self, email: &str) {
        // The same configuration as the served function: its key from Secrets Manager.
        let app = self.config.clone().app(&self.aws).await.unwrap();
        let person = Person {
            last_name: "Martin".into(),
            first_name: "Claire".into(),
            phone: None,
        };
        app.add_administrator(
            &EmailAddress::parse(email).unwrap(),
            person,
            Role::NationalAdmin,
        )
        .await
        .unwrap();
    }
}

/// A headless Chromium and the DevTools connection to its page.
struct Browser {
    child: Child,
    page: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    profile: std::path::PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    async fn launch(tag: &str) -> Browser {
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let profile = std::env::temp_dir().join(format!("tdb-chromium-{tag}"));
        let mut child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
                "about:blank",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `{binary}` ({e}): scripts/test.sh installs Chromium (apt-get install chromium)")
            });
        // Chromium prints its DevTools address on stderr; keep draining it afterwards.
        let (found, address) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(ws) = line.strip_prefix("DevTools listening on ") {
                    let _ = found.send(ws.trim().to_string());
                }
            }
        });
        let browser_ws = address
            .recv_timeout(Duration::from_secs(30))
            .expect("Chromium printed its DevTools address");
        let http = browser_ws
            .replace("ws://", "http://")
            .split("/devtools/")
            .next()
            .unwrap()
            .to_string();
        let targets: Value = reqwest::get(format!("{http}/json/list"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page_ws = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (page, _) = tokio_tungstenite::connect_async(page_ws).await.unwrap();
        Browser {
            child,
            page,
            next_id: 0,
            profile,
        }
    }

    /// One DevTools command; its result.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({ "id": id, "method": method, "params": params });
        self.page
            .send(Message::text(command.to_string()))
            .await
            .unwrap();
        loop {
            let message = self.page.next().await.expect("DevTools answers").unwrap();
            let Ok(text) = message.to_text() else {
                continue;
            };
            let answer: Value = serde_json::from_str(text).unwrap();
            if answer["id"] == id {
                assert!(answer["error"].is_null(), "{method}: {}", answer["error"]);
                return answer["result"].clone();
            }
        }
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is truthy; its value.
    async fn wait_for(&mut self, expression: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.eval(expression).await;
            if !(value.is_null() || value == false || value == "") {
                return value;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "still waiting for `{expression}`"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Focuses a field, empties it and types into it as a keyboard would.
    async fn type_into(&mut self, id: &str, text: &str) {
        self.eval(&format!(
            "(() => {{ const e = document.getElementById('{id}'); e.focus(); e.select(); }})()"
        ))
        .await;
        self.call("Input.insertText", json!({ "text": text })).await;
    }

    async fn submit_password(&mut self, password: &str) -> (String, String) {
        self.type_into("password", password).await;
        self.type_into("confirmation", password).await;
        self.eval("document.getElementById('resultat').dataset.etat = ''")
            .await;
        self.eval("document.getElementById('valider').click()")
            .await;
        let state = self
            .wait_for(
                "['succes', 'erreur'].includes(document.getElementById('resultat').dataset.etat) \
                 && document.getElementById('resultat').dataset.etat",
            )
            .await;
        let text = self
            .eval("document.getElementById('resultat').textContent")
            .await;
        (
            state.as_str().unwrap().to_string(),
            text.as_str().unwrap().to_string(),
        )
    }
}

#[tokio::test]
async fn a_person_sets_a_password_from_the_emailed_link_in_a_browser_then_logs_in() {
    let served = serve().await;
    let email = format!("claire.martin.{}@exemple.fr", served.tag);
    served.administrator(&email).await;
    let link = tdb_testkit::last_link_to(&email)
        .await
        .expect("an activation e-mail with its link");
    assert!(
        link.starts_with(&format!("{}/mot-de-passe#jeton=", served.base)),
        "{link}"
    );

    let mut browser = Browser::launch(&served.tag).await;
    browser.call("Page.enable", json!({})).await;
    browser.call("Page.navigate", json!({ "url": link })).await;
    browser
        .wait_for("document.readyState === 'complete' && !!document.getElementById('password')")
        .await;
    assert_eq!(
        browser.eval("document.documentElement.lang").await,
        "fr",
        "the page is in French"
    );
    assert_eq!(
        browser.eval("location.hash").await,
        "",
        "the token leaves the address bar"
    );
    let labelled = browser
        .eval("document.querySelector('label[for=password]').textContent")
        .await;
    assert!(
        labelled.as_str().unwrap().contains("mot de passe"),
        "{labelled}"
    );

    let (state, text) = browser.submit_password("motdepasse2025").await;
    assert_eq!(state, "erreur");
    assert!(text.contains("trop courant"), "{text}");
    let (state, text) = browser.submit_password("court").await;
    assert_eq!(state, "erreur");
    assert!(text.contains("au moins 12 caractères"), "{text}");
    let (state, text) = browser
        .submit_password("les hortensias du jardin fleurissent")
        .await;
    assert_eq!(state, "succes", "{text}");
    assert!(text.contains("vous connecter"), "{text}");
    drop(browser);

    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{}/auth/login", served.base))
        .json(&json!({ "email": email, "password": "les hortensias du jardin fleurissent" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"]
        .as_str()
        .expect("a login with the new password");
    let me = client
        .get(format!("{}/accounts/me", served.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["profiles"][0]["role"]["role"], "national_admin");
}

#[tokio::test]
async fn the_gateway_applies_the_templates_cors_rules_and_discovery_names_its_address() {
    let served = serve().await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/accounts/me", served.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight(WEB_ORIGIN).await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], WEB_ORIGIN);
    assert!(
        allowed.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    assert_eq!(allowed.headers()["access-control-max-age"], "600");
    let other = preflight("https://elsewhere.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let discovery: Value = client
        .get(format!("{}/.well-known/openid-configuration", served.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], served.base);
    let keys = client
        .get(discovery["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(keys.status(), 200);
    // Routes of functions not built yet answer the JSON 404, like any unknown path.
    let missing = client
        .get(format!("{}/nothing/here", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn an_extract_uploaded_to_s3_is_imported_when_the_event_is_relayed() {
    let served = serve().await;
    let client = reqwest::Client::new();
    let email = format!("national.{}@exemple.fr", served.tag);
    served.administrator(&email).await;
    let link = tdb_testkit::last_link_to(&email)
        .await
        .expect("an activation link");
    let token = link.split("#jeton=").nth(1).unwrap();
    let password = "une longue phrase de passe";
    let set = client
        .post(format!("{}/auth/password", served.base))
        .json(&json!({ "token": token, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 204);
    let tokens: Value = client
        .post(format!("{}/auth/login", served.base))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());

    let created: Value = client
        .post(format!(
            "{}/accounts/imports/referential/uploads",
            served.base
        ))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let finess = |eight: &str| tdb_domain::Finess::with_key(eight).unwrap().to_string();
    let extract = format!(
        "finess;etalab;1.2;2025-01-06\nstructureet;{};{};EHPAD;EHPAD Les Tilleuls;;;;;;;;;69;;;;;500",
        finess("69000901"),
        finess("69000900")
    );
    let put = client
        .put(created["upload"]["url"].as_str().unwrap())
        .body(extract)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());

    let job_url = format!(
        "{}/accounts/imports/jobs/{}",
        served.base,
        created["job"]["id"].as_str().unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let job: Value = client
            .get(&job_url)
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["status"] == "done" || job["status"] == "failed" {
            break job;
        }
        assert!(Instant::now() < deadline, "the job never ended: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["summary"]["created"], 1, "{job}");
}
