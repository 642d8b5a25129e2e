//! Names and ids that must change on the way to another provider, deterministically so
//! that the same history always translates the same way: tool names that break the
//! target's pattern or length (mapped back in responses), tool-call ids Anthropic would
//! reject, and reasoning signatures carried through a client dialect that has no field
//! for them (TRANSLATION_NOTES 2.3 (d), (e) and 4.6).

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::ir::{Sig, SigOrigin};
use super::Wire;

/// Where a signature carried inside an OpenAI tool-call id starts (LiteLLM's approach).
pub const THOUGHT_SEP: &str = "__thought__";

/// Prefixes that say who minted a signature carried in another provider's field.
const ANT_PREFIX: &str = "ant:";
const GEM_PREFIX: &str = "gem:";
/// An Anthropic `redacted_thinking` payload carried where a signature goes.
const ANT_REDACTED_PREFIX: &str = "antr:";

/// 8 hex digits of SHA-256 of `s`: a short, stable disambiguator.
fn hash8(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    d.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

fn name_ok(target: Wire, name: &str) -> bool {
    let (max, extra): (usize, &[u8]) = match target {
        Wire::Messages => (128, b"_-"),
        Wire::Gemini => (64, b"_-.:"),
        Wire::Chat | Wire::Responses => (64, b"_-"),
    };
    let first_ok = target != Wire::Gemini
        || name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    !name.is_empty()
        && name.len() <= max
        && first_ok
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// The name a tool gets at `target`: itself when the target accepts it, else its valid
/// characters cut to 54 and 8 hex digits of its hash (mapped back by the response).
pub fn tool_name(target: Wire, name: &str) -> Cow<'_, str> {
    if name_ok(target, name) {
        return Cow::Borrowed(name);
    }
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(54)
        .collect();
    if out.starts_with(|c: char| !(c.is_ascii_alphabetic() || c == '_')) {
        out.insert(0, 'f');
        out.truncate(54);
    }
    out.push('_');
    out.push_str(&hash8(name));
    Cow::Owned(out)
}

/// Where a tool-call id Anthropic would refuse is carried whole in one it takes.
const ANT_ID_PREFIX: &str = "tgid_";

/// A tool-call id Anthropic accepts (`^[a-zA-Z0-9_-]+$`): itself when it already
/// matches, else the id carried whole, base64url after [`ANT_ID_PREFIX`] (applied alike
/// to `tool_use.id` and `tool_use_id`), so that [`from_ant_tool_id`] gives the upstream
/// back its own id: Kimi's `functions.Bash:0` is read by the model itself.
pub fn ant_tool_id(id: &str) -> Cow<'_, str> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    if !id.is_empty() && id.bytes().all(ok) {
        return Cow::Borrowed(id);
    }
    Cow::Owned(format!("{ANT_ID_PREFIX}{}", URL_SAFE_NO_PAD.encode(id)))
}

/// An id an Anthropic client sends back, as the upstream gave it: [`ant_tool_id`]
/// undone for the ids it made, every other id as it is.
pub fn from_ant_tool_id(id: String) -> String {
    let original = id
        .strip_prefix(ANT_ID_PREFIX)
        .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
        .and_then(|v| String::from_utf8(v).ok())
        .filter(|original| !original.is_empty() && ant_tool_id(original) == id.as_str());
    original.unwrap_or(id)
}

/// A tool-call id Mistral takes (nine letters and digits, its own ids' form): itself when
/// it is one, else a stable alias made from its hash. The same id always gives the same
/// alias, so a history begun on another provider's model keeps its calls and results
/// paired; Mistral answers with ids of its own, so the client never sees an alias.
pub fn mistral_tool_call_id(id: &str) -> Cow<'_, str> {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    if id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Cow::Borrowed(id);
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&Sha256::digest(id.as_bytes())[..8]);
    let mut n = u64::from_be_bytes(first);
    let mut alias = String::with_capacity(9);
    for _ in 0..9 {
        alias.push(char::from(DIGITS[(n % 62) as usize]));
        n /= 62;
    }
    Cow::Owned(alias)
}

/// A signature as text for a foreign client's field, prefixed with who minted it.
pub fn carry(sig: &Sig) -> String {
    let prefix = match sig.origin {
        SigOrigin::Anthropic => ANT_PREFIX,
        SigOrigin::Gemini => GEM_PREFIX,
        SigOrigin::Responses => "",
    };
    let mut s = String::with_capacity(prefix.len() + sig.bytes.len());
    s.push_str(prefix);
    s.push_str(&sig.bytes);
    s
}

/// A redacted-thinking payload as text for a foreign client's signature field.
pub fn carry_redacted(data: &str) -> String {
    format!("{ANT_REDACTED_PREFIX}{data}")
}

/// What a signature field a client echoed holds: a carried foreign signature (by its
/// prefix), a carried redacted-thinking payload, or a signature of `native` origin.
pub enum Carried {
    Sig(Sig),
    Redacted(String),
}

/// Reads a signature field echoed by a client whose own signatures are `native`.
pub fn uncarry(s: &str, native: SigOrigin) -> Carried {
    let sig = |origin, bytes: &str| {
        Carried::Sig(Sig {
            origin,
            bytes: bytes.to_owned(),
        })
    };
    if let Some(rest) = s.strip_prefix(ANT_REDACTED_PREFIX) {
        Carried::Redacted(rest.to_owned())
    } else if let Some(rest) = s.strip_prefix(ANT_PREFIX) {
        sig(SigOrigin::Anthropic, rest)
    } else if let Some(rest) = s.strip_prefix(GEM_PREFIX) {
        sig(SigOrigin::Gemini, rest)
    } else {
        sig(native, s)
    }
}

