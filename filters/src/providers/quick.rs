//! A hand-written read of usage objects, usage events and Chat Completions stream chunks
//! in the shape providers send them: keys of plain ASCII, counts as plain unsigned
//! integers. It gives the same structs the typed parse gives, at a fraction of serde's
//! cost per member (this runs for every JSON answer, every stream's usage events and
//! every chunk of a translated stream).
//!
//! Anything outside that shape (an escape or a byte over 0x7F in a key or in a value it
//! passes over, a count that is not a plain unsigned integer, a member twice, nesting
//! past [`MAX_DEPTH`], bytes that are not JSON) makes it give up with `None`, and the
//! caller takes the typed parse, which decides as before. String values it keeps
//! ([`Cursor::text`]) may hold escapes and UTF-8, as a model's text does. Wherever it does
//! not give up it must agree with the typed parse: a property test holds the two equal
//! over generated objects, events and chunks.

use std::borrow::Cow;

use super::member::{AnyHasFinishReason, Member};

/// Nesting this deep is left to the typed parse (whose own limit is 128).
const MAX_DEPTH: u32 = 32;

/// A struct read member by member: `KEYS` are its members' names as sent; `set` reads
/// the value of `KEYS[i]` at the cursor.
pub trait Quick<'a>: Default {
    const KEYS: &'static [&'static [u8]];
    /// The members the typed parse requires (bit `i` for `KEYS[i]`): an object without
    /// one gives up.
    const REQUIRED: u64 = 0;
    fn set(&mut self, i: usize, c: &mut Cursor<'a>) -> Option<()>;
}

/// The bits of `required` among `keys`, for [`Quick::REQUIRED`].
pub const fn required(keys: &[&[u8]], required: &[&[u8]]) -> u64 {
    let mut mask = 0;
    let mut r = 0;
    while r < required.len() {
        let mut k = 0;
        while k < keys.len() {
            if same(keys[k], required[r]) {
                mask |= 1 << k;
            }
            k += 1;
        }
        r += 1;
    }
    mask
}

const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// `impl Quick for T`: each field with its key as sent and the [`Cursor`] method that
/// reads its value, then the keys the typed parse requires, if any. A type that borrows
/// from the document names its lifetime `'q`.
macro_rules! quick {
    ($t:ty { $($field:ident: $key:literal => $read:ident),* $(,)? } $(required [$($req:literal),*])?) => {
        impl<'q> $crate::providers::quick::Quick<'q> for $t {
            const KEYS: &'static [&'static [u8]] = &[$($key),*];
            $(const REQUIRED: u64 = $crate::providers::quick::required(Self::KEYS, &[$($req),*]);)?
            fn set(&mut self, i: usize, c: &mut $crate::providers::quick::Cursor<'q>) -> Option<()> {
                let mut n = 0;
                $(
                    if i == n {
                        self.$field = c.$read()?;
                        return Some(());
                    }
                    n += 1;
                )*
                let _ = n;
                None
            }
        }
    };
}
pub(crate) use quick;

/// A position in a JSON document.
pub struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
    /// Objects and arrays open at the position.
    depth: u32,
    /// The whole document as text, checked for UTF-8 once, when a first string is kept
    /// (`None` inside: it is not UTF-8). A check per string costs a call each.
    text: Option<Option<&'a str>>,
}

