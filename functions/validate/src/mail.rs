//! The e-mails the validate function sends, in French.

use tdb_domain::accounts::{Person, StructureRecord};
use tdb_domain::email::EmailAddress;
use tdb_domain::ports::Email;

/// A questionnaire reopened by the ARS or the CD, with their reason; `part` is the label
/// of the part reopened when the questionnaire has several.
pub fn reopening(
    to: &EmailAddress,
    person: &Person,
    structure: &StructureRecord,
    part: Option<&str>,
    reason: &str,
) -> Email {
    let part = part.map_or(String::new(), |label| format!(", partie « {label} »"));
    Email {
        to: to.clone(),
        subject: format!(
            "Tableau de bord de la performance ESMS : questionnaire de {} rouvert",
            structure.name
        ),
        text: format!(
            "Bonjour {first} {last},\n\n\
             Le questionnaire du tableau de bord de {name} (FINESS {finess}){part} a été \
             rouvert pour correction lors de la fiabilisation des données.\n\n\
             Motif indiqué :\n{reason}\n\n\
             Corrigez les données concernées puis validez de nouveau le questionnaire sur la \
             plateforme du tableau de bord de la performance.\n\n\
             L'équipe du tableau de bord de la performance\n",
            first = person.first_name,
            last = person.last_name,
            name = structure.name,
            finess = structure.finess.display(),
        ),
        html: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tdb_domain::category::{Category, RespondentKind};

    #[test]
    fn a_reopening_names_the_part_only_when_there_are_several() {
        let finess = tdb_domain::Finess::parse("750000010").unwrap();
        let structure = StructureRecord {
            finess,
            kind: RespondentKind::Esms(Category::Spasad),
            name: "SPASAD des Lilas".into(),
            legal_entity: finess,
            og: None,
            principal: None,
            ape: None,
        };
        let person = Person {
            last_name: "Martin".into(),
            first_name: "Claire".into(),
            phone: None,
        };
        let to = EmailAddress::parse("claire.martin@example.test").unwrap();
        let care = reopening(
            &to,
            &person,
            &structure,
            Some("Données relatives aux soins"),
            "Vérifiez les ETP.",
        );
        assert!(
            care.text.contains(
                "(FINESS 75 000 001 0), partie « Données relatives aux soins » a été rouvert"
            ),
            "{}",
            care.text
        );
        let whole = reopening(&to, &person, &structure, None, "Vérifiez les ETP.");
        assert!(
            whole.text.contains("(FINESS 75 000 001 0) a été rouvert"),
            "{}",
            whole.text
        );
        assert!(whole.text.contains("Vérifiez les ETP."));
    }
}
