//! Administering accounts: territorial administrators and OG APE manage the APE of
//! structures; an APE manages the Gestionnaire and Lecteur users of its structure.

use crate::auth::{parse_email, parse_finess};
use crate::{App, SaveOutcome, store_error};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tdb_api::{ApiError, Caller, FinessSchema, RoleSchema, json, no_content};
use tdb_domain::accounts::{
    Account, AccountId, AccountRecord, Person, StructureRecord, TokenPurpose, role_structure,
};
use tdb_domain::email::EmailAddress;
use tdb_domain::ports::{AccountStore, Lake, Mailer};
use tdb_domain::rights::{Action, Profile, Role, Target};
use tdb_domain::{Departement, Finess, Region, RespondentKind};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PersonBody {
    #[schema(format = Email)]
    email: String,
    last_name: String,
    first_name: String,
    #[serde(default)]
    phone: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUserBody {
    #[schema(format = Email)]
    email: String,
    last_name: String,
    first_name: String,
    #[serde(default)]
    phone: Option<String>,
    /// `gestionnaire` or `lecteur`.
    profile: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserChangeBody {
    /// `gestionnaire` or `lecteur`. A person's name and phone are theirs to change
    /// (`PATCH /accounts/me`), not the APE's.
    profile: String,
}

/// A person's own details; absent fields are kept.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OwnDetailsBody {
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    /// An empty string removes the phone number.
    #[serde(default)]
    phone: Option<String>,
}

fn name(field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > 100 || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, "at most 100 printable characters"));
    }
    // Names go into official e-mails: no invisible or direction-changing characters (they
    // can make a text read differently from what it is), and no web addresses.
    if value.chars().any(is_invisible) {
        return Err(ApiError::invalid(
            field,
            "invisible or text-direction characters are not allowed",
        ));
    }
    let lower = value.to_lowercase();
    if ["://", "www.", "http", ".fr/", ".com", ".org", ".net"]
        .iter()
        .any(|m| lower.contains(m))
    {
        return Err(ApiError::invalid(field, "a name, not a web address"));
    }
    Ok(value.to_string())
}

/// Zero-width and formatting characters, and the bidirectional overrides and isolates.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{E0000}'..='\u{E007F}')
}

fn phone(value: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let allowed = value
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '.' | '-' | '+' | '(' | ')'));
    if !allowed || !(6..=15).contains(&digits) {
        return Err(ApiError::invalid(
            "phone",
            "a phone number of 6 to 15 digits",
        ));
    }
    Ok(Some(value.to_string()))
}

pub(crate) fn person_of(
    last_name: &str,
    first_name: &str,
    phone_number: Option<&str>,
) -> Result<Person, ApiError> {
    Ok(Person {
        last_name: name("last_name", last_name)?,
        first_name: name("first_name", first_name)?,
        phone: phone(phone_number)?,
    })
}

fn profile(value: &str) -> Result<Profile, ApiError> {
    match value {
        "gestionnaire" => Ok(Profile::Gestionnaire),
        "lecteur" => Ok(Profile::Lecteur),
        other => Err(ApiError::invalid(
            "profile",
            format!("unknown profile `{other}`: expected gestionnaire or lecteur"),
        )),
    }
}

/// A user of a structure, as its APE and administrators see it.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserView {
    #[schema(value_type = String)]
    id: AccountId,
    #[schema(value_type = String)]
    email: EmailAddress,
    last_name: String,
    first_name: String,
    phone: Option<String>,
    #[schema(value_type = RoleSchema)]
    role: Role,
    /// Whether the person has chosen a password.
    active: bool,
}

impl UserView {
    fn of(account: &Account, role: &Role) -> UserView {
        UserView {
            id: account.id.clone(),
            email: account.email.clone(),
            last_name: account.person.last_name.clone(),
            first_name: account.person.first_name.clone(),
            phone: account.person.phone.clone(),
            role: *role,
            active: account.is_active(),
        }
    }
}

/// A structure of the account platform, with its APE.
#[derive(Serialize, ToSchema)]
pub(crate) struct StructureView {
    #[schema(value_type = FinessSchema)]
    finess: Finess,
    name: String,
    /// `og`, or `{"esms": "<category>"}`.
    #[schema(value_type = Value)]
    kind: RespondentKind,
    /// INSEE département code.
    departement: String,
    #[schema(value_type = FinessSchema)]
    legal_entity: Finess,
    #[schema(value_type = Option<FinessSchema>)]
    og: Option<Finess>,
    #[schema(value_type = Option<FinessSchema>)]
    principal: Option<Finess>,
    ape: Option<UserView>,
}

