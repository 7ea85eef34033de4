//! Line charts as standalone SVG files (loss curves, forecasts against the truth): no font or
//! system dependency, viewable in any browser.

use std::fmt::Write;
use std::path::Path;

/// One named line of `(x, y)` points.
#[derive(Clone, Debug)]
pub struct Line {
    /// Legend label.
    pub name: String,
    /// Points in drawing order; non-finite ones are skipped.
    pub points: Vec<(f64, f64)>,
}

impl Line {
    /// A line from `(x, y)` points.
    pub fn new(name: &str, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.to_string(),
            points,
        }
    }
}

const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// A 720 x 420 chart of `lines` with axes, five ticks per axis, a title and a legend.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[Line],
) -> Result<(), String> {
    let (w, h) = (720.0, 420.0);
    let (left, right, top, bottom) = (70.0, 20.0, 40.0, 50.0);
    let finite = lines
        .iter()
        .flat_map(|l| l.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in finite {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return Err(format!("nothing to plot in {}", path.display()));
    }
    if x1 - x0 < 1e-12 {
        (x0, x1) = (x0 - 1.0, x1 + 1.0);
    }
    if y1 - y0 < 1e-12 {
        (y0, y1) = (y0 - 1.0, y1 + 1.0);
    }
    let sx = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let sy = |y: f64| h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        w / 2.0,
        escape(title)
    );
    let (px0, px1, py0, py1) = (sx(x0), sx(x1), sy(y0), sy(y1));
    let _ = writeln!(
        svg,
        r#"<path d="M{px0},{py1} V{py0} H{px1}" fill="none" stroke="black"/>"#
    );
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let (x, y) = (x0 + f * (x1 - x0), y0 + f * (y1 - y0));
        let _ = writeln!(
            svg,
            r##"<line x1="{0}" y1="{py0}" x2="{0}" y2="{1}" stroke="#ccc"/><text x="{0}" y="{2}" text-anchor="middle">{3}</text>"##,
            sx(x),
            py0 + 5.0,
            py0 + 18.0,
            tick(x)
        );
        let _ = writeln!(
            svg,
            r##"<line x1="{px0}" y1="{0}" x2="{px1}" y2="{0}" stroke="#eee"/><text x="{1}" y="{2}" text-anchor="end">{3}</text>"##,
            sy(y),
            px0 - 6.0,
            sy(y) + 4.0,
            tick(y)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (px0 + px1) / 2.0,
        h - 12.0,
        escape(x_label)
    );
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{0}" text-anchor="middle" transform="rotate(-90 16 {0})">{1}</text>"#,
        (py0 + py1) / 2.0,
        escape(y_label)
    );
    for (i, line) in lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut d = String::new();
        let mut pen_down = false;
        for &(x, y) in &line.points {
            if x.is_finite() && y.is_finite() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1} ",
                    if pen_down { "L" } else { "M" },
                    sx(x),
                    sy(y)
                );
                pen_down = true;
            } else {
                pen_down = false;
            }
        }
        let _ = writeln!(
            svg,
            r#"<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.5"/>"#
        );
        let ly = top + 8.0 + 16.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{0}" y1="{ly}" x2="{1}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{2}" y="{3}">{4}</text>"#,
            px1 - 150.0,
            px1 - 130.0,
            px1 - 125.0,
            ly + 4.0,
            escape(&line.name)
        );
    }
    svg.push_str("</svg>\n");
    sequent_train::io::write_atomic(path, svg.as_bytes()).map_err(String::from)
}

fn tick(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_every_line() {
        let path = std::env::temp_dir().join(format!("sequent-plot-{}.svg", std::process::id()));
        let a = Line::new(
            "train <loss>",
            vec![(1.0, 2.0), (2.0, 1.5), (3.0, f64::NAN)],
        );
        let b = Line::new("valid", vec![(1.0, 2.2), (2.0, 1.9)]);
        line_chart(&path, "Loss", "epoch", "nats", &[a, b]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("train &lt;loss&gt;") && svg.contains("valid"));
        assert_eq!(svg.matches("stroke-width=\"1.5\"").count(), 2);
        assert!(line_chart(&path, "t", "x", "y", &[]).is_err());
        std::fs::remove_file(path).ok();
    }
}
