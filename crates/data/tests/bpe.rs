//! The byte-pair-encoding tokenizer: chunking, merges by hand, round trips
//! and the JSON form.

use tensim_data::bpe::chunks;
use tensim_data::BpeTokenizer;

#[test]
fn chunks_attach_one_leading_space() {
    let text = b"To be, or  not\n\n  to 12!";
    let got: Vec<&str> = chunks(text)
        .into_iter()
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    assert_eq!(
        got,
        ["To", " be", ",", " or", " ", " not", "\n\n ", " to", " 12", "!"]
    );
    assert_eq!(got.concat().as_bytes(), text);
}

#[test]
fn merges_by_hand() {
    // Chunks: "ab" ×3, " ab" ×2 (with the leading space), so (a, b) occurs
    // 5 times and is merged first; then (" ", ab) twice.
    let text = "ab ab ab";
    let tok = BpeTokenizer::train(text, 100);
    // Alphabet: ' ' = 0, 'a' = 1, 'b' = 2.
    assert_eq!(tok.vocab_size(), 5);
    assert_eq!(tok.piece(3), b"ab");
    assert_eq!(tok.piece(4), b" ab");
    assert_eq!(tok.encode(text).unwrap(), vec![3, 4, 4]);
    assert_eq!(tok.encode("ba").unwrap(), vec![2, 1]);
    assert!(tok.encode("abc").is_err());
    // A vocabulary limit stops the merges.
    assert_eq!(BpeTokenizer::train(text, 4).vocab_size(), 4);
}

#[test]
fn round_trips_and_json() {
    let text = "the quick brown fox jumps over the lazy dog; the dog sleeps. \
                The fox, the dog and the other fox.\n\nThe end, the end.";
    let tok = BpeTokenizer::train(text, 60);
    assert!(tok.vocab_size() > 30 && tok.vocab_size() <= 60);
    let ids = tok.encode(text).unwrap();
    assert!(ids.len() < text.len());
    assert_eq!(tok.decode(&ids), text);
    assert!(ids.iter().all(|&i| (i as usize) < tok.vocab_size()));
    let back = BpeTokenizer::from_json(&tok.to_json()).unwrap();
    assert_eq!(back, tok);
    assert_eq!(back.encode(text).unwrap(), ids);
    assert!(BpeTokenizer::from_json("{}").is_err());
    assert!(BpeTokenizer::from_json(
        r#"{"kind":"tensim-bpe-tokenizer-v1","alphabet":[97,98],"merges":[[0,2]]}"#
    )
    .is_err());
}

/// Encoding applies the merges in rank order, which must give the same
/// segmentation as replaying every training merge, in order, on every chunk.
#[test]
fn encoding_equals_replaying_the_merges() {
    let text = "aaaa abab aaab baaa ab ab aa a b bb bbb abba aabb";
    let tok = BpeTokenizer::train(text, 40);
    let a = tok.alphabet_size();
    let mut replay: Vec<u32> = Vec::new();
    for c in chunks(text.as_bytes()) {
        let mut word: Vec<u32> = c
            .iter()
            .map(|&b| (0..a as u32).find(|&i| tok.piece(i) == [b]).unwrap())
            .collect();
        for (r, &pair) in tok.merges().iter().enumerate() {
            let mut out = Vec::new();
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && (word[i], word[i + 1]) == pair {
                    out.push((a + r) as u32);
                    i += 2;
                } else {
                    out.push(word[i]);
                    i += 1;
                }
            }
            word = out;
        }
        replay.extend(word);
    }
    assert_eq!(tok.decode(&replay), text);
    assert_eq!(tok.encode(text).unwrap(), replay);
}

#[test]
fn an_extra_alphabet_lets_held_out_text_encode() {
    let tok = BpeTokenizer::train_with_alphabet("abab ab", "xyz", 50);
    assert_eq!(tok.alphabet_size(), 6);
    let ids = tok.encode("ab zx").unwrap();
    assert_eq!(tok.decode(&ids), "ab zx");
}
