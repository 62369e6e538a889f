//! The character tokenizer: deterministic, at most 64 ids, `<unk>` = 0.

use tensim_data::{load_text_dataset, CharTokenizer, DataError, MAX_VOCAB, UNK_CHAR, UNK_ID};

#[test]
fn shakespeare_vocabulary() {
    let text = load_text_dataset("shakespeare").unwrap();
    let a = CharTokenizer::from_text(&text, MAX_VOCAB);
    let b = CharTokenizer::from_text(&text, MAX_VOCAB);
    assert_eq!(a, b);
    assert!(a.vocab_size() <= MAX_VOCAB);
    // 58 distinct characters once lowercased, plus <unk>.
    assert_eq!(a.vocab_size(), 59);
    let symbols: String = a.symbols().iter().collect();
    assert!(symbols.contains("abcdefghijklmnopqrstuvwxyz"));
    assert!(symbols.starts_with("\n !"));
    assert!(!symbols.chars().any(|c| c.is_ascii_uppercase()));
    // No character of the corpus is unknown.
    assert!(!a.encode(&text[..200_000]).contains(&UNK_ID));
}

#[test]
fn small_vocabulary_keeps_the_most_frequent_characters() {
    // Frequencies (after lowercasing): a 5, b 4, c 3, d 2, e 1.
    let text = "aAaaA bBbB cCc dd e";
    let tok = CharTokenizer::from_text(text, 4);
    assert_eq!(tok.vocab_size(), 4);
    assert_eq!(tok.symbols(), &[' ', 'a', 'b']);
    assert_eq!(tok.encode("Ab c"), vec![2, 3, 1, UNK_ID]);
    assert_eq!(
        tok.decode(&[2, 3, 1, UNK_ID, 99]),
        format!("ab {UNK_CHAR}{UNK_CHAR}")
    );
    assert_eq!(tok, CharTokenizer::from_text(text, 4));
    // ' ' (4 times) ties with b and wins on its smaller code point.
    let tok = CharTokenizer::from_text(text, 3);
    assert_eq!(tok.symbols(), &[' ', 'a']);
    assert_eq!(tok.encode("Ab c"), vec![2, UNK_ID, 1, UNK_ID]);
}

#[test]
fn non_ascii_input_is_one_token_per_character() {
    let tok = CharTokenizer::from_text("ééé abc", 64);
    assert_eq!(tok.symbols(), &[' ', 'a', 'b', 'c', 'é']);
    let ids = tok.encode("ÉA→c");
    assert_eq!(ids, vec![5, 2, UNK_ID, 4]);
    assert_eq!(tok.decode(&ids), format!("éa{UNK_CHAR}c"));
}

#[test]
#[should_panic(expected = "max_vocab must be in 2..=64")]
fn vocabulary_above_64_is_refused() {
    let _ = CharTokenizer::from_text("abc", 65);
}

#[test]
fn json_round_trip() {
    let text = load_text_dataset("shakespeare").unwrap();
    let tok = CharTokenizer::from_text(&text[..100_000], MAX_VOCAB);
    let json = tok.to_json();
    assert!(
        json.contains("\"kind\":\"tensim-char-tokenizer-v1\""),
        "{json}"
    );
    let back = CharTokenizer::from_json(&json).unwrap();
    assert_eq!(back, tok);
    assert_eq!(back.encode("Hark!"), tok.encode("Hark!"));
}

#[test]
fn bad_json_is_refused() {
    let cases = [
        ("{", "not the JSON of a tokenizer"),
        (
            r#"{"kind":"other","unk_id":0,"symbols":["a"]}"#,
            "kind is `other`",
        ),
        (
            r#"{"kind":"tensim-char-tokenizer-v1","unk_id":0,"symbols":["b","a"]}"#,
            "ascending",
        ),
        (
            r#"{"kind":"tensim-char-tokenizer-v1","unk_id":0,"symbols":["a","a"]}"#,
            "distinct",
        ),
        (
            r#"{"kind":"tensim-char-tokenizer-v1","unk_id":0,"symbols":["A"]}"#,
            "lowercase",
        ),
        (
            r#"{"kind":"tensim-char-tokenizer-v1","unk_id":3,"symbols":["a"]}"#,
            "unk_id",
        ),
    ];
    for (json, expected) in cases {
        let err = CharTokenizer::from_json(json).unwrap_err();
        assert!(matches!(err, DataError::Tokenizer { .. }));
        let msg = err.to_string();
        assert!(msg.contains(expected), "{json}: {msg}");
    }
    // 64 distinct CJK ideographs (no case): one too many with <unk>.
    let many: Vec<String> = (0..64)
        .map(|i| format!("\"{}\"", char::from_u32(0x4e00 + i).unwrap()))
        .collect();
    let json = format!(
        r#"{{"kind":"tensim-char-tokenizer-v1","unk_id":0,"symbols":[{}]}}"#,
        many.join(",")
    );
    let msg = CharTokenizer::from_json(&json).unwrap_err().to_string();
    assert!(msg.contains("exceed the vocabulary limit of 64"), "{msg}");
}
