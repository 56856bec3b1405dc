//! The restitute API: one `axum::Router` whose handlers are thin calls of [`App`]'s methods.

use crate::api::{App, ExportQuery, ExportReady, Restitution, SnapshotRequested};
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use tdb_api::csv::{csv_response, wants_csv};
use tdb_api::{ApiError, Caller, PathParams, QueryParams, edge, operation};
use tdb_domain::ports::{AccountStore, QuestionnaireStore};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;

type Shared<Q, S> = State<Arc<App<Q, S>>>;

/// Where the restitute function serves its OpenAPI description.
pub const OPENAPI_PATH: &str = "/restitutions/openapi.json";

/// The router Lambda runs, tests call and the local gateway serves.
pub fn router<Q, S>(app: impl Into<Arc<App<Q, S>>>) -> Router
where
    Q: QuestionnaireStore + 'static,
    S: AccountStore + 'static,
{
    let (router, mut api) = OpenApiRouter::<Arc<App<Q, S>>>::new()
        .routes(operation::<__path_restitution, _, _, _>(
            restitution::<Q, S>,
        ))
        .routes(operation::<__path_snapshot, _, _, _>(snapshot::<Q, S>))
        .routes(operation::<__path_chart, _, _, _>(chart::<Q, S>))
        .routes(operation::<__path_export, _, _, _>(export::<Q, S>))
        .split_for_parts();
    api.info.title = "TDB-ESMS restitute".into();
    api.info.version = env!("CARGO_PKG_VERSION").into();
    api.info.description = Some(
        "Restitutions: each indicator next to the peers', from the Parquet lake (docs/lake.md). \
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct StructurePath {
    /// The campaign year.
    campaign: u16,
    /// The structure's FINESS.
    finess: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct ChartPath {
    /// The campaign year.
    campaign: u16,
    /// The structure's FINESS.
    finess: String,
    /// The indicator's id, as the restitution names it.
    indicator: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct FormatQuery {
    /// `json` (the default) or `csv`.
    format: Option<String>,
}

/// A structure's indicators next to its peers' (its category nationally, in its region and
/// in its peer group), its place among them and its earlier values. For the structure, its
/// OG, the ARS and CD of its territory, once its platform's campaign is closed (a national
/// administrator also sees a preview). Groups of fewer than five show nothing.
/// `format=csv` downloads it, one line per indicator.
#[utoipa::path(get, path = "/restitutions/{campaign}/{finess}", tag = "restitutions",
    params(StructurePath, FormatQuery), responses((status = 200, description = "the restitution (JSON) or its CSV download",
        content((Restitution = "application/json"), (String = "text/csv"))),
        (status = 409, body = tdb_api::ErrorBody, description = "not closed, or no snapshot yet")))]
async fn restitution<Q: QuestionnaireStore, S: AccountStore>(
    caller: Caller,
    State(app): Shared<Q, S>,
    PathParams(path): PathParams<StructurePath>,
    QueryParams(query): QueryParams<FormatQuery>,
) -> Result<Response, ApiError> {
    let csv = wants_csv(query.format.as_deref())?;
    let restitution = app
        .restitution(&caller, path.campaign, &path.finess)
        .await?;
    if csv {
        Ok(csv_response(
            &format!(
                "restitution-{}-{}",
                restitution.campaign,
                restitution.finess.replace(' ', "")
            ),
            crate::api::restitution_csv(&restitution),
        ))
    } else {
        Ok(tdb_api::json(200, &restitution))
    }
}

/// One indicator of a structure's restitution as an SVG chart: a box plot of its category
/// nationally, in its region and in its peer group (quartiles, median, first and ninth
/// deciles), the structure marked on each, French labels, readable without colour.
/// Groups of fewer than five are named, never drawn. Same access as the restitution.
#[utoipa::path(get, path = "/restitutions/{campaign}/{finess}/charts/{indicator}", tag = "restitutions",
    params(ChartPath), responses((status = 200, description = "the chart", content_type = "image/svg+xml", body = String),
        (status = 404, body = tdb_api::ErrorBody, description = "no such indicator for this structure")))]
async fn chart<Q: QuestionnaireStore, S: AccountStore>(
    caller: Caller,
    State(app): Shared<Q, S>,
    PathParams(path): PathParams<ChartPath>,
) -> Result<Response, ApiError> {
    let restitution = app
        .restitution(&caller, path.campaign, &path.finess)
        .await?;
    let indicator = restitution
        .indicators
        .iter()
        .find(|i| i.id == path.indicator)
        .ok_or_else(|| ApiError::not_found("indicator"))?;
    let (svg, _) = crate::chart::svg(&restitution, indicator);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "image/svg+xml; charset=utf-8",
        )],
        svg,
    )
        .into_response())
}

/// Asks for a preview snapshot of the campaign (national administrator): the snapshot
/// function takes it within minutes, and restitutions read it until the final one.
#[utoipa::path(post, path = "/restitutions/{campaign}/snapshot", tag = "restitutions",
    params(CampaignPath), responses((status = 202, body = SnapshotRequested)))]
async fn snapshot<Q: QuestionnaireStore, S: AccountStore>(
    caller: Caller,
    State(app): Shared<Q, S>,
    PathParams(path): PathParams<CampaignPath>,
) -> Result<Response, ApiError> {
    let requested = app.request_snapshot(&caller, path.campaign).await?;
    Ok(tdb_api::json(202, &requested))
}

/// A territory's structures of one platform in the national export's format (ARS: its
/// region; CD: its département; national administrators: any): one `;`-separated row per
/// structure, the identification columns (région, département, catégorie, groupe homogène,
/// FINESS géographique, raison sociale, structuration, statut juridique, ville, niveau de
/// validation, état d'avancement, FINESS juridique, raison sociale juridique), then every
/// variable and indicator. Read from the snapshot restitutions read, written once per
/// snapshot in the lake bucket, and given as a link that works for five minutes.
#[utoipa::path(get, path = "/restitutions/{campaign}/export", tag = "restitutions",
    params(CampaignPath, ExportQuery), responses((status = 200, body = ExportReady),
        (status = 409, body = tdb_api::ErrorBody, description = "not closed, or no snapshot yet")))]
async fn export<Q: QuestionnaireStore, S: AccountStore>(
    caller: Caller,
    State(app): Shared<Q, S>,
    PathParams(path): PathParams<CampaignPath>,
    QueryParams(query): QueryParams<ExportQuery>,
) -> Result<Response, ApiError> {
    let ready = app.export(&caller, path.campaign, &query).await?;
    Ok(tdb_api::json(200, &ready))
}
