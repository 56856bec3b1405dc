//! The regional export in the national platform's format (docs/lake.md): one row per
//! structure of a territory, `;`-separated for French spreadsheets, the identification
//! columns, then every variable and every indicator of the platform's questionnaire.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use std::collections::HashSet;
use tdb_domain::campaign::QuestionnaireStatus;
use tdb_domain::questionnaire::{Definition, ItemDef, ItemType};

/// The identification columns, as the national export names them.
pub const IDENTIFICATION: [&str; 13] = [
    "Région",
    "Département",
    "Catégorie",
    "Groupe homogène",
    "FINESS géographique",
    "Raison sociale",
    "Structuration",
    "Statut juridique",
    "Ville",
    "Niveau de validation",
    "Etat d'avancement",
    "FINESS juridique",
    "Raison sociale juridique",
];

/// The item the identification columns already give.
const LEGAL_STATUS: &str = "statut_juridique";

/// The items written after the identification columns.
fn variables(definition: &Definition) -> impl Iterator<Item = &ItemDef> {
    definition.items().iter().filter(|i| i.id != LEGAL_STATUS)
}

/// The export's header: the identification columns, then each item's and each
/// indicator's label (with its id when two labels are the same).
pub fn header(definition: &Definition) -> Vec<String> {
    let mut seen: HashSet<String> = IDENTIFICATION.iter().map(|s| s.to_string()).collect();
    let mut header: Vec<String> = IDENTIFICATION.iter().map(|s| s.to_string()).collect();
    let labels = variables(definition)
        .map(|i| (&i.label, &i.id))
        .chain(definition.indicators().iter().map(|i| (&i.label, &i.id)));
    for (label, id) in labels {
        let label = if seen.insert(label.clone()) {
            label.clone()
        } else {
            format!("{label} ({id})")
        };
        header.push(label);
    }
    header
}

/// The rows of a platform's snapshot table, as the export writes them.
pub fn rows(definition: &Definition, batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for batch in batches {
        let cell = |name: &str, row: usize| -> Cell {
            match batch.schema().index_of(name) {
                Ok(c) => Cell::of(batch.column(c).as_ref(), row),
                Err(_) => Cell::Empty,
            }
        };
        for row in 0..batch.num_rows() {
            let text = |name: &str| cell(name, row).text();
            let region = text("region");
            let category = text("category");
            let structuration = if category == "OG" {
                "Organisme gestionnaire"
            } else if text("og").is_empty() {
                "ESMS non rattaché à un OG"
            } else {
                "ESMS rattaché à un OG"
            };
            let statut = definition
                .items()
                .iter()
                .find(|i| i.id == LEGAL_STATUS)
                .map_or(String::new(), |item| {
                    choice_labels(item, &text(LEGAL_STATUS))
                });
            let mut line = vec![
                region
                    .parse::<u8>()
                    .ok()
                    .and_then(tdb_domain::Region::from_code)
                    .map_or(region.clone(), |r| format!("{region} - {}", r.name())),
                text("departement"),
                category,
                text("peer_group"),
                text("finess"),
                text("name"),
                structuration.to_string(),
                statut,
                // The account platform does not hold the towns (docs/lake.md).
                String::new(),
                QuestionnaireStatus::from_key(&text("status"))
                    .map_or(String::new(), |s| s.label().to_string()),
                cell("fill_rate", row).number(),
                text("legal_entity"),
                text("legal_name"),
            ];
            for item in variables(definition) {
                let value = cell(&item.id, row);
                line.push(match (&item.kind, value) {
                    (ItemType::Choice | ItemType::MultipleChoice, Cell::Text(codes)) => {
                        choice_labels(item, &codes)
                    }
                    (_, value) => value.number(),
                });
            }
            for indicator in definition.indicators() {
                line.push(cell(&format!("indicator_{}", indicator.id), row).number());
            }
            rows.push(line);
        }
    }
    rows
}

/// A choice's labels, from its codes as the lake keeps them (`a,b` for several).
fn choice_labels(item: &ItemDef, codes: &str) -> String {
    codes
        .split(',')
        .filter(|c| !c.is_empty())
        .map(|code| {
            item.choices
                .iter()
                .find(|c| c.code == code)
                .map_or(code, |c| c.label.as_str())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A cell of the snapshot, whatever its type.
enum Cell {
    Empty,
    Number(f64),
    Flag(bool),
    Text(String),
}

impl Cell {
    fn of(column: &dyn Array, row: usize) -> Cell {
        if column.is_null(row) {
            return Cell::Empty;
        }
        match column.data_type() {
            DataType::Float64 => Cell::Number(column.as_primitive::<Float64Type>().value(row)),
            DataType::Boolean => Cell::Flag(column.as_boolean().value(row)),
            DataType::Utf8View => Cell::Text(column.as_string_view().value(row).to_string()),
            DataType::Utf8 => Cell::Text(column.as_string::<i32>().value(row).to_string()),
            DataType::LargeUtf8 => Cell::Text(column.as_string::<i64>().value(row).to_string()),
            _ => Cell::Empty,
        }
    }

    fn text(self) -> String {
        match self {
            Cell::Text(s) => s,
            other => other.number(),
        }
    }

    /// Numbers exactly, with a decimal comma; flags as `Oui`/`Non`.
    fn number(self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Number(v) => tdb_api::csv::number(v),
            Cell::Flag(true) => "Oui".to_string(),
            Cell::Flag(false) => "Non".to_string(),
            Cell::Text(s) => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_the_french_way() {
        assert_eq!(Cell::Number(12.0).number(), "12");
        assert_eq!(Cell::Number(0.934).number(), "0,934");
        assert_eq!(Cell::Number(-1.5).number(), "-1,5");
        assert_eq!(Cell::Flag(true).number(), "Oui");
        assert_eq!(Cell::Empty.number(), "");
    }
}
