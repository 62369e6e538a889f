//! Where axis labels go: at most as many as fit without overlapping.

/// One label along an axis: the pixel of its centre and its text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tick {
    pub at: f64,
    pub text: String,
}

/// The labels, in order of position, that can be drawn without any two
/// overlapping: a label is kept when its extent (`size(text)` pixels,
/// centred on `at`) starts at least `gap` pixels after the last kept one
/// ends. The first and the last label are always kept (the last replaces
/// the kept label it would overlap), so an axis shows where it starts and ends.
pub(crate) fn thin(mut ticks: Vec<Tick>, size: impl Fn(&str) -> f64, gap: f64) -> Vec<Tick> {
    ticks.sort_by(|a, b| a.at.total_cmp(&b.at));
    let last = ticks.pop();
    let fits = |a: &Tick, b: &Tick| {
        let (ha, hb) = (0.5 * size(&a.text), 0.5 * size(&b.text));
        b.at - hb >= a.at + ha + gap
    };
    let mut kept: Vec<Tick> = Vec::with_capacity(ticks.len() + 1);
    for t in ticks {
        if kept.last().is_none_or(|k| fits(k, &t)) {
            kept.push(t);
        }
    }
    if let Some(last) = last {
        while kept.len() > 1 && !fits(kept.last().expect("non-empty"), &last) {
            kept.pop();
        }
        if kept.last().is_none_or(|k| fits(k, &last)) {
            kept.push(last);
        }
    }
    kept
}

/// How the x labels of a panel are drawn: the ones kept, and whether they
/// are turned upright because horizontal text would drop some.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct XLabels {
    pub ticks: Vec<Tick>,
    pub upright: bool,
}

/// Lays out x labels: horizontal when every label fits side by side, or
/// when some may be dropped (`keep_all` false: numbers such as steps, of
/// which a thinned subset still reads well); else upright (read bottom to
/// top), thinned by the text height.
pub(crate) fn x_labels(
    ticks: Vec<Tick>,
    width: impl Fn(&str) -> f64,
    height: f64,
    keep_all: bool,
) -> XLabels {
    let all = ticks.len();
    let flat = thin(ticks.clone(), &width, 6.0);
    if flat.len() == all || !keep_all {
        return XLabels {
            ticks: flat,
            upright: false,
        };
    }
    XLabels {
        ticks: thin(ticks, |_| height, 2.0),
        upright: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticks(at: &[f64]) -> Vec<Tick> {
        at.iter()
            .map(|&a| Tick {
                at: a,
                text: format!("{a}"),
            })
            .collect()
    }

    #[test]
    fn overlapping_labels_are_dropped_and_the_first_kept() {
        let kept = thin(ticks(&[0.0, 5.0, 30.0, 31.0, 60.0]), |_| 20.0, 4.0);
        let at: Vec<f64> = kept.iter().map(|t| t.at).collect();
        assert_eq!(at, vec![0.0, 30.0, 60.0]);
        let kept = thin(ticks(&[0.0, 30.0, 60.0, 70.0]), |_| 20.0, 4.0);
        let at: Vec<f64> = kept.iter().map(|t| t.at).collect();
        assert_eq!(
            at,
            vec![0.0, 30.0, 70.0],
            "the last label displaces the one it overlaps"
        );
        assert_eq!(
            thin(ticks(&[0.0, 1.0]), |_| 20.0, 4.0).len(),
            1,
            "the first stays"
        );
    }

    #[test]
    fn crowded_x_labels_turn_upright_and_keep_more() {
        let spaced = x_labels(ticks(&[0.0, 50.0, 100.0]), |_| 30.0, 12.0, true);
        assert!(!spaced.upright && spaced.ticks.len() == 3);
        let crowded = x_labels(ticks(&[0.0, 20.0, 40.0, 60.0]), |_| 50.0, 12.0, true);
        assert!(crowded.upright);
        assert_eq!(
            crowded.ticks.len(),
            4,
            "12-pixel-high text fits every 20 pixels"
        );
        let numbers = x_labels(ticks(&[0.0, 20.0, 40.0, 60.0]), |_| 50.0, 12.0, false);
        assert!(
            !numbers.upright && numbers.ticks.len() == 2,
            "numbers are thinned instead"
        );
    }
}
