//! The training loop.

use crate::checkpoint::{self, CheckpointError, Checkpointing, State};
use crate::gradient::loss_and_gradients;
use crate::loss::Loss;
use burn::tensor::{Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use overparam_data::Dataset;
use overparam_device::{Compute, to_f64_scalar, to_f64_vec};
use overparam_models::{ConfigError, LayerKind, Network, forward};
use overparam_rng::{ChaCha8Rng, Purpose, SliceRandom, stream};
use serde::{Deserialize, Serialize};

/// Which gradient method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Optimizer {
    /// Full-batch gradient descent `θ(k+1) = θ(k) − η ∇L(θ(k))` (A §3, B eq. 3, C Alg. 1).
    Gd,
    /// Mini-batch SGD (C Alg. 2): each epoch visits a fresh permutation of the samples in
    /// batches of `batch_size` (the last one may be smaller); the step uses the loss of the
    /// batch alone (a sum for the quadratic loss, a mean over the batch for the others).
    Sgd {
        /// B.
        batch_size: usize,
        /// Seed of the permutations (their own batch-order stream: equal to the data's or the
        /// init's seed, it still draws independent numbers).
        shuffle_seed: u64,
    },
}

/// Everything about a training run except the model and data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The loss.
    pub loss: Loss,
    /// GD or SGD.
    pub optimizer: Optimizer,
    /// η, constant.
    pub step_size: f64,
    /// Number of updates.
    pub steps: usize,
    /// Names of the trained layers; `None` trains the layers the paper trains.
    pub trainable: Option<Vec<String>>,
    /// The observer sees the model every this many steps (and at the last step).
    pub observe_every: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// μ: heavy-ball momentum in PyTorch's form, `v ← μ v + g`, `θ ← θ − η v` (0: none).
    #[serde(default)]
    pub momentum: f64,
    /// λ: weight decay added to the gradient, `g ← ∇L + λ θ` (0: none).
    #[serde(default)]
    pub weight_decay: f64,
    /// Write checkpoints (and resume from one).
    #[serde(default)]
    pub checkpoint: Option<Checkpointing>,
}

impl TrainConfig {
    /// Full-batch GD with the quadratic loss, the paper-model defaults and no progress bar.
    pub fn gd(step_size: f64, steps: usize) -> Self {
        Self {
            loss: Loss::Quadratic,
            optimizer: Optimizer::Gd,
            step_size,
            steps,
            trainable: None,
            observe_every: 1,
            progress: false,
            momentum: 0.0,
            weight_decay: 0.0,
            checkpoint: None,
        }
    }
}

/// Errors of a training run, each naming the offending value.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The step size is not a positive finite number.
    #[error("step size η must be a positive finite number, got {0}")]
    StepSize(f64),
    /// `observe_every` is zero.
    #[error("observe_every must be at least 1, got 0")]
    ObserveEvery,
    /// The batch size is zero or larger than the data.
    #[error("SGD batch size must be between 1 and n = {n}, got {batch_size}")]
    BatchSize {
        /// The batch size given.
        batch_size: usize,
        /// The number of samples.
        n: usize,
    },
    /// The model and the data disagree, or a layer name is unknown.
    #[error(transparent)]
    Model(#[from] ConfigError),
    /// No layer is trainable.
    #[error("no layer is trainable: name at least one layer to train")]
    NothingToTrain,
    /// Momentum outside [0, 1), a negative weight decay, or checkpoints every 0 steps.
    #[error("{0}")]
    Option(String),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The model's outputs per sample differ from the targets'.
    #[error("the model has {model} outputs per sample but the targets have {data}")]
    Outputs {
        /// Model outputs.
        model: usize,
        /// Target dimension.
        data: usize,
    },
    /// The targets do not fit the loss.
    #[error("{0}")]
    Targets(String),
    /// The loss became NaN or infinite.
    #[error(
        "training diverged: the loss is {loss} at step {step}; the last finite loss was {last_finite} at step {last_finite_step} (try a smaller step size)"
    )]
    Diverged {
        /// The step at which the loss was not finite.
        step: usize,
        /// The non-finite value.
        loss: f64,
        /// The last finite loss.
        last_finite: f64,
        /// Its step.
        last_finite_step: usize,
        /// What was recorded up to the divergence.
        history: Box<History>,
    },
}

