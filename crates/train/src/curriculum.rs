//! Class-incremental curricula (EXPERIMENTS §2): which classes each stage trains on.

/// One stage of a curriculum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    pub name: String,
    /// Classes (digits) present in the stage's training data, ascending.
    pub classes: Vec<u8>,
}

/// The nine stages of EXPERIMENTS §2: base 0–4; add 5; add 6; add 7; add 8;
/// add 9 (0–9); control (0–9 again); remove 9 (0–8); re-add 9 (0–9).
/// Each stage continues from the previous one's weights.
pub fn class_incremental() -> Vec<Stage> {
    let upto = |last: u8| (0..=last).collect::<Vec<u8>>();
    let mut stages = vec![Stage {
        name: "base 0-4".into(),
        classes: upto(4),
    }];
    for digit in 5..=9u8 {
        stages.push(Stage {
            name: format!("add {digit}"),
            classes: upto(digit),
        });
    }
    stages.push(Stage {
        name: "control".into(),
        classes: upto(9),
    });
    stages.push(Stage {
        name: "remove 9".into(),
        classes: upto(8),
    });
    stages.push(Stage {
        name: "re-add 9".into(),
        classes: upto(9),
    });
    stages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nine_stages_with_the_right_digits() {
        let s = class_incremental();
        let names: Vec<&str> = s.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "base 0-4", "add 5", "add 6", "add 7", "add 8", "add 9", "control", "remove 9",
                "re-add 9"
            ]
        );
        assert_eq!(s[0].classes, vec![0, 1, 2, 3, 4]);
        assert_eq!(s[3].classes, (0..=7).collect::<Vec<u8>>());
        assert_eq!(s[5].classes, s[6].classes);
        assert_eq!(s[7].classes, (0..=8).collect::<Vec<u8>>());
        assert!(!s[7].classes.contains(&9));
        assert_eq!(s[8].classes, (0..=9).collect::<Vec<u8>>());
    }
}
