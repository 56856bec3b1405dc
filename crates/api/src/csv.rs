//! CSV downloads for French spreadsheet software, written one way for every function.

use crate::ApiError;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// A CSV document for French spreadsheet software: UTF-8 with a byte-order mark, `;`
/// between fields, decimal comma ([`decimal`]), CRLF line ends. A text cell that a
/// spreadsheet would read as a formula (starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return, and not a number) is prefixed with `'`, so it shows as text.
pub fn csv<H: AsRef<str>>(header: &[H], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut out = String::from("\u{feff}");
    let mut line = |fields: Vec<String>| {
        let fields: Vec<String> = fields.into_iter().map(cell).collect();
        out.push_str(&fields.join(";"));
        out.push_str("\r\n");
    };
    line(header.iter().map(|h| h.as_ref().to_string()).collect());
    for row in rows {
        line(row);
    }
    out
}

fn cell(field: String) -> String {
    let formula = field.starts_with(['=', '+', '-', '@', '\t', '\r'])
        && field.replace(',', ".").parse::<f64>().is_err();
    let field = if formula { format!("'{field}") } else { field };
    if field.contains([';', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

/// A number as a French decimal, with at most four decimals.
pub fn decimal(v: f64) -> String {
    format!("{v:.4}").replace('.', ",")
}

/// A number exactly (the shortest text that reads back as the same number), with a
/// decimal comma; empty when it is not a number.
pub fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}").replace('.', ",")
    } else {
        String::new()
    }
}

/// CSV when asked (`format=csv`), JSON otherwise.
pub fn wants_csv(format: Option<&str>) -> Result<bool, ApiError> {
    match format {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(_) => Err(ApiError::invalid("format", "json or csv")),
    }
}

/// A CSV download named `<name>.csv` (the name is ours, never the caller's).
pub fn csv_response(name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_french_spreadsheets() {
        let text = csv(&["a", "b"], [vec!["x;y".into(), decimal(0.5)]]);
        assert_eq!(text, "\u{feff}a;b\r\n\"x;y\";0,5000\r\n");
    }

    #[test]
    fn numbers_are_exact() {
        assert_eq!(number(0.8754946727549467), "0,8754946727549467");
        assert_eq!(number(0.00004), "0,00004");
        assert_eq!(number(12.0), "12");
        assert_eq!(number(-1.5), "-1,5");
        assert_eq!(number(f64::NAN), "");
    }

    #[test]
    fn formulas_are_text_and_numbers_stay_numbers() {
        let text = csv(
            &["a"],
            [
                vec!["=HYPERLINK(\"http://x\")".into()],
                vec!["+33 1".into()],
                vec!["@SUM(A1)".into()],
                vec!["-1,5000".into()],
                vec!["\tx".into()],
                vec!["EHPAD = 1".into()],
            ],
        );
        let lines: Vec<&str> = text.trim_start_matches('\u{feff}').split("\r\n").collect();
        assert_eq!(
            &lines[1..7],
            [
                "\"'=HYPERLINK(\"\"http://x\"\")\"",
                "'+33 1",
                "'@SUM(A1)",
                "-1,5000",
                "'\tx",
                "EHPAD = 1",
            ]
            .as_slice()
        );
    }
}
