//! The one runner every experiment goes through: a grid of points (widths, depths, seeds, …)
//! → runs that resume and shard → per-run JSON/CSV → a report (summary tables and plots).

use crate::store::{ResultsDir, Table, write_atomic, write_json_atomic};
use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use overparam_device::Compute;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

/// `--shard i/n`: this invocation runs the grid points whose index is `i` modulo `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// i, 0-based.
    pub index: usize,
    /// n.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not a shard: expected i/n with 0 ≤ i < n, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The options every experiment binary shares.
#[derive(Debug, Clone, Args, Serialize)]
pub struct SweepArgs {
    /// The reduced grid (finishes in about 3 minutes on 2 CPU cores); without it, the paper's.
    #[arg(long)]
    pub quick: bool,
    /// Number of seeds per grid point (seeds 0, 1, …); default 1 with --quick, 3 without.
    #[arg(long)]
    pub seeds: Option<usize>,
    /// Device: cpu (= flex), flex, ndarray, or wgpu (when compiled with `--features wgpu`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Float precision: f32 or f64 (wgpu: f32 only).
    #[arg(long)]
    pub dtype: Option<String>,
    /// Run only every n-th point of the grid, starting at i (`i/n`, e.g. a Slurm array task);
    /// join the shards' folders with `overparam merge`.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Results folder [default: results/<experiment>, results/<experiment>-quick with --quick].
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Plots folder [default: plots/<experiment>, plots/<experiment>-quick with --quick].
    #[arg(long)]
    pub plots: Option<PathBuf>,
    /// No progress bars (logs and CI).
    #[arg(long)]
    pub no_progress: bool,
}

impl SweepArgs {
    /// The seeds to run: `0..--seeds`, default 1 (quick) or 3.
    pub fn seeds(&self) -> Vec<u64> {
        let count = self.seeds.unwrap_or(if self.quick { 1 } else { 3 });
        (0..count as u64).collect()
    }
}

/// What a run hands to the experiment.
pub struct RunContext {
    /// The device and precision.
    pub compute: Compute,
    /// The run's progress bar (its length is the experiment's to set).
    pub bar: ProgressBar,
    /// A folder where a long run may keep its training checkpoint and what its observer saw
    /// (`checkpoints/<id>/` in the results folder), so that a killed sweep started again
    /// resumes the run; the runner deletes it once the run's results are written.
    pub checkpoints: PathBuf,
}

/// A run's measurements: a JSON-able value and an optional per-step table.
pub struct RunOutput<O> {
    /// Scalars and short series (goes into `runs/<id>.json`).
    pub output: O,
    /// The per-step table (goes into `runs/<id>.csv`).
    pub table: Option<Table>,
}

/// A finished run read back from its JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finished<P, O> {
    /// The experiment's name.
    pub experiment: String,
    /// The run id (file stem).
    pub id: String,
    /// The grid point.
    pub point: P,
    /// The measurements.
    pub output: O,
    /// `device/dtype` it ran on.
    pub compute: String,
    /// Wall-clock seconds of the run.
    pub wall_seconds: f64,
    /// `git rev-parse HEAD` of the working tree that ran it.
    pub commit: String,
}

/// One reproduced figure or claim: its grid, one run, and its report.
pub trait Experiment {
    /// A grid point: everything a run needs besides the device (so a run is reproducible
    /// from its JSON alone).
    type Point: Serialize + DeserializeOwned + Clone + PartialEq + fmt::Debug;
    /// What a run measures.
    type Output: Serialize + DeserializeOwned + Clone;

    /// The experiment's name (the results and plots folder names).
    fn name(&self) -> &'static str;

    /// The default precision of its runs.
    fn default_dtype(&self) -> &'static str {
        "f64"
    }

    /// The grid, seeds included, in a fixed order.
    fn grid(&self, sweep: &SweepArgs) -> Result<Vec<Self::Point>>;

    /// A file-name-safe id that is unique within the grid.
    fn id(&self, point: &Self::Point) -> String;

    /// Runs one point.
    fn run(&self, point: &Self::Point, ctx: &RunContext) -> Result<RunOutput<Self::Output>>;

    /// Writes the summary tables and plots once every run of the grid is present.
    fn report(
        &self,
        runs: &[Finished<Self::Point, Self::Output>],
        results: &ResultsDir,
        plots: &Path,
    ) -> Result<()>;
}

