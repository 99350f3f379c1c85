//! The results folder of a sweep: one JSON + CSV pair per run under `runs/`, a manifest per
//! invocation, atomic writes, and the merge of shard folders.
//!
//! ```text
//! results/<experiment>/
//!   runs/<run id>.json      point, output, device, seed, wall time, commit (the run is done
//!                           once this file exists)
//!   runs/<run id>.csv       the run's per-step table, if it has one
//!   manifest[.shard-i-of-n].json
//!   summary.json, summary.csv   written once every run of the grid is present
//! ```

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so a
/// killed process leaves either the old file, the new file, or a stray `.tmp`, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))?;
    Ok(())
}

/// [`write_atomic`] of pretty JSON.
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// A table with named columns, written as CSV (loads with `pandas.read_csv`): the first
/// `labels` columns hold text (an architecture's name, say), the others numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Column names: the text columns, then the numeric ones.
    pub header: Vec<String>,
    /// Number of leading text columns.
    pub labels: usize,
    /// Rows: text cells, then numbers (NaN is written as an empty field).
    pub rows: Vec<(Vec<String>, Vec<f64>)>,
}

impl Table {
    /// An empty table of numeric columns.
    pub fn new(header: &[&str]) -> Self {
        Self::labelled(&[], header)
    }

    /// An empty table with text columns `labels` before the numeric `header`.
    pub fn labelled(labels: &[&str], header: &[&str]) -> Self {
        Self {
            header: labels.iter().chain(header).map(|s| s.to_string()).collect(),
            labels: labels.len(),
            rows: Vec::new(),
        }
    }

    /// Appends a numeric row.
    ///
    /// # Panics
    /// If the row does not fit the header (a programming error).
    pub fn push(&mut self, values: Vec<f64>) {
        self.push_labelled(Vec::new(), values);
    }

    /// Appends a row with its text cells.
    ///
    /// # Panics
    /// If the row does not fit the header (a programming error).
    pub fn push_labelled(&mut self, labels: Vec<String>, values: Vec<f64>) {
        assert_eq!(labels.len(), self.labels, "text cells vs header");
        assert_eq!(
            labels.len() + values.len(),
            self.header.len(),
            "row length vs header"
        );
        self.rows.push((labels, values));
    }

    /// The rows as JSON objects keyed by column name.
    pub fn to_json(&self) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|(labels, values)| {
                let mut row = serde_json::Map::new();
                for (name, v) in self.header.iter().zip(labels) {
                    row.insert(name.clone(), v.clone().into());
                }
                for (name, v) in self.header[self.labels..].iter().zip(values) {
                    let v = if v.is_finite() {
                        (*v).into()
                    } else {
                        serde_json::Value::Null
                    };
                    row.insert(name.clone(), v);
                }
                row.into()
            })
            .collect();
        rows.into()
    }

    /// The CSV text.
    pub fn to_csv(&self) -> Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&self.header)?;
        for (labels, values) in &self.rows {
            let numbers = values.iter().map(|v| {
                if v.is_nan() {
                    String::new()
                } else {
                    v.to_string()
                }
            });
            w.write_record(labels.iter().cloned().chain(numbers))?;
        }
        Ok(w.into_inner()?)
    }

    /// Writes `<stem>.csv` and `<stem>.json` (the rows, plus `extra` fields) into `dir`.
    pub fn write_summary(&self, dir: &Path, stem: &str, extra: serde_json::Value) -> Result<()> {
        write_atomic(&dir.join(format!("{stem}.csv")), &self.to_csv()?)?;
        let mut value = serde_json::json!({ "rows": self.to_json() });
        if let (Some(map), serde_json::Value::Object(more)) = (value.as_object_mut(), extra) {
            map.extend(more);
        }
        write_json_atomic(&dir.join(format!("{stem}.json")), &value)
    }
}

/// The file layout of one experiment's results.
#[derive(Debug, Clone)]
pub struct ResultsDir {
    root: PathBuf,
}

impl ResultsDir {
    /// The folder (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the runs go.
    pub fn runs(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// The JSON of run `id`.
    pub fn run_json(&self, id: &str) -> PathBuf {
        self.runs().join(format!("{id}.json"))
    }

    /// The CSV of run `id`.
    pub fn run_csv(&self, id: &str) -> PathBuf {
        self.runs().join(format!("{id}.csv"))
    }

    /// The JSON of run `id`, if the run has finished.
    pub fn load_run(&self, id: &str) -> Result<Option<Value>> {
        let path = self.run_json(id);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a run result (invalid JSON)", path.display()))?;
        Ok(Some(value))
    }
}

/// Joins the results folders of several shards into `into`: every run file is copied; a run
/// present in two folders must describe the same grid point (its `point` field), and the copy
/// already in place is kept. Shard manifests are copied beside each other. Returns the number
/// of runs copied.
pub fn merge(into: &Path, shards: &[PathBuf]) -> Result<usize> {
    if shards.is_empty() {
        bail!("merge needs at least one shard folder");
    }
    let target = ResultsDir::new(into);
    std::fs::create_dir_all(target.runs())
        .with_context(|| format!("creating {}", target.runs().display()))?;
    let mut experiment: Option<String> = None;
    let mut copied = 0;
    for shard in shards {
        let source = ResultsDir::new(shard);
        let runs = source.runs();
        let entries = std::fs::read_dir(&runs)
            .with_context(|| format!("{} has no runs/ folder", shard.display()))?;
        let mut ids: BTreeMap<String, ()> = BTreeMap::new();
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let id = path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                ids.insert(id, ());
            }
        }
        for id in ids.keys() {
            let run = source.load_run(id)?.expect("listed above");
            let name = run["experiment"].as_str().unwrap_or_default().to_string();
            match &experiment {
                Some(e) if *e != name => {
                    bail!(
                        "{}: run '{id}' is from experiment '{name}', not '{e}'",
                        shard.display()
                    )
                }
                _ => experiment = Some(name),
            }
            if let Some(existing) = target.load_run(id)? {
                if existing["point"] != run["point"] {
                    bail!(
                        "run '{id}' differs between {} and {}: they come from different grids",
                        shard.display(),
                        into.display()
                    );
                }
                continue;
            }
            let csv = source.run_csv(id);
            if csv.exists() {
                write_atomic(&target.run_csv(id), &std::fs::read(&csv)?)?;
            }
            write_json_atomic(&target.run_json(id), &run)?;
            copied += 1;
        }
        for entry in std::fs::read_dir(shard)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if name.starts_with("manifest") && name.ends_with(".json") {
                let dest = into.join(&name);
                if !dest.exists() {
                    write_atomic(&dest, &std::fs::read(&path)?)?;
                }
            }
        }
    }
    Ok(copied)
}