impl StructureView {
    fn of(s: &StructureRecord, ape: Option<&Account>) -> StructureView {
        StructureView {
            finess: s.finess,
            name: s.name.clone(),
            kind: s.kind,
            departement: s.departement().insee_code().to_string(),
            legal_entity: s.legal_entity,
            og: s.og,
            principal: s.principal,
            ape: ape.map(|a| {
                UserView::of(
                    a,
                    &Role::Ape {
                        structure: s.finess,
                    },
                )
            }),
        }
    }
}

/// A page of structures.
#[derive(Serialize, ToSchema)]
pub(crate) struct StructurePage {
    /// Structures matching, all pages together.
    total: usize,
    page: usize,
    per_page: usize,
    structures: Vec<StructureView>,
}

/// The users of a structure.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserList {
    users: Vec<UserView>,
}

/// The APE a structure now has.
#[derive(Serialize, ToSchema)]
pub(crate) struct ApeSet {
    #[schema(value_type = FinessSchema)]
    structure: Finess,
    #[schema(value_type = String)]
    ape: AccountId,
}

/// A user given a profile on a structure.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserAdded {
    #[schema(value_type = String)]
    id: AccountId,
    #[schema(value_type = RoleSchema)]
    role: Role,
}

/// Which structures to list: exactly one of `departement`, `region` or `og`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StructureQuery {
    /// INSEE département code (`69`, `2A`, `971`).
    departement: Option<String>,
    /// INSEE region code (`84`).
    region: Option<String>,
    /// FINESS of an OG: the ESMS it manages.
    og: Option<String>,
    /// Part of a name, or the first digits of a FINESS.
    q: Option<String>,
    /// From 1.
    page: Option<String>,
    /// From 1 to 500 (100 by default).
    per_page: Option<String>,
}

/// An account cannot be both an administrator's and a structure's.
fn administrator_account() -> ApiError {
    ApiError::conflict(
        "administrator_account",
        "an administrator's account cannot hold a structure role, nor the reverse: use another address",
    )
}

/// Outcome of making someone the APE of a structure, or a user of it.
pub(crate) enum Enrolment {
    /// A new account was created and its activation link sent.
    Created(AccountId),
    /// An existing account received the role.
    Granted(AccountId),
    /// The person already held exactly this role; their details were brought up to date.
    Unchanged(AccountId),
}

impl<S: AccountStore, M: Mailer, L: Lake> App<S, M, L> {
    pub(crate) async fn load_structure(&self, finess: &str) -> Result<StructureRecord, ApiError> {
        let f = parse_finess("finess", finess)?;
        self.store
            .structures(&[f])
            .await
            .map_err(store_error)?
            .pop()
            .ok_or_else(|| ApiError::not_found("structure"))
    }

    /// Gives `role` on `structure` to the person with this e-mail, creating their account
    /// (and sending the activation link) if they have none. An account that never chose a
    /// password gets a new link.
    ///
    /// `existing` is the account of that e-mail, which the caller has already read.
    pub(crate) async fn enrol(
        &self,
        email: &EmailAddress,
        existing: Option<AccountRecord>,
        person: Person,
        role: Role,
        structure: &StructureRecord,
    ) -> Result<Enrolment, ApiError> {
        if let Some(record) = existing {
            // Separation of duties: administrators never enter or validate data.
            if record.roles.iter().any(|r| role_structure(r).is_none()) {
                return Err(administrator_account());
            }
            // The details a person stored are theirs: an APE typing the same address with
            // another name changes nothing of them.
            let account = record.account;
            if !record.roles.contains(&role) {
                self.store
                    .grant(&account.id, &role)
                    .await
                    .map_err(store_error)?;
            }
            // A person who never chose a password gets the link again (after a cooldown):
            // the first e-mail may have failed or been lost.
            if !account.is_active() {
                self.send_link(&account, TokenPurpose::Activation, Some(structure))
                    .await?;
            }
            return Ok(if record.roles.contains(&role) {
                Enrolment::Unchanged(account.id)
            } else {
                Enrolment::Granted(account.id)
            });
        }
        let account = self.new_account(email, person);
        self.store
            .create_account(&account, &role)
            .await
            .map_err(store_error)?;
        tracing::info!(account = %account.id, structure = %structure.finess, "account created");
        self.send_link(&account, TokenPurpose::Activation, Some(structure))
            .await?;
        Ok(Enrolment::Created(account.id))
    }

