//! `overparam kernel`: the infinite-width Gram matrices of a model on a dataset, and what
//! they predict on test points.

use super::args::{DataArgs, ModelArgs, SpectrumKind};
use super::{Timing, ensure_fits, save_matrices, write_json};
use anyhow::{Context, bail};
use clap::Args;
use faer::Mat;
use indicatif::{ProgressBar, ProgressStyle};
use overparam_data::{Dataset, npy_dataset, scores};
use overparam_experiments::runner::Shard;
use overparam_kernels::{
    KernelSet, block_bytes, h_infinity, h_infinity_cross, limit_bytes, pair_count, predict_test,
};
use overparam_models::{Architecture, ModelConfig};
use serde::Serialize;
use std::path::{Path, PathBuf};
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
    /// With --data npy: the test inputs (same shape per sample as --inputs), for the same
    /// predictions as --test-n (which then subsamples them).
    #[arg(long, requires = "test_targets")]
    pub test_inputs: Option<PathBuf>,
    /// With --data npy: the test targets ((n_test,) or (n_test, k)).
    #[arg(long, requires = "test_inputs")]
    pub test_targets: Option<PathBuf>,
    /// Numbers of GD steps at which to predict the test outputs (besides k → ∞).
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    pub predict_steps: Vec<usize>,
    /// Step size η of the predicted GD on ½‖u − y‖² (default: 1/λ_max of the training kernel).
    #[arg(long)]
    pub predict_step_size: Option<f64>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Compute only tiles i, i + n, i + 2n, … of the training kernels (`i/n`, 0-based; e.g. a
    /// Slurm array task) and write them to --out; `overparam merge --into DIR SHARD_DIRS…` then
    /// assembles kernel_<layer>.npy on disk, so the result may exceed memory.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Side of the square tiles of --shard (the lower triangle's tiles are dealt to shards).
    #[arg(long, default_value_t = 1024)]
    pub tile: usize,
}

/// What a shard wrote: `kernel-shard.json` beside its tiles.
#[derive(Debug, Serialize, serde::Deserialize)]
struct ShardManifest {
    model: ModelConfig,
    n: usize,
    tile: usize,
    names: Vec<String>,
    shard: String,
    /// The first row and column of each tile written.
    tiles: Vec<(usize, usize)>,
}

/// The name of a shard's manifest.
pub const SHARD_MANIFEST: &str = "kernel-shard.json";

fn tile_path(dir: &Path, (r, c): (usize, usize), name: &str) -> PathBuf {
    dir.join(format!("tile_{r}_{c}_{name}.npy"))
}

/// The lower triangle's tiles of an `n × n` kernel, row by row: their first row and column.
fn tiles(n: usize, tile: usize) -> Vec<(usize, usize)> {
    let starts: Vec<usize> = (0..n).step_by(tile).collect();
    starts
        .iter()
        .flat_map(|&r| {
            starts
                .iter()
                .filter(move |&&c| c <= r)
                .map(move |&c| (r, c))
        })
        .collect()
}

/// `overparam kernel --shard i/n`: this shard's tiles of every layer's limit and of the sum.
fn run_shard(
    args: &KernelArgs,
    config: &ModelConfig,
    data: &Dataset,
    shard: Shard,
) -> anyhow::Result<()> {
    if args.test_n.is_some()
        || args.test_inputs.is_some()
        || matches!(config.arch, Architecture::TwoLayer { .. })
    {
        bail!("--shard tiles the training kernel of fc, resnet or conv_resnet; without --test-n");
    }
    if args.tile == 0 {
        bail!("--tile must be at least 1");
    }
    let n = data.len();
    let set = KernelSet::new(config, data.inputs())?;
    let mine: Vec<(usize, usize)> = tiles(n, args.tile)
        .into_iter()
        .enumerate()
        .filter(|(t, _)| t % shard.count == shard.index)
        .map(|(_, at)| at)
        .collect();
    std::fs::create_dir_all(&args.out)?;
    let span = |start: usize| start..(start + args.tile).min(n);
    let pairs: u64 = mine
        .iter()
        .map(|&(r, c)| pair_count(&span(r), &span(c)))
        .sum();
    let bar = progress(args.quiet, pairs);
    for &(r, c) in &mine {
        let block = set.block(span(r), span(c), &|done| bar.inc(done));
        for (name, m) in block.into_named() {
            overparam_analysis::write_npy(&tile_path(&args.out, (r, c), &name), &m)?;
        }
    }
    bar.finish_and_clear();
    write_json(
        &args.out.join(SHARD_MANIFEST),
        &ShardManifest {
            model: config.clone(),
            n,
            tile: args.tile,
            names: set.matrix_names(),
            shard: shard.to_string(),
            tiles: mine,
        },
    )?;
    println!("shard {shard}: tiles in {}", args.out.display());
    Ok(())
}

