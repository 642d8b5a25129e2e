//! Model-name patterns, as used by routes, key scopes and pricing: an exact name, a
//! `prefix*`, or a glob with `*` (any run) and `?` (one character).

/// The pattern as written (`gpt-4o`, `gpt-*`, `claude-3-?-sonnet*`).
impl std::fmt::Display for ModelPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelPattern::Exact(s) | ModelPattern::Glob(s) => f.write_str(s),
            ModelPattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// A compiled model pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelPattern {
    Exact(String),
    Prefix(String),
    Glob(String),
}

impl ModelPattern {
    pub fn parse(s: &str) -> ModelPattern {
        let wild = |c: char| c == '*' || c == '?';
        match s.find(wild) {
            None => ModelPattern::Exact(s.to_owned()),
            Some(i) if i == s.len() - 1 && s.ends_with('*') => {
                ModelPattern::Prefix(s[..i].to_owned())
            }
            Some(_) => ModelPattern::Glob(s.to_owned()),
        }
    }

    pub fn matches(&self, model: &str) -> bool {
        match self {
            ModelPattern::Exact(e) => e == model,
            ModelPattern::Prefix(p) => model.starts_with(p.as_str()),
            ModelPattern::Glob(g) => glob_match(g.as_bytes(), model.as_bytes()),
        }
    }

    /// The name when the pattern has no wildcard (what `GET /v1/models` lists).
    pub fn exact(&self) -> Option<&str> {
        match self {
            ModelPattern::Exact(e) => Some(e),
            _ => None,
        }
    }
}

/// Iterative glob match with single-star backtracking: linear in practice, no recursion.
fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, i));
                p += 1;
            }
            Some(&c) if c == b'?' || c == s[i] => {
                p += 1;
                i += 1;
            }
            // Back to the last star, which now takes one more byte (the star's arm
            // above records where it stands again).
            _ => match star {
                Some((sp, si)) => {
                    p = sp;
                    i = si + 1;
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// True when any pattern in the list matches.
pub fn any_matches(patterns: &[ModelPattern], model: &str) -> bool {
    patterns.iter().any(|p| p.matches(model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_prefix_and_glob() {
        let m = |p: &str, s: &str| ModelPattern::parse(p).matches(s);
        assert!(m("gpt-4o", "gpt-4o"));
        assert!(!m("gpt-4o", "gpt-4o-mini"));
        assert!(m("gpt-*", "gpt-4o-mini"));
        assert!(matches!(
            ModelPattern::parse("gpt-*"),
            ModelPattern::Prefix(_)
        ));
        assert!(m("claude-*-4*", "claude-sonnet-4-5"));
        assert!(!m("claude-*-4*", "claude-3-haiku"));
        assert!(m("o?-mini", "o3-mini"));
        assert!(m("*", ""));
        assert!(!m("a*b", "a"));
        assert!(m("*a*a*a*b", "aaaaaaaaaaaaaaaaab"));
    }

    #[test]
    fn patterns_print_as_written() {
        for text in ["gpt-4o", "gpt-*", "*", "*-mini", "gpt-?", "a*b*"] {
            assert_eq!(ModelPattern::parse(text).to_string(), text);
        }
    }

    #[test]
    fn parse_picks_the_cheapest_form_and_exact_names_are_listed() {
        assert_eq!(
            ModelPattern::parse("gpt-4o"),
            ModelPattern::Exact("gpt-4o".into())
        );
        assert_eq!(
            ModelPattern::parse("gpt-*"),
            ModelPattern::Prefix("gpt-".into())
        );
        assert_eq!(
            ModelPattern::parse("*"),
            ModelPattern::Prefix(String::new())
        );
        assert_eq!(
            ModelPattern::parse("*-mini"),
            ModelPattern::Glob("*-mini".into())
        );
        assert_eq!(
            ModelPattern::parse("gpt-?"),
            ModelPattern::Glob("gpt-?".into())
        );
        assert_eq!(
            ModelPattern::parse("a*b*"),
            ModelPattern::Glob("a*b*".into())
        );
        assert_eq!(ModelPattern::parse(""), ModelPattern::Exact(String::new()));
        assert_eq!(ModelPattern::parse("gpt-4o").exact(), Some("gpt-4o"));
        assert_eq!(ModelPattern::parse("gpt-*").exact(), None);
        assert_eq!(ModelPattern::parse("g?t").exact(), None);
        assert!(ModelPattern::parse("*").matches("anything"));
        assert!(!ModelPattern::parse("gpt-*").matches("gp"));
        let list = [ModelPattern::parse("a*"), ModelPattern::parse("b")];
        assert!(any_matches(&list, "abc") && any_matches(&list, "b"));
        assert!(!any_matches(&list, "c") && !any_matches(&[], "a"));
    }

    /// The textbook recursive glob, to check the iterative one against.
    fn reference(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, _) => s.is_empty(),
            (Some(b'*'), _) => reference(&p[1..], s) || (!s.is_empty() && reference(p, &s[1..])),
            (Some(_), None) => false,
            (Some(&c), Some(&d)) => (c == b'?' || c == d) && reference(&p[1..], &s[1..]),
        }
    }

    #[test]
    fn glob_edges() {
        let g = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes());
        assert!(g("?", "a") && !g("?", "") && !g("?", "ab"));
        assert!(g("a?c", "abc") && !g("a?c", "ac"));
        assert!(g("a**", "a") && g("**", ""));
        assert!(g("a*bc", "abcbc") && g("a*b*c", "aXbYc") && !g("a*b*c", "aXbY"));
        assert!(g("*b", "ab") && !g("*b", "ba"));
        assert!(!g("", "a") && g("", ""));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn glob_agrees_with_the_textbook_one(p in "[ab?*]{0,7}", s in "[abc]{0,9}") {
            proptest::prop_assert_eq!(
                glob_match(p.as_bytes(), s.as_bytes()),
                reference(p.as_bytes(), s.as_bytes()),
                "{} {}", p, s
            );
            proptest::prop_assert_eq!(
                ModelPattern::parse(&p).matches(&s),
                reference(p.as_bytes(), s.as_bytes())
            );
        }
    }
}
