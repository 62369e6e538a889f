//! SVHN (Street View House Numbers, cropped digits): `train_32x32.mat` and
//! `test_32x32.mat`, MATLAB v5 files that are not bundled.
//!
//! Each file holds `X`, a 32×32×3×N array (column-major: element
//! `(r, c, ch, n)` at `r + 32 * (c + 32 * (ch + 3 * n))`) of RGB pixels
//! 0..=255, and `y`, N labels 1..=10 where 10 stands for the digit 0.

use std::path::Path;

use crate::mat::{for_each_array, MatArray, Numeric};
use crate::read::read_maybe_gzip;
use crate::{DataError, ImageSet, Split};

/// Side of an SVHN image.
pub const SVHN_SIDE: usize = 32;
/// File name of the training set.
pub const SVHN_TRAIN_FILE: &str = "train_32x32.mat";
/// File name of the test set.
pub const SVHN_TEST_FILE: &str = "test_32x32.mat";
/// Luminance weights of R, G and B.
pub const LUMINANCE: [f32; 3] = [0.2989, 0.5870, 0.1140];

const NOT_BUNDLED: &str = "SVHN is not bundled (non-commercial licence, ~180 MB): download \
    train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/ into one \
    directory and pass --svhn-dir DIR";

/// Loads SVHN from `dir/train_32x32.mat` and `dir/test_32x32.mat`, as
/// grayscale 32×32 images (see [`load_svhn_file`]).
pub fn load_svhn(dir: &Path) -> Result<Split, DataError> {
    let train = load_svhn_file(&dir.join(SVHN_TRAIN_FILE))?;
    let test = load_svhn_file(&dir.join(SVHN_TEST_FILE))?;
    Ok(Split {
        train,
        test,
        name: "svhn".to_string(),
    })
}

/// Loads one SVHN `.mat` file: each pixel becomes the luminance
/// `(0.2989 R + 0.5870 G + 0.1140 B) / 255`, stored row-major; label 10
/// becomes 0. `X` and `y` may be stored as any numeric type (uint8 and
/// double in practice), compressed or not.
pub fn load_svhn_file(path: &Path) -> Result<ImageSet, DataError> {
    let bytes = read_maybe_gzip(path, NOT_BUNDLED)?;
    let mut images: Option<(Vec<f32>, usize)> = None;
    let mut labels: Option<Vec<u8>> = None;
    for_each_array(&bytes, path, |array| {
        match array.name.as_str() {
            "X" => images = Some(convert_images(&array, path)?),
            "y" => labels = Some(convert_labels(&array, path)?),
            _ => {}
        }
        Ok(())
    })?;
    let missing = |var: &str| {
        DataError::format(
            path,
            format!(
                "no variable `{var}` in the file; expected SVHN's cropped-digits format \
                 ({SVHN_TRAIN_FILE} / {SVHN_TEST_FILE} with `X` and `y`)"
            ),
        )
    };
    let (images, n) = images.ok_or_else(|| missing("X"))?;
    let labels = labels.ok_or_else(|| missing("y"))?;
    if labels.len() != n {
        return Err(DataError::format(
            path,
            format!(
                "`X` holds {n} images but `y` {} labels; the file is corrupt, download it again",
                labels.len()
            ),
        ));
    }
    Ok(ImageSet {
        images,
        labels,
        height: SVHN_SIDE,
        width: SVHN_SIDE,
    })
}

fn dims_text(dims: &[usize]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

fn numeric<'a>(array: &MatArray<'a>, path: &Path) -> Result<Numeric<'a>, DataError> {
    array.real.ok_or_else(|| {
        DataError::format(
            path,
            format!(
                "variable `{}` is not a numeric array (class {}); expected SVHN's format",
                array.name, array.class
            ),
        )
    })
}

/// `X` (32×32×3×N, column-major RGB) to N row-major grayscale images.
fn convert_images(array: &MatArray<'_>, path: &Path) -> Result<(Vec<f32>, usize), DataError> {
    let s = SVHN_SIDE;
    let n = match array.dims.as_slice() {
        [r, c, 3, n] if *r == s && *c == s => *n,
        // MATLAB drops a trailing singleton dimension.
        [r, c, 3] if *r == s && *c == s => 1,
        dims => {
            return Err(DataError::format(
                path,
                format!(
                    "variable `X` has dims {}, expected 32x32x3xN; use SVHN's cropped-digits \
                     files ({SVHN_TRAIN_FILE} / {SVHN_TEST_FILE})",
                    dims_text(dims)
                ),
            ))
        }
    };
    let data = numeric(array, path)?;
    let mut out = vec![0.0f32; n * s * s];
    match data.num_type {
        crate::mat::NumType::U8 => gray(&mut out, n, |i| f32::from(data.bytes[i])),
        _ => gray(&mut out, n, |i| data.get(i) as f32),
    }
    Ok((out, n))
}

/// Fills `out` with the luminance of `n` column-major RGB images whose value
/// at flat index `i` is `value(i)`.
fn gray(out: &mut [f32], n: usize, value: impl Fn(usize) -> f32) {
    let s = SVHN_SIDE;
    let [wr, wg, wb] = LUMINANCE;
    for k in 0..n {
        for c in 0..s {
            for r in 0..s {
                let at = |ch: usize| r + s * (c + s * (ch + 3 * k));
                let lum = wr * value(at(0)) + wg * value(at(1)) + wb * value(at(2));
                out[k * s * s + r * s + c] = lum / 255.0;
            }
        }
    }
}

/// `y` (N×1 or 1×N, values 1..=10) to labels 0..=9.
fn convert_labels(array: &MatArray<'_>, path: &Path) -> Result<Vec<u8>, DataError> {
    let ok_dims = matches!(array.dims.as_slice(), [_, 1] | [1, _]);
    if !ok_dims {
        return Err(DataError::format(
            path,
            format!(
                "variable `y` has dims {}, expected Nx1; use SVHN's cropped-digits files",
                dims_text(&array.dims)
            ),
        ));
    }
    let data = numeric(array, path)?;
    (0..data.len())
        .map(|i| {
            let v = data.get(i);
            if v.fract() == 0.0 && (0.0..=10.0).contains(&v) {
                Ok((v as u8) % 10)
            } else {
                Err(DataError::format(
                    path,
                    format!("label {v} at position {i} of `y` is not 1..=10; the file is corrupt"),
                ))
            }
        })
        .collect()
}
