//! What spout makes of a container, decided once when it is inspected (and again when it is
//! renamed) and then shared by every message it writes: whether to read it at all, the fields its
//! messages carry, which routes want them, and how its lines are joined.

pub mod fields;
pub mod filter;

use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use tracing::warn;

use crate::docker::source::ContainerInfo;
use crate::message::Container;
use crate::multiline;
use fields::{ecs, FieldRules};

/// A container label that turns joining off (`off`) for the container's lines.
pub const MULTILINE_LABEL: &str = "spout.multiline";
/// A container label that sets the pattern of a message's first line for the container's lines.
pub const MULTILINE_START_LABEL: &str = "spout.multiline.start";

/// Why a container is not read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Opted out with LOGSPOUT=ignore or the label spout.exclude=true.
    OptedOut,
    /// It has a label `--exclude-label` names.
    Excluded(String),
    /// An ECS pause container or the ECS agent (`--include-ecs-internal` ships them).
    EcsInternal,
    /// spout's own container.
    Spout,
    /// Its log driver keeps nothing the API can return.
    Unreadable(String),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::OptedOut => f.write_str("opted out (LOGSPOUT=ignore or spout.exclude=true)"),
            Skip::Excluded(key) => write!(f, "excluded by its label {key}"),
            Skip::EcsInternal => f.write_str("an ECS internal container (--include-ecs-internal ships it)"),
            Skip::Spout => f.write_str("spout's own container"),
            Skip::Unreadable(driver) => write!(f, "its log driver ({driver}) keeps nothing the Docker API can return"),
        }
    }
}

/// A container with label `key` (set to `value`, if given) is not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMatch {
    pub key: String,
    pub value: Option<String>,
    /// Values compare without regard to case, as Logspout compares them.
    pub any_case: bool,
}

impl LabelMatch {
    /// `--exclude-label KEY` (any value) or `KEY=VALUE`.
    pub fn parse(spec: &str) -> Result<LabelMatch, String> {
        let (key, value) = match spec.split_once('=') {
            Some((key, value)) => (key, Some(value.to_owned())),
            None => (spec, None),
        };
        if key.trim().is_empty() {
            return Err(format!("'{spec}' names no label (expected KEY or KEY=VALUE)"));
        }
        Ok(LabelMatch { key: key.to_owned(), value, any_case: false })
    }

    /// Logspout's `EXCLUDE_LABEL`: `KEY` (set to `true`) or `KEY:VALUE`, in any case.
    pub fn logspout(spec: &str) -> Result<LabelMatch, String> {
        let (key, value) = spec.split_once(':').unwrap_or((spec, "true"));
        if key.trim().is_empty() {
            return Err(format!("'{spec}' names no label (expected KEY or KEY:VALUE)"));
        }
        Ok(LabelMatch { key: key.to_owned(), value: Some(value.to_owned()), any_case: true })
    }

    fn matches(&self, info: &ContainerInfo) -> bool {
        let Some(value) = info.meta.labels.get(&self.key) else { return false };
        match &self.value {
            None => true,
            Some(want) if self.any_case => want.eq_ignore_ascii_case(value),
            Some(want) => want == value,
        }
    }
}

/// How lines are joined into multiline messages, before a container's labels have their say.
#[derive(Debug, Clone)]
pub struct Multiline {
    /// `--multiline-start`; `None`: lines are not joined unless a container asks.
    pub start: Option<Regex>,
    pub timeout: Duration,
    pub max_lines: usize,
}

/// The rules, validated; one for the whole agent.
#[derive(Debug, Clone)]
pub struct Enrichment {
    pub exclude_labels: Vec<LabelMatch>,
    pub include_ecs_internal: bool,
    pub fields: FieldRules,
    pub multiline: Multiline,
}

