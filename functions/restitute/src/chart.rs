//! One indicator of a restitution as an SVG chart: where the structure stands among its
//! peers. A box plot per group (the category nationally, in the region, the peer group),
//! the structure marked on each, French labels, and nothing that needs colour to be read:
//! the mark is a black diamond on a dashed line, the boxes are outlined and named in text.

use crate::api::{GroupStats, IndicatorRestitution, Restitution};
use std::fmt::Write;

const WIDTH: f64 = 720.0;
/// Where the plot starts and ends horizontally (the row names sit on the left).
const LEFT: f64 = 220.0;
const RIGHT: f64 = WIDTH - 40.0;
const TOP: f64 = 130.0;
const ROW: f64 = 64.0;
/// The mark's colour, used by nothing else: a test finds the mark by it.
pub const MARK: &str = "#000000";

/// The horizontal scale of a chart: values to x.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub low: f64,
    pub high: f64,
}

impl Scale {
    /// A scale holding every shown quantile and the structure's value, padded by 5 %.
    fn of(indicator: &IndicatorRestitution) -> Scale {
        let mut values: Vec<f64> = groups(indicator)
            .iter()
            .filter_map(|(_, g)| *g)
            .flat_map(|g| [quantile(g, "d1"), quantile(g, "d9")])
            .collect();
        values.extend(indicator.value);
        let values = values.into_iter().filter(|v| v.is_finite());
        let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
        if !low.is_finite() {
            return Scale {
                low: 0.0,
                high: 1.0,
            };
        }
        let pad = if high > low {
            (high - low) * 0.05
        } else {
            low.abs().max(1.0) * 0.1
        };
        Scale {
            low: low - pad,
            high: high + pad,
        }
    }

    pub fn x(&self, value: f64) -> f64 {
        LEFT + (value - self.low) / (self.high - self.low) * (RIGHT - LEFT)
    }
}

fn quantile(g: &GroupStats, name: &str) -> f64 {
    g.quantiles.get(name).copied().unwrap_or(f64::NAN)
}

