//! The collect API: one `axum::Router` whose handlers are thin calls of [`App`]'s methods;
//! each handler's `#[utoipa::path]` is both its route and its documentation.

use crate::{
    App, AuditPage, BulkSummary, OpeningSummary, PrefillSummary, QuestionnaireView, Refusal,
    SaveRequest, SaveResult,
};
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use tdb_api::{
    ApiError, Caller, DryRunQuery, FileBody, JsonBody, PathParams, QueryParams, edge, operation,
};
use tdb_domain::ports::{AccountStore, AuditLog, IdempotencyStore, QuestionnaireStore};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;

type Shared<Q, A, S> = State<Arc<App<Q, A, S>>>;

/// Where the collect function serves its OpenAPI description.
pub const OPENAPI_PATH: &str = "/questionnaires/openapi.json";

/// The router Lambda runs, tests call and the local gateway serves.
pub fn router<Q, A, S>(app: impl Into<Arc<App<Q, A, S>>>) -> Router
where
    Q: QuestionnaireStore + IdempotencyStore + 'static,
    A: AuditLog + 'static,
    S: AccountStore + 'static,
{
    let (router, mut api) = OpenApiRouter::<Arc<App<Q, A, S>>>::new()
        .routes(operation::<__path_open, _, _, _>(open::<Q, A, S>))
        .routes(operation::<__path_save, _, _, _>(save::<Q, A, S>))
        .routes(operation::<__path_trail, _, _, _>(trail::<Q, A, S>))
        .routes(operation::<__path_open_campaign, _, _, _>(
            open_campaign::<Q, A, S>,
        ))
        .routes(tdb_api::with_file_limit(
            operation::<__path_prefill, _, _, _>(prefill::<Q, A, S>),
        ))
        .routes(tdb_api::with_file_limit(operation::<__path_bulk, _, _, _>(
            bulk::<Q, A, S>,
        )))
        .split_for_parts();
    api.info.title = "TDB-ESMS collect".into();
    api.info.version = env!("CARGO_PKG_VERSION").into();
    api.info.description = Some(
        "Questionnaires read and saved item by item (docs/collect.md). Errors are \
         `{\"error\": {\"code\", \"message\", \"field\"}}`."
            .into(),
    );
    let router = tdb_api::serve_description(router, OPENAPI_PATH, api);
    edge(router.with_state(app.into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct QuestionnairePath {
    /// The campaign year (2025 collects the data of 2024).
    campaign: u16,
    /// FINESS of the structure (a principal ESMS or an OG).
    #[param(pattern = "^[0-9][0-9AB][0-9]{7}$")]
    finess: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct CampaignPath {
    campaign: u16,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// The `next` of the previous page.
    page: Option<String>,
}

/// The caller's questionnaire of a structure: its platform's items for the category, the
/// answers with their origin, the fill rate overall, per part and per section, the rules
/// that fail, and what the caller may edit now.
#[utoipa::path(get, path = "/questionnaires/{campaign}/{finess}", tag = "questionnaires",
    params(QuestionnairePath), responses((status = 200, body = QuestionnaireView)))]
async fn open<Q: QuestionnaireStore + IdempotencyStore, A: AuditLog, S: AccountStore>(
    caller: Caller,
    State(app): Shared<Q, A, S>,
    PathParams(path): PathParams<QuestionnairePath>,
) -> Result<Response, ApiError> {
    let view = app.open(&caller, path.campaign, &path.finess).await?;
    Ok(tdb_api::json(200, &view))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct SaveHeaders {
    /// Sent again with a retried save, it gets the first answer again and no second
    /// effect (kept a day): 1 to 128 letters, digits, `-`, `_`, `.` or `:`.
    #[serde(rename = "Idempotency-Key")]
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
}

/// Saves some items. Each value is checked against its item: the valid ones are saved,
/// the others come back in `rejected` with the reason. Refused with 409 `stale_version`
/// (and the current values) when an item of the save was changed by someone else after
/// `base_version`.
#[utoipa::path(patch, path = "/questionnaires/{campaign}/{finess}", tag = "questionnaires",
    params(QuestionnairePath, SaveHeaders), request_body = SaveRequest,
    responses((status = 200, body = SaveResult),
        (status = 409, body = Refusal, description = "stale version, outside collection, validated or closed questionnaire, or the same Idempotency-Key still running"),
        (status = 422, body = tdb_api::ErrorBody, description = "the Idempotency-Key was used for a different request")))]
async fn save<Q: QuestionnaireStore + IdempotencyStore, A: AuditLog, S: AccountStore>(
    caller: Caller,
    State(app): Shared<Q, A, S>,
    headers: axum::http::HeaderMap,
    PathParams(path): PathParams<QuestionnairePath>,
    JsonBody(body): JsonBody<SaveRequest>,
) -> Result<Response, ApiError> {
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(_)) => {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                "not a visible ASCII text",
            ));
        }
    };
    let (status, body, replayed) = app
        .save_once(caller, path.campaign, &path.finess, key, body)
        .await;
    let status = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if replayed {
        response.headers_mut().insert(
            axum::http::HeaderName::from_static("idempotent-replayed"),
            axum::http::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// The questionnaire's audit trail, newest first, 50 entries a page.
#[utoipa::path(get, path = "/questionnaires/{campaign}/{finess}/audit", tag = "questionnaires",
    params(QuestionnairePath, PageQuery), responses((status = 200, body = AuditPage)))]
