//! The subcommands that ask a running spout through its API: `status`, `health` and `routes`.
//! They never touch the agent's data path.

pub mod client;
pub mod routes;
pub mod status;

use std::fmt::Write as _;

/// `rows` as aligned columns, two spaces apart; the columns numbered in `right` aligned to the
/// right. The last column is not padded.
fn columns(rows: &[Vec<String>], right: &[usize]) -> String {
    let count = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..count)
        .map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let w = widths[i];
            let _ = match (i + 1 == row.len(), right.contains(&i)) {
                (true, _) => writeln!(out, "{cell}"),
                (false, true) => write!(out, "{cell:>w$}  "),
                (false, false) => write!(out, "{cell:<w$}  "),
            };
        }
    }
    out
}
