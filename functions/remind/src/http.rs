//! The remind API: one `axum::Router` whose handlers are thin calls of [`App`]'s methods.

use crate::{App, OnDemandRequest, OnDemandSummary, RunSummary, UnreachableStructure};
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tdb_api::{ApiError, Caller, DryRunQuery, JsonBody, PathParams, QueryParams, edge, operation};
use tdb_domain::ports::{AccountStore, Mailer, QuestionnaireStore, SendLog};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;

type Shared<Q, S, M> = State<Arc<App<Q, S, M>>>;

/// Where the remind function serves its OpenAPI description.
pub const OPENAPI_PATH: &str = "/reminders/openapi.json";

/// The router Lambda runs, tests call and the local gateway serves.
pub fn router<Q, S, M>(app: impl Into<Arc<App<Q, S, M>>>) -> Router
where
    Q: QuestionnaireStore + SendLog + 'static,
    S: AccountStore + 'static,
    M: Mailer + 'static,
{
    let (router, mut api) = OpenApiRouter::<Arc<App<Q, S, M>>>::new()
        .routes(operation::<__path_run, _, _, _>(run::<Q, S, M>))
        .routes(operation::<__path_remind_now, _, _, _>(
            remind_now::<Q, S, M>,
        ))
        .routes(operation::<__path_unreachable, _, _, _>(
            unreachable::<Q, S, M>,
        ))
        .split_for_parts();
    api.info.title = "TDB-ESMS remind".into();
    api.info.version = env!("CARGO_PKG_VERSION").into();
    api.info.description = Some(
        "Reminder e-mails in the collection window, each sent once (docs/reminders.md). \
         Errors are `{\"error\": {\"code\", \"message\", \"field\"}}`."
            .into(),
    );
    let router = tdb_api::serve_description(router, OPENAPI_PATH, api);
    edge(router.with_state(app.into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct CampaignPath {
    /// The campaign year (2025 collects the data of 2024).
    campaign: u16,
}

/// Runs today's reminders now, as the daily schedule does (national administrator): the
/// same run, sending only what has not gone out. `dry_run=true` lists the e-mails that
/// would go out, with their recipients and subjects, and sends nothing.
#[utoipa::path(post, path = "/reminders/{campaign}/run", tag = "reminders",
    params(CampaignPath, DryRunQuery), responses((status = 200, body = RunSummary)))]
async fn run<Q: QuestionnaireStore + SendLog, S: AccountStore, M: Mailer>(
    caller: Caller,
    State(app): Shared<Q, S, M>,
    PathParams(path): PathParams<CampaignPath>,
    QueryParams(query): QueryParams<DryRunQuery>,
) -> Result<Response, ApiError> {
    let summary = app
        .run_requested(&caller, path.campaign, query.dry_run()?)
        .await?;
    Ok(tdb_api::json(200, &summary))
}

/// Reminds chosen structures now: an OG its ESMS, an ARS or a CD those of its territory.
/// Each structure gets at most one such reminder a day; the answer says, structure by
/// structure, what happened (and when today's earlier one went out).
#[utoipa::path(post, path = "/reminders/{campaign}", tag = "reminders",
    params(CampaignPath), request_body = OnDemandRequest,
    responses((status = 200, body = OnDemandSummary),
        (status = 409, body = tdb_api::ErrorBody, description = "outside collection and fiabilisation")))]
async fn remind_now<Q: QuestionnaireStore + SendLog, S: AccountStore, M: Mailer>(
    caller: Caller,
    State(app): Shared<Q, S, M>,
    PathParams(path): PathParams<CampaignPath>,
    JsonBody(request): JsonBody<OnDemandRequest>,
) -> Result<Response, ApiError> {
    let summary = app.remind_now(&caller, path.campaign, request).await?;
    Ok(tdb_api::json(200, &summary))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ScopeQuery {
    /// A region's code (`84`); with neither, the country.
    region: Option<u8>,
    /// A département's code (`69`, `2A`).
    departement: Option<String>,
}

/// A territory's structures nobody can be reminded at.
#[derive(Serialize, utoipa::ToSchema)]
struct UnreachableList {
    /// `region:84`, `departement:69` or `national`.
    territory: String,
    structures: Vec<UnreachableStructure>,
}

/// The structures of a territory that reminders cannot reach: without an APE, without an
/// activated account, or whose every address bounced or complained (SES's notifications).
/// For its ARS, its CD, or the national administrator; they are to be reached otherwise.
#[utoipa::path(get, path = "/reminders/unreachable", tag = "reminders",
    params(ScopeQuery), responses((status = 200, body = UnreachableList)))]
async fn unreachable<Q: QuestionnaireStore + SendLog, S: AccountStore, M: Mailer>(
    caller: Caller,
    State(app): Shared<Q, S, M>,
    QueryParams(query): QueryParams<ScopeQuery>,
) -> Result<Response, ApiError> {
    let scope = tdb_api::Scope::of(query.region, query.departement.as_deref())?;
    let structures = app.unreachable_in(&caller, &scope).await?;
    Ok(tdb_api::json(
        200,
        &UnreachableList {
            territory: scope.name,
            structures,
        },
    ))
}
