//! The accounts API: one `axum::Router` whose handlers are thin calls of [`App`]'s methods.
//! Each handler's `#[utoipa::path]` attribute is both its route and its documentation, so
//! [`openapi`] cannot drift from [`router`].

use crate::App;
use crate::admin::{
    ApeSet, NewUserBody, OwnDetailsBody, PersonBody, StructurePage, StructureQuery, StructureView,
    UserAdded, UserChangeBody, UserList, UserView,
};
use crate::auth::{
    Discovery, LoginBody, LogoutBody, MeView, Message, PasswordBody, RefreshBody, ResetBody, Tokens,
};
use crate::import::Summary;
use crate::jobs::{JobView, UploadCreated};
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use std::sync::Arc;
use tdb_api::{
    ApiError, Caller, DryRunQuery, ErrorBody, FileBody, JsonBody, PathParams, QueryParams, edge,
    operation,
};
use tdb_domain::ports::{AccountStore, Lake, Mailer};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;

type Shared<S, M, L> = State<Arc<App<S, M, L>>>;

/// Where the accounts function serves its OpenAPI description.
pub const OPENAPI_PATH: &str = "/accounts/openapi.json";

/// The router Lambda runs, tests call and the local gateway serves. Its OpenAPI description,
/// served at [`OPENAPI_PATH`], comes from the same handler list, so the two cannot differ.
pub fn router<S, M, L>(app: impl Into<Arc<App<S, M, L>>>) -> Router
where
    S: AccountStore + 'static,
    M: Mailer + 'static,
    L: Lake + 'static,
{
    let (router, mut api) = documented::<S, M, L>().split_for_parts();
    api.info.title = "TDB-ESMS accounts".into();
    api.info.version = env!("CARGO_PKG_VERSION").into();
    api.info.description = Some(
        "Referential and APE-contact imports, APE and user accounts, login and tokens (the \
         Plage part of the TDB-ESMS platform). Errors are `{\"error\": {\"code\", \"message\", \
         \"field\"}}`; `field` names the bad input."
            .into(),
    );
    let router = tdb_api::serve_description(router, OPENAPI_PATH, api);
    edge(router.with_state(app.into()))
}

fn documented<S, M, L>() -> OpenApiRouter<Arc<App<S, M, L>>>
where
    S: AccountStore + 'static,
    M: Mailer + 'static,
    L: Lake + 'static,
{
    OpenApiRouter::new()
        .routes(operation::<__path_login, _, _, _>(login::<S, M, L>))
        .routes(operation::<__path_refresh, _, _, _>(refresh::<S, M, L>))
        .routes(operation::<__path_logout, _, _, _>(logout::<S, M, L>))
        .routes(operation::<__path_set_password, _, _, _>(
            set_password::<S, M, L>,
        ))
        .routes(operation::<__path_request_reset, _, _, _>(
            request_reset::<S, M, L>,
        ))
        .routes(operation::<__path_jwks, _, _, _>(jwks::<S, M, L>))
        .routes(operation::<__path_discovery, _, _, _>(discovery::<S, M, L>))
        .routes(operation::<__path_me, _, _, _>(me::<S, M, L>))
        .routes(operation::<__path_update_me, _, _, _>(update_me::<S, M, L>))
        .routes(operation::<__path_list_structures, _, _, _>(
            list_structures::<S, M, L>,
        ))
        .routes(operation::<__path_structure, _, _, _>(structure::<S, M, L>))
        .routes(operation::<__path_put_ape, _, _, _>(put_ape::<S, M, L>))
        .routes(operation::<__path_delete_ape, _, _, _>(
            delete_ape::<S, M, L>,
        ))
        .routes(operation::<__path_users, _, _, _>(users::<S, M, L>))
        .routes(operation::<__path_create_user, _, _, _>(
            create_user::<S, M, L>,
        ))
        .routes(operation::<__path_update_user, _, _, _>(
            update_user::<S, M, L>,
        ))
        .routes(operation::<__path_delete_user, _, _, _>(
            delete_user::<S, M, L>,
        ))
        .routes(tdb_api::with_file_limit(operation::<
            __path_import_referential,
            _,
            _,
            _,
        >(
            import_referential::<S, M, L>
        )))
        .routes(operation::<__path_create_upload, _, _, _>(
            create_upload::<S, M, L>,
        ))
        .routes(operation::<__path_import_job, _, _, _>(
            import_job::<S, M, L>,
        ))
        .routes(tdb_api::with_file_limit(operation::<
            __path_import_secondaries,
            _,
            _,
            _,
        >(
            import_secondaries::<S, M, L>
        )))
        .routes(tdb_api::with_file_limit(operation::<
            __path_import_ape_contacts,
            _,
            _,
            _,
        >(
            import_ape_contacts::<S, M, L>
        )))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct StructurePath {
    /// FINESS of the structure.
    #[param(pattern = "^[0-9][0-9AB][0-9]{7}$")]
    finess: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct JobPath {
    /// The job's id, as its creation answered.
    #[param(pattern = "^[0-9a-f]{32}$")]
    job: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct UserPath {
    /// FINESS of the structure.
    #[param(pattern = "^[0-9][0-9AB][0-9]{7}$")]
    finess: String,
    /// Account id of the user.
    #[param(pattern = "^[0-9a-f]{32}$")]
    id: String,
}

/// Signs in. Unknown address, wrong password and locked account give the same 401.
#[utoipa::path(post, path = "/auth/login", tag = "auth", security(()), request_body = LoginBody,
    responses((status = 200, body = Tokens), (status = 401, body = ErrorBody, description = "wrong e-mail or password, or too many attempts"),
        (status = 403, body = ErrorBody, description = "`structure` is not one of the account's"),
        (status = 409, body = ErrorBody, description = "concurrent change of the account")))]
async fn login<S: AccountStore, M: Mailer, L: Lake>(
    State(app): Shared<S, M, L>,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Response, ApiError> {
    app.login(body).await
}

/// Exchanges a refresh token (used once) for new tokens.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", security(()), request_body = RefreshBody,
    responses((status = 200, body = Tokens), (status = 401, body = ErrorBody, description = "unknown, used or expired refresh token"),
        (status = 403, body = ErrorBody, description = "`structure` is not one of the account's")))]