impl<'a> Cursor<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Cursor {
            b,
            i: 0,
            depth: 0,
            text: None,
        }
    }

    fn ws(&mut self) {
        self.i = skip_ws(self.b, self.i);
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// Whether only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// A string of plain ASCII (no escape, no control character), without its quotes.
    /// Inline: every key is one, and most are short.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        let len = plain_run(&self.b[start..]);
        // The run must end at the closing quote, not at a byte outside plain ASCII.
        (self.b.get(start + len) == Some(&b'"')).then_some(())?;
        self.i = start + len + 1;
        Some(&self.b[start..start + len])
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    fn digits(&mut self) -> usize {
        let n = self.b[self.i..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        self.i += n;
        n
    }

    /// A JSON number of any form, passed over.
    fn number(&mut self) -> Option<()> {
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let first = *self.b.get(self.i)?;
        let n = self.digits();
        if n == 0 || (first == b'0' && n > 1) {
            return None;
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            (self.digits() > 0).then_some(())?;
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            (self.digits() > 0).then_some(())?;
        }
        Some(())
    }

    /// `null` as `None`, a plain unsigned integer that fits as the count; anything else
    /// gives up (the typed parse refuses it). A count is always a member's value, so a
    /// fraction, an exponent or a digit after a leading `0` leaves a byte where the
    /// object's read wants `,` or `}`, and it gives up there.
    pub fn count(&mut self) -> Option<Option<u64>> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| None),
            b'0' => {
                self.i += 1;
                Some(Some(0))
            }
            b'1'..=b'9' => {
                let mut n: u64 = 0;
                while let Some(&d) = self.b.get(self.i).filter(|b| b.is_ascii_digit()) {
                    n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
                    self.i += 1;
                }
                Some(Some(n))
            }
            _ => None,
        }
    }

    /// Any value, passed over.
    pub fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.members(|c, _| c.skip()),
            b'[' => self.elements(Self::skip),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// An object, each member's value read by `value(cursor, key)`.
    fn members(&mut self, mut value: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.sequence(b'{', b'}', |c| {
            let key = c.string()?;
            c.eat(b':')?;
            value(c, key)
        })
    }

    /// An array, each element read by `element(cursor)`.
    fn elements(&mut self, element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.sequence(b'[', b']', element)
    }

    /// `open`, items read by `item` separated by commas, `close`: one more level of
    /// nesting, within [`MAX_DEPTH`].
    fn sequence(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())?;
        if self.eat(close).is_none() {
            loop {
                item(self)?;
                match self.peek()? {
                    b',' => self.i += 1,
                    b if b == close => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// An object read as `T`: a member of `T::KEYS` twice gives up (the typed parse
    /// refuses it), any other member is passed over.
    pub fn object<T: Quick<'a>>(&mut self) -> Option<T> {
        let mut t = T::default();
        let mut seen = 0u64;
        // Length and first byte first: most keys differ in one of them, and a whole
        // comparison is a call.
        let known = |key: &[u8]| {
            T::KEYS
                .iter()
                .position(|k| k.len() == key.len() && k.first() == key.first() && *k == key)
        };
        self.members(|c, key| match known(key) {
            Some(i) => {
                let bit = 1u64 << i;
                (seen & bit == 0).then_some(())?;
                seen |= bit;
                t.set(i, c)
            }
            None => c.skip(),
        })?;
        (seen & T::REQUIRED == T::REQUIRED).then_some(t)
    }

    /// `null` as `None`, an object as `T`; anything else gives up (the typed parse
    /// refuses it, or reads an array into the fields by position).
    pub fn optional<T: Quick<'a>>(&mut self) -> Option<Option<T>> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| None),
            b'{' => self.object().map(Some),
            _ => None,
        }
    }

    /// A [`Member`]: an object as `T`, any other value passed over.
    pub fn member<T: Quick<'a>>(&mut self) -> Option<Member<T>> {
        if self.peek()? == b'{' {
            return self.object().map(|t| Member::Present(Some(t)));
        }
        self.skip().map(|()| Member::Present(None))
    }

    /// A string, or `null` as `None`; anything else gives up. A plain string is borrowed
    /// from the document; one with escapes or UTF-8 is decoded as serde decodes it (a
    /// `\u` escape of a surrogate, a control character or bytes that are not UTF-8 give
    /// up).
    pub fn text(&mut self) -> Option<Option<Cow<'a, str>>> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| None),
            b'"' => {
                let start = self.i + 1;
                let len = plain_run(&self.b[start..]);
                if self.b.get(start + len) == Some(&b'"') {
                    self.i = start + len + 1;
                    let b = self.b;
                    let doc = *self.text.get_or_insert_with(|| std::str::from_utf8(b).ok());
                    // Plain ASCII, so UTF-8 however the document as a whole is.
                    let s = match doc {
                        Some(doc) => doc.get(start..start + len)?,
                        None => std::str::from_utf8(&b[start..start + len]).ok()?,
                    };
                    return Some(Some(Cow::Borrowed(s)));
                }
                self.i = start;
                self.decoded(len).map(|s| Some(Cow::Owned(s)))
            }
            _ => None,
        }
    }

    /// The rest of a string whose first `plain` bytes need no decoding, up to and past
    /// its closing quote.
    fn decoded(&mut self, plain: usize) -> Option<String> {
        let mut out = Vec::with_capacity(plain + 16);
        let mut run = plain;
        loop {
            out.extend_from_slice(&self.b[self.i..self.i + run]);
            self.i += run;
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return String::from_utf8(out).ok();
                }
                b'\\' => {
                    let (c, width) = match *self.b.get(self.i + 1)? {
                        b'"' => ('"', 2),
                        b'\\' => ('\\', 2),
                        b'/' => ('/', 2),
                        b'b' => ('\u{8}', 2),
                        b'f' => ('\u{c}', 2),
                        b'n' => ('\n', 2),
                        b'r' => ('\r', 2),
                        b't' => ('\t', 2),
                        b'u' => {
                            let hex = self.b.get(self.i + 2..self.i + 6)?;
                            // Only hex digits: `from_str_radix` would also take a sign.
                            hex.iter().all(u8::is_ascii_hexdigit).then_some(())?;
                            let n = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                            // A surrogate (half of a pair, or alone) is left to serde.
                            (char::from_u32(n)?, 6)
                        }
                        _ => return None,
                    };
                    self.i += width;
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                // A byte of a multi-byte character: kept, checked with the rest at the end.
                0x80.. => {
                    out.push(self.b[self.i]);
                    self.i += 1;
                }
                // A control character, which serde refuses.
                _ => return None,
            }
            run = plain_run(&self.b[self.i..]);
        }
    }

    /// An array of objects read as `T`, `null` as none; anything else (another element)
    /// gives up.
    pub fn list<T: Quick<'a>>(&mut self) -> Option<Vec<T>> {
        match self.peek()? {
            b'[' => {}
            // As the typed parse reads it (`null_as_default`): no elements.
            b'n' => return self.literal(b"null").map(|()| Vec::new()),
            _ => return None,
        }
        let mut items = Vec::new();
        self.elements(|c| {
            items.push(c.object()?);
            Some(())
        })?;
        Some(items)
    }

    /// A string as an owned `String` (for a field that is not an `Option`: `null` gives
    /// up, as the typed parse refuses it).
    pub fn owned(&mut self) -> Option<String> {
        self.text()?.map(Cow::into_owned)
    }

    /// A string as an owned `String`, or `null` as `None`.
    pub fn owned_or_null(&mut self) -> Option<Option<String>> {
        self.text().map(|t| t.map(Cow::into_owned))
    }

    /// A plain unsigned integer (for a field that is not an `Option`: `null` gives up).
    pub fn whole(&mut self) -> Option<u64> {
        self.count()?
    }

    /// A plain unsigned integer that fits in 32 bits (an index); anything else, `null`
    /// included, gives up.
    pub fn index(&mut self) -> Option<u32> {
        u32::try_from(self.count()??).ok()
    }

    /// [`Self::index`] for an optional member (absent is `None`; `null` gives up).
    pub fn some_index(&mut self) -> Option<Option<u32>> {
        self.index().map(Some)
    }

    /// `null` as `None` for a member the caller handles only when absent (an error
    /// object, left to the typed parse); anything else gives up.
    pub fn null<T>(&mut self) -> Option<Option<T>> {
        self.ws();
        self.literal(b"null").map(|()| None)
    }

    /// Gemini's `candidates`, for whether one of them has a `finishReason` member.
    pub fn any_has_finish_reason(&mut self) -> Option<AnyHasFinishReason> {
        if self.peek()? != b'[' {
            return self.skip().map(|()| AnyHasFinishReason(false));
        }
        let mut any = false;
        self.elements(|c| {
            if c.peek()? != b'{' {
                return c.skip();
            }
            let mut seen = false;
            c.members(|c, key| {
                if key == b"finishReason" {
                    // Twice is a duplicate field for the typed parse.
                    (!seen).then_some(())?;
                    seen = true;
                }
                c.skip()
            })?;
            any |= seen;
            Some(())
        })?;
        Some(AnyHasFinishReason(any))
    }
}

