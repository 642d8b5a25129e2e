//! The page shell (head, navigation, sign-out) and the small pieces every page uses:
//! figures formatted one way everywhere, flash messages, the CSRF field. Markup is
//! maud's: every `(value)` is HTML-escaped, so a user name or key label such as
//! `<script>` is text; nothing here uses `PreEscaped` on anything a user chose.

use maud::{html, Markup, DOCTYPE};
use tollgate_filters::clock::civil_from_days;

use super::assets;
use super::viewer::Viewer;

/// The pages in the navigation, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Usage,
    Requests,
    Keys,
    Users,
    Pricing,
    ProviderKeys,
    Upstreams,
    Audit,
    System,
    None,
}

/// (page, path, label, members see it).
const NAV: [(Nav, &str, &str, bool); 10] = [
    (Nav::Overview, "/ui/", "Overview", true),
    (Nav::Usage, "/ui/usage", "Usage", true),
    (Nav::Requests, "/ui/requests", "Requests", true),
    (Nav::Keys, "/ui/keys", "Keys", true),
    (Nav::Users, "/ui/users", "Users", false),
    (Nav::Pricing, "/ui/pricing", "Pricing", false),
    (
        Nav::ProviderKeys,
        "/ui/provider-keys",
        "Provider keys",
        true,
    ),
    (Nav::Upstreams, "/ui/upstreams", "Upstreams", false),
    (Nav::Audit, "/ui/audit", "Audit", false),
    (Nav::System, "/ui/system", "System", false),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Tollgate" }
            link rel="stylesheet" href=(assets::css_path());
            script src=(assets::js_path()) defer {}
        }
    }
}

/// A whole page for a signed-in viewer.
pub fn page(viewer: &Viewer, active: Nav, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/ui/" { "Tollgate" }
                    nav {
                        @for (nav, path, label, members) in NAV {
                            @if members || viewer.is_admin() {
                                a.active[nav == active] href=(path) { (label) }
                            }
                        }
                    }
                    form method="post" action="/ui/logout" {
                        (csrf_field(viewer))
                        span data-testid="whoami" { (viewer.caller.username) " (" (viewer.caller.role.as_str()) ")" }
                        button.quiet type="submit" { "Sign out" }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page without navigation (sign-in, errors before sign-in).
pub fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body { main.login { h1 { (title) } (body) } }
        }
    }
}

/// The hidden field carrying the session's CSRF token (empty when the viewer is
/// authenticated by a bearer token, which needs none).
pub fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(viewer.csrf); }
}

/// A message above the page's content.
pub fn flash(kind: &str, text: &str) -> Markup {
    html! { p class={ "flash " (kind) } role=(if kind == "error" { "alert" } else { "status" }) { (text) } }
}

/// USD from nano-dollars with at least 6 decimals and no rounding: `0.000125`,
/// `12.500000`, `0.000000123`.
pub fn usd(nanos: u64) -> String {
    let frac = format!("{:09}", nanos % 1_000_000_000);
    let trimmed = frac.trim_end_matches('0');
    let shown = if trimmed.len() < 6 {
        &frac[..6]
    } else {
        trimmed
    };
    format!("{}.{shown}", nanos / 1_000_000_000)
}

/// `$` and [`usd`].
pub fn dollars(nanos: u64) -> String {
    format!("${}", usd(nanos))
}

/// A count with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A day number as `YYYY-MM-DD`.
pub fn date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn time(unix: i64) -> String {
    let secs = unix.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02}:{:02}",
        date(unix.div_euclid(86_400)),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// An optional time, `-` when absent.
pub fn maybe_time(unix: Option<i64>) -> String {
    unix.map(time).unwrap_or_else(|| "-".to_owned())
}

/// A share as a percentage with one decimal; `-` of nothing.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_owned();
    }
    let tenths = (part as u128 * 1000 + whole as u128 / 2) / whole as u128;
    format!("{}.{}%", tenths / 10, tenths % 10)
}

/// A latency bucket's upper bound: `≤ 120 ms`, `≤ 2.5 s`.
pub fn latency(upper_ms: Option<i64>) -> String {
    match upper_ms {
        None => "-".to_owned(),
        Some(ms) if ms >= 1 << 60 => "> 2 h".to_owned(),
        Some(ms) if ms >= 10_000 => format!("≤ {} s", ms / 1000),
        Some(ms) if ms >= 1000 => format!("≤ {}.{} s", ms / 1000, ms % 1000 / 100),
        Some(ms) => format!("≤ {ms} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures() {
        assert_eq!(usd(0), "0.000000");
        assert_eq!(usd(125_000), "0.000125");
        assert_eq!(usd(123), "0.000000123");
        assert_eq!(usd(12_500_000_000), "12.500000");
        assert_eq!(usd(1_234_567_891), "1.234567891");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(0, 0), "-");
        assert_eq!(percent(2, 2), "100.0%");
        assert_eq!(time(86_400 + 3_661), "1970-01-02 01:01:01");
        assert_eq!(latency(Some(120)), "≤ 120 ms");
        assert_eq!(latency(Some(2_500)), "≤ 2.5 s");
        assert_eq!(latency(Some(60_000)), "≤ 60 s");
        assert_eq!(latency(Some(i64::MAX)), "> 2 h");
    }
}
