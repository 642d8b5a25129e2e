//! The dashboard's two static files, compiled into the binary: no CDN, no Node, nothing
//! to install beside it. Their URLs carry a hash of their content, so browsers may
//! keep them for a year and still never run a stale script after an upgrade.

use std::sync::LazyLock;

use http::Response;
use sha2::{Digest, Sha256};

use super::http::asset;

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

/// The first 12 hex digits of the SHA-256 of `body`.
fn short_hash(body: &str) -> String {
    Sha256::digest(body.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

static CSS_HASH: LazyLock<String> = LazyLock::new(|| short_hash(CSS));
static JS_HASH: LazyLock<String> = LazyLock::new(|| short_hash(JS));
static CSS_PATH: LazyLock<String> = LazyLock::new(|| format!("/ui/assets/app.{}.css", *CSS_HASH));
static JS_PATH: LazyLock<String> = LazyLock::new(|| format!("/ui/assets/app.{}.js", *JS_HASH));

pub fn css_path() -> &'static str {
    &CSS_PATH
}

pub fn js_path() -> &'static str {
    &JS_PATH
}

/// The asset at `path`, if it is one (an old hash is not: it would be cached forever
/// under a name that no longer matches its content).
pub fn serve(path: &str) -> Option<Response<Vec<u8>>> {
    if path == css_path() {
        Some(asset("text/css; charset=utf-8", &CSS_HASH, CSS.as_bytes()))
    } else if path == js_path() {
        Some(asset(
            "text/javascript; charset=utf-8",
            &JS_HASH,
            JS.as_bytes(),
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_named_by_content_and_cached_for_good() {
        assert!(css_path().starts_with("/ui/assets/app.") && css_path().ends_with(".css"));
        let r = serve(js_path()).unwrap();
        assert_eq!(r.body(), JS.as_bytes());
        assert_eq!(
            r.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(r.headers().contains_key("content-security-policy"));
        assert!(serve("/ui/assets/app.000000000000.js").is_none());
        // No inline script, no external URL in what is served.
        for body in [CSS, JS] {
            assert!(!body.contains("http://") && !body.contains("https://"));
        }
    }
}
