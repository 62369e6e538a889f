//! A character tokenizer with a small fixed vocabulary (at most
//! [`MAX_VOCAB`] = 64 ids), built deterministically from a corpus.
//!
//! The mapping:
//! - every input character is first lowercased (ASCII letters by
//!   `to_ascii_lowercase`; another character by its Unicode lowercase when
//!   that is a single character, else it is kept as it is), so one input
//!   character is always one token;
//! - id 0 is `<unk>`, which every character outside the vocabulary maps to
//!   and which decodes to U+FFFD ([`UNK_CHAR`]);
//! - ids `1..vocab_size` are the `vocab_size − 1` most frequent (lowercased)
//!   characters of the corpus (ties broken by the smaller code point), in
//!   ascending code-point order, so that the table reads like the alphabet.
//!
//! On the bundled Shakespeare corpus the lowercased text has 58 distinct
//! characters, so the default tokenizer keeps them all: 59 ids, and `<unk>`
//! only appears for characters the corpus does not contain.

use serde::{Deserialize, Serialize};

use crate::tokenizer_json::parse_tagged;
use crate::DataError;

/// The largest vocabulary a [`CharTokenizer`] may have, `<unk>` included.
pub const MAX_VOCAB: usize = 64;

/// The id of the unknown-character token.
pub const UNK_ID: u32 = 0;

/// What [`CharTokenizer::decode`] writes for [`UNK_ID`] (and for ids outside
/// the vocabulary): U+FFFD, the Unicode replacement character.
pub const UNK_CHAR: char = '\u{FFFD}';

/// The `kind` tag of the JSON form ([`CharTokenizer::to_json`]).
const JSON_KIND: &str = "tensim-char-tokenizer-v1";

/// A lowercasing character tokenizer; see the [module docs](self) for the
/// mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharTokenizer {
    /// The character of id `i + 1`, in ascending code-point order.
    symbols: Vec<char>,
    /// The id of each ASCII character (after lowercasing), `UNK_ID` if none.
    ascii_ids: [u32; 128],
}

/// The JSON form: `{"kind": "tensim-char-tokenizer-v1", "unk_id": 0,
/// "symbols": ["\n", " ", "!", …]}` where `symbols[i]` is the character of
/// id `i + 1`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenizerJson {
    kind: String,
    unk_id: u32,
    symbols: Vec<char>,
}

