//! Seeded parameter initialisers, sampled with `rand_distr`.

use autodiff::{Float, Tensor};
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};
use std::fmt;
use std::str::FromStr;

/// How a layer's weights (and biases) are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// Weights and biases from N(0, 1): the video's and Nielsen's first network.
    StandardNormal,
    /// Weights from N(0, 1/fan_in), biases zero: keeps sigmoid units out of saturation.
    ScaledNormal,
    /// Xavier/Glorot uniform: U(±sqrt(6 / (fan_in + fan_out))), biases zero.
    Xavier,
    /// He/Kaiming normal: N(0, 2/fan_in), biases zero; for ReLU layers.
    He,
    /// U(±1/sqrt(fan_in)) for weights and biases: PyTorch's default for its Linear and
    /// Conv2d layers.
    UniformFanIn,
}

impl Init {
    /// A `[fan_in, fan_out]` weight matrix.
    pub fn weight<T: Float, R: Rng + ?Sized>(
        self,
        fan_in: usize,
        fan_out: usize,
        rng: &mut R,
    ) -> Tensor<T> {
        self.tensor(&[fan_in, fan_out], fan_in, fan_out, rng)
    }

    /// Weights of any shape (a convolution's `[out, in, k, k]`, say) with the given fans.
    pub fn tensor<T: Float, R: Rng + ?Sized>(
        self,
        shape: &[usize],
        fan_in: usize,
        fan_out: usize,
        rng: &mut R,
    ) -> Tensor<T> {
        let n: usize = shape.iter().product();
        let data: Vec<T> = match self {
            Init::StandardNormal => normal(n, 1.0, rng),
            Init::ScaledNormal => normal(n, (1.0 / fan_in as f64).sqrt(), rng),
            Init::He => normal(n, (2.0 / fan_in as f64).sqrt(), rng),
            Init::UniformFanIn => uniform(n, (1.0 / fan_in as f64).sqrt(), rng),
            Init::Xavier => {
                let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
                let dist = Uniform::new_inclusive(-bound, bound).expect("finite bound");
                (0..n).map(|_| T::from_f64(dist.sample(rng))).collect()
            }
        };
        Tensor::from_vec(data, shape)
    }

    /// A `[fan_out]` bias vector.
    pub fn bias<T: Float, R: Rng + ?Sized>(
        self,
        fan_in: usize,
        fan_out: usize,
        rng: &mut R,
    ) -> Tensor<T> {
        match self {
            Init::StandardNormal => Tensor::from_vec(normal(fan_out, 1.0, rng), [fan_out]),
            Init::UniformFanIn => Tensor::from_vec(
                uniform(fan_out, (1.0 / fan_in.max(1) as f64).sqrt(), rng),
                [fan_out],
            ),
            _ => Tensor::zeros([fan_out]),
        }
    }
}

fn uniform<T: Float, R: Rng + ?Sized>(n: usize, bound: f64, rng: &mut R) -> Vec<T> {
    let dist = Uniform::new_inclusive(-bound, bound).expect("finite bound");
    (0..n).map(|_| T::from_f64(dist.sample(rng))).collect()
}

fn normal<T: Float, R: Rng + ?Sized>(n: usize, std: f64, rng: &mut R) -> Vec<T> {
    let dist = Normal::new(0.0, std).expect("finite standard deviation");
    (0..n).map(|_| T::from_f64(dist.sample(rng))).collect()
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Init::StandardNormal => "normal",
            Init::ScaledNormal => "scaled",
            Init::Xavier => "xavier",
            Init::He => "he",
            Init::UniformFanIn => "uniform",
        })
    }
}

impl FromStr for Init {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "normal" => Ok(Init::StandardNormal),
            "scaled" => Ok(Init::ScaledNormal),
            "xavier" | "glorot" => Ok(Init::Xavier),
            "he" | "kaiming" => Ok(Init::He),
            "uniform" | "torch" => Ok(Init::UniformFanIn),
            _ => Err(format!(
                "unknown init {s:?} (expected normal, scaled, xavier, he or uniform)"
            )),
        }
    }
}
