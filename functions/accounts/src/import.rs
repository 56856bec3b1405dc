//! Imports by a national (or, for APE contacts, territorial) administrator: the FINESS
//! referential from the public Etalab extract, the principal/secondary links, and the APE
//! contacts the ARS send. Every import validates the whole file first, has a dry run, is
//! idempotent, and answers with a summary. A rejected line writes nothing; each accepted
//! line is written on its own, so a rejected one never leaves half-written data.

use crate::admin::person_of;
use crate::auth::parse_email;
use crate::{App, secrets, store_error};
use axum::response::Response;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tdb_api::{ApiError, Caller, json};
use tdb_domain::accounts::role_structure;
use tdb_domain::accounts::{Person, StructureRecord, TokenPurpose};
use tdb_domain::email::EmailAddress;
use tdb_domain::ports::{AccountStore, Lake, Mailer};
use tdb_domain::rights::{Action, Denied, Target};
use tdb_domain::{Category, Finess, RespondentKind};

/// A line of the file that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Rejected {
    pub line: u64,
    #[schema(value_type = Option<String>)]
    pub field: Option<&'static str>,
    pub reason: String,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub dry_run: bool,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Lines outside the import's scope: categories without a questionnaire, other record
    /// types of the extract.
    pub ignored: usize,
    /// The first [`MAX_REJECTIONS`] rejected lines, by line number.
    pub rejected: Vec<Rejected>,
    /// How many lines were rejected in all.
    pub rejected_total: usize,
    /// APE not activated yet whose activation link was e-mailed again.
    pub links_resent: usize,
}

/// Rejected lines listed in a summary: a wrong file can have 100,000 bad lines, and the
/// first thousand say enough.
pub const MAX_REJECTIONS: usize = 1000;

/// The lock every referential import takes: the stored referential is read, merged and
/// written back under it.
const REFERENTIAL_LOCK: &str = "referential";
/// How long a lock holds without being given back (a crashed import's lock expires).
const LOCK_LEASE: i64 = 15 * 60;
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(500);

impl Summary {
    /// Sorts the rejections by line and keeps the first [`MAX_REJECTIONS`], with the total.
    fn finish(mut self) -> Summary {
        self.rejected.sort_by_key(|r| r.line);
        self.rejected_total = self.rejected.len();
        self.rejected.truncate(MAX_REJECTIONS);
        self
    }
}

fn reject(line: u64, field: Option<&'static str>, reason: impl Into<String>) -> Rejected {
    Rejected {
        line,
        field,
        reason: reason.into(),
    }
}

/// Decodes an uploaded text file: UTF-8 when it is valid UTF-8 (a BOM is dropped),
/// otherwise Windows-1252, the superset of Latin-1 the FINESS extracts are written in.
pub fn decode(bytes: &[u8]) -> Cow<'_, str> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => {
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
        }
    }
}

/// A `;`-separated file: its first line, then the other lines with their numbers, and the
/// lines the reader could not make sense of, already as rejections.
struct Rows {
    first: Option<csv::StringRecord>,
    lines: Vec<(u64, csv::StringRecord)>,
    unreadable: Vec<Rejected>,
}

/// `quoting` reads `\"` as CSV quotes; the Etalab extract has none, and there a stray quote
/// must not swallow the lines that follow it.
fn read_rows(text: &str, quoting: bool) -> Rows {
    // The csv reader counts a CRLF as two line ends; the numbers given back must be the
    // ones a spreadsheet shows.
    let text = text.replace("\r\n", "\n");
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .flexible(true)
        .quoting(quoting)
        .from_reader(text.as_bytes());
    let mut rows = Rows {
        first: None,
        lines: Vec::new(),
        unreadable: Vec::new(),
    };
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) if line == 1 && rows.first.is_none() => rows.first = Some(record.clone()),
            Ok(true) => rows
                .lines
                .push((record.position().map_or(line, |p| p.line()), record.clone())),
            Err(e) => rows
                .unreadable
                .push(reject(line, None, format!("unreadable line: {e}"))),
        }
    }
    rows
}

/// One establishment (`structureet` line) of the FINESS referential, whatever its category:
/// the OG rule counts them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Establishment {
    pub finess: Finess,
    pub legal_entity: Finess,
    /// The FINESS category code (`categetab`).
    pub category: u16,
    pub name: String,
}

