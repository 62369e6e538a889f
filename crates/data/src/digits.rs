//! The UCI optical-recognition digits (8×8, the set scikit-learn ships).

use std::path::Path;

use crate::read::read_maybe_gzip;
use crate::{DataError, ImageSet, Split};

/// Side of a digits image.
pub const DIGITS_SIDE: usize = 8;
/// How many of the last rows form the test set (the first 1437 of the
/// bundled 1797 rows are the training set).
pub const DIGITS_TEST_LEN: usize = 360;

/// Loads the digits CSV at `path` (gzipped, as bundled, or plain).
///
/// Each row holds 64 values in `0..=16` (an 8×8 image, row-major) and then
/// the label `0..=9`; pixels are scaled to `v / 16`. The split is fixed: the
/// last [`DIGITS_TEST_LEN`] rows are the test set and all rows before them
/// the training set (1437 / 360 for the bundled file).
pub fn load_digits(path: &Path) -> Result<Split, DataError> {
    let bytes = read_maybe_gzip(
        path,
        "restore the bundled copy with `git checkout -- data/digits` \
         or point TENSIM_DATA_DIR at a directory with digits/digits.csv.gz in it",
    )?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        DataError::format(path, "not a text CSV file; restore it from the repository")
    })?;
    let dim = DIGITS_SIDE * DIGITS_SIDE;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |what: String| {
            DataError::format(
                path,
                format!(
                    "line {}: {what}; restore the file from the repository",
                    line_no + 1
                ),
            )
        };
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != dim + 1 {
            return Err(bad(format!(
                "{} fields, expected {} (64 pixels and a label)",
                fields.len(),
                dim + 1
            )));
        }
        for field in &fields[..dim] {
            let v: f32 = field
                .trim()
                .parse()
                .map_err(|_| bad(format!("pixel `{field}` is not a number")))?;
            if !(0.0..=16.0).contains(&v) {
                return Err(bad(format!("pixel {v} is outside 0..=16")));
            }
            images.push(v / 16.0);
        }
        let label_field = fields[dim].trim();
        let label: f32 = label_field
            .parse()
            .map_err(|_| bad(format!("label `{label_field}` is not a number")))?;
        if !(0.0..=9.0).contains(&label) || label.fract() != 0.0 {
            return Err(bad(format!("label {label} is not a digit 0..=9")));
        }
        labels.push(label as u8);
    }
    let n = labels.len();
    if n <= DIGITS_TEST_LEN {
        return Err(DataError::format(
            path,
            format!(
                "only {n} rows, need more than {DIGITS_TEST_LEN} (the test set is the last \
                 {DIGITS_TEST_LEN}); restore the file from the repository"
            ),
        ));
    }
    let n_train = n - DIGITS_TEST_LEN;
    let test_images = images.split_off(n_train * dim);
    let test_labels = labels.split_off(n_train);
    let set = |images, labels| ImageSet {
        images,
        labels,
        height: DIGITS_SIDE,
        width: DIGITS_SIDE,
    };
    Ok(Split {
        train: set(images, labels),
        test: set(test_images, test_labels),
        name: "digits".to_string(),
    })
}