/// How many bytes at the start of `b` are plain string bytes: printable ASCII other
/// than `"` and `\\`.
fn plain_run(b: &[u8]) -> usize {
    unescaped_run::<true>(b)
}

/// How many bytes at the start of `b` JSON writes as they are in a string: none of `"`,
/// `\\` or a control character (under 0x20), nor, with `ASCII`, a byte over 0x7F. Eight
/// at a time (most strings here are short, and a call to a search costs more than they
/// do): a byte is found by the borrow it makes, and the lowest such byte is exact.
pub(crate) fn unescaped_run<const ASCII: bool>(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut i = 0;
    while let Some(word) = b.get(i..i + 8) {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let w = u64::from_le_bytes(eight);
        // A quote, a backslash, or a byte under 0x20 (for bytes under 0x80, subtracting
        // 0x20 borrows exactly there; bytes over 0x7F never match), and with `ASCII` a
        // byte over 0x7F.
        let high = if ASCII { w & HIGH } else { 0 };
        let special = high
            | zero_in(w ^ (ONES * u64::from(b'"')))
            | zero_in(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + b[i..]
        .iter()
        .take_while(|&&c| c != b'"' && c != b'\\' && c >= 0x20 && (!ASCII || c < 0x80))
        .count()
}

/// The position past the JSON whitespace at `i` in `b`: the typed parse skips exactly
/// these four. Inline, and one comparison when there is none: compact JSON has none,
/// and this runs before every token.
#[inline(always)]
pub(crate) fn skip_ws(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(&c) if c > b' ' => i,
        _ => skip_ws_run(b, i),
    }
}

#[inline(never)]
fn skip_ws_run(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// A whole document read as `T` (only whitespace after it, as `serde_json::from_slice`
/// wants).
pub fn document<'a, T: Quick<'a>>(bytes: &'a [u8]) -> Option<T> {
    let mut c = Cursor::new(bytes);
    let t = c.object()?;
    c.at_end().then_some(t)
}

/// A whole document read by hand in the usual shape, else by the typed parse (which
/// decides as before); `None` when both refuse it.
pub fn document_or_typed<'a, T>(bytes: &'a [u8]) -> Option<T>
where
    T: Quick<'a> + serde::Deserialize<'a>,
{
    document(bytes).or_else(|| super::wire::from_json(bytes).ok())
}

/// The object at the start of `bytes` read as `T`, whatever follows it (as a streaming
/// parse takes the first value).
pub fn leading<'a, T: Quick<'a>>(bytes: &'a [u8]) -> Option<T> {
    Cursor::new(bytes).object()
}

#[cfg(test)]
mod tests;
