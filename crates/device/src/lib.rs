//! Which Burn backend and float precision a run uses, chosen at run time.
//!
//! Cargo features decide which backends are compiled in (`flex`, `ndarray`, `wgpu`); the user
//! picks one of them with `--device cpu|flex|ndarray|wgpu` and `--dtype f32|f64`. Everything
//! downstream takes a [`Compute`] and never names a backend, so the same code runs on each.
//!
//! Tensors are always created with an explicit dtype (see [`Compute::tensor`]) instead of
//! through the device's global default dtype, which Burn lets a process set only once: one
//! process can therefore hold f32 and f64 models side by side.

pub mod conv;
#[cfg(feature = "flex")]
pub mod fused;
#[cfg(feature = "flex")]
pub mod fused_conv;
#[cfg(feature = "flex")]
pub mod fused_norm;
#[cfg(feature = "flex")]
mod lanes;
pub mod norm;
pub mod vmath;

use burn::tensor::{DType, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Errors when choosing a backend or a precision.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The name is not one of the known devices.
    #[error("unknown device '{0}': expected one of cpu, flex, ndarray, wgpu")]
    UnknownDevice(String),
    /// The name is not one of the known precisions.
    #[error("unknown dtype '{0}': expected f32 or f64")]
    UnknownDtype(String),
    /// The backend exists but this binary was built without its cargo feature.
    #[error(
        "device '{device}' is not compiled into this binary: rebuild with `--features {feature}`"
    )]
    NotCompiled {
        /// The requested device.
        device: BackendKind,
        /// The cargo feature that compiles it in.
        feature: &'static str,
    },
    /// The backend cannot compute in this precision (WGSL has no f64).
    #[error(
        "dtype {dtype} is not supported on device '{device}' (WGSL has no f64); use --dtype f32"
    )]
    UnsupportedDtype {
        /// The requested device.
        device: BackendKind,
        /// The requested precision.
        dtype: Precision,
    },
}

/// A Burn backend this project can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Burn's pure-Rust CPU backend `burn-flex` (the default CPU backend: it is the faster of
    /// the two CPU backends in `bench_gd_step`, see README).
    Flex,
    /// `burn-ndarray`, the CPU backend named in the product's design card (deprecated upstream
    /// in Burn 0.22; kept compiling and tested by a CI subset).
    Ndarray,
    /// The GPU backend through wgpu (f32 only).
    Wgpu,
}

impl BackendKind {
    /// The default CPU backend, what `--device cpu` means.
    pub const CPU: BackendKind = BackendKind::Flex;

    /// All backends compiled into this binary.
    pub fn compiled() -> Vec<BackendKind> {
        [BackendKind::Flex, BackendKind::Ndarray, BackendKind::Wgpu]
            .into_iter()
            .filter(|b| b.is_compiled())
            .collect()
    }

    /// Whether this binary was built with the backend's cargo feature.
    pub fn is_compiled(self) -> bool {
        match self {
            BackendKind::Flex => cfg!(feature = "flex"),
            BackendKind::Ndarray => cfg!(feature = "ndarray"),
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
        }
    }

    fn feature(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Ndarray => "ndarray",
            BackendKind::Wgpu => "wgpu",
        }
    }

    /// Whether the backend supports the precision for general computation.
    pub fn supports(self, precision: Precision) -> bool {
        !(self == BackendKind::Wgpu && precision == Precision::F64)
    }

    /// The Burn device, without autodiff. Errors when the backend is not compiled in.
    pub fn device(self) -> Result<Device, DeviceError> {
        match self {
            #[cfg(feature = "flex")]
            BackendKind::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            BackendKind::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[allow(unreachable_patterns)]
            _ => Err(DeviceError::NotCompiled {
                device: self,
                feature: self.feature(),
            }),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Flex => "flex",
            BackendKind::Ndarray => "ndarray",
            BackendKind::Wgpu => "wgpu",
        })
    }
}

impl FromStr for BackendKind {
    type Err = DeviceError;

    /// `cpu` is the default CPU backend ([`BackendKind::CPU`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(BackendKind::CPU),
            "flex" => Ok(BackendKind::Flex),
            "ndarray" => Ok(BackendKind::Ndarray),
            "wgpu" | "gpu" => Ok(BackendKind::Wgpu),
            _ => Err(DeviceError::UnknownDevice(s.to_string())),
        }
    }
}

/// Float precision of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats.
    #[default]
    F32,
    /// 64-bit floats.
    F64,
}

impl Precision {
    /// The Burn dtype.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F64 => DType::F64,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        })
    }
}

impl FromStr for Precision {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Precision::F32),
            "f64" | "float64" => Ok(Precision::F64),
            _ => Err(DeviceError::UnknownDtype(s.to_string())),
        }
    }
}

/// A validated (backend, precision) pair and its Burn device.
#[derive(Debug, Clone)]
pub struct Compute {
    backend: BackendKind,
    precision: Precision,
    device: Device,
}

impl Compute {
    /// Checks that the backend is compiled in and supports the precision.
    pub fn new(backend: BackendKind, precision: Precision) -> Result<Self, DeviceError> {
        let device = backend.device()?;
        if backend != BackendKind::Wgpu {
            reuse_freed_memory();
        }
        if !backend.supports(precision) {
            return Err(DeviceError::UnsupportedDtype {
                device: backend,
                dtype: precision,
            });
        }
        Ok(Self {
            backend,
            precision,
            device,
        })
    }

