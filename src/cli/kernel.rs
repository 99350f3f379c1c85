//! `overparam kernel`: the infinite-width Gram matrices of a model on a dataset, and what
//! they predict on test points.

use super::args::{DataArgs, ModelArgs, SpectrumKind};
use super::{Timing, ensure_fits, save_matrices, write_json};
use anyhow::bail;
use clap::Args;
use faer::Mat;
use indicatif::{ProgressBar, ProgressStyle};
use overparam_data::{Dataset, accuracy};
use overparam_kernels::{
    KernelSet, block_bytes, h_infinity, h_infinity_cross, limit_bytes, pair_count, predict_test,
};
use overparam_models::{Architecture, ModelConfig};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// Options of `overparam kernel`.
#[derive(Debug, Clone, Args)]
pub struct KernelArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub model: ModelArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataArgs,
    /// Directory for kernel_<layer>.npy, kernel_total.npy and spectrum.json.
    #[arg(long, default_value = "results/kernel")]
    pub out: PathBuf,
    /// Eigenvalues to compute: auto (all up to n = 2000, λ_min and λ_max above), extremes, full
    /// or none.
    #[arg(long, value_enum, default_value = "auto")]
    pub spectrum: SpectrumKind,
    /// Also draw this many test samples from the data set's test split and write the kernel
    /// between them and the training samples (kernel_test_total.npy, n_test × n) and its
    /// predictions (predictions.json): kernel regression (k → ∞) and GD after --predict-steps.
    #[arg(long)]
    pub test_n: Option<usize>,
    /// Numbers of GD steps at which to predict the test outputs (besides k → ∞).
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    pub predict_steps: Vec<usize>,
    /// Step size η of the predicted GD on ½‖u − y‖² (default: 1/λ_max of the training kernel).
    #[arg(long)]
    pub predict_step_size: Option<f64>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// What the kernel predicts at one number of steps.
#[derive(Debug, Serialize)]
struct Predicted {
    /// GD steps (`null`: k → ∞, kernel regression).
    steps: Option<usize>,
    /// Mean over test samples of ½‖f − y‖².
    test_loss: f64,
    /// Fraction of test samples classified right (sign, or arg max for one-hot targets).
    test_accuracy: f64,
}

/// Runs `overparam kernel`: B's H^∞ for two_layer; for fc, resnet and conv_resnet, A's K^(H) (the entry of
/// the last hidden layer) and the limits of every layer's Gram and of their sum.
pub fn run(args: &KernelArgs) -> anyhow::Result<()> {
    let (data, phi) = args.data.load(args.model.synthetic_dim(args.data.d)?)?;
    let config = args.model.config(&data)?;
    let n = data.len();
    let test_n = args.test_n.unwrap_or(0);
    ensure_fits(
        limit_bytes(&config, n) + block_bytes(&config, n + test_n, test_n, n),
        &format!(
            "computing the kernel limits of {n} samples of shape {:?}",
            data.shape()
        ),
        "use fewer samples (--n), smaller images (--pool), or a machine with more memory",
    )?;
    let checked = args.data.check(data, phi)?;
    let data = &checked.data;
    let test = args.test_n.map(|n| test_set(args, n)).transpose()?;
    let start = Instant::now();
    let (named, cross) = kernels(args, &config, data, test.as_ref())?;
    let mut timing = Timing {
        matrices_s: start.elapsed().as_secs_f64(),
        ..Timing::default()
    };
    let spectra = save_matrices(
        &args.out,
        "kernel",
        named.iter().map(|(n, m)| (n.as_str(), m)),
        args.spectrum.into(),
        &mut timing,
    )?;
    let predictions = match (test, cross) {
        (Some(test), Some(cross)) => {
            let theta = &named.last().expect("the total comes last").1;
            let start = Instant::now();
            overparam_analysis::write_npy(&args.out.join("kernel_test_total.npy"), &cross)?;
            timing.writing_s += start.elapsed().as_secs_f64();
            Some(predictions(args, theta, &cross, data, &test)?)
        }
        _ => None,
    };
    timing.print();
    let summary = serde_json::json!({
        "model": config,
        "n": data.len(),
        "spectra": spectra,
        "timing": timing,
    });
    write_json(&args.out.join("spectrum.json"), &summary)?;
    if let Some(predictions) = predictions {
        write_json(&args.out.join("predictions.json"), &predictions)?;
    }
    println!("kernels and spectra in {}", args.out.display());
    Ok(())
}

