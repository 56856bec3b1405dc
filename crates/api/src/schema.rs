//! OpenAPI schemas of domain values that every function's answers carry. The domain crate
//! knows nothing of HTTP, so their schemas are written here, next to the edge.

use std::borrow::Cow;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

/// A role an account holds, as tokens and answers carry it: `{"role": "national_admin"}`,
/// `{"role": "regional_admin", "region": 84}`, `{"role": "departemental_admin",
/// "departement": "69"}`, `{"role": "ape", "structure": "<FINESS>"}`,
/// `{"role": "member", "structure": "<FINESS>", "profile": "gestionnaire"}`.
pub struct RoleSchema;

impl utoipa::PartialSchema for RoleSchema {
    fn schema() -> RefOr<Schema> {
        let text = |enumeration: Option<&[&str]>| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(enumeration.map(|values| values.to_vec()))
        };
        ObjectBuilder::new()
            .property(
                "role",
                text(Some(&[
                    "national_admin",
                    "regional_admin",
                    "departemental_admin",
                    "ape",
                    "member",
                ])),
            )
            .required("role")
            .property(
                "region",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .description(Some("INSEE region code")),
            )
            .property(
                "departement",
                text(None).description(Some("INSEE département code")),
            )
            .property("structure", FinessSchema::object())
            .property("profile", text(Some(&["gestionnaire", "lecteur"])))
            .into()
    }
}

impl utoipa::ToSchema for RoleSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Role")
    }
}

/// A FINESS number: 9 characters, the last one a Luhn key.
pub struct FinessSchema;

impl FinessSchema {
    fn object() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9][0-9AB][0-9]{7}$"))
            .description(Some("FINESS number (9 characters, Luhn key)"))
    }
}

impl utoipa::PartialSchema for FinessSchema {
    fn schema() -> RefOr<Schema> {
        FinessSchema::object().into()
    }
}

impl utoipa::ToSchema for FinessSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Finess")
    }
}