/// The establishments of an Etalab extract, with what was ignored and rejected.
#[derive(Debug, Default)]
pub struct Extract {
    pub establishments: Vec<Establishment>,
    /// Lines of other record types, and establishments of categories without a
    /// questionnaire (kept for the OG rule, not made structures).
    pub ignored: usize,
    pub rejected: Vec<Rejected>,
}

// Positions in a `structureet` row of `etalab-cs1100502-stock-<date>.csv`.
const NOFINESSET: usize = 1;
const NOFINESSEJ: usize = 2;
const RS: usize = 3;
const RSLONGUE: usize = 4;
const CATEGETAB: usize = 18;

/// Reads the public FINESS extract (`finess;etalab;<version>;<date>` then one line per
/// record): its establishments, each FINESS once.
pub fn parse_etalab(text: &str) -> Result<Extract, ApiError> {
    let rows = read_rows(text, false);
    let header_ok = rows
        .first
        .as_ref()
        .is_some_and(|r| r.get(0) == Some("finess") && r.get(1) == Some("etalab"));
    if !header_ok {
        return Err(ApiError::invalid(
            "line 1",
            "not an Etalab FINESS extract: the first line must be finess;etalab;<version>;<date>",
        ));
    }
    let mut extract = Extract {
        rejected: rows.unreadable,
        ..Extract::default()
    };
    let mut seen: HashMap<Finess, u64> = HashMap::new();
    for (line, row) in rows.lines {
        if row.get(0) != Some("structureet") {
            extract.ignored += 1;
            continue;
        }
        if row.len() <= CATEGETAB {
            extract.rejected.push(reject(
                line,
                None,
                format!(
                    "expected at least {} fields, found {}",
                    CATEGETAB + 1,
                    row.len()
                ),
            ));
            continue;
        }
        let parse = |i: usize, field: &'static str| {
            Finess::parse(&row[i]).map_err(|e| reject(line, Some(field), e.to_string()))
        };
        let (finess, legal_entity) = match parse(NOFINESSET, "nofinesset")
            .and_then(|et| Ok((et, parse(NOFINESSEJ, "nofinessej")?)))
        {
            Ok(pair) => pair,
            Err(r) => {
                extract.rejected.push(r);
                continue;
            }
        };
        let Ok(category) = row[CATEGETAB].trim().parse::<u16>() else {
            extract
                .rejected
                .push(reject(line, Some("categetab"), "not a category code"));
            continue;
        };
        if let Some(first) = seen.insert(finess, line) {
            extract.rejected.push(reject(
                line,
                Some("nofinesset"),
                format!("{finess} already appears on line {first}"),
            ));
            continue;
        }
        if Category::from_finess_code(category).is_none() {
            extract.ignored += 1;
        }
        let name = [&row[RSLONGUE], &row[RS]]
            .iter()
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
            .unwrap_or_default()
            .to_string();
        extract.establishments.push(Establishment {
            finess,
            legal_entity,
            category,
            name,
        });
    }
    extract.rejected.sort_by_key(|r| r.line);
    Ok(extract)
}

/// Where the stored referential lives in the lake bucket.
pub const REFERENTIAL_KEY: &str = "referential/finess-etablissements.csv";

/// The FINESS referential as the platform keeps it: every establishment any import brought,
/// the latest line of each FINESS winning. The OG rule is computed over all of it, never
/// over one uploaded file, so a file of one region cannot hide an OG's other sites.
///
/// Stored as `nofinesset;nofinessej;categetab;rs` lines, sorted by FINESS (DuckDB reads
/// it with `read_csv(..., delim=';')`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoredReferential {
    establishments: BTreeMap<Finess, Establishment>,
}

const REFERENTIAL_HEADER: &str = "nofinesset;nofinessej;categetab;rs";