/// The git commit of the current directory's repository, or `unknown`.
pub fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The versions of the crates that determine the numbers (from the workspace's Cargo.lock).
pub fn crate_versions() -> serde_json::Value {
    const LOCK: &str = include_str!("../../Cargo.lock");
    let mut versions = serde_json::Map::new();
    versions.insert("overparam".into(), env!("CARGO_PKG_VERSION").into());
    let mut name: Option<&str> = None;
    for line in LOCK.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"'));
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take())
            && ["burn", "burn-flex", "burn-ndarray", "burn-wgpu", "faer"].contains(&n)
        {
            versions.insert(n.into(), v.trim_matches('"').into());
        }
    }
    versions.into()
}

#[derive(Serialize)]
struct Manifest<'a, P> {
    experiment: &'a str,
    command: Vec<String>,
    sweep: &'a SweepArgs,
    compute: String,
    commit: String,
    crate_versions: serde_json::Value,
    grid_size: usize,
    runs: Vec<ManifestRun<'a, P>>,
    wall_seconds: f64,
}

#[derive(Serialize)]
struct ManifestRun<'a, P> {
    id: String,
    point: &'a P,
    /// `ran`, or `skipped` when its result already existed.
    status: &'static str,
    wall_seconds: Option<f64>,
}

fn bars(sweep: &SweepArgs, runs: usize) -> (MultiProgress, ProgressBar) {
    let multi = MultiProgress::new();
    if sweep.no_progress {
        multi.set_draw_target(ProgressDrawTarget::hidden());
    }
    let bar = multi.add(ProgressBar::new(runs as u64));
    bar.set_style(
        ProgressStyle::with_template(
            "sweep [{bar:30}] {pos}/{len} runs {msg} ({elapsed}, eta {eta})",
        )
        .expect("a valid template")
        .progress_chars("##-"),
    );
    (multi, bar)
}

/// The files of a results folder the report copies beside its plots, so that every number a
/// gallery shows traces to a committed file made by the command that drew it.
pub const PROVENANCE: [&str; 3] = ["summary.csv", "summary.json", "manifest.json"];

