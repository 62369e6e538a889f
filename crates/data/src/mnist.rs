//! MNIST: four IDX files, checked against their canonical SHA-256.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::idx::{parse_idx_images, parse_idx_labels};
use crate::read::read_maybe_gzip;
use crate::{DataError, ImageSet, Split};

/// The four MNIST files and the SHA-256 of their unpacked bytes.
pub const MNIST_FILES: [(&str, &str); 4] = [
    (
        "train-images.idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        "train-labels.idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        "t10k-images.idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        "t10k-labels.idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
];

/// Loads MNIST from `dir`, which holds `train-images.idx3-ubyte`,
/// `train-labels.idx1-ubyte`, `t10k-images.idx3-ubyte` and
/// `t10k-labels.idx1-ubyte`, each gzipped (`.gz`, preferred) or raw.
///
/// The unpacked bytes of each file must have the canonical SHA-256
/// ([`MNIST_FILES`]); pixels are scaled to `u8 / 255`.
pub fn load_mnist(dir: &Path) -> Result<Split, DataError> {
    let [train_images, train_labels, test_images, test_labels] = MNIST_FILES;
    let train = load_pair(dir, train_images, train_labels)?;
    let test = load_pair(dir, test_images, test_labels)?;
    Ok(Split {
        train,
        test,
        name: "mnist".to_string(),
    })
}

/// Loads one images file and its labels file into an [`ImageSet`].
fn load_pair(
    dir: &Path,
    (images_name, images_sha): (&str, &str),
    (labels_name, labels_sha): (&str, &str),
) -> Result<ImageSet, DataError> {
    let (images_path, images_bytes) = read_verified(dir, images_name, images_sha)?;
    let (pixels, n, rows, cols) = parse_idx_images(images_bytes, &images_path)?;
    let (labels_path, labels_bytes) = read_verified(dir, labels_name, labels_sha)?;
    let labels = parse_idx_labels(labels_bytes, &labels_path)?;
    if labels.len() != n {
        return Err(DataError::format(
            &labels_path,
            format!(
                "{} labels for {n} images in {}; restore the MNIST files from the repository",
                labels.len(),
                images_path.display()
            ),
        ));
    }
    let images = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    Ok(ImageSet {
        images,
        labels,
        height: rows,
        width: cols,
    })
}

/// Finds `name.gz` (preferred) or `name` in `dir`, unpacks it and checks the
/// SHA-256 of the unpacked bytes against `sha_hex`.
fn read_verified(dir: &Path, name: &str, sha_hex: &str) -> Result<(PathBuf, Vec<u8>), DataError> {
    let gz = dir.join(format!("{name}.gz"));
    let raw = dir.join(name);
    let path = if gz.is_file() || !raw.is_file() {
        gz
    } else {
        raw
    };
    let hint = format!(
        "MNIST needs {name}.gz (or {name}) in {}; restore the bundled copy with \
         `git checkout -- data/mnist` or point TENSIM_DATA_DIR at a directory with mnist/ in it",
        dir.display()
    );
    let bytes = read_maybe_gzip(&path, &hint)?;
    let found = hex(&Sha256::digest(&bytes));
    if found != sha_hex {
        return Err(DataError::Checksum {
            path,
            expected: sha_hex.to_string(),
            found,
        });
    }
    Ok((path, bytes))
}

/// Lower-case hexadecimal of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
