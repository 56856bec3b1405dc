//! The reminders' e-mails, in French, rendered by a template engine (minijinja) from the
//! templates in `templates/`: the HTML one escapes every value (names come from the
//! referential, never trusted as markup).

use minijinja::{Environment, context};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use tdb_domain::accounts::{Person, StructureRecord};
use tdb_domain::email::EmailAddress;
use tdb_domain::ports::Email;
use tdb_domain::progress::{Counts, ProgressKey, Summary};
use tdb_domain::reminders::Occasion;
use tdb_domain::rights::Territory;

fn templates() -> &'static Environment<'static> {
    static TEMPLATES: OnceLock<Environment<'static>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let mut env = Environment::new();
        // Names ending in .html are escaped, the others are plain text.
        for (name, source) in [
            (
                "structure.subject.txt",
                include_str!("../templates/structure.subject.txt"),
            ),
            ("structure.txt", include_str!("../templates/structure.txt")),
            (
                "structure.html",
                include_str!("../templates/structure.html"),
            ),
            (
                "og.subject.txt",
                include_str!("../templates/og.subject.txt"),
            ),
            ("og.txt", include_str!("../templates/og.txt")),
            ("og.html", include_str!("../templates/og.html")),
            (
                "territory.subject.txt",
                include_str!("../templates/territory.subject.txt"),
            ),
            ("territory.txt", include_str!("../templates/territory.txt")),
            (
                "territory.html",
                include_str!("../templates/territory.html"),
            ),
        ] {
            env.add_template(name, source)
                .expect("the shipped templates parse");
        }
        env
    })
}

/// What a structure's reminder says.
pub struct StructureReminder<'a> {
    pub structure: &'a StructureRecord,
    pub occasion: &'a Occasion,
    pub campaign: u16,
    /// The part's label when the questionnaire has several, and its deadline as
    /// `dd/mm/yyyy`.
    pub part_label: Option<&'a str>,
    pub deadline: String,
    /// Days left until the deadline (0 or less: past).
    pub days_left: i64,
    pub fill_rate: f64,
    /// Where the questionnaire opens.
    pub link: String,
}

/// The reminder to one person of a structure.
pub fn structure(
    to: &EmailAddress,
    person: &Person,
    r: &StructureReminder<'_>,
) -> Result<Email, minijinja::Error> {
    let (occasion, days) = match r.occasion {
        Occasion::Opening => ("opening", 0),
        Occasion::BeforeDeadline { days, .. } => ("before", i64::from(*days)),
        // Asked now: before or after the deadline, as the day falls.
        Occasion::OnDemand if r.days_left > 0 => ("before", r.days_left),
        _ => ("after", 0),
    };
    let values = context! {
        occasion,
        days,
        campaign => r.campaign,
        data_year => r.campaign - 1,
        first_name => person.first_name,
        last_name => person.last_name,
        name => r.structure.name,
        finess => r.structure.finess.display().to_string(),
        part => r.part_label.map(str::to_lowercase),
        deadline => r.deadline,
        fill => (r.fill_rate * 100.0).round() as i64,
        link => r.link,
    };
    let render = |name: &str| templates().get_template(name)?.render(&values);
    Ok(Email {
        to: to.clone(),
        subject: render("structure.subject.txt")?.trim().to_string(),
        text: render("structure.txt")?,
        html: Some(render("structure.html")?),
    })
}

/// One late ESMS in its OG's digest.
#[derive(serde::Serialize)]
pub struct LateStructure {
    pub name: String,
    pub finess: String,
    /// Percent.
    pub fill: i64,
    pub blocking: u32,
    /// `dd/mm/yyyy`.
    pub deadline: String,
}

/// The digest to one person of an OG: its late ESMS in one message.
pub fn og_digest(
    to: &EmailAddress,
    person: &Person,
    og: &StructureRecord,
    campaign: u16,
    late: &[LateStructure],
    link: &str,
) -> Result<Email, minijinja::Error> {
    let values = context! {
        first_name => person.first_name,
        last_name => person.last_name,
        og_name => og.name,
        campaign,
        late,
        link,
    };
    let render = |name: &str| templates().get_template(name)?.render(&values);
    Ok(Email {
        to: to.clone(),
        subject: render("og.subject.txt")?.trim().to_string(),
        text: render("og.txt")?,
        html: Some(render("og.html")?),
    })
}

/// One line of a territory's digest.
#[derive(serde::Serialize)]
pub struct DigestRow {
    pub group: String,
    pub expected: i64,
    pub started: i64,
    pub started_pct: i64,
    pub validated: i64,
    pub validated_pct: i64,
    pub on_time: i64,
    pub fill_pct: i64,
}

