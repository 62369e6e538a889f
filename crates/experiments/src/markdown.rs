//! Pieces of `report.md` that several experiments write.

use std::fmt::{Display, Write as _};

/// Appends a Markdown table of three columns: the `header` row as written
/// (e.g. `"| event | this run | paper |"`), the separator, one row per
/// `(first, second, third)` of `rows`, then a blank line.
pub(crate) fn three_column_table<A: Display, B: Display, C: Display>(
    md: &mut String,
    header: &str,
    rows: &[(A, B, C)],
) {
    let _ = writeln!(md, "{header}\n|---|---|---|");
    for (a, b, c) in rows {
        let _ = writeln!(md, "| {a} | {b} | {c} |");
    }
    let _ = writeln!(md);
}

/// Appends the table `| rank | class | change |` of the classes in `ranked`
/// (class, change), largest change first.
pub(crate) fn ranked_classes(md: &mut String, ranked: &[(usize, f64)]) {
    let rows: Vec<_> = ranked
        .iter()
        .enumerate()
        .map(|(i, (class, change))| (i + 1, class, format!("{change:.4}")))
        .collect();
    three_column_table(md, "| rank | class | change |", &rows);
}

/// Appends a paragraph `{caption}: ![{alt}]({file})` for each
/// `(caption, alt, file)` of `figures`.
pub(crate) fn figure_links(md: &mut String, figures: &[(&str, &str, &str)]) {
    for (caption, alt, file) in figures {
        let _ = writeln!(md, "{caption}: ![{alt}]({file})\n");
    }
}