/// `overparam merge` of kernel shards: every tile into `kernel_<layer>.npy` (mirrored above the
/// diagonal), written in place on disk. Returns the number of tiles.
pub fn merge(into: &Path, shards: &[PathBuf]) -> anyhow::Result<usize> {
    let mut manifests = Vec::new();
    for dir in shards {
        let path = dir.join(SHARD_MANIFEST);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (not a kernel shard?)", path.display()))?;
        let manifest: ShardManifest =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        manifests.push((dir, manifest));
    }
    let (_, first) = &manifests[0];
    let mut owner = std::collections::HashMap::new();
    for (dir, m) in &manifests {
        if (m.n, m.tile, &m.names, &m.model) != (first.n, first.tile, &first.names, &first.model) {
            bail!(
                "{} is a shard of another kernel than {}",
                dir.display(),
                shards[0].display()
            );
        }
        for &at in &m.tiles {
            owner.insert(at, dir.as_path());
        }
    }
    let (n, tile) = (first.n, first.tile);
    let all = tiles(n, tile);
    if let Some(missing) = all.iter().find(|at| !owner.contains_key(at)) {
        bail!(
            "tile at row {}, column {} is in none of the {} shards given (give every shard folder)",
            missing.0,
            missing.1,
            shards.len()
        );
    }
    std::fs::create_dir_all(into)?;
    for name in &first.names {
        let mut out =
            overparam_analysis::NpyWriter::create(&into.join(format!("kernel_{name}.npy")), n, n)?;
        for &(r, c) in &all {
            let path = tile_path(owner[&(r, c)], (r, c), name);
            let block = overparam_data::read_npy(&path)?;
            let cols = block.shape[1];
            for (i, row) in block.values.chunks(cols).enumerate() {
                out.write_row(r + i, c, row)?;
            }
            if r != c {
                for j in 0..cols {
                    let column: Vec<f64> =
                        block.values.iter().skip(j).step_by(cols).copied().collect();
                    out.write_row(c + j, r, &column)?;
                }
            }
        }
    }
    Ok(all.len())
}

/// A progress bar over `pairs` pairs of samples (hidden with --quiet).
fn progress(quiet: bool, pairs: u64) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(pairs)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} pairs, eta {eta}")
            .expect("a valid template"),
    );
    bar.set_message("kernel");
    bar
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
    let test = test_set(args, &data)?;
    let test_n = test.as_ref().map_or(0, Dataset::len);
    // A shard holds one tile at a time; otherwise the whole kernels (and the test block).
    let bytes = match args.shard {
        Some(_) => block_bytes(&config, n, args.tile.min(n), args.tile.min(n)),
        None => limit_bytes(&config, n) + block_bytes(&config, n + test_n, test_n, n),
    };
    ensure_fits(
        bytes,
        &format!(
            "computing the kernel limits of {n} samples of shape {:?}",
            data.shape()
        ),
        "use fewer samples (--n), smaller images (--pool), tiles written to disk (--shard i/k \
         --tile T, then overparam merge), or a machine with more memory",
    )?;
    let checked = args.data.check(data, phi)?;
    let data = &checked.data;
    if let Some(shard) = args.shard {
        return run_shard(args, &config, data, shard);
    }
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

/// The test samples, if asked for: `--test-n` from the same source's test split, or the
/// `--test-inputs`/`--test-targets` arrays of `--data npy` (subsampled to `--test-n`).
fn test_set(args: &KernelArgs, train: &Dataset) -> anyhow::Result<Option<Dataset>> {
    use super::args::DataSource;
    let test = match (&args.test_inputs, args.test_n) {
        (None, None) => return Ok(None),
        (Some(inputs), n) => {
            if args.data.data != DataSource::Npy {
                bail!("--test-inputs goes with --data npy; other sources take --test-n");
            }
            if args.data.targets.is_none() {
                bail!("test predictions need the training targets: give --targets y.npy");
            }
            let all = npy_dataset(
                inputs,
                args.test_targets.as_deref(),
                !args.data.no_unit_norm,
            )?;
            match n {
                Some(n) => all.subsample(n, args.data.data_seed)?,
                None => all,
            }
        }
        (None, Some(n)) => {
            if !matches!(
                args.data.data,
                DataSource::FashionMnist
                    | DataSource::Idx
                    | DataSource::Cifar10
                    | DataSource::Cifar100
                    | DataSource::Svhn
            ) {
                bail!(
                    "--test-n needs a data set with a test split (fashion-mnist, idx, cifar10, \
                     cifar100, svhn) or --test-inputs/--test-targets with --data npy; {:?} has none",
                    args.data.data
                );
            }
            let mut test = args.data.clone();
            test.test_split = true;
            test.n = Some(n);
            test.dataset(0)?.data
        }
    };
    if (test.input_dim(), test.target_dim()) != (train.input_dim(), train.target_dim()) {
        bail!(
            "the test samples have {} inputs and {} targets each, the training samples {} and {}",
            test.input_dim(),
            test.target_dim(),
            train.input_dim(),
            train.target_dim()
        );
    }
    Ok(Some(test))
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
    let bar = progress(args.quiet, pairs);
    let limit = set.block(train.clone(), train.clone(), &|done| bar.inc(done));
    let cross = test.map(|_| set.block(n..all.end, train, &|done| bar.inc(done)).total);
    bar.finish_and_clear();
    Ok((limit.into_named(), cross))
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
    let y = data.target_matrix();
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
            let (test_loss, test_accuracy) = scores(f, test.targets());
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
