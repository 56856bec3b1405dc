//! The local gateway: every function's router served on one address, under the routes the
//! template's HTTP API gives them, with the template's CORS rules. The routes are read from
//! `infra/template.yaml` itself (the copy compiled into `tdb_aws::provision::TEMPLATE`), so
//! what answers locally is what API Gateway would route to each function.
//!
//! It also stands in for S3 invoking a function when a file lands (`events`), and
//! `local` assembles the whole over a local stack, for the binary and the end-to-end test.
//!
//! Locally the gateway also serves the password page (`/mot-de-passe`) that e-mailed links
//! open; in a deployment the web client serves it at `PublicUrl`.

pub mod events;
pub mod local;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on_service};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tdb_api::ApiError;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The page where a person opening an activation or reset link chooses a password.
pub const PASSWORD_PAGE: &str = include_str!("../../../web/mot-de-passe.html");

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("the template is not valid YAML")]
    Yaml(#[from] serde_yaml::Error),
    #[error("template resource {resource}: {problem}")]
    Invalid { resource: String, problem: String },
}

fn invalid(resource: &str, problem: impl Into<String>) -> TemplateError {
    TemplateError::Invalid {
        resource: resource.to_string(),
        problem: problem.into(),
    }
}

/// One route of the template's HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoute {
    /// The function's binary (`Metadata.BuildProperties.Binary`): `accounts`, `collect`...
    pub function: String,
    /// `None` for `ANY`.
    pub method: Option<Method>,
    /// As the template writes it: `/auth/{proxy+}`.
    pub path: String,
    /// Whether API Gateway's JWT authorizer guards it.
    pub authorized: bool,
}

