//! The e-mails the validate function sends, in French.

use tdb_domain::accounts::{Person, StructureRecord};
use tdb_domain::email::EmailAddress;
use tdb_domain::ports::Email;

/// A part of the questionnaire reopened by the ARS or the CD, with their reason.
pub fn reopening(
    to: &EmailAddress,
    person: &Person,
    structure: &StructureRecord,
    part: &str,
    reason: &str,
) -> Email {
    Email {
        to: to.clone(),
        subject: format!(
            "Tableau de bord de la performance ESMS : questionnaire de {} rouvert",
            structure.name
        ),
        text: format!(
            "Bonjour {first} {last},\n\n\
             Le questionnaire du tableau de bord de {name} (FINESS {finess}), partie « {part} », \
             a été rouvert pour correction lors de la fiabilisation des données.\n\n\
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
