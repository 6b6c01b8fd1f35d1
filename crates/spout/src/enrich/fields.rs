//! The additional fields a container's messages carry besides the standard ones: static
//! `--field`s, chosen labels and environment variables, fields extracted by patterns,
//! `spout.field.<x>` labels, and the ECS task's fields. Computed from an inspect, once.

use std::collections::{BTreeMap, HashMap, HashSet};

use regex::Regex;

use crate::docker::source::ContainerInfo;

/// The fields every message carries in the GELF output (Docker's gelf driver's, and spout's own):
/// nothing computed from a container may take their place. `_id` is GELF's own.
pub const STANDARD: &[&str] = &[
    "_id",
    "_container_id",
    "_container_name",
    "_image_id",
    "_image_name",
    "_command",
    "_created",
    "_stream",
    "_truncated",
];

/// Labels the ECS agent sets on every container of a task.
pub mod ecs {
    pub const CLUSTER: &str = "com.amazonaws.ecs.cluster";
    pub const TASK_ARN: &str = "com.amazonaws.ecs.task-arn";
    pub const FAMILY: &str = "com.amazonaws.ecs.task-definition-family";
    pub const REVISION: &str = "com.amazonaws.ecs.task-definition-version";
    pub const CONTAINER_NAME: &str = "com.amazonaws.ecs.container-name";
}

/// A container label `spout.field.<x>=VALUE` gives its messages the field `_<x>`.
const FIELD_LABEL: &str = "spout.field.";

/// Most additional fields one container's messages carry; past it, those of the least
/// particular rules are left out.
pub const MAX_FIELDS: usize = 100;

/// `_` and `key`, with every character GELF does not allow in a field name (`^[\w\.\-]*$`)
/// replaced by `_`; `None` for an empty key or for `_id`, which GELF reserves.
pub fn field_name(key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let mut name = String::with_capacity(key.len() + 1);
    name.push('_');
    name.extend(key.chars().map(|c| if c.is_ascii() && gelf::is_name_byte(c as u8) { c } else { '_' }));
    (name != "_id").then_some(name)
}

/// Checks a field name given by the user (`--field`, a capture group), without the leading `_`.
pub fn check_name(key: &str) -> Result<String, String> {
    let name = format!("_{key}");
    if key.is_empty() || !key.bytes().all(gelf::is_name_byte) {
        return Err(format!("field name '{key}' may hold only letters, digits, '_', '-' and '.'"));
    }
    if STANDARD.contains(&name.as_str()) {
        return Err(format!("field name '{key}' is one of the standard fields ({name})"));
    }
    Ok(name)
}

/// Where a pattern is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The container's name.
    Name,
    /// The image as the container was started with it.
    Image,
    Label(String),
}

/// `--extract SOURCE=REGEX`: the named capture groups of REGEX, matched against SOURCE, become
/// fields.
#[derive(Debug, Clone)]
pub struct Extract {
    pub subject: Subject,
    pub regex: Regex,
}

impl Extract {
    /// Parses `SOURCE=REGEX`; the error names what is wrong.
    pub fn parse(spec: &str) -> Result<Extract, String> {
        let (subject, pattern) = spec
            .split_once('=')
            .ok_or_else(|| format!("'{spec}' is not SOURCE=REGEX (SOURCE: name, image or label:KEY)"))?;
        let subject = match subject {
            "name" => Subject::Name,
            "image" => Subject::Image,
            other => match other.strip_prefix("label:") {
                Some(key) if !key.is_empty() => Subject::Label(key.to_owned()),
                _ => return Err(format!("unknown source '{other}' (expected name, image or label:KEY)")),
            },
        };
        Ok(Extract { subject, regex: named_groups(pattern)? })
    }
}

