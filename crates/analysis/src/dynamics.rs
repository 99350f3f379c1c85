//! The training-dynamics quantities of A and B, recorded by an observer of the trainer.

use crate::gram::{AnalysisError, GramStrategy, grams};
use crate::spectrum::SpectrumMode;
use burn::tensor::Tensor;
use faer::Mat;
use overparam_device::{Compute, to_f64_vec};
use overparam_models::{Architecture, ConvLayout, LayerKind, Network, forward_traced};
use overparam_train::{Observer, Snapshot};
use serde::Serialize;
use std::path::Path;

/// The quantities at one step k. Per-layer vectors follow [`DynamicsRecorder::names`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// k.
    pub step: usize,
    /// `L(θ(k))` (the trainer's loss, e.g. `½‖y − u(k)‖²`).
    pub loss: f64,
    /// `ln((1/n)‖y − u(k)‖²)`, the quantity of B's Fig. 1a.
    pub ln_mse: f64,
    /// `λ_min(G(k))`, G the sum over all layers.
    pub lambda_min: f64,
    /// `λ_min(G^(h)(k))` per layer.
    pub lambda_min_layers: Vec<f64>,
    /// `‖G(k) − G(0)‖₂ / ‖G(0)‖₂`.
    pub gram_drift: f64,
    /// `‖W^(h)(k) − W^(h)(0)‖_F` per layer (for the output layer, `‖a(k) − a(0)‖₂`).
    pub distance: Vec<f64>,
    /// `‖W^(h)(k) − W^(h)(0)‖_F / sqrt(m)` (A App. A: the average per-neuron movement).
    pub distance_per_sqrt_m: Vec<f64>,
    /// `max_r ‖w_r(k) − w_r(0)‖₂` over the neurons (rows) of each layer (B Fig. 1c).
    pub max_neuron_distance: Vec<f64>,
    /// Fraction of (neuron, sample) pairs whose pattern `1{w_rᵀx_i ≥ 0}` differs from step 0
    /// (B §5, Fig. 1b); `None` for layers without an activation pattern.
    pub pattern_change: Vec<Option<f64>>,
    /// `(1 − η λ0 / 2)^k L(0)` (A Thm 5.1/6.1, B Thm 4.1), when λ0 was given.
    pub bound: Option<f64>,
}

struct Initial {
    values: Vec<Vec<f64>>,
    gram: Mat<f64>,
    gram_norm: f64,
    loss: f64,
    patterns: Vec<Option<Vec<bool>>>,
}

/// Records [`Record`]s at the steps the trainer shows it.
pub struct DynamicsRecorder {
    compute: Compute,
    strategy: GramStrategy,
    theory: Option<(f64, f64)>,
    spectrum: SpectrumMode,
    names: Vec<String>,
    initial: Option<Initial>,
    /// The records, in step order.
    pub records: Vec<Record>,
}

impl DynamicsRecorder {
    /// How λ_min and the drift norm are computed (default [`SpectrumMode::Auto`]: full
    /// eigenvalues up to 2000 samples, Lanczos extremes above; `None` records NaN).
    pub fn with_spectrum(mut self, spectrum: SpectrumMode) -> Self {
        self.spectrum = spectrum;
        self
    }

    /// A recorder for `net`; with `theory = Some((λ0, η))` it also records the bound.
    pub fn new(
        net: &Network,
        compute: &Compute,
        strategy: GramStrategy,
        theory: Option<(f64, f64)>,
    ) -> Result<Self, AnalysisError> {
        if net.config().outputs() != 1 {
            return Err(AnalysisError::Outputs(net.config().outputs()));
        }
        Ok(Self {
            compute: compute.clone(),
            strategy,
            theory,
            spectrum: SpectrumMode::Auto,
            names: net.specs().iter().map(|s| s.name.clone()).collect(),
            initial: None,
            records: Vec::new(),
        })
    }

    /// Layer names, the order of the per-layer fields.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Writes the records as CSV, one column per scalar and per layer quantity.
    pub fn write_csv(&self, path: &Path) -> Result<(), csv::Error> {
        let mut w = csv::Writer::from_path(path)?;
        let mut header: Vec<String> = [
            "step",
            "loss",
            "ln_mse",
            "lambda_min",
            "gram_drift",
            "bound",
        ]
        .map(String::from)
        .to_vec();
        for prefix in [
            "lambda_min",
            "distance",
            "distance_per_sqrt_m",
            "max_neuron_distance",
            "pattern_change",
        ] {
            header.extend(self.names.iter().map(|n| format!("{prefix}_{n}")));
        }
        w.write_record(&header)?;
        let num = |v: f64| v.to_string();
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        for r in &self.records {
            let mut row = vec![
                r.step.to_string(),
                num(r.loss),
                num(r.ln_mse),
                num(r.lambda_min),
                num(r.gram_drift),
                opt(r.bound),
            ];
            for list in [
                &r.lambda_min_layers,
                &r.distance,
                &r.distance_per_sqrt_m,
                &r.max_neuron_distance,
            ] {
                row.extend(list.iter().map(|&v| num(v)));
            }
            row.extend(r.pattern_change.iter().map(|&v| opt(v)));
            w.write_record(&row)?;
        }
        w.flush()?;
        Ok(())
    }

