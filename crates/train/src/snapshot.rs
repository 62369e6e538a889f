//! What a training run continues from after an interruption: the step
//! count, the random stream's position and AdamW's moments. With the
//! weights of the checkpoint taken at the same step (saved in f32, exactly
//! as trained), a resumed run takes the same steps as an uninterrupted one,
//! bit for bit.

use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// The random stream every run draws from: ChaCha12, the generator behind
/// `rand`'s `StdRng` (the same stream for the same seed), whose position can
/// be saved and restored.
pub type RunRng = ChaCha12Rng;

/// A seeded [`RunRng`].
pub fn run_rng(seed: u64) -> RunRng {
    RunRng::seed_from_u64(seed)
}

/// The exact position of a [`RunRng`]: its key, stream and word position
/// (as text: JSON numbers are 64-bit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    key: String,
    stream: u64,
    word_pos: String,
}

impl RngState {
    pub fn of(rng: &RunRng) -> Self {
        RngState {
            key: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// The generator at this position.
    pub fn rng(&self) -> Result<RunRng> {
        let bad = || TrainError::Invalid(format!("random stream state {self:?} is malformed"));
        if self.key.len() != 64 || !self.key.is_ascii() {
            return Err(bad());
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&self.key[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let mut rng = RunRng::from_seed(key);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos.parse().map_err(|_| bad())?);
        Ok(rng)
    }
}

/// AdamW's state: its step count (bias correction) and, per parameter in
/// the network's order, the first and second moments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdamState {
    pub t: u64,
    pub first: Vec<Vec<f32>>,
    pub second: Vec<Vec<f32>>,
}

impl AdamState {
    /// An error unless the moments have `sizes` entries per parameter.
    pub fn check(&self, sizes: &[usize]) -> Result<()> {
        let fits = |moments: &[Vec<f32>]| {
            moments.len() == sizes.len() && moments.iter().zip(sizes).all(|(m, &n)| m.len() == n)
        };
        if fits(&self.first) && fits(&self.second) {
            Ok(())
        } else {
            Err(TrainError::Invalid(
                "saved optimiser moments do not fit the network's parameters".into(),
            ))
        }
    }
}

/// A trainer's state at a checkpoint, taken before the next step.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerState {
    /// Steps taken.
    pub step: u64,
    /// The trainer's own random stream, where it has one.
    pub rng: Option<RngState>,
    pub adam: AdamState,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::Rng;

    #[test]
    fn run_rng_is_std_rng_and_its_position_round_trips() {
        let mut std = StdRng::seed_from_u64(1337);
        let mut ours = run_rng(1337);
        for _ in 0..1000 {
            assert_eq!(std.random::<u64>(), ours.random::<u64>());
        }
        let _: u32 = ours.random();
        let state = RngState::of(&ours);
        let json = serde_json::to_string(&state).unwrap();
        let mut back = serde_json::from_str::<RngState>(&json)
            .unwrap()
            .rng()
            .unwrap();
        for _ in 0..1000 {
            assert_eq!(ours.random::<u64>(), back.random::<u64>());
        }
    }
}
