//! A byte-pair-encoding tokenizer learnt from a corpus (Sennrich, Haddow &
//! Birch 2016), for token-level language models.
//!
//! **Alphabet.** Ids `0..a` are the distinct bytes of the training text in
//! ascending order; the text is read as bytes, case kept.
//!
//! **Chunks.** Before any merge the text is cut into chunks, and no token
//! crosses a chunk boundary. A chunk is a maximal run of one class of bytes
//! — letters (ASCII letters and `'`), digits, whitespace, or anything else
//! — except that a single space right before a non-space run belongs to
//! that run (`" thee"`, `" 12"`, `" ,"`); whitespace runs give up their
//! last space to the run after them.
//!
//! **Training.** Starting from single bytes, the most frequent pair of
//! adjacent tokens inside chunks (counted over the whole text, ties broken by
//! the smaller pair of ids) becomes a new token, with the next free id,
//! until the vocabulary has the requested size or no pair occurs twice.
//!
//! **Encoding** applies the merges to each chunk in the order they were
//! learnt (the lowest-ranked adjacent pair first), which reproduces the
//! training segmentation.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::tokenizer_json::parse_tagged;
use crate::DataError;

/// The `kind` tag of the JSON form ([`BpeTokenizer::to_json`]).
const JSON_KIND: &str = "tensim-bpe-tokenizer-v1";

/// A byte-pair-encoding tokenizer; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BpeTokenizer {
    /// The bytes of the alphabet, ascending: byte `alphabet[i]` is id `i`.
    alphabet: Vec<u8>,
    /// Merge `r` joins the pair `merges[r]` into id `alphabet.len() + r`.
    merges: Vec<(u32, u32)>,
    /// The id of each byte, `None` outside the alphabet.
    byte_ids: [Option<u32>; 256],
    /// The rank of each merged pair.
    ranks: HashMap<(u32, u32), u32>,
    /// The bytes of each id.
    pieces: Vec<Vec<u8>>,
}

/// The JSON form: the alphabet as bytes, the merges as id pairs, and each
/// id's text (lossy UTF-8, for reading only).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BpeJson {
    kind: String,
    alphabet: Vec<u8>,
    merges: Vec<(u32, u32)>,
    #[serde(default)]
    tokens: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    Space,
    Other,
}

fn class(b: u8) -> Class {
    if b.is_ascii_alphabetic() || b == b'\'' {
        Class::Letter
    } else if b.is_ascii_digit() {
        Class::Digit
    } else if b.is_ascii_whitespace() {
        Class::Space
    } else {
        Class::Other
    }
}

/// The chunks of `text` (module docs), as byte ranges in order.
pub fn chunks(text: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let start = i;
        let lead = text[i] == b' ' && i + 1 < text.len() && class(text[i + 1]) != Class::Space;
        if lead {
            i += 1;
        }
        let c = class(text[i]);
        let mut j = i + 1;
        while j < text.len() && class(text[j]) == c {
            j += 1;
        }
        // A whitespace run leaves its last space to the run after it.
        if c == Class::Space && j < text.len() && j - start > 1 && text[j - 1] == b' ' {
            j -= 1;
        }
        out.push(&text[start..j]);
        i = j;
    }
    out
}

/// Adjacent pairs of `word`.
fn pairs(word: &[u32]) -> impl Iterator<Item = (u32, u32)> + '_ {
    word.windows(2).map(|w| (w[0], w[1]))
}

/// `word` with every non-overlapping occurrence of `pair` (left to right)
/// replaced by `id`.
fn merge_word(word: &[u32], pair: (u32, u32), id: u32) -> Vec<u32> {
    let mut out = Vec::with_capacity(word.len());
    let mut i = 0;
    while i < word.len() {
        if i + 1 < word.len() && (word[i], word[i + 1]) == pair {
            out.push(id);
            i += 2;
        } else {
            out.push(word[i]);
            i += 1;
        }
    }
    out
}

