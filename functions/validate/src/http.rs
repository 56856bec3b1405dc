//! The validate API: one `axum::Router` whose handlers are thin calls of [`App`]'s methods;
//! each handler's `#[utoipa::path]` is both its route and its documentation.

use crate::progress::{TerritoryQuery, lines_csv, summary_csv};
use crate::{
    AcknowledgementRequest, App, Blocked, BlockedError, Checks, ClosureRequest, ClosureSummary,
    OgProgress, StepError, StepRequest, StepResult, StructureLine, TerritoryProgress,
};
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tdb_api::csv::{csv_response, wants_csv};
use tdb_api::{ApiError, Caller, JsonBody, PathParams, QueryParams, edge, operation};
use tdb_domain::ports::{AccountStore, Lake, Mailer, QuestionnaireStore};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;

type Shared<Q, S, M, L> = State<Arc<App<Q, S, M, L>>>;

/// Where the validate function serves its OpenAPI description.
pub const OPENAPI_PATH: &str = "/validation/openapi.json";

/// The router Lambda runs, tests call and the local gateway serves.
pub fn router<Q, S, M, L>(app: impl Into<Arc<App<Q, S, M, L>>>) -> Router
where
    Q: QuestionnaireStore + 'static,
    S: AccountStore + 'static,
    M: Mailer + 'static,
    L: Lake + 'static,
{
    let (router, mut api) = OpenApiRouter::<Arc<App<Q, S, M, L>>>::new()
        .routes(operation::<__path_checks, _, _, _>(checks::<Q, S, M, L>))
        .routes(operation::<__path_step, _, _, _>(step::<Q, S, M, L>))
        .routes(operation::<__path_acknowledge, _, _, _>(
            acknowledge::<Q, S, M, L>,
        ))
        .routes(operation::<__path_close, _, _, _>(close::<Q, S, M, L>))
        .routes(operation::<__path_og_progress, _, _, _>(
            og_progress::<Q, S, M, L>,
        ))
        .routes(operation::<__path_territory, _, _, _>(
            territory::<Q, S, M, L>,
        ))
        .routes(operation::<__path_structures, _, _, _>(
            structures::<Q, S, M, L>,
        ))
        .split_for_parts();
    api.info.title = "TDB-ESMS validate".into();
    api.info.version = env!("CARGO_PKG_VERSION").into();
    api.info.description = Some(
        "Checks, the validation workflow, fiabilisation, closure and progress \
         (docs/validate.md). Errors are `{\"error\": {\"code\", \"message\", \"field\"}}`."
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
#[into_params(parameter_in = Path)]
struct OgPath {
    campaign: u16,
    /// FINESS of the OG.
    #[param(pattern = "^[0-9][0-9AB][0-9]{7}$")]
    og: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// The `next` of the previous page.
    page: Option<String>,
}

/// The checks of a questionnaire at any time: fill rate overall, per part and per
/// section; failing rules with their French messages and acknowledgements; outliers; each
/// part's status, what stands in the way of its validation, and its records.
#[utoipa::path(get, path = "/validation/{campaign}/{finess}", tag = "validation",
    params(QuestionnairePath), responses((status = 200, body = Checks)))]
async fn checks<Q: QuestionnaireStore, S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<Q, S, M, L>,
    PathParams(path): PathParams<QuestionnairePath>,
) -> Result<Response, ApiError> {
    let checks = app.checks(&caller, path.campaign, &path.finess).await?;
    Ok(tdb_api::json(200, &checks))
}

/// One step of the workflow: `validate` or `unvalidate` a part (the structure's
/// Gestionnaire), `reopen` with a reason or `check` it (ARS, CD), `validate_subsidiarity`
/// or `withdraw_subsidiarity` (the OG). A validation refused for its content is 409
/// `cannot_validate` with the obstacles.
#[utoipa::path(post, path = "/validation/{campaign}/{finess}/transitions", tag = "validation",
    params(QuestionnairePath), request_body = StepRequest,
    responses((status = 200, body = StepResult),
        (status = 409, body = Blocked, description = "not deserved yet (obstacles), not possible from the current status, or outside the phase")))]
async fn step<Q: QuestionnaireStore, S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<Q, S, M, L>,
    PathParams(path): PathParams<QuestionnairePath>,
    JsonBody(request): JsonBody<StepRequest>,
) -> Result<Response, ApiError> {
    match app
        .step(&caller, path.campaign, &path.finess, request)
        .await
    {
        Ok(result) => Ok(tdb_api::json(200, &result)),
        Err(StepError::Api(e)) => Err(e),
        Err(StepError::Blocked(obstacles)) => Ok(tdb_api::json(
            409,
            &Blocked {
                error: BlockedError {
                    code: "cannot_validate",
                    message: format!(
                        "{} obstacle(s) stand in the way of the validation",
                        obstacles.len()
                    ),
                    obstacles,
                },
            },
        )),
    }
}

