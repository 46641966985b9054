//! Charts drawn on the server as inline SVG: no script, no library, nothing from a CDN.
//! Labels come from appliance data, so every text is escaped.

use std::fmt::Write;

/// Colours of the five levels, ★★★ first (matched by the legend in the stylesheet).
pub const LEVEL_COLORS: [&str; 5] = ["#c62828", "#ef6c00", "#f9a825", "#6a1b9a", "#90a4ae"];

/// Escape text for SVG/XML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if (c as u32) < 0x20 => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// A round upper bound for an axis: 1, 2, 5 × 10^n.
fn nice_max(v: u64) -> u64 {
    let mut m = 1u64;
    loop {
        for f in [1, 2, 5] {
            if m.saturating_mul(f) >= v {
                return m.saturating_mul(f);
            }
        }
        m = m.saturating_mul(10);
        if m == u64::MAX {
            return v;
        }
    }
}

/// Stacked columns, one per day: `days` = (label, counts per level ★★★ … 参考).
/// `names` are the level names for tooltips.
pub fn stacked_days(days: &[(String, [u64; 5])], names: [&str; 5], aria: &str) -> String {
    let (w, h, left, bottom, top) = (760.0f64, 220.0f64, 40.0f64, 28.0f64, 10.0f64);
    let max = days
        .iter()
        .map(|(_, c)| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    // round steps (1, 2, 5 × 10^n), at most four of them
    let step = nice_max(max.max(1).div_ceil(4));
    let ticks = max.max(1).div_ceil(step).max(1);
    let ymax = (step * ticks) as f64;
    let plot_h = h - bottom - top;
    let n = days.len().max(1) as f64;
    let slot = (w - left - 8.0) / n;
    let bar = (slot * 0.7).max(2.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(aria)
    );
    for i in 0..=ticks {
        let v = step * i;
        let y = top + plot_h - plot_h * (v as f64) / ymax;
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e3e7ec"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#667">{}</text>"##,
            w - 8.0,
            left - 6.0,
            y + 4.0,
            v
        );
    }
    for (i, (label, counts)) in days.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = top + plot_h;
        for (lvl, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let bh = plot_h * c as f64 / ymax;
            y -= bh;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{bh:.1}" fill="{}"><title>{} {}: {c}</title></rect>"#,
                LEVEL_COLORS[lvl],
                esc(label),
                esc(names[lvl])
            );
        }
        // a date label every few columns so they never overlap
        let every = (days.len() / 10).max(1);
        // counted from the last column: today is always labelled
        if (days.len() - 1 - i).is_multiple_of(every) {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#667">{}</text>"##,
                x + bar / 2.0,
                h - 10.0,
                esc(label)
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars: (label, value, value as text), largest first as given.
pub fn hbars(items: &[(String, u64, String)], color: &str, aria: &str) -> String {
    let row = 26.0f64;
    let (w, label_w) = (560.0f64, 170.0f64);
    let h = row * items.len().max(1) as f64 + 6.0;
    let max = items.iter().map(|i| i.1).max().unwrap_or(1).max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(aria)
    );
    for (i, (label, v, shown)) in items.iter().enumerate() {
        let y = 4.0 + row * i as f64;
        let bw = ((w - label_w - 90.0) * *v as f64 / max).max(1.0);
        let short: String = if label.chars().count() > 22 {
            label.chars().take(21).chain(['…']).collect()
        } else {
            label.clone()
        };
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end" fill="#223">{}</text><rect x="{label_w}" y="{y:.1}" width="{bw:.1}" height="{:.1}" rx="3" fill="{color}"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}" font-size="11" fill="#556">{}</text>"##,
            label_w - 8.0,
            y + 15.0,
            esc(&short),
            row - 8.0,
            esc(label),
            esc(shown),
            label_w + bw + 6.0,
            y + 15.0,
            esc(shown)
        );
    }
    s.push_str("</svg>");
    s
}

/// `1.2 GB`-style volumes.
pub fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < U.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[u])
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn hostile_labels_are_escaped_and_scale_is_round() {
        let svg = hbars(
            &[("<script>x</script>".into(), 10, "10".into())],
            "#000",
            "a\"b",
        );
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains("aria-label=\"a&quot;b\""));
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(1), 1);
        assert_eq!(nice_max(450), 500);
        let d = stacked_days(
            &[("11-01".into(), [1, 2, 0, 0, 3])],
            ["a", "b", "c", "d", "e"],
            "x",
        );
        assert_eq!(d.matches("<rect").count(), 3, "zero counts draw nothing");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
    }
}
