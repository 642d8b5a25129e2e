//! The gateway key format and the HMAC of its secret.
//!
//! Gateway keys look like `tg_<id>_<secret>`: the store keeps the id and an
//! HMAC-SHA256 of the secret under the keyring's data key, so a stolen database
//! holds nothing a client could present.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use tollgate_filters::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Length of the public id of a gateway key.
pub const KEY_ID_LEN: usize = 12;
/// Length of the secret part of a gateway key: 40 base62 characters, about 238 bits.
pub const KEY_SECRET_LEN: usize = 40;
const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn random_string(alphabet: &[u8], len: usize) -> String {
    // thread_rng is a CSPRNG (ChaCha, seeded from the OS); gen_range is unbiased.
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

/// A new gateway key: `(id, full key)`.
pub fn generate_gateway_key() -> (String, Secret) {
    let id = random_string(ID_ALPHABET, KEY_ID_LEN);
    let secret = random_string(SECRET_ALPHABET, KEY_SECRET_LEN);
    let full = Secret::new(format!("tg_{id}_{secret}"));
    (id, full)
}

/// Whether `b` is in [`ID_ALPHABET`] (base32: `a-z`, `2-7`).
fn in_id_alphabet(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'2'..=b'7')
}

/// Whether `b` is in [`SECRET_ALPHABET`] (base62).
fn in_secret_alphabet(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// `(id, secret)` of a well-formed gateway key; `None` for anything else.
pub fn parse_gateway_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("tg_")?;
    // Neither alphabet holds `_`, so a well-formed key has its one separator exactly
    // after the id: checked by position, not searched for. The byte-class tests fold
    // over every byte without stopping early (see `alphabet_predicates_match_the_alphabets`),
    // which compiles to a few vector steps for these fixed lengths. This runs on every
    // request; `parse_matches_splitting_at_the_first_separator` pins it to the plain form.
    let bytes = rest.as_bytes();
    if bytes.len() != KEY_ID_LEN + 1 + KEY_SECRET_LEN || bytes[KEY_ID_LEN] != b'_' {
        return None;
    }
    let (id, secret) = (&bytes[..KEY_ID_LEN], &bytes[KEY_ID_LEN + 1..]);
    let id_ok = id.iter().fold(true, |ok, &b| ok & in_id_alphabet(b));
    let secret_ok = secret
        .iter()
        .fold(true, |ok, &b| ok & in_secret_alphabet(b));
    if !(id_ok && secret_ok) {
        return None;
    }
    // Both parts are ASCII, so these are character boundaries.
    Some((rest.get(..KEY_ID_LEN)?, rest.get(KEY_ID_LEN + 1..)?))
}

/// HMAC of gateway key secrets under the keyring's "gateway-key-hmac" data key (see
/// [`crate::keys::keyring`]): a random key wrapped by the master key, so that rotating the
/// master key leaves every stored HMAC valid.
#[derive(Clone)]
pub struct KeyHasher {
    /// The HMAC already keyed: keying hashes the inner and outer pads (two SHA-256
    /// blocks), so each MAC starts from a clone of this instead of keying again.
    keyed: HmacSha256,
    /// MACs computed by this hasher and its clones: lets tests compare the work two
    /// refusals do, rather than their timings.
    #[cfg(test)]
    macs: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(*****)")
    }
}