/// The groups in the order they are drawn, with their French names.
fn groups(indicator: &IndicatorRestitution) -> [(&'static str, Option<&GroupStats>); 3] {
    [
        ("France", indicator.national.as_ref()),
        ("Région", indicator.regional.as_ref()),
        ("Groupe homogène", indicator.peer_group.as_ref()),
    ]
}

/// A value in its unit, the French way: `93,4 %`, `12,5 j`, `1 250 €`.
pub fn french(value: f64, unit: &str) -> String {
    let (number, suffix) = match unit {
        "ratio" => (format!("{:.1}", value * 100.0), " %"),
        "days" => (format!("{value:.1}"), " j"),
        "hours" => (format!("{value:.1}"), " h"),
        "euros" => (format!("{value:.0}"), " €"),
        _ => (format!("{value:.2}"), ""),
    };
    format!("{}{suffix}", number.replace('.', ","))
}

/// The title on at most two lines of about 70 characters, cut with `…` beyond.
fn title_lines(title: &str) -> Vec<String> {
    const WIDTH: usize = 70;
    let mut lines: Vec<String> = vec![String::new()];
    for word in title.split_whitespace() {
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > WIDTH {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    if lines.len() > 2 {
        lines.truncate(2);
        lines[1].push('…');
    }
    lines
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The chart of one indicator of `restitution`, with its scale.
pub fn svg(restitution: &Restitution, indicator: &IndicatorRestitution) -> (String, Scale) {
    let scale = Scale::of(indicator);
    let unit = indicator.unit.as_str();
    let rows = groups(indicator);
    let bottom = TOP + ROW * rows.len() as f64;
    let height = bottom + 90.0;
    let value_text = indicator
        .value
        .map_or("non calculable".to_string(), |v| french(v, unit));
    let mut summary = format!("Valeur de la structure : {value_text}.");
    for (name, group) in rows {
        match group {
            Some(g) => write!(
                summary,
                " {name} : médiane {}, quartiles {} à {}, {} structures.",
                french(quantile(g, "median"), unit),
                french(quantile(g, "q1"), unit),
                french(quantile(g, "q3"), unit),
                g.n
            ),
            None => write!(summary, " {name} : moins de 5 structures, non diffusé."),
        }
        .ok();
    }
    let mut s = String::new();
    let w = &mut s;
    write!(
        w,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="titre resume" font-family="DejaVu Sans, Arial, sans-serif" font-size="12" fill="#333333">
<title id="titre">{title}</title>
<desc id="resume">{desc}</desc>
<rect width="100%" height="100%" fill="#ffffff"/>
{heading}<text x="16" y="70">{who} — campagne {campaign}</text>
<text x="16" y="90">Votre valeur : {value_text}{rank}</text>
"##,
        title = escape(&indicator.label),
        heading = title_lines(&indicator.label)
            .iter()
            .enumerate()
            .map(|(i, line)| format!(
                "<text x=\"16\" y=\"{}\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
                26 + 20 * i,
                escape(line)
            ))
            .collect::<String>(),
        desc = escape(&summary),
        who = escape(&format!("{} ({})", restitution.name, restitution.finess)),
        campaign = restitution.campaign,
        rank = indicator.rank_national.map_or(String::new(), |r| format!(
            " — {:.0} % des structures de la catégorie en France ont une valeur inférieure",
            r * 100.0
        )),
    )
    .ok();
    for (i, (name, group)) in rows.iter().enumerate() {
        let middle = TOP + ROW * i as f64 + ROW / 2.0;
        let detail = match (i, group) {
            (0, _) => restitution.category.clone(),
            (1, _) => restitution
                .region
                .as_deref()
                .and_then(|r| r.parse::<u8>().ok())
                .and_then(tdb_domain::Region::from_code)
                .map_or(String::new(), |r| r.name().to_string()),
            _ => restitution.peer_group.clone(),
        };
        write!(
            w,
            r##"<text x="16" y="{y1}" font-weight="bold">{name}</text>
<text x="16" y="{y2}">{detail}</text>
"##,
            y1 = middle - 4.0,
            y2 = middle + 12.0,
            detail = escape(&detail),
        )
        .ok();
        match group {
            Some(g) => {
                let x = |q: &str| scale.x(quantile(g, q));
                write!(
                    w,
                    r##"<line x1="{d1}" y1="{middle}" x2="{d9}" y2="{middle}" stroke="#555555" stroke-width="1.5"/>
<line x1="{d1}" y1="{t}" x2="{d1}" y2="{b}" stroke="#555555" stroke-width="1.5"/>
<line x1="{d9}" y1="{t}" x2="{d9}" y2="{b}" stroke="#555555" stroke-width="1.5"/>
<rect x="{q1}" y="{bt}" width="{bw}" height="24" fill="#ffffff" stroke="#555555" stroke-width="1.5"/>
<line x1="{med}" y1="{bt}" x2="{med}" y2="{bb}" stroke="#222222" stroke-width="3"/>
<text x="{RIGHT}" y="{n_y}" text-anchor="end" font-size="11">{n} structures</text>
"##,
                    d1 = x("d1"),
                    d9 = x("d9"),
                    t = middle - 8.0,
                    b = middle + 8.0,
                    q1 = x("q1"),
                    bt = middle - 12.0,
                    bb = middle + 12.0,
                    bw = (x("q3") - x("q1")).max(1.0),
                    med = x("median"),
                    n_y = middle + 26.0,
                    n = g.n,
                )
                .ok();
            }
            None => {
                writeln!(
                    w,
                    r##"<text x="{LEFT}" y="{y}" font-style="italic">Moins de 5 structures : non diffusé</text>"##,
                    y = middle + 4.0
                )
                .ok();
            }
        }
    }
    if let Some(value) = indicator.value.filter(|v| v.is_finite()) {
        let x = scale.x(value);
        write!(
            w,
            r##"<line x1="{x}" y1="{t}" x2="{x}" y2="{bottom}" stroke="#333333" stroke-width="1" stroke-dasharray="4 3"/>
<text x="{x}" y="{ty}" text-anchor="middle" font-size="11">Votre structure</text>
"##,
            t = TOP - 6.0,
            ty = TOP - 10.0,
        )
        .ok();
        for i in 0..rows.len() {
            let y = TOP + ROW * i as f64 + ROW / 2.0;
            writeln!(
                w,
                r##"<path d="M {x} {a} L {r} {y} L {x} {b} L {l} {y} Z" fill="{MARK}"/>"##,
                a = y - 8.0,
                b = y + 8.0,
                l = x - 7.0,
                r = x + 7.0,
            )
            .ok();
        }
    }
    // The axis: five graduations.
    writeln!(
        w,
        r##"<line x1="{LEFT}" y1="{bottom}" x2="{RIGHT}" y2="{bottom}" stroke="#555555"/>"##
    )
    .ok();
    for k in 0..5 {
        let v = scale.low + (scale.high - scale.low) * k as f64 / 4.0;
        let x = scale.x(v);
        write!(
            w,
            r##"<line x1="{x}" y1="{bottom}" x2="{x}" y2="{tb}" stroke="#555555"/>
<text x="{x}" y="{ty}" text-anchor="middle" font-size="11">{label}</text>
"##,
            tb = bottom + 5.0,
            ty = bottom + 18.0,
            label = escape(&french(v, unit)),
        )
        .ok();
    }
    write!(
        w,
        r##"<text x="16" y="{l1}" font-size="11">Boîte : du 1er au 3e quartile ; trait épais : médiane ; moustaches : du 1er au 9e décile.</text>
<text x="16" y="{l2}" font-size="11">Losange noir et pointillés : votre structure. Structures dont le questionnaire est validé.</text>
</svg>
"##,
        l1 = bottom + 48.0,
        l2 = bottom + 66.0,
    )
    .ok();
    (s, scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tdb_domain::restitution::QUANTILES;

    fn stats(n: i64, spread: f64, centre: f64) -> GroupStats {
        GroupStats {
            n,
            mean: centre,
            min: centre - spread,
            quantiles: QUANTILES
                .iter()
                .map(|(name, p)| (*name, centre + (p - 0.5) * 2.0 * spread))
                .collect::<BTreeMap<_, _>>(),
            max: centre + spread,
        }
    }

    fn restitution(value: Option<f64>) -> (Restitution, IndicatorRestitution) {
        let indicator = IndicatorRestitution {
            id: "taux_occupation_permanent".into(),
            label: "Taux d'occupation <permanent> & \"total\"".into(),
            unit: "ratio".into(),
            value,
            rank_national: Some(0.72),
            rank_region: None,
            national: Some(stats(1200, 0.1, 0.9)),
            regional: None,
            peer_group: Some(stats(80, 0.05, 0.92)),
            previous: None,
            series: vec![],
        };
        let restitution = Restitution {
            campaign: 2025,
            finess: "750000001".into(),
            name: "EHPAD Les Tilleuls".into(),
            category: "EHPAD".into(),
            peer_group: "EHPAD, 40 à 79 places".into(),
            region: Some("11".into()),
            snapshot: "s".into(),
            kind: "final".into(),
            indicators: vec![],
        };
        (restitution, indicator)
    }

    /// The chart drawn to pixels: the columns and rows of the mark's pure black pixels.
    pub(crate) fn marks(svg: &str) -> Vec<(u32, u32)> {
        let mut options = resvg::usvg::Options::default();
        options.fontdb_mut().load_system_fonts();
        let tree = resvg::usvg::Tree::from_str(svg, &options).unwrap();
        let size = tree.size().to_int_size();
        let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
        resvg::render(&tree, Default::default(), &mut pixmap.as_mut());
        pixmap
            .pixels()
            .iter()
            .enumerate()
            .filter(|(_, p)| p.red() == 0 && p.green() == 0 && p.blue() == 0 && p.alpha() == 255)
            .map(|(i, _)| (i as u32 % size.width(), i as u32 / size.width()))
            .collect()
    }

    #[test]
    fn the_structure_is_marked_where_its_value_stands_on_every_group_shown() {
        for value in [0.71, 0.93, 1.04] {
            let (r, i) = restitution(Some(value));
            let (svg, scale) = svg(&r, &i);
            let marks = marks(&svg);
            assert!(
                marks.len() > 50,
                "the mark is drawn: {} pixels",
                marks.len()
            );
            let x = scale.x(value);
            assert!(
                marks.iter().all(|(px, _)| (*px as f64 - x).abs() <= 8.0),
                "every mark pixel near x = {x}"
            );
            // One diamond per row: three rows of pixels, around each row's middle.
            for row in 0..3 {
                let middle = TOP + ROW * row as f64 + ROW / 2.0;
                assert!(
                    marks
                        .iter()
                        .any(|(_, py)| (*py as f64 - middle).abs() <= 2.0),
                    "a mark on row {row}"
                );
            }
        }
    }

    #[test]
    fn labels_are_french_escaped_and_small_groups_show_nothing() {
        let (r, i) = restitution(Some(0.93));
        let (svg, _) = svg(&r, &i);
        assert!(svg.contains("Taux d&apos;occupation &lt;permanent&gt; &amp; &quot;total&quot;"));
        assert!(svg.contains("Votre valeur : 93,0 %"));
        assert!(svg.contains("Île-de-France"));
        assert!(svg.contains("Région : moins de 5 structures, non diffusé."));
        assert!(svg.contains("Moins de 5 structures : non diffusé"));
        // Two boxes: France and the peer group; none for the region.
        assert_eq!(svg.matches("<rect x=").count(), 2);
        assert!(svg.contains("72 % des structures"));
        roxmltree_parse(&svg);
    }

    fn roxmltree_parse(svg: &str) {
        resvg::usvg::Tree::from_str(svg, &resvg::usvg::Options::default())
            .expect("well-formed SVG");
    }

    #[test]
    fn no_value_no_mark() {
        let (r, i) = restitution(None);
        let (svg, _) = svg(&r, &i);
        assert!(svg.contains("Votre valeur : non calculable"));
        assert!(marks(&svg).is_empty());
    }

    #[test]
    fn long_titles_wrap_on_two_lines() {
        let lines = title_lines(&"mot ".repeat(60));
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.chars().count() <= 71));
        assert!(lines[1].ends_with('…'));
        assert_eq!(title_lines("Taux de CAF"), ["Taux de CAF"]);
    }

    #[test]
    fn units_read_the_french_way() {
        assert_eq!(french(0.934, "ratio"), "93,4 %");
        assert_eq!(french(12.26, "days"), "12,3 j");
        assert_eq!(french(1250.4, "euros"), "1250 €");
        assert_eq!(french(3.0, "people"), "3,00");
    }
}
