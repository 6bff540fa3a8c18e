//! Charts as server-rendered SVG: stacked bars per day, and a small bar strip per hour. Labels
//! are escaped; colours come from classes in `console.css` (no inline style: the page's CSP has
//! none). Each bar carries a `<title>`, the figure a pointer shows.

use std::fmt::Write as _;

/// One bar: its label and its stacked parts, bottom first.
pub struct Bar {
    /// Under the bar (`2026-12-01`).
    pub label: String,
    /// Each part's value, in the order of the series.
    pub parts: Vec<f64>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Stacked bars; `series` names each part (its class is `s0`, `s1`...).
pub fn stacked(title: &str, series: &[&str], bars: &[Bar]) -> String {
    let (w, h, left, bottom, top) = (720.0, 220.0, 40.0, 28.0, 10.0);
    let plot_h = h - bottom - top;
    let max = bars
        .iter()
        .map(|b| b.parts.iter().sum::<f64>())
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let step = (w - left) / bars.len().max(1) as f64;
    let bar_w = (step * 0.7).max(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg"><title>{}</title>"#,
        escape(title),
        escape(title)
    );
    // The scale: 0, half, max.
    for frac in [0.0, 0.5, 1.0] {
        let y = top + plot_h * (1.0 - frac);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{left}" x2="{w}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 4.0,
            y + 4.0,
            trim(max * frac)
        );
    }
    let label_every = (bars.len() / 10).max(1);
    for (i, bar) in bars.iter().enumerate() {
        let x = left + step * i as f64 + (step - bar_w) / 2.0;
        let mut y = top + plot_h;
        let mut tip = escape(&bar.label);
        for (j, value) in bar.parts.iter().enumerate() {
            let _ = write!(
                tip,
                ", {}: {}",
                escape(series.get(j).unwrap_or(&"")),
                trim(*value)
            );
        }
        let _ = write!(svg, "<g><title>{tip}</title>");
        for (j, value) in bar.parts.iter().enumerate() {
            let bh = plot_h * value / max;
            if bh <= 0.0 {
                continue;
            }
            y -= bh;
            let _ = write!(
                svg,
                r#"<rect class="s{j}" x="{x:.1}" y="{y:.1}" width="{bar_w:.1}" height="{bh:.1}"/>"#
            );
        }
        svg.push_str("</g>");
        if i % label_every == 0 {
            let _ = write!(
                svg,
                r#"<text class="axis" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x + bar_w / 2.0,
                h - 8.0,
                escape(bar.label.get(5..).unwrap_or(&bar.label))
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A strip of small bars (one per hour), each `failed / received` high; empty hours are a dot.
pub fn strip(hours: &[(i64, i64)]) -> String {
    let (w, h) = (120.0, 24.0);
    let step = w / hours.len().max(1) as f64;
    let mut svg =
        format!(r#"<svg class="strip" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">"#);
    for (i, (received, failed)) in hours.iter().enumerate() {
        let x = step * i as f64;
        if *received == 0 {
            let _ = write!(
                svg,
                r#"<rect class="idle" x="{x:.1}" y="{}" width="{:.1}" height="1"/>"#,
                h - 1.0,
                step - 1.0
            );
            continue;
        }
        let rate = *failed as f64 / *received as f64;
        let bh = (h * rate).max(2.0);
        let class = if *failed > 0 { "bad" } else { "ok" };
        let bh = if *failed > 0 { bh } else { 2.0 };
        let _ = write!(
            svg,
            r#"<rect class="{class}" x="{x:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}"><title>{received} received, {failed} failed</title></rect>"#,
            h - bh,
            step - 1.0
        );
    }
    svg.push_str("</svg>");
    svg
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_highest_day_and_escape_labels() {
        let svg = stacked(
            "Calls <per> day",
            &["answered", "not answered"],
            &[
                Bar {
                    label: "2026-12-01".into(),
                    parts: vec![3.0, 1.0],
                },
                Bar {
                    label: "2026-12-02".into(),
                    parts: vec![1.0, 1.0],
                },
            ],
        );
        assert!(svg.contains("Calls &lt;per&gt; day"));
        assert!(svg.contains("2026-12-01, answered: 3, not answered: 1"));
        // The highest bar fills the plot: 182 high in all (3/4 + 1/4 of it).
        assert!(svg.contains(r#"height="136.5""#), "{svg}");
        assert!(svg.contains(r#"height="45.5""#), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 4);
    }

    #[test]
    fn the_strip_marks_failures() {
        let svg = strip(&[(0, 0), (10, 0), (4, 2)]);
        assert!(svg.contains("idle"));
        assert!(svg.contains("4 received, 2 failed"));
        assert!(svg.contains(r#"class="bad""#));
    }
}