impl StoredReferential {
    pub fn from_csv(bytes: &[u8]) -> Result<StoredReferential, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        let mut lines = text.lines();
        if lines.next() != Some(REFERENTIAL_HEADER) {
            return Err("the stored referential has no header".into());
        }
        let mut establishments = BTreeMap::new();
        for (i, line) in lines.enumerate() {
            let bad = |what: &str| format!("stored referential, line {}: {what}", i + 2);
            let mut fields = line.splitn(4, ';');
            let mut next = || fields.next().ok_or_else(|| bad("missing field"));
            let finess = Finess::parse(next()?).map_err(|e| bad(&e.to_string()))?;
            let legal_entity = Finess::parse(next()?).map_err(|e| bad(&e.to_string()))?;
            let category = next()?.parse().map_err(|_| bad("category"))?;
            let name = next()?.to_string();
            establishments.insert(
                finess,
                Establishment {
                    finess,
                    legal_entity,
                    category,
                    name,
                },
            );
        }
        Ok(StoredReferential { establishments })
    }

    pub fn to_csv(&self) -> Vec<u8> {
        let mut out = String::with_capacity(64 * (self.establishments.len() + 1));
        out.push_str(REFERENTIAL_HEADER);
        out.push('\n');
        for e in self.establishments.values() {
            // Names come from the extract, read without quoting: they hold no `;` or
            // line end.
            out.push_str(&format!(
                "{};{};{};{}\n",
                e.finess, e.legal_entity, e.category, e.name
            ));
        }
        out.into_bytes()
    }

    pub fn len(&self) -> usize {
        self.establishments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.establishments.is_empty()
    }

    /// Takes a file's establishments in; returns the legal entities whose set of
    /// establishments may have changed: those of the file's lines, and those an
    /// establishment of the file belonged to before.
    pub fn merge(&mut self, establishments: Vec<Establishment>) -> BTreeSet<Finess> {
        let mut touched = BTreeSet::new();
        for e in establishments {
            touched.insert(e.legal_entity);
            if let Some(old) = self.establishments.insert(e.finess, e) {
                touched.insert(old.legal_entity);
            }
        }
        touched
    }

    /// The structures of these legal entities under the OG rule (a legal entity managing at
    /// least two FINESS of any activity is an OG): the establishments in scope, and one OG
    /// structure per such legal entity that manages one of them.
    pub fn structures_of(&self, legal_entities: &BTreeSet<Finess>) -> Vec<StructureRecord> {
        let mut managed: HashMap<Finess, u32> = HashMap::new();
        for e in self.establishments.values() {
            *managed.entry(e.legal_entity).or_default() += 1;
        }
        let is_og = |ej: &Finess| managed.get(ej).copied().unwrap_or(0) >= 2;
        let mut ogs = BTreeMap::new();
        let mut structures = Vec::new();
        for e in self.establishments.values() {
            if !legal_entities.contains(&e.legal_entity) {
                continue;
            }
            let Some(category) = Category::from_finess_code(e.category) else {
                continue;
            };
            let og = is_og(&e.legal_entity).then_some(e.legal_entity);
            if let Some(og) = og {
                ogs.entry(og).or_insert_with(|| StructureRecord {
                    finess: og,
                    kind: RespondentKind::Og,
                    // The establishment extract does not carry legal entities' names.
                    name: format!("Organisme gestionnaire {}", og.display()),
                    legal_entity: og,
                    og: None,
                    principal: None,
                    ape: None,
                });
            }
            structures.push(StructureRecord {
                finess: e.finess,
                kind: RespondentKind::Esms(category),
                name: e.name.clone(),
                legal_entity: e.legal_entity,
                og,
                principal: None,
                ape: None,
            });
        }
        structures.extend(ogs.into_values());
        structures
    }
}

/// Checks the first line of a CSV file against the expected column names.
fn expect_header(rows: &Rows, columns: &[&str]) -> Result<(), ApiError> {
    let ok = rows.first.as_ref().is_some_and(|r| {
        r.len() == columns.len()
            && r.iter()
                .zip(columns)
                .all(|(a, b)| a.trim().eq_ignore_ascii_case(b))
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "line 1",
            format!("the first line must be the header {}", columns.join(";")),
        ))
    }
}

fn cell(row: &csv::StringRecord, i: usize) -> &str {
    row.get(i).unwrap_or_default().trim()
}

impl<S: AccountStore, M: Mailer, L: Lake> App<S, M, L> {
    pub(crate) async fn import_referential(
        &self,
        caller: &Caller,
        file: &[u8],
        dry_run: bool,
    ) -> Result<Response, ApiError> {
        caller.authorize(Action::ImportReferential, &Target::National)?;
        let extract = parse_etalab(&decode(file))?;
        let owner = secrets::new_token();
        let referential = self.referential();
        let summary = referential
            .with_lock(
                &owner,
                self.settings.import_lock_wait,
                referential.apply(extract, dry_run),
            )
            .await?
            .ok_or_else(|| {
                ApiError::conflict(
                    "import_running",
                    "another referential import is running; try again when it is done",
                )
            })??;
        tracing::info!(by = %caller.account, dry_run, created = summary.created, updated = summary.updated,
            unchanged = summary.unchanged, rejected = summary.rejected_total, "referential import");
        Ok(json(200, &summary))
    }

