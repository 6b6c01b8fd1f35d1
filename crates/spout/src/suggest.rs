//! "Did you mean …": the known word closest to a misspelt one, if any is close enough.

/// The candidate closest to `word` within a few edits (more for longer words), if one is.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word: Vec<char> = word.to_lowercase().chars().collect();
    let allowed = match word.len() {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .map(|c| (distance(&word, &c.to_lowercase().chars().collect::<Vec<_>>()), c))
        .filter(|(d, _)| (1..=allowed).contains(d))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// ` (did you mean 'X'?)` for the closest candidate, or nothing.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates).map(|c| format!(" (did you mean '{c}'?)")).unwrap_or_default()
}

/// Edits from `a` to `b`: characters inserted, deleted, replaced, or two neighbours swapped
/// (`tpc` for `tcp` is one edit).
fn distance(a: &[char], b: &[char]) -> usize {
    // Three rows of the table: two back (for swaps), the previous one, and this one.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut row = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        row[0] = i;
        for j in 1..=b.len() {
            let replace = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (previous[j] + 1).min(row[j - 1] + 1).min(previous[j - 1] + replace);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut row);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_words_are_suggested_and_far_ones_are_not() {
        let keys = ["state_dir", "api_token", "http", "hostname"];
        assert_eq!(closest("stat_dir", keys), Some("state_dir"));
        assert_eq!(closest("api_tokn", keys), Some("api_token"));
        assert_eq!(closest("HTTP", keys), None, "the same word is not a misspelling of itself");
        assert_eq!(closest("htp", keys), Some("http"));
        assert_eq!(closest("backlog", keys), None);
        assert_eq!(closest("gelf+tpc", ["gelf", "gelf+udp", "gelf+tcp", "stdout"]), Some("gelf+tcp"), "a swap");
        assert_eq!(closest("kafka", ["gelf", "gelf+udp", "gelf+tcp", "stdout"]), None);
        assert_eq!(did_you_mean("stdot", ["stdout"]), " (did you mean 'stdout'?)");
        assert_eq!(did_you_mean("zzz", ["stdout"]), "");
    }

    #[test]
    fn distances() {
        let d = |a: &str, b: &str| distance(&a.chars().collect::<Vec<_>>(), &b.chars().collect::<Vec<_>>());
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("abc", "abc"), 0);
        assert_eq!(d("abc", "acb"), 1);
        assert_eq!(d("kitten", "sitting"), 3);
    }
}