/// A regex whose named groups become fields: at least one, each a valid field name.
pub fn named_groups(pattern: &str) -> Result<Regex, String> {
    let regex = regex(pattern)?;
    let names: Vec<&str> = regex.capture_names().flatten().collect();
    if names.is_empty() {
        return Err(format!("regex '{pattern}' has no named group such as (?P<service>...) to make a field of"));
    }
    for name in names {
        check_name(name).map_err(|e| format!("regex '{pattern}': {e}"))?;
    }
    Ok(regex)
}

/// A compiled regex, or the error that names it.
pub fn regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("bad regex '{pattern}': {}", one_line(&e.to_string())))
}

/// The regex crate explains an error over several lines, with a caret under the fault.
fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Which of a container's labels or environment variables become fields: by name, or by regex.
#[derive(Debug, Clone, Default)]
pub struct Pick {
    pub keys: HashSet<String>,
    pub regex: Option<Regex>,
}

impl Pick {
    fn wants(&self, key: &str) -> bool {
        self.keys.contains(key) || self.regex.as_ref().is_some_and(|r| r.is_match(key))
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.regex.is_none()
    }
}

/// The rules for the additional fields, validated.
#[derive(Debug, Clone, Default)]
pub struct FieldRules {
    /// `--field`: names with their `_`.
    pub statics: Vec<(String, String)>,
    pub labels: Pick,
    pub env: Pick,
    pub extracts: Vec<Extract>,
}

impl FieldRules {
    /// The fields of `info`'s messages, sorted by name. Where two rules give the same field, the
    /// more particular one wins: a `--field` gives way to a label or variable, that to a pattern,
    /// that to the container's own `spout.field.` label, and that to the ECS agent's labels. No
    /// standard field is ever given.
    pub fn fields(&self, info: &ContainerInfo) -> Vec<(String, String)> {
        // Each field with the rank of the rule that gave it: a later rule overrides an earlier.
        let mut fields: BTreeMap<String, (String, u8)> = BTreeMap::new();
        let mut rank = 0;
        let mut set = |name: Option<String>, value: &str, rank: u8| {
            if let Some(name) = name.filter(|n| !STANDARD.contains(&n.as_str())) {
                fields.insert(name, (value.to_owned(), rank));
            }
        };
        for (name, value) in &self.statics {
            set(Some(name.clone()), value, rank);
        }
        rank += 1;
        if !self.labels.is_empty() {
            for (key, value) in sorted(&info.meta.labels) {
                if self.labels.wants(key) {
                    set(field_name(key), value, rank);
                }
            }
        }
        if !self.env.is_empty() {
            for (key, value) in info.env.iter().filter_map(|e| e.split_once('=')) {
                if self.env.wants(key) {
                    set(field_name(key), value, rank);
                }
            }
        }
        rank += 1;
        for extract in &self.extracts {
            let subject = match &extract.subject {
                Subject::Name => Some(info.meta.name.as_str()),
                Subject::Image => Some(info.meta.image_name.as_str()),
                Subject::Label(key) => info.meta.labels.get(key).map(String::as_str),
            };
            let Some(captures) = subject.and_then(|s| extract.regex.captures(s)) else { continue };
            for name in extract.regex.capture_names().flatten() {
                if let Some(value) = captures.name(name) {
                    set(Some(format!("_{name}")), value.as_str(), rank);
                }
            }
        }
        rank += 1;
        for (key, value) in sorted(&info.meta.labels) {
            if let Some(key) = key.strip_prefix(FIELD_LABEL) {
                set(field_name(key), value, rank);
            }
        }
        rank += 1;
        for (name, value) in ecs_fields(&info.meta.labels) {
            set(Some(name.to_owned()), value, rank);
        }
        let mut fields: Vec<(String, (String, u8))> = fields.into_iter().collect();
        if fields.len() > MAX_FIELDS {
            // Keep those of the most particular rules.
            fields.sort_by_key(|(_, (_, rank))| std::cmp::Reverse(*rank));
            fields.truncate(MAX_FIELDS);
            fields.sort();
        }
        fields.into_iter().map(|(name, (value, _))| (name, value)).collect()
    }
}