    /// Gives a national, regional (ARS) or departmental (CD) administrator role to the person
    /// with this e-mail, creating the account and e-mailing its activation link if needed.
    /// The operators' bootstrap (`tdb admin`): no API route creates administrators.
    pub async fn add_administrator(
        &self,
        email: &EmailAddress,
        person: Person,
        role: Role,
    ) -> Result<AccountId, ApiError> {
        if role_structure(&role).is_some() {
            return Err(ApiError::invalid(
                "role",
                "an administrator role: national, region or departement",
            ));
        }
        if let Some(record) = self
            .store
            .account_by_email(email)
            .await
            .map_err(store_error)?
        {
            if record.roles.iter().any(|r| role_structure(r).is_some()) {
                return Err(administrator_account());
            }
            self.store
                .grant(&record.account.id, &role)
                .await
                .map_err(store_error)?;
            return Ok(record.account.id);
        }
        let account = self.new_account(email, person);
        self.store
            .create_account(&account, &role)
            .await
            .map_err(store_error)?;
        self.send_link(&account, TokenPurpose::Activation, None)
            .await?;
        tracing::info!(account = %account.id, ?role, "administrator created");
        Ok(account.id)
    }

    /// An account with a fresh random id and no password yet.
    fn new_account(&self, email: &EmailAddress, person: Person) -> Account {
        Account::new(
            AccountId::from_random(crate::secrets::random_bytes()),
            email.clone(),
            person,
            self.now(),
        )
    }

    /// Makes the person the APE of `structure`, replacing the previous APE if another.
    pub(crate) async fn appoint_ape(
        &self,
        caller: &Caller,
        structure: &StructureRecord,
        email: &EmailAddress,
        person: Person,
    ) -> Result<Enrolment, ApiError> {
        if structure.principal.is_some() {
            return Err(ApiError::conflict(
                "secondary_structure",
                "a secondary establishment has no APE: its principal's APE acts for it",
            ));
        }
        let role = Role::Ape {
            structure: structure.finess,
        };
        let existing = self
            .store
            .account_by_email(email)
            .await
            .map_err(store_error)?;
        if existing
            .as_ref()
            .is_some_and(|r| r.account.id == caller.account)
        {
            return Err(ApiError::new(
                403,
                "self_appointment",
                "nobody appoints themselves APE: another administrator or the OG's APE does",
            ));
        }
        // Refused before the current APE is removed, so a refusal leaves the structure as it
        // was.
        if existing
            .as_ref()
            .is_some_and(|r| r.roles.iter().any(|role| role_structure(role).is_none()))
        {
            return Err(administrator_account());
        }
        if let Some(current) = &structure.ape
            && existing.as_ref().map(|r| &r.account.id) != Some(current)
        {
            self.store
                .revoke(current, &role)
                .await
                .map_err(store_error)?;
        }
        self.enrol(email, existing, person, role, structure).await
    }