/// Acknowledges a failing warning with a comment (the structure's Gestionnaire); every
/// failing warning must be acknowledged before validation, and the ARS sees the comments.
#[utoipa::path(post, path = "/validation/{campaign}/{finess}/acknowledgements", tag = "validation",
    params(QuestionnairePath), request_body = AcknowledgementRequest,
    responses((status = 200, body = Checks),
        (status = 409, body = tdb_api::ErrorBody, description = "the rule's part is validated, or outside the phase")))]
async fn acknowledge<Q: QuestionnaireStore, S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<Q, S, M, L>,
    PathParams(path): PathParams<QuestionnairePath>,
    JsonBody(request): JsonBody<AcknowledgementRequest>,
) -> Result<Response, ApiError> {
    let checks = app
        .acknowledge(&caller, path.campaign, &path.finess, request)
        .await?;
    Ok(tdb_api::json(200, &checks))
}

/// Closes a platform's campaign after its fiabilisation (national administrator): the
/// final states are recorded and the restitution snapshot is triggered. Idempotent.
#[utoipa::path(post, path = "/validation/{campaign}/closure", tag = "campaign",
    params(CampaignPath), request_body = ClosureRequest,
    responses((status = 200, body = ClosureSummary),
        (status = 409, body = tdb_api::ErrorBody, description = "the platform's fiabilisation is not over")))]
async fn close<Q: QuestionnaireStore, S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<Q, S, M, L>,
    PathParams(path): PathParams<CampaignPath>,
    JsonBody(request): JsonBody<ClosureRequest>,
) -> Result<Response, ApiError> {
    let summary = app.close(&caller, path.campaign, request).await?;
    Ok(tdb_api::json(200, &summary))
}

/// An OG's progress: its own questionnaire and its ESMS' (status, fill rate, blocking
/// rules, last change), 100 a page.
#[utoipa::path(get, path = "/validation/{campaign}/progress/og/{og}", tag = "progress",
    params(OgPath, PageQuery), responses((status = 200, body = OgProgress)))]
async fn og_progress<Q: QuestionnaireStore, S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<Q, S, M, L>,
    PathParams(path): PathParams<OgPath>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let progress = app
        .og_progress(&caller, path.campaign, &path.og, query.page)
        .await?;
    Ok(tdb_api::json(200, &progress))
}

/// A territory's progress (ARS: its region; CD: its département; national: the country by
/// region): expected, started, validated and validated-on-time questionnaires with their
/// rates and the mean fill rate, by category and département. `format=csv` downloads it.
#[utoipa::path(get, path = "/validation/{campaign}/progress", tag = "progress",
    params(CampaignPath, TerritoryQuery), responses((status = 200, description = "the summary (JSON) or its CSV download",
        content((TerritoryProgress = "application/json"), (String = "text/csv")))))]
async fn territory<Q: QuestionnaireStore, S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<Q, S, M, L>,
    PathParams(path): PathParams<CampaignPath>,
    QueryParams(query): QueryParams<TerritoryQuery>,
) -> Result<Response, ApiError> {
    let csv = wants_csv(query.format.as_deref())?;
    let summary = app
        .territory_progress(&caller, path.campaign, &query)
        .await?;
    if csv {
        Ok(csv_response("avancement", summary_csv(&summary)))
    } else {
        Ok(tdb_api::json(200, &summary))
    }
}

/// A page of structures.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StructurePage {
    pub structures: Vec<StructureLine>,
    pub next: Option<String>,
}

/// A territory's structures one by one (status, fill rate, blocking rules, acknowledged
/// warnings, outliers, last change), optionally of one status or only those to review.
/// JSON pages of about 100, or the whole list with `format=csv`.
#[utoipa::path(get, path = "/validation/{campaign}/progress/structures", tag = "progress",
    params(CampaignPath, TerritoryQuery), responses((status = 200, description = "a page (JSON) or the whole list (CSV)",
        content((StructurePage = "application/json"), (String = "text/csv")))))]
async fn structures<Q: QuestionnaireStore, S: AccountStore, M: Mailer, L: Lake>(
    caller: Caller,
    State(app): Shared<Q, S, M, L>,
    PathParams(path): PathParams<CampaignPath>,
    QueryParams(query): QueryParams<TerritoryQuery>,
) -> Result<Response, ApiError> {
    let csv = wants_csv(query.format.as_deref())?;
    let page = app
        .territory_structures(&caller, path.campaign, &query, csv)
        .await?;
    if csv {
        Ok(csv_response("structures", lines_csv(&page.items)))
    } else {
        Ok(tdb_api::json(
            200,
            &StructurePage {
                structures: page.items,
                next: page.next,
            },
        ))
    }
}