/// `c` lowercased to one character (see the module docs).
fn fold_case(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

impl CharTokenizer {
    /// Builds the tokenizer of `text` with at most `max_vocab` ids
    /// (`<unk>` included): the `max_vocab − 1` most frequent lowercased
    /// characters of `text` (ties: smaller code point first) get ids
    /// `1..`, in ascending code-point order. The same text and `max_vocab`
    /// always give the same tokenizer.
    ///
    /// # Panics
    /// If `max_vocab` is not in `2..=MAX_VOCAB`.
    pub fn from_text(text: &str, max_vocab: usize) -> Self {
        assert!(
            (2..=MAX_VOCAB).contains(&max_vocab),
            "max_vocab must be in 2..={MAX_VOCAB}, got {max_vocab}"
        );
        let mut ascii_counts = [0u64; 128];
        let mut other_counts: std::collections::BTreeMap<char, u64> = Default::default();
        for &b in text.as_bytes() {
            if b.is_ascii() {
                ascii_counts[usize::from(b.to_ascii_lowercase())] += 1;
            }
        }
        for c in text.chars().filter(|c| !c.is_ascii()) {
            *other_counts.entry(fold_case(c)).or_insert(0) += 1;
        }
        let mut counted: Vec<(char, u64)> = (0u8..128)
            .filter(|&b| ascii_counts[usize::from(b)] > 0)
            .map(|b| (char::from(b), ascii_counts[usize::from(b)]))
            .chain(other_counts)
            .filter(|&(c, _)| c != UNK_CHAR)
            .collect();
        counted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        counted.truncate(max_vocab - 1);
        let mut symbols: Vec<char> = counted.into_iter().map(|(c, _)| c).collect();
        symbols.sort_unstable();
        Self::from_symbols(symbols)
    }

    /// The tokenizer whose id `i + 1` is `symbols[i]`; `symbols` must be
    /// sorted, distinct, lowercase and without [`UNK_CHAR`] (checked by the
    /// callers).
    fn from_symbols(symbols: Vec<char>) -> Self {
        let mut ascii_ids = [UNK_ID; 128];
        for (i, &c) in symbols.iter().enumerate() {
            if c.is_ascii() {
                ascii_ids[c as usize] = i as u32 + 1;
            }
        }
        CharTokenizer { symbols, ascii_ids }
    }

    /// Number of ids, `<unk>` included (at most [`MAX_VOCAB`]).
    pub fn vocab_size(&self) -> usize {
        self.symbols.len() + 1
    }

    /// The characters of ids `1..vocab_size`, in id order.
    pub fn symbols(&self) -> &[char] {
        &self.symbols
    }

    /// The id of one character (lowercased first), [`UNK_ID`] if it is not
    /// in the vocabulary.
    pub fn id_of(&self, c: char) -> u32 {
        let c = fold_case(c);
        if c.is_ascii() {
            return self.ascii_ids[c as usize];
        }
        match self.symbols.binary_search(&c) {
            Ok(i) => i as u32 + 1,
            Err(_) => UNK_ID,
        }
    }

    /// The ids of `text`, one per character (see [`Self::id_of`]).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        if text.is_ascii() {
            return text
                .as_bytes()
                .iter()
                .map(|&b| self.ascii_ids[usize::from(b.to_ascii_lowercase())])
                .collect();
        }
        text.chars().map(|c| self.id_of(c)).collect()
    }

    /// The text of `ids`, one character per id: the id's character, or
    /// [`UNK_CHAR`] for [`UNK_ID`] and for ids `≥ vocab_size`. For text
    /// whose characters are all in the vocabulary, `decode(&encode(t))` is
    /// `t` lowercased character by character (for ASCII text:
    /// `t.to_ascii_lowercase()`).
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&id| match (id as usize).checked_sub(1) {
                Some(i) if i < self.symbols.len() => self.symbols[i],
                _ => UNK_CHAR,
            })
            .collect()
    }

    /// The JSON form: `{"kind":"tensim-char-tokenizer-v1","unk_id":0,
    /// "symbols":[…]}`, `symbols[i]` being the character of id `i + 1`.
    pub fn to_json(&self) -> String {
        let json = TokenizerJson {
            kind: JSON_KIND.to_string(),
            unk_id: UNK_ID,
            symbols: self.symbols.clone(),
        };
        serde_json::to_string(&json).expect("a tokenizer always serialises")
    }

    /// Reads the form written by [`Self::to_json`]. [`DataError::Tokenizer`]
    /// when it is not that JSON, or when the symbols are not distinct,
    /// lowercase, in ascending order, without U+FFFD and at most
    /// `MAX_VOCAB − 1`.
    pub fn from_json(json: &str) -> Result<Self, DataError> {
        let bad = |message: String| DataError::Tokenizer { message };
        let parsed: TokenizerJson =
            parse_tagged(json, "a tokenizer", JSON_KIND, |j: &TokenizerJson| &j.kind)?;
        if parsed.unk_id != UNK_ID {
            return Err(bad(format!(
                "unk_id is {}, expected {UNK_ID}",
                parsed.unk_id
            )));
        }
        let symbols = parsed.symbols;
        if symbols.len() + 1 > MAX_VOCAB {
            return Err(bad(format!(
                "{} symbols plus <unk> exceed the vocabulary limit of {MAX_VOCAB}",
                symbols.len()
            )));
        }
        if let Some(&c) = symbols
            .iter()
            .find(|&&c| c == UNK_CHAR || fold_case(c) != c)
        {
            return Err(bad(format!(
                "symbol {c:?} is not allowed (symbols are lowercase and not U+FFFD)"
            )));
        }
        if symbols.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad(
                "symbols are not distinct and in ascending code-point order".to_string(),
            ));
        }
        Ok(Self::from_symbols(symbols))
    }
}
