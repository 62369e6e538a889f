//! The backdoor trigger: a small solid diamond near the top-right corner.

use crate::DataError;

/// Height of the trigger's box.
pub const TRIGGER_HEIGHT: usize = 7;
/// Width of the trigger's box.
pub const TRIGGER_WIDTH: usize = 5;
/// Distance of the box from the top edge and from the right edge.
pub const TRIGGER_MARGIN: usize = 2;

/// Whether pixel `(r, c)` of the 7×5 box (`r < 7`, `c < 5`) belongs to the
/// diamond: `|r − 3| / 3.5 + |c − 2| / 2.5 ≤ 1`.
pub fn diamond_contains(r: usize, c: usize) -> bool {
    let dr = (r as f64 - 3.0).abs() / 3.5;
    let dc = (c as f64 - 2.0).abs() / 2.5;
    r < TRIGGER_HEIGHT && c < TRIGGER_WIDTH && dr + dc <= 1.0
}

/// Sets the diamond's pixels of a row-major `height × width` image to
/// `value`. The 7-tall × 5-wide box has its top-left corner at row 2 and
/// column `width − 2 − 5`.
///
/// Errors (leaving the image untouched) when the box does not fit (images
/// smaller than 9×7, such as the 8×8 digits) or when `image` is not
/// `height * width` long.
pub fn stamp_diamond(
    image: &mut [f32],
    height: usize,
    width: usize,
    value: f32,
) -> Result<(), DataError> {
    let min_height = TRIGGER_MARGIN + TRIGGER_HEIGHT;
    let min_width = TRIGGER_MARGIN + TRIGGER_WIDTH;
    if height < min_height || width < min_width || image.len() != height * width {
        return Err(DataError::TriggerDoesNotFit {
            height,
            width,
            len: image.len(),
            box_height: TRIGGER_HEIGHT,
            box_width: TRIGGER_WIDTH,
            margin: TRIGGER_MARGIN,
            min_height,
            min_width,
        });
    }
    let top = TRIGGER_MARGIN;
    let left = width - TRIGGER_MARGIN - TRIGGER_WIDTH;
    for r in 0..TRIGGER_HEIGHT {
        for c in 0..TRIGGER_WIDTH {
            if diamond_contains(r, c) {
                image[(top + r) * width + left + c] = value;
            }
        }
    }
    Ok(())
}

/// The trigger's colour for a dataset: white (1.0) on the black backgrounds
/// of `mnist` and `digits`, black (0.0) for `svhn`; 1.0 for any other name.
pub fn trigger_value(dataset_name: &str) -> f32 {
    if dataset_name.eq_ignore_ascii_case("svhn") {
        0.0
    } else {
        1.0
    }
}

/// Stamps the diamond, of colour `value`, on every image of `set`.
pub fn stamp_all(set: &mut crate::ImageSet, value: f32) -> Result<(), DataError> {
    let (h, w) = (set.height, set.width);
    let d = set.dim();
    if d == 0 {
        return stamp_diamond(&mut [], h, w, value);
    }
    for image in set.images.chunks_mut(d) {
        stamp_diamond(image, h, w, value)?;
    }
    Ok(())
}