async fn trail<Q: QuestionnaireStore + IdempotencyStore, A: AuditLog, S: AccountStore>(
    caller: Caller,
    State(app): Shared<Q, A, S>,
    PathParams(path): PathParams<QuestionnairePath>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = app
        .trail(&caller, path.campaign, &path.finess, query.page.as_deref())
        .await?;
    Ok(tdb_api::json(200, &page))
}

/// Opens the campaign: a "not started" questionnaire for every respondent that has none
/// (national administrator). Running it again creates nothing.
#[utoipa::path(post, path = "/questionnaires/{campaign}/opening", tag = "campaign",
    params(CampaignPath), responses((status = 200, body = OpeningSummary),
        (status = 409, body = tdb_api::ErrorBody, description = "another opening of the campaign is running")))]
async fn open_campaign<Q: QuestionnaireStore + IdempotencyStore, A: AuditLog, S: AccountStore>(
    caller: Caller,
    State(app): Shared<Q, A, S>,
    PathParams(path): PathParams<CampaignPath>,
) -> Result<Response, ApiError> {
    let summary = app.open_campaign(&caller, path.campaign).await?;
    Ok(tdb_api::json(200, &summary))
}

/// Imports financial-statement values (ERRD / compte administratif): `finess;<item>;...`
/// with one line per FINESS, `;`-separated, decimal comma or point, up to 6 MB (national
/// administrator). A value fills an item nobody entered; a structure's correction is kept.
#[utoipa::path(post, path = "/questionnaires/{campaign}/prefill", tag = "campaign",
    params(CampaignPath, DryRunQuery), request_body(content = Vec<u8>, content_type = "text/csv"),
    responses((status = 200, body = PrefillSummary)))]
async fn prefill<Q: QuestionnaireStore + IdempotencyStore, A: AuditLog, S: AccountStore>(
    caller: Caller,
    State(app): Shared<Q, A, S>,
    PathParams(path): PathParams<CampaignPath>,
    QueryParams(query): QueryParams<DryRunQuery>,
    FileBody(file): FileBody,
) -> Result<Response, ApiError> {
    let summary = app
        .prefill(&caller, path.campaign, &file, query.dry_run()?)
        .await?;
    Ok(tdb_api::json(200, &summary))
}

/// Answers for several structures at once: CSV `finess;<item>;...` (one row per FINESS,
/// decimal comma or point, yes/no as oui/non, multiple choices separated by `|`) or JSON
/// `{"<finess>": {"<item>": value}}`, up to 6 MB. The rights and checks of a single save
/// apply; each structure's row is saved whole or refused whole, and the summary says why.
#[utoipa::path(post, path = "/questionnaires/{campaign}/bulk", tag = "questionnaires",
    params(CampaignPath, DryRunQuery), request_body(content = Vec<u8>, content_type = "text/csv"),
    responses((status = 200, body = BulkSummary)))]
async fn bulk<Q: QuestionnaireStore + IdempotencyStore, A: AuditLog, S: AccountStore>(
    caller: Caller,
    State(app): Shared<Q, A, S>,
    PathParams(path): PathParams<CampaignPath>,
    QueryParams(query): QueryParams<DryRunQuery>,
    FileBody(file): FileBody,
) -> Result<Response, ApiError> {
    let summary = app
        .bulk(&caller, path.campaign, &file, query.dry_run()?)
        .await?;
    Ok(tdb_api::json(200, &summary))
}