    fn referential(&self) -> ReferentialWork<'_, S, L> {
        ReferentialWork {
            store: &self.store,
            lake: &self.lake,
            clock: &self.clock,
        }
    }
}

/// What imports of the referential share, the direct ones and the uploaded ones: the lock
/// that serialises them, and the merge of a file into the stored referential.
pub(crate) struct ReferentialWork<'a, S, L> {
    pub store: &'a S,
    pub lake: &'a L,
    pub clock: &'a crate::Clock,
}

impl<S: AccountStore, L: Lake> ReferentialWork<'_, S, L> {
    /// Runs `work` while holding the referential lock, waiting for it at most `wait`;
    /// `None` if another import kept it that long. The lock is given back however `work`
    /// ends.
    pub(crate) async fn with_lock<T>(
        &self,
        owner: &str,
        wait: std::time::Duration,
        work: impl std::future::Future<Output = T>,
    ) -> Result<Option<T>, ApiError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let now = (self.clock)();
            if self
                .store
                .lock(REFERENTIAL_LOCK, owner, now, now + LOCK_LEASE)
                .await
                .map_err(store_error)?
            {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
        let result = work.await;
        self.store
            .unlock(REFERENTIAL_LOCK, owner)
            .await
            .map_err(store_error)?;
        Ok(Some(result))
    }

    /// Merges an extract into the stored referential and brings the structures of every
    /// legal entity it touches up to date. Run under the referential lock. Idempotent: the
    /// same file twice leaves everything unchanged the second time.
    pub(crate) async fn apply(&self, extract: Extract, dry_run: bool) -> Result<Summary, ApiError> {
        let mut referential = match self.lake.get(REFERENTIAL_KEY).await.map_err(store_error)? {
            None => StoredReferential::default(),
            Some(bytes) => StoredReferential::from_csv(&bytes).map_err(|e| {
                tracing::error!(error = %e, "stored referential unreadable");
                ApiError::internal()
            })?,
        };
        let before = referential.clone();
        let touched = referential.merge(extract.establishments);
        let structures = referential.structures_of(&touched);
        let finess: Vec<Finess> = structures.iter().map(|s| s.finess).collect();
        let existing: HashMap<Finess, StructureRecord> = self
            .store
            .structures(&finess)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|s| (s.finess, s))
            .collect();
        let mut summary = Summary {
            dry_run,
            ignored: extract.ignored,
            rejected: extract.rejected,
            ..Summary::default()
        };
        let mut created = Vec::new();
        let mut updated = Vec::new();
        for structure in structures {
            match existing.get(&structure.finess) {
                None => created.push(structure),
                Some(old) => {
                    // Principal/secondary links come from their own import: keep them.
                    let merged = StructureRecord {
                        principal: old.principal,
                        ..structure
                    };
                    if merged.same_referential_data(old) {
                        summary.unchanged += 1;
                    } else {
                        updated.push(merged);
                    }
                }
            }
        }
        summary.created = created.len();
        summary.updated = updated.len();
        if !dry_run {
            self.store
                .create_structures(&created)
                .await
                .map_err(store_error)?;
            for structure in &updated {
                self.store
                    .update_structure(structure)
                    .await
                    .map_err(store_error)?;
            }
            // Last: if anything above failed, the next import redoes it.
            if referential != before {
                self.lake
                    .put(REFERENTIAL_KEY, referential.to_csv())
                    .await
                    .map_err(store_error)?;
            }
        }
        Ok(summary.finish())
    }
}