    pub(crate) async fn list_structures(
        &self,
        caller: &Caller,
        query: &StructureQuery,
    ) -> Result<Response, ApiError> {
        let scopes = [&query.departement, &query.region, &query.og]
            .iter()
            .filter(|k| k.is_some())
            .count();
        if scopes != 1 {
            return Err(ApiError::invalid(
                "departement",
                "give exactly one of departement, region or og",
            ));
        }
        let mut structures = if let Some(code) = query.departement.as_deref() {
            let departement = Departement::from_code(code)
                .ok_or_else(|| ApiError::invalid("departement", "unknown département code"))?;
            caller.authorize(Action::FollowProgress, &Target::Departement { departement })?;
            self.store
                .structures_of_departement(departement)
                .await
                .map_err(store_error)?
        } else if let Some(code) = query.region.as_deref() {
            let region = code
                .parse()
                .ok()
                .and_then(Region::from_code)
                .ok_or_else(|| ApiError::invalid("region", "unknown region code"))?;
            caller.authorize(Action::FollowProgress, &Target::Region { region })?;
            let mut all = Vec::new();
            for departement in region.departements() {
                all.extend(
                    self.store
                        .structures_of_departement(departement)
                        .await
                        .map_err(store_error)?,
                );
            }
            all.sort_by_key(|s| (s.ape.is_some(), s.finess));
            all
        } else {
            let og = self
                .load_structure(query.og.as_deref().unwrap_or_default())
                .await?;
            let seat = caller.authorize(Action::FollowProgress, &Target::Structure(og.target()));
            // Each ESMS on its own: an OG's ESMS may lie outside the territory of its seat.
            let mut rows = self
                .store
                .structures_of_og(og.finess)
                .await
                .map_err(store_error)?;
            rows.retain(|s| {
                caller
                    .authorize(Action::FollowProgress, &Target::Structure(s.target()))
                    .is_ok()
            });
            if let Err(refused) = seat
                && rows.is_empty()
            {
                return Err(refused);
            }
            rows
        };
        // Secondaries have no APE: their principal's acts for them.
        structures.retain(|s| s.principal.is_none());
        if let Some(q) = query
            .q
            .as_deref()
            .map(str::to_lowercase)
            .filter(|q| !q.is_empty())
        {
            let digits: String = q.chars().filter(|c| !c.is_whitespace()).collect();
            structures.retain(|s| {
                s.name.to_lowercase().contains(&q) || s.finess.as_str().starts_with(&digits)
            });
        }
        let per_page: usize = match query.per_page.as_deref() {
            None => 100,
            Some(v) => v
                .parse()
                .ok()
                .filter(|n| (1..=500).contains(n))
                .ok_or_else(|| ApiError::invalid("per_page", "a number from 1 to 500"))?,
        };
        let page: usize = match query.page.as_deref() {
            None => 1,
            Some(v) => v
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| ApiError::invalid("page", "a page number from 1"))?,
        };
        let total = structures.len();
        let shown: Vec<_> = structures
            .into_iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .collect();
        let ape_ids: Vec<AccountId> = shown.iter().filter_map(|s| s.ape.clone()).collect();
        let apes = self.store.accounts(&ape_ids).await.map_err(store_error)?;
        let structures = shown
            .iter()
            .map(|s| {
                // The APE's contact details only to those who manage APE there (an ARS, a CD,
                // the OG's APE), not to every reader following progress.
                let manages = caller
                    .authorize(Action::ManageApe, &Target::Structure(s.target()))
                    .is_ok();
                let ape = s
                    .ape
                    .as_ref()
                    .filter(|_| manages)
                    .and_then(|id| apes.iter().find(|a| &a.id == id));
                StructureView::of(s, ape)
            })
            .collect();
        Ok(json(
            200,
            &StructurePage {
                total,
                page,
                per_page,
                structures,
            },
        ))
    }

    pub(crate) async fn structure(
        &self,
        caller: &Caller,
        finess: &str,
    ) -> Result<Response, ApiError> {
        let structure = self.load_structure(finess).await?;
        let target = Target::Structure(structure.target());
        caller.authorize(Action::Consult, &target)?;
        let ape = match &structure.ape {
            Some(id) => self
                .store
                .accounts(std::slice::from_ref(id))
                .await
                .map_err(store_error)?
                .pop(),
            None => None,
        };
        Ok(json(200, &StructureView::of(&structure, ape.as_ref())))
    }

    pub(crate) async fn put_ape(
        &self,
        caller: &Caller,
        finess: &str,
        body: PersonBody,
    ) -> Result<Response, ApiError> {
        let structure = self.load_structure(finess).await?;
        caller.authorize(Action::ManageApe, &Target::Structure(structure.target()))?;
        let email = parse_email("email", &body.email)?;
        let person = person_of(&body.last_name, &body.first_name, body.phone.as_deref())?;
        let outcome = self.appoint_ape(caller, &structure, &email, person).await?;
        let (status, id) = match outcome {
            Enrolment::Created(id) => (201, id),
            Enrolment::Granted(id) | Enrolment::Unchanged(id) => (200, id),
        };
        tracing::info!(by = %caller.account, structure = %structure.finess, ape = %id, "APE set");
        Ok(json(
            status,
            &ApeSet {
                structure: structure.finess,
                ape: id,
            },
        ))
    }

    pub(crate) async fn delete_ape(
        &self,
        caller: &Caller,
        finess: &str,
    ) -> Result<Response, ApiError> {
        let structure = self.load_structure(finess).await?;
        caller.authorize(Action::ManageApe, &Target::Structure(structure.target()))?;
        let ape = structure
            .ape
            .as_ref()
            .ok_or_else(|| ApiError::not_found("APE"))?;
        self.store
            .revoke(
                ape,
                &Role::Ape {
                    structure: structure.finess,
                },
            )
            .await
            .map_err(store_error)?;
        tracing::info!(by = %caller.account, structure = %structure.finess, "APE removed");
        Ok(no_content())
    }

    pub(crate) async fn users(&self, caller: &Caller, finess: &str) -> Result<Response, ApiError> {
        let structure = self.load_structure(finess).await?;
        caller.authorize(Action::ManageUsers, &Target::Structure(structure.target()))?;
        let members = self
            .store
            .members(structure.finess)
            .await
            .map_err(store_error)?;
        let users = members.iter().map(|(a, r)| UserView::of(a, r)).collect();
        Ok(json(200, &UserList { users }))
    }

    pub(crate) async fn create_user(
        &self,
        caller: &Caller,
        finess: &str,
        body: NewUserBody,
    ) -> Result<Response, ApiError> {
        let structure = self.load_structure(finess).await?;
        caller.authorize(Action::ManageUsers, &Target::Structure(structure.target()))?;
        let email = parse_email("email", &body.email)?;
        let person = person_of(&body.last_name, &body.first_name, body.phone.as_deref())?;
        let profile = profile(&body.profile)?;
        let existing = self
            .store
            .account_by_email(&email)
            .await
            .map_err(store_error)?;
        if existing.as_ref().is_some_and(|r| {
            r.roles
                .iter()
                .any(|role| role_structure(role) == Some(structure.finess))
        }) {
            return Err(ApiError::conflict(
                "already_member",
                "this person already has a profile on this structure; change it instead",
            ));
        }
        let role = Role::Member {
            structure: structure.finess,
            profile,
        };
        let id = match self
            .enrol(&email, existing, person, role, &structure)
            .await?
        {
            Enrolment::Created(id) | Enrolment::Granted(id) | Enrolment::Unchanged(id) => id,
        };
        tracing::info!(by = %caller.account, structure = %structure.finess, user = %id, "user added");
        Ok(json(201, &UserAdded { id, role }))
    }

    /// The member role `id` holds on the structure; APE are managed through `/ape`.
    async fn member_role(
        &self,
        structure: &StructureRecord,
        id: &str,
    ) -> Result<(Account, Role), ApiError> {
        let id = AccountId::parse(id).map_err(|e| ApiError::invalid("id", e.to_string()))?;
        let record = self
            .store
            .account(&id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ApiError::not_found("user"))?;
        let role = record
            .roles
            .iter()
            .find(|r| role_structure(r) == Some(structure.finess))
            .copied()
            .ok_or_else(|| ApiError::not_found("user"))?;
        if matches!(role, Role::Ape { .. }) {
            return Err(ApiError::conflict(
                "is_ape",
                "this user is the structure's APE: the ARS, the CD or the OG's APE manage it",
            ));
        }
        Ok((record.account, role))
    }

    pub(crate) async fn update_user(
        &self,
        caller: &Caller,
        finess: &str,
        id: &str,
        body: UserChangeBody,
    ) -> Result<Response, ApiError> {
        let structure = self.load_structure(finess).await?;
        caller.authorize(Action::ManageUsers, &Target::Structure(structure.target()))?;
        let (account, _) = self.member_role(&structure, id).await?;
        let role = Role::Member {
            structure: structure.finess,
            profile: profile(&body.profile)?,
        };
        self.store
            .grant(&account.id, &role)
            .await
            .map_err(store_error)?;
        tracing::info!(by = %caller.account, structure = %structure.finess, user = %account.id, "user changed");
        Ok(json(200, &UserView::of(&account, &role)))
    }

    /// A person changes their own name or phone number.
    pub(crate) async fn update_me(
        &self,
        caller: &Caller,
        body: OwnDetailsBody,
    ) -> Result<Response, ApiError> {
        let record = self.caller_record(caller).await?;
        let saved = self
            .save_account_with(record, |account| {
                let person = person_of(
                    body.last_name
                        .as_deref()
                        .unwrap_or(&account.person.last_name),
                    body.first_name
                        .as_deref()
                        .unwrap_or(&account.person.first_name),
                    body.phone.as_deref().or(account.person.phone.as_deref()),
                )?;
                Ok(Some(Account {
                    person,
                    ..account.clone()
                }))
            })
            .await?;
        match saved {
            SaveOutcome::Done(_) => self.me(caller).await,
            SaveOutcome::Gone => Err(ApiError::unauthorized(
                "invalid_token",
                "this account no longer exists",
            )),
            SaveOutcome::Declined | SaveOutcome::Contended => Err(ApiError::conflict(
                "concurrent_change",
                "the account changed during the request; try again",
            )),
        }
    }

    pub(crate) async fn delete_user(
        &self,
        caller: &Caller,
        finess: &str,
        id: &str,
    ) -> Result<Response, ApiError> {
        let structure = self.load_structure(finess).await?;
        caller.authorize(Action::ManageUsers, &Target::Structure(structure.target()))?;
        let (account, role) = self.member_role(&structure, id).await?;
        self.store
            .revoke(&account.id, &role)
            .await
            .map_err(store_error)?;
        tracing::info!(by = %caller.account, structure = %structure.finess, user = %account.id, "user removed");
        Ok(no_content())
    }
}
