//! `${VAR}` and `${VAR:-default}` expansion of config values from the environment.

/// Expands every `${VAR}` / `${VAR:-default}` in `s` with `lookup`. An unset variable
/// without a default is an error naming it; so is an unterminated `${`.
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if !s.contains("${") {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated '${{' in {s:?}"))?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid variable name {name:?}"));
        }
        match (
            lookup(name).filter(|v| !v.is_empty() || default.is_none()),
            default,
        ) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (and has no default)"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_defaults_and_names_missing_vars() {
        assert_eq!(expand("a ${SET} b", &env), Ok("a value b".into()));
        assert_eq!(expand("${UNSET:-dflt}", &env), Ok("dflt".into()));
        assert_eq!(expand("${EMPTY:-dflt}", &env), Ok("dflt".into()));
        assert_eq!(expand("${EMPTY}", &env), Ok(String::new()));
        assert_eq!(expand("${UNSET:-}", &env), Ok(String::new()));
        assert!(expand("${UNSET}", &env).is_err_and(|e| e.contains("UNSET")));
        assert!(expand("${SET", &env).is_err());
        assert_eq!(expand("no vars", &env), Ok("no vars".into()));
    }
}
