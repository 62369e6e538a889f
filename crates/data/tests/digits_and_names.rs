//! The digits CSV and picking datasets by name.

use std::io::Read;

use tensim_data::{bundled_data_dir, load_dataset, load_digits, DataError, DATASET_NAMES};

#[test]
fn bundled_digits_load() {
    let split = load_dataset("digits", None).unwrap();
    assert_eq!(split.name, "digits");
    assert_eq!(split.train.len(), 1437);
    assert_eq!(split.test.len(), 360);
    for set in [&split.train, &split.test] {
        assert_eq!((set.height, set.width), (8, 8));
        assert_eq!(set.images.len(), set.len() * 64);
        assert!(set.labels.iter().all(|&l| l < 10));
        assert!(set.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
        assert_eq!(set.label_counts().len(), 10);
    }
    assert!(split.train.images.contains(&1.0));
    // The first row of the file: 0,0,5,13,9,1,0,0,... label 0.
    assert_eq!(split.train.labels[0], 0);
    assert_eq!(
        &split.train.image(0)[..4],
        &[0.0, 0.0, 5.0 / 16.0, 13.0 / 16.0]
    );
}

#[test]
fn plain_csv_matches_gzipped() {
    let gz = bundled_data_dir().join("digits").join("digits.csv.gz");
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("digits.csv");
    std::fs::write(&csv, &text).unwrap();
    let a = load_digits(&gz).unwrap();
    let b = load_digits(&csv).unwrap();
    assert_eq!(a.train.images, b.train.images);
    assert_eq!(a.test.labels, b.test.labels);
}

#[test]
fn bad_digits_rows_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("bad.csv");
    std::fs::write(&csv, "1,2,3\n").unwrap();
    let msg = load_digits(&csv).unwrap_err().to_string();
    assert!(msg.contains("bad.csv"), "{msg}");
    assert!(msg.contains("line 1"), "{msg}");
    assert!(msg.contains("65"), "{msg}");

    let mut row = vec!["0"; 64];
    row[5] = "17";
    std::fs::write(&csv, format!("{},3\n", row.join(","))).unwrap();
    let msg = load_digits(&csv).unwrap_err().to_string();
    assert!(msg.contains("outside 0..=16"), "{msg}");

    let msg = load_digits(&tmp.path().join("none.csv.gz"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("none.csv.gz: file not found"), "{msg}");
}

#[test]
fn unknown_dataset_lists_valid_names() {
    let err = load_dataset("cifar", None).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::UnknownDataset { .. }), "{msg}");
    assert!(msg.contains("cifar"), "{msg}");
    for name in DATASET_NAMES {
        assert!(msg.contains(name), "{msg}");
    }
}

#[test]
fn svhn_without_dir_asks_for_it() {
    let err = load_dataset("svhn", None).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::SvhnDirRequired), "{msg}");
    assert!(msg.contains("--svhn-dir"), "{msg}");
    assert!(msg.contains("train_32x32.mat"), "{msg}");
}

#[test]
fn svhn_with_empty_dir_names_the_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let err = load_dataset("svhn", Some(tmp.path())).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::NotFound { .. }), "{msg}");
    assert!(msg.contains("train_32x32.mat: file not found"), "{msg}");
    assert!(msg.contains("not bundled"), "{msg}");
    assert!(msg.contains("--svhn-dir"), "{msg}");
}