impl TrainError {
    /// What was recorded before a divergence (`None` for the other errors).
    pub fn history(&self) -> Option<&History> {
        match self {
            TrainError::Diverged { history, .. } => Some(history),
            _ => None,
        }
    }
}

/// What a run recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// `loss[k]`: for GD the full-data loss `L(θ(k))`, k = 0..=steps; for SGD the loss of the
    /// batch used at step k (and at k = steps the full-data loss). Both come from the training
    /// forward pass, which for BatchNorm networks normalizes with the batch's statistics; the
    /// observed and final losses use evaluation mode.
    pub loss: Vec<f64>,
    /// Steps at which the observer was called.
    pub observed_steps: Vec<usize>,
    /// Full-data loss at those steps.
    pub observed_loss: Vec<f64>,
}

/// The state shown to an [`Observer`].
pub struct Snapshot<'a> {
    /// The step k (the model is θ(k), before update k).
    pub step: usize,
    /// The model at step k.
    pub network: &'a Network,
    /// Outputs `u(k) = f(θ(k), x_i)` on the whole training set, `[n, outputs]`.
    pub outputs: Tensor<2>,
    /// Full-data loss at step k.
    pub loss: f64,
    /// The training data.
    pub data: &'a Dataset,
}

/// Receives the model every `observe_every` steps, so that analysis can record metrics without
/// touching the loop.
pub trait Observer {
    /// Called at steps 0, every, 2·every, …, and at the last step.
    fn observe(&mut self, snapshot: &Snapshot<'_>);

    /// Asked after each observation: `true` ends the run there (the model stays at the
    /// observed step), e.g. once a training accuracy is reached.
    fn stop(&self) -> bool {
        false
    }
}

impl Observer for () {
    fn observe(&mut self, _: &Snapshot<'_>) {}
}

impl<F: FnMut(&Snapshot<'_>)> Observer for F {
    fn observe(&mut self, snapshot: &Snapshot<'_>) {
        self(snapshot)
    }
}

/// Which layers get updated: the names in `config.trainable`, or the paper's defaults.
pub fn trainable_mask(
    network: &Network,
    names: Option<&[String]>,
) -> Result<Vec<bool>, ConfigError> {
    match names {
        None => Ok(network
            .specs()
            .iter()
            .map(|s| s.trained_by_default)
            .collect()),
        Some(names) => {
            let mut mask = vec![false; network.specs().len()];
            for name in names {
                let index = network.layer_index(name)?;
                if network.specs()[index].kind == LayerKind::Statistic {
                    return Err(ConfigError::NotAParameter(name.clone()));
                }
                mask[index] = true;
            }
            Ok(mask)
        }
    }
}

fn validate(config: &TrainConfig, network: &Network, data: &Dataset) -> Result<(), TrainError> {
    if !(config.step_size.is_finite() && config.step_size > 0.0) {
        return Err(TrainError::StepSize(config.step_size));
    }
    if config.observe_every == 0 {
        return Err(TrainError::ObserveEvery);
    }
    if !(0.0..1.0).contains(&config.momentum) {
        return Err(TrainError::Option(format!(
            "momentum μ must be in [0, 1), got {}",
            config.momentum
        )));
    }
    if !(config.weight_decay.is_finite() && config.weight_decay >= 0.0) {
        return Err(TrainError::Option(format!(
            "weight decay λ must be a non-negative number, got {}",
            config.weight_decay
        )));
    }
    if config.checkpoint.as_ref().is_some_and(|c| c.every == 0) {
        return Err(TrainError::Option(
            "checkpoints every 0 steps: give at least 1".into(),
        ));
    }
    if let Optimizer::Sgd { batch_size, .. } = config.optimizer
        && (batch_size == 0 || batch_size > data.len())
    {
        return Err(TrainError::BatchSize {
            batch_size,
            n: data.len(),
        });
    }
    let model = network.config();
    if model.input_dim != data.input_dim() {
        return Err(ConfigError::InputDim {
            expected: model.input_dim,
            got: data.input_dim(),
        }
        .into());
    }
    if model.outputs() != data.target_dim() {
        return Err(TrainError::Outputs {
            model: model.outputs(),
            data: data.target_dim(),
        });
    }
    config
        .loss
        .check_targets(data.targets(), data.target_dim())
        .map_err(TrainError::Targets)
}

/// Mini-batch index sequence: consecutive batches of fresh permutations, one per epoch.
struct Batches {
    rng: ChaCha8Rng,
    order: Vec<usize>,
    next: usize,
    batch_size: usize,
}

impl Batches {
    fn new(n: usize, batch_size: usize, seed: u64) -> Self {
        Self {
            rng: stream(seed, Purpose::BatchOrder),
            order: (0..n).collect(),
            next: n,
            batch_size,
        }
    }