impl BpeTokenizer {
    /// Learns merges on `text` until the vocabulary has `vocab_size` ids
    /// (alphabet included) or no adjacent pair occurs twice; the alphabet is
    /// the bytes of `text`.
    pub fn train(text: &str, vocab_size: usize) -> Self {
        Self::train_with_alphabet(text, text, vocab_size)
    }

    /// [`Self::train`] with the alphabet taken from the bytes of both `text`
    /// and `alphabet` (e.g. the whole corpus when the merges are learnt on
    /// its training part only, so that held-out text always encodes).
    pub fn train_with_alphabet(text: &str, alphabet: &str, vocab_size: usize) -> Self {
        let bytes = text.as_bytes();
        let mut seen = [false; 256];
        for &b in bytes.iter().chain(alphabet.as_bytes()) {
            seen[b as usize] = true;
        }
        let alphabet: Vec<u8> = (0..=255u8).filter(|&b| seen[b as usize]).collect();
        let mut byte_ids = [None; 256];
        for (i, &b) in alphabet.iter().enumerate() {
            byte_ids[b as usize] = Some(i as u32);
        }
        // Distinct chunks with their counts, in first-seen order.
        let mut index: HashMap<&[u8], usize> = HashMap::new();
        let mut words: Vec<Vec<u32>> = Vec::new();
        let mut counts: Vec<i64> = Vec::new();
        for c in chunks(bytes) {
            let k = *index.entry(c).or_insert_with(|| {
                words.push(
                    c.iter()
                        .map(|&b| byte_ids[b as usize].expect("in the alphabet"))
                        .collect(),
                );
                counts.push(0);
                words.len() - 1
            });
            counts[k] += 1;
        }
        let mut pair_counts: HashMap<(u32, u32), i64> = HashMap::new();
        let mut holders: HashMap<(u32, u32), HashSet<usize>> = HashMap::new();
        for (k, w) in words.iter().enumerate() {
            for p in pairs(w) {
                *pair_counts.entry(p).or_insert(0) += counts[k];
                holders.entry(p).or_default().insert(k);
            }
        }
        // Max-heap on (count, smaller pair first); stale entries are skipped.
        let mut heap: BinaryHeap<(i64, Reverse<(u32, u32)>)> =
            pair_counts.iter().map(|(&p, &c)| (c, Reverse(p))).collect();
        let mut merges = Vec::new();
        while alphabet.len() + merges.len() < vocab_size {
            let Some((count, Reverse(pair))) = heap.pop() else {
                break;
            };
            if pair_counts.get(&pair) != Some(&count) {
                continue;
            }
            if count < 2 {
                break;
            }
            let id = (alphabet.len() + merges.len()) as u32;
            merges.push(pair);
            let mut touched: HashSet<(u32, u32)> = HashSet::new();
            let mut holding: Vec<usize> = holders
                .remove(&pair)
                .unwrap_or_default()
                .into_iter()
                .collect();
            holding.sort_unstable();
            for k in holding {
                let old = &words[k];
                if !pairs(old).any(|p| p == pair) {
                    continue;
                }
                let new = merge_word(old, pair, id);
                for p in pairs(old) {
                    *pair_counts.get_mut(&p).expect("counted") -= counts[k];
                    touched.insert(p);
                }
                for p in pairs(&new) {
                    *pair_counts.entry(p).or_insert(0) += counts[k];
                    holders.entry(p).or_default().insert(k);
                    touched.insert(p);
                }
                words[k] = new;
            }
            pair_counts.remove(&pair);
            for p in touched {
                if let Some(&c) = pair_counts.get(&p) {
                    if c > 0 {
                        heap.push((c, Reverse(p)));
                    } else {
                        pair_counts.remove(&p);
                    }
                }
            }
        }
        Self::from_parts(alphabet, merges)
    }

