//! One chart: series (lines, dashed overlays, markers, min–max bands) on linear or log axes.

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// Errors while writing a figure.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The figure has no finite point to draw (e.g. every value is ≤ 0 on a log axis).
    #[error("figure '{0}' has no finite point to draw")]
    Empty(String),
    /// The output folder could not be made.
    #[error("cannot create {path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// plotters failed while drawing.
    #[error("drawing {path}: {message}")]
    Draw {
        /// The file being drawn.
        path: PathBuf,
        /// plotters' message.
        message: String,
    },
}

/// An axis scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Linear.
    Linear,
    /// Base-10 logarithmic; points ≤ 0 are left out.
    Log,
}

impl Scale {
    fn apply(self, v: f64) -> Option<f64> {
        let t = match self {
            Scale::Linear => v,
            Scale::Log if v > 0.0 => v.log10(),
            Scale::Log => return None,
        };
        t.is_finite().then_some(t)
    }

    fn label(self, t: f64) -> String {
        match self {
            Scale::Linear => short(t),
            Scale::Log => short(two_significant(10f64.powf(t))),
        }
    }
}

/// `v` rounded to two significant digits (log-axis ticks fall between round numbers).
fn two_significant(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powf(v.abs().log10().floor() - 1.0);
    (v / scale).round() * scale
}

/// A number in at most about 4 characters of mantissa: `0.25`, `1e-4`, `3.2e5`.
fn short(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.1e}");
        return s.replace(".0e", "e");
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A solid line.
    Line,
    /// A dashed line (theory overlays).
    Dashed,
    /// Markers only (measured scaling points).
    Markers,
    /// A solid line with markers.
    LineMarkers,
}

/// One labelled series.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text; empty leaves the series out of the legend.
    pub label: String,
    /// `(x, y)` points in drawing order.
    pub points: Vec<(f64, f64)>,
    /// `(x, low, high)`: a shaded band (e.g. min–max over seeds).
    pub band: Vec<(f64, f64, f64)>,
    /// Line style.
    pub style: Style,
    /// Palette index; `None` takes the series' position.
    pub color: Option<usize>,
}

impl Series {
    /// A solid line.
    pub fn line(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            points,
            band: Vec::new(),
            style: Style::Line,
            color: None,
        }
    }

    /// The same series drawn in another style.
    pub fn style(mut self, style: Style) -> Self {
        self.style = style;
        self
    }

    /// Adds a shaded `(x, low, high)` band.
    pub fn band(mut self, band: Vec<(f64, f64, f64)>) -> Self {
        self.band = band;
        self
    }

    /// Uses palette colour `i` (so a measured series and its theory share a colour).
    pub fn color(mut self, i: usize) -> Self {
        self.color = Some(i);
        self
    }
}

/// Where the legend goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legend {
    /// Upper right corner.
    UpperRight,
    /// Upper left corner.
    UpperLeft,
    /// Lower left corner.
    LowerLeft,
    /// Lower right corner.
    LowerRight,
}

/// A chart with a title, labelled axes, series and horizontal reference lines.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Title above the plot.
    pub title: String,
    /// x-axis label (with the paper's symbol).
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// x scale.
    pub x_scale: Scale,
    /// y scale.
    pub y_scale: Scale,
    /// The data.
    pub series: Vec<Series>,
    /// `(label, y)`: dotted horizontal lines (e.g. λ0 and λ0/2).
    pub hlines: Vec<(String, f64)>,
    /// Legend position.
    pub legend: Legend,
}

/// Ten colours that stay distinct in print (Tableau 10).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const SIZE: (u32, u32) = (720, 500);
const FONT: &str = "sans-serif";

static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        plotters::style::register_font(FONT, FontStyle::Normal, bytes)
            .unwrap_or_else(|_| panic!("the embedded DejaVu Sans is a valid font"));
    });
}

type Range = (f64, f64);