impl KeyHasher {
    /// A hasher with this HMAC key; normally [`crate::keys::Keyring::hasher`].
    pub fn new(key: [u8; 32]) -> Self {
        let keyed = <HmacSha256 as Mac>::new_from_slice(&key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        KeyHasher {
            keyed,
            #[cfg(test)]
            macs: Default::default(),
        }
    }

    /// How many MACs this hasher and its clones have computed.
    #[cfg(test)]
    pub fn macs(&self) -> usize {
        self.macs.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn mac(&self, secret: &str) -> HmacSha256 {
        #[cfg(test)]
        self.macs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut mac = self.keyed.clone();
        mac.update(secret.as_bytes());
        mac
    }

    pub fn hash(&self, secret: &str) -> Vec<u8> {
        self.mac(secret).finalize().into_bytes().to_vec()
    }

    /// Compares with a stored HMAC in constant time, so response timing reveals
    /// nothing about how much of a guessed secret was right.
    pub fn verify(&self, secret: &str, stored: &[u8]) -> bool {
        self.mac(secret).verify_slice(stored).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse() {
        let (id, full) = generate_gateway_key();
        let (pid, secret) = parse_gateway_key(full.expose()).unwrap();
        assert_eq!(pid, id);
        assert_eq!(full.expose(), format!("tg_{id}_{secret}"));
        assert_eq!((id.len(), secret.len()), (12, 40));
        assert_ne!(generate_gateway_key().0, id);
        assert_eq!(format!("{full:?}"), "*****");
    }

    #[test]
    fn malformed_keys_are_refused() {
        let id = "abcdefgh2345";
        let secret = "A".repeat(39) + "z";
        assert!(parse_gateway_key(&format!("tg_{id}_{secret}")).is_some());
        for bad in [
            String::new(),
            "tg_".into(),
            "tg_abc_def".into(),
            "sk-123".into(),
            format!("TG_{id}_{secret}"),
            format!("tg-{id}_{secret}"),
            format!("tg_{id}{secret}"),
            format!("tg_ABCDEFGH2345_{secret}"),  // uppercase id
            format!("tg_abcdefgh2341_{secret}"),  // 1 is not base32
            format!("tg_{id}x_{secret}"),         // id too long
            format!("tg_{}_{secret}", &id[1..]),  // id too short
            format!("tg_{id}_{secret}A"),         // secret too long
            format!("tg_{id}_{}", &secret[1..]),  // secret too short
            format!("tg_{id}_{}!", &secret[1..]), // bad character
            format!("tg_{id}_{}_", &secret[1..]), // extra separator
            format!("tg_{id}_{}é", &secret[2..]), // non-ASCII, same byte length
            format!("tg_{id}_{secret}\n"),        // trailing newline
            format!(" tg_{id}_{secret}"),         // leading space
        ] {
            assert_eq!(parse_gateway_key(&bad), None, "{bad:?}");
        }
    }

    /// The plain form of [`parse_gateway_key`]: split at the first separator, then
    /// check each part's length and alphabet.
    fn parse_reference(key: &str) -> Option<(&str, &str)> {
        let rest = key.strip_prefix("tg_")?;
        let (id, secret) = rest.split_once('_')?;
        let id_ok = id.len() == KEY_ID_LEN && id.bytes().all(in_id_alphabet);
        let secret_ok = secret.len() == KEY_SECRET_LEN && secret.bytes().all(in_secret_alphabet);
        (id_ok && secret_ok).then_some((id, secret))
    }

    #[test]
    fn parse_matches_splitting_at_the_first_separator() {
        // Real keys, each with one byte replaced, inserted or removed at every position,
        // by bytes from each alphabet, the separator and others (non-ASCII too).
        let mut rng = rand::thread_rng();
        let odd = ["_", "a", "7", "1", "Z", "0", "-", " ", "é", "\0", "\u{7f}"];
        let mut checked = 0;
        for _ in 0..20 {
            let key = generate_gateway_key().1.expose().to_owned();
            assert!(parse_gateway_key(&key).is_some());
            for at in 0..=key.len() {
                let c = odd[rng.gen_range(0..odd.len())];
                let mut variants = vec![format!("{}{c}{}", &key[..at], &key[at..])];
                if at < key.len() {
                    variants.push(format!("{}{c}{}", &key[..at], &key[at + 1..]));
                    variants.push(format!("{}{}", &key[..at], &key[at + 1..]));
                }
                for v in variants {
                    assert_eq!(parse_gateway_key(&v), parse_reference(&v), "{v:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 3000);
    }

    #[test]
    fn alphabet_predicates_match_the_alphabets() {
        for b in 0..=u8::MAX {
            assert_eq!(in_id_alphabet(b), ID_ALPHABET.contains(&b), "byte {b}");
            assert_eq!(
                in_secret_alphabet(b),
                SECRET_ALPHABET.contains(&b),
                "byte {b}"
            );
        }
    }

    #[test]
    fn hash_and_verify() {
        let h = KeyHasher::new([7; 32]);
        let stored = h.hash("the-secret");
        assert_eq!(stored.len(), 32);
        assert!(h.verify("the-secret", &stored));
        assert!(!h.verify("the-secreT", &stored));
        assert!(!h.verify("the-secret", &stored[..31]));
        assert!(!h.verify("the-secret", &[]));
        let other = KeyHasher::new([8; 32]);
        assert!(!other.verify("the-secret", &stored));
    }
}