/// Labels in name order, so that two that sanitise to the same field name always resolve alike.
fn sorted(labels: &HashMap<String, String>) -> BTreeMap<&str, &str> {
    labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// The ECS task's fields, from the labels the ECS agent sets.
pub fn ecs_fields(labels: &HashMap<String, String>) -> Vec<(&'static str, &str)> {
    let label = |key: &str| labels.get(key).map(String::as_str);
    let task_id = label(ecs::TASK_ARN).and_then(|arn| arn.rsplit('/').next()).filter(|id| !id.is_empty());
    [
        ("_ecs_cluster", label(ecs::CLUSTER)),
        ("_ecs_task_arn", label(ecs::TASK_ARN)),
        ("_ecs_task_id", task_id),
        ("_ecs_task_family", label(ecs::FAMILY)),
        ("_ecs_task_revision", label(ecs::REVISION)),
        ("_ecs_container_name", label(ecs::CONTAINER_NAME)),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name, value?)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Container;

    const ARN: &str = "arn:aws:ecs:eu-west-1:123456789012:task/production/0f1e2d3c4b5a69788796a5b4c3d2e1f0";

    fn ecs_info() -> ContainerInfo {
        ContainerInfo {
            meta: Container {
                name: "ecs-production-backend-app-12-app-e2f6c8a1b3d5f7a9c0e1".into(),
                image_name: "registry.example/backend:1.4".into(),
                labels: [
                    (ecs::CLUSTER, "production"),
                    (ecs::TASK_ARN, ARN),
                    (ecs::FAMILY, "production-backend-app"),
                    (ecs::REVISION, "12"),
                    (ecs::CONTAINER_NAME, "app"),
                    ("com.example.team", "payments"),
                    ("spout.field.tier", "web"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
                ..Default::default()
            },
            env: vec!["JAVA_OPTS=-Xmx1g".into(), "SECRET=x".into(), "EMPTY=".into()],
            ..Default::default()
        }
    }

    fn get<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
        fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn names_are_sanitised_and_id_is_never_one() {
        assert_eq!(field_name("com.example/team name").as_deref(), Some("_com.example_team_name"));
        assert_eq!(field_name("id"), None);
        assert_eq!(field_name(""), None);
        assert!(check_name("bad name").is_err());
        assert!(check_name("container_name").expect_err("standard").contains("standard"));
        assert!(check_name("id").is_err());
        assert_eq!(check_name("env-1.x"), Ok("_env-1.x".into()));
    }

    #[test]
    fn every_ecs_field_comes_from_the_agents_labels() {
        let fields = FieldRules::default().fields(&ecs_info());
        assert_eq!(get(&fields, "_ecs_cluster"), Some("production"));
        assert_eq!(get(&fields, "_ecs_task_arn"), Some(ARN));
        assert_eq!(get(&fields, "_ecs_task_id"), Some("0f1e2d3c4b5a69788796a5b4c3d2e1f0"));
        assert_eq!(get(&fields, "_ecs_task_family"), Some("production-backend-app"));
        assert_eq!(get(&fields, "_ecs_task_revision"), Some("12"));
        assert_eq!(get(&fields, "_ecs_container_name"), Some("app"));
        assert_eq!(get(&fields, "_tier"), Some("web"), "spout.field. labels are always on");
        assert_eq!(fields.len(), 7);
        assert!(FieldRules::default().fields(&ContainerInfo::default()).is_empty());
    }

    #[test]
    fn the_ecs_name_pattern_and_the_family_label_give_the_same_fields() {
        let by_name = Extract::parse(
            r"name=^ecs-(?P<environment>[^-]+)-(?P<service>.+)-\d+-(?P<container>[A-Za-z0-9-]+)-[0-9a-f]{20}$",
        )
        .expect("valid");
        let by_label = [
            Extract::parse(r"label:com.amazonaws.ecs.task-definition-family=^(?P<environment>[^-]+)-(?P<service>.+)$")
                .expect("valid"),
            Extract::parse(r"label:com.amazonaws.ecs.container-name=(?P<container>.+)").expect("valid"),
        ];
        for extracts in [vec![by_name], by_label.to_vec()] {
            let fields = FieldRules { extracts, ..Default::default() }.fields(&ecs_info());
            assert_eq!(get(&fields, "_environment"), Some("production"));
            assert_eq!(get(&fields, "_service"), Some("backend-app"));
            assert_eq!(get(&fields, "_container"), Some("app"));
        }
    }

    #[test]
    fn labels_and_env_by_name_or_regex() {
        let rules = FieldRules {
            labels: Pick { keys: ["com.example.team".to_owned()].into(), regex: None },
            env: Pick { keys: HashSet::new(), regex: Some(regex("^(JAVA_|EMPTY)").expect("valid")) },
            statics: vec![("_region".into(), "eu-west-1".into())],
            ..Default::default()
        };
        let fields = rules.fields(&ecs_info());
        assert_eq!(get(&fields, "_com.example.team"), Some("payments"));
        assert_eq!(get(&fields, "_JAVA_OPTS"), Some("-Xmx1g"));
        assert_eq!(get(&fields, "_EMPTY"), Some(""));
        assert_eq!(get(&fields, "_SECRET"), None);
        assert_eq!(get(&fields, "_region"), Some("eu-west-1"));
    }

    #[test]
    fn the_more_particular_rule_wins_and_standard_fields_are_never_given() {
        let mut info = ecs_info();
        info.meta.labels.insert("spout.field.environment".into(), "from-label".into());
        info.meta.labels.insert("spout.field.ecs_cluster".into(), "spoofed".into());
        info.meta.labels.insert("spout.field.container_name".into(), "spoofed".into());
        info.meta.labels.insert("spout.field.id".into(), "spoofed".into());
        info.meta.labels.insert("container_id".into(), "spoofed".into());
        let rules = FieldRules {
            statics: vec![("_environment".into(), "static".into()), ("_service".into(), "static".into())],
            labels: Pick { keys: HashSet::new(), regex: Some(regex(".").expect("valid")) },
            extracts: vec![Extract::parse(r"name=^ecs-(?P<environment>[^-]+)").expect("valid")],
            ..Default::default()
        };
        let fields = rules.fields(&info);
        assert_eq!(get(&fields, "_environment"), Some("from-label"), "spout.field. beats the pattern");
        assert_eq!(get(&fields, "_service"), Some("static"));
        assert_eq!(get(&fields, "_ecs_cluster"), Some("production"), "the ECS agent's labels win");
        for standard in STANDARD {
            assert_eq!(get(&fields, standard), None, "{standard} is never computed");
        }
    }

    #[test]
    fn bad_extracts_name_their_problem() {
        assert!(Extract::parse("name").expect_err("no =").contains("SOURCE=REGEX"));
        assert!(Extract::parse("host=(?P<x>.)").expect_err("source").contains("unknown source 'host'"));
        assert!(Extract::parse("label:=(?P<x>.)").is_err());
        assert!(Extract::parse("name=(unclosed").expect_err("regex").contains("bad regex"));
        assert!(Extract::parse("name=^ecs-.*").expect_err("no group").contains("no named group"));
        assert!(Extract::parse("name=(?P<id>.*)").is_err(), "_id is reserved");
        assert!(Extract::parse("name=(?P<stream>.*)").expect_err("standard").contains("standard"));
    }

    #[test]
    fn a_container_with_a_thousand_labels_gets_at_most_the_cap() {
        let mut info = ecs_info();
        info.meta.labels.extend((0..1000).map(|i| (format!("spout.field.a{i:04}"), "v".to_owned())));
        let fields = FieldRules::default().fields(&info);
        assert_eq!(fields.len(), MAX_FIELDS);
        assert_eq!(get(&fields, "_ecs_cluster"), Some("production"), "the most particular rules' fields stay");
        assert!(fields.windows(2).all(|w| w[0].0 < w[1].0), "sorted by name");
    }
}
