//! The restitute API: one `axum::Router` whose handlers are thin calls of [`App`]'s methods.

use crate::api::{App, Restitution, SnapshotRequested};
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use std::sync::Arc;
use tdb_api::{ApiError, Caller, PathParams, edge, operation};
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

/// A structure's indicators next to its peers' (its category nationally, in its region and
/// in its peer group), its place among them and its earlier values. For the structure, its
/// OG, the ARS and CD of its territory, once its platform's campaign is closed (a national
/// administrator also sees a preview). Groups of fewer than five show nothing.
#[utoipa::path(get, path = "/restitutions/{campaign}/{finess}", tag = "restitutions",
    params(StructurePath), responses((status = 200, body = Restitution),
        (status = 409, body = tdb_api::ErrorBody, description = "not closed, or no snapshot yet")))]
async fn restitution<Q: QuestionnaireStore, S: AccountStore>(
    caller: Caller,
    State(app): Shared<Q, S>,
    PathParams(path): PathParams<StructurePath>,
) -> Result<Response, ApiError> {
    let restitution = app
        .restitution(&caller, path.campaign, &path.finess)
        .await?;
    Ok(tdb_api::json(200, &restitution))
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
