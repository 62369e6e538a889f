//! The bundled Shakespeare corpus and its loader's errors.

use std::io::Write;

use tensim_data::shakespeare::{SHAKESPEARE_FILE, SHAKESPEARE_LEN};
use tensim_data::{
    bundled_data_dir, load_shakespeare, load_text_dataset, CharTokenizer, DataError, MAX_VOCAB,
};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn bundled_corpus_loads() {
    let text = load_text_dataset("shakespeare").unwrap();
    assert_eq!(text.len(), SHAKESPEARE_LEN);
    assert!(text.is_ascii());
    assert!(text.starts_with("ALL'S WELL THAT ENDS WELL\n\nby William Shakespeare"));
    assert!(text.contains("To be, or not to be"));
    // The path-based loader reads the same text.
    let same = load_shakespeare(&bundled_data_dir().join(SHAKESPEARE_FILE)).unwrap();
    assert_eq!(same, text);

    // Encoding then decoding gives back the lowercased text.
    let tokenizer = CharTokenizer::from_text(&text, MAX_VOCAB);
    let sample = &text[1_000_000..1_020_000];
    let ids = tokenizer.encode(sample);
    assert_eq!(ids.len(), sample.len());
    assert_eq!(tokenizer.decode(&ids), sample.to_ascii_lowercase());
}

#[test]
fn unknown_text_dataset_lists_the_names() {
    let err = load_text_dataset("war-and-peace").unwrap_err();
    assert!(matches!(err, DataError::UnknownTextDataset { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("war-and-peace") && msg.contains("shakespeare"),
        "{msg}"
    );
}

#[test]
fn missing_file_names_the_path_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("no_such_corpus.txt.gz");
    let err = load_shakespeare(&path).unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("git checkout -- data/shakespeare"), "{msg}");
    assert!(msg.contains("TENSIM_DATA_DIR"), "{msg}");
}

#[test]
fn plain_text_is_refused_as_not_gzip() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("plain.txt.gz");
    std::fs::write(&path, b"To be, or not to be").unwrap();
    let msg = load_shakespeare(&path).unwrap_err().to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("not a gzip file"), "{msg}");
}

#[test]
fn truncated_gzip_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("cut.txt.gz");
    let packed = gzip("Now is the winter of our discontent".repeat(50).as_bytes());
    std::fs::write(&path, &packed[..packed.len() / 2]).unwrap();
    let msg = load_shakespeare(&path).unwrap_err().to_string();
    assert!(msg.contains("broken gzip stream"), "{msg}");
}

#[test]
fn non_utf8_and_non_ascii_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("latin1.txt.gz");
    std::fs::write(&path, gzip(b"caf\xe9 au lait")).unwrap();
    let msg = load_shakespeare(&path).unwrap_err().to_string();
    assert!(
        msg.contains("not UTF-8") && msg.contains("offset 3"),
        "{msg}"
    );

    let path = tmp.path().join("utf8.txt.gz");
    std::fs::write(&path, gzip("caf\u{e9} au lait".as_bytes())).unwrap();
    let msg = load_shakespeare(&path).unwrap_err().to_string();
    assert!(
        msg.contains("not plain ASCII") && msg.contains("U+00E9"),
        "{msg}"
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn small_gzipped_ascii_file_loads_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("sonnet.txt.gz");
    let text =
        "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\n";
    std::fs::write(&path, gzip(text.as_bytes())).unwrap();
    assert_eq!(load_shakespeare(&path).unwrap(), text);
}