fn padded(lo: f64, hi: f64) -> Range {
    if hi - lo < 1e-12 * hi.abs().max(1.0) {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = 0.04 * (hi - lo);
    (lo - pad, hi + pad)
}

impl Figure {
    /// An empty figure with linear axes.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: Vec::new(),
            hlines: Vec::new(),
            legend: Legend::UpperRight,
        }
    }

    /// Sets the axis scales.
    pub fn scales(mut self, x: Scale, y: Scale) -> Self {
        self.x_scale = x;
        self.y_scale = y;
        self
    }

    /// Adds a series.
    pub fn with(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// Adds a horizontal reference line.
    pub fn hline(mut self, label: impl Into<String>, y: f64) -> Self {
        self.hlines.push((label.into(), y));
        self
    }

    /// Moves the legend.
    pub fn legend(mut self, legend: Legend) -> Self {
        self.legend = legend;
        self
    }

    fn ranges(&self) -> Option<(Range, Range)> {
        let (sx, sy) = (self.x_scale, self.y_scale);
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for s in &self.series {
            for &(x, y) in &s.points {
                if let (Some(x), Some(y)) = (sx.apply(x), sy.apply(y)) {
                    xs.push(x);
                    ys.push(y);
                }
            }
            for &(x, lo, hi) in &s.band {
                if let Some(x) = sx.apply(x) {
                    xs.push(x);
                    ys.extend([lo, hi].into_iter().filter_map(|v| sy.apply(v)));
                }
            }
        }
        if xs.is_empty() {
            return None;
        }
        ys.extend(self.hlines.iter().filter_map(|h| sy.apply(h.1)));
        let span = |v: &[f64]| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            padded(lo, hi)
        };
        Some((span(&xs), span(&ys)))
    }

    /// Writes `<dir>/<stem>.svg` and `<dir>/<stem>.png`; returns both paths.
    pub fn save(&self, dir: &Path, stem: &str) -> Result<[PathBuf; 2], PlotError> {
        register_font();
        std::fs::create_dir_all(dir).map_err(|source| PlotError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let (svg, png) = (
            dir.join(format!("{stem}.svg")),
            dir.join(format!("{stem}.png")),
        );
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |message: String| PlotError::Draw { path, message }
        };
        self.draw(SVGBackend::new(&svg, SIZE).into_drawing_area())
            .map_err(err(&svg))?;
        self.draw(BitMapBackend::new(&png, SIZE).into_drawing_area())
            .map_err(err(&png))?;
        Ok([svg, png])
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        let s = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        let ((x0, x1), (y0, y1)) = self
            .ranges()
            .ok_or_else(|| PlotError::Empty(self.title.clone()).to_string())?;
        let (sx, sy) = (self.x_scale, self.y_scale);
        root.fill(&WHITE).map_err(s)?;
        // Long titles shrink rather than run off the canvas (about 0.55 em per character).
        let chars = self.title.chars().count().max(1) as f64;
        let title_size = (SIZE.0 as f64 / (0.55 * chars)).clamp(12.0, 20.0);
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, (FONT, title_size))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(s)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .x_labels(8)
            .y_labels(8)
            .x_label_formatter(&|v| sx.label(*v))
            .y_label_formatter(&|v| sy.label(*v))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.08))
            .draw()
            .map_err(s)?;

        for (i, series) in self.series.iter().enumerate() {
            let color = PALETTE[series.color.unwrap_or(i) % PALETTE.len()];
            let band: Vec<(f64, f64, f64)> = series
                .band
                .iter()
                .filter_map(|&(x, lo, hi)| Some((sx.apply(x)?, sy.apply(lo)?, sy.apply(hi)?)))
                .collect();
            if band.len() > 1 {
                let outline: Vec<(f64, f64)> = band
                    .iter()
                    .map(|b| (b.0, b.1))
                    .chain(band.iter().rev().map(|b| (b.0, b.2)))
                    .collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(outline, color.mix(0.18))))
                    .map_err(s)?;
            }
            let pts: Vec<(f64, f64)> = series
                .points
                .iter()
                .filter_map(|&(x, y)| Some((sx.apply(x)?, sy.apply(y)?)))
                .collect();
            let line = ShapeStyle::from(color).stroke_width(2);
            let drawn = match series.style {
                Style::Line | Style::LineMarkers => chart
                    .draw_series(LineSeries::new(pts.clone(), line))
                    .map_err(s)?,
                Style::Dashed => chart
                    .draw_series(DashedLineSeries::new(pts.clone(), 8, 5, line))
                    .map_err(s)?,
                Style::Markers => chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                    .map_err(s)?,
            };
            if !series.label.is_empty() {
                let style = series.style;
                drawn.label(&series.label).legend(move |(x, y)| {
                    // One element type for every style: unused parts are transparent.
                    let none = ShapeStyle::from(WHITE.mix(0.0));
                    let stroke = ShapeStyle::from(color).stroke_width(2);
                    let (line, gap, dot) = match style {
                        Style::Markers => (none, none, color.filled()),
                        Style::Dashed => (stroke, none, none),
                        Style::Line => (stroke, stroke, none),
                        Style::LineMarkers => (stroke, stroke, color.filled()),
                    };
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (7, 0)], line)
                        + PathElement::new(vec![(7, 0), (13, 0)], gap)
                        + PathElement::new(vec![(13, 0), (20, 0)], line)
                        + Circle::new((10, 0), 4, dot)
                });
            }
            if series.style == Style::LineMarkers {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(s)?;
            }
        }
        for (k, (label, y)) in self.hlines.iter().enumerate() {
            let Some(y) = sy.apply(*y) else { continue };
            let style = ShapeStyle::from(BLACK.mix(0.7)).stroke_width(1 + (k == 0) as u32);
            chart
                .draw_series(DashedLineSeries::new(vec![(x0, y), (x1, y)], 3, 4, style))
                .map_err(s)?
                .label(label)
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (4, 0)], style)
                        + PathElement::new(vec![(8, 0), (12, 0)], style)
                        + PathElement::new(vec![(16, 0), (20, 0)], style)
                });
        }
        let position = match self.legend {
            Legend::UpperRight => SeriesLabelPosition::UpperRight,
            Legend::UpperLeft => SeriesLabelPosition::UpperLeft,
            Legend::LowerLeft => SeriesLabelPosition::LowerLeft,
            Legend::LowerRight => SeriesLabelPosition::LowerRight,
        };
        chart
            .configure_series_labels()
            .position(position)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(s)?;
        root.present().map_err(s)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers() {
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(1e-4), "1e-4");
        assert_eq!(short(100.0), "100");
        assert_eq!(short(320000.0), "3.2e5");
        assert_eq!(Scale::Log.label(251.189f64.log10()), "250");
        assert_eq!(Scale::Log.label(1584.893f64.log10()), "1600");
    }

    #[test]
    fn writes_svg_and_png_and_refuses_an_empty_log_plot() {
        let dir = std::env::temp_dir().join(format!("overparam-plot-{}", std::process::id()));
        let fig = Figure::new("loss", "step k", "loss")
            .scales(Scale::Linear, Scale::Log)
            .with(Series::line(
                "m = 100",
                vec![(0.0, 1.0), (1.0, 0.1), (2.0, 0.01)],
            ))
            .with(
                Series::line("theory", vec![(0.0, 1.0), (2.0, 0.02)])
                    .style(Style::Dashed)
                    .band(vec![(0.0, 0.5, 2.0), (2.0, 0.01, 0.04)]),
            )
            .hline("λ0", 0.5);
        let [svg, png] = fig.save(&dir, "loss").unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("m = 100") && text.contains("λ0"));
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let empty = Figure::new("empty", "x", "y")
            .scales(Scale::Linear, Scale::Log)
            .with(Series::line("neg", vec![(0.0, -1.0)]));
        assert!(
            empty
                .save(&dir, "empty")
                .unwrap_err()
                .to_string()
                .contains("no finite point")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
