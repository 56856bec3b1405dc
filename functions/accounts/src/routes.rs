//! The routes of the accounts API. `openapi.yaml` documents the same table; a test checks
//! they agree.

use tdb_api::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Login,
    Refresh,
    Logout,
    SetPassword,
    RequestReset,
    Jwks,
    Me,
    Structures,
    Structure,
    PutApe,
    DeleteApe,
    Users,
    CreateUser,
    UpdateUser,
    DeleteUser,
    ImportReferential,
    ImportSecondaries,
    ImportApeContacts,
}

impl Route {
    /// Routes reachable without an access token: signing in, and what a person holding
    /// only a link or a refresh token needs.
    pub fn is_public(self) -> bool {
        matches!(
            self,
            Route::Login
                | Route::Refresh
                | Route::Logout
                | Route::SetPassword
                | Route::RequestReset
                | Route::Jwks
        )
    }
}

/// Method, path template (`{name}` matches one segment), route.
pub const ROUTES: &[(&str, &str, Route)] = &[
    ("POST", "/auth/login", Route::Login),
    ("POST", "/auth/refresh", Route::Refresh),
    ("POST", "/auth/logout", Route::Logout),
    ("POST", "/auth/password", Route::SetPassword),
    ("POST", "/auth/password-reset", Route::RequestReset),
    ("GET", "/.well-known/jwks.json", Route::Jwks),
    ("GET", "/accounts/me", Route::Me),
    ("GET", "/accounts/structures", Route::Structures),
    ("GET", "/accounts/structures/{finess}", Route::Structure),
    ("PUT", "/accounts/structures/{finess}/ape", Route::PutApe),
    (
        "DELETE",
        "/accounts/structures/{finess}/ape",
        Route::DeleteApe,
    ),
    ("GET", "/accounts/structures/{finess}/users", Route::Users),
    (
        "POST",
        "/accounts/structures/{finess}/users",
        Route::CreateUser,
    ),
    (
        "PATCH",
        "/accounts/structures/{finess}/users/{id}",
        Route::UpdateUser,
    ),
    (
        "DELETE",
        "/accounts/structures/{finess}/users/{id}",
        Route::DeleteUser,
    ),
    (
        "POST",
        "/accounts/imports/referential",
        Route::ImportReferential,
    ),
    (
        "POST",
        "/accounts/imports/secondaries",
        Route::ImportSecondaries,
    ),
    (
        "POST",
        "/accounts/imports/ape-contacts",
        Route::ImportApeContacts,
    ),
];

fn matches<'a>(template: &str, path: &'a str) -> Option<Vec<&'a str>> {
    let mut params = Vec::new();
    let mut t = template.trim_end_matches('/').split('/');
    let mut p = path.trim_end_matches('/').split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) if ts.starts_with('{') && !ps.is_empty() => params.push(ps),
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return None,
        }
    }
}

/// The route of a request and its path parameters; 404 for an unknown path, 405 for a
/// known path with another method.
pub fn route<'a>(method: &str, path: &'a str) -> Result<(Route, Vec<&'a str>), ApiError> {
    let mut path_known = false;
    for (m, template, route) in ROUTES {
        if let Some(params) = matches(template, path) {
            if *m == method {
                return Ok((*route, params));
            }
            path_known = true;
        }
    }
    if path_known {
        Err(ApiError::method_not_allowed())
    } else {
        Err(ApiError::not_found("route"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_parameters_route_and_others_do_not() {
        let (r, params) = route("PATCH", "/accounts/structures/690000017/users/abc").unwrap();
        assert_eq!((r, params), (Route::UpdateUser, vec!["690000017", "abc"]));
        assert_eq!(
            route("GET", "/accounts/structures/").unwrap().0,
            Route::Structures
        );
        assert_eq!(route("GET", "/accounts/nothing").unwrap_err().status, 404);
        assert_eq!(route("DELETE", "/auth/login").unwrap_err().status, 405);
        assert_eq!(
            route("GET", "/accounts/structures//users")
                .unwrap_err()
                .status,
            404
        );
    }
}