    /// Parses `--device` and `--dtype` strings.
    pub fn parse(device: &str, dtype: &str) -> Result<Self, DeviceError> {
        Self::new(device.parse()?, dtype.parse()?)
    }

    /// The default CPU backend in f64.
    pub fn cpu_f64() -> Result<Self, DeviceError> {
        Self::new(BackendKind::CPU, Precision::F64)
    }

    /// The backend.
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// The precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The Burn device without autodiff.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The same device with autodiff enabled.
    pub fn autodiff_device(&self) -> Device {
        self.device.clone().autodiff()
    }

    /// What runs off this device by design, to print once per run (`None` on the CPU): on a
    /// GPU the forward and backward passes run on the device in f32, while Gram contractions,
    /// eigenvalues and infinite-width kernels run on the host in f64.
    pub fn host_note(&self) -> Option<&'static str> {
        (self.backend == BackendKind::Wgpu).then_some(
            "note: on wgpu, forward/backward passes run on the GPU in f32; Gram contractions, \
             eigenvalues and infinite-width kernels run on the host in f64 by design",
        )
    }

    /// A rank-`D` tensor in this precision from row-major f64 values.
    ///
    /// # Panics
    /// If `values.len()` is not the product of `shape` (a programming error, not user input).
    pub fn tensor<const D: usize>(&self, values: &[f64], shape: [usize; D]) -> Tensor<D> {
        assert_eq!(
            values.len(),
            shape.iter().product::<usize>(),
            "tensor values do not match shape {shape:?}"
        );
        let data = match self.precision {
            Precision::F64 => TensorData::new(values.to_vec(), shape),
            Precision::F32 => {
                TensorData::new(values.iter().map(|&v| v as f32).collect::<Vec<_>>(), shape)
            }
        };
        Tensor::from_data(data, (&self.device, self.precision.dtype()))
    }
}

impl fmt::Display for Compute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.backend, self.precision)
    }
}

/// Keeps freed memory in the process heap for reuse (glibc on Linux; once per process).
///
/// A CPU training step allocates and frees activations of tens of MB many times (ResNet-18 at
/// w = 64, batch 128: 34 MB per stage-1 activation). glibc serves blocks above its mmap
/// threshold (dynamic, at most 32 MB by default) with fresh pages from the kernel each time:
/// every page faults and is zeroed, and every `munmap` interrupts the other cores to flush
/// their TLBs. With the thresholds raised, freed blocks are reused. Measured on that step, in
/// alternation: 1.5–2.6 s with the defaults, 1.7–1.8 s (and steady) with the thresholds raised.
fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only sets allocator parameters; called before the large
            // allocations it is meant for, and it is thread-safe in glibc.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            }
        });
    }
}

/// Whether `device` (with or without autodiff) is flex's. flex runs σ, log σ and GELU as
/// single fused passes with exact f64 backward rules; the other backends run Burn's default
/// bodies, which cast sigmoid to f32 and differentiate GELU through its tanh approximation.
pub fn is_flex(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    {
        device.clone().inner() == Device::flex()
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

/// Softplus `log(1 + e^z)`, differentiable: on flex one fused pass each way ([`fused`]),
/// elsewhere Burn's `softplus`.
pub fn softplus<const D: usize>(z: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if is_flex(&z.device()) {
        return fused::softplus(z);
    }
    burn::tensor::activation::softplus(z, 1.0)
}

/// Reads any float tensor back to the host as values of `T` (f32 or f64; row-major).
pub fn to_host_vec<T: burn::tensor::Element, const D: usize>(tensor: Tensor<D>) -> Vec<T> {
    tensor
        .into_data()
        .convert::<T>()
        .try_into_vec::<T>()
        .expect("a float tensor converts to f32 and f64")
}

/// Reads any float tensor back to the host as f64 values (row-major).
pub fn to_f64_vec<const D: usize>(tensor: Tensor<D>) -> Vec<f64> {
    to_host_vec(tensor)
}

/// Reads a one-element tensor back to the host as f64.
pub fn to_f64_scalar<const D: usize>(tensor: Tensor<D>) -> f64 {
    to_f64_vec(tensor)[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_names() {
        assert_eq!("cpu".parse::<BackendKind>(), Ok(BackendKind::CPU));
        assert_eq!("NDARRAY".parse::<BackendKind>(), Ok(BackendKind::Ndarray));
        let err = "tpu".parse::<BackendKind>().unwrap_err();
        assert!(err.to_string().contains("'tpu'"));
        assert!(
            "f16"
                .parse::<Precision>()
                .unwrap_err()
                .to_string()
                .contains("'f16'")
        );
    }

    #[test]
    fn wgpu_rejects_f64_or_is_not_compiled() {
        let err = Compute::new(BackendKind::Wgpu, Precision::F64).unwrap_err();
        if cfg!(feature = "wgpu") {
            assert!(matches!(err, DeviceError::UnsupportedDtype { .. }));
        } else {
            assert!(err.to_string().contains("--features wgpu"), "{err}");
        }
    }
}