impl Enrichment {
    /// Whether to leave a container alone; `own_id` is spout's own container, if it runs in one.
    pub fn skip(&self, info: &ContainerInfo, own_id: Option<&str>) -> Option<Skip> {
        let env_ignored = info
            .env
            .iter()
            .any(|e| e.split_once('=').is_some_and(|(k, v)| k == "LOGSPOUT" && v.eq_ignore_ascii_case("ignore")));
        let label_excluded = info.meta.labels.get("spout.exclude").is_some_and(|v| v == "true");
        if env_ignored || label_excluded {
            Some(Skip::OptedOut)
        } else if let Some(m) = self.exclude_labels.iter().find(|m| m.matches(info)) {
            Some(Skip::Excluded(m.key.clone()))
        } else if !self.include_ecs_internal && is_ecs_internal(info) {
            Some(Skip::EcsInternal)
        } else if own_id == Some(info.meta.id.as_str()) {
            Some(Skip::Spout)
        } else if info.log_driver.as_deref() == Some("none") {
            Some(Skip::Unreadable("none".to_owned()))
        } else {
            None
        }
    }

    /// The metadata every message of the container carries, with the host name they give. Which
    /// routes want it is the router's to say ([`crate::router::Router::rejected_by`]).
    pub fn container(&self, info: &ContainerInfo, host: &Arc<str>) -> Container {
        Container { host: Arc::clone(host), fields: self.fields.fields(info), ..info.meta.clone() }
    }

    /// How the container's lines are joined, if they are: its labels `spout.multiline=off` and
    /// `spout.multiline.start=REGEX` come before `--multiline-start`. A label whose pattern does
    /// not compile is warned of and ignored. A joined message is at most `max_bytes` long, as a
    /// single line is.
    pub fn multiline(&self, info: &ContainerInfo, max_bytes: usize) -> Option<multiline::Rules> {
        if info.meta.labels.get(MULTILINE_LABEL).is_some_and(|v| v == "off") {
            return None;
        }
        let start = match info.meta.labels.get(MULTILINE_START_LABEL) {
            Some(pattern) => match fields::regex(pattern) {
                Ok(regex) => Some(regex),
                Err(e) => {
                    warn!(container = %info.meta.id, name = %info.meta.name, error = %e,
                          "ignoring the container's label {MULTILINE_START_LABEL}");
                    self.multiline.start.clone()
                }
            },
            None => self.multiline.start.clone(),
        };
        Some(multiline::Rules {
            start: start?,
            timeout: self.multiline.timeout,
            max_lines: self.multiline.max_lines,
            max_bytes,
        })
    }
}

impl Default for Enrichment {
    /// Nothing excluded beyond the opt-outs, no extra fields, no filters, no joining.
    fn default() -> Self {
        Enrichment {
            exclude_labels: Vec::new(),
            include_ecs_internal: false,
            fields: FieldRules::default(),
            multiline: Multiline { start: None, timeout: Duration::from_secs(1), max_lines: 1000 },
        }
    }
}

