//! OpenAPI descriptions generated from the handlers, so the description cannot drift from
//! the router: each handler carries a `#[utoipa::path]` attribute, and [`operation`] mounts
//! the handler on exactly the path and methods that attribute documents.

use crate::ApiError;
use axum::handler::Handler;
use axum::routing::MethodRouter;
use utoipa::openapi::path::Paths;
use utoipa::openapi::{OpenApi, RefOr, Response, ResponseBuilder, Responses};
use utoipa_axum::PathItemExt;
use utoipa_axum::router::UtoipaMethodRouter;

/// A handler mounted on the path and methods of its `#[utoipa::path]` attribute (`P` is the
/// attribute's generated `__path_<handler>` type). Unlike `utoipa_axum::routes!`, this works
/// for handlers generic over the function's ports.
pub fn operation<P, H, T, S>(handler: H) -> UtoipaMethodRouter<S>
where
    P: utoipa::Path + utoipa::__dev::SchemaReferences,
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    let mut schemas = Vec::new();
    P::schemas(&mut schemas);
    let methods = P::methods();
    let router = methods.iter().fold(MethodRouter::new(), |router, method| {
        router.on(method.to_method_filter(), handler.clone())
    });
    let mut paths = Paths::new();
    paths.add_path_operation(P::path(), methods, P::operation());
    (schemas, paths, router)
}

/// The error answers every operation may give, added to each operation of `api` that does
/// not document them itself: 400 and 413 on bad input, 401 without a valid token on the
/// protected ones, and 503 when a backend service is down. Documenting them lets a fuzzer
/// check that no answer falls outside the description.
pub fn add_common_errors(api: &mut OpenApi) {
    let error = |description: &str| -> RefOr<Response> {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .into()
    };
    let components = api.components.get_or_insert_with(Default::default);
    for (name, schema) in [
        (
            "ErrorBody",
            <crate::ErrorBody as utoipa::PartialSchema>::schema(),
        ),
        ("ApiError", <ApiError as utoipa::PartialSchema>::schema()),
    ] {
        components.schemas.entry(name.to_string()).or_insert(schema);
    }
    for item in api.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            let public = operation
                .security
                .as_ref()
                .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
            let has_body = operation.request_body.is_some();
            let has_params = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let mut wanted: Vec<(&str, &str)> = vec![("503", "a backend service is unavailable")];
            if has_body {
                wanted.push(("400", "bad input; `field` names it"));
                wanted.push(("413", "the body exceeds the route's size limit"));
                wanted.push(("415", "the body is not JSON"));
            } else if has_params {
                wanted.push(("400", "bad parameter; `field` names it"));
            }
            if has_params {
                wanted.push(("404", "what the path or a parameter names does not exist"));
            }
            if !public {
                wanted.push(("401", "missing, invalid or expired access token"));
                wanted.push(("403", "the caller's roles do not allow this here"));
            }
            let responses: &mut Responses = &mut operation.responses;
            for (status, description) in wanted {
                responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| error(description));
            }
        }
    }
}

/// Declares the bearer access token as the description's default security: every
/// operation needs it unless its attribute says `security(())`.
pub fn add_bearer(api: &mut OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    api.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
}

/// Adds the bearer scheme and the common errors to a function's description and serves it
/// at `path`, cacheable: the description is built from the same handler list as the
/// router, so the two cannot differ.
pub fn serve_description<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
    path: &'static str,
    mut api: OpenApi,
) -> axum::Router<S> {
    use axum::response::IntoResponse;
    add_bearer(&mut api);
    add_common_errors(&mut api);
    let description = std::sync::Arc::new(api);
    router.route(
        path,
        axum::routing::get(move || {
            let description = description.clone();
            async move {
                let mut response = axum::Json(description.as_ref()).into_response();
                response
                    .headers_mut()
                    .insert(axum::http::header::CACHE_CONTROL, crate::PUBLIC_DOCUMENT);
                response
            }
        }),
    )
}

/// Lets an upload route take up to [`crate::MAX_FILE_BODY`] (Lambda's synchronous payload
/// limit) instead of the JSON routes' 64 KB.
pub fn with_file_limit<S: Clone + Send + Sync + 'static>(
    (schemas, paths, router): UtoipaMethodRouter<S>,
) -> UtoipaMethodRouter<S> {
    (
        schemas,
        paths,
        router.layer(axum::extract::DefaultBodyLimit::max(crate::MAX_FILE_BODY)),
    )
}

/// `?dry_run=true` checks an upload and reports without writing.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DryRunQuery {
    /// `true` (or empty) to check the file and report without writing anything.
    dry_run: Option<String>,
}

impl DryRunQuery {
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.dry_run.as_deref() {
            None | Some("false") => Ok(false),
            Some("true") | Some("") => Ok(true),
            Some(_) => Err(ApiError::invalid("dry_run", "expected true or false")),
        }
    }
}