    /// Writes the layer names and records as JSON.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let value = serde_json::json!({ "layers": self.names, "records": self.records });
        std::fs::write(path, serde_json::to_string_pretty(&value)?)
    }
}

/// Per layer, the fraction of (neuron, sample) pairs whose pattern `1{z ≥ 0}` differs between
/// `initial` and `now` on inputs `x` (`n × d`); `None` for layers without a pattern
/// (B §5 Fig. 1b, C §6.3 item 3).
pub fn pattern_changes(initial: &Network, now: &Network, x: Tensor<2>) -> Vec<Option<f64>> {
    let then = patterns(initial, x.clone());
    changed_fraction(&patterns(now, x), &then)
}

type Patterns = Vec<Option<Vec<bool>>>;

fn changed_fraction(now: &Patterns, then: &Patterns) -> Vec<Option<f64>> {
    now.iter()
        .zip(then)
        .map(|(now, then)| {
            let (now, then) = (now.as_ref()?, then.as_ref()?);
            let changed = now.iter().zip(then).filter(|(a, b)| a != b).count();
            Some(changed as f64 / now.len() as f64)
        })
        .collect()
}

/// `1{z ≥ 0}` of every hidden pre-activation `z^(h)` (row-major `n × m·p`), per layer.
fn patterns(net: &Network, x: Tensor<2>) -> Patterns {
    let config = net.config();
    let values = net.values();
    let trace = forward_traced(config, &values, x, None);
    net.specs()
        .iter()
        .zip(&values)
        .zip(trace.inputs)
        .map(|((spec, w), input)| {
            let input = input?;
            let z = match (spec.kind, &config.arch) {
                (LayerKind::Dense, _) => input.matmul(w.clone().transpose()),
                (
                    LayerKind::Conv,
                    Architecture::ConvResnet {
                        spatial, kernel, ..
                    },
                ) => {
                    let n = input.dims()[0];
                    let c_in = input.dims()[1] / spatial.iter().product::<usize>();
                    ConvLayout::new(spatial, *kernel).apply(input, w, c_in, n)
                }
                _ => return None,
            };
            Some(to_f64_vec(z).into_iter().map(|v| v >= 0.0).collect())
        })
        .collect()
}

fn distances(now: &[f64], then: &[f64], cols: usize) -> (f64, f64) {
    let mut fro = 0.0;
    let mut max_row = 0.0f64;
    for (a, b) in now.chunks(cols).zip(then.chunks(cols)) {
        let row: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
        fro += row;
        max_row = max_row.max(row.sqrt());
    }
    (fro.sqrt(), max_row)
}

impl Observer for DynamicsRecorder {
    fn observe(&mut self, s: &Snapshot<'_>) {
        let data = s.data;
        let (n, d) = (data.len(), data.input_dim());
        let g = grams(s.network, data.inputs(), &self.compute, self.strategy)
            .expect("checked at construction: scalar output, matching inputs");
        let values: Vec<Vec<f64>> = s.network.values().into_iter().map(to_f64_vec).collect();
        let pats = patterns(s.network, self.compute.tensor(data.inputs(), [n, d]));
        let initial = self.initial.get_or_insert_with(|| Initial {
            values: values.clone(),
            gram_norm: self.spectrum.operator_norm(&g.total),
            gram: g.total.clone(),
            loss: s.loss,
            patterns: pats.clone(),
        });
        let u = to_f64_vec(s.outputs.clone());
        let mse = u
            .iter()
            .zip(data.targets())
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            / n as f64;
        let specs = s.network.specs();
        let (mut distance, mut per_sqrt_m, mut max_neuron) = (vec![], vec![], vec![]);
        for ((spec, now), then) in specs.iter().zip(&values).zip(&initial.values) {
            let (fro, max_row) = distances(now, then, spec.shape[1]);
            distance.push(fro);
            let m = match spec.kind {
                LayerKind::Readout | LayerKind::Bias | LayerKind::Norm | LayerKind::Statistic => {
                    spec.shape[1]
                }
                LayerKind::Dense | LayerKind::Conv => spec.shape[0],
            };
            per_sqrt_m.push(fro / (m as f64).sqrt());
            max_neuron.push(max_row);
        }
        let pattern_change = changed_fraction(&pats, &initial.patterns);
        let drift = &g.total - &initial.gram;
        self.records.push(Record {
            step: s.step,
            loss: s.loss,
            ln_mse: mse.ln(),
            lambda_min: self.spectrum.lambda_min(&g.total),
            lambda_min_layers: g
                .layers
                .iter()
                .map(|l| self.spectrum.lambda_min(l))
                .collect(),
            gram_drift: self.spectrum.operator_norm(&drift) / initial.gram_norm,
            distance,
            distance_per_sqrt_m: per_sqrt_m,
            max_neuron_distance: max_neuron,
            pattern_change,
            bound: self.theory.map(|(lambda0, eta)| {
                (1.0 - eta * lambda0 / 2.0).powi(s.step as i32) * initial.loss
            }),
        });
    }
}
