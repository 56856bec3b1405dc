//! What the HTTP edge costs per request: the same request answered through the function's
//! router (routing, extractors, layers, body collection), and by calling the handler's
//! method directly (token verification included in both), in the same run, over the
//! in-memory fakes so that only CPU is measured. Prints p50 and p99 of each and the overhead.
//!
//! `cargo bench -p accounts --bench router`

use accounts::{App, Settings, TokenSigner, generate_signing_key, router, system_clock};
use axum::body::Body;
use axum::http::Request;
use std::time::{Duration, Instant};
use tdb_api::TokenVerifier;
use tdb_domain::accounts::{Account, AccountId, Person};
use tdb_domain::email::EmailAddress;
use tdb_domain::fakes::{MemoryAccountStore, MemoryLake, MemoryMailer};
use tdb_domain::ports::AccountStore;
use tdb_domain::rights::Role;
use tower::ServiceExt;

const ISSUER: &str = "http://127.0.0.1:3000";
const ROUNDS: usize = 20_000;

fn app(key: &str) -> App<MemoryAccountStore, MemoryMailer, MemoryLake> {
    let signer = TokenSigner::from_pem(key, ISSUER, "tdb-esms").unwrap();
    let verifier = TokenVerifier::from_jwks(&signer.jwks_json(), ISSUER, "tdb-esms").unwrap();
    App::new(
        MemoryAccountStore::default(),
        MemoryMailer::default(),
        MemoryLake::default(),
        signer,
        verifier,
        system_clock(),
        Settings::new(ISSUER),
    )
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * p) as usize]
}

fn report(name: &str, direct: &mut [Duration], routed: &mut [Duration]) {
    let (d50, r50) = (percentile(direct, 0.5), percentile(routed, 0.5));
    let (d99, r99) = (percentile(direct, 0.99), percentile(routed, 0.99));
    println!(
        "{name:<38} handler p50 {:>7.1} µs  p99 {:>7.1} µs | router p50 {:>7.1} µs  p99 {:>7.1} µs | overhead p50 {:>5.1} µs ({:.2}x)",
        d50.as_secs_f64() * 1e6,
        d99.as_secs_f64() * 1e6,
        r50.as_secs_f64() * 1e6,
        r99.as_secs_f64() * 1e6,
        (r50.as_secs_f64() - d50.as_secs_f64()) * 1e6,
        r50.as_secs_f64() / d50.as_secs_f64(),
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let key = generate_signing_key();
        // Two apps with the same account: one called directly, one behind its router.
        let direct_app = app(&key);
        let routed_app = app(&key);
        let account = Account::new(
            AccountId::from_random([7; 16]),
            EmailAddress::parse("bench@exemple.fr").unwrap(),
            Person {
                last_name: "Banc".into(),
                first_name: "Essai".into(),
                phone: None,
            },
            0,
        );
        for app in [&direct_app, &routed_app] {
            app.store()
                .create_account(&account, &Role::NationalAdmin)
                .await
                .unwrap();
        }
        let signer = TokenSigner::from_pem(&key, ISSUER, "tdb-esms").unwrap();
        let token = signer.sign(
            &account.id,
            vec![Role::NationalAdmin],
            None,
            system_clock()(),
        );
        let verifier = TokenVerifier::from_jwks(&signer.jwks_json(), ISSUER, "tdb-esms").unwrap();
        let routed = router(routed_app);
        let request = |path: &str| {
            Request::get(path)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap()
        };

        // Interleaved, so that the machine's noise hits both sides alike.
        let (mut direct, mut through) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let response = direct_app.discovery();
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            direct.push(started.elapsed());
            let r = request("/.well-known/openid-configuration");
            let started = Instant::now();
            let response = routed.clone().oneshot(r).await.unwrap();
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            through.push(started.elapsed());
        }
        report(
            "GET /.well-known/openid-configuration",
            &mut direct,
            &mut through,
        );

        let (mut direct, mut through) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let r = request("/accounts/me");
            let started = Instant::now();
            let caller = verifier.caller(r.headers()).unwrap();
            let response = direct_app.me(&caller).await.unwrap();
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            direct.push(started.elapsed());
            let r = request("/accounts/me");
            let started = Instant::now();
            let response = routed.clone().oneshot(r).await.unwrap();
            assert_eq!(response.status(), 200);
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            through.push(started.elapsed());
        }
        report(
            "GET /accounts/me (token verified)",
            &mut direct,
            &mut through,
        );
    });
}