impl<S: AccountStore, M: Mailer, L: Lake> App<S, M, L> {
    pub(crate) async fn import_secondaries(
        &self,
        caller: &Caller,
        file: &[u8],
        dry_run: bool,
    ) -> Result<Response, ApiError> {
        caller.authorize(Action::ImportReferential, &Target::National)?;
        let text = decode(file);
        let rows = read_rows(&text, true);
        expect_header(&rows, &["finess_secondaire", "finess_principal"])?;
        let mut summary = Summary {
            dry_run,
            rejected: rows.unreadable,
            ..Summary::default()
        };
        let mut links: Vec<(u64, Finess, Finess)> = Vec::new();
        for (line, row) in rows.lines {
            let parsed = Finess::parse(cell(&row, 0))
                .map_err(|e| reject(line, Some("finess_secondaire"), e.to_string()))
                .and_then(|s| {
                    Finess::parse(cell(&row, 1))
                        .map(|p| (s, p))
                        .map_err(|e| reject(line, Some("finess_principal"), e.to_string()))
                });
            match parsed {
                Ok((s, p)) => links.push((line, s, p)),
                Err(r) => summary.rejected.push(r),
            }
        }
        let all: Vec<Finess> = links.iter().flat_map(|(_, s, p)| [*s, *p]).collect();
        let known: HashMap<Finess, StructureRecord> = self
            .store
            .structures(&all)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|s| (s.finess, s))
            .collect();
        let secondaries: HashMap<Finess, u64> = links.iter().map(|(l, s, _)| (*s, *l)).collect();
        let principals: HashMap<Finess, u64> = links.iter().map(|(l, _, p)| (*p, *l)).collect();
        for (line, s, p) in links {
            let check = || -> Result<StructureRecord, Rejected> {
                let secondary = known.get(&s).ok_or_else(|| {
                    reject(line, Some("finess_secondaire"), "not in the referential")
                })?;
                let principal = known.get(&p).ok_or_else(|| {
                    reject(line, Some("finess_principal"), "not in the referential")
                })?;
                if s == p {
                    return Err(reject(
                        line,
                        Some("finess_principal"),
                        "same as the secondary",
                    ));
                }
                if !matches!(secondary.kind, RespondentKind::Esms(_))
                    || !matches!(principal.kind, RespondentKind::Esms(_))
                {
                    return Err(reject(line, None, "both must be establishments, not an OG"));
                }
                if secondary.legal_entity != principal.legal_entity {
                    return Err(reject(
                        line,
                        Some("finess_principal"),
                        "a principal and its secondaries share one legal entity",
                    ));
                }
                if principal.principal.is_some() || secondaries.contains_key(&p) {
                    return Err(reject(
                        line,
                        Some("finess_principal"),
                        "is itself a secondary",
                    ));
                }
                if principals.contains_key(&s) {
                    return Err(reject(
                        line,
                        Some("finess_secondaire"),
                        "is a principal on another line",
                    ));
                }
                if secondary.ape.is_some() {
                    return Err(reject(
                        line,
                        Some("finess_secondaire"),
                        "has an APE: remove it before making the structure secondary",
                    ));
                }
                Ok(secondary.clone())
            };
            match check() {
                Err(r) => summary.rejected.push(r),
                Ok(secondary) if secondary.principal == Some(p) => summary.unchanged += 1,
                Ok(secondary) => {
                    if secondary.principal.is_some() {
                        summary.updated += 1;
                    } else {
                        summary.created += 1;
                    }
                    if !dry_run {
                        let linked = StructureRecord {
                            principal: Some(p),
                            ..secondary
                        };
                        self.store
                            .update_structure(&linked)
                            .await
                            .map_err(store_error)?;
                    }
                }
            }
        }
        Ok(json(200, &summary.finish()))
    }

    pub(crate) async fn import_ape_contacts(
        &self,
        caller: &Caller,
        file: &[u8],
        dry_run: bool,
    ) -> Result<Response, ApiError> {
        // Only administrators import contacts; anyone else is refused before the file is read.
        if !caller.roles.iter().any(|r| role_structure(r).is_none()) {
            return Err(ApiError::forbidden(Denied::ActionNotAllowed));
        }
        let text = decode(file);
        let rows = read_rows(&text, true);
        expect_header(&rows, &["finess", "nom", "prenom", "telephone", "email"])?;
        let mut summary = Summary {
            dry_run,
            rejected: rows.unreadable,
            ..Summary::default()
        };
        let mut contacts: Vec<(u64, Finess, EmailAddress, Person)> = Vec::new();
        let mut seen: HashMap<Finess, u64> = HashMap::new();
        for (line, row) in rows.lines {
            let parsed = (|| {
                let f = Finess::parse(cell(&row, 0))
                    .map_err(|e| reject(line, Some("finess"), e.to_string()))?;
                let person =
                    person_of(cell(&row, 1), cell(&row, 2), Some(cell(&row, 3))).map_err(|e| {
                        let field = match e.field.as_deref() {
                            Some("last_name") => "nom",
                            Some("first_name") => "prenom",
                            _ => "telephone",
                        };
                        reject(line, Some(field), e.message)
                    })?;
                let email = parse_email("email", cell(&row, 4))
                    .map_err(|e| reject(line, Some("email"), e.message))?;
                if let Some(first) = seen.insert(f, line) {
                    return Err(reject(
                        line,
                        Some("finess"),
                        format!("already on line {first}"),
                    ));
                }
                Ok((line, f, email, person))
            })();
            match parsed {
                Ok(c) => contacts.push(c),
                Err(r) => summary.rejected.push(r),
            }
        }
        let finess: Vec<Finess> = contacts.iter().map(|c| c.1).collect();
        let structures: HashMap<Finess, StructureRecord> = self
            .store
            .structures(&finess)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|s| (s.finess, s))
            .collect();
        let ape_ids: Vec<_> = structures.values().filter_map(|s| s.ape.clone()).collect();
        let apes = self.store.accounts(&ape_ids).await.map_err(store_error)?;
        for (line, f, email, person) in contacts {
            let Some(structure) = structures.get(&f) else {
                summary
                    .rejected
                    .push(reject(line, Some("finess"), "not in the referential"));
                continue;
            };
            if let Err(e) =
                caller.authorize(Action::ManageApe, &Target::Structure(structure.target()))
            {
                summary
                    .rejected
                    .push(reject(line, Some("finess"), e.message));
                continue;
            }
            if structure.principal.is_some() {
                summary.rejected.push(reject(
                    line,
                    Some("finess"),
                    "a secondary establishment has no APE",
                ));
                continue;
            }
            let current = structure
                .ape
                .as_ref()
                .and_then(|id| apes.iter().find(|a| &a.id == id));
            match current {
                Some(a) if a.email == email && a.person == person => {
                    summary.unchanged += 1;
                    // Not activated yet: the link may have been lost; sent again after the
                    // cooldown.
                    if !dry_run && !a.is_active() {
                        match self
                            .send_link(a, TokenPurpose::Activation, Some(structure))
                            .await
                        {
                            Ok(true) => summary.links_resent += 1,
                            Ok(false) => {}
                            Err(e) => summary
                                .rejected
                                .push(reject(line, Some("email"), e.message)),
                        }
                    }
                    continue;
                }
                Some(_) => summary.updated += 1,
                None => summary.created += 1,
            }
            if !dry_run && let Err(e) = self.appoint_ape(caller, structure, &email, person).await {
                match current {
                    Some(_) => summary.updated -= 1,
                    None => summary.created -= 1,
                }
                summary.rejected.push(reject(line, None, e.message));
            }
        }
        tracing::info!(by = %caller.account, dry_run, created = summary.created, updated = summary.updated,
            unchanged = summary.unchanged, rejected = summary.rejected.len(), "APE contacts import");
        Ok(json(200, &summary.finish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(first_eight: &str) -> Finess {
        Finess::with_key(first_eight).unwrap()
    }

    fn row(et: Finess, ej: Finess, name: &str, category: u16) -> String {
        let mut fields = vec![String::new(); 32];
        fields[0] = "structureet".into();
        fields[1] = et.to_string();
        fields[2] = ej.to_string();
        fields[3] = name.to_uppercase();
        fields[4] = name.into();
        fields[13] = et.departement().to_string();
        fields[18] = category.to_string();
        fields.join(";")
    }

    fn referential(lines: &[String]) -> (StoredReferential, BTreeSet<Finess>) {
        let file = ["finess;etalab;1;2025-01-02".to_string()]
            .iter()
            .chain(lines)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        let extract = parse_etalab(&file).unwrap();
        assert!(extract.rejected.is_empty(), "{:?}", extract.rejected);
        let mut stored = StoredReferential::default();
        let touched = stored.merge(extract.establishments);
        (stored, touched)
    }

    #[test]
    fn the_og_rule_counts_every_finess_and_keeps_only_categories_in_scope() {
        let (ccas, hospital) = (f("69000010"), f("69000020"));
        let file = [
            "finess;etalab;1;2025-01-02".to_string(),
            row(f("69100001"), ccas, "EHPAD du CCAS", 500),
            // The hospital manages one EHPAD and one out-of-scope site: it is an OG.
            row(f("69100002"), hospital, "EHPAD de l'hôpital", 500),
            row(f("69100003"), hospital, "Centre hospitalier", 355),
            "geolocalisation;691000029;1.0;2.0".into(),
        ]
        .join("\n");
        let extract = parse_etalab(&file).unwrap();
        assert!(extract.rejected.is_empty(), "{:?}", extract.rejected);
        assert_eq!(extract.ignored, 2, "the geolocation line and the hospital");
        assert_eq!(extract.establishments.len(), 3);
        let mut stored = StoredReferential::default();
        let touched = stored.merge(extract.establishments);
        let structures = stored.structures_of(&touched);
        let by: HashMap<_, _> = structures.iter().map(|s| (s.finess, s)).collect();
        assert_eq!(by.len(), 3);
        assert_eq!(
            by[&f("69100001")].og,
            None,
            "a CCAS with one EHPAD is not an OG"
        );
        assert_eq!(by[&f("69100002")].og, Some(hospital));
        assert_eq!(by[&hospital].kind, RespondentKind::Og);
        assert_eq!(by[&f("69100002")].name, "EHPAD de l'hôpital");
    }

    #[test]
    fn the_og_rule_spans_files_and_follows_a_site_that_changes_hands() {
        let (a, b) = (f("69000010"), f("69000020"));
        let (mut stored, _) = referential(&[row(f("69100001"), a, "EHPAD 1", 500)]);
        // A second file, of another département, brings A's second site: A becomes an OG
        // and its first EHPAD, not in this file, is brought up to date.
        let touched = stored.merge(
            referential(&[row(f("38100002"), a, "Centre hospitalier", 355)])
                .0
                .establishments
                .into_values()
                .collect(),
        );
        let ehpad = stored
            .structures_of(&touched)
            .into_iter()
            .find(|s| s.finess == f("69100001"))
            .unwrap();
        assert_eq!(ehpad.og, Some(a));
        // The hospital passes to B: A no longer manages two FINESS.
        let touched = stored.merge(vec![Establishment {
            finess: f("38100002"),
            legal_entity: b,
            category: 355,
            name: "Centre hospitalier".into(),
        }]);
        assert!(touched.contains(&a) && touched.contains(&b));
        let ehpad = stored
            .structures_of(&touched)
            .into_iter()
            .find(|s| s.finess == f("69100001"))
            .unwrap();
        assert_eq!(ehpad.og, None);
        // What is stored reads back the same.
        assert_eq!(
            StoredReferential::from_csv(&stored.to_csv()).unwrap(),
            stored
        );
    }

    #[test]
    fn bad_lines_are_rejected_with_their_number_and_field() {
        let ej = f("69000010");
        let good = f("69100003").to_string();
        let last = good.as_bytes()[8] - b'0';
        let wrong_key = format!("{}{}", &good[..8], (last + 1) % 10);
        let file = [
            "finess;etalab;1;2025-01-02".to_string(),
            row(f("69100002"), ej, "EHPAD A", 500),
            row(f("69100002"), ej, "EHPAD A bis", 500),
            row(f("69100003"), ej, "EHPAD B", 500).replacen(&good, &wrong_key, 1),
            "structureet;69100004".into(),
        ]
        .join("\r\n");
        let extract = parse_etalab(&file).unwrap();
        let got: Vec<_> = extract.rejected.iter().map(|r| (r.line, r.field)).collect();
        assert_eq!(
            got,
            [(3, Some("nofinesset")), (4, Some("nofinesset")), (5, None)]
        );
        assert!(
            extract.rejected[1].reason.contains("key"),
            "{}",
            extract.rejected[1].reason
        );
        assert!(parse_etalab("nofinesset;nofinessej\n").is_err());
    }

    #[test]
    fn latin1_files_are_read_as_well_as_utf8() {
        let latin1: Vec<u8> = b"EHPAD Les Ch\xeanes".to_vec();
        assert_eq!(decode(&latin1), "EHPAD Les Chênes");
        assert_eq!(
            decode("\u{feff}EHPAD Les Chênes".as_bytes()),
            "EHPAD Les Chênes"
        );
    }
}