async fn refresh<S: AccountStore, M: Mailer, L: Lake>(
    State(app): Shared<S, M, L>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Response, ApiError> {
    app.refresh(body).await
}

/// Ends a session by revoking its refresh token; an unknown token is fine.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(()), request_body = LogoutBody,
    responses((status = 204, description = "the session is closed")))]
async fn logout<S: AccountStore, M: Mailer, L: Lake>(
    State(app): Shared<S, M, L>,
    JsonBody(body): JsonBody<LogoutBody>,
) -> Result<Response, ApiError> {
    app.logout(body).await
}

/// Chooses a password with the token of an e-mailed link (activation or reset). Closes every
/// session of the account. A refused password leaves the link usable.
#[utoipa::path(post, path = "/auth/password", tag = "auth", security(()), request_body = PasswordBody,
    responses((status = 204, description = "the password is set"),
        (status = 401, body = ErrorBody, description = "`invalid_link`: unknown, used or expired link"),
        (status = 409, body = ErrorBody, description = "concurrent change of the account")))]
async fn set_password<S: AccountStore, M: Mailer, L: Lake>(
    State(app): Shared<S, M, L>,
    JsonBody(body): JsonBody<PasswordBody>,
) -> Result<Response, ApiError> {
    app.set_password(body).await
}

/// Asks for a password-reset link. The answer is the same whether or not the address has an
/// account.
#[utoipa::path(post, path = "/auth/password-reset", tag = "auth", security(()), request_body = ResetBody,
    responses((status = 202, body = Message)))]
async fn request_reset<S: AccountStore, M: Mailer, L: Lake>(
    State(app): Shared<S, M, L>,
    JsonBody(body): JsonBody<ResetBody>,
) -> Result<Response, ApiError> {
    app.request_reset(body).await
}

/// The public keys that verify access tokens (JWKS).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", security(()),
    responses((status = 200, description = "JSON Web Key Set", body = Object, content_type = "application/json")))]
async fn jwks<S: AccountStore, M: Mailer, L: Lake>(State(app): Shared<S, M, L>) -> Response {
    app.jwks()
}

/// OpenID Connect discovery: API Gateway's JWT authorizer reads `jwks_uri` from here.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "auth", security(()),
    responses((status = 200, body = Discovery)))]
