//! Reading a route's options: each taken out of the URI's options by name, checked, or its
//! default when not given.

use std::collections::BTreeMap;
use std::time::Duration;

/// The option `name`, `true` or `false`, or `default` when not given.
pub fn bool_option(options: &mut BTreeMap<String, String>, name: &str, default: bool) -> Result<bool, String> {
    match options.remove(name).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(format!("option {name}: '{other}' is not true or false")),
    }
}

/// The option `name` as its type reads it, or `default` when not given.
pub fn parsed_option<T: std::str::FromStr<Err = String>>(
    options: &mut BTreeMap<String, String>,
    name: &str,
    default: T,
) -> Result<T, String> {
    match options.remove(name) {
        Some(v) => v.parse().map_err(|e| format!("option {name}: {e}")),
        None => Ok(default),
    }
}

/// The duration option `name`, from `min` to an hour, or `default` when not given.
pub fn duration_option(
    options: &mut BTreeMap<String, String>,
    name: &str,
    default: Duration,
    min: Duration,
) -> Result<Duration, String> {
    let Some(value) = options.remove(name) else { return Ok(default) };
    match humantime::parse_duration(&value) {
        Ok(d) if d >= min && d <= Duration::from_secs(3600) => Ok(d),
        _ => Err(format!(
            "option {name}: '{value}' is not a duration from {} to 1h (e.g. 250ms, 30s)",
            humantime::format_duration(min)
        )),
    }
}

/// The number option `name`, from `min` to `max`, or `default` when not given.
pub fn number_option(
    options: &mut BTreeMap<String, String>,
    name: &str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, String> {
    let Some(value) = options.remove(name) else { return Ok(default) };
    match value.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("option {name}: '{value}' is not a number from {min} to {max}")),
    }
}