    /// The stream's word position, the permutation and the next index in it.
    fn state(&self) -> (u128, Vec<usize>, usize) {
        (self.rng.get_word_pos(), self.order.clone(), self.next)
    }

    fn restore(&mut self, (position, order, next): (u128, Vec<usize>, usize)) {
        self.rng.set_word_pos(position);
        self.order = order;
        self.next = next;
    }

    fn next_batch(&mut self) -> Vec<usize> {
        if self.next >= self.order.len() {
            self.order.shuffle(&mut self.rng);
            self.next = 0;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let batch = self.order[self.next..end].to_vec();
        self.next = end;
        batch
    }
}

fn rows(t: &Tensor<2>, indices: &[usize]) -> Tensor<2> {
    let idx: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    let device = t.device();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [indices.len()]), &device);
    t.clone().select(0, idx)
}

/// The style of a training bar: steps done, the latest loss, the time left.
pub fn step_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} steps {msg} ({eta})")
        .expect("a valid template")
        .progress_chars("=> ")
}

fn progress_bar(config: &TrainConfig) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(config.steps as u64);
    bar.set_style(step_style());
    bar.set_prefix("train");
    bar
}

/// Trains `network` in place on `data` and returns the recorded losses.
///
/// Every update is `W ← W − η ∂L/∂W` for the trainable layers; frozen layers keep their tensors
/// untouched (bit-identical). If the loss becomes NaN or infinite the run stops with
/// [`TrainError::Diverged`], which names the step and carries what was recorded.
pub fn train(
    network: &mut Network,
    data: &Dataset,
    compute: &Compute,
    config: &TrainConfig,
    observer: &mut dyn Observer,
) -> Result<History, TrainError> {
    train_with_progress(
        network,
        data,
        compute,
        config,
        observer,
        progress_bar(config),
    )
}

