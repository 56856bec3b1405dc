//! The e-mails the accounts function sends, in French. They carry a single-use link, never
//! a password.

use tdb_domain::accounts::{Person, StructureRecord};
use tdb_domain::email::EmailAddress;
use tdb_domain::ports::Email;

fn hours(seconds: i64) -> i64 {
    seconds / 3600
}

/// A new account: choose a password through the link.
pub fn activation(
    to: &EmailAddress,
    person: &Person,
    structure: Option<&StructureRecord>,
    link: &str,
    valid_seconds: i64,
) -> Email {
    let on = structure
        .map(|s| format!(" pour {} (FINESS {})", s.name, s.finess.display()))
        .unwrap_or_default();
    Email {
        to: to.clone(),
        subject: "Tableau de bord de la performance ESMS : activez votre compte".into(),
        text: format!(
            "Bonjour {first} {last},\n\n\
             Un compte vous a été ouvert sur la plateforme du tableau de bord de la performance \
             dans le secteur médico-social{on}.\n\n\
             Pour choisir votre mot de passe, ouvrez ce lien dans les {h} heures :\n{link}\n\n\
             Ce lien ne sert qu'une fois. Aucun mot de passe ne vous sera jamais envoyé par \
             courriel. Si vous n'attendiez pas ce message, ignorez-le.\n\n\
             L'équipe du tableau de bord de la performance\n",
            first = person.first_name,
            last = person.last_name,
            h = hours(valid_seconds),
        ),
        html: None,
    }
}

/// A forgotten password.
pub fn password_reset(to: &EmailAddress, person: &Person, link: &str, valid_seconds: i64) -> Email {
    Email {
        to: to.clone(),
        subject: "Tableau de bord de la performance ESMS : nouveau mot de passe".into(),
        text: format!(
            "Bonjour {first} {last},\n\n\
             Une demande de nouveau mot de passe a été faite pour votre compte. Pour le choisir, \
             ouvrez ce lien dans les {h} heures :\n{link}\n\n\
             Ce lien ne sert qu'une fois. Si vous n'êtes pas à l'origine de cette demande, \
             ignorez ce message : votre mot de passe actuel reste valable.\n\n\
             L'équipe du tableau de bord de la performance\n",
            first = person.first_name,
            last = person.last_name,
            h = hours(valid_seconds),
        ),
        html: None,
    }
}