/// An OpenAI tool-call id carrying `sig` after [`THOUGHT_SEP`] (base64url, so the id
/// keeps to id characters).
pub fn id_with_sig(id: &str, sig: &Sig) -> String {
    let carried = carry(sig);
    let mut out = String::with_capacity(id.len() + THOUGHT_SEP.len() + carried.len() * 4 / 3 + 4);
    out.push_str(id);
    out.push_str(THOUGHT_SEP);
    URL_SAFE_NO_PAD.encode_string(carried.as_bytes(), &mut out);
    out
}

/// The id given to an OpenAI-style call that came without one: `call_N`, N its place
/// among the message's calls (whole or streamed, the same name).
pub fn call_id_of_place(place: impl std::fmt::Display) -> String {
    format!("call_{place}")
}

/// An OpenAI tool-call id without a carried signature, and the signature if it had one.
pub fn split_id_sig(id: &str) -> (&str, Option<Sig>) {
    let Some((bare, enc)) = id.split_once(THOUGHT_SEP) else {
        return (id, None);
    };
    let decoded = URL_SAFE_NO_PAD
        .decode(enc)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    match decoded.map(|s| uncarry(&s, SigOrigin::Gemini)) {
        Some(Carried::Sig(sig)) => (bare, Some(sig)),
        _ => (id, None),
    }
}

/// Process-wide counter for ids minted when the upstream gave neither an id nor a
/// response id to derive one from.
static MINTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A tool-call id for a Gemini call that had none: stable for the same response
/// (`{prefix}{response id}_{n}`), unique across turns.
pub fn mint_call_id(prefix: &str, response_id: &str, n: u32) -> String {
    let mut out = String::with_capacity(prefix.len() + response_id.len() + 8);
    out.push_str(prefix);
    if response_id.is_empty() {
        let k = MINTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        out.push_str(&format!("tg{k}"));
    } else {
        out.extend(
            response_id
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
    }
    out.push('_');
    out.push_str(&n.to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_odd_tool_names_are_shortened_stably() {
        assert_eq!(tool_name(Wire::Chat, "get_weather"), "get_weather");
        let long = "mcp__server__".to_owned() + &"x".repeat(80);
        let a = tool_name(Wire::Chat, &long);
        assert!(a.len() <= 64 && name_ok(Wire::Chat, &a));
        assert_eq!(a, tool_name(Wire::Chat, &long));
        assert_eq!(tool_name(Wire::Messages, &long), long.as_str());
        let g = tool_name(Wire::Gemini, "9lives");
        assert!(name_ok(Wire::Gemini, &g), "{g}");
        assert_eq!(tool_name(Wire::Gemini, "a.b:c"), "a.b:c");
        assert_ne!(tool_name(Wire::Chat, "a.b"), tool_name(Wire::Chat, "a:b"));
    }

    #[test]
    fn ids_are_carried_for_anthropic_and_come_back_as_they_were() {
        assert_eq!(ant_tool_id("toolu_01"), "toolu_01");
        let a = ant_tool_id("functions.Bash:0");
        let b = ant_tool_id("functions:Bash.0");
        for id in [&a, &b] {
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        }
        assert_ne!(a, b);
        assert_eq!(a, ant_tool_id("functions.Bash:0"));
        for id in [
            "functions.Bash:0",
            "functions:Bash.0",
            "call 1/é",
            "toolu_01",
            "tgid_",
        ] {
            assert_eq!(from_ant_tool_id(ant_tool_id(id).into_owned()), id, "{id}");
        }
        // Only ids it made are read back: another id that merely looks like one stays.
        let valid_inside = format!("tgid_{}", URL_SAFE_NO_PAD.encode("call_1"));
        for id in ["tgid_!!", "tgid_Zm9v", valid_inside.as_str()] {
            assert_eq!(from_ant_tool_id(id.to_owned()), id, "{id}");
        }
    }

    #[test]
    fn ids_mistral_refuses_get_a_stable_alias_of_its_form() {
        assert_eq!(mistral_tool_call_id("Xy7pQ2mZk"), "Xy7pQ2mZk");
        let mut seen = std::collections::HashSet::new();
        for id in [
            "toolu_01A09q90qw90lq917835lq9",
            "call_1",
            "functions.Bash:0",
            "Xy7pQ2mZ",
            "Xy7pQ2mZk!",
            "",
        ] {
            let a = mistral_tool_call_id(id);
            assert!(
                a.len() == 9 && a.bytes().all(|b| b.is_ascii_alphanumeric()),
                "{id}: {a}"
            );
            assert_eq!(a, mistral_tool_call_id(id), "stable");
            assert!(seen.insert(a.into_owned()), "{id}: apart from the others");
        }
        // Spread over the alphabet, not a few letters of it.
        let letters: std::collections::HashSet<char> =
            seen.iter().flat_map(|a| a.chars()).collect();
        assert!(letters.len() > 20, "{letters:?}");
    }

    #[test]
    fn signatures_ride_in_call_ids_and_come_back() {
        let sig = Sig {
            origin: SigOrigin::Gemini,
            bytes: "CsQB+/a==".into(),
        };
        let id = id_with_sig("call_1", &sig);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        assert_eq!(split_id_sig(&id), ("call_1", Some(sig)));
        assert_eq!(split_id_sig("call_2"), ("call_2", None));
    }
}