impl DigestRow {
    fn of(group: String, c: &Counts) -> DigestRow {
        let pct = |n: i64| (100.0 * c.share(n)).round() as i64;
        DigestRow {
            group,
            expected: c.expected,
            started: c.started(),
            started_pct: pct(c.started()),
            validated: c.all_validated(),
            validated_pct: pct(c.all_validated()),
            on_time: c.on_time,
            fill_pct: (c.mean_fill_rate() * 100.0).round() as i64,
        }
    }
}

/// What a territory's weekly digest says.
pub struct TerritoryDigest {
    pub territory: String,
    pub campaign: u16,
    pub total: DigestRow,
    pub categories: Vec<DigestRow>,
    pub departements: Vec<DigestRow>,
    /// The first 30 structures without an APE, and how many there are.
    pub unreachable: Vec<String>,
    pub unreachable_total: usize,
}

impl TerritoryDigest {
    pub fn of(
        territory: Territory,
        campaign: u16,
        counts: &[(ProgressKey, Counts)],
        unreachable: &[String],
    ) -> TerritoryDigest {
        let summary = Summary::of(counts);
        let rows = |m: &BTreeMap<&'static str, Counts>| {
            m.iter()
                .map(|(g, c)| DigestRow::of(g.to_string(), c))
                .collect::<Vec<_>>()
        };
        TerritoryDigest {
            territory: match territory {
                Territory::Region(r) => format!("région {}", r.name()),
                Territory::Departement(d) => format!("département {} {}", d.insee_code(), d.name()),
            },
            campaign,
            total: DigestRow::of("total".into(), &summary.total),
            categories: rows(&summary.by_kind),
            departements: match territory {
                Territory::Region(_) => rows(&summary.by_departement),
                Territory::Departement(_) => vec![],
            },
            unreachable: unreachable.iter().take(30).cloned().collect(),
            unreachable_total: unreachable.len(),
        }
    }
}

/// The weekly digest to one administrator of a territory.
pub fn territory_digest(
    to: &EmailAddress,
    person: &Person,
    digest: &TerritoryDigest,
) -> Result<Email, minijinja::Error> {
    let values = context! {
        first_name => person.first_name,
        last_name => person.last_name,
        territory => digest.territory,
        campaign => digest.campaign,
        total => digest.total,
        categories => digest.categories,
        departements => digest.departements,
        unreachable => digest.unreachable,
        unreachable_total => digest.unreachable_total,
    };
    let render = |name: &str| templates().get_template(name)?.render(&values);
    Ok(Email {
        to: to.clone(),
        subject: render("territory.subject.txt")?.trim().to_string(),
        text: render("territory.txt")?,
        html: Some(render("territory.html")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tdb_domain::{Finess, RespondentKind};

    #[test]
    fn values_are_escaped_in_html_and_plain_in_text() {
        let finess = Finess::with_key("69000100").unwrap();
        let record = StructureRecord {
            finess,
            kind: RespondentKind::Esms(tdb_domain::Category::Ehpad),
            name: "Les <Tilleuls> & Cie".into(),
            legal_entity: finess,
            og: None,
            principal: None,
            ape: None,
        };
        let occasion = Occasion::BeforeDeadline {
            part: "generique".into(),
            days: 15,
        };
        let email = structure(
            &EmailAddress::parse("a@exemple.fr").unwrap(),
            &Person {
                last_name: "Martin".into(),
                first_name: "Claire".into(),
                phone: None,
            },
            &StructureReminder {
                structure: &record,
                occasion: &occasion,
                campaign: 2025,
                part_label: None,
                deadline: "30/06/2025".into(),
                days_left: 15,
                fill_rate: 0.42,
                link: "https://tdb.example/questionnaires/2025/690001003".into(),
            },
        )
        .unwrap();
        assert_eq!(
            email.subject,
            "Tableau de bord de la performance ESMS : plus que 15 jours pour Les <Tilleuls> & Cie"
        );
        assert!(
            email
                .text
                .contains("Il reste 15 jours pour saisir et valider les données de Les <Tilleuls> & Cie (FINESS"),
            "{}",
            email.text
        );
        assert!(email.text.contains("rempli à 42 %"));
        let html = email.html.unwrap();
        assert!(html.contains("Les &lt;Tilleuls&gt; &amp; Cie"), "{html}");
        assert!(!html.contains("<Tilleuls>"));
    }
}
