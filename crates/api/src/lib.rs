//! The HTTP edge every function shares.
//!
//! - [`TokenVerifier`] checks the access tokens the accounts function signs (RS256, keys
//!   from its JWKS), and yields the [`Caller`]: an account id and the roles it acts under.
//! - [`Caller::authorize`] applies the domain's rights decision (`tdb_domain::rights`).
//! - [`ApiError`] is the one error body: a machine code, a human message (French is for
//!   e-mails; API messages are English, like the codes) and, for bad input, the field.
//!
//! A function builds one verifier at cold start and calls [`TokenVerifier::caller`] on every
//! request before anything else, so no route is reachable without a valid token, even when
//! the API gateway's JWT authorizer is misconfigured.

mod error;
mod token;

pub use error::{ApiError, json, no_content};
pub use token::{Caller, Claims, TokenError, TokenVerifier};
