//! A route's filter, from its URI's `filter.*` options (Logspout's names): which containers, and
//! which of their streams, the route wants. Judged once per container and again on a rename.

use std::collections::BTreeMap;
use std::fmt;

use globset::{Glob, GlobMatcher};

use crate::docker::source::ContainerInfo;
use crate::message::{Container, Stream};

/// A glob, compared by the text it was given as.
#[derive(Clone)]
pub struct Pattern {
    text: String,
    matcher: GlobMatcher,
}

impl Pattern {
    fn new(option: &str, text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err(format!("option {option}: empty glob (it would match nothing; use * for anything)"));
        }
        let glob = Glob::new(text).map_err(|e| format!("option {option}: bad glob '{text}': {}", e.kind()))?;
        Ok(Pattern { text: text.to_owned(), matcher: glob.compile_matcher() })
    }

    fn is_match(&self, s: &str) -> bool {
        self.matcher.is_match(s)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Pattern {}

/// Every condition given must hold; a route without `filter.*` options wants everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteFilter {
    /// `filter.name=GLOB`, the container's name.
    name: Option<Pattern>,
    /// `filter.id=PREFIX`, of the container's id.
    id: Option<String>,
    /// `filter.sources=stdout,stderr`: the streams wanted; `None`, both.
    sources: Option<[bool; 2]>,
    /// `filter.labels=KEY:GLOB,…`: each label must exist and match.
    labels: Vec<(String, Pattern)>,
    /// `filter.image=GLOB`, the image as the container was started with it.
    image: Option<Pattern>,
}

impl RouteFilter {
    /// Takes the `filter.*` options out of `options`; on failure, every problem found.
    pub fn from_options(options: &mut BTreeMap<String, String>) -> Result<RouteFilter, Vec<String>> {
        let mut filter = RouteFilter::default();
        let mut problems = Vec::new();
        fn glob(problems: &mut Vec<String>, option: &str, text: &str) -> Option<Pattern> {
            Pattern::new(option, text).map_err(|e| problems.push(e)).ok()
        }
        if let Some(text) = options.remove("filter.name") {
            filter.name = glob(&mut problems, "filter.name", &text);
        }
        if let Some(text) = options.remove("filter.image") {
            filter.image = glob(&mut problems, "filter.image", &text);
        }
        if let Some(labels) = options.remove("filter.labels") {
            for pair in split_outside_braces(&labels) {
                match pair.split_once(':').filter(|(key, _)| !key.is_empty()) {
                    Some((key, text)) => {
                        filter.labels.extend(glob(&mut problems, "filter.labels", text).map(|p| (key.to_owned(), p)))
                    }
                    None => problems.push(format!("option filter.labels: '{pair}' is not KEY:GLOB")),
                }
            }
        }
        if let Some(prefix) = options.remove("filter.id") {
            if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
                problems.push(format!("option filter.id: '{prefix}' is not the start of a container id (hex digits)"));
            }
            filter.id = Some(prefix.to_ascii_lowercase());
        }
        if let Some(sources) = options.remove("filter.sources") {
            let mut wanted = [false; 2];
            for source in sources.split(',').map(str::trim) {
                match source {
                    "stdout" => wanted[Stream::Stdout as usize] = true,
                    "stderr" => wanted[Stream::Stderr as usize] = true,
                    other => problems
                        .push(format!("option filter.sources: unknown source '{other}' (expected stdout, stderr)")),
                }
            }
            filter.sources = Some(wanted);
        }
        if problems.is_empty() {
            Ok(filter)
        } else {
            Err(problems)
        }
    }

    /// Which of the container's streams this route wants, by [`Stream`] number.
    pub fn wants(&self, info: &ContainerInfo) -> [bool; 2] {
        self.wants_container(&info.meta)
    }

    /// The same, of a container as its messages carry it.
    pub fn wants_container(&self, c: &Container) -> [bool; 2] {
        let labels = &c.labels;
        let container = self.name.as_ref().is_none_or(|p| p.is_match(&c.name))
            && self.id.as_ref().is_none_or(|prefix| c.id.starts_with(prefix.as_str()))
            && self.image.as_ref().is_none_or(|p| p.is_match(&c.image_name))
            && self.labels.iter().all(|(key, p)| labels.get(key).is_some_and(|v| p.is_match(v)));
        let sources = self.sources.unwrap_or([true; 2]);
        [container && sources[0], container && sources[1]]
    }
}