/// [`train`], advancing the given progress bar (one tick per update) instead of making one;
/// lets a sweep show each run's bar under its own (`indicatif::MultiProgress`).
pub fn train_with_progress(
    network: &mut Network,
    data: &Dataset,
    compute: &Compute,
    config: &TrainConfig,
    observer: &mut dyn Observer,
    bar: ProgressBar,
) -> Result<History, TrainError> {
    validate(config, network, data)?;
    let mask = trainable_mask(network, config.trainable.as_deref())?;
    if !mask.contains(&true) {
        return Err(TrainError::NothingToTrain);
    }
    let (n, d, k) = (data.len(), data.input_dim(), data.target_dim());
    let x = compute.tensor(data.inputs(), [n, d]);
    let y = compute.tensor(data.targets(), [n, k]);
    let model = network.config().clone();
    let mut batches = match config.optimizer {
        Optimizer::Gd => None,
        Optimizer::Sgd {
            batch_size,
            shuffle_seed,
        } => Some(Batches::new(n, batch_size, shuffle_seed)),
    };
    let mut history = History::default();
    bar.set_length(config.steps as u64);
    let mut last_finite = (f64::NAN, 0);
    let run = run_identity(network, data, config);
    let mut velocity: Vec<Option<Tensor<2>>> = vec![None; mask.len()];
    let mut start = 0;
    if let Some(c) = config
        .checkpoint
        .as_ref()
        .filter(|c| c.resume && c.path.exists())
    {
        let resumed = resume(c, &run, network, compute, config.steps, batches.as_mut())?;
        (start, history, velocity) = resumed;
        last_finite = history
            .loss
            .iter()
            .enumerate()
            .rev()
            .find(|(_, l)| l.is_finite())
            .map_or((f64::NAN, 0), |(k, &l)| (l, k));
        bar.set_position(start as u64);
    }
    let diverged =
        |step, loss, last_finite: (f64, usize), history: &History| TrainError::Diverged {
            step,
            loss,
            last_finite: last_finite.0,
            last_finite_step: last_finite.1,
            history: Box::new(history.clone()),
        };

    for step in start..=config.steps {
        let observe = step % config.observe_every == 0 || step == config.steps;
        let values = network.values();
        // The full-data forward without autodiff, where it is needed: observation steps and
        // the final loss (GD reuses the training forward below).
        // Networks with BatchNorm are observed in evaluation mode, never through the
        // training forward's batch statistics.
        let separate = batches.is_some() || model.has_batch_statistics();
        let full_outputs = ((separate && observe) || step == config.steps)
            .then(|| forward(&model, &values, x.clone()));
        if step == config.steps {
            let outputs = full_outputs.expect("computed at the last step");
            let loss = to_f64_scalar(config.loss.tensor(outputs.clone(), y.clone()));
            history.loss.push(loss);
            if !loss.is_finite() {
                return Err(diverged(step, loss, last_finite, &history));
            }
            record(observer, &mut history, step, network, outputs, loss, data);
            break;
        }

        let (xb, yb) = match batches.as_mut() {
            None => (x.clone(), y.clone()),
            Some(b) => {
                let idx = b.next_batch();
                (rows(&x, &idx), rows(&y, &idx))
            }
        };
        let step_result = loss_and_gradients(&model, &values, &mask, xb, yb, config.loss);
        let loss = step_result.loss;
        history.loss.push(loss);
        if !loss.is_finite() {
            return Err(diverged(step, loss, last_finite, &history));
        }
        last_finite = (loss, step);
        if observe {
            let (outputs, full_loss) = match full_outputs {
                Some(o) => {
                    let l = to_f64_scalar(config.loss.tensor(o.clone(), y.clone()));
                    (o, l)
                }
                None => (step_result.outputs, loss),
            };
            record(
                observer,
                &mut history,
                step,
                network,
                outputs,
                full_loss,
                data,
            );
            if observer.stop() {
                break;
            }
        }
        let (mu, lambda) = (config.momentum, config.weight_decay);
        let updated = values
            .into_iter()
            .zip(step_result.gradients)
            .zip(step_result.statistics)
            .zip(velocity.iter_mut())
            .map(|(((value, grad), statistic), v)| match (grad, statistic) {
                (None, Some(statistic)) => statistic,
                (Some(grad), _) => {
                    let grad = if lambda > 0.0 {
                        grad + value.clone().mul_scalar(lambda)
                    } else {
                        grad
                    };
                    let direction = if mu > 0.0 {
                        let next = match v.take() {
                            Some(old) => old.mul_scalar(mu) + grad,
                            None => grad,
                        };
                        *v = Some(next.clone());
                        next
                    } else {
                        grad
                    };
                    value - direction.mul_scalar(config.step_size)
                }
                (None, None) => value,
            })
            .collect();
        network.set_values(updated);
        if let Some(c) = &config.checkpoint
            && ((step + 1) % c.every == 0 || step + 1 == config.steps)
        {
            let state = State {
                step: step + 1,
                values: network.values().into_iter().map(to_f64_vec).collect(),
                velocity: if mu > 0.0 {
                    velocity
                        .iter()
                        .map(|v| v.clone().map(to_f64_vec).unwrap_or_default())
                        .collect()
                } else {
                    Vec::new()
                },
                batches: batches.as_ref().map(Batches::state),
                history: history.clone(),
            };
            checkpoint::save(&c.path, &run, &state)?;
        }
        bar.inc(1);
        if step % 10 == 0 {
            bar.set_message(format!("loss {loss:.4e}"));
        }
    }
    bar.finish_and_clear();
    Ok(history)
}

