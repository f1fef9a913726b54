//! What cairn's bundled fault injectors share: parsing a config into its
//! type with refusals that name the key at fault, the range checks their
//! configs have in common, and draws from a request's random number that
//! are independent of one another and as deterministic.

use cairn_plugin_sdk::Request;
use serde::de::DeserializeOwned;

/// Parses the config JSON (empty text counts as `{}`) into `T`: an object
/// whose keys and value types match, or a refusal naming the key at fault.
pub fn parse_config<T: DeserializeOwned>(config: &str) -> Result<T, String> {
    let text = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|err| format!("invalid config: not JSON: {err}"))?;
    if !value.is_object() {
        return Err("invalid config: expected a JSON object".to_owned());
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.inner().to_string();
        if path == "." || inner.starts_with("unknown field") {
            format!("invalid config: {inner}")
        } else {
            format!("invalid config: `{path}`: {inner}")
        }
    })
}

pub fn check_percent(key: &str, percent: f64) -> Result<(), String> {
    if (0.0..=100.0).contains(&percent) {
        Ok(())
    } else {
        Err(format!(
            "invalid config: `{key}` must be from 0 to 100, got {percent}"
        ))
    }
}

/// A non-empty list of statuses the proxy can send (100..=999).
pub fn check_statuses(key: &str, statuses: &[u16]) -> Result<(), String> {
    if statuses.is_empty() {
        return Err(format!("invalid config: `{key}` is empty"));
    }
    for (i, status) in statuses.iter().enumerate() {
        if !(100..=999).contains(status) {
            return Err(format!(
                "invalid config: `{key}[{i}]` = {status} is outside 100..=999"
            ));
        }
    }
    Ok(())
}

/// Every path (a prefix) starts with `/`.
pub fn check_paths(key: &str, paths: &[String]) -> Result<(), String> {
    for (i, path) in paths.iter().enumerate() {
        if !path.starts_with('/') {
            return Err(format!(
                "invalid config: `{key}[{i}]` must start with `/`, got {path:?}"
            ));
        }
    }
    Ok(())
}

/// Whether `path` is under `prefix` by whole segments: `/orders` covers
/// `/orders` and `/orders/42` but not `/orders-archive`; a prefix ending in
/// `/` covers everything that starts with it.
pub fn under_prefix(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'))
}

/// One of `statuses` (checked non-empty), drawn from the request.
pub fn pick(statuses: &[u16], request: &Request) -> u16 {
    let index = request.random_below(statuses.len() as u64);
    let index = usize::try_from(index).unwrap_or(0);
    statuses
        .get(index)
        .or(statuses.first())
        .copied()
        .unwrap_or(503)
}

/// `request` with its random number re-mixed with `salt` (SplitMix64): a
/// draw independent of the ones on `request` itself, and as deterministic.
pub fn redraw(request: &Request, salt: u64) -> Request {
    let mut z = request
        .random
        .wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Request {
        random: z ^ (z >> 31),
        ..request.clone()
    }
}