/// An ECS pause container (awsvpc networking, Service Connect) or the ECS agent itself.
fn is_ecs_internal(info: &ContainerInfo) -> bool {
    let pause = info.meta.labels.get(ecs::CONTAINER_NAME).is_some_and(|n| n.starts_with("~internal~ecs~pause"));
    let agent = !info.meta.labels.contains_key(ecs::TASK_ARN)
        && (info.meta.name == "ecs-agent" || info.meta.image_name.starts_with("amazon/amazon-ecs-agent"));
    pause || agent
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "28b8e9df64d0d021bf3589f3bbddd0b8b0da96234517d51821931d3e1c55ab26";

    fn info(name: &str, labels: &[(&str, &str)]) -> ContainerInfo {
        ContainerInfo {
            meta: Container {
                id: ID.into(),
                name: name.into(),
                image_name: "busybox".into(),
                labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
                ..Default::default()
            },
            running: true,
            ..Default::default()
        }
    }

    #[test]
    fn opt_outs_exclusions_and_own_container_are_skipped() {
        let e = Enrichment {
            exclude_labels: vec![
                LabelMatch::parse("com.example.debug").expect("valid"),
                LabelMatch::parse("tier=batch").expect("valid"),
            ],
            ..Enrichment::default()
        };
        assert_eq!(e.skip(&info("web", &[]), None), None);
        let mut env_ignored = info("web", &[]);
        env_ignored.env = vec!["A=1".into(), "LOGSPOUT=Ignore".into()];
        assert_eq!(e.skip(&env_ignored, None), Some(Skip::OptedOut));
        assert_eq!(e.skip(&info("web", &[("spout.exclude", "true")]), None), Some(Skip::OptedOut));
        assert_eq!(
            e.skip(&info("web", &[("com.example.debug", "")]), None),
            Some(Skip::Excluded("com.example.debug".into()))
        );
        assert_eq!(e.skip(&info("web", &[("tier", "batch")]), None), Some(Skip::Excluded("tier".into())));
        assert_eq!(e.skip(&info("web", &[("tier", "web")]), None), None, "another value is not excluded");
        assert_eq!(e.skip(&info("web", &[]), Some(ID)), Some(Skip::Spout));
        let mut unreadable = info("web", &[]);
        unreadable.log_driver = Some("none".into());
        assert_eq!(e.skip(&unreadable, None), Some(Skip::Unreadable("none".into())));
    }

    #[test]
    fn ecs_internals_are_skipped_unless_asked_for() {
        let pause = info("ecs-web-3-internalecspause-8a9b", &[(ecs::CONTAINER_NAME, "~internal~ecs~pause")]);
        let agent = info("ecs-agent", &[]);
        let task = info("ecs-web-3-app-8a9b", &[(ecs::CONTAINER_NAME, "app"), (ecs::TASK_ARN, "arn:x/t/1")]);
        let e = Enrichment::default();
        assert_eq!(e.skip(&pause, None), Some(Skip::EcsInternal));
        assert_eq!(e.skip(&agent, None), Some(Skip::EcsInternal));
        assert_eq!(e.skip(&task, None), None);
        let e = Enrichment { include_ecs_internal: true, ..Enrichment::default() };
        assert_eq!((e.skip(&pause, None), e.skip(&agent, None)), (None, None));
    }

    #[test]
    fn label_matches_parse_every_form() {
        assert_eq!(LabelMatch::parse("a"), Ok(LabelMatch { key: "a".into(), value: None, any_case: false }));
        let a_is_b_c = LabelMatch { key: "a".into(), value: Some("b=c".into()), any_case: false };
        assert_eq!(LabelMatch::parse("a=b=c"), Ok(a_is_b_c));
        assert!(LabelMatch::parse("=b").is_err());
        // Logspout's EXCLUDE_LABEL: a bare key means the value true, in any case.
        let e = Enrichment {
            exclude_labels: vec![
                LabelMatch::logspout("logspout.exclude").expect("valid"),
                LabelMatch::logspout("tier:Batch").expect("valid"),
            ],
            ..Enrichment::default()
        };
        assert!(e.skip(&info("a", &[("logspout.exclude", "TRUE")]), None).is_some());
        assert_eq!(e.skip(&info("a", &[("logspout.exclude", "false")]), None), None);
        assert!(e.skip(&info("a", &[("tier", "batch")]), None).is_some());
        assert!(LabelMatch::logspout(":x").is_err());
    }

    #[test]
    fn containers_choose_their_joining() {
        let e = Enrichment {
            multiline: Multiline { start: Some(Regex::new(r"^\S").expect("valid")), ..Enrichment::default().multiline },
            ..Enrichment::default()
        };
        assert_eq!(e.multiline(&info("a", &[]), 1 << 20).map(|r| r.start.to_string()), Some(r"^\S".into()));
        assert!(e.multiline(&info("a", &[(MULTILINE_LABEL, "off")]), 1 << 20).is_none());
        let own = e.multiline(&info("a", &[(MULTILINE_START_LABEL, "^2026-")]), 1 << 20).expect("on");
        assert_eq!(own.start.to_string(), "^2026-");
        let bad = e.multiline(&info("a", &[(MULTILINE_START_LABEL, "(")]), 1 << 20).expect("on");
        assert_eq!(bad.start.to_string(), r"^\S", "a bad label falls back to the agent's pattern");
        let off_by_default = Enrichment::default();
        assert!(off_by_default.multiline(&info("a", &[]), 1 << 20).is_none());
        assert!(off_by_default.multiline(&info("a", &[(MULTILINE_START_LABEL, "^x")]), 1 << 20).is_some());
    }
}
