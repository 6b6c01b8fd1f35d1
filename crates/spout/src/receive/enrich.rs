//! The agent's enrichment, where it applies to a received message: `--field KEY=VALUE` sets
//! `_KEY`, and `--extract SOURCE=REGEX` makes fields of REGEX's named groups matched against one
//! of the message's fields.

use regex::Regex;

use super::event::{valid_name, Event};
use crate::enrich::fields::{check_name, named_groups};

#[derive(Debug, Clone, Default)]
pub struct Enrich {
    fields: Vec<(String, String)>,
    extracts: Vec<(String, Regex)>,
}

impl Enrich {
    /// Parses the options; every problem names the option and what is wrong.
    pub fn parse(fields: &[String], extracts: &[String]) -> Result<Enrich, Vec<String>> {
        let mut problems = Vec::new();
        let mut enrich = Enrich::default();
        for spec in fields {
            let parsed = spec
                .split_once('=')
                .ok_or_else(|| format!("'{spec}' is not KEY=VALUE"))
                .and_then(|(key, value)| Ok((check_name(key)?, value.to_owned())));
            match parsed {
                Ok(field) => enrich.fields.push(field),
                Err(e) => problems.push(format!("--field: {e}")),
            }
        }
        for spec in extracts {
            match Enrich::extract(spec) {
                Ok(extract) => enrich.extracts.push(extract),
                Err(e) => problems.push(format!("--extract: {e}")),
            }
        }
        if problems.is_empty() {
            Ok(enrich)
        } else {
            Err(problems)
        }
    }

    fn extract(spec: &str) -> Result<(String, Regex), String> {
        let (source, pattern) = spec
            .split_once('=')
            .ok_or_else(|| format!("'{spec}' is not SOURCE=REGEX (SOURCE: a field, e.g. _container_name)"))?;
        // The agent's words for the fields Docker's gelf driver sends.
        let source = match source {
            "name" => "_container_name",
            "image" => "_image_name",
            other => other,
        };
        if source.is_empty() || !valid_name(source) {
            return Err(format!("'{source}' is not a field name (e.g. host, short_message or _container_name)"));
        }
        Ok((source.to_owned(), named_groups(pattern)?))
    }

    pub fn apply(&self, event: &mut Event) {
        let mut found = Vec::new();
        for (source, regex) in &self.extracts {
            let Some(text) = event.text(source) else { continue };
            let Some(captures) = regex.captures(&text) else { continue };
            for name in regex.capture_names().flatten() {
                if let Some(m) = captures.name(name) {
                    found.push((format!("_{name}"), m.as_str().to_owned()));
                }
            }
        }
        for (name, value) in found.iter().chain(&self.fields) {
            event.set(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_set_and_extracted_from_the_messages_own() {
        let enrich = Enrich::parse(
            &["site=eu-1".into()],
            &[r"name=^ecs-(?P<family>[a-z]+)-\d+".into(), r"short_message=user=(?P<user>\w+)".into()],
        )
        .expect("valid");
        let mut e = Event::parse(
            br#"{"host":"h","short_message":"login user=ann","_container_name":"ecs-shop-3-web-abc"}"#,
            1.0,
        )
        .expect("valid");
        enrich.apply(&mut e);
        assert_eq!((e.fields()["_site"].as_str(), e.fields()["_family"].as_str()), (Some("eu-1"), Some("shop")));
        assert_eq!(e.fields()["_user"], "ann");
    }

    #[test]
    fn every_bad_option_is_named() {
        let problems = Enrich::parse(&["nokey".into(), "id=x".into()], &["a b=(?P<x>.)".into(), "host=(".into()])
            .expect_err("invalid");
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("--field: ") && problems[2].starts_with("--extract: "), "{problems:?}");
    }
}