impl ApiRoute {
    /// The path in axum's syntax: API Gateway's greedy `{proxy+}` is axum's `{*proxy}`.
    pub fn axum_path(&self) -> String {
        self.path
            .split('/')
            .map(|segment| match segment.strip_suffix("+}") {
                Some(name) => format!("{{*{}}}", name.trim_start_matches('{')),
                None => segment.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Whether a request with this method and path would reach this route.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        let mut template = self.path.split('/');
        let mut actual = path.split('/');
        loop {
            match (template.next(), actual.next()) {
                (None, None) => return true,
                (Some(t), Some(a)) if t.ends_with("+}") => return !a.is_empty(),
                (Some(t), Some(a)) if t.starts_with('{') => {
                    if a.is_empty() {
                        return false;
                    }
                }
                (Some(t), Some(a)) if t == a => {}
                _ => return false,
            }
        }
    }
}

/// The HTTP API routes of every function in the template.
pub fn api_routes(template: &str) -> Result<Vec<ApiRoute>, TemplateError> {
    let doc: Value = serde_yaml::from_str(template)?;
    let mut routes = Vec::new();
    let Some(resources) = doc["Resources"].as_mapping() else {
        return Err(invalid("Resources", "missing"));
    };
    for (id, resource) in resources {
        let id = id.as_str().unwrap_or_default();
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let function = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .ok_or_else(|| invalid(id, "no Metadata.BuildProperties.Binary"))?;
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (name, event) in events {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let where_ = format!("{id}.Events.{}", name.as_str().unwrap_or_default());
            let properties = &event["Properties"];
            let path = properties["Path"]
                .as_str()
                .ok_or_else(|| invalid(&where_, "no Path"))?;
            let method = match properties["Method"].as_str().unwrap_or("ANY") {
                m if m.eq_ignore_ascii_case("ANY") => None,
                m => Some(
                    Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                        .map_err(|_| invalid(&where_, format!("unknown method {m}")))?,
                ),
            };
            let authorized = properties["Auth"]["Authorizer"].as_str() != Some("NONE");
            routes.push(ApiRoute {
                function: function.to_string(),
                method,
                path: path.to_string(),
                authorized,
            });
        }
    }
    Ok(routes)
}

/// The CORS rules of the template's HTTP API, for the given allowed origins (the
/// `WebOrigins` parameter).
pub fn cors(template: &str, origins: &[String]) -> Result<CorsLayer, TemplateError> {
    let doc: Value = serde_yaml::from_str(template)?;
    let Some(api) = doc["Resources"]
        .as_mapping()
        .and_then(|r| r.values().find(|r| r["Type"] == "AWS::Serverless::HttpApi"))
    else {
        return Err(invalid("HttpApi", "no AWS::Serverless::HttpApi resource"));
    };
    let config = &api["Properties"]["CorsConfiguration"];
    let list = |key: &str| -> Vec<String> {
        config[key]
            .as_sequence()
            .map(|s| {
                s.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let methods: Vec<Method> = list("AllowMethods")
        .iter()
        .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
        .collect();
    let headers: Vec<HeaderName> = list("AllowHeaders")
        .iter()
        .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
        .collect();
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    let mut layer = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods(methods)
        .allow_headers(headers);
    if let Some(seconds) = config["MaxAge"].as_u64() {
        layer = layer.max_age(Duration::from_secs(seconds));
    }
    Ok(layer)
}

/// The gateway's router: each function's router mounted on its template routes, the
/// password page, the template's CORS rules, and one log line per request. Routes of
/// functions not given in `functions` are left out (they answer the JSON 404) and returned.
pub fn gateway(
    template: &str,
    functions: &BTreeMap<String, Router>,
    origins: &[String],
) -> Result<(Router, Vec<ApiRoute>), TemplateError> {
    let mut router = Router::new();
    let mut missing = Vec::new();
    for route in api_routes(template)? {
        let Some(function) = functions.get(&route.function) else {
            missing.push(route);
            continue;
        };
        let filter = match &route.method {
            None => MethodFilter::DELETE
                .or(MethodFilter::GET)
                .or(MethodFilter::HEAD)
                .or(MethodFilter::OPTIONS)
                .or(MethodFilter::PATCH)
                .or(MethodFilter::POST)
                .or(MethodFilter::PUT),
            Some(m) => MethodFilter::try_from(m.clone())
                .map_err(|_| invalid(&route.path, "method not routable"))?,
        };
        router = router.route(&route.axum_path(), on_service(filter, function.clone()));
    }
    let router = router
        .route("/mot-de-passe", axum::routing::get(password_page))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(cors(template, origins)?)
        .layer(axum::middleware::from_fn(access_log));
    Ok((router, missing))
}

async fn password_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        PASSWORD_PAGE,
    )
        .into_response()
}

/// One line per request: method, path, status, milliseconds. Never the query string or a
/// body, which may hold personal data (names searched, e-mail addresses).
async fn access_log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        "{method} {path} {} {} ms",
        response.status().as_u16(),
        started.elapsed().as_millis()
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_routes_are_read_with_their_function_and_authorizer() {
        let routes = api_routes(tdb_aws::provision::TEMPLATE).unwrap();
        let login = routes.iter().find(|r| r.path == "/auth/{proxy+}").unwrap();
        assert_eq!(login.function, "accounts");
        assert_eq!(login.method, Some(Method::POST));
        assert!(!login.authorized);
        assert_eq!(login.axum_path(), "/auth/{*proxy}");
        let accounts = routes
            .iter()
            .find(|r| r.path == "/accounts/{proxy+}")
            .unwrap();
        assert!(accounts.authorized && accounts.method.is_none());
        assert!(accounts.matches(&Method::PATCH, "/accounts/structures/1/users/2"));
        assert!(!accounts.matches(&Method::GET, "/accounts"));
        assert!(!login.matches(&Method::GET, "/auth/login"));
        assert!(routes.iter().any(|r| r.function == "collect"));
    }

    /// Unauthenticated routes that cost a password hash or an e-mail are throttled at the
    /// gateway, and the accounts function cannot take every concurrent execution.
    #[test]
    fn public_write_routes_are_throttled_and_the_accounts_function_is_capped() {
        let template = tdb_aws::provision::TEMPLATE;
        let doc: Value = serde_yaml::from_str(template).unwrap();
        let resources = &doc["Resources"];
        let settings = &resources["HttpApi"]["Properties"]["RouteSettings"];
        for route in api_routes(template).unwrap() {
            if route.authorized || route.method.as_ref() != Some(&Method::POST) {
                continue;
            }
            let key = format!("POST {}", route.path);
            let limits = &settings[key.as_str()];
            assert!(
                limits["ThrottlingRateLimit"]
                    .as_u64()
                    .is_some_and(|r| r <= 200)
                    && limits["ThrottlingBurstLimit"].as_u64().is_some(),
                "{key} is not throttled"
            );
        }
        assert!(
            !resources["AccountsFunction"]["Properties"]["ReservedConcurrentExecutions"].is_null()
        );
    }
}