    /// The tokenizer of an alphabet and its merges (checked by the callers).
    fn from_parts(alphabet: Vec<u8>, merges: Vec<(u32, u32)>) -> Self {
        let mut byte_ids = [None; 256];
        let mut pieces: Vec<Vec<u8>> = Vec::with_capacity(alphabet.len() + merges.len());
        for (i, &b) in alphabet.iter().enumerate() {
            byte_ids[b as usize] = Some(i as u32);
            pieces.push(vec![b]);
        }
        let mut ranks = HashMap::with_capacity(merges.len());
        for (r, &(a, b)) in merges.iter().enumerate() {
            let mut joined = pieces[a as usize].clone();
            joined.extend_from_slice(&pieces[b as usize]);
            pieces.push(joined);
            ranks.insert((a, b), r as u32);
        }
        BpeTokenizer {
            alphabet,
            merges,
            byte_ids,
            ranks,
            pieces,
        }
    }

    /// Number of ids: the alphabet plus one per merge.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The learnt merges in order: merge `r` joins its pair into id
    /// `alphabet size + r`.
    pub fn merges(&self) -> &[(u32, u32)] {
        &self.merges
    }

    /// Number of ids of the alphabet (single bytes).
    pub fn alphabet_size(&self) -> usize {
        self.alphabet.len()
    }

    /// The bytes of id `id` (empty outside the vocabulary).
    pub fn piece(&self, id: u32) -> &[u8] {
        self.pieces.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// The ids of one chunk.
    fn encode_chunk(&self, chunk: &[u8]) -> Result<Vec<u32>, DataError> {
        let mut word: Vec<u32> = chunk
            .iter()
            .map(|&b| {
                self.byte_ids[b as usize].ok_or_else(|| DataError::Tokenizer {
                    message: format!("byte {b:#04x} is not in the tokenizer's alphabet"),
                })
            })
            .collect::<Result<_, _>>()?;
        loop {
            let best = pairs(&word)
                .filter_map(|p| self.ranks.get(&p).map(|&r| (r, p)))
                .min();
            let Some((r, p)) = best else {
                return Ok(word);
            };
            word = merge_word(&word, p, (self.alphabet.len() as u32) + r);
        }
    }

    /// The ids of `text`; [`DataError::Tokenizer`] for a byte outside the
    /// alphabet.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        let mut cache: HashMap<&[u8], Vec<u32>> = HashMap::new();
        let mut out = Vec::with_capacity(text.len() / 3);
        for c in chunks(text.as_bytes()) {
            if let Some(ids) = cache.get(c) {
                out.extend_from_slice(ids);
                continue;
            }
            let ids = self.encode_chunk(c)?;
            out.extend_from_slice(&ids);
            cache.insert(c, ids);
        }
        Ok(out)
    }

    /// The text of `ids` (lossy UTF-8; ids outside the vocabulary give nothing).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&i| self.piece(i).to_vec()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The JSON form: `{"kind":"tensim-bpe-tokenizer-v1","alphabet":[…],
    /// "merges":[[a,b],…],"tokens":[…]}`.
    pub fn to_json(&self) -> String {
        let json = BpeJson {
            kind: JSON_KIND.to_string(),
            alphabet: self.alphabet.clone(),
            merges: self.merges.clone(),
            tokens: (0..self.vocab_size() as u32)
                .map(|i| String::from_utf8_lossy(self.piece(i)).into_owned())
                .collect(),
        };
        serde_json::to_string(&json).expect("a tokenizer always serialises")
    }

    /// Reads [`Self::to_json`]'s form. [`DataError::Tokenizer`] when it is
    /// not that JSON, the alphabet is not strictly ascending, or a merge
    /// names an id not defined before it.
    pub fn from_json(json: &str) -> Result<Self, DataError> {
        let bad = |message: String| DataError::Tokenizer { message };
        let parsed: BpeJson =
            parse_tagged(json, "a BPE tokenizer", JSON_KIND, |j: &BpeJson| &j.kind)?;
        if parsed.alphabet.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("the alphabet is not strictly ascending".into()));
        }
        let a = parsed.alphabet.len();
        for (r, &(x, y)) in parsed.merges.iter().enumerate() {
            if x as usize >= a + r || y as usize >= a + r {
                return Err(bad(format!(
                    "merge {r} joins ({x}, {y}), not both defined before it"
                )));
            }
        }
        Ok(Self::from_parts(parsed.alphabet, parsed.merges))
    }
}