/// `s` split at the commas that are not inside a glob's `{a,b}`.
fn split_outside_braces(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(options: &[(&str, &str)]) -> Result<RouteFilter, String> {
        let mut options: BTreeMap<String, String> =
            options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let filter = RouteFilter::from_options(&mut options).map_err(|problems| problems.join("; "));
        assert!(filter.is_err() || options.is_empty(), "every filter option is taken");
        filter
    }

    fn info(name: &str, image: &str, labels: &[(&str, &str)]) -> ContainerInfo {
        ContainerInfo {
            meta: Container {
                id: format!("3b6ba57db54a{}", "0".repeat(52)),
                name: name.into(),
                image_name: image.into(),
                labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn no_filter_wants_everything() {
        assert_eq!(filter(&[]).expect("valid").wants(&info("a", "b", &[])), [true, true]);
    }

    #[test]
    fn each_condition_must_hold() {
        let web = info("ecs-web-3-app-1a2b", "nginx:1.27", &[("team", "payments"), ("tier", "frontend")]);
        let db = info("db_1", "postgres:16", &[("team", "payments")]);
        let by_name = filter(&[("filter.name", "ecs-web-*")]).expect("valid");
        assert_eq!((by_name.wants(&web), by_name.wants(&db)), ([true; 2], [false; 2]));
        let by_id = filter(&[("filter.id", "3B6BA5")]).expect("valid");
        assert_eq!(by_id.wants(&db), [true; 2]);
        assert_eq!(filter(&[("filter.id", "ffff")]).expect("valid").wants(&db), [false; 2]);
        let by_labels = filter(&[("filter.labels", "team:pay*,tier:front*")]).expect("valid");
        assert_eq!((by_labels.wants(&web), by_labels.wants(&db)), ([true; 2], [false; 2]));
        let alternatives = filter(&[("filter.labels", "team:{data,ops},tier:*")]).expect("valid");
        assert_eq!((alternatives.wants(&web), alternatives.wants(&db)), ([false; 2], [false; 2]));
        let alternatives = filter(&[("filter.labels", "team:{data,payments}")]).expect("valid");
        assert_eq!((alternatives.wants(&web), alternatives.wants(&db)), ([true; 2], [true; 2]));
        let by_image = filter(&[("filter.image", "postgres:*")]).expect("valid");
        assert_eq!((by_image.wants(&web), by_image.wants(&db)), ([false; 2], [true; 2]));
        let stderr_of_web = filter(&[("filter.sources", "stderr"), ("filter.name", "ecs-web-*")]).expect("valid");
        assert_eq!((stderr_of_web.wants(&web), stderr_of_web.wants(&db)), ([false, true], [false; 2]));
    }

    #[test]
    fn bad_filters_name_the_option_and_the_problem() {
        let e = filter(&[("filter.sources", "stdout,console")]).expect_err("bad");
        assert!(e.contains("filter.sources") && e.contains("'console'"), "{e}");
        assert!(filter(&[("filter.labels", "team")]).expect_err("bad").contains("KEY:GLOB"));
        assert!(filter(&[("filter.name", "web-[")]).expect_err("bad").contains("filter.name: bad glob 'web-['"));
        assert!(filter(&[("filter.id", "xyz")]).expect_err("bad").contains("filter.id"));
        assert!(filter(&[("filter.name", "")]).expect_err("bad").contains("filter.name: empty glob"));
        let every =
            filter(&[("filter.name", "["), ("filter.labels", "a:[,b"), ("filter.sources", "x")]).expect_err("bad");
        assert_eq!(every.matches("option filter.").count(), 4, "every problem: {every}");
    }
}