async fn discovery<S: AccountStore, M: Mailer, L: Lake>(State(app): Shared<S, M, L>) -> Response {
    app.discovery()
}

/// The caller's account and profiles.
#[utoipa::path(get, path = "/accounts/me", tag = "accounts", responses((status = 200, body = MeView)))]
async fn me<S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<S, M, L>,
) -> Result<Response, ApiError> {
    app.me(&caller).await
}

/// Changes the caller's own name or phone number.
#[utoipa::path(patch, path = "/accounts/me", tag = "accounts", request_body = OwnDetailsBody,
    responses((status = 200, body = MeView),
        (status = 409, body = ErrorBody, description = "concurrent change")))]
async fn update_me<S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<S, M, L>,
    JsonBody(body): JsonBody<OwnDetailsBody>,
) -> Result<Response, ApiError> {
    app.update_me(&caller, body).await
}

/// Structures of a département, a region or an OG, those without an APE first, with their
/// APE (ARS, CD, OG's APE, national administrator).
#[utoipa::path(get, path = "/accounts/structures", tag = "accounts", params(StructureQuery),
    responses((status = 200, body = StructurePage)))]
async fn list_structures<S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<S, M, L>,
    QueryParams(query): QueryParams<StructureQuery>,
) -> Result<Response, ApiError> {
    app.list_structures(&caller, &query).await
}

/// One structure and its APE.
#[utoipa::path(get, path = "/accounts/structures/{finess}", tag = "accounts", params(StructurePath),
    responses((status = 200, body = StructureView)))]
async fn structure<S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<S, M, L>,
    PathParams(path): PathParams<StructurePath>,
) -> Result<Response, ApiError> {
    app.structure(&caller, &path.finess).await
}

/// Makes a person the structure's APE (creating the account and e-mailing its activation
/// link if needed), replacing the previous APE.
#[utoipa::path(put, path = "/accounts/structures/{finess}/ape", tag = "accounts", params(StructurePath),
    request_body = PersonBody,
    responses((status = 201, body = ApeSet, description = "a new account was created"), (status = 200, body = ApeSet),
        (status = 409, body = ErrorBody, description = "secondary structure, or concurrent change")))]
async fn put_ape<S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<S, M, L>,
    PathParams(path): PathParams<StructurePath>,
    JsonBody(body): JsonBody<PersonBody>,
) -> Result<Response, ApiError> {
    let caller = caller.current(app.store()).await?;
    app.put_ape(&caller, &path.finess, body).await
}

/// Removes the structure's APE.
#[utoipa::path(delete, path = "/accounts/structures/{finess}/ape", tag = "accounts", params(StructurePath),
    responses((status = 204, description = "the structure has no APE any more"),
        (status = 409, body = ErrorBody, description = "concurrent change")))]
async fn delete_ape<S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<S, M, L>,
    PathParams(path): PathParams<StructurePath>,
) -> Result<Response, ApiError> {
    let caller = caller.current(app.store()).await?;
    app.delete_ape(&caller, &path.finess).await
}

/// The users of a structure (its APE).
#[utoipa::path(get, path = "/accounts/structures/{finess}/users", tag = "accounts", params(StructurePath),
    responses((status = 200, body = UserList)))]
async fn users<S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<S, M, L>,
    PathParams(path): PathParams<StructurePath>,
) -> Result<Response, ApiError> {
    app.users(&caller, &path.finess).await
}

/// Gives a person a profile (`gestionnaire` or `lecteur`) on the structure (its APE).
#[utoipa::path(post, path = "/accounts/structures/{finess}/users", tag = "accounts", params(StructurePath),
    request_body = NewUserBody,
    responses((status = 201, body = UserAdded),
        (status = 409, body = ErrorBody, description = "`already_member`, `email_taken` or concurrent change")))]
async fn create_user<S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<S, M, L>,
    PathParams(path): PathParams<StructurePath>,
    JsonBody(body): JsonBody<NewUserBody>,
) -> Result<Response, ApiError> {
    let caller = caller.current(app.store()).await?;
    app.create_user(&caller, &path.finess, body).await
}