/// Runs the sweep described by `sweep` (resuming, sharded), then, when every run of the grid
/// is present, the report. Prints where everything went.
pub fn run_sweep<E: Experiment>(experiment: &E, sweep: &SweepArgs) -> Result<()> {
    let name = experiment.name();
    let folder = if sweep.quick {
        format!("{name}-quick")
    } else {
        name.to_string()
    };
    let dtype = sweep.dtype.as_deref().unwrap_or(experiment.default_dtype());
    let compute = Compute::parse(&sweep.device, dtype)?;
    if let Some(note) = compute.host_note() {
        eprintln!("{note}");
    }
    let results = ResultsDir::new(
        sweep
            .results
            .clone()
            .unwrap_or_else(|| Path::new("results").join(&folder)),
    );
    let plots = sweep
        .plots
        .clone()
        .unwrap_or_else(|| Path::new("plots").join(&folder));
    let grid = experiment.grid(sweep)?;
    if grid.is_empty() {
        bail!("the grid of '{name}' is empty");
    }
    let ids: Vec<String> = grid.iter().map(|p| experiment.id(p)).collect();
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = ids.iter().find(|id| !seen.insert(*id)) {
        bail!("two grid points share the id '{dup}'");
    }
    let shard = sweep.shard.unwrap_or(Shard { index: 0, count: 1 });
    let mine: Vec<usize> = (0..grid.len())
        .filter(|g| g % shard.count == shard.index)
        .collect();
    let commit = git_commit();
    let start = Instant::now();
    eprintln!(
        "{name}: {} of {} runs (shard {shard}) on {compute}; results in {}",
        mine.len(),
        grid.len(),
        results.root().display()
    );
    let (multi, sweep_bar) = bars(sweep, mine.len());
    let mut manifest_runs = Vec::new();
    for &g in &mine {
        let (point, id) = (&grid[g], &ids[g]);
        if let Some(existing) = results.load_run(id)? {
            let same: Option<E::Point> = serde_json::from_value(existing["point"].clone()).ok();
            if same.as_ref() != Some(point) {
                bail!(
                    "{} holds a run '{id}' of another grid point; use another --results folder",
                    results.run_json(id).display()
                );
            }
            manifest_runs.push(ManifestRun {
                id: id.clone(),
                point,
                status: "skipped",
                wall_seconds: None,
            });
            sweep_bar.inc(1);
            continue;
        }
        sweep_bar.set_message(id.clone());
        let bar = multi.insert_after(&sweep_bar, ProgressBar::new(0));
        bar.set_style(overparam_train::step_style());
        bar.set_prefix(id.clone());
        let ctx = RunContext {
            compute: compute.clone(),
            bar: bar.clone(),
            checkpoints: results.root().join("checkpoints").join(id),
        };
        let run_start = Instant::now();
        let out = experiment
            .run(point, &ctx)
            .with_context(|| format!("run '{id}' ({point:?})"))?;
        let wall = run_start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        multi.remove(&bar);
        if let Some(table) = &out.table {
            write_atomic(&results.run_csv(id), &table.to_csv()?)?;
        }
        let finished = Finished {
            experiment: name.to_string(),
            id: id.clone(),
            point: point.clone(),
            output: out.output,
            compute: compute.to_string(),
            wall_seconds: wall,
            commit: commit.clone(),
        };
        write_json_atomic(&results.run_json(id), &finished)?;
        if ctx.checkpoints.exists() {
            std::fs::remove_dir_all(&ctx.checkpoints)
                .with_context(|| format!("removing {}", ctx.checkpoints.display()))?;
            // The shared folder goes too once it is empty (an error means it is not).
            let _ = std::fs::remove_dir(results.root().join("checkpoints"));
        }
        manifest_runs.push(ManifestRun {
            id: id.clone(),
            point,
            status: "ran",
            wall_seconds: Some(wall),
        });
        sweep_bar.inc(1);
    }
    sweep_bar.finish_and_clear();
    let manifest = Manifest {
        experiment: name,
        command: std::env::args().collect(),
        sweep,
        compute: compute.to_string(),
        commit,
        crate_versions: crate_versions(),
        grid_size: grid.len(),
        runs: manifest_runs,
        wall_seconds: start.elapsed().as_secs_f64(),
    };
    let manifest_name = match sweep.shard {
        Some(s) => format!("manifest.shard-{}-of-{}.json", s.index, s.count),
        None => "manifest.json".to_string(),
    };
    write_json_atomic(&results.root().join(manifest_name), &manifest)?;

    let mut finished = Vec::with_capacity(grid.len());
    for (point, id) in grid.iter().zip(&ids) {
        match results.load_run(id)? {
            Some(v) => {
                let run: Finished<E::Point, E::Output> = serde_json::from_value(v)
                    .with_context(|| format!("reading back {}", results.run_json(id).display()))?;
                if run.point != *point {
                    bail!(
                        "{} holds another grid point",
                        results.run_json(id).display()
                    );
                }
                finished.push(run);
            }
            None => {
                eprintln!(
                    "{name}: {} of {} runs present; run the other shards, join them with \
                     `overparam merge --into <folder> <shard folders>…`, then run this command \
                     again without --shard to write the report",
                    finished.len(),
                    grid.len()
                );
                return Ok(());
            }
        }
    }
    experiment.report(&finished, &results, &plots)?;
    // Provenance of a gallery: the numbers and the command that made the plots, beside them.
    for file in PROVENANCE {
        let from = results.root().join(file);
        if from.exists() {
            let bytes =
                std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
            write_atomic(&plots.join(file), &bytes)?;
        }
    }
    eprintln!(
        "{name}: report written to {} and {} ({:.1} s)",
        results.root().display(),
        plots.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_refuse_bad_input() {
        assert_eq!("1/4".parse::<Shard>(), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "1", "a/2", "0/0"] {
            assert!(bad.parse::<Shard>().unwrap_err().contains(bad), "{bad}");
        }
    }

    #[test]
    fn crate_versions_name_burn() {
        let v = crate_versions();
        assert!(v["burn"].as_str().unwrap().starts_with("0.22."), "{v}");
    }
}