/// Continues from the checkpoint of `c`: sets the network's parameters and the batch order,
/// and returns the step to go on from, the history so far and the momentum buffers.
fn resume(
    c: &Checkpointing,
    run: &str,
    network: &mut Network,
    compute: &Compute,
    steps: usize,
    batches: Option<&mut Batches>,
) -> Result<(usize, History, Vec<Option<Tensor<2>>>), TrainError> {
    let state = checkpoint::load(&c.path, run)?;
    let current = network.values();
    let format = |problem: String| -> TrainError {
        CheckpointError::Format {
            path: c.path.clone(),
            problem,
        }
        .into()
    };
    let tensor = |now: &Tensor<2>, v: &[f64]| -> Result<Tensor<2>, TrainError> {
        let [rows, cols] = now.dims();
        if v.len() != rows * cols {
            return Err(format(format!(
                "a layer has {} values, the model {}",
                v.len(),
                rows * cols
            )));
        }
        Ok(compute.tensor(v, [rows, cols]))
    };
    if state.values.len() != current.len() || state.step > steps {
        return Err(format(format!(
            "{} layers after {} steps, for a model of {} layers trained {steps} steps",
            state.values.len(),
            state.step,
            current.len(),
        )));
    }
    let values = current
        .iter()
        .zip(&state.values)
        .map(|(now, v)| tensor(now, v))
        .collect::<Result<Vec<_>, _>>()?;
    let velocity = if state.velocity.is_empty() {
        vec![None; current.len()]
    } else {
        current
            .iter()
            .zip(&state.velocity)
            .map(|(now, v)| (!v.is_empty()).then(|| tensor(now, v)).transpose())
            .collect::<Result<Vec<_>, _>>()?
    };
    network.set_values(values);
    if let (Some(b), Some(saved)) = (batches, state.batches) {
        b.restore(saved);
    }
    Ok((state.step, state.history, velocity))
}

/// What a checkpoint must match to be resumed: the model, the data (n and an FNV-1a hash of
/// every input and target bit) and the training options except the step count (a run may be
/// continued for longer), observation, progress and checkpointing.
fn run_identity(network: &Network, data: &Dataset, config: &TrainConfig) -> String {
    let hash = data
        .inputs()
        .iter()
        .chain(data.targets())
        .flat_map(|v| v.to_bits().to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let options = TrainConfig {
        steps: 0,
        observe_every: 1,
        progress: false,
        checkpoint: None,
        ..config.clone()
    };
    serde_json::json!({
        "model": network.config(),
        "data": { "n": data.len(), "hash": format!("{hash:016x}") },
        "train": options,
    })
    .to_string()
}

fn record(
    observer: &mut dyn Observer,
    history: &mut History,
    step: usize,
    network: &Network,
    outputs: Tensor<2>,
    loss: f64,
    data: &Dataset,
) {
    history.observed_steps.push(step);
    history.observed_loss.push(loss);
    observer.observe(&Snapshot {
        step,
        network,
        outputs,
        loss,
        data,
    });
}