/// The test samples: the same source's test split, `n` of them.
fn test_set(args: &KernelArgs, n: usize) -> anyhow::Result<Dataset> {
    use super::args::DataSource;
    if !matches!(
        args.data.data,
        DataSource::FashionMnist | DataSource::Idx | DataSource::Cifar10
    ) {
        bail!(
            "--test-n needs a data set with a test split (fashion-mnist, idx, cifar10); {:?} has none",
            args.data.data
        );
    }
    let mut test = args.data.clone();
    test.test_split = true;
    test.n = Some(n);
    Ok(test.dataset(0)?.data)
}

/// The named training kernels (the sum last) and, with test samples, the test-against-training
/// block of the sum.
#[allow(clippy::type_complexity)]
fn kernels(
    args: &KernelArgs,
    config: &ModelConfig,
    data: &Dataset,
    test: Option<&Dataset>,
) -> anyhow::Result<(Vec<(String, Mat<f64>)>, Option<Mat<f64>>)> {
    let d = data.input_dim();
    if let Architecture::TwoLayer { .. } = config.arch {
        let cross = test.map(|t| h_infinity_cross(t.inputs(), data.inputs(), d));
        return Ok((vec![("Hinf".into(), h_infinity(data.inputs(), d))], cross));
    }
    let n = data.len();
    let inputs = match test {
        Some(t) => [data.inputs(), t.inputs()].concat(),
        None => data.inputs().to_vec(),
    };
    let set = KernelSet::new(config, &inputs)?;
    let (train, all) = (0..n, 0..set.len());
    let pairs = pair_count(&train, &train) + pair_count(&(n..set.len()), &train);
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(pairs)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} pairs, eta {eta}")
            .expect("a valid template"),
    );
    bar.set_message("kernel");
    let limit = set.block(train.clone(), train.clone(), &|done| bar.inc(done));
    let cross = test.map(|_| set.block(n..all.end, train, &|done| bar.inc(done)).total);
    bar.finish_and_clear();
    let named = limit
        .names
        .into_iter()
        .zip(limit.layers)
        .chain([("total".to_string(), limit.total)])
        .collect();
    Ok((named, cross))
}

/// Kernel regression and GD predictions of the test outputs from the training kernel `theta`
/// and the test block `cross`, starting from zero outputs (the limit's mean at init).
fn predictions(
    args: &KernelArgs,
    theta: &Mat<f64>,
    cross: &Mat<f64>,
    data: &Dataset,
    test: &Dataset,
) -> anyhow::Result<serde_json::Value> {
    let k = data.target_dim();
    let as_mat = |set: &Dataset| Mat::from_fn(set.len(), k, |i, c| set.targets()[i * k + c]);
    let y = as_mat(data);
    let lambda_max = overparam_analysis::extremes(theta).lambda_max;
    let eta = args.predict_step_size.unwrap_or(1.0 / lambda_max);
    let mut steps: Vec<Option<usize>> = args.predict_steps.iter().map(|&s| Some(s)).collect();
    steps.push(None);
    let zeros = |rows| Mat::<f64>::zeros(rows, k);
    let prediction = predict_test(
        theta,
        cross,
        eta,
        (&y, &zeros(data.len())),
        &zeros(test.len()),
        &steps,
    );
    let rows: Vec<Predicted> = steps
        .iter()
        .zip(&prediction.outputs)
        .map(|(&steps, f)| {
            let flat: Vec<f64> = (0..f.nrows())
                .flat_map(|i| (0..k).map(move |c| f[(i, c)]))
                .collect();
            let test_loss = flat
                .iter()
                .zip(test.targets())
                .map(|(f, y)| 0.5 * (f - y).powi(2))
                .sum::<f64>()
                / test.len() as f64;
            let test_accuracy = accuracy(&flat, test.targets(), k);
            match steps {
                Some(s) => println!("k = {s:>6}: test loss {test_loss:.4}, accuracy {test_accuracy:.4}"),
                None => println!("k = ∞     : test loss {test_loss:.4}, accuracy {test_accuracy:.4} (kernel regression)"),
            }
            Predicted {
                steps,
                test_loss,
                test_accuracy,
            }
        })
        .collect();
    Ok(serde_json::json!({
        "n_train": data.len(),
        "n_test": test.len(),
        "step_size": eta,
        "lambda_max": lambda_max,
        "predictions": rows,
    }))
}