/// Changes a user's profile or details (its APE).
#[utoipa::path(patch, path = "/accounts/structures/{finess}/users/{id}", tag = "accounts", params(UserPath),
    request_body = UserChangeBody,
    responses((status = 200, body = UserView),
        (status = 409, body = ErrorBody, description = "`is_ape`, or concurrent change")))]
async fn update_user<S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<S, M, L>,
    PathParams(path): PathParams<UserPath>,
    JsonBody(body): JsonBody<UserChangeBody>,
) -> Result<Response, ApiError> {
    let caller = caller.current(app.store()).await?;
    app.update_user(&caller, &path.finess, &path.id, body).await
}

/// Takes a user's profile on the structure away (its APE).
#[utoipa::path(delete, path = "/accounts/structures/{finess}/users/{id}", tag = "accounts", params(UserPath),
    responses((status = 204, description = "the profile is removed"),
        (status = 409, body = ErrorBody, description = "`is_ape`, or concurrent change")))]
async fn delete_user<S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<S, M, L>,
    PathParams(path): PathParams<UserPath>,
) -> Result<Response, ApiError> {
    let caller = caller.current(app.store()).await?;
    app.delete_user(&caller, &path.finess, &path.id).await
}

/// Imports the Etalab FINESS extract (`etalab-cs1100502-stock-<date>.csv`, UTF-8 or
/// Latin-1, up to 6 MB: a region's extract; the national one goes through
/// `/accounts/imports/referential/uploads`) (national administrator).
#[utoipa::path(post, path = "/accounts/imports/referential", tag = "imports", params(DryRunQuery),
    request_body(content = Vec<u8>, content_type = "text/csv"),
    responses((status = 200, body = Summary)))]
async fn import_referential<S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<S, M, L>,
    QueryParams(query): QueryParams<DryRunQuery>,
    FileBody(file): FileBody,
) -> Result<Response, ApiError> {
    let caller = caller.current(app.store()).await?;
    app.import_referential(&caller, &file, query.dry_run()?)
        .await
}

/// Starts an import of the national FINESS extract, too large for a request: answers a
/// job and an address where the file is `PUT` within 15 minutes. The import runs once the
/// file has landed; poll the job (national administrator).
#[utoipa::path(post, path = "/accounts/imports/referential/uploads", tag = "imports", params(DryRunQuery),
    responses((status = 201, body = UploadCreated)))]
async fn create_upload<S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<S, M, L>,
    QueryParams(query): QueryParams<DryRunQuery>,
) -> Result<Response, ApiError> {
    let created = app.create_upload(caller, query.dry_run()?).await?;
    Ok(tdb_api::json(201, &created))
}

/// An import job: its status, and its summary once done (national administrator).
#[utoipa::path(get, path = "/accounts/imports/jobs/{job}", tag = "imports", params(JobPath),
    responses((status = 200, body = JobView)))]
async fn import_job<S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<S, M, L>,
    PathParams(path): PathParams<JobPath>,
) -> Result<Response, ApiError> {
    let job = app.import_job(&caller, &path.job).await?;
    Ok(tdb_api::json(200, &job))
}

/// Imports principal/secondary links: `finess_secondaire;finess_principal` (national
/// administrator).
#[utoipa::path(post, path = "/accounts/imports/secondaries", tag = "imports", params(DryRunQuery),
    request_body(content = Vec<u8>, content_type = "text/csv"),
    responses((status = 200, body = Summary)))]
async fn import_secondaries<S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<S, M, L>,
    QueryParams(query): QueryParams<DryRunQuery>,
    FileBody(file): FileBody,
) -> Result<Response, ApiError> {
    let caller = caller.current(app.store()).await?;
    app.import_secondaries(&caller, &file, query.dry_run()?)
        .await
}

/// Imports APE contacts: `finess;nom;prenom;telephone;email` (national, ARS or CD for their
/// territory).
#[utoipa::path(post, path = "/accounts/imports/ape-contacts", tag = "imports", params(DryRunQuery),
    request_body(content = Vec<u8>, content_type = "text/csv"),
    responses((status = 200, body = Summary)))]
async fn import_ape_contacts<S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<S, M, L>,
    QueryParams(query): QueryParams<DryRunQuery>,
    FileBody(file): FileBody,
) -> Result<Response, ApiError> {
    let caller = caller.current(app.store()).await?;
    app.import_ape_contacts(&caller, &file, query.dry_run()?)
        .await
}
